"""SRCC, PLCC and KRCC against scipy.stats and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from medlens import metrics as mm


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mos = rng.normal(size=60)
    pred = np.round(mos + rng.normal(scale=0.7, size=60), 1)  # ties in prediction
    assert mm.pearson_correlation(mos, pred) == pytest.approx(
        stats.pearsonr(mos, pred)[0], rel=1e-12
    )
    assert mm.spearman_correlation(mos, pred) == pytest.approx(
        stats.spearmanr(mos, pred)[0], rel=1e-12
    )
    assert mm.kendall_correlation(mos, pred) == pytest.approx(
        stats.kendalltau(mos, pred)[0], rel=1e-12
    )


def test_hand_worked() -> None:
    x = [1, 2, 3, 4]
    y = [1, 3, 2, 4]
    # one swapped pair: d = (0, 1, -1, 0), rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert mm.spearman_correlation(x, y) == pytest.approx(0.8)
    # 5 concordant, 1 discordant of 6 pairs: tau = 4 / 6
    assert mm.kendall_correlation(x, y) == pytest.approx(2 / 3)
    assert mm.pearson_correlation(x, [2 * v + 1 for v in x]) == pytest.approx(1.0)
    assert mm.spearman_correlation(x, [-(v**3) for v in x]) == pytest.approx(-1.0)
    # tau-b with ties: x = (1, 1, 2), y = (1, 2, 3): C = 2, D = 0, T_x = 1, T_y = 0
    assert mm.kendall_correlation([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2 * 3))


def test_degenerate_inputs_are_nan() -> None:
    for f in (mm.pearson_correlation, mm.spearman_correlation, mm.kendall_correlation):
        assert math.isnan(f([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
        assert math.isnan(f([1.0], [2.0]))
        with pytest.raises(ValueError, match="equal length"):
            f([1.0, 2.0], [1.0])
        with pytest.raises(ValueError, match="NaN"):
            f([1.0, np.nan], [1.0, 2.0])


def test_logistic_plcc() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(-3, 3, 200)
    mos = 1 + 4 / (1 + np.exp(-1.7 * (x - 0.3)))  # a saturating, monotone relation
    noisy = mos + rng.normal(scale=0.05, size=x.size)
    linear = mm.pearson_correlation(noisy, x)
    fitted = mm.pearson_correlation(noisy, x, logistic=True)
    assert fitted > linear and fitted > 0.99
    # the fitted curve recovers the generating one
    np.testing.assert_allclose(mm.logistic_mapping(mos, x), mos, atol=1e-6)
    # the mapping is monotone, so SRCC and KRCC are unchanged by it
    mapped = mm.logistic_mapping(noisy, x)
    assert mm.spearman_correlation(noisy, mapped) == pytest.approx(
        mm.spearman_correlation(noisy, x)
    )
    with pytest.raises(ValueError, match="non-constant"):
        mm.logistic_mapping([1.0, 1.0], [1.0, 2.0])
