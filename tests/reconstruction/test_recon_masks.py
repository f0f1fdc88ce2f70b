"""Sampling masks: fastMRI equality (recorded and live), CMRxRecon, Poisson-disc, density."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.reconstruction import (
    EquiSpacedMaskFunc,
    RandomMaskFunc,
    acs_bounds,
    cmrxrecon_mask,
    equispaced_mask,
    line_or_2d_mask,
    poisson_disc_mask,
    random_mask,
    variable_density_mask,
)

# Masks drawn with fastmri 0.3.0 (fastmri.data.subsample), shape given in fastMRI's
# real-view convention (..., H, W, 2); recorded as the indices of the sampled columns.
RECORDED = [
    ("random", [0.04], [8], (1, 640, 372, 2), 42, None, 15,
     [6, 10, 29, 32, 42, 58, 68, 72, 77, 83, 98, 100, 109, 128, 145, 148, 168, 171, 179, 180,
      181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 201, 205, 208, 237, 244,
      285, 290, 291, 299, 300, 311, 312, 332, 334, 335, 347, 354, 356, 369, 371]),
    ("equispaced", [0.04], [8], (1, 320, 320, 2), 7, None, 13,
     [7, 15, 23, 31, 39, 47, 55, 63, 71, 79, 87, 95, 103, 111, 119, 127, 135, 143, 151, 154,
      155, 156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167, 175, 183, 191, 199, 207,
      215, 223, 231, 239, 247, 255, 263, 271, 279, 287, 295, 303, 311, 319]),
    ("random", [0.08, 0.04], [4, 8], (3, 100, 64, 2), (1, 2), None, 3,
     [27, 31, 32, 33, 40, 50, 53]),
    ("equispaced", [0.08], [4], (1, 64, 50, 2), 5, 2, 4,
     [2, 6, 10, 14, 18, 22, 23, 24, 25, 26, 30, 34, 38, 42, 46]),
]  # fmt: skip


def _ours(kind: str) -> type:
    return RandomMaskFunc if kind == "random" else EquiSpacedMaskFunc


@pytest.mark.parametrize("case", RECORDED, ids=lambda c: f"{c[0]}-{c[4]}")
def test_recorded_fastmri_masks(case: tuple) -> None:
    kind, cf, acc, shape, seed, offset, n_low, cols = case
    mask, n = _ours(kind)(cf, acc)(shape[:-1], offset=offset, seed=seed)
    assert n == n_low
    assert np.flatnonzero(mask).tolist() == cols


def test_live_fastmri_equality() -> None:
    subsample = pytest.importorskip("fastmri.data.subsample")
    for kind, theirs_cls in (("random", subsample.RandomMaskFunc),
                             ("equispaced", subsample.EquiSpacedMaskFunc)):  # fmt: skip
        for cf, acc in (([0.08], [4]), ([0.04], [8]), ([0.08, 0.04], [4, 8])):
            for num_cols in (368, 372, 320, 33):
                for seed in (0, 1, 17, 12345, (3, 4)):
                    theirs = theirs_cls(cf, acc)
                    ours = _ours(kind)(cf, acc)
                    m_t, n_t = theirs((1, 640, num_cols, 2), seed=seed)
                    m_o, n_o = ours((1, 640, num_cols), seed=seed)
                    assert n_o == n_t
                    np.testing.assert_array_equal(m_o, m_t.numpy().ravel().astype(bool))
        # an un-seeded stream from a seeded generator also matches draw for draw
        theirs = theirs_cls([0.08, 0.04], [4, 8], seed=99)
        ours = _ours(kind)([0.08, 0.04], [4, 8], seed=99)
        for _ in range(5):
            m_t, _n = theirs((1, 10, 100, 2))
            m_o, _n = ours((1, 10, 100))
            np.testing.assert_array_equal(m_o, m_t.numpy().ravel().astype(bool))
        theirs = theirs_cls([0.08], [4, 8], allow_any_combination=True, seed=5)
        ours = _ours(kind)([0.08], [4, 8], allow_any_combination=True, seed=5)
        for _ in range(5):
            np.testing.assert_array_equal(
                ours((1, 4, 90))[0], theirs((1, 4, 90, 2))[0].numpy().ravel().astype(bool)
            )


def test_seed_restores_state() -> None:
    f = RandomMaskFunc([0.08], [4], seed=3)
    a = f((1, 8, 64))[0]
    g = RandomMaskFunc([0.08], [4], seed=3)
    g((1, 8, 64), seed=11)  # a seeded draw must not disturb the generator's stream
    np.testing.assert_array_equal(g((1, 8, 64))[0], a)


def test_functional_masks_match_classes() -> None:
    np.testing.assert_array_equal(
        random_mask(368, 4, seed=5), RandomMaskFunc([0.08], [4])((368,), seed=5)[0]
    )
    m = equispaced_mask(256, 4, num_low_frequencies=24, seed=1)
    lo, hi = acs_bounds(m)
    assert lo <= 116 and hi >= 140
    assert m[116:140].all()
    with pytest.raises(ValueError, match="not both"):
        random_mask(64, 4, center_fraction=0.1, num_low_frequencies=4)


def test_mask_func_errors() -> None:
    with pytest.raises(ValueError, match="pair up"):
        RandomMaskFunc([0.08, 0.04], [4])
    with pytest.raises(ValueError, match="empty"):
        EquiSpacedMaskFunc([], [])


def test_cmrxrecon_mask_by_hand() -> None:
    # mySubsampling.m: mask(:, 1:R:end) = 1 plus zpad-centred calibration lines
    m = cmrxrecon_mask(246, 8, acs=24)
    expected = set(range(0, 246, 8)) | set(range(123 - 12, 123 + 12))
    assert set(np.flatnonzero(m).tolist()) == expected
    m = cmrxrecon_mask(11, 4, acs=3)
    assert np.flatnonzero(m).tolist() == [0, 4, 5, 6, 8]
    with pytest.raises(ValueError):
        cmrxrecon_mask(10, 0)


def test_acs_bounds() -> None:
    # line 140 is also an every-4th line, so the contiguous block reaches 141
    assert acs_bounds(cmrxrecon_mask(256, 4, acs=24)) == (116, 141)
    assert acs_bounds(cmrxrecon_mask(256, 6, acs=24)) == (116, 140)
    with pytest.raises(ValueError, match="centre line"):
        acs_bounds([1, 0, 0, 0, 1])


@pytest.mark.parametrize("accel", [4, 8])
def test_poisson_disc_properties(accel: int) -> None:
    m = poisson_disc_mask((96, 80), accel, calib=16, seed=1)
    assert m.shape == (96, 80)
    assert m[40:56, 32:48].all()
    assert abs(m.size / m.sum() - accel) <= 0.05 * accel + 1e-9
    # Poisson-disc: outside the calibration box no two samples are direct neighbours near the edge
    edge = m.copy()
    edge[24:72, 16:64] = False
    ys, xs = np.nonzero(edge)
    pts = np.stack([ys, xs], 1)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    d[np.diag_indices_from(d)] = np.inf
    assert d.min() > 1.0
    np.testing.assert_array_equal(m, poisson_disc_mask((96, 80), accel, calib=16, seed=1))


def test_variable_density_properties() -> None:
    m = variable_density_mask((128, 128), 6, acs=12, seed=0)
    assert m[58:70, 58:70].all()
    assert abs(m.size / m.sum() - 6) < 0.4
    # density decreases from the centre outwards
    yy, xx = np.mgrid[-64:64, -64:64]
    r = np.sqrt(yy**2 + xx**2)
    inner = m[(r > 10) & (r < 30)].mean()
    outer = m[(r > 50) & (r < 64)].mean()
    assert inner > 2 * outer
    lines = variable_density_mask(256, 4, acs=24, seed=2)
    assert lines.shape == (256,) and lines[116:140].all()
    with pytest.raises(ValueError, match="exceeds"):
        variable_density_mask((16, 16), 8, acs=12)


def test_line_or_2d_mask_kinds() -> None:
    for kind in ("equispaced", "random", "uniform"):
        m = line_or_2d_mask(kind, (64, 128), 4, acs=16, seed=0)
        assert m.shape == (128,) and m[56:72].all()
    for kind in ("poisson", "variable-density"):
        assert line_or_2d_mask(kind, (64, 64), 4, acs=8, seed=0).shape == (64, 64)
    with pytest.raises(ValueError, match="unknown mask kind"):
        line_or_2d_mask("spiral", (8, 8), 2)
