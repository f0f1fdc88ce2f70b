"""The linear MSE optimiser: Levenberg-Marquardt on the exact full-grid MSE."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medlens.image import Image
from medlens.registration import (
    AffineTransform,
    center_of_mass,
    register,
    rigid_transform,
    warp_image,
)

from .conftest import grid_points


@pytest.fixture(scope="module")
def blobs() -> Image:
    """A smooth anisotropic 2D image (sum of Gaussian blobs) on a 1.0 x 1.25 mm grid."""
    rng = np.random.default_rng(3)
    arr = np.zeros((96, 80))
    arr[tuple(rng.integers(12, 68, size=(2, 40)))] = rng.uniform(0.5, 1.0, 40)
    arr = ndimage.gaussian_filter(arr, 3.0)
    aff = np.diag([1.0, 1.25, 1.0, 1.0])
    return Image((arr / arr.max()).astype(np.float32), aff)


def _truth(fixed: Image, model: str) -> AffineTransform:
    c = center_of_mass(fixed)
    t = rigid_transform((np.deg2rad(3.0),), (2.3, -1.7), center=c)
    if model == "affine":
        lin = t.matrix @ np.array([[1.04, 0.02, 0.0], [-0.01, 0.97, 0.0], [0.0, 0.0, 1.0]])
        t = AffineTransform(lin, t.translation + t.matrix @ c - lin @ c, ndim=2)
    return t


def _mse_at(fixed: Image, moving: Image, t: AffineTransform) -> float:
    """The full-resolution MSE ``register`` reports, at a given transform (no optimisation)."""
    res = register(fixed, moving, model="rigid", metric="mse", initial=t, shrink_factors=(1,),
                   iterations=0)
    assert np.allclose(res.linear.matrix, t.matrix) and np.allclose(res.linear.translation,
                                                                    t.translation)
    return res.metrics.mse


@pytest.mark.parametrize("model", ["rigid", "affine"])
def test_mse_optimiser_converges_to_the_full_grid_minimum(blobs: Image, model: str) -> None:
    truth = _truth(blobs, model)
    moving = warp_image(blobs, truth.inverse(), like=blobs, interpolation="bspline")
    res = register(blobs, moving, model=model, metric="mse",  # type: ignore[arg-type]
                   shrink_factors=(2, 1), iterations=60)
    # converged (stopped by the step / rejection rule), not by the iteration cap
    assert all(lv.iterations < 60 for lv in res.levels)
    pts = grid_points(blobs)
    err = np.linalg.norm(res.transform.transform_points(pts) - truth.transform_points(pts), axis=1)
    assert err.max() < 0.05
    # a local minimum of the exact full-grid MSE: moving off it by 0.05 mm makes it worse
    best = res.metrics.mse
    assert abs(_mse_at(blobs, moving, res.linear) - best) <= 1e-9
    for axis in range(2):
        for sign in (-1.0, 1.0):
            shift = np.zeros(3)
            shift[axis] = 0.05 * sign
            moved_t = AffineTransform(res.linear.matrix, res.linear.translation + shift, ndim=2)
            assert _mse_at(blobs, moving, moved_t) > best


def test_non_mse_metrics_keep_the_stochastic_optimiser(blobs: Image) -> None:
    truth = _truth(blobs, "rigid")
    moving = warp_image(blobs, truth.inverse(), like=blobs, interpolation="bspline")
    res = register(blobs, moving, model="rigid", metric="ncc", shrink_factors=(2, 1),
                   iterations=40)
    assert [lv.iterations for lv in res.levels] == [40, 40]  # Adam runs every step
    pts = grid_points(blobs)
    err = np.linalg.norm(res.transform.transform_points(pts) - truth.transform_points(pts), axis=1)
    assert err.max() < 0.1
