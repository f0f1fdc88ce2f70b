"""Shared fixtures for the whole suite."""

from __future__ import annotations

import numpy as np
import pytest

from medlens import Image


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261201)


def oblique_affine(spacing=(0.9, 1.2, 2.5), angles=(0.3, -0.2, 0.5), origin=(10.0, -20.0, 30.0)):
    """A rotated, anisotropic voxel-to-RAS affine."""
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    a[:3, 3] = origin
    return a


@pytest.fixture
def oblique_image(rng) -> Image:
    arr = rng.normal(size=(7, 8, 5)).astype(np.float32)
    return Image(arr, oblique_affine())
