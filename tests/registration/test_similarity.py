"""Similarity losses: hand-worked values, gradients, the pluggable feature encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlens.image import Image
from medlens.registration import (
    FeatureLoss,
    lncc_loss,
    mattes_mi_loss,
    mse_loss,
    ncc_loss,
    register,
    rigid_transform,
    warp_image,
)


def test_mse_and_ncc_hand_worked() -> None:
    f = torch.tensor([1.0, 2.0, 3.0, 4.0])
    w = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert float(mse_loss(f, f + torch.tensor([1.0, -1.0, 2.0, 100.0]), w)) == pytest.approx(2.0)
    assert float(ncc_loss(f, -3.0 * f, torch.ones(4))) == pytest.approx(1.0)


def test_lncc_is_invariant_to_local_affine_intensity() -> None:
    g = torch.Generator().manual_seed(0)
    f = torch.rand(20, 20, 20, generator=g)
    ramp = torch.linspace(1.0, 2.0, 20)[:, None, None].expand(20, 20, 20)
    one = torch.ones_like(f)
    # a constant gain and offset are invisible; a slowly varying gain almost so
    assert float(lncc_loss(f, 3.0 * f + 0.5, one, radius_vox=2)) < -0.999
    assert float(lncc_loss(f, f * ramp + 0.5, one, radius_vox=2)) < -0.98
    assert float(lncc_loss(f, torch.rand(20, 20, 20, generator=g), torch.ones_like(f))) > -0.1


def test_mattes_mi_gradient_matches_finite_differences() -> None:
    g = torch.Generator().manual_seed(1)
    f = torch.rand(300, generator=g, dtype=torch.float64)
    m = (0.7 * f + 0.1 * torch.rand(300, generator=g, dtype=torch.float64)).requires_grad_(True)
    w = torch.ones(300, dtype=torch.float64)
    kw = dict(bins=16, fixed_range=(0.0, 1.0), moving_range=(0.0, 0.8))

    def fn(x: torch.Tensor) -> torch.Tensor:
        return mattes_mi_loss(f, x, w, **kw)  # type: ignore[arg-type]

    assert torch.autograd.gradcheck(fn, (m,), eps=1e-6, atol=1e-5)


def test_mi_is_highest_for_a_deterministic_relation() -> None:
    g = torch.Generator().manual_seed(2)
    f = torch.rand(5000, generator=g)
    w = torch.ones(5000)
    related = -float(mattes_mi_loss(f, torch.cos(3 * f), w))
    unrelated = -float(mattes_mi_loss(f, torch.rand(5000, generator=g), w))
    assert related > 1.0
    assert unrelated < 0.05


class _TinyEncoder(torch.nn.Module):
    """A two-layer conv encoder with fixed random weights (stands in for a trained network)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(4, 8, 3, padding=1, stride=2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        a = torch.relu(self.c1(x))
        return [a, torch.relu(self.c2(a))]


def test_feature_loss_with_a_custom_encoder_is_minimal_at_alignment() -> None:
    loss = FeatureLoss(_TinyEncoder(), distance="l1")
    g = torch.Generator().manual_seed(3)
    img = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 40, 40, generator=g), 3, 1, 1)[0, 0]
    w = torch.ones_like(img)
    aligned = float(loss(img, img, w))
    shifted = float(loss(img, torch.roll(img, 2, 0), w))
    assert aligned == pytest.approx(0.0, abs=1e-7)
    assert shifted > 0.01
    # encoder weights stay frozen
    assert all(not p.requires_grad for p in loss.encoder.parameters())


def test_feature_metric_registers_the_itk_shift(pairs: dict) -> None:
    from medlens.io import read_image

    pair = pairs["pd_shift13x17"]
    res = register(read_image(pair.fixed), read_image(pair.moving), model="deformable",
                   metric="feature", shrink_factors=(4, 2), iterations=60,
                   deformable_iterations=30)
    # the linear stages use NCC; the feature-driven deformable stage must not undo them
    pts = np.array([[-60.0, -80.0, 0.0], [-150.0, -170.0, 0.0], [-110.0, -128.0, 0.0]])
    want = pts + pair.transform.matrix[:3, 3]
    assert np.abs(res.transform.transform_points(pts) - want).max() < 1.0
    assert res.metrics.ncc > 0.95


def test_2d_mse_register_on_synthetic_rotation() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(0)
    arr = ndimage.gaussian_filter(rng.standard_normal((64, 64)), 3.0).astype(np.float32)
    fixed = Image(arr, np.diag([1.5, 1.5, 1.0, 1.0]))
    truth = rigid_transform(4.0, (2.0, -1.5), center=(48.0, 48.0), degrees=True)
    moving = warp_image(fixed, truth.inverse(), like=fixed, interpolation="bspline")
    res = register(fixed, moving, model="rigid", metric="ncc")
    pts = np.array([[20.0, 20.0, 0.0], [70.0, 30.0, 0.0], [40.0, 70.0, 0.0]])
    assert np.abs(res.transform.transform_points(pts) - truth.transform_points(pts)).max() < 0.1
