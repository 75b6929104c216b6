"""Counts calibrated through the lookup table are bit-identical to the general float64 path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.scene import open_scene
from pipelines.scene.radiometry import to_sigma0

SAMPLE = Path(__file__).resolve().parents[1] / "sample_scenes" / "sar" / "lesbos_geo_100cm.tif"


def test_uint16_counts_read_through_the_table_equal_the_float64_path() -> None:
    with open_scene(SAMPLE) as sc:
        data, valid = sc.read(100, 200, 300, 400)
        raw = sc._dataset().read(1, window=((100, 400), (200, 600)))
        rad = sc.radiometry
    assert raw.dtype == np.uint16 and rad is not None and rad.encoding == "amplitude"
    want = to_sigma0(raw.astype(np.float64), rad.encoding, rad.gain)
    ok = raw != 0
    want[~ok] = 0.0
    np.testing.assert_array_equal(data[0], want.astype(np.float32))
    np.testing.assert_array_equal(valid, ok)
    assert data.dtype == np.float32 and data.shape == (1, 300, 400)
