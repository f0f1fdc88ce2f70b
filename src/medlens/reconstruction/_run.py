"""One call per slice or volume: choose maps, run a method, return magnitude images.

This is the "App" layer (SigPy's term) the CLI uses: it combines a
:class:`~medlens.reconstruction.Linop`-based problem, an algorithm and a
progress callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from medlens.reconstruction._algorithms import (
    IterationInfo,
    calibration_noise_level,
    grappa_reconstruction,
    infer_mask,
    l1_wavelet_reconstruction,
    sense_reconstruction,
    tv_reconstruction,
    zero_filled,
)
from medlens.reconstruction._coils import espirit_maps, expected_rss, lowres_maps, rss, walsh_maps
from medlens.reconstruction._masks import calibration_size

__all__ = [
    "CLASSICAL_METHODS",
    "MAGNITUDES",
    "MAP_ESTIMATORS",
    "EspiritCalibration",
    "calibration_size",
    "espirit_calibration",
    "estimate_maps",
    "reconstruct_slice",
]

CLASSICAL_METHODS = ("zf", "grappa", "sense", "cs-wavelet", "tv")
MAGNITUDES = ("abs", "expected-rss")
MAP_ESTIMATORS = ("espirit", "walsh", "lowres", "true")


def reconstruct_slice(
    kspace: npt.ArrayLike,
    *,
    method: str,
    mask: npt.ArrayLike | None = None,
    maps: str | np.ndarray = "espirit",
    options: dict[str, Any] | None = None,
    callback: Callable[[IterationInfo], None] | None = None,
    magnitude: str = "abs",
    sets: int | None = None,
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
    magnitude : str
        ``"abs"``: ``|x|`` of the image-domain methods (``sense``,
        ``cs-wavelet``, ``tv``); ``"expected-rss"``: their estimate of the
        fully sampled RSS image, noise floor included
        (:func:`~medlens.reconstruction.expected_rss` with the noise
        measured on the calibration region). ``zf`` and ``grappa`` are RSS
        images already and ignore it.
    sets : int, optional
        Sets of ESPIRiT maps (soft SENSE) for ``sense``, ``cs-wavelet`` and
        ``tv``; None: 2 with ``maps="espirit"`` (the second set is dropped
        where it is empty, which leaves one set on objects clear of the edge
        of the field of view), 1 otherwise. The image of several sets is
        their root sum of squares.

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
    if magnitude not in MAGNITUDES:
        raise ValueError(f"unknown magnitude {magnitude!r}; choose one of {', '.join(MAGNITUDES)}")
    if method == "zf":
        return zero_filled(k * m).astype(np.float32)
    if method == "grappa":
        return grappa_reconstruction(k, m, **opts).astype(np.float32)
    if sets is None:
        sets = 2 if isinstance(maps, str) and maps == "espirit" else 1
    s = estimate_maps(k, m, maps, sets=sets)
    if method == "sense":
        x = sense_reconstruction(k, s, mask=m, callback=callback, **opts)
    elif method == "cs-wavelet":
        x = l1_wavelet_reconstruction(k, s, mask=m, callback=callback, **opts)
    else:
        x = tv_reconstruction(k, s, mask=m, callback=callback, **opts)
    mag = rss(x) if x.ndim == k.ndim else np.abs(x)  # several sets: their root sum of squares
    if magnitude == "expected-rss":
        sigma = calibration_noise_level(k * m, m)
        return expected_rss(mag, noise=sigma, coils=k.shape[0]).astype(np.float32)
    return mag.astype(np.float32)


class EspiritCalibration(NamedTuple):
    """What :func:`estimate_maps` passes to :func:`espirit_maps` for a mask."""

    box: tuple[int, int]
    """``(rows, cols)`` of the calibration region."""
    kernel: int
    """Kernel width."""
    noise_threshold: bool
    """Set the signal-space threshold from the calibration noise level."""


def espirit_calibration(mask: npt.ArrayLike, shape: tuple[int, int]) -> EspiritCalibration:
    """ESPIRiT calibration box, kernel and threshold rule that :func:`estimate_maps` uses.

    For a 2D mask: the largest fully sampled centred square, kernel 6 and the
    relative threshold 0.02 (SigPy's defaults). For a line mask the read-out
    axis is fully sampled, so the box spans at least 24 read-out rows (BART's
    ``ecalib`` takes the fully sampled extent per axis up to 24 likewise) by
    the width of the ACS block. From 12 lines the kernel keeps 8 positions
    across the block (6 from 13 lines up, 5 at 12) with the threshold 0.02:
    the former 12 x 12 box with a 6-wide kernel (7 positions) gave maps that
    lost parts of the object, and on 11 development slices ESPIRiT +
    L1-wavelet was 2.59 dB better inside the object on average with the
    24 x 12 box and kernel 5. Below 12 lines 8 positions would leave a kernel
    of 3 or less, which blurs the maps; the kernel is then half the block
    width (5 at 10-11 lines, 4 at 8-9, at least 3) and the signal-space
    threshold is set from the calibration noise level
    (:func:`espirit_maps`'s ``noise``, 3 times the largest singular value of
    a noise matrix of the same shape), since the fixed 0.02 drops signal
    kernels when there are so few positions. On the VarNet training slices
    at 10 lines this gained +0.97 / +2.04 dB (8 coils, R = 4 / 8, CS inside
    the object) over kernel 3; re-simulated with other coils it gained
    +0.15 / +0.50 dB (8 coils) and, at 8 lines, +1.15 / +0.18 dB (16 coils).
    At 12 lines the same threshold with kernel 6 was +0.1 dB on one set-up
    and -0.1 to -0.3 dB on two others, so 12 lines keep the fixed threshold
    (docs/reconstruction.md).

    Parameters
    ----------
    mask : array_like of bool
        ``(W,)`` line mask or ``(H, W)`` 2D mask.
    shape : tuple of int
        ``(H, W)`` of k-space.

    Returns
    -------
    EspiritCalibration
        ``(box, kernel, noise_threshold)``.

    Examples
    --------
    >>> m = np.zeros(128, bool); m[58:70] = True; m[::4] = True
    >>> tuple(espirit_calibration(m, (128, 128)))
    ((24, 12), 5, False)
    >>> m = np.zeros(128, bool); m[52:76] = True
    >>> tuple(espirit_calibration(m, (128, 128)))
    ((24, 24), 6, False)
    >>> m = np.zeros(128, bool); m[59:69] = True; m[::8] = True
    >>> tuple(espirit_calibration(m, (128, 128)))
    ((24, 10), 5, True)
    """
    m = np.asarray(mask, dtype=bool)
    rows, cols = calibration_size(m, shape)
    if m.ndim != 1:
        return EspiritCalibration((rows, cols), 6, False)
    rows = min(int(shape[0]), max(rows, 24))
    if cols >= 12:
        return EspiritCalibration((rows, cols), int(min(6, cols - 7)), False)
    return EspiritCalibration((rows, cols), int(max(3, cols // 2)), True)


def _drop_empty_sets(maps: np.ndarray) -> np.ndarray:
    """Sets of maps ``(M, C, H, W)`` less the empty ones after the first (one left: 3-D)."""
    used = [maps[0]] + [s for s in maps[1:] if np.any(s)]
    return used[0] if len(used) == 1 else np.stack(used)


def estimate_maps(
    kspace: np.ndarray, mask: np.ndarray, maps: str | np.ndarray, *, sets: int = 1
) -> np.ndarray:
    """Coil maps by name (``espirit``, ``walsh``, ``lowres``) or pass an array through.

    Parameters
    ----------
    kspace : numpy.ndarray, shape (C, H, W)
        k-space.
    mask : numpy.ndarray of bool
        Sampling mask (to size the calibration region).
    maps : str or numpy.ndarray
        Estimator name or true maps (``(C, H, W)``, or ``(M, C, H, W)`` sets).
    sets : int
        ESPIRiT only: sets of maps (:func:`espirit_maps`' ``sets``, cropped at
        its ``set_crop``). Sets after the first that are zero everywhere are
        dropped.

    Returns
    -------
    numpy.ndarray, shape (C, H, W), or (M, C, H, W) if more than one set is left
        Coil maps.

    Raises
    ------
    ValueError
        For an unknown estimator name or wrongly shaped maps.
    """
    if isinstance(maps, np.ndarray):
        if maps.shape != kspace.shape and maps.shape[1:] != kspace.shape:
            raise ValueError(f"maps shape {maps.shape} differs from k-space shape {kspace.shape}")
        return maps
    if maps == "espirit":
        box, kernel, from_noise = espirit_calibration(mask, kspace.shape[-2:])
        y = kspace * mask
        noise = calibration_noise_level(y, mask) if from_noise else None
        s = np.asarray(espirit_maps(y, calib=box, kernel_size=kernel, noise=noise, sets=sets))
        return s if sets == 1 else _drop_empty_sets(s)
    calib = calibration_size(mask, kspace.shape[-2:])
    if maps == "walsh":
        return walsh_maps(kspace * mask, calib=calib)
    if maps == "lowres":
        return lowres_maps(kspace * mask, calib=calib)
    raise ValueError(f"unknown coil-map estimator {maps!r}; choose espirit, walsh or lowres")
