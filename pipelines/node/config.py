"""The orbital node's one typed configuration: orbit, power, storage, link and compute.

Why one config: every number the downlink benchmark reports follows from these parameters, so
each default carries its source (a datasheet, a standard, the issue brief) or says plainly that it
is an assumption. Load from a dict, JSON or TOML; anything inconsistent raises NodeConfigError.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import NodeConfigError

log = logging.getLogger(__name__)

#: Package data (TLEs, ground stations) lives next to this package.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_TLE_FILE = DATA_DIR / "capella.tle"
DEFAULT_STATIONS_FILE = DATA_DIR / "ground_stations.json"

#: Solar constant, total solar irradiance at 1 AU (Kopp & Lean 2011, GRL 38, L01706: 1360.8 W/m^2).
SOLAR_CONSTANT_W_M2 = 1361.0


@dataclass(frozen=True, slots=True)
class GroundStation:
    """A ground antenna: geodetic WGS84 position and its elevation mask."""

    name: str
    lat: float
    lon: float
    alt_m: float = 0.0
    min_elev_deg: float = 5.0

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise NodeConfigError(f"station {self.name!r}: position out of range ({self.lat}, {self.lon})")
        if not (0.0 <= self.min_elev_deg < 90.0):
            raise NodeConfigError(f"station {self.name!r}: min_elev_deg must be in [0, 90), got {self.min_elev_deg}")


@dataclass(frozen=True, slots=True)
class OrbitConfig:
    """Which satellite, which stations, how finely to search for contacts."""

    #: TLE file (3-line format); None = the package's Capella TLEs (pipelines/data/capella.tle).
    tle_file: str | None = None
    #: Satellite name in the TLE file. CAPELLA-7-WHITNEY: sun-synchronous 97.47 deg, ~530 km
    #: (CelesTrak elements of 2022-09-27; see pipelines/data/README.md).
    satellite: str = "CAPELLA-7-WHITNEY"
    #: Stations file; None = the package's reference set (pipelines/data/ground_stations.json).
    stations_file: str | None = None
    #: Retired: the step and bisection tolerance of the old hand-written contact search. Contacts
    #: now come from skyfield's ``find_events`` (roots to well under a second, no step to choose).
    #: Still accepted, and still range-checked, so that existing config files keep loading; a
    #: non-default value is logged as having no effect.
    step_s: float = 20.0
    refine_tol_s: float = 0.5

    def __post_init__(self) -> None:
        if not (0.0 < self.step_s <= 120.0):
            raise NodeConfigError(f"orbit.step_s must be in (0, 120] s, got {self.step_s}")
        if not (0.0 < self.refine_tol_s <= self.step_s):
            raise NodeConfigError(f"orbit.refine_tol_s must be in (0, step_s], got {self.refine_tol_s}")
        if (self.step_s, self.refine_tol_s) != (20.0, 0.5):
            log.warning("orbit.step_s / orbit.refine_tol_s have no effect any more: contact windows come from "
                        "skyfield's find_events; remove them from the config")


@dataclass(frozen=True, slots=True)
class PowerConfig:
    """Energy budget. Solar power = S * area * efficiency * packing * pointing (while sunlit)."""

    #: Deployable array area. Assumption: no public Capella figure; ~1.5 m^2 is the class of
    #: 100-kg SAR smallsats' deployable wings.
    solar_array_area_m2: float = 1.5
    #: Triple-junction GaAs cell efficiency at beginning of life (Spectrolab XTJ Prime datasheet: 30.7% AM0).
    cell_efficiency: float = 0.30
    #: Cell area / panel area (assumption, typical 0.8-0.9 for rigid panels).
    packing_factor: float = 0.85
    #: Mean cosine of the sun angle on the array: a SAR bus slews for collects, so not always
    #: sun-pointing (assumption).
    pointing_factor: float = 0.8
    #: Battery capacity. Assumption (~5 kg of Li-ion at ~160 Wh/kg).
    battery_wh: float = 800.0
    #: Deepest allowed discharge: LEO Li-ion is kept to 20-40% DoD for tens of thousands of cycles
    #: (Wertz & Larson, Space Mission Analysis and Design, 3rd ed., sec. 11.4).
    max_depth_of_discharge: float = 0.30
    #: State of charge at the start of the simulated day (assumption).
    initial_soc: float = 0.90
    #: Always-on bus load: avionics, ADCS, thermal, receivers (assumption for a ~100 kg smallsat).
    bus_load_w: float = 150.0
    #: SAR payload draw while collecting (assumption: kW-class peak for an X-band SAR).
    sar_imaging_w: float = 1000.0
    #: X-band transmitter DC draw while downlinking (assumption: ~10 W RF at ~20% efficiency plus modem).
    xband_tx_w: float = 60.0
    #: Relay terminal draw while transmitting (assumption: L-band data terminal class).
    relay_terminal_w: float = 30.0

    def __post_init__(self) -> None:
        for name in ("solar_array_area_m2", "battery_wh"):
            if not getattr(self, name) > 0:
                raise NodeConfigError(f"power.{name} must be > 0, got {getattr(self, name)}")
        for name in ("cell_efficiency", "packing_factor", "pointing_factor", "initial_soc"):
            if not (0.0 < getattr(self, name) <= 1.0):
                raise NodeConfigError(f"power.{name} must be in (0, 1], got {getattr(self, name)}")
        if not (0.0 < self.max_depth_of_discharge < 1.0):
            raise NodeConfigError(f"power.max_depth_of_discharge must be in (0, 1), got {self.max_depth_of_discharge}")
        if self.initial_soc < self.floor_soc:
            raise NodeConfigError(f"power.initial_soc {self.initial_soc} is below the DoD floor {self.floor_soc}")
        for name in ("bus_load_w", "sar_imaging_w", "xband_tx_w", "relay_terminal_w"):
            if getattr(self, name) < 0:
                raise NodeConfigError(f"power.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def solar_w(self) -> float:
        """Array output while sunlit."""
        return (SOLAR_CONSTANT_W_M2 * self.solar_array_area_m2 * self.cell_efficiency
                * self.packing_factor * self.pointing_factor)

    @property
    def floor_soc(self) -> float:
        """Lowest state of charge processing may leave the battery at."""
        return 1.0 - self.max_depth_of_discharge


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Onboard mass memory."""

    #: Assumption: 2 TB of solid-state mass memory (no public Capella figure).
    capacity_bytes: int = 2_000_000_000_000
    #: What to drop first when full: "oldest" or "lowest_priority" (then oldest).
    retention: str = "oldest"

    def __post_init__(self) -> None:
        if self.capacity_bytes <= 0:
            raise NodeConfigError(f"storage.capacity_bytes must be > 0, got {self.capacity_bytes}")
        if self.retention not in ("oldest", "lowest_priority"):
            raise NodeConfigError(f"storage.retention must be 'oldest' or 'lowest_priority', got {self.retention!r}")


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """X-band direct-to-ground link and the optional low-rate GEO relay."""

    #: X-band downlink rate. 400 Mbps: the Capella figure given in the issue brief (not
    #: independently verified here; Capella has also quoted higher rates for later buses).
    xband_rate_bps: float = 400e6
    #: Fraction of the channel rate lost to framing and coding: CCSDS 131.0-B Reed-Solomon
    #: (255,223) costs 12.5%, the 4-byte ASM per 1115-byte frame another 0.4% -> 0.13.
    protocol_overhead: float = 0.13
    #: Antenna acquisition / carrier lock at the start of each contact (assumption).
    contact_setup_s: float = 30.0
    #: Capella tasks and reports through Inmarsat's IDRS (Inter-satellite Data Relay System,
    #: L-band via the Inmarsat-4 GEO fleet; Capella-Inmarsat agreement announced 2020).
    relay_enabled: bool = True
    #: Relay data rate: L-band BGAN-class terminals carry a few hundred kbps (assumption: 200 kbps).
    relay_rate_bps: float = 200e3
    #: Session setup + GEO hop + ground network to the operations centre (assumption; the GEO
    #: round trip alone is ~0.5 s).
    relay_latency_s: float = 10.0
    #: The relay is reachable while the sub-satellite latitude is within this bound (Inmarsat-4
    #: GEO coverage ends near +-75-80 deg; assumption 75 deg).
    relay_max_abs_lat_deg: float = 75.0
    #: Post-decoding bit error rate (0 for the benchmark; tests use a lossy channel).
    bit_error_rate: float = 0.0

    def __post_init__(self) -> None:
        if not self.xband_rate_bps > 0:
            raise NodeConfigError(f"link.xband_rate_bps must be > 0, got {self.xband_rate_bps}")
        if not (0.0 <= self.protocol_overhead < 1.0):
            raise NodeConfigError(f"link.protocol_overhead must be in [0, 1), got {self.protocol_overhead}")
        if self.contact_setup_s < 0 or self.relay_latency_s < 0:
            raise NodeConfigError("link.contact_setup_s and link.relay_latency_s must be >= 0")
        if self.relay_enabled and not self.relay_rate_bps > 0:
            raise NodeConfigError(f"link.relay_rate_bps must be > 0, got {self.relay_rate_bps}")
        if not (0.0 < self.relay_max_abs_lat_deg <= 90.0):
            raise NodeConfigError(f"link.relay_max_abs_lat_deg must be in (0, 90], got {self.relay_max_abs_lat_deg}")
        if not (0.0 <= self.bit_error_rate < 0.5):
            raise NodeConfigError(f"link.bit_error_rate must be in [0, 0.5), got {self.bit_error_rate}")

    def payload_bytes(self, rate_bps: float, duration_s: float) -> int:
        """User bytes a link carries in ``duration_s``: rate x time, less the protocol overhead."""
        return int(max(0.0, duration_s) * rate_bps / 8.0 * (1.0 - self.protocol_overhead))


@dataclass(frozen=True, slots=True)
class ComputeConfig:
    """The onboard processor that forms and scans scenes."""

    #: Default device: NVIDIA Jetson AGX Orin 64GB, 15-60 W configurable (NVIDIA Jetson AGX
    #: Orin Series datasheet). A Starcloud-1-like H100 is power_w=700 (H100 SXM datasheet TDP).
    device: str = "jetson-agx-orin-64gb"
    #: Scene pixels processed per second, end to end. PLACEHOLDER (assumption) until replaced by
    #: the throughput measured with `orbitwatch scan` on the flight-like device.
    throughput_mpx_s: float = 50.0
    #: Draw while processing (the Orin's 60 W mode, datasheet).
    power_w: float = 60.0

    def __post_init__(self) -> None:
        if not (self.throughput_mpx_s > 0 and self.power_w >= 0):
            raise NodeConfigError("compute.throughput_mpx_s must be > 0 and compute.power_w >= 0")

    def seconds_for(self, pixels: int) -> float:
        """Processing time for a scene of ``pixels`` pixels."""
        return pixels / (self.throughput_mpx_s * 1e6)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything the orbital node and the downlink benchmark need."""

    orbit: OrbitConfig = field(default_factory=OrbitConfig)
    power: PowerConfig = field(default_factory=PowerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NodeConfig":
        """Build from nested dicts; unknown sections or keys are errors, not silently ignored."""
        if not isinstance(data, dict):
            raise NodeConfigError(f"node config must be a mapping, got {type(data).__name__}")
        return _build(cls, data, "node")

    @classmethod
    def load(cls, path: str | Path) -> "NodeConfig":
        """Read a ``.json`` or ``.toml`` file."""
        p = Path(path)
        try:
            if p.suffix.lower() == ".toml":
                data = tomllib.loads(p.read_text(encoding="utf-8"))
            elif p.suffix.lower() == ".json":
                data = json.loads(p.read_text(encoding="utf-8"))
            else:
                raise NodeConfigError("node config must be .json or .toml", p)
        except OSError as exc:
            raise NodeConfigError(f"cannot read node config: {exc}", p) from exc
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise NodeConfigError(f"malformed node config: {exc}", p) from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-ready): the benchmark records the config it ran with."""
        return dataclasses.asdict(self)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert one leaf value against its annotation (float, int, str, bool, optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if tp is bool:
        if not isinstance(value, bool):
            raise NodeConfigError(f"{where} must be true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise NodeConfigError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise NodeConfigError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise NodeConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise NodeConfigError(f"{where}: unsupported config type {tp!r}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise NodeConfigError(f"{where}: unknown keys {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise NodeConfigError(f"{where}.{name} must be a table/object")
            kwargs[name] = _build(tp, value, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, tp, f"{where}.{name}")
    return cls(**kwargs)


#: Where each default comes from (the benchmark prints this table; a test keeps it complete).
PARAM_SOURCES: dict[str, str] = {
    "orbit.tle_file": "package data: CelesTrak TLEs of Capella-1..8, epoch 2022-09-27 (pipelines/data/README.md)",
    "orbit.satellite": "CAPELLA-7-WHITNEY: sun-synchronous 97.47 deg, ~530 km (its TLE)",
    "orbit.stations_file": "package data: KSAT/SANSA/Awarua/ASF stations, 5 deg mask (ground_stations.json _source)",
    "orbit.step_s": "retired (no effect): contacts come from skyfield's find_events",
    "orbit.refine_tol_s": "retired (no effect): contacts come from skyfield's find_events",
    "power.solar_array_area_m2": "assumption (no public Capella figure)",
    "power.cell_efficiency": "Spectrolab XTJ Prime datasheet, 30.7% BOL AM0",
    "power.packing_factor": "assumption, typical rigid panel",
    "power.pointing_factor": "assumption: SAR bus slews for collects",
    "power.battery_wh": "assumption (~5 kg Li-ion)",
    "power.max_depth_of_discharge": "Wertz & Larson, SMAD 3rd ed. sec. 11.4: LEO Li-ion 20-40% DoD",
    "power.initial_soc": "assumption",
    "power.bus_load_w": "assumption, ~100 kg smallsat housekeeping",
    "power.sar_imaging_w": "assumption, kW-class SAR transmit",
    "power.xband_tx_w": "assumption: ~10 W RF at ~20% efficiency + modem",
    "power.relay_terminal_w": "assumption: L-band data terminal",
    "storage.capacity_bytes": "assumption (no public Capella figure)",
    "storage.retention": "policy choice",
    "link.xband_rate_bps": "issue brief: Capella X-band downlink 400 Mbps (not independently verified)",
    "link.protocol_overhead": "CCSDS 131.0-B RS(255,223) 12.5% + 4-byte ASM per 1115-byte frame",
    "link.contact_setup_s": "assumption: antenna acquisition and carrier lock",
    "link.relay_enabled": "Capella uses Inmarsat IDRS (L-band GEO relay), agreement announced 2020",
    "link.relay_rate_bps": "assumption: BGAN-class L-band terminal, a few hundred kbps",
    "link.relay_latency_s": "assumption: session setup + GEO hop (~0.5 s) + terrestrial network",
    "link.relay_max_abs_lat_deg": "assumption: Inmarsat-4 GEO coverage ends near +-75-80 deg",
    "link.bit_error_rate": "benchmark: error-free after decoding; tests use a lossy channel",
    "compute.device": "NVIDIA Jetson AGX Orin 64GB (datasheet 15-60 W); Starcloud-1 flies an H100",
    "compute.throughput_mpx_s": "PLACEHOLDER assumption: to be replaced by measured scan throughput",
    "compute.power_w": "NVIDIA Jetson AGX Orin datasheet: 60 W max mode",
}
