"""`orbitwatch` command line: a thin layer over pipelines.batch, pipelines.ground and the flows.

Kept thin on purpose (rasterio's CLI style): parse options, call one library function, print.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="orbitwatch: find vessels, lifeboats and wildfires in satellite scenes; deliver alerts.")
console = Console(stderr=True)


def _show(text: object) -> str:
    """A file name or reason made safe to print: Rich markup escaped, control characters and
    undecodable bytes shown as escapes.

    Why: scene names come from whoever filled the folder; a name holding ``[/]`` made Rich raise
    MarkupError and ended the whole batch before the error report was written, and a newline
    in a name split one failure over two lines of the summary.
    """
    s = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    s = "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
    return escape(s)


def _split(values: Optional[list[str]]) -> list[str] | None:
    if not values:
        return None
    out: list[str] = []
    for v in values:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out or None


@app.command()
def scan(
    scene_dir: Annotated[Path, typer.Argument(help="A scene (.tif bundle, Landsat MTL or folder, Sentinel-2 SAFE, STAC item or catalog) or a folder searched recursively.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Alerts GeoJSON FeatureCollection to write.")] = Path("alerts.geojson"),
    detectors: Annotated[Optional[list[str]], typer.Option("--detectors", "-d", help="Detector names, comma-separated (see `orbitwatch detectors`). Default: the shipped detector per scene kind.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (cuda:N).")] = "auto",
    tile_size: Annotated[int, typer.Option(help="Tile edge in pixels (raised automatically to 4x the overlap).")] = 2048,
    overlap: Annotated[Optional[int], typer.Option(help="Tile overlap in pixels (default: what the detectors need).")] = None,
    errors: Annotated[Optional[Path], typer.Option(help="Write a JSON report of every scene and failure here.")] = None,
    resume: Annotated[bool, typer.Option(help="Skip scenes already finished by an earlier (possibly killed) run.")] = True,
    max_megapixels: Annotated[float, typer.Option("--max-megapixels", help="Pixel budget: a scene with more pixels is refused before any pixel is read (0: no budget). The default is about twice a Capella spotlight SLC.")] = 4000.0,
    scene_timeout: Annotated[Optional[float], typer.Option("--scene-timeout", help="Time budget per scene in seconds: a scene that overruns fails, none of its alerts are kept, the batch goes on.")] = None,
    quicklook: Annotated[Optional[Path], typer.Option("--quicklook", help="Write a PNG per scene into this folder with each detection drawn and labelled (kind, score, length).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="On resume, scan again the scenes that failed in an earlier run (by default they are reported from its record).")] = False,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-O", help="A detector option, DETECTOR.KEY=VALUE (repeatable), e.g. sar-fused.learned.fine_threshold=none turns the fine pass off. `orbitwatch detectors` lists each detector's options.")] = None,
    acquired: Annotated[Optional[str], typer.Option("--acquired", help="Acquisition time (ISO 8601, UTC if no zone) for scenes that record none; never overrides a scene's own time (each alert's acquired_source says which was used).")] = None,
    radiometry: Annotated[str, typer.Option("--radiometry", help="How SAR pixels encode backscatter: auto | intensity | amplitude | db | display (8-bit stretched). auto decides per scene from the metadata, the data type and the values; each scene's notes say what was used.")] = "auto",
    land_mask: Annotated[Optional[Path], typer.Option("--land-mask", help="Land mask for SAR scenes: GeoJSON (Polygon/MultiPolygon, lon/lat) or a GeoTIFF (nonzero = land). Land pixels are not scanned and detections centred on land are dropped; replaces the packaged coastline.")] = None,
    coastline: Annotated[bool, typer.Option("--coastline/--no-coastline", help="Without --land-mask: drop SAR detections more than 2 km inland per the packaged GLOBE 1 km coastline (never masks pixels). Off by default: GLOBE counts rivers and lakes as land (river ports would lose their ships), and a scene georeferenced by a copied sidecar may sit anywhere.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Scan scene bundles and write alerts (GeoJSON). Exit status 1 if any scene failed."""
    from detectors.errors import DetectorError
    from pipelines.batch import SceneFailure, atomic_write_text, run_batch
    from pipelines.detect import ScanOptions, parse_detector_options
    from pipelines.errors import OrbitwatchError, OutputLockedError
    from pipelines.scene import find_scenes
    from pipelines.scene.acquisition import parse_user_time

    try:
        scenes = find_scenes(scene_dir, broken_links=True)  # report dangling links, never skip silently
        from detectors.registry import resolve_device
        resolve_device(device)
        options = ScanOptions(detectors=_split(detectors), device=device, tile_size=tile_size, overlap=overlap,
                              detector_options=parse_detector_options(option),
                              radiometry=radiometry,
                              max_megapixels=max_megapixels if max_megapixels != 0 else None,
                              scene_timeout_s=scene_timeout, acquired=parse_user_time(acquired),
                              land_mask=str(land_mask) if land_mask is not None else None, coastline=coastline)
        options.validate()  # names, options and the land mask, before any work
        if quicklook is not None:
            try:
                quicklook.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OrbitwatchError(f"cannot create the quicklook folder: {exc.strerror or exc}", quicklook) from exc
    except (OrbitwatchError, DetectorError) as exc:
        console.print(f"[red]error:[/red] {_show(exc)}")
        raise typer.Exit(2) from exc
    if not scenes:
        console.print(f"[yellow]no scenes (.tif, Landsat MTL, SAFE, STAC item) found under {_show(scene_dir)}[/yellow]")

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet, transient=True) as progress:
        task = progress.add_task("scenes", total=len(scenes))
        tiles = progress.add_task("tiles", total=1, visible=False)

        def on_start(path: Path, i: int, n: int) -> None:
            progress.update(task, description=f"scene {_show(path.name)}")
            progress.update(tiles, completed=0, total=1, visible=True)

        def on_tile(done: int, total: int) -> None:
            progress.update(tiles, completed=done, total=total)

        def on_done(path: Path, res: object) -> None:
            progress.advance(task)
            if isinstance(res, SceneFailure):
                console.print(f"[red]failed[/red] {_show(res.reason)}")

        try:
            report = run_batch(scenes, out, options, resume=resume, on_scene_start=on_start,
                               on_scene_done=on_done, on_tile=on_tile, retry_failed=retry_failed,
                               quicklook_dir=quicklook)
        except OutputLockedError as exc:
            progress.stop()
            console.print(f"[red]error:[/red] {_show(exc)}")
            raise typer.Exit(2) from exc

    table = Table(title=f"orbitwatch scan: {len(scenes)} scene(s) -> {_show(out)}")
    numeric = ("alerts", "tiles", "empty", "Mpx", "s")
    for col in ("scene", "kind", "alerts", "tiles", "empty", "Mpx", "s", "status"):
        table.add_column(col, justify="right" if col in numeric else "left")
    for r in report.results:
        status = "resumed" if r["path"] in report.scenes_skipped else "ok"
        table.add_row(_show(r["scene"]), r["kind"], str(r["alerts"]), str(r["tiles"]), str(r.get("tiles_skipped", 0)),
                      f"{r['megapixels']:.1f}", f"{r['seconds']:.2f}", status)
    for f in report.failures:
        status = "failed earlier" if f.earlier else "failed"
        table.add_row(_show(Path(f.path).name), "-", "-", "-", "-", "-", "-",
                      f"[red]{status}: {_show(f.error)}[/red]")
    Console().print(table)
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(report.by_kind.items())) or "none"
    console.print(f"{report.alerts} alert(s) ({kinds}) written to {_show(out)}")
    if errors:
        try:
            atomic_write_text(errors, json.dumps(report.to_json(), indent=1) + "\n")
        except OSError as exc:
            console.print(f"[red]error:[/red] cannot write the report {_show(errors)}: {_show(exc.strerror or exc)}")
    if report.aborted:
        console.print(f"[red]stopped:[/red] {_show(report.aborted)}")
    if report.failures:
        console.print(f"[red]{len(report.failures)} scene(s) failed:[/red]")
        for f in report.failures:
            console.print(f"  - {_show(f.reason)}")
    if report.failures or report.aborted:
        raise typer.Exit(1)


@app.command("detectors")
def list_detectors_cmd() -> None:
    """List the registered detectors."""
    from detectors.registry import _FACTORIES, detector_modality, detector_options, list_detectors

    table = Table(title="detectors (options: scan --option NAME.KEY=VALUE)")
    table.add_column("name")
    table.add_column("modality")
    table.add_column("version")
    table.add_column("options")
    for name in list_detectors():
        version = getattr(_FACTORIES[name], "version", "")
        if not isinstance(version, str):  # weights-dependent (a property): the code revision
            version = str(getattr(_FACTORIES[name], "code_version", ""))
        opts = detector_options(name)
        table.add_row(name, detector_modality(name), version, ", ".join(opts) or "-")
    Console().print(table)


def _mount_optional() -> None:
    """Sub-apps live with the code they drive."""
    from pipelines.flows.cli import flows_app
    from pipelines.ground.cli import consumer_app, ground_app

    app.add_typer(ground_app, name="ground", help="Ground segment: receive packets, store, deliver webhooks.")
    app.add_typer(consumer_app, name="consumer", help="Reference webhook consumer (verifies signatures).")
    app.add_typer(flows_app, name="flow", help="Run the Prefect flows in-process (no server needed).")


_mount_optional()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    sys.exit(main())
