"""numba kernels of the surface metrics: surface elements and exact nearest-target distances.

:func:`surfel_elements` and :func:`border_voxels` find the surface elements of a padded 3D
crop in one pass (the same elements as the NumPy code of ``_surface``). The distance
kernels compute, at query points of a 3D grid, the exact distance to a set of targets.
Imported only on demand by :mod:`medlens.metrics._surface` (``import medlens`` does not
import numba). No distance transform of the grid is computed:

1. Along one axis ``a`` (the caller picks the one of the smallest spacing), every voxel
   gets the squared distance (mm²) to the nearest target voxel of its line, ``g``
   (two sweeps: the first pass of a separable Euclidean distance transform; ``inf``
   where the line holds no target).
2. The squared distance of a query point ``x`` to the targets is the minimum, over the
   integer offsets ``o`` in the plane of the two other axes ``b`` and ``c``, of
   ``g[x + o] + |o|²`` with ``|o|² = (o_b s_b)² + (o_c s_c)²``. The offsets are read in
   order of increasing ``|o|²``, and the scan stops as soon as ``|o|²`` alone reaches
   the best value found, since no later offset can give less. A point at distance
   ``d`` reads about ``pi d² / (s_b s_c)`` values.
3. The offsets are tabulated up to a radius. A point whose best value is still above
   the radius² at the end of the table ("unresolved", returned as -1) is decided by
   :func:`envelope_distances`: the second pass of the separable transform (the lower
   envelope of parabolas of Felzenszwalb & Huttenlocher along axis ``b``) on the
   planes holding such points, then a search along axis ``c`` outwards from the point.
   Its cost does not depend on the distances, so far-apart masks stay cheap.

Every value is the exact squared Euclidean distance between lattice points (float64).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medlens._numba import jit as _jit

__all__ = [
    "available",
    "border_voxels",
    "envelope_distances",
    "line_distances",
    "offset_table",
    "scan_distances",
    "surfel_elements",
]


def _line_kernel(
    target: NDArray[np.bool_], step2: float, prev: NDArray[np.float64], g: NDArray[np.float64]
) -> None:
    """Squared distance (mm²) to the nearest target along axis 1 of ``(A, n, B)`` arrays.

    ``step2`` is the squared spacing of axis 1; ``prev`` is scratch space of ``B`` values.
    The forward sweep stores voxel counts in ``g``, the backward sweep takes the minimum
    with the count from the other side and squares it.
    """
    n_outer, n, n_inner = target.shape
    none = 2.0 * n + 2.0
    for o in range(n_outer):
        for m in range(n_inner):
            g[o, 0, m] = 0.0 if target[o, 0, m] else none
        for i in range(1, n):
            for m in range(n_inner):
                g[o, i, m] = 0.0 if target[o, i, m] else g[o, i - 1, m] + 1.0
        for m in range(n_inner):
            v = g[o, n - 1, m]
            prev[m] = v
            g[o, n - 1, m] = v * v * step2 if v < n else np.inf
        for i in range(n - 2, -1, -1):
            for m in range(n_inner):
                v = min(g[o, i, m], prev[m] + 1.0)
                prev[m] = v
                g[o, i, m] = v * v * step2 if v < n else np.inf


def _scan_kernel(
    g: NDArray[np.float64],
    shape: NDArray[np.intp],
    axes: NDArray[np.intp],
    flat: NDArray[np.intp],
    off_b: NDArray[np.intp],
    off_c: NDArray[np.intp],
    delta: NDArray[np.intp],
    off_d2: NDArray[np.float64],
    resolved2: float,
    out: NDArray[np.float64],
) -> None:
    """Squared distance of each query point by the ordered offset scan.

    ``delta`` holds the flat-index step of each offset. A best value above
    ``resolved2`` (every offset missing from the table is longer than that) could still
    be lowered by a missing offset: it is stored as -1.
    """
    b, c = axes[1], axes[2]
    n_b, n_c = shape[b], shape[c]
    s0, s1 = shape[1] * shape[2], shape[2]
    r_b = np.max(np.abs(off_b))
    r_c = np.max(np.abs(off_c))
    for p in range(flat.size):
        q = flat[p]
        x0 = q // s0
        x1 = (q - x0 * s0) // s1
        x2 = q - x0 * s0 - x1 * s1
        xb = x0 if b == 0 else (x1 if b == 1 else x2)
        xc = x0 if c == 0 else (x1 if c == 1 else x2)
        best = np.inf
        if r_b <= xb < n_b - r_b and r_c <= xc < n_c - r_c:  # every offset stays inside
            for o in range(off_d2.size):
                d2 = off_d2[o]
                if d2 >= best:
                    break
                cand = g[q + delta[o]] + d2
                if cand < best:
                    best = cand
        else:
            for o in range(off_d2.size):
                d2 = off_d2[o]
                if d2 >= best:
                    break
                yb = xb + off_b[o]
                yc = xc + off_c[o]
                if yb < 0 or yb >= n_b or yc < 0 or yc >= n_c:
                    continue
                cand = g[q + delta[o]] + d2
                if cand < best:
                    best = cand
        out[p] = best if best <= resolved2 else -1.0


def _envelope_kernel(
    g: NDArray[np.float64],
    starts: NDArray[np.intp],
    plane_of: NDArray[np.intp],
    xb: NDArray[np.intp],
    xc: NDArray[np.intp],
    strides: tuple[int, int, int],
    extent: tuple[int, int],
    step2: tuple[float, float],
    out: NDArray[np.float64],
) -> None:
    """Squared distances of query points from the exact 2D transform of their plane.

    The points are grouped by plane: points ``starts[p]:starts[p + 1]`` lie in the
    plane ``plane_of[p]`` (index along axis ``a``) at ``(xb, xc)``. For each plane the
    lower envelope of parabolas (Felzenszwalb & Huttenlocher) along axis ``b`` turns
    ``g`` into ``h[y_b, y_c] = min_z g[z, y_c] + ((y_b - z) s_b)²``; a point's value is
    then ``min h[x_b, y_c] + ((y_c - x_c) s_c)²``, read outwards from ``x_c`` until the
    second term alone exceeds the best value found. ``strides`` are the flat-index steps
    of axes ``a``, ``b``, ``c``; ``extent`` the sizes and ``step2`` the squared spacings of
    ``b`` and ``c``.
    """
    st_a, st_b, st_c = strides
    n_b, n_c = extent
    sb2, sc2 = step2
    h = np.empty((n_b, n_c))
    v = np.empty(n_b, dtype=np.intp)
    fv = np.empty(n_b)
    z = np.empty(n_b + 1)
    for p in range(plane_of.size):
        base = plane_of[p] * st_a
        for yc in range(n_c):
            line = base + yc * st_c
            k = 0
            for y in range(n_b):
                fy = g[line + y * st_b]
                if fy == np.inf:
                    continue
                cross = -np.inf
                while k > 0:
                    vk = v[k - 1]
                    rise = (fy + sb2 * y * y) - (fv[k - 1] + sb2 * vk * vk)
                    cross = rise / (2.0 * sb2 * (y - vk))
                    if cross <= z[k - 1]:
                        k -= 1
                        cross = -np.inf
                    else:
                        break
                z[k] = cross
                v[k] = y
                fv[k] = fy
                k += 1
            if k == 0:
                for x in range(n_b):
                    h[x, yc] = np.inf
                continue
            j = 0
            for x in range(n_b):
                while j + 1 < k and z[j + 1] < x:
                    j += 1
                h[x, yc] = sb2 * (x - v[j]) * (x - v[j]) + fv[j]
        for q in range(starts[p], starts[p + 1]):
            pb, pc = xb[q], xc[q]
            best = h[pb, pc]
            for o in range(1, n_c):
                d2 = o * o * sc2
                if d2 >= best:
                    break
                if pc - o >= 0:
                    cand = h[pb, pc - o] + d2
                    if cand < best:
                        best = cand
                if pc + o < n_c:
                    cand = h[pb, pc + o] + d2
                    if cand < best:
                        best = cand
            out[q] = best


def _surfel_kernel(p: NDArray[np.uint8], out: NDArray[np.uint8]) -> None:
    """Neighbourhood code of every corner of the padded 3D crop ``p``.

    ``out`` has one voxel less per axis; bit ``4a + 2b + d`` is voxel ``c + (a, b, d)``,
    as in ``_surface``. Each corner's four voxels at the larger last index are the next
    corner's four at the smaller one.
    """
    n0, n1, n2 = p.shape
    for i in range(n0 - 1):
        for j in range(n1 - 1):
            lo = (p[i, j, 0] << 0) | (p[i, j + 1, 0] << 2) | (p[i + 1, j, 0] << 4)
            lo |= p[i + 1, j + 1, 0] << 6
            for k in range(n2 - 1):
                hi = (p[i, j, k + 1] << 1) | (p[i, j + 1, k + 1] << 3) | (p[i + 1, j, k + 1] << 5)
                hi |= p[i + 1, j + 1, k + 1] << 7
                out[i, j, k] = lo | hi
                lo = hi >> 1


def _border_kernel(p: NDArray[np.uint8], out: NDArray[np.bool_]) -> None:
    """Flag the foreground voxels of ``p`` that have a background face neighbour.

    ``p`` is background on its outer layer; the result is ``p & ~binary_erosion(p)``
    with the 6-connected cross.
    """
    n0, n1, n2 = p.shape
    out[:] = False
    for i in range(1, n0 - 1):
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                if p[i, j, k]:
                    inner = (
                        p[i - 1, j, k] & p[i + 1, j, k] & p[i, j - 1, k] & p[i, j + 1, k]
                    ) & (p[i, j, k - 1] & p[i, j, k + 1])
                    out[i, j, k] = inner == 0


@functools.cache
def _kernels() -> tuple[Any, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's own notes at import and compile time
        return tuple(
            _jit(k)
            for k in (
                _line_kernel,
                _scan_kernel,
                _envelope_kernel,
                _surfel_kernel,
                _border_kernel,
            )
        )


def surfel_elements(
    padded: NDArray[np.bool_],
) -> tuple[NDArray[np.bool_], NDArray[np.intp], NDArray[np.uint8]]:
    """Surface elements of a 3D crop padded by one background voxel.

    Parameters
    ----------
    padded : numpy.ndarray of bool, C-contiguous, 3 axes
        The mask crop with a background border.

    Returns
    -------
    mask : numpy.ndarray of bool
        On the corner grid (one less per axis): corners whose code is not 0 or 255.
    flat : numpy.ndarray of intp
        Their C-order flat indices.
    codes : numpy.ndarray of uint8
        Their neighbourhood codes (bit ``4a + 2b + d``), for the area table.
    """
    code = np.empty(tuple(n - 1 for n in padded.shape), dtype=np.uint8)
    _kernels()[3](padded.view(np.uint8), code)
    mask = (code - np.uint8(1)) < np.uint8(254)  # 0 < code < 255: code - 1 wraps 0 to 255
    flat = np.flatnonzero(mask)
    return mask, flat, code.reshape(-1)[flat]


def border_voxels(padded: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Border voxels (6-connected erosion) of a 3D crop padded by one background voxel.

    Parameters
    ----------
    padded : numpy.ndarray of bool
        As in :func:`surfel_elements`.

    Returns
    -------
    numpy.ndarray of bool
        Same shape: foreground voxels with a background face neighbour.
    """
    out = np.empty(padded.shape, dtype=np.bool_)
    _kernels()[4](padded.view(np.uint8), out)
    return out


@functools.cache
def available() -> bool:
    """Whether numba can be imported (else the caller takes its NumPy/SciPy path).

    The first call with numba present also compiles (or loads from numba's cache) the
    kernels, so that threads started afterwards find them ready.

    Returns
    -------
    bool
        ``True`` when the kernels of this module are compiled.
    """
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    _kernels()
    return True


def line_distances(target: NDArray[np.bool_], axis: int, spacing: float) -> NDArray[np.float64]:
    """Squared distance (mm²) from each voxel to the nearest target voxel along ``axis``.

    Parameters
    ----------
    target : numpy.ndarray of bool, C-contiguous, 3 axes
        The target voxels.
    axis : int
        The axis of the lines.
    spacing : float
        Spacing of that axis in mm.

    Returns
    -------
    numpy.ndarray of float64
        Same shape; ``inf`` where the line holds no target.
    """
    shape = target.shape
    lines = (math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))
    g = np.empty(lines)
    _kernels()[0](target.reshape(lines), spacing * spacing, np.empty(lines[2]), g)
    return g.reshape(shape)


@functools.lru_cache(maxsize=32)
def offset_table(
    spacing_b: float, spacing_c: float, n_b: int, n_c: int, radius: float
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """Integer in-plane offsets of length at most ``radius`` mm, by increasing length.

    Parameters
    ----------
    spacing_b, spacing_c : float
        Spacing (mm) of the two plane axes.
    n_b, n_c : int
        Grid extent along them (offsets are limited to ``|o| < n``).
    radius : float
        Largest offset length in mm.

    Returns
    -------
    off_b, off_c : numpy.ndarray of intp
        The offsets.
    d2 : numpy.ndarray of float64
        Their squared lengths in mm², non-decreasing.
    """
    rb = min(n_b - 1, math.floor(radius / spacing_b))
    rc = min(n_c - 1, math.floor(radius / spacing_c))
    ob, oc = np.meshgrid(np.arange(-rb, rb + 1), np.arange(-rc, rc + 1), indexing="ij")
    d2 = (ob * spacing_b) ** 2 + (oc * spacing_c) ** 2
    keep = d2 <= radius * radius
    d2, ob, oc = d2[keep], ob[keep], oc[keep]
    order = np.argsort(d2, kind="stable")
    out = (ob[order], oc[order], d2[order])
    for arr in out:
        arr.flags.writeable = False  # shared through the cache
    return out


def _axes(axis: int) -> NDArray[np.intp]:
    return np.array([axis, *(x for x in range(3) if x != axis)], dtype=np.intp)


def scan_distances(
    g: NDArray[np.float64],
    axis: int,
    flat: NDArray[np.intp],
    spacing: tuple[float, ...],
    radius: float,
) -> NDArray[np.float64]:
    """Squared distances (mm²) of query points, ``-1`` where unresolved within ``radius``.

    Parameters
    ----------
    g : numpy.ndarray of float64, C-contiguous, 3 axes
        :func:`line_distances` of the targets along ``axis``.
    axis : int
        Its axis.
    flat : numpy.ndarray of intp
        C-order flat indices of the query points.
    spacing : tuple of float
        Voxel size in mm.
    radius : float
        Largest in-plane offset read, in mm (> 0).

    Returns
    -------
    numpy.ndarray of float64
        One value per query point.
    """
    shape = g.shape
    axes = _axes(axis)
    b, c = int(axes[1]), int(axes[2])
    off_b, off_c, off_d2 = offset_table(spacing[b], spacing[c], shape[b], shape[c], radius)
    strides = (shape[1] * shape[2], shape[2], 1)
    delta = off_b * strides[b] + off_c * strides[c]
    # the table holds every offset of the plane, or every offset up to ``radius``
    plane_max2 = ((shape[b] - 1) * spacing[b]) ** 2 + ((shape[c] - 1) * spacing[c]) ** 2
    resolved2 = math.inf if plane_max2 <= radius * radius else radius * radius
    out = np.empty(flat.size)
    _kernels()[1](
        g.reshape(-1),
        np.asarray(shape, dtype=np.intp),
        axes,
        np.ascontiguousarray(flat, dtype=np.intp),
        off_b,
        off_c,
        delta,
        off_d2,
        resolved2,
        out,
    )
    return out


def envelope_distances(
    g: NDArray[np.float64], axis: int, flat: NDArray[np.intp], spacing: tuple[float, ...]
) -> NDArray[np.float64]:
    """Squared distances (mm²) of query points from the exact 2D transform of their plane.

    Work is proportional to the number of distinct planes (indices along ``axis``) that
    hold query points times the plane size, whatever the distances.

    Parameters
    ----------
    g, axis, flat, spacing
        As in :func:`scan_distances`.

    Returns
    -------
    numpy.ndarray of float64
        One value per query point (``inf`` if there is no target at all).
    """
    a, b, c = (int(x) for x in _axes(axis))
    shape = g.shape
    coords = np.unravel_index(np.asarray(flat, dtype=np.intp), shape)
    xa, xb, xc = (np.asarray(coords[ax], dtype=np.intp) for ax in (a, b, c))
    order = np.argsort(xa, kind="stable")
    planes, first = np.unique(xa[order], return_index=True)
    starts = np.append(first, order.size).astype(np.intp)
    strides = (shape[1] * shape[2], shape[2], 1)
    out = np.empty(order.size)
    _kernels()[2](
        g.reshape(-1),
        starts,
        planes.astype(np.intp),
        np.ascontiguousarray(xb[order]),
        np.ascontiguousarray(xc[order]),
        (strides[a], strides[b], strides[c]),
        (shape[b], shape[c]),
        (float(spacing[b]) ** 2, float(spacing[c]) ** 2),
        out,
    )
    result = np.empty(order.size)
    result[order] = out
    return result
