"""OGC API - Features (Part 1: Core, GeoJSON) over the ground alert store, at ``/ogc/``.

One collection, ``alerts``: every stored alert as its GeoJSON Feature (the output contract of
``orbitwatch scan``), in CRS84. ``/ogc/collections/alerts/items`` takes ``bbox``, ``datetime``,
``limit``/``offset`` (with ``next``/``prev`` links), ``kind`` (comma list) and ``min_score``; a
single alert is ``/ogc/collections/alerts/items/{alert_id}``. Queries run on the store's R*Tree
index (:meth:`AlertStore.query`), so QGIS panning over a million alerts stays fast.

Why these endpoints are written here and not served by pygeoapi (evaluated: pygeoapi 0.21.0):
* its ASGI app (``pygeoapi.starlette_app``) reads its configuration from the PYGEOAPI_CONFIG and
  PYGEOAPI_OPENAPI files once, at import, into module globals: one store per process, set through
  environment variables and generated YAML/OpenAPI files before the import. Our app is built per
  store by ``create_app(store_path)`` (the tests run several in one process);
* its SQLite provider needs SpatiaLite geometry tables (``mod_spatialite``); our store keeps lon/lat
  columns and an R*Tree, so a custom provider class would be needed anyway -- and the provider is
  where the work is (bbox, datetime, paging and counts on the index). What pygeoapi would add on top
  (landing page, conformance, collection and paging documents) is the ~200 lines below;
* it would bring Flask, SQLAlchemy, shapely, pyproj, pygeofilter, tinydb and Babel (~370 MB
  installed with its dependencies) into the ground segment for that. (It does install next to our
  fastapi==0.141.1 / pydantic 2 pins: the pins were not the obstacle.)
The documents follow OGC 17-069r4 (OGC API - Features - Part 1: Core 1.0); checked with OWSLib's
``owslib.ogcapi.features`` client (tests/test_ground_web.py) and QGIS's OAPIF provider.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pipelines.errors import AlertQueryError, StoreNotFoundError
from pipelines.ground.store import AlertFilter, AlertStore
from pipelines.ground.web.params import parse_bbox, parse_interval, parse_kinds

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
COLLECTION = "alerts"
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
#: Count matches exactly up to this many; beyond, numberMatched is left out (it is optional).
COUNT_LIMIT = 100_000
GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
ITEMS_PARAMS = frozenset({"bbox", "bbox-crs", "datetime", "limit", "offset", "kind", "min_score", "f", "crs"})
SINGLE_PARAMS = frozenset({"f", "crs"})

router = APIRouter()


class OGCError(AlertQueryError):
    """An OGC API request error with its HTTP status and OGC exception code."""

    def __init__(self, message: str, status: int = 400, code: str = "InvalidParameterValue") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def ogc_error_response(exc: OGCError) -> JSONResponse:
    """The OGC exception document (``code``, ``description``) as the spec's examples give it."""
    return JSONResponse({"code": exc.code, "description": exc.reason}, status_code=exc.status)


def _store(request: Request) -> AlertStore:
    return request.app.state.stores.get()


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def _json(doc: Any, media_type: str = JSON, status: int = 200) -> Response:
    # json.dumps straight to bytes: FastAPI's encoder walks every coordinate of a 10,000-feature page.
    return Response(json.dumps(doc, separators=(",", ":")), status_code=status, media_type=media_type)


def _check_params(request: Request, allowed: frozenset[str]) -> None:
    """Req. /req/core/query-param-unknown (400) and the formats and CRS we serve (JSON, CRS84 only)."""
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise OGCError(f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    f = request.query_params.get("f")
    if f is not None and f not in ("json", "geojson"):
        raise OGCError(f"f={f!r}: only json / geojson are served")
    for name in ("crs", "bbox-crs"):
        v = request.query_params.get(name)
        if v is not None and v != CRS84:
            raise OGCError(f"{name}={v!r}: only {CRS84} is supported")


def _collection_doc(base: str, st: AlertStore) -> dict[str, Any]:
    ext = st.extent()
    bbox, interval = ([-180.0, -90.0, 180.0, 90.0], [None, None]) if ext is None else (list(ext[0]), list(ext[1]))
    url = f"{base}/collections/{COLLECTION}"
    return {
        "id": COLLECTION,
        "title": "orbitwatch alerts",
        "description": "Vessels, lifeboats and wildfires detected on board and downlinked (GeoJSON Point "
                       "features, properties as in the orbitwatch output contract).",
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": {"spatial": {"bbox": [bbox], "crs": CRS84}, "temporal": {"interval": [interval], "trs": GREGORIAN}},
        "links": [
            {"href": url, "rel": "self", "type": JSON, "title": "this collection"},
            {"href": f"{url}/items", "rel": "items", "type": GEOJSON, "title": "the alerts"},
        ],
    }


def _require_collection(cid: str) -> None:
    if cid != COLLECTION:
        raise OGCError(f"no collection {cid!r} (there is one: {COLLECTION!r})", status=404, code="NotFound")


def _int(request: Request, name: str, default: int, lo: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError as exc:
        raise OGCError(f"{name} must be an integer, got {raw!r}") from exc
    if v < lo:
        raise OGCError(f"{name} must be >= {lo}, got {v}")
    return v


@router.get("/", summary="OGC API landing page")
def landing(request: Request) -> Response:
    """Links to the API definition, the conformance declaration and the collections."""
    _check_params(request, SINGLE_PARAMS)
    base = _base(request)
    return _json({
        "title": "orbitwatch ground alerts",
        "description": "OGC API - Features over the orbitwatch ground alert store.",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": JSON, "title": "this document"},
            {"href": f"{base}/api", "rel": "service-desc", "type": OPENAPI,
             "title": "the API definition (OpenAPI 3.0)"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": JSON, "title": "conformance classes"},
            {"href": f"{base}/collections", "rel": "data", "type": JSON, "title": "the collections"},
        ],
    })


def _param(name: str, schema: dict[str, Any], description: str, style: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description,
            **(style or {})}


def openapi_doc(base: str) -> dict[str, Any]:
    """The OpenAPI 3.0 definition of these endpoints (Req. /req/oas30/*).

    Written out rather than taken from FastAPI's ``/openapi.json``: that one is OpenAPI 3.1, and these
    routes read their query parameters themselves (to answer 400 on unknown ones, as the standard
    requires), so FastAPI cannot describe them.
    """
    fc = {"type": "object", "required": ["type", "features"],
          "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                         "features": {"type": "array", "items": {"$ref": "#/components/schemas/feature"}},
                         "numberMatched": {"type": "integer", "minimum": 0},
                         "numberReturned": {"type": "integer", "minimum": 0},
                         "timeStamp": {"type": "string", "format": "date-time"},
                         "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}}}}
    feature = {"type": "object", "required": ["type", "geometry", "properties"],
               "properties": {"type": {"type": "string", "enum": ["Feature"]}, "id": {"type": "string"},
                              "geometry": {"type": "object"}, "properties": {"type": "object"},
                              "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}}}}
    link = {"type": "object", "required": ["href"], "properties": {k: {"type": "string"} for k in
                                                                  ("href", "rel", "type", "title")}}
    err = {"description": "error", "content": {JSON: {"schema": {"type": "object", "properties": {
        "code": {"type": "string"}, "description": {"type": "string"}}}}}}
    js = {"description": "ok", "content": {JSON: {"schema": {"type": "object"}}}}
    f = _param("f", {"type": "string", "enum": ["json", "geojson"]}, "response format (JSON only)")
    crs = _param("crs", {"type": "string", "enum": [CRS84]}, "response CRS (CRS84 only)")
    cid = {"name": "collectionId", "in": "path", "required": True, "schema": {"type": "string", "enum": [COLLECTION]}}
    items_params = [
        cid,
        _param("bbox", {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
               "west,south,east,north in CRS84 degrees; west > east crosses the antimeridian",
               {"style": "form", "explode": False}),
        _param("bbox-crs", {"type": "string", "enum": [CRS84]}, "CRS of bbox (CRS84 only)"),
        _param("datetime", {"type": "string"}, "acquisition instant or interval: t, a/b, ../b, a/.."),
        _param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
               "items per page"),
        _param("offset", {"type": "integer", "minimum": 0, "default": 0}, "items to skip (next links set it)"),
        _param("kind", {"type": "array", "items": {"type": "string", "enum": ["vessel", "lifeboat", "fire"]}},
               "only these kinds", {"style": "form", "explode": False}),
        _param("min_score", {"type": "number", "minimum": 0, "maximum": 1}, "only alerts with score >= this"),
        f, crs,
    ]
    geo = {"description": "ok", "content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/featureCollection"}}}}
    one = {"description": "ok", "content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/feature"}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "orbitwatch ground alerts - OGC API - Features", "version": "1.0.0"},
        "servers": [{"url": base}],
        "paths": {
            "/": {"get": {"operationId": "landing", "parameters": [f], "responses": {"200": js}}},
            "/api": {"get": {"operationId": "api", "responses": {"200": js}}},
            "/conformance": {"get": {"operationId": "conformance", "parameters": [f], "responses": {"200": js}}},
            "/collections": {"get": {"operationId": "collections", "parameters": [f], "responses": {"200": js}}},
            "/collections/{collectionId}": {"get": {"operationId": "collection", "parameters": [cid, f],
                                                    "responses": {"200": js, "404": err}}},
            "/collections/{collectionId}/items": {"get": {"operationId": "items", "parameters": items_params,
                                                          "responses": {"200": geo, "400": err, "404": err}}},
            "/collections/{collectionId}/items/{featureId}": {"get": {
                "operationId": "item", "parameters": [cid, {"name": "featureId", "in": "path", "required": True,
                                                            "schema": {"type": "string"}}, f, crs],
                "responses": {"200": one, "404": err}}},
        },
        "components": {"schemas": {"featureCollection": fc, "feature": feature, "link": link}},
    }


@router.get("/api", summary="OpenAPI 3.0 definition of the OGC API")
def api_definition(request: Request) -> Response:
    """The service-desc of the landing page."""
    _check_params(request, SINGLE_PARAMS)
    return _json(openapi_doc(_base(request)), "application/vnd.oai.openapi+json;version=3.0")


@router.get("/conformance", summary="OGC API conformance declaration")
def conformance(request: Request) -> Response:
    """The conformance classes implemented: Features Part 1 Core and GeoJSON."""
    _check_params(request, SINGLE_PARAMS)
    return _json({"conformsTo": CONFORMANCE})


@router.get("/collections", summary="The feature collections")
def collections(request: Request) -> Response:
    """One collection: ``alerts``."""
    _check_params(request, SINGLE_PARAMS)
    base = _base(request)
    return _json({"links": [{"href": f"{base}/collections", "rel": "self", "type": JSON}],
                  "collections": [_collection_doc(base, _store(request))]})


@router.get("/collections/{collection_id}", summary="One feature collection")
def collection(collection_id: str, request: Request) -> Response:
    """The ``alerts`` collection: its extent (from the stored alerts) and the link to its items."""
    _check_params(request, SINGLE_PARAMS)
    _require_collection(collection_id)
    return _json(_collection_doc(_base(request), _store(request)))


def items_filter(request: Request) -> AlertFilter:
    """The selection of an items request (bbox, datetime, kind, min_score) as a store filter."""
    q = request.query_params
    start, end = parse_interval(q.get("datetime"))
    raw_score = q.get("min_score")
    try:
        min_score = None if raw_score is None else float(raw_score)
    except ValueError as exc:
        raise OGCError(f"min_score must be a number, got {raw_score!r}") from exc
    return AlertFilter(bbox=parse_bbox(q.get("bbox")), start=start, end=end, kinds=parse_kinds(q.get("kind")),
                       min_score=min_score)


@router.get("/collections/{collection_id}/items", summary="Alerts, filtered and paged",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def items(collection_id: str, request: Request) -> Response:
    """GeoJSON FeatureCollection, newest first: ``bbox`` (CRS84; west > east crosses 180),
    ``datetime`` (instant, ``a/b``, ``../b``, ``a/..``), ``limit`` (1..10000, default 100), ``offset``,
    ``kind`` (vessel,lifeboat,fire) and ``min_score`` (0..1)."""
    _check_params(request, ITEMS_PARAMS)
    _require_collection(collection_id)
    limit = min(_int(request, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    offset = _int(request, "offset", 0, 0)
    page = _store(request).query(items_filter(request), limit=limit, offset=offset, count_limit=COUNT_LIMIT)
    base = f"{_base(request)}/collections/{COLLECTION}/items"
    params = dict(request.query_params)

    def link(rel: str, off: int) -> dict[str, str]:
        return {"href": f"{base}?{urlencode({**params, 'limit': limit, 'offset': off})}", "rel": rel,
                "type": GEOJSON}

    links = [{"href": f"{base}?{urlencode(params)}" if params else base, "rel": "self", "type": GEOJSON},
             {"href": f"{_base(request)}/collections/{COLLECTION}", "rel": "collection", "type": JSON}]
    if page.has_more:
        links.append(link("next", offset + limit))
    if offset > 0:
        links.append(link("prev", max(0, offset - limit)))
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": page.features,
                           "timeStamp": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
                           "numberReturned": len(page.features), "links": links}
    if page.matched is not None:
        doc["numberMatched"] = page.matched
    return _json(doc, GEOJSON)


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One alert",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def item(collection_id: str, feature_id: str, request: Request) -> Response:
    """One alert's GeoJSON Feature by its ``alert_id``."""
    _check_params(request, SINGLE_PARAMS)
    _require_collection(collection_id)
    try:
        feat = _store(request).feature(feature_id)
    except StoreNotFoundError as exc:
        raise OGCError(f"no alert {feature_id!r}", status=404, code="NotFound") from exc
    base = f"{_base(request)}/collections/{COLLECTION}"
    feat["links"] = [{"href": f"{base}/items/{quote(feature_id, safe='')}", "rel": "self", "type": GEOJSON},
                     {"href": base, "rel": "collection", "type": JSON}]
    return _json(feat, GEOJSON)


__all__ = ["CONFORMANCE", "OGCError", "items_filter", "ogc_error_response", "router"]
