"""Learned SAR vessel/lifeboat detector: a small CenterNet on a working grid of max(1 m, input spacing).

Registered as ``sar-learned`` and ``sar-learned-onnx`` (the same network exported to ONNX and run
by onnxruntime with TensorRT, CUDA, CPU providers). Both share every step but the network call,
so they return the same detections for the same input. ``sar-learned`` runs its network with
torch or onnxruntime (option ``runtime``, :data:`RUNTIMES`): ``auto`` is onnxruntime on a CPU,
where it is ~4x faster than torch's kernels, and torch on CUDA.

Why a learned detector next to CFAR: a CFAR test judges each pixel against its ring of
clutter, so the bright but *structured* things a small-boat search must not report - azimuth
ghosts of ships and harbours, the sidelobe crosses of strong scatterers, bright sea spikes -
pass it as readily as a real hull. A network that sees the whole neighbourhood learns the
shape cues (a ghost is smeared along azimuth, a sidelobe is a thin line through a brighter
target, a hull is a compact elongated blob) and rejects them.

This module holds the detectors, which compose the steps; each step lives with its code:

* :mod:`detectors.sar.network` - the working grid (1 m, or a coarser input's own spacing), the normalisation, the CenterNet
  (:class:`~detectors.sar.network.SarCenterNet`) and its verified weights, with their training
  history (what training and inference must share);
* :mod:`detectors.sar.decode` - heatmap peaks, box NMS, centre refinement and the blob shape;
* :mod:`detectors.sar.fine_pass` - the fine confirmation pass for small boats;
* :mod:`detectors.sar.ambiguity` - the azimuth-ghost test, run here on the decoded detections.

Pipeline (``detect``):

1. **Working grid**, 1 m or a coarser input's own spacing (:func:`~detectors.sar.network.to_working_grid`);
   a spacing outside the weights' ``trained_spacing_m`` is said in the scene's notes (:meth:`spacing_note`).
2. **Normalisation** (:func:`~detectors.sar.network.normalise`).
3. **Network** (:class:`~detectors.sar.network.SarCenterNet`), also on the coarser grids of
   :data:`PYRAMID` for ships larger than the training crops (grids up to
   :data:`PYRAMID_MAX_SPACING_M`: none from a 3 m input on, where a 300 m ship is 100 px).
4. **Decoding** and **centre refinement** (:mod:`detectors.sar.decode`); the **fine
   confirmation pass** (:mod:`detectors.sar.fine_pass`) for sub-threshold small candidates.
5. **Azimuth ghosts** (:mod:`detectors.sar.ambiguity`, default on, chosen on the validation
   split): a detection is dropped when a target >= 15 dB brighter, holding >= 15 dB more
   energy, spans the same range columns at an azimuth displacement that another candidate in
   the tile shares - the ambiguity offset of the collect, measured from the tile itself; peaks
   down to :data:`GHOST_EVIDENCE_FLOOR` count as candidates (a faint ghost confirms the offset
   of a brighter one) but only those above the threshold are reported. A lone ship-sized
   detection whose range profile copies a brighter parent's and is as extended in azimuth is
   a ghost too. No local window can show this, so the network cannot learn it.
6. **Shape** (:func:`~detectors.sar.decode.peak_geometry`): length, width and heading from the
   bright blob; ``kind`` is ``lifeboat`` when the length is <= ``LIFEBOAT_MAX_LENGTH_M``.

Weights: see :mod:`detectors.sar.network` (version, training commands, sha256 check).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from detectors.errors import DetectorInputError, WeightsError
from detectors.integrity import SessionGuard, WeightGuard
from detectors.onnx_runtime import guarded_session, session_metadata
from detectors.registry import detector_options, register
from detectors.sar import network
from detectors.sar.ambiguity import ghost_flags, sea_level
from detectors.sar.ambiguity_batch import parents_batch
from detectors.sar.blob_batch import peak_geometries
from detectors.sar.cascade import PRESCREEN_CH0, heads_in_windows, plan_windows, window_fraction
from detectors.sar.decode import GHOST_EVIDENCE_FLOOR, Peak, TakenBlobs, decode_tile, peak_geometry, values_at
from detectors.sar.group_expert import gate as group_gate
from detectors.sar.group_expert import UNION_M as GROUP_UNION_M
from detectors.sar.group_expert import group_windows
from detectors.sar.fine_pass import (FINE_CANDIDATE_FLOOR, FINE_INT8_MARGIN, FINE_MAX_INPUT_SPACING_M, FINE_THRESHOLD,
                                     FineScores, FineTile, confirm_small_candidates, fine_grid, fine_window_scores,
                                     screened_scores)
from detectors.sar.network import (CLASSES, MODEL_NAME, MODEL_VERSION, NORMALISATION, ONNX_FILE, ONNX_INPUT,
                                   ONNX_OUTPUTS, PT_FILE, STRIDE, WEIGHTS_DIR, WORKING_SPACING_M, SarCenterNet,
                                   SarCenterNetExport, export_onnx, load_checkpoint, normalise, pad_to_multiple,
                                   sha256_file, to_working_grid, verify_weights, working_spacing)
from detectors.types import LIFEBOAT_MAX_LENGTH_M, Detection
from detectors.windows import Window

log = logging.getLogger(__name__)

__all__ = [
    "LearnedSarDetector", "LearnedSarOnnxDetector", "NetworkPass", "required_overlap_px",
    "MAX_VESSEL_LENGTH_M", "CONTEXT_M", "DEFAULT_SCORE_THRESHOLD", "PYRAMID", "PYRAMID_MIN_LENGTH_M",
    "POSTPROCESS_REVISION",
    # Re-exported from detectors.sar.network, their home, for the importers that still reach them
    # here: the tests (PT_FILE) and detectors.training (train_sar, data_sar). A default weights path
    # is read in detectors.sar.network, so patch it there.
    "PT_FILE", "ONNX_FILE", "WEIGHTS_DIR", "MODEL_NAME", "MODEL_VERSION", "CLASSES", "NORMALISATION",
    "ONNX_INPUT", "ONNX_OUTPUTS", "STRIDE", "WORKING_SPACING_M", "SarCenterNet", "export_onnx",
    "load_checkpoint", "sha256_file", "normalise", "to_working_grid", "pad_to_multiple",
]

#: Largest vessel the detector is built for; sets the tile overlap so one tile holds it whole.
MAX_VESSEL_LENGTH_M = 300.0
#: Context the network wants around an object (metres) on top of the object itself.
CONTEXT_M = 32.0
#: Score threshold when the weights' metadata records none.
DEFAULT_SCORE_THRESHOLD = 0.4
#: Coarser grids the network also looks at (factors of the working spacing): a 150-300 m ship
#: is larger than anything in the 160 m training crops, and the network misses it at 1 m, but
#: at 2 or 4 m per pixel it is an ordinary 40-150 px ship. Chosen on the validation split.
PYRAMID = (2, 4)
#: A coarse-grid detection is added only when its box is at least this long (metres) and no
#: finer detection lies on it: small boats belong to the 1 m grid.
PYRAMID_MIN_LENGTH_M = 60.0
#: The pyramid's grids are no coarser than this (metres per pixel): the shipped 1 m grid's
#: coarsest level. On a coarser working grid (a 3-10 m input) the largest ship already fits
#: the network's view in a few tens of pixels, so fewer (or no) levels are searched.
PYRAMID_MAX_SPACING_M = 4.0
#: Input spacings (metres) the shipped weights were trained and validated for; a scene outside
#: them is still processed, and :meth:`_SarLearnedBase.spacing_note` says so in its notes. Weights
#: without a ``trained_spacing_m`` record get the generated training range of 1.4.0 and before.
TRAINED_SPACING_M = (0.35, 1.0)
#: Bump when decoding/post-processing changes detections for the same weights (2: azimuth ghosts
#: and the coarse-grid pyramid; 3: ghost evidence below the threshold, lone ship-sized ghosts;
#: 4: the fine confirmation pass for small boats; 5: candidates in bright streaks do not vote for a
#: ghost offset, ambiguity.MAX_VOTING_PARENTS; 6: the working grid follows a coarse input, metre rules
#: on its spacing). A non-default fine pass shows in :attr:`version`.
POSTPROCESS_REVISION = 6
_MIN_SPACING_M, _MAX_SPACING_M = 0.05, 20.0
_MIN_SIDE = 8


@dataclass
class NetworkPass:
    """What :meth:`_SarLearnedBase.network_pass` computed for a batch of tiles (see there)."""

    heat: torch.Tensor  #: (B, 1, h/2, w/2) working-grid heatmap
    reg: torch.Tensor  #: (B, 4, h/2, w/2) box and offset regression
    power: torch.Tensor  #: (B, h, w) working-grid sigma0
    valid: torch.Tensor  #: (B, h, w) working-grid valid mask
    levels: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]  #: coarse grids (PYRAMID)
    fine_tile: Callable[[], list[FineTile]]  #: per tile its fine grid (windows normalised on demand), made on first call
    shape: tuple[int, int]  #: input tile (rows, cols)
    spacing: tuple[float, float]  #: input pixel spacing (m)
    working_m: float = WORKING_SPACING_M  #: the working grid's spacing (m, :func:`~detectors.sar.network.working_spacing`)
    coarse: bool = False  #: the coarse weights made it (see :meth:`_SarLearnedBase.uses_coarse`)
    fine_cache: list[dict[tuple[tuple[float, float], float | None], float]] = field(default_factory=list)  #: window scores
    feats: torch.Tensor | None = None  #: (B, 2, h16, w16) the network's input, for the group expert's windows


def required_overlap_px(spacing_m: float | tuple[float, float]) -> int:
    """Tile overlap (input pixels) so every vessel up to 300 m lies whole, with context, in one tile."""
    sp = min(spacing_m) if isinstance(spacing_m, (tuple, list)) else float(spacing_m)
    if not (sp > 0 and math.isfinite(sp)):
        raise DetectorInputError(f"spacing_m must be positive and finite, got {spacing_m!r}")
    return int(math.ceil((MAX_VESSEL_LENGTH_M + 2 * CONTEXT_M) / sp))


def _trained_spacing(meta: Mapping[str, Any]) -> tuple[float, float] | None:
    """The weights' ``trained_spacing_m`` (a list in the .pt, its JSON text in ONNX metadata), or None."""
    value = meta.get("trained_spacing_m")
    try:
        lo, hi = (float(v) for v in (json.loads(value) if isinstance(value, str) else value))
    except (TypeError, ValueError):
        return None
    return lo, hi


def _check_pyramid(pyramid: Any) -> tuple[int, ...]:
    """The ``pyramid`` option as integer factors (see :data:`PYRAMID`); DetectorInputError otherwise."""
    try:
        levels = tuple(int(f) for f in pyramid)
    except (TypeError, ValueError) as exc:
        raise DetectorInputError(f"pyramid must be a sequence of integer factors, got {pyramid!r}") from exc
    if any(f < 2 or f > 16 for f in levels) or any(float(f) != float(g) for f, g in zip(levels, pyramid)):
        raise DetectorInputError(f"pyramid factors must be integers in 2..16, got {pyramid!r}")
    return levels


def _pos(x: float) -> float:
    """A reported position, rounded to 1/1000 pixel: the blob centroid's float32 sums can differ
    in the last bits between processes and thread counts, and a resumed scan must reproduce the
    alerts (and their ids) of an uninterrupted one; a millipixel is far below any accuracy claim."""
    return round(float(x), 3)


def _median(power: torch.Tensor, valid: torch.Tensor, power_np: np.ndarray | None = None,
            valid_np: np.ndarray | None = None) -> float:
    """Median of the valid working-grid power, numpy's definition (mean of the two middle values
    of an even count). On CUDA, or without the host copies, it is taken where the tile is (a sort
    on a GPU is far cheaper than numpy's partition of millions of values on the host); else numpy.
    Same value either way."""
    if power.device.type == "cuda" or power_np is None or valid_np is None:
        vals = power[valid].float()
        n = int(vals.numel())
        if n == 0:
            return 1e-10
        srt = torch.sort(vals).values
        mid = srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2
        return float(mid)
    sample = power_np[valid_np]
    return float(np.median(sample)) if sample.size else 1e-10


# ------------------------------------------------------------------------------ detector
class _SarLearnedBase:
    """Input checks, pre- and post-processing shared by the torch and onnxruntime back-ends."""

    modality: ClassVar[str] = "sar"
    name: str = "sar-learned"
    version: str = MODEL_VERSION
    #: Move each detection to the centroid of its bright blob and merge peaks on one blob (see
    #: ``_postprocess``); chosen on the validation split (``benchmarks/results/eval_learned_val.json``).
    refine_centres: bool = True
    #: Drop azimuth ambiguities (ghosts) whose displacement repeats in the tile
    #: (:mod:`detectors.sar.ambiguity`); chosen on the validation split.
    reject_ambiguities: bool = True
    #: Coarse grids searched for large ships (see :data:`PYRAMID`); () turns it off.
    pyramid: tuple[int, ...] = PYRAMID
    #: What the code adds to the weights' version (see :attr:`version`), known without weights:
    #: resumable batches key on it, so a post-processing change redoes their scenes.
    code_version: ClassVar[str] = f"post{POSTPROCESS_REVISION}+fine{FINE_THRESHOLD:g}"
    #: Fine-grid score a small sub-threshold candidate needs to be reported
    #: (:data:`FINE_THRESHOLD`); None turns the fine confirmation pass off.
    fine_threshold: float | None = FINE_THRESHOLD
    #: Centre refinement and shapes of all of a tile's peaks, and the ghost test's possible parents,
    #: as batched tensor operations on the tile's device (:mod:`detectors.sar.blob_batch`,
    #: :mod:`detectors.sar.ambiguity_batch`) instead of host loops per peak. None: on
    #: CUDA only - there these host loops were most of a tile's time; on a CPU the per-peak loops
    #: (:func:`~detectors.sar.decode.peak_geometry`, :func:`~detectors.sar.ambiguity.parents`) are
    #: faster and stay the reference.
    tensor_geometry: bool | None = None

    def __init__(self, device: torch.device | str | None, score_threshold: float | None,
                 meta: Mapping[str, Any]) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        thr = score_threshold if score_threshold is not None else float(meta.get("score_threshold",
                                                                                DEFAULT_SCORE_THRESHOLD))
        if not (0.0 < float(thr) < 1.0):
            raise DetectorInputError(f"score_threshold must be in (0, 1), got {thr}")
        self.score_threshold = float(thr)
        self.metadata = dict(meta)
        #: Test-time augmentation passes (1, 2 or 4; see :meth:`heads`), as validated with the weights.
        self.tta = int(meta.get("tta", 1))
        if self.tta not in (1, 2, 4):
            raise DetectorInputError(f"tta must be 1, 2 or 4 passes, got {self.tta}")
        # The flows' caches key on `version`: ghost rejection, the pyramid and the fine pass
        # change detections for the same weights.
        self._base_version = f"{meta.get('version', MODEL_VERSION)}+post{POSTPROCESS_REVISION}"
        #: Input spacings (m) the weights were trained for (see :meth:`spacing_note`).
        self.trained_spacing = _trained_spacing(meta) or TRAINED_SPACING_M
        self.fine_windows = {"int8": 0, "float32": 0}

    #: The second weights for coarse working grids, when loaded (see :meth:`uses_coarse`).
    coarse_meta: Mapping[str, Any] | None = None
    #: Their validated threshold (None: :attr:`score_threshold` serves both).
    coarse_threshold: float | None = None

    def _set_coarse(self, meta: Mapping[str, Any] | None, score_threshold: float | None) -> None:
        """Record the coarse weights' metadata; a user's ``score_threshold`` applies to both."""
        self.coarse_meta = None if meta is None else dict(meta)
        if meta is not None:
            self.coarse_threshold = None if score_threshold is not None else float(
                meta.get("score_threshold", self.score_threshold))
            self._compose_version()
            coarse = _trained_spacing(meta)
            if coarse is not None:
                self.trained_spacing = (self.trained_spacing[0], max(self.trained_spacing[1], coarse[1]))

    #: The dense-group expert's weights, when loaded (see :meth:`uses_group`,
    #: :mod:`detectors.sar.group_expert`).
    group_meta: Mapping[str, Any] | None = None
    #: Its validated threshold (None: :attr:`score_threshold` serves both).
    group_threshold: float | None = None
    #: Its test-time augmentation passes, as validated with it.
    group_tta: int = 1
    #: The gate's union form (:func:`~detectors.sar.group_expert.gate`): metres within which an expert
    #: detection is a main one's object; None: the expert replaces the main detections in its windows.
    group_union_m: float | None = GROUP_UNION_M
    #: Windows the group expert took in the last :meth:`finish` (all tiles together).
    last_group_windows: int = 0
    _group_now: bool = False  #: read by _heads while the expert runs: which weights

    def _compose_version(self) -> None:
        """:attr:`_base_version` from the main, coarse and group weights' versions: caches key on it."""
        v = str(self.metadata.get("version", MODEL_VERSION))
        if self.coarse_meta is not None:
            v += f"+coarse{self.coarse_meta.get('version', '?')}"
        if self.group_meta is not None:
            v += f"+group{self.group_meta.get('version', '?')}"
        self._base_version = f"{v}+post{POSTPROCESS_REVISION}"

    def _set_group(self, meta: Mapping[str, Any] | None, score_threshold: float | None) -> None:
        """Record the group expert's metadata; a user's ``score_threshold`` applies to it too."""
        self.group_meta = None if meta is None else dict(meta)
        if meta is not None:
            self.group_threshold = None if score_threshold is not None else float(
                meta.get("score_threshold", self.score_threshold))
            tta = int(meta.get("tta", 1))
            if tta not in (1, 2, 4):
                raise DetectorInputError(f"{self.name}: the group weights' tta must be 1, 2 or 4 passes, got {tta}")
            self.group_tta = tta
            self._compose_version()

    def uses_group(self, spacing: tuple[float, float]) -> bool:
        """Whether the group expert runs for tiles of this spacing: loaded, and the working grid
        the 1 m one (inputs of 1 m and finer, where group members are resolvable)."""
        return self.group_meta is not None and working_spacing(spacing) <= WORKING_SPACING_M + 1e-9

    def uses_coarse(self, spacing: tuple[float, float]) -> bool:
        """Whether tiles of this spacing go to the coarse weights: loaded, and the working grid
        coarser than 1 m (finer inputs keep the weights validated at 0.35-1 m)."""
        return self.coarse_meta is not None and working_spacing(spacing) > WORKING_SPACING_M + 1e-9

    @property
    def version(self) -> str:
        """Weights version + post-processing revision (+ a non-default fine pass): what caches key on."""
        v = self._base_version
        if self.fine_threshold != FINE_THRESHOLD:
            v += "+nofine" if self.fine_threshold is None else f"+fine{self.fine_threshold:g}"
        # int8 arithmetic changes scores slightly: its detections are not float32's to a cache
        v += "+int8" if self.int8 else ""
        return v + ("+cascade" if self.cascade_on else "")

    #: The cascade (:mod:`detectors.sar.cascade`): the network on prescreened windows only. Off by
    #: default; ``sar-fused`` (option ``cascade``) adds its CFAR objects as candidates.
    cascade: bool = False
    #: Its prescreen threshold (channel-0 units, :data:`~detectors.sar.cascade.PRESCREEN_CH0`).
    prescreen: float = PRESCREEN_CH0
    #: Share of the working pixels the network saw in the last :meth:`network_pass` (1.0 without the cascade).
    last_window_fraction: float = 1.0

    #: What runs the network (:data:`RUNTIMES` but ``auto``); ``sar-learned`` resolves its option.
    runtime: str = "onnxruntime"

    @property
    def int8(self) -> bool:
        """Whether an int8 network runs (``runtime=onnxruntime-int8``, or an int8 file given to
        ``sar-learned-onnx``, whose metadata says so)."""
        return (self.runtime == "onnxruntime-int8"
                or str(self.metadata.get("precision", "")).startswith("int8"))

    @property
    def cascade_on(self) -> bool:
        """Whether the network runs on prescreened windows only (see :attr:`cascade`)."""
        return bool(self.cascade)

    # The pipeline asks for this to size tile overlaps.
    @staticmethod
    def required_overlap_px(spacing_m: float | tuple[float, float]) -> int:
        return required_overlap_px(spacing_m)

    def _set_options(self, refine_centres: bool, reject_ambiguities: bool, pyramid: Any,
                     fine_threshold: float | None = FINE_THRESHOLD, cascade: Any = False,
                     prescreen: Any = PRESCREEN_CH0) -> None:
        """Post-processing options shared by both backends (see the class attributes)."""
        if not isinstance(cascade, bool):
            raise DetectorInputError(f"cascade must be true or false, got {cascade!r}")
        self.cascade = cascade
        try:
            self.prescreen = float(prescreen)
        except (TypeError, ValueError) as exc:
            raise DetectorInputError(f"prescreen must be a number, got {prescreen!r}") from exc
        if not math.isfinite(self.prescreen):
            raise DetectorInputError(f"prescreen must be finite, got {prescreen!r}")
        self.refine_centres = bool(refine_centres)
        self.reject_ambiguities = bool(reject_ambiguities)
        self.pyramid = _check_pyramid(pyramid)
        if fine_threshold is not None:
            try:
                ft = float(fine_threshold)
            except (TypeError, ValueError) as exc:
                raise DetectorInputError(f"fine_threshold must be a number in (0, 1) or None, "
                                         f"got {fine_threshold!r}") from exc
            if not (0.0 < ft < 1.0):
                raise DetectorInputError(f"fine_threshold must be in (0, 1) or None, got {fine_threshold!r}")
            fine_threshold = ft
        self.fine_threshold = fine_threshold

    def pyramid_for(self, spacing: tuple[float, float]) -> tuple[int, ...]:
        """The pyramid factors searched for tiles of this input spacing: those whose grid is no
        coarser than :data:`PYRAMID_MAX_SPACING_M` (all of :attr:`pyramid` at 1 m, none from 3 m)."""
        ws = working_spacing(spacing)
        return tuple(f for f in self.pyramid if ws * f <= PYRAMID_MAX_SPACING_M + 1e-9)

    def spacing_note(self, spacing: tuple[float, float]) -> str | None:
        """A sentence for the scene's notes when its pixel spacing lies outside what the weights
        were trained for (their ``trained_spacing_m`` metadata, else :data:`TRAINED_SPACING_M`)."""
        lo, hi = self.trained_spacing
        fine, coarse = min(spacing), max(spacing)
        if fine < lo - 1e-9 or coarse > hi + 1e-9:
            return (f"{self.name}: pixel spacing {fine:g}-{coarse:g} m lies outside the {lo:g}-{hi:g} m the "
                    f"model {self.version} was trained for; its detections there are not validated")
        return None

    def fine_enabled(self, spacing: tuple[float, float]) -> bool:
        """Whether the fine confirmation pass runs for tiles of this pixel spacing."""
        return self.fine_threshold is not None and max(spacing) <= FINE_MAX_INPUT_SPACING_M

    #: The int8 network that screens the fine pass's windows (:data:`FINE_INT8_MARGIN`), when on.
    fine_screen: SessionGuard | None = None
    #: Fine-pass candidates scored so far: by the int8 screen, and by the detector's own network.
    fine_windows: dict[str, int]

    def _fine_scores(self, fine_feats: FineTile | torch.Tensor, centres: list[tuple[float, float]]) -> list[float]:
        """This detector's fine-grid score for each candidate (working-grid row, col): the fine
        confirmation pass's windows (:func:`~detectors.sar.fine_pass.fine_window_scores`) run
        through :meth:`heads`, so test-time augmentation applies there too. With the int8 screen
        (:attr:`fine_screen`), a score below ``fine_threshold - FINE_INT8_MARGIN`` is the int8
        network's (it only says "below the threshold"); every other is the detector's own."""
        counts = self.fine_windows
        exact = functools.partial(fine_window_scores, self.heads, fine_feats)
        floor = (self.fine_threshold or 0.0) - FINE_INT8_MARGIN
        if self.fine_screen is None or self.tta != 1 or floor <= 0.0:
            counts["float32"] += len(centres)
            return exact(centres)
        guard = self.fine_screen

        def rough(at: list[tuple[float, float]]) -> list[float]:
            guard.tick()  # radiation hardening hook: the int8 session rebuilt from verified bytes too
            return fine_window_scores(lambda x: _run_session(guard.session, x, self.device), fine_feats, at)

        scores, again = screened_scores(rough, exact, centres, floor)
        counts["int8"] += len(centres)
        counts["float32"] += again
        return scores

    def _check(self, sigma0: torch.Tensor, spacing_m: Any, valid: torch.Tensor | None,
               batched: bool) -> tuple[float, float]:
        want = 3 if batched else 2
        if not isinstance(sigma0, torch.Tensor):
            raise DetectorInputError(f"{self.name}: sigma0 must be a torch.Tensor, got {type(sigma0).__name__}")
        if sigma0.ndim != want:
            raise DetectorInputError(f"{self.name}: sigma0 must be {'(B, H, W)' if batched else '(H, W)'}, "
                                     f"got shape {tuple(sigma0.shape)}")
        if not sigma0.is_floating_point():
            raise DetectorInputError(f"{self.name}: sigma0 must be floating point (linear power), got {sigma0.dtype}")
        if min(sigma0.shape[-2:]) < _MIN_SIDE:
            raise DetectorInputError(f"{self.name}: tile {tuple(sigma0.shape[-2:])} is smaller than {_MIN_SIDE} px")
        try:
            sr, sc = (float(spacing_m[0]), float(spacing_m[1]))
        except (TypeError, ValueError, IndexError) as exc:
            raise DetectorInputError(f"{self.name}: spacing_m must be (row_m, col_m), got {spacing_m!r}") from exc
        for s in (sr, sc):
            if not (math.isfinite(s) and _MIN_SPACING_M <= s <= _MAX_SPACING_M):
                raise DetectorInputError(f"{self.name}: pixel spacing must be in [{_MIN_SPACING_M}, "
                                         f"{_MAX_SPACING_M}] m, got {spacing_m!r}")
        if valid is not None:
            if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool:
                raise DetectorInputError(f"{self.name}: valid must be a bool tensor")
            if tuple(valid.shape) != tuple(sigma0.shape):
                raise DetectorInputError(f"{self.name}: valid shape {tuple(valid.shape)} != sigma0 shape "
                                         f"{tuple(sigma0.shape)}")
        if bool((sigma0 < 0).any()):
            raise DetectorInputError(f"{self.name}: sigma0 is linear power and cannot be negative")
        return sr, sc

    def _clean(self, sigma0: torch.Tensor, valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The tile on the detector's device as float32, NaN/inf zeroed and marked invalid."""
        x = sigma0.to(self.device, torch.float32)
        v = None if valid is None else valid.to(self.device)
        finite = torch.isfinite(x)
        if not bool(finite.all()):  # NaN/inf are no-data, not targets
            v = finite if v is None else (v & finite)
            x = torch.where(finite, x, torch.zeros_like(x))
        return x, v

    def prepare(self, sigma0: torch.Tensor, spacing: tuple[float, float],
                valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, H, W) -> padded network input (B, 2, h16, w16), working power and valid (B, h, w)."""
        return self._prepare_clean(*self._clean(sigma0, valid), spacing)

    @staticmethod
    def _prepare_clean(x: torch.Tensor, v: torch.Tensor | None, spacing: tuple[float, float]
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`prepare` for a tile :meth:`_clean` has already made."""
        power, vw = to_working_grid(x, spacing, v)
        return pad_to_multiple(normalise(power, vw)), power, vw

    def _heads(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def heads(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network outputs for a prepared input: sigmoid heatmap (B,1,h,w), regression (B,4,h,w).

        Test-time augmentation (``tta`` passes, as validated with the weights): the heatmap is the
        mean over the input and its mirror images (2: left-right; 4: also up-down and both),
        each mirrored back; boxes and offsets come from the input alone. Costs ``tta`` network
        calls; gives steadier peaks (the network was trained with these flips)."""
        heat, reg = self._heads(feats)
        if self.tta > 1:
            flips = [[3], [2], [2, 3]][: self.tta - 1]
            acc = heat.clone()
            for dims in flips:
                acc += torch.flip(self._heads(torch.flip(feats, dims=dims))[0], dims=dims)
            heat = acc / self.tta
        return heat, reg

    def _decode(self, heat: torch.Tensor, reg: torch.Tensor, vw: torch.Tensor | np.ndarray,
                threshold: float | None = None) -> list[Peak]:
        """:func:`~detectors.sar.decode.decode_tile` at the score threshold unless told another."""
        return decode_tile(heat, reg, vw, self.score_threshold if threshold is None else threshold)

    def _postprocess(self, heat: torch.Tensor, reg: torch.Tensor, power: torch.Tensor, vw: torch.Tensor,
                     shape: tuple[int, int], spacing: tuple[float, float],
                     coarse: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = (),
                     fine: FineScores | None = None, working_m: float = WORKING_SPACING_M) -> list[Detection]:
        """One tile's heads -> its detections: decoding, the coarse grids, the fine pass, centre
        refinement and shape, the ghost test (the steps of the module docstring, in that order).
        ``working_m``: metres per working pixel (every length below is converted with it)."""
        hw, ww = power.shape
        ws = float(working_m)
        # Reported peaks first (their processing is independent of the evidence peaks), then the
        # sub-threshold evidence peaks for the ghost test (GHOST_EVIDENCE_FLOOR).
        floors = (([GHOST_EVIDENCE_FLOOR] if self.reject_ambiguities else [])
                  + ([FINE_CANDIDATE_FLOOR] if fine is not None else []))
        floor = min(floors + [self.score_threshold])
        on_device = self.tensor_geometry if self.tensor_geometry is not None else power.device.type == "cuda"
        # On the device path no whole working-grid array leaves the device (the valid mask, the
        # power, the dB tile: 36 MB for a 4096 px tile at 0.5 m, several ms of a ~17 ms budget on
        # a GPU): decoding looks flags up where the mask is, values are gathered at the
        # detections, the sea level is taken from its subsample. The host path copies the mask
        # once, for decoding and the shapes.
        vnp = None if on_device else vw.cpu().numpy()
        decoded = self._decode(heat, reg, vw if on_device else vnp, floor)
        peaks = [p for p in decoded if p[0] >= self.score_threshold]
        evidence = [p for p in decoded if p[0] < self.score_threshold]
        for f, h_c, r_c, v_c in coarse:  # large ships seen on coarser grids (PYRAMID)
            for score, row, col, bh, bw in self._decode(h_c, r_c, v_c):
                row, col, bh, bw = (row + 0.5) * f - 0.5, (col + 0.5) * f - 0.5, bh * f, bw * f
                length = max(bh, bw) * ws
                if length < PYRAMID_MIN_LENGTH_M:
                    continue
                if any(math.hypot(row - p[1], col - p[2]) * ws <= max(10.0, length / 2) for p in peaks):
                    continue
                peaks.append((score, row, col, bh, bw))
        if fine is not None and self.fine_threshold is not None:  # (given by finish only when on)
            # Fine confirmation pass (FINE_*): small sub-threshold candidates looked at again on
            # the native grid; those it confirms are reported with their fine-grid score.
            confirmed, evidence = confirm_small_candidates(
                evidence, fine, max(self.fine_threshold, self.score_threshold), self.name)
            peaks = peaks + confirmed
        # What is left below the threshold is evidence for the ghost test, from its own floor only.
        evidence = [p for p in evidence if self.reject_ambiguities and p[0] >= GHOST_EVIDENCE_FLOOR]
        if not peaks:
            return []
        peaks = peaks + evidence
        fr, fc = shape[0] / hw, shape[1] / ww  # input pixels per working pixel
        geometries = None
        db_all: np.ndarray | None = None
        pw_np: np.ndarray | None = None
        if on_device:  # dB made where the tile is; the blobs found there too
            median_db = float(10 * np.log10(max(_median(power, vw), 1e-10)))
            pw_t = power.float()
            db_t = torch.where(vw, 10 * torch.log10(torch.clamp(pw_t, min=1e-10)),
                               torch.full((), -100.0, dtype=torch.float32, device=power.device))
            geometries = peak_geometries(db_t, median_db, [p[1:] for p in peaks], self.refine_centres)
        else:
            pw_np = power.float().cpu().numpy()  # zero on invalid pixels (to_working_grid)
            median_db = float(10 * np.log10(max(_median(power, vw, pw_np, vnp), 1e-10)))
            db_all = 10 * np.log10(np.maximum(pw_np, 1e-10))
            db_all[~vnp] = -100.0
        out: list[Detection] = []
        work_rc: list[tuple[float, float]] = []  # each detection's centre on the working grid
        work_half: list[float] = []  # ... and half its box's longer side (working px)
        taken: TakenBlobs = []  # accepted blobs (pixels) and box areas
        kept: list[tuple[float, float, float, float, float, float, float, float]] = []
        for k, (score, row, col, bh, bw) in enumerate(peaks):
            geometry = (geometries[k] if geometries is not None
                        else peak_geometry(db_all, median_db, row, col, bh, bw, taken, self.refine_centres))
            if geometry is None:  # a second peak on a blob already reported
                continue
            row, col, length_px, width_px, heading = geometry
            kept.append((score, row, col, bh, bw, length_px, width_px, heading))
        at = [(int(min(max(round(g[1]), 0), hw - 1)), int(min(max(round(g[2]), 0), ww - 1))) for g in kept]
        peak_vals = values_at(db_t if on_device else db_all, at)  # each detection's peak dB (float32)
        for (score, row, col, bh, bw, length_px, width_px, heading), pk in zip(kept, peak_vals):
            length_m = float(length_px * ws)
            width_m = float(min(width_px, length_px) * ws)
            kind = "lifeboat" if length_m <= LIFEBOAT_MAX_LENGTH_M else "vessel"
            work_rc.append((row, col))
            work_half.append(0.5 * max(bh, bw))
            out.append(Detection(
                row=_pos((row + 0.5) * fr - 0.5), col=_pos((col + 0.5) * fc - 0.5), score=float(score),
                kind=kind, detector=self.name, length_m=round(length_m, 2), width_m=round(width_m, 2),
                heading_deg=round(float(heading), 1),
                attrs={"box_rows_px": round(float(bh * fr), 2), "box_cols_px": round(float(bw * fc), 2),
                       "peak_db": round(float(pk), 2),
                       "contrast_db": round(float(pk - median_db), 2),
                       "model_version": self.version},
            ))
        if self.reject_ambiguities and len(out) >= 2:
            n_report = sum(d.score >= self.score_threshold for d in out)  # a prefix: reported first
            if on_device:  # the possible parents of all candidates in batched operations on the device
                def find(cands: list, hps: list, sea: float) -> list:
                    return parents_batch(db_t, pw_t, cands, median_db, ws, hps, sea)
                sea = sea_level(db_t, median_db, pw_t)  # only its subsample leaves the device
                flags, offsets = ghost_flags(None, work_rc, median_db, ws, work_half, None, n_report, find, sea=sea)
            else:
                flags, offsets = ghost_flags(db_all, work_rc, median_db, ws, work_half, pw_np, n_report)
            if any(flags):
                log.debug("%s: %d azimuth ghost(s) dropped (offsets %s m)", self.name, sum(flags), offsets)
                out = [d for d, g in zip(out, flags) if not g]
        return [d for d in out if d.score >= self.score_threshold]

    @torch.no_grad()
    def network_pass(self, sigma0: torch.Tensor, *, spacing_m: tuple[float, float],
                     valid: torch.Tensor | None = None,
                     candidates: list[list[tuple[float, float]]] | None = None) -> NetworkPass:
        """The network's part of :meth:`detect_batch` for (B, H, W) tiles: heads on the working grid
        and the coarse grids, and the fine grid made on first use. :meth:`finish` turns it into
        detections at the detector's current settings - so a threshold sweep runs the network once
        and the real post-processing at every threshold (``train_sar.choose_threshold``).
        ``candidates``: per tile, (row, col) input pixels the cascade must look at (another
        detector's objects); used only with :attr:`cascade` on."""
        spacing = self._check(sigma0, spacing_m, valid, batched=True)
        x, v = self._clean(sigma0, valid)  # once: the fine grid below is made from it too
        feats, power, vw = self._prepare_clean(x, v, spacing)
        coarse = self.uses_coarse(spacing)
        self._coarse_now = coarse  # read by _heads: which weights
        try:
            return self._network_pass(x, v, feats, power, vw, sigma0, spacing, coarse, candidates)
        finally:
            self._coarse_now = False

    def _network_pass(self, x: torch.Tensor, v: torch.Tensor | None, feats: torch.Tensor, power: torch.Tensor,
                      vw: torch.Tensor, sigma0: torch.Tensor, spacing: tuple[float, float], coarse: bool,
                      candidates: list[list[tuple[float, float]]] | None = None) -> NetworkPass:
        """:meth:`network_pass` once the tile is on the working grid and the weights are chosen."""
        windows = None
        if self.cascade_on:  # the network on prescreened windows only (detectors.sar.cascade)
            fr, fc = power.shape[-2] / sigma0.shape[-2], power.shape[-1] / sigma0.shape[-1]
            pts = [[((r + 0.5) * fr - 0.5, (c + 0.5) * fc - 0.5) for r, c in (candidates[i] if candidates else ())]
                   for i in range(feats.shape[0])]
            windows = [plan_windows(feats[i], self.prescreen, points=pts[i]) for i in range(feats.shape[0])]
            self.last_window_fraction = float(np.mean([window_fraction(w, tuple(feats.shape[-2:])) for w in windows]))

        heat, reg, levels = self._heads_and_levels(feats, power, vw, spacing, windows)
        ws = working_spacing(spacing)
        made: list[list[FineTile]] = []

        def fine_tile() -> list[FineTile]:
            if not made:
                made.append(fine_grid(x, spacing, v))
            return made[0]

        return NetworkPass(heat, reg, power, vw, levels, fine_tile, (int(sigma0.shape[1]), int(sigma0.shape[2])),
                           spacing, fine_cache=[{} for _ in range(sigma0.shape[0])], working_m=ws, coarse=coarse,
                           feats=feats)

    def _heads_and_levels(self, feats: torch.Tensor, power: torch.Tensor, vw: torch.Tensor,
                          spacing: tuple[float, float], windows: list[list[Window]] | None
                          ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]]:
        """The heads on the working grid and on the pyramid's coarser grids, everywhere or (per tile)
        only in ``windows`` of working pixels (zero elsewhere)."""
        def run(inp: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
            if windows is None:
                return self.heads(inp)
            parts = [heads_in_windows(self.heads, inp[i:i + 1], windows[i], factor) for i in range(inp.shape[0])]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

        heat, reg = run(feats, 1)
        ws = working_spacing(spacing)
        levels = []
        for f in self.pyramid_for(spacing):  # the same network on area-averaged f x f coarser grids
            p_c, v_c = to_working_grid(power, (ws, ws), vw, target_m=ws * f)
            if min(p_c.shape[-2:]) < _MIN_SIDE:
                continue
            h_c, r_c = run(pad_to_multiple(normalise(p_c, v_c)), f)
            levels.append((f, h_c, r_c, v_c))
        return heat, reg, levels

    def finish(self, npass: NetworkPass) -> list[list[Detection]]:
        """Detections from a :meth:`network_pass` at the detector's current threshold and options
        (the coarse weights' own threshold for a pass they made), then the group expert's gate
        where it runs (:mod:`detectors.sar.group_expert`)."""
        if npass.coarse and self.coarse_threshold is not None:
            kept, self.score_threshold = self.score_threshold, self.coarse_threshold
            try:
                return self._finish(npass)
            finally:
                self.score_threshold = kept
        out = self._finish(npass)
        self.last_group_windows = 0
        if not npass.coarse and self.uses_group(npass.spacing):
            out = [self._group_gate(npass, i, dets) if dets else dets for i, dets in enumerate(out)]
        return out

    def _group_gate(self, npass: NetworkPass, i: int, dets: list[Detection]) -> list[Detection]:
        """Tile ``i``'s detections after the group expert's gate (:func:`~detectors.sar.group_expert.gate`):
        the expert's network and post-processing in windows around ``dets``, at its own threshold
        and test-time augmentation, its fine pass on its own network (the int8 screen is the main
        network's, so it is off here)."""
        hw, ww = int(npass.power.shape[-2]), int(npass.power.shape[-1])
        fr, fc = npass.shape[0] / hw, npass.shape[1] / ww

        def at(ds: list[Detection]) -> list[tuple[float, float]]:  # input px -> working px
            return [((d.row + 0.5) / fr - 0.5, (d.col + 0.5) / fc - 0.5) for d in ds]

        main_at = at(dets)
        windows = group_windows(main_at, (hw, ww))
        power, vw = npass.power[i:i + 1], npass.valid[i:i + 1]
        saved = (self.score_threshold, self.tta, self.fine_screen)
        self._group_now = True
        try:
            if self.group_threshold is not None:
                self.score_threshold = self.group_threshold
            self.tta, self.fine_screen = self.group_tta, None
            feats = (npass.feats[i:i + 1] if npass.feats is not None  # the main network's input, not made again
                     else pad_to_multiple(normalise(power, vw)))
            heat, reg, levels = self._heads_and_levels(feats, power, vw, npass.spacing, [windows])
            gpass = NetworkPass(heat, reg, power, vw, levels, lambda: [npass.fine_tile()[i]], npass.shape,
                                npass.spacing, fine_cache=[{}], working_m=npass.working_m)
            expert = self._finish(gpass)[0]
        finally:
            self._group_now = False
            self.score_threshold, self.tta, self.fine_screen = saved
        union = None if self.group_union_m is None else self.group_union_m / npass.working_m
        out, taken = group_gate(dets, main_at, expert, at(expert), windows, union_px=union)
        self.last_group_windows += taken
        if taken:
            log.debug("%s: the group expert took %d window(s): %d detection(s) -> %d", self.name, taken,
                      len(dets), len(out))
        return out

    def _finish(self, npass: NetworkPass) -> list[list[Detection]]:
        fine_on = self.fine_enabled(npass.spacing)

        def fine_scores(i: int, centres: list[tuple[float, float]]) -> list[float]:
            # A window's score does not depend on the score threshold; keyed by the fine threshold
            # too, because below it the int8 screen's scores only say "below" (FINE_INT8_MARGIN).
            cache, ft = npass.fine_cache[i], self.fine_threshold
            todo = [c for c in centres if (c, ft) not in cache]
            if todo:
                cache.update(zip(((c, ft) for c in todo), self._fine_scores(npass.fine_tile()[i], todo)))
            return [cache[(c, ft)] for c in centres]

        return [self._postprocess(npass.heat[i], npass.reg[i], npass.power[i], npass.valid[i], npass.shape,
                                  npass.spacing, [(f, h_c[i], r_c[i], v_c[i]) for f, h_c, r_c, v_c in npass.levels],
                                  functools.partial(fine_scores, i) if fine_on else None, npass.working_m)
                for i in range(npass.heat.shape[0])]

    @torch.no_grad()
    def detect_batch(self, sigma0: torch.Tensor, *, spacing_m: tuple[float, float],
                     valid: torch.Tensor | None = None,
                     candidates: list[list[tuple[float, float]]] | None = None) -> list[list[Detection]]:
        """Several same-sized tiles at once (one network call): ``sigma0`` (B, H, W); ``candidates``:
        see :meth:`network_pass`."""
        return self.finish(self.network_pass(sigma0, spacing_m=spacing_m, valid=valid, candidates=candidates))

    @torch.no_grad()
    def detect(self, sigma0: torch.Tensor, *, spacing_m: tuple[float, float],
               valid: torch.Tensor | None = None) -> list[Detection]:
        """Vessels and lifeboats in one (H, W) tile of linear sigma0 (see the module docstring)."""
        spacing = self._check(sigma0, spacing_m, valid, batched=False)
        return self.detect_batch(sigma0[None], spacing_m=spacing,
                                 valid=None if valid is None else valid[None])[0]


def _second_weights_path(named: str | Path | bool | None, weights: str | Path | None, shipped: Path) -> Path | None:
    """The coarse or group weights to load: the one ``named``, the shipped one beside the shipped main
    weights, or none (``False`` or "none"/"false", or a user's own main weights without one named)."""
    if named is False:  # the command line's "=false" (its "=none" reads as None: the default)
        return None
    if named is not None:
        return None if str(named).lower() in ("none", "false") else Path(named)
    return shipped if weights is None and shipped.is_file() else None


#: What ``sar-learned`` runs its network with (option ``runtime``): ``auto`` is onnxruntime on a
#: CPU device for the shipped weights (their ``.onnx`` twin holds the same network: heads within
#: 5e-6 of torch's, the same detections, ``tests/test_sar_learned.py``), torch otherwise. Why: on the
#: 2-vCPU benchmark machine onnxruntime's CPU kernels (MLAS, fused conv + add + ReLU) ran the shipped
#: network 3.9x faster than torch's (0.34 vs 1.33 s for a 1536 px working tile;
#: ``benchmarks/net_runtime.py``, ``benchmarks/results/net_runtime_cpu.json``); on CUDA torch is the
#: path the GPU work is measured on.
#: ``onnxruntime-int8`` runs the int8 quantisation of that export (``sar_centernet_int8.onnx``,
#: :mod:`detectors.training.quantize_sar`): ~2x faster again on a CPU with VNNI; its detections
#: differ slightly from float32's (validation: ``benchmarks/results/sar_int8/``).
RUNTIMES = ("auto", "torch", "onnxruntime", "onnxruntime-int8")


def _onnx_twin(weights: str | Path | None, runtime: str) -> Path:
    """The ONNX export of a ``.pt`` checkpoint for ``runtime``: the shipped one, or the file beside
    the user's (``<name>.onnx``; ``<name>_int8.onnx`` for the int8 runtime)."""
    suffix = "_int8.onnx" if runtime == "onnxruntime-int8" else ".onnx"
    if weights is None:
        return network.INT8_ONNX_FILE if runtime == "onnxruntime-int8" else network.ONNX_FILE
    w = Path(weights)
    return w.with_name(w.stem + suffix)


#: What ``auto`` means on a CPU device with the shipped weights (see :data:`RUNTIMES`).
CPU_DEFAULT_RUNTIME = "onnxruntime"


def _onnx_installed() -> bool:
    """onnxruntime importable: a bare GPU box may lack it, and ``auto`` then stays on torch."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _run_session(session: Any, feats: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's heads from an onnxruntime session, as torch tensors on ``device``."""
    x = feats.detach().to("cpu", torch.float32).contiguous().numpy()
    heat, reg = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: x})
    return torch.from_numpy(heat).to(device), torch.from_numpy(reg).to(device)


def _same_network(guard: SessionGuard, meta: Mapping[str, Any]) -> SessionGuard:
    """``guard``, after checking that its model's metadata names the checkpoint's model and version
    (WeightsError otherwise)."""
    got, onnx_path = session_metadata(guard.session), guard.path
    for key in ("name", "version"):
        if key not in meta or key not in got:
            raise WeightsError(f"{onnx_path}: cannot tell whether it is the export of these weights "
                               f"(no {key!r} in {'its' if key not in got else 'the checkpoint'} metadata)")
    # name and version, and what the export copies of the checkpoint's training record: a retrained
    # .pt that kept its version differs in date (and usually threshold) from a stale export.
    for key in ("name", "version", "date", "score_threshold", "tta", "widths", "fpn"):
        if key in meta and str(got.get(key)) != str(meta.get(key)):
            raise WeightsError(f"{onnx_path} is not the export of these weights: its {key} is "
                               f"{got.get(key)!r}, the checkpoint's {meta.get(key)!r}")
    return guard


@register("sar-learned", "sar")
class LearnedSarDetector(_SarLearnedBase):
    """The CenterNet on ``device`` (CPU or CUDA), run by torch or onnxruntime (:data:`RUNTIMES`)."""

    name = "sar-learned"
    runtime = "torch"  # until __init__ resolves its option
    #: onnxruntime sessions (main, coarse) when :attr:`runtime` is onnxruntime.
    sessions: SessionGuard | None = None
    coarse_sessions: SessionGuard | None = None

    def __init__(self, device: torch.device | str | None = None, weights: str | Path | None = None,
                 score_threshold: float | None = None, sha256: str | None = None, refine_centres: bool = True,
                 reject_ambiguities: bool = True, pyramid: tuple[int, ...] = PYRAMID,
                 fine_threshold: float | None = FINE_THRESHOLD, coarse_weights: str | Path | None = None,
                 cascade: bool = False, prescreen: float = PRESCREEN_CH0, runtime: str = "auto",
                 fine_int8: bool = True, group_weights: str | Path | None = None, **kw: Any) -> None:
        """``weights``: a ``.pt`` checkpoint (default: the shipped one), verified by sha256;
        ``coarse_weights``: a second checkpoint for inputs coarser than 1 m (default: the shipped
        ``sar_centernet_coarse.pt`` when there is one and ``weights`` is the default; ``"none"``: one
        checkpoint for every spacing);
        ``score_threshold``: override the validated threshold stored with the weights;
        ``refine_centres``: blob-centroid centres and same-blob merging (default on);
        ``reject_ambiguities``: drop azimuth ghosts (:mod:`detectors.sar.ambiguity`, default on);
        ``pyramid``: coarse-grid factors searched for large ships (:data:`PYRAMID`; () for none);
        ``fine_threshold``: the fine confirmation pass for small boats (:data:`FINE_THRESHOLD`;
        None: off);
        ``cascade``: the network on prescreened windows only (:mod:`detectors.sar.cascade`; default
        off; ``sar-fused.cascade=true`` adds its CFAR's objects as candidates); ``prescreen``: its
        threshold (:data:`PRESCREEN_CH0`);
        ``runtime``: ``auto``, ``torch``, ``onnxruntime`` or ``onnxruntime-int8`` (:data:`RUNTIMES`;
        onnxruntime runs the ``.onnx`` export beside the checkpoint - ``_int8.onnx`` for int8 -
        checked to name the same model and version);
        ``fine_int8``: screen the fine pass's windows with the shipped int8 network first
        (:data:`~detectors.sar.fine_pass.FINE_INT8_MARGIN`; only with the shipped weights in
        float32 onnxruntime, the CPU default; the same confirmations at about half the pass's cost);
        ``group_weights``: the dense-group expert, a ``.pt`` asked around the main detections on the
        1 m working grid (:mod:`detectors.sar.group_expert`; default: the shipped
        ``sar_centernet_group.pt`` when there is one and ``weights`` is the default; ``False``: off -
        ``=false`` on the command line, where ``=none`` reads as the default)."""
        if kw:
            raise DetectorInputError(f"sar-learned: unknown option(s) {', '.join(sorted(kw))}; known: {', '.join(detector_options(self.name))}")
        if runtime not in RUNTIMES:
            raise DetectorInputError(f"sar-learned: runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        net, meta = load_checkpoint(weights, sha256)
        super().__init__(device, score_threshold, meta)
        self._set_options(refine_centres, reject_ambiguities, pyramid, fine_threshold, cascade, prescreen)
        # The torch network is loaded (and guarded below) whatever the runtime: it is the fallback
        # when the ONNX twin cannot serve, and training tools read it (3.7 MB).
        self.net = SarCenterNetExport(net).to(self.device).eval()
        self.runtime = self._start_runtime(runtime, weights, sha256, meta)
        if not isinstance(fine_int8, bool):
            raise DetectorInputError(f"sar-learned: fine_int8 must be true or false, got {fine_int8!r}")
        if (fine_int8 and self.runtime == "onnxruntime" and weights is None and self.fine_threshold is not None
                and self.device.type == "cpu"):  # validated on the CPU provider only
            self.fine_screen = self._start_fine_screen(meta)
        # --- radiation hardening hook (detectors/integrity.py): live weights re-hashed every few
        # batches; a bit flip is restored from the golden copy, else from the verified file.
        self.integrity = WeightGuard(self.net, name=self.name,
                                     reload=lambda: SarCenterNetExport(load_checkpoint(weights, sha256)[0]))
        self.coarse_net: SarCenterNetExport | None = None
        self.group_net: SarCenterNetExport | None = None
        self.group_sessions: SessionGuard | None = None
        cpath = _second_weights_path(coarse_weights, weights, network.COARSE_PT_FILE)
        if cpath is not None:
            self.coarse_net, self.coarse_integrity, cmeta, self.coarse_sessions = self._load_second(cpath, "coarse", runtime)
            self._set_coarse(cmeta, score_threshold)
        gpath = _second_weights_path(group_weights, weights, network.GROUP_PT_FILE)
        if gpath is not None:
            self.group_net, self.group_integrity, gmeta, self.group_sessions = self._load_second(gpath, "group", runtime)
            self._set_group(gmeta, score_threshold)
        log.debug("%s: network on %s via %s", self.name, self.device, self.runtime)

    def _load_second(self, path: Path, role: str, runtime: str
                     ) -> tuple[SarCenterNetExport, WeightGuard, dict[str, Any], SessionGuard | None]:
        """A second checkpoint (``role``: coarse or group): its torch network with its own weight
        guard, its metadata, and its onnxruntime session when the main network runs there. Without
        its ``.onnx`` twin an explicitly named runtime raises (the second network must not quietly
        differ); ``auto`` runs it on torch, with a warning."""
        net, meta = load_checkpoint(path)
        tnet = SarCenterNetExport(net).to(self.device).eval()
        guard = WeightGuard(tnet, name=f"{self.name}-{role}", reload=lambda: SarCenterNetExport(load_checkpoint(path)[0]))
        session = None
        # The group expert's float32 twin even under the int8 runtime: only float32 was validated for it.
        twin = _onnx_twin(path, "onnxruntime" if role == "group" else self.runtime)
        if self.sessions is not None and twin.is_file():
            session = _same_network(guarded_session(verify_weights(twin), self.device, f"{self.name}-{role}"), meta)
        elif self.sessions is not None:
            if runtime != "auto":
                raise WeightsError(f"{self.name}: runtime {runtime} needs {twin} beside the {role} weights {path}")
            log.warning("%s: no %s beside %s; the %s network runs on torch", self.name, twin.name, path, role)
        return tnet, guard, meta, session

    def _start_runtime(self, runtime: str, weights: str | Path | None, sha256: str | None,
                       meta: Mapping[str, Any]) -> str:
        """Resolve ``runtime`` and start its onnxruntime session (:attr:`sessions`); the runtime used.

        ``auto`` is onnxruntime only on a CPU, for the shipped weights not pinned by a user's
        ``sha256`` (the pin covers the ``.pt``, not its ONNX twin), with onnxruntime installed; and
        it falls back to torch, with a warning, when the twin cannot serve (missing, failing its
        checksum, another model's export, or a session that does not start) - the ``.pt`` is good,
        and a broken twin must not cost the scan its learned detector. A runtime named explicitly
        raises instead."""
        explicit = runtime != "auto"
        if not explicit:
            runtime = (CPU_DEFAULT_RUNTIME if weights is None and sha256 is None and self.device.type == "cpu"
                       and _onnx_installed() else "torch")
        if runtime == "torch":
            return runtime
        twin = _onnx_twin(weights, runtime)
        try:
            self.sessions = _same_network(guarded_session(verify_weights(twin), self.device, self.name), meta)
        except WeightsError as exc:
            if explicit:
                raise
            log.warning("%s: %s; running the network on torch instead", self.name, exc)
            return "torch"
        return runtime

    def _start_fine_screen(self, meta: Mapping[str, Any]) -> SessionGuard | None:
        """The shipped int8 network as the fine pass's screen, or None (with a warning) when it
        cannot serve: the pass then scores every window in float32, with the same results."""
        try:
            return _same_network(guarded_session(verify_weights(network.INT8_ONNX_FILE), self.device,
                                                self.name + "-fine-int8"), meta)
        except WeightsError as exc:
            log.warning("%s: %s; the fine pass runs without its int8 screen", self.name, exc)
            return None

    def _heads(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # radiation hardening hooks: torch weights re-hashed, onnxruntime sessions rebuilt (integrity.py)
        if self._group_now and self.group_net is not None:
            if self.group_sessions is not None:
                self.group_sessions.tick()
                return _run_session(self.group_sessions.session, feats, self.device)
            self.group_integrity.tick()
            return self.group_net(feats)
        if getattr(self, "_coarse_now", False) and self.coarse_net is not None:
            if self.coarse_sessions is not None:
                self.coarse_sessions.tick()
                return _run_session(self.coarse_sessions.session, feats, self.device)
            self.coarse_integrity.tick()
            return self.coarse_net(feats)
        if self.sessions is not None:
            self.sessions.tick()
            return _run_session(self.sessions.session, feats, self.device)
        self.integrity.tick()
        return self.net(feats)


@register("sar-learned-onnx", "sar")
class LearnedSarOnnxDetector(_SarLearnedBase):
    """The same network from ``sar_centernet.onnx`` run by onnxruntime (TensorRT, CUDA, CPU)."""

    name = "sar-learned-onnx"

    def __init__(self, device: torch.device | str | None = None, weights: str | Path | None = None,
                 score_threshold: float | None = None, sha256: str | None = None, refine_centres: bool = True,
                 reject_ambiguities: bool = True, pyramid: tuple[int, ...] = PYRAMID,
                 fine_threshold: float | None = FINE_THRESHOLD, coarse_weights: str | Path | None = None,
                 cascade: bool = False, prescreen: float = PRESCREEN_CH0,
                 group_weights: str | Path | None = None, **kw: Any) -> None:
        """``weights``: an ``.onnx`` file (default: the shipped one), verified by sha256; its
        metadata carries the threshold and version. ``refine_centres``, ``reject_ambiguities``,
        ``pyramid``, ``fine_threshold``, ``coarse_weights`` and ``group_weights`` (``.onnx`` files
        here), ``cascade``, ``prescreen``: as for ``sar-learned``."""
        if kw:
            raise DetectorInputError(f"sar-learned-onnx: unknown option(s) {', '.join(sorted(kw))}; known: {', '.join(detector_options(self.name))}")
        # The default read from detectors.sar.network, as load_checkpoint reads PT_FILE there.
        path = verify_weights(network.ONNX_FILE if weights is None else weights, sha256)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.sessions = guarded_session(path, self.device, self.name, sha256)
        super().__init__(device, score_threshold, session_metadata(self.session))
        self._set_options(refine_centres, reject_ambiguities, pyramid, fine_threshold, cascade, prescreen)
        self.providers = list(self.session.get_providers())
        self.coarse_sessions: SessionGuard | None = None
        cpath = _second_weights_path(coarse_weights, weights, network.COARSE_ONNX_FILE)
        if cpath is not None:
            self.coarse_sessions = guarded_session(verify_weights(cpath), self.device, self.name + "-coarse")
            self._set_coarse(session_metadata(self.coarse_sessions.session), score_threshold)
        self.group_sessions: SessionGuard | None = None
        gpath = _second_weights_path(group_weights, weights, network.GROUP_ONNX_FILE)
        if gpath is not None:
            self.group_sessions = guarded_session(verify_weights(gpath), self.device, self.name + "-group")
            self._set_group(session_metadata(self.group_sessions.session), score_threshold)

    @property
    def session(self) -> Any:
        """The live onnxruntime session (rebuilt on schedule by :attr:`sessions`)."""
        return self.sessions.session

    def _heads(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        guard = (self.group_sessions if self._group_now and self.group_sessions is not None
                 else self.coarse_sessions if getattr(self, "_coarse_now", False) and self.coarse_sessions is not None
                 else self.sessions)
        guard.tick()  # radiation hardening hook: the session rebuilt from its verified bytes on schedule
        return _run_session(guard.session, feats, self.device)
