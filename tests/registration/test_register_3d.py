"""3D: recover known rigid, affine and smooth deformable warps of a real T1 (brain-extraction).

The volume is the ITK KmeansTest T1 resampled to 4 mm (64x64x47) to keep the suite fast.
Moving images are the fixed one pulled through the inverse of a known transform
(cubic B-spline), so the transform a registration must find is that known one.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medlens.image import Image
from medlens.metrics import target_registration_error
from medlens.registration import (
    AffineTransform,
    VelocityField,
    center_of_mass,
    jacobian_determinant,
    register,
    rigid_transform,
    warp_image,
)

from .conftest import brain_at, grid_points


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.mark.parametrize(
    ("case_id", "model"),
    [("itk_kmeanstest", "rigid"), ("itk_kmeanstest", "affine"), ("colin27", "rigid"),
     ("colin27", "affine")],
)
def test_recovers_known_linear_transform(case_id: str, model: str) -> None:
    # colin27 (181x217x181 @ 1 mm) at 4 mm is 45x54x45; the ITK T1 at 4 mm is 64x64x47
    fixed, _ = brain_at(case_id, 4.0)
    c = center_of_mass(fixed)
    truth = rigid_transform((0.08, -0.05, 0.12), (4.0, -6.0, 3.0), center=c)
    if model == "affine":
        lin = truth.matrix @ np.array([[1.06, 0.03, 0.0], [0.0, 0.95, 0.02], [0.01, 0.0, 1.03]])
        truth = AffineTransform(lin, truth.translation + truth.matrix @ c - lin @ c)
    moving = warp_image(fixed, truth.inverse(), like=fixed, interpolation="bspline")
    res = register(fixed, moving, model=model, metric="mse", iterations=(100, 100))
    pts = grid_points(fixed)
    tre = target_registration_error(truth.transform_points(pts),
                                    res.transform.transform_points(pts))
    assert tre.max() < 1.0
    assert tre.mean() < 0.5


def test_recovers_smooth_deformation(brain4mm: tuple[Image, Image]) -> None:
    fixed, mask = brain4mm
    rng = np.random.default_rng(0)
    v = rng.standard_normal((3, *fixed.spatial_shape))
    v = np.stack([ndimage.gaussian_filter(ch, 4.0) for ch in v])
    v *= 30.0 / np.abs(v).max()
    truth = VelocityField(Image(v, fixed.affine, channels=True))
    moving = warp_image(fixed, truth.inverse(), like=fixed, interpolation="bspline")
    moving_mask = warp_image(mask, truth.inverse(), like=fixed, interpolation="label")
    before = _dice(mask.array, moving_mask.array)
    res = register(fixed, moving, model="deformable", metric="mse", iterations=(60, 60),
                   deformable_iterations=(100, 50))
    assert res.displacement is not None
    back = warp_image(moving_mask, res.transform, like=fixed, interpolation="label")
    after = _dice(mask.array, back.array)
    jac = jacobian_determinant(res.transform, fixed).array
    assert before < 0.93
    assert after > 0.95
    assert jac.min() > 0  # no folding


def test_volume_preserving_penalty_keeps_masked_volume(brain4mm: tuple[Image, Image]) -> None:
    fixed, mask = brain4mm
    c = center_of_mass(fixed, mask)
    idx = np.indices(fixed.spatial_shape).reshape(3, -1).T
    d = fixed.voxel_to_world(idx) - c
    # a local contraction around c (a "shrinking lesion"), about -25 % volume at its centre
    g = np.exp(-(d**2).sum(1) / (2 * 14.0**2))
    v = (-0.1 * d * g[:, None]).T.reshape((3, *fixed.spatial_shape))
    truth = VelocityField(Image(v, fixed.affine, channels=True))
    moving = warp_image(fixed, truth.inverse(), like=fixed, interpolation="bspline")
    region = (np.linalg.norm(d, axis=1) <= 12.0).reshape(fixed.spatial_shape)
    soft = fixed.with_array(ndimage.gaussian_filter(region.astype(np.float32), 0.5))
    true_change = jacobian_determinant(truth.exponential()).array[region].mean() - 1.0
    kw = dict(model="deformable", metric="mse", iterations=(60, 60),
              deformable_iterations=(100, 50))
    free = register(fixed, moving, **kw)  # type: ignore[arg-type]
    kept = register(fixed, moving, preserve_volume=soft, volume_weight=2.0, **kw)  # type: ignore[arg-type]
    free_change = jacobian_determinant(free.transform, fixed).array[region].mean() - 1.0
    kept_change = jacobian_determinant(kept.transform, fixed).array[region].mean() - 1.0
    assert true_change < -0.15
    assert free_change < -0.05  # the unconstrained run follows the contraction
    assert abs(kept_change) < 0.02
    assert jacobian_determinant(kept.transform, fixed).array.min() > 0
