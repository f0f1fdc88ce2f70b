"""Network configuration: a frozen dataclass, importable without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["NetworkConfig"]


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of a segmentation network.

    Parameters
    ----------
    spatial_dims : {2, 3}
        2D or 3D convolutions.
    in_channels, out_channels : int
        Input image channels; output channels (classes, or regions for
        region-based training).
    features : tuple of int
        Feature maps per resolution stage, highest resolution first.
    strides : tuple of tuple of int
        Downsampling stride per stage and axis; the first stage's is all ones.
        nnU-Net's pooling topology: an axis stops being pooled once it is
        coarser than twice the finest one or its feature map is smaller than 8.
    kernel_sizes : tuple of tuple of int
        Convolution kernel per stage and axis (1 on an axis far coarser than the
        others, as nnU-Net does for anisotropic data, else 3).
    architecture : {"unet", "mednext"}
        Plain-convolution U-Net (nnU-Net's ``PlainConvUNet``: conv, instance norm,
        leaky ReLU, twice per stage) or MedNeXt-style blocks (depthwise
        large-kernel conv, GroupNorm, 1x1 expansion, GELU, residual).
    convs_per_stage : int
        Convolution blocks per encoder and decoder stage.
    deep_supervision : bool
        Return one output per decoder stage (highest resolution first) in
        training mode; in eval mode only the full-resolution output is returned.
    mednext_expansion, mednext_kernel : int
        MedNeXt expansion ratio and depthwise kernel size.
    """

    spatial_dims: int
    in_channels: int
    out_channels: int
    features: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[tuple[int, ...], ...] = field(default=())
    kernel_sizes: tuple[tuple[int, ...], ...] = field(default=())
    architecture: Literal["unet", "mednext"] = "unet"
    convs_per_stage: int = 2
    deep_supervision: bool = True
    mednext_expansion: int = 2
    mednext_kernel: int = 5

    def __post_init__(self) -> None:
        n = len(self.features)
        d = self.spatial_dims
        if d not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {d}")
        if not self.strides:
            object.__setattr__(self, "strides", ((1,) * d,) + ((2,) * d,) * (n - 1))
        if not self.kernel_sizes:
            object.__setattr__(self, "kernel_sizes", ((3,) * d,) * n)
        object.__setattr__(self, "strides", tuple(tuple(int(v) for v in s) for s in self.strides))
        object.__setattr__(
            self, "kernel_sizes", tuple(tuple(int(v) for v in k) for k in self.kernel_sizes)
        )
        object.__setattr__(self, "features", tuple(int(f) for f in self.features))
        if len(self.strides) != n or len(self.kernel_sizes) != n:
            raise ValueError(
                f"features, strides and kernel_sizes need one entry per stage ({n}), got "
                f"{len(self.strides)} strides and {len(self.kernel_sizes)} kernel sizes"
            )
        if any(len(s) != d for s in self.strides + self.kernel_sizes):
            raise ValueError(f"every stride and kernel size needs {d} values")
        if self.architecture not in ("unet", "mednext"):
            raise ValueError(f"architecture must be 'unet' or 'mednext', got {self.architecture!r}")

    @property
    def divisor(self) -> tuple[int, ...]:
        """Total downsampling per axis: patch sizes must be multiples of it."""
        out = [1] * self.spatial_dims
        for s in self.strides:
            out = [a * b for a, b in zip(out, s, strict=True)]
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists)."""
        d = asdict(self)
        d["strides"] = [list(s) for s in self.strides]
        d["kernel_sizes"] = [list(k) for k in self.kernel_sizes]
        d["features"] = list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkConfig:
        """Inverse of :meth:`to_dict`."""
        kw = dict(d)
        kw["features"] = tuple(kw["features"])
        kw["strides"] = tuple(tuple(s) for s in kw["strides"])
        kw["kernel_sizes"] = tuple(tuple(k) for k in kw["kernel_sizes"])
        return cls(**kw)
