"""Registration metrics: analytic fields whose Jacobians are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlens import metrics as mm
from medlens.errors import GeometryError


def _coords(shape: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    idx = np.indices(shape).astype(float)
    return idx * np.array(spacing).reshape((-1,) + (1,) * len(shape))


def test_tre_hand_worked() -> None:
    fixed = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    moved = np.array([[3.0, 4.0, 0.0], [10.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(mm.target_registration_error(fixed, moved), [5.0, 0.0, 3.0])
    with pytest.raises(ValueError, match="equal shape"):
        mm.target_registration_error(fixed, moved[:2])
    with pytest.raises(ValueError, match="NaN"):
        mm.target_registration_error([[np.nan, 0.0]], [[0.0, 0.0]])


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.3, 2.5)])
def test_linear_field_jacobian_is_exact(spacing: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(0)
    a = 0.2 * rng.standard_normal((3, 3))  # u(x) = A x + b  ->  J = det(I + A)
    x = _coords((7, 6, 5), spacing)
    u = np.tensordot(a, x, axes=1) + np.array([1.0, -2.0, 0.5])[:, None, None, None]
    jac = mm.jacobian_determinant(u, spacing=spacing)
    np.testing.assert_allclose(jac, np.linalg.det(np.eye(3) + a), rtol=1e-12)


def test_spacing_matters() -> None:
    # u_0 = 0.5 * i (in voxel index units): in mm the slope is 0.5 / spacing_0
    u = np.zeros((3, 5, 5, 5))
    u[0] = 0.5 * np.indices((5, 5, 5))[0]
    np.testing.assert_allclose(mm.jacobian_determinant(u, spacing=(1.0, 1.0, 1.0)), 1.5)
    np.testing.assert_allclose(mm.jacobian_determinant(u, spacing=(2.0, 1.0, 1.0)), 1.25)


def test_2d_and_folding() -> None:
    x = _coords((6, 8), (1.0, 1.0))
    # mirror along axis 0: T(x) = (-x0, x1)  ->  u = (-2 x0, 0), J = -1 everywhere
    u = np.stack([-2.0 * x[0], np.zeros_like(x[1])])
    stats = mm.jacobian_statistics(u, spacing=(1.0, 1.0))
    assert stats.fraction_nonpositive == 1.0
    assert math.isnan(stats.std_log_jacobian)
    assert stats.minimum == pytest.approx(-1.0)
    # fold half of the grid only
    u2 = u.copy()
    u2[:, :, 4:] = 0.0
    s2 = mm.jacobian_statistics(u2, spacing=(1.0, 1.0))
    assert s2.fraction_nonpositive == pytest.approx(0.5)
    assert s2.std_log_jacobian == pytest.approx(0.0)
    mask = np.zeros((6, 8))
    mask[:, 4:] = 1
    assert mm.jacobian_statistics(u2, spacing=(1.0, 1.0), mask=mask).fraction_nonpositive == 0.0


def test_std_log_jacobian_hand_worked() -> None:
    # Two halves with J = e^{0.1} and J = e^{-0.1} (u_0 piecewise linear, exact inside each half)
    shape = (10, 4, 4)
    u = np.zeros((3, *shape))
    i = np.arange(shape[0], dtype=float)
    jac = mm.jacobian_determinant(u, spacing=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(jac, 1.0)
    s1, s2 = math.exp(0.1) - 1, math.exp(-0.1) - 1
    u[0] = (s1 * i)[:, None, None]
    j1 = mm.jacobian_determinant(u, spacing=(1.0, 1.0, 1.0))
    mask = np.zeros(shape)
    mask[:5] = 1
    u[0] = np.where(i[:, None, None] < 5, s1 * i[:, None, None], s2 * i[:, None, None])
    j2 = mm.jacobian_determinant(u, spacing=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(j1, math.exp(0.1))
    np.testing.assert_allclose(j2[:4], math.exp(0.1))
    np.testing.assert_allclose(j2[6:], math.exp(-0.1))
    keep = np.zeros(shape)
    keep[:4] = 1
    keep[6:] = 1
    stats = mm.jacobian_statistics(u, spacing=(1.0, 1.0, 1.0), mask=keep)
    assert stats.std_log_jacobian == pytest.approx(0.1, rel=1e-9)


def test_direction_rotation_is_invariant() -> None:
    rng = np.random.default_rng(3)
    a = 0.1 * rng.standard_normal((3, 3))
    x = _coords((5, 5, 5), (1.0, 2.0, 1.5))
    u = np.tensordot(a, x, axes=1)
    theta = 0.4
    c, s = math.cos(theta), math.sin(theta)
    r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    u_world = np.tensordot(r, u, axes=1)
    jac = mm.jacobian_determinant(u_world, spacing=(1.0, 2.0, 1.5), direction=r)
    np.testing.assert_allclose(jac, np.linalg.det(np.eye(3) + a), rtol=1e-12)


def test_volume_change_uniform_scaling() -> None:
    spacing = (1.0, 1.5, 2.0)
    x = _coords((8, 8, 8), spacing)
    u = -0.2 * x  # T(x) = 0.8 x: volumes scale by 0.512
    mask = np.zeros((8, 8, 8))
    mask[2:6, 1:5, 3:7] = 1
    vc = mm.volume_change(u, mask, spacing=spacing)
    assert vc.fixed_ml == pytest.approx(64 * 3.0 / 1000)
    assert vc.transformed_ml == pytest.approx(0.512 * vc.fixed_ml)
    assert vc.relative_change == pytest.approx(-0.488)
    with pytest.raises(ValueError, match="empty"):
        mm.volume_change(u, np.zeros((8, 8, 8)), spacing=spacing)


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="D, \\*spatial"):
        mm.jacobian_determinant(np.zeros((2, 4, 4, 4)), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(GeometryError, match="spacing"):
        mm.jacobian_determinant(np.zeros((3, 4, 4, 4)), spacing=(1.0, 1.0))
    with pytest.raises(GeometryError, match="spacing"):
        mm.jacobian_determinant(np.zeros((3, 4, 4, 4)), spacing=(1.0, 0.0, 1.0))


def test_learn2reg_sdlogj_hand_worked() -> None:
    """Learn2Reg SDlogJ (MDL-UzL/L2R evaluation): std of log(clip(J + 3, 1e-9, 1e9)) over
    the grid without 2 voxels per side. u_0 piecewise linear in i with slopes 1 (J = 2)
    then -5 (J = -4, clipped); the central difference at the kink i = 7 gives J = -1."""
    shape = (14, 5, 5)
    i = np.arange(shape[0], dtype=float)
    u = np.zeros((3, *shape))
    u0 = np.where(i <= 7, i, 7.0 - 5.0 * (i - 7))
    u[0] = u0[:, None, None]
    # interior i = 2..11 (j = k = 2 only): i = 2..6 -> J = 2, i = 7 -> J = -1, 8..11 -> J = -4
    logs = [math.log(5.0)] * 5 + [math.log(2.0)] + [math.log(1e-9)] * 4
    expected = float(np.std(logs))
    assert mm.learn2reg_sdlogj(u, spacing=(1.0, 1.0, 1.0)) == pytest.approx(expected, rel=1e-12)
    # the same field in mm on a (2, 1, 1) mm grid: J, hence SDlogJ, unchanged
    u_mm = u.copy()
    u_mm[0] *= 2.0
    got = mm.learn2reg_sdlogj(u_mm, spacing=(2.0, 1.0, 1.0))
    assert got == pytest.approx(expected, rel=1e-12)
    # medlens's std_log_jacobian is another quantity (log J over J > 0, whole grid)
    assert mm.jacobian_statistics(u, spacing=(1.0, 1.0, 1.0)).std_log_jacobian != pytest.approx(
        expected
    )


def test_learn2reg_sdlogj_needs_5_voxels() -> None:
    with pytest.raises(ValueError, match="at least 5"):
        mm.learn2reg_sdlogj(np.zeros((3, 4, 6, 6)), spacing=(1.0, 1.0, 1.0))
