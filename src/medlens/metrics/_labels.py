"""Metrics of label maps, per label or per region (a region being a set of labels).

:class:`Region` names a set of labels evaluated jointly, with an optional NSD tolerance.
The challenge definitions are provided as constants:

- :data:`KITS21_REGIONS`: the KiTS21 "hierarchical evaluation classes" kidney and masses
  ``{1, 2, 3}``, masses ``{2, 3}``, tumour ``{2}``, with the official surface-Dice
  tolerances of ``kits21/configuration/labels.py`` (``HEC_SD_TOLERANCES_MM``).
- :data:`BRATS_REGIONS`: BraTS 2023 whole tumour ``{1, 2, 3}``, tumour core ``{1, 3}`` and
  enhancing tumour ``{3}``.

:func:`segmentation_metrics` evaluates a list of metric names on every region and
returns tidy :class:`MetricRow` records, computing each region's surface distances once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medlens.metrics._lesion import (
    BraTSLesionParameters,
    absolute_lesion_count_difference,
    brats_lesion_wise,
    lesion_detection,
    lesion_f1,
    panoptic_quality,
)
from medlens.metrics._overlap import ConfusionCounts, overlap_from_counts
from medlens.metrics._seg_utils import (
    BoundingBox,
    check_pair,
    check_spacing,
    default_threads,
    joint_bbox,
)
from medlens.metrics._surface import (
    _assd,
    _check_pooling,
    _empty_distance,
    _hd,
    _hd_percentile,
    _masd,
    _nsd,
    _surface_distances,
)

__all__ = [
    "BRATS_REGIONS",
    "KITS21_REGIONS",
    "METRIC_NAMES",
    "MetricRow",
    "Region",
    "label_regions",
    "segmentation_metrics",
]


@dataclass(frozen=True)
class Region:
    """A named set of labels evaluated as one binary mask.

    Attributes
    ----------
    name : str
        Region name used in result tables (e.g. ``"WT"``, ``"kidney_and_mass"``).
    labels : tuple of int
        Label values whose union is the region.
    nsd_tolerance : float or None
        Tolerance (mm) used by the ``"nsd"`` metric for this region, if it has one.

    Examples
    --------
    >>> Region("TC", (1, 3))
    Region(name='TC', labels=(1, 3), nsd_tolerance=None)
    """

    name: str
    labels: tuple[int, ...]
    nsd_tolerance: float | None = None

    def __post_init__(self) -> None:
        """Validate and normalise the label tuple."""
        labels = tuple(int(v) for v in self.labels)
        if not labels:
            raise ValueError(f"region {self.name!r} has no labels")
        if any(v == 0 for v in labels):
            raise ValueError(f"region {self.name!r} includes the background label 0")
        object.__setattr__(self, "labels", labels)
        if self.nsd_tolerance is not None:
            tol = float(self.nsd_tolerance)
            if not (math.isfinite(tol) and tol >= 0):
                raise ValueError(f"region {self.name!r}: nsd_tolerance must be >= 0, got {tol}")
            object.__setattr__(self, "nsd_tolerance", tol)


KITS21_REGIONS: tuple[Region, ...] = (
    Region("kidney_and_mass", (1, 2, 3), 1.0330772532390826),
    Region("mass", (2, 3), 1.1328796488598762),
    Region("tumor", (2,), 1.1498198361434828),
)
"""KiTS21 evaluation classes with the official surface-Dice tolerances in mm."""

BRATS_REGIONS: tuple[Region, ...] = (
    Region("WT", (1, 2, 3)),
    Region("TC", (1, 3)),
    Region("ET", (3,)),
)
"""BraTS 2023 regions (labels 1 NCR, 2 SNFH/ED, 3 ET)."""


def label_regions(labels: Iterable[int], *, prefix: str = "label_") -> tuple[Region, ...]:
    """One single-label region per label value, named ``f"{prefix}{label}"``.

    Parameters
    ----------
    labels : iterable of int
        Non-zero label values.
    prefix : str
        Name prefix.

    Returns
    -------
    tuple of Region
        The regions, in the order given.

    Examples
    --------
    >>> [r.name for r in label_regions([1, 2])]
    ['label_1', 'label_2']
    """
    return tuple(Region(f"{prefix}{int(v)}", (int(v),)) for v in labels)


@dataclass(frozen=True)
class MetricRow:
    """One metric value of one region: a row of a tidy ``region,metric,value`` table.

    Attributes
    ----------
    region : str
        Region name.
    metric : str
        Metric name (see :data:`METRIC_NAMES`).
    value : float
        The value.
    penalized : bool
        Whether ``value`` is the empty-mask penalty of a distance metric rather than a
        measurement (exactly one of the two masks was empty).
    """

    region: str
    metric: str
    value: float
    penalized: bool = False


METRIC_NAMES: tuple[str, ...] = (
    "dice",
    "jaccard",
    "precision",
    "recall",
    "specificity",
    "volume_reference",
    "volume_prediction",
    "absolute_volume_difference",
    "relative_volume_difference",
    "hd",
    "hd<P>",
    "assd",
    "masd",
    "nsd",
    "nsd@<T>",
    "lesion_dice",
    "lesion_hd95",
    "lesion_tp",
    "lesion_fp",
    "lesion_fn",
    "lesion_f1",
    "lesion_count_difference",
    "detection_precision@<IoU>",
    "detection_recall@<IoU>",
    "detection_f1@<IoU>",
    "pq",
    "sq",
    "rq",
)
"""Metric names understood by :func:`segmentation_metrics`.

``hd<P>`` is the percentile Hausdorff distance at percentile ``P`` (``hd95``, ``hd99``);
``nsd`` uses the region's ``nsd_tolerance`` and is reported as ``nsd@<T>``; ``nsd@<T>``
uses tolerance ``T`` mm; volumes are in ml; ``lesion_dice`` / ``lesion_hd95`` / ``lesion_tp``
/ ``lesion_fp`` / ``lesion_fn`` are BraTS 2023 lesion-wise (need ``brats_parameters``);
``lesion_f1`` and ``lesion_count_difference`` are ISLES'22; ``detection_*@<IoU>`` use
one-to-one matching at IoU ``>= IoU``; ``pq``, ``sq``, ``rq`` are panoptic quality.
"""

_OVERLAP = {"dice", "jaccard", "precision", "recall", "specificity"}
_VOLUME = {
    "volume_reference",
    "volume_prediction",
    "absolute_volume_difference",
    "relative_volume_difference",
}
_BRATS = {"lesion_dice", "lesion_hd95", "lesion_tp", "lesion_fp", "lesion_fn"}
_PANOPTIC = {"pq", "sq", "rq"}
_HD_PCT = re.compile(r"^hd(\d+(?:\.\d+)?)$")
_NSD_AT = re.compile(r"^nsd@(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)$")
_DET = re.compile(r"^detection_(precision|recall|f1)@(\d*\.?\d+)$")


def _check_metric(name: str) -> None:
    if (
        name in _OVERLAP
        or name in _VOLUME
        or name in _BRATS
        or name in _PANOPTIC
        or name in {"hd", "assd", "masd", "nsd", "lesion_f1", "lesion_count_difference"}
        or _HD_PCT.match(name)
        or _NSD_AT.match(name)
        or _DET.match(name)
    ):
        return
    raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRIC_NAMES)}")


def _needs_surface(name: str) -> bool:
    return name in {"hd", "assd", "masd", "nsd"} or bool(_HD_PCT.match(name) or _NSD_AT.match(name))


def _region_mask(labels_map: NDArray[np.generic], labels: tuple[int, ...]) -> NDArray[np.bool_]:
    """Voxels whose label is one of ``labels`` (a boolean map has the single label 1)."""
    if labels_map.dtype == np.bool_:
        if 1 in labels:
            return labels_map  # type: ignore[return-value]
        return np.zeros(labels_map.shape, dtype=bool)
    mask: NDArray[np.bool_] = labels_map == labels[0]
    for value in labels[1:]:
        mask |= labels_map == value
    return mask


def segmentation_metrics(
    reference: ArrayLike,
    prediction: ArrayLike,
    *,
    spacing: Sequence[float],
    regions: Sequence[Region],
    metrics: Sequence[str] = ("dice", "hd95", "assd", "nsd@2.0"),
    method: str = "surfel",
    pooling: str = "max_directed",
    empty_penalty: float = math.inf,
    connectivity: int = 26,
    brats_parameters: BraTSLesionParameters | Mapping[str, BraTSLesionParameters] | None = None,
    threads: int | None = None,
) -> list[MetricRow]:
    """Evaluate metrics of two label maps on each region.

    Both label maps are first cropped to the joint bounding box of their non-zero voxels,
    and each region's surface distances are computed once for all distance metrics.

    Parameters
    ----------
    reference, prediction : array_like, shape (I, J) or (I, J, K)
        Integer label maps on the same grid (0 is background).
    spacing : sequence of float
        Voxel size in mm, one value per axis. Required.
    regions : sequence of Region
        Regions to evaluate, e.g. :data:`KITS21_REGIONS`, :data:`BRATS_REGIONS` or
        :func:`label_regions`.
    metrics : sequence of str
        Metric names (see :data:`METRIC_NAMES`).
    method : {"surfel", "border"}
        Surface definition of the distance metrics (see :func:`surface_distances`).
    pooling : {"pooled", "max_directed"}
        Direction pooling of the percentile Hausdorff distances.
    empty_penalty : float
        Distance-metric value when exactly one region mask is empty (rows flagged
        ``penalized``); both empty gives 0 (NSD 1).
    connectivity : int
        Connectivity of the ISLES'22, detection and panoptic metrics.
    brats_parameters : BraTSLesionParameters or mapping of str to BraTSLesionParameters, optional
        Required by the BraTS lesion-wise metrics: one set for every region, or one per
        region name (per-region dilation and volume thresholds).
    threads : int, optional
        Threads for the distance transforms.

    Returns
    -------
    list of MetricRow
        One row per region and metric, regions in the order given, metrics in the order
        requested (``nsd`` reported as ``nsd@<tolerance>``).

    Raises
    ------
    ValueError
        If a metric name is unknown, ``nsd`` is requested for a region without a
        tolerance, or BraTS metrics are requested without ``brats_parameters``.
    GeometryError
        If the shapes differ or ``spacing`` does not fit.

    Examples
    --------
    >>> ref = np.zeros((10, 10, 10), dtype=np.uint8); ref[2:6, 2:6, 2:6] = 1; ref[3:5, 3:5, 3:5] = 2
    >>> pred = ref.copy(); pred[2, 2:6, 2:6] = 0
    >>> rows = segmentation_metrics(ref, pred, spacing=(1.0, 1.0, 1.0),
    ...                             regions=[Region("all", (1, 2)), Region("core", (2,))],
    ...                             metrics=["dice", "hd"])
    >>> [(r.region, r.metric, round(r.value, 4)) for r in rows]
    [('all', 'dice', 0.8571), ('all', 'hd', 1.0), ('core', 'dice', 1.0), ('core', 'hd', 0.0)]
    """
    ref, pred = check_pair(reference, prediction)
    sp = check_spacing(spacing, ref.ndim)
    names = list(metrics)
    for n in names:
        _check_metric(n)
    if any(_needs_surface(n) for n in names):
        if method not in ("surfel", "border"):
            raise ValueError(f"method must be 'surfel' or 'border', got {method!r}")
        _check_pooling(pooling)
    if any(n in _BRATS for n in names) and brats_parameters is None:
        raise ValueError(
            "BraTS lesion-wise metrics need brats_parameters (see BRATS2023_LESION_PARAMETERS)"
        )
    if isinstance(brats_parameters, Mapping) and any(n in _BRATS for n in names):
        absent = [r.name for r in regions if r.name not in brats_parameters]
        if absent:
            raise ValueError(f"brats_parameters has no entry for regions {absent}")
    if "nsd" in names:
        missing = [r.name for r in regions if r.nsd_tolerance is None]
        if missing:
            raise ValueError(
                f"metric 'nsd' needs an nsd_tolerance on regions {missing}; use 'nsd@<mm>'"
            )

    total = int(ref.size)
    n_threads = default_threads(threads)
    box = joint_bbox(ref, pred, n_threads)
    if box is None:  # keep one background voxel so every metric sees a valid array
        sl: tuple[slice, ...] = (slice(0, 1),) * ref.ndim
    else:
        sl = tuple(slice(lo, hi) for lo, hi in box)
    ref_c, pred_c = ref[sl], pred[sl]
    voxel_ml = math.prod(sp) / 1000.0
    rows: list[MetricRow] = []
    for region in regions:
        r_m = _region_mask(ref_c, region.labels)
        p_m = _region_mask(pred_c, region.labels)
        n_r, n_p = int(np.count_nonzero(r_m)), int(np.count_nonzero(p_m))
        tp = int(np.count_nonzero(r_m & p_m))
        counts = ConfusionCounts(tp, n_p - tp, n_r - tp, total - n_r - n_p + tp)
        sd = None
        if any(_needs_surface(n) for n in names):
            r_box: BoundingBox | None
            if box is not None and r_m is ref_c and p_m is pred_c:
                # the crop is the joint bounding box of these very masks
                r_box = tuple((0, n) for n in r_m.shape)
            else:
                r_box = joint_bbox(r_m, p_m, n_threads)
            sd = _surface_distances(r_m, p_m, sp, method, n_threads, r_box)
        fill = None if sd is None else _empty_distance(sd, empty_penalty)
        brats = None
        if any(n in _BRATS for n in names):
            assert brats_parameters is not None
            if isinstance(brats_parameters, BraTSLesionParameters):
                params = brats_parameters
            else:
                params = brats_parameters[region.name]
            brats = brats_lesion_wise(r_m, p_m, spacing=sp, parameters=params, threads=threads)
        panoptic = None
        if _PANOPTIC & set(names):
            panoptic = panoptic_quality(r_m, p_m, connectivity=connectivity)
        for name in names:
            penalized = False
            out_name = name
            if name in _OVERLAP:
                value = overlap_from_counts(counts, name)
            elif name == "volume_reference":
                value = n_r * voxel_ml
            elif name == "volume_prediction":
                value = n_p * voxel_ml
            elif name == "absolute_volume_difference":
                value = abs(n_p - n_r) * voxel_ml
            elif name == "relative_volume_difference":
                value = (0.0 if n_p == 0 else math.inf) if n_r == 0 else (n_p - n_r) / n_r
            elif _needs_surface(name):
                assert sd is not None
                if name == "nsd" or _NSD_AT.match(name):
                    tol = region.nsd_tolerance if name == "nsd" else float(name.split("@", 1)[1])
                    assert tol is not None
                    out_name = f"nsd@{float(tol)!r}"
                    value = _nsd(sd, float(tol))
                elif fill is not None:
                    value = fill
                    penalized = sd.reference_empty != sd.prediction_empty
                elif name == "hd":
                    value = _hd(sd)
                elif name == "assd":
                    value = _assd(sd)
                elif name == "masd":
                    value = _masd(sd)
                else:
                    m = _HD_PCT.match(name)
                    assert m is not None
                    value = _hd_percentile(sd, float(m.group(1)), pooling)
            elif name in _BRATS:
                assert brats is not None
                value = {
                    "lesion_dice": brats.lesion_dice,
                    "lesion_hd95": brats.lesion_hd95,
                    "lesion_tp": float(brats.n_tp),
                    "lesion_fp": float(brats.n_fp),
                    "lesion_fn": float(brats.n_fn),
                }[name]
            elif name == "lesion_f1":
                value = lesion_f1(r_m, p_m, connectivity=connectivity)
            elif name == "lesion_count_difference":
                value = float(absolute_lesion_count_difference(r_m, p_m, connectivity=connectivity))
            elif name in _PANOPTIC:
                assert panoptic is not None
                value = {"pq": panoptic.pq, "sq": panoptic.sq, "rq": panoptic.rq}[name]
            else:
                m = _DET.match(name)
                assert m is not None
                det = lesion_detection(
                    r_m, p_m, iou_threshold=float(m.group(2)), connectivity=connectivity
                )
                value = {"precision": det.precision, "recall": det.recall, "f1": det.f1}[m.group(1)]
            rows.append(MetricRow(region.name, out_name, float(value), penalized))
    return rows
