"""One place that decides how an ONNX model is run by onnxruntime (shared by every learned detector).

Why a helper: the on-board GPU may or may not have TensorRT/CUDA libraries that *load*
(``onnxruntime-gpu`` lists the TensorRT and CUDA providers whenever it is installed, even on a
machine without a GPU), and every detector must pick the same order - TensorRT, then CUDA,
then CPU - and fall back cleanly instead of failing in the middle of a pass.

* :func:`available_providers` - what this onnxruntime build offers, in our preference order.
* :func:`providers_for` - the providers to ask for on a given torch device (GPU providers only
  for a CUDA device, and only when torch can see a GPU: otherwise onnxruntime spends seconds
  failing to create a CUDA context before falling back).
* :func:`make_session` - an :class:`onnxruntime.InferenceSession`; raises
  :class:`~detectors.errors.WeightsError` when the file cannot be loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import torch

from detectors.errors import WeightsError

log = logging.getLogger(__name__)

#: Preference order: TensorRT (fused fp16/fp32 engines), CUDA, then CPU which always exists.
PROVIDER_ORDER: tuple[str, ...] = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDERS = PROVIDER_ORDER[:2]


def _ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a hard dependency
        raise WeightsError("onnxruntime is not installed") from exc
    return ort


def available_providers() -> list[str]:
    """Providers this onnxruntime build offers, restricted to and ordered as :data:`PROVIDER_ORDER`."""
    avail = set(_ort().get_available_providers())
    return [p for p in PROVIDER_ORDER if p in avail]


def providers_for(device: torch.device | str | None) -> list[str]:
    """Providers to request for ``device``: TensorRT, CUDA (CUDA devices with a visible GPU only), CPU."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    avail = available_providers()
    use_gpu = dev.type == "cuda" and torch.cuda.is_available()
    out = [p for p in avail if use_gpu or p not in _GPU_PROVIDERS]
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


#: Why CPU sessions run without onnxruntime's memory pattern (``enable_mem_pattern``, on by
#: default): the pattern is traced and a block laid out per input shape, which pays when every
#: call has one shape. A SAR scan's do not (three grids per tile, and a fine pass with a different
#: number of windows each tile). ``python benchmarks/ort_mem_pattern.py`` replays the CPU
#: benchmark's calls in fresh processes (2-vCPU Xeon, medians of 3): the grid calls took 6.47 s
#: with it and 5.56 s without, the fine-pass calls 3.09 and 3.04 s; the outputs are the same bits
#: (the pattern only places buffers). GPU sessions keep onnxruntime's default (not measured there).
CPU_MEM_PATTERN = False


def make_session(path: str | Path, device: torch.device | str | None = None,
                 intra_op_threads: int | None = None, model: bytes | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path`` with providers in TensorRT, CUDA, CPU order.

    ``device`` selects whether GPU providers are requested at all (a CPU detector must stay on the
    CPU even on a GPU machine). ``intra_op_threads`` caps CPU threads (None: onnxruntime's default).
    ``model``: the file's bytes, already read and verified (a session rebuilt from the in-memory
    copy, :class:`detectors.integrity.SessionGuard`); ``path`` then only names it in messages.
    The providers actually in use are logged, because onnxruntime silently drops one whose
    libraries do not load.
    """
    ort = _ort()
    p = Path(path)
    if model is None and not p.is_file():
        raise WeightsError(f"ONNX model not found: {p}")
    source: str | bytes = str(p) if model is None else model
    opts = ort.SessionOptions()
    if intra_op_threads is not None:
        opts.intra_op_num_threads = int(intra_op_threads)
    providers = providers_for(device)
    if providers == ["CPUExecutionProvider"]:
        opts.enable_mem_pattern = CPU_MEM_PATTERN
    try:
        sess = ort.InferenceSession(source, sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph...)
        if providers != ["CPUExecutionProvider"]:
            log.warning("onnxruntime could not start %s with %s (%s); retrying on CPU", p.name, providers, exc)
            opts.enable_mem_pattern = CPU_MEM_PATTERN  # now a CPU session like any other
            try:
                sess = ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception as exc2:
                raise WeightsError(f"onnxruntime cannot load {p}: {exc2}") from exc2
        else:
            raise WeightsError(f"onnxruntime cannot load {p}: {exc}") from exc
    # A session rebuilt from bytes (SessionGuard, every few dozen calls) logs at debug level.
    log.log(logging.DEBUG if model is not None else logging.INFO, "onnxruntime session for %s: providers %s",
            p.name, sess.get_providers())
    return sess


#: How often a GPU-provider session is rebuilt by :func:`guarded_session` (calls, seconds). Rarer
#: than on a CPU (32 calls or 60 s, ~15 ms a rebuild) because a rebuild there re-creates TensorRT
#: engines and repeats cuDNN's algorithm search, seconds each (not measured: no GPU in the sessions
#: that wrote this).
GPU_REBUILD_EVERY = (4096, 1800.0)


def guarded_session(path: Path, device: torch.device, name: str, sha256: str | None = None) -> Any:
    """A :class:`~detectors.integrity.SessionGuard`: the verified ``path`` as an onnxruntime session
    on ``device``'s providers, rebuilt from its verified bytes on schedule (bit flips)."""
    from detectors.integrity import SessionGuard

    every = {} if device.type == "cpu" else dict(zip(("every_calls", "every_seconds"), GPU_REBUILD_EVERY))
    return SessionGuard(Path(path), lambda data: make_session(path, device, model=data), name=name, sha256=sha256,
                        **every)


def session_metadata(session: Any) -> dict[str, str]:
    """The custom string metadata of a loaded session's model. Why beside :func:`onnx_metadata`:
    importing the ``onnx`` package costs ~0.7 s of a CPU scan's start-up (its ml_dtypes extension),
    and a detector that has its session already reads the same strings from onnxruntime."""
    return dict(session.get_modelmeta().custom_metadata_map)


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """Custom string metadata (``metadata_props``) of an ONNX file, without loading a session."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise WeightsError(f"cannot read ONNX file {path}: {exc}") from exc
    return {prop.key: prop.value for prop in model.metadata_props}


def stamp_metadata(path: str | Path, metadata: Mapping[str, object], producer: str,
                   model_version: int | None = None) -> Path:
    """Replace an exported ONNX file's ``metadata_props`` with ``metadata`` (as strings), set the
    producer (and model version), check and save it: a self-describing model bundle, which the
    loaders read back with :func:`onnx_metadata`."""
    import onnx

    p = Path(path)
    m = onnx.load(str(p))
    del m.metadata_props[:]
    for k, v in metadata.items():
        prop = m.metadata_props.add()
        prop.key, prop.value = str(k), str(v)
    m.producer_name = producer
    if model_version is not None:
        m.model_version = int(model_version)
    onnx.checker.check_model(m)
    onnx.save(m, str(p))
    return p
