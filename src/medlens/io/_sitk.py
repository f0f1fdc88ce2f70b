"""Conversions between :class:`~medlens.image.Image` and SimpleITK images.

SimpleITK's ``GetArrayFromImage`` returns axes in ``(k, j, i)`` order and its
geometry is LPS+; both are turned around here and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import GeometryError
from medlens.image import Image
from medlens.io._lps import lps_to_ras, ras_to_lps

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

__all__ = ["from_sitk", "to_sitk"]


def from_sitk(image: sitk.Image, *, meta: dict[str, Any] | None = None) -> Image:
    """Convert a SimpleITK image to an :class:`Image` (RAS+, axes ``(i, j, k)``).

    Vector pixels (RGB, multi-component) become a channel-first axis. A 4D
    SimpleITK image is read as channels along its fourth axis.

    Parameters
    ----------
    image : SimpleITK.Image
        A 2D, 3D or 4D SimpleITK image.
    meta : dict, optional
        Metadata to attach.

    Returns
    -------
    Image

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> s = sitk.Image([4, 3, 2], sitk.sitkInt16)
    >>> s.SetSpacing((0.5, 0.7, 2.0))
    >>> img = from_sitk(s)
    >>> img.spatial_shape, img.spacing, img.orientation
    ((4, 3, 2), (0.5, 0.7, 2.0), 'LPS')
    """
    import SimpleITK as sitk

    dim = image.GetDimension()
    if dim not in (2, 3, 4):
        raise GeometryError(f"cannot convert a {dim}D SimpleITK image")
    arr = sitk.GetArrayFromImage(image)
    ncomp = image.GetNumberOfComponentsPerPixel()
    channels = False
    if ncomp > 1:
        # (k, j, i, c) -> (c, i, j, k)
        arr = np.moveaxis(arr, -1, 0)
        arr = np.transpose(arr, (0, *range(arr.ndim - 1, 0, -1)))
        channels = True
    else:
        arr = np.transpose(arr, tuple(range(arr.ndim - 1, -1, -1)))
    spacing = np.array(image.GetSpacing(), dtype=np.float64)
    origin = np.array(image.GetOrigin(), dtype=np.float64)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    if dim == 4:
        if channels:
            raise GeometryError("4D images with vector pixels are not supported")
        # (i, j, k, t) -> (t, i, j, k); geometry from the spatial 3x3 block.
        arr = np.moveaxis(arr, -1, 0)
        channels = True
        spacing, origin, direction = spacing[:3], origin[:3], direction[:3, :3]
        dim = 3
    lps = np.eye(4)
    lps[:dim, :dim] = direction * spacing
    lps[:dim, 3] = origin
    return Image(np.ascontiguousarray(arr), lps_to_ras(lps), channels=channels, meta=meta)


def to_sitk(image: Image) -> sitk.Image:
    """Convert an :class:`Image` to a SimpleITK image (LPS+, axes reversed).

    A multi-channel image becomes a vector image; booleans become uint8.

    Raises
    ------
    GeometryError
        If a 2D image does not lie in an axial plane through the origin, which a 2D
        SimpleITK image cannot represent.

    Examples
    --------
    >>> import numpy as np
    >>> img = Image(np.zeros((4, 3, 2), np.int16), np.diag([-0.5, -0.7, 2.0, 1.0]))
    >>> s = to_sitk(img)
    >>> s.GetSize(), s.GetSpacing(), s.GetDirection()
    ((4, 3, 2), (0.5, 0.7, 2.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    """
    import SimpleITK as sitk

    n = image.spatial_ndim
    arr = image.array
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    lps = ras_to_lps(image.affine)
    if n == 2:
        if np.abs(lps[2, :2]).max() > 1e-6 or abs(lps[2, 3]) > 1e-6:
            raise GeometryError(
                "a 2D image outside the axial plane z=0 cannot be stored as a 2D ITK image"
            )
    spacing = np.linalg.norm(lps[:n, :n], axis=0)
    direction = lps[:n, :n] / spacing
    if image.channels:
        # (c, i, j[, k]) -> (k, j, i, c)
        a = np.moveaxis(arr, 0, -1)
        a = np.transpose(a, (*range(n - 1, -1, -1), n))
        out = sitk.GetImageFromArray(np.ascontiguousarray(a), isVector=True)
    else:
        a = np.transpose(arr, tuple(range(n - 1, -1, -1)))
        out = sitk.GetImageFromArray(np.ascontiguousarray(a))
    out.SetSpacing([float(s) for s in spacing])
    out.SetOrigin([float(v) for v in lps[:n, 3]])
    out.SetDirection([float(v) for v in direction.ravel()])
    return out
