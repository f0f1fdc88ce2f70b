"""k-space sampling masks.

Line masks undersample the last axis of k-space (the phase-encoding
direction, fastMRI's "columns"); 2D masks (Poisson-disc, variable density)
undersample both in-plane axes. Every mask is a boolean NumPy array.

:class:`RandomMaskFunc` and :class:`EquiSpacedMaskFunc` reproduce fastMRI's
classes of the same name (``fastmri.data.subsample``, v0.3) draw for draw:
the same seed gives the same mask, because they consume a
:class:`numpy.random.RandomState` in the same order.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "EquiSpacedMaskFunc",
    "RandomMaskFunc",
    "acs_bounds",
    "calibration_size",
    "cmrxrecon_mask",
    "default_center_fraction",
    "equispaced_mask",
    "poisson_disc_mask",
    "random_mask",
    "variable_density_mask",
]


def default_center_fraction(acceleration: float) -> float:
    """Fraction of fully sampled centre columns fastMRI pairs with an acceleration.

    Parameters
    ----------
    acceleration : float
        Undersampling factor.

    Returns
    -------
    float
        0.08 for 4x and 0.04 for 8x (the fastMRI challenge settings), else
        ``0.32 / acceleration``.

    Examples
    --------
    >>> default_center_fraction(4), default_center_fraction(8)
    (0.08, 0.04)
    """
    return 0.32 / float(acceleration)


@contextlib.contextmanager
def _temp_seed(
    rng: np.random.RandomState, seed: int | tuple[int, ...] | None
) -> Iterator[None]:
    if seed is None:
        yield
        return
    state = rng.get_state()
    rng.seed(seed)
    try:
        yield
    finally:
        rng.set_state(state)


class _MaskFunc:
    """Shared machinery of fastMRI-compatible line-mask generators."""

    def __init__(
        self,
        center_fractions: Sequence[float],
        accelerations: Sequence[int],
        *,
        allow_any_combination: bool = False,
        seed: int | None = None,
    ) -> None:
        if len(center_fractions) != len(accelerations) and not allow_any_combination:
            raise ValueError(
                f"{len(center_fractions)} centre fractions but {len(accelerations)} "
                "accelerations; they must pair up unless allow_any_combination=True"
            )
        if not center_fractions or not accelerations:
            raise ValueError("center_fractions and accelerations must not be empty")
        self.center_fractions = list(center_fractions)
        self.accelerations = list(accelerations)
        self.allow_any_combination = allow_any_combination
        self.rng = np.random.RandomState(seed)

    def _choose_acceleration(self) -> tuple[float, int]:
        if self.allow_any_combination:
            return (
                float(self.rng.choice(self.center_fractions)),
                int(self.rng.choice(self.accelerations)),
            )
        choice = self.rng.randint(len(self.center_fractions))
        return float(self.center_fractions[choice]), int(self.accelerations[choice])

    def _acceleration_mask(
        self, num_cols: int, acceleration: int, offset: int | None, num_low: int
    ) -> npt.NDArray[np.bool_]:
        raise NotImplementedError  # pragma: no cover

    def __call__(
        self,
        shape: Sequence[int],
        offset: int | None = None,
        seed: int | tuple[int, ...] | None = None,
    ) -> tuple[npt.NDArray[np.bool_], int]:
        """Draw a mask for k-space of ``shape`` (columns = last axis).

        Parameters
        ----------
        shape : sequence of int
            Shape of the complex k-space, ``(..., H, W)``; lines are drawn along
            the last axis ``W``.
        offset : int, optional
            First outer line of an equispaced mask; drawn at random if None.
        seed : int or tuple of int, optional
            Seed for this draw; the generator's state is restored afterwards,
            exactly as fastMRI does.

        Returns
        -------
        mask : numpy.ndarray of bool, shape (W,)
            Sampled columns.
        num_low_frequencies : int
            Number of fully sampled centre columns.
        """
        if len(shape) < 1:
            raise ValueError("shape must have at least one axis")
        num_cols = int(shape[-1])
        with _temp_seed(self.rng, seed):
            center_fraction, acceleration = self._choose_acceleration()
            num_low = round(num_cols * center_fraction)
            center = np.zeros(num_cols, dtype=bool)
            pad = (num_cols - num_low + 1) // 2
            center[pad : pad + num_low] = True
            accel = self._acceleration_mask(num_cols, acceleration, offset, num_low)
        return center | accel, int(num_low)


class RandomMaskFunc(_MaskFunc):
    """fastMRI's random column mask: a dense centre plus uniformly random columns.

    The outer columns are kept with probability
    ``(N / R - N_low) / (N - N_low)`` so that about ``N / R`` columns are kept.

    Parameters
    ----------
    center_fractions : sequence of float
        Fractions of centre columns to keep (one is chosen per call).
    accelerations : sequence of int
        Accelerations paired with ``center_fractions``.
    allow_any_combination : bool
        Choose fraction and acceleration independently.
    seed : int, optional
        Seed of the generator's initial state.

    Examples
    --------
    >>> mask, n_low = RandomMaskFunc([0.08], [4])((15, 640, 368), seed=0)
    >>> mask.shape, n_low, bool(mask[170:199].all())
    ((368,), 29, True)
    """

    def _acceleration_mask(
        self, num_cols: int, acceleration: int, offset: int | None, num_low: int
    ) -> npt.NDArray[np.bool_]:
        prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
        return np.asarray(self.rng.uniform(size=num_cols) < prob)


class EquiSpacedMaskFunc(_MaskFunc):
    """fastMRI's equispaced column mask: a dense centre plus every R-th column.

    The lines are exactly ``acceleration`` apart starting at ``offset`` (random
    in ``[0, R)`` unless given), so with the dense centre the net acceleration
    is a little below ``R`` — as in fastMRI.

    Parameters
    ----------
    center_fractions : sequence of float
        Fractions of centre columns to keep (one is chosen per call).
    accelerations : sequence of int
        Accelerations paired with ``center_fractions``.
    allow_any_combination : bool
        Choose fraction and acceleration independently.
    seed : int, optional
        Seed of the generator's initial state.

    Examples
    --------
    >>> mask, n_low = EquiSpacedMaskFunc([0.08], [4])((1, 32, 40), offset=1, seed=0)
    >>> np.flatnonzero(mask)[:6].tolist(), n_low
    ([1, 5, 9, 13, 17, 19], 3)
    """

    def _acceleration_mask(
        self, num_cols: int, acceleration: int, offset: int | None, num_low: int
    ) -> npt.NDArray[np.bool_]:
        if offset is None:
            offset = int(self.rng.randint(0, high=acceleration))
        mask = np.zeros(num_cols, dtype=bool)
        mask[offset::acceleration] = True
        return mask


def _center_fraction(
    num_cols: int,
    acceleration: float,
    center_fraction: float | None,
    num_low_frequencies: int | None,
) -> float:
    if num_low_frequencies is not None:
        if center_fraction is not None:
            raise ValueError("give center_fraction or num_low_frequencies, not both")
        if not 0 <= num_low_frequencies <= num_cols:
            raise ValueError(f"num_low_frequencies={num_low_frequencies} outside [0, {num_cols}]")
        return num_low_frequencies / num_cols
    if center_fraction is None:
        return default_center_fraction(acceleration)
    return center_fraction


def random_mask(
    num_cols: int,
    acceleration: int,
    *,
    center_fraction: float | None = None,
    num_low_frequencies: int | None = None,
    seed: int | None = None,
) -> npt.NDArray[np.bool_]:
    """Random column mask of fastMRI (same draws as ``RandomMaskFunc`` for a seed).

    Parameters
    ----------
    num_cols : int
        Number of phase-encoding columns.
    acceleration : int
        Nominal acceleration.
    center_fraction : float, optional
        Fraction of dense centre columns; :func:`default_center_fraction` if
        neither this nor ``num_low_frequencies`` is given.
    num_low_frequencies : int, optional
        Number of dense centre columns (alternative to ``center_fraction``).
    seed : int, optional
        Seed (None draws from fresh OS entropy).

    Returns
    -------
    numpy.ndarray of bool, shape (num_cols,)
        Sampled columns.

    Examples
    --------
    >>> m = random_mask(256, 4, num_low_frequencies=24, seed=3)
    >>> bool(m[116:140].all()), 50 < int(m.sum()) < 80
    (True, True)
    """
    cf = _center_fraction(num_cols, acceleration, center_fraction, num_low_frequencies)
    return RandomMaskFunc([cf], [acceleration])((num_cols,), seed=seed)[0]


def equispaced_mask(
    num_cols: int,
    acceleration: int,
    *,
    center_fraction: float | None = None,
    num_low_frequencies: int | None = None,
    offset: int | None = None,
    seed: int | None = None,
) -> npt.NDArray[np.bool_]:
    """Equispaced column mask of fastMRI (same draws as ``EquiSpacedMaskFunc``).

    Parameters
    ----------
    num_cols : int
        Number of phase-encoding columns.
    acceleration : int
        Spacing of the outer columns.
    center_fraction : float, optional
        Fraction of dense centre columns (default from the acceleration).
    num_low_frequencies : int, optional
        Number of dense centre columns (alternative to ``center_fraction``).
    offset : int, optional
        Index of the first outer column; random in ``[0, acceleration)`` if None.
    seed : int, optional
        Seed for the offset draw.

    Returns
    -------
    numpy.ndarray of bool, shape (num_cols,)
        Sampled columns.

    Examples
    --------
    >>> m = equispaced_mask(16, 4, num_low_frequencies=2, offset=0)
    >>> np.flatnonzero(m).tolist()
    [0, 4, 7, 8, 12]
    """
    cf = _center_fraction(num_cols, acceleration, center_fraction, num_low_frequencies)
    return EquiSpacedMaskFunc([cf], [acceleration])((num_cols,), offset=offset, seed=seed)[0]


def cmrxrecon_mask(num_cols: int, acceleration: int, *, acs: int = 24) -> npt.NDArray[np.bool_]:
    """CMRxRecon 2023 uniform mask: every R-th line from the first, plus ``acs`` centre lines.

    Mirrors the challenge's ``mySubsampling.m``: ``mask(:, 1:R:end) = 1`` and a
    centred block of ``acs`` calibration lines (``zpad`` centring, first line at
    ``num_cols // 2 - acs // 2``).

    Parameters
    ----------
    num_cols : int
        Number of ky lines.
    acceleration : int
        Line spacing R (4, 8 or 10 in the challenge).
    acs : int
        Number of fully sampled calibration lines.

    Returns
    -------
    numpy.ndarray of bool, shape (num_cols,)
        Sampled lines.

    Examples
    --------
    >>> m = cmrxrecon_mask(20, 4, acs=4)
    >>> np.flatnonzero(m).tolist()
    [0, 4, 8, 9, 10, 11, 12, 16]
    """
    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    if not 0 <= acs <= num_cols:
        raise ValueError(f"acs={acs} outside [0, {num_cols}]")
    mask = np.zeros(num_cols, dtype=bool)
    mask[::acceleration] = True
    start = num_cols // 2 - acs // 2
    mask[start : start + acs] = True
    return mask


def acs_bounds(mask: npt.ArrayLike) -> tuple[int, int]:
    """Largest run of consecutive sampled lines that contains the centre line.

    Parameters
    ----------
    mask : array_like of bool, shape (W,)
        Line mask.

    Returns
    -------
    tuple of int
        ``(start, stop)`` of the calibration (ACS) block, stop exclusive.

    Raises
    ------
    ValueError
        If the centre line ``W // 2`` is not sampled.

    Examples
    --------
    >>> acs_bounds([0, 1, 0, 1, 1, 1, 1, 0, 1])
    (3, 7)
    """
    m = np.asarray(mask, dtype=bool).ravel()
    c = m.size // 2
    if not m[c]:
        raise ValueError("the centre line is not sampled: there is no calibration region")
    lo = c
    while lo > 0 and m[lo - 1]:
        lo -= 1
    hi = c + 1
    while hi < m.size and m[hi]:
        hi += 1
    return lo, hi


def _calib_box(shape: tuple[int, int], calib: int | tuple[int, int]) -> tuple[slice, slice]:
    cy, cx = (calib, calib) if isinstance(calib, int) else calib
    return (
        slice(shape[0] // 2 - cy // 2, shape[0] // 2 - cy // 2 + cy),
        slice(shape[1] // 2 - cx // 2, shape[1] // 2 - cx // 2 + cx),
    )


def variable_density_mask(
    shape: int | tuple[int, int],
    acceleration: float,
    *,
    acs: int | tuple[int, int] = 24,
    power: float = 2.0,
    seed: int | None = None,
) -> npt.NDArray[np.bool_]:
    """Random variable-density mask with a polynomial density and a dense centre.

    Each sample outside the calibration region is kept independently with
    probability ``p(r) = min(1, c (1 - r)^power)`` where ``r`` is the
    normalised distance from the centre (in ``[0, 1]``) and ``c`` is found by
    bisection so that the expected number of samples is ``size / acceleration``.

    Parameters
    ----------
    shape : int or tuple of two int
        ``W`` for a line mask along the last axis, or ``(H, W)`` for a 2D mask.
    acceleration : float
        Target acceleration (total samples / kept samples), > 1.
    acs : int or tuple of int
        Size of the fully sampled centre (lines, or a ``(cy, cx)`` box).
    power : float
        Polynomial decay of the density.
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    numpy.ndarray of bool
        Mask of ``shape``.

    Examples
    --------
    >>> m = variable_density_mask((64, 64), 4, acs=8, seed=0)
    >>> bool(m[28:36, 28:36].all()), bool(3.5 < m.size / m.sum() < 4.5)
    (True, True)
    """
    shp = (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)
    if len(shp) not in (1, 2):
        raise ValueError(f"shape must be W or (H, W), got {shape}")
    if acceleration <= 1:
        raise ValueError(f"acceleration must be > 1, got {acceleration}")
    grids = np.meshgrid(
        *[(np.arange(n) - n // 2) / max(n / 2, 1) for n in shp], indexing="ij"
    )
    r = np.sqrt(sum(g**2 for g in grids)) / math.sqrt(len(shp))
    base = np.clip(1.0 - r, 0.0, 1.0) ** power
    dense = np.zeros(shp, dtype=bool)
    if len(shp) == 1:
        a = int(acs) if isinstance(acs, int) else int(acs[0])
        dense[shp[0] // 2 - a // 2 : shp[0] // 2 - a // 2 + a] = True
    else:
        dense[_calib_box((shp[0], shp[1]), acs)] = True
    target = dense.size / acceleration
    if dense.sum() >= target:
        raise ValueError(
            f"the calibration region alone ({int(dense.sum())} samples) exceeds the "
            f"budget of {target:.0f} samples for acceleration {acceleration}"
        )
    lo, hi = 0.0, 1.0
    while np.minimum(1.0, hi * base)[~dense].sum() + dense.sum() < target:
        hi *= 2.0
        if hi > 1e12:
            raise ValueError(f"acceleration {acceleration} is unreachable for shape {shp}")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.minimum(1.0, mid * base)[~dense].sum() + dense.sum() < target:
            lo = mid
        else:
            hi = mid
    prob = np.minimum(1.0, hi * base)
    rng = np.random.default_rng(seed)
    return np.asarray(dense | (rng.random(shp) < prob))


def _poisson_once(
    shape: tuple[int, int],
    scale: float,
    order: np.ndarray,
    offsets: np.ndarray,
    offset_dist: np.ndarray,
    radius: np.ndarray,
) -> np.ndarray:
    h, w = shape
    taken = np.zeros((h + 2 * _PAD, w + 2 * _PAD), dtype=bool)
    flat = taken.ravel()
    stride = w + 2 * _PAD
    lin = offsets[:, 0] * stride + offsets[:, 1]
    rad = radius.ravel() * scale
    counts = np.searchsorted(offset_dist, rad, side="left")
    for p in order:
        i, j = divmod(int(p), w)
        q = (i + _PAD) * stride + (j + _PAD)
        n = counts[p]
        if n and flat[q + lin[:n]].any():
            continue
        flat[q] = True
    return taken[_PAD : _PAD + h, _PAD : _PAD + w].copy()


_PAD = 12


def poisson_disc_mask(
    shape: tuple[int, int],
    acceleration: float,
    *,
    calib: int | tuple[int, int] = 24,
    density_slope: float = 2.0,
    seed: int | None = None,
    tolerance: float = 0.05,
) -> npt.NDArray[np.bool_]:
    """2D variable-density Poisson-disc mask with a fully sampled calibration box.

    Samples are accepted in random order if no accepted sample lies within
    the local radius ``s (1 + density_slope * r)`` (``r`` the normalised
    distance from the centre), so samples never cluster and thin out towards
    the edge of k-space. The scale ``s`` is found by bisection to reach the
    acceleration within ``tolerance`` (relative).

    Parameters
    ----------
    shape : tuple of two int
        ``(H, W)`` of the k-space plane.
    acceleration : float
        Target acceleration, > 1.
    calib : int or tuple of int
        Size of the fully sampled centre box.
    density_slope : float
        How much faster the radius grows towards the edge (0: uniform density).
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`.
    tolerance : float
        Accepted relative error of the achieved acceleration.

    Returns
    -------
    numpy.ndarray of bool, shape ``shape``
        Sampling mask.

    Examples
    --------
    >>> m = poisson_disc_mask((48, 48), 4, calib=8, seed=0)
    >>> bool(m[20:28, 20:28].all()), bool(3.6 < m.size / m.sum() < 4.4)
    (True, True)
    """
    h, w = int(shape[0]), int(shape[1])
    if acceleration <= 1:
        raise ValueError(f"acceleration must be > 1, got {acceleration}")
    yy, xx = np.meshgrid(
        (np.arange(h) - h // 2) / (h / 2), (np.arange(w) - w // 2) / (w / 2), indexing="ij"
    )
    r = np.sqrt(yy**2 + xx**2) / math.sqrt(2.0)
    radius = 1.0 + density_slope * r
    dense = np.zeros((h, w), dtype=bool)
    dense[_calib_box((h, w), calib)] = True
    target = h * w / acceleration
    if dense.sum() >= target:
        raise ValueError(
            f"the calibration box ({int(dense.sum())} samples) exceeds the budget of "
            f"{target:.0f} samples for acceleration {acceleration}"
        )
    oy, ox = np.meshgrid(np.arange(-_PAD, _PAD + 1), np.arange(-_PAD, _PAD + 1), indexing="ij")
    d = np.sqrt(oy**2 + ox**2).ravel()
    keep = d > 0
    offs = np.stack([oy.ravel()[keep], ox.ravel()[keep]], axis=1)
    d = d[keep]
    srt = np.argsort(d, kind="stable")
    offs, d = offs[srt], d[srt]
    rng = np.random.default_rng(seed)
    order = rng.permutation(h * w)
    # scale s such that the mean spacing matches the target density
    lo, hi = 0.5, float(_PAD) / (1.0 + density_slope)
    best = None
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        m = _poisson_once((h, w), mid, order, offs, d, radius) | dense
        achieved = m.size / m.sum()
        best = m
        if abs(achieved - acceleration) <= tolerance * acceleration:
            break
        if achieved < acceleration:
            lo = mid
        else:
            hi = mid
    assert best is not None
    return np.asarray(best)


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
