"""Learned reconstruction: an E2E-VarNet-style unrolled network and a magnitude U-Net.

Imports torch, so it is never imported by :mod:`medlens.reconstruction`;
``import medlens.reconstruction.varnet`` loads it on demand.

The unrolled network follows Sriram et al. (E2E-VarNet, MICCAI 2020): a
sensitivity network estimates coil maps from the ACS (a small U-Net on the
coil images of the centre columns, normalised by their root sum of squares),
then ``num_cascades`` cascades each apply a learned soft data consistency
``k - eta M (k - y)`` plus a U-Net regulariser in the image domain
``F E(U(R(F^H k)))`` (``E``/``R`` expand/reduce with the coil maps). Sizes are
set by :class:`VarNetConfig`; the default (4 cascades, 8 channels) trains on
a CPU. The baseline :class:`MagnitudeUNet` refines the zero-filled RSS image.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medlens.reconstruction._fft_torch import fft2c_torch, ifft2c_torch

__all__ = [
    "LearnedReconstructor",
    "MagnitudeUNet",
    "TrainResult",
    "UNet",
    "VarNet",
    "VarNetConfig",
    "build_model",
    "load_model",
    "object_weight",
    "parameter_count",
    "train",
]


@dataclass(frozen=True)
class VarNetConfig:
    """Architecture of a learned reconstructor.

    Attributes
    ----------
    kind : str
        ``"varnet"`` (unrolled, multi-coil k-space in) or ``"unet"``
        (magnitude U-Net on the zero-filled RSS image).
    num_cascades : int
        Unrolled cascades (VarNet).
    chans : int
        First-level channels of each regulariser U-Net.
    pools : int
        Down-sampling levels of each U-Net.
    sens_chans : int
        First-level channels of the sensitivity U-Net.
    sens_pools : int
        Down-sampling levels of the sensitivity U-Net.
    maps : str
        VarNet coil maps: ``"acs"`` (E2E-VarNet: a residual U-Net refines
        the ACS coil images over their root sum of squares) or ``"espirit"``
        (ESPIRiT calibration on the ACS, as the classical methods use, cropped
        to zero outside the object support; no sensitivity network).
    init : str
        VarNet start: ``"cg"`` (``init_cg_iters`` below) or ``"cs"``: the
        cascades start from ``F S x`` with ``x`` medlens's ESPIRiT +
        L1-wavelet reconstruction with its automatic weight
        (:func:`~medlens.reconstruction.l1_wavelet_reconstruction`, computed
        outside the autograd graph and passed to ``forward`` as ``start``);
        needs ``maps="espirit"``. With zero-initialised regularisers the
        untrained network is then that CS result with its sampled k-space
        replaced by the measured one.
    map_sets : int
        Sets of ESPIRiT maps (``maps="espirit"``, ``init="cs"``): 2 is soft
        SENSE (:func:`~medlens.reconstruction.espirit_maps` with ``sets=2``),
        whose second set covers the pixels where the object meets the edge of
        the field of view; the image then has one component per set
        (``(B, 2, H, W)``), each regulariser U-Net sees both (4 channels), and
        the CS start is the two-set L1-wavelet result. Slices whose second
        set is empty get an all-zero one (their result is the one-set model's
        computation with the second component kept at zero by the maps).
    init_cg_iters : int
        VarNet start (``init="cg"``): 0 starts the cascades from the zero-filled k-space (as
        E2E-VarNet); ``n > 0`` from ``F S x`` with ``x`` after ``n``
        conjugate-gradient SENSE iterations with the estimated maps (from
        zero, no Tikhonov term: early stopping regularises), so the cascades
        refine a parallel-imaging solution instead of learning the unfolding
        from scratch.
    """

    kind: str = "varnet"
    num_cascades: int = 4
    chans: int = 8
    pools: int = 3
    sens_chans: int = 4
    sens_pools: int = 3
    init_cg_iters: int = 10
    maps: str = "acs"
    init: str = "cg"
    map_sets: int = 1


class UNet(nn.Module):
    """A small 2D U-Net (instance norm, leaky ReLU, transpose-conv up-sampling).

    Parameters
    ----------
    in_chans, out_chans : int
        Input and output channels.
    chans : int
        Channels of the first level (doubled per level).
    pools : int
        Down-sampling levels.
    """

    def __init__(self, in_chans: int, out_chans: int, chans: int = 8, pools: int = 3) -> None:
        super().__init__()
        self.down = nn.ModuleList([_conv_block(in_chans, chans)])
        ch = chans
        for _ in range(pools - 1):
            self.down.append(_conv_block(ch, ch * 2))
            ch *= 2
        self.bottom = _conv_block(ch, ch * 2)
        self.up_t = nn.ModuleList()
        self.up = nn.ModuleList()
        for _ in range(pools):
            self.up_t.append(nn.ConvTranspose2d(ch * 2, ch, kernel_size=2, stride=2, bias=False))
            self.up.append(_conv_block(ch * 2, ch))
            ch //= 2
        self.out = nn.Conv2d(chans, out_chans, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_chans, H, W)`` to ``(B, out_chans, H, W)`` (any H, W)."""
        skips = []
        out = x
        for layer in self.down:
            out = layer(out)
            skips.append(out)
            out = F.avg_pool2d(out, 2, ceil_mode=True)
        out = self.bottom(out)
        for t, layer in zip(self.up_t, self.up, strict=True):
            skip = skips.pop()
            out = t(out)
            out = out[..., : skip.shape[-2], : skip.shape[-1]]
            if out.shape[-2:] != skip.shape[-2:]:
                dh, dw = skip.shape[-2] - out.shape[-2], skip.shape[-1] - out.shape[-1]
                out = F.pad(out, (0, dw, 0, dh))
            out = layer(torch.cat([out, skip], dim=1))
        return self.out(out)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.InstanceNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.InstanceNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


class _ComplexUNet(nn.Module):
    """U-Net on complex images as two channels (real, imaginary).

    No per-image mean/std normalisation (fastMRI's ``NormUnet`` has one): the
    data are already scaled by one number per slice (see ``_tensors``), and
    a per-image statistic would differ between a training band of rows and
    the whole slice at inference. The last convolution starts at zero, so at
    initialisation the module is the identity (``residual=True``:
    ``x + U(x)``) or zero (``residual=False``: ``U(x)``, the regulariser term
    of a cascade).
    """

    def __init__(self, chans: int, pools: int, *, residual: bool, sets: int = 1) -> None:
        super().__init__()
        self.unet = UNet(2 * sets, 2 * sets, chans, pools)
        self.residual = residual
        self.sets = sets
        nn.init.zeros_(self.unet.out.weight)
        if self.unet.out.bias is not None:
            nn.init.zeros_(self.unet.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, H, W) complex, or (B, M, H, W) for M > 1 sets; channels (re, im) per set
        one = x.ndim == 3
        if one:
            x = x.unsqueeze(1)
        b, m, h, w = x.shape
        r = torch.view_as_real(x).permute(0, 1, 4, 2, 3).reshape(b, 2 * m, h, w)
        out = self.unet(r)
        if self.residual:
            out = out + r
        out = torch.view_as_complex(out.reshape(b, m, 2, h, w).permute(0, 1, 3, 4, 2).contiguous())
        return out[:, 0] if one else out


def _rss(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return torch.sqrt(torch.sum(x.real**2 + x.imag**2, dim=dim) + 1e-12)


def _acs_mask(mask: torch.Tensor) -> torch.Tensor:
    """Column mask (B, 1, 1, W) -> the contiguous centre run (the ACS) only."""
    w = mask.shape[-1]
    m = mask[..., 0, :].reshape(mask.shape[0], w) > 0
    out = torch.zeros_like(m)
    for b in range(m.shape[0]):
        c = w // 2
        lo, hi = c, c + 1
        while lo > 0 and m[b, lo - 1]:
            lo -= 1
        while hi < w and m[b, hi]:
            hi += 1
        out[b, lo:hi] = True
    return out.reshape(mask.shape[0], 1, 1, w).to(mask.dtype)


class _SensitivityModel(nn.Module):
    """Coil maps from the ACS: a residual U-Net on the low-resolution coil images.

    At initialisation the maps are the ACS coil images divided by their root
    sum of squares (the classical low-resolution estimate); training refines them.
    """

    def __init__(self, chans: int, pools: int) -> None:
        super().__init__()
        self.unet = _ComplexUNet(chans, pools, residual=True)

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = kspace.shape
        acs = kspace * _acs_mask(mask)
        imgs = ifft2c_torch(acs).reshape(b * c, h, w)
        maps = self.unet(imgs).reshape(b, c, h, w)
        return maps / _rss(maps).unsqueeze(1)


class _Cascade(nn.Module):
    """``k - eta M (k - y) - F E(U(R(F^H k)))``; the regulariser term starts at zero."""

    def __init__(self, chans: int, pools: int, sets: int = 1) -> None:
        super().__init__()
        self.model = _ComplexUNet(chans, pools, residual=False, sets=sets)
        self.eta = nn.Parameter(torch.ones(1))

    def forward(
        self, k: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor
    ) -> torch.Tensor:
        dc = torch.where(mask > 0, k - y, torch.zeros_like(k)) * self.eta
        refined = fft2c_torch(_expand(self.model(_reduce(ifft2c_torch(k), maps)), maps))
        return k - dc - refined


def _reduce(coils: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """``S^H``: coil images ``(B, C, H, W)`` to ``(B, H, W)``, ``(B, M, H, W)`` for M sets."""
    if maps.ndim == 5:
        return torch.sum(coils.unsqueeze(1) * maps.conj(), dim=2)
    return torch.sum(coils * maps.conj(), dim=1)


def _expand(x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """``S``: an image (one component per set) to coil images ``(B, C, H, W)``."""
    if maps.ndim == 5:
        return torch.sum(x.unsqueeze(2) * maps, dim=1)
    return x.unsqueeze(1) * maps


def _sense_cg(
    y: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor, iters: int
) -> torch.Tensor:
    """``iters`` CG iterations on ``A^H A x = A^H y`` (``A = M F S``) from zero; ``(B, H, W)``.

    Differentiable (autograd runs through the unrolled iterations).
    """

    def normal(x: torch.Tensor) -> torch.Tensor:
        k = fft2c_torch(maps * x.unsqueeze(1)) * mask
        return torch.sum(ifft2c_torch(k) * maps.conj(), dim=1)

    b = torch.sum(ifft2c_torch(y * mask) * maps.conj(), dim=1)
    x = torch.zeros_like(b)
    r = b
    p = r
    rr = torch.sum(r.real**2 + r.imag**2, dim=(-2, -1), keepdim=True)
    tiny = torch.finfo(rr.dtype).tiny
    for _ in range(iters):
        ap = normal(p)
        pap = torch.sum((p.conj() * ap).real, dim=(-2, -1), keepdim=True)
        alpha = rr / torch.clamp(pap, min=tiny)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = torch.sum(r.real**2 + r.imag**2, dim=(-2, -1), keepdim=True)
        p = r + (rr_new / torch.clamp(rr, min=tiny)) * p
        rr = rr_new
    return x


class VarNet(nn.Module):
    """E2E-VarNet-style unrolled network.

    Parameters
    ----------
    config : VarNetConfig
        Sizes.
    """

    def __init__(self, config: VarNetConfig) -> None:
        super().__init__()
        self.config = config
        if config.maps not in ("acs", "espirit"):
            raise ValueError(f"unknown maps {config.maps!r}; use 'acs' or 'espirit'")
        if config.init not in ("cg", "cs"):
            raise ValueError(f"unknown init {config.init!r}; use 'cg' or 'cs'")
        if config.init == "cs" and config.maps != "espirit":
            raise ValueError("init='cs' needs maps='espirit'")
        if config.map_sets not in (1, 2):
            raise ValueError(f"map_sets must be 1 or 2, got {config.map_sets}")
        if config.map_sets > 1 and config.init != "cs":
            raise ValueError("map_sets=2 needs init='cs' (and maps='espirit')")
        self.sens = (
            _SensitivityModel(config.sens_chans, config.sens_pools)
            if config.maps == "acs"
            else None
        )
        self.cascades = nn.ModuleList(
            [
                _Cascade(config.chans, config.pools, config.map_sets)
                for _ in range(config.num_cascades)
            ]
        )

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        maps: torch.Tensor | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Map masked k-space ``(B, C, H, W)`` (complex) and mask to RSS images ``(B, H, W)``.

        ``maps`` (``(B, C, H, W)``, or ``(B, M, C, H, W)`` with ``config.map_sets
        = M > 1``) are required with ``config.maps == "espirit"`` and ignored
        otherwise (the sensitivity network estimates them); ``start``
        (``(B, H, W)`` complex, or ``(B, M, H, W)``: the CS image) is required
        with ``config.init == "cs"`` and ignored otherwise.
        """
        if self.sens is not None:
            maps = self.sens(masked_kspace, mask)
        elif maps is None:
            raise ValueError("this VarNet uses ESPIRiT maps: pass maps")
        if self.config.init == "cs":
            if start is None:
                raise ValueError("this VarNet starts from a CS image: pass start")
            k = fft2c_torch(_expand(start, maps))
        elif self.config.init_cg_iters > 0:
            x = _sense_cg(masked_kspace, mask, maps, self.config.init_cg_iters)
            k = fft2c_torch(maps * x.unsqueeze(1))
        else:
            k = masked_kspace.clone()
        for cascade in self.cascades:
            k = cascade(k, masked_kspace, mask, maps)
        return _rss(ifft2c_torch(k))


class MagnitudeUNet(nn.Module):
    """Baseline: a residual U-Net on the zero-filled RSS image.

    Parameters
    ----------
    config : VarNetConfig
        ``chans`` and ``pools`` size the U-Net.
    """

    def __init__(self, config: VarNetConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(1, 1, config.chans * 2, config.pools + 1)

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        maps: torch.Tensor | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Map masked k-space ``(B, C, H, W)`` to refined RSS images ``(B, H, W)`` (no maps)."""
        zf = _rss(ifft2c_torch(masked_kspace)).unsqueeze(1)
        return (zf + self.unet(zf))[:, 0]


def build_model(config: VarNetConfig) -> nn.Module:
    """The network a config describes.

    Parameters
    ----------
    config : VarNetConfig
        Architecture.

    Returns
    -------
    torch.nn.Module
        :class:`VarNet` or :class:`MagnitudeUNet`.

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    """
    if config.kind == "varnet":
        return VarNet(config)
    if config.kind == "unet":
        return MagnitudeUNet(config)
    raise ValueError(f"unknown model kind {config.kind!r}; use 'varnet' or 'unet'")


# ---------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class _Sample:
    """One slice: undersampled (``mask`` given) or fully sampled (``mask`` None)."""

    kspace: np.ndarray  # (C, H, W) complex64, zero-filled if undersampled
    mask: np.ndarray | None  # (W,) bool, None for fully sampled slices
    target: np.ndarray  # (H, W) float32
    maps: np.ndarray | None = None  # (C, H, W) complex64 ESPIRiT maps, if the model uses them
    # (mask, CS image (H, W) complex64) pairs for init="cs": fixed masks, precomputed starts
    starts: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    # (H, W) float32 per-pixel loss weights (loss_region="object"); None: the plain L1 loss
    weight: np.ndarray | None = None


#: Loss weight outside the object mask with ``loss_region="object"``.
BACKGROUND_WEIGHT = 0.1


def object_weight(target: np.ndarray, background: float = BACKGROUND_WEIGHT) -> np.ndarray:
    """Per-pixel loss weights: 1 inside the object of ``target``, ``background`` outside.

    The object is :func:`~medlens.reconstruction.object_mask`, the mask the
    reconstruction benchmarks score "inside the object" with: pixels above
    5 % of the target's maximum, closed (3 iterations) and with holes filled.

    Parameters
    ----------
    target : numpy.ndarray
        Reference magnitude image ``(H, W)``.
    background : float
        Weight of the pixels outside the object.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32.

    Examples
    --------
    >>> t = np.zeros((8, 8)); t[2:6, 2:6] = 1.0
    >>> w = object_weight(t)
    >>> print(w[4, 4], w[0, 0])
    1.0 0.1
    """
    from medlens.reconstruction._simulate import object_mask

    return np.where(object_mask(target), np.float32(1.0), np.float32(background)).astype(
        np.float32
    )


def _espirit(kspace: np.ndarray, mask: np.ndarray, sets: int = 1) -> np.ndarray:
    """ESPIRiT maps from the ACS of ``kspace * mask`` (medlens's defaults).

    With ``sets`` > 1 always ``(sets, C, H, W)``: an empty second set is all zero.
    """
    from medlens.reconstruction._run import estimate_maps

    maps = np.asarray(estimate_maps(kspace * mask, mask, "espirit", sets=sets), np.complex64)
    if sets > 1 and maps.ndim == kspace.ndim:
        maps = np.concatenate([maps[None], np.zeros((sets - 1, *maps.shape), np.complex64)])
    return maps


def _cs_start(kspace: np.ndarray, maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ``init="cs"`` start: medlens's automatic L1-wavelet reconstruction (complex)."""
    from medlens.reconstruction._algorithms import l1_wavelet_reconstruction
    from medlens.reconstruction._run import _drop_empty_sets

    # sets: solve with the non-empty ones only (the others, after them, stay zero)
    used = _drop_empty_sets(maps) if maps.ndim == 4 else maps
    # float32 data: the shrinkage factor overflows to -inf where a coefficient is ~0, which
    # clips to the intended 0; silence that warning only
    with np.errstate(over="ignore"):
        x = np.asarray(l1_wavelet_reconstruction(kspace * mask, used, mask=mask), np.complex64)
    if maps.ndim == 4:
        full = np.zeros((maps.shape[0], *x.shape[-2:]), dtype=np.complex64)
        full[: (x.shape[0] if x.ndim == 3 else 1)] = x
        return full
    return x


def _acs_only(num_cols: int, acs: int) -> np.ndarray:
    m = np.zeros(num_cols, dtype=bool)
    c = num_cols // 2
    m[c - acs // 2 : c - acs // 2 + min(acs, num_cols)] = True
    return m


def _scale(kspace: np.ndarray) -> float:
    from medlens.reconstruction._algorithms import zero_filled

    return float(np.percentile(zero_filled(kspace), 99.5)) or 1.0


def _load_samples(
    files: Sequence[Path],
    *,
    espirit: bool = False,
    acs: int = 24,
    cs_accelerations: Sequence[int] = (),
    rng: np.random.Generator | None = None,
    map_sets: int = 1,
    loss_region: str = "full",
) -> list[_Sample]:
    """Slices of fastMRI-layout files; with ``espirit``, their ESPIRiT maps (from the ACS).

    The maps of a fully sampled slice are calibrated on its ``acs`` centre
    columns, which every drawn mask samples, so they serve every drawn mask.
    With ``cs_accelerations`` (``init="cs"``), each slice also gets its CS
    start: for an undersampled slice on its own mask, for a fully sampled one
    on one mask drawn per acceleration (kept for the whole run). With
    ``loss_region="object"`` each slice carries :func:`object_weight` of its
    target.
    """
    from medlens.io import read_fastmri

    out = []
    for f in files:
        vol = read_fastmri(f)
        if vol.target is None:
            raise ValueError(f"{f}: training needs reconstruction_rss")
        if vol.mask is not None and vol.mask.ndim != 1:
            raise ValueError(f"{f}: training needs a column mask (W,), got {vol.mask.shape}")
        if vol.target.shape[-2:] != vol.kspace.shape[-2:]:
            raise ValueError(f"{f}: target must be on the k-space grid (no recon crop)")
        mask = None if vol.mask is None else np.asarray(vol.mask, dtype=bool)
        for s in range(vol.kspace.shape[0]):
            k = vol.masked_kspace[s].astype(np.complex64)
            maps = None
            starts: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
            if espirit:
                cal = _acs_only(k.shape[-1], acs) if mask is None else mask
                maps = _espirit(k, cal, map_sets)
                if cs_accelerations:
                    g = rng or np.random.default_rng(0)
                    masks = (
                        [mask]
                        if mask is not None
                        else [_draw_mask(k.shape[-1], [r], acs, g) for r in cs_accelerations]
                    )
                    starts = tuple((m, _cs_start(k, maps, m)) for m in masks)
            target = vol.target[s].astype(np.float32)
            weight = object_weight(target) if loss_region == "object" else None
            out.append(_Sample(k, mask, target, maps, starts, weight))
    return out


def _augment(sample: _Sample, rng: np.random.Generator) -> _Sample:
    """A fully sampled slice flipped along each axis and transposed, each with probability 1/2.

    Done on the coil images (and target, maps), so the k-space stays that of
    a valid acquisition of the transformed object; the mask is drawn after
    (a transpose swaps the read-out and phase-encoding axes).
    """
    from medlens.reconstruction._fft import fft2c, ifft2c

    flip_h, flip_w, transpose = (bool(b) for b in rng.integers(2, size=3))
    if not (flip_h or flip_w or transpose):
        return sample

    def tf(a: np.ndarray) -> np.ndarray:
        if flip_h:
            a = a[..., ::-1, :]
        if flip_w:
            a = a[..., :, ::-1]
        if transpose:
            a = np.swapaxes(a, -2, -1)
        return np.ascontiguousarray(a)

    k = fft2c(tf(ifft2c(sample.kspace))).astype(np.complex64)
    maps = None if sample.maps is None else tf(sample.maps)
    weight = None if sample.weight is None else tf(sample.weight)
    return _Sample(k, None, tf(sample.target), maps, weight=weight)


def _reflect(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` reflected about index ``n // 2`` of ``axis``, the origin of medlens's centred grids.

    For the centred orthonormal FFT this reflection commutes with the
    transform: reflecting k-space reflects the image, and back.
    """
    n = a.shape[axis]
    return np.take(a, (2 * (n // 2) - np.arange(n)) % n, axis=axis)


def _augment_with_start(
    sample: _Sample, mask: np.ndarray, start: np.ndarray, rng: np.random.Generator
) -> tuple[_Sample, np.ndarray, np.ndarray]:
    """A fully sampled slice, its drawn mask and CS start, reflected along each axis (p = 1/2).

    The reflections are about the grid centre (:func:`_reflect`), so the
    k-space, coil maps, target and start move together in either domain and
    the reflected mask (along the phase-encoding axis ``W``) is again an
    equispaced mask with an ACS block of the same size. The data consistency
    of the reflected slice is exact; the start is the reflected CS image,
    close to but not the same as CS on the reflected data (the wavelets are
    not symmetric). No transposes: they would move the undersampling to the
    read-out axis.
    """
    flip_h, flip_w = (bool(b) for b in rng.integers(2, size=2))
    k, target, maps, weight = sample.kspace, sample.target, sample.maps, sample.weight
    for on, axis in ((flip_h, -2), (flip_w, -1)):
        if not on:
            continue
        k, target, start = _reflect(k, axis), _reflect(target, axis), _reflect(start, axis)
        maps = None if maps is None else _reflect(maps, axis)
        weight = None if weight is None else _reflect(weight, axis)
        if axis == -1:
            mask = _reflect(mask, -1)
    return _Sample(k, None, target, maps, weight=weight), mask, start


def _draw_mask(
    num_cols: int, accelerations: Sequence[int], acs: int, rng: np.random.Generator
) -> np.ndarray:
    """A fastMRI equispaced column mask, ``acs`` centre lines, R drawn from ``accelerations``."""
    from medlens.reconstruction._masks import equispaced_mask

    r = int(accelerations[int(rng.integers(len(accelerations)))])
    return equispaced_mask(
        num_cols, r, num_low_frequencies=min(acs, num_cols), offset=int(rng.integers(r))
    )


def _tensors(
    sample: _Sample,
    mask: np.ndarray | None = None,
    *,
    crop_rows: int | None = None,
    rng: np.random.Generator | None = None,
    start: np.ndarray | None = None,
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None,
    torch.Tensor | None,
]:  # fmt: skip
    """Network inputs ``(1, C, H, W)``, ``(1, 1, 1, W)``, target ``(1, H, W)``, scaled, maps, start.

    The maps ``(1, C, H, W)`` are the sample's ESPIRiT maps (None if it has
    none); ``start`` (the CS image for ``mask``) comes back scaled as
    ``(1, H, W)`` (None if not given); last, the sample's loss weights
    ``(1, H, W)`` (None if it has none), cut to the same band.

    Scaling (the 99.5th percentile of the zero-filled image of the whole
    slice) is the same as :meth:`LearnedReconstructor.reconstruct` applies at
    inference. With ``crop_rows``, a random band of that many rows (the fully
    sampled read-out axis ``H``) is cut out in the hybrid (x, k_y) domain:
    the column mask, and so the aliasing along ``W``, is exactly that of the
    whole slice, at a fraction of the cost per step.
    """
    m = sample.mask if mask is None else mask
    if m is None:
        raise ValueError("a fully sampled slice needs a mask")
    k = sample.kspace * m if sample.mask is None else sample.kspace
    sc = _scale(k)
    target = sample.target
    maps = sample.maps
    weight = sample.weight
    h = k.shape[-2]
    if crop_rows is not None and crop_rows < h:
        from medlens.reconstruction._fft import fftc, ifftc

        r0 = int((rng or np.random.default_rng()).integers(h - crop_rows + 1))
        k = fftc(ifftc(k, axes=(-2,))[:, r0 : r0 + crop_rows], axes=(-2,))
        target = target[r0 : r0 + crop_rows]
        if maps is not None:
            maps = maps[..., r0 : r0 + crop_rows, :]
        if start is not None:
            start = start[..., r0 : r0 + crop_rows, :]
        if weight is not None:
            weight = weight[r0 : r0 + crop_rows]
    kt = torch.from_numpy((k / sc).astype(np.complex64))[None]
    mt = torch.from_numpy(m.astype(np.float32))[None, None, None, :]
    tt = torch.from_numpy(np.ascontiguousarray(target / np.float32(sc), dtype=np.float32))[None]
    st = None if maps is None else torch.from_numpy(np.ascontiguousarray(maps))[None]
    x0 = None if start is None else torch.from_numpy((start / sc).astype(np.complex64))[None]
    wt = None if weight is None else torch.from_numpy(np.ascontiguousarray(weight))[None]
    return kt, mt, tt, st, x0, wt


# ---------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    checkpoint : pathlib.Path
        Final checkpoint.
    steps : int
        Optimiser steps in total (including resumed ones).
    elapsed_s : float
        Training time in total (including resumed time).
    val_psnr : float
        Mean validation PSNR (dB, data range = target max) at the end.
    log : pathlib.Path
        CSV log.
    """

    checkpoint: Path
    steps: int
    elapsed_s: float
    val_psnr: float
    log: Path


def _psnr(ref: np.ndarray, x: np.ndarray) -> float:
    mse = float(np.mean((ref - x) ** 2))
    return 10 * math.log10(float(ref.max()) ** 2 / mse) if mse > 0 else float("inf")


def _validation_masks(
    samples: Sequence[_Sample], accelerations: Sequence[int], acs: int
) -> list[tuple[_Sample, np.ndarray | None]]:
    """Undersampled validation slices as they are; fully sampled ones once per acceleration."""
    out: list[tuple[_Sample, np.ndarray | None]] = []
    rng = np.random.default_rng(12345)
    for s in samples:
        if s.mask is not None:
            out.append((s, None))
            continue
        if s.starts:  # init="cs": the masks the CS starts were computed for
            out.extend((s, m) for m, _ in s.starts)
            continue
        for r in accelerations:
            out.append((s, _draw_mask(s.kspace.shape[-1], [r], acs, rng)))
    return out


def _validate(model: nn.Module, samples: Sequence[tuple[_Sample, np.ndarray | None]]) -> float:
    model.eval()
    vals = []
    with torch.no_grad():
        for s, m in samples:
            x0 = s.starts[0][1] if s.starts and m is None else None
            if s.starts and m is not None:
                x0 = next(x for mm, x in s.starts if np.array_equal(mm, m))
            k, mt, t, st, x0t, _ = _tensors(s, m, start=x0)
            vals.append(_psnr(t[0].numpy(), model(k, mt, st, x0t)[0].numpy()))
    model.train()
    return float(np.mean(vals)) if vals else float("nan")


def _save(path: Path, payload: dict[str, Any]) -> None:
    from medlens._atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


_CHECKPOINT_FORMAT = "reconstruction.varnet/2"


def _cosine_lr(lr: float, fraction: float, floor: float = 0.05) -> float:
    """Cosine decay from ``lr`` to ``floor * lr`` as ``fraction`` of the budget goes 0 -> 1."""
    f = min(max(fraction, 0.0), 1.0)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * f)))


def train(
    train_files: Sequence[str | os.PathLike[str]],
    val_files: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    config: VarNetConfig | None = None,
    time_budget_s: float = 1800.0,
    max_steps: int | None = None,
    lr: float = 1e-3,
    accelerations: Sequence[int] = (4, 8),
    acs: int = 24,
    seed: int = 0,
    resume: bool = False,
    crop_rows: int | None = None,
    augment: bool = False,
    loss_region: str = "full",
    num_threads: int | None = None,
    checkpoint_every_s: float = 60.0,
    progress: Callable[[int, float, float, float], None] | None = None,
) -> TrainResult:
    """Train a learned reconstructor on fastMRI-layout files within a time budget.

    Each slice is one sample (batch size 1, as in fastMRI), normalised by the
    99.5th percentile of its zero-filled image; the loss is the L1 distance to
    the RSS target (weighted with ``loss_region="object"``, see below). Slices
    of fully sampled files (no ``mask``, as fastMRI's training files) get a
    fresh equispaced mask every time they are drawn, its acceleration drawn
    from ``accelerations`` (so one model learns all of them) with ``acs``
    centre lines; slices of undersampled files keep their mask. The learning
    rate decays along a cosine from ``lr`` to ``lr / 20`` over the time budget
    (or over ``max_steps`` if that ends sooner). Checkpoints (model,
    optimiser, step, elapsed time, config) are written atomically to
    ``out_dir/checkpoint.pt`` every ``checkpoint_every_s`` and at the end, and
    a CSV log to ``out_dir/log.csv``; with ``resume`` training continues from
    the checkpoint and the budget counts the time already spent (validation
    time included).

    Parameters
    ----------
    train_files, val_files : sequence of path
        fastMRI-layout files with ``reconstruction_rss`` on the k-space grid,
        fully sampled or with a column ``mask`` (``medlens recon simulate``
        output); validate on another subject.
    out_dir : path
        Output folder.
    config : VarNetConfig, optional
        Architecture (default :class:`VarNetConfig`); ignored on resume (the
        checkpoint's is used).
    time_budget_s : float
        Wall-clock budget of the whole training, seconds.
    max_steps : int, optional
        Stop after this many steps in total.
    lr : float
        Initial Adam learning rate.
    accelerations : sequence of int
        Accelerations of the masks drawn for fully sampled slices (and of the
        fixed masks used to validate on fully sampled validation slices).
    acs : int
        Centre lines of the drawn masks.
    seed : int
        Seed of torch, the sample order and the drawn masks.
    resume : bool
        Continue from ``out_dir/checkpoint.pt``.
    crop_rows : int, optional
        Train on random bands of this many read-out rows of each slice
        (cut in the hybrid domain, so the aliasing is unchanged); None uses
        whole slices. Validation always uses whole slices.
    augment : bool
        Flip fully sampled training slices along each axis and transpose
        them, each with probability 1/2, before drawing the mask. With
        ``init="cs"`` (precomputed masks and starts) the slice, its mask and
        its start are reflected about the grid centre along each axis, each
        with probability 1/2, and not transposed.
    loss_region : str
        ``"full"``: the mean absolute error over the whole image.
        ``"object"``: a weighted mean with weight 1 inside the target's
        object mask (:func:`object_weight`) and :data:`BACKGROUND_WEIGHT`
        outside, so that the RSS noise floor of the background, which no
        reconstruction can predict beyond its mean and whose L1 gradient
        does not shrink as the fit improves, does not take half of every
        step. The mask comes from the training target only; the network
        never sees it.
    num_threads : int, optional
        ``torch.set_num_threads`` for the run (torch's default if None).
    checkpoint_every_s : float
        Seconds between checkpoints.
    progress : callable, optional
        ``progress(step, elapsed_s, train_loss, val_psnr)`` after each step
        (``val_psnr`` NaN between validations).

    Returns
    -------
    TrainResult
        Final checkpoint, step count, time and validation PSNR.

    Raises
    ------
    ValueError
        If there are no training samples, a file lacks a target or has a 2D
        mask, ``accelerations`` is empty or ``loss_region`` is unknown.
    FileNotFoundError
        With ``resume`` when there is no checkpoint.
    """
    if not accelerations or any(int(r) < 1 for r in accelerations):
        raise ValueError(f"accelerations must be positive integers, got {accelerations!r}")
    if loss_region not in ("full", "object"):
        raise ValueError(f"loss_region must be 'full' or 'object', got {loss_region!r}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _train(
            train_files, val_files, out_dir, config=config, time_budget_s=time_budget_s,
            max_steps=max_steps, lr=lr, accelerations=accelerations, acs=acs, seed=seed,
            resume=resume, crop_rows=crop_rows, augment=augment, loss_region=loss_region,
            checkpoint_every_s=checkpoint_every_s, progress=progress,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads_before)


def _train(
    train_files: Sequence[str | os.PathLike[str]],
    val_files: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    config: VarNetConfig | None,
    time_budget_s: float,
    max_steps: int | None,
    lr: float,
    accelerations: Sequence[int],
    acs: int,
    seed: int,
    resume: bool,
    crop_rows: int | None,
    augment: bool,
    loss_region: str,
    checkpoint_every_s: float,
    progress: Callable[[int, float, float, float], None] | None,
) -> TrainResult:
    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pt"
    log_path = out / "log.csv"
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # the clock starts before the data are loaded: ESPIRiT calibration counts against the budget
    t_start = time.perf_counter()
    step, spent = 0, 0.0
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"{ckpt_path}: no checkpoint to resume from")
        payload = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        config = VarNetConfig(**payload["config"])
        model = build_model(config)
        model.load_state_dict(payload["model"])
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        opt.load_state_dict(payload["optimizer"])
        step, spent = int(payload["step"]), float(payload["elapsed_s"])
        rng = np.random.default_rng(seed + step)
    else:
        config = config or VarNetConfig()
        model = build_model(config)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    espirit = config.kind == "varnet" and config.maps == "espirit"
    cs_acc = tuple(accelerations) if espirit and config.init == "cs" else ()
    sets = config.map_sets if espirit else 1
    train_s = _load_samples(
        [Path(f) for f in train_files], espirit=espirit, acs=acs, cs_accelerations=cs_acc,
        rng=np.random.default_rng(seed + 1), map_sets=sets, loss_region=loss_region,
    )  # fmt: skip
    val_raw = _load_samples(
        [Path(f) for f in val_files], espirit=espirit, acs=acs, cs_accelerations=cs_acc,
        rng=np.random.default_rng(12345), map_sets=sets,
    )  # fmt: skip
    val_s = _validation_masks(val_raw, accelerations, acs)
    if not train_s:
        raise ValueError("no training slices")
    new_log = not (resume and log_path.exists())
    log_f = open(log_path, "a" if not new_log else "w", newline="")
    writer = csv.writer(log_f)
    if new_log:
        writer.writerow(["step", "elapsed_s", "train_loss", "val_psnr", "lr"])

    def checkpoint() -> None:
        _save(ckpt_path, {
            "config": asdict(config), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "step": step, "elapsed_s": spent,
            "medlens": _CHECKPOINT_FORMAT,
        })  # fmt: skip

    base = spent
    last_ckpt = time.perf_counter()
    val_every = max(len(train_s), 20)
    val = float("nan")
    order = rng.permutation(len(train_s))
    pos = 0
    model.train()
    try:
        while True:
            spent = base + (time.perf_counter() - t_start)
            if spent >= time_budget_s or (max_steps is not None and step >= max_steps):
                break
            frac = spent / time_budget_s
            if max_steps is not None:
                frac = max(frac, step / max_steps)
            cur_lr = _cosine_lr(lr, frac)
            for group in opt.param_groups:
                group["lr"] = cur_lr
            if pos >= len(order):
                order, pos = rng.permutation(len(train_s)), 0
            sample = train_s[order[pos]]
            pos += 1
            x0 = None
            if sample.starts:  # init="cs": one of the precomputed (mask, start) pairs
                mm, x0 = sample.starts[int(rng.integers(len(sample.starts)))]
                drawn = None if sample.mask is not None else mm
                if augment and sample.mask is None:
                    sample, drawn, x0 = _augment_with_start(sample, mm, x0, rng)
            else:
                if augment and sample.mask is None:
                    sample = _augment(sample, rng)
                drawn = (
                    _draw_mask(sample.kspace.shape[-1], accelerations, acs, rng)
                    if sample.mask is None
                    else None
                )
            k, m, t, st, x0t, wt = _tensors(sample, drawn, crop_rows=crop_rows, rng=rng,
                                            start=x0)  # fmt: skip
            out = model(k, m, st, x0t)
            if wt is None:
                loss = F.l1_loss(out, t)
            else:
                loss = (wt * (out - t).abs()).sum() / wt.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            val = _validate(model, val_s) if step % val_every == 0 else float("nan")
            spent = base + (time.perf_counter() - t_start)
            writer.writerow([step, f"{spent:.2f}", f"{loss.item():.6f}",
                             "" if math.isnan(val) else f"{val:.3f}", f"{cur_lr:.3g}"])  # fmt: skip
            if progress is not None:
                progress(step, spent, float(loss.item()), val)
            if time.perf_counter() - last_ckpt >= checkpoint_every_s:
                log_f.flush()
                checkpoint()
                last_ckpt = time.perf_counter()
        val = _validate(model, val_s)
        writer.writerow([step, f"{spent:.2f}", "", f"{val:.3f}", ""])
        checkpoint()
    finally:
        log_f.close()
    return TrainResult(ckpt_path, step, spent, val, log_path)


class LearnedReconstructor:
    """A trained network ready to reconstruct single slices.

    Parameters
    ----------
    model : torch.nn.Module
        :class:`VarNet` or :class:`MagnitudeUNet`.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def reconstruct(self, kspace: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Magnitude image ``(H, W)`` float32 from zero-filled k-space ``(C, H, W)``.

        Parameters
        ----------
        kspace : numpy.ndarray
            Zero-filled centred k-space.
        mask : numpy.ndarray of bool, shape (W,), optional
            Column mask (inferred if None).

        Returns
        -------
        numpy.ndarray
            Reconstruction in the data's intensity units.

        Raises
        ------
        ValueError
            If the mask is not a column mask.
        """
        from medlens.reconstruction._algorithms import infer_mask

        k = np.asarray(kspace)
        m = infer_mask(k) if mask is None else np.asarray(mask, dtype=bool)
        if m.ndim != 1:
            raise ValueError(f"the learned models need a column mask (W,), got shape {m.shape}")
        sc = _scale(k * m)
        kt = torch.from_numpy((k * m / sc).astype(np.complex64))[None]
        mt = torch.from_numpy(m.astype(np.float32))[None, None, None, :]
        st = x0 = None
        config = getattr(self.model, "config", None)
        if config is not None and config.kind == "varnet" and config.maps == "espirit":
            maps = _espirit(k, m, config.map_sets)
            st = torch.from_numpy(maps)[None]
            if config.init == "cs":
                x0 = torch.from_numpy((_cs_start(k, maps, m) / sc).astype(np.complex64))[None]
        with torch.no_grad():
            out = self.model(kt, mt, st, x0)[0].numpy()
        return (out * sc).astype(np.float32)


def load_model(path: str | os.PathLike[str]) -> LearnedReconstructor:
    """Load a checkpoint written by :func:`train`.

    Parameters
    ----------
    path : path
        ``checkpoint.pt`` (or the folder holding it).

    Returns
    -------
    LearnedReconstructor
        The network in evaluation mode.

    Raises
    ------
    medlens.MedlensError
        If the file is missing or not a medlens reconstruction checkpoint.
    """
    from medlens.errors import MedlensError

    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.exists():
        raise MedlensError(f"{p}: no such checkpoint")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=False)
        if payload.get("medlens") != _CHECKPOINT_FORMAT:
            raise ValueError(
                f"format {payload.get('medlens')!r}, this medlens reads {_CHECKPOINT_FORMAT!r}"
            )
        config = VarNetConfig(**payload["config"])
        model = build_model(config)
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError, OSError, ValueError) as e:
        raise MedlensError(f"{p}: not a medlens reconstruction checkpoint ({e})") from None
    return LearnedReconstructor(model)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters.

    Parameters
    ----------
    model : torch.nn.Module
        Network.

    Returns
    -------
    int
        Trainable parameters.
    """
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
