"""Conversions between :class:`~medlens.image.Image` and nibabel images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import GeometryError
from medlens.image import Image

if TYPE_CHECKING:  # pragma: no cover
    import nibabel as nib

__all__ = ["from_nibabel", "nifti_dtype", "to_nibabel"]


def from_nibabel(
    image: nib.spatialimages.SpatialImage, *, meta: dict[str, Any] | None = None
) -> Image:
    """Convert a nibabel image to an :class:`Image`, loading its data.

    The affine is nibabel's ``image.affine`` (sform when its code is set, else
    qform, else the pixdim fallback), already RAS+. Scaling (``scl_slope``,
    ``scl_inter``) is applied. A 4D image's fourth axis becomes the channel axis;
    a 5D NIfTI with one time point and vector intent has its fifth axis used.

    Examples
    --------
    >>> import nibabel as nib
    >>> nimg = nib.Nifti1Image(np.zeros((3, 4, 5, 2), np.float32), np.diag([1.0, 2.0, 3.0, 1.0]))
    >>> img = from_nibabel(nimg)
    >>> img.n_channels, img.spatial_shape
    (2, (3, 4, 5))
    """
    arr = np.asanyarray(image.dataobj)
    if arr.ndim == 5 and arr.shape[3] == 1:
        arr = arr[:, :, :, 0, :]
    channels = False
    if arr.ndim == 4:
        arr = np.moveaxis(arr, -1, 0)
        channels = True
    elif arr.ndim not in (2, 3):
        raise GeometryError(f"cannot convert a nibabel image of shape {arr.shape}")
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    return Image(np.asarray(arr), np.asarray(image.affine, dtype=np.float64),
                 channels=channels, meta=meta)


def nifti_dtype(dtype: np.dtype[Any], array: np.ndarray) -> np.dtype[Any]:
    """The dtype an array is stored with in NIfTI.

    bool becomes uint8, float16 float32, int64 (uint64) int32 (uint32) when the
    values fit; every other dtype is kept.

    Parameters
    ----------
    dtype : numpy.dtype
        The array's dtype.
    array : numpy.ndarray
        The values (their range decides for 64-bit integers).

    Returns
    -------
    numpy.dtype
    """
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype in (np.int64, np.uint64):
        # nibabel refuses 64-bit integers without an explicit choice; keep 32 bits when the
        # values fit (most readers cannot handle int64 NIfTI), else keep 64 bits.
        cand = np.int32 if dtype == np.int64 else np.uint32
        if array.size == 0:
            return np.dtype(cand)
        info = np.iinfo(cand)
        if info.min <= int(array.min()) and int(array.max()) <= info.max:
            return np.dtype(cand)
    return np.dtype(dtype)


def to_nibabel(image: Image) -> nib.Nifti1Image:
    """Convert an :class:`Image` to a ``nibabel.Nifti1Image``.

    Channels go to the fourth axis; qform and sform are both set to the affine with
    code 1 (scanner); units are mm. A 2D image is stored with a third axis of size 1.

    Examples
    --------
    >>> img = Image(np.ones((2, 3, 4), bool), np.diag([0.5, 0.5, 2.0, 1.0]))
    >>> nimg = to_nibabel(img)
    >>> nimg.get_data_dtype(), nimg.header.get_zooms()
    (dtype('uint8'), (np.float32(0.5), np.float32(0.5), np.float32(2.0)))
    """
    import nibabel as nib

    arr = image.array
    if image.channels:
        arr = np.moveaxis(arr, 0, -1)
    if image.spatial_ndim == 2:
        arr = arr[:, :, np.newaxis] if not image.channels else arr[:, :, np.newaxis, :]
    dtype = nifti_dtype(arr.dtype, arr)
    arr = np.asarray(arr).astype(dtype, copy=False)
    out = nib.Nifti1Image(arr, image.affine, dtype=dtype)
    out.set_qform(image.affine, code=1)
    out.set_sform(image.affine, code=1)
    out.header.set_xyzt_units("mm", "sec")
    out.header.set_data_dtype(dtype)
    return out
