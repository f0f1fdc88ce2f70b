"""Preprocessing: reorient, crop to non-zero, normalise, resample, cache as .npy.

Order as nnU-Net v2's preprocessor: crop -> normalise (at the original spacing)
-> resample. Images are resampled with a cubic B-spline, labels with
:func:`medlens.image.resample`'s ``"label"`` mode (each label's indicator is
interpolated linearly, the largest wins, so no value is invented). When the
spacing is anisotropic (largest / smallest > 3, the input's or the target's),
the coarse axis is resampled separately and with nearest-neighbour
interpolation, as nnU-Net does (``order_z=0``).

Cached arrays are plain ``.npy`` files (memory-mappable with
``numpy.load(..., mmap_mode="r")``) plus a small JSON per case with the geometry
needed to map predictions back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medlens.image import Image, crop, resample
from medlens.segmentation._dataset import Case, SegmentationDataset, read_case
from medlens.segmentation._fingerprint import nonzero_bbox, to_ras
from medlens.segmentation._plan import Configuration, Plans

__all__ = [
    "PreprocessedCase",
    "normalize",
    "preprocess_case",
    "preprocess_dataset",
    "resample_in_slabs",
    "resample_to_spacing",
    "target_spacing_for",
]

_FG_SAMPLES = 10_000


def normalize(
    array: np.ndarray,
    scheme: str,
    *,
    use_mask: bool = False,
    intensity: dict[str, float] | None = None,
) -> np.ndarray:
    """Normalise one channel.

    Parameters
    ----------
    array : numpy.ndarray
        One channel, any shape.
    scheme : {"CT", "zscore"}
        ``"CT"``: clip to the dataset's foreground 0.5/99.5 percentiles, subtract
        the foreground mean and divide by the foreground std (global values from
        the fingerprint, given in ``intensity``). ``"zscore"``: per image, with the
        mean and std of the non-zero voxels when ``use_mask`` (voxels outside are
        set to 0), else of all voxels.
    use_mask : bool
        Non-zero-mask rule for ``"zscore"``.
    intensity : dict, optional
        Fingerprint statistics (``mean``, ``std``, ``percentile_00_5``,
        ``percentile_99_5``); required for ``"CT"``.

    Returns
    -------
    numpy.ndarray
        float32 array.

    Examples
    --------
    >>> normalize(np.array([0.0, 1.0, 3.0]), "zscore", use_mask=True).round(3).tolist()
    [0.0, -1.0, 1.0]
    >>> st = {"mean": 50.0, "std": 10.0, "percentile_00_5": 0.0, "percentile_99_5": 100.0}
    >>> normalize(np.array([-1000.0, 60.0, 3000.0]), "CT", intensity=st).tolist()
    [-5.0, 1.0, 5.0]
    """
    # one float32 copy, then in-place arithmetic (bounded memory for big CT volumes)
    a = np.array(array, dtype=np.float32, copy=True)
    if scheme == "CT":
        if intensity is None:
            raise ValueError("CT normalisation needs the fingerprint's intensity statistics")
        lo, hi = float(intensity["percentile_00_5"]), float(intensity["percentile_99_5"])
        std = max(float(intensity["std"]), 1e-8)
        np.clip(a, lo, hi, out=a)
        a -= np.float32(intensity["mean"])
        a /= np.float32(std)
        return a
    if scheme != "zscore":
        raise ValueError(f"unknown normalisation scheme {scheme!r}")
    if use_mask:
        mask = a != 0
        vals = a[mask]
        if vals.size == 0:
            return np.zeros_like(a)
        mean, std = float(vals.mean(dtype=np.float64)), float(vals.std(dtype=np.float64))
        del vals
        a -= np.float32(mean)
        a /= np.float32(max(std, 1e-8))
        a[~mask] = 0.0
        return a
    mean, std = float(a.mean(dtype=np.float64)), float(a.std(dtype=np.float64))
    a -= np.float32(mean)
    a /= np.float32(max(std, 1e-8))
    return a


def _anisotropic_axis(spacing: Sequence[float], threshold: float = 3.0) -> int | None:
    sp = np.asarray(spacing, dtype=np.float64)
    if sp.max() / sp.min() > threshold:
        return int(np.argmax(sp))
    return None


#: Input voxels (per channel) resampled at once; larger images go in slabs along the
#: last axis (see :func:`resample_in_slabs`).
SLAB_VOXELS = 2**24
#: Extra input slices on each side of a slab: the cubic B-spline prefilter's influence
#: decays as 0.268^n, so 16 slices leave < 1e-9 of the unchunked result's range.
SLAB_MARGIN = 16


def _spacing_grid(image: Image, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The grid ``resample(image, spacing=...)`` produces (affine, shape).

    Its documented rule: directions and the outer edge of the first voxel kept,
    shape ``round(shape * old / new)``.
    """
    old = np.asarray(image.spacing, dtype=np.float64)
    new = np.asarray(spacing, dtype=np.float64)
    shape = tuple(
        max(1, int(np.floor(float(e) + 0.5)))
        for e in np.asarray(image.spatial_shape) * old / new
    )
    aff = np.array(image.affine, dtype=np.float64)
    aff[:3, :3] = image.affine[:3, :3] * (new / old)
    aff[:3, 3] = image.affine[:3, 3] + image.direction @ ((new - old) / 2.0)
    return aff, shape


def resample_in_slabs(
    image: Image,
    spacing: Sequence[float],
    interpolation: str,
    *,
    max_voxels: int = SLAB_VOXELS,
    margin: int = SLAB_MARGIN,
) -> Image:
    """``resample(image, spacing=..., interpolation=...)`` with bounded memory.

    A 3D image of more than ``max_voxels`` voxels per channel is resampled slab
    by slab along its last axis: each output slab is computed from the input
    slices it samples plus ``margin`` slices on each side, so scipy's B-spline
    prefilter (float64, the size of its input) and the float32 working copy exist
    for one slab at a time. Nearest, linear and label interpolation give exactly
    the unchunked result (up to float32 rounding of linear weights, and ties of
    nearest neighbour); cubic B-spline agrees to < 1e-9 of the image's range.

    Examples
    --------
    >>> img = Image(np.random.default_rng(0).random((6, 5, 40)), np.eye(4))
    >>> a = resample_in_slabs(img, (1.5, 1.5, 0.7), "bspline", max_voxels=200)
    >>> b = resample(img, spacing=(1.5, 1.5, 0.7), interpolation="bspline")
    >>> bool(np.allclose(a.affine, b.affine)), float(np.abs(a.array - b.array).max()) < 1e-6
    (True, True)
    """
    n = image.spatial_ndim
    shape = image.spatial_shape
    if n != 3 or int(np.prod(shape)) <= max_voxels or shape[-1] < 4 * margin:
        return resample(image, spacing=spacing, interpolation=interpolation)  # type: ignore[arg-type]
    aff, out_shape = _spacing_grid(image, spacing)
    # the resampling is a scaling per axis: input index = scale * output index + shift
    scale = float(spacing[-1]) / float(image.spacing[-1])
    shift = (scale - 1.0) / 2.0
    per_slice_in = int(np.prod(shape[:-1]))
    slab_in = max(8, max_voxels // max(per_slice_in, 1))
    slab_out = max(1, int(slab_in / scale))
    chans = image.n_channels if image.channels else 1
    out: np.ndarray | None = None
    for o0 in range(0, out_shape[-1], slab_out):
        o1 = min(out_shape[-1], o0 + slab_out)
        lo = max(0, int(np.floor(scale * o0 + shift)) - margin)
        hi = min(shape[-1], int(np.ceil(scale * (o1 - 1) + shift)) + 1 + margin)
        part = crop(image, (0,) * (n - 1) + (lo,), (*shape[:-1], hi))
        t_aff = aff.copy()
        t_aff[:3, 3] = aff[:3, :3] @ np.array([0.0, 0.0, float(o0)]) + aff[:3, 3]
        tmpl = Image(np.broadcast_to(np.uint8(0), (*out_shape[:-1], o1 - o0)), t_aff)
        r = resample(part, like=tmpl, interpolation=interpolation)  # type: ignore[arg-type]
        arr = np.asarray(r.array)
        if out is None:
            full = (chans, *out_shape) if image.channels else out_shape
            out = np.empty(full, dtype=arr.dtype)
        out[..., o0:o1] = arr
    assert out is not None
    return Image(out, aff, channels=image.channels, meta=image.meta)


def resample_to_spacing(
    image: Image,
    spacing: Sequence[float],
    *,
    is_label: bool,
    anisotropy_threshold: float = 3.0,
    max_voxels: int = SLAB_VOXELS,
) -> Image:
    """Resample to a spacing the nnU-Net way (coarse axis separately, nearest).

    Images use cubic B-spline, labels the ``"label"`` mode. If the input's or the
    target's spacing is anisotropic (largest / smallest > ``anisotropy_threshold``),
    the in-plane axes are resampled first (B-spline / label mode) and the coarse
    axis afterwards with nearest-neighbour interpolation. Images of more than
    ``max_voxels`` voxels are resampled in slabs (:func:`resample_in_slabs`).

    Examples
    --------
    >>> lab = Image(np.array([[[0, 1], [2, 2]]], dtype=np.uint8), np.diag([1.0, 1.0, 4.0, 1.0]))
    >>> out = resample_to_spacing(lab, (0.5, 0.5, 4.0), is_label=True)
    >>> out.spatial_shape, sorted(np.unique(out.array).tolist())
    ((2, 4, 2), [0, 1, 2])
    """
    old = tuple(float(s) for s in image.spacing)
    new = tuple(float(s) for s in spacing)
    if np.allclose(old, new, rtol=1e-5, atol=1e-6):
        return image
    interp = "label" if is_label else "bspline"
    axis = _anisotropic_axis(old, anisotropy_threshold)
    if axis is None:
        axis = _anisotropic_axis(new, anisotropy_threshold)
    if axis is None or image.spatial_ndim == 2:
        return resample_in_slabs(image, new, interp, max_voxels=max_voxels)
    step1 = list(new)
    step1[axis] = old[axis]
    out = image
    if not np.allclose(step1, old):
        out = resample_in_slabs(out, step1, interp, max_voxels=max_voxels)
    if not np.isclose(new[axis], old[axis]):
        out = resample_in_slabs(out, new, "nearest", max_voxels=max_voxels)
    return out


def target_spacing_for(config: Configuration, case_spacing: Sequence[float]) -> tuple[float, ...]:
    """The spacing a case is resampled to.

    The configuration's, or for 2D configurations its in-plane spacing with the
    case's own spacing across slices.
    """
    if config.spatial_dims == 2 and len(case_spacing) == 3:
        assert config.slice_axis is not None
        sp = list(config.spacing)
        sp.insert(config.slice_axis, float(case_spacing[config.slice_axis]))
        return tuple(sp)
    return tuple(config.spacing)


@dataclass(frozen=True)
class PreprocessedCase:
    """A preprocessed case in memory."""

    data: np.ndarray
    seg: np.ndarray | None
    properties: dict[str, Any]


def _label_to_seg(label: np.ndarray, plans: Plans) -> np.ndarray:
    return np.asarray(label).astype(np.int16)


def preprocess_case(
    image: Image, label: Image | None, plans: Plans, config: Configuration
) -> PreprocessedCase:
    """Preprocess one case (channels-first image, optional label) for a configuration.

    Returns
    -------
    PreprocessedCase
        ``data`` float32 ``(C, ...)`` at the configuration's spacing (RAS axis
        order), ``seg`` int16 ``(1, ...)`` or None, and ``properties`` with the
        original geometry (``affine``, ``shape``), the RAS crop box and the
        preprocessed grid's affine.
    """
    if not image.channels:
        image = image.with_array(np.asarray(image.array)[None], channels=True)
    props: dict[str, Any] = {
        "original_affine": image.affine.tolist(),
        "original_shape": list(image.spatial_shape),
        "original_spacing": list(image.spacing),
    }
    ras = to_ras(image)
    start, stop = nonzero_bbox(np.asarray(ras.array))
    props["crop_start"], props["crop_stop"] = list(start), list(stop)
    props["ras_affine"] = ras.affine.tolist()
    props["ras_shape"] = list(ras.spatial_shape)
    cropped = crop(ras, start, stop)
    arr = np.asarray(cropped.array)
    norm = np.empty(arr.shape, dtype=np.float32)
    for c in range(arr.shape[0]):
        norm[c] = normalize(
            arr[c],
            config.normalization[c],
            use_mask=config.use_mask_for_norm[c],
            intensity=plans.intensity[c],
        )
    img = cropped.with_array(norm, channels=True)
    spacing = target_spacing_for(config, img.spacing)
    img = resample_to_spacing(
        img, spacing, is_label=False, anisotropy_threshold=plans.anisotropy_threshold
    )
    seg = None
    if label is not None:
        lab = crop(to_ras(label), start, stop)
        lab = lab.with_array(_label_to_seg(np.asarray(lab.array), plans))
        lab = resample_to_spacing(
            lab, spacing, is_label=True, anisotropy_threshold=plans.anisotropy_threshold
        )
        seg = np.asarray(lab.array, dtype=np.int16)[None]
    props["spacing"] = list(img.spacing)
    props["affine"] = img.affine.tolist()
    props["shape"] = list(img.spatial_shape)
    data = np.ascontiguousarray(img.array, dtype=np.float32)
    return PreprocessedCase(data, seg, props)


def foreground_locations(
    seg: np.ndarray, plans: Plans, *, seed: int = 1234, n: int = _FG_SAMPLES
) -> dict[str, np.ndarray]:
    """Sampled voxel indices of each foreground label/region, for oversampling."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    s = seg[0]
    for name, v in plans.foreground.items():
        mask = np.isin(s, v) if isinstance(v, tuple) else s == v
        idx = np.argwhere(mask)
        if len(idx) > n:
            idx = idx[rng.choice(len(idx), n, replace=False)]
        out[name] = idx.astype(np.int32)
    return out


def _preprocess_worker(args: tuple[Case, Plans, str, str]) -> str:
    case, plans, config_name, out = args
    config = plans.configurations[config_name]
    image, label = read_case(case)
    pc = preprocess_case(image, label, plans, config)
    out_dir = Path(out)
    np.save(out_dir / f"{case.case_id}.npy", pc.data)
    if pc.seg is not None:
        np.save(out_dir / f"{case.case_id}_seg.npy", pc.seg)
        locs = foreground_locations(pc.seg, plans)
        np.savez(out_dir / f"{case.case_id}_fg.npz", **locs)  # type: ignore[arg-type]
    from medlens._atomic import atomic_write_json

    atomic_write_json(out_dir / f"{case.case_id}.json", pc.properties)
    return case.case_id


def preprocess_dataset(
    dataset: SegmentationDataset,
    plans: Plans,
    out_dir: str | os.PathLike[str],
    *,
    configuration: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Preprocess all training cases of a dataset into ``out_dir/<configuration>/``.

    Cases already cached (their JSON exists) are skipped. Work runs in
    ``workers`` processes (default: CPU count) with a rich progress bar.

    Returns
    -------
    Path
        The folder holding ``CASE.npy``, ``CASE_seg.npy``, ``CASE_fg.npz`` and
        ``CASE.json`` per case.
    """
    name = configuration or plans.default_configuration
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    todo = [c for c in dataset.training if not (folder / f"{c.case_id}.json").exists()]
    jobs = [(c, plans, name, str(folder)) for c in todo]
    n = max(1, min(workers or (os.cpu_count() or 1), len(jobs)))
    if not jobs:
        return folder
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task(f"preprocess {name}", total=len(jobs))
        if n == 1:
            for j in jobs:
                _preprocess_worker(j)
                bar.advance(task)
        else:
            with ProcessPoolExecutor(n) as ex:
                futs = [ex.submit(_preprocess_worker, j) for j in jobs]
                for f in as_completed(futs):
                    f.result()
                    bar.advance(task)
    return folder


def load_preprocessed(
    folder: str | os.PathLike[str], case_id: str, *, mmap: bool = True
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Load a cached case (memory-mapped by default)."""
    f = Path(folder)
    mode: Literal["r"] | None = "r" if mmap else None
    data = np.load(f / f"{case_id}.npy", mmap_mode=mode)
    segp = f / f"{case_id}_seg.npy"
    seg = np.load(segp, mmap_mode=mode) if segp.exists() else None
    props = json.loads((f / f"{case_id}.json").read_text(encoding="utf-8"))
    return data, seg, props
