"""Fixed, deterministic data splits for the SAR models - decided before any training.

SSDD (``../shared/datasets/ssdd_train``), by COCO image id:

* ``holdout`` - the project-wide SSDD hold-out of ``benchmarks/eval_vessels.py``
  (:func:`ssdd_holdout` there; same rule here: sha256(f"0:{image_id}") in the lowest 20 % of the
  hash range), about 20 % of the chips. Never trained on, never used to choose anything; the
  reported SSDD numbers are on these chips only. Re-implemented (not imported) because
  ``benchmarks`` is not an installed package; ``tests/test_sar_learned.py`` checks that the two
  agree.
* ``val`` - of the rest, sha256(f"val:{image_id}") in the lowest 12.5 % (about 10 % of all
  chips): used only to choose the detector's score threshold.
* ``train`` - everything else (about 70 %).

Generated scenes (``detectors.synth.sar.make_sar_scene`` seeds):

* training: seeds 0-899 (the script uses the first ``--scenes`` of them);
* validation (threshold only): seeds 900-999;
* evaluation: 1000 and above (``benchmarks/eval_learned.py``, ``benchmarks/eval_vessels.py``).
"""

from __future__ import annotations

import hashlib
from typing import Literal

Split = Literal["train", "val", "holdout"]

SYNTH_TRAIN_SEEDS = range(0, 900)
SYNTH_VAL_SEEDS = range(900, 1000)
SYNTH_TEST_SEED0 = 1000
HOLDOUT_FRACTION = 0.2
VAL_FRACTION_OF_REST = 0.125


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0 ** 64


def ssdd_holdout(image_id: int | str, fraction: float = HOLDOUT_FRACTION, seed: int = 0) -> bool:
    """True for chips in the project's SSDD hold-out (same rule as ``benchmarks/eval_vessels.py``)."""
    return _unit(f"{seed}:{image_id}") < fraction


def ssdd_split(image_id: int | str) -> Split:
    """The split of one SSDD chip, from its COCO image id alone (independent of list order)."""
    if ssdd_holdout(image_id):
        return "holdout"
    if _unit(f"val:{image_id}") < VAL_FRACTION_OF_REST:
        return "val"
    return "train"
