"""Registration quality: landmark error and the regularity of displacement fields.

A displacement field ``u`` has shape ``(D, *spatial)`` (channels first, ``D`` =
number of spatial axes) and is sampled on the fixed image's grid. Component
``d`` is the displacement in mm along array axis ``d`` (the affine's column
``d``), and the transform maps fixed to moving: ``T(x) = x + u(x)``. A field
whose components are in world (RAS) coordinates is converted by passing the
image's ``direction`` matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medlens.errors import GeometryError

__all__ = [
    "JacobianStatistics",
    "VolumeChange",
    "jacobian_determinant",
    "jacobian_statistics",
    "learn2reg_sdlogj",
    "target_registration_error",
    "volume_change",
]


def target_registration_error(
    reference_points: npt.ArrayLike, predicted_points: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Euclidean distance between corresponding landmarks, one value per pair (mm).

    Parameters
    ----------
    reference_points : array_like
        Landmark positions ``(n, D)`` in world coordinates (mm), e.g. the
        moving image's landmarks.
    predicted_points : array_like
        The corresponding positions predicted by the registration (the fixed
        landmarks mapped through ``T``), same shape. Convert voxel indices to
        mm first with ``Image.voxel_to_world``.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` distances in mm; summarise with mean, median or the 90th percentile.

    Raises
    ------
    ValueError
        If the arrays are not ``(n, D)`` with equal shapes or hold NaN.

    Examples
    --------
    >>> target_registration_error([[0, 0, 0], [1, 1, 1]], [[3, 4, 0], [1, 1, 1]]).tolist()
    [5.0, 0.0]
    """
    a = np.asarray(reference_points, dtype=np.float64)
    b = np.asarray(predicted_points, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"landmarks must be two (n, D) arrays of equal shape, got {a.shape} and {b.shape}"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("landmark coordinates contain NaN or infinite values")
    out: npt.NDArray[np.float64] = np.linalg.norm(a - b, axis=1)
    return out


def _check_field(
    displacement: npt.ArrayLike, spacing: Sequence[float], direction: npt.ArrayLike | None
) -> tuple[npt.NDArray[np.float64], tuple[float, ...]]:
    u = np.asarray(displacement, dtype=np.float64)
    if u.ndim < 3 or u.shape[0] != u.ndim - 1 or u.shape[0] not in (2, 3):
        raise ValueError(
            f"displacement must be (D, *spatial) with D = 2 or 3 spatial axes, got shape {u.shape}"
        )
    d = u.shape[0]
    sp = tuple(float(s) for s in spacing)
    if len(sp) != d or not all(math.isfinite(s) and s > 0 for s in sp):
        raise GeometryError(f"spacing must be {d} positive values in mm, got {spacing}")
    if any(n < 2 for n in u.shape[1:]):
        raise ValueError(f"need at least 2 voxels per axis for derivatives, got {u.shape[1:]}")
    if direction is not None:
        r = np.asarray(direction, dtype=np.float64)
        if r.shape != (d, d):
            raise GeometryError(f"direction must be {d}x{d}, got shape {r.shape}")
        # world components -> array-axis components: u_a = R^T u_w
        u = np.tensordot(r.T, u, axes=1)
    return u, sp


def jacobian_determinant(
    displacement: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    direction: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """Determinant of the Jacobian of ``T(x) = x + u(x)`` at every voxel.

    ``J = det(I + ∂u/∂x)`` with derivatives by ``numpy.gradient`` along each array
    axis (second-order central differences inside, first-order one-sided at the
    border) divided by the spacing, so a displacement field that is linear in
    ``x`` gives its exact Jacobian everywhere. ``J > 1`` is local expansion,
    ``0 < J < 1`` compression and ``J <= 0`` folding.

    Parameters
    ----------
    displacement : array_like
        ``(D, *spatial)`` field in mm, components along the array axes (see the
        module notes).
    spacing : sequence of float
        Voxel size in mm, one per spatial axis. Required.
    direction : array_like, optional
        ``D x D`` direction cosines of the grid; when given, the field's
        components are world (RAS) coordinates and are rotated to array axes.

    Returns
    -------
    numpy.ndarray
        ``J`` on the spatial grid.

    Raises
    ------
    ValueError
        For a badly shaped field.
    GeometryError
        For invalid spacing or direction.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.indices((4, 5, 6)) * np.array([2.0, 1.0, 1.0])[:, None, None, None]
    >>> u = 0.1 * x                       # uniform 10 % expansion along each axis
    >>> J = jacobian_determinant(u, spacing=(2.0, 1.0, 1.0))
    >>> bool(np.allclose(J, 1.1 ** 3))
    True
    """
    u, sp = _check_field(displacement, spacing, direction)
    d = u.shape[0]
    grad = np.empty((d, d, *u.shape[1:]))
    for comp in range(d):
        g = np.gradient(u[comp], *sp)
        for axis in range(d):
            grad[comp, axis] = g[axis]
    for k in range(d):
        grad[k, k] += 1.0
    if d == 2:
        out: npt.NDArray[np.float64] = grad[0, 0] * grad[1, 1] - grad[0, 1] * grad[1, 0]
        return out
    a = grad
    out = (
        a[0, 0] * (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1])
        - a[0, 1] * (a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0])
        + a[0, 2] * (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0])
    )
    return out


@dataclass(frozen=True)
class JacobianStatistics:
    """Summary of a Jacobian determinant map.

    Attributes
    ----------
    fraction_nonpositive : float
        Fraction of voxels with ``J <= 0`` (folding), in [0, 1].
    std_log_jacobian : float
        Standard deviation of ``log J`` over the voxels with ``J > 0``
        (population std, ``ddof = 0``); NaN when none. This is *not* Learn2Reg's
        SDlogJ, which is the std of ``log(clip(J + 3, 1e-9, 1e9))`` inside a
        2-voxel border: see :func:`learn2reg_sdlogj`.
    mean, minimum, maximum : float
        Of ``J``.
    n_voxels : int
        Voxels summarised.
    """

    fraction_nonpositive: float
    std_log_jacobian: float
    mean: float
    minimum: float
    maximum: float
    n_voxels: int


def jacobian_statistics(
    displacement: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    mask: npt.ArrayLike | None = None,
    direction: npt.ArrayLike | None = None,
) -> JacobianStatistics:
    """Folding fraction and smoothness (std of log J) of a displacement field.

    Parameters
    ----------
    displacement : array_like
        ``(D, *spatial)`` field in mm (see :func:`jacobian_determinant`).
    spacing : sequence of float
        Voxel size in mm. Required.
    mask : array_like, optional
        Voxels with ``mask > 0`` are summarised; all when omitted.
    direction : array_like, optional
        As in :func:`jacobian_determinant`.

    Returns
    -------
    JacobianStatistics
        The summary.

    Notes
    -----
    ``std_log_jacobian`` is the std of ``log J`` over positive determinants only,
    so folded voxels are counted by ``fraction_nonpositive`` and not hidden by
    clipping. Learn2Reg's ``SDlogJ`` (:func:`learn2reg_sdlogj`) is a different
    quantity: the std of ``log(clip(J + 3, 1e-9, 1e9))``, which is compressed by the
    ``+ 3`` and counts folded voxels too; the two are not interchangeable.

    Examples
    --------
    >>> import numpy as np
    >>> stats = jacobian_statistics(np.zeros((2, 5, 5)), spacing=(1.0, 1.0))
    >>> stats.fraction_nonpositive, stats.std_log_jacobian, stats.mean
    (0.0, 0.0, 1.0)
    """
    jac = jacobian_determinant(displacement, spacing=spacing, direction=direction)
    if mask is not None:
        m = np.asarray(mask) > 0
        if m.shape != jac.shape:
            raise ValueError(f"mask shape {m.shape} does not match the field's grid {jac.shape}")
        if not m.any():
            raise ValueError("mask is empty")
        values = jac[m]
    else:
        values = jac.ravel()
    pos = values[values > 0]
    return JacobianStatistics(
        fraction_nonpositive=float(np.mean(values <= 0)),
        std_log_jacobian=float(np.std(np.log(pos))) if pos.size else math.nan,
        mean=float(values.mean()),
        minimum=float(values.min()),
        maximum=float(values.max()),
        n_voxels=int(values.size),
    )


def learn2reg_sdlogj(
    displacement: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    direction: npt.ArrayLike | None = None,
) -> float:
    """Learn2Reg's SDlogJ: std of ``log(clip(J + 3, 1e-9, 1e9))`` inside a 2-voxel border.

    Equals the ``sdlogj`` metric of the Learn2Reg evaluation code (MDL-UzL/L2R,
    ``evaluation/evaluation.py`` with ``jacobian_determinant`` of
    ``evaluation/utils.py``): the Jacobian determinant ``J`` of ``x + u(x)`` by central
    differences, the outer 2 voxels on every side dropped, then the population
    standard deviation (``ddof = 0``) of ``log(J + 3)`` with ``J + 3`` clipped to
    ``[1e-9, 1e9]``. Not the same quantity as
    :attr:`JacobianStatistics.std_log_jacobian` (std of ``log J`` over ``J > 0``).

    ``J`` does not depend on the length unit, so a field in mm with its ``spacing``
    (medlens's convention) and Learn2Reg's voxel-unit fields with ``spacing=(1, 1, 1)``
    give the same value. Inside the 2-voxel border, :func:`jacobian_determinant`'s
    central differences are Learn2Reg's ``[-0.5, 0, 0.5]`` correlation exactly.

    Parameters
    ----------
    displacement : array_like
        ``(D, *spatial)`` field (see :func:`jacobian_determinant`), at least 5 voxels
        per axis.
    spacing : sequence of float
        Voxel size in mm (the unit of ``displacement``). Required.
    direction : array_like, optional
        As in :func:`jacobian_determinant`.

    Returns
    -------
    float
        SDlogJ.

    Raises
    ------
    ValueError
        For a badly shaped field or fewer than 5 voxels along an axis.

    Examples
    --------
    The identity transform: ``J = 1`` everywhere, so ``log(4)`` everywhere and std 0:

    >>> import numpy as np
    >>> learn2reg_sdlogj(np.zeros((3, 6, 6, 6)), spacing=(1.0, 1.0, 1.0))
    0.0
    """
    shape = np.shape(displacement)[1:]
    if any(n < 5 for n in shape):
        raise ValueError(f"SDlogJ drops 2 voxels per side: need at least 5 per axis, got {shape}")
    jac = jacobian_determinant(displacement, spacing=spacing, direction=direction)
    inner = jac[tuple(slice(2, -2) for _ in jac.shape)]
    return float(np.std(np.log(np.clip(inner + 3.0, 1e-9, 1e9))))


@dataclass(frozen=True)
class VolumeChange:
    """Volume of a region before and after the transform.

    Attributes
    ----------
    fixed_ml : float
        Region volume on the fixed grid (voxel count times voxel volume), ml
        (or cm² for 2D: mm² / 100).
    transformed_ml : float
        Volume of ``T(region)``, the integral of ``J`` over the region.
    relative_change : float
        ``transformed / fixed - 1`` (e.g. -0.05 for 5 % shrinkage).
    """

    fixed_ml: float
    transformed_ml: float
    relative_change: float


def volume_change(
    displacement: npt.ArrayLike,
    mask: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    direction: npt.ArrayLike | None = None,
) -> VolumeChange:
    """Volume change of a masked region under ``T(x) = x + u(x)``.

    The transformed volume is ``sum_{x in mask} J(x) · voxel volume`` (change of
    variables), so a field that is a uniform scaling by ``s`` changes every
    region by ``s^D``.

    Parameters
    ----------
    displacement : array_like
        ``(D, *spatial)`` field in mm on the grid of ``mask``.
    mask : array_like
        Region on the fixed grid (``mask > 0``).
    spacing : sequence of float
        Voxel size in mm. Required.
    direction : array_like, optional
        As in :func:`jacobian_determinant`.

    Returns
    -------
    VolumeChange
        Fixed and transformed volumes in ml (1 ml = 1000 mm³) and their ratio minus one.

    Raises
    ------
    ValueError
        If the mask is empty or on another grid.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.indices((6, 6, 6)).astype(float)
    >>> vc = volume_change(-0.1 * x, np.ones((6, 6, 6)), spacing=(1.0, 1.0, 1.0))
    >>> round(vc.relative_change, 6)
    -0.271
    """
    jac = jacobian_determinant(displacement, spacing=spacing, direction=direction)
    m = np.asarray(mask) > 0
    if m.shape != jac.shape:
        raise ValueError(f"mask shape {m.shape} does not match the field's grid {jac.shape}")
    if not m.any():
        raise ValueError("mask is empty: volume change is undefined")
    voxel = float(np.prod(spacing))
    fixed = float(m.sum()) * voxel / 1000.0
    moved = float(jac[m].sum()) * voxel / 1000.0
    return VolumeChange(fixed_ml=fixed, transformed_ml=moved, relative_change=moved / fixed - 1.0)
