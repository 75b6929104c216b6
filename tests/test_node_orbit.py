"""TLE validation, contact windows and eclipse geometry of the package's real Capella TLEs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import NodeConfigError
from pipelines.node.config import DEFAULT_TLE_FILE, GroundStation
from pipelines.node.orbit import (
    Orbit,
    analytic_eclipse_fraction,
    contact_windows,
    eclipse_fraction,
    load_stations,
    load_tle,
    merge_windows,
    parse_tle,
    parse_tles,
    tle_checksum,
)

C7 = load_tle("CAPELLA-7-WHITNEY")
SVALBARD = GroundStation("SvalSat", 78.23, 15.41, 500.0, 5.0)


def test_package_tles_all_pass_checksums() -> None:
    tles = parse_tles(DEFAULT_TLE_FILE.read_text())
    assert len(tles) == 8 and {t.name for t in tles} >= {"CAPELLA-2-SEQUOIA", "CAPELLA-7-WHITNEY"}
    for t in tles:
        assert tle_checksum(t.line1) == int(t.line1[68]) and tle_checksum(t.line2) == int(t.line2[68])
    assert C7.satnum == 51072 and C7.epoch.year == 2022 and C7.epoch.timetuple().tm_yday == 270


@pytest.mark.parametrize("mutate, match", [
    (lambda l1, l2: (l1[:68] + str((int(l1[68]) + 1) % 10), l2), "checksum"),
    (lambda l1, l2: (l1, l2[:20] + ("9" if l2[20] != "9" else "8") + l2[21:]), "checksum"),
    (lambda l1, l2: (l1[:-1], l2), "columns"),
    (lambda l1, l2: (l2, l1), "start"),
    (lambda l1, l2: (l1, l2[:2] + "51071" + l2[7:68] + str(tle_checksum(l2[:2] + "51071" + l2[7:68]))), "catalogue"),
])
def test_bad_tles_raise_node_config_error(mutate, match: str) -> None:
    l1, l2 = mutate(C7.line1, C7.line2)
    with pytest.raises(NodeConfigError, match=match):
        parse_tle("X", l1, l2)


def test_unknown_satellite_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match="not in TLE file"):
        load_tle("NOPE")
    (tmp_path / "s.json").write_text('{"stations": [{"name": "x"}]}')
    with pytest.raises(NodeConfigError):
        load_stations(tmp_path / "s.json")
    with pytest.raises(NodeConfigError):
        GroundStation("bad", 95.0, 0.0)


def test_polar_station_sees_sso_many_times_and_elevation_holds_inside() -> None:
    orbit = Orbit(C7)
    start = C7.epoch
    wins = contact_windows(orbit, [SVALBARD], start, 86400.0)
    assert len(wins) >= 10  # an SSO passes a 78 deg N station on most of its ~15 orbits a day
    assert all(120 < w.duration_s < 800 for w in wins) and all(w.max_elev_deg >= 5.0 for w in wins)
    for w in wins[:4]:
        a = (w.aos - start).total_seconds()
        b = (w.los - start).total_seconds()
        inside = orbit.elevation_deg(SVALBARD, start, np.linspace(a + 1, b - 1, 25))
        outside = orbit.elevation_deg(SVALBARD, start, [a - 5, b + 5])
        assert inside.min() >= 5.0 - 0.05 and outside.max() < 5.0


def test_inclined_orbit_never_reaches_svalbard_but_mid_latitude_does() -> None:
    c2 = Orbit(load_tle("CAPELLA-2-SEQUOIA"))  # 45 deg inclination: the ground track tops out at 45 N
    assert contact_windows(c2, [SVALBARD], c2.epoch, 86400.0) == []
    assert len(contact_windows(c2, [GroundStation("Hartebeesthoek", -25.89, 27.69)], c2.epoch, 86400.0)) >= 3


def test_eclipse_fraction_matches_analytic_geometry() -> None:
    orbit = Orbit(C7)
    frac = eclipse_fraction(orbit, C7.epoch, 86400.0, 20.0)
    beta = orbit.beta_angle_deg(C7.epoch + timedelta(hours=12))
    ana = analytic_eclipse_fraction(orbit.altitude_km(C7.epoch), beta)
    assert 0.30 < frac < 0.40
    assert abs(frac - ana) < 0.02


def test_merge_windows_unions_overlaps() -> None:
    orbit = Orbit(C7)
    wins = contact_windows(orbit, load_stations(), C7.epoch, 6 * 3600.0)
    merged = merge_windows(wins, C7.epoch)
    assert len(merged) < len(wins)  # Svalbard and Tromso overlap
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(merged, merged[1:]))


def test_passes_in_progress_are_clipped_to_the_span() -> None:
    orbit = Orbit(C7)
    w = contact_windows(orbit, [SVALBARD], C7.epoch, 86400.0)[3]
    # Start a minute after AOS and stop a minute before LOS: one window, clipped at both ends.
    start, span = w.aos + timedelta(seconds=60), w.duration_s - 120.0
    (inner,) = contact_windows(orbit, [SVALBARD], start, span)
    assert inner.aos == start and inner.los == start + timedelta(seconds=span)
    el = orbit.elevation_deg(SVALBARD, start, np.arange(0.0, span + 1.0, 1.0))
    assert abs(inner.max_elev_deg - el.max()) < 0.01
    # Starting after the culmination leaves the tail of the pass, with its highest point at the start.
    (tail,) = [x for x in contact_windows(orbit, [SVALBARD], w.los - timedelta(seconds=60), 600.0)
               if x.aos == w.los - timedelta(seconds=60)]
    assert abs((tail.los - w.los).total_seconds()) < 1.0
    assert tail.max_elev_deg == pytest.approx(float(orbit.elevation_deg(SVALBARD, tail.aos, [0.0])[0]), abs=1e-6)


def test_max_elevation_is_the_culmination_not_the_best_sample() -> None:
    orbit = Orbit(C7)
    for w in contact_windows(orbit, [SVALBARD], C7.epoch, 4 * 3600.0):
        a = (w.aos - C7.epoch).total_seconds()
        el = orbit.elevation_deg(SVALBARD, C7.epoch, np.arange(a, a + w.duration_s, 1.0))
        assert el.max() - 0.01 <= w.max_elev_deg <= el.max() + 0.01


def test_grazing_pass_shorter_than_a_coarse_step_is_found() -> None:
    # skyfield's find_events searches altitude maxima first, so a pass that peaks just above the
    # mask (here ~7 s above 5 deg) is not stepped over, as a 20 s step-and-bisect search did.
    c2 = Orbit(load_tle("CAPELLA-2-SEQUOIA"))
    wins = contact_windows(c2, [GroundStation("Hartebeesthoek", -25.89, 27.69)], c2.epoch, 86400.0)
    assert any(w.duration_s < 20.0 for w in wins)


def test_sgp4_failure_raises_instead_of_returning_no_passes() -> None:
    c2 = Orbit(load_tle("CAPELLA-2-SEQUOIA"))  # decayed in SGP4's model a few years after epoch
    later = c2.epoch + timedelta(days=5 * 365)
    with pytest.raises(NodeConfigError, match="SGP4"):
        contact_windows(c2, [SVALBARD], later, 3600.0)
    with pytest.raises(NodeConfigError, match="SGP4"):
        c2.elevation_deg(SVALBARD, later, [0.0])
    with pytest.raises(NodeConfigError):
        contact_windows(c2, [SVALBARD], c2.epoch, 0.0)
