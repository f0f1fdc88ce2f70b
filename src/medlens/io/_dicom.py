"""DICOM images with pydicom: single files, enhanced multi-frame objects and series folders.

Geometry comes from Image Position / Orientation (Patient) and Pixel Spacing, in
LPS+ as DICOM stores it, and leaves this module in RAS+ (through
:mod:`medlens.io._lps`). Array axes follow the affine's columns: ``i`` is the
column index within a frame, ``j`` the row index, ``k`` the slice (frame) index,
slices ordered by position along the slice normal (the cross product of the row
and column direction cosines). See ``docs/dicom.md`` for the full rules.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from medlens.errors import GeometryError
from medlens.image import Image
from medlens.io._errors import DicomSeriesError, ImageReadError, UnsupportedFormatError
from medlens.io._lps import lps_to_ras

if TYPE_CHECKING:  # pragma: no cover
    from pydicom.dataset import Dataset

__all__ = [
    "PHI_KEYWORDS",
    "SLICE_SPACING_RTOL",
    "DicomSeries",
    "list_dicom_series",
    "read_dicom_file",
    "read_dicom_series",
]

SLICE_SPACING_RTOL = 0.01
"""Slices count as evenly spaced when every gap is within 1 % of the median gap.

Positions are stored as decimal strings (typically 6-8 significant digits), so
rounding moves a slice by well under 0.01 mm, while a missing slice changes a
gap by 100 %.
"""

_POSITION_ATOL = 1e-3  # mm; slices closer than this share a position
_ORIENTATION_ATOL = 1e-4  # direction cosines that differ by less are the same

PHI_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientAge",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientMotherBirthName",
    "MilitaryRank",
    "EthnicGroup",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "ContentDate",
    "ContentTime",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "StationName",
    "DeviceSerialNumber",
)
"""Attributes that can identify a patient; kept only under ``meta["phi"]``."""

# SOP classes whose objects hold no image even if a reader could make one up.
_NON_IMAGE_HINTS = {
    "RTPLAN": "an RT plan",
    "RTSTRUCT": "an RT structure set (contours, not a voxel image)",
    "SR": "a structured report",
    "ECG": "a waveform",
    "PR": "a presentation state",
    "KO": "a key object selection",
}


# ---------------------------------------------------------------------------
# Reading datasets
# ---------------------------------------------------------------------------


def _read_dataset(path: Path, *, stop_before_pixels: bool = False) -> tuple[Dataset, list[str]]:
    """``pydicom.dcmread`` with every failure turned into an :class:`ImageReadError`."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    caught: list[str] = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
            except InvalidDicomError:
                # No preamble / 'DICM' prefix: accept a bare data set only if it parses
                # into something with an SOP class (checked by the callers).
                ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
                if "SOPClassUID" not in ds and "PixelData" not in ds:
                    raise ImageReadError(
                        path,
                        "not a DICOM file: no 'DICM' header and no readable DICOM data set",
                    ) from None
        except ImageReadError:
            raise
        except (OSError, EOFError) as e:
            raise ImageReadError(path, f"cannot read the file ({e})") from e
        except MemoryError:
            raise
        except Exception as e:  # pydicom raises many types for broken files
            raise ImageReadError(path, f"corrupt DICOM file ({type(e).__name__}: {e})") from e
        caught = [str(x.message) for x in w]
    truncated = [m for m in caught if "End of file reached" in m or "unexpected end" in m.lower()]
    if truncated:
        raise ImageReadError(path, f"truncated DICOM file ({truncated[0].split(' in file ')[0]})")
    if len(ds) == 0:
        raise ImageReadError(path, "no DICOM data elements could be read (truncated or empty)")
    return ds, caught


def _kind(ds: Dataset) -> str:
    """Short name of the object's SOP class, or its modality."""
    uid = ds.get("SOPClassUID")
    if uid is not None:
        try:
            return str(uid.name)
        except Exception:  # pragma: no cover - odd UID values
            return str(uid)
    return str(ds.get("Modality", "unknown object"))


def _is_segmentation(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) in (
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
    )


_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def _is_dicomdir(ds: Dataset) -> bool:
    """Whether ``ds`` is a DICOMDIR (Media Storage Directory): an index, not an image."""
    meta = getattr(ds, "file_meta", None)
    sop = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    return str(sop or "") == _MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds


def _check_has_image(ds: Dataset, path: Path) -> list[str]:
    """Raise unless ``ds`` holds decodable pixel data; return notes for ``meta``."""
    if _is_dicomdir(ds):
        raise UnsupportedFormatError(
            path,
            "a DICOMDIR (Media Storage Directory) is an index of the files on a DICOM "
            f"medium and holds no image; pass its folder instead: {path.parent} "
            "(`medlens info` lists the series there; read_image(folder, series_uid=...) "
            "reads one)",
        )
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    modality = str(ds.get("Modality", ""))
    if not has_pixels:
        what = _NON_IMAGE_HINTS.get(modality)
        kind = _kind(ds)
        if what:
            raise UnsupportedFormatError(path, f"{kind} is {what} and holds no image")
        raise UnsupportedFormatError(path, f"{kind} holds no pixel data")
    note = _ensure_transfer_syntax(ds, path)
    for kw in ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation"):
        if ds.get(kw) in (None, ""):
            raise ImageReadError(path, f"pixel data present but {kw} is missing")
    return [note] if note else []


def _ensure_transfer_syntax(ds: Dataset, path: Path) -> str | None:
    """Check the Transfer Syntax UID; infer it for native pixel data when it is missing.

    A file without (0002,0010) whose data set pydicom could parse has native (not
    encapsulated) pixel data in the encoding pydicom detected; GDCM reads such files
    the same way. Encapsulated (compressed) pixel data cannot be decoded without
    knowing the codec, so that is an error.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import (
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )

    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("TransferSyntaxUID", "")).strip():
        return None
    elem = ds.get("PixelData")
    encapsulated = elem is not None and ds["PixelData"].is_undefined_length
    encoding = getattr(ds, "original_encoding", (None, None))
    if encapsulated or encoding[0] is None:
        raise UnsupportedFormatError(
            path,
            "the file meta information has no Transfer Syntax UID (0002,0010) and the "
            "pixel data is encapsulated (compressed), so its codec is unknown",
        )
    implicit, little = encoding
    ts = (
        ImplicitVRLittleEndian
        if implicit
        else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    )
    if meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts  # in memory only; the file is never modified
    return f"no Transfer Syntax UID in the file meta; inferred {ts.name} from the data set encoding"


def _int_value(ds: Dataset, keyword: str, path: Path, default: int) -> int:
    if keyword not in ds or ds[keyword].value in (None, ""):
        return default
    raw = ds[keyword].value
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ImageReadError(path, f"{keyword} {str(raw)!r} is not an integer") from None
    if value < 1:
        raise ImageReadError(path, f"{keyword} {value} must be positive")
    return value


def _floats(value: Any, n: int, keyword: str, path: Path) -> npt.NDArray[np.float64] | None:
    if value is None or value == "":
        return None
    try:
        seq = list(value) if not isinstance(value, str | bytes) else [value]
        arr = np.array([float(v) for v in seq], dtype=np.float64)
    except (TypeError, ValueError):
        raise ImageReadError(path, f"{keyword} {value!r} is not {n} numbers") from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ImageReadError(path, f"{keyword} {arr.tolist()} is not {n} finite numbers")
    return arr


# ---------------------------------------------------------------------------
# Geometry of frames
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    position: npt.NDArray[np.float64] | None  # LPS mm, centre of the first pixel
    orientation: npt.NDArray[np.float64] | None  # 6 direction cosines (row, column)
    spacing: npt.NDArray[np.float64] | None  # (between rows, between columns) mm
    slope: float
    intercept: float


def _item(seq_parent: Any, keyword: str) -> Any:
    seq = seq_parent.get(keyword) if seq_parent is not None else None
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


def _pixel_spacing(value: Any, keyword: str, path: Path) -> npt.NDArray[np.float64] | None:
    sp = _floats(value, 2, keyword, path)
    if sp is not None and np.any(sp <= 0):
        raise ImageReadError(path, f"{keyword} {sp.tolist()} mm must be positive")
    return sp


def _orientation(value: Any, path: Path) -> npt.NDArray[np.float64] | None:
    iop = _floats(value, 6, "ImageOrientationPatient", path)
    if iop is None:
        return None
    r, c = iop[:3], iop[3:]
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if nr < 1e-6 or nc < 1e-6:
        raise ImageReadError(path, f"ImageOrientationPatient {iop.tolist()} has a zero vector")
    r, c = r / nr, c / nc
    if abs(float(r @ c)) > 1e-3 or abs(nr - 1) > 1e-2 or abs(nc - 1) > 1e-2:
        raise ImageReadError(
            path, f"ImageOrientationPatient {iop.tolist()} is not two orthogonal unit vectors"
        )
    return np.concatenate([r, c])


def _frames(ds: Dataset, path: Path, n_frames: int) -> list[_Frame]:
    """Per-frame position, orientation, spacing and rescale, from wherever the file keeps them."""
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and 0 < len(per_frame) < n_frames:
        raise ImageReadError(
            path,
            f"PerFrameFunctionalGroupsSequence has {len(per_frame)} items for {n_frames} frames",
        )
    if per_frame is not None and len(per_frame) > n_frames:
        # e.g. pydicom's liver_1frame.dcm: pixel data cut to the first frame(s), the
        # functional groups left as they were. Frame f is still described by item f.
        warnings.warn(
            f"PerFrameFunctionalGroupsSequence has {len(per_frame)} items for {n_frames} "
            f"frames; the first {n_frames} are used",
            UserWarning,
            stacklevel=2,
        )
        per_frame = list(per_frame)[:n_frames]
    top_slope, top_intercept = _rescale(ds, path)
    top_spacing = _pixel_spacing(ds.get("PixelSpacing"), "PixelSpacing", path)
    if top_spacing is None and "PixelSpacing" not in ds:
        # Projection radiography (CR, DX, MG ...): spacing at the detector, as GDCM uses it.
        top_spacing = _pixel_spacing(ds.get("ImagerPixelSpacing"), "ImagerPixelSpacing", path)
    top_iop = _orientation(ds.get("ImageOrientationPatient"), path)
    top_ipp = _floats(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", path)

    def group(fg: Any, keyword: str) -> Any:
        item = _item(fg, keyword)
        return item if item is not None else _item(shared, keyword)

    frames = []
    offsets = _frame_offsets(ds, path, n_frames, top_iop)
    for f in range(n_frames):
        fg = per_frame[f] if per_frame else None
        pos_item = group(fg, "PlanePositionSequence")
        ori_item = group(fg, "PlaneOrientationSequence")
        meas_item = group(fg, "PixelMeasuresSequence")
        pvt_item = group(fg, "PixelValueTransformationSequence")
        ipp = (
            _floats(pos_item.get("ImagePositionPatient"), 3, "ImagePositionPatient", path)
            if pos_item is not None
            else None
        )
        iop = _orientation(ori_item.get("ImageOrientationPatient"), path) if ori_item else None
        sp = (
            _pixel_spacing(meas_item.get("PixelSpacing"), "PixelSpacing", path)
            if meas_item is not None
            else None
        )
        slope, intercept = _rescale(pvt_item, path) if pvt_item is not None else (None, None)
        if ipp is None and top_ipp is not None:
            ipp = top_ipp
            if offsets is not None:
                ipp = top_ipp + offsets[f]
        frames.append(
            _Frame(
                position=ipp,
                orientation=iop if iop is not None else top_iop,
                spacing=sp if sp is not None else top_spacing,
                slope=slope if slope is not None else (top_slope or 1.0),
                intercept=intercept if intercept is not None else (top_intercept or 0.0),
            )
        )
    return frames


def _frame_offsets(
    ds: Dataset, path: Path, n_frames: int, iop: npt.NDArray[np.float64] | None
) -> list[npt.NDArray[np.float64]] | None:
    """Offsets of the frames of a classic multi-frame object from its ImagePositionPatient."""
    if n_frames == 1 or iop is None or "PerFrameFunctionalGroupsSequence" in ds:
        return None
    normal = np.cross(iop[:3], iop[3:])
    gfov = ds.get("GridFrameOffsetVector")  # RT dose
    if gfov is not None and gfov != "":
        values = _floats(gfov, n_frames, "GridFrameOffsetVector", path)
        assert values is not None
        return [normal * (v - values[0]) for v in values]
    step = None
    for kw in ("SpacingBetweenSlices", "SliceThickness"):
        v = ds.get(kw)
        if v not in (None, "") and float(v) > 0:
            step = float(v)
            break
    if step is None:
        raise ImageReadError(
            path,
            f"{n_frames} frames share one ImagePositionPatient and neither "
            "GridFrameOffsetVector nor SpacingBetweenSlices says where they lie",
        )
    return [normal * step * f for f in range(n_frames)]


def _rescale(item: Any, path: Path) -> tuple[float | None, float | None]:
    if item is None:
        return None, None
    out: list[float | None] = []
    for kw in ("RescaleSlope", "RescaleIntercept"):
        v = item.get(kw)
        if v in (None, ""):
            out.append(None)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ImageReadError(path, f"{kw} {v!r} is not a number") from None
        if not np.isfinite(f) or (kw == "RescaleSlope" and f == 0):
            raise ImageReadError(path, f"{kw} {v!r} is not a usable value")
        out.append(f)
    return out[0], out[1]


@dataclass(frozen=True)
class _Stack:
    order: list[int]  # frame indices, first to last slice
    affine_lps: npt.NDArray[np.float64]
    positions: list[float]  # along the normal, mm, in slice order
    nonuniform: bool
    tilt_deg: float


def _stack(
    frames: Sequence[_Frame],
    path: Path,
    *,
    rows: int,
    cols: int,
    slice_spacing_hint: float | None,
    allow_nonuniform_spacing: bool = False,
    what: str = "frames",
    error: type[ImageReadError] = ImageReadError,
) -> _Stack:
    """Order frames along the slice normal and build the voxel-to-LPS affine."""
    n = len(frames)
    spacings = {tuple(np.round(f.spacing, 6)) if f.spacing is not None else None for f in frames}
    if len(spacings) > 1:
        raise error(
            path, f"the {what} have different PixelSpacing values: {sorted(map(str, spacings))}"
        )
    sp = frames[0].spacing
    col_sp, row_sp = (1.0, 1.0) if sp is None else (float(sp[1]), float(sp[0]))

    have_pos = [f.position is not None and f.orientation is not None for f in frames]
    if not any(have_pos):
        # No patient geometry (US, CR, SC, stripped enhanced objects): GDCM / SimpleITK
        # put the first pixel at the origin with identity directions; frames 1 mm apart.
        lps = np.diag([col_sp, row_sp, 1.0, 1.0])
        return _Stack(list(range(n)), lps, [float(k) for k in range(n)], False, 0.0)
    if not all(have_pos):
        missing = [i for i, h in enumerate(have_pos) if not h]
        raise error(path, f"{what} {missing[:10]} have no ImagePositionPatient/Orientation")
    ori = np.array([f.orientation for f in frames])
    if np.abs(ori - ori[0]).max() > _ORIENTATION_ATOL:
        distinct = np.unique(np.round(ori, 4), axis=0)
        raise error(
            path,
            f"the {what} have {len(distinct)} different orientations "
            f"(ImageOrientationPatient e.g. {distinct[0].tolist()} and {distinct[1].tolist()}); "
            "a volume needs parallel slices",
        )
    r, c = ori[0][:3], ori[0][3:]
    normal = np.cross(r, c)
    pos = np.array([f.position for f in frames])
    d = pos @ normal
    order = [int(i) for i in np.argsort(d, kind="stable")]
    d_sorted = d[order]
    lps = np.eye(4)
    lps[:3, 0] = r * col_sp
    lps[:3, 1] = c * row_sp
    lps[:3, 3] = pos[order[0]]
    if n == 1:
        step = slice_spacing_hint if slice_spacing_hint and slice_spacing_hint > 0 else 1.0
        lps[:3, 2] = normal * step
        return _Stack(order, lps, [float(d_sorted[0])], False, 0.0)
    gaps = np.diff(d_sorted)
    if np.any(gaps < _POSITION_ATOL):
        dup = int(np.sum(gaps < _POSITION_ATOL))
        raise error(
            path,
            f"{dup + 1 if dup == 1 else dup} {what} share a position along the slice normal "
            "(several echoes, time points or acquisitions in one series?); "
            "medlens reads one volume with one slice per position",
        )
    median = float(np.median(gaps))
    nonuniform = bool(np.any(np.abs(gaps - median) > SLICE_SPACING_RTOL * median + 1e-4))
    if nonuniform and not allow_nonuniform_spacing:
        values, counts = np.unique(np.round(gaps, 3), return_counts=True)
        found = ", ".join(f"{v:g} mm (x{c})" for v, c in zip(values, counts, strict=True))
        worst = int(np.argmax(np.abs(gaps - median)))
        raise DicomSeriesError(
            path,
            f"slice spacing is not uniform: gaps between consecutive {what} along the normal "
            f"are {found}, the most deviant ({gaps[worst]:g} mm) between sorted {what} "
            f"{worst} and {worst + 1} (tolerance {SLICE_SPACING_RTOL:.0%} of the median "
            f"{median:g} mm); missing slices? read_dicom_series(..., "
            "allow_nonuniform_spacing=True) places them on a grid with the mean spacing",
        )
    step_vec = (pos[order[-1]] - pos[order[0]]) / (n - 1)
    along = float(step_vec @ normal)
    residual = step_vec - normal * along
    tilt = float(np.degrees(np.arctan2(np.linalg.norm(residual), along)))
    if np.linalg.norm(residual) <= 1e-4 * max(abs(along), 1e-9) or nonuniform:
        # Slices stacked straight along the normal: keep the affine orthogonal.
        lps[:3, 2] = normal * along
        tilt = 0.0
    else:
        # Gantry tilt: the slices are sheared; keep every voxel at its true position.
        lps[:3, 2] = step_vec
    if not nonuniform:
        predicted = pos[order[0]] + np.outer(np.arange(n), lps[:3, 2])
        dev = float(np.abs(pos[order] - predicted).max())
        if dev > SLICE_SPACING_RTOL * abs(along) + 1e-3:
            raise error(
                path,
                f"the {what} do not lie on a straight line: a slice is {dev:.3g} mm off the "
                "line through the first and last one",
            )
    return _Stack(order, lps, [float(v) for v in d_sorted], nonuniform, tilt)


# ---------------------------------------------------------------------------
# Pixel data
# ---------------------------------------------------------------------------


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    """Decoded frames, shape (F, rows, cols) or (F, rows, cols, 3) RGB."""
    from pydicom.pixels import apply_color_lut, get_decoder
    from pydicom.uid import UID

    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise UnsupportedFormatError(
            path, f"transfer syntax {ts} ({ts.name}) is not supported (no pixel data decoder)"
        ) from None
    if ts.is_compressed and not decoder.is_available:
        raise UnsupportedFormatError(
            path, f"no decoder plugin installed for transfer syntax {ts} ({ts.name})"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            arr = ds.pixel_array
        except ValueError as e:
            msg = str(e)
            if "less than expected" in msg or "too short" in msg or "truncated" in msg:
                raise ImageReadError(path, f"truncated pixel data ({msg.split(' - ')[0]})") from e
            raise ImageReadError(path, f"cannot decode the pixel data ({msg})") from e
        except (RuntimeError, AttributeError, TypeError, KeyError, NotImplementedError) as e:
            first = str(e).strip().splitlines()
            detail = " ".join(ln.strip() for ln in first[:3])
            raise ImageReadError(path, f"cannot decode the {ts.name} pixel data ({detail})") from e
        except Exception as e:
            raise ImageReadError(
                path, f"cannot decode the pixel data ({type(e).__name__}: {e})"
            ) from e
        pi = str(ds.get("PhotometricInterpretation", "")).strip()
        if pi == "MONOCHROME1":
            arr = _invert_monochrome1(arr, ds)
        if pi == "PALETTE COLOR":
            try:
                arr = apply_color_lut(arr, ds)
            except Exception as e:
                raise ImageReadError(path, f"cannot apply the palette colour table ({e})") from e
    n_frames = _int_value(ds, "NumberOfFrames", path, 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    color = arr.ndim == (4 if n_frames > 1 else 3) and arr.shape[-1] in (3, 4)
    if pi == "PALETTE COLOR" or spp > 1:
        color = True
    if n_frames == 1 and arr.ndim == (3 if color else 2):
        arr = arr[np.newaxis]
    expected = (n_frames, int(ds.Rows), int(ds.Columns))
    if tuple(arr.shape[:3]) != expected:
        raise ImageReadError(
            path,
            f"decoded pixel data has shape {arr.shape}, expected frames x rows x cols {expected}",
        )
    if arr.size == 0:
        raise ImageReadError(path, "the pixel data is empty")
    if not arr.dtype.isnative:  # big-endian transfer syntaxes
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _invert_monochrome1(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Map MONOCHROME1 (low = white) to MONOCHROME2 over the BitsStored range, as ITK does."""
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
    if np.issubdtype(arr.dtype, np.signedinteger):
        return (-1 - arr.astype(np.int64)).astype(arr.dtype)
    top = (1 << bits) - 1
    return (top - arr.astype(np.int64)).astype(arr.dtype)


def _apply_rescale(
    arr: np.ndarray, slopes: Sequence[float], intercepts: Sequence[float]
) -> np.ndarray:
    """Apply per-frame slope / intercept on axis 0; integer output when exact, else float32.

    Works frame by frame so that a large volume needs no 64-bit temporary copy.

    Examples
    --------
    >>> raw = np.array([[[0, 1000]], [[24, 3000]]], dtype=np.uint16)
    >>> hu = _apply_rescale(raw, [1, 1], [-1024, -1024])
    >>> hu.tolist(), hu.dtype
    ([[[-1024, -24]], [[-1000, 1976]]], dtype('int16'))
    >>> _apply_rescale(raw, [0.5, 2.0], [0, 0]).tolist()
    [[[0.0, 500.0]], [[48.0, 6000.0]]]
    """
    s = np.asarray(slopes, dtype=np.float64)
    b = np.asarray(intercepts, dtype=np.float64)
    if np.all(s == 1.0) and np.all(b == 0.0):
        return arr
    dtype: type[np.generic] = np.float32
    if (
        np.all(s == np.round(s))
        and np.all(b == np.round(b))
        and np.issubdtype(arr.dtype, np.integer)
    ):
        lo = float(arr.min()) * s + b
        hi = float(arr.max()) * s + b
        lo_v, hi_v = float(np.minimum(lo, hi).min()), float(np.maximum(lo, hi).max())
        for dt in (np.int16, np.int32):
            info = np.iinfo(dt)
            if info.min <= lo_v and hi_v <= info.max:
                dtype = dt
                break
    out = np.empty(arr.shape, dtype=dtype)
    for f in range(arr.shape[0]):
        if dtype is np.float32:
            out[f] = arr[f].astype(np.float64) * s[f] + b[f]
        else:
            out[f] = arr[f].astype(np.int64) * int(s[f]) + int(b[f])
    return out


# ---------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    from pydicom.multival import MultiValue
    from pydicom.valuerep import PersonName

    if value is None:
        return None
    if isinstance(value, MultiValue | list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if np.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


_META_KEYWORDS = {
    "modality": "Modality",
    "sop_class_uid": "SOPClassUID",
    "sop_instance_uid": "SOPInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
    "study_instance_uid": "StudyInstanceUID",
    "frame_of_reference_uid": "FrameOfReferenceUID",
    "series_number": "SeriesNumber",
    "series_description": "SeriesDescription",
    "study_description": "StudyDescription",
    "protocol_name": "ProtocolName",
    "body_part_examined": "BodyPartExamined",
    "image_type": "ImageType",
    "manufacturer": "Manufacturer",
    "manufacturer_model_name": "ManufacturerModelName",
    "photometric_interpretation": "PhotometricInterpretation",
    "bits_stored": "BitsStored",
    "slice_thickness": "SliceThickness",
    "patient_position": "PatientPosition",
    "rescale_type": "RescaleType",
}


def _meta(ds: Dataset, path: Path, warnings_seen: Sequence[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"format": "dicom", "sop_class": _kind(ds)}
    for key, kw in _META_KEYWORDS.items():
        if kw in ds:
            try:
                value = ds[kw].value
            except Exception:  # pragma: no cover - broken value
                continue
            if value not in (None, ""):
                meta[key] = _jsonable(value)
    for key in ("slice_thickness",):
        if key in meta:
            try:
                meta[key] = float(meta[key])
            except (TypeError, ValueError):
                del meta[key]
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is not None:
        meta["transfer_syntax"] = f"{ts} ({ts.name})"
    phi: dict[str, Any] = {}
    for kw in PHI_KEYWORDS:
        if kw in ds:
            try:
                v = _jsonable(ds[kw].value)
            except Exception:  # pragma: no cover
                continue
            if v not in (None, "", []):
                phi[kw] = v
    meta["phi"] = phi
    if warnings_seen:
        # pydicom's warnings quote offending values, which may be identifiers.
        secrets = {str(v) for v in phi.values() if len(str(v)) >= 2}
        secrets |= {str(x) for v in phi.values() if isinstance(v, list) for x in v}
        cleaned = []
        for w in warnings_seen:
            text = w.split(" in file ")[0][:200]
            for secret in sorted(secrets, key=len, reverse=True):
                text = text.replace(secret, "<phi>")
            cleaned.append(text)
        meta["read_warnings"] = cleaned
    return meta


def _finish_meta(
    meta: dict[str, Any],
    frames: Sequence[_Frame],
    stack: _Stack,
    *,
    units: str | None,
    has_geometry: bool,
) -> dict[str, Any]:
    slopes = sorted({f.slope for f in frames})
    intercepts = sorted({f.intercept for f in frames})
    meta["rescale_slope"] = slopes[0] if len(slopes) == 1 else slopes
    meta["rescale_intercept"] = intercepts[0] if len(intercepts) == 1 else intercepts
    if units:
        meta["units"] = units
    meta["has_patient_geometry"] = has_geometry
    if stack.nonuniform:
        meta["nonuniform_spacing"] = True
        meta["slice_positions_mm"] = [round(v, 6) for v in stack.positions]
    if stack.tilt_deg:
        meta["gantry_tilt_deg"] = round(stack.tilt_deg, 4)
    return meta


def _units(ds: Dataset) -> str | None:
    modality = str(ds.get("Modality", ""))
    rtype = str(ds.get("RescaleType", "")).strip()
    if modality == "CT" and rtype in ("", "HU"):
        return "HU"
    if modality == "RTDOSE":
        return str(ds.get("DoseUnits", "GY")).strip().replace("GY", "Gy") or None
    if modality == "PT":
        return str(ds.get("Units", "")).strip() or None
    if rtype and rtype != "US":
        return rtype
    return None


# ---------------------------------------------------------------------------
# Public readers
# ---------------------------------------------------------------------------


def read_dicom_file(path: str | os.PathLike[str]) -> Image:
    """Read one DICOM file: a single frame, a classic multi-frame or an enhanced CT/MR object.

    A DICOM-SEG file is handed to :func:`medlens.io.read_dicom_seg`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    Image
        Values after the modality rescale (slope / intercept, per frame for enhanced
        objects; CT in HU; RT dose times DoseGridScaling, in its DoseUnits), as the
        stored integer type when no rescale applies, ``int16`` / ``int32`` when the
        rescale is exact in integers, float32 otherwise. Colour images (RGB, YBR
        converted to RGB, palette colour) are channels first, ``(3, I, J[, K])``.
        MONOCHROME1 (low values white) is turned into MONOCHROME2 by
        ``2**BitsStored - 1 - value`` before the rescale, as SimpleITK / ITK do;
        ``meta["photometric_interpretation"]`` still says MONOCHROME1.

        Geometry: a frame positioned in the patient (Image Position / Orientation
        (Patient), in the top level or the functional groups) gives a 3D image, one
        slice per frame, ordered along the slice normal. A single frame without a
        patient position (US, CR, DX, secondary capture) gives a 2D image with the
        first pixel at the origin, axes along -x and -y of RAS (LPS +x, +y) and spacing
        from PixelSpacing, else ImagerPixelSpacing (projection radiographs: at the
        detector, not corrected for magnification), else 1 mm, exactly as SimpleITK /
        GDCM report it; several such frames (cine loops) are stacked 1 mm apart,
        again as SimpleITK does.

    Raises
    ------
    ImageReadError
        The file is truncated or corrupt, holds no image (RT plan, RT structure set,
        SR, waveform ...), lacks or uses an unsupported transfer syntax, or has
        invalid geometry (zero or negative pixel spacing, broken orientation). The
        message names the file and the reason.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> img = read_dicom_file(get_testdata_file("CT_small.dcm", download=False))
    >>> img.spatial_shape, img.spacing, img.meta["units"]
    ((128, 128, 1), (0.661468, 0.661468, 5.0), 'HU')
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(p, "no such file")
    ds, seen = _read_dataset(p)
    if _is_segmentation(ds):
        from medlens.io._dicom_seg import read_dicom_seg

        return read_dicom_seg(p)
    with _warnings_to(seen):
        return _read_file(p, ds, seen)


@contextlib.contextmanager
def _warnings_to(sink: list[str]) -> Iterator[None]:
    """Collect warnings (pydicom's value checks) into ``sink`` instead of raising them."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            sink.extend(str(x.message) for x in w)


def _read_file(p: Path, ds: Dataset, seen: list[str]) -> Image:
    notes = _check_has_image(ds, p)
    n_frames = _int_value(ds, "NumberOfFrames", p, 1)
    frames = _frames(ds, p, n_frames)
    arr = _decode(ds, p)
    color = arr.ndim == 4
    has_geometry = any(f.position is not None and f.orientation is not None for f in frames)
    hint = _slice_spacing_hint(ds)
    stack = _stack(frames, p, rows=int(ds.Rows), cols=int(ds.Columns), slice_spacing_hint=hint)
    arr = arr[stack.order]
    frames = [frames[i] for i in stack.order]
    frames = _dose_scaling(ds, p, frames)
    if not color:
        arr = _apply_rescale(arr, [f.slope for f in frames], [f.intercept for f in frames])
    meta = _meta(ds, p, [*notes, *seen])
    meta["n_instances"] = 1
    meta["n_frames"] = n_frames
    meta = _finish_meta(
        meta, frames, stack, units=None if color else _units(ds), has_geometry=has_geometry
    )
    keep_2d = not has_geometry and n_frames == 1
    return _to_image(arr, stack.affine_lps, p, color=color, keep_2d=keep_2d, meta=meta)


def _dose_scaling(ds: Dataset, path: Path, frames: list[_Frame]) -> list[_Frame]:
    """RT dose: fold DoseGridScaling into the slope so that values come out in Gy."""
    if ds.get("Modality") != "RTDOSE" or ds.get("DoseGridScaling") in (None, ""):
        return frames
    try:
        scale = float(ds.DoseGridScaling)
    except (TypeError, ValueError):
        raise ImageReadError(
            path, f"DoseGridScaling {ds.DoseGridScaling!r} is not a number"
        ) from None
    return [
        _Frame(f.position, f.orientation, f.spacing, f.slope * scale, f.intercept) for f in frames
    ]


def _slice_spacing_hint(ds: Dataset) -> float | None:
    """Slice step for a single positioned frame: SpacingBetweenSlices, as GDCM takes it."""
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    meas = _item(shared, "PixelMeasuresSequence")
    for item in (meas, ds):
        if item is None:
            continue
        v = item.get("SpacingBetweenSlices")
        try:
            if v not in (None, "") and float(v) > 0:
                return float(v)
        except (TypeError, ValueError):
            continue
    return None


def _to_image(
    arr: np.ndarray,
    affine_lps: npt.NDArray[np.float64],
    path: Path,
    *,
    color: bool,
    keep_2d: bool,
    meta: dict[str, Any],
) -> Image:
    # (F, R, C[, S]) -> (C, R, F) = (i, j, k), channels first. The transpose of the
    # C-ordered frames is a Fortran-ordered view: no copy (nibabel arrays are
    # Fortran-ordered too, and to_sitk's transpose back is then free).
    out = np.transpose(arr, (3, 2, 1, 0)) if color else np.transpose(arr, (2, 1, 0))
    if keep_2d:
        out = out[..., 0]
    try:
        return Image(out, lps_to_ras(affine_lps), channels=color, meta=meta)
    except GeometryError as e:
        raise ImageReadError(path, f"invalid geometry: {e}") from e


# ---------------------------------------------------------------------------
# Series folders
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DicomSeries:
    """One series found in a folder by :func:`list_dicom_series`.

    Attributes
    ----------
    series_instance_uid : str
    series_number : int or None
    series_description : str
    modality : str
    n_files : int
        Number of files (instances) of the series.
    files : tuple of str
        Their paths, in file-name order (not slice order).
    """

    series_instance_uid: str
    series_number: int | None
    series_description: str
    modality: str
    n_files: int
    files: tuple[str, ...]

    def summary(self) -> str:
        """One line: uid, number, description, modality and file count."""
        num = "" if self.series_number is None else f" #{self.series_number}"
        desc = f" {self.series_description!r}" if self.series_description else ""
        return f"{self.series_instance_uid}{num}{desc} {self.modality or '?'}, {self.n_files} files"


def _iter_files(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.startswith("."):
                continue
            yield Path(root) / name


def _scan(folder: Path) -> tuple[dict[str, list[tuple[Path, Dataset]]], list[str]]:
    """Headers of the DICOM image files below ``folder``, grouped by SeriesInstanceUID."""
    import pydicom

    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    skipped: list[str] = []
    for f in _iter_files(folder):
        try:
            with open(f, "rb") as fh:
                head = fh.read(132)
        except OSError:
            continue
        if len(head) < 132 or head[128:132] != b"DICM":
            continue  # not a DICOM Part 10 file (README, DICOMDIR-less data sets, ...)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except MemoryError:
                raise
            except Exception as e:  # any broken header: skip the file, say why if nothing is left
                skipped.append(f"{f.name}: unreadable header ({type(e).__name__})")
                continue
        if _is_dicomdir(ds):
            continue
        uid = str(ds.get("SeriesInstanceUID", "")).strip()
        if not uid:
            skipped.append(f"{f.name}: no SeriesInstanceUID")
            continue
        if "Rows" not in ds and not _is_segmentation(ds):
            skipped.append(f"{f.name}: {_kind(ds)} holds no image")
            continue
        groups.setdefault(uid, []).append((f, ds))
    return groups, skipped


def _series_info(uid: str, items: Sequence[tuple[Path, Dataset]]) -> DicomSeries:
    ds = items[0][1]
    number = ds.get("SeriesNumber")
    try:
        num = int(number) if number not in (None, "") else None
    except (TypeError, ValueError):
        num = None
    return DicomSeries(
        series_instance_uid=uid,
        series_number=num,
        series_description=str(ds.get("SeriesDescription", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        n_files=len(items),
        files=tuple(str(p) for p, _ in items),
    )


def list_dicom_series(folder: str | os.PathLike[str]) -> list[DicomSeries]:
    """List the DICOM image series in a folder and its subfolders.

    Files are grouped by SeriesInstanceUID. Files without the DICOM Part 10 header
    (``DICM`` at byte 128), DICOMDIR files and objects without an image (RT plan,
    SR ...) are skipped.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to search.

    Returns
    -------
    list of DicomSeries
        Sorted by series number, then UID.

    Raises
    ------
    ImageReadError
        If ``folder`` is not a folder.

    Examples
    --------
    >>> import os
    >>> from pydicom.data import get_testdata_file
    >>> mr = os.path.dirname(get_testdata_file("dicomdirtests/98892003/MR700/4467", download=False))
    >>> [(s.modality, s.n_files) for s in list_dicom_series(mr)]
    [('MR', 7)]
    """
    p = Path(folder)
    if not p.is_dir():
        raise ImageReadError(p, "not a folder")
    groups, _ = _scan(p)
    out = [_series_info(uid, items) for uid, items in groups.items()]
    return sorted(
        out, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid)
    )


def read_dicom_series(
    folder: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
    allow_nonuniform_spacing: bool = False,
) -> Image:
    """Read a folder holding one DICOM series (or pick one) into a 3D :class:`Image`.

    Files are grouped by SeriesInstanceUID (subfolders included); slices are
    sorted by their position along the slice normal (the cross product of the
    ImageOrientationPatient row and column cosines), never by InstanceNumber or
    file name. A series of one multi-frame file is read like that file.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder of DICOM files.
    series_uid : str, optional
        The SeriesInstanceUID to read when the folder holds several series.
    allow_nonuniform_spacing : bool, optional
        Accept slices whose gaps differ by more than :data:`SLICE_SPACING_RTOL`
        (1 %) of the median gap. The volume then gets the mean spacing, so slices
        away from the ends sit up to the deviation away from their true position;
        the true positions are in ``meta["slice_positions_mm"]``.

    Returns
    -------
    Image
        ``(I, J, K)`` = (column, row, slice), values rescaled as in
        :func:`read_dicom_file`; ``meta["n_instances"]`` counts the slices.

    Raises
    ------
    DicomSeriesError
        Several series and no ``series_uid`` (the message lists each one's UID,
        number, description, modality and file count), an unknown ``series_uid``,
        slices of different size, pixel spacing or orientation, slices sharing a
        position, or non-uniform slice spacing (the message reports the gaps found).
    ImageReadError
        No DICOM image in the folder, or a slice that cannot be read (the message
        names that file).

    Examples
    --------
    >>> import os
    >>> from pydicom.data import get_testdata_file
    >>> ct = os.path.dirname(get_testdata_file("dicomdirtests/98892001/CT5N/2062", download=False))
    >>> img = read_dicom_series(ct)
    >>> img.spatial_shape, img.spacing, img.orientation, img.meta["n_instances"]
    ((16, 16, 5), (0.488281, 0.488281, 2.5), 'LPS', 5)
    """
    p = Path(folder)
    if not p.is_dir():
        raise ImageReadError(p, "not a folder")
    groups, skipped = _scan(p)
    if not groups:
        extra = f" (skipped: {'; '.join(skipped[:5])})" if skipped else ""
        raise ImageReadError(p, f"no DICOM image files found in the folder{extra}")
    if series_uid is None:
        if len(groups) > 1:
            listing = [_series_info(u, it) for u, it in groups.items()]
            listing.sort(key=lambda s: (s.series_number or 0, s.series_instance_uid))
            lines = "; ".join(s.summary() for s in listing)
            raise DicomSeriesError(
                p,
                f"the folder holds {len(groups)} series; pick one with series_uid= "
                f"(--series-uid): {lines}",
            )
        series_uid = next(iter(groups))
    if series_uid not in groups:
        raise DicomSeriesError(
            p, f"no series with SeriesInstanceUID {series_uid!r}; found {sorted(groups)}"
        )
    items = groups[series_uid]
    if len(items) == 1:
        img = read_dicom_file(items[0][0])
        meta = dict(img.meta)
        meta["n_instances"] = 1
        return Image(img.array, img.affine, channels=img.channels, meta=meta)
    ignored: list[str] = []  # header-level warnings; per-file ones go to meta
    with _warnings_to(ignored):
        return _read_slices(p, items, allow_nonuniform_spacing=allow_nonuniform_spacing)


def _read_slices(
    folder: Path, items: Sequence[tuple[Path, Dataset]], *, allow_nonuniform_spacing: bool
) -> Image:
    multi = [f.name for f, ds in items if _int_value(ds, "NumberOfFrames", f, 1) > 1]
    if multi or any(_is_segmentation(ds) for _, ds in items):
        raise DicomSeriesError(
            folder,
            f"the series mixes {len(items)} files including multi-frame objects "
            f"({', '.join(multi[:5])}); read those files one by one",
        )
    shapes = {
        (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)), int(ds.get("SamplesPerPixel", 1)))
        for _, ds in items
    }
    if len(shapes) > 1:
        raise DicomSeriesError(
            folder, f"the slices differ in size (rows, columns, samples): {sorted(shapes)}"
        )
    frames = []
    for f, ds in items:
        fr = _frames(ds, f, 1)[0]
        if fr.position is None or fr.orientation is None:
            raise DicomSeriesError(
                folder,
                f"{f.name} has no ImagePositionPatient/ImageOrientationPatient, so the "
                f"{len(items)} slices cannot be ordered in space",
            )
        frames.append(fr)
    rows, cols, _spp = shapes.pop()
    stack = _stack(
        frames,
        folder,
        rows=rows,
        cols=cols,
        slice_spacing_hint=None,
        allow_nonuniform_spacing=allow_nonuniform_spacing,
        what="slices",
        error=DicomSeriesError,
    )
    slices = []
    first_ds = None
    seen_all: list[str] = []
    notes: list[str] = []
    for idx in stack.order:
        f, _ = items[idx]
        ds, seen = _read_dataset(f)
        with _warnings_to(seen):
            notes.extend(_check_has_image(ds, f))
            a = _decode(ds, f)
            frames[idx] = _dose_scaling(ds, f, [frames[idx]])[0]
        slices.append(a[0])
        seen_all.extend(seen)
        if first_ds is None:
            first_ds = ds
    assert first_ds is not None
    dtypes = {s.dtype for s in slices}
    arr = np.stack(slices) if len(dtypes) == 1 else np.stack([s.astype(np.float64) for s in slices])
    ordered = [frames[i] for i in stack.order]
    color = arr.ndim == 4
    if not color:
        arr = _apply_rescale(arr, [f.slope for f in ordered], [f.intercept for f in ordered])
    meta = _meta(first_ds, folder, sorted(set(notes + seen_all)))
    meta["n_instances"] = len(items)
    meta = _finish_meta(
        meta, ordered, stack, units=None if color else _units(first_ds), has_geometry=True
    )
    meta.pop("sop_instance_uid", None)
    return _to_image(arr, stack.affine_lps, folder, color=color, keep_2d=False, meta=meta)
