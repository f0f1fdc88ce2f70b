"""Centred orthonormal FFTs on torch tensors (imported on demand, never by ``medlens``).

Same convention as :mod:`medlens.reconstruction._fft`: zero frequency at index
``n // 2``, ``norm="ortho"``, last two axes for the 2D variants. Works on CPU
and CUDA tensors and is differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["fft2c_torch", "fftc_torch", "ifft2c_torch", "ifftc_torch"]


def _dims(x: torch.Tensor, dims: Sequence[int] | None) -> tuple[int, ...]:
    if dims is None:
        return tuple(range(x.ndim))
    return tuple(int(d) % x.ndim for d in dims)


def fftc_torch(x: torch.Tensor, dims: Sequence[int] | None = None) -> torch.Tensor:
    """Centred orthonormal FFT of a complex (or real) tensor over ``dims``.

    Parameters
    ----------
    x : torch.Tensor
        Image-domain tensor.
    dims : sequence of int, optional
        Dimensions to transform; all if None.

    Returns
    -------
    torch.Tensor
        Complex k-space tensor.
    """
    d = _dims(x, dims)
    out = torch.fft.ifftshift(x, dim=d)
    out = torch.fft.fftn(out, dim=d, norm="ortho")
    return torch.fft.fftshift(out, dim=d)


def ifftc_torch(x: torch.Tensor, dims: Sequence[int] | None = None) -> torch.Tensor:
    """Centred orthonormal inverse FFT of a complex tensor over ``dims``.

    Parameters
    ----------
    x : torch.Tensor
        Centred k-space tensor.
    dims : sequence of int, optional
        Dimensions to transform; all if None.

    Returns
    -------
    torch.Tensor
        Complex image tensor.
    """
    d = _dims(x, dims)
    out = torch.fft.ifftshift(x, dim=d)
    out = torch.fft.ifftn(out, dim=d, norm="ortho")
    return torch.fft.fftshift(out, dim=d)


def fft2c_torch(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT over the last two dimensions.

    Parameters
    ----------
    x : torch.Tensor
        Tensor of shape ``(..., H, W)``.

    Returns
    -------
    torch.Tensor
        Complex k-space of the same shape.
    """
    return fftc_torch(x, dims=(-2, -1))


def ifft2c_torch(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D inverse FFT over the last two dimensions.

    Parameters
    ----------
    x : torch.Tensor
        k-space of shape ``(..., H, W)``.

    Returns
    -------
    torch.Tensor
        Complex image of the same shape.
    """
    return ifftc_torch(x, dims=(-2, -1))
