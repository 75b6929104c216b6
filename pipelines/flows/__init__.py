"""Prefect flows over the orbitwatch pipelines (``prefect deploy`` them, or run them embedded).

Every flow runs with no server at all (Prefect's ephemeral mode starts a temporary local API for
the run) and unchanged against a real server through a deployment (see ``prefect.yaml``).

* ``scan-scene`` / ``scan-folder`` (:mod:`pipelines.flows.scan`): scene bundles -> alerts GeoJSON,
  resumable, cached per scene fingerprint, optionally on a Dask cluster, one GPU job at a time.
* ``deliver-alerts`` (:mod:`pipelines.flows.ground`): downlinked files -> store -> webhooks.
* ``onboard-pass`` / ``downlink-contact`` (:mod:`pipelines.flows.onboard`): onboard collects ->
  durable downlink queue (within the power budget) -> downlink files + acks, per contact.
"""

from importlib import import_module
from typing import Any

__all__ = ["deliver_alerts", "downlink_contact", "onboard_pass", "scan_folder", "scan_scene"]

#: Where each flow lives. Imported on first use: importing Prefect costs seconds, and the CLI
#: (``orbitwatch flow ...`` is mounted on every ``orbitwatch`` start) must not pay it for ``scan``.
_FLOW_MODULES = {"deliver_alerts": "pipelines.flows.ground", "downlink_contact": "pipelines.flows.onboard",
                 "onboard_pass": "pipelines.flows.onboard", "scan_folder": "pipelines.flows.scan",
                 "scan_scene": "pipelines.flows.scan"}


def __getattr__(name: str) -> Any:
    if name in _FLOW_MODULES:
        return getattr(import_module(_FLOW_MODULES[name]), name)
    raise AttributeError(f"module 'pipelines.flows' has no attribute {name!r}")
