"""Segmentation evaluation: presets (regions, metrics, empty-mask policy) and the case evaluator."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medlens.errors import MedlensError
from medlens.evaluation._runner import CaseResult, CaseTask
from medlens.metrics._labels import BRATS_REGIONS, KITS21_REGIONS, Region, label_regions
from medlens.metrics._lesion import BRATS2023_LESION_PARAMETERS

__all__ = [
    "SEGMENTATION_PRESETS",
    "PresetError",
    "SegmentationEvaluator",
    "SegmentationSpec",
    "load_labels_spec",
    "score_label_maps",
    "segmentation_preset",
]


class PresetError(MedlensError, ValueError):
    """Raised for an unknown preset or a malformed labels file (names the problem)."""


@dataclass(frozen=True)
class SegmentationSpec:
    """Everything that defines a segmentation evaluation (plain data, picklable).

    The metrics themselves are :func:`medlens.metrics.segmentation_metrics`; this
    spec fixes its arguments.

    Attributes
    ----------
    name : str
        Preset or labels-file name.
    regions : tuple of medlens.metrics.Region
        Regions (label sets, with an optional NSD tolerance). Empty means one
        region per non-zero label found in the reference or prediction (``label_<n>``).
    metrics : tuple of str
        Metric names of :data:`medlens.metrics.METRIC_NAMES` (``dice``, ``hd95``,
        ``assd``, ``masd``, ``nsd@2.0``, ``nsd`` at the region tolerance,
        ``lesion_dice``, ``lesion_hd95``, ``lesion_f1``, ...).
    method : str
        Surface definition, ``surfel`` (DeepMind; KiTS21, BraTS 2023) or
        ``border`` (MONAI, MedPy).
    pooling : str
        ``max_directed`` (larger of the two directed percentiles; DeepMind) or
        ``pooled`` (percentile of both directions together; MONAI, MedPy).
    empty_penalty : float or str
        Distance when exactly one mask is empty: a number of mm, ``"nan"``, or
        ``"diagonal"`` (the image's diagonal extent in mm).
    connectivity : int
        Connectivity of the connected components of lesion-wise metrics.
    brats_challenge : str or None
        Key of :data:`medlens.metrics.BRATS2023_LESION_PARAMETERS` for the BraTS
        lesion-wise metrics (``BraTS-GLI``, ``BraTS-MEN`` ...).
    voxel_units : bool
        Distances (and the ``"diagonal"`` penalty) in voxel units, ignoring the image
        spacing, as the FeTS 2021 / CaPTk HD95 does (MedPy ``hd95`` called without
        ``voxelspacing``). Overlap metrics are unaffected.
    """

    name: str
    regions: tuple[Region, ...]
    metrics: tuple[str, ...]
    method: str = "surfel"
    pooling: str = "max_directed"
    empty_penalty: float | str = "diagonal"
    connectivity: int = 26
    brats_challenge: str | None = None
    voxel_units: bool = False

    def settings(self) -> dict[str, Any]:
        """Definitions used, for ``summary.json`` and the report."""
        out: dict[str, Any] = {
            "preset": self.name,
            "regions": {r.name: list(r.labels) for r in self.regions} or "one per label",
            "metrics": list(self.metrics),
            "surface definition": self.method,
            "hd95 pooling": self.pooling,
            "one mask empty: distances": str(self.empty_penalty),
            "one mask empty: dice / nsd": "0 / 0",
            "both masks empty": "dice 1, nsd 1, distances 0",
            "missing or mismatched prediction": "scored as an empty prediction (penalised)",
        }
        if self.voxel_units:
            out["distance units"] = "voxels (image spacing ignored, as CaPTk's HD95)"
        tols = {r.name: r.nsd_tolerance for r in self.regions if r.nsd_tolerance is not None}
        if tols:
            out["nsd tolerances (mm)"] = tols
        if any(m.startswith("lesion") for m in self.metrics):
            out["lesion connectivity"] = self.connectivity
        if self.brats_challenge is not None:
            p = BRATS2023_LESION_PARAMETERS[self.brats_challenge]
            out["BraTS lesion-wise"] = (
                f"{self.brats_challenge}: dilation {p.dilation_iterations}, volume threshold "
                f"{p.volume_threshold} mm³, HD95 penalty {p.hd95_penalty} mm"
            )
        return out


# FeTS 2021 uses the BraTS 2021 labels (1 NCR, 2 ED, 4 ET). Its official metrics are
# CaPTk's BraTS statistics (FeTS-AI/Challenge Task_2/mlcubes/metrics: `Utilities -lsb`,
# cbica::GetBraTSLabelStatistics). Their HD95 runs CBICA's Hausdorff95 CLI, which is MedPy
# 0.4 `hd95(gt, mask)` without voxelspacing: border voxels of a 6-connected erosion, both
# directions pooled, linear-interpolated 95th percentile, in voxel units; a region empty in
# exactly one image scores the image diagonal in voxels, sqrt(sum(size_i ** 2)) (373.13 for
# 240x240x155), and empty in both scores 0.
_FETS_REGIONS = (Region("WT", (1, 2, 4)), Region("TC", (1, 4)), Region("ET", (4,)))


def _brats(name: str, challenge: str) -> SegmentationSpec:
    return SegmentationSpec(
        name=name,
        regions=BRATS_REGIONS,
        metrics=("lesion_dice", "lesion_hd95", "dice", "hd95"),
        method="surfel",
        pooling="max_directed",
        empty_penalty=374.0,
        brats_challenge=challenge,
    )


#: The built-in segmentation presets.
SEGMENTATION_PRESETS: dict[str, SegmentationSpec] = {
    "kits21": SegmentationSpec(
        name="kits21",
        regions=KITS21_REGIONS,
        metrics=("dice", "nsd"),
        method="surfel",
        empty_penalty=math.nan,
    ),
    "brats2023": _brats("brats2023", "BraTS-GLI"),
    **{
        f"brats2023-{key.split('-')[1].lower()}": _brats(
            f"brats2023-{key.split('-')[1].lower()}", key
        )
        for key in BRATS2023_LESION_PARAMETERS
    },
    "isles22": SegmentationSpec(
        name="isles22",
        regions=(Region("lesion", (1,)),),
        metrics=("dice", "absolute_volume_difference", "lesion_count_difference", "lesion_f1"),
        empty_penalty=math.nan,
        connectivity=26,
    ),
    "fets2021": SegmentationSpec(
        name="fets2021",
        regions=_FETS_REGIONS,
        metrics=("dice", "hd95", "recall", "specificity"),
        method="border",
        pooling="pooled",
        empty_penalty="diagonal",
        voxel_units=True,
    ),
    "generic": SegmentationSpec(
        name="generic",
        regions=(),
        metrics=("dice", "hd95", "assd", "masd", "nsd@2.0"),
        method="surfel",
        pooling="max_directed",
        empty_penalty="diagonal",
    ),
}


def segmentation_preset(name: str) -> SegmentationSpec:
    """Return a built-in segmentation preset by name.

    Parameters
    ----------
    name : str
        ``kits21``, ``brats2023`` (= ``brats2023-gli``; also ``-ssa``, ``-men``,
        ``-ped``, ``-met``), ``isles22``, ``fets2021`` or ``generic``.

    Returns
    -------
    SegmentationSpec
        The preset.

    Raises
    ------
    PresetError
        For an unknown name.
    """
    try:
        return SEGMENTATION_PRESETS[name]
    except KeyError:
        raise PresetError(
            f"unknown segmentation preset {name!r}; choose from {', '.join(SEGMENTATION_PRESETS)}"
        ) from None


def _validate(spec: SegmentationSpec, where: str) -> SegmentationSpec:
    from medlens.metrics import segmentation_metrics

    regions = spec.regions or label_regions([1])
    try:
        segmentation_metrics(
            np.zeros((3, 3, 3), np.uint8),
            np.zeros((3, 3, 3), np.uint8),
            spacing=(1.0, 1.0, 1.0),
            regions=regions,
            metrics=spec.metrics,
            method=spec.method,
            pooling=spec.pooling,
            connectivity=spec.connectivity,
            brats_parameters=BRATS2023_LESION_PARAMETERS.get(spec.brats_challenge or ""),
        )
    except ValueError as e:
        raise PresetError(f"{where}: {e}") from None
    return spec


def load_labels_spec(path: str | os.PathLike[str]) -> SegmentationSpec:
    """Read a labels file (JSON) describing regions and metrics.

    The file holds an object with ``regions``, mapping each region name to a
    label, a list of labels, or ``{"labels": [...], "nsd_tolerance": mm}``, and
    optionally ``name``, ``metrics`` (names of
    :data:`medlens.metrics.METRIC_NAMES`), ``method``, ``pooling``,
    ``empty_penalty`` (number, ``"nan"`` or ``"diagonal"``) and
    ``connectivity``; the defaults are the ``generic`` preset's. Example::

        {"regions": {"liver": [1, 2], "tumour": {"labels": [2], "nsd_tolerance": 1.0}},
         "metrics": ["dice", "hd95", "nsd@2.0"]}

    Parameters
    ----------
    path : path-like
        The JSON file.

    Returns
    -------
    SegmentationSpec
        The evaluation it describes.

    Raises
    ------
    PresetError
        If the file cannot be parsed or a field is invalid (the message names it).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PresetError(f"cannot read labels file {p}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("regions"), dict):
        raise PresetError(f"{p}: expected an object with a 'regions' mapping")
    regions = []
    for name, entry in data["regions"].items():
        tol = None
        labels = entry
        if isinstance(entry, dict):
            labels = entry.get("labels")
            tol = entry.get("nsd_tolerance")
        labs = labels if isinstance(labels, list) else [labels]
        if not labs or not all(isinstance(v, int) and v > 0 for v in labs):
            raise PresetError(f"{p}: region {name!r} needs positive integer labels, got {labels}")
        try:
            regions.append(Region(str(name), tuple(labs), tol))
        except (TypeError, ValueError) as e:
            raise PresetError(f"{p}: region {name!r}: {e}") from None
    base = SEGMENTATION_PRESETS["generic"]
    penalty = data.get("empty_penalty", base.empty_penalty)
    if isinstance(penalty, str) and penalty not in ("nan", "diagonal"):
        raise PresetError(f"{p}: empty_penalty must be a number, 'nan' or 'diagonal'")
    if not isinstance(penalty, str | int | float):
        raise PresetError(f"{p}: empty_penalty must be a number, 'nan' or 'diagonal'")
    spec = SegmentationSpec(
        name=str(data.get("name", p.stem)),
        regions=tuple(regions),
        metrics=tuple(str(m) for m in data.get("metrics", base.metrics)),
        method=str(data.get("method", base.method)),
        pooling=str(data.get("pooling", base.pooling)),
        empty_penalty=math.nan if penalty == "nan" else penalty,
        connectivity=int(data.get("connectivity", base.connectivity)),
    )
    return _validate(spec, str(p))


def _as_labels(arr: npt.NDArray[Any], name: str) -> npt.NDArray[np.integer[Any]]:
    if arr.dtype.kind in "iub":
        return arr.astype(np.int32, copy=False) if arr.dtype.kind == "b" else arr
    if arr.dtype.kind == "f":
        r = np.rint(arr)
        if not np.array_equal(r, arr):
            raise MedlensError(f"{name} holds non-integer values; is it a label map?")
        return r.astype(np.int32)
    raise MedlensError(f"{name} has dtype {arr.dtype}, not a label map")


def _region_mask(
    labels: npt.NDArray[np.integer[Any]], values: tuple[int, ...]
) -> npt.NDArray[np.bool_]:
    if len(values) == 1:
        out: npt.NDArray[np.bool_] = labels == values[0]
        return out
    return np.isin(labels, values)


@dataclass(frozen=True)
class SegmentationEvaluator:
    """Scores label-map pairs per region with a :class:`SegmentationSpec`.

    Attributes
    ----------
    spec : SegmentationSpec
        Regions, metrics and policies.
    geometry_tolerance : float
        Affine tolerance for :func:`~medlens.evaluation.grid_mismatch`.
    threads : int or None
        Threads of the distance transforms per case (None: all CPUs; the runner's
        callers pass 1 when several worker processes share the CPUs). It does
        not change results and is not part of the fingerprint.
    """

    spec: SegmentationSpec
    geometry_tolerance: float = 1e-3
    threads: int | None = None

    @property
    def name(self) -> str:
        """Preset name."""
        return self.spec.name

    def fingerprint(self) -> str:
        """Hash of the spec (and the medlens version)."""
        from medlens import __version__

        fields = asdict(self)
        fields.pop("threads")
        blob = json.dumps({"v": __version__, **fields}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def evaluate(self, task: CaseTask) -> CaseResult:
        """Score one case; a missing or mismatched prediction is scored as empty and flagged."""
        from medlens.evaluation._pairing import grid_mismatch
        from medlens.io import read_image

        ref_path = task.get("reference")
        pred_path = task.get("prediction")
        assert ref_path is not None
        ref_img = read_image(ref_path)
        ref = _as_labels(np.asarray(ref_img.array), f"reference {ref_path.name}")
        status, message = "ok", ""
        pred: npt.NDArray[np.integer[Any]]
        if pred_path is None:
            status, message = "missing_prediction", "no prediction file: scored as empty"
            pred = np.zeros_like(ref)
        else:
            try:
                pred_img = read_image(pred_path)
                why = grid_mismatch(ref_img, pred_img, tolerance=self.geometry_tolerance)
            except Exception as e:
                status, message = "unreadable_prediction", f"{pred_path.name}: {e}: scored as empty"
                pred = np.zeros_like(ref)
            else:
                if why is not None:
                    status = "geometry_mismatch"
                    message = f"prediction grid differs ({why}): scored as empty, not resampled"
                    pred = np.zeros_like(ref)
                else:
                    pred = _as_labels(np.asarray(pred_img.array), f"prediction {pred_path.name}")
        rows, penalised = score_label_maps(
            ref, pred, spacing=ref_img.spacing, spec=self.spec, threads=self.threads
        )
        if status != "ok":
            penalised = tuple((r, m) for r, m, _ in rows)
        return CaseResult(task.case, status, rows, penalised, message)


def _penalty(spec: SegmentationSpec, shape: Sequence[int], spacing: Sequence[float]) -> float:
    if spec.empty_penalty == "diagonal":
        return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))
    if isinstance(spec.empty_penalty, str):
        return math.nan if spec.empty_penalty == "nan" else float(spec.empty_penalty)
    return float(spec.empty_penalty)


def score_label_maps(
    reference: npt.NDArray[np.integer[Any]],
    prediction: npt.NDArray[np.integer[Any]],
    *,
    spacing: Sequence[float],
    spec: SegmentationSpec,
    threads: int | None = None,
) -> tuple[tuple[tuple[str, str, float], ...], tuple[tuple[str, str], ...]]:
    """All ``(region, metric, value)`` rows of one label-map pair under ``spec``.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Integer label maps on one grid.
    spacing : sequence of float
        Voxel size in mm.
    spec : SegmentationSpec
        What to compute (passed to :func:`medlens.metrics.segmentation_metrics`).
    threads : int, optional
        Threads of the distance transforms.

    Returns
    -------
    rows : tuple
        ``(region, metric, value)`` triples in region-then-metric order.
    penalised : tuple
        ``(region, metric)`` pairs whose value is an empty-mask penalty.
    """
    from medlens.metrics import segmentation_metrics

    if reference.shape != prediction.shape:
        raise MedlensError(f"label maps differ in shape: {reference.shape} vs {prediction.shape}")
    regions = spec.regions
    if not regions:
        labels = set(np.unique(reference).tolist()) | set(np.unique(prediction).tolist())
        regions = label_regions(sorted(v for v in labels if v != 0))
    if spec.voxel_units:
        spacing = (1.0,) * len(spacing)
    out = segmentation_metrics(
        reference,
        prediction,
        spacing=spacing,
        regions=regions,
        metrics=spec.metrics,
        method=spec.method,
        pooling=spec.pooling,
        empty_penalty=_penalty(spec, reference.shape, spacing),
        connectivity=spec.connectivity,
        brats_parameters=BRATS2023_LESION_PARAMETERS.get(spec.brats_challenge or ""),
        threads=threads,
    )
    rows = tuple((r.region, r.metric, float(r.value)) for r in out)
    penalised = tuple((r.region, r.metric) for r in out if r.penalized)
    return rows, penalised
