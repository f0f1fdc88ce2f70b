"""DICOM Segmentation objects: read into a label :class:`Image`, write with highdicom.

A DICOM-SEG object stores one frame per (segment, slice) pair, each frame with its
own Image Position (Patient) and the number of the segment it belongs to. Writers
usually leave out empty frames, so the slices of a SEG need not be contiguous.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from medlens._atomic import atomic_path
from medlens.image import Image
from medlens.io._dicom import (
    _POSITION_ATOL,
    _check_has_image,
    _decode,
    _Frame,
    _frames,
    _int_value,
    _is_segmentation,
    _jsonable,
    _meta,
    _read_dataset,
    _scan,
    _stack,
    _warnings_to,
)
from medlens.io._errors import ImageReadError, ImageWriteError, UnsupportedFormatError
from medlens.io._lps import lps_to_ras, ras_to_lps

if TYPE_CHECKING:  # pragma: no cover
    from highdicom.seg import SegmentDescription
    from pydicom.dataset import Dataset

__all__ = ["read_dicom_seg", "write_dicom_seg"]

_LABELMAP_SOP = "1.2.840.10008.5.1.4.1.1.66.7"


def _segments(ds: Dataset) -> list[dict[str, Any]]:
    out = []
    for item in ds.get("SegmentSequence", []):
        entry: dict[str, Any] = {
            "number": int(item.SegmentNumber),
            "label": str(item.get("SegmentLabel", "")),
        }
        if item.get("SegmentDescription"):
            entry["description"] = str(item.SegmentDescription)
        for key, kw in (
            ("category", "SegmentedPropertyCategoryCodeSequence"),
            ("type", "SegmentedPropertyTypeCodeSequence"),
        ):
            seq = item.get(kw)
            if seq:
                entry[key] = str(seq[0].get("CodeMeaning", ""))
        if item.get("SegmentAlgorithmType"):
            entry["algorithm_type"] = str(item.SegmentAlgorithmType)
        out.append(entry)
    return out


def _frame_segment_numbers(ds: Dataset, path: Path, n_frames: int) -> list[int]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    out = []
    for f in range(n_frames):
        item = None
        for fg in (per_frame[f] if f < len(per_frame) else None, shared):
            if fg is not None and fg.get("SegmentIdentificationSequence"):
                item = fg.SegmentIdentificationSequence[0]
                break
        if item is None or item.get("ReferencedSegmentNumber") in (None, ""):
            raise ImageReadError(path, f"SEG frame {f} has no ReferencedSegmentNumber")
        out.append(int(item.ReferencedSegmentNumber))
    return out


def read_dicom_seg(
    path: str | os.PathLike[str],
    *,
    reference: Image | None = None,
    as_channels: bool = False,
) -> Image:
    """Read a DICOM Segmentation (SEG) into a label map (or one channel per segment).

    Parameters
    ----------
    path : str or os.PathLike
        The SEG file.
    reference : Image, optional
        The image the segmentation was drawn on (e.g. ``read_image(ct_folder)``).
        The labels are then placed on its grid: same shape and affine, slices
        without any segment are zero. Without it the grid is built from the SEG's
        own frames: from the first to the last segmented slice, with the spacing
        of the Pixel Measures (SpacingBetweenSlices) when the frame positions lie on
        it, else the measured smallest gap between frame positions (or an integer
        fraction of the tag or that gap, up to 1/8, when frames were left out);
        empty slices between them are zero. A tag that contradicts the positions is
        noted in ``meta["read_warnings"]``. Frames two or more slices apart whose
        tag is a multiple of the true slice gap cannot be told from a coarser grid:
        pass ``reference`` then.
    as_channels : bool, optional
        Return one binary ``uint8`` channel per segment, ``(n_segments, I, J, K)``,
        instead of a label map. Use it when segments overlap.

    Returns
    -------
    Image
        Label map (``uint8``, ``uint16`` beyond 255 segments) whose values are the
        segment numbers 1..n (0 background). Where segments overlap, the highest
        segment number wins; ``meta["overlap_voxels"]`` counts such voxels and
        ``meta["overlapping_segments"]`` lists the pairs. ``meta["segments"]`` describes
        each segment (number, label, category, type, algorithm type).
        FRACTIONAL segmentations are thresholded at half the maximum fractional value.

    Raises
    ------
    ImageReadError
        If the file is not a valid SEG, its frames have no plane positions, or the
        frame positions fit no slice grid (or ``reference``'s grid).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> seg = read_dicom_seg(get_testdata_file("liver.dcm", download=False))
    >>> seg.spatial_shape, seg.meta["segments"][0]["label"], int(seg.array.max())
    ((512, 512, 3), 'Liver', 1)
    """
    p = Path(path)
    ds, seen = _read_dataset(p)
    if not _is_segmentation(ds):
        raise UnsupportedFormatError(p, f"not a DICOM Segmentation ({ds.get('SOPClassUID', '?')})")
    with _warnings_to(seen):
        return _read_seg(p, ds, seen, reference=reference, as_channels=as_channels)


def _read_seg(
    p: Path, ds: Dataset, seen: list[str], *, reference: Image | None, as_channels: bool
) -> Image:
    notes = _check_has_image(ds, p)
    n_frames = _int_value(ds, "NumberOfFrames", p, 1)
    frames = _frames(ds, p, n_frames)
    seg_numbers = _frame_segment_numbers(ds, p, n_frames)
    segments = _segments(ds)
    numbers = sorted({s["number"] for s in segments} | set(seg_numbers))
    if any(n < 1 for n in numbers):
        raise ImageReadError(p, f"segment numbers must be 1 or more, found {numbers}")
    arr = _decode(ds, p)  # (F, rows, cols)
    if arr.ndim != 3:
        raise ImageReadError(
            p, f"SEG pixel data has shape {arr.shape}; expected frames x rows x cols"
        )
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    labelmap = str(ds.get("SOPClassUID", "")) == _LABELMAP_SOP or seg_type == "LABELMAP"
    if seg_type == "FRACTIONAL":
        top = float(ds.get("MaximumFractionalValue", 255) or 255)
        masks = arr.astype(np.float64) >= top / 2.0
    else:
        masks = arr
    if any(f.position is None or f.orientation is None for f in frames):
        raise ImageReadError(
            p, "SEG frames have no Plane Position / Orientation, so they cannot be placed"
        )
    rows, cols = int(ds.Rows), int(ds.Columns)
    if reference is not None:
        affine_ras, shape, k_index = _on_reference(p, frames, reference, rows, cols)
    else:
        affine_ras, shape, k_index = _own_grid(p, ds, frames, rows, cols, notes)
    n_seg = max(numbers)
    if as_channels:
        out = np.zeros((n_seg, *shape), dtype=np.uint8)
    else:
        out = np.zeros(shape, dtype=np.uint8 if n_seg <= 255 else np.uint16)
    overlap = 0
    pairs: set[tuple[int, int]] = set()
    frame_order = sorted(range(n_frames), key=lambda f: seg_numbers[f])
    for f in frame_order:
        k = k_index[f]
        plane = np.asarray(masks[f]).T  # (rows, cols) -> (i, j)
        if labelmap:
            values = plane.astype(np.int64)
            for v in np.unique(values[values > 0]):
                if as_channels:
                    out[int(v) - 1, :, :, k] |= (values == v).astype(np.uint8)
                else:
                    out[:, :, k][values == v] = int(v)
            continue
        on = plane > 0
        s = seg_numbers[f]
        if as_channels:
            out[s - 1, :, :, k] |= on.astype(np.uint8)
            continue
        target = out[:, :, k]
        clash = on & (target > 0) & (target != s)
        if clash.any():
            overlap += int(clash.sum())
            pairs.update((int(a), s) for a in np.unique(target[clash]))
        target[on] = s
    meta = _meta(ds, p, [*notes, *seen])
    meta["format"] = "dicom-seg"
    meta["segmentation_type"] = seg_type
    meta["segments"] = segments
    meta["n_frames"] = n_frames
    meta["n_instances"] = 1
    ref = ds.get("ReferencedSeriesSequence")
    if ref:
        meta["referenced_series_instance_uid"] = _jsonable(ref[0].get("SeriesInstanceUID"))
    if not as_channels:
        meta["overlap_voxels"] = overlap
        meta["overlapping_segments"] = sorted([list(pr) for pr in pairs])
    return Image(out, affine_ras, channels=as_channels, meta=meta)


def _own_grid(
    p: Path, ds: Dataset, frames: Sequence[_Frame], rows: int, cols: int, notes: list[str]
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int], list[int]]:
    ori = frames[0].orientation
    assert ori is not None
    normal = np.cross(ori[:3], ori[3:])
    # One representative frame per distinct position.
    d = np.array([float(np.asarray(f.position) @ normal) for f in frames])
    order = np.argsort(d, kind="stable")
    reps: list[int] = []
    for f in order:
        if not reps or d[f] - d[reps[-1]] > _POSITION_ATOL:
            reps.append(int(f))
    stack_frames = [frames[i] for i in reps]
    tag = _tag_slice_spacing(ds)
    if len(reps) == 1:
        st = _stack(stack_frames, p, rows=rows, cols=cols, slice_spacing_hint=tag or 1.0)
        lps = st.affine_lps
        n = 1
        spacing = tag or 1.0
    else:
        offsets = d[reps] - d[reps[0]]
        fitted = _grid_spacing(offsets, tag)
        if fitted is None:
            said = f"SpacingBetweenSlices ({tag:g} mm), " if tag else ""
            raise ImageReadError(
                p,
                f"SEG frame positions along the normal ({np.round(d[reps], 4).tolist()} mm) "
                f"are not on a grid: neither {said}the smallest gap between them "
                f"({float(np.diff(offsets).min()):g} mm) nor a fraction of it down to "
                f"1/{_MAX_GRID_DIVISOR} fits; pass reference= to place the frames on their "
                "source image",
            )
        spacing = fitted
        if tag is not None and spacing != tag:
            notes.append(
                f"SpacingBetweenSlices {tag:g} mm contradicts the frame positions; used "
                f"their measured gap, {spacing:.6g} mm"
            )
        n = round(float(offsets[-1] / spacing)) + 1
        lps = np.eye(4)
        sp = frames[0].spacing
        col_sp, row_sp = (1.0, 1.0) if sp is None else (float(sp[1]), float(sp[0]))
        lps[:3, 0] = ori[:3] * col_sp
        lps[:3, 1] = ori[3:] * row_sp
        lps[:3, 2] = normal * spacing
        lps[:3, 3] = np.asarray(frames[reps[0]].position)
    affine = lps_to_ras(lps)
    k_index = [round(float(d[f] - d[reps[0]]) / spacing) for f in range(len(frames))]
    _check_in_plane(p, frames, lps, k_index)
    return affine, (cols, rows, n), k_index


def _tag_slice_spacing(ds: Dataset) -> float | None:
    """SpacingBetweenSlices of the shared Pixel Measures, if present and positive."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    meas = shared.get("PixelMeasuresSequence") if shared is not None else None
    if not meas:
        return None
    v = meas[0].get("SpacingBetweenSlices")
    try:
        return float(v) if v not in (None, "") and float(v) > 0 else None
    except (TypeError, ValueError):
        return None


_MAX_GRID_DIVISOR = 8


def _on_grid(offsets: npt.NDArray[np.float64], step: float) -> bool:
    steps = offsets / step
    return bool(np.abs(steps - np.round(steps)).max() <= 0.01)


def _grid_spacing(offsets: npt.NDArray[np.float64], tag: float | None) -> float | None:
    """Slice step that puts every frame offset (mm from the first, ascending) on a grid.

    The tag (SpacingBetweenSlices) wins when the positions agree with it; when they
    contradict it (a writer that copied the source's slice thickness-like value),
    the measured smallest gap is used, as the series reader uses positions, then
    an integer fraction (up to 1/8) of the tag or of that gap (frames left out
    because they were empty).
    """
    smallest = float(np.diff(offsets).min())
    candidates = [] if tag is None else [tag]
    candidates.append(smallest)
    for m in range(2, _MAX_GRID_DIVISOR + 1):
        if tag is not None:
            candidates.append(tag / m)
        candidates.append(smallest / m)
    for step in candidates:
        if _on_grid(offsets, step):
            if step == tag:
                return step
            k = np.round(offsets / step)
            return float(offsets @ k / (k @ k))  # least-squares step over all frames
    return None


def _check_in_plane(
    p: Path, frames: Sequence[_Frame], lps: npt.NDArray[np.float64], k_index: Sequence[int]
) -> None:
    for f, fr in enumerate(frames):
        expected = lps[:3, 3] + lps[:3, 2] * k_index[f]
        if np.abs(np.asarray(fr.position) - expected).max() > 1e-2 + 0.01 * np.linalg.norm(
            lps[:3, 2]
        ):
            raise ImageReadError(
                p,
                f"SEG frame {f} at {np.asarray(fr.position).tolist()} is off the grid "
                f"(expected {expected.tolist()})",
            )
        first = frames[0].orientation
        if (
            fr.orientation is not None
            and first is not None
            and np.abs(fr.orientation - first).max() > 1e-4
        ):
            raise ImageReadError(p, f"SEG frame {f} has a different orientation from frame 0")


def _on_reference(
    p: Path, frames: Sequence[_Frame], ref: Image, rows: int, cols: int
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int], list[int]]:
    if ref.spatial_ndim != 3 or ref.spatial_shape[:2] != (cols, rows):
        raise ImageReadError(
            p,
            f"SEG frames are {cols} x {rows} (columns x rows) but the reference image is "
            f"{ref.spatial_shape}",
        )
    lps = ras_to_lps(ref.affine)
    ori = frames[0].orientation
    sp = frames[0].spacing
    assert ori is not None
    col_sp, row_sp = (1.0, 1.0) if sp is None else (float(sp[1]), float(sp[0]))
    if not (
        np.allclose(lps[:3, 0], ori[:3] * col_sp, atol=1e-3)
        and np.allclose(lps[:3, 1], ori[3:] * row_sp, atol=1e-3)
    ):
        raise ImageReadError(
            p, "SEG orientation or pixel spacing differs from the reference image's in-plane axes"
        )
    inv = np.linalg.inv(lps)
    k_index = []
    for f, fr in enumerate(frames):
        v = inv[:3, :3] @ np.asarray(fr.position) + inv[:3, 3]
        k = round(float(v[2]))
        if np.abs(v[:2]).max() > 1e-2 or abs(v[2] - k) > 1e-2 or not 0 <= k < ref.spatial_shape[2]:
            raise ImageReadError(
                p,
                f"SEG frame {f} at {np.asarray(fr.position).tolist()} (LPS mm) is not a slice of "
                f"the reference grid (voxel {np.round(v, 3).tolist()})",
            )
        k_index.append(k)
    return np.array(ref.affine), ref.spatial_shape, k_index  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _source_datasets(
    source: str | os.PathLike[str] | Sequence[Dataset] | Sequence[str | os.PathLike[str]],
    out: Path,
    series_uid: str | None,
) -> list[Dataset]:
    import pydicom
    from pydicom.dataset import Dataset as _Dataset

    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        if folder.is_file():
            return [pydicom.dcmread(folder, stop_before_pixels=True)]
        if not folder.is_dir():
            raise ImageWriteError(out, f"source {folder} is neither a DICOM folder nor a file")
        groups, _ = _scan(folder)
        groups = {u: it for u, it in groups.items() if not any(_is_segmentation(d) for _, d in it)}
        if series_uid is None and len(groups) != 1:
            raise ImageWriteError(
                out, f"source folder {folder} holds {len(groups)} image series; pass series_uid="
            )
        uid = series_uid or next(iter(groups))
        if uid not in groups:
            raise ImageWriteError(out, f"no series {uid!r} in {folder}")
        return [d for _, d in groups[uid]]
    items = list(source)
    if not items:
        raise ImageWriteError(out, "no source datasets given")
    return [
        d if isinstance(d, _Dataset) else pydicom.dcmread(d, stop_before_pixels=True) for d in items
    ]


def write_dicom_seg(
    labels: Image,
    source: str | os.PathLike[str] | Sequence[Dataset] | Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    segment_names: Mapping[int, str] | Sequence[str] | None = None,
    segment_descriptions: Sequence[SegmentDescription] | None = None,
    series_uid: str | None = None,
    series_description: str = "Segmentation",
    series_number: int = 900,
    algorithm_name: str | None = None,
) -> None:
    """Write a label map as a DICOM Segmentation that references its source series.

    The SEG (BINARY, one segment per label value 1..max) is built with highdicom,
    so it carries the source's patient, study and frame-of-reference attributes and
    references each source instance. The file appears atomically.

    Parameters
    ----------
    labels : Image
        Integer label map on the source series' grid (same shape and affine within
        1e-3 mm, as :func:`medlens.io.read_image` gives for the source). Value 0 is
        background; every value 1..max becomes segment number = value.
    source : folder, file, or sequence of pydicom Datasets or file paths
        The source series (single-frame files) or one multi-frame file.
    path : str or os.PathLike
        Output file.
    segment_names : mapping or sequence of str, optional
        Names per label value (a sequence gives values 1, 2, ...). Default
        ``"label <value>"``.
    segment_descriptions : sequence of highdicom.seg.SegmentDescription, optional
        Full descriptions (coded category and type); overrides ``segment_names``.
    series_uid : str, optional
        SeriesInstanceUID of the source when ``source`` is a folder of several.
    series_description, series_number : optional
        Of the new SEG series.
    algorithm_name : str, optional
        If given, the segments are marked AUTOMATIC with this algorithm name;
        otherwise MANUAL.

    Raises
    ------
    ImageWriteError
        If the labels are not integers, are not on the source grid, or the source
        cannot be used.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from medlens.io import read_image, write_dicom_series
    >>> d = tempfile.mkdtemp()
    >>> ct = Image(np.zeros((4, 3, 2), np.int16), np.diag([-0.5, -0.5, 2.0, 1.0]))
    >>> _ = write_dicom_series(ct, f"{d}/ct", modality="CT")
    >>> lab = np.zeros((4, 3, 2), np.uint8); lab[1:3, 1, 1] = 2
    >>> write_dicom_seg(ct.with_array(lab), f"{d}/ct", f"{d}/seg.dcm")
    >>> back = read_dicom_seg(f"{d}/seg.dcm", reference=read_image(f"{d}/ct"))
    >>> bool(np.array_equal(back.array, lab))
    True
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    out = Path(path)
    arr = np.asarray(labels.array)
    if labels.channels or labels.spatial_ndim != 3:
        raise ImageWriteError(out, "write_dicom_seg needs a single-channel 3D label map")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ImageWriteError(out, f"labels must be integers, got {arr.dtype}")
    if arr.size and int(arr.min()) < 0:
        raise ImageWriteError(out, f"labels must be >= 0, found {int(arr.min())}")
    n_seg = int(arr.max()) if arr.size else 0
    if n_seg < 1:
        raise ImageWriteError(out, "the label map is empty (no value > 0); a SEG needs a segment")
    datasets = _source_datasets(source, out, series_uid)
    order, ref_affine, ref_shape, multi = _source_grid(datasets, out)
    if ref_shape != labels.spatial_shape or not np.allclose(
        ref_affine, labels.affine, atol=1e-3, rtol=0
    ):
        raise ImageWriteError(
            out,
            f"labels (shape {labels.spatial_shape}) are not on the source grid (shape "
            f"{ref_shape}); resample them first with "
            "medlens.image.resample(labels, like=read_image(source), interpolation='label')",
        )
    frames_kji = np.transpose(arr, (2, 1, 0)).astype(np.uint8 if n_seg <= 255 else np.uint16)
    pixel = np.empty_like(frames_kji)
    pixel[order] = frames_kji  # back to the order of the source images / frames
    names: dict[int, str] = {}
    if isinstance(segment_names, Mapping):
        names = {int(k): str(v) for k, v in segment_names.items()}
    elif segment_names is not None:
        names = {i + 1: str(v) for i, v in enumerate(segment_names)}
    if segment_descriptions is None:
        algo = None
        algo_type = hd.seg.SegmentAlgorithmTypeValues.MANUAL
        if algorithm_name:
            algo_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
            algo = hd.AlgorithmIdentificationSequence(
                name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version="1"
            )
        segment_descriptions = [
            hd.seg.SegmentDescription(
                segment_number=v,
                segment_label=names.get(v, f"label {v}")[:64],
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type=algo_type,
                algorithm_identification=algo,
            )
            for v in range(1, n_seg + 1)
        ]
    from medlens import __version__

    try:
        seg = hd.seg.Segmentation(
            source_images=datasets if not multi else datasets[:1],
            pixel_array=pixel,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segment_descriptions,
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="medlens",
            manufacturer_model_name="medlens",
            software_versions=str(__version__),
            device_serial_number="0",
            series_description=series_description,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise ImageWriteError(out, f"highdicom cannot build the SEG: {e}") from e
    _set_slice_gap(seg, labels)
    try:
        with atomic_path(out) as tmp:
            seg.save_as(tmp)
    except OSError as e:
        raise ImageWriteError(out, str(e)) from e


def _set_slice_gap(seg: Dataset, labels: Image) -> None:
    """Put the measured slice gap into the SEG's shared Pixel Measures.

    highdicom copies the source's Pixel Measures, whose SpacingBetweenSlices is
    often the slice thickness (5 mm slices every 2.5 mm) or missing (it even
    replaces Pixel Measures passed to it by the source's when the pixel spacing
    agrees). A reader rebuilds the grid from that tag when empty frames are left
    out, so it must be the gap along the normal between the labels' slices, which
    the series reader measured from the positions (the labels' affine). A single
    slice has no measured gap: the source's values are kept.
    """
    from copy import deepcopy

    from pydicom.valuerep import format_number_as_ds

    if labels.spatial_shape[2] < 2:
        return
    lin = np.asarray(labels.affine, dtype=np.float64)[:3, :3]
    normal = np.cross(lin[:, 0], lin[:, 1])
    normal /= np.linalg.norm(normal)
    gap = abs(float(lin[:, 2] @ normal))
    shared = (seg.get("SharedFunctionalGroupsSequence") or [None])[0]
    if shared is None or not shared.get("PixelMeasuresSequence"):
        return
    meas = deepcopy(shared.PixelMeasuresSequence)  # may be the source's own sequence
    meas[0].SpacingBetweenSlices = format_number_as_ds(gap)
    shared.PixelMeasuresSequence = meas


def _source_grid(
    datasets: Sequence[Dataset], out: Path
) -> tuple[list[int], npt.NDArray[np.float64], tuple[int, ...], bool]:
    """Slice order (index into source frames per k), RAS affine and shape of the source."""
    ignored: list[str] = []
    with _warnings_to(ignored):
        return _source_grid_checked(datasets, out)


def _source_grid_checked(
    datasets: Sequence[Dataset], out: Path
) -> tuple[list[int], npt.NDArray[np.float64], tuple[int, ...], bool]:
    frames: list[_Frame] = []
    multi = len(datasets) == 1 and _int_value(datasets[0], "NumberOfFrames", out, 1) > 1
    try:
        if multi:
            frames = _frames(datasets[0], out, _int_value(datasets[0], "NumberOfFrames", out, 1))
        else:
            for ds in datasets:
                frames.extend(_frames(ds, out, 1))
        rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
        st = _stack(
            frames,
            out,
            rows=rows,
            cols=cols,
            slice_spacing_hint=_spacing_hint(datasets[0]),
            what="source slices",
        )
    except ImageReadError as e:
        raise ImageWriteError(out, f"source series: {e.reason}") from e
    return st.order, lps_to_ras(st.affine_lps), (cols, rows, len(frames)), multi


def _spacing_hint(ds: Dataset) -> float | None:
    v = ds.get("SpacingBetweenSlices")
    try:
        return float(v) if v not in (None, "") and float(v) > 0 else None
    except (TypeError, ValueError):
        return None
