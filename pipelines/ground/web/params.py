"""Query parameters shared by the console API and the OGC API: bbox, times, kinds.

Both parse the same way so that a console filter and an OGC request with the same values select
the same alerts. Errors are :class:`~pipelines.errors.AlertQueryError` (a ValueError): the apps map
them to HTTP 400 with the message.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timezone

from pipelines.alerts.model import KINDS
from pipelines.errors import AlertQueryError


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``west,south,east,north`` (or the OGC 3-D ``w,s,zmin,e,n,zmax``, heights ignored) in degrees."""
    if text is None or not text.strip():
        return None
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise AlertQueryError(f"bbox must be numbers west,south,east,north, got {text!r}") from exc
    if len(vals) == 6:
        vals = [vals[0], vals[1], vals[3], vals[4]]
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise AlertQueryError(f"bbox must be four finite numbers west,south,east,north, got {text!r}")
    w, s, e, n = vals
    return (w, s, e, n)


def parse_time(text: str, end_of_day: bool = False) -> datetime:
    """An RFC 3339 / ISO 8601 instant (``Z`` or an offset; none means UTC) or a date.

    A bare date is the whole day: its first instant, or with ``end_of_day`` its last microsecond,
    so ``2024-07-01/2024-07-01`` selects that day.
    """
    s = text.strip()
    try:
        if len(s) == 10:
            d = date.fromisoformat(s)
            t = time.max if end_of_day else time.min
            return datetime.combine(d, t, tzinfo=timezone.utc)
        dt = datetime.fromisoformat(s.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as exc:
        raise AlertQueryError(f"not an RFC 3339 date-time: {text!r}") from exc
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse_interval(text: str | None) -> tuple[datetime | None, datetime | None]:
    """OGC API ``datetime``: an instant, ``start/end``, or half-bounded ``../end``, ``start/..`` (or empty)."""
    if text is None or not text.strip():
        return None, None
    if "/" not in text:
        if len(text.strip()) == 10:  # a date: that whole day
            return parse_time(text), parse_time(text, end_of_day=True)
        t = parse_time(text)
        return t, t
    a, _, b = text.partition("/")
    start = None if a.strip() in ("", "..") else parse_time(a)
    end = None if b.strip() in ("", "..") else parse_time(b, end_of_day=True)
    if start is None and end is None:
        raise AlertQueryError(f"datetime interval open at both ends: {text!r}")
    if start is not None and end is not None and start > end:
        raise AlertQueryError(f"datetime interval starts after it ends: {text!r}")
    return start, end


def parse_kinds(text: str | None) -> tuple[str, ...] | None:
    """Comma-separated kinds (``vessel,fire``); None or empty means every kind."""
    if text is None or not text.strip():
        return None
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise AlertQueryError(f"unknown kind(s) {bad}: choose among {', '.join(KINDS)}")
    return kinds


def parse_score(value: float | None) -> float | None:
    """A minimum score in [0, 1] (None: no minimum)."""
    if value is None:
        return None
    if not 0.0 <= value <= 1.0:
        raise AlertQueryError(f"min_score must be in [0, 1], got {value}")
    return value


__all__ = ["parse_bbox", "parse_interval", "parse_kinds", "parse_score", "parse_time"]
