"""Shared helpers of the segmentation metrics: input checks, bounding boxes, crops.

Everything here works on the foreground of a mask, defined as its non-zero voxels,
and avoids full-volume temporaries: a bounding box costs one read of the array,
and all later work happens on a crop of the joint bounding box.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medlens.errors import GeometryError

__all__ = [
    "BoundingBox",
    "as_array",
    "as_bool",
    "check_pair",
    "check_spacing",
    "crop_padded",
    "default_threads",
    "joint_bbox",
    "nonzero_bbox",
    "on_both",
    "union_bbox",
]

BoundingBox = tuple[tuple[int, int], ...]
"""Inclusive-exclusive ``(start, stop)`` index pairs, one per axis."""


def as_array(x: ArrayLike, name: str) -> NDArray[np.generic]:
    """Return ``x`` as an ndarray without copying when it already is one.

    Parameters
    ----------
    x : array_like
        A mask or label map.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        The same data as an array.

    Raises
    ------
    TypeError
        If ``x`` has a non-numeric, non-boolean dtype.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a boolean or numeric array, got dtype {arr.dtype}")
    return arr


def as_bool(arr: NDArray[np.generic]) -> NDArray[np.bool_]:
    """Return the foreground (non-zero voxels) of ``arr``, without a copy for bool input.

    Parameters
    ----------
    arr : numpy.ndarray
        Mask of any numeric or boolean dtype.

    Returns
    -------
    numpy.ndarray of bool
        ``arr`` itself when it is boolean, else ``arr != 0``.
    """
    if arr.dtype == np.bool_:
        return arr  # type: ignore[return-value]
    return np.asarray(arr != 0)


def check_pair(
    reference: ArrayLike, prediction: ArrayLike, *, ndims: tuple[int, ...] = (2, 3)
) -> tuple[NDArray[np.generic], NDArray[np.generic]]:
    """Check that two masks are arrays of one shape with an allowed number of axes.

    Parameters
    ----------
    reference, prediction : array_like
        The two masks (any numeric or boolean dtype; non-zero is foreground).
    ndims : tuple of int
        Allowed numbers of axes.

    Returns
    -------
    reference, prediction : numpy.ndarray
        The inputs as arrays.

    Raises
    ------
    GeometryError
        If the shapes differ or the number of axes is not allowed.
    """
    ref = as_array(reference, "reference")
    pred = as_array(prediction, "prediction")
    if ref.shape != pred.shape:
        raise GeometryError(
            f"reference and prediction must have the same shape, got {ref.shape} and {pred.shape}"
        )
    if ref.ndim not in ndims:
        raise GeometryError(
            f"masks must have {' or '.join(map(str, ndims))} axes, got shape {ref.shape}"
        )
    return ref, pred


def check_spacing(spacing: Sequence[float] | float, ndim: int) -> tuple[float, ...]:
    """Validate a voxel spacing against the number of array axes.

    Parameters
    ----------
    spacing : sequence of float
        Voxel size in mm, one value per array axis.
    ndim : int
        Number of array axes.

    Returns
    -------
    tuple of float
        The spacing as plain floats.

    Raises
    ------
    GeometryError
        If the length does not match ``ndim`` or a value is not finite and positive.
    """
    if isinstance(spacing, (int, float, np.number)):
        raise GeometryError(
            f"spacing must have one value per axis ({ndim}), got the scalar {spacing!r}"
        )
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise GeometryError(
            f"spacing {values} has {len(values)} values but the masks have {ndim} axes"
        )
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise GeometryError(f"spacing values must be finite and positive, got {values}")
    return values


def default_threads(threads: int | None) -> int:
    """Return the number of threads for the distance transform.

    Parameters
    ----------
    threads : int or None
        Requested number; ``None`` means all CPUs of this process.

    Returns
    -------
    int
        A positive number of threads.
    """
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return int(threads)


def _nonzero_rows(arr: NDArray[np.generic]) -> NDArray[np.bool_]:
    """Return, for each index along axis 0, whether that slab holds a non-zero voxel."""
    flat = arr.reshape(arr.shape[0], -1)
    if arr.dtype == np.bool_:
        # max over uint8 is several times faster than any() over bool
        return flat.view(np.uint8).max(axis=1).astype(bool)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 1:
        return flat.view(np.uint8).max(axis=1) != 0
    return np.asarray(flat.any(axis=1))


def _first_nonzero_row(arr: NDArray[np.generic], *, last: bool) -> int | None:
    """Index of the first (``last``: the last) slab along axis 0 holding a non-zero voxel.

    Scans blocks of about 1 MiB from that end and stops at the first hit, so the slabs
    between the first and the last non-zero ones are not read here.
    """
    n = arr.shape[0]
    step = max(1, (1 << 20) // max(1, arr[0].nbytes))
    starts = range(0, n, step)
    for start in reversed(starts) if last else starts:
        hits = np.flatnonzero(_nonzero_rows(arr[start : start + step]))
        if hits.size:
            return start + int(hits[-1] if last else hits[0])
    return None


def nonzero_bbox(arr: NDArray[np.generic]) -> BoundingBox | None:
    """Return the bounding box of the non-zero voxels of ``arr``.

    Parameters
    ----------
    arr : numpy.ndarray
        Array with at least one axis.

    Returns
    -------
    tuple of (int, int) or None
        ``(start, stop)`` per axis, or ``None`` when ``arr`` has no non-zero voxel.

    Examples
    --------
    >>> a = np.zeros((4, 5), dtype=bool)
    >>> a[1:3, 2] = True
    >>> nonzero_bbox(a)
    ((1, 3), (2, 3))
    >>> nonzero_bbox(np.zeros((3, 3))) is None
    True
    """
    if arr.size == 0:
        return None
    if arr.ndim > 1 and not arr.flags.c_contiguous:
        if arr.flags.f_contiguous:  # e.g. nibabel arrays: work on the C-ordered transpose
            box_t = nonzero_bbox(arr.T)
            return None if box_t is None else box_t[::-1]
        return _nonzero_bbox_strided(arr)
    first = _first_nonzero_row(arr, last=False)
    if first is None:
        return None
    last = _first_nonzero_row(arr[first:], last=True)
    i0, i1 = first, first + (0 if last is None else last) + 1
    box: list[tuple[int, int]] = [(i0, i1)]
    if arr.ndim == 1:
        return tuple(box)
    slab = arr[i0:i1]
    proj = np.logical_or.reduce(slab, axis=0) if slab.dtype == np.bool_ else slab.any(axis=0)
    for ax in range(proj.ndim):
        other = tuple(a for a in range(proj.ndim) if a != ax)
        line = np.flatnonzero(np.any(proj, axis=other) if other else proj)
        box.append((int(line[0]), int(line[-1]) + 1))
    return tuple(box)


def _nonzero_bbox_strided(arr: NDArray[np.generic]) -> BoundingBox | None:
    """Bounding box of an arbitrarily strided array, without copying it."""
    if arr.dtype == np.bool_ or (arr.dtype.kind in "iu" and arr.dtype.itemsize == 1):
        # one-byte voxels (e.g. a crop view of a boolean mask): max over a uint8 view is
        # several times faster than any(); first the slabs along axis 0, then the others
        # on the slab range only
        u8 = arr.view(np.uint8)
        rows = np.flatnonzero(u8.max(axis=tuple(range(1, arr.ndim))))
        if rows.size == 0:
            return None
        i0, i1 = int(rows[0]), int(rows[-1]) + 1
        proj = u8[i0:i1].max(axis=0)
        out: list[tuple[int, int]] = [(i0, i1)]
        for ax in range(proj.ndim):
            other = tuple(a for a in range(proj.ndim) if a != ax)
            line = np.flatnonzero(proj.max(axis=other) if other else proj)
            out.append((int(line[0]), int(line[-1]) + 1))
        return tuple(out)
    box: list[tuple[int, int]] = []
    for ax in range(arr.ndim):
        other = tuple(a for a in range(arr.ndim) if a != ax)
        line = np.flatnonzero(np.any(arr, axis=other))
        if line.size == 0:
            return None
        box.append((int(line[0]), int(line[-1]) + 1))
    return tuple(box)


_T = TypeVar("_T")

# below this many voxels, running the two masks' passes in two threads does not pay
CONCURRENT_MIN_VOXELS = 1_000_000


def on_both(
    fn: Callable[[NDArray[np.generic]], _T],
    x: NDArray[np.generic],
    y: NDArray[np.generic],
    concurrent: bool,
) -> tuple[_T, _T]:
    """Return ``(fn(x), fn(y))``, the two calls in two threads when ``concurrent``.

    Worth it for large arrays only: NumPy releases the GIL in its array loops.

    Parameters
    ----------
    fn : callable
        Function of one array.
    x, y : numpy.ndarray
        The two arrays.
    concurrent : bool
        Whether to run the two calls in two threads.

    Returns
    -------
    tuple
        The two results.
    """
    if not concurrent:
        return fn(x), fn(y)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        fx, fy = pool.submit(fn, x), pool.submit(fn, y)
        return fx.result(), fy.result()


def joint_bbox(
    a: NDArray[np.generic], b: NDArray[np.generic], threads: int = 1
) -> BoundingBox | None:
    """Return the bounding box of the non-zero voxels of two arrays of one shape.

    Parameters
    ----------
    a, b : numpy.ndarray
        The arrays.
    threads : int
        With two or more, large arrays are read in two threads.

    Returns
    -------
    tuple of (int, int) or None
        The smallest box holding both arrays' non-zero voxels; ``None`` if there is none.

    Examples
    --------
    >>> a = np.zeros((4, 5), dtype=bool); a[1, 2] = True
    >>> b = np.zeros((4, 5), dtype=bool); b[3, 0] = True
    >>> joint_bbox(a, b)
    ((1, 4), (0, 3))
    """
    pair = threads >= 2 and a.size >= CONCURRENT_MIN_VOXELS
    return union_bbox(*on_both(nonzero_bbox, a, b, pair))


def union_bbox(a: BoundingBox | None, b: BoundingBox | None) -> BoundingBox | None:
    """Return the smallest box holding both boxes (``None`` is the empty box).

    Parameters
    ----------
    a, b : tuple of (int, int) or None
        Boxes from :func:`nonzero_bbox`.

    Returns
    -------
    tuple of (int, int) or None
        The joint box.
    """
    if a is None:
        return b
    if b is None:
        return a
    return tuple((min(p[0], q[0]), max(p[1], q[1])) for p, q in zip(a, b, strict=True))


def crop_padded(
    arr: NDArray[np.generic],
    box: BoundingBox,
    *,
    pad: int = 1,
    labels: Sequence[int] | None = None,
) -> NDArray[np.bool_]:
    """Crop ``arr`` to ``box`` as a boolean mask with ``pad`` background voxels on every side.

    Parameters
    ----------
    arr : numpy.ndarray
        Mask (non-zero is foreground) or label map.
    box : tuple of (int, int)
        Box from :func:`nonzero_bbox`.
    pad : int
        Number of background voxels added before and after each axis.
    labels : sequence of int, optional
        If given, the foreground is the set of voxels whose value is one of ``labels``.

    Returns
    -------
    numpy.ndarray of bool
        C-contiguous padded crop.
    """
    sl = tuple(slice(lo, hi) for lo, hi in box)
    shape = tuple(hi - lo + 2 * pad for lo, hi in box)
    out = np.zeros(shape, dtype=bool)
    inner = tuple(slice(pad, pad + hi - lo) for lo, hi in box)
    sub = arr[sl]
    if labels is not None:
        out[inner] = np.isin(sub, np.asarray(list(labels)))
    elif sub.dtype == np.bool_:
        out[inner] = sub
    else:
        out[inner] = sub != 0
    return out
