"""detectors/sar/ambiguity_batch.py: the ghost test's possible parents for all candidates at once,
against the per-candidate NumPy reference (ambiguity.parents), on the hand-built tiles of
test_sar_ambiguity.py (ships, their ghosts, boats in their columns, objects at the tile's edges)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from detectors.sar.ambiguity import ghost_flags, parents, sea_level
from detectors.sar.ambiguity_batch import parents_batch
from tests.test_sar_ambiguity import SEA_DB, _rect, _ship_and_ghosts, _tile


def _scene(seed: int = 3) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]], list[int]]:
    rng = np.random.default_rng(seed)
    db = _tile(800)
    _ship_and_ghosts(db, 400, 300, 312, offset=170)
    _ship_and_ghosts(db, 200, 600, 660, offset=150)  # a hull flat across its columns: profiles of equal values
    _rect(db, 300, 305, 304, 307, SEA_DB + 18)
    _rect(db, 0, 6, 0, 40, SEA_DB + 55)  # a bright object in the corner
    cands = [(230.0, 306.0), (570.0, 306.0), (302.0, 305.0), (652.0, 601.0), (400.0, 306.0), (50.0, 630.0),
             (350.0, 620.5), (0.4, 1.5), (799.0, 799.0), (500.0, 20.0), (2.5, 3.5)]
    cands += [(float(rng.uniform(0, 800)), float(rng.uniform(0, 800))) for _ in range(40)]
    cands += [(float(rng.uniform(0, 800)), float(rng.choice([306, 630, 10]))) for _ in range(40)]
    hps = [int(rng.integers(1, 40)) for _ in cands]
    lin = (10 ** (db.astype(np.float64) / 10)).astype(np.float32)
    return db, lin, cands, hps


def _same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for f in dataclasses.fields(x):
            u, v = getattr(x, f.name), getattr(y, f.name)
            assert u == v or abs(u - v) <= 1e-9 * max(1.0, abs(u)), (f.name, x, y)


@pytest.mark.parametrize("spacing", [1.0, 3.0])
def test_batched_parents_are_the_per_candidate_ones(spacing: float) -> None:
    db, lin, cands, hps = _scene()
    sea = sea_level(db, SEA_DB, lin)
    ref = [parents(db, rc, SEA_DB, spacing, hp, sea, lin)[0] for rc, hp in zip(cands, hps)]
    got = parents_batch(torch.from_numpy(db), torch.from_numpy(lin), cands, SEA_DB, spacing, hps, sea)
    assert sum(bool(r) for r in ref) >= 20  # the scene gives many candidates possible parents ...
    assert any(p.corr == 0.0 for r in ref for p in r) and any(p.corr > 0.8 for r in ref for p in r)
    for a, b in zip(ref, got, strict=True):
        _same(a, b)


def test_no_candidates_and_no_parents() -> None:
    db, lin, _, _ = _scene()
    t, tl = torch.from_numpy(db), torch.from_numpy(lin)
    assert parents_batch(t, tl, [], SEA_DB, 1.0, [], 1.0) == []
    flat = np.full((64, 64), SEA_DB, np.float32)
    assert parents_batch(torch.from_numpy(flat), torch.from_numpy(flat), [(10.0, 10.0), (60.0, 3.0)],
                         SEA_DB, 1.0, [8, 8], 0.01) == [[], []]


def test_ghost_flags_give_the_same_answer_with_the_batched_parents() -> None:
    db, lin, cands, hps = _scene()
    t, tl = torch.from_numpy(db), torch.from_numpy(lin)
    calls = []

    def find(cs: list, hs: list, sea: float) -> list:
        calls.append(len(cs))
        return parents_batch(t, tl, cs, SEA_DB, 1.0, hs, sea)

    for n_report in (None, 5):
        ref = ghost_flags(db, cands, SEA_DB, 1.0, hps, lin, n_report)
        got = ghost_flags(db, cands, SEA_DB, 1.0, hps, lin, n_report, find)
        assert got == ref
    assert any(ref[0]) and not all(ref[0])
    assert calls == [len(cands), 5, len(cands) - 5]  # the evidence candidates only when the first five have a parent


def test_ghost_flags_without_the_tile_given_its_sea_level() -> None:
    """The device path passes no dB tile, only the batched parents and the sea level (taken from
    sea_level's own subsample, which is that subsample's sea level too); anything less is refused."""
    from detectors.errors import DetectorInputError
    from detectors.sar.ambiguity import SEA_SAMPLE

    db, lin, cands, hps = _scene()
    t, tl = torch.from_numpy(db), torch.from_numpy(lin)

    def find(cs: list, hs: list, sea: float) -> list:
        return parents_batch(t, tl, cs, SEA_DB, 1.0, hs, sea)

    ref = ghost_flags(db, cands, SEA_DB, 1.0, hps, lin, 5)
    assert ghost_flags(None, cands, SEA_DB, 1.0, hps, None, 5, find, sea=sea_level(db, SEA_DB, lin)) == ref
    big = np.tile(db, (2, 1))  # 1.28 Mpx: sea_level subsamples every 4th pixel
    step = big.size // SEA_SAMPLE
    assert step >= 2
    assert sea_level(big.reshape(-1)[::step], SEA_DB) == sea_level(big, SEA_DB)
    with pytest.raises(DetectorInputError, match="needs the dB tile"):
        ghost_flags(None, cands, SEA_DB, 1.0, hps, None, 5, find)
    with pytest.raises(DetectorInputError, match="needs the dB tile"):
        ghost_flags(None, cands, SEA_DB, 1.0, hps, None, 5, sea=1.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_batched_parents_agree() -> None:
    db, lin, cands, hps = _scene(seed=4)
    sea = sea_level(db, SEA_DB, lin)
    ref = [parents(db, rc, SEA_DB, 1.0, hp, sea, lin)[0] for rc, hp in zip(cands, hps)]
    got = parents_batch(torch.from_numpy(db).cuda(), torch.from_numpy(lin).cuda(), cands, SEA_DB, 1.0, hps, sea)
    assert len(got) == len(ref) and sum(map(len, got)) == sum(map(len, ref)) > 0
    for a, b in zip(ref, got, strict=True):
        _same(a, b)
