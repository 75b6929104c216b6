"""The orbital node: one object that answers "where, when in contact, sunlit, how much energy and room".

Why a facade: the downlink benchmark and (later) the onboard scheduler need the same answers from
the same configuration; this keeps the config -> TLE -> orbit -> models wiring in one place.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from pipelines.node.config import GroundStation, NodeConfig
from pipelines.node.orbit import ContactWindow, Orbit, contact_windows, eclipse_fraction, load_stations, load_tle
from pipelines.node.power import PowerModel
from pipelines.node.storage import OnboardStorage


class OrbitalNode:
    """A satellite with an orbit, ground stations, a relay, a battery, storage and a GPU."""

    def __init__(self, config: NodeConfig | None = None, stations: list[GroundStation] | None = None) -> None:
        self.config = config or NodeConfig()
        oc = self.config.orbit
        self.tle = load_tle(oc.satellite, oc.tle_file)
        self.orbit = Orbit(self.tle)
        self.stations = stations if stations is not None else load_stations(oc.stations_file)
        self.power = PowerModel(self.config.power)
        self.storage = OnboardStorage(self.config.storage)

    def contacts(self, start: datetime, duration_s: float = 86400.0) -> list[ContactWindow]:
        """X-band passes over the configured stations."""
        return contact_windows(self.orbit, self.stations, start, duration_s)

    def sunlit(self, start: datetime, seconds: np.ndarray) -> np.ndarray:
        return self.orbit.sunlit(start, seconds)

    def eclipse_fraction(self, start: datetime, duration_s: float = 86400.0) -> float:
        return eclipse_fraction(self.orbit, start, duration_s)

    def relay_available(self, start: datetime, seconds: np.ndarray) -> np.ndarray:
        """Relay reachable: enabled and the sub-satellite latitude inside the GEO coverage bound."""
        lk = self.config.link
        if not lk.relay_enabled:
            return np.zeros(np.asarray(seconds).shape, dtype=bool)
        return np.abs(self.orbit.subpoint_lat_deg(start, seconds)) <= lk.relay_max_abs_lat_deg

    def processing_s(self, pixels: int) -> float:
        return self.config.compute.seconds_for(pixels)
