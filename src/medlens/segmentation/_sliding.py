"""Sliding-window inference: Gaussian-weighted tiles, batched, optional mirroring TTA."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["gaussian_importance_map", "sliding_window_inference", "tile_starts"]


def tile_starts(size: int, patch: int, step: float) -> list[int]:
    """Tile start positions along one axis (nnU-Net's even spread).

    ``n = ceil((size - patch) / (patch * step)) + 1`` tiles, spread evenly from 0
    to ``size - patch``.

    Examples
    --------
    >>> tile_starts(100, 64, 0.5), tile_starts(64, 64, 0.5), tile_starts(200, 64, 0.5)
    ([0, 18, 36], [0], [0, 27, 54, 82, 109, 136])
    """
    if size <= patch:
        return [0]
    n = math.ceil((size - patch) / (patch * step)) + 1
    actual = (size - patch) / (n - 1)
    return [round(actual * i) for i in range(n)]


def gaussian_importance_map(patch: Sequence[int], *, sigma_scale: float = 0.125) -> torch.Tensor:
    """Gaussian weights over a tile: sigma = patch * 1/8, max 1, no zeros.

    Examples
    --------
    >>> g = gaussian_importance_map((5, 5))
    >>> float(g.max()), bool((g > 0).all()), float(g[2, 2])
    (1.0, True, 1.0)
    """
    axes = []
    for p in patch:
        c = (p - 1) / 2.0
        s = max(p * sigma_scale, 1e-6)
        x = torch.arange(p, dtype=torch.float64)
        axes.append(torch.exp(-0.5 * ((x - c) / s) ** 2))
    g = axes[0]
    for a in axes[1:]:
        g = g[..., None] * a
    g = g / g.max()
    nz = g[g > 0]
    g = torch.where(g > 0, g, nz.min() if nz.numel() else torch.tensor(1.0, dtype=torch.float64))
    return g.float()


def sliding_window_inference(
    net: Callable[[torch.Tensor], torch.Tensor],
    data: torch.Tensor,
    patch_size: Sequence[int],
    *,
    n_outputs: int,
    step: float = 0.5,
    batch_size: int = 4,
    mirror_axes: Sequence[int] | None = None,
    gaussian: bool = True,
    accumulate_dtype: torch.dtype = torch.float32,
    precision: str = "float32",
) -> torch.Tensor:
    """Average network logits over overlapping tiles.

    Every (tile, mirroring) pair is one network input, and ``batch_size`` of
    them go through the network at a time, so mirroring TTA fills the batch
    even when the volume is a single tile (torch's CPU convolutions are much
    slower per sample at batch 1). A tile's mirrored predictions are flipped
    back and averaged, then added to the Gaussian-weighted sum.

    Parameters
    ----------
    net : callable
        Maps ``(B, C, *patch)`` to ``(B, n_outputs, *patch)`` logits.
    data : torch.Tensor
        ``(C, *spatial)`` input. Smaller than the patch along an axis: padded
        with 0 and cropped back.
    patch_size : sequence of int
        Tile size.
    n_outputs : int
        Output channels.
    step : float
        Tile step as a fraction of the patch (0.5 = 50% overlap).
    batch_size : int
        Network inputs (tile-mirroring pairs) per forward pass.
    mirror_axes : sequence of int, optional
        Spatial axes for mirroring test-time augmentation: every subset of them
        is flipped, predicted and flipped back (``2**len`` passes), and the logits
        averaged.
    gaussian : bool
        Weight tiles with :func:`gaussian_importance_map` (else uniformly).
    accumulate_dtype : torch.dtype
        Accumulator precision.
    precision : {"float32", "bfloat16"}
        ``"bfloat16"`` runs the network under CPU bfloat16 autocast (several
        times faster on CPUs with AMX or AVX512-BF16; the logits change by about
        1e-2 of their range, so label maps can differ at boundaries). The
        accumulation stays in ``accumulate_dtype``.

    Returns
    -------
    torch.Tensor
        ``(n_outputs, *spatial)`` weighted mean logits.

    Examples
    --------
    >>> net = torch.nn.Conv3d(1, 2, 3, padding=1)
    >>> x = torch.randn(1, 20, 20, 12)
    >>> a = sliding_window_inference(net, x, (16, 16, 8), n_outputs=2, mirror_axes=(0,))
    >>> b = sliding_window_inference(
    ...     net, x, (16, 16, 8), n_outputs=2, mirror_axes=(0,), batch_size=1
    ... )
    >>> a.shape, bool(torch.allclose(a, b, atol=1e-6))
    (torch.Size([2, 20, 20, 12]), True)
    """
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    d = len(patch_size)
    shape = tuple(data.shape[1:])
    pad = [max(0, p - s) for p, s in zip(patch_size, shape, strict=True)]
    if any(pad):
        widths: list[int] = []
        for pv in reversed(pad):
            widths += [pv // 2, pv - pv // 2]
        data = torch.nn.functional.pad(data, widths, value=0.0)
    full = tuple(data.shape[1:])
    starts = [tile_starts(s, p, step) for s, p in zip(full, patch_size, strict=True)]
    weight = gaussian_importance_map(patch_size) if gaussian else torch.ones(tuple(patch_size))
    weight = weight.to(accumulate_dtype)
    acc = torch.zeros((n_outputs, *full), dtype=accumulate_dtype)
    wsum = torch.zeros(full, dtype=accumulate_dtype)
    flips: list[tuple[int, ...]] = [()]
    if mirror_axes:
        flips = [
            c for r in range(len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)
        ]
    tiles = [
        tuple(slice(s, s + p) for s, p in zip(t, patch_size, strict=True))
        for t in itertools.product(*starts)
    ]
    units = [(ti, f) for ti in range(len(tiles)) for f in range(len(flips))]
    bf16 = precision == "bfloat16"
    from medlens.segmentation._networks import is_channels_last

    channels_last = d == 3 and (
        bf16 or (isinstance(net, torch.nn.Module) and is_channels_last(net))
    )
    partial: dict[int, torch.Tensor] = {}
    done: dict[int, int] = {}
    with torch.no_grad():
        for b0 in range(0, len(units), batch_size):
            chunk = units[b0 : b0 + batch_size]
            x = torch.stack(
                [_flip(data[(slice(None), *tiles[ti])], flips[f], 1) for ti, f in chunk]
            )
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = net(x)
                y = y.float()
            else:
                y = net(x)
            for (ti, f), yi in zip(chunk, y, strict=True):
                yi = _flip(yi, flips[f], 1)
                partial[ti] = yi if ti not in partial else partial[ti] + yi
                done[ti] = done.get(ti, 0) + 1
                if done[ti] == len(flips):
                    o = partial.pop(ti)
                    o = (o / len(flips) if len(flips) > 1 else o).to(accumulate_dtype)
                    acc[(slice(None), *tiles[ti])] += o * weight
                    wsum[tiles[ti]] += weight
    acc /= wsum
    if any(pad):
        sl2 = tuple(slice(pv // 2, pv // 2 + s) for pv, s in zip(pad, shape, strict=True))
        acc = acc[(slice(None), *sl2)]
    assert acc.ndim == d + 1
    return acc


def _flip(t: torch.Tensor, axes: tuple[int, ...], offset: int) -> torch.Tensor:
    """Flip spatial ``axes`` of a tensor whose first ``offset`` axes are not spatial."""
    return torch.flip(t, [a + offset for a in axes]) if axes else t


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detach to a NumPy array."""
    return t.detach().cpu().numpy()
