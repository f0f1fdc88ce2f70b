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
    """

    kind: str = "varnet"
    num_cascades: int = 4
    chans: int = 8
    pools: int = 3
    sens_chans: int = 4
    sens_pools: int = 3


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


class _NormUNet(nn.Module):
    """U-Net on complex images as two channels, with per-image mean/std normalisation."""

    def __init__(self, chans: int, pools: int) -> None:
        super().__init__()
        self.unet = UNet(2, 2, chans, pools)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, H, W) complex
        r = torch.view_as_real(x).permute(0, 3, 1, 2)  # (B, 2, H, W)
        mean = r.mean(dim=(1, 2, 3), keepdim=True)
        std = r.std(dim=(1, 2, 3), keepdim=True) + 1e-8
        out = self.unet((r - mean) / std) * std + mean
        return torch.view_as_complex(out.permute(0, 2, 3, 1).contiguous())


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
    def __init__(self, chans: int, pools: int) -> None:
        super().__init__()
        self.norm_unet = _NormUNet(chans, pools)

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = kspace.shape
        acs = kspace * _acs_mask(mask)
        imgs = ifft2c_torch(acs).reshape(b * c, h, w)
        maps = self.norm_unet(imgs).reshape(b, c, h, w)
        return maps / _rss(maps).unsqueeze(1)


class _Cascade(nn.Module):
    def __init__(self, chans: int, pools: int) -> None:
        super().__init__()
        self.model = _NormUNet(chans, pools)
        self.eta = nn.Parameter(torch.ones(1))

    def forward(
        self, k: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor
    ) -> torch.Tensor:
        dc = torch.where(mask > 0, k - y, torch.zeros_like(k)) * self.eta
        img = torch.sum(ifft2c_torch(k) * maps.conj(), dim=1)  # reduce
        refined = fft2c_torch(self.model(img).unsqueeze(1) * maps)  # expand
        return k - dc - refined


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
        self.sens = _SensitivityModel(config.sens_chans, config.sens_pools)
        self.cascades = nn.ModuleList(
            [_Cascade(config.chans, config.pools) for _ in range(config.num_cascades)]
        )

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Map masked k-space ``(B, C, H, W)`` (complex) and mask to RSS images ``(B, H, W)``."""
        maps = self.sens(masked_kspace, mask)
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

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Map masked k-space ``(B, C, H, W)`` to refined RSS images ``(B, H, W)``."""
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
    kspace: np.ndarray  # (C, H, W) complex64, scaled
    mask: np.ndarray  # (1, 1, W) float32
    target: np.ndarray  # (H, W) float32, scaled


def _scale(kspace: np.ndarray) -> float:
    from medlens.reconstruction._algorithms import zero_filled

    return float(np.percentile(zero_filled(kspace), 99.5)) or 1.0


def _load_samples(files: Sequence[Path]) -> list[_Sample]:
    from medlens.io import read_fastmri

    out = []
    for f in files:
        vol = read_fastmri(f)
        if vol.mask is None or vol.mask.ndim != 1 or vol.target is None:
            raise ValueError(f"{f}: training needs a column mask and reconstruction_rss")
        if vol.target.shape[-2:] != vol.kspace.shape[-2:]:
            raise ValueError(f"{f}: target must be on the k-space grid (no recon crop)")
        for s in range(vol.kspace.shape[0]):
            k = vol.masked_kspace[s]
            sc = _scale(k)
            out.append(
                _Sample(
                    (k / sc).astype(np.complex64),
                    vol.mask.astype(np.float32)[None, None, :],
                    (vol.target[s] / sc).astype(np.float32),
                )
            )
    return out


def _batch(samples: Sequence[_Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    k = torch.from_numpy(np.stack([s.kspace for s in samples]))
    m = torch.from_numpy(np.stack([s.mask for s in samples]))
    t = torch.from_numpy(np.stack([s.target for s in samples]))
    return k, m, t


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


def _validate(model: nn.Module, samples: Sequence[_Sample]) -> float:
    model.eval()
    vals = []
    with torch.no_grad():
        for s in samples:
            k, m, t = _batch([s])
            vals.append(_psnr(t[0].numpy(), model(k, m)[0].numpy()))
    model.train()
    return float(np.mean(vals)) if vals else float("nan")


def _save(path: Path, payload: dict[str, Any]) -> None:
    from medlens._atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def train(
    train_files: Sequence[str | os.PathLike[str]],
    val_files: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    config: VarNetConfig | None = None,
    time_budget_s: float = 1800.0,
    max_steps: int | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    resume: bool = False,
    checkpoint_every_s: float = 60.0,
    progress: Callable[[int, float, float, float], None] | None = None,
) -> TrainResult:
    """Train a learned reconstructor on fastMRI-layout files within a time budget.

    Each slice is one sample (batch size 1, as in fastMRI), normalised by the
    99.5th percentile of its zero-filled image; the loss is the L1 distance
    to the RSS target. Checkpoints (model, optimiser, step, elapsed time,
    config) are written atomically to ``out_dir/checkpoint.pt`` every
    ``checkpoint_every_s`` and at the end, and a CSV log to
    ``out_dir/log.csv``; with ``resume`` training continues from the
    checkpoint and the budget counts the time already spent.

    Parameters
    ----------
    train_files, val_files : sequence of path
        fastMRI-layout files with a column ``mask`` and ``reconstruction_rss``
        (``medlens recon simulate`` output); validate on another subject.
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
        Adam learning rate.
    seed : int
        Seed of torch and the sample order.
    resume : bool
        Continue from ``out_dir/checkpoint.pt``.
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
        If there are no training samples or a file lacks a mask or target.
    FileNotFoundError
        With ``resume`` when there is no checkpoint.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    log_path = out / "log.csv"
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_s = _load_samples([Path(f) for f in train_files])
    val_s = _load_samples([Path(f) for f in val_files])
    if not train_s:
        raise ValueError("no training slices")
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
    new_log = not (resume and log_path.exists())
    log_f = open(log_path, "a" if not new_log else "w", newline="")
    writer = csv.writer(log_f)
    if new_log:
        writer.writerow(["step", "elapsed_s", "train_loss", "val_psnr"])

    def checkpoint() -> None:
        _save(ckpt_path, {
            "config": asdict(config), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "step": step, "elapsed_s": spent,
            "medlens": "reconstruction.varnet/1",
        })  # fmt: skip

    t_start = time.perf_counter()
    base = spent
    last_ckpt = t_start
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
            if pos >= len(order):
                order, pos = rng.permutation(len(train_s)), 0
            k, m, t = _batch([train_s[order[pos]]])
            pos += 1
            loss = F.l1_loss(model(k, m), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            val = _validate(model, val_s) if step % val_every == 0 else float("nan")
            spent = base + (time.perf_counter() - t_start)
            writer.writerow([step, f"{spent:.2f}", f"{loss.item():.6f}",
                             "" if math.isnan(val) else f"{val:.3f}"])  # fmt: skip
            if progress is not None:
                progress(step, spent, float(loss.item()), val)
            if time.perf_counter() - last_ckpt >= checkpoint_every_s:
                log_f.flush()
                checkpoint()
                last_ckpt = time.perf_counter()
        val = _validate(model, val_s)
        writer.writerow([step, f"{spent:.2f}", "", f"{val:.3f}"])
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
        with torch.no_grad():
            out = self.model(kt, mt)[0].numpy()
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
