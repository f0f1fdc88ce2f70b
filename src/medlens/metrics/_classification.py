"""Binary classification metrics, bootstrap intervals, patient-level and per-group results.

Conventions: ``reference`` holds the true labels (0/1 or bool; 1 = positive),
``scores`` the predicted positive-class scores or probabilities (higher = more
likely positive). A case is called positive when ``score >= threshold``.
scikit-learn is imported inside the functions that use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "ConfidenceInterval",
    "Disparity",
    "GroupResult",
    "OperatingPoint",
    "PatientScores",
    "auprc",
    "auroc",
    "balanced_accuracy",
    "bootstrap_ci",
    "brier_score",
    "calibration_bins",
    "disparity_summary",
    "expected_calibration_error",
    "f1_score",
    "group_results",
    "operating_point",
    "operating_point_at_sensitivity",
    "patient_scores",
]


def _labels(reference: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    y = np.asarray(reference)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1D, got shape {y.shape}")
    if y.dtype != np.bool_:
        values = set(np.unique(y).tolist())
        if not values <= {0, 1}:
            raise ValueError(f"labels must be 0/1 or bool, got values {sorted(values)[:5]}")
    return y.astype(bool)


def _scores(scores: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"scores must have shape ({n},) like the labels, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    return s


def _both_classes(y: npt.NDArray[np.bool_]) -> bool:
    return bool(y.any() and (~y).any())


def auroc(reference: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (ties count one half), equal to ``sklearn.metrics.roc_auc_score``.

    Computed as the Mann-Whitney statistic ``(R_pos - n_pos (n_pos + 1) / 2) /
    (n_pos n_neg)`` from average ranks, which is exact and O(n log n) — fast
    enough for thousands of bootstrap resamples.

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``, 0/1 or bool.
    scores : array_like
        Positive-class scores, shape ``(n,)``.

    Returns
    -------
    float
        AUROC in [0, 1]; NaN when only one class is present (undefined, never
        silently 0.5).

    Examples
    --------
    >>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y = _labels(reference)
    s = _scores(scores, y.size)
    if not _both_classes(y):
        return math.nan
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    r_pos = float(_average_ranks(s)[y].sum())
    return (r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _average_ranks(s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks with ties given their average rank (``scipy.stats.rankdata``)."""
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    new = np.r_[True, ss[1:] != ss[:-1]]
    group = np.cumsum(new) - 1
    counts = np.bincount(group)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    ranks = np.empty(s.size)
    ranks[order] = (starts + (counts + 1) / 2.0)[group]
    return ranks


def _average_precision(y: npt.NDArray[np.bool_], s: npt.NDArray[np.float64]) -> float:
    order = np.argsort(-s, kind="mergesort")
    ss, yy = s[order], y[order]
    # the last index of each distinct score (thresholds from high to low)
    last = np.r_[np.flatnonzero(np.diff(ss)), ss.size - 1]
    tp = np.cumsum(yy)[last].astype(np.float64)
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auprc(
    reference: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    method: Literal["average_precision", "trapezoid"] = "average_precision",
) -> float:
    """Area under the precision-recall curve.

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``.
    scores : array_like
        Positive-class scores, shape ``(n,)``.
    method : {"average_precision", "trapezoid"}, optional
        ``"average_precision"``: ``sum_k (R_k - R_{k-1}) P_k`` over the distinct
        score thresholds (step function, equal to
        ``sklearn.metrics.average_precision_score``; recommended, not optimistic).
        ``"trapezoid"``: trapezoidal area under ``precision_recall_curve``
        (``sklearn.metrics.auc``), which interpolates linearly and can be optimistic.

    Returns
    -------
    float
        AUPRC in [0, 1]; NaN when there is no positive case.

    Examples
    --------
    >>> round(auprc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 6)
    0.833333
    """
    y = _labels(reference)
    s = _scores(scores, y.size)
    if not y.any():
        return math.nan
    if method == "average_precision":
        return _average_precision(y, s)
    if method == "trapezoid":
        from sklearn.metrics import auc, precision_recall_curve

        precision, recall, _ = precision_recall_curve(y, s)
        return float(auc(recall, precision))
    raise ValueError(f"method must be 'average_precision' or 'trapezoid', got {method!r}")


@dataclass(frozen=True)
class OperatingPoint:
    """Confusion counts and rates at one threshold (positive when ``score >= threshold``).

    Attributes
    ----------
    threshold : float
        The decision threshold.
    tp, fp, tn, fn : int
        Confusion-matrix counts.
    sensitivity, specificity, ppv, npv, f1, balanced_accuracy : float
        Rates; NaN where the denominator is zero (e.g. sensitivity without positives).
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    f1: float
    balanced_accuracy: float


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _point(y: npt.NDArray[np.bool_], predicted: npt.NDArray[np.bool_], t: float) -> OperatingPoint:
    tp = int(np.sum(predicted & y))
    fp = int(np.sum(predicted & ~y))
    tn = int(np.sum(~predicted & ~y))
    fn = int(np.sum(~predicted & y))
    sens = _ratio(tp, tp + fn)
    spec = _ratio(tn, tn + fp)
    return OperatingPoint(
        threshold=float(t),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        sensitivity=sens,
        specificity=spec,
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        balanced_accuracy=(sens + spec) / 2,
    )


def operating_point(
    reference: npt.ArrayLike, scores: npt.ArrayLike, *, threshold: float
) -> OperatingPoint:
    """Sensitivity, specificity and friends at a fixed threshold.

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``.
    scores : array_like
        Scores, shape ``(n,)``; a case is positive when ``score >= threshold``.
    threshold : float
        Decision threshold.

    Returns
    -------
    OperatingPoint
        Counts and rates.

    Examples
    --------
    >>> p = operating_point([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    >>> p.tp, p.fp, p.sensitivity, p.specificity
    (1, 1, 0.5, 0.5)
    """
    y = _labels(reference)
    s = _scores(scores, y.size)
    return _point(y, s >= threshold, threshold)


def operating_point_at_sensitivity(
    reference: npt.ArrayLike, scores: npt.ArrayLike, *, target_sensitivity: float
) -> OperatingPoint:
    """Find the operating point with the highest threshold whose sensitivity reaches a target.

    Among the candidate thresholds (the distinct scores), the largest ``t`` with
    ``sensitivity(t) >= target_sensitivity`` is chosen; as sensitivity falls and
    specificity rises with ``t``, this is the most specific point meeting the
    target.

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``; at least one positive.
    scores : array_like
        Scores, shape ``(n,)``.
    target_sensitivity : float
        In (0, 1].

    Returns
    -------
    OperatingPoint
        The chosen point (its threshold is one of the scores).

    Raises
    ------
    ValueError
        Without positive cases or with a target outside (0, 1].

    Examples
    --------
    >>> p = operating_point_at_sensitivity([0, 0, 1, 1, 1], [0.1, 0.5, 0.4, 0.7, 0.9],
    ...                                    target_sensitivity=0.6)
    >>> p.threshold, round(p.sensitivity, 3), p.specificity
    (0.7, 0.667, 1.0)
    """
    y = _labels(reference)
    s = _scores(scores, y.size)
    if not 0 < target_sensitivity <= 1:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    if not y.any():
        raise ValueError("no positive case: sensitivity is undefined")
    pos = np.sort(s[y])[::-1]
    # sensitivity(t) >= target  <=>  at least k positives have score >= t
    k = math.ceil(target_sensitivity * pos.size - 1e-12)
    t = float(pos[k - 1])
    return _point(y, s >= t, t)


def f1_score(reference: npt.ArrayLike, predicted: npt.ArrayLike) -> float:
    """F1 of binary predictions, ``2 TP / (2 TP + FP + FN)``.

    Parameters
    ----------
    reference, predicted : array_like
        True and predicted labels (0/1 or bool), shape ``(n,)``.

    Returns
    -------
    float
        F1 in [0, 1]; NaN when there is no positive in either (sklearn returns 0
        there with a warning).

    Examples
    --------
    >>> f1_score([1, 1, 0, 0], [1, 0, 1, 0])
    0.5
    """
    y = _labels(reference)
    p = _labels(predicted)
    if p.shape != y.shape:
        raise ValueError(f"shapes differ: {y.shape} and {p.shape}")
    return _point(y, p, math.nan).f1


def balanced_accuracy(reference: npt.ArrayLike, predicted: npt.ArrayLike) -> float:
    """Balanced accuracy, the mean of sensitivity and specificity.

    Parameters
    ----------
    reference, predicted : array_like
        True and predicted labels (0/1 or bool), shape ``(n,)``.

    Returns
    -------
    float
        In [0, 1]; NaN when a class is absent from ``reference``.

    Examples
    --------
    >>> balanced_accuracy([1, 1, 0, 0, 0], [1, 0, 0, 0, 1])
    0.5833333333333333
    """
    y = _labels(reference)
    p = _labels(predicted)
    if p.shape != y.shape:
        raise ValueError(f"shapes differ: {y.shape} and {p.shape}")
    return _point(y, p, math.nan).balanced_accuracy


def _probabilities(probabilities: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    p = _scores(probabilities, n)
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"probabilities must lie in [0, 1], got range [{p.min()}, {p.max()}]")
    return p


def brier_score(reference: npt.ArrayLike, probabilities: npt.ArrayLike) -> float:
    """Brier score, ``mean((p - y)²)`` (lower is better).

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``.
    probabilities : array_like
        Predicted positive-class probabilities in [0, 1].

    Returns
    -------
    float
        In [0, 1]; equals ``sklearn.metrics.brier_score_loss``.

    Examples
    --------
    >>> brier_score([0, 1], [0.25, 0.5])
    0.15625
    """
    y = _labels(reference)
    p = _probabilities(probabilities, y.size)
    return float(np.mean((p - y) ** 2))


def calibration_bins(
    reference: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    *,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per-bin observed frequency, mean predicted probability and count.

    Bins (as ``sklearn.calibration.calibration_curve``): with edges
    ``e_0 < e_1 < ... < e_B`` (``uniform``: ``e_b = b / B``; ``quantile``: the
    ``b / B`` quantiles of the probabilities), bin 1 is ``[e_0, e_1]`` and bin
    ``b > 1`` is ``(e_{b-1}, e_b]``: right-closed, with 0 in the first bin.

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``.
    probabilities : array_like
        Positive-class probabilities in [0, 1].
    n_bins : int, optional
        Number of bins ``B``.
    strategy : {"uniform", "quantile"}, optional
        Equal-width or equal-count bins.

    Returns
    -------
    observed, predicted : numpy.ndarray
        Fraction of positives and mean probability per bin (NaN for empty bins).
    counts : numpy.ndarray
        Cases per bin.
    """
    y = _labels(reference)
    p = _probabilities(probabilities, y.size)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 100, n_bins + 1))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    ids = np.searchsorted(edges[1:-1], p, side="left")
    counts = np.bincount(ids, minlength=n_bins).astype(np.int64)
    sum_y = np.bincount(ids, weights=y.astype(float), minlength=n_bins)
    sum_p = np.bincount(ids, weights=p, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.where(counts > 0, sum_y / np.maximum(counts, 1), np.nan)
        predicted = np.where(counts > 0, sum_p / np.maximum(counts, 1), np.nan)
    return observed, predicted, counts


def expected_calibration_error(
    reference: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    *,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> float:
    """Return the expected calibration error (ECE) of positive-class probabilities.

    ``ECE = sum_b (n_b / n) |observed_b - predicted_b|`` over the non-empty
    bins of :func:`calibration_bins` (default: 10 equal-width, right-closed
    bins). This is the binary (positive-class) ECE, not the top-label ECE of
    multi-class papers.

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``.
    probabilities : array_like
        Positive-class probabilities in [0, 1].
    n_bins : int, optional
        Number of bins.
    strategy : {"uniform", "quantile"}, optional
        Bin edges, see :func:`calibration_bins`.

    Returns
    -------
    float
        ECE in [0, 1].

    Examples
    --------
    >>> round(expected_calibration_error([0, 1, 1, 1], [0.05, 0.95, 0.95, 0.15]), 4)
    0.25
    """
    observed, predicted, counts = calibration_bins(
        reference, probabilities, n_bins=n_bins, strategy=strategy
    )
    keep = counts > 0
    w = counts[keep] / counts.sum()
    return float(np.sum(w * np.abs(observed[keep] - predicted[keep])))


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a percentile bootstrap interval.

    Attributes
    ----------
    estimate : float
        The statistic on the full sample.
    lower, upper : float
        Interval bounds (percentiles ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
        of the finite resampled values).
    confidence : float
        Nominal coverage, e.g. 0.95.
    n_resamples : int
        Resamples drawn.
    n_undefined : int
        Resamples whose statistic was NaN (e.g. a single class), excluded.
    """

    estimate: float
    lower: float
    upper: float
    confidence: float
    n_resamples: int
    n_undefined: int


def bootstrap_ci(
    reference: npt.ArrayLike,
    scores: npt.ArrayLike,
    statistic: Callable[[npt.NDArray[np.bool_], npt.NDArray[np.float64]], float],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    stratified: bool = True,
    seed: int = 0,
    clusters: npt.ArrayLike | None = None,
) -> ConfidenceInterval:
    """Percentile bootstrap confidence interval of a classification statistic.

    Each resample draws cases with replacement; with ``stratified=True``
    positives and negatives are resampled separately (so every resample keeps
    the class counts and AUROC is always defined). With ``clusters`` (e.g.
    patient ids) whole clusters are drawn instead of cases (then
    ``stratified`` is ignored). The generator is ``numpy.random.default_rng(seed)``:
    equal seeds give equal intervals.

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``.
    scores : array_like
        Scores, shape ``(n,)``.
    statistic : callable
        ``statistic(labels, scores) -> float``, e.g. :func:`auroc`.
    n_resamples : int, optional
        Number of resamples.
    confidence : float, optional
        Coverage in (0, 1).
    stratified : bool, optional
        Resample within each class.
    seed : int, optional
        Random seed.
    clusters : array_like, optional
        Cluster label per case for a cluster bootstrap.

    Returns
    -------
    ConfidenceInterval
        Estimate and bounds.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random(200) < 0.3
    >>> s = y + rng.normal(size=200)
    >>> ci = bootstrap_ci(y, s, auroc, n_resamples=200, seed=1)
    >>> ci.lower < ci.estimate < ci.upper
    True
    """
    y = _labels(reference)
    s = _scores(scores, y.size)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    estimate = float(statistic(y, s))
    values = np.empty(n_resamples)
    if clusters is not None:
        c = np.asarray(clusters)
        if c.shape != y.shape:
            raise ValueError(f"clusters must have shape {y.shape}, got {c.shape}")
        uniq, inverse = np.unique(c, return_inverse=True)
        members = [np.flatnonzero(inverse == k) for k in range(uniq.size)]
        for r in range(n_resamples):
            pick = rng.integers(0, uniq.size, uniq.size)
            idx = np.concatenate([members[k] for k in pick])
            values[r] = statistic(y[idx], s[idx])
    else:
        groups = [np.flatnonzero(y), np.flatnonzero(~y)] if stratified else [np.arange(y.size)]
        groups = [g for g in groups if g.size]
        for r in range(n_resamples):
            idx = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
            values[r] = statistic(y[idx], s[idx])
    finite = values[np.isfinite(values)]
    alpha = (1 - confidence) / 2
    if finite.size == 0:
        lo = hi = math.nan
    else:
        lo, hi = (float(v) for v in np.quantile(finite, [alpha, 1 - alpha]))
    return ConfidenceInterval(
        estimate=estimate,
        lower=lo,
        upper=hi,
        confidence=confidence,
        n_resamples=n_resamples,
        n_undefined=int(values.size - finite.size),
    )


# --------------------------------------------------------------------------- patients


@dataclass(frozen=True)
class PatientScores:
    """Image-level scores aggregated to one score per patient.

    Attributes
    ----------
    patients : tuple of str
        Patient ids, sorted.
    scores : numpy.ndarray
        One aggregated score per patient.
    reference : numpy.ndarray or None
        Patient label: positive if any of the patient's images is positive.
    n_images : numpy.ndarray
        Images per patient.
    """

    patients: tuple[str, ...]
    scores: npt.NDArray[np.float64]
    reference: npt.NDArray[np.bool_] | None
    n_images: npt.NDArray[np.int64]


def patient_scores(
    patient_ids: Sequence[Any] | npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    reference: npt.ArrayLike | None = None,
    how: Literal["mean", "max"] = "mean",
) -> PatientScores:
    """Aggregate image scores to patient scores (mean or max over a patient's images).

    Parameters
    ----------
    patient_ids : sequence
        Patient id per image, length ``n``.
    scores : array_like
        Score per image, shape ``(n,)``.
    reference : array_like, optional
        Label per image; a patient is positive if any image is.
    how : {"mean", "max"}, optional
        Aggregation of a patient's scores.

    Returns
    -------
    PatientScores
        Per-patient arrays ordered by sorted patient id.

    Examples
    --------
    >>> p = patient_scores(["b", "a", "a"], [0.2, 0.4, 0.8], reference=[0, 0, 1], how="max")
    >>> p.patients, p.scores.tolist(), p.reference.tolist()
    (('a', 'b'), [0.8, 0.2], [True, False])
    """
    ids = np.asarray([str(v) for v in np.asarray(patient_ids).tolist()])
    s = _scores(scores, ids.size)
    uniq, inverse = np.unique(ids, return_inverse=True)
    counts = np.bincount(inverse, minlength=uniq.size).astype(np.int64)
    if how == "mean":
        agg = np.bincount(inverse, weights=s, minlength=uniq.size) / counts
    elif how == "max":
        agg = np.full(uniq.size, -np.inf)
        np.maximum.at(agg, inverse, s)
    else:
        raise ValueError(f"how must be 'mean' or 'max', got {how!r}")
    ref = None
    if reference is not None:
        y = _labels(reference)
        if y.size != ids.size:
            raise ValueError(f"reference has {y.size} labels for {ids.size} images")
        ref = np.zeros(uniq.size, bool)
        np.logical_or.at(ref, inverse, y)
    return PatientScores(
        patients=tuple(uniq.tolist()), scores=agg.astype(np.float64), reference=ref, n_images=counts
    )


# --------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class GroupResult:
    """Metrics of one subgroup (e.g. ``sex = F``).

    Attributes
    ----------
    group : str
        Group value.
    n, n_positive : int
        Cases and positive cases in the group.
    auroc : float
        AUROC within the group (NaN with one class).
    point : OperatingPoint
        Sensitivity, specificity ... at the common threshold.
    auroc_ci : ConfidenceInterval or None
        Bootstrap interval of the AUROC, when requested.
    """

    group: str
    n: int
    n_positive: int
    auroc: float
    point: OperatingPoint
    auroc_ci: ConfidenceInterval | None


def group_results(
    reference: npt.ArrayLike,
    scores: npt.ArrayLike,
    groups: Sequence[Any] | npt.ArrayLike,
    *,
    threshold: float,
    n_resamples: int = 0,
    seed: int = 0,
) -> tuple[GroupResult, ...]:
    """AUROC and the operating point at a common threshold, per subgroup.

    Parameters
    ----------
    reference : array_like
        True labels, shape ``(n,)``.
    scores : array_like
        Scores, shape ``(n,)``.
    groups : sequence
        Group value per case (sex, age band, site ...), length ``n``.
    threshold : float
        Decision threshold used for every group (fairness is judged at the
        deployed threshold, not at per-group optima).
    n_resamples : int, optional
        If positive, a stratified bootstrap interval of each group's AUROC.
    seed : int, optional
        Bootstrap seed.

    Returns
    -------
    tuple of GroupResult
        One per group, sorted by group value.

    Examples
    --------
    >>> r = group_results([0, 1, 0, 1], [0.2, 0.9, 0.6, 0.4], ["F", "F", "M", "M"], threshold=0.5)
    >>> [(g.group, g.auroc, g.point.sensitivity) for g in r]
    [('F', 1.0, 1.0), ('M', 0.0, 0.0)]
    """
    y = _labels(reference)
    s = _scores(scores, y.size)
    g = np.asarray([str(v) for v in np.asarray(groups).tolist()])
    if g.size != y.size:
        raise ValueError(f"groups has {g.size} values for {y.size} cases")
    out = []
    for value in np.unique(g):
        sel = g == value
        yg, sg = y[sel], s[sel]
        ci = None
        if n_resamples > 0 and _both_classes(yg):
            ci = bootstrap_ci(yg, sg, auroc, n_resamples=n_resamples, seed=seed)
        out.append(
            GroupResult(
                group=str(value),
                n=int(sel.sum()),
                n_positive=int(yg.sum()),
                auroc=auroc(yg, sg),
                point=_point(yg, sg >= threshold, threshold),
                auroc_ci=ci,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Disparity:
    """Spread of one metric across groups.

    Attributes
    ----------
    metric : str
        ``auroc``, ``sensitivity``, ``specificity``, ``ppv``, ``npv``, ``f1``
        or ``balanced_accuracy``.
    best_group, worst_group : str
        Groups with the highest and lowest value.
    best, worst : float
        Those values.
    difference : float
        ``best - worst`` (e.g. the equal-opportunity gap for sensitivity).
    ratio : float
        ``worst / best`` (1 = parity; NaN if ``best`` is 0).
    """

    metric: str
    best_group: str
    worst_group: str
    best: float
    worst: float
    difference: float
    ratio: float


def disparity_summary(
    results: Sequence[GroupResult],
    *,
    metrics: Sequence[str] = ("auroc", "sensitivity", "specificity", "ppv", "balanced_accuracy"),
) -> tuple[Disparity, ...]:
    """Largest gap between groups for each metric (groups where it is NaN are skipped).

    Parameters
    ----------
    results : sequence of GroupResult
        Output of :func:`group_results`.
    metrics : sequence of str, optional
        Metrics to summarise.

    Returns
    -------
    tuple of Disparity
        One per metric with at least one defined value.

    Examples
    --------
    >>> r = group_results([0, 1, 0, 1], [0.2, 0.9, 0.6, 0.4], ["F", "F", "M", "M"], threshold=0.5)
    >>> d = disparity_summary(r, metrics=["sensitivity"])[0]
    >>> d.best_group, d.worst_group, d.difference
    ('F', 'M', 1.0)
    """
    out = []
    for name in metrics:
        vals = []
        for r in results:
            v = r.auroc if name == "auroc" else getattr(r.point, name)
            if not math.isnan(v):
                vals.append((float(v), r.group))
        if not vals:
            continue
        best = max(vals)
        worst = min(vals)
        out.append(
            Disparity(
                metric=name,
                best_group=best[1],
                worst_group=worst[1],
                best=best[0],
                worst=worst[0],
                difference=best[0] - worst[0],
                ratio=worst[0] / best[0] if best[0] else math.nan,
            )
        )
    return tuple(out)
