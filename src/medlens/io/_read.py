"""``read_image`` and ``write_image``: one entry point per direction for every format."""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from medlens._atomic import atomic_path, full_suffix
from medlens.errors import GeometryError
from medlens.image import Image
from medlens.io._errors import ImageReadError, ImageWriteError, UnsupportedFormatError

__all__ = ["ITK_SUFFIXES", "NIBABEL_ONLY_SUFFIXES", "NIFTI_SUFFIXES", "read_image", "write_image"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NIBABEL_ONLY_SUFFIXES = (".mgz", ".mgh")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_2D_ONLY = (".png", ".jpg", ".jpeg", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", "")


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_image(path: str | os.PathLike[str], *, series_uid: str | None = None) -> Image:
    """Read an image file or a DICOM series folder into an :class:`Image`.

    Supported: NIfTI-1/2 (``.nii``, ``.nii.gz``) and FreeSurfer MGH (``.mgz``,
    ``.mgh``) via nibabel, NRRD (``.nrrd``,
    ``.nhdr``), MetaImage (``.mha``, ``.mhd``), PNG / TIFF / JPEG / BMP (2D), all via
    SimpleITK; a single DICOM file (including enhanced multi-frame CT/MR and
    DICOM-SEG, via pydicom); a folder holding one DICOM series.

    Parameters
    ----------
    path : str or os.PathLike
        File, or folder of DICOM files.
    series_uid : str, optional
        For a folder holding several series, the SeriesInstanceUID to read.

    Returns
    -------
    Image
        Voxel values with their RAS+ geometry. CT values are in HU (rescale
        slope and intercept applied).

    Raises
    ------
    ImageReadError
        If the path does not exist, the file is truncated or corrupt, the format
        or transfer syntax is not supported, the DICOM object holds no image, or
        the geometry is invalid (e.g. zero pixel spacing). The message names the
        file and the reason. :class:`DicomSeriesError` (a subclass) when a folder
        holds several series or its slices are not evenly spaced.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from medlens.io import write_image
    >>> d = tempfile.mkdtemp()
    >>> write_image(Image(np.eye(3, dtype=np.int16)[..., None]), f"{d}/eye.nrrd")
    >>> read_image(f"{d}/eye.nrrd").array[..., 0].tolist()
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ImageReadError(p, "no such file or directory")
    if series_uid is not None and not p.is_dir():
        raise ImageReadError(p, "series_uid= picks a series from a folder; this is a file")
    try:
        if p.is_dir():
            from medlens.io._dicom import read_dicom_series

            return read_dicom_series(p, series_uid=series_uid)
        suffix = full_suffix(p)
        if suffix in NIFTI_SUFFIXES + NIBABEL_ONLY_SUFFIXES:
            return _read_nifti(p)
        if suffix in ITK_SUFFIXES:
            return _read_itk(p)
        if suffix in DICOM_SUFFIXES or _is_dicom_file(p):
            from medlens.io._dicom import read_dicom_file

            return read_dicom_file(p)
    except GeometryError as e:
        raise ImageReadError(p, f"invalid geometry: {e}") from e
    except MemoryError as e:
        raise ImageReadError(p, "not enough memory to load the image") from e
    raise UnsupportedFormatError(
        p,
        f"unknown image format {suffix!r}; expected one of "
        f"{', '.join(NIFTI_SUFFIXES + ITK_SUFFIXES)}, a DICOM file or a DICOM folder",
    )


def _read_nifti(path: Path) -> Image:
    import nibabel as nib

    from medlens.io._nibabel import from_nibabel

    try:
        nimg = nib.load(path)
        if getattr(nimg, "affine", None) is None:
            raise ImageReadError(
                path, f"{type(nimg).__name__} has no voxel-to-world affine (not a spatial image)"
            )
        fmt = "nifti" if full_suffix(path) in NIFTI_SUFFIXES else "mgh"
        if fmt == "nifti":
            _check_raw_pixdim(path, nimg)
        return from_nibabel(nimg, meta={"format": fmt})  # type: ignore[arg-type]
    except ImageReadError:
        raise
    except GeometryError as e:
        raise ImageReadError(path, f"invalid geometry: {e}") from e
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError) as e:
        raise ImageReadError(path, f"not a valid NIfTI file ({e})") from e
    except (EOFError, zlib.error, OSError, ValueError) as e:
        raise ImageReadError(path, f"truncated or corrupt NIfTI file ({e})") from e


def _check_raw_pixdim(path: Path, nimg: Any) -> None:
    """Reject zero voxel sizes that nibabel would silently replace by 1 mm."""
    import nibabel as nib

    header = nimg.header
    if int(header.get("sform_code", 0)) > 0:
        return  # the affine comes from the sform; pixdim does not enter it
    with nib.openers.ImageOpener(str(path)) as f:
        raw = type(header).from_fileobj(f, check=False)
    ndim = min(int(raw["dim"][0]), 3)
    pixdim = [float(v) for v in raw["pixdim"][1 : ndim + 1]]
    if any(v == 0.0 or not np.isfinite(v) for v in pixdim):
        raise ImageReadError(path, f"invalid geometry: zero or non-finite voxel size {pixdim}")


def _read_itk(path: Path) -> Image:
    import SimpleITK as sitk

    from medlens.io._sitk import from_sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if full_suffix(path) in (".mha", ".mhd"):
        problem = _metaimage_problem(path)
        if problem:
            raise ImageReadError(path, problem)
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK would print to stderr itself
    try:
        simg = reader.Execute()
    except RuntimeError as e:
        raise ImageReadError(path, f"SimpleITK cannot read it: {_itk_reason(e)}") from e
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)
    meta: dict[str, Any] = {"format": full_suffix(path).lstrip(".")}
    img = from_sitk(simg, meta=meta)
    if full_suffix(path) in _2D_ONLY and img.spatial_ndim == 3 and img.spatial_shape[2] == 1:
        img = Image(img.array[..., 0], img.affine, channels=img.channels, meta=meta)
    return img


_MET_BYTES = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_USHORT": 2, "MET_SHORT": 2, "MET_UINT": 4,
              "MET_INT": 4, "MET_ULONG": 8, "MET_LONG": 8, "MET_ULONG_LONG": 8,
              "MET_LONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def _metaimage_problem(path: Path) -> str | None:
    """Say why a MetaImage's data cannot be complete (missing or short data file), if so."""
    try:
        with open(path, "rb") as f:
            head = f.read(16384)
    except OSError as e:
        return f"cannot open: {e.strerror}"
    fields: dict[str, str] = {}
    end = 0
    for line in head.split(b"\n"):
        end += len(line) + 1
        key, sep, value = line.decode("latin-1").partition("=")
        if not sep:
            return None  # not a MetaImage header we understand; let ITK decide
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    else:
        return None
    try:
        dims = [int(v) for v in fields.get("DimSize", "").split()]
        nbytes = _MET_BYTES[fields.get("ElementType", "")]
    except (KeyError, ValueError):
        return None
    ncomp = int(fields.get("ElementNumberOfChannels", "1") or 1)
    if fields.get("CompressedData", "False").lower() == "true" or not dims:
        expected = None
    else:
        expected = int(np.prod(dims)) * nbytes * ncomp
    datafile = fields.get("ElementDataFile", "")
    if datafile == "LOCAL":
        actual = path.stat().st_size - end
        where = "the file"
    elif datafile and " " not in datafile and datafile.upper() != "LIST":
        target = path.parent / datafile
        if not target.exists():
            return f"its data file {datafile!r} (ElementDataFile) does not exist"
        actual = target.stat().st_size
        where = f"data file {datafile!r}"
    else:
        return None
    if expected is not None and actual < expected:
        return f"truncated data: {where} holds {actual} bytes of the {expected} expected"
    return None


def _itk_reason(err: RuntimeError) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith(("description:", "itk::error")):
            return ln.split(":", 1)[-1].strip()
    return lines[-1] if lines else "unknown error"


def write_image(image: Image, path: str | os.PathLike[str]) -> None:
    """Write an :class:`Image` atomically; the format follows the file name.

    NIfTI (``.nii``, ``.nii.gz``) is written with nibabel (qform and sform set,
    code 1), everything else with SimpleITK (NRRD, MetaImage, PNG/TIFF for 2D).
    The file appears only once it is complete (temporary name, then rename).

    Parameters
    ----------
    image : Image
        The image to write. float16 is stored as float32 outside NIfTI; complex
        values only in NIfTI.
    path : str or os.PathLike
        Output file; its suffix picks the format. PNG, JPEG and BMP store no
        geometry (spacing, origin, direction are lost); use NRRD or MHA for 2D
        images whose geometry matters.

    Raises
    ------
    ImageWriteError
        If the format is unknown, the image cannot be stored in it (e.g. a 3D
        volume as PNG), or the file system refuses. The message names ``path``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> img = Image(np.zeros((4, 4, 2), np.int16), np.diag([0.5, 0.5, 3.0, 1.0]))
    >>> write_image(img, f"{d}/ct.nii.gz")
    >>> read_image(f"{d}/ct.nii.gz").spacing
    (0.5, 0.5, 3.0)
    """
    p = Path(path).expanduser()
    suffix = full_suffix(p)
    if p.is_dir():
        raise ImageWriteError(p, "is a directory; give a file name such as out.nii.gz")
    if suffix in (".dcm", ""):
        raise ImageWriteError(
            p, "write DICOM with medlens.io.write_dicom_seg or write_dicom_series, not write_image"
        )
    if suffix not in NIFTI_SUFFIXES + ITK_SUFFIXES:
        raise ImageWriteError(p, f"unknown image format {suffix!r}")
    if suffix in _2D_ONLY and image.spatial_ndim != 2:
        raise ImageWriteError(p, f"{suffix} holds 2D images; this one is {image.spatial_shape}")
    if np.iscomplexobj(image.array) and suffix not in NIFTI_SUFFIXES:
        raise ImageWriteError(
            p, f"{suffix} cannot hold complex values; write the magnitude, or NIfTI"
        )
    if image.dtype == np.float16 and suffix not in NIFTI_SUFFIXES:
        image = image.with_array(image.array.astype(np.float32))
    try:
        with atomic_path(p) as tmp:
            if suffix in NIFTI_SUFFIXES:
                import nibabel as nib

                from medlens.io._nibabel import to_nibabel

                nib.save(to_nibabel(image), tmp)
            else:
                import SimpleITK as sitk

                from medlens.io._sitk import to_sitk

                simg = to_sitk(image)
                sitk.WriteImage(simg, str(tmp), useCompression=suffix in (".nrrd", ".mha"))
    except GeometryError as e:
        raise ImageWriteError(p, str(e)) from e
    except OSError as e:
        raise ImageWriteError(p, e.strerror or str(e)) from e
    except (RuntimeError, TypeError, ValueError) as e:
        msg = str(e).strip()
        raise ImageWriteError(p, _itk_reason(e) if isinstance(e, RuntimeError) else msg) from e


