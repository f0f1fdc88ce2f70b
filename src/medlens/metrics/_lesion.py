"""Lesion-wise (instance-wise) metrics from connected components.

Connected components come from ``cc3d`` (connected-components-3d) with an explicit
``connectivity``: 6, 18 or 26 in 3D and 4 or 8 in 2D.

- :func:`brats_lesion_wise`: the BraTS 2023 lesion-wise Dice and HD95, reproducing the
  official ``BraTS-2023-Metrics`` code (rachitsaluja/BraTS-2023-Metrics,
  ``brats_metrics.get_lesion_wise_results``) case by case.
- :func:`lesion_f1`, :func:`absolute_lesion_count_difference`: ISLES'22 official
  definitions (ezequieldlrosa/isles22 ``eval_utils``); the ISLES'22 absolute volume
  difference is :func:`medlens.metrics.absolute_volume_difference`.
- :func:`lesion_detection`: detection precision / recall / F1 with one-to-one matching
  at an IoU threshold.
- :func:`panoptic_quality`: PQ = SQ x RQ (Kirillov et al. 2019) for instance masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medlens.metrics._seg_utils import (
    BoundingBox,
    as_bool,
    check_pair,
    check_spacing,
    nonzero_bbox,
    union_bbox,
)

__all__ = [
    "BRATS2023_LESION_PARAMETERS",
    "BraTSLesion",
    "BraTSLesionParameters",
    "BraTSLesionWise",
    "LesionDetection",
    "PanopticQuality",
    "absolute_lesion_count_difference",
    "brats_lesion_wise",
    "connected_components",
    "lesion_detection",
    "lesion_f1",
    "panoptic_quality",
]

_CONNECTIVITIES = {2: (4, 8), 3: (6, 18, 26)}


def connected_components(
    mask: ArrayLike, *, connectivity: int
) -> tuple[NDArray[np.uint32], int]:
    """Label the connected components of a binary mask.

    Parameters
    ----------
    mask : array_like, shape (I, J) or (I, J, K)
        Mask (non-zero is foreground).
    connectivity : int
        6, 18 or 26 for 3D masks; 4 or 8 for 2D masks.

    Returns
    -------
    labels : numpy.ndarray of uint32
        Component labels ``1..n`` (0 is background).
    n : int
        Number of components.

    Raises
    ------
    ValueError
        If ``connectivity`` does not fit the number of axes.

    Examples
    --------
    >>> m = np.zeros((3, 5), dtype=bool); m[1, 0] = m[1, 2] = m[0, 3] = True
    >>> connected_components(m, connectivity=8)[1], connected_components(m, connectivity=4)[1]
    (2, 3)
    """
    import cc3d

    arr = np.asarray(mask)
    if arr.ndim not in _CONNECTIVITIES:
        raise ValueError(f"mask must be 2D or 3D, got shape {arr.shape}")
    if connectivity not in _CONNECTIVITIES[arr.ndim]:
        raise ValueError(
            f"connectivity for {arr.ndim}D masks must be one of {_CONNECTIVITIES[arr.ndim]}, "
            f"got {connectivity}"
        )
    binary = as_bool(arr)
    cc: Any = cc3d
    labels, n = cc.connected_components(
        np.ascontiguousarray(binary), connectivity=connectivity, return_N=True, out_dtype=np.uint32
    )
    return labels, int(n)


def _instances(
    arr: NDArray[np.generic], *, connectivity: int, instances: bool
) -> tuple[NDArray[np.int64], int]:
    """Instance labels ``1..n``: connected components, or relabelled instance ids."""
    if not instances:
        lab, n = connected_components(arr, connectivity=connectivity)
        return lab.astype(np.int64, copy=False), n
    ids, inverse = np.unique(arr, return_inverse=True)
    inverse = inverse.reshape(arr.shape).astype(np.int64)
    if ids.size and ids[0] == 0:
        return inverse, int(ids.size - 1)
    return inverse + 1, int(ids.size)


# --------------------------------------------------------------------------- ISLES'22
def lesion_f1(
    reference: ArrayLike,
    prediction: ArrayLike,
    *,
    connectivity: int = 26,
    empty_value: float = 1.0,
) -> float:
    """Lesion-wise F1 score of ISLES'22.

    A reference component is a true positive when at least one of its voxels is in the
    prediction, else a false negative; a prediction component that touches no reference
    voxel is a false positive. ``F1 = TP / (TP + (FP + FN) / 2)``. Equals
    ``compute_lesion_f1_score`` of the official ISLES'22 evaluation (26-connectivity).

    Parameters
    ----------
    reference, prediction : array_like, shape (I, J) or (I, J, K)
        Masks (non-zero is foreground).
    connectivity : int
        Component connectivity (default 26, as ISLES'22).
    empty_value : float
        Value when both masks are empty (default 1.0, as ISLES'22). An empty reference
        with a non-empty prediction gives 0.0; the reverse gives 0.0.

    Returns
    -------
    float
        F1 in [0, 1].

    Examples
    --------
    >>> ref = np.zeros((1, 9, 9), dtype=bool); ref[0, 1, 1] = ref[0, 5, 5] = True
    >>> pred = np.zeros_like(ref); pred[0, 1, 1] = pred[0, 8, 8] = True
    >>> lesion_f1(ref, pred)
    0.5
    """
    ref, pred = check_pair(reference, prediction)
    ref_b = as_bool(ref)
    pred_b = as_bool(pred)
    ref_lab, n_ref = connected_components(ref_b, connectivity=connectivity)
    pred_lab, n_pred = connected_components(pred_b, connectivity=connectivity)
    if n_ref == 0 and n_pred == 0:
        return float(empty_value)
    tp = int(np.count_nonzero(np.unique(ref_lab[pred_b])))  # reference lesions hit
    fp = n_pred - int(np.count_nonzero(np.unique(pred_lab[ref_b])))  # predictions touching none
    fn = n_ref - tp
    return tp / (tp + (fp + fn) / 2)


def absolute_lesion_count_difference(
    reference: ArrayLike, prediction: ArrayLike, *, connectivity: int = 26
) -> int:
    """Absolute difference of the numbers of connected components (ISLES'22).

    Equals ``compute_absolute_lesion_difference`` of the official ISLES'22 evaluation
    (26-connectivity). Empty masks have zero components, so both empty gives 0.

    Parameters
    ----------
    reference, prediction : array_like, shape (I, J) or (I, J, K)
        Masks (non-zero is foreground).
    connectivity : int
        Component connectivity (default 26).

    Returns
    -------
    int
        ``|n_pred - n_ref|``.

    Examples
    --------
    >>> ref = np.zeros((1, 9, 9), dtype=bool); ref[0, 1, 1] = ref[0, 5, 5] = True
    >>> absolute_lesion_count_difference(ref, np.zeros_like(ref))
    2
    """
    ref, pred = check_pair(reference, prediction)
    n_ref = connected_components(ref, connectivity=connectivity)[1]
    n_pred = connected_components(pred, connectivity=connectivity)[1]
    return abs(n_pred - n_ref)


# --------------------------------------------------------------------------- detection / PQ
def _overlaps(
    ref_lab: NDArray[np.int64], pred_lab: NDArray[np.int64], n_ref: int, n_pred: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Overlapping instance pairs ``(r, p)`` and their IoU."""
    both = (ref_lab > 0) & (pred_lab > 0)
    key = ref_lab[both] * (n_pred + 1) + pred_lab[both]
    keys, inter = np.unique(key, return_counts=True)
    r = keys // (n_pred + 1)
    p = keys % (n_pred + 1)
    size_r = np.bincount(ref_lab.ravel(), minlength=n_ref + 1)
    size_p = np.bincount(pred_lab.ravel(), minlength=n_pred + 1)
    iou = inter / (size_r[r] + size_p[p] - inter)
    return r, p, iou.astype(np.float64)


def _match(
    r: NDArray[np.int64], p: NDArray[np.int64], iou: NDArray[np.float64], keep: NDArray[np.bool_]
) -> tuple[tuple[int, int, float], ...]:
    """One-to-one matching of the candidate pairs in ``keep``, maximising total IoU."""
    r, p, iou = r[keep], p[keep], iou[keep]
    if r.size == 0:
        return ()
    if np.unique(r).size == r.size and np.unique(p).size == p.size:
        chosen = np.arange(r.size)
    else:
        from scipy.optimize import linear_sum_assignment

        ur, ri = np.unique(r, return_inverse=True)
        up, pi = np.unique(p, return_inverse=True)
        w = np.zeros((ur.size, up.size))
        w[ri, pi] = iou
        rows, cols = linear_sum_assignment(w, maximize=True)
        lookup = {(a, b): k for k, (a, b) in enumerate(zip(ri.tolist(), pi.tolist(), strict=True))}
        chosen = np.array(
            [
                lookup[(a, b)]
                for a, b in zip(rows.tolist(), cols.tolist(), strict=True)
                if (a, b) in lookup
            ],
            dtype=np.int64,
        )
    order = sorted(chosen.tolist(), key=lambda k: (r[k], p[k]))
    return tuple((int(r[k]), int(p[k]), float(iou[k])) for k in order)


def _crop_pair(
    ref: NDArray[np.generic], pred: NDArray[np.generic]
) -> tuple[NDArray[np.generic], NDArray[np.generic]]:
    box = union_bbox(nonzero_bbox(ref), nonzero_bbox(pred))
    if box is None:
        return ref[(slice(0, 0),) * ref.ndim], pred[(slice(0, 0),) * pred.ndim]
    # one background voxel around the box keeps components as they are in the full array
    sl = tuple(slice(max(lo - 1, 0), hi + 1) for lo, hi in box)
    return ref[sl], pred[sl]


@dataclass(frozen=True)
class LesionDetection:
    """Instance detection counts at an IoU threshold.

    Attributes
    ----------
    tp, fp, fn : int
        Matched pairs, unmatched prediction instances, unmatched reference instances.
    iou_threshold : float
        A pair matches when its IoU is at least this.
    matches : tuple of (int, int, float)
        ``(reference_instance, prediction_instance, iou)`` of the matched pairs.
    """

    tp: int
    fp: int
    fn: int
    iou_threshold: float
    matches: tuple[tuple[int, int, float], ...]

    @property
    def precision(self) -> float:
        """``TP / (TP + FP)``; 1.0 when both masks are empty, 0.0 with no prediction."""
        if self.tp + self.fp + self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """``TP / (TP + FN)``; 1.0 when both masks are empty, 0.0 with no reference."""
        if self.tp + self.fp + self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """``TP / (TP + (FP + FN) / 2)``; 1.0 when both masks are empty."""
        if self.tp + self.fp + self.fn == 0:
            return 1.0
        return self.tp / (self.tp + (self.fp + self.fn) / 2)


def lesion_detection(
    reference: ArrayLike,
    prediction: ArrayLike,
    *,
    iou_threshold: float = 0.5,
    connectivity: int = 26,
    instances: bool = False,
) -> LesionDetection:
    """Detection precision, recall and F1 with one-to-one matching at an IoU threshold.

    Instances are the connected components of each mask (or, with ``instances=True``,
    the distinct non-zero values of instance label maps). A reference and a prediction
    instance may match when their IoU is ``>= iou_threshold``; each instance matches at
    most once. For thresholds above 0.5 the matching is unique; otherwise the assignment
    maximising the total IoU (``scipy.optimize.linear_sum_assignment``) is used.

    Parameters
    ----------
    reference, prediction : array_like, shape (I, J) or (I, J, K)
        Masks (or instance label maps with ``instances=True``).
    iou_threshold : float
        Minimum IoU of a match, in (0, 1].
    connectivity : int
        Component connectivity (ignored with ``instances=True``).
    instances : bool
        Whether the inputs are instance label maps rather than binary masks.

    Returns
    -------
    LesionDetection
        Counts, matches and the derived precision, recall and F1 (all 1.0 when both
        masks are empty).

    Examples
    --------
    >>> ref = np.zeros((1, 6, 6), dtype=bool); ref[0, :2, :2] = True; ref[0, 4:, 4:] = True
    >>> pred = np.zeros_like(ref); pred[0, :2, :2] = True
    >>> d = lesion_detection(ref, pred, iou_threshold=0.5)
    >>> d.tp, d.fp, d.fn, d.recall
    (1, 0, 1, 0.5)
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    ref, pred = check_pair(reference, prediction)
    ref, pred = _crop_pair(ref, pred)
    ref_lab, n_ref = _instances(ref, connectivity=connectivity, instances=instances)
    pred_lab, n_pred = _instances(pred, connectivity=connectivity, instances=instances)
    r, p, iou = _overlaps(ref_lab, pred_lab, n_ref, n_pred)
    matches = _match(r, p, iou, iou >= iou_threshold)
    tp = len(matches)
    return LesionDetection(tp, n_pred - tp, n_ref - tp, float(iou_threshold), matches)


@dataclass(frozen=True)
class PanopticQuality:
    """Panoptic quality of instance segmentations.

    Attributes
    ----------
    pq : float
        Panoptic quality ``SQ * RQ``.
    sq : float
        Segmentation quality: mean IoU of the matched pairs (0.0 without matches).
    rq : float
        Recognition quality ``TP / (TP + FP/2 + FN/2)``.
    tp, fp, fn : int
        Instance counts.
    """

    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int


def panoptic_quality(
    reference: ArrayLike,
    prediction: ArrayLike,
    *,
    connectivity: int = 26,
    instances: bool = False,
    iou_threshold: float = 0.5,
) -> PanopticQuality:
    """Panoptic quality, segmentation quality and recognition quality.

    Instances match when their IoU is strictly greater than ``iou_threshold`` (0.5 in
    Kirillov et al. 2019, which makes the matching unique). Both masks empty gives
    PQ = SQ = RQ = 1.0; with instances present but no match, all three are 0.0.

    Parameters
    ----------
    reference, prediction : array_like, shape (I, J) or (I, J, K)
        Masks (or instance label maps with ``instances=True``).
    connectivity : int
        Component connectivity (ignored with ``instances=True``).
    instances : bool
        Whether the inputs are instance label maps rather than binary masks.
    iou_threshold : float
        Matching threshold (strict), at least 0.5 for a unique matching.

    Returns
    -------
    PanopticQuality
        PQ, SQ, RQ and the counts.

    References
    ----------
    A. Kirillov et al., "Panoptic Segmentation", CVPR 2019.

    Examples
    --------
    >>> ref = np.zeros((1, 6, 6), dtype=bool); ref[0, :2, :2] = True; ref[0, 4:, 4:] = True
    >>> pred = np.zeros_like(ref); pred[0, :2, :2] = True; pred[0, 1, 1] = False
    >>> q = panoptic_quality(ref, pred)
    >>> q.tp, q.fp, q.fn, q.sq, round(q.rq, 4), round(q.pq, 4)
    (1, 0, 1, 0.75, 0.6667, 0.5)
    """
    if not 0.5 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must be in [0.5, 1), got {iou_threshold}")
    ref, pred = check_pair(reference, prediction)
    ref, pred = _crop_pair(ref, pred)
    ref_lab, n_ref = _instances(ref, connectivity=connectivity, instances=instances)
    pred_lab, n_pred = _instances(pred, connectivity=connectivity, instances=instances)
    if n_ref == 0 and n_pred == 0:
        return PanopticQuality(1.0, 1.0, 1.0, 0, 0, 0)
    _, _, iou = _overlaps(ref_lab, pred_lab, n_ref, n_pred)
    keep = iou > iou_threshold
    tp = int(keep.sum())
    fp, fn = n_pred - tp, n_ref - tp
    sq = float(iou[keep].mean()) if tp else 0.0
    rq = tp / (tp + 0.5 * fp + 0.5 * fn)
    return PanopticQuality(sq * rq, sq, rq, tp, fp, fn)


# --------------------------------------------------------------------------- BraTS 2023
@dataclass(frozen=True)
class BraTSLesionParameters:
    """Parameters of the BraTS 2023 lesion-wise evaluation.

    Attributes
    ----------
    dilation_iterations : int
        Iterations of the 18-connected dilation that merges nearby reference lesions and
        defines each lesion's search region.
    volume_threshold : float
        Reference lesions with volume ``<= volume_threshold`` mm³ are left out of the
        lesion-wise scores and counts.
    hd95_penalty : float
        HD95 (mm) of a missed lesion and of each false-positive component.
    """

    dilation_iterations: int
    volume_threshold: float
    hd95_penalty: float = 374.0


BRATS2023_LESION_PARAMETERS: dict[str, BraTSLesionParameters] = {
    "BraTS-GLI": BraTSLesionParameters(3, 50.0),
    "BraTS-SSA": BraTSLesionParameters(3, 50.0),
    "BraTS-MEN": BraTSLesionParameters(1, 50.0),
    "BraTS-PED": BraTSLesionParameters(3, 50.0),
    "BraTS-MET": BraTSLesionParameters(1, 2.0),
}
"""Official per-challenge parameters (``get_challenge_parameters`` of BraTS-2023-Metrics)."""


@dataclass(frozen=True)
class BraTSLesion:
    """One (dilation-merged) reference lesion of the BraTS 2023 lesion-wise evaluation.

    Attributes
    ----------
    label : int
        Lesion number (component number of the dilated reference).
    volume : float
        Lesion volume in mm³.
    matched : tuple of int
        Prediction components (26-connected) touching the lesion's dilated region.
    dice : float
        Dice of the lesion against the union of ``matched``.
    hd95 : float
        DeepMind surfel HD95 of the same pair (the penalty when nothing matched).
    counted : bool
        Whether ``volume`` exceeds the threshold, so the lesion enters the scores.
    """

    label: int
    volume: float
    matched: tuple[int, ...]
    dice: float
    hd95: float
    counted: bool


@dataclass(frozen=True)
class BraTSLesionWise:
    """BraTS 2023 lesion-wise results of one region of one case.

    Attributes
    ----------
    lesion_dice : float
        ``sum(dice of counted lesions) / (n counted + n FP)``; 1.0 when that is 0/0.
    lesion_hd95 : float
        ``(sum(hd95 of counted lesions) + 374 * n FP) / (n counted + n FP)``; 0.0 when 0/0.
    n_tp, n_fn : int
        Counted lesions with / without a matching prediction component.
    n_fp : int
        Prediction components touching no lesion's dilated region.
    legacy_dice : float
        Dice of the whole region (1.0 when both are empty).
    legacy_hd95 : float
        Surfel HD95 of the whole region (0.0 both empty, the penalty when one is).
    lesions : tuple of BraTSLesion
        Per-lesion details, in label order.
    """

    lesion_dice: float
    lesion_hd95: float
    n_tp: int
    n_fp: int
    n_fn: int
    legacy_dice: float
    legacy_hd95: float
    lesions: tuple[BraTSLesion, ...]


def _padded_box(box: BoundingBox, pad: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(
        slice(max(lo - pad, 0), min(hi + pad, n)) for (lo, hi), n in zip(box, shape, strict=True)
    )


def _sub_box(outer: tuple[slice, ...], inner: tuple[slice, ...]) -> tuple[slice, ...]:
    """``inner`` (absolute) expressed relative to ``outer``."""
    return tuple(
        slice(i.start - o.start, i.stop - o.start) for o, i in zip(outer, inner, strict=True)
    )


def brats_lesion_wise(
    reference: ArrayLike,
    prediction: ArrayLike,
    *,
    spacing: Sequence[float],
    parameters: BraTSLesionParameters,
    threads: int | None = None,
) -> BraTSLesionWise:
    """BraTS 2023 lesion-wise Dice and HD95 of one region (binary masks of WT, TC or ET).

    Reproduces ``get_lesion_wise_score`` / ``get_lesion_wise_results`` of the official
    BraTS-2023-Metrics code:

    1. reference and prediction components are 26-connected; reference lesions closer
       than the dilation are merged: the reference is dilated ``dilation_iterations``
       times with the 18-connected structuring element, and each component of the
       dilated mask becomes one lesion (its reference voxels);
    2. for each lesion, the prediction components touching the lesion dilated the same
       way are its match; Dice and surfel HD95 (max of directed 95th percentiles, as
       DeepMind ``compute_robust_hausdorff``) compare the lesion with their union; a
       lesion without match gets Dice 0 and HD95 = ``hd95_penalty``;
    3. prediction components matched by no lesion are false positives, each scoring
       Dice 0 and HD95 ``hd95_penalty``;
    4. lesions of volume ``<= volume_threshold`` mm³ are left out of the scores and the
       TP/FN counts (their matched components are not false positives);
    5. ``lesion_dice = sum(dice) / (n_lesions + n_fp)`` and
       ``lesion_hd95 = (sum(hd95) + penalty * n_fp) / (n_lesions + n_fp)`` over the
       counted lesions; when the denominator is 0 (nothing counted and no false
       positive, e.g. both masks empty) the scores are Dice 1 and HD95 0.

    Parameters
    ----------
    reference, prediction : array_like, shape (I, J, K)
        Binary masks of one region (non-zero is foreground).
    spacing : sequence of float
        Voxel size in mm (volumes in mm³ and surface distances use it).
    parameters : BraTSLesionParameters
        Dilation, volume threshold and penalty, e.g.
        ``BRATS2023_LESION_PARAMETERS["BraTS-GLI"]``.
    threads : int, optional
        Threads for the distance transforms.

    Returns
    -------
    BraTSLesionWise
        Scores, counts, legacy (whole-region) Dice/HD95 and per-lesion details.

    Examples
    --------
    A prediction that hits the one lesion exactly plus one false-positive voxel:

    >>> ref = np.zeros((20, 20, 20), dtype=bool); ref[2:7, 2:7, 2:7] = True
    >>> pred = ref.copy(); pred[15, 15, 15] = True
    >>> r = brats_lesion_wise(ref, pred, spacing=(1.0, 1.0, 1.0),
    ...                       parameters=BRATS2023_LESION_PARAMETERS["BraTS-GLI"])
    >>> r.lesion_dice, r.lesion_hd95, r.n_tp, r.n_fp, r.n_fn
    (0.5, 187.0, 1, 1, 0)
    """
    from scipy import ndimage

    from medlens.metrics._surface import _hd_percentile, surface_distances

    ref, pred = check_pair(reference, prediction, ndims=(3,))
    sp = check_spacing(spacing, 3)
    penalty = float(parameters.hd95_penalty)
    iters = int(parameters.dilation_iterations)
    if iters < 0:
        raise ValueError(f"dilation_iterations must be >= 0, got {iters}")
    ref_b = as_bool(ref)
    pred_b = as_bool(pred)
    voxel_mm3 = math.prod(sp)

    def dice_hd95(r: NDArray[np.bool_], p: NDArray[np.bool_]) -> tuple[float, float]:
        n_r, n_p = int(np.count_nonzero(r)), int(np.count_nonzero(p))
        if n_r == 0 and n_p == 0:
            return 1.0, 0.0
        d = 2.0 * int(np.count_nonzero(r & p)) / (n_r + n_p)
        if n_r == 0 or n_p == 0:
            return d, penalty
        sd = surface_distances(r, p, spacing=sp, method="surfel", threads=threads)
        return d, _hd_percentile(sd, 95.0, "max_directed")

    legacy_dice, legacy_hd95 = dice_hd95(ref_b, pred_b)

    struct = ndimage.generate_binary_structure(3, 2)
    shape = ref_b.shape
    pred_lab = np.zeros(shape, dtype=np.uint32)
    pred_box = nonzero_bbox(pred_b)
    if pred_box is not None:
        psl = tuple(slice(lo, hi) for lo, hi in pred_box)
        pred_lab[psl] = connected_components(pred_b[psl], connectivity=26)[0]
    n_pred = int(pred_lab.max()) if pred_box is not None else 0

    lesions: list[BraTSLesion] = []
    touched: set[int] = set()
    ref_box = nonzero_bbox(ref_b)
    if ref_box is not None:
        # dilation never reaches farther than `iters` voxels: crop (clipped to the array)
        outer = _padded_box(ref_box, iters, shape)
        ref_c = ref_b[outer]
        dil = ndimage.binary_dilation(ref_c, structure=struct, iterations=iters) if iters else ref_c
        dil_lab = connected_components(dil, connectivity=26)[0]
        lesion_lab = np.where(ref_c, dil_lab, 0)
        boxes = ndimage.find_objects(lesion_lab)
        pred_boxes = ndimage.find_objects(pred_lab) if n_pred else []
        for k, lbox in enumerate(boxes, start=1):
            if lbox is None:  # pragma: no cover - every dilated component holds reference voxels
                continue
            abs_box = tuple(
                slice(s.start + o.start, s.stop + o.start)
                for s, o in zip(lbox, outer, strict=True)
            )
            search = _padded_box(tuple((s.start, s.stop) for s in abs_box), iters, shape)
            les_s = lesion_lab[_sub_box(outer, search)] == k
            les_dil = (
                ndimage.binary_dilation(les_s, structure=struct, iterations=iters)
                if iters
                else les_s
            )
            hit = np.unique(pred_lab[search][les_dil])
            matched = tuple(int(h) for h in hit if h != 0)
            touched.update(matched)
            # evaluation box: the lesion and the whole matched components
            ebox: BoundingBox = tuple((s.start, s.stop) for s in abs_box)
            for m in matched:
                pb = pred_boxes[m - 1]
                ebox = union_bbox(ebox, tuple((s.start, s.stop) for s in pb)) or ebox
            esl = tuple(slice(lo, hi) for lo, hi in ebox)
            les_e = np.zeros(tuple(hi - lo for lo, hi in ebox), dtype=bool)
            les_e[_sub_box(esl, abs_box)] = lesion_lab[_sub_box(outer, abs_box)] == k
            if matched:
                pred_e = np.isin(pred_lab[esl], np.asarray(matched, dtype=np.uint32))
            else:
                pred_e = np.zeros_like(les_e)
            d, h = dice_hd95(les_e, pred_e)
            vol = int(np.count_nonzero(les_e)) * voxel_mm3
            if not math.isfinite(h):
                h = penalty
            lesions.append(BraTSLesion(k, vol, matched, d, h, vol > parameters.volume_threshold))
    n_fp = n_pred - len(touched)
    counted = [les for les in lesions if les.counted]
    n_tp = sum(1 for les in counted if les.matched)
    n_fn = sum(1 for les in counted if not les.matched)
    den = len(counted) + n_fp
    if den == 0:
        lesion_dice, lesion_hd95 = 1.0, 0.0
    else:
        lesion_dice = sum(les.dice for les in counted) / den
        lesion_hd95 = (sum(les.hd95 for les in counted) + penalty * n_fp) / den
    return BraTSLesionWise(
        lesion_dice=float(lesion_dice),
        lesion_hd95=float(lesion_hd95),
        n_tp=n_tp,
        n_fp=n_fp,
        n_fn=n_fn,
        legacy_dice=float(legacy_dice),
        legacy_hd95=float(legacy_hd95),
        lesions=tuple(lesions),
    )
