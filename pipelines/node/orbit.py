"""Where the satellite is: TLEs (checksummed), SGP4, ground contacts, sunlight and eclipse.

Why skyfield for frames and passes: ``EarthSatellite.find_events`` searches for altitude maxima
first and then brackets each rise and set, so it finds passes that a fixed-step search misses
(grazing passes shorter than the step) and reports the true culmination rather than the highest
sample; its TEME -> ITRS -> topocentric chain applies UT1 from the IERS table bundled with
skyfield. Against the former GMST-only rotation and 20 s step-and-bisect search (one day of
CAPELLA-2 and CAPELLA-7 over the package's stations) it finds the same passes, AOS/LOS within
0.3 s and elevations within 2e-4 deg; peaks come out up to 6 deg higher on near-zenith passes
(the true culmination, not the best 20 s sample). Everything is offline:
``load.timescale(builtin=True)`` reads the tables bundled with skyfield, and frames and passes
need no ephemeris.

Why the sun stays hand-written: skyfield's sun (and ``is_sunlit``) needs a JPL ephemeris file,
i.e. a download or an extra 17 MB data package, for what the Astronomical Almanac's
low-precision formula does to about 0.01 deg, far finer than an eclipse boundary needs. The TLE
checksum validation also stays ours: neither sgp4 nor skyfield checks TLE checksums.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import numpy as np
from sgp4.api import SGP4_ERRORS, Satrec
from skyfield.api import EarthSatellite, Time, Timescale, load, wgs84
from skyfield.toposlib import GeographicPosition

from pipelines.errors import NodeConfigError
from pipelines.node.config import DEFAULT_STATIONS_FILE, DEFAULT_TLE_FILE, GroundStation

log = logging.getLogger(__name__)

#: WGS84 equatorial radius (NIMA TR8350.2).
WGS84_A_KM = 6378.137
#: Earth's equatorial radius used for the cylindrical shadow.
EARTH_RADIUS_KM = WGS84_A_KM
UNIX_EPOCH_JD = 2440587.5
J2000_JD = 2451545.0


# --- TLEs --------------------------------------------------------------------------------------

def tle_checksum(line: str) -> int:
    """Modulo-10 checksum of a TLE line's first 68 columns: digits count, '-' counts 1."""
    return sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68]) % 10


@dataclass(frozen=True, slots=True)
class Tle:
    """One validated two-line element set."""

    name: str
    line1: str
    line2: str

    @property
    def satnum(self) -> int:
        return int(self.line1[2:7])

    @property
    def epoch(self) -> datetime:
        """Element epoch (UTC) from columns 19-32 of line 1."""
        yy = int(self.line1[18:20])
        day = float(self.line1[20:32])
        year = 2000 + yy if yy < 57 else 1900 + yy
        return datetime(year, 1, 1, tzinfo=timezone.utc) + timedelta(days=day - 1.0)


def parse_tle(name: str, line1: str, line2: str) -> Tle:
    """Validate layout, line numbers, matching catalogue numbers and both checksums."""
    l1, l2 = line1.rstrip(), line2.rstrip()
    for no, line in ((1, l1), (2, l2)):
        if len(line) != 69:
            raise NodeConfigError(f"TLE {name!r} line {no}: {len(line)} columns, expected 69")
        if line[0] != str(no) or line[1] != " ":
            raise NodeConfigError(f"TLE {name!r} line {no}: does not start with '{no} '")
        if not line[68].isdigit() or tle_checksum(line) != int(line[68]):
            raise NodeConfigError(f"TLE {name!r} line {no}: checksum {line[68]!r} != {tle_checksum(line)}")
    if l1[2:7] != l2[2:7]:
        raise NodeConfigError(f"TLE {name!r}: catalogue numbers differ ({l1[2:7]} vs {l2[2:7]})")
    sat = Satrec.twoline2rv(l1, l2)
    if sat.error:
        raise NodeConfigError(f"TLE {name!r}: sgp4 rejects it: {SGP4_ERRORS.get(sat.error, sat.error)}")
    return Tle(name=name.strip(), line1=l1, line2=l2)


def parse_tles(text: str) -> list[Tle]:
    """Parse 3-line (name + 2 lines) or bare 2-line TLE text."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    out: list[Tle] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("1 ") and i + 1 < len(lines) and lines[i + 1].startswith("2 "):
            name, l1, l2 = f"SAT-{lines[i][2:7].strip()}", lines[i], lines[i + 1]
            i += 2
        elif i + 2 < len(lines):
            name, l1, l2 = lines[i], lines[i + 1], lines[i + 2]
            i += 3
        else:
            raise NodeConfigError(f"TLE text: dangling lines at line {i + 1}")
        out.append(parse_tle(name, l1, l2))
    if not out:
        raise NodeConfigError("TLE text holds no element sets")
    return out


def load_tle(name: str, path: str | Path | None = None) -> Tle:
    """The named satellite's TLE from ``path`` (default: the package's Capella file)."""
    p = Path(path) if path is not None else DEFAULT_TLE_FILE
    try:
        text = p.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise NodeConfigError(f"cannot read TLE file: {exc}", p) from exc
    tles = parse_tles(text)
    for t in tles:
        if t.name == name:
            return t
    raise NodeConfigError(f"satellite {name!r} not in TLE file (has {[t.name for t in tles]})", p)


def load_stations(path: str | Path | None = None) -> list[GroundStation]:
    """Ground stations from JSON ``{"stations": [{name, lat, lon, alt_m, min_elev_deg}, ...]}``."""
    p = Path(path) if path is not None else DEFAULT_STATIONS_FILE
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        return [GroundStation(name=str(s["name"]), lat=float(s["lat"]), lon=float(s["lon"]),
                              alt_m=float(s.get("alt_m", 0.0)), min_elev_deg=float(s.get("min_elev_deg", 5.0)))
                for s in doc["stations"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise NodeConfigError(f"malformed ground stations file: {exc}", p) from exc


# --- time and frames -------------------------------------------------------------------------

def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def julian_dates(start: datetime, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whole, fraction) Julian dates: split so that float64 keeps sub-millisecond precision."""
    unix = _utc(start).timestamp() + np.asarray(seconds, dtype=np.float64)
    days = np.floor(unix / 86400.0)
    return UNIX_EPOCH_JD + days, (unix - days * 86400.0) / 86400.0


def gmst_rad(jd: np.ndarray, fr: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time, IAU-82 (Vallado, Fundamentals of Astrodynamics, eq. 3-47).

    Only for pipelines.alerts.firms' solar zenith angle (with :func:`sun_vector_eci`); satellite
    frames use skyfield's.
    """
    t = ((jd - J2000_JD) + fr) / 36525.0
    sec = 67310.54841 + (876600.0 * 3600.0 + 8640184.812866) * t + 0.093104 * t**2 - 6.2e-6 * t**3
    return np.radians(np.mod(sec, 86400.0) / 240.0)


@cache
def timescale() -> Timescale:
    """skyfield's timescale from its bundled leap-second and UT1 tables (never downloads)."""
    return load.timescale(builtin=True)


def skyfield_times(start: datetime, seconds: Sequence[float] | np.ndarray) -> Time:
    """skyfield Times ``seconds`` (UTC seconds, as julian_dates counts them) after ``start``."""
    u = _utc(start)
    secs = np.atleast_1d(np.asarray(seconds, dtype=np.float64))
    return timescale().utc(u.year, u.month, u.day, u.hour, u.minute, u.second + u.microsecond / 1e6 + secs)


def station_topos(station: GroundStation) -> GeographicPosition:
    """The station as a WGS84 geodetic position (skyfield GeographicPosition)."""
    return wgs84.latlon(station.lat, station.lon, elevation_m=station.alt_m)


def sun_vector_eci(jd: np.ndarray, fr: np.ndarray) -> np.ndarray:
    """Unit vector to the sun, mean equator of date (Astronomical Almanac low-precision, ~0.01 deg)."""
    t = ((jd - J2000_JD) + fr) / 36525.0
    lam_m = np.radians(280.460 + 36000.771 * t)
    m = np.radians(357.5291092 + 35999.05034 * t)
    lam = lam_m + np.radians(1.914666471 * np.sin(m) + 0.019994643 * np.sin(2 * m))
    eps = np.radians(23.439291 - 0.0130042 * t)
    v = np.stack([np.cos(lam), np.cos(eps) * np.sin(lam), np.sin(eps) * np.sin(lam)], axis=-1)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- the orbit -------------------------------------------------------------------------------

class Orbit:
    """SGP4 propagation of one TLE, with the geometry the node needs."""

    def __init__(self, tle: Tle) -> None:
        self.tle = tle
        self.sat = Satrec.twoline2rv(tle.line1, tle.line2)
        #: The same elements for skyfield's frames and pass search.
        self.satellite = EarthSatellite.from_satrec(self.sat, timescale())

    @property
    def epoch(self) -> datetime:
        return self.tle.epoch

    def teme(self, start: datetime, seconds: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions and velocities (km, km/s, TEME) plus the Julian dates used."""
        secs = np.atleast_1d(np.asarray(seconds, dtype=np.float64))
        jd, fr = julian_dates(start, secs)
        err, r, v = self.sat.sgp4_array(jd, fr)
        if np.any(err):
            code = int(err[np.nonzero(err)[0][0]])
            raise NodeConfigError(f"{self.tle.name}: SGP4 failed ({SGP4_ERRORS.get(code, code)})")
        return np.asarray(r), np.asarray(v), np.stack([jd, fr])

    def _check_sgp4(self, messages: object) -> None:
        # skyfield turns SGP4 errors into NaN positions plus a message, not an exception.
        bad = [m for m in np.atleast_1d(np.asarray(messages, dtype=object)) if m]
        if bad:
            raise NodeConfigError(f"{self.tle.name}: SGP4 failed ({bad[0]})")

    def subpoint_lat_deg(self, start: datetime, seconds: Sequence[float] | np.ndarray) -> np.ndarray:
        """Geocentric latitude of the satellite (within 0.2 deg of the subpoint's geodetic one).

        Straight from TEME: the rotation to Earth-fixed is about z and leaves latitude alone, so
        this needs no frame change (skyfield's full GCRS chain costs ~50x more on a day of 5 s steps).
        """
        r, _, _ = self.teme(start, seconds)
        return np.degrees(np.arctan2(r[:, 2], np.hypot(r[:, 0], r[:, 1])))

    def elevation_deg(self, station: GroundStation, start: datetime,
                      seconds: Sequence[float] | np.ndarray) -> np.ndarray:
        """Elevation of the satellite above the station's geodetic horizon (no refraction)."""
        t = skyfield_times(start, seconds)
        pos = (self.satellite - station_topos(station)).at(t)
        self._check_sgp4(pos.message)
        return np.atleast_1d(pos.altaz()[0].degrees)

    def sunlit(self, start: datetime, seconds: Sequence[float] | np.ndarray) -> np.ndarray:
        """True where the satellite is outside Earth's cylindrical shadow.

        Cylindrical, not conical: the penumbra lasts ~10 s per transit at 500 km, so the umbra
        fraction differs by well under 1% of the orbit.
        """
        r, _, jdf = self.teme(start, seconds)
        s = sun_vector_eci(jdf[0], jdf[1])
        along = np.einsum("ij,ij->i", r, s)
        perp = np.linalg.norm(r - along[:, None] * s, axis=1)
        return ~((along < 0.0) & (perp < EARTH_RADIUS_KM))

    def beta_angle_deg(self, when: datetime) -> float:
        """Sun angle above the orbit plane; sets how long eclipses last."""
        r, v, jdf = self.teme(when, [0.0])
        h = np.cross(r[0], v[0])
        s = sun_vector_eci(jdf[0], jdf[1])[0]
        return float(np.degrees(np.arcsin(np.dot(h / np.linalg.norm(h), s))))

    def altitude_km(self, when: datetime) -> float:
        r, _, _ = self.teme(when, [0.0])
        return float(np.linalg.norm(r[0]) - EARTH_RADIUS_KM)


def eclipse_fraction(orbit: Orbit, start: datetime, duration_s: float = 86400.0, step_s: float = 10.0) -> float:
    """Fraction of ``duration_s`` spent in Earth's shadow, sampled every ``step_s``."""
    t = np.arange(0.0, duration_s, step_s)
    return float(1.0 - orbit.sunlit(start, t).mean())


def analytic_eclipse_fraction(altitude_km: float, beta_deg: float) -> float:
    """Circular-orbit cylindrical-shadow eclipse fraction (standard geometry, e.g. SMAD 3rd ed. ch. 5):

    f = acos( sqrt(h^2 + 2 R h) / ((R + h) cos beta) ) / pi, zero when the root exceeds 1.
    Used to cross-check the sampled SGP4 + sun-vector result.
    """
    r = EARTH_RADIUS_KM
    x = math.sqrt(altitude_km**2 + 2 * r * altitude_km) / ((r + altitude_km) * math.cos(math.radians(beta_deg)))
    return 0.0 if x >= 1.0 else math.acos(x) / math.pi


# --- contacts --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ContactWindow:
    """One pass over one station, above its elevation mask."""

    station: str
    aos: datetime
    los: datetime
    max_elev_deg: float

    @property
    def duration_s(self) -> float:
        return (self.los - self.aos).total_seconds()


def contact_windows(orbit: Orbit, stations: Iterable[GroundStation], start: datetime,
                    duration_s: float = 86400.0) -> list[ContactWindow]:
    """Every pass above each station's mask (skyfield ``find_events``), sorted by AOS.

    Passes already in progress at ``start`` (or still at the end) are clipped to the span; their
    ``max_elev_deg`` is then the highest point inside the span.
    """
    start = _utc(start)
    if duration_s <= 0:
        raise NodeConfigError(f"contact search span must be > 0 s, got {duration_s}")
    # find_events cannot report SGP4 failures (decay): fail here instead of returning no passes.
    orbit.teme(start, np.linspace(0.0, duration_s, 2 + int(duration_s // 600.0)))
    t0, t1 = skyfield_times(start, [0.0, duration_s])
    out: list[ContactWindow] = []
    for st in stations:
        times, events = orbit.satellite.find_events(station_topos(st), t0, t1, altitude_degrees=st.min_elev_deg)
        secs = [(u - start).total_seconds() for u in times.utc_datetime()]
        ends = orbit.elevation_deg(st, start, [0.0, duration_s])
        peaks = orbit.elevation_deg(st, start, secs) if secs else np.empty(0)
        aos: float | None = 0.0 if ends[0] >= st.min_elev_deg else None
        peak = float(ends[0])
        for sec, ev, el in zip(secs, events, peaks):
            sec, el = min(max(sec, 0.0), duration_s), float(el)
            if ev == 0:  # rise
                aos, peak = sec, el
                continue
            if aos is None:  # culmination or set without a rise: the pass was in progress at start
                aos, peak = 0.0, float(ends[0])
            peak = max(peak, el)
            if ev == 2:  # set
                out.append(ContactWindow(station=st.name, aos=start + timedelta(seconds=aos),
                                         los=start + timedelta(seconds=sec), max_elev_deg=peak))
                aos = None
        if aos is not None:  # still above the mask at the end of the span
            out.append(ContactWindow(station=st.name, aos=start + timedelta(seconds=aos),
                                     los=start + timedelta(seconds=duration_s), max_elev_deg=max(peak, float(ends[1]))))
    out.sort(key=lambda w: w.aos)
    log.debug("%d contact windows over %d s", len(out), duration_s)
    return out


def merge_windows(windows: Iterable[ContactWindow], start: datetime) -> list[tuple[float, float]]:
    """Union of contact intervals in seconds from ``start``.

    Why: the satellite has one X-band chain, so two stations seeing it at once add no capacity.
    """
    iv = sorted(((w.aos - _utc(start)).total_seconds(), (w.los - _utc(start)).total_seconds()) for w in windows)
    merged: list[tuple[float, float]] = []
    for a, b in iv:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
