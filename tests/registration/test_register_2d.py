"""ITK Software Guide slices (registration-2d): recover the documented transforms."""

from __future__ import annotations

import numpy as np
import pytest

from medlens import datasets
from medlens.io import ras_to_lps, read_image
from medlens.registration import AffineTransform, center_of_mass, register
from medlens.registration._transforms import euler_angles

from .conftest import grid_points

FLIP = np.diag([-1.0, -1.0, 1.0])


def _run(pair: datasets.ImagePair, **kw: object) -> tuple[AffineTransform, np.ndarray]:
    fixed = read_image(pair.fixed)
    moving = read_image(pair.moving)
    res = register(fixed, moving, **kw)  # type: ignore[arg-type]
    return res.linear, pair.transform.matrix


def _lps(t: AffineTransform) -> tuple[np.ndarray, np.ndarray]:
    return FLIP @ t.matrix @ FLIP, FLIP @ t.translation


def _itk_params(
    t: AffineTransform, center_lps: tuple[float, float]
) -> tuple[float, float, np.ndarray]:
    """ITK (Similarity2D / CenteredRigid2D) parameters about a fixed centre, in LPS."""
    a, b = _lps(t)
    c = np.array([*center_lps, 0.0])
    trans = b + a @ c - c
    angle = float(np.arctan2(a[1, 0], a[0, 0]))
    scale = float(np.sqrt(abs(np.linalg.det(a[:2, :2]))))
    return scale, angle, trans[:2]


def test_shift_13x17_mse(pairs: dict[str, datasets.ImagePair]) -> None:
    t, _ = _run(pairs["pd_shift13x17"], model="rigid", metric="mse")
    _, b = _lps(t)
    np.testing.assert_allclose(b[:2], [13.0, 17.0], atol=0.1)
    assert abs(np.degrees(euler_angles(t)[0])) < 0.05


def test_rotated_10_degrees(pairs: dict[str, datasets.ImagePair]) -> None:
    t, _ref = _run(pairs["pd_rot10"], model="rigid", metric="mse")
    angle = np.degrees(euler_angles(t)[0])
    # ITK's ImageRegistration5 reports 0.177612 rad = 10.18 deg for this pair.
    assert abs(angle - 10.0) < 0.2
    _scale, _, trans = _itk_params(t, (110.5, 128.5))
    np.testing.assert_allclose(trans, [0.0, 0.0], atol=0.1)


def test_t1_vs_pd_shift_mutual_information(pairs: dict[str, datasets.ImagePair]) -> None:
    pair = pairs["t1_pd_shift13x17"]
    assert pair.cross_modality
    t, ref = _run(pair, model="rigid", metric="mi")
    err = np.linalg.norm(t.translation[:2] - ref[:2, 3])
    assert err < 0.3
    assert abs(np.degrees(euler_angles(t)[0])) < 0.2


def test_r10x13y17_matches_itk_image_registration5(pairs: dict[str, datasets.ImagePair]) -> None:
    # ITK Software Guide, ImageRegistration5 (CenteredRigid2D, centre = the fixed image's
    # geometric centre (110.5, 128.5)): [0.174582, 13.0002, 16.0007].
    t, _ = _run(pairs["pd_r10x13y17"], model="rigid", metric="mse")
    _scale, angle, trans = _itk_params(t, (110.5, 128.5))
    assert abs(angle - 0.174582) < 1e-3
    np.testing.assert_allclose(trans, [13.0002, 16.0007], atol=0.1)
    # ImageRegistration6 reports the same transform as matrix + offset.
    a, b = _lps(t)
    np.testing.assert_allclose(a[:2, :2], [[0.984809, -0.173642], [0.173642, 0.984809]],
                               atol=1e-3)
    np.testing.assert_allclose(b[:2], [36.9919, -1.23402], atol=0.1)


def test_r10x13y17s12_matches_itk_image_registration7(pairs: dict[str, datasets.ImagePair]) -> None:
    # ITK Software Guide, ImageRegistration7 (Similarity2D, centre = fixed centre of mass
    # from MomentsOn(), (111.204, 131.591) in ImageRegistration6's text):
    # [0.833237, -0.174511, -12.8065, -12.7244].
    pair = pairs["pd_r10x13y17s12"]
    fixed = read_image(pair.fixed)
    com_lps = ras_to_lps(center_of_mass(fixed)[None])[0]
    np.testing.assert_allclose(com_lps[:2], [111.204, 131.591], atol=0.01)
    t, _ref = _run(pair, model="similarity", metric="mse")
    scale, angle, trans = _itk_params(t, (float(com_lps[0]), float(com_lps[1])))
    assert abs(scale - 0.833237) < 1e-3
    assert abs(angle - -0.174511) < 1e-3
    np.testing.assert_allclose(trans, [-12.8065, -12.7244], atol=0.1)


@pytest.mark.parametrize(
    "pair_id",
    ["pd_shift13x17_dirplus30", "pd_shift13x17_dirminus30", "pd_dirplus30_vs_pd",
     "pd_dirminus30_vs_pd"],
)
def test_direction_cosines_are_honoured(pairs: dict[str, datasets.ImagePair], pair_id: str) -> None:
    pair = pairs[pair_id]
    fixed = read_image(pair.fixed)
    t, ref = _run(pair, model="rigid", metric="mse")
    pts = grid_points(fixed)
    want = pts @ ref[:3, :3].T + ref[:3, 3]
    got = t.transform_points(pts)
    assert np.abs(got - want).max() < 0.1


def test_direction_pair_needs_the_rotation(pairs: dict[str, datasets.ImagePair]) -> None:
    # fixed without, moving with a +30 degree direction matrix: a 30 degree world rotation.
    pd = read_image(pairs["pd_shift13x17"].fixed)
    moving = read_image(pairs["pd_shift13x17_dirplus30"].moving)
    res = register(pd, moving, model="rigid", metric="mse")
    assert abs(abs(np.degrees(euler_angles(res.linear)[0])) - 30.0) < 0.05
