"""Batch augmentation in torch (one ``grid_sample`` for all spatial transforms).

nnU-Net's default augmentation set, with its probabilities: rotation and
scaling (one affine resampling), mirroring, Gaussian noise, Gaussian blur,
multiplicative brightness, contrast, low-resolution simulation and gamma
(also inverted). Parameters are sampled first from a seeded generator and
recorded, then applied by deterministic operations (TorchIO's pattern).

Why our own rather than batchgenerators / TorchIO / MONAI: those transform one
sample at a time (TorchIO and MONAI resample each subject separately, in
float64 for TorchIO via SimpleITK); here the spatial part of a whole batch is
one ``affine_grid`` + ``grid_sample`` call. ``benchmarks/seg_augment.py``
measures both on the same batch; the numbers are in docs/benchmarks.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "augment_batch", "sample_parameters"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges (nnU-Net v2 defaults)."""

    p_rotation: float = 0.2
    rotation_deg: float = 30.0
    p_scale: float = 0.2
    scale: tuple[float, float] = (0.7, 1.4)
    p_mirror_axis: float = 0.5
    mirror_axes: tuple[int, ...] | None = None  # default: all spatial axes
    p_noise: float = 0.1
    noise_variance: tuple[float, float] = (0.0, 0.1)
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_brightness: float = 0.15
    brightness: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    p_lowres: float = 0.25
    lowres_zoom: tuple[float, float] = (0.5, 1.0)
    p_gamma: float = 0.3
    p_gamma_inverted: float = 0.1
    gamma: tuple[float, float] = (0.7, 1.5)
    extra: dict[str, Any] = field(default_factory=dict)


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _p(g: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=g)) < p


def sample_parameters(
    cfg: AugmentConfig, batch: int, dims: int, g: torch.Generator
) -> list[dict[str, Any]]:
    """Draw every random parameter of a batch (one dict per sample)."""
    out = []
    axes = cfg.mirror_axes if cfg.mirror_axes is not None else tuple(range(dims))
    for _ in range(batch):
        p: dict[str, Any] = {}
        n_rot = 3 if dims == 3 else 1
        p["angles"] = [
            math.radians(_u(g, -cfg.rotation_deg, cfg.rotation_deg))
            if _p(g, cfg.p_rotation)
            else 0.0
            for _ in range(n_rot)
        ]
        p["scale"] = _u(g, *cfg.scale) if _p(g, cfg.p_scale) else 1.0
        p["mirror"] = [a for a in axes if _p(g, cfg.p_mirror_axis)]
        p["noise_std"] = math.sqrt(_u(g, *cfg.noise_variance)) if _p(g, cfg.p_noise) else 0.0
        p["noise_seed"] = int(torch.randint(0, 2**31 - 1, (), generator=g))
        p["blur_sigma"] = _u(g, *cfg.blur_sigma) if _p(g, cfg.p_blur) else 0.0
        p["brightness"] = _u(g, *cfg.brightness) if _p(g, cfg.p_brightness) else 1.0
        p["contrast"] = _u(g, *cfg.contrast) if _p(g, cfg.p_contrast) else 1.0
        p["lowres"] = _u(g, *cfg.lowres_zoom) if _p(g, cfg.p_lowres) else 1.0
        p["gamma"] = _u(g, *cfg.gamma) if _p(g, cfg.p_gamma) else 1.0
        p["gamma_inverted"] = _u(g, *cfg.gamma) if _p(g, cfg.p_gamma_inverted) else 1.0
        out.append(p)
    return out


def _rotation(angles: list[float], dims: int) -> torch.Tensor:
    if dims == 2:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return torch.tensor([[c, -s], [s, c]], dtype=torch.float32)
    r = torch.eye(3)
    for ax, a in enumerate(angles):
        c, s = math.cos(a), math.sin(a)
        i, j = [k for k in range(3) if k != ax]
        m = torch.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        r = m @ r
    return r


def _gauss_kernel(sigma: float) -> torch.Tensor:
    rad = max(1, math.ceil(3 * sigma))
    x = torch.arange(-rad, rad + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of one sample ``(C, *spatial)``."""
    k = _gauss_kernel(sigma)
    d = x.ndim - 1
    y = x[None]
    conv = F.conv3d if d == 3 else F.conv2d
    c = x.shape[0]
    for ax in range(d):
        shape = [1] * d
        shape[ax] = len(k)
        w = k.reshape(1, 1, *shape).repeat(c, 1, *([1] * d))
        pad = [0] * (2 * d)
        # F.pad order: last axis first
        pad[2 * (d - 1 - ax)] = pad[2 * (d - 1 - ax) + 1] = len(k) // 2
        y = conv(F.pad(y, pad, mode="replicate"), w, groups=c)
    return y[0]


def augment_batch(
    image: torch.Tensor,
    target: torch.Tensor,
    patch_size: tuple[int, ...],
    params: list[dict[str, Any]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply sampled parameters to a batch.

    Parameters
    ----------
    image : torch.Tensor
        ``(B, C, *region)`` float image regions, each region at least
        ``patch_size`` and centred on the patch (``region - patch`` even).
    target : torch.Tensor
        ``(B, L, *region)`` label (class indices, L = 1) or region maps.
    patch_size : tuple of int
        Output patch size.
    params : list of dict
        From :func:`sample_parameters`.

    Returns
    -------
    image, target : torch.Tensor
        ``(B, C, *patch_size)`` and ``(B, L, *patch_size)``; target keeps its dtype.
    """
    b = image.shape[0]
    d = image.ndim - 2
    region = image.shape[2:]
    # affine_grid works in (x, y, z) = reversed axis order; build theta in array order then flip
    thetas = []
    spatial = any(p["angles"] != [0.0] * len(p["angles"]) or p["scale"] != 1.0 for p in params)
    for p in params:
        # voxel offsets from the centre: in = R/s @ out; normalised coordinates:
        # out_vox = u * P / 2, in_norm = in_vox / (R / 2)  =>  diag(1/R) (R/s) diag(P)
        rot = _rotation(p["angles"], d) / p["scale"]
        inv_r = torch.tensor([1.0 / r for r in region], dtype=torch.float32)
        pp = torch.tensor([float(ps) for ps in patch_size], dtype=torch.float32)
        m = inv_r[:, None] * rot * pp[None, :]
        m = m.flip(0).flip(1)  # array axis order -> affine_grid's (x, y, z)
        thetas.append(torch.cat([m, torch.zeros(d, 1)], 1))
    if spatial:
        theta = torch.stack(thetas)
        size = (b, 1, *patch_size)
        grid = F.affine_grid(theta, list(size), align_corners=False)
        img = F.grid_sample(
            image.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        tgt = F.grid_sample(
            target.float(), grid, mode="nearest", padding_mode="border", align_corners=False
        ).to(target.dtype)
    else:
        sl = tuple(
            slice((r - ps) // 2, (r - ps) // 2 + ps)
            for r, ps in zip(region, patch_size, strict=True)
        )
        img = image[(slice(None), slice(None), *sl)].float().clone()
        tgt = target[(slice(None), slice(None), *sl)].clone()
    out_i, out_t = [], []
    for i, p in enumerate(params):
        x, t = img[i], tgt[i]
        if p["noise_std"] > 0:
            gen = torch.Generator().manual_seed(int(p.get("noise_seed", i)))
            x = x + p["noise_std"] * torch.randn(x.shape, generator=gen)
        if p["blur_sigma"] > 0:
            x = _blur(x, p["blur_sigma"])
        if p["brightness"] != 1.0:
            x = x * p["brightness"]
        if p["contrast"] != 1.0:
            mean = x.mean(dim=tuple(range(1, d + 1)), keepdim=True)
            lo, hi = (
                x.amin(dim=tuple(range(1, d + 1)), keepdim=True),
                x.amax(dim=tuple(range(1, d + 1)), keepdim=True),
            )
            x = ((x - mean) * p["contrast"] + mean).clamp(lo, hi)
        if p["lowres"] < 1.0:
            small = [max(1, round(s * p["lowres"])) for s in x.shape[1:]]
            mode = "trilinear" if d == 3 else "bilinear"
            x = F.interpolate(
                F.interpolate(x[None], size=small, mode="nearest"),
                size=x.shape[1:],
                mode=mode,
                align_corners=False,
            )[0]
        for key, invert in (("gamma_inverted", True), ("gamma", False)):
            g = p[key]
            if g == 1.0:
                continue
            y = -x if invert else x
            mean = y.mean(dim=tuple(range(1, d + 1)), keepdim=True)
            std = y.std(dim=tuple(range(1, d + 1)), keepdim=True)
            lo = y.amin(dim=tuple(range(1, d + 1)), keepdim=True)
            rng = y.amax(dim=tuple(range(1, d + 1)), keepdim=True) - lo
            y = ((y - lo) / (rng + 1e-7)) ** g * (rng + 1e-7) + lo
            # keep the original mean and std (nnU-Net retain_stats)
            y = (y - y.mean(dim=tuple(range(1, d + 1)), keepdim=True)) / (
                y.std(dim=tuple(range(1, d + 1)), keepdim=True) + 1e-8
            ) * std + mean
            x = -y if invert else y
        if p["mirror"]:
            dims = [a + 1 for a in p["mirror"]]
            x = torch.flip(x, dims)
            t = torch.flip(t, dims)
        out_i.append(x)
        out_t.append(t)
    return torch.stack(out_i), torch.stack(out_t)
