"""Applying transforms to images, label maps and points (NumPy / SciPy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from medlens.errors import GeometryError
from medlens.image import Image, Interpolation
from medlens.registration._transforms import (
    AffineTransform,
    Transform,
    TransformError,
    _grid_points,
)

__all__ = ["transform_points", "warp_image"]

_ORDER = {"nearest": 0, "linear": 1, "bspline": 3}


def transform_points(transform: Transform, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map fixed-space world points (landmarks, RAS+ mm) to moving space.

    A landmark ``x`` placed on the fixed image lands on ``transform(x)`` in the
    moving image (the fixed -> moving convention of every medlens transform).

    Parameters
    ----------
    transform : Transform
        Fixed world -> moving world.
    points : array_like, shape (N, 3) or (3,)
        World coordinates in mm.

    Returns
    -------
    numpy.ndarray
        Moving-space world coordinates, same shape as ``points``.

    Examples
    --------
    >>> from medlens.registration import rigid_transform
    >>> transform_points(rigid_transform(0.0, (1.0, 2.0)), [[0.0, 0.0, 0.0]]).tolist()
    [[1.0, 2.0, 0.0]]
    """
    return transform.transform_points(points)


class _PointVox:
    """Explicit moving-voxel coordinates of every fixed voxel, ``(N, n)``."""

    def __init__(self, vox: npt.NDArray[np.float64]) -> None:
        self.vox = vox

    def sample(self, work: np.ndarray, order: int, out_shape: tuple[int, ...]) -> np.ndarray:
        from scipy import ndimage

        out = ndimage.map_coordinates(work, self.vox.T, order=order, mode="nearest",
                                      prefilter=False)
        return np.asarray(out).reshape(out_shape)

    def inside(self, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
        s = np.array(shape)
        ok = np.all((self.vox >= -0.5 - 1e-6) & (self.vox <= s - 0.5 + 1e-6), axis=1)
        return ok.reshape(out_shape)


class _AffineVox:
    """Moving voxel = matrix @ fixed voxel + offset (linear transforms)."""

    def __init__(self, matrix: np.ndarray, offset: np.ndarray) -> None:
        self.matrix, self.offset = matrix, offset

    def sample(self, work: np.ndarray, order: int, out_shape: tuple[int, ...]) -> np.ndarray:
        from scipy import ndimage

        return np.asarray(ndimage.affine_transform(
            work, self.matrix, offset=self.offset, output_shape=out_shape, order=order,
            mode="nearest", prefilter=False))

    def inside(self, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
        ok = np.ones(out_shape, dtype=bool)
        n = len(out_shape)
        for d, size in enumerate(shape):
            coord = np.full((1,) * n, self.offset[d])
            for e, length in enumerate(out_shape):
                g = np.arange(length, dtype=np.float64).reshape(
                    [-1 if b == e else 1 for b in range(n)])
                coord = coord + self.matrix[d, e] * g
            ok &= (coord >= -0.5 - 1e-6) & (coord <= size - 0.5 + 1e-6)
        return ok


def _sample(
    arr: np.ndarray, vox: _PointVox | _AffineVox, order: int, default: float,
    out_shape: tuple[int, ...],
) -> npt.NDArray[Any]:
    from scipy import ndimage

    work = arr.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64, copy=False)
    if order > 1:
        work = ndimage.spline_filter(work, order=order, mode="mirror", output=np.float64)
    out = vox.sample(work, order, out_shape)
    out[~vox.inside(arr.shape, out_shape)] = default
    return out


def warp_image(
    moving: Image,
    transform: Transform,
    *,
    like: Image,
    interpolation: Interpolation = "linear",
    default: float = 0.0,
) -> Image:
    """Resample the moving image onto the fixed grid through a transform.

    For every voxel centre ``x`` of ``like`` (the fixed grid) the output holds
    ``moving(transform(x))``: the transform maps fixed-space points to
    moving-space points (ITK's convention), and the moving image is pulled onto
    the fixed grid.

    Parameters
    ----------
    moving : Image
        Image to resample (not modified); channels are warped one by one.
    transform : Transform
        Fixed world -> moving world.
    like : Image
        The fixed grid (shape and affine; values ignored).
    interpolation : {"linear", "bspline", "nearest", "label"}
        ``"bspline"`` is cubic B-spline. ``"label"`` is for label maps: each
        label's indicator is interpolated linearly and the largest wins, so no
        label value is invented and neighbouring labels are never mixed;
        ``"nearest"`` also keeps label values.
    default : float
        Value for fixed voxels that map outside the moving image (ITK's rule:
        a sample is inside when its continuous index lies in ``[-0.5, n - 0.5]``).

    Returns
    -------
    Image
        On ``like``'s grid. ``"nearest"`` and ``"label"`` keep the dtype; linear
        and B-spline interpolation give float32 (float64 for float64 input).

    Examples
    --------
    >>> from medlens.registration import rigid_transform
    >>> mov = Image(np.arange(16.0).reshape(4, 4))
    >>> out = warp_image(mov, rigid_transform(0.0, (1.0, 0.0)), like=mov)
    >>> out.array[:, 0].tolist()
    [4.0, 8.0, 12.0, 0.0]
    """
    if interpolation not in ("linear", "bspline", "nearest", "label"):
        raise GeometryError(
            f"interpolation must be linear, bspline, nearest or label, got {interpolation!r}"
        )
    if like.spatial_ndim != moving.spatial_ndim:
        raise GeometryError(
            f"cannot warp a {moving.spatial_ndim}D image onto a {like.spatial_ndim}D grid"
        )
    if transform.ndim != moving.spatial_ndim and not (
        isinstance(transform, AffineTransform) and transform.ndim == 3
    ):
        raise TransformError(
            f"a {transform.ndim}D transform cannot warp a {moving.spatial_ndim}D image"
        )
    if isinstance(transform, AffineTransform):
        # fixed voxel -> fixed world -> moving world -> moving voxel is one affine map
        m = np.linalg.inv(moving.affine) @ transform.homogeneous @ like.affine
        n = moving.spatial_ndim
        if n == 2 and (abs(m[2, 3]) > 1e-3 or np.abs(m[2, :2]).max() > 1e-6):
            raise GeometryError(
                "the transform maps the fixed plane out of the moving image's plane")
        vox: _AffineVox | _PointVox = _AffineVox(m[:n, :n], m[:n, 3])
    else:
        pts = transform.transform_points(_grid_points(like))
        vox_arr = moving.world_to_voxel(pts)
        if moving.spatial_ndim == 2:
            # the moved points must stay in the moving image's plane
            normal_off = (pts - np.asarray(moving.origin)) @ moving.affine[:3, 2]
            if np.abs(normal_off).max(initial=0.0) > 1e-3:
                raise GeometryError(
                    "the transform maps the fixed plane out of the moving image's plane")
        vox = _PointVox(vox_arr)
    arrays = list(moving.array) if moving.channels else [moving.array]
    out_shape = like.spatial_shape
    results = []
    for arr in arrays:
        if interpolation == "label":
            results.append(_warp_labels(arr, vox, out_shape, default))
            continue
        order = _ORDER[interpolation]
        if order == 0 or np.issubdtype(arr.dtype, np.floating):
            dtype = arr.dtype if arr.dtype != np.float16 else np.dtype(np.float32)
        else:
            dtype = np.dtype(np.float32)
        if arr.dtype == np.bool_:
            dtype = np.dtype(np.bool_) if order == 0 else np.dtype(np.float32)
        vals = _sample(arr, vox, order, default, out_shape)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            vals = np.clip(np.rint(vals), info.min, info.max)
        results.append(vals.astype(dtype, copy=False))
    out = np.stack(results) if moving.channels else results[0]
    return Image(out, like.affine, channels=moving.channels, meta=moving.meta)


def _warp_labels(
    arr: np.ndarray, vox: _PointVox | _AffineVox, out_shape: tuple[int, ...], default: float
) -> np.ndarray:
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise GeometryError(f"label interpolation needs an integer label map, got {arr.dtype}")
    best = np.full(out_shape, -1.0)
    out = np.full(out_shape, default, dtype=arr.dtype)
    for v in np.unique(arr):
        p = _sample((arr == v).astype(np.float32), vox, 1, -1.0, out_shape)
        win = p > best
        out[win] = v
        best[win] = p[win]
    out[best < 0] = default
    return out
