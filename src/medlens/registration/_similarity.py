"""Differentiable similarity losses for registration (torch; imported on demand).

Every loss takes the fixed image values and the moved (warped) moving values
sampled at the same fixed-space points, plus a weight (the fixed mask times
"the point maps inside the moving image"), and returns a scalar where **lower
is better**. Point-wise losses (MSE, NCC, MI) accept flat ``(N,)`` tensors;
windowed NCC and the feature loss need image-shaped tensors ``(I, J[, K])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "FeatureLoss",
    "GradientEncoder",
    "lncc_loss",
    "mattes_mi_loss",
    "mse_loss",
    "ncc_loss",
]

_EPS = 1e-8


def mse_loss(fixed: torch.Tensor, moved: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared difference.

    Examples
    --------
    >>> import torch
    >>> f = torch.tensor([0.0, 1.0, 2.0]); w = torch.ones(3)
    >>> float(mse_loss(f, f + 1.0, w))
    1.0
    """
    w = weight
    return (w * (fixed - moved) ** 2).sum() / w.sum().clamp_min(_EPS)


def ncc_loss(fixed: torch.Tensor, moved: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Negative global normalised cross-correlation (-1 for a perfect linear match).

    Examples
    --------
    >>> import torch
    >>> f = torch.tensor([0.0, 1.0, 3.0]); w = torch.ones(3)
    >>> round(float(ncc_loss(f, 2.0 * f + 5.0, w)), 6)
    -1.0
    """
    w = weight / weight.sum().clamp_min(_EPS)
    fm = (w * fixed).sum()
    mm = (w * moved).sum()
    df, dm = fixed - fm, moved - mm
    cov = (w * df * dm).sum()
    var = (w * df * df).sum() * (w * dm * dm).sum()
    return -cov / var.clamp_min(_EPS).sqrt()


def _box(x: torch.Tensor, radius_vox: int) -> torch.Tensor:
    """Mean over a cubic window clipped at the border, by cumulative sums along each axis.

    Exact for a box window (separable), and its backward pass is cheap, unlike
    ``avg_pool3d``'s on the CPU.
    """
    import torch

    n = x.ndim - 2
    for axis in range(n):
        dim = 2 + axis
        length = x.shape[dim]
        c = torch.cumsum(x, dim=dim)
        c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim=dim)
        idx = torch.arange(length, device=x.device)
        hi = (idx + radius_vox + 1).clamp(max=length)
        lo = (idx - radius_vox).clamp(min=0)
        count = (hi - lo).to(x.dtype).reshape([-1 if d == dim else 1 for d in range(x.ndim)])
        x = (c.index_select(dim, hi) - c.index_select(dim, lo)) / count
    return x


def lncc_loss(
    fixed: torch.Tensor, moved: torch.Tensor, weight: torch.Tensor, *, radius_vox: int = 4
) -> torch.Tensor:
    """Negative local (windowed) normalised cross-correlation, squared per window (ANTs' CC).

    Parameters
    ----------
    fixed, moved, weight : torch.Tensor
        Image-shaped ``(I, J[, K])`` tensors on the fixed grid.
    radius_vox : int
        Half-width of the cubic window, in voxels.

    Examples
    --------
    >>> import torch
    >>> f = torch.rand(12, 12); w = torch.ones(12, 12)
    >>> bool(float(lncc_loss(f, 3.0 * f + 1.0, w, radius_vox=2)) < -0.99)
    True
    """
    f = fixed[None, None]
    m = moved[None, None]
    w = weight[None, None]
    wm = _box(w, radius_vox).clamp_min(_EPS)
    mf = _box(w * f, radius_vox) / wm
    mmv = _box(w * m, radius_vox) / wm
    cross = _box(w * f * m, radius_vox) / wm - mf * mmv
    vf = (_box(w * f * f, radius_vox) / wm - mf * mf).clamp_min(0.0)
    vm = (_box(w * m * m, radius_vox) / wm - mmv * mmv).clamp_min(0.0)
    cc = cross * cross / (vf * vm + 1e-5)
    return -(w * cc).sum() / w.sum().clamp_min(_EPS)


def _bspline3_weights(u: torch.Tensor) -> torch.Tensor:
    """Cubic B-spline weights of the 4 bins around a sample at fraction ``u`` in [0, 1], (N, 4)."""
    import torch

    u2 = u * u
    u3 = u2 * u
    return torch.stack([(1.0 - u) ** 3, 3.0 * u3 - 6.0 * u2 + 4.0,
                        -3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0, u3], dim=1) / 6.0


def mattes_mi_loss(
    fixed: torch.Tensor,
    moved: torch.Tensor,
    weight: torch.Tensor,
    *,
    bins: int = 32,
    fixed_range: tuple[float, float] | None = None,
    moving_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Negative Mattes mutual information with cubic B-spline Parzen windows (nats).

    The joint histogram uses a zero-order window for the fixed intensities and
    a cubic B-spline window for the moved ones, so the loss is differentiable
    with respect to the moved intensities (Mattes et al. 2003, as in ITK's
    ``MattesMutualInformationImageToImageMetricv4``).

    Parameters
    ----------
    fixed, moved, weight : torch.Tensor
        Flat or image-shaped tensors of the same shape.
    bins : int
        Histogram bins per image.
    fixed_range, moving_range : (float, float), optional
        Intensity ranges mapped onto the bins; the weighted min and max by
        default.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> f = torch.rand(4000, generator=g); w = torch.ones(4000)
    >>> same = -float(mattes_mi_loss(f, 1.0 - f, w))
    >>> indep = -float(mattes_mi_loss(f, torch.rand(4000, generator=g), w))
    >>> same > 1.0 > 0.1 > indep
    True
    """
    import torch

    f = fixed.reshape(-1)
    m = moved.reshape(-1)
    w = weight.reshape(-1)
    if fixed_range is None or moving_range is None:
        sel = w > 0
        if fixed_range is None:
            fixed_range = (float(f[sel].min().detach()), float(f[sel].max().detach()))
        if moving_range is None:
            moving_range = (float(m[sel].min().detach()), float(m[sel].max().detach()))
    pad = 2
    nb = bins - 2 * pad

    def scaled(x: torch.Tensor, r: tuple[float, float]) -> torch.Tensor:
        lo, hi = r
        return pad + (x - lo) / max(hi - lo, _EPS) * (nb - 1)

    # Mattes: zero-order (box) window for the fixed image, cubic B-spline window
    # for the moving image, so only 4 moving bins per sample are non-zero: those
    # from floor(x) - 1 to floor(x) + 2 (zero-weight samples add nothing).
    fi = scaled(f.detach(), fixed_range).round().clamp(0, bins - 1).long()
    xm = scaled(m, moving_range).clamp(1.0, bins - 2.0)
    low = torch.floor(xm.detach()).clamp_max(bins - 3.0)
    wm = _bspline3_weights(xm - low) * w[:, None]
    offs = torch.arange(4, device=m.device)
    flat = ((fi * bins + low.long() - 1)[:, None] + offs[None, :]).reshape(-1)
    joint = torch.zeros(bins * bins, dtype=m.dtype, device=m.device)
    joint = joint.index_add(0, flat, wm.reshape(-1)).view(bins, bins)
    joint = joint / joint.sum().clamp_min(_EPS)
    pf = joint.sum(1, keepdim=True)
    pm = joint.sum(0, keepdim=True)
    ratio = joint / (pf @ pm).clamp_min(1e-12)
    mi = (joint * torch.log(ratio.clamp_min(1e-12))).sum()
    return -mi


class GradientEncoder:
    """A fixed (untrained) feature encoder: Gaussian-derivative filters at several scales.

    It is the default encoder of :class:`FeatureLoss` when no network is given:
    with the ``"cosine2"`` distance it measures the alignment of normalised
    gradient fields, which works across modalities. It is built lazily as a
    ``torch.nn.Module`` by :meth:`module`.

    Parameters
    ----------
    ndim : {2, 3}
        Spatial dimension.
    sigmas_vox : sequence of float
        Gaussian scales in voxels.
    """

    def __init__(self, ndim: int, sigmas_vox: Sequence[float] = (1.0, 2.0)) -> None:
        self.ndim = ndim
        self.sigmas_vox = tuple(float(s) for s in sigmas_vox)

    def module(self) -> torch.nn.Module:
        """The encoder as a ``torch.nn.Module``: ``(B, 1, *S)`` -> ``[(B, ndim, *S), ...]``."""
        import numpy as np
        import torch
        import torch.nn.functional as F

        ndim = self.ndim
        kernels = []
        for s in self.sigmas_vox:
            r = max(1, int(np.ceil(3 * s)))
            x = np.arange(-r, r + 1, dtype=np.float64)
            g = np.exp(-(x**2) / (2 * s * s))
            g /= g.sum()
            dg = -x / (s * s) * g
            ks = []
            for d in range(ndim):
                k = np.ones((1,) * ndim)
                for a in range(ndim):
                    v = dg if a == d else g
                    shape = [1] * ndim
                    shape[a] = len(v)
                    k = k * v.reshape(shape)
                ks.append(k)
            kernels.append((r, torch.tensor(np.stack(ks)[:, None], dtype=torch.float32)))

        class _Enc(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                for i, (_, k) in enumerate(kernels):
                    self.register_buffer(f"k{i}", k)
                self.radii = [r for r, _ in kernels]

            def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
                conv = F.conv2d if ndim == 2 else F.conv3d
                out = []
                for i, r in enumerate(self.radii):
                    k = getattr(self, f"k{i}").to(x.dtype)
                    out.append(conv(x, k, padding=r))
                return out

        return _Enc()


class FeatureLoss:
    """IMPACT-style feature similarity: distances between feature maps of an encoder.

    The fixed and the moved images go through the same encoder (any
    ``torch.nn.Module`` mapping ``(1, 1, *S)`` to one feature map or a list of
    them, e.g. the encoder of a segmentation network; its weights are frozen
    and nothing is downloaded). Each feature map is compared at every location
    and averaged over the (resized) weight mask; the layers' distances are
    averaged.

    Parameters
    ----------
    encoder : torch.nn.Module, optional
        Feature extractor. Default: :class:`GradientEncoder` filters.
    distance : {"l1", "l2", "cosine", "cosine2"}
        Per-location distance over channels: mean absolute or squared
        difference, ``1 - cos`` or ``1 - cos**2`` (sign-invariant, suited to
        gradients of different modalities).
    layers : sequence of int, optional
        Which of the encoder's outputs to use (all by default).
    ndim : int
        Spatial dimension (for the default encoder).
    """

    def __init__(
        self,
        encoder: Any = None,
        *,
        distance: Literal["l1", "l2", "cosine", "cosine2"] | None = None,
        layers: Sequence[int] | None = None,
        ndim: int = 3,
    ) -> None:
        if encoder is None:
            encoder = GradientEncoder(ndim).module()
            distance = distance or "cosine2"
        self.encoder = encoder
        for p in getattr(encoder, "parameters", lambda: [])():
            p.requires_grad_(False)
        if hasattr(encoder, "eval"):
            encoder.eval()
        self.distance = distance or "l1"
        if self.distance not in ("l1", "l2", "cosine", "cosine2"):
            raise ValueError(f"distance must be l1, l2, cosine or cosine2, got {self.distance!r}")
        self.layers = None if layers is None else tuple(layers)
        self._cache: tuple[int, list[torch.Tensor]] | None = None

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        import torch

        out = self.encoder(x[None, None])
        feats = [out] if isinstance(out, torch.Tensor) else list(out)
        if self.layers is not None:
            feats = [feats[i] for i in self.layers]
        return feats

    def __call__(
        self, fixed: torch.Tensor, moved: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """Loss between image-shaped fixed and moved tensors (lower is better)."""
        import torch
        import torch.nn.functional as F

        key = id(fixed)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._features(fixed))
        ff = self._cache[1]
        fm = self._features(moved)
        total = torch.zeros((), dtype=moved.dtype, device=moved.device)
        for a, b in zip(ff, fm, strict=True):
            w = weight[None, None]
            if tuple(w.shape[2:]) != tuple(a.shape[2:]):
                mode = "bilinear" if a.ndim == 4 else "trilinear"
                w = F.interpolate(w, size=a.shape[2:], mode=mode, align_corners=False)
            if self.distance == "l1":
                d = (a - b).abs().mean(1, keepdim=True)
            elif self.distance == "l2":
                d = ((a - b) ** 2).mean(1, keepdim=True)
            else:
                dot = (a * b).sum(1, keepdim=True)
                na = (a * a).sum(1, keepdim=True)
                nb = (b * b).sum(1, keepdim=True)
                eps = 1e-3 * float(na.mean().detach()) + 1e-12
                if self.distance == "cosine":
                    d = 1.0 - dot / (na.sqrt() * nb.sqrt() + eps)
                else:
                    d = 1.0 - dot * dot / ((na + eps) * (nb + eps))
            total = total + (w * d).sum() / w.sum().clamp_min(_EPS)
        return total / len(ff)
