"""Ground segment flow: ``deliver-alerts`` -- downlinked files in, stored alerts, signed webhooks out.

The work lives in :mod:`pipelines.ground` (owned by the ground engineer): the
:class:`~pipelines.ground.receiver.Receiver` decodes CCSDS packet files (or GeoJSON), de-duplicates
and commits alerts to the SQLite :class:`~pipelines.ground.store.AlertStore`, and the
:class:`~pipelines.ground.webhooks.DeliveryWorker` sends Standard Webhooks to every subscriber.
This flow only sequences the two and reports; two tasks because they fail differently:

* ``ingest-downlink`` is idempotent (files already ingested are skipped by path/size/mtime, alerts
  are keyed by ``alert_id``), so a transient I/O error is safely retried.
* ``send-webhooks`` takes the store's delivery lock; a second delivery worker on the same store
  is a configuration error (StoreError), never retried. Failed HTTP sends are *not* task
  failures: the delivery worker keeps them pending with backoff (or dead-letters them), which the
  report shows. ``mode="once"`` sends what is due and returns (a schedule calls it again);
  ``"drain"`` keeps going until nothing is pending or ``max_seconds`` runs out.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task

from pipelines.flows.resources import retry_transient_only


# ------------------------------------------------------------------------- plain functions
def ingest_folder(inbox: Path, store_path: Path, pattern: str = "*", ack_file: Path | None = None,
                  unresolved: str = "hold") -> dict[str, Any]:
    """Receive every not-yet-ingested file of ``inbox`` into the store; one summed report.

    ``ack_file``: committed alert ids are appended there, which is how the node learns (at its next
    contact, :func:`pipelines.flows.onboard.downlink_contact`) what it may drop from its queue.
    ``unresolved="hold"``: alerts whose scene header has not arrived yet wait for it instead of
    going out under a placeholder scene name.
    """
    from pipelines.ground.receiver import IngestReport, Receiver, file_ack_writer
    from pipelines.ground.store import AlertStore

    total = IngestReport(source=str(inbox))
    files = 0
    on_ack = file_ack_writer(ack_file) if ack_file is not None else None
    with AlertStore(store_path) as store:
        for rep in Receiver(store, on_ack=on_ack, unresolved=unresolved).receive_folder(inbox, pattern):  # type: ignore[arg-type]
            total.add(rep)
            files += 1
    return dict(total.as_dict(), files=files)


def send_webhooks(store_path: Path, mode: str = "drain", max_seconds: float | None = 60.0) -> dict[str, Any]:
    """Run the delivery worker over the store; returns its stats (delivered, retried, dead...)."""
    from pipelines.ground.webhooks import DeliveryWorker

    stats = DeliveryWorker(store_path).run(mode=mode, max_seconds=max_seconds)  # type: ignore[arg-type]
    return asdict(stats)


# ------------------------------------------------------------------------------ tasks
@task(name="ingest-downlink", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient_only)
def ingest_downlink(inbox: str, store: str, pattern: str = "*", ack_file: str | None = None,
                    unresolved: str = "hold") -> dict[str, Any]:
    """Decode + store downlinked files (idempotent, hence retried on transient I/O)."""
    rep = ingest_folder(Path(inbox), Path(store), pattern, Path(ack_file) if ack_file else None, unresolved)
    get_run_logger().info("ingested %d file(s): %d packet(s), %d corrupt, %d new alert(s), %d duplicate(s)",
                          rep["files"], rep["packets"], rep["corrupt"], rep["stored"], rep["duplicates"])
    return rep


@task(name="send-webhooks")
def send_webhooks_task(store: str, mode: str = "drain", max_seconds: float | None = 60.0) -> dict[str, Any]:
    """Deliver pending webhooks; HTTP failures stay pending in the store, they do not fail the task."""
    stats = send_webhooks(Path(store), mode, max_seconds)
    get_run_logger().info("webhooks: %d delivered, %d to retry, %d dead, %d pending",
                          stats["delivered"], stats["retried"], stats["dead"], stats["pending_left"])
    return stats


# ------------------------------------------------------------------------------ flow
@flow(name="deliver-alerts")
def deliver_alerts(inbox: str = "out/downlink", store: str = "out/ground.sqlite", pattern: str = "*",
                   deliver: bool = True, mode: Literal["once", "drain"] = "drain",
                   max_seconds: float = 60.0, ack_file: str | None = None,
                   unresolved: Literal["hold", "placeholder"] = "hold") -> dict[str, Any]:
    """Ingest the downlinked files in ``inbox`` into ``store`` and notify webhook subscribers.

    Subscribers are managed with ``orbitwatch ground subscribe``; with none, delivery is a no-op.
    ``ack_file`` closes the loop with ``downlink-contact`` (the node acks the ids listed there).
    Returns ``{"ingest": {...}, "webhooks": {...} | None}``.
    """
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    ingested = ingest_downlink(inbox, store, pattern, ack_file, unresolved)
    sent = send_webhooks_task(store, mode, max_seconds) if deliver else None
    return {"ingest": ingested, "webhooks": sent}
