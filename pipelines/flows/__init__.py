"""Prefect flows over the orbitwatch pipelines (``prefect deploy`` them, or run them embedded).

Every flow runs with no server at all (Prefect's ephemeral mode starts a temporary local API for
the run) and unchanged against a real server through a deployment (see ``prefect.yaml``).

* ``scan-scene`` / ``scan-folder`` (:mod:`pipelines.flows.scan`): scene bundles -> alerts GeoJSON,
  resumable, cached per scene fingerprint, optionally on a Dask cluster, one GPU job at a time.
* ``deliver-alerts`` (:mod:`pipelines.flows.ground`): downlinked files -> store -> webhooks.
* ``onboard-pass`` / ``downlink-contact`` (:mod:`pipelines.flows.onboard`): onboard collects ->
  durable downlink queue (within the power budget) -> downlink files + acks, per contact.
"""

from pipelines.flows.ground import deliver_alerts
from pipelines.flows.onboard import downlink_contact, onboard_pass
from pipelines.flows.scan import scan_folder, scan_scene

__all__ = ["deliver_alerts", "downlink_contact", "onboard_pass", "scan_folder", "scan_scene"]
