"""Ground segment command line: ``ground_app`` (receive, subscribe, deliver, status) and ``consumer_app``.

The main CLI mounts them as ``orbitwatch ground ...`` and ``orbitwatch consumer ...``; this module
also runs standalone: ``python -m pipelines.ground.cli ground status --store ground.sqlite``.
Human messages go to stderr, machine-readable output (JSON, a generated secret) to stdout.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.errors import OrbitwatchError

ground_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Ground segment: receive downlinked alerts, store them, deliver signed webhooks.")
consumer_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Reference Standard Webhooks consumer (verifies, de-duplicates, stores).")
err = Console(stderr=True)

STORE_ENV = "ORBITWATCH_GROUND_STORE"
SECRET_ENV = "ORBITWATCH_WEBHOOK_SECRET"
WEB_TOKEN_ENV = "ORBITWATCH_WEB_TOKEN"  # = pipelines.ground.web.TOKEN_ENV (not imported: FastAPI is slow to load)
StoreOpt = Annotated[Path, typer.Option("--store", "-s", envvar=STORE_ENV, help="Ground alert store (SQLite file).")]
UnresolvedOpt = Annotated[str, typer.Option(
    help="Alert packets whose scene header has not arrived yet: 'placeholder' stores them at once as "
         "scene-<key> and renames them when the header comes; 'hold' keeps them (stored and acked) "
         "undelivered until it comes, so no webhook ever carries a placeholder name.")]
ThumbnailsOpt = Annotated[bool, typer.Option(
    help="Also reassemble and store thumbnail chips (APID 0x104) for the web console, acked as thumb:<alert id>; "
         "without it their packets are counted as ignored and not acked.")]


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    """Print the error verbatim (escaped: paths, URLs and names may hold ``[...]``) and return the exit."""
    err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(code)


def _ack_writer(ack_file: Optional[Path]):  # type: ignore[no-untyped-def]
    """Acks go to a file (one alert id per line, appended and flushed after each commit)."""
    from pipelines.ground.receiver import file_ack_writer

    return None if ack_file is None else file_ack_writer(ack_file)


def _split(values: Optional[list[str]]) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _report_line(rep: object) -> None:
    d = rep.as_dict()  # type: ignore[attr-defined]
    err.print(f"{escape(str(d['source']))}: {d['packets']} packets, {d['corrupt']} corrupt, {d['stored']} new alerts, "
              f"{d['duplicates']} duplicates, {d['acked']} acked")
    for e in d["errors"][:5]:
        err.print(f"  [yellow]{escape(str(e))}[/yellow]")


@ground_app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Packet files (any name), GeoJSON (.geojson/.json), or - for stdin packets.")],
    store: StoreOpt = Path("ground.sqlite"),
    ack_file: Annotated[Optional[Path], typer.Option(help="Append acknowledged alert ids here (one per line).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ingest report as JSON on stdout.")] = False,
    strict: Annotated[bool, typer.Option(help="Also exit 1 when any packet was corrupt (for checking a link offline).")] = False,
    unresolved: UnresolvedOpt = "placeholder",
    thumbnails: ThumbnailsOpt = False,
) -> None:
    """Ingest packet files or GeoJSON into the store, acking what was committed.

    Exit status: 0 when every input was read, even if some packets were corrupt (bad CRC,
    truncated, garbage): on a noisy link that is expected, corrupt packets are reported (stderr,
    and "corrupt" in --json) and not acked, so the spacecraft sends them again. 1 when a GeoJSON
    input holds features that are not valid alerts (nothing will re-send those), or with --strict
    when any packet was corrupt. 2 for usage errors and for a file or store that cannot be read
    or opened.
    """
    from pipelines.ground.receiver import GEOJSON_SUFFIXES, IngestReport, Receiver
    from pipelines.ground.store import AlertStore

    total = IngestReport(source="total")
    invalid_features = 0
    try:
        with AlertStore(store) as st:
            rx = Receiver(st, on_ack=_ack_writer(ack_file), unresolved=unresolved,  # type: ignore[arg-type]
                          thumbnails=thumbnails)
            for p in paths:
                rep = rx.receive_stream(sys.stdin.buffer, "stdin") if str(p) == "-" else rx.receive_file(p)
                _report_line(rep)
                if str(p) != "-" and p.suffix.lower() in GEOJSON_SUFFIXES:
                    invalid_features += rep.corrupt
                total.add(rep)
    except OrbitwatchError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(total.as_dict()))
    corrupt_packets = total.corrupt - invalid_features
    if corrupt_packets:
        err.print(f"{corrupt_packets} corrupt packet(s) not acked: the downlink sends them again")
    if invalid_features or (strict and corrupt_packets):
        raise typer.Exit(1)


@ground_app.command()
def serve(
    source: Annotated[str, typer.Argument(help="A folder to watch, a packet file, or - (a packet stream on stdin).")],
    store: StoreOpt = Path("ground.sqlite"),
    ack_file: Annotated[Optional[Path], typer.Option(help="Append acknowledged alert ids here (one per line).")] = None,
    poll_s: Annotated[float, typer.Option(help="Folder poll interval, seconds.")] = 1.0,
    once: Annotated[bool, typer.Option(help="Folder: ingest what is there now and exit.")] = False,
    unresolved: UnresolvedOpt = "placeholder",
    thumbnails: ThumbnailsOpt = False,
) -> None:
    """Receive continuously: watch a folder for new downlink files, or read a packet stream, into the store."""
    from pipelines.ground.receiver import Receiver
    from pipelines.ground.store import AlertStore

    stop = _install_stop()
    try:
        with AlertStore(store) as st:
            rx = Receiver(st, on_ack=_ack_writer(ack_file), unresolved=unresolved,  # type: ignore[arg-type]
                          thumbnails=thumbnails)
            if source == "-":
                _report_line(rx.receive_stream(sys.stdin.buffer, "stdin"))
                return
            path = Path(source)
            if path.is_file():
                _report_line(rx.receive_file(path))
                return
            if not path.is_dir():
                raise _fail(OrbitwatchError("no such file or folder", path))
            err.print(f"watching {escape(str(path))} (Ctrl-C to stop)")
            while not stop["flag"]:
                for rep in rx.receive_folder(path):
                    _report_line(rep)
                if once:
                    return
                end = time.monotonic() + poll_s
                while time.monotonic() < end and not stop["flag"]:
                    time.sleep(min(0.1, poll_s))
    except OrbitwatchError as exc:
        raise _fail(exc) from exc


def _install_stop() -> dict[str, bool]:
    """SIGTERM/SIGINT set a flag so loops finish their current batch and exit cleanly."""
    flag = {"flag": False}

    def handler(signum: int, frame: object) -> None:
        flag["flag"] = True
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return flag


@ground_app.command()
def subscribe(
    url: Annotated[str, typer.Argument(help="Webhook endpoint, http(s)://...")],
    store: StoreOpt = Path("ground.sqlite"),
    name: Annotated[Optional[str], typer.Option(help="Unique name (default: the URL).")] = None,
    secret: Annotated[Optional[str], typer.Option(help="whsec_... secret; generated and printed once if omitted.")] = None,
    kinds: Annotated[Optional[list[str]], typer.Option(help="vessel,lifeboat,fire (default: all).")] = None,
    min_score: Annotated[float, typer.Option(help="Only alerts with score >= this.")] = 0.0,
    bbox: Annotated[Optional[str], typer.Option(help="west,south,east,north in degrees (west > east crosses 180).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json (GeoJSON Feature payload) or cap (CAP 1.2 XML).")] = "json",
    concurrency: Annotated[int, typer.Option(help="Parallel requests to this endpoint.")] = 4,
    timeout: Annotated[float, typer.Option(help="Request timeout, seconds.")] = 15.0,
    backfill: Annotated[bool, typer.Option(help="Also queue every matching alert already stored.")] = False,
) -> None:
    """Add a webhook subscriber with its filters."""
    from pipelines.alerts.model import KINDS
    from pipelines.ground.signing import generate_secret
    from pipelines.ground.store import AlertStore, Subscriber

    try:
        box = None
        if bbox is not None:
            try:
                box = tuple(float(x) for x in bbox.split(","))
            except ValueError as exc:
                raise OrbitwatchError(f"bbox must be four numbers west,south,east,north: {bbox!r}") from exc
        if fmt == "cap":
            try:
                import pipelines.alerts.cap  # noqa: F401
            except ImportError as exc:
                raise OrbitwatchError("CAP output needs pipelines.alerts.cap, which is not installed") from exc
        generated = secret is None
        sub = Subscriber(name=name or url, url=url, secret=secret or generate_secret(),
                         kinds=tuple(_split(kinds)) or KINDS, min_score=min_score, bbox=box,  # type: ignore[arg-type]
                         format=fmt, concurrency=concurrency, timeout_s=timeout)
        with AlertStore(store) as st:
            st.add_subscriber(sub, backfill=backfill)
    except OrbitwatchError as exc:
        raise _fail(exc) from exc
    err.print(f"subscriber [bold]{escape(sub.name)}[/bold] (id {sub.id}) -> {escape(sub.url)}")
    if generated:
        err.print("webhook secret (shown once; give it to the endpoint's owner):")
        typer.echo(sub.secret)


@ground_app.command()
def disable(name: Annotated[str, typer.Argument(help="Subscriber name or id.")], store: StoreOpt = Path("ground.sqlite")) -> None:
    """Stop delivering to a subscriber (its pending messages are kept)."""
    _set_active(store, name, False)


@ground_app.command()
def enable(name: Annotated[str, typer.Argument(help="Subscriber name or id.")], store: StoreOpt = Path("ground.sqlite")) -> None:
    """Resume delivering to a subscriber (e.g. after it answered 410 Gone)."""
    _set_active(store, name, True)


def _set_active(store: Path, name: str, active: bool) -> None:
    from pipelines.ground.store import AlertStore

    try:
        with AlertStore(store) as st:
            st.set_active(name, active, None if active else "disabled by operator")
    except OrbitwatchError as exc:
        raise _fail(exc) from exc


@ground_app.command()
def deliver(
    store: StoreOpt = Path("ground.sqlite"),
    mode: Annotated[str, typer.Option(help="once (what is due now), drain (until nothing pending), forever.")] = "drain",
    workers: Annotated[int, typer.Option(help="Sending threads in total (each subscriber also has its own limit).")] = 64,
    base_delay: Annotated[float, typer.Option(help="First retry delay ceiling, seconds (doubles per attempt, full jitter).")] = 5.0,
    max_delay: Annotated[float, typer.Option(help="Retry delay cap, seconds.")] = 6 * 3600.0,
    max_age: Annotated[float, typer.Option(help="Dead-letter a message this many seconds after it was queued.")] = 3 * 86400.0,
    max_attempts: Annotated[Optional[int], typer.Option(help="Also dead-letter after this many attempts.")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Stop after this long (in-flight sends finish).")] = None,
    poll_s: Annotated[float, typer.Option(help="How often to look for new work when idle, seconds.")] = 1.0,
) -> None:
    """Send pending webhooks with retries. SIGTERM/Ctrl-C: finish in-flight sends, record them, exit."""
    from pipelines.ground.webhooks import DeliveryWorker, RetryPolicy

    try:
        policy = RetryPolicy(base_s=base_delay, cap_s=max_delay, max_age_s=max_age, max_attempts=max_attempts)
        worker = DeliveryWorker(store, policy=policy, max_workers=workers, poll_s=poll_s)
    except OrbitwatchError as exc:
        raise _fail(exc) from exc

    def handler(signum: int, frame: object) -> None:
        worker.stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    try:
        stats = worker.run(mode, max_seconds=max_seconds)  # type: ignore[arg-type]
    except OrbitwatchError as exc:
        raise _fail(exc) from exc
    err.print(f"{stats.attempts} attempts: {stats.delivered} delivered, {stats.retried} to retry, "
              f"{stats.dead} dead letters, {stats.pending_left} pending")
    for name in stats.disabled:
        err.print(f"[yellow]subscriber {escape(str(name))} answered 410 Gone and was disabled[/yellow]")


@ground_app.command()
def status(
    store: StoreOpt = Path("ground.sqlite"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of tables.")] = False,
    dead: Annotated[int, typer.Option(help="How many dead letters to list.")] = 20,
) -> None:
    """Alerts stored, delivery counts by state per subscriber, and the latest dead letters."""
    from pipelines.ground.store import AlertStore

    if not store.exists():
        raise _fail(OrbitwatchError("no such store", store))
    try:
        with AlertStore(store) as st:
            doc = {"alerts": st.alert_count(), "counters": st.counters(), "subscribers": st.status(),
                   "dead_letters": st.dead_letters(dead)}
    except OrbitwatchError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(doc))
        return
    out = Console()
    out.print(f"{doc['alerts']} alerts stored; " + ", ".join(f"{k}={v}" for k, v in sorted(doc["counters"].items())))
    t = Table("id", "subscriber", "url", "active", "pending", "delivered", "dead")
    for s in doc["subscribers"]:
        active = "yes" if s["active"] else f"no ({s['disabled_reason']})"
        # Table cells are Rich markup too: names, URLs ("http://[fe80::1]/") and errors are escaped.
        t.add_row(str(s["id"]), escape(str(s["name"])), escape(str(s["url"])), escape(active), str(s["pending"]),
                  str(s["delivered"]), str(s["dead"]))
    out.print(t)
    if doc["dead_letters"]:
        d = Table("alert", "subscriber", "attempts", "last error", title="dead letters")
        for r in doc["dead_letters"]:
            d.add_row(escape(str(r["alert_id"])), escape(str(r["subscriber"])), str(r["attempts"]),
                      escape(str(r["last_error"])))
        out.print(d)


@ground_app.command()
def requeue(
    store: StoreOpt = Path("ground.sqlite"),
    subscriber: Annotated[Optional[str], typer.Option(help="Only this subscriber's dead letters.")] = None,
) -> None:
    """Replay dead letters (same webhook-ids, a fresh max-age window)."""
    from pipelines.ground.store import AlertStore

    try:
        with AlertStore(store) as st:
            n = st.requeue_dead(subscriber)
    except OrbitwatchError as exc:
        raise _fail(exc) from exc
    err.print(f"{n} dead letters queued again")


@ground_app.command()
def web(
    store: StoreOpt = Path("ground.sqlite"),
    host: Annotated[str, typer.Option(
        help="Address to bind. Anything but localhost/127.0.0.1/::1 needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    token: Annotated[Optional[str], typer.Option(
        envvar=WEB_TOKEN_ENV, show_envvar=True,
        help="Bearer token that enables the write actions (requeue). Without it the console is read-only. "
             "Prefer the environment variable: a command-line token shows in `ps`.")] = None,
    poll_s: Annotated[float, typer.Option(help="How often the console asks for new alerts, seconds.")] = 2.0,
    max_markers: Annotated[int, typer.Option(help="Most markers drawn (the newest matching alerts).")] = 10_000,
    tiles: Annotated[Optional[str], typer.Option(
        help="XYZ tile URL template drawn under the built-in offline land map, e.g. a local tile server.")] = None,
) -> None:
    """Serve the web console (map, filters, alert details, delivery states) and OGC API - Features at /ogc/.

    Exit status 2 when the store does not exist or when --host is beyond localhost without a token.
    """
    from pipelines.ground.web import check_bind, create_app

    try:
        check_bind(host, token)
        app = create_app(store, token=token, poll_s=poll_s, max_markers=max_markers, tiles=tiles)
    except OrbitwatchError as exc:
        raise _fail(exc) from exc
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    err.print(f"console on http://{escape(shown)}:{port}/ , OGC API - Features on http://{escape(shown)}:{port}/ogc/ "
              f"({'requeue enabled with the token' if token else 'read-only'}; Ctrl-C to stop)", soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@consumer_app.command("serve")
def consumer_serve(
    secret: Annotated[Optional[list[str]], typer.Option(help=f"whsec_ secret(s) to accept (several during rotation); or ${SECRET_ENV}.")] = None,
    db: Annotated[Path, typer.Option(help="SQLite file for received webhooks.")] = Path("consumer.sqlite"),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port, printed).")] = 8787,
    path: Annotated[Optional[str], typer.Option(help="Only accept POSTs to this path (default: any).")] = None,
    tolerance: Annotated[float, typer.Option(help="Accepted clock skew / replay window, seconds.")] = 300.0,
) -> None:
    """Receive, verify and store webhooks until SIGTERM/Ctrl-C."""
    from pipelines.ground.consumer import WebhookConsumer

    secrets_ = list(secret or [])
    if not secrets_ and os.environ.get(SECRET_ENV):
        secrets_ = os.environ[SECRET_ENV].split()
    try:
        c = WebhookConsumer(secrets_, db, host=host, port=port, tolerance_s=tolerance, path=path)
    except (OrbitwatchError, OSError) as exc:
        raise _fail(exc) from exc

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    c.listen()
    typer.echo(f"listening {c.url}")
    sys.stdout.flush()
    try:
        c.serve()
    except KeyboardInterrupt:
        pass
    finally:
        c.close()


def main() -> None:
    """Standalone entry point: ``python -m pipelines.ground.cli ground|consumer ...``."""
    logging.basicConfig(level=os.environ.get("ORBITWATCH_LOG", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = typer.Typer(add_completion=False, no_args_is_help=True)
    app.add_typer(ground_app, name="ground")
    app.add_typer(consumer_app, name="consumer")
    app()


if __name__ == "__main__":
    main()
