"""Errors raised by the detectors package (one module, one base class)."""

from __future__ import annotations


class DetectorError(Exception):
    """Base class of every error the detectors package raises on purpose."""


class DetectorInputError(DetectorError, ValueError):
    """A tensor or parameter given to a detector is unusable (shape, dtype, missing band...)."""


class MissingBandError(DetectorInputError, KeyError):
    """An optical detector needs a band the tile does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "missing band"


class UnknownDetectorError(DetectorError, KeyError):
    """No detector is registered under the requested name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown detector"


class WeightsError(DetectorError, RuntimeError):
    """Model weights are missing, corrupt or fail their checksum."""


class SynthError(DetectorError, ValueError):
    """A synthetic scene was requested with impossible parameters (sizes, counts, physics).

    Lives here, not in ``pipelines.errors``, because the generator (``detectors.synth``) is
    pure compute that training imports on a bare GPU box, where ``pipelines`` is off limits.
    """
