"""Correlation coefficients for quality-assessment tasks (SRCC, PLCC, KRCC).

``reference`` holds the subjective scores (e.g. mean opinion scores),
``prediction`` the model's scores. All three take SciPy's definitions; the
wrappers add one policy for degenerate input: fewer than two finite pairs or a
constant input gives NaN (SciPy would warn), never an exception or a silent 0.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt

__all__ = ["kendall_correlation", "pearson_correlation", "spearman_correlation"]


def _finite_pairs(
    reference: npt.ArrayLike, prediction: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(prediction, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"need two 1D arrays of equal length, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("scores contain NaN or infinite values; drop those cases first")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return a, b


def pearson_correlation(reference: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
    """Pearson linear correlation coefficient (PLCC), as ``scipy.stats.pearsonr``.

    No logistic mapping is fitted first; fit one yourself when a protocol
    (e.g. VQEG) requires it.

    Parameters
    ----------
    reference, prediction : array_like
        1D score arrays of equal length.

    Returns
    -------
    float
        In [-1, 1]; NaN for fewer than 2 pairs or a constant input.

    Examples
    --------
    >>> pearson_correlation([1, 2, 3], [2, 4, 7])
    0.9933992677987828
    """
    pair = _finite_pairs(reference, prediction)
    if pair is None:
        return math.nan
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.pearsonr(*pair).statistic)


def spearman_correlation(reference: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
    """Spearman rank-order correlation coefficient (SRCC), as ``scipy.stats.spearmanr``.

    Pearson correlation of the ranks, ties given their average rank.

    Parameters
    ----------
    reference, prediction : array_like
        1D score arrays of equal length.

    Returns
    -------
    float
        In [-1, 1]; NaN for fewer than 2 pairs or a constant input.

    Examples
    --------
    >>> round(spearman_correlation([1, 2, 3, 4], [1, 3, 2, 4]), 12)
    0.8
    """
    pair = _finite_pairs(reference, prediction)
    if pair is None:
        return math.nan
    from scipy import stats

    return float(stats.spearmanr(*pair).statistic)


def kendall_correlation(reference: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
    """Kendall rank correlation coefficient (KRCC), tau-b, as ``scipy.stats.kendalltau``.

    ``tau_b = (C - D) / sqrt((C + D + T_x)(C + D + T_y))`` with ``C``/``D`` the
    concordant/discordant pairs and ``T_x``/``T_y`` pairs tied in only one input.

    Parameters
    ----------
    reference, prediction : array_like
        1D score arrays of equal length.

    Returns
    -------
    float
        In [-1, 1]; NaN for fewer than 2 pairs or a constant input.

    Examples
    --------
    >>> round(kendall_correlation([1, 2, 3, 4], [1, 3, 2, 4]), 6)
    0.666667
    """
    pair = _finite_pairs(reference, prediction)
    if pair is None:
        return math.nan
    from scipy import stats

    return float(stats.kendalltau(*pair).statistic)
