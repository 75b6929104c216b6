"""A batch of scenes -> one alerts file, resumable and crash-safe.

Why a manifest: a batch over hundreds of scenes can be killed (power budget, SIGKILL, a full
disk). Each finished scene's result is written atomically to ``<out>.parts/`` keyed by a
fingerprint of (file, size, mtime, detectors); the alerts file itself is rewritten atomically
from all parts after every scene. Run again, finished scenes are skipped and every alert ends
up in the output exactly once.

Why failures are recorded too (``<out>.parts/failed/``): a scene that failed (ran past its time
budget, was too large, could not be read) fails again the same way, and a resumed batch must not
spend its energy on it every time. It is reported again, from the record, unless the run asks
for ``retry_failed`` or the file or the budgets changed.

Why a lock (``<out>.lock``): two scans on the same output would interleave their parts and
rewrite each other's alerts file; the second one is refused before it touches anything. The lock
is an OS file lock (``filelock``), so a killed holder releases it with its last file descriptor.

A full disk (or any failed write) stops the batch: the alerts file being replaced is left as it
was (writes go to a temporary file that is renamed only once complete), and the report says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.alerts.model import Alert, feature_collection
from pipelines.detect import ScanOptions, SceneResult, scan_scene
from pipelines.errors import LandMaskError, OrbitwatchError, OutputLockedError, OutputWriteError, SceneError
from pipelines.scene.reader import SIDECAR_SUFFIX, check_scene_path

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
FAILED_DIR = "failed"  #: under the parts folder: one record per failed scene fingerprint


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + fsync + os.replace: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(slots=True)
class SceneFailure:
    path: str
    error: str  # exception class name
    reason: str
    #: True when this failure was read back from an earlier run's record, not retried now.
    earlier: bool = False


@dataclass(slots=True)
class BatchReport:
    out: str
    scenes_ok: list[str] = field(default_factory=list)
    scenes_skipped: list[str] = field(default_factory=list)  # resumed: done in an earlier run
    failures: list[SceneFailure] = field(default_factory=list)
    alerts: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    #: Why the batch stopped before its last scene (an output could not be written); None if it did not.
    aborted: str | None = None
    scenes_not_run: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and self.aborted is None

    def to_json(self) -> dict[str, Any]:
        return {
            "out": self.out, "ok": self.ok, "alerts": self.alerts, "by_kind": self.by_kind,
            "scenes_ok": self.scenes_ok, "scenes_skipped": self.scenes_skipped,
            "failures": [asdict(f) for f in self.failures], "results": self.results,
            "aborted": self.aborted, "scenes_not_run": self.scenes_not_run,
        }


def scene_fingerprint(path: Path, options: ScanOptions) -> str:
    """Same file (size, mtime; every file of a product) + same detector choice -> same
    fingerprint -> safe to reuse. A ``--acquired`` time is part of it (it can change the alerts).

    The detector choice includes what "no choice" means (the defaults), every detector's version
    and the shipped weights' recorded checksums: retrained weights or new defaults redo a scene.
    """
    from pipelines.detect import DEFAULT_DETECTORS
    from pipelines.scene.products import scene_identity

    # A plain file: [path, size, mtime] as always; a product: every file of it (scene_identity).
    acquired = getattr(options, "acquired", None)
    key = json.dumps([*scene_identity(path), list(options.detectors or []),
                      options.tile_size, options.overlap, _detector_versions(),
                      None if options.detectors else {k: list(v) for k, v in DEFAULT_DETECTORS.items()},
                      _weights_checksums()]
                     + ([_options_key(options.detector_options)] if options.detector_options else [])
                     + ([["--acquired", acquired.isoformat()]] if acquired is not None else [])
                     + _radiometry_key(options)
                     + _land_key(options),
                     default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _land_key(options: ScanOptions) -> list[Any]:
    """The land handling as it enters the fingerprint: the mask by path and content (an edited
    mask redoes the scenes), ``--coastline`` when given. Nothing for the defaults, so that
    fingerprints of scans without either stay what they were."""
    key: list[Any] = []
    mask = getattr(options, "land_mask", None)
    if mask is not None:
        from pipelines.scene.landmask import load_land_mask

        key.append(["--land-mask", *load_land_mask(mask).identity()])
    if getattr(options, "coastline", False):
        key.append(["--coastline"])
    return key


def _radiometry_key(options: ScanOptions) -> list[Any]:
    """``--radiometry`` as it enters the fingerprint (it changes the pixels the detectors see);
    nothing for "auto", so that fingerprints of scans without it stay what they were."""
    r = str(getattr(options, "radiometry", "auto")).strip().lower()
    return [] if r == "auto" else [["--radiometry", r]]


def _options_key(opts: Any) -> Any:
    """Detector options as they enter the fingerprint: a value naming an existing file (other
    weights, say) also carries its size and mtime, so replacing that file redoes the scenes."""
    if isinstance(opts, dict):
        return {str(k): _options_key(v) for k, v in sorted(opts.items(), key=lambda kv: str(kv[0]))}
    if isinstance(opts, (list, tuple)):
        return [_options_key(v) for v in opts]
    if isinstance(opts, str) and len(opts) < 4096:
        try:
            p = Path(opts)
            if p.is_file():
                st = p.stat()
                return [str(p.resolve()), st.st_size, st.st_mtime_ns]
        except OSError:
            pass
    return opts


def _detector_versions() -> dict[str, str]:
    from detectors.registry import _FACTORIES, list_detectors

    out = {}
    for name in list_detectors():
        # A class attribute where the detector has one; a detector whose version depends on its
        # weights (an instance property) gives its code revision instead (`code_version`) - the
        # weights themselves are in _weights_checksums. Never a property's repr: it changes per
        # process and would redo every scene on resume.
        v = getattr(_FACTORIES[name], "version", "")
        out[name] = v if isinstance(v, str) else str(getattr(_FACTORIES[name], "code_version", ""))
    return out


def _weights_checksums() -> dict[str, str]:
    """The recorded sha256 of every shipped weights file (tiny text files; no hashing of weights)."""
    import detectors

    wdir = Path(detectors.__file__).resolve().parent / "weights"
    out = {}
    for f in sorted(wdir.glob("*.sha256")):
        try:
            out[f.name] = f.read_text(encoding="utf-8").split()[0]
        except (OSError, IndexError):
            out[f.name] = ""
    return out


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def clear_parts(pdir: Path) -> None:
    """Forget every finished scene and every failure record of a batch (a run without resume)."""
    for p in list(pdir.glob("*.json")) + list((pdir / FAILED_DIR).glob("*.json")):
        p.unlink()


def lock_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``<out>.lock`` for a whole batch; raise OutputLockedError at once if another holds it.

    The holder's pid, host and start time go to ``<out>.lock.json`` so that the refusal can say
    who is writing (the lock file itself is only the lock).
    """
    from filelock import FileLock, Timeout

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = out.with_name(out.name + ".lock.json")
    lock = FileLock(str(lock_path(out)), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = ""
        try:
            doc = json.loads(info.read_text(encoding="utf-8"))
            holder = f" (pid {doc.get('pid')} on {doc.get('host')}, since {doc.get('since')})"
        except (OSError, ValueError):
            pass
        raise OutputLockedError(f"another orbitwatch scan is writing this output{holder}; wait for it to "
                                "finish, or scan into another --out", out) from None
    try:
        with contextlib.suppress(OSError):
            info.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        yield
    finally:
        with contextlib.suppress(OSError):
            info.unlink()
        lock.release()


def budget_key(options: ScanOptions) -> dict[str, Any]:
    """The budgets a failure was met under: a failure recorded under other budgets is retried."""
    return {"max_megapixels": options.max_megapixels, "scene_timeout_s": options.scene_timeout_s}


def record_failure(pdir: Path, fp: str, fail: SceneFailure, options: ScanOptions) -> None:
    """Remember a failed scene (by fingerprint) so that a resumed batch does not redo it unasked."""
    doc = {"manifest_version": MANIFEST_VERSION, "path": fail.path, "error": fail.error,
           "reason": fail.reason, "budgets": budget_key(options),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        atomic_write_text(pdir / FAILED_DIR / f"{fp}.json", json.dumps(doc))
    except OSError as exc:  # only a convenience for resume: never worth losing the batch over
        log.warning("could not record the failure of %s: %s", fail.path, exc)


def earlier_failure(pdir: Path, fp: str, options: ScanOptions) -> SceneFailure | None:
    """The recorded failure of this fingerprint under the same budgets, or None."""
    f = pdir / FAILED_DIR / f"{fp}.json"
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if doc.get("manifest_version") != MANIFEST_VERSION or doc.get("budgets") != budget_key(options):
        return None
    return SceneFailure(str(doc.get("path", "")), str(doc.get("error", "")),
                        f"{doc.get('reason', '')} [failed in an earlier run at {doc.get('when', '?')}; "
                        "not retried: pass --retry-failed to try it again]", earlier=True)


def clear_failure(pdir: Path, fp: str) -> None:
    (pdir / FAILED_DIR / f"{fp}.json").unlink(missing_ok=True)


def _load_parts(pdir: Path) -> dict[str, dict[str, Any]]:
    parts: dict[str, dict[str, Any]] = {}
    if not pdir.is_dir():
        return parts
    for p in sorted(pdir.glob("*.json")):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            if doc.get("manifest_version") == MANIFEST_VERSION:
                parts[p.stem] = doc
        except (OSError, json.JSONDecodeError) as exc:  # a torn part is redone, never trusted
            log.warning("ignoring unreadable part %s: %s", p, exc)
    return parts


def write_alerts(out: Path, alerts: Iterable[Alert]) -> int:
    """Write a FeatureCollection atomically, each alert_id once (first occurrence wins)."""
    seen: set[str] = set()
    unique: list[Alert] = []
    for a in alerts:
        if a.alert_id not in seen:
            seen.add(a.alert_id)
            unique.append(a)
    atomic_write_text(out, json.dumps(feature_collection(unique), indent=1) + "\n")
    return len(unique)


def _assemble(out: Path, parts: dict[str, dict[str, Any]]) -> list[Alert]:
    alerts: list[Alert] = []
    for key in sorted(parts, key=lambda k: parts[k]["path"]):
        alerts.extend(Alert.from_feature(f) for f in parts[key]["features"])
    write_alerts(out, alerts)
    return alerts


def run_batch(
    scenes: list[Path],
    out: Path,
    options: ScanOptions | None = None,
    resume: bool = True,
    on_scene_start: Callable[[Path, int, int], None] | None = None,
    on_scene_done: Callable[[Path, SceneResult | SceneFailure], None] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    retry_failed: bool = False,
    quicklook_dir: Path | None = None,
) -> BatchReport:
    """Scan every scene; a failing scene is recorded with its reason and the batch goes on.

    Raises OutputLockedError (before touching anything) when another batch writes ``out``. A
    scene that failed in an earlier run is reported from its record, not redone, unless
    ``retry_failed``. A failed write ends the batch: ``report.aborted`` says why, and the alerts
    file keeps what it held. ``quicklook_dir``: a PNG per scene there with its detections drawn
    (also for resumed scenes whose PNG is missing); a quicklook that cannot be made is a note in
    the scene's summary, never a failure of the scene.
    """
    options = options or ScanOptions()
    out = Path(out)
    with output_lock(out):
        return _run_batch(scenes, out, options, resume, on_scene_start, on_scene_done, on_tile, retry_failed,
                          Path(quicklook_dir) if quicklook_dir is not None else None)


def quicklook_name(path: Path, fp: str, taken: set[str]) -> str:
    """``<stem>.png``, or ``<stem>-<fingerprint>.png`` when another scene of the batch has that stem."""
    name = f"{path.stem}.png"
    if name in taken:
        name = f"{path.stem}-{fp[:8]}.png"
    taken.add(name)
    return name


def write_quicklook(path: Path, features: list[dict[str, Any]], png: Path,
                    acquired: datetime | None = None, radiometry: str = "auto") -> str | None:
    """Render one scene's quicklook; returns None, or the reason it could not be made.

    ``acquired`` / ``radiometry``: the scan's ``--acquired`` / ``--radiometry``, so that a scene
    opens here as it did for the scan.
    """
    from pipelines.scene import open_scene
    from pipelines.scene.quicklook import render_quicklook

    try:
        with open_scene(path, acquired=acquired, radiometry=radiometry) as scene:
            render_quicklook(scene, [Alert.from_feature(f) for f in features], png)
    except OrbitwatchError as exc:
        log.warning("no quicklook for %s: %s", path, exc)
        return f"no quicklook: {exc}"
    return None


def _with_quicklook(summary: dict[str, Any], path: Path, features: list[dict[str, Any]], png: Path,
                   acquired: datetime | None, keep_existing: bool = False,
                   radiometry: str = "auto") -> dict[str, Any]:
    """``summary`` plus its ``quicklook`` path (None, with the reason in its notes, when it could
    not be made). ``keep_existing``: a resumed scene's PNG from the earlier run is not redrawn."""
    why = None if keep_existing and png.exists() else write_quicklook(path, features, png, acquired, radiometry)
    out = dict(summary, quicklook=None if why else str(png))
    if why:
        out["notes"] = [*out.get("notes", []), why]
    return out


def _run_batch(scenes: list[Path], out: Path, options: ScanOptions, resume: bool,
               on_scene_start: Callable[[Path, int, int], None] | None,
               on_scene_done: Callable[[Path, SceneResult | SceneFailure], None] | None,
               on_tile: Callable[[int, int], None] | None, retry_failed: bool,
               quicklook_dir: Path | None) -> BatchReport:
    pdir = parts_dir(out)
    ql_names: set[str] = set()
    report = BatchReport(out=str(out))
    try:
        pdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create the manifest folder {pdir}: {exc.strerror or exc}", out) from exc
    parts = _load_parts(pdir) if resume else {}
    if not resume:
        clear_parts(pdir)
    wanted: dict[str, dict[str, Any]] = {}
    for i, path in enumerate(scenes):
        path = Path(path)
        if on_scene_start:
            on_scene_start(path, i, len(scenes))
        try:
            if not path.name.endswith(SIDECAR_SUFFIX):
                check_scene_path(path, allow_dir=True)  # a dangling link or loop: say which, before stat() fails
            fp = scene_fingerprint(path, options)
        except (SceneError, LandMaskError) as exc:  # LandMaskError: the mask file went away mid-batch
            fail = SceneFailure(str(path), type(exc).__name__, str(exc))
            report.failures.append(fail)
            if on_scene_done:
                on_scene_done(path, fail)
            continue
        except OSError as exc:
            fail = SceneFailure(str(path), type(exc).__name__, f"{path}: cannot stat: {exc.strerror or exc}")
            report.failures.append(fail)
            if on_scene_done:
                on_scene_done(path, fail)
            continue
        if fp in parts:
            wanted[fp] = parts[fp]
            report.scenes_skipped.append(str(path))
            summary = parts[fp]["summary"]
            if quicklook_dir is not None:
                summary = _with_quicklook(summary, path, parts[fp]["features"],
                                          quicklook_dir / quicklook_name(path, fp, ql_names), options.acquired,
                                          keep_existing=True, radiometry=options.radiometry)
            report.results.append(summary)
            continue
        if resume and not retry_failed:
            earlier = earlier_failure(pdir, fp, options)
            if earlier is not None:
                report.failures.append(earlier)
                if on_scene_done:
                    on_scene_done(path, earlier)
                continue
        try:
            res = scan_scene(path, options, on_tile=on_tile)
        except OrbitwatchError as exc:
            fail = SceneFailure(str(path), type(exc).__name__, str(exc))
        except Exception as exc:  # unexpected: keep the batch alive, keep the traceback in the log
            log.error("unexpected error on %s:\n%s", path, traceback.format_exc())
            fail = SceneFailure(str(path), type(exc).__name__, f"{path}: unexpected {type(exc).__name__}: {exc}")
        else:
            summary = res.summary()
            doc = {"manifest_version": MANIFEST_VERSION, "path": str(path), "summary": summary,
                   "features": [a.to_feature() for a in res.alerts]}
            try:
                atomic_write_text(pdir / f"{fp}.json", json.dumps(doc))
                wanted[fp] = doc
                # Keep the alerts file current after every scene: nothing produced is lost to a crash.
                _assemble(out, wanted)
            except OSError as exc:
                wanted.pop(fp, None)
                (pdir / f"{fp}.json").unlink(missing_ok=True)  # no part without its alerts in the file
                _abort(report, out, exc, scenes[i:])
                break
            clear_failure(pdir, fp)
            if quicklook_dir is not None:
                summary = _with_quicklook(summary, path, doc["features"],
                                          quicklook_dir / quicklook_name(path, fp, ql_names), options.acquired,
                                          radiometry=options.radiometry)
            report.scenes_ok.append(str(path))
            report.results.append(summary)
            if on_scene_done:
                on_scene_done(path, res)
            continue
        record_failure(pdir, fp, fail, options)
        report.failures.append(fail)
        if on_scene_done:
            on_scene_done(path, fail)
    try:
        alerts = _assemble(out, wanted)
    except OSError as exc:
        if report.aborted is None:
            _abort(report, out, exc, [])
        alerts = [a for doc in wanted.values() for a in (Alert.from_feature(f) for f in doc["features"])]
    report.alerts = len({a.alert_id for a in alerts})
    for a in alerts:
        report.by_kind[a.kind] = report.by_kind.get(a.kind, 0) + 1
    return report


def _alerts_in_file(out: Path) -> int | None:
    try:
        return len(json.loads(out.read_text(encoding="utf-8")).get("features", []))
    except (OSError, ValueError, AttributeError):
        return None


def _abort(report: BatchReport, out: Path, exc: OSError, not_run: list[Path]) -> None:
    """Stop the batch on a failed write and say what the alerts file still holds."""
    held = _alerts_in_file(out)
    kept = (f"{out} is unchanged ({held} alert(s) from the scenes finished before)" if held is not None
            else f"{out} was not written")
    report.aborted = (f"cannot write the outputs of {out} ({exc.strerror or exc}); {kept}; the batch stopped "
                      f"with {len(not_run)} scene(s) not finished: free space and run the same command "
                      "again to resume")
    report.scenes_not_run = [str(p) for p in not_run]
    log.error("%s", report.aborted)
