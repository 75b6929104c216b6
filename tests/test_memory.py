"""pipelines.memory: a scanning process keeps its large per-tile blocks in the heap for reuse.

Checked with glibc's own accounting (``mallinfo2``): a 64 MB buffer (a tile's float32
temporary) is a fresh ``mmap`` of its own with the allocator's defaults, and a block of the heap
(reused after ``free``) with the setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import ctypes, json
import numpy as np
from pipelines.memory import keep_large_blocks

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
changed = keep_large_blocks()
again = keep_large_blocks()
before = libc.mallinfo2()
a = np.ones(16 * 1024 * 1024, dtype=np.float32)  # 64 MB
during = libc.mallinfo2()
del a
after = libc.mallinfo2()
print(json.dumps({"changed": changed, "again": again, "mapped": during.hblkhd - before.hblkhd,
                  "heap": during.arena - before.arena, "kept_after_free": after.arena - before.arena}))
"""


def _probe(keep: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "ORBITWATCH_KEEP_HEAP"}
    if keep is not None:
        env["ORBITWATCH_KEEP_HEAP"] = keep
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_kept_blocks_are_reused_instead_of_faulted_in_again() -> None:
    kept, default = _probe(None), _probe("0")
    if not kept["changed"]:  # mallopt(3) documents a 32 MiB cap on the mmap threshold; glibc 2.36 has none
        pytest.skip("this C library refuses a 1 GiB mmap threshold")
    assert kept["again"] is True  # once per process, then remembered
    assert default["changed"] is False
    mb64 = 64 * 1024 * 1024
    # Allocator defaults: the buffer is a mapping of its own (given back to the kernel on free).
    assert default["mapped"] >= mb64 and default["heap"] < mb64
    # With the setting: a heap block, still there after free for the next tile to reuse.
    assert kept["mapped"] == 0 and kept["heap"] >= 0.9 * mb64 and kept["kept_after_free"] >= 0.9 * mb64


def test_a_scan_sets_it_even_when_the_scene_fails(tmp_path: Path) -> None:
    """scan_scene asks for it first (every way in - CLI, flows, node - goes through scan_scene)."""
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a GeoTIFF")
    code = ("import json\nfrom pipelines import memory\nfrom pipelines.detect import scan_scene\n"
            "from pipelines.errors import SceneError\nbefore = memory._done\n"
            f"try:\n    scan_scene({str(bad)!r})\nexcept SceneError:\n    pass\n"
            "print(json.dumps([before, memory._done]))")
    env = {k: v for k, v in os.environ.items() if k != "ORBITWATCH_KEEP_HEAP"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [None, sys.platform.startswith("linux")]
