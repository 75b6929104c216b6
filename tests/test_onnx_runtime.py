"""onnxruntime sessions on a CPU: the memory pattern is off, and that changes no output bit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from detectors import onnx_runtime  # noqa: E402
from detectors.onnx_runtime import make_session  # noqa: E402
from detectors.sar import network  # noqa: E402


def test_a_cpu_session_runs_without_the_memory_pattern() -> None:
    sess = make_session(network.verify_weights(network.ONNX_FILE), "cpu")
    assert sess.get_session_options().enable_mem_pattern is False


@pytest.mark.parametrize("path", [network.ONNX_FILE, network.INT8_ONNX_FILE], ids=["float32", "int8"])
def test_outputs_are_the_same_bits_with_and_without_the_memory_pattern(path, monkeypatch) -> None:
    # the fine pass's case: a different number of windows every call
    rng = np.random.default_rng(7)
    batches = [(rng.standard_normal((n, 2, 64, 64)) * 0.5).astype(np.float32) for n in (3, 1, 5, 3)]
    outs = {}
    for pattern in (True, False):
        monkeypatch.setattr(onnx_runtime, "CPU_MEM_PATTERN", pattern)
        sess = make_session(network.verify_weights(path), "cpu")
        assert sess.get_session_options().enable_mem_pattern is pattern
        outs[pattern] = [sess.run(None, {network.ONNX_INPUT: x}) for x in batches]
    for a, b in zip(outs[True], outs[False]):
        for u, v in zip(a, b):
            assert u.shape == v.shape and np.array_equal(u, v)
