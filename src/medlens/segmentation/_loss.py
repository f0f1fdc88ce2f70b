"""Losses: Dice + cross-entropy (softmax) or Dice + BCE (sigmoid, regions), deep supervision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DeepSupervisionLoss", "DiceCELoss", "deep_supervision_weights", "soft_dice"]


def soft_dice(
    probs: torch.Tensor, onehot: torch.Tensor, *, batch_dice: bool = False, smooth: float = 1e-5
) -> torch.Tensor:
    """Soft Dice per channel, ``(2 tp + s) / (2 tp + fp + fn + s)``.

    Returns shape ``(C,)`` with ``batch_dice`` (sums over batch and space),
    else ``(B, C)``.

    Examples
    --------
    >>> p = torch.tensor([[[1.0, 0.5, 0.0]]])
    >>> t = torch.tensor([[[1.0, 1.0, 0.0]]])
    >>> round(float(soft_dice(p, t, smooth=0.0)), 4)  # 2*1.5 / (2*1.5 + 0 + 0.5)
    0.8571
    """
    axes = tuple(range(2, probs.ndim))
    if batch_dice:
        axes = (0, *axes)
    tp = (probs * onehot).sum(axes)
    fp = (probs * (1 - onehot)).sum(axes)
    fn = ((1 - probs) * onehot).sum(axes)
    return (2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp_min(1e-8)


class DiceCELoss(nn.Module):
    """``CE + (1 - mean foreground soft Dice)``, or ``BCE + (1 - mean region Dice)``.

    Parameters
    ----------
    region_based : bool
        Targets are ``(B, R, ...)`` binary region maps and outputs go through a
        sigmoid (BraTS-style overlapping regions); else targets are class
        indices ``(B, 1, ...)`` and outputs go through a softmax.
    batch_dice : bool
        Dice over the whole batch (nnU-Net's ``batch_dice``) or per sample.
    include_background : bool
        Softmax case: include class 0 in the Dice term (nnU-Net: no).
    """

    def __init__(
        self,
        *,
        region_based: bool = False,
        batch_dice: bool = False,
        include_background: bool = False,
        smooth: float = 1e-5,
    ) -> None:
        super().__init__()
        self.region_based = region_based
        self.batch_dice = batch_dice
        self.include_background = include_background
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of one output; ``target`` as described in the class docstring."""
        if self.region_based:
            t = target.to(logits.dtype)
            bce = F.binary_cross_entropy_with_logits(logits, t)
            dice = soft_dice(
                torch.sigmoid(logits), t, batch_dice=self.batch_dice, smooth=self.smooth
            )
            return bce + (1.0 - dice.mean())
        idx = target[:, 0].long()
        ce = F.cross_entropy(logits, idx)
        probs = torch.softmax(logits, 1)
        onehot = F.one_hot(idx, logits.shape[1]).movedim(-1, 1).to(probs.dtype)
        dice = soft_dice(probs, onehot, batch_dice=self.batch_dice, smooth=self.smooth)
        if not self.include_background:
            dice = dice[..., 1:]
        return ce + (1.0 - dice.mean())


def deep_supervision_weights(n: int) -> list[float]:
    """nnU-Net's weights: 1/2^i, the lowest resolution 0, normalised to sum 1.

    Examples
    --------
    >>> [round(w, 4) for w in deep_supervision_weights(4)]
    [0.5714, 0.2857, 0.1429, 0.0]
    """
    w = [1.0 / 2**i for i in range(n)]
    if n > 1:
        w[-1] = 0.0
    s = sum(w)
    return [x / s for x in w]


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of a loss over outputs at decreasing resolutions.

    Targets are downsampled to each output's shape by nearest-neighbour
    interpolation (label values are never mixed).
    """

    def __init__(self, loss: nn.Module, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.weights = None if weights is None else list(weights)

    def forward(
        self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """Loss of one output or of a deep-supervision list (full resolution first)."""
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target)
        w = self.weights or deep_supervision_weights(len(outputs))
        total = outputs[0].new_zeros(())
        for o, wi in zip(outputs, w, strict=False):
            if wi == 0:
                continue
            t = target
            if tuple(t.shape[2:]) != tuple(o.shape[2:]):
                t = F.interpolate(target.float(), size=o.shape[2:], mode="nearest").to(target.dtype)
            total = total + wi * self.loss(o, t)
        return total
