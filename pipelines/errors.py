"""Errors raised by the pipelines package (one module, one base class).

Every error names the file it concerns where there is one, so a batch report can say
which scene failed and why.
"""

from __future__ import annotations

from pathlib import Path


class OrbitwatchError(Exception):
    """Base class of every error orbitwatch's pipelines raise on purpose."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.reason = message


class SceneError(OrbitwatchError, ValueError):
    """A scene bundle cannot be read: missing or malformed sidecar, corrupt TIFF, bad bands."""


class SidecarError(SceneError):
    """The `_extended.json` sidecar is missing, malformed or disagrees with the TIFF."""


class TilingError(OrbitwatchError, ValueError):
    """Tile size / overlap options are inconsistent."""


class AlertError(OrbitwatchError, ValueError):
    """An alert cannot be built, encoded or decoded."""


class PacketError(AlertError):
    """A space packet is malformed or fails its CRC."""


class NodeConfigError(OrbitwatchError, ValueError):
    """The orbital node configuration is inconsistent (orbit, power, storage...)."""


class DownlinkError(OrbitwatchError, RuntimeError):
    """The downlink queue or link model was misused."""


class GroundError(OrbitwatchError, RuntimeError):
    """The ground segment (receiver, store, webhooks) failed."""


class WebhookSignatureError(GroundError, ValueError):
    """A webhook's signature or timestamp does not verify."""


class StoreError(GroundError):
    """The ground alert store cannot be opened, is locked by another process, or is inconsistent."""


class StoreNotFoundError(StoreError, LookupError):
    """The store holds no such alert or delivery (the web app answers 404 for it)."""


class SubscriberError(GroundError, ValueError):
    """A webhook subscriber is misconfigured (secret, URL, filter) or unknown."""


class SceneWriteError(OrbitwatchError, ValueError):
    """A scene bundle cannot be written: bad geolocation, inconsistent arrays or sidecar."""


class WebhookTimestampError(WebhookSignatureError):
    """A webhook's timestamp is missing, malformed or outside the replay tolerance."""


class StorageError(OrbitwatchError, RuntimeError):
    """Onboard storage cannot take an item (larger than the whole store) or was misused."""


class ScanOptionError(OrbitwatchError, ValueError):
    """A scan option is malformed or names a detector the scan does not run (``--option``)."""


class SceneTooLargeError(SceneError):
    """A scene holds more pixels than the scan's pixel budget (``--max-megapixels``)."""


class RadiometryError(SceneError, ValueError):
    """A SAR scene's radiometric encoding (``--radiometry``: intensity, amplitude, dB, display) is
    unknown, or its pixels cannot be in that encoding (negative amplitudes, dB outside -100..+60)."""


class ProductError(SceneError):
    """A provider's product (Landsat folder, Sentinel-2 SAFE, STAC item) is incomplete or
    malformed: a band file or asset missing, a metadata file without a key it must have."""


class StacError(ProductError):
    """A STAC item, catalog or collection cannot be read as scenes (bad JSON, no data asset,
    an asset href that leads nowhere)."""


class SceneTimeoutError(SceneError, TimeoutError):
    """A scene ran past the scan's time budget (``--scene-timeout``); none of its alerts are kept."""


class OutputLockedError(OrbitwatchError, RuntimeError):
    """Another scan is writing the same output (its lock is held)."""


class OutputWriteError(OrbitwatchError, OSError):
    """An output (alerts file, manifest part) could not be written, e.g. the disk is full."""


class QuicklookError(OrbitwatchError, RuntimeError):
    """A scene's quicklook PNG cannot be rendered or written (its alerts stand without it)."""


class AlertQueryError(GroundError, ValueError):
    """A query on the ground alert store is malformed: bbox, time interval, kinds, score, paging."""


class WebConfigError(GroundError, ValueError):
    """The ground web console cannot start as asked (e.g. bound beyond localhost without a token)."""


class WebAccessError(GroundError, PermissionError):
    """A write action of the ground web console was refused (read-only, or a missing/wrong token)."""


class LandMaskError(OrbitwatchError, ValueError):
    """A land mask (``--land-mask``) cannot be used: missing, unreadable, not valid JSON, no polygons,
    empty, a raster without a CRS; or the packaged coastline is not installed."""
