"""One call per slice or volume: choose maps, run a method, return magnitude images.

This is the "App" layer (SigPy's term) the CLI uses: it combines a
:class:`~medlens.reconstruction.Linop`-based problem, an algorithm and a
progress callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from medlens.reconstruction._algorithms import (
    IterationInfo,
    grappa_reconstruction,
    infer_mask,
    l1_wavelet_reconstruction,
    sense_reconstruction,
    tv_reconstruction,
    zero_filled,
)
from medlens.reconstruction._coils import espirit_maps, lowres_maps, walsh_maps
from medlens.reconstruction._masks import acs_bounds

__all__ = [
    "CLASSICAL_METHODS",
    "MAP_ESTIMATORS",
    "calibration_size",
    "estimate_maps",
    "reconstruct_slice",
]

CLASSICAL_METHODS = ("zf", "grappa", "sense", "cs-wavelet", "tv")
MAP_ESTIMATORS = ("espirit", "walsh", "lowres", "true")


def calibration_size(mask: npt.ArrayLike, shape: tuple[int, int]) -> tuple[int, int]:
    """Size ``(rows, cols)`` of the fully sampled centred calibration box of a mask.

    Parameters
    ----------
    mask : array_like of bool
        ``(W,)`` line mask or ``(H, W)`` 2D mask.
    shape : tuple of int
        ``(H, W)`` of k-space.

    Returns
    -------
    tuple of int
        For a line mask a square box as wide as the ACS block; for a 2D mask
        the largest fully sampled centred square.

    Raises
    ------
    ValueError
        If the centre of k-space is not sampled.

    Examples
    --------
    >>> m = np.zeros(64, bool); m[24:40] = True
    >>> calibration_size(m, (64, 64))
    (16, 16)
    """
    m = np.asarray(mask, dtype=bool)
    h, w = shape
    if m.ndim == 1:
        a0, a1 = acs_bounds(m)
        # the largest box centred as the calibration code centres it (start n//2 before W//2)
        n = a1 - a0
        while n > 1 and not (w // 2 - n // 2 >= a0 and w // 2 - n // 2 + n <= a1):
            n -= 1
        return min(n, h), n
    if not m[h // 2, w // 2]:
        raise ValueError("the centre of k-space is not sampled: there is no calibration region")
    n = 1
    while n + 1 <= min(h, w):
        y0, x0 = h // 2 - (n + 1) // 2, w // 2 - (n + 1) // 2
        if not m[y0 : y0 + n + 1, x0 : x0 + n + 1].all():
            break
        n += 1
    return n, n


def reconstruct_slice(
    kspace: npt.ArrayLike,
    *,
    method: str,
    mask: npt.ArrayLike | None = None,
    maps: str | np.ndarray = "espirit",
    options: dict[str, Any] | None = None,
    callback: Callable[[IterationInfo], None] | None = None,
) -> np.ndarray:
    """Reconstruct one multi-coil slice with a classical method.

    Parameters
    ----------
    kspace : array_like, shape (C, H, W)
        Zero-filled centred k-space.
    method : str
        One of :data:`CLASSICAL_METHODS`.
    mask : array_like of bool, optional
        Sampling mask (inferred from the non-zero samples if None).
    maps : str or numpy.ndarray
        ``"espirit"``, ``"walsh"``, ``"lowres"`` or an array of true maps
        ``(C, H, W)``; used by ``sense``, ``cs-wavelet`` and ``tv``.
    options : dict, optional
        Keyword arguments for the method's function (``lamda``, ``max_iter`` ...).
    callback : callable, optional
        Iteration progress callback.

    Returns
    -------
    numpy.ndarray, shape (H, W)
        Magnitude image, float32.

    Raises
    ------
    ValueError
        For an unknown method or map estimator.

    Examples
    --------
    >>> from medlens.reconstruction import simulate_kspace
    >>> yy, xx = np.mgrid[-16:16, -16:16] / 16
    >>> sim = simulate_kspace((yy**2 + xx**2 < 0.5) * 1.0, coils=4, acceleration=2, acs=10)
    >>> reconstruct_slice(sim.masked_kspace[0], method="sense", mask=sim.mask).shape
    (32, 32)
    """
    k = np.asarray(kspace)
    opts = dict(options or {})
    m = infer_mask(k) if mask is None else np.asarray(mask, dtype=bool)
    if method not in CLASSICAL_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(CLASSICAL_METHODS)}")
    if method == "zf":
        return zero_filled(k * m).astype(np.float32)
    if method == "grappa":
        return grappa_reconstruction(k, m, **opts).astype(np.float32)
    s = estimate_maps(k, m, maps)
    if method == "sense":
        x = sense_reconstruction(k, s, mask=m, callback=callback, **opts)
    elif method == "cs-wavelet":
        x = l1_wavelet_reconstruction(k, s, mask=m, callback=callback, **opts)
    else:
        x = tv_reconstruction(k, s, mask=m, callback=callback, **opts)
    return np.abs(x).astype(np.float32)


def estimate_maps(kspace: np.ndarray, mask: np.ndarray, maps: str | np.ndarray) -> np.ndarray:
    """Coil maps by name (``espirit``, ``walsh``, ``lowres``) or pass an array through.

    Parameters
    ----------
    kspace : numpy.ndarray, shape (C, H, W)
        k-space.
    mask : numpy.ndarray of bool
        Sampling mask (to size the calibration region).
    maps : str or numpy.ndarray
        Estimator name or true maps.

    Returns
    -------
    numpy.ndarray, shape (C, H, W)
        Coil maps.

    Raises
    ------
    ValueError
        For an unknown estimator name or wrongly shaped maps.
    """
    if isinstance(maps, np.ndarray):
        if maps.shape != kspace.shape:
            raise ValueError(f"maps shape {maps.shape} differs from k-space shape {kspace.shape}")
        return maps
    calib = calibration_size(mask, kspace.shape[-2:])
    if maps == "espirit":
        return np.asarray(espirit_maps(kspace * mask, calib=calib))
    if maps == "walsh":
        return walsh_maps(kspace * mask, calib=calib)
    if maps == "lowres":
        return lowres_maps(kspace * mask, calib=calib)
    raise ValueError(f"unknown coil-map estimator {maps!r}; choose espirit, walsh or lowres")
