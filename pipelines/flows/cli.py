"""``orbitwatch flow ...``: run the Prefect flows from the shell, embedded (no server) by default.

With ``PREFECT_API_URL`` set the runs are recorded on that server; without it Prefect starts a
temporary local API for the duration of the command. Exit status 1 when the flow run is not
Completed (``scan-folder`` ends Completed with failures listed unless ``--strict``; see
:mod:`pipelines.flows.scan`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

flows_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Run orbitwatch's Prefect flows (embedded by default; uses PREFECT_API_URL when set).")
console = Console(stderr=True)


@flows_app.callback(help=flows_app.info.help)
def _embedded_server(ctx: typer.Context) -> None:
    """Run every flow command under the embedded-server defaults (no telemetry heartbeat racing the
    first run's SQLite writes, a startup timeout that fits a new database); see
    :func:`pipelines.flows.resources.embedded_server_settings`."""
    from pipelines.flows.resources import embedded_server_settings

    ctx.with_resource(embedded_server_settings())


def _error(message: object, label: str = "error:") -> None:
    """Print ``label message`` on stderr with the message verbatim.

    Why: messages carry commands (``pip install 'orbitwatch[dask]'``), paths and option values;
    Rich took ``[dask]`` for a markup tag and dropped it. Escaped, and not wrapped by Rich, so a
    command can be copied as printed.
    """
    console.print(f"[red]{escape(label)}[/red] {escape(str(message))}", soft_wrap=True)


def _split(values: Optional[list[str]]) -> list[str] | None:
    if not values:
        return None
    out = [x.strip() for v in values for x in v.split(",") if x.strip()]
    return out or None


#: ``--option`` as every flow command takes it.
DetectorOptionItems = Annotated[Optional[list[str]], typer.Option(
    "--option", "-O", help="A detector option, DETECTOR.KEY=VALUE (repeatable); see `orbitwatch detectors`.")]

#: ``--acquired``, as ``orbitwatch scan`` takes it.
AcquiredTime = Annotated[Optional[str], typer.Option(
    "--acquired", help="Acquisition time (ISO 8601) for scenes that record none; never overrides a scene's own.")]

#: The per-scene budgets, as ``orbitwatch scan`` takes them.
MaxMegapixels = Annotated[float, typer.Option(
    "--max-megapixels", help="Pixel budget: a larger scene is refused before any pixel is read (0: none).")]
QuicklookFlag = Annotated[bool, typer.Option(
    "--quicklook/--no-quicklook", help="A PNG per scene with its detections (<out>/quicklooks/) and an image artifact.")]
#: ``--radiometry``, as ``orbitwatch scan`` takes it.
RadiometryChoice = Annotated[str, typer.Option(
    "--radiometry", help="How SAR pixels encode backscatter: auto | intensity | amplitude | db | display (8-bit stretched).")]
SceneTimeout = Annotated[Optional[float], typer.Option(
    "--scene-timeout", help="Time budget per scene in seconds: a scene that overruns fails; the rest go on.")]

#: Land handling, as ``orbitwatch scan`` takes it.
LandMaskFile = Annotated[Optional[Path], typer.Option(
    "--land-mask", help="Land mask for SAR scenes: GeoJSON polygons (lon/lat) or a GeoTIFF (nonzero = land).")]
CoastlineFlag = Annotated[bool, typer.Option(
    "--coastline/--no-coastline", help="Without --land-mask: drop SAR detections more than 2 km inland (packaged coastline; off by default).")]


def _options(items: Optional[list[str]]) -> dict[str, dict[str, Any]] | None:
    """``--option DETECTOR.KEY=VALUE`` items -> the flows' ``detector_options``; exit 2 when malformed."""
    from pipelines.detect import parse_detector_options
    from pipelines.errors import ScanOptionError

    try:
        return parse_detector_options(items)
    except ScanOptionError as exc:
        _error(exc)
        raise typer.Exit(2) from exc


def _land_mask(path: Optional[Path]) -> str | None:
    """``--land-mask`` checked before any server or flow run starts; exit 2 naming the problem."""
    if path is None:
        return None
    from pipelines.errors import LandMaskError
    from pipelines.scene.landmask import load_land_mask

    try:
        load_land_mask(path)
    except LandMaskError as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    return str(path)


def _require_dask(dask_address: Optional[str], dask_workers: int) -> None:
    """Exit 2 before any server or flow run starts when Dask is asked for but not installed."""
    if not (dask_address or dask_workers > 0):
        return
    from pipelines.errors import OrbitwatchError
    from pipelines.flows.resources import require_dask

    try:
        require_dask()
    except OrbitwatchError as exc:
        _error(exc)
        raise typer.Exit(2) from exc


def _finish(state: Any) -> None:
    """Print the flow's return value as JSON on stdout; exit 1 unless the run Completed."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        _error(result, f"{state.name}:")
    else:
        typer.echo(json.dumps(result, indent=1, default=str))
    if not state.is_completed():
        _error(state.message or "", f"flow run ended {state.name}:")
        raise typer.Exit(1)


@flows_app.command("scan-folder")
def scan_folder_cmd(
    scene_dir: Annotated[Path, typer.Argument(help="Folder of scene bundles (searched recursively).")] = Path("sample_scenes"),
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder: alerts.geojson, scenes/, report.json.")] = Path("out/flows"),
    detectors: Annotated[Optional[list[str]], typer.Option("--detectors", "-d", help="Detector names, comma-separated.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (cuda:N).")] = "auto",
    tile_size: Annotated[int, typer.Option(help="Tile edge in pixels.")] = 2048,
    resume: Annotated[bool, typer.Option(help="Skip scenes finished by an earlier run.")] = True,
    strict: Annotated[bool, typer.Option(help="End Failed (exit 1) if any scene fails.")] = False,
    threads: Annotated[int, typer.Option(help="Scenes in parallel when not on Dask.")] = 2,
    dask_address: Annotated[Optional[str], typer.Option(help="Run per-scene tasks on this Dask scheduler (tcp://host:8786).")] = None,
    dask_workers: Annotated[int, typer.Option(help="Start a temporary local Dask cluster with this many worker processes.")] = 0,
    option: DetectorOptionItems = None,
    max_megapixels: MaxMegapixels = 4000.0,
    scene_timeout: SceneTimeout = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Scan again the scenes that failed in an earlier run.")] = False,
    quicklook: QuicklookFlag = True,
    acquired: AcquiredTime = None,
    radiometry: RadiometryChoice = "auto",
    land_mask: LandMaskFile = None,
    coastline: CoastlineFlag = False,
) -> None:
    """Scan a folder of scenes as a Prefect flow run (resumable, cached, optionally on Dask)."""
    from pipelines.flows.scan import scan_folder

    _require_dask(dask_address, dask_workers)
    mask = _land_mask(land_mask)
    state = scan_folder(str(scene_dir), str(out_dir), detectors=_split(detectors), device=device,
                        tile_size=tile_size, resume=resume, strict=strict, threads=threads,
                        dask_address=dask_address, dask_workers=dask_workers,
                        detector_options=_options(option), max_megapixels=max_megapixels,
                        scene_timeout=scene_timeout, retry_failed=retry_failed, quicklook=quicklook,
                        acquired=acquired, land_mask=mask, coastline=coastline, radiometry=radiometry,
                        return_state=True)
    _finish(state)


@flows_app.command("scan-scene")
def scan_scene_cmd(
    scene: Annotated[Path, typer.Argument(help="One scene bundle (.tif).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (the GeoJSON goes to scenes/).")] = Path("out/flows"),
    detectors: Annotated[Optional[list[str]], typer.Option("--detectors", "-d", help="Detector names, comma-separated.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (cuda:N).")] = "auto",
    option: DetectorOptionItems = None,
    max_megapixels: MaxMegapixels = 4000.0,
    scene_timeout: SceneTimeout = None,
    quicklook: QuicklookFlag = True,
    acquired: AcquiredTime = None,
    radiometry: RadiometryChoice = "auto",
    land_mask: LandMaskFile = None,
    coastline: CoastlineFlag = False,
) -> None:
    """Scan one scene bundle as a Prefect flow run."""
    from pipelines.flows.scan import scan_scene

    mask = _land_mask(land_mask)
    _finish(scan_scene(str(scene), str(out_dir), detectors=_split(detectors), device=device,
                       detector_options=_options(option), max_megapixels=max_megapixels,
                       scene_timeout=scene_timeout, quicklook=quicklook, acquired=acquired, land_mask=mask,
                       coastline=coastline, radiometry=radiometry, return_state=True))


@flows_app.command("deliver-alerts")
def deliver_alerts_cmd(
    inbox: Annotated[Path, typer.Argument(help="Folder of downlinked packet / GeoJSON files.")] = Path("out/downlink"),
    store: Annotated[Path, typer.Option(help="Ground alert store (SQLite).")] = Path("out/ground.sqlite"),
    deliver: Annotated[bool, typer.Option(help="Send webhooks after ingesting.")] = True,
    max_seconds: Annotated[float, typer.Option(help="Upper bound on webhook delivery time.")] = 60.0,
) -> None:
    """Ingest downlinked files into the ground store and deliver webhooks, as a Prefect flow run."""
    from pipelines.flows.ground import deliver_alerts

    _finish(deliver_alerts(str(inbox), str(store), deliver=deliver, max_seconds=max_seconds, return_state=True))


@flows_app.command("onboard-pass")
def onboard_pass_cmd(
    inbox: Annotated[Path, typer.Argument(help="Onboard inbox: collects (scene bundles) waiting to be processed.")] = Path("sample_scenes"),
    queue: Annotated[Path, typer.Option(help="Persistent downlink queue (SQLite).")] = Path("out/onboard/queue.sqlite"),
    energy_wh: Annotated[Optional[float], typer.Option(help="Energy processing may use (default: charge above the DoD floor).")] = None,
    state_of_charge: Annotated[Optional[float], typer.Option(help="Battery state of charge, 0-1 (default: the config's initial_soc).")] = None,
    node_config: Annotated[Optional[Path], typer.Option(help="Node config (.json/.toml).")] = None,
    detectors: Annotated[Optional[list[str]], typer.Option("--detectors", "-d", help="Detector names, comma-separated.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (cuda:N).")] = "auto",
    option: DetectorOptionItems = None,
    land_mask: LandMaskFile = None,
    coastline: CoastlineFlag = False,
) -> None:
    """Process affordable collects and queue their alerts (+ scene headers) for downlink."""
    from pipelines.flows.onboard import onboard_pass

    mask = _land_mask(land_mask)
    _finish(onboard_pass(str(inbox), str(queue), energy_wh=energy_wh, state_of_charge=state_of_charge,
                         node_config=str(node_config) if node_config else None, detectors=_split(detectors),
                         device=device, detector_options=_options(option), land_mask=mask, coastline=coastline,
                         return_state=True))


@flows_app.command("downlink-contact")
def downlink_contact_cmd(
    queue: Annotated[Path, typer.Option(help="Persistent downlink queue (SQLite).")] = Path("out/onboard/queue.sqlite"),
    ground_inbox: Annotated[Path, typer.Option(help="Folder the downlink files are written to.")] = Path("out/downlink"),
    duration_s: Annotated[float, typer.Option(help="Contact duration in seconds.")] = 300.0,
    link: Annotated[str, typer.Option(help="xband | relay.")] = "xband",
    rate_bps: Annotated[Optional[float], typer.Option(help="Override the link rate (bit/s).")] = None,
    ber: Annotated[float, typer.Option(help="Bit error rate of the simulated channel.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Channel seed.")] = 0,
    ground_store: Annotated[Optional[Path], typer.Option(help="Ingest each round into this ground store and ack at once.")] = None,
    ack_file: Annotated[Optional[Path], typer.Option(help="Read acks written by `ground ingest --ack-file` first.")] = None,
    node_config: Annotated[Optional[Path], typer.Option(help="Node config (.json/.toml).")] = None,
) -> None:
    """One contact: send queued packets, write downlink files, apply the ground's acks."""
    from pipelines.flows.onboard import downlink_contact

    _finish(downlink_contact(str(queue), str(ground_inbox), duration_s=duration_s, link=link,  # type: ignore[arg-type]
                             rate_bps=rate_bps, node_config=str(node_config) if node_config else None, ber=ber,
                             seed=seed, ground_store=str(ground_store) if ground_store else None,
                             ack_file=str(ack_file) if ack_file else None, return_state=True))
