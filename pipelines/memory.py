"""How a scanning process asks the C allocator to keep large blocks (glibc ``mallopt``).

Why: a scan allocates and frees the same few large buffers for every tile (a 4000 x 4000 tile
is 64 MB of float32, and every detector step makes such temporaries). glibc serves any block
above its mmap threshold (at most 32 MB with its dynamic default) with a fresh ``mmap`` and
gives it back to the kernel on ``free``; the next tile's buffer is mapped again and every one
of its pages is faulted in and zeroed by the kernel. On the 2-vCPU benchmark machine that was
7.3 s of system time in a 24 s two-scene scan (``/usr/bin/time -v``). Raising the mmap and trim
thresholds keeps those blocks in the heap for reuse: the scan's system time fell to 3-5 s and
its wall time by ~1.5-2 s (``benchmarks/scan_cpu.py``), at the price of the process keeping
its peak heap (peak RSS ~2.9 -> 3.4-3.5 GB on that scan) instead of returning it between tiles.

No allocator library fits (jemalloc/tcmalloc would have to be preloaded before Python starts,
which a user's ``orbitwatch`` or Prefect worker does not do), so this is two ``mallopt`` calls
through ctypes, once per process. Elsewhere (macOS, musl, Windows) it does nothing.
The setting is per process: a long-lived host of scans (a Prefect worker, the node) keeps its
peak heap between scans too. ``ORBITWATCH_KEEP_HEAP=0`` in the environment leaves the allocator's
defaults alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks below this are served from the heap, and free heap is returned to the kernel only above
#: it: 1 GiB, more than any per-tile buffer of a scan (a 8192 px float32 tile is 256 MB).
KEEP_BYTES = 1 << 30
#: Environment variable that turns this off ("0", "false", "no").
ENV = "ORBITWATCH_KEEP_HEAP"

_done: bool | None = None


def keep_large_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds once per process (see the module docstring).

    Returns whether the allocator was changed (now or by an earlier call)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        log.debug("%s set: allocator defaults kept", ENV)
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library (no ldconfig lookup)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt thresholds)
        log.debug("no glibc mallopt: allocator defaults kept")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Each on its own: a C library that refuses one (the mallopt(3) page documents a 32 MiB cap on
    # the mmap threshold; glibc 2.36 accepts 1 GiB) still gets the other.
    mmap_ok = bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES))
    trim_ok = bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    if not mmap_ok:
        log.info("this C library refused an mmap threshold of %d bytes: large blocks stay mapped", KEEP_BYTES)
    log.debug("glibc thresholds set to %d bytes: mmap %s, trim %s", KEEP_BYTES, mmap_ok, trim_ok)
    _done = mmap_ok and trim_ok
    return _done
