"""Segmentation networks: a configurable U-Net and a MedNeXt-style variant.

Both are plain :class:`torch.nn.Module` objects built from one frozen
:class:`NetworkConfig`; no subclass per setting. This module imports torch and is
only loaded on demand (``import medlens.segmentation`` does not load it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from medlens.segmentation._config import NetworkConfig
from medlens.segmentation._fused import available as _fused_available
from medlens.segmentation._fused import norm_act_

__all__ = [
    "MedNeXt",
    "NetworkConfig",
    "UNet",
    "build_network",
    "count_parameters",
    "inference_network",
]


def _conv(d: int) -> Any:
    return nn.Conv3d if d == 3 else nn.Conv2d


def _convT(d: int) -> Any:
    return nn.ConvTranspose3d if d == 3 else nn.ConvTranspose2d


def _inorm(d: int, c: int) -> nn.Module:
    cls = nn.InstanceNorm3d if d == 3 else nn.InstanceNorm2d
    return cls(c, eps=1e-5, affine=True)


class _ConvBlock(nn.Sequential):
    """Conv -> instance norm -> leaky ReLU (nnU-Net's ConvDropoutNormReLU)."""

    def __init__(self, d: int, cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int]):
        pad = tuple(k // 2 for k in kernel)
        super().__init__(
            _conv(d)(cin, cout, tuple(kernel), tuple(stride), pad, bias=True),
            _inorm(d, cout),
            nn.LeakyReLU(0.01, inplace=True),
        )


class _MedNeXtBlock(nn.Module):
    """Depthwise conv -> GroupNorm -> 1x1 expand -> GELU -> 1x1 project, residual."""

    def __init__(
        self,
        d: int,
        cin: int,
        cout: int,
        kernel: Sequence[int],
        stride: Sequence[int],
        expansion: int,
        up: bool = False,
    ) -> None:
        super().__init__()
        pad = tuple(k // 2 for k in kernel)
        self.up = up
        strided = any(s > 1 for s in stride)
        if up and strided:
            # transposed depthwise conv with kernel == stride doubles the grid
            self.dw: nn.Module = _convT(d)(cin, cin, tuple(stride), tuple(stride), groups=cin)
        else:
            self.dw = _conv(d)(cin, cin, tuple(kernel), tuple(stride), pad, groups=cin)
        self.norm = nn.GroupNorm(cin, cin)
        self.expand = _conv(d)(cin, expansion * cin, 1)
        self.act = nn.GELU()
        self.project = _conv(d)(expansion * cin, cout, 1)
        self.res: nn.Module | None = None
        if strided or cin != cout:
            if up and strided:
                self.res = _convT(d)(cin, cout, tuple(stride), tuple(stride))
            else:
                self.res = _conv(d)(cin, cout, 1, tuple(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.act(self.expand(self.norm(self.dw(x)))))
        return y + (x if self.res is None else self.res(x))


class UNet(nn.Module):
    """Plain-convolution U-Net in nnU-Net's layout, from a :class:`NetworkConfig`.

    Encoder stage *s*: one conv with stride ``strides[s]`` then
    ``convs_per_stage - 1`` convs (each conv, instance norm, leaky ReLU 0.01).
    Decoder: transposed conv (kernel = stride), concatenation with the skip,
    ``convs_per_stage`` convs, and a 1x1 segmentation head per decoder stage for
    deep supervision.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        d, f = config.spatial_dims, config.features
        self.encoder = nn.ModuleList()
        cin = config.in_channels
        for s, cout in enumerate(f):
            k, st = config.kernel_sizes[s], config.strides[s]
            blocks = [_ConvBlock(d, cin, cout, k, st)]
            blocks += [
                _ConvBlock(d, cout, cout, k, (1,) * d) for _ in range(config.convs_per_stage - 1)
            ]
            self.encoder.append(nn.Sequential(*blocks))
            cin = cout
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.heads = nn.ModuleList()
        for s in range(len(f) - 1, 0, -1):
            st = config.strides[s]
            self.ups.append(_convT(d)(f[s], f[s - 1], tuple(st), tuple(st), bias=True))
            k = config.kernel_sizes[s - 1]
            blocks = [_ConvBlock(d, 2 * f[s - 1], f[s - 1], k, (1,) * d)]
            blocks += [
                _ConvBlock(d, f[s - 1], f[s - 1], k, (1,) * d)
                for _ in range(config.convs_per_stage - 1)
            ]
            self.decoder.append(nn.Sequential(*blocks))
            self.heads.append(_conv(d)(f[s - 1], config.out_channels, 1))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits; a list (full resolution first) when deep-supervising in training."""
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips[-1]
        outs = []
        for i, (up, dec, head) in enumerate(zip(self.ups, self.decoder, self.heads, strict=True)):
            x = up(x)
            x = dec(torch.cat([x, skips[-2 - i]], dim=1))
            if self.training and self.config.deep_supervision:
                outs.append(head(x))
            elif i == len(self.ups) - 1:
                outs.append(head(x))
        if self.training and self.config.deep_supervision:
            return outs[::-1]
        return outs[-1]


class MedNeXt(nn.Module):
    """MedNeXt-style U-Net: ConvNeXt blocks with residual down- and up-sampling.

    Each stage holds ``convs_per_stage`` MedNeXt blocks (depthwise
    ``mednext_kernel`` conv, GroupNorm, 1x1 expansion by ``mednext_expansion``,
    GELU, 1x1 projection, residual); resolution changes are strided MedNeXt blocks
    with a 1x1 (transposed) residual path. Skips are added, not concatenated,
    as in Roy et al., MICCAI 2023.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        d, f, e = config.spatial_dims, config.features, config.mednext_expansion
        kk = [
            tuple(config.mednext_kernel if k > 1 else 1 for k in ks) for ks in config.kernel_sizes
        ]
        self.stem = _conv(d)(config.in_channels, f[0], 1)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for s in range(len(f)):
            if s > 0:
                self.down.append(_MedNeXtBlock(d, f[s - 1], f[s], kk[s], config.strides[s], e))
            self.enc.append(
                nn.Sequential(
                    *[
                        _MedNeXtBlock(d, f[s], f[s], kk[s], (1,) * d, e)
                        for _ in range(config.convs_per_stage)
                    ]
                )
            )
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        self.heads = nn.ModuleList()
        for s in range(len(f) - 1, 0, -1):
            self.up.append(_MedNeXtBlock(d, f[s], f[s - 1], kk[s], config.strides[s], e, up=True))
            self.dec.append(
                nn.Sequential(
                    *[
                        _MedNeXtBlock(d, f[s - 1], f[s - 1], kk[s - 1], (1,) * d, e)
                        for _ in range(config.convs_per_stage)
                    ]
                )
            )
            self.heads.append(_conv(d)(f[s - 1], config.out_channels, 1))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits; a list (full resolution first) when deep-supervising in training."""
        x = self.stem(x)
        skips = []
        for s, stage in enumerate(self.enc):
            if s > 0:
                x = self.down[s - 1](x)
            x = stage(x)
            skips.append(x)
        outs = []
        for i, (up, dec, head) in enumerate(zip(self.up, self.dec, self.heads, strict=True)):
            x = dec(up(x) + skips[-2 - i])
            if (self.training and self.config.deep_supervision) or i == len(self.up) - 1:
                outs.append(head(x))
        if self.training and self.config.deep_supervision:
            return outs[::-1]
        return outs[-1]


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.ConvTranspose3d):
            nn.init.kaiming_normal_(m.weight, a=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_network(config: NetworkConfig) -> nn.Module:
    """Build the network a config describes.

    Examples
    --------
    >>> import torch
    >>> net = build_network(NetworkConfig(3, 1, 2, features=(4, 8))).eval()
    >>> net(torch.zeros(1, 1, 8, 8, 8)).shape
    torch.Size([1, 2, 8, 8, 8])
    """
    if config.architecture == "mednext":
        return MedNeXt(config)
    return UNet(config)


class _OneDNNConv3d(nn.Conv3d):
    """Conv3d that always takes oneDNN's (mkldnn) kernel for float32 CPU input.

    torch's heuristic sends batch-1 inputs with few channels or small planes to
    its slow im2col path (``slow_conv3d_forward``), which made a batch-1 tile
    2.3x slower than oneDNN on the demo U-Net. Same weights, same state dict.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _onednn_ok(self, x) and not isinstance(self.padding, str):
            return torch.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super().forward(x)


class _OneDNNConv2d(nn.Conv2d):
    """Conv2d that always takes oneDNN's kernel for float32 CPU input (see _OneDNNConv3d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _onednn_ok(self, x) and not isinstance(self.padding, str):
            return torch.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super().forward(x)


class _OneDNNConvTranspose3d(nn.ConvTranspose3d):
    """ConvTranspose3d on oneDNN's kernel for float32 CPU input (torch's own op).

    torch runs CPU transposed convolutions on its slow im2col kernel
    (``slow_conv_transpose3d``); its oneDNN op ``mkldnn._convolution_transpose_pointwise``
    (the one TorchInductor uses) computes the same in about a fifth of the time for
    the U-Nets' kernel = stride up-sampling. Without that op (another torch build)
    or with output padding, groups or dilation, the normal path is taken.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if (
            output_size is None
            and _onednn_ok(self, x)
            and _transpose_op_available()
            and self.groups == 1
            and not any(self.output_padding)
            and all(d == 1 for d in self.dilation)
            and not isinstance(self.padding, str)
        ):
            out: torch.Tensor = torch.ops.mkldnn._convolution_transpose_pointwise(
                x,
                self.weight,
                self.bias,
                list(self.padding),
                list(self.output_padding),
                list(self.stride),
                list(self.dilation),
                self.groups,
                "none",
                [],
                "",
            )
            return out
        return super().forward(x, output_size)


@functools.cache
def _transpose_op_available() -> bool:
    """Whether this torch build has oneDNN's transposed convolution op and it agrees.

    The probe's values are fixed, so the global random state is left as it was.
    """
    x = torch.linspace(-1, 1, 24).reshape(1, 2, 3, 2, 2)
    w = torch.linspace(-0.5, 0.7, 48).reshape(2, 3, 2, 2, 2)
    b = torch.tensor([0.1, -0.2, 0.3])
    try:
        with torch.no_grad():
            y = torch.ops.mkldnn._convolution_transpose_pointwise(
                x, w, b, [0] * 3, [0] * 3, [2] * 3, [1] * 3, 1, "none", [], ""
            )
            ref = torch.nn.functional.conv_transpose3d(x, w, b, stride=2)
            return bool(torch.allclose(y, ref, atol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _onednn_ok(conv: nn.modules.conv._ConvNd, x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and conv.weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and conv.padding_mode == "zeros"
        and torch.backends.mkldnn.is_available()
    )


class _ChannelsLastInstanceNorm3d(nn.Module):
    """Instance norm for channels-last 3D tensors, two-pass on the ``(N, DHW, C)`` view.

    torch's channels-last GroupNorm kernel is slower here and off by about 2e-3
    (one-pass statistics); this computes the mean, then the variance of the
    centred values, in float32 like torch's contiguous kernel. Output stays
    channels-last.
    """

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.weight = norm.weight
        self.bias = norm.bias
        self.eps = norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _two_pass_norm(x, self.weight, self.bias, self.eps)


def _two_pass_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
    slope: float | None = None,
) -> torch.Tensor:
    n, c, *sp = x.shape
    # float32 statistics also under bfloat16 autocast (as torch's group norm)
    x = x.float().contiguous(memory_format=torch.channels_last_3d)
    xv = x.permute(0, 2, 3, 4, 1).reshape(n, -1, c)  # a view of channels-last memory
    d = xv - xv.mean(dim=1, keepdim=True)
    var = (d * d).mean(dim=1, keepdim=True)
    scale = weight.view(1, 1, -1) * torch.rsqrt(var + eps)
    out = torch.addcmul(bias.view(1, 1, -1), d, scale)
    if slope is not None:
        out = torch.nn.functional.leaky_relu_(out, slope)
    return out.view(n, *sp, c).permute(0, 4, 1, 2, 3)


class _ChannelsLastNormAct3d(nn.Module):
    """Instance norm then leaky ReLU for channels-last 3D input, fused in a numba kernel.

    float32 input without gradients or autocast is normalised and activated in
    place (:func:`medlens.segmentation._fused.norm_act_`: float64 statistics, two
    passes over memory, the cost of torch's contiguous group norm); anything else
    takes :func:`_two_pass_norm`. Only used where the input is a convolution's
    own output (a :class:`_ConvBlock`), so the in-place update is safe. ``weight``
    and ``bias`` are the norm's parameters: state dicts keep their names.
    """

    def __init__(self, norm: nn.GroupNorm, negative_slope: float) -> None:
        super().__init__()
        self.weight = norm.weight
        self.bias = norm.bias
        self.eps = norm.eps
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (
            x.dtype == torch.float32
            and x.device.type == "cpu"
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
        ):
            return _two_pass_norm(x, self.weight, self.bias, self.eps, self.negative_slope)
        n, c = x.shape[:2]
        x = x.contiguous(memory_format=torch.channels_last_3d)
        norm_act_(
            x.permute(0, 2, 3, 4, 1).reshape(n, -1, c).numpy(),
            self.weight.detach().numpy(),
            self.bias.detach().numpy(),
            self.eps,
            self.negative_slope,
        )
        return x


def is_channels_last(net: nn.Module) -> bool:
    """Whether :func:`inference_network` put ``net`` in the channels-last layout.

    Examples
    --------
    >>> net = build_network(NetworkConfig(3, 1, 2, features=(4, 8)))
    >>> is_channels_last(net), is_channels_last(inference_network(net, channels_last=True))
    (False, True)
    """
    return any(
        isinstance(m, _ChannelsLastInstanceNorm3d | _ChannelsLastNormAct3d) for m in net.modules()
    )


def channels_last_is_faster(
    net: nn.Module, patch_size: Sequence[int], in_channels: int, *, repeats: int = 2
) -> bool:
    """Time one ``patch_size`` forward of an :func:`inference_network` in both layouts.

    Which layout oneDNN runs faster depends on the patch and the widths (e.g.
    channels-last 1.26x faster for a 96^3 patch of the 8-128 U-Net, 12% slower
    for 64x80x64 on the machine of docs/benchmarks.md), so the predictor
    measures it once when it loads a model, like ``cudnn.benchmark``. 3D only;
    False for anything else. ``net`` is not modified.
    """
    import copy
    import time

    if len(patch_size) != 3:
        return False
    x = torch.randn(1, in_channels, *patch_size)
    best: dict[bool, float] = {}
    with torch.no_grad():
        for cl in (False, True):
            cand = inference_network(copy.deepcopy(net), channels_last=cl)
            xi = x.contiguous(memory_format=torch.channels_last_3d) if cl else x
            cand(xi)  # warm-up (oneDNN primitive creation)
            times = []
            for _ in range(repeats):
                t0 = time.process_time()
                cand(xi)
                times.append(time.process_time() - t0)
            best[cl] = min(times)
    return best[True] < 0.95 * best[False]


def inference_network(net: nn.Module, *, channels_last: bool = False) -> nn.Module:
    """The network in eval mode with CPU-faster modules that compute the same function.

    * Each instance norm becomes ``GroupNorm(C, C)``, which computes exactly
      instance normalisation (per sample and channel statistics, biased
      variance, the same eps and per-channel affine) with torch's faster CPU
      group-norm kernel (4-11% per forward on the U-Nets medlens plans).
    * Each ``Conv2d``/``Conv3d`` always uses oneDNN for float32 input without
      gradients (torch picks its slow im2col kernel for batch-1 inputs with few
      channels; 2.3x per tile on the demo U-Net), and each ``ConvTranspose3d``
      oneDNN's transposed convolution (torch's default CPU kernel is im2col;
      about 5x faster for the kernel = stride up-sampling). Other dtypes and
      autocast take the normal path.

    * ``channels_last=True`` (3D networks only): parameters in the
      ``channels_last_3d`` layout and each norm as a channels-last two-pass
      instance norm, fused with the leaky ReLU after it in a numba kernel when
      numba is installed (else torch operations, five passes over memory);
      oneDNN then skips padding few-channel tensors to 16-channel blocks.
      Inputs must be channels-last too (the sliding window does this when
      :func:`is_channels_last`). Faster for some patches, slower for others:
      see :func:`channels_last_is_faster`.

    Outputs equal the original's within 2e-5 (docs/benchmarks.md). Inference
    only; the trainer keeps the modules it built. Modifies ``net`` in place
    (parameter names are unchanged) and returns it.

    Examples
    --------
    >>> import torch
    >>> net = build_network(NetworkConfig(3, 1, 2, features=(4, 8))).eval()
    >>> x = torch.randn(2, 1, 8, 8, 8)
    >>> with torch.no_grad():
    ...     a = net(x)
    ...     b = inference_network(net)(x)
    >>> bool(torch.allclose(a, b, atol=1e-5)), any(
    ...     isinstance(m, torch.nn.InstanceNorm3d) for m in net.modules())
    (True, False)
    """
    for mod in list(net.modules()):
        if type(mod) is nn.Conv3d:
            mod.__class__ = _OneDNNConv3d
        elif type(mod) is nn.ConvTranspose3d:
            mod.__class__ = _OneDNNConvTranspose3d
        elif type(mod) is nn.Conv2d:
            mod.__class__ = _OneDNNConv2d
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.InstanceNorm2d | nn.InstanceNorm3d) and child.affine:
                if child.track_running_stats:
                    continue
                gn = nn.GroupNorm(child.num_features, child.num_features, eps=child.eps)
                with torch.no_grad():
                    gn.weight.copy_(child.weight)
                    gn.bias.copy_(child.bias)
                setattr(mod, name, gn)
    if channels_last and _is_3d(net):
        if _fused_available():
            for mod in list(net.modules()):
                if isinstance(mod, _ConvBlock) and isinstance(mod[2], nn.LeakyReLU):
                    norm = mod[1]
                    if isinstance(norm, nn.GroupNorm) and norm.num_groups == norm.num_channels:
                        mod[1] = _ChannelsLastNormAct3d(norm, mod[2].negative_slope)
                        mod[2] = nn.Identity()
        for mod in list(net.modules()):
            for name, child in list(mod.named_children()):
                if isinstance(child, nn.GroupNorm) and child.num_groups == child.num_channels:
                    setattr(mod, name, _ChannelsLastInstanceNorm3d(child))
        net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    return net.eval()


def _is_3d(net: nn.Module) -> bool:
    convs = [m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    return bool(convs) and all(len(m.kernel_size) == 3 for m in convs)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
