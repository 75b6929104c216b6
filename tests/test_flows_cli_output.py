"""What ``orbitwatch flow ...`` prints, as a new user sees it (issue 24, item 6).

* A successful Dask run prints no traceback: the embedded Prefect server's telemetry heartbeat
  used to hit "database is locked" on a new database (see
  :data:`pipelines.flows.resources.EMBEDDED_SERVER_DEFAULTS`).
* Messages that name a command or hold ``[...]`` print verbatim: Rich used to take ``[dask]`` in
  ``pip install 'orbitwatch[dask]'`` for a markup tag and drop it.

The subprocess tests run the real console script with a clean Prefect environment: a PREFECT_HOME
of their own (a new database, like a first run) and no PREFECT_* variable inherited from the test
process (the ``harness`` fixture sets one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
ORBITWATCH = str(Path(sys.executable).with_name("orbitwatch"))
DASK_HINT = "pip install 'orbitwatch[dask]'"


def _clean_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without PREFECT_* settings, Prefect's state in ``prefect_home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(prefect_home), **extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ORBITWATCH, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------ no traceback on success
@pytest.mark.slow
def test_flow_scan_folder_on_dask_workers_succeeds_without_a_traceback(tmp_path: Path) -> None:
    """The command from the issue, on a new Prefect database (where the heartbeat inserts its row)."""
    out = tmp_path / "out"
    res = _run(["flow", "scan-folder", "sample_scenes", "--out", str(out), "--dask-workers", "2"],
               _clean_env(tmp_path / "prefect-home"), timeout=540)
    output = res.stdout + res.stderr
    assert res.returncode == 0, output[-4000:]
    at = output.find("Traceback")
    assert at < 0, output[max(0, at - 1500):at + 6000]
    assert "database is locked" not in output
    report = json.loads(res.stdout)
    n_scenes = len(list((REPO / "sample_scenes").rglob("*.tif")))
    assert report["ok"] and report["failures"] == []
    assert len(report["scenes_ok"]) == n_scenes
    features = json.loads(Path(report["out"]).read_text())["features"]
    assert report["alerts"] == len(features) == sum(r["alerts"] for r in report["results"]) > 0


def test_a_comm_closed_while_the_temporary_cluster_shuts_down_prints_no_traceback() -> None:
    """The race behind an occasional traceback in the test above: distributed reports a stream
    closed under it at INFO with its traceback. Starting a temporary cluster quiets that report in
    this process (where the cluster's scheduler runs); its errors still reach the user."""
    import logging

    from pipelines.flows.resources import BATCHED_LOGGER, make_task_runner

    batched = logging.getLogger(BATCHED_LOGGER)
    kept = batched.level
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    batched.addHandler(handler)
    try:
        batched.setLevel(logging.NOTSET)
        make_task_runner(dask_workers=2)  # the runner only: the cluster starts with the flow
        try:
            raise OSError("stream closed")
        except OSError:
            batched.info("Batched Comm Closed %r", "<TCP (closed)>", exc_info=True)
            batched.error("Error in batched write", exc_info=True)
        assert [r.levelname for r in seen] == ["ERROR"]
        batched.setLevel(logging.DEBUG)  # a level someone chose is left alone
        make_task_runner(dask_workers=2)
        assert batched.level == logging.DEBUG
    finally:
        batched.removeHandler(handler)
        batched.setLevel(kept)


def _settings_left_unset(*accessors: str) -> Any:
    """A settings context in which the given settings were never set by anyone (Prefect defaults).

    ``temporary_settings(restore_defaults=...)`` would not do: it sets them, to the default value.
    """
    from prefect.context import SettingsContext, get_settings_context

    ctx = get_settings_context()
    data = ctx.settings.model_dump(exclude_unset=True)
    for accessor in accessors:
        *parents, field = accessor.split(".")
        node = data
        for name in parents:
            node = node.get(name, {})
        node.pop(field, None)
    return SettingsContext(profile=ctx.profile, settings=type(ctx.settings).model_validate(data))


def test_embedded_server_settings_turn_telemetry_off_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
        temporary_settings,
    )

    from pipelines.flows.resources import embedded_server_settings

    for name in ("PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)  # Prefect re-reads the environment on every copy
    with _settings_left_unset("api.url", "server.analytics_enabled", "server.ephemeral.startup_timeout_seconds"):
        with embedded_server_settings():
            s = get_current_settings()
            assert s.server.analytics_enabled is False
            assert s.server.ephemeral.startup_timeout_seconds == 120
            # What Prefect hands the server subprocess it starts (SubprocessASGIServer).
            env = s.to_environment_variables(exclude_unset=True)
            assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "False"
        with temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: True,
                                         PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 7}):
            with embedded_server_settings():  # the user's explicit choices win
                s = get_current_settings()
                assert s.server.analytics_enabled is True
                assert s.server.ephemeral.startup_timeout_seconds == 7
        with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
            before = get_current_settings()
            with embedded_server_settings():  # a real server: nothing to configure
                assert get_current_settings() is before


# ------------------------------------------------------------------ commands printed verbatim
@pytest.fixture
def no_dask(tmp_path: Path) -> Path:
    """A PYTHONPATH folder whose sitecustomize makes ``dask``, ``distributed`` and ``prefect_dask``
    unimportable: the environment of a user who installed orbitwatch without the [dask] extra."""
    folder = tmp_path / "no-dask"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent("""\
        import sys
        from importlib.abc import MetaPathFinder

        BLOCKED = {"dask", "distributed", "prefect_dask"}


        class _Blocker(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None


        sys.meta_path.insert(0, _Blocker())
        """))
    return folder


def test_missing_dask_extra_prints_the_install_command_verbatim(tmp_path: Path, no_dask: Path) -> None:
    env = _clean_env(tmp_path / "prefect-home", PYTHONPATH=str(no_dask), COLUMNS="40")
    res = _run(["flow", "scan-folder", "sample_scenes", "--out", str(tmp_path / "out"), "--dask-workers", "2"],
               env, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    # Exact line, unwrapped even on a 40-column terminal: the command can be copied as printed.
    assert f"error: Dask scale-out needs the dask extra: {DASK_HINT}" in res.stderr.splitlines(), res.stderr
    assert "Traceback" not in res.stderr
    assert "Starting temporary server" not in res.stderr  # checked before any server or flow run
    assert not (tmp_path / "out").exists()


def test_flow_failure_message_prints_brackets_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from pipelines.errors import OrbitwatchError
    from pipelines.flows.cli import _finish

    class FailedState:
        name = "Failed"
        message = f"Flow run encountered an exception: OrbitwatchError: needs {DASK_HINT} [/]"

        def result(self, raise_on_failure: bool = True) -> Any:
            return OrbitwatchError(f"scene [red]x[/red].tif: needs {DASK_HINT}")

        def is_completed(self) -> bool:
            return False

    with pytest.raises(typer.Exit) as exit_info:
        _finish(FailedState())
    assert exit_info.value.exit_code == 1
    err = capsys.readouterr().err.splitlines()
    assert f"Failed: scene [red]x[/red].tif: needs {DASK_HINT}" in err
    assert f"flow run ended Failed: {FailedState.message}" in err


def test_bad_option_error_prints_brackets_verbatim(tmp_path: Path) -> None:
    from pipelines.flows.cli import flows_app

    res = CliRunner().invoke(flows_app, ["scan-folder", "sample_scenes", "--out", str(tmp_path / "out"),
                                         "-O", "bad[x]"])
    assert res.exit_code == 2, res.output
    assert "option 'bad[x]' is not DETECTOR.KEY=VALUE" in res.stderr
