"""Model weights that survive radiation bit flips: verify, detect, restore from a redundant copy.

Why: in orbit, single-event upsets flip bits in flash (the weights file) and in DRAM (the
loaded tensors). A flipped exponent bit in one conv weight turns a vessel detector into
confident nonsense, silently. ECC is not guaranteed on small flight computers, so the model
checks itself.

What is checked, and what the redundant copies are (explicitly):

* **The file, at load** -- :func:`read_verified`: SHA-256 of the weights file against its
  recorded checksum (``<file>.sha256`` or a line in the folder's ``SHA256SUMS``, as shipped in
  ``detectors/weights/``). On a mismatch each *backup file* given (a second copy on another
  storage partition, e.g. ``/backup/weights/sar_centernet.pt``) is verified against the *same*
  recorded checksum and the first good one is used; with ``repair=True`` the primary file is
  rewritten (atomically) from it. :func:`scrub` does that for a whole weights folder (a boot or
  periodic "scrub", as memory controllers do). The checksum files themselves are tiny text; a flip
  there shows up as a mismatch against every copy, and is reported rather than trusted.
* **The loaded tensors, on a schedule** -- :class:`WeightGuard`: right after load it hashes every
  parameter and buffer (one SHA-256 per tensor, so a restoration rewrites only what was hit) and
  keeps a *golden copy*: the state dict serialised to bytes in host memory, with its own SHA-256.
  :meth:`WeightGuard.verify` re-hashes the live tensors; a mismatch is restored in place from the
  golden copy (itself verified first). If the golden copy was hit too, the ``reload`` callable
  (the verified file on storage: a third, independent copy) supplies the tensors and a fresh
  golden copy is taken. :meth:`WeightGuard.tick` runs ``verify`` every ``every_calls`` calls or
  ``every_seconds`` seconds, whichever comes first; detectors call it once per tile batch.

Cost: hashing the ~1 MB of shipped weights takes ~1-2 ms on CPU (plus a device-to-host copy on
CUDA), so checking every 32 batches is noise next to inference. A restoration that does not
make the hashes agree again (a stuck memory cell) raises :class:`~detectors.errors.WeightsError`:
the detector must not keep running on weights it cannot trust.

* **onnxruntime sessions** (``sar-learned``'s onnxruntime runtimes, ``sar-learned-onnx``,
  ``fire-learned-onnx``; :func:`detectors.onnx_runtime.guarded_session`) -- :class:`SessionGuard`:
  onnxruntime keeps the weights inside the session, out of reach of a hash, so the session is
  *rebuilt* on the same schedule (rarer on GPU providers) from the
  model bytes kept in host memory (checked against the file's SHA-256 first; the file is read
  again when that copy was hit). A flip inside the session lives at most until the next rebuild.

Packets carry their own CRC (``pipelines/alerts/packets.py``); that is checked on the ground.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from detectors.errors import WeightsError

log = logging.getLogger(__name__)

#: Suffixes of files :func:`scrub` treats as weights (each must have a recorded checksum).
WEIGHT_SUFFIXES = (".pt", ".onnx")


# ----------------------------------------------------------------------------- files
def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (small flight computers)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_sha256(path: str | Path) -> str:
    """Record ``path``'s checksum where :func:`recorded_sha256` reads it first: its line in
    ``SHA256SUMS`` beside it when that file lists it, else ``<file>.sha256``. The digest."""
    p = Path(path)
    digest = sha256_file(p)
    sums = p.parent / "SHA256SUMS"
    if sums.is_file():
        lines = sums.read_text().splitlines()
        hit = [i for i, ln in enumerate(lines) if [w.lstrip("*") for w in ln.split()[-1:]] == [p.name]]
        if hit:
            for i in hit:
                lines[i] = f"{digest}  {p.name}"
            sums.write_text("\n".join(lines) + "\n")
            return digest
    p.with_name(p.name + ".sha256").write_text(f"{digest}  {p.name}\n")
    return digest


def recorded_sha256(path: str | Path) -> str | None:
    """The checksum recorded for ``path``: its line in ``SHA256SUMS`` beside it, else ``<file>.sha256``."""
    p = Path(path)
    sums = p.parent / "SHA256SUMS"
    if sums.is_file():
        for line in sums.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == p.name:
                return parts[0].lower()
    side = p.with_name(p.name + ".sha256")
    if side.is_file():
        words = side.read_text(errors="replace").split()
        return words[0].lower() if words else None
    return None


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same folder + fsync + rename: a crash mid-repair never leaves half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class FileCheck:
    """What :func:`read_verified` found: which copy was good and whether the primary was repaired."""

    path: Path
    sha256: str
    source: Path  # the copy whose bytes matched (the primary when it was intact)
    repaired: bool = False
    failures: tuple[str, ...] = ()  # one line per copy that did not verify

    @property
    def upset(self) -> bool:
        """True when the primary file did not match its checksum."""
        return self.source != self.path


def read_verified(path: str | Path, sha256: str | None = None, backups: Iterable[str | Path] = (),
                  repair: bool = False) -> tuple[bytes, FileCheck]:
    """Bytes of ``path`` that match its recorded (or given) SHA-256, from the primary or a backup copy.

    Raises WeightsError naming every copy and why it failed when no copy matches, or when no
    checksum is recorded (an unverifiable file is never used).
    """
    p = Path(path)
    want = (sha256 or recorded_sha256(p) or "").lower()
    if not want:
        raise WeightsError(f"no recorded sha256 for {p} (expected {p.name}.sha256 or a line in "
                           f"{p.parent / 'SHA256SUMS'})")
    failures: list[str] = []
    for copy in (p, *(Path(b) for b in backups)):
        try:
            data = copy.read_bytes()
        except OSError as exc:
            failures.append(f"{copy}: cannot read: {exc.strerror or exc}")
            continue
        got = sha256_bytes(data)
        if got != want:
            failures.append(f"{copy}: sha256 {got} != recorded {want}")
            continue
        repaired = False
        if copy != p:
            log.warning("weights %s failed its checksum; using verified backup %s", p, copy)
            if repair:
                _atomic_write_bytes(p, data)
                repaired = sha256_file(p) == want
                log.warning("weights %s repaired from %s (verified: %s)", p, copy, repaired)
        return data, FileCheck(p, want, copy, repaired, tuple(failures))
    raise WeightsError(f"no copy of {p.name} matches its recorded sha256 {want}: " + "; ".join(failures))


def scrub(weights_dir: str | Path, backup_dir: str | Path | None = None, repair: bool = True) -> list[FileCheck]:
    """Verify every weights file in ``weights_dir`` (``*.pt``, ``*.onnx``); repair from ``backup_dir``.

    The backup of ``weights_dir/x.pt`` is ``backup_dir/x.pt``, checked against the checksum
    recorded in ``weights_dir``. Raises WeightsError for the first file with no good copy.
    """
    d = Path(weights_dir)
    out: list[FileCheck] = []
    for f in sorted(d.iterdir()):
        if f.suffix in WEIGHT_SUFFIXES and f.is_file():
            backups = [Path(backup_dir) / f.name] if backup_dir is not None else []
            out.append(read_verified(f, backups=backups, repair=repair)[1])
    return out


# ----------------------------------------------------------------------------- tensors
def _tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's raw bytes (dtype-agnostic: any bit flip changes it)."""
    raw = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
    return hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def tensor_digests(module: nn.Module) -> dict[str, str]:
    """Per-tensor SHA-256 of every parameter and buffer of ``module`` (state-dict names)."""
    return {k: _tensor_digest(v) for k, v in module.state_dict(keep_vars=False).items()
            if isinstance(v, torch.Tensor)}


def state_hash(module: nn.Module) -> str:
    """One SHA-256 over all of ``module``'s tensors (names included): equal iff every bit is equal."""
    h = hashlib.sha256()
    for k, d in sorted(tensor_digests(module).items()):
        h.update(k.encode() + b"\0" + d.encode())
    return h.hexdigest()


@dataclass(frozen=True)
class IntegrityReport:
    """Outcome of one :meth:`WeightGuard.verify`."""

    ok: bool  # True when the live weights matched without any restoration
    corrupted: tuple[str, ...] = ()  # tensors whose hash differed
    restored_from: str | None = None  # "golden" / "reload": live weights restored; "live": golden copy re-taken


def _check_schedule(guard: "WeightGuard | SessionGuard") -> None:
    """WeightsError unless a guard's schedule can fire: at least every call, a positive period."""
    if guard.every_calls < 1 or not guard.every_seconds > 0:
        raise WeightsError(f"{guard.name}: every_calls must be >= 1 and every_seconds > 0, got "
                           f"{guard.every_calls}, {guard.every_seconds}")


def _due(guard: "WeightGuard | SessionGuard") -> bool:
    """Count one use of a guarded model; True when its check is due (calls or seconds)."""
    guard._calls += 1
    return guard._calls >= guard.every_calls or time.monotonic() - guard._last >= guard.every_seconds


@dataclass
class WeightGuard:
    """Periodic in-memory check of a module's weights with restoration from a redundant copy.

    ``reload`` returns a fresh module of the same structure from verified storage; it is the
    fallback when the in-memory golden copy is itself corrupted (see the module docstring).
    """

    module: nn.Module
    reload: Callable[[], nn.Module] | None = None
    every_calls: int = 32
    every_seconds: float = 60.0
    name: str = "model"
    upsets: int = 0  # verify() calls that found corrupted tensors
    restorations: int = 0
    _digests: dict[str, str] = field(default_factory=dict, repr=False)
    _golden: bytes = field(default=b"", repr=False)
    _golden_sha: str = field(default="", repr=False)
    _calls: int = field(default=0, repr=False)
    _last: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        _check_schedule(self)
        self._snapshot()

    def _snapshot(self) -> None:
        """Reference hashes and the golden copy, taken from the (just verified) live weights."""
        state = {k: v.detach().to("cpu").clone() for k, v in self.module.state_dict().items()}
        buf = io.BytesIO()
        torch.save(state, buf)
        self._golden = buf.getvalue()
        self._golden_sha = sha256_bytes(self._golden)
        self._digests = {k: _tensor_digest(v) for k, v in state.items()}
        self._last = time.monotonic()

    @property
    def reference_hash(self) -> str:
        """The combined hash taken at load (compare with :func:`state_hash` of the live module)."""
        h = hashlib.sha256()
        for k, d in sorted(self._digests.items()):
            h.update(k.encode() + b"\0" + d.encode())
        return h.hexdigest()

    def _corrupted(self) -> list[str]:
        live = tensor_digests(self.module)
        return sorted(k for k in set(live) | set(self._digests) if live.get(k) != self._digests.get(k))

    def _restore_from(self, state: Mapping[str, torch.Tensor], names: list[str]) -> None:
        live = self.module.state_dict()
        with torch.no_grad():
            for k in names:
                if k not in live or k not in state:
                    raise WeightsError(f"{self.name}: tensor {k!r} missing from the live model or the copy")
                live[k].copy_(state[k].to(live[k].device))

    def verify(self) -> IntegrityReport:
        """Re-hash the live weights; restore any corrupted tensor. Raises WeightsError if that fails."""
        self._calls = 0
        self._last = time.monotonic()
        bad = self._corrupted()
        golden_ok = sha256_bytes(self._golden) == self._golden_sha
        if not bad:
            if not golden_ok:  # the spare was hit, the live weights are intact: re-take the spare
                log.warning("%s: golden copy of the weights corrupted; re-taken from the verified live weights",
                            self.name)
                self._snapshot()
                return IntegrityReport(ok=False, restored_from="live")
            return IntegrityReport(ok=True)
        self.upsets += 1
        log.error("%s: weights changed in memory (bit flip?) in %d tensor(s): %s", self.name, len(bad),
                  ", ".join(bad[:5]))
        source = "golden"
        if golden_ok:
            state = torch.load(io.BytesIO(self._golden), map_location="cpu", weights_only=True)
            self._restore_from(state, bad)
        elif self.reload is not None:
            source = "reload"
            log.error("%s: golden copy corrupted too; reloading from verified storage", self.name)
            fresh = self.reload()
            self._restore_from(fresh.state_dict(), bad)
        else:
            raise WeightsError(f"{self.name}: weights corrupted in memory ({', '.join(bad[:5])}) and the golden "
                               "copy fails its own checksum; no other copy to restore from")
        still = self._corrupted()
        if still:
            raise WeightsError(f"{self.name}: restoration from the {source} copy did not repair "
                               f"{', '.join(still[:5])} (stuck memory?); refusing to run on these weights")
        if source == "reload":
            self._snapshot()  # the golden copy was bad: replace it from the verified weights
        self.restorations += 1
        log.warning("%s: weights restored from the %s copy (%d tensor(s))", self.name, source, len(bad))
        return IntegrityReport(ok=False, corrupted=tuple(bad), restored_from=source)

    def tick(self) -> IntegrityReport | None:
        """Count one use; run :meth:`verify` when ``every_calls`` uses or ``every_seconds`` have passed."""
        return self.verify() if _due(self) else None


@dataclass
class SessionGuard:
    """An onnxruntime session whose copy of the weights is rebuilt on a schedule from a verified spare.

    Why not :class:`WeightGuard`: onnxruntime keeps the weights inside the session, in its own
    layout, and offers no way to read them back, so they cannot be re-hashed. What can be done is
    to bound how long a flipped bit there lives: every ``every_calls`` uses (or ``every_seconds``)
    the session is replaced by one built from the model's bytes held in host memory - after those
    bytes are checked against the SHA-256 the file was verified with at load. If the spare was hit
    too, the file is read again through :func:`read_verified` (with its backups). Building a
    session of the shipped SAR network takes ~15 ms, against seconds per batch on a CPU.

    ``make``: the model bytes -> a session (:func:`detectors.onnx_runtime.make_session`);
    ``path`` / ``backups``: the verified file, re-read when the in-memory spare fails its hash.
    """

    path: Path
    make: Callable[[bytes], object]
    backups: tuple[Path, ...] = ()
    sha256: str | None = None  # the expected digest when given, else the recorded one
    every_calls: int = 32
    every_seconds: float = 60.0
    name: str = "model"
    refreshes: int = 0  # sessions rebuilt on schedule
    reloads: int = 0  # times the in-memory spare failed its hash and the file was read again
    _bytes: bytes = field(default=b"", repr=False)
    _sha: str = field(default="", repr=False)
    _session: object = field(default=None, repr=False)
    _calls: int = field(default=0, repr=False)
    _last: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        _check_schedule(self)
        self.path = Path(self.path)
        self._load_file()
        self._session = self.make(self._bytes)
        self._last = time.monotonic()
        log.info("%s: onnxruntime session of %s, rebuilt from its verified bytes every %d calls or %g s",
                 self.name, self.path.name, self.every_calls, self.every_seconds)

    def _load_file(self) -> None:
        data, check = read_verified(self.path, sha256=self.sha256, backups=self.backups)
        self._bytes, self._sha = data, check.sha256

    @property
    def session(self) -> object:
        """The live session (replaced by :meth:`refresh`; do not keep a reference across ticks)."""
        return self._session

    def refresh(self) -> str:
        """Rebuild the session from the spare ("golden"), or from the file when the spare fails
        its hash ("reload"); returns which."""
        self._calls = 0
        self._last = time.monotonic()
        source = "golden"
        if sha256_bytes(self._bytes) != self._sha:
            log.error("%s: in-memory copy of %s corrupted; reading the verified file again", self.name, self.path.name)
            self._load_file()
            self.reloads += 1
            source = "reload"
        self._session = self.make(self._bytes)
        self.refreshes += 1
        return source

    def tick(self) -> str | None:
        """Count one use; :meth:`refresh` when ``every_calls`` uses or ``every_seconds`` have passed."""
        return self.refresh() if _due(self) else None
