"""Centred, orthonormal FFTs on NumPy arrays.

The k-space convention of medlens: the zero frequency sits at index ``n // 2``
of each transformed axis, the image origin likewise at ``n // 2``, and the
transform is unitary (``norm="ortho"``), so ``ifftc(fftc(x)) == x`` and
``||fftc(x)|| == ||x||``. k-space coordinates are in cycles per field of view:
index ``i`` holds frequency ``i - n // 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.fft

__all__ = ["fft2c", "fftc", "ifft2c", "ifftc"]


def _axes(x: np.ndarray, axes: Sequence[int] | None) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(x.ndim))
    return tuple(int(a) % x.ndim for a in axes)


def fftc(x: npt.ArrayLike, axes: Sequence[int] | None = None) -> np.ndarray:
    """Centred orthonormal forward FFT over ``axes`` (all axes by default).

    Parameters
    ----------
    x : array_like
        Image-domain array (real or complex).
    axes : sequence of int, optional
        Axes to transform; all axes if None.

    Returns
    -------
    numpy.ndarray
        Complex k-space with the zero frequency at index ``n // 2`` of each
        transformed axis. ``complex64`` input stays ``complex64``.

    Examples
    --------
    >>> import numpy as np
    >>> k = fftc(np.ones((4, 4)))
    >>> np.round(abs(k[2, 2]), 6), np.round(abs(k).sum() - abs(k[2, 2]), 6)
    (np.float64(4.0), np.float64(0.0))
    """
    arr = np.asarray(x)
    ax = _axes(arr, axes)
    out = np.fft.ifftshift(arr, axes=ax)
    out = scipy.fft.fftn(out, axes=ax, norm="ortho")
    return np.fft.fftshift(out, axes=ax)


def ifftc(x: npt.ArrayLike, axes: Sequence[int] | None = None) -> np.ndarray:
    """Centred orthonormal inverse FFT over ``axes`` (all axes by default).

    Parameters
    ----------
    x : array_like
        Centred k-space.
    axes : sequence of int, optional
        Axes to transform; all axes if None.

    Returns
    -------
    numpy.ndarray
        Complex image with its origin at index ``n // 2`` of each axis.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(12.0).reshape(3, 4)
    >>> bool(np.allclose(ifftc(fftc(x)), x))
    True
    """
    arr = np.asarray(x)
    ax = _axes(arr, axes)
    out = np.fft.ifftshift(arr, axes=ax)
    out = scipy.fft.ifftn(out, axes=ax, norm="ortho")
    return np.fft.fftshift(out, axes=ax)


def fft2c(x: npt.ArrayLike) -> np.ndarray:
    """Centred orthonormal 2D FFT over the last two axes.

    Parameters
    ----------
    x : array_like
        Array of shape ``(..., H, W)``.

    Returns
    -------
    numpy.ndarray
        Complex k-space of the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 8, 6))
    >>> bool(np.isclose(np.linalg.norm(fft2c(x)), np.linalg.norm(x)))
    True
    """
    return fftc(x, axes=(-2, -1))


def ifft2c(x: npt.ArrayLike) -> np.ndarray:
    """Centred orthonormal 2D inverse FFT over the last two axes.

    Parameters
    ----------
    x : array_like
        k-space of shape ``(..., H, W)``.

    Returns
    -------
    numpy.ndarray
        Complex image of the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(5, 7))
    >>> bool(np.allclose(ifft2c(fft2c(x)).real, x))
    True
    """
    return ifftc(x, axes=(-2, -1))
