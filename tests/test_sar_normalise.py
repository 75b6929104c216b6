"""The SAR network's normalisation, written into one buffer, and the fine grid normalised window by window.

Both are speed changes (issue 20: the shipped default on a CPU) that must not change one value:
the reference below is the expression of ``detectors.sar.network``'s docstring, written out
plainly, and every comparison is ``torch.equal``.
"""

from __future__ import annotations

import pytest
import torch

from detectors.sar import network as N
from detectors.sar.fine_pass import FineTile, fine_grid, fine_window_scores


def _reference(power: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The normalisation as documented: dB, the median / MAD of a <= 262,144-pixel regular subsample
    of the valid pixels, two clamped channels, zero where invalid."""
    db = 10.0 * torch.log10(power.clamp_min(1e-10))
    chans = []
    for d, v in zip(db, valid):
        sample = d[v]
        if sample.numel() > 262_144:
            sample = sample[:: sample.numel() // 262_144 + 1]
        if sample.numel() == 0:
            chans.append(torch.zeros((2,) + d.shape, dtype=power.dtype))
            continue
        m = sample.median()
        mad = (sample - m).abs().median()
        c = d - m
        chans.append(torch.stack([(c / 10.0).clamp(-2.0, 5.0),
                                  (c / (1.4826 * mad + 0.1) / 5.0).clamp(-2.0, 5.0)]) * v)
    return torch.stack(chans).to(torch.float32)


def _tile(shape: tuple[int, ...], invalid: float, seed: int, dtype: torch.dtype = torch.float32
          ) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    power = (torch.rand(shape, generator=g, dtype=torch.float64) ** 4 * 0.1).to(dtype)
    power[..., :3, :5] = 0.0  # zero power: the 1e-10 floor
    valid = torch.rand(shape, generator=g) >= invalid
    return power * valid, valid


@pytest.mark.parametrize("shape,invalid,dtype", [
    ((2, 300, 420), 0.0, torch.float32),  # all valid (the sample taken without a mask)
    ((1, 700, 600), 0.3, torch.float32),  # 420,000 valid pixels: subsampled
    ((1, 64, 80), 0.5, torch.float64),  # float64 input keeps float64 arithmetic
    ((2, 40, 48), 1.0, torch.float32),  # nothing valid: zeros
])
def test_normalise_equals_the_documented_expression(shape: tuple[int, ...], invalid: float, dtype: torch.dtype) -> None:
    power, valid = _tile(shape, invalid, seed=len(shape) + shape[-1])
    power = power.to(dtype)
    got = N.normalise(power, valid)
    assert got.dtype == torch.float32 and got.shape == (shape[0], 2) + shape[1:]
    assert torch.equal(got, _reference(power, valid))


@pytest.mark.parametrize("invalid", [0.0, 0.2])
def test_fine_tile_windows_are_the_whole_padded_tile(invalid: float) -> None:
    """Windows anywhere, also across the bottom/right padding and past the tile, hold exactly the
    values of the whole tile normalised and padded the way the network's input is."""
    power, valid = _tile((1, 203, 181), invalid, seed=3)
    whole = N.pad_to_multiple(_reference(power, valid))[0]
    tile = FineTile(power[0], valid[0])
    assert tile.padded_shape == tuple(whole.shape) == (2, 208, 192)
    assert torch.equal(tile.full(), whole[:, :203, :181])
    for r0, c0, h, w in ((0, 0, 64, 64), (96, 112, 112, 80), (160, 0, 48, 192), (192, 176, 16, 16)):
        assert torch.equal(tile.window(r0, c0, h, w), whole[:, r0:r0 + h, c0:c0 + w]), (r0, c0)
    beyond = tile.window(200, 180, 32, 32)
    assert torch.equal(beyond[:, :3, :1], whole[:, 200:203, 180:181]) and not beyond[:, 3:].any()
    # several windows at once (the fine pass's batch), inside the tile and across its edge
    at = [(0, 0), (96, 112), (160, 144), (192, 176), (16, 32)]
    many = tile.windows(at, 32, 32)
    assert many.shape == (5, 2, 32, 32)
    for k, (r0, c0) in enumerate(at):
        assert torch.equal(many[k], tile.window(r0, c0, 32, 32)), (r0, c0)
    inside = tile.windows(at[:2] + at[-1:], 32, 32)  # all inside: one normalisation
    assert torch.equal(inside, torch.stack([whole[:, r0:r0 + 32, c0:c0 + 32] for r0, c0 in at[:2] + at[-1:]]))


def test_fine_pass_scores_from_windows_equal_those_from_the_whole_tile() -> None:
    """fine_window_scores over a FineTile (what the detector now gives it) and over the tile
    normalised as a whole (what it was given before) run the network on identical windows; two
    candidates sharing a window are scored from one network window."""
    seen: list[torch.Tensor] = []

    def heads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(x)  # a stand-in network: the window's own 2 x 2 mean of channel 1, as a heatmap
        heat = torch.nn.functional.avg_pool2d(x[:, 1:2], 2)
        return heat, heat.repeat(1, 4, 1, 1)

    x, v = _tile((1, 420, 390), 0.1, seed=9)
    fine = fine_grid(x, (0.5, 0.5), v)
    assert len(fine) == 1 and isinstance(fine[0], FineTile)
    centres = [(10.0, 12.0), (100.0, 90.5), (100.5, 91.0), (209.0, 194.0)]
    a = fine_window_scores(heads, fine[0], centres)
    b = fine_window_scores(heads, fine[0].full(), centres)
    assert a == b
    assert seen[0].shape[0] == 3 and torch.equal(seen[0], seen[1])  # two of four centres share a window
    # each centre scored alone (its own one-window batch) gives the same score: the shared window
    # is looked up at the right index
    assert [fine_window_scores(heads, fine[0], [c])[0] for c in centres] == a


def _reference_grid(sigma0: torch.Tensor, spacing: tuple[float, float], valid: torch.Tensor | None,
                    target_m: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The working-grid resampling as documented: area means of sigma0 * v and of v (bilinear when
    finer), power their ratio, zero where less than half was valid."""
    b, h, w = sigma0.shape
    hw, ww = N.working_shape((h, w), spacing, target_m)
    v = torch.ones_like(sigma0) if valid is None else valid.to(sigma0.dtype)
    if (hw, ww) == (h, w):
        return sigma0 * v, v > 0.5
    x = torch.stack([sigma0 * v, v], dim=1)
    mode = {"mode": "area"} if hw <= h and ww <= w else {"mode": "bilinear", "align_corners": False}
    y = torch.nn.functional.interpolate(x, size=(hw, ww), **mode)
    frac = y[:, 1]
    ok = frac >= 0.5
    return y[:, 0] / frac.clamp_min(1e-6) * ok, ok


@pytest.mark.parametrize("shape,spacing,invalid,target", [
    ((2, 400, 480), (0.5, 0.5), 0.0, None),  # 2x2 means, all valid: avg_pool2d, no mask arithmetic
    ((1, 400, 480), (0.5, 0.5), 0.25, None),  # 2x2 means with no-data
    ((1, 256, 320), (0.25, 0.25), 0.0, None),  # 4x4
    ((1, 300, 320), (0.5, 0.25), 0.1, None),  # anisotropic 2x4
    ((1, 350, 350), (0.35, 0.35), 0.0, None),  # non-integer factor: area resampling
    ((1, 401, 399), (0.5, 0.5), 0.0, None),  # odd sides: not an exact factor
    ((1, 200, 240), (1.0, 1.0), 0.3, None),  # the grid itself
    ((1, 200, 240), (1.0, 1.0), 0.0, None),
    ((1, 200, 240), (1.0, 1.0), 0.0, 4.0),  # a pyramid level, all valid
    ((1, 200, 240), (1.0, 1.0), 0.3, 2.0),  # a pyramid level with no-data
    ((1, 100, 120), (1.0, 1.0), 0.0, 0.5),  # finer: bilinear
    ((1, 4, 8), (0.25, 0.125), 0.0, None),  # to one pixel: torch's whole-axis mean, not avg_pool2d
    ((1, 32, 32), (0.03125, 0.03125), 0.0, None),
    ((1, 64, 2), (0.25, 0.5), 0.0, None),  # one side of one pixel
])
def test_working_grid_equals_the_documented_resampling(shape: tuple[int, ...], spacing: tuple[float, float],
                                                       invalid: float, target: float | None) -> None:
    power, valid = _tile(shape, invalid, seed=shape[-1] + int(10 * spacing[1]))
    if min(shape[-2:]) < 8:
        power[..., :3, :5] = torch.rand(power[..., :3, :5].shape, generator=torch.Generator().manual_seed(1)) ** 4
    for v in ((valid, None) if invalid == 0.0 else (valid,)):
        got_p, got_v = N.to_working_grid(power, spacing, v, target_m=target)
        ref_p, ref_v = _reference_grid(power, spacing, v, target_m=target)
        assert got_p.shape == ref_p.shape and got_v.dtype == torch.bool
        assert torch.equal(got_p, ref_p) and torch.equal(got_v, ref_v)
        assert got_p.data_ptr() != power.data_ptr()  # a new tensor: callers may keep the input
