"""The ground web console: one ASGI app (FastAPI) over the alert store, served by uvicorn.

``/`` is the console (static HTML/JS with Leaflet shipped in the package: no internet needed),
``/api/...`` the JSON it reads, ``/ogc/...`` OGC API - Features (:mod:`pipelines.ground.web.ogc`).

Access: every GET is open (read-only data). Write actions (requeue a dead letter) need
``Authorization: Bearer <token>`` and are refused outright (403) when the app has no token, so a
console started without one can change nothing. :func:`check_bind` refuses to listen beyond the
loopback interface without a token.

Live updates are polled (``GET /api/alerts?since=<cursor>`` every ``poll_s``), not pushed (SSE):
the store is written by other processes (the receiver) and SQLite has no cross-process change
notification, so a push endpoint would itself poll the database once per open stream. A poll is one
rowid range read (well under a millisecond), survives server restarts and proxies, and holds no
connection open.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import threading
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from pipelines.alerts.model import KINDS, Alert
from pipelines.errors import (
    AlertError,
    AlertQueryError,
    StoreError,
    StoreNotFoundError,
    SubscriberError,
    WebAccessError,
    WebConfigError,
)
from pipelines.ground.store import AlertFilter, AlertStore
from pipelines.ground.web import ogc
from pipelines.ground.web.params import parse_bbox, parse_kinds, parse_score, parse_time

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
TOKEN_ENV = "ORBITWATCH_WEB_TOKEN"
#: The console's marker cap: the newest this many matches are drawn (canvas markers stay smooth).
MAX_MARKERS = 10_000
#: Reads go through a memory map (shared by every worker thread's connection via the OS page cache)
#: and a small private page cache: the index of 1,000,000 alerts is ~160 MB, and one private 64 MiB
#: cache per thread (up to 40) would cost more memory and was slower (benchmarks/ground_web.py).
#: (A mapped file truncated under the server, e.g. by VACUUM, can crash it: do not VACUUM a store
#: that a console is serving.)
CACHE_MIB = 8
MMAP_MIB = 1024
_CSP = ("default-src 'self'; img-src 'self' data: blob:{tiles}; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1), the only binds without a token."""
    h = host.strip().strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse (WebConfigError) to listen beyond the loopback interface without a token."""
    if not token and not is_loopback(host):
        raise WebConfigError(
            f"refusing to listen on {host!r} without a token: beyond localhost the console must be started "
            f"with --token (or ${TOKEN_ENV}) so that only token holders can requeue deliveries; "
            "or bind to 127.0.0.1 (the default)")


class StorePool:
    """One AlertStore connection per worker thread (a store connection is not shared between threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def get(self) -> AlertStore:
        """This thread's connection, opened on first use."""
        st = getattr(self._local, "store", None)
        if st is None:
            st = self._local.store = AlertStore(self.path, cache_mib=CACHE_MIB, mmap_mib=MMAP_MIB)
        return st


def thumbnail_png(blob: bytes) -> bytes:
    """A downlinked thumbnail chip as a grey PNG at its native size (the browser scales it up)."""
    import matplotlib.image  # lazy: only the thumbnail route needs matplotlib

    from pipelines.alerts.thumbnail import read_thumbnail

    th = read_thumbnail(blob)
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, th.codes, cmap="gray", vmin=0, vmax=(1 << th.bits) - 1, format="png")
    return buf.getvalue()


def _public_url(url: str) -> str:
    """A subscriber URL without credentials, query or fragment (they may carry secrets)."""
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, netloc, p.path, "", ""))


def _store(request: Request) -> AlertStore:
    """This worker thread's store connection. Called in the route body, not as a dependency: FastAPI
    runs sync dependencies in another pool thread than the route, and a connection is per thread."""
    return request.app.state.stores.get()


def _writer(request: Request) -> None:
    """Dependency of every write route: the app must have a token and the request must present it."""
    token: str | None = request.app.state.token
    if token is None:
        raise WebAccessError(f"this console is read-only: start it with --token (or ${TOKEN_ENV}) to enable requeue")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise WebAccessError("requeue needs the header 'Authorization: Bearer <token>' with the console's token")


Writer = Annotated[None, Depends(_writer)]


def _json(doc: Any, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(json.dumps(doc, separators=(",", ":")), status_code=status, media_type=media_type)


def create_app(store_path: str | Path, token: str | None = None, *, poll_s: float = 2.0,
               max_markers: int = MAX_MARKERS, tiles: str | None = None, title: str = "orbitwatch ground") -> FastAPI:
    """The console + API + OGC API app over one store file (which must exist: a typo opens nothing).

    ``token``: enables the write actions for ``Authorization: Bearer <token>``. ``tiles``: an optional
    XYZ tile URL template (``https://tile.example/{z}/{x}/{y}.png``) drawn under the shipped offline
    land map.
    """
    path = Path(store_path)
    if not path.is_file():
        raise StoreError("no such store (create it with `orbitwatch ground ingest` or `subscribe`)", path)
    if poll_s <= 0 or max_markers < 1:
        raise WebConfigError(f"poll_s must be > 0 and max_markers >= 1, got {poll_s}, {max_markers}")
    with AlertStore(path):  # opens (and migrates) once, before the first request
        pass
    token = token or None
    app = FastAPI(title=title, description="orbitwatch ground console API and OGC API - Features",
                  docs_url=None, redoc_url=None)  # the CDN-hosted doc UIs would not load offline
    app.state.stores = StorePool(path)
    app.state.token = token
    csp = _CSP.format(tiles="" if not tiles else " " + "{0.scheme}://{0.netloc}".format(urlsplit(tiles)))

    @app.exception_handler(AlertQueryError)
    def _bad_query(request: Request, exc: AlertQueryError) -> JSONResponse:
        if isinstance(exc, ogc.OGCError):
            return ogc.ogc_error_response(exc)
        if request.url.path.startswith("/ogc"):
            return ogc.ogc_error_response(ogc.OGCError(exc.reason))
        return JSONResponse({"detail": exc.reason}, status_code=400)

    @app.exception_handler(WebAccessError)
    def _denied(request: Request, exc: WebAccessError) -> JSONResponse:
        if token is None:
            return JSONResponse({"detail": exc.reason}, status_code=403)
        return JSONResponse({"detail": exc.reason}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(SubscriberError)
    def _no_subscriber(request: Request, exc: SubscriberError) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=404)

    @app.exception_handler(StoreNotFoundError)
    def _not_in_store(request: Request, exc: StoreNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=404)

    @app.exception_handler(StoreError)
    def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=503)

    def alert_filter(bbox: str | None, start: str | None, end: str | None, kind: str | None,
                     min_score: float | None) -> AlertFilter:
        return AlertFilter(bbox=parse_bbox(bbox), start=None if not start else parse_time(start),
                           end=None if not end else parse_time(end, end_of_day=True),
                           kinds=parse_kinds(kind) if kind != "" else (), min_score=parse_score(min_score))

    # --- the console ---------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info", summary="What the console needs to start")
    def info(request: Request) -> Response:
        """Store totals and extent, the console's settings, and whether write actions are enabled."""
        st = _store(request)
        ext = st.extent()
        return _json({
            "title": title, "alerts": st.alert_count(), "kinds": list(KINDS), "cursor": st.cursor(),
            "extent": None if ext is None else {"bbox": list(ext[0]), "interval": list(ext[1])},
            "writable": token is not None, "poll_s": poll_s, "max_markers": max_markers, "tiles": tiles,
        })

    @app.get("/api/alerts", summary="Markers of the alerts matching the filters (or those new since a cursor)")
    def alerts(request: Request,
               bbox: Annotated[str | None, Query(description="west,south,east,north (deg)")] = None,
               start: Annotated[str | None, Query(description="first acquisition time, RFC 3339")] = None,
               end: Annotated[str | None, Query(description="last acquisition time, RFC 3339")] = None,
               kind: Annotated[str | None, Query(description="comma-separated kinds; empty: none")] = None,
               min_score: Annotated[float | None, Query()] = None,
               limit: Annotated[int | None, Query(ge=0)] = None,
               since: Annotated[int | None, Query(ge=0, description="cursor: only alerts stored after it")] = None,
               ) -> Response:
        """``points`` are ``[alert_id, kind, score, lon, lat, acquired]``, newest first (with ``since``:
        oldest first, and ``cursor`` to pass next time). ``matched`` is None above 100,000."""
        st = _store(request)
        flt = alert_filter(bbox, start, end, kind, min_score)
        n = max_markers if limit is None else min(limit, max_markers)
        if since is not None:
            cursor, pts = st.alerts_since(since, flt, limit=max(n, 1))
            return _json({"cursor": cursor, "points": pts})
        page = st.query_points(flt, limit=n)
        return _json({"matched": page.matched, "matched_at_least": page.matched_at_least,
                      "returned": len(page.points), "cursor": page.cursor, "points": page.points})

    @app.get("/api/alerts/{alert_id}", summary="One alert: its feature, deliveries and links")
    def alert(alert_id: str, request: Request) -> Response:
        """The GeoJSON Feature, each subscriber's delivery state, and whether a thumbnail was downlinked."""
        st = _store(request)
        feat = st.feature(alert_id)
        q = quote(alert_id, safe="")
        has_thumb = st.thumbnail(alert_id) is not None
        deliveries = st.deliveries_of(alert_id)
        for d in deliveries:
            d["active"] = bool(d["active"])
        return _json({"feature": feat, "deliveries": deliveries, "thumbnail": has_thumb,
                      "links": {"geojson": f"api/alerts/{q}/geojson", "cap": f"api/alerts/{q}/cap",
                                "thumbnail": f"api/alerts/{q}/thumbnail.png" if has_thumb else None,
                                "ogc": f"ogc/collections/alerts/items/{q}"}})

    @app.get("/api/alerts/{alert_id}/geojson", summary="One alert as a GeoJSON Feature")
    def alert_geojson(alert_id: str, request: Request) -> Response:
        st = _store(request)
        return _json(st.feature(alert_id), media_type="application/geo+json")

    @app.get("/api/alerts/{alert_id}/cap", summary="One alert as a CAP 1.2 message")
    def alert_cap(alert_id: str, request: Request) -> Response:
        from pipelines.alerts.cap import alert_to_cap  # lazy: maintained separately

        st = _store(request)
        try:
            xml = alert_to_cap(Alert.from_feature(st.feature(alert_id)))
        except AlertError as exc:
            return JSONResponse({"detail": f"cannot express this alert in CAP: {exc.reason}"}, status_code=422)
        return Response(xml, media_type="application/xml; charset=utf-8")

    @app.get("/api/alerts/{alert_id}/thumbnail.png", summary="One alert's downlinked thumbnail chip")
    def alert_thumbnail(alert_id: str, request: Request) -> Response:
        st = _store(request)
        blob = st.thumbnail(alert_id)
        if blob is None:
            return JSONResponse({"detail": f"no thumbnail was downlinked for {alert_id}"}, status_code=404)
        try:
            png = thumbnail_png(blob)
        except AlertError as exc:
            return JSONResponse({"detail": f"thumbnail of {alert_id} is unreadable: {exc.reason}"}, status_code=422)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/subscribers", summary="Subscribers and their delivery counts by state")
    def subscribers(request: Request) -> Response:
        """pending / delivered / dead per subscriber (URLs without credentials or query)."""
        st = _store(request)
        rows = st.status()
        for r in rows:
            r["url"] = _public_url(r["url"])
        return _json({"subscribers": rows, "writable": token is not None})

    @app.post("/api/alerts/{alert_id}/deliveries/{subscriber}/requeue", summary="Replay one dead letter")
    def requeue_one(alert_id: str, subscriber: str, request: Request, _: Writer) -> Response:
        """Pending again with the same webhook-id; 409 if this delivery is not dead-lettered."""
        st = _store(request)
        if not st.requeue_delivery(alert_id, subscriber):
            return JSONResponse({"detail": f"the delivery of {alert_id} to {subscriber} is not dead-lettered"},
                                status_code=409)
        log.info("requeued %s -> %s from the web console", alert_id, subscriber)
        return _json({"requeued": 1})

    @app.post("/api/subscribers/{subscriber}/requeue", summary="Replay all dead letters of one subscriber")
    def requeue_subscriber(subscriber: str, request: Request, _: Writer) -> Response:
        st = _store(request)
        n = st.requeue_dead(subscriber)
        log.info("requeued %d dead letters of %s from the web console", n, subscriber)
        return _json({"requeued": n})

    app.include_router(ogc.router, prefix="/ogc", tags=["OGC API - Features"])
    return app

