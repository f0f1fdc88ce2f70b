"""Multi-coil k-space simulated from real magnitude images, without the inverse crime.

The object (a magnitude image times a smooth synthetic phase) and
birdcage-type coil sensitivities are evaluated on a grid ``oversample`` times
finer than the reconstruction grid; its k-space is computed there and
cropped to the reconstruction matrix, and complex Gaussian noise is added.
The reconstruction's forward model (maps times the image on the coarse grid,
then an FFT) is therefore not the model that made the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.ndimage

from medlens.reconstruction._coils import rss
from medlens.reconstruction._fft import fft2c, ifft2c
from medlens.reconstruction._masks import (
    EquiSpacedMaskFunc,
    RandomMaskFunc,
    cmrxrecon_mask,
    poisson_disc_mask,
    variable_density_mask,
)

__all__ = [
    "MASK_KINDS",
    "SimulatedKspace",
    "birdcage_maps",
    "line_or_2d_mask",
    "object_mask",
    "simulate_kspace",
    "smooth_phase",
]

MASK_KINDS = ("equispaced", "random", "uniform", "poisson", "variable-density")


def _coords(n: int, factor: int = 1) -> np.ndarray:
    """Normalised coordinates in [-1, 1) of an n*factor grid aligned with an n grid."""
    nf = n * factor
    return (np.arange(nf) - nf // 2) / (nf / 2)


def birdcage_maps(
    shape: tuple[int, int, int],
    *,
    radius: float = 1.4,
    oversample: int = 1,
    normalise: bool = True,
) -> np.ndarray:
    """Birdcage-type coil sensitivities: coils evenly spaced on a ring around the FOV.

    Each coil's field falls off as ``1 / d`` with the distance ``d`` from
    its position on a ring of ``radius`` (in half-FOV units) and rotates its
    phase with the azimuth, like the quadrature modes of a birdcage array.

    Parameters
    ----------
    shape : tuple of int
        ``(C, H, W)`` of the reconstruction grid.
    radius : float
        Ring radius relative to half the field of view (> 1: coils outside).
    oversample : int
        Evaluate on a grid this many times finer (same field of view).
    normalise : bool
        Scale so that ``sum_c |S_c|^2 = 1`` at every pixel.

    Returns
    -------
    numpy.ndarray, shape (C, H * oversample, W * oversample)
        Complex64 maps.

    Examples
    --------
    >>> m = birdcage_maps((8, 16, 16))
    >>> m.shape, bool(np.allclose(np.sum(abs(m) ** 2, axis=0), 1, atol=1e-5))
    ((8, 16, 16), True)
    """
    c, h, w = shape
    y = _coords(h, oversample)[:, None]
    x = _coords(w, oversample)[None, :]
    out = np.empty((c, y.shape[0], x.shape[1]), dtype=np.complex128)
    for i in range(c):
        ang = 2 * np.pi * i / c
        dy = y - radius * np.sin(ang)
        dx = x - radius * np.cos(ang)
        d = np.sqrt(dx**2 + dy**2)
        out[i] = np.exp(1j * (np.arctan2(dy, dx) - ang)) / d
    if normalise:
        out /= rss(out)
    return out.astype(np.complex64)


def smooth_phase(
    shape: tuple[int, int], *, seed: int | None = None, oversample: int = 1, amplitude: float = 1.0
) -> np.ndarray:
    """A smooth random phase map (radians): a few low-frequency cosines plus a ramp.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the reconstruction grid.
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`.
    oversample : int
        Evaluate on a grid this many times finer.
    amplitude : float
        Peak amplitude in radians of each cosine term.

    Returns
    -------
    numpy.ndarray, shape (H * oversample, W * oversample)
        Phase in radians.

    Examples
    --------
    >>> p = smooth_phase((32, 32), seed=0)
    >>> p.shape, bool(abs(p).max() < 4 * np.pi)
    ((32, 32), True)
    """
    rng = np.random.default_rng(seed)
    y = _coords(shape[0], oversample)[:, None]
    x = _coords(shape[1], oversample)[None, :]
    phase = rng.uniform(-0.5, 0.5) * np.pi * x + rng.uniform(-0.5, 0.5) * np.pi * y
    for _ in range(3):
        fy, fx = rng.uniform(-1.0, 1.0, size=2)
        phase = phase + amplitude * rng.uniform(0.3, 1.0) * np.cos(
            np.pi * (fy * y + fx * x) + rng.uniform(0, 2 * np.pi)
        )
    return np.asarray(phase)


def line_or_2d_mask(
    kind: str,
    shape: tuple[int, int],
    acceleration: int,
    *,
    acs: int = 24,
    seed: int | None = None,
) -> np.ndarray:
    """A sampling mask of one of :data:`MASK_KINDS` for k-space of ``shape``.

    ``equispaced`` and ``random`` are fastMRI's masks with ``acs`` centre
    columns, ``uniform`` is CMRxRecon's (every R-th line plus ``acs``),
    ``poisson`` a 2D Poisson-disc mask and ``variable-density`` a random 2D
    variable-density mask (both with an ``acs`` x ``acs`` calibration box).

    Parameters
    ----------
    kind : str
        Mask family.
    shape : tuple of int
        ``(H, W)``.
    acceleration : int
        Acceleration.
    acs : int
        Calibration lines (or box size for 2D masks).
    seed : int, optional
        Seed.

    Returns
    -------
    numpy.ndarray of bool
        ``(W,)`` for line masks, ``(H, W)`` for 2D masks.

    Raises
    ------
    ValueError
        For an unknown ``kind``.

    Examples
    --------
    >>> line_or_2d_mask("uniform", (8, 16), 4, acs=2).astype(int).tolist()
    [1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0]
    """
    h, w = shape
    if kind == "equispaced":
        return EquiSpacedMaskFunc([acs / w], [acceleration])((h, w), seed=seed)[0]
    if kind == "random":
        return RandomMaskFunc([acs / w], [acceleration])((h, w), seed=seed)[0]
    if kind == "uniform":
        return cmrxrecon_mask(w, acceleration, acs=acs)
    if kind == "poisson":
        return poisson_disc_mask((h, w), acceleration, calib=acs, seed=seed)
    if kind == "variable-density":
        return variable_density_mask((h, w), acceleration, acs=acs, seed=seed)
    raise ValueError(f"unknown mask kind {kind!r}; choose one of {', '.join(MASK_KINDS)}")


@dataclass(frozen=True)
class SimulatedKspace:
    """Simulated multi-coil acquisition.

    Attributes
    ----------
    kspace : numpy.ndarray, shape (S, C, H, W)
        Fully sampled noisy k-space on the reconstruction grid (complex64).
    mask : numpy.ndarray of bool
        ``(W,)`` line mask or ``(H, W)`` 2D mask.
    maps : numpy.ndarray, shape (C, H, W)
        True (normalised) coil sensitivities on the reconstruction grid.
    target : numpy.ndarray, shape (S, H, W)
        Root-sum-of-squares image of the fully sampled k-space (float32), the
        fastMRI ``reconstruction_rss`` reference.
    num_low_frequencies : int
        Calibration lines (or box size).
    acceleration : int
        Nominal acceleration.
    noise : float
        Standard deviation of the complex k-space noise per real component,
        relative to the image maximum (1).
    """

    kspace: np.ndarray
    mask: np.ndarray
    maps: np.ndarray
    target: np.ndarray
    num_low_frequencies: int
    acceleration: int
    noise: float

    @property
    def masked_kspace(self) -> np.ndarray:
        """Undersampled (zero-filled) k-space ``kspace * mask``."""
        return (self.kspace * self.mask).astype(np.complex64)


def object_mask(reference: npt.ArrayLike) -> np.ndarray:
    """The object of a magnitude reference image: what "inside the object" scores.

    Pixels above 5 % of the maximum, closed (3 iterations of the cross) and
    with holes filled: the mask of the reconstruction benchmarks' object
    PSNR / SSIM, and of the VarNet's object-weighted loss.

    Parameters
    ----------
    reference : array_like
        Magnitude image ``(H, W)``.

    Returns
    -------
    numpy.ndarray of bool
        ``(H, W)``.

    Examples
    --------
    >>> ref = np.zeros((16, 16)); ref[5:11, 5:11] = 1.0; ref[7:9, 7:9] = 0.0
    >>> int(object_mask(ref).sum())  # the 2 x 2 hole is filled
    36
    """
    ref = np.asarray(reference, dtype=np.float64)
    m = scipy.ndimage.binary_closing(ref > 0.05 * float(ref.max()), iterations=3)
    return np.asarray(scipy.ndimage.binary_fill_holes(m), dtype=bool)


def _upsample(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape
    yi = h // 2 + (np.arange(h * factor) - (h * factor) // 2) / factor
    xi = w // 2 + (np.arange(w * factor) - (w * factor) // 2) / factor
    yy, xx = np.meshgrid(yi, xi, indexing="ij")
    out = scipy.ndimage.map_coordinates(image, [yy, xx], order=3, mode="constant", cval=0.0)
    return np.clip(out, 0.0, None)


def _crop_centre(k: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = k.shape[-2:]
    y0 = h // 2 - shape[0] // 2
    x0 = w // 2 - shape[1] // 2
    return k[..., y0 : y0 + shape[0], x0 : x0 + shape[1]]


def simulate_kspace(
    image: npt.ArrayLike,
    *,
    coils: int = 8,
    acceleration: int = 4,
    acs: int = 24,
    mask: str = "equispaced",
    noise: float = 0.0,
    seed: int | None = 0,
    oversample: int = 2,
    coil_radius: float = 1.4,
) -> SimulatedKspace:
    """Simulate undersampled multi-coil k-space from a real magnitude image.

    Parameters
    ----------
    image : array_like, shape (H, W) or (S, H, W)
        Magnitude image(s); the reconstruction grid is ``(H, W)``. Scaled so
        the maximum is 1.
    coils : int
        Number of receive coils.
    acceleration : int
        Nominal acceleration.
    acs : int
        Calibration lines (line masks) or box size (2D masks).
    mask : str
        One of :data:`MASK_KINDS`.
    noise : float
        Noise standard deviation per real component of each k-space sample
        (equivalently of each coil image, the FFT being unitary), relative to
        the image maximum.
    seed : int, optional
        Seed for the phase, the mask and the noise.
    oversample : int
        Fine-grid factor of the simulation (>= 2 avoids the inverse crime).
    coil_radius : float
        Ring radius of the coils (see :func:`birdcage_maps`).

    Returns
    -------
    SimulatedKspace
        Data, mask, true maps and RSS target.

    Examples
    --------
    >>> yy, xx = np.mgrid[-32:32, -32:32] / 32
    >>> sim = simulate_kspace((yy**2 + xx**2 < 0.5) * 1.0, coils=4, acs=8)
    >>> sim.kspace.shape, sim.mask.shape, sim.target.shape
    ((1, 4, 64, 64), (64,), (1, 64, 64))
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"image must be (H, W) or (S, H, W), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("image contains NaN or infinite values")
    arr = np.abs(arr)
    peak = float(arr.max())
    if peak <= 0:
        raise ValueError("image is all zero")
    arr = arr / peak
    n_slices, h, w = arr.shape
    if oversample < 1:
        raise ValueError(f"oversample must be >= 1, got {oversample}")
    rng = np.random.default_rng(seed)
    maps_fine = birdcage_maps((coils, h, w), radius=coil_radius, oversample=oversample)
    maps = birdcage_maps((coils, h, w), radius=coil_radius, oversample=1)
    out = np.empty((n_slices, coils, h, w), dtype=np.complex64)
    for s in range(n_slices):
        mag = _upsample(arr[s], oversample) if oversample > 1 else arr[s]
        phase = smooth_phase((h, w), seed=int(rng.integers(2**31)), oversample=oversample)
        obj = mag * np.exp(1j * phase)
        k_fine = fft2c(maps_fine * obj)
        # unitary FFTs: cropping N_f -> N scales the image by N / N_f; undo it
        k = _crop_centre(k_fine, (h, w)) * float(oversample)
        if noise > 0:
            k = k + noise * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
        out[s] = k
    m = line_or_2d_mask(mask, (h, w), acceleration, acs=acs, seed=int(rng.integers(2**31)))
    target = rss(ifft2c(out), axis=1).astype(np.float32)
    return SimulatedKspace(
        kspace=out,
        mask=np.asarray(m, dtype=bool),
        maps=maps,
        target=target,
        num_low_frequencies=int(acs),
        acceleration=int(acceleration),
        noise=float(noise),
    )
