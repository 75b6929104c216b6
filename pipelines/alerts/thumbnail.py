"""Optional thumbnail chip around an alert: a few hundred bytes an analyst can eyeball.

Why this format: a 32x32 chip of SAR amplitude in dB, quantised to ``bits`` levels between its own
2nd and 98th percentiles, bit-packed and zlib-compressed. PNG would add ~60 bytes of chunk overhead
for nothing on a 1 kB image; the lo/hi dB bounds travel in the blob so the ground can map codes
back to dB. Speckle is close to incompressible, so the bit depth, not zlib, is what sets the size
(measured sizes: tests/test_alerts_thumbnail.py and benchmarks/README_downlink.md).

Blob: ``u8 format | u8 side | u8 bits | u8 flags (bit0: log) | f32 lo | f32 hi | zlib(packed codes)``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from pipelines.alerts.model import Alert
from pipelines.alerts.packets import APID_THUMBNAIL, DecodedPacket, SequenceCounter, encode_thumbnail_segments
from pipelines.errors import AlertError, PacketError

FORMAT = 1
_HEAD = struct.Struct(">BBBBff")


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """Decoded chip: integer codes plus the scale that maps them back to (dB or linear) values."""

    codes: np.ndarray  # (side, side) uint8 in [0, 2**bits - 1]
    bits: int
    lo: float
    hi: float
    log: bool

    def values(self) -> np.ndarray:
        """Codes back to dB (log) or linear units, at the centre of each quantisation bin."""
        levels = (1 << self.bits) - 1
        return self.lo + (self.codes.astype(np.float64) / levels) * (self.hi - self.lo)


def _chip(image: np.ndarray, row: float, col: float, side: int) -> np.ndarray:
    """``side`` x ``side`` window centred on (row, col); outside the image is NaN."""
    out = np.full((side, side), np.nan, dtype=np.float64)
    r0, c0 = int(round(row)) - side // 2, int(round(col)) - side // 2
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + side, image.shape[0]), min(c0 + side, image.shape[1])
    if rs < re and cs < ce:
        out[rs - r0:re - r0, cs - c0:ce - c0] = image[rs:re, cs:ce]
    return out


def make_thumbnail(image: np.ndarray, row: float, col: float, side: int = 32, bits: int = 4,
                   log: bool = True) -> bytes:
    """Encode the chip around (row, col) of a 2-D band. ``log``: amplitude -> 20 log10 (SAR)."""
    if image.ndim != 2:
        raise AlertError(f"thumbnail needs a 2-D band, got shape {image.shape}")
    if not (8 <= side <= 128):
        raise AlertError(f"thumbnail side must be in [8, 128], got {side}")
    if bits not in (1, 2, 4, 8):
        raise AlertError(f"thumbnail bits must be 1, 2, 4 or 8, got {bits}")
    chip = _chip(np.asarray(image, dtype=np.float64), row, col, side)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            chip = 20.0 * np.log10(np.where(chip > 0, chip, np.nan))
    finite = chip[np.isfinite(chip)]
    if finite.size:
        lo, hi = (float(v) for v in np.percentile(finite, [2.0, 98.0]))
    else:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        hi = lo + 1.0
    lo, hi = float(np.float32(lo)), float(np.float32(hi))
    levels = (1 << bits) - 1
    codes = np.clip(np.round((np.nan_to_num(chip, nan=lo) - lo) / (hi - lo) * levels), 0, levels).astype(np.uint8)
    packed = _pack(codes.ravel(), bits)
    return _HEAD.pack(FORMAT, side, bits, int(log), lo, hi) + zlib.compress(packed, 9)


def _pack(codes: np.ndarray, bits: int) -> bytes:
    if bits == 8:
        return codes.tobytes()
    per = 8 // bits
    pad = (-codes.size) % per
    c = np.concatenate([codes, np.zeros(pad, np.uint8)]).reshape(-1, per).astype(np.uint16)
    shifts = np.arange(per - 1, -1, -1, dtype=np.uint16) * bits
    return (c << shifts).sum(axis=1).astype(np.uint8).tobytes()


def _unpack(data: bytes, n: int, bits: int) -> np.ndarray:
    b = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return b[:n].copy()
    per = 8 // bits
    shifts = np.arange(per - 1, -1, -1, dtype=np.uint8) * bits
    return ((b[:, None] >> shifts) & ((1 << bits) - 1)).astype(np.uint8).ravel()[:n]


def read_thumbnail(blob: bytes) -> Thumbnail:
    """Inverse of :func:`make_thumbnail`; AlertError on anything malformed."""
    if len(blob) < _HEAD.size:
        raise AlertError("thumbnail blob shorter than its header")
    fmt, side, bits, flags, lo, hi = _HEAD.unpack_from(blob)
    if fmt != FORMAT or bits not in (1, 2, 4, 8) or not (8 <= side <= 128):
        raise AlertError(f"unsupported thumbnail (format {fmt}, side {side}, bits {bits})")
    try:
        packed = zlib.decompress(blob[_HEAD.size:])
    except zlib.error as exc:
        raise AlertError(f"thumbnail payload does not decompress: {exc}") from exc
    n = side * side
    if len(packed) * (8 // bits) < n:
        raise AlertError("thumbnail payload too short for its size")
    return Thumbnail(codes=_unpack(packed, n, bits).reshape(side, side), bits=bits, lo=lo, hi=hi, log=bool(flags & 1))


def thumbnail_packets(alert: Alert, blob: bytes, counter: SequenceCounter) -> list[bytes]:
    """Segment a thumbnail into space packets, advancing the thumbnail APID's sequence count."""
    first = counter.peek(APID_THUMBNAIL)
    pk = encode_thumbnail_segments(alert.alert_id, blob, first)
    for _ in pk:
        counter.next(APID_THUMBNAIL)
    return pk


class ThumbnailAssembler:
    """Ground side: collect thumbnail segments (any order) until each blob is whole."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[int, bytes]] = {}
        self._total: dict[str, int] = {}

    def add(self, pkt: DecodedPacket) -> tuple[str, bytes] | None:
        """Add one decoded segment; returns (alert_id, blob) when the blob is complete."""
        if pkt.thumb is None:
            raise PacketError(f"APID 0x{pkt.apid:03x} packet is not a thumbnail segment")
        seg = pkt.thumb
        if self._total.setdefault(seg.alert_id, seg.total_len) != seg.total_len:
            raise PacketError(f"thumbnail {seg.alert_id}: segments disagree on total length")
        parts = self._parts.setdefault(seg.alert_id, {})
        parts[seg.offset] = seg.data
        got = sum(len(v) for v in parts.values())
        if got < seg.total_len:
            return None
        blob = b"".join(parts[k] for k in sorted(parts))
        del self._parts[seg.alert_id], self._total[seg.alert_id]
        if len(blob) != seg.total_len:
            raise PacketError(f"thumbnail {seg.alert_id}: overlapping segments")
        return seg.alert_id, blob

    def discard(self, alert_id: str) -> None:
        """Forget one blob's segments (they disagree): its next complete retransmission starts afresh."""
        self._parts.pop(alert_id, None)
        self._total.pop(alert_id, None)

    @property
    def incomplete(self) -> list[str]:
        """Alert ids with missing segments (to be re-requested)."""
        return sorted(self._parts)


__all__ = ["Thumbnail", "ThumbnailAssembler", "make_thumbnail", "read_thumbnail", "thumbnail_packets"]
