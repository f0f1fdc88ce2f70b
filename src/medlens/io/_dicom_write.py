"""Write an :class:`Image` as a synthetic single-frame DICOM CT or MR series (tests, demos)."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Literal

import numpy as np

from medlens._atomic import atomic_path
from medlens.image import Image
from medlens.io._errors import ImageWriteError
from medlens.io._lps import ras_to_lps

__all__ = ["write_dicom_series"]

_SOP = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}


def _fmt(v: float) -> str:
    """A DS value of at most 16 characters that keeps as many digits as fit."""
    for digits in range(10, 0, -1):
        s = f"{v:.{digits}f}".rstrip("0").rstrip(".")
        if s in ("-0", ""):
            s = "0"
        if len(s) <= 16:
            return s
    return f"{v:.6g}"


def write_dicom_series(
    image: Image,
    folder: str | os.PathLike[str],
    *,
    modality: Literal["CT", "MR"] = "CT",
    series_description: str = "medlens synthetic series",
    series_number: int = 1,
    study_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
) -> list[Path]:
    """Write a 3D image as one single-frame DICOM file per slice.

    The series has fresh synthetic UIDs and no patient identifiers (PatientName and
    PatientID are empty). Values are stored as int16 with RescaleSlope 1 and
    RescaleIntercept 0 when they are integers in the int16 range (CT in HU);
    otherwise they are scaled linearly into int16 and the slope / intercept record
    the scaling (precision ``(max - min) / 65535``). Each file is written
    atomically; file names are ``slice_0000.dcm``, ... in slice order.

    Parameters
    ----------
    image : Image
        Single-channel image with orthogonal axes (DICOM cannot store a shear). A
        2D image becomes one slice.
    folder : str or os.PathLike
        Output folder; it is created and must not already hold ``.dcm`` files.
    modality : {"CT", "MR"}
        SOP class: CT Image Storage or MR Image Storage.
    series_description, series_number : optional
        Written into each file.
    study_instance_uid, frame_of_reference_uid : str, optional
        Reuse these (e.g. to put two series in one study); new ones by default.

    Returns
    -------
    list of pathlib.Path
        The files, first to last slice.

    Raises
    ------
    ImageWriteError
        For multi-channel or sheared images, a bad modality, or a folder that already
        holds DICOM files.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from medlens.io import read_image
    >>> d = tempfile.mkdtemp()
    >>> img = Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([0.7, 0.7, 2.5, 1.0]))
    >>> files = write_dicom_series(img, d)
    >>> back = read_image(d)
    >>> len(files), bool(np.array_equal(back.array, img.array)), back.spacing
    (4, True, (0.7, 0.7, 2.5))
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    out = Path(folder)
    if modality not in _SOP:
        raise ImageWriteError(out, f"modality must be 'CT' or 'MR', got {modality!r}")
    if image.channels:
        raise ImageWriteError(out, "write_dicom_series writes single-channel images")
    arr = np.asarray(image.array)
    if image.spatial_ndim == 2:
        arr = arr[..., np.newaxis]
    lps = ras_to_lps(image.affine)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    if np.abs(direction.T @ direction - np.eye(3)).max() > 1e-6:
        raise ImageWriteError(out, "the image axes are not orthogonal; DICOM slices cannot shear")
    if out.exists() and any(out.glob("*.dcm")):
        raise ImageWriteError(out, "the folder already holds .dcm files")
    out.mkdir(parents=True, exist_ok=True)

    values = arr.astype(np.float64)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if np.all(values == np.round(values)) and lo >= -32768 and hi <= 32767:
        slope, intercept = 1.0, 0.0
        stored = values.astype(np.int16)
    else:
        slope = (hi - lo) / 65535.0 if hi > lo else 1.0
        intercept = lo + 32768.0 * slope
        stored = np.clip(np.round((values - intercept) / slope), -32768, 32767).astype(np.int16)

    study = study_instance_uid or generate_uid()
    series = generate_uid()
    frame_ref = frame_of_reference_uid or generate_uid()
    now = _dt.datetime.now(_dt.UTC)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    row_cos, col_cos = direction[:, 0], direction[:, 1]
    paths = []
    for k in range(arr.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = pydicom.uid.UID(_SOP[modality])
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = modality
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame_ref
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = series_description
        ds.StudyDescription = "medlens synthetic study"
        ds.PatientName = ""
        ds.PatientID = ""
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.StudyID = ""
        ds.StudyDate = date
        ds.StudyTime = time
        ds.ContentDate = date
        ds.ContentTime = time
        ds.Manufacturer = "medlens"
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.ImageOrientationPatient = [_fmt(v) for v in (*row_cos, *col_cos)]
        position = lps[:3, 3] + lps[:3, 2] * k
        ds.ImagePositionPatient = [_fmt(v) for v in position]
        ds.PixelSpacing = [_fmt(spacing[1]), _fmt(spacing[0])]  # rows (j), columns (i)
        ds.SliceThickness = _fmt(spacing[2])
        ds.SpacingBetweenSlices = _fmt(spacing[2])
        ds.SliceLocation = _fmt(float(position @ np.cross(row_cos, col_cos)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = int(arr.shape[1])
        ds.Columns = int(arr.shape[0])
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = _fmt(slope) if slope != 1.0 else "1"
        ds.RescaleIntercept = _fmt(intercept) if intercept != 0.0 else "0"
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.KVP = ""
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        target = out / f"slice_{k:04d}.dcm"
        try:
            with atomic_path(target) as tmp:
                pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        except OSError as e:
            raise ImageWriteError(target, str(e)) from e
        paths.append(target)
    return paths
