"""Alerts and their encodings: GeoJSON, CCSDS space packets, CAP 1.2, FIRMS CSV."""

from pipelines.alerts.model import Alert, feature_collection, make_alert_id

__all__ = ["Alert", "feature_collection", "make_alert_id"]
