"""Shared plumbing for the flows: the GPU slot, task runners, and which errors are worth a retry.

Kept apart from the flows so that every flow makes the same choices:

* **One GPU, one job.** Detectors hold a slot of a Prefect *global concurrency limit* (default
  name ``gpu``, 1 slot) while they run. The server grants slots, so the rule holds across threads,
  Dask worker processes, several flow runs and several workers at once -- a process lock could not
  do that. The embedded (ephemeral) server and ``prefect_test_harness`` support global limits too,
  so the same code path runs with and without a server. The limit is created on first use with
  ``slots`` slots when it does not exist; an existing limit is never changed (operators own it:
  ``prefect gcl update gpu --limit 2`` on a two-GPU box). ``{host}`` in the name gives one limit
  per machine (``gpu-{host}``), the right unit for a Dask cluster with one GPU per node.
* **Retries only for transient I/O.** A corrupt scene fails the same way every time; retrying a
  :class:`~pipelines.errors.SceneError` only delays the report. A network filesystem hiccup
  (``OSError`` that is not "file not found" or "permission denied") often succeeds on retry.
* **Dask without a server.** In embedded mode each Dask worker process would otherwise start its
  own temporary Prefect server (seconds each, and a SQLite writer per worker). We hand the
  workers the flow's own embedded API URL instead.
* **A quiet embedded server.** The temporary server a CLI command starts is configured by
  :func:`embedded_server_settings` (no telemetry heartbeat, a startup timeout that fits a slow
  first start); settings the user made explicitly are kept.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.errors import OrbitwatchError

if TYPE_CHECKING:
    from prefect.settings.legacy import Setting

logger = logging.getLogger(__name__)

#: Default name of the global concurrency limit detectors hold while they run.
GPU_LIMIT = "gpu"

#: OSErrors that say something about the input, not about the moment: never retried.
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)

_ensured: set[tuple[str, str]] = set()
_ensured_lock = threading.Lock()


def gpu_limit_name(template: str = GPU_LIMIT) -> str:
    """Expand ``{host}`` so a cluster can have one limit per GPU machine (``gpu-{host}``)."""
    return template.format(host=socket.gethostname())


def ensure_concurrency_limit(name: str, slots: int = 1) -> None:
    """Create the global concurrency limit ``name`` with ``slots`` slots unless it exists.

    Why create it at all: ``concurrency(..., strict=False)`` silently skips a missing limit, which
    is exactly the oversubscription we are guarding against; we acquire with ``strict=True`` and
    make sure the limit is there first. Once per process per name (it is an API round trip).
    """
    key = (str(get_current_settings().api.url or "ephemeral"), name)  # per API: tests start several
    with _ensured_lock:
        if key in _ensured:
            return
        with get_client(sync_client=True) as client:
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                try:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=max(1, int(slots))))
                except ObjectAlreadyExists:  # another worker won the race: same outcome
                    pass
        _ensured.add(key)


def device_is_gpu(device: str | None) -> bool:
    """Whether detectors asked to run on ``device`` end up on a CUDA device in *this* process."""
    from detectors.registry import resolve_device

    return resolve_device(device).type == "cuda"


@contextlib.contextmanager
def gpu_slot(enabled: bool, limit: str = GPU_LIMIT, slots: int = 1,
             timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold one slot of the GPU limit for the duration of the block (no-op when not enabled).

    Leases are renewed by Prefect while the block runs, so a long scene does not lose its slot;
    a crashed holder's lease expires and the slot comes back.
    """
    if not enabled:
        yield
        return
    from prefect.concurrency.sync import concurrency

    name = gpu_limit_name(limit)
    ensure_concurrency_limit(name, slots)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds):
        yield


def is_transient(exc: BaseException | None) -> bool:
    """True for I/O errors that may succeed on retry; False for anything about the data itself."""
    if exc is None or isinstance(exc, OrbitwatchError):
        return False
    return isinstance(exc, OSError) and not isinstance(exc, _PERMANENT_OS_ERRORS)


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task run only for transient I/O errors."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # an unreadable failure is not something a retry will fix
            return False
    return is_transient(exc if isinstance(exc, BaseException) else None)


#: What to run when the optional Dask support is missing (printed verbatim: no Rich markup).
DASK_INSTALL_HINT = "pip install 'orbitwatch[dask]'"


def require_dask() -> Any:
    """Return ``prefect_dask.DaskTaskRunner``, or raise OrbitwatchError naming the install command.

    Separate from :func:`make_task_runner` so the CLI can check before it starts a server and a
    flow run only to fail on a missing extra.
    """
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # the [dask] extra is optional
        raise OrbitwatchError(f"Dask scale-out needs the dask extra: {DASK_INSTALL_HINT}") from exc
    return DaskTaskRunner


#: distributed's logger that reports a comm closed under it - with its traceback, at INFO
#: (``distributed/batched.py``, ``_background_send``). When the temporary cluster shuts down after a
#: Completed run, the scheduler's stream to a worker that has just exited can close that way
#: (a race: seen in ~1 of 6 runs of ``tests/test_flows_cli_output.py``; dask/distributed#7192), and
#: the user reads a traceback after a run that succeeded. Its errors ("Error in batched write",
#: ERROR) still show.
BATCHED_LOGGER = "distributed.batched"


def quiet_cluster_shutdown() -> None:
    """Raise :data:`BATCHED_LOGGER` to WARNING in this process (the temporary cluster's scheduler
    runs here), unless someone set its level already."""
    batched = logging.getLogger(BATCHED_LOGGER)
    if batched.level in (logging.NOTSET, logging.INFO):  # distributed's own config sets INFO
        batched.setLevel(logging.WARNING)


def make_task_runner(dask_address: str | None = None, dask_workers: int = 0, threads: int = 2) -> Any:
    """Where per-scene tasks run: an existing Dask cluster, a temporary local one, or threads.

    ``dask_address`` wins (``tcp://scheduler:8786``: the cluster someone else runs); otherwise
    ``dask_workers > 0`` starts a throwaway ``LocalCluster`` of single-threaded worker
    *processes* (torch and GDAL release the GIL only partly); otherwise a thread pool in this
    process, which is the cheapest choice for a handful of scenes.
    """
    if dask_address or dask_workers > 0:
        DaskTaskRunner = require_dask()
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        quiet_cluster_shutdown()
        return DaskTaskRunner(cluster_kwargs={"n_workers": int(dask_workers), "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=max(1, int(threads)))


@contextlib.contextmanager
def api_for_workers() -> Iterator[str | None]:
    """Make the current API URL explicit so that tasks shipped to Dask workers reuse it.

    With a real server (``PREFECT_API_URL`` set) nothing changes. In embedded mode the URL of the
    temporary server this process started is put into the settings context, which Prefect
    serialises with every task it sends to Dask; without it each worker process would boot a
    server of its own. (A remote Dask cluster cannot reach 127.0.0.1: run a real server then.)
    """
    if get_current_settings().api.url:
        yield get_current_settings().api.url
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


#: Settings for the temporary (embedded) Prefect server, applied unless the user set them.
#:
#: * Telemetry off: the server's telemetry heartbeat (prefect/server/services/telemetry.py,
#:   ``_fetch_or_set_telemetry_session``) reads and then inserts the ``TELEMETRY_SESSION`` row in
#:   one DEFERRED SQLite transaction. On a new database that insert races the first flow run's
#:   writes; SQLite refuses to upgrade a stale read snapshot to a write lock in WAL mode and
#:   answers "database is locked" at once (the 60 s busy timeout does not apply), and docket
#:   logs the traceback. The heartbeat also logs an ERROR on every offline start.
#: * Startup timeout 120 s instead of 20: creating a new database (migrations, block types)
#:   takes longer than 20 s on a busy two-core machine, and the run then failed before starting.
EMBEDDED_SERVER_DEFAULTS: dict[Setting, Any] = {
    PREFECT_SERVER_ANALYTICS_ENABLED: False,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120,
}


@contextlib.contextmanager
def embedded_server_settings() -> Iterator[None]:
    """Apply :data:`EMBEDDED_SERVER_DEFAULTS` for a block that may start Prefect's temporary server.

    Prefect's ``set_defaults`` keeps any value the user set (environment, profile, .env). Must wrap
    the first Prefect client of the process (the flow call): the server takes its settings when it
    starts and runs until the process exits. No-op with a real server (``PREFECT_API_URL`` set),
    whose settings are its operator's business.
    """
    if get_current_settings().api.url:
        yield
        return
    logger.debug("embedded Prefect server defaults: %s", {s.name: v for s, v in EMBEDDED_SERVER_DEFAULTS.items()})
    with temporary_settings(set_defaults=EMBEDDED_SERVER_DEFAULTS):
        yield
