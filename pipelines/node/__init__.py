"""The orbital node: configuration, orbit and contacts, power, storage, compute."""

from pipelines.node.config import (
    ComputeConfig,
    GroundStation,
    LinkConfig,
    NodeConfig,
    OrbitConfig,
    PowerConfig,
    StorageConfig,
)
from pipelines.node.node import OrbitalNode
from pipelines.node.orbit import (
    ContactWindow,
    Orbit,
    Tle,
    analytic_eclipse_fraction,
    contact_windows,
    eclipse_fraction,
    load_stations,
    load_tle,
    merge_windows,
    parse_tle,
    parse_tles,
)
from pipelines.node.power import Job, JobRun, PowerModel, PowerSchedule
from pipelines.node.storage import OnboardStorage, StoredItem

__all__ = ["ComputeConfig", "ContactWindow", "GroundStation", "Job", "JobRun", "LinkConfig", "NodeConfig", "OnboardStorage",
           "Orbit", "OrbitConfig", "OrbitalNode", "PowerConfig", "PowerModel", "PowerSchedule", "StorageConfig",
           "StoredItem", "Tle", "analytic_eclipse_fraction", "contact_windows", "eclipse_fraction", "load_stations",
           "load_tle", "merge_windows", "parse_tle", "parse_tles"]
