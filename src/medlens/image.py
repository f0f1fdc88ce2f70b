"""The :class:`Image` type: an array plus the affine that places it in RAS+ world space.

Every reader in :mod:`medlens.io` returns an :class:`Image`, and every task wing
takes one. The affine is a 4x4 matrix mapping voxel indices ``(i, j, k, 1)`` to
RAS+ world coordinates in millimetres; array axes follow the affine's columns.
A 2D image has array shape ``(I, J)`` and a 4x4 affine whose third column is the
unit normal of its plane. A multi-channel image stores channels first,
``(C, I, J[, K])``, and says so with ``channels=True``.

The geometric operations (:func:`reorient`, :func:`resample`, :func:`crop`,
:func:`pad`) return new images and never modify their input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from medlens.errors import GeometryError, ParameterError

__all__ = [
    "Image",
    "Interpolation",
    "crop",
    "pad",
    "reorient",
    "resample",
]

Interpolation = Literal["linear", "bspline", "nearest", "label"]

_AXIS_LETTERS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


def _check_affine(affine: npt.ArrayLike) -> npt.NDArray[np.float64]:
    a = np.array(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise GeometryError(f"affine must be a 4x4 matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise GeometryError(f"affine has non-finite entries:\n{a}")
    if not np.allclose(a[3], [0.0, 0.0, 0.0, 1.0]):
        raise GeometryError(f"affine's last row must be [0, 0, 0, 1], got {a[3].tolist()}")
    return a


class Image:
    """An array with its geometry in RAS+ world space (mm).

    Parameters
    ----------
    array : numpy.ndarray
        Voxel values, shape ``(I, J)`` or ``(I, J, K)``, or ``(C, I, J[, K])`` with
        ``channels=True``. The array is not copied.
    affine : array_like, optional
        4x4 matrix mapping voxel indices ``(i, j, k, 1)`` to RAS+ world
        coordinates in mm. Defaults to the identity (1 mm isotropic, origin 0).
    channels : bool, optional
        Whether the first array axis holds channels.
    meta : Mapping, optional
        Free-form metadata from the reader (modality, series description ...).
        Patient identifiers, where a reader keeps them at all, live under the
        key ``"phi"`` and are never printed unless asked for.

    Raises
    ------
    GeometryError
        If the affine is not a valid 4x4 matrix, a spacing is zero, or the array
        has neither 2 nor 3 spatial axes.

    Examples
    --------
    >>> import numpy as np
    >>> img = Image(np.zeros((10, 20, 5)), np.diag([-0.8, -0.8, 2.5, 1.0]))
    >>> img.spacing, img.orientation
    ((0.8, 0.8, 2.5), 'LPS')
    >>> img.voxel_to_world([[1, 1, 1]]).round(3).tolist()
    [[-0.8, -0.8, 2.5]]
    """

    __slots__ = ("_affine", "_array", "_channels", "_meta")

    def __init__(
        self,
        array: npt.ArrayLike,
        affine: npt.ArrayLike | None = None,
        *,
        channels: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        arr = np.asanyarray(array)
        spatial_ndim = arr.ndim - (1 if channels else 0)
        if spatial_ndim not in (2, 3):
            raise GeometryError(
                f"an Image has 2 or 3 spatial axes; got array shape {arr.shape} "
                f"with channels={channels}"
            )
        a = _check_affine(np.eye(4) if affine is None else affine)
        norms = np.linalg.norm(a[:3, :3], axis=0)
        if np.any(norms[:spatial_ndim] <= 0) or abs(np.linalg.det(a[:3, :3])) < 1e-12:
            raise GeometryError(
                f"affine has a zero spacing or is singular (column norms {norms.tolist()})"
            )
        a.setflags(write=False)
        self._array = arr
        self._affine = a
        self._channels = bool(channels)
        self._meta: Mapping[str, Any] = MappingProxyType(dict(meta or {}))

    # -- data ---------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        """The voxel values (not a copy)."""
        return self._array

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        """Read-only 4x4 voxel-to-RAS+ matrix (mm)."""
        return self._affine

    @property
    def channels(self) -> bool:
        """Whether the first array axis holds channels."""
        return self._channels

    @property
    def meta(self) -> Mapping[str, Any]:
        """Read-only metadata from the reader."""
        return self._meta

    @property
    def dtype(self) -> np.dtype[Any]:
        """The array's dtype."""
        return self._array.dtype

    # -- shape --------------------------------------------------------------
    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Array shape without the channel axis."""
        return tuple(self._array.shape[1:] if self._channels else self._array.shape)

    @property
    def spatial_ndim(self) -> int:
        """Number of spatial axes, 2 or 3."""
        return len(self.spatial_shape)

    @property
    def n_channels(self) -> int:
        """Number of channels (1 for a single-channel image)."""
        return int(self._array.shape[0]) if self._channels else 1

    # -- geometry -----------------------------------------------------------
    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial array axis."""
        norms = np.linalg.norm(self._affine[:3, : self.spatial_ndim], axis=0)
        return tuple(float(round(n, 12)) for n in norms)

    @property
    def origin(self) -> tuple[float, float, float]:
        """RAS+ world coordinates (mm) of the centre of voxel ``(0, 0, 0)``."""
        x, y, z = (float(v) for v in self._affine[:3, 3])
        return (x, y, z)

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        """3x3 matrix whose columns are the unit RAS+ directions of the array axes."""
        m = self._affine[:3, :3]
        return np.asarray(m / np.linalg.norm(m, axis=0), dtype=np.float64)

    @property
    def orientation(self) -> str:
        """Orientation code: the world direction each array axis points to, e.g. ``"RAS"``.

        For an oblique axis the closest anatomical direction is named. A 2D image's
        code has two letters.
        """
        return orientation_code(self._affine)[: self.spatial_ndim]

    def voxel_to_world(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map voxel indices to RAS+ world coordinates.

        Parameters
        ----------
        points : array_like, shape (N, spatial_ndim) or (spatial_ndim,)
            Continuous voxel indices ``(i, j[, k])``.

        Returns
        -------
        numpy.ndarray, shape (N, 3) or (3,)
            World coordinates in mm.
        """
        p = np.asarray(points, dtype=np.float64)
        single = p.ndim == 1
        p = np.atleast_2d(p)
        if p.shape[1] != self.spatial_ndim:
            raise GeometryError(
                f"expected points with {self.spatial_ndim} voxel coordinates, got shape {p.shape}"
            )
        if self.spatial_ndim == 2:
            p = np.concatenate([p, np.zeros((len(p), 1))], axis=1)
        w = p @ self._affine[:3, :3].T + self._affine[:3, 3]
        return w[0] if single else w

    def world_to_voxel(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map RAS+ world coordinates (mm) to continuous voxel indices.

        Parameters
        ----------
        points : array_like, shape (N, 3) or (3,)
            World coordinates in mm.

        Returns
        -------
        numpy.ndarray, shape (N, spatial_ndim) or (spatial_ndim,)
            Continuous voxel indices; round them to get the nearest voxel. For a 2D
            image the offset along the plane's normal is dropped.
        """
        p = np.asarray(points, dtype=np.float64)
        single = p.ndim == 1
        p = np.atleast_2d(p)
        if p.shape[1] != 3:
            raise GeometryError(f"expected world points with 3 coordinates, got shape {p.shape}")
        inv = np.linalg.inv(self._affine)
        v = (p @ inv[:3, :3].T + inv[:3, 3])[:, : self.spatial_ndim]
        return v[0] if single else v

    # -- construction ---------------------------------------------------------
    def with_array(self, array: npt.ArrayLike, *, channels: bool | None = None) -> Image:
        """Return a new image with another array on the same grid (metadata kept).

        Raises
        ------
        GeometryError
            If the new array's spatial shape differs from this image's.
        """
        ch = self._channels if channels is None else channels
        new = Image(array, self._affine, channels=ch, meta=self._meta)
        if new.spatial_shape != self.spatial_shape:
            raise GeometryError(
                f"new array has spatial shape {new.spatial_shape}, image grid is "
                f"{self.spatial_shape}"
            )
        return new

    def with_affine(self, affine: npt.ArrayLike) -> Image:
        """Return a new image with the same array and another affine."""
        return Image(self._array, affine, channels=self._channels, meta=self._meta)

    def same_grid(self, other: Image, *, atol: float = 1e-4) -> bool:
        """Whether ``other`` has the same spatial shape and affine (within ``atol`` mm)."""
        return self.spatial_shape == other.spatial_shape and bool(
            np.allclose(self._affine, other._affine, atol=atol, rtol=0)
        )

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.4g}" for s in self.spacing)
        ch = f", channels={self.n_channels}" if self._channels else ""
        return (
            f"Image(shape={self.spatial_shape}{ch}, spacing=({sp}), "
            f"orientation={self.orientation!r}, dtype={self.dtype})"
        )


# ---------------------------------------------------------------------------
# Orientation
# ---------------------------------------------------------------------------


def orientation_code(affine: npt.ArrayLike) -> str:
    """Three-letter orientation code of an affine, e.g. ``"RAS"``.

    Each letter names the world direction that the corresponding voxel axis
    points to (nibabel's ``aff2axcodes``).

    Examples
    --------
    >>> orientation_code(np.diag([-1.0, -1.0, 1.0, 1.0]))
    'LPS'
    """
    from nibabel.orientations import aff2axcodes

    codes = aff2axcodes(np.asarray(affine, dtype=np.float64))
    return "".join(str(c) for c in codes)


def _code_to_ornt(code: str) -> npt.NDArray[np.float64]:
    code = code.upper()
    if len(code) != 3 or set(code) - set(_AXIS_LETTERS):
        raise GeometryError(f"orientation code must be 3 letters from RLAPSI, got {code!r}")
    ornt = np.array([_AXIS_LETTERS[c] for c in code], dtype=np.float64)
    if len(set(ornt[:, 0].tolist())) != 3:
        raise GeometryError(f"orientation code {code!r} names one world axis twice")
    return ornt


def reorient(image: Image, code: str = "RAS") -> Image:
    """Flip and permute array axes so that they point along ``code``.

    Only the array layout and the affine change; every voxel keeps its world
    position, so no interpolation happens.

    Parameters
    ----------
    image : Image
        Input image (not modified).
    code : str
        Target orientation, three letters from ``RLAPSI`` such as ``"RAS"`` or
        ``"LPS"``. For a 2D image give two letters (``"RA"``), or three whose last
        is the one the plane's normal already has.

    Returns
    -------
    Image
        The reoriented image.

    Examples
    --------
    >>> img = Image(np.arange(6).reshape(2, 3, 1), np.diag([-1.0, 2.0, 3.0, 1.0]))
    >>> out = reorient(img, "RAS")
    >>> out.orientation, out.array[:, :, 0].tolist()
    ('RAS', [[3, 4, 5], [0, 1, 2]])
    >>> bool(np.allclose(out.voxel_to_world([0, 0, 0]), img.voxel_to_world([1, 0, 0])))
    True
    """
    from nibabel.orientations import inv_ornt_aff, io_orientation, ornt_transform

    if image.spatial_ndim == 2 and len(code) == 2:
        code = code + orientation_code(image.affine)[2]
    target = _code_to_ornt(code)
    current = io_orientation(image.affine)
    transform = ornt_transform(current, target)
    if image.spatial_ndim == 2 and (transform[2, 0] != 2 or transform[2, 1] != 1):
        raise GeometryError(
            f"cannot reorient a 2D image with orientation "
            f"{orientation_code(image.affine)!r} to {code!r}: the plane's normal would move"
        )
    spatial_shape = image.spatial_shape + ((1,) if image.spatial_ndim == 2 else ())
    arr = image.array
    if image.spatial_ndim == 2:
        arr = arr[..., np.newaxis]
    if image.channels:
        arr = np.moveaxis(arr, 0, -1)
    # apply_orientation semantics, written out so that the channel axis can trail.
    out = arr
    for ax, flip in enumerate(transform[:, 1]):
        if flip == -1:
            out = np.flip(out, axis=ax)
    perm = [int(p) for p in np.argsort(transform[:, 0])]
    out = np.transpose(out, perm + list(range(3, out.ndim)))
    if image.channels:
        out = np.moveaxis(out, -1, 0)
    if image.spatial_ndim == 2:
        out = out[..., 0]
    affine = image.affine @ inv_ornt_aff(transform, spatial_shape)
    return Image(np.ascontiguousarray(out), affine, channels=image.channels, meta=image.meta)


# ---------------------------------------------------------------------------
# Crop and pad
# ---------------------------------------------------------------------------


def _voxel_tuple(values: Sequence[int] | int, n: int, name: str) -> tuple[int, ...]:
    if isinstance(values, int | np.integer):
        return (int(values),) * n
    t = tuple(int(v) for v in values)
    if len(t) != n:
        raise GeometryError(f"{name} needs {n} values (one per spatial axis), got {len(t)}")
    return t


def _shift_affine(affine: npt.NDArray[np.float64], offset_vox: Sequence[int]) -> np.ndarray:
    off = np.zeros(3)
    off[: len(offset_vox)] = offset_vox
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ off + affine[:3, 3]
    return out


def crop(image: Image, start: Sequence[int], stop: Sequence[int]) -> Image:
    """Crop to the voxel box ``[start, stop)`` along each spatial axis.

    The affine is shifted so that every kept voxel keeps its world position.

    Parameters
    ----------
    image : Image
        Input image.
    start, stop : sequence of int
        First voxel kept and one past the last, per spatial axis (``radius_vox``
        style voxel units). They must lie inside the image.

    Returns
    -------
    Image
        A view of the input array with the shifted affine.

    Examples
    --------
    >>> img = Image(np.arange(24).reshape(2, 3, 4), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> out = crop(img, (1, 0, 1), (2, 2, 3))
    >>> out.spatial_shape, out.origin
    ((1, 2, 2), (2.0, 0.0, 2.0))
    """
    n = image.spatial_ndim
    lo = _voxel_tuple(start, n, "start")
    hi = _voxel_tuple(stop, n, "stop")
    for ax, (a, b, s) in enumerate(zip(lo, hi, image.spatial_shape, strict=True)):
        if not 0 <= a < b <= s:
            raise GeometryError(
                f"crop box [{a}, {b}) on axis {ax} is empty or outside the image (size {s})"
            )
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    if image.channels:
        sl = (slice(None), *sl)
    return Image(
        image.array[sl], _shift_affine(image.affine, lo), channels=image.channels, meta=image.meta
    )


def pad(
    image: Image,
    before: Sequence[int] | int,
    after: Sequence[int] | int,
    *,
    value: float = 0.0,
) -> Image:
    """Pad with a constant value, extending the grid so world positions are kept.

    Parameters
    ----------
    image : Image
        Input image.
    before, after : int or sequence of int
        Voxels added before index 0 and after the last index, per spatial axis.
    value : float
        Fill value.

    Returns
    -------
    Image
        The padded image.

    Examples
    --------
    >>> img = Image(np.ones((2, 2, 2)))
    >>> out = pad(img, 1, (0, 0, 2))
    >>> out.spatial_shape, out.origin
    ((3, 3, 5), (-1.0, -1.0, -1.0))
    """
    n = image.spatial_ndim
    lo = _voxel_tuple(before, n, "before")
    hi = _voxel_tuple(after, n, "after")
    if min(lo + hi) < 0:
        raise GeometryError(f"pad widths must be non-negative, got before={lo}, after={hi}")
    _check_fill_value(value, image.dtype)
    widths = [(a, b) for a, b in zip(lo, hi, strict=True)]
    if image.channels:
        widths = [(0, 0), *widths]
    arr = np.pad(image.array, widths, mode="constant", constant_values=value)
    return Image(
        arr,
        _shift_affine(image.affine, [-v for v in lo]),
        channels=image.channels,
        meta=image.meta,
    )


def _check_fill_value(value: float, dtype: np.dtype[Any]) -> None:
    """Refuse a fill value the dtype cannot hold exactly (no silent wrap-around)."""
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        info = np.iinfo(np.uint8 if dtype == np.bool_ else dtype)
        ok = np.isfinite(value) and float(value).is_integer() and info.min <= value <= info.max
        if dtype == np.bool_:
            ok = ok and value in (0, 1)
        if not ok:
            raise ParameterError(f"fill value {value!r} cannot be stored in a {dtype} image")


# ---------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------

_ORDER = {"nearest": 0, "linear": 1, "bspline": 3}


def _inside_mask(
    in_shape: tuple[int, ...],
    matrix: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    out_shape: tuple[int, ...],
) -> np.ndarray:
    """Output voxels whose continuous input index lies in ``[-0.5, n - 0.5]`` on every axis.

    That is ITK's rule for a sample inside the input buffer.
    """
    inside = np.ones(out_shape, dtype=bool)
    grids = [np.arange(s, dtype=np.float64) for s in out_shape]
    for d, n in enumerate(in_shape):
        coord = np.full((1,) * len(out_shape), offset[d])
        for e, g in enumerate(grids):
            shape = [1] * len(out_shape)
            shape[e] = len(g)
            coord = coord + matrix[d, e] * g.reshape(shape)
        inside &= (coord >= -0.5 - 1e-6) & (coord <= n - 0.5 + 1e-6)
    return inside


def _interpolate(
    arr: np.ndarray,
    matrix: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    out_shape: tuple[int, ...],
    order: int,
) -> np.ndarray:
    """Output index ``o`` samples the input at ``matrix @ o + offset`` (edges extended)."""
    from scipy import ndimage

    work = arr.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64, copy=False)
    return np.asarray(
        ndimage.affine_transform(
            work, matrix, offset=offset, output_shape=out_shape, order=order, mode="nearest"
        )
    )


def _resample_array(
    arr: np.ndarray,
    matrix: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    out_shape: tuple[int, ...],
    order: int,
    cval: float,
    out_dtype: np.dtype[Any],
) -> np.ndarray:
    """Resample one spatial array; samples outside the input get ``cval``."""
    out = _interpolate(arr, matrix, offset, out_shape, order)
    out[~_inside_mask(arr.shape, matrix, offset, out_shape)] = cval
    if np.issubdtype(out_dtype, np.integer):
        info = np.iinfo(out_dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(out_dtype, copy=False)


def _grid_for_spacing(
    image: Image, spacing: Sequence[float]
) -> tuple[npt.NDArray[np.float64], tuple[int, ...]]:
    n = image.spatial_ndim
    if isinstance(spacing, str):
        raise GeometryError(f"spacing must be {n} numbers in mm, got the string {spacing!r}")
    new = np.array([float(s) for s in spacing], dtype=np.float64)
    if new.shape != (n,) or np.any(new <= 0) or not np.all(np.isfinite(new)):
        raise GeometryError(f"spacing must be {n} positive numbers in mm, got {list(spacing)}")
    old = np.array(image.spacing)
    extent = np.array(image.spatial_shape) * old
    shape = tuple(max(1, int(np.floor(float(e) + 0.5))) for e in extent / new)
    affine = image.affine.copy()
    scale = np.ones(3)
    scale[:n] = new / old
    affine[:3, :3] = image.affine[:3, :3] * scale
    # Keep the outer edge of the first voxel where it was.
    shift = np.zeros(3)
    shift[:n] = (new - old) / 2.0
    affine[:3, 3] = image.affine[:3, 3] + image.direction @ shift
    return affine, shape


def resample(
    image: Image,
    *,
    spacing: Sequence[float] | None = None,
    like: Image | None = None,
    interpolation: Interpolation = "linear",
    default: float = 0.0,
) -> Image:
    """Resample onto a grid with a new spacing, or onto another image's grid.

    Parameters
    ----------
    image : Image
        Input image (not modified).
    spacing : sequence of float, optional
        New voxel size in mm per spatial axis. The directions and the outer edge
        of the first voxel are kept; the shape becomes
        ``round(shape * old_spacing / spacing)``.
    like : Image, optional
        Resample onto this image's grid (shape and affine). Exactly one of
        ``spacing`` and ``like`` is given.
    interpolation : {"linear", "bspline", "nearest", "label"}
        ``"bspline"`` is cubic B-spline. ``"label"`` is for label maps: each label's
        indicator is interpolated linearly and the label with the largest value
        wins, so no label value is ever invented (nnU-Net's rule for
        segmentations); ``"nearest"`` also keeps label values.
    default : float
        Value of output voxels that fall outside the input image.

    Returns
    -------
    Image
        The resampled image. ``"nearest"`` and ``"label"`` keep the dtype; linear
        and B-spline interpolation of an integer image give float32.

    Raises
    ------
    GeometryError
        If neither or both of ``spacing`` and ``like`` are given, or a 2D image
        would be resampled onto a grid in another plane.

    Examples
    --------
    >>> img = Image(np.arange(8.0).reshape(2, 2, 2), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> out = resample(img, spacing=(1.0, 1.0, 1.0))
    >>> out.spatial_shape, out.origin
    ((4, 4, 4), (-0.5, -0.5, -0.5))
    >>> labels = Image(np.array([[[0, 2], [2, 2]], [[0, 0], [5, 5]]], dtype=np.uint8))
    >>> sorted(np.unique(resample(labels, spacing=(0.5, 0.5, 0.5), interpolation="label").array))
    [np.uint8(0), np.uint8(2), np.uint8(5)]
    """
    if (spacing is None) == (like is None):
        raise GeometryError("give exactly one of spacing= and like=")
    if interpolation not in ("linear", "bspline", "nearest", "label"):
        raise GeometryError(
            f"interpolation must be linear, bspline, nearest or label, got {interpolation!r}"
        )
    if like is not None:
        if like.spatial_ndim != image.spatial_ndim:
            raise GeometryError(
                f"cannot resample a {image.spatial_ndim}D image onto a {like.spatial_ndim}D grid"
            )
        out_affine, out_shape = np.array(like.affine), like.spatial_shape
    else:
        assert spacing is not None
        out_affine, out_shape = _grid_for_spacing(image, spacing)
    n = image.spatial_ndim
    m = np.linalg.inv(image.affine) @ out_affine
    if n == 2 and (abs(m[2, 3]) > 1e-3 or np.abs(m[2, :2]).max() > 1e-6):
        raise GeometryError("the target grid of a 2D image must lie in the image's plane")
    matrix, offset = m[:n, :n], m[:n, 3]
    arrays = list(image.array) if image.channels else [image.array]

    results = []
    for arr in arrays:
        if interpolation == "label":
            results.append(_resample_labels(arr, matrix, offset, out_shape, default))
            continue
        order = _ORDER[interpolation]
        if order == 0 or np.issubdtype(arr.dtype, np.floating):
            dtype = arr.dtype
        else:
            dtype = np.dtype(np.float32)
        if arr.dtype == np.bool_:
            dtype = np.dtype(np.bool_) if order == 0 else np.dtype(np.float32)
        results.append(_resample_array(arr, matrix, offset, out_shape, order, default, dtype))
    out = np.stack(results) if image.channels else results[0]
    return Image(out, out_affine, channels=image.channels, meta=image.meta)


def _resample_labels(
    arr: np.ndarray,
    matrix: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    out_shape: tuple[int, ...],
    default: float,
) -> np.ndarray:
    """Per-label linear interpolation of indicators, largest wins (ties: lower label).

    Each label is interpolated only on the output block that its bounding box
    (plus one voxel, the reach of linear interpolation) maps to, so a 117-label
    atlas costs little more than one full pass.
    """
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise GeometryError(f"label interpolation needs an integer label map, got {arr.dtype}")
    import cc3d  # fast bounding boxes of every label in one pass

    n = arr.ndim
    inv = np.linalg.inv(matrix)
    best = np.full(out_shape, -1.0, dtype=np.float32)
    out = np.full(out_shape, default, dtype=arr.dtype)
    values = np.unique(arr)
    if values.size == 1:
        out[...] = values[0]
    else:
        # cc3d.statistics works on unsigned labels; map values to 0..m-1 first
        index = np.searchsorted(values, arr).astype(np.uint32)
        padded = index if n == 3 else index[..., np.newaxis]
        boxes = cc3d.statistics(padded, no_slice_conversion=True)["bounding_boxes"]
        for k, v in enumerate(values):
            box = boxes[k]
            lo_in = np.array([box[2 * d] for d in range(n)], dtype=np.float64) - 1
            hi_in = np.array([box[2 * d + 1] for d in range(n)], dtype=np.float64) + 1
            corners = np.array(np.meshgrid(*[[a, b] for a, b in zip(lo_in, hi_in, strict=True)],
                                           indexing="ij")).reshape(n, -1)
            out_corners = inv @ (corners - offset[:, None])
            o_lo = np.maximum(np.floor(out_corners.min(axis=1)).astype(int), 0)
            o_hi = np.minimum(np.ceil(out_corners.max(axis=1)).astype(int) + 1,
                              np.array(out_shape))
            if np.any(o_hi <= o_lo):
                continue
            # crop the input around the label (margin 1, zero-padded indicator)
            i_lo = np.maximum(lo_in.astype(int), 0)
            i_hi = np.minimum(hi_in.astype(int) + 1, np.array(arr.shape))
            crop_sl = tuple(slice(a, b) for a, b in zip(i_lo, i_hi, strict=True))
            ind = (arr[crop_sl] == v).astype(np.float32)
            block_offset = offset + matrix @ o_lo - i_lo
            block_shape = tuple(int(b - a) for a, b in zip(o_lo, o_hi, strict=True))
            # Beyond the crop the edge-extended indicator is 0 (the margin holds no v),
            # except where the crop reaches the image border: there it extends the border
            # exactly as a full-image pass would.
            p = _interpolate(ind, matrix, block_offset, block_shape, 1)
            sl = tuple(slice(a, b) for a, b in zip(o_lo, o_hi, strict=True))
            sub_best = best[sl]
            win = p > sub_best
            out[sl][win] = v
            sub_best[win] = p[win]
    outside = ~_inside_mask(arr.shape, matrix, offset, out_shape)
    out[outside] = default
    return out
