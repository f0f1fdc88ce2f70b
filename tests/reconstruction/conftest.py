from __future__ import annotations

import numpy as np
import pytest

from medlens.reconstruction import SimulatedKspace, simulate_kspace


def brain_like_phantom(n: int = 64) -> np.ndarray:
    """A smooth head-like magnitude phantom: ellipses with different intensities."""
    yy, xx = np.mgrid[-n // 2 : n // 2, -n // 2 : n // 2] / (n / 2)
    img = 0.9 * ((yy / 0.85) ** 2 + (xx / 0.7) ** 2 < 1)
    img = img + 0.4 * ((yy / 0.7) ** 2 + (xx / 0.55) ** 2 < 1)
    img = img - 0.5 * (((yy - 0.2) / 0.2) ** 2 + ((xx + 0.25) / 0.12) ** 2 < 1)
    img = img - 0.5 * (((yy - 0.2) / 0.2) ** 2 + ((xx - 0.25) / 0.12) ** 2 < 1)
    img = img + 0.3 * (((yy + 0.35) / 0.1) ** 2 + (xx / 0.1) ** 2 < 1)
    return np.clip(img, 0, None)


@pytest.fixture(scope="session")
def make_phantom():
    return brain_like_phantom


def _band(n: int) -> np.ndarray:
    """A textured band that fills the field of view along the phase-encoding (last) axis."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    texture = 1.0 + 0.5 * np.cos(6 * np.pi * xx) * np.sin(4 * np.pi * yy)
    return ((yy > 0.15) & (yy < 0.85)) * texture


@pytest.fixture(scope="session")
def make_band():
    """Images whose object meets the edge of the field of view (one set of maps fails there)."""
    return _band


@pytest.fixture(scope="session")
def phantom() -> np.ndarray:
    return brain_like_phantom(64)


@pytest.fixture(scope="session")
def sim8(phantom: np.ndarray) -> SimulatedKspace:
    """8 coils, equispaced R=3 with 16 ACS columns, mild noise, simulated on a 2x grid."""
    return simulate_kspace(phantom, coils=8, acceleration=3, acs=16, noise=0.002, seed=3)
