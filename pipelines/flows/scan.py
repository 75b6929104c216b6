"""Prefect flows over scene bundles: ``scan-scene`` (one bundle) and ``scan-folder`` (a batch).

Flows orchestrate; the work is :func:`pipelines.detect.scan_scene` and the manifest helpers of
:mod:`pipelines.batch`. Tasks receive *paths* and return small dicts (alert features and counts),
never image arrays, so they can run in threads, on Dask workers or be cached and shown in the UI.

Why two tasks per scene:

* ``detect-scene`` is the expensive part and is **cached**: its key is
  :func:`pipelines.batch.scene_fingerprint` (resolved path, size, mtime, detector choice, tile
  options and every detector's version). Same scene + same detectors -> same alerts, whatever the
  output folder; a new detector version or a touched file recomputes. It holds the GPU slot
  (:mod:`pipelines.flows.resources`) and retries only transient I/O errors.
* ``write-scene-alerts`` is cheap and never cached: it (re)writes the per-scene GeoJSON and the
  batch manifest part, so deleting an output folder and rerunning rebuilds it from the cache.

``scan-folder`` is resumable the same way ``orbitwatch scan`` is, and shares its manifest format:
a scene whose manifest part exists in ``<out_dir>/alerts.geojson.parts/`` is not recomputed.

Final state of ``scan-folder`` (decided here, documented in the README): a batch in which some
scenes fail still ends **Completed**, with ``ok: false`` and every failure (path, error class,
reason) in the returned report, in ``<out_dir>/report.json`` and in a table artifact -- one bad
scene among hundreds must not page anybody or hide the good alerts. It ends **Failed** when scenes
were found and *none* could be scanned (something systemic: detectors, disk, device), or, with
``strict=True``, when any scene failed.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_table_artifact
from prefect.context import TaskRunContext
from prefect.futures import PrefectFuture, wait
from prefect.states import Failed, State

from pipelines.alerts.model import Alert
from pipelines.batch import (
    MANIFEST_VERSION,
    SceneFailure,
    atomic_write_text,
    clear_failure,
    clear_parts,
    earlier_failure,
    parts_dir,
    output_lock,
    record_failure,
    scene_fingerprint,
    write_alerts,
)
from pipelines.detect import DEFAULT_MAX_MEGAPIXELS, ScanOptions
from pipelines.detect import scan_scene as detect_scene_alerts
from pipelines.errors import OrbitwatchError
from pipelines.flows.resources import (
    GPU_LIMIT,
    api_for_workers,
    device_is_gpu,
    gpu_slot,
    make_task_runner,
    retry_transient_only,
)

#: Bumped when what ``detect-scene`` returns changes shape: old cache entries are then ignored.
CACHE_FORMAT = "v1"
ALERTS_NAME = "alerts.geojson"
REPORT_NAME = "report.json"
SCENES_DIR = "scenes"
QUICKLOOKS_DIR = "quicklooks"
#: Longest edge of the JPEG a quicklook artifact carries (the PNG on disk is full quicklook size).
ARTIFACT_SIDE = 768

#: Seconds past ``scene_timeout`` after which Prefect itself times the detect task out. The scan's
#: own budget (checked between tile batches, see pipelines.detect.Deadline) normally ends it first
#: with a clear error; this backstop is for a task stuck where that check never runs.
TASK_TIMEOUT_GRACE_S = 60.0


# ------------------------------------------------------------------------- plain functions
def scan_options(detectors: list[str] | None = None, device: str = "auto", tile_size: int = 2048,
                 overlap: int | None = None, detector_options: dict[str, dict[str, Any]] | None = None,
                 max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS,
                 scene_timeout: float | None = None, acquired: str | None = None,
                 land_mask: str | None = None, coastline: bool = False, radiometry: str = "auto") -> ScanOptions:
    """Flow parameters -> ScanOptions, validating detector names, options, budgets and the land
    mask before any task is submitted (a bad one fails the flow run once, not once per scene).

    ``max_megapixels`` 0 or None: no pixel budget; ``scene_timeout`` None: no time budget;
    ``acquired``: ISO 8601 time for scenes that record none (as ``orbitwatch scan --acquired``);
    ``land_mask``: a GeoJSON or GeoTIFF land mask for SAR scenes (``--land-mask``), ``coastline``:
    the packaged coastline without one (``--coastline``; off by default); ``radiometry``: how SAR
    pixels encode backscatter, auto / intensity / amplitude / db / display (``--radiometry``).
    """
    from pipelines.scene.acquisition import parse_user_time

    options = ScanOptions(detectors=list(detectors) if detectors else None, device=device,
                          tile_size=tile_size, overlap=overlap, detector_options=detector_options or None,
                          max_megapixels=max_megapixels or None, scene_timeout_s=scene_timeout,
                          acquired=parse_user_time(acquired), land_mask=str(land_mask) if land_mask else None,
                          coastline=coastline, radiometry=radiometry)
    options.validate()
    return options


def _detect_task(options: ScanOptions) -> Any:
    """``detect-scene``, with Prefect's own timeout as a backstop when the scan has a time budget."""
    if options.scene_timeout_s is None:
        return detect_scene
    return detect_scene.with_options(timeout_seconds=options.scene_timeout_s + TASK_TIMEOUT_GRACE_S)


def scene_geojson_path(scene: Path, out_dir: Path, root: Path | None = None) -> Path:
    """Where a scene's own GeoJSON goes: ``<out_dir>/scenes/<path relative to root>.geojson``.

    Mirroring the relative path keeps two ``scene.tif`` files in different sub-folders apart.
    """
    rel = Path(scene.name)
    if root is not None and root.is_dir():
        try:
            rel = scene.resolve().relative_to(root.resolve())
        except ValueError:
            pass
    if not rel.name:  # the root is itself the scene (a SAFE folder given as scene_dir)
        rel = Path(scene.name)
    return out_dir / SCENES_DIR / rel.with_suffix(".geojson")


def _detect_cache_key(ctx: TaskRunContext, params: dict[str, Any]) -> str | None:
    """Cache key of ``detect-scene``: the batch fingerprint (file + detectors + versions)."""
    try:
        fp = scene_fingerprint(Path(params["path"]), params["options"])
    except OSError:
        return None  # cannot stat: no caching; the task itself reports the error
    return f"orbitwatch-detect-{CACHE_FORMAT}-{fp}"


def _detect_run_name() -> str:
    """``detect-<file name>``: the full path makes the UI unreadable."""
    from prefect.runtime import task_run

    return f"detect-{Path(str(task_run.parameters.get('path', 'scene'))).name}"


def quicklook_path(geojson: Path) -> Path:
    """``<out_dir>/scenes/<rel>.geojson`` -> ``<out_dir>/quicklooks/<rel>.png`` (same mirroring)."""
    parts = list(geojson.parts)
    if SCENES_DIR in parts:
        i = len(parts) - 1 - parts[::-1].index(SCENES_DIR)
        parts[i] = QUICKLOOKS_DIR
    return Path(*parts).with_suffix(".png")


def publish_quicklook(scene_path: str, features: list[dict[str, Any]], png: Path,
                      acquired: datetime | None = None, radiometry: str = "auto") -> str | None:
    """Render the quicklook PNG and show it as a Prefect image artifact; returns None or why not.

    The artifact carries a JPEG of at most ARTIFACT_SIDE px as a data URL: Prefect's image
    artifacts take a URL, and the node's files are not served to the UI.
    """
    import base64
    import io
    import re

    from PIL import Image

    from pipelines.batch import write_quicklook

    why = write_quicklook(Path(scene_path), features, png, acquired, radiometry)
    if why:
        return why
    try:
        with Image.open(png) as im:
            im.thumbnail((ARTIFACT_SIDE, ARTIFACT_SIDE))
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="JPEG", quality=80)
        key = "quicklook-" + (re.sub(r"[^a-z0-9-]+", "-", Path(scene_path).stem.lower()).strip("-") or "scene")
        create_image_artifact(image_url="data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(),
                              key=key[:100], description=f"{Path(scene_path).name}: {len(features)} alert(s); "
                                                         f"full size: {png}")
    except OSError as exc:  # the PNG stands; only its artifact is missing
        return f"quicklook written to {png} but not shown as an artifact: {exc}"
    return None


def write_scene_outputs(detected: dict[str, Any], geojson: Path, manifest: Path | None,
                        fingerprint: str | None, quicklook: bool = False,
                        acquired: datetime | None = None, radiometry: str = "auto") -> dict[str, Any]:
    """Write one scene's GeoJSON (and its batch manifest part) atomically; return a small summary.

    ``quicklook``: also the scene's PNG (``<out_dir>/quicklooks/``) and its Prefect image artifact
    (``acquired`` / ``radiometry``: the scan's, to open the scene again as the scan did).
    """
    alerts = [Alert.from_feature(f) for f in detected["features"]]
    n = write_alerts(geojson, alerts)
    summary = dict(detected["summary"], geojson=str(geojson), alerts=n)
    if quicklook:
        png = quicklook_path(geojson)
        why = publish_quicklook(detected["summary"]["path"], detected["features"], png, acquired, radiometry)
        summary["quicklook"] = None if why else str(png)
        if why:
            summary["notes"] = [*summary.get("notes", []), why]
    if manifest is not None and fingerprint is not None:
        doc = {"manifest_version": MANIFEST_VERSION, "path": detected["summary"]["path"],
               "summary": summary, "features": detected["features"]}
        atomic_write_text(parts_dir(manifest) / f"{fingerprint}.json", json.dumps(doc))
    return summary


def _by_kind(features: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in features:
        k = f["properties"]["kind"]
        out[k] = out.get(k, 0) + 1
    return out


def merge_parts(out: Path, fingerprints: list[str]) -> dict[str, Any]:
    """Rewrite the batch alerts file from exactly this batch's manifest parts (each alert once).

    Only the parts of scenes in *this* batch count, so a scene removed from the folder (or a
    part left by an older detector version) does not leak stale alerts into the output.
    """
    pdir = parts_dir(out)
    docs = []
    for fp in fingerprints:
        docs.append(json.loads((pdir / f"{fp}.json").read_text(encoding="utf-8")))
    alerts: list[Alert] = []
    for doc in sorted(docs, key=lambda d: d["path"]):
        alerts.extend(Alert.from_feature(f) for f in doc["features"])
    n = write_alerts(out, alerts)
    kinds: dict[str, int] = {}
    seen: set[str] = set()
    for a in alerts:
        if a.alert_id not in seen:
            seen.add(a.alert_id)
            kinds[a.kind] = kinds.get(a.kind, 0) + 1
    return {"path": str(out), "alerts": n, "by_kind": kinds}


# ------------------------------------------------------------------------------ tasks
@task(name="plan-scenes", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient_only)
def plan_scenes(scene_dir: str, out_dir: str, options: ScanOptions, resume: bool,
                retry_failed: bool = False) -> dict[str, Any]:
    """List the bundles and split them into already-done (manifest part present) and to-do.

    Returns paths and fingerprints only. A scene that cannot even be stat'ed is a failure of that
    scene, not of the plan; so is a scene that failed in an earlier run under the same budgets
    (reported from its record, not redone, unless ``retry_failed``).
    """
    from pipelines.scene import find_scenes

    root = Path(scene_dir)
    out = Path(out_dir) / ALERTS_NAME
    pdir = parts_dir(out)
    if not resume and pdir.is_dir():
        clear_parts(pdir)
    todo, done, failures = [], [], []
    for path in find_scenes(root):
        try:
            fp = scene_fingerprint(path, options)
        except OSError as exc:
            failures.append({"path": str(path), "error": type(exc).__name__,
                             "reason": f"{path}: cannot stat: {exc.strerror or exc}"})
            continue
        item = {"path": str(path), "fingerprint": fp,
                "geojson": str(scene_geojson_path(path, Path(out_dir), root))}
        part = pdir / f"{fp}.json"
        if resume and part.is_file() and Path(item["geojson"]).is_file() and _part_ok(part):
            done.append(item)
            continue
        earlier = earlier_failure(pdir, fp, options) if resume and not retry_failed else None
        if earlier is not None:
            failures.append({"path": str(path), "error": earlier.error, "reason": earlier.reason})
        else:
            todo.append(item)
    return {"todo": todo, "done": done, "failures": failures}


def _part_ok(part: Path) -> bool:
    try:
        return json.loads(part.read_text(encoding="utf-8")).get("manifest_version") == MANIFEST_VERSION
    except (OSError, json.JSONDecodeError):  # a torn part is redone, never trusted
        return False


@task(name="detect-scene", cache_key_fn=_detect_cache_key, retries=2, retry_delay_seconds=5,
      retry_condition_fn=retry_transient_only, task_run_name=_detect_run_name)
def detect_scene(path: str, options: ScanOptions, gpu_exclusive: bool | None = None,
                 gpu_limit: str = GPU_LIMIT, gpu_slots: int = 1) -> dict[str, Any]:
    """Tiles -> detectors -> alerts for one bundle; returns GeoJSON features + a summary.

    ``gpu_exclusive=None`` holds the GPU slot only when the detectors land on CUDA here (a CPU
    scan must not be serialised: that is what Dask workers are for); ``True`` always holds it.
    """
    logger = get_run_logger()
    exclusive = device_is_gpu(options.device) if gpu_exclusive is None else bool(gpu_exclusive)
    with gpu_slot(exclusive, gpu_limit, gpu_slots):
        res = detect_scene_alerts(path, options)
    features = [a.to_feature() for a in res.alerts]
    logger.info("%s: %d alert(s) from %d tile(s) in %.2f s (%s)", res.scene, len(features), res.n_tiles,
                res.seconds, ", ".join(res.detectors))
    summary = dict(res.summary(), by_kind=_by_kind(features))
    return {"summary": summary, "features": features}


@task(name="write-scene-alerts", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient_only)
def write_scene_alerts(detected: dict[str, Any], geojson: str, manifest: str | None = None,
                       fingerprint: str | None = None, quicklook: bool = False,
                       acquired: datetime | None = None, radiometry: str = "auto") -> dict[str, Any]:
    """Persist one scene's alerts (GeoJSON + manifest part, and its quicklook); return its path and counts."""
    return write_scene_outputs(detected, Path(geojson), Path(manifest) if manifest else None, fingerprint,
                               quicklook, acquired, radiometry)


@task(name="merge-alerts", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient_only)
def merge_alerts(out: str, fingerprints: list[str]) -> dict[str, Any]:
    """One FeatureCollection for the whole batch, from the manifest parts."""
    return merge_parts(Path(out), fingerprints)


# ------------------------------------------------------------------------------ flows
@flow(name="scan-scene", log_prints=False)
def scan_scene(scene: str, out_dir: str = "out/flows", detectors: list[str] | None = None,
               device: str = "auto", tile_size: int = 2048, overlap: int | None = None,
               gpu_exclusive: bool | None = None, gpu_limit: str = GPU_LIMIT,
               detector_options: dict[str, dict[str, Any]] | None = None,
               max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS,
               scene_timeout: float | None = None, quicklook: bool = True,
               acquired: str | None = None, land_mask: str | None = None,
               coastline: bool = False, radiometry: str = "auto") -> dict[str, Any]:
    """Scan one scene bundle and write ``<out_dir>/scenes/<stem>.geojson``.

    ``detector_options``: keyword options per detector name, e.g.
    ``{"sar-fused": {"learned": {"fine_threshold": null}}}`` (``orbitwatch detectors`` lists them).
    ``max_megapixels`` (0: none) and ``scene_timeout`` (seconds, None: none) are the scene's pixel
    and time budgets, as ``orbitwatch scan --max-megapixels / --scene-timeout``. ``quicklook``:
    a PNG with the detections drawn in ``<out_dir>/quicklooks/`` and as an image artifact.
    ``acquired``: ISO 8601 acquisition time for a scene that records none (``--acquired``).
    ``land_mask``: GeoJSON / GeoTIFF land mask for SAR scenes (``--land-mask``); ``coastline``:
    without one, drop SAR detections deep inland per the packaged coastline (``--coastline``; off by default).
    ``radiometry``: how SAR pixels encode backscatter, auto / intensity / amplitude / db / display
    (``--radiometry``; see :mod:`pipelines.scene.radiometry`).

    Returns ``{"path", "scene", "kind", "geojson", "alerts", "by_kind", "tiles", ...}``. A bad
    bundle fails the flow run (there is nothing else it could report).
    """
    logger = get_run_logger()
    options = scan_options(detectors, device, tile_size, overlap, detector_options, max_megapixels, scene_timeout,
                           acquired, land_mask, coastline, radiometry)
    detected = _detect_task(options)(scene, options, gpu_exclusive=gpu_exclusive, gpu_limit=gpu_limit)
    summary = write_scene_alerts(detected, str(scene_geojson_path(Path(scene), Path(out_dir))), quicklook=quicklook,
                                 acquired=options.acquired, radiometry=options.radiometry)
    logger.info("%s: %d alert(s) -> %s", summary["scene"], summary["alerts"], summary["geojson"])
    return summary


@flow(name="scan-scenes")
def scan_scenes(items: list[dict[str, Any]], out: str, options: ScanOptions,
                gpu_exclusive: bool | None = None, gpu_limit: str = GPU_LIMIT,
                gpu_slots: int = 1, quicklook: bool = False) -> list[dict[str, Any]]:
    """Fan out: one detect + write per scene on this flow's task runner; never raises per scene.

    A subflow only so that ``scan-folder`` can pick its task runner (threads or Dask) from its
    parameters at run time. Returns one ``{"path", "ok", "summary" | "error", "reason"}`` per item.
    """
    logger = get_run_logger()
    # All detects first: in a thread pool a writer waiting on its detect holds a thread, so
    # interleaving them would halve the parallelism.
    detect = _detect_task(options)
    detects = [detect.submit(item["path"], options, gpu_exclusive=gpu_exclusive,
                             gpu_limit=gpu_limit, gpu_slots=gpu_slots) for item in items]
    pending: list[tuple[dict[str, Any], PrefectFuture[Any], PrefectFuture[Any]]] = [
        (item, det, write_scene_alerts.submit(det, item["geojson"], out, item["fingerprint"], quicklook,
                                                   options.acquired, options.radiometry))
        for item, det in zip(items, detects)]
    wait([wr for _, _, wr in pending])
    results: list[dict[str, Any]] = []
    pdir = parts_dir(Path(out))
    for item, det, wr in pending:
        if wr.state.is_completed():
            clear_failure(pdir, item["fingerprint"])
            results.append({"path": item["path"], "ok": True, "summary": wr.result()})
            continue
        # Report the root cause: the detect task's error when it failed, else the writer's.
        state = det.state if not det.state.is_completed() else wr.state
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, OrbitwatchError):
            reason = str(exc)
        elif isinstance(exc, BaseException):
            reason = f"{item['path']}: unexpected {type(exc).__name__}: {exc}"
        else:
            reason = f"{item['path']}: {state.message or state.type.value}"
        error = type(exc).__name__ if isinstance(exc, BaseException) else state.type.value
        logger.warning("scene failed: %s", reason)
        if det.state.is_failed():  # the scene itself failed (not its writer): remember it for resume
            record_failure(pdir, item["fingerprint"], SceneFailure(item["path"], error, reason), options)
        results.append({"path": item["path"], "ok": False, "error": error, "reason": reason})
    return results


@flow(name="scan-folder")
def scan_folder(scene_dir: str = "sample_scenes", out_dir: str = "out/flows",
                detectors: list[str] | None = None, device: str = "auto", tile_size: int = 2048,
                overlap: int | None = None, resume: bool = True, strict: bool = False,
                threads: int = 2, dask_address: str | None = None, dask_workers: int = 0,
                gpu_exclusive: bool | None = None, gpu_limit: str = GPU_LIMIT,
                gpu_slots: int = 1, detector_options: dict[str, dict[str, Any]] | None = None,
                max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS, scene_timeout: float | None = None,
                retry_failed: bool = False, quicklook: bool = True, acquired: str | None = None,
                land_mask: str | None = None, coastline: bool = False,
                radiometry: str = "auto",
                ) -> dict[str, Any] | State:
    """Scan every bundle under ``scene_dir`` into ``<out_dir>/alerts.geojson`` (+ one file per scene).

    ``detector_options``: keyword options per detector name (as for ``scan-scene``); they are part
    of each scene's fingerprint, so changing them redoes the scenes.

    ``max_megapixels`` / ``scene_timeout`` are the per-scene pixel and time budgets (as for
    ``scan-scene``); a scene that failed in an earlier run is reported again from its record and
    scanned again only with ``retry_failed`` (or when its file or the budgets changed).
    ``quicklook``: a PNG per scanned scene in ``<out_dir>/quicklooks/`` and an image artifact each.
    ``acquired``: ISO 8601 acquisition time for the scenes that record none (``--acquired``).
    ``land_mask`` / ``coastline``: as for ``scan-scene``; the mask is read once for the batch and is
    part of each scene's fingerprint (an edited mask redoes the scenes).
    ``radiometry``: how SAR pixels encode backscatter (as for ``scan-scene``; part of each scene's
    fingerprint when not "auto").

    Resumable: scenes finished by an earlier run (same fingerprint) are skipped. Per-scene tasks
    run on ``threads`` threads, on the Dask cluster at ``dask_address``, or on a temporary local
    cluster of ``dask_workers`` processes. See the module docstring for the final-state rule.
    Returns the report (also written to ``<out_dir>/report.json``).
    """
    logger = get_run_logger()
    options = scan_options(detectors, device, tile_size, overlap, detector_options, max_megapixels, scene_timeout,
                           acquired, land_mask, coastline, radiometry)
    alerts_out = Path(out_dir) / ALERTS_NAME
    # One writer per output, as for `orbitwatch scan`: a second run on the same out_dir fails at once.
    with output_lock(alerts_out):
        return _scan_folder(scene_dir, out_dir, options, resume, strict, threads, dask_address, dask_workers,
                            gpu_exclusive, gpu_limit, gpu_slots, retry_failed, quicklook)


def _scan_folder(scene_dir: str, out_dir: str, options: ScanOptions, resume: bool, strict: bool, threads: int,
                 dask_address: str | None, dask_workers: int, gpu_exclusive: bool | None, gpu_limit: str,
                 gpu_slots: int, retry_failed: bool, quicklook: bool) -> dict[str, Any] | State:
    """The body of ``scan-folder``, run while its output lock is held."""
    logger = get_run_logger()
    out_path = Path(out_dir)
    alerts_out = out_path / ALERTS_NAME
    plan = plan_scenes(scene_dir, out_dir, options, resume, retry_failed)
    logger.info("%d scene(s) under %s: %d to scan, %d already done", len(plan["todo"]) + len(plan["done"])
                + len(plan["failures"]), scene_dir, len(plan["todo"]), len(plan["done"]))

    results: list[dict[str, Any]] = []
    if plan["todo"]:
        runner = make_task_runner(dask_address, dask_workers, threads)
        with api_for_workers():
            results = scan_scenes.with_options(task_runner=runner)(
                plan["todo"], str(alerts_out), options, gpu_exclusive=gpu_exclusive,
                gpu_limit=gpu_limit, gpu_slots=gpu_slots, quicklook=quicklook)

    by_path = {r["path"]: r for r in results}
    ok_items = plan["done"] + [i for i in plan["todo"] if by_path[i["path"]]["ok"]]
    merged = merge_alerts(str(alerts_out), [i["fingerprint"] for i in ok_items])
    failures = plan["failures"] + [{"path": r["path"], "error": r["error"], "reason": r["reason"]}
                                   for r in results if not r["ok"]]
    n_scenes = len(plan["todo"]) + len(plan["done"]) + len(plan["failures"])
    report = {
        "scene_dir": scene_dir, "out": merged["path"], "ok": not failures, "scenes": n_scenes,
        "alerts": merged["alerts"], "by_kind": merged["by_kind"],
        "scenes_ok": [r["path"] for r in results if r["ok"]],
        "scenes_skipped": [i["path"] for i in plan["done"]],
        "scene_files": {i["path"]: i["geojson"] for i in ok_items},
        "failures": failures,
        "results": [r["summary"] for r in results if r["ok"]],
    }
    atomic_write_text(out_path / REPORT_NAME, json.dumps(report, indent=1) + "\n")
    logger.info("%d alert(s) (%s) -> %s; %d scanned, %d resumed, %d failed", report["alerts"],
                ", ".join(f"{k}: {v}" for k, v in sorted(report["by_kind"].items())) or "none",
                merged["path"], len(report["scenes_ok"]), len(report["scenes_skipped"]), len(failures))
    if failures:
        create_table_artifact(key="scan-folder-failures", table=failures,
                              description=f"{len(failures)} of {n_scenes} scene(s) failed in {scene_dir}")
        for f in failures:
            logger.warning("failed: %s", f["reason"])
    if failures and (strict or len(failures) == n_scenes):
        why = "strict mode" if strict and len(failures) < n_scenes else "no scene could be scanned"
        return Failed(message=f"{len(failures)} of {n_scenes} scene(s) failed ({why}); "
                              f"see {out_path / REPORT_NAME}", data=report)
    return report
