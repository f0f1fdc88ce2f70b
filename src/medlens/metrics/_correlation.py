"""Correlation coefficients for quality-assessment tasks (SRCC, PLCC, KRCC).

``reference`` holds the subjective scores (e.g. mean opinion scores),
``prediction`` the model's scores. All three take SciPy's definitions; the
wrappers add one policy for degenerate input: fewer than two finite pairs or a
constant input gives NaN (SciPy would warn), never an exception or a silent 0.
``pearson_correlation(..., logistic=True)`` first fits the 4-parameter logistic
mapping of the VQEG protocol (:func:`logistic_mapping`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt

__all__ = [
    "kendall_correlation",
    "logistic_mapping",
    "pearson_correlation",
    "spearman_correlation",
]


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


def _logistic4(
    x: npt.NDArray[np.float64], b1: float, b2: float, b3: float, b4: float
) -> npt.NDArray[np.float64]:
    with np.errstate(over="ignore"):
        out: npt.NDArray[np.float64] = (b1 - b2) / (1.0 + np.exp(-(x - b3) / abs(b4))) + b2
    return out


def logistic_mapping(
    reference: npt.ArrayLike, prediction: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Map predictions onto the reference scale with a fitted 4-parameter logistic.

    ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``, fitted by least
    squares (``scipy.optimize.curve_fit``) from ``b = (max(ref), min(ref),
    mean(pred), std(pred))`` — the nonlinear regression of the VQEG protocol that
    IQA papers apply before PLCC.

    Parameters
    ----------
    reference, prediction : array_like
        1D score arrays of equal length (subjective scores, model scores).

    Returns
    -------
    numpy.ndarray
        ``f(prediction)``.

    Raises
    ------
    ValueError
        If the fit does not converge, or for degenerate input.
    """
    pair = _finite_pairs(reference, prediction)
    if pair is None:
        raise ValueError("logistic mapping needs at least 2 non-constant pairs")
    a, b = pair
    from scipy.optimize import OptimizeWarning, curve_fit

    p0 = [float(a.max()), float(a.min()), float(b.mean()), float(b.std()) or 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            params, _ = curve_fit(_logistic4, b, a, p0=p0, maxfev=20000)
        except RuntimeError as e:
            raise ValueError(f"logistic fit did not converge: {e}") from None
    mapped: npt.NDArray[np.float64] = _logistic4(b, *params)
    return mapped


def pearson_correlation(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, *, logistic: bool = False
) -> float:
    """Pearson linear correlation coefficient (PLCC), as ``scipy.stats.pearsonr``.

    Parameters
    ----------
    reference, prediction : array_like
        1D score arrays of equal length.
    logistic : bool, optional
        First map the predictions with :func:`logistic_mapping` (the usual
        IQA protocol); the plain linear PLCC otherwise.

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
    a, b = pair
    if logistic:
        b = logistic_mapping(a, b)
        if np.all(b == b[0]):
            return math.nan
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.pearsonr(a, b).statistic)


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
