"""Dataset fingerprint: what planning needs to know about a dataset.

Per case: spacing, shape before and after cropping to the non-zero region,
per-label volumes in ml and a fixed-seed sample of foreground intensities per
channel. Over the dataset: foreground intensity statistics per channel (mean,
std, median, min, max, 0.5 and 99.5 percentiles), as nnU-Net's fingerprint
extractor collects them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlens.image import Image, reorient
from medlens.segmentation._dataset import Case, SegmentationDataset, read_case

__all__ = [
    "CaseFingerprint",
    "DatasetFingerprint",
    "IntensityStats",
    "case_fingerprint",
    "dataset_fingerprint",
    "foreground_oversampling",
    "minimum_iterations",
    "nonzero_bbox",
]

_SAMPLES_PER_CASE = 10_000


@dataclass(frozen=True)
class IntensityStats:
    """Foreground intensity statistics of one channel."""

    mean: float
    std: float
    median: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float

    @classmethod
    def from_samples(cls, values: np.ndarray) -> IntensityStats:
        """Statistics of a 1D sample (all NaN for an empty sample).

        Examples
        --------
        >>> IntensityStats.from_samples(np.arange(201.0)).percentile_99_5
        199.0
        """
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            nan = float("nan")
            return cls(nan, nan, nan, nan, nan, nan, nan)
        p = np.percentile(v, [0.5, 50.0, 99.5])
        return cls(
            float(v.mean()),
            float(v.std()),
            float(p[1]),
            float(v.min()),
            float(v.max()),
            float(p[0]),
            float(p[2]),
        )


def foreground_oversampling(fingerprint: DatasetFingerprint, *, threshold: float = 0.05) -> float:
    """Share of each training batch to force onto foreground, from the fingerprint.

    nnU-Net's 0.33 when the foreground takes at least ``threshold`` of the
    cropped volume (then most random patches hold some anyway); every patch
    (1.0) when it is smaller. With small structures and a short CPU schedule,
    half-empty batches (batch size 2: one forced patch) keep the network on the
    all-background plateau for hundreds of iterations: on ``phantom-kidney``
    (foreground 1.6% of the volume) the kidney pseudo-Dice was still 0 after 300
    iterations with 0.33 and above 0.7 after 100 with 1.0.

    Examples
    --------
    >>> case = CaseFingerprint("a", (1.0, 1.0, 1.0), (10, 10, 10), (10, 10, 10), {"x": 0.01}, ())
    >>> fp = DatasetFingerprint("d", ("CT",), {"background": 0, "x": 1}, (case,), ())
    >>> fp.median_foreground_fraction, foreground_oversampling(fp)
    (0.01, 1.0)
    """
    return 0.33 if fingerprint.median_foreground_fraction >= threshold else 1.0


def minimum_iterations(
    fingerprint: DatasetFingerprint,
    *,
    threshold: float = 0.05,
    default: int = 300,
    small_foreground: int = 2000,
) -> int:
    """Fewest training iterations a budgeted plan may have, from the fingerprint.

    ``default`` (300) when the foreground takes at least ``threshold`` of the
    cropped volume; ``small_foreground`` (2000) below, as for
    :func:`foreground_oversampling`. Small structures leave the all-background
    plateau only after many cheap iterations: on ``phantom-kidney`` (1.6%
    foreground) whole-image patches at 2.44x2.44x3 mm (0.6 s per iteration)
    kept the kidney pseudo-Dice at 0.000 for 150 iterations, and 64x64x48 patches
    at 1.25x1.25x3 mm (the 300-iteration plan) for 100; 48x40x40 patches at
    1.95x1.95x3 mm (the 1000-iteration plan) reach a kidney pseudo-Dice of 0.88 at
    iteration 200 but had tumour 0.000 at 900; 32^3 patches at 2.44 mm reach kidney
    0.88 at 250 and the tumour only late (0.000 up to iteration 1500, 0.52 at 1750
    of 2000). The planner buys the iterations with a coarser grid and smaller
    patches, never below 48 voxels along a coarsened axis.

    Examples
    --------
    >>> case = CaseFingerprint("a", (1.0, 1.0, 1.0), (10, 10, 10), (10, 10, 10), {"x": 0.01}, ())
    >>> fp = DatasetFingerprint("d", ("CT",), {"background": 0, "x": 1}, (case,), ())
    >>> minimum_iterations(fp), minimum_iterations(fp, threshold=0.001)
    (2000, 300)
    """
    return default if fingerprint.median_foreground_fraction >= threshold else small_foreground


@dataclass(frozen=True)
class CaseFingerprint:
    """Fingerprint of one case (array axes after reorientation to RAS)."""

    case_id: str
    spacing: tuple[float, ...]
    shape: tuple[int, ...]
    shape_after_crop: tuple[int, ...]
    class_volumes_ml: dict[str, float]
    foreground_samples: tuple[tuple[float, ...], ...]

    @property
    def relative_size_after_crop(self) -> float:
        """Voxels kept by the non-zero crop divided by all voxels."""
        return float(np.prod(self.shape_after_crop) / np.prod(self.shape))


@dataclass(frozen=True)
class DatasetFingerprint:
    """Fingerprint of a dataset (see module docstring)."""

    name: str
    channel_names: tuple[str, ...]
    labels: dict[str, Any]
    cases: tuple[CaseFingerprint, ...]
    intensity: tuple[IntensityStats, ...]

    @property
    def spacings(self) -> np.ndarray:
        """Spacings, shape (n_cases, n_axes), mm."""
        return np.array([c.spacing for c in self.cases], dtype=np.float64)

    @property
    def shapes_after_crop(self) -> np.ndarray:
        """Shapes after non-zero crop, shape (n_cases, n_axes)."""
        return np.array([c.shape_after_crop for c in self.cases], dtype=np.float64)

    @property
    def median_relative_size_after_crop(self) -> float:
        """Median over cases of the fraction of voxels kept by the crop."""
        return float(np.median([c.relative_size_after_crop for c in self.cases]))

    @property
    def median_foreground_fraction(self) -> float:
        """Median over cases of the labelled share of the cropped volume.

        The foreground is the sum of the class volumes (capped at 1; region
        labels may overlap) over the volume kept by the non-zero crop.
        """
        fr = []
        for c in self.cases:
            vol_mm3 = float(np.prod(c.shape_after_crop) * np.prod(c.spacing))
            fg_mm3 = 1000.0 * float(sum(c.class_volumes_ml.values()))
            fr.append(min(1.0, fg_mm3 / vol_mm3) if vol_mm3 > 0 else 0.0)
        return float(np.median(fr)) if fr else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the raw intensity samples)."""
        return {
            "name": self.name,
            "channel_names": list(self.channel_names),
            "labels": {k: list(v) if isinstance(v, tuple) else v for k, v in self.labels.items()},
            "median_relative_size_after_crop": self.median_relative_size_after_crop,
            "foreground_intensity_per_channel": [asdict(s) for s in self.intensity],
            "cases": [
                {
                    "case_id": c.case_id,
                    "spacing": list(c.spacing),
                    "shape": list(c.shape),
                    "shape_after_crop": list(c.shape_after_crop),
                    "class_volumes_ml": c.class_volumes_ml,
                }
                for c in self.cases
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fingerprint as JSON (atomically)."""
        from medlens._atomic import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DatasetFingerprint:
        """Read a fingerprint written by :meth:`save`."""
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        cases = tuple(
            CaseFingerprint(
                c["case_id"],
                tuple(c["spacing"]),
                tuple(c["shape"]),
                tuple(c["shape_after_crop"]),
                dict(c["class_volumes_ml"]),
                (),
            )
            for c in d["cases"]
        )
        labels = {k: tuple(v) if isinstance(v, list) else v for k, v in d["labels"].items()}
        return cls(
            d["name"],
            tuple(d["channel_names"]),
            labels,
            cases,
            tuple(IntensityStats(**s) for s in d["foreground_intensity_per_channel"]),
        )


_BBOX_SLAB_VOXELS = 2**22


def nonzero_bbox(
    array: np.ndarray, *, channels: bool = True
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Bounding box ``[start, stop)`` of the non-zero region (holes filled).

    As nnU-Net's crop: a voxel is non-zero if any channel is; holes of that mask
    are filled; the box of the mask is returned. An all-zero image gives the
    whole image.

    Examples
    --------
    >>> a = np.zeros((1, 5, 6)); a[0, 1:3, 2:5] = 1
    >>> nonzero_bbox(a)
    ((1, 2), (3, 5))
    """
    shape = tuple(array.shape[1:]) if channels else tuple(array.shape)
    nd = len(shape)
    # per-axis projections of the mask, slab by slab along the last axis: memory is
    # one slab's mask, not np.nonzero's three int64 index arrays (24 bytes a voxel)
    proj = [np.zeros(n, dtype=bool) for n in shape]
    per_slice = max(1, int(np.prod(shape[:-1])))
    step = max(1, _BBOX_SLAB_VOXELS // per_slice)
    for z0 in range(0, shape[-1], step):
        sub = array[..., z0 : z0 + step]
        m = np.any(sub != 0, axis=0) if channels else sub != 0
        for ax in range(nd):
            red = m.any(axis=tuple(a for a in range(nd) if a != ax))
            if ax == nd - 1:
                proj[ax][z0 : z0 + step] = red
            else:
                proj[ax] |= red
    if not proj[0].any():
        return (0,) * nd, shape
    start = tuple(int(np.argmax(p)) for p in proj)
    stop = tuple(int(len(p) - np.argmax(p[::-1])) for p in proj)
    return start, stop


def to_ras(image: Image) -> Image:
    """Reorient to RAS (a permutation/flip of axes; no interpolation)."""
    return (
        image if image.orientation == "RAS" or image.spatial_ndim == 2 else reorient(image, "RAS")
    )


def _region_mask(label: np.ndarray, value: int | tuple[int, ...]) -> np.ndarray:
    if isinstance(value, tuple):
        return np.isin(label, value)
    return label == value


def case_fingerprint(case: Case, labels: dict[str, Any], *, seed: int = 1234) -> CaseFingerprint:
    """Fingerprint of one case (see :class:`CaseFingerprint`)."""
    image, label = read_case(case)
    image = to_ras(image)
    assert label is not None
    label = to_ras(label)
    arr = np.asarray(image.array)
    lab = np.asarray(label.array)
    start, stop = nonzero_bbox(arr)
    crop_shape = tuple(b - a for a, b in zip(start, stop, strict=True))
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    volumes = {
        name: float(_region_mask(lab, v).sum() * voxel_ml) for name, v in labels.items() if v != 0
    }
    fg = lab > 0
    rng = np.random.default_rng(seed)
    samples = []
    n_fg = int(fg.sum())
    pick: Any = rng.choice(n_fg, size=min(_SAMPLES_PER_CASE, n_fg), replace=False) if n_fg else []
    for c in range(arr.shape[0]):
        vals = arr[c][fg]
        samples.append(tuple(float(x) for x in vals[pick]))
    return CaseFingerprint(
        case.case_id,
        tuple(float(s) for s in image.spacing),
        tuple(int(s) for s in image.spatial_shape),
        crop_shape,
        volumes,
        tuple(samples),
    )


def _fp_worker(args: tuple[Case, dict[str, Any], int]) -> CaseFingerprint:
    return case_fingerprint(args[0], args[1], seed=args[2])


def dataset_fingerprint(
    dataset: SegmentationDataset, *, workers: int | None = None, cases: Sequence[Case] | None = None
) -> DatasetFingerprint:
    """Fingerprint every training case, in parallel processes.

    Parameters
    ----------
    dataset : SegmentationDataset
        The dataset.
    workers : int, optional
        Worker processes (default: CPU count, at most the number of cases);
        ``1`` runs in this process.
    cases : sequence of Case, optional
        Subset of the training cases.
    """
    todo = list(cases if cases is not None else dataset.training)
    n = max(1, min(workers or (os.cpu_count() or 1), len(todo)))
    jobs = [(c, dataset.labels, 1234 + i) for i, c in enumerate(todo)]
    if n == 1:
        fps = [_fp_worker(j) for j in jobs]
    else:
        with ProcessPoolExecutor(n) as ex:
            fps = list(ex.map(_fp_worker, jobs))
    stats = []
    for c in range(len(dataset.channel_names)):
        allv = np.concatenate([np.asarray(f.foreground_samples[c]) for f in fps])
        stats.append(IntensityStats.from_samples(allv))
    return DatasetFingerprint(
        dataset.name, dataset.channel_names, dict(dataset.labels), tuple(fps), tuple(stats)
    )
