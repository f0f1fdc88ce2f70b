"""Overlap and volume metrics of two binary masks.

Every function takes ``(reference, prediction)``: arrays of one shape, any numeric or
boolean dtype, non-zero meaning foreground. The counts come from the joint bounding box
of the two masks, so a small structure in a large volume costs one read of each array.

Empty masks (each function's docstring repeats its own rule):

========================  ===========  ============  =============  =============
metric                    both empty   only ref.     only pred.     neither
                                       empty         empty
========================  ===========  ============  =============  =============
dice, jaccard             empty_value  0.0           0.0            formula
precision                 empty_value  0.0           0.0            formula
recall (= sensitivity)    empty_value  0.0           0.0            formula
specificity               formula      formula       formula        formula
volume difference (ml)    0.0          formula       formula        formula
relative vol. difference  0.0          ``inf``       -1.0           formula
========================  ===========  ============  =============  =============

``empty_value`` defaults to 1.0 (nothing to find, nothing wrongly found).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from medlens.metrics._seg_utils import (
    as_array,
    as_bool,
    check_pair,
    check_spacing,
    nonzero_bbox,
    union_bbox,
)

__all__ = [
    "ConfusionCounts",
    "absolute_volume_difference",
    "confusion_counts",
    "dice",
    "jaccard",
    "overlap_from_counts",
    "precision",
    "recall",
    "relative_volume_difference",
    "specificity",
    "volume",
]

_ANY_NDIM = tuple(range(1, 9))


@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of a binary comparison.

    Attributes
    ----------
    tp : int
        Foreground in both masks.
    fp : int
        Foreground in the prediction only.
    fn : int
        Foreground in the reference only.
    tn : int
        Background in both masks.
    """

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def reference_count(self) -> int:
        """Number of reference foreground voxels."""
        return self.tp + self.fn

    @property
    def prediction_count(self) -> int:
        """Number of prediction foreground voxels."""
        return self.tp + self.fp


def confusion_counts(reference: ArrayLike, prediction: ArrayLike) -> ConfusionCounts:
    """Count true/false positives and negatives of ``prediction`` against ``reference``.

    Parameters
    ----------
    reference, prediction : array_like
        Masks of one shape (non-zero is foreground).

    Returns
    -------
    ConfusionCounts
        The four voxel counts.

    Raises
    ------
    GeometryError
        If the shapes differ.

    Examples
    --------
    >>> confusion_counts([0, 1, 1, 0], [0, 1, 0, 1])
    ConfusionCounts(tp=1, fp=1, fn=1, tn=1)
    """
    ref, pred = check_pair(reference, prediction, ndims=_ANY_NDIM)
    box = union_bbox(nonzero_bbox(ref), nonzero_bbox(pred))
    if box is None:
        return ConfusionCounts(0, 0, 0, int(ref.size))
    sl = tuple(slice(lo, hi) for lo, hi in box)
    r = ref[sl]
    p = pred[sl]
    r = as_bool(r)
    p = as_bool(p)
    n_r = int(np.count_nonzero(r))
    n_p = int(np.count_nonzero(p))
    tp = int(np.count_nonzero(r & p))
    fp, fn = n_p - tp, n_r - tp
    return ConfusionCounts(tp, fp, fn, int(ref.size) - tp - fp - fn)


def _ratio(num: int, den: int, *, both_empty: bool, empty_value: float) -> float:
    if both_empty:
        return float(empty_value)
    return num / den if den else 0.0


def overlap_from_counts(counts: ConfusionCounts, metric: str, *, empty_value: float = 1.0) -> float:
    """Evaluate one overlap metric from confusion counts, with this module's empty rules.

    Parameters
    ----------
    counts : ConfusionCounts
        Voxel counts from :func:`confusion_counts`.
    metric : {"dice", "jaccard", "precision", "recall", "specificity"}
        Metric name.
    empty_value : float
        Value of the undefined cases (see the module docstring).

    Returns
    -------
    float
        The metric value.

    Examples
    --------
    >>> overlap_from_counts(ConfusionCounts(tp=1, fp=1, fn=1, tn=1), "dice")
    0.5
    """
    c = counts
    both = c.reference_count == 0 and c.prediction_count == 0
    if metric == "dice":
        return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, both_empty=both, empty_value=empty_value)
    if metric == "jaccard":
        return _ratio(c.tp, c.tp + c.fp + c.fn, both_empty=both, empty_value=empty_value)
    if metric == "precision":
        return _ratio(c.tp, c.tp + c.fp, both_empty=both, empty_value=empty_value)
    if metric == "recall":
        return _ratio(c.tp, c.tp + c.fn, both_empty=both, empty_value=empty_value)
    if metric == "specificity":
        den = c.tn + c.fp
        return c.tn / den if den else float(empty_value)
    raise ValueError(
        f"unknown overlap metric {metric!r}; "
        "expected dice, jaccard, precision, recall or specificity"
    )


def dice(reference: ArrayLike, prediction: ArrayLike, *, empty_value: float = 1.0) -> float:
    """Sørensen-Dice coefficient ``2 |R ∩ P| / (|R| + |P|)``.

    Equals MedPy ``dc`` and MONAI ``DiceMetric`` on non-empty masks.

    Parameters
    ----------
    reference, prediction : array_like
        Masks of one shape (non-zero is foreground).
    empty_value : float
        Value when both masks are empty (default 1.0, as KiTS21, BraTS and ISLES'22 score
        it). When exactly one is empty the Dice is 0.0.

    Returns
    -------
    float
        Dice in [0, 1].

    Examples
    --------
    >>> dice([0, 1, 1, 0], [0, 1, 0, 1])
    0.5
    >>> dice([0, 0], [0, 0])
    1.0
    """
    counts = confusion_counts(reference, prediction)
    return overlap_from_counts(counts, "dice", empty_value=empty_value)



def jaccard(reference: ArrayLike, prediction: ArrayLike, *, empty_value: float = 1.0) -> float:
    """Jaccard index (intersection over union) ``|R ∩ P| / |R ∪ P|``.

    Equals MedPy ``jc`` on non-empty masks.

    Parameters
    ----------
    reference, prediction : array_like
        Masks of one shape (non-zero is foreground).
    empty_value : float
        Value when both masks are empty (default 1.0); exactly one empty gives 0.0.

    Returns
    -------
    float
        Jaccard index in [0, 1].

    Examples
    --------
    >>> jaccard([0, 1, 1, 0], [0, 1, 0, 1])
    0.3333333333333333
    """
    counts = confusion_counts(reference, prediction)
    return overlap_from_counts(counts, "jaccard", empty_value=empty_value)



def precision(reference: ArrayLike, prediction: ArrayLike, *, empty_value: float = 1.0) -> float:
    """Precision (positive predictive value) ``TP / (TP + FP)``.

    Parameters
    ----------
    reference, prediction : array_like
        Masks of one shape (non-zero is foreground).
    empty_value : float
        Value when both masks are empty (default 1.0). An empty prediction with a
        non-empty reference gives 0.0 (as MedPy ``precision``); an empty reference with a
        non-empty prediction gives 0.0 by the formula.

    Returns
    -------
    float
        Precision in [0, 1].

    Examples
    --------
    >>> precision([0, 1, 1, 0], [0, 1, 1, 1])
    0.6666666666666666
    """
    counts = confusion_counts(reference, prediction)
    return overlap_from_counts(counts, "precision", empty_value=empty_value)



def recall(reference: ArrayLike, prediction: ArrayLike, *, empty_value: float = 1.0) -> float:
    """Recall ``TP / (TP + FN)``, also called sensitivity or true positive rate.

    Equals the "Sensitivity" of the BraTS 2023 official code, which also scores two
    empty masks as 1.

    Parameters
    ----------
    reference, prediction : array_like
        Masks of one shape (non-zero is foreground).
    empty_value : float
        Value when both masks are empty (default 1.0). An empty reference with a
        non-empty prediction gives 0.0; an empty prediction with a non-empty reference
        gives 0.0 by the formula.

    Returns
    -------
    float
        Recall in [0, 1].

    Examples
    --------
    >>> recall([0, 1, 1, 0], [0, 1, 0, 0])
    0.5
    """
    counts = confusion_counts(reference, prediction)
    return overlap_from_counts(counts, "recall", empty_value=empty_value)



def specificity(reference: ArrayLike, prediction: ArrayLike, *, empty_value: float = 1.0) -> float:
    """Specificity (true negative rate) ``TN / (TN + FP)``.

    Empty masks are ordinary inputs here (many true negatives). The ratio is undefined
    only when the reference covers every voxel; it then returns ``empty_value``.

    Parameters
    ----------
    reference, prediction : array_like
        Masks of one shape (non-zero is foreground).
    empty_value : float
        Value when the reference has no background voxel (default 1.0).

    Returns
    -------
    float
        Specificity in [0, 1].

    Examples
    --------
    >>> specificity([0, 1, 1, 0], [0, 1, 0, 1])
    0.5
    >>> specificity([0, 0], [0, 0])
    1.0
    """
    counts = confusion_counts(reference, prediction)
    return overlap_from_counts(counts, "specificity", empty_value=empty_value)



def volume(mask: ArrayLike, *, spacing: Sequence[float]) -> float:
    """Volume of a mask in ml: voxel count times voxel volume.

    Parameters
    ----------
    mask : array_like
        Mask (non-zero is foreground), any number of axes.
    spacing : sequence of float
        Voxel size in mm, one value per axis. Required.

    Returns
    -------
    float
        ``count * prod(spacing) / 1000`` (ml for a 3D mask; for a 2D mask the same
        formula gives the area in cm²); 0.0 for an empty mask.

    Examples
    --------
    >>> volume(np.ones((10, 10, 10)), spacing=(1.0, 1.0, 2.0))
    2.0
    """
    arr = as_array(mask, "mask")
    sp = check_spacing(spacing, arr.ndim)
    count = int(np.count_nonzero(arr))
    return count * math.prod(sp) / 1000.0


def absolute_volume_difference(
    reference: ArrayLike, prediction: ArrayLike, *, spacing: Sequence[float]
) -> float:
    """Absolute volume difference ``|V(P) - V(R)|`` in ml.

    Equals ISLES'22 ``compute_absolute_volume_difference`` (voxel volume in ml). Empty
    masks have volume 0, so both empty gives 0.0.

    Parameters
    ----------
    reference, prediction : array_like
        Masks of one shape (non-zero is foreground).
    spacing : sequence of float
        Voxel size in mm, one value per axis. Required.

    Returns
    -------
    float
        Volume difference in ml.

    Examples
    --------
    >>> absolute_volume_difference(np.ones((10, 10, 10)), np.zeros((10, 10, 10)),
    ...                            spacing=(1.0, 1.0, 1.0))
    1.0
    """
    ref, pred = check_pair(reference, prediction, ndims=_ANY_NDIM)
    sp = check_spacing(spacing, ref.ndim)
    diff = abs(int(np.count_nonzero(pred)) - int(np.count_nonzero(ref)))
    return diff * math.prod(sp) / 1000.0


def relative_volume_difference(reference: ArrayLike, prediction: ArrayLike) -> float:
    """Signed relative volume difference ``(|P| - |R|) / |R|``.

    Equals MedPy ``ravd`` where MedPy is defined. Both empty gives 0.0; an empty
    reference with a non-empty prediction gives ``inf`` (MedPy raises); an empty
    prediction gives -1.0.

    Parameters
    ----------
    reference, prediction : array_like
        Masks of one shape (non-zero is foreground).

    Returns
    -------
    float
        The relative difference (0 is best; negative means under-segmentation).

    Examples
    --------
    >>> relative_volume_difference([1, 1, 0, 0], [1, 1, 1, 0])
    0.5
    """
    ref, pred = check_pair(reference, prediction, ndims=_ANY_NDIM)
    n_r = int(np.count_nonzero(ref))
    n_p = int(np.count_nonzero(pred))
    if n_r == 0:
        return 0.0 if n_p == 0 else math.inf
    return (n_p - n_r) / n_r
