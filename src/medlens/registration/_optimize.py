"""Image registration by gradient descent with torch autograd (imported on demand).

:func:`register` finds the transform that maps fixed-space world points to
moving-space world points (RAS+ mm; medlens's one convention, ITK's too) so that
the moving image pulled onto the fixed grid matches the fixed image. It runs
in stages (rigid, then affine, then deformable as asked), each over a
multi-resolution pyramid, on the CPU or a CUDA device when there is one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from medlens.errors import GeometryError, MedlensError
from medlens.image import Image, resample
from medlens.registration._transforms import (
    AffineTransform,
    DisplacementField,
    Transform,
    compose,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "FinalMetrics",
    "LevelReport",
    "RegistrationError",
    "RegistrationResult",
    "center_of_mass",
    "initial_transform",
    "principal_axes",
    "register",
]

Model = Literal["translation", "rigid", "similarity", "affine", "deformable"]
Metric = Literal["mse", "ncc", "lncc", "mi", "feature"]
Progress = Callable[[str, int, int, int, int, float], None]


class RegistrationError(MedlensError, ValueError):
    """Raised for invalid registration inputs or options."""


@dataclass(frozen=True)
class LevelReport:
    """What happened at one pyramid level of one stage."""

    stage: str
    shrink: int
    spacing: tuple[float, ...]
    iterations: int
    loss: float
    time_s: float


@dataclass(frozen=True)
class FinalMetrics:
    """Similarity of the fixed and the moved image on the fixed grid, where the metric counts.

    Computed on the unsmoothed full-resolution images, over the fixed mask (all
    voxels without one) less ``register``'s ``border_vox`` edge layers.

    ``mse`` is on intensities mapped from the fixed image's [0.5, 99.5]
    percentile range to [0, 1] (with ``metric="mse"`` both images by that
    range, else each image by its own); ``ncc`` is in [-1, 1];
    ``mutual_information`` is Mattes MI in nats (32 bins); ``overlap`` is the
    fraction of fixed (mask) voxels that map inside the moving image.
    """

    mse: float
    ncc: float
    mutual_information: float
    overlap: float


@dataclass(frozen=True)
class RegistrationResult:
    """Result of :func:`register`.

    Attributes
    ----------
    transform : Transform
        Fixed world -> moving world (RAS+ mm). For ``"deformable"`` a composite:
        the displacement field first, then the linear part.
    linear : AffineTransform
        The linear (rigid / similarity / affine) part.
    displacement : DisplacementField or None
        The deformable part on the fixed grid (``"deformable"`` only).
    metrics : FinalMetrics
        Final similarity at full resolution.
    levels : tuple of LevelReport
        One entry per stage and pyramid level.
    time_s : float
        Wall time of the whole registration.
    """

    transform: Transform
    linear: AffineTransform
    displacement: DisplacementField | None
    model: str
    metric: str
    metrics: FinalMetrics
    levels: tuple[LevelReport, ...]
    time_s: float


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------


def _scalar(image: Image) -> npt.NDArray[np.float64]:
    arr = np.asarray(image.array, dtype=np.float64)
    if image.channels:
        arr = arr.mean(axis=0)
    return arr


def center_of_mass(image: Image, mask: Image | None = None) -> npt.NDArray[np.float64]:
    """Intensity-weighted centre of mass in RAS+ world mm (the first image moments).

    Negative intensities are clipped to zero; a mask (same grid) restricts the sum.

    Examples
    --------
    >>> a = np.zeros((5, 5)); a[3, 1] = 2.0
    >>> center_of_mass(Image(a)).tolist()
    [3.0, 1.0, 0.0]
    """
    arr = np.clip(_scalar(image), 0.0, None)
    if mask is not None:
        arr = arr * (np.asarray(mask.array) > 0)
    total = arr.sum()
    if total <= 0:
        raise RegistrationError(
            "cannot take the centre of mass of an image with no positive values")
    # first moments from the marginal sums along each axis
    c = np.array([np.dot(arr.sum(axis=tuple(b for b in range(arr.ndim) if b != a)),
                         np.arange(arr.shape[a], dtype=np.float64)) for a in range(arr.ndim)])
    c /= total
    return np.asarray(image.voxel_to_world(c), dtype=np.float64)


def principal_axes(image: Image, mask: Image | None = None
                   ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Centre of mass and principal axes of the intensity distribution (second moments).

    Negative intensities are clipped to zero; a mask (same grid) restricts the sums.

    Returns
    -------
    center : numpy.ndarray, shape (3,)
        The centre of mass, RAS+ world mm.
    axes : numpy.ndarray, shape (3, 3)
        Columns are the unit principal directions in world space, by decreasing
        second moment (for 2D images the in-plane two, then the plane normal).

    Examples
    --------
    >>> a = np.zeros((9, 9)); a[1:8, 4] = 1.0  # a line along the first axis
    >>> c, axes = principal_axes(Image(a))
    >>> c.tolist(), np.abs(axes[:, 0]).round(6).tolist()
    ([4.0, 4.0, 0.0], [1.0, 0.0, 0.0])
    """
    from medlens.registration._transforms import _grid_points

    arr = np.clip(_scalar(image), 0.0, None)
    if mask is not None:
        arr = arr * (np.asarray(mask.array) > 0)
    center = center_of_mass(image, mask)
    n = image.spatial_ndim
    w = arr.reshape(-1)
    d = (_grid_points(image) - center)[:, :n]
    cov = (d * w[:, None]).T @ d / w.sum()
    vals, vecs = np.linalg.eigh(cov)
    axes = np.eye(3)
    axes[:n, :n] = vecs[:, np.argsort(vals)[::-1]]
    if n == 2:  # in-plane axes of an axial 2D image; the normal last
        axes[:, 2] = [0.0, 0.0, 1.0]
    return center, axes


def _principal_axes_rotation(fixed_axes: np.ndarray, moving_axes: np.ndarray,
                             ndim: int) -> npt.NDArray[np.float64]:
    """The rotation taking the fixed principal axes onto the moving ones, nearest the identity.

    Each axis is known up to its sign; of the sign choices that give a proper
    rotation, the one with the smallest rotation angle is taken.
    """
    import itertools

    best, best_trace = np.eye(3), -np.inf
    for signs in itertools.product((1.0, -1.0), repeat=ndim):
        flip = np.diag([*signs, *([1.0] * (3 - ndim))])
        rot = moving_axes @ flip @ fixed_axes.T
        if np.linalg.det(rot) > 0 and np.trace(rot) > best_trace:
            best, best_trace = rot, float(np.trace(rot))
    return best


def _geometric_center(image: Image) -> npt.NDArray[np.float64]:
    c = (np.array(image.spatial_shape, dtype=np.float64) - 1.0) / 2.0
    return np.asarray(image.voxel_to_world(c), dtype=np.float64)


def initial_transform(
    fixed: Image,
    moving: Image,
    *,
    method: Literal["moments", "principal-axes", "geometry", "none"] = "moments",
    fixed_mask: Image | None = None,
) -> tuple[AffineTransform, npt.NDArray[np.float64]]:
    """Initial translation and centre of rotation (ITK's ``CenteredTransformInitializer``).

    Parameters
    ----------
    fixed, moving : Image
        The images.
    method : {"moments", "principal-axes", "geometry", "none"}
        ``"moments"`` superimposes the intensity centres of mass (first
        moments; ITK's ``MomentsOn``); ``"principal-axes"`` also rotates the
        fixed principal axes (second moments) onto the moving ones, each axis's
        sign chosen for the smallest rotation (so it finds rotations up to 90
        degrees about each axis, and is unreliable for nearly isotropic
        objects, whose axes are ill-defined); ``"geometry"`` superimposes the
        grid centres; ``"none"`` starts from the identity.
    fixed_mask : Image, optional
        Restricts the fixed centre of mass.

    Returns
    -------
    transform : AffineTransform
        A translation (a rotation about ``center`` too with
        ``"principal-axes"``), fixed world -> moving world.
    center : numpy.ndarray, shape (3,)
        The centre of rotation to use (fixed-space, RAS+ mm): the fixed centre
        of mass or grid centre.

    Examples
    --------
    >>> f = np.zeros((8, 8)); f[2, 2] = 1.0
    >>> m = np.zeros((8, 8)); m[5, 3] = 1.0
    >>> t, c = initial_transform(Image(f), Image(m))
    >>> t.translation.tolist(), c.tolist()
    ([3.0, 1.0, 0.0], [2.0, 2.0, 0.0])
    """
    n = fixed.spatial_ndim
    rot = np.eye(3)
    if method == "moments":
        cf = center_of_mass(fixed, fixed_mask)
        cm = center_of_mass(moving)
    elif method == "principal-axes":
        cf, axes_f = principal_axes(fixed, fixed_mask)
        cm, axes_m = principal_axes(moving)
        rot = _principal_axes_rotation(axes_f, axes_m, n)
    elif method == "geometry":
        cf = _geometric_center(fixed)
        cm = _geometric_center(moving)
    elif method == "none":
        cf = _geometric_center(fixed)
        cm = cf
    else:
        raise RegistrationError(
            f"initialization must be moments, principal-axes, geometry or none, got {method!r}")
    if n == 2:
        cf, cm = cf.copy(), cm.copy()
        cf[2] = cm[2] = 0.0
    # y = R (x - cf) + cm
    return AffineTransform(rot, cm - rot @ cf, ndim=n, kind="rigid"), cf


# ---------------------------------------------------------------------------
# Pyramid
# ---------------------------------------------------------------------------


def _intensity_range(arr: npt.NDArray[np.float64]) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(arr, [0.5, 99.5]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _normalise(arr: npt.NDArray[np.float64],
               bounds: tuple[float, float] | None = None) -> npt.NDArray[np.float32]:
    """Map ``bounds`` (default: the [0.5, 99.5] percentiles of ``arr``) to [0, 1], float32."""
    lo, hi = bounds if bounds is not None else _intensity_range(arr)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _level(image: Image, shrink: int, sigma_vox: float = 0.0) -> Image:
    """Gaussian-smoothed (``sigma_vox`` > 0) and resampled to ``shrink`` times the spacing."""
    from scipy import ndimage

    if sigma_vox > 0:
        arr = np.asarray(image.array, dtype=np.float32)
        image = image.with_array(ndimage.gaussian_filter(arr, sigma=sigma_vox, mode="nearest"))
    if shrink == 1:
        return image
    return resample(image, spacing=[s * shrink for s in image.spacing], interpolation="linear")


def _border_weight(shape: tuple[int, ...], border_vox: int) -> npt.NDArray[np.float32]:
    """Ones with the outer ``border_vox`` layers of each axis (longer than 4 of them) at zero."""
    w = np.ones(shape, np.float32)
    for axis, length in enumerate(shape):
        if border_vox > 0 and length > 4 * border_vox:
            idx = np.r_[0:border_vox, length - border_vox:length]
            w[(slice(None),) * axis + (idx,)] = 0.0
    return w


@dataclass
class _Level:
    shrink: int
    fixed: Image
    fixed_affine: torch.Tensor  # 4x4 voxel -> world
    fixed_t: torch.Tensor  # image-shaped
    points: torch.Tensor  # (N, 3) world
    weight: torch.Tensor  # image-shaped fixed mask
    preserve: torch.Tensor | None  # image-shaped soft mask
    moving_t: torch.Tensor  # (1, 1, *S)
    moving_inv: torch.Tensor  # 4x4 world -> voxel
    moving_size: torch.Tensor  # (n,)
    fixed_range: tuple[float, float]
    moving_range: tuple[float, float]


def _grid_world(image: Image) -> npt.NDArray[np.float64]:
    from medlens.registration._transforms import _grid_points

    return _grid_points(image)


def _sample_image(vol: torch.Tensor, vox: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of (1, C, *S) at (N, n) voxel coords -> (C, N), border padding."""
    import torch.nn.functional as F

    n = vox.shape[1]
    g = 2.0 * vox / (size - 1.0).clamp_min(1.0) - 1.0
    g = g.flip(-1)
    if n == 2:
        out = F.grid_sample(vol, g.view(1, -1, 1, 2), mode="bilinear", padding_mode="border",
                            align_corners=True)
    else:
        out = F.grid_sample(vol, g.view(1, -1, 1, 1, 3), mode="bilinear",
                            padding_mode="border", align_corners=True)
    return out.reshape(vol.shape[1], -1)


# ---------------------------------------------------------------------------
# Parameterisations
# ---------------------------------------------------------------------------


def _rot_torch(angles: torch.Tensor, ndim: int) -> torch.Tensor:
    import torch

    one = torch.ones((), dtype=angles.dtype, device=angles.device)
    zero = torch.zeros((), dtype=angles.dtype, device=angles.device)
    if ndim == 2:
        c, s = torch.cos(angles[0]), torch.sin(angles[0])
        return torch.stack([torch.stack([c, -s, zero]), torch.stack([s, c, zero]),
                            torch.stack([zero, zero, one])])
    cx, sx = torch.cos(angles[0]), torch.sin(angles[0])
    cy, sy = torch.cos(angles[1]), torch.sin(angles[1])
    cz, sz = torch.cos(angles[2]), torch.sin(angles[2])
    rx = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, cx, -sx]),
                      torch.stack([zero, sx, cx])])
    ry = torch.stack([torch.stack([cy, zero, sy]), torch.stack([zero, one, zero]),
                      torch.stack([-sy, zero, cy])])
    rz = torch.stack([torch.stack([cz, -sz, zero]), torch.stack([sz, cz, zero]),
                      torch.stack([zero, zero, one])])
    return rz @ ry @ rx


class _LinearModel:
    """y = L(theta) (x - c) + c + t0 + t(theta); parameters scaled to ~mm."""

    def __init__(self, kind: str, ndim: int, base: AffineTransform, center: np.ndarray,
                 radius: float, dtype: Any, device: Any) -> None:
        import torch

        self.kind, self.ndim, self.radius = kind, ndim, radius
        self.center = torch.tensor(center, dtype=dtype, device=device)
        self.a0 = torch.tensor(base.matrix, dtype=dtype, device=device)
        t0 = base.translation + base.matrix @ center - center
        self.t0 = torch.tensor(t0, dtype=dtype, device=device)
        n_rot = 1 if ndim == 2 else 3
        sizes = {"translation": 0, "rigid": n_rot, "similarity": n_rot + 1, "affine": ndim * ndim}
        if kind not in sizes:
            raise RegistrationError(f"unknown linear model {kind!r}")
        self.n_lin = sizes[kind]
        self.theta = torch.zeros(self.n_lin + ndim, dtype=dtype, device=device,
                                 requires_grad=True)

    def matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        n, th, r = self.ndim, self.theta, self.radius
        eye = torch.eye(3, dtype=th.dtype, device=th.device)
        if self.kind == "translation":
            lin = self.a0
        elif self.kind in ("rigid", "similarity"):
            n_rot = 1 if n == 2 else 3
            rot = _rot_torch(th[:n_rot] / r, n)
            if self.kind == "similarity":
                s = torch.exp(th[n_rot] / r)
                scale = torch.ones(3, dtype=th.dtype, device=th.device)
                scale = torch.cat([s.expand(n), scale[n:]])
                rot = rot * scale[:, None]
            lin = rot @ self.a0
        else:
            p = th[: n * n].view(n, n) / r
            upd = torch.zeros(3, 3, dtype=th.dtype, device=th.device)
            upd[:n, :n] = p
            lin = self.a0 + upd
        t = torch.zeros(3, dtype=th.dtype, device=th.device)
        t = t + torch.cat([th[self.n_lin:], torch.zeros(3 - n, dtype=th.dtype,
                                                        device=th.device)])
        _ = eye
        return lin, self.t0 + t

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Matrix and translation of y = A x + b."""
        lin, t = self.matrix()
        return lin, t + self.center - lin @ self.center

    def result(self) -> AffineTransform:
        a, b = self.affine()
        kind = "rigid" if self.kind == "translation" else self.kind
        return AffineTransform(a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy(),
                               ndim=self.ndim, kind=kind)  # type: ignore[arg-type]


def _scaling_squaring(v_vox: torch.Tensor, steps: int) -> torch.Tensor:
    """Exp of a voxel-unit velocity field (1, n, *S) on its own grid."""
    import torch

    n = v_vox.shape[1]
    shape = v_vox.shape[2:]
    size = torch.tensor(list(shape), dtype=v_vox.dtype, device=v_vox.device)
    grids = torch.meshgrid(*[torch.arange(s, dtype=v_vox.dtype, device=v_vox.device)
                             for s in shape], indexing="ij")
    ident = torch.stack(grids).reshape(n, -1).T  # (N, n)
    u = v_vox / (2.0**steps)
    for _ in range(steps):
        flat = u.reshape(n, -1).T
        warped = _sample_image(u, ident + flat, size)  # (n, N)
        u = u + warped.reshape(u.shape)
    return u


def _jacobian_det_vox(u_vox: torch.Tensor) -> torch.Tensor:
    """det(I + grad u) for a voxel-unit displacement (1, n, *S), central differences (interior)."""
    import torch

    n = u_vox.shape[1]
    u = u_vox[0]
    grads = []
    for c in range(n):
        row = []
        for a in range(n):
            d = (u[c].narrow(a, 2, u.shape[1 + a] - 2) - u[c].narrow(a, 0, u.shape[1 + a] - 2)) / 2
            # crop the other axes to the interior
            for b in range(n):
                if b != a:
                    d = d.narrow(b, 1, u.shape[1 + b] - 2)
            row.append(d + (1.0 if a == c else 0.0))
        grads.append(row)
    if n == 2:
        return grads[0][0] * grads[1][1] - grads[0][1] * grads[1][0]
    g = grads
    return (g[0][0] * (g[1][1] * g[2][2] - g[1][2] * g[2][1])
            - g[0][1] * (g[1][0] * g[2][2] - g[1][2] * g[2][0])
            + g[0][2] * (g[1][0] * g[2][1] - g[1][1] * g[2][0]))
    _ = torch


def _diffusion(v_mm: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    n = v_mm.shape[1]
    total = v_mm.new_zeros(())
    for a in range(n):
        d = torch_diff(v_mm, 2 + a) / spacing[a]
        total = total + (d * d).mean()
    return total


def torch_diff(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Forward difference along ``dim``."""
    return x.narrow(dim, 1, x.shape[dim] - 1) - x.narrow(dim, 0, x.shape[dim] - 1)


def _bending(v_mm: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    n = v_mm.shape[1]
    total = v_mm.new_zeros(())
    for a in range(n):
        for b in range(a, n):
            d = torch_diff(torch_diff(v_mm, 2 + a), 2 + b) / (spacing[a] * spacing[b])
            total = total + (1.0 if a == b else 2.0) * (d * d).mean()
    return total


# ---------------------------------------------------------------------------
# The registration driver
# ---------------------------------------------------------------------------


def _default_shrinks(image: Image) -> tuple[int, ...]:
    smallest = min(image.spatial_shape)
    out = [f for f in (8, 4, 2, 1) if smallest / f >= 16]
    return tuple(out[-3:]) if out else (1,)


class _Driver:
    def __init__(self, fixed: Image, moving: Image, *, metric: str, fixed_mask: Image | None,
                 preserve: Image | None, device: Any, encoder: Any, seed: int,
                 max_points: int, sigmas: dict[int, float] | None = None,
                 border_vox: int = 0) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.dtype = torch.float32
        self.n = fixed.spatial_ndim
        self.metric = metric
        # MSE compares intensities as they are, so both images get the fixed image's
        # mapping; separate ranges would offset them wherever the two images' intensity
        # distributions differ (another field of view, zero fill, ringing), biasing the
        # optimum. The other metrics are invariant to it: each image gets its own range.
        f_arr = _scalar(fixed)
        f_range = _intensity_range(f_arr)
        self.fixed = fixed.with_array(_normalise(f_arr, f_range), channels=False)
        self.moving = moving.with_array(
            _normalise(_scalar(moving), f_range if metric == "mse" else None), channels=False)
        self.fixed_mask = None
        if fixed_mask is not None:
            if fixed_mask.spatial_shape != fixed.spatial_shape:
                raise RegistrationError(
                    f"the fixed mask's grid {fixed_mask.spatial_shape} differs from the fixed "
                    f"image's {fixed.spatial_shape}"
                )
            self.fixed_mask = fixed_mask.with_array(
                (np.asarray(fixed_mask.array) > 0).astype(np.float32))
        # where the metric counts at full resolution: the mask, less the border layers
        weight = _border_weight(fixed.spatial_shape, border_vox)
        if self.fixed_mask is not None:
            weight *= np.asarray(self.fixed_mask.array, np.float32)
        if not weight.any():
            raise RegistrationError("the fixed mask (less its border voxels) is empty")
        self.weight = fixed.with_array(weight)
        self.sigmas = dict(sigmas or {})
        self.preserve = None
        if preserve is not None:
            if preserve.spatial_shape != fixed.spatial_shape:
                raise RegistrationError(
                    f"the preserve-volume mask's grid {preserve.spatial_shape} differs from the "
                    f"fixed image's {fixed.spatial_shape}"
                )
            p = np.asarray(preserve.array, dtype=np.float32)
            if p.max() > 1.0:
                p = (p > 0).astype(np.float32)
            self.preserve = preserve.with_array(np.clip(p, 0.0, 1.0))
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.max_points = max_points
        self.feature: Any = None
        if metric == "feature":
            from medlens.registration._similarity import FeatureLoss

            self.feature = FeatureLoss(encoder, ndim=self.n)
            if hasattr(self.feature.encoder, "to"):
                self.feature.encoder.to(device)
        self._levels: dict[tuple[int, float], _Level] = {}
        self._grids: dict[int, torch.Tensor] = {}

    def _points(self, shrink: int, image: Image) -> torch.Tensor:
        """World coordinates ``(N, 3)`` of a level's voxel centres, C order; shared by its forms."""
        if shrink not in self._grids:
            torch = self.torch
            aff = torch.tensor(image.affine, dtype=torch.float64, device=self.device)
            shape = image.spatial_shape
            out = aff[:3, 3].to(self.dtype).expand(*shape, 3).clone()
            for a, length in enumerate(shape):
                idx = torch.arange(length, dtype=torch.float64, device=self.device)
                step = (idx[:, None] * aff[:3, a]).to(self.dtype)  # (length, 3)
                out += step.reshape([length if b == a else 1 for b in range(len(shape))] + [3])
            self._grids[shrink] = out.reshape(-1, 3)
        return self._grids[shrink]

    def level(self, shrink: int, *, smoothed: bool = True) -> _Level:
        """One pyramid level: smoothed by the level's sigma, or (``smoothed=False``) not."""
        sigma = self.sigmas.get(shrink, 0.5 * shrink) if smoothed else 0.0
        key = (shrink, sigma)
        if key in self._levels:
            return self._levels[key]
        torch = self.torch
        f = _level(self.fixed, shrink, sigma)
        m = _level(self.moving, shrink, sigma)
        w = np.asarray(_level(self.weight, shrink).array, np.float32)
        pres = None
        if self.preserve is not None:
            pres = torch.tensor(np.asarray(_level(self.preserve, shrink).array, np.float32),
                                device=self.device)
        fa = np.ascontiguousarray(f.array, dtype=np.float32)
        ma = np.ascontiguousarray(m.array, dtype=np.float32)
        w = np.ascontiguousarray(w, dtype=np.float32)
        lev = _Level(
            shrink=shrink,
            fixed=f,
            fixed_affine=torch.tensor(f.affine, dtype=self.dtype, device=self.device),
            fixed_t=torch.tensor(fa, device=self.device),
            points=self._points(shrink, f),
            weight=torch.tensor(w, device=self.device),
            preserve=pres,
            moving_t=torch.tensor(ma, device=self.device)[None, None],
            moving_inv=torch.tensor(np.linalg.inv(m.affine), dtype=self.dtype,
                                    device=self.device),
            moving_size=torch.tensor(list(m.spatial_shape), dtype=self.dtype, device=self.device),
            fixed_range=(float(fa.min()), float(fa.max())),
            moving_range=(float(ma.min()), float(ma.max())),
        )
        self._levels[key] = lev
        return lev

    def warp(self, lev: _Level, pts: torch.Tensor, a: torch.Tensor,
             b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch.nn.functional as F

        # fixed world -> grid_sample's coordinates of the moving image in one product
        to_grid, grid_off, limit = _grid_map(lev)
        grid = self.torch.addmm(to_grid @ b + grid_off, pts, (to_grid @ a).T)
        inside = (grid.abs() <= limit).all(dim=1).to(self.dtype)
        view = (1, -1, 1, 2) if self.n == 2 else (1, -1, 1, 1, 3)
        vals = F.grid_sample(lev.moving_t, grid.view(view), mode="bilinear",
                             padding_mode="border", align_corners=True).reshape(-1)
        return vals, inside

    def loss(self, lev: _Level, fixed_vals: torch.Tensor, moved: torch.Tensor,
             weight: torch.Tensor, image_shaped: bool, metric: str | None = None) -> torch.Tensor:
        from medlens.registration import _similarity as sim

        metric = metric or self.metric
        if metric == "mse":
            return sim.mse_loss(fixed_vals, moved, weight)
        if metric == "ncc":
            return sim.ncc_loss(fixed_vals, moved, weight)
        if metric == "mi":
            return sim.mattes_mi_loss(fixed_vals, moved, weight, fixed_range=lev.fixed_range,
                                      moving_range=lev.moving_range)
        shape = tuple(lev.fixed_t.shape)
        if not image_shaped:
            raise AssertionError("image-shaped metric evaluated on a subset")
        if metric == "lncc":
            return sim.lncc_loss(fixed_vals.view(shape), moved.view(shape), weight.view(shape))
        return self.feature(lev.fixed_t, moved.view(shape), weight.view(shape))

    def needs_image(self) -> bool:
        return self.metric in ("lncc", "feature")

    def samples(self, lev: _Level, idx: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fixed points, fixed values and weights: the grid, a subset, or jittered (MI)."""
        torch = self.torch
        fv = lev.fixed_t.reshape(-1)
        wv = lev.weight.reshape(-1)
        if idx is None:
            return lev.points, fv, wv
        if self.metric != "mi":
            return lev.points[idx], fv[idx], wv[idx]
        # Mutual information: random off-grid positions (elastix's random-coordinate
        # sampler), interpolating the fixed image too, so that interpolation
        # smoothing does not bias MI towards sub-voxel shifts. (For MSE the
        # off-grid sampling measured worse on the 3D affine benchmark pair.)
        shape = lev.fixed_t.shape
        size = torch.tensor(list(shape), dtype=self.dtype, device=self.device)
        grid_idx = torch.stack(torch.unravel_index(idx, tuple(shape)), dim=1).to(self.dtype)
        jitter = torch.rand(grid_idx.shape, generator=self.gen).to(self.device) - 0.5
        vox = (grid_idx + jitter).clamp(torch.zeros_like(size), size - 1.0)
        aff = lev.fixed_affine
        pts = vox @ aff[:3, : self.n].T + aff[:3, 3]
        vol = torch.stack([lev.fixed_t, lev.weight])[None]
        both = _sample_image(vol, vox, size)
        return pts, both[0], both[1]

    def subset(self, lev: _Level) -> torch.Tensor | None:
        n_pts = lev.points.shape[0]
        limit = min(self.max_points, 20_000) if self.metric == "mi" else self.max_points
        if self.needs_image() or n_pts <= limit:
            return None
        self_limit = limit
        return self.torch.randint(0, n_pts, (self_limit,), generator=self.gen).to(self.device)


def _grid_map(lev: _Level) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World -> ``grid_sample`` coordinates of the level's moving image (last axis first).

    Returns the ``(n, 3)`` matrix and ``(n,)`` offset of ``g = M y + o`` and the
    bound: ``|g| <= limit`` on every axis is within half a voxel of the grid.
    """
    inv, n = lev.moving_inv, int(lev.moving_size.shape[0])
    scale = 2.0 / (lev.moving_size - 1.0).clamp_min(1.0)
    to_grid = (inv[:n, :3] * scale[:, None]).flip(0)
    grid_off = ((inv[:n, 3] * scale) - 1.0).flip(0)
    return to_grid, grid_off, 1.0 + 0.5 * scale.flip(0)


def _schedule(lr0: float, it: int, n_it: int) -> float:
    return lr0 * (0.001 + 0.999 * 0.5 * (1.0 + math.cos(math.pi * it / max(n_it - 1, 1))))


_LM_ALL_VOXELS = 1 << 18  # levels with more voxels run Levenberg-Marquardt on half of them


def _gauss_newton(drv: _Driver, lev: _Level, model: _LinearModel, max_it: int,
                  progress: Progress | None, kind: str, li: int, n_levels: int,
                  tol: float = 1e-4, max_rejects: int = 1) -> tuple[int, float]:
    """Levenberg-Marquardt on the exact MSE over the fixed voxels of one level (no sampling).

    Every voxel of the level counts, or on levels of more than ``_LM_ALL_VOXELS``
    voxels those of one checkerboard colour (even index sum), half of them.

    The residual is ``r(x) = M(T(x)) - F(x)`` with ``M`` linearly interpolated;
    its Jacobian is the exact gradient of that interpolant (torch autograd
    through ``grid_sample``) times ``dT(x)/dtheta``, so the iteration stops where
    the true gradient of the level's MSE vanishes. A step that does not lower
    the loss is rejected and the damping raised. Parameters are in the model's
    mm-equivalent units (angles and matrix entries times the image radius):
    the iteration stops when the largest proposed step is below ``tol`` (mm;
    that step is not taken),
    after ``max_rejects`` rejected steps in a row (linear interpolation makes
    the MSE piecewise smooth, so near its minimum the quadratic model stops
    predicting decreases), or after ``max_it`` iterations. Returns the
    iterations run and the final loss.
    """
    import torch
    n = drv.n
    fv = lev.fixed_t.reshape(-1)
    wv = lev.weight.reshape(-1)
    xc = lev.points - model.center
    if xc.shape[0] > _LM_ALL_VOXELS:
        # a large level: the voxels of one colour of its 3D (2D) checkerboard, half of them
        shape = tuple(lev.fixed_t.shape)
        parity = torch.zeros(shape, dtype=torch.long, device=xc.device)
        for a, length in enumerate(shape):
            parity += torch.arange(length, device=xc.device).reshape(
                [length if d == a else 1 for d in range(n)])
        sel = torch.nonzero((parity % 2 == 0).reshape(-1)).reshape(-1)
        fv, wv, xc = fv[sel], wv[sel], xc[sel]

    def params_map(th: torch.Tensor) -> torch.Tensor:
        old = model.theta
        model.theta = th
        try:
            lin, t = model.matrix()
        finally:
            model.theta = old
        return torch.cat([lin.reshape(-1), t])

    import torch.nn.functional as F

    to_grid, grid_off, limit = _grid_map(lev)
    view = (1, -1, 1, 2) if n == 2 else (1, -1, 1, 1, 3)

    def evaluate(th: torch.Tensor, with_gradient: bool
                 ) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        lin, t = params_map(th).split([9, 3])
        mat = to_grid @ lin.view(3, 3)
        off = to_grid @ (t + model.center) + grid_off
        grid = torch.addmm(off, xc, mat.T)  # (N, n)
        inside = (grid.abs() <= limit).all(dim=1).to(drv.dtype)
        g = None
        if with_gradient:
            with torch.enable_grad():
                grid = grid.detach().requires_grad_(True)
                val = F.grid_sample(lev.moving_t, grid.view(view), mode="bilinear",
                                    padding_mode="border", align_corners=True).reshape(-1)
                (ggrid,) = torch.autograd.grad(val.sum(), grid)
            val = val.detach()
            g = ggrid @ to_grid  # gradient in world mm, (N, 3)
        else:
            val = F.grid_sample(lev.moving_t, grid.view(view), mode="bilinear",
                                padding_mode="border", align_corners=True).reshape(-1)
        w = wv * inside
        r = val - fv
        loss = float((w * r * r).double().sum()) / max(float(w.double().sum()), 1e-12)
        return loss, r, w, g

    # the Gauss-Newton matrix only steers the steps (the gradient decides where they
    # stop), so it is accumulated on a regular subset of at most ~131k points
    stride = max(1, -(-xc.shape[0] // 131_072))
    with torch.no_grad():
        theta = model.theta.detach().clone()
        loss, r, w, g = evaluate(theta, True)
        lam, its, rejects = 1e-3, 0, 0
        hess = grad = None
        for its in range(1, max_it + 1):
            if rejects == 0:
                assert g is not None
                jac = torch.autograd.functional.jacobian(params_map, theta,
                                                      vectorize=True).double()  # (12, P)
                # d r / d (matrix row-major, translation) = (g_i (x - c)_j, g_i)
                wr = (w * r)[:, None] * g
                grad12 = torch.cat([(wr.T @ xc).reshape(-1), wr.sum(0)]).double()
                gs, xs, ws = g[::stride], xc[::stride], w[::stride]
                big = torch.cat([(gs[:, :, None] * xs[:, None, :]).reshape(-1, 9), gs], dim=1)
                hess = jac.T @ ((big.T @ (big * ws[:, None])).double() * stride) @ jac
                grad = jac.T @ grad12
            assert hess is not None and grad is not None
            diag = torch.diagonal(hess).clamp_min(0.0)
            damp = torch.diag(diag * lam + 1e-12 * float(diag.max().clamp_min(1e-30)))
            step = -torch.linalg.solve(hess + damp, grad).to(drv.dtype)
            if float(step.abs().max()) < tol:  # converged; the tiny step is not worth a pass
                if progress is not None:
                    progress(kind, li, n_levels, its, max_it, loss)
                break
            trial = theta + step
            t_loss, t_r, t_w, _ = evaluate(trial, False)
            if t_loss <= loss:
                theta, loss, r, w = trial, t_loss, t_r, t_w
                lam, rejects = max(lam / 10.0, 1e-7), 0
            else:
                lam, rejects = lam * 10.0, rejects + 1
            if progress is not None:
                progress(kind, li, n_levels, its, max_it, loss)
            if rejects >= max_rejects:
                break
            if rejects == 0:
                loss, r, w, g = evaluate(theta, True)
        model.theta = theta.clone().requires_grad_(True)
    return its, loss

def _run_linear(drv: _Driver, kind: str, base: AffineTransform, center: np.ndarray,
                shrinks: Sequence[int], iterations: Sequence[int], lr: float | None,
                progress: Progress | None, reports: list[LevelReport]) -> AffineTransform:
    import torch

    ext = np.array(drv.fixed.spatial_shape) * np.array(drv.fixed.spacing)
    radius = float(np.linalg.norm(ext) / 2.0)
    current = base
    for li, (shrink, n_it) in enumerate(zip(shrinks, iterations, strict=True)):
        t0 = time.perf_counter()
        lev = drv.level(shrink)
        model = _LinearModel(kind, drv.n, current, center, radius, drv.dtype, drv.device)
        if drv.metric == "mse":
            # MSE: deterministic Levenberg-Marquardt on the level's voxels
            # a coarse level only has to bring the next one into its basin: it stops at
            # steps below 1/200 of its voxel; the finest level at 1e-4 mm
            tol = 1e-4 if li == len(shrinks) - 1 else 0.005 * float(min(lev.fixed.spacing))
            done, loss_v = _gauss_newton(drv, lev, model, n_it, progress, kind, li,
                                         len(shrinks), tol=tol)
            current = model.result()
            reports.append(LevelReport(kind, shrink, lev.fixed.spacing, done, loss_v,
                                       time.perf_counter() - t0))
            continue
        lr0 = lr if lr is not None else (0.5 if li == 0 else 0.1) * float(min(lev.fixed.spacing))
        opt = torch.optim.Adam([model.theta], lr=lr0)
        loss_v = float("nan")
        n_avg = max(1, n_it // 2)
        avg: torch.Tensor | None = None
        for it in range(n_it):
            for g in opt.param_groups:
                g["lr"] = _schedule(lr0, it, n_it)
            opt.zero_grad()
            idx = drv.subset(lev)
            pts, fv, wv = drv.samples(lev, idx)
            a, b = model.affine()
            moved, inside = drv.warp(lev, pts, a.to(drv.dtype), b.to(drv.dtype))
            loss = drv.loss(lev, fv, moved, wv * inside, idx is None)
            loss.backward()
            opt.step()
            loss_v = float(loss.detach())
            if idx is not None and it >= n_it - n_avg:
                # Polyak-Ruppert averaging of the stochastic iterates
                with torch.no_grad():
                    avg = model.theta.detach().clone() if avg is None else avg + (
                        model.theta.detach() - avg) / (it - (n_it - n_avg) + 1)
            if progress is not None:
                progress(kind, li, len(shrinks), it + 1, n_it, loss_v)
        if avg is not None:
            with torch.no_grad():
                model.theta.copy_(avg)
        current = model.result()
        reports.append(LevelReport(kind, shrink, lev.fixed.spacing, n_it, loss_v,
                                   time.perf_counter() - t0))
    return current


def _ctrl_grid(fixed: Image, spacing: Sequence[float]) -> Image:
    return resample(fixed.with_array(np.zeros(fixed.spatial_shape, np.float32)),
                    spacing=spacing, interpolation="nearest")


def _to_ctrl_vox(ctrl: Image, pts: np.ndarray) -> npt.NDArray[np.float64]:
    return np.asarray(ctrl.world_to_voxel(pts), dtype=np.float64)


def _run_deformable(drv: _Driver, linear: AffineTransform, shrinks: Sequence[int],
                    iterations: Sequence[int], *, lr: float | None, regularization: str,
                    regularization_weight: float, volume_weight: float, diffeomorphic: bool,
                    steps: int, control_spacing_vox: float, progress: Progress | None,
                    reports: list[LevelReport]) -> DisplacementField:
    """Velocity (or displacement) on a control grid, integrated there, sampled at the points."""
    import torch

    n = drv.n
    a = torch.tensor(linear.matrix, dtype=drv.dtype, device=drv.device)
    b = torch.tensor(linear.translation, dtype=drv.dtype, device=drv.device)
    det_a = float(np.linalg.det(linear.matrix[:n, :n]))
    params: torch.Tensor | None = None
    ctrl: Image | None = None

    def field_of(p: torch.Tensor, grid: Image) -> tuple[torch.Tensor, torch.Tensor]:
        lin = np.asarray(grid.affine[:n, :n], dtype=np.float64)
        lin_t = torch.tensor(lin, dtype=drv.dtype, device=drv.device)
        inv_t = torch.tensor(np.linalg.inv(lin), dtype=drv.dtype, device=drv.device)
        v_vox = torch.einsum("ij,bj...->bi...", inv_t, p)
        u_vox = _scaling_squaring(v_vox, steps) if diffeomorphic else v_vox
        return torch.einsum("ij,bj...->bi...", lin_t, u_vox), u_vox

    for li, (shrink, n_it) in enumerate(zip(shrinks, iterations, strict=True)):
        t0 = time.perf_counter()
        lev = drv.level(shrink)
        new_ctrl = _ctrl_grid(drv.fixed, [s * shrink * control_spacing_vox
                                          for s in drv.fixed.spacing])
        if params is None:
            p0 = torch.zeros((1, n, *new_ctrl.spatial_shape), dtype=drv.dtype, device=drv.device)
        else:
            assert ctrl is not None
            vox = torch.tensor(_to_ctrl_vox(ctrl, _grid_world(new_ctrl)), dtype=drv.dtype,
                               device=drv.device)
            size = torch.tensor(list(ctrl.spatial_shape), dtype=drv.dtype, device=drv.device)
            p0 = _sample_image(params.detach(), vox, size).reshape(
                (1, n, *new_ctrl.spatial_shape))
        ctrl = new_ctrl
        params = p0.clone().requires_grad_(True)
        lvl_vox = torch.tensor(_to_ctrl_vox(ctrl, lev.points.cpu().double().numpy()),
                               dtype=drv.dtype, device=drv.device)
        csize = torch.tensor(list(ctrl.spatial_shape), dtype=drv.dtype, device=drv.device)
        pres = None
        shape = tuple(lev.fixed_t.shape)
        if lev.preserve is not None and volume_weight > 0:
            # the penalty is evaluated on the level's own grid, where the moved image is
            pres = lev.preserve
            for d in range(n):
                pres = pres.narrow(d, 1, pres.shape[d] - 2)
            lvl_inv = torch.tensor(np.linalg.inv(lev.fixed.affine[:n, :n]), dtype=drv.dtype,
                                   device=drv.device)
        sp = ctrl.spacing
        lr0 = lr if lr is not None else 0.25 * float(min(lev.fixed.spacing))
        opt = torch.optim.Adam([params], lr=lr0)
        fv = lev.fixed_t.reshape(-1)
        wv = lev.weight.reshape(-1)
        loss_v = float("nan")
        for it in range(n_it):
            for g in opt.param_groups:
                g["lr"] = _schedule(lr0, it, n_it)
            opt.zero_grad()
            u_mm, _ = field_of(params, ctrl)
            disp = _sample_image(u_mm, lvl_vox, csize).T
            if pres is not None:
                dense = torch.einsum("ij,bj...->bi...", lvl_inv, disp.T.reshape((1, n, *shape)))
            if n == 2:
                disp = torch.cat([disp, torch.zeros_like(disp[:, :1])], dim=1)
            moved, inside = drv.warp(lev, lev.points + disp, a, b)
            loss = drv.loss(lev, fv, moved, wv * inside, True)
            reg = (_bending(params, sp) if regularization == "bending"
                   else _diffusion(params, sp))
            loss = loss + regularization_weight * reg
            if pres is not None:
                jac = _jacobian_det_vox(dense) * det_a
                logj = torch.log(jac.clamp_min(1e-3))
                loss = loss + volume_weight * (pres * logj * logj).sum() / pres.sum().clamp_min(
                    1e-6)
            loss.backward()
            opt.step()
            loss_v = float(loss.detach())
            if progress is not None:
                progress("deformable", li, len(shrinks), it + 1, n_it, loss_v)
        reports.append(LevelReport("deformable", shrink, lev.fixed.spacing, n_it, loss_v,
                                   time.perf_counter() - t0))
    assert params is not None and ctrl is not None
    with torch.no_grad():
        full = drv.fixed
        u_mm, _ = field_of(params, ctrl)
        vox = torch.tensor(_to_ctrl_vox(ctrl, _grid_world(full)), dtype=drv.dtype,
                           device=drv.device)
        csize = torch.tensor(list(ctrl.spatial_shape), dtype=drv.dtype, device=drv.device)
        dense = _sample_image(u_mm, vox, csize).reshape((n, *full.spatial_shape))
        arr = dense.cpu().double().numpy()
    return DisplacementField(Image(arr, full.affine, channels=True))


def _final_metrics(drv: _Driver, linear: AffineTransform,
                   field: DisplacementField | None) -> FinalMetrics:
    """Similarity at full resolution on every fixed voxel (torch, no gradients)."""
    import torch

    from medlens.registration import _similarity as sim

    lev = drv.level(1, smoothed=False)
    with torch.no_grad():
        a = torch.tensor(linear.matrix, dtype=drv.dtype, device=drv.device)
        b = torch.tensor(linear.translation, dtype=drv.dtype, device=drv.device)
        pts = lev.points
        if field is not None:
            u = torch.tensor(np.asarray(field.field.array, np.float32), device=drv.device)
            disp = u.reshape(drv.n, -1).T
            if drv.n == 2:
                disp = torch.cat([disp, torch.zeros_like(disp[:, :1])], dim=1)
            pts = pts + disp
        moved, inside = drv.warp(lev, pts, a, b)
        f = lev.fixed_t.reshape(-1)
        base = lev.weight.reshape(-1)
        w = base * inside
        overlap = float(w.sum() / base.sum().clamp_min(1e-12))
        if float(w.sum()) <= 0:
            return FinalMetrics(mse=float("nan"), ncc=float("nan"),
                                mutual_information=float("nan"), overlap=0.0)
        mse = float(sim.mse_loss(f, moved, w))
        ncc = -float(sim.ncc_loss(f, moved, w))
        mi = -float(sim.mattes_mi_loss(f, moved, w, fixed_range=lev.fixed_range,
                                       moving_range=lev.moving_range))
    return FinalMetrics(mse=mse, ncc=ncc, mutual_information=mi, overlap=overlap)


def _per_level(values: Sequence[int] | int | None, n: int, default: int) -> tuple[int, ...]:
    if values is None:
        return (default,) * n
    if isinstance(values, int):
        return (values,) * n
    v = tuple(int(x) for x in values)
    if len(v) != n:
        raise RegistrationError(f"iterations needs one value per pyramid level ({n}), got {len(v)}")
    return v


def register(
    fixed: Image,
    moving: Image,
    *,
    model: Model = "rigid",
    metric: Metric = "mse",
    fixed_mask: Image | None = None,
    preserve_volume: Image | None = None,
    initialization: Literal["moments", "principal-axes", "geometry", "none"] = "moments",
    initial: AffineTransform | None = None,
    shrink_factors: Sequence[int] | None = None,
    smoothing_sigmas: Sequence[float] | None = None,
    border_vox: int = 1,
    iterations: Sequence[int] | int | None = None,
    deformable_iterations: Sequence[int] | int | None = None,
    learning_rate: float | None = None,
    regularization: Literal["diffusion", "bending"] = "diffusion",
    regularization_weight: float | None = None,
    volume_weight: float = 1.0,
    diffeomorphic: bool = True,
    integration_steps: int = 6,
    control_spacing_vox: float = 2.0,
    encoder: Any = None,
    max_points: int = 20_000,
    device: str | None = None,
    threads: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> RegistrationResult:
    """Register ``moving`` to ``fixed``: find T with ``moved(x) = moving(T(x))`` matching ``fixed``.

    The transform maps fixed-space world points to moving-space world points
    (RAS+ mm; ITK's convention), so :func:`warp_image` (or ``sitk.Resample``
    with the written ITK file) pulls the moving image onto the fixed grid.

    Parameters
    ----------
    fixed, moving : Image
        2D or 3D images (multi-channel ones are averaged to one channel). They
        may have any grids and orientations; everything happens in world space.
    model : {"translation", "rigid", "similarity", "affine", "deformable"}
        ``"deformable"`` runs rigid, affine, then a dense (stationary velocity
        by default) field; the others are one linear stage.
    metric : {"mse", "ncc", "lncc", "mi", "feature"}
        Mean squared error, global or local (windowed, deformable stage only)
        normalised cross-correlation, Mattes mutual information (multimodal),
        or the IMPACT-style feature similarity of ``encoder``. ``"lncc"`` and
        ``"feature"`` use global NCC for the linear stages.
    fixed_mask : Image, optional
        Where the metric is evaluated (fixed grid).
    preserve_volume : Image, optional
        Soft mask (values in [0, 1], fixed grid) of a region whose volume the
        deformable stage keeps: ``volume_weight * mean_mask((log |J|)**2)`` is
        added to the loss, where ``J`` is the Jacobian determinant of the whole
        fixed -> moving map.
    initialization : {"moments", "principal-axes", "geometry", "none"}
        Centre-of-mass, centre-of-mass plus principal-axes rotation, grid-centre
        or identity start (see :func:`initial_transform`; ignored with ``initial``).
    initial : AffineTransform, optional
        Start from this transform (fixed -> moving).
    shrink_factors : sequence of int, optional
        Pyramid levels, coarse to fine (e.g. ``(4, 2, 1)``); chosen from the image size by
        default.
    smoothing_sigmas : sequence of float, optional
        Gaussian smoothing of both images at each level (one value per level, in
        voxels of the full-resolution images), applied before shrinking. By
        default ``shrink / 2`` at every level, the finest (shrink 1, sigma 0.5)
        included, except that ``metric="mi"`` leaves the finest level
        unsmoothed; 0 leaves a level unsmoothed. The metrics evaluated at fixed
        voxel centres compare exact fixed values with linearly interpolated
        moving ones, whose smoothing varies with the sub-voxel offset; a little
        smoothing of both at the finest level makes that bias the optimum less
        (Mattes MI samples random off-grid points, interpolating both images).
        :attr:`RegistrationResult.metrics` are always on the unsmoothed images.
    border_vox : int
        Fixed voxels within this many voxels of the fixed image's edge (at full
        resolution) are left out of the metric, on axes longer than
        ``4 * border_vox``. Their neighbourhood is cut by the field of view, and
        a moving image resampled from data that covered only the fixed field of
        view (zero beyond it) has an artificial edge just there. 0 keeps every
        voxel.
    iterations, deformable_iterations : int or sequence of int, optional
        Gradient steps per level for the linear and deformable stages. With
        ``metric="mse"`` the linear stages run Levenberg-Marquardt on the exact
        MSE over every voxel of each level (over one colour of a checkerboard,
        half of them, on levels of more than 2**18 voxels), and ``iterations``
        is its maximum per level (it stops earlier when converged: largest step
        below 1e-4 mm at the finest level and 1/200 of a voxel at coarser ones,
        or a step that does not lower the loss).
    learning_rate : float, optional
        Adam's initial step in mm-equivalent parameter units (rotations are
        scaled by the image radius); cosine-annealed to 0.1% per level. Not
        used by the linear MSE stages (Levenberg-Marquardt).
    regularization : {"diffusion", "bending"}
        Smoothness penalty of the deformable velocity / displacement field.
    regularization_weight : float, optional
        Weight of the smoothness term; by default 0.01 for MSE (whose values are
        small on [0, 1]-normalised intensities) and 0.1 for the other metrics.
    volume_weight : float
        Weight of the volume-preservation term.
    diffeomorphic : bool
        Integrate a stationary velocity field by scaling and squaring (True) or
        optimise a plain displacement field.
    integration_steps : int
        Squarings of the scaling-and-squaring integration.
    control_spacing_vox : float
        Spacing of the deformable parameter grid, in voxels of each level.
    encoder : torch.nn.Module, optional
        Feature encoder for ``metric="feature"`` (a fixed Gaussian-derivative
        filter bank by default; nothing is downloaded).
    max_points : int
        Point-wise metrics use a fresh random subset of this many fixed voxels
        per step when a level has more (stochastic gradient descent, as elastix).
    device : str, optional
        torch device; CUDA when available, else CPU.
    threads : int, optional
        CPU threads for torch during the call (restored afterwards). 1 by
        default: each step works on at most ``max_points`` points, where
        intra-op thread synchronisation costs more than it gains (measured).
    seed : int
        Seed of the point sampling.
    progress : callable, optional
        Called as ``progress(stage, level, n_levels, iteration, n_iterations, loss)``.

    Returns
    -------
    RegistrationResult

    Raises
    ------
    RegistrationError
        For incompatible images or unknown options.
    """
    import torch

    old_threads = torch.get_num_threads()
    use = threads if threads is not None else 1
    torch.set_num_threads(max(1, int(use)))
    try:
        return _register(fixed, moving, model=model, metric=metric, fixed_mask=fixed_mask,
                         preserve_volume=preserve_volume, initialization=initialization,
                         initial=initial, shrink_factors=shrink_factors, iterations=iterations,
                         deformable_iterations=deformable_iterations,
                         learning_rate=learning_rate, regularization=regularization,
                         regularization_weight=regularization_weight,
                         volume_weight=volume_weight, diffeomorphic=diffeomorphic,
                         integration_steps=integration_steps,
                         control_spacing_vox=control_spacing_vox, encoder=encoder,
                         max_points=max_points, device=device, seed=seed,
                         smoothing_sigmas=smoothing_sigmas, border_vox=border_vox,
                         progress=progress)
    finally:
        torch.set_num_threads(old_threads)


def _register(fixed: Image, moving: Image, *, model: str, metric: str, fixed_mask: Image | None,
              preserve_volume: Image | None, initialization: Any, initial: AffineTransform | None,
              shrink_factors: Sequence[int] | None, iterations: Sequence[int] | int | None,
              deformable_iterations: Sequence[int] | int | None, learning_rate: float | None,
              regularization: str, regularization_weight: float | None, volume_weight: float,
              diffeomorphic: bool, integration_steps: int, control_spacing_vox: float,
              encoder: Any, max_points: int, device: str | None, seed: int,
              smoothing_sigmas: Sequence[float] | None, border_vox: int,
              progress: Progress | None) -> RegistrationResult:
    import torch

    t_start = time.perf_counter()
    if fixed.spatial_ndim != moving.spatial_ndim:
        raise RegistrationError(
            f"fixed image is {fixed.spatial_ndim}D but moving image is {moving.spatial_ndim}D"
        )
    if model not in ("translation", "rigid", "similarity", "affine", "deformable"):
        raise RegistrationError(f"unknown model {model!r}")
    if metric not in ("mse", "ncc", "lncc", "mi", "feature"):
        raise RegistrationError(f"unknown metric {metric!r}")
    n = fixed.spatial_ndim
    if n == 2:
        for name, img in (("fixed", fixed), ("moving", moving)):
            if abs(abs(img.affine[2, 2]) - 1.0) > 1e-6:
                raise GeometryError(f"the {name} 2D image must lie in an axial (x, y) plane")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    shrinks = tuple(int(s) for s in (shrink_factors or _default_shrinks(fixed)))
    if any(s < 1 for s in shrinks):
        raise RegistrationError(f"shrink factors must be >= 1, got {shrinks}")
    its = _per_level(iterations, len(shrinks), 200)
    d_its = _per_level(deformable_iterations, len(shrinks), 100)
    if smoothing_sigmas is None:
        # Mattes MI samples random off-grid points, interpolating both images already
        sigmas = tuple(0.0 if s == 1 and metric == "mi" else 0.5 * s for s in shrinks)
    else:
        sigmas = tuple(float(v) for v in smoothing_sigmas)
        if len(sigmas) != len(shrinks) or any(not v >= 0 for v in sigmas):
            raise RegistrationError(
                f"smoothing_sigmas needs one value >= 0 per pyramid level ({len(shrinks)}), "
                f"got {smoothing_sigmas!r}")
    if int(border_vox) != border_vox or border_vox < 0:
        raise RegistrationError(f"border_vox must be an integer >= 0, got {border_vox!r}")
    drv = _Driver(fixed, moving, metric=metric, fixed_mask=fixed_mask, preserve=preserve_volume,
                  device=device, encoder=encoder, seed=seed, max_points=max_points,
                  sigmas=dict(zip(shrinks, sigmas, strict=True)), border_vox=int(border_vox))
    if initial is not None:
        base = initial
        center = _geometric_center(fixed) if fixed_mask is None else center_of_mass(
            fixed.with_array(np.ones(fixed.spatial_shape)), fixed_mask)
        if n == 2:
            center[2] = 0.0
    else:
        base, center = initial_transform(fixed, moving, method=initialization,
                                         fixed_mask=fixed_mask)
    linear_metric = metric
    if metric in ("lncc", "feature"):
        linear_metric = "ncc"
    reports: list[LevelReport] = []
    drv.metric = linear_metric
    stages = {"translation": ["translation"], "rigid": ["rigid"], "similarity": ["similarity"],
              "affine": ["affine"], "deformable": ["rigid", "affine"]}[model]
    current = base
    for kind in stages:
        current = _run_linear(drv, kind, current, center, shrinks, its, learning_rate, progress,
                              reports)
    drv.metric = metric
    if regularization_weight is None:
        regularization_weight = 0.01 if metric == "mse" else 0.1
    transform: Transform = current
    field = None
    if model == "deformable":
        field = _run_deformable(
            drv, current, shrinks, d_its, lr=learning_rate, regularization=regularization,
            regularization_weight=regularization_weight, volume_weight=volume_weight,
            diffeomorphic=diffeomorphic, steps=integration_steps,
            control_spacing_vox=control_spacing_vox, progress=progress, reports=reports)
        transform = compose(field, current)
    metrics = _final_metrics(drv, current, field)
    return RegistrationResult(
        transform=transform, linear=current, displacement=field, model=model, metric=metric,
        metrics=metrics, levels=tuple(reports), time_s=time.perf_counter() - t_start)
