from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from medlens.datasets import ReferenceTransform, fetch
from medlens.datasets._registration2d import ALL_PAIRS, index_matrix
from medlens.io import read_image


@pytest.fixture(scope="module")
def ds():
    return fetch("registration-2d")


def _warp(fixed, moving, world):
    """Sample the moving image at T(x) for every fixed pixel x (T: fixed -> moving world)."""
    i, j = np.meshgrid(*(np.arange(n) for n in fixed.spatial_shape), indexing="ij")
    pts = np.stack([i.ravel(), j.ravel()], axis=1)
    xw = fixed.voxel_to_world(pts)
    xm = (world[:3, :3] @ xw.T).T + world[:3, 3]
    q = moving.world_to_voxel(xm)
    out = map_coordinates(moving.array.astype(np.float64), q.T, order=1,
                          mode="constant", cval=np.nan)
    return out.reshape(fixed.spatial_shape)


def _mse(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.mean((a[ok] - b[ok]) ** 2))


def test_images_single_channel_2d(ds):
    assert len(ds.cases) == 12
    for case in ds.cases:
        img = read_image(case.images[0])
        assert img.spatial_ndim == 2 and not img.channels
        assert img.spatial_shape == (221, 257)
        assert img.array.dtype == np.uint8
    mask = read_image(ds.case("pd").labels[0])
    assert set(np.unique(mask.array).tolist()) == {0, 1}


def test_direction_headers_kept(ds):
    plus = read_image(ds.case("pd_dirplus30").images[0])
    minus = read_image(ds.case("pd_dirminus30").images[0])
    # the angle between the i axis of the +30 and -30 images is 60 degrees
    cos = plus.direction[:, 0] @ minus.direction[:, 0]
    np.testing.assert_allclose(np.degrees(np.arccos(cos)), 60.0, atol=1e-5)


@pytest.mark.parametrize("spec", ALL_PAIRS, ids=lambda s: s.pair_id)
def test_reference_transform_aligns_pair(ds, spec):
    pair = ds.pair(spec.pair_id)
    fixed = read_image(pair.fixed)
    moving = read_image(pair.moving)
    t = pair.transform
    # world and index matrices agree: A_m^-1 T A_f == index matrix
    a_f, a_m = fixed.affine, moving.affine
    m = np.linalg.inv(a_m) @ t.matrix @ a_f
    np.testing.assert_allclose(m[:2, :2], t.index_matrix[:2, :2], atol=1e-9)
    np.testing.assert_allclose(m[:2, 3], t.index_matrix[:2, 2], atol=1e-6)
    # compare with the PD image the moving one was made from (T1 fixed: cross-modality)
    ref_id = "pd_dirplus30" if "plus" in spec.fixed else (
        "pd_dirminus30" if "minus" in spec.fixed else "pd")
    ref = read_image(ds.case(ref_id).images[0]).array.astype(np.float64)
    warped = _warp(fixed, moving, t.matrix)
    identity = _warp(fixed, moving, np.eye(4))
    err, err0 = _mse(warped, ref), _mse(identity, ref)
    if t.model == "translation" or spec.pair_id.endswith("_vs_pd"):
        assert err < 1e-12  # exact: integer shifts / same pixels
    else:
        assert err < 0.04 * err0, (err, err0)  # rotated copies: interpolation residue only


def test_reference_beats_documented_itk_result_for_s12(ds):
    """Our similarity reference fits at least as well as the Software Guide's result."""
    fixed = read_image(ds.case("pd").images[0])
    moving = read_image(ds.case("pd_r10x13y17s12").images[0])
    ref = ds.pair("pd_r10x13y17s12").transform
    itk = index_matrix(np.degrees(-0.174511), 0.833237, (-12.8065, -12.7244),
                       center=(111.204, 131.591))
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])  # PNG index -> RAS world
    itk4 = np.eye(4)
    itk4[:2, :2], itk4[:2, 3] = itk[:2, :2], itk[:2, 2]
    f = fixed.array.astype(np.float64)
    e_ref = _mse(_warp(fixed, moving, ref.matrix), f)
    e_itk = _mse(_warp(fixed, moving, flip @ itk4 @ flip), f)
    assert e_ref <= e_itk * 1.01
    assert ref.scale == pytest.approx(1 / 1.2) and ref.angle_deg == -10.0


def test_transforms_json_matches_pairs(ds):
    table = json.loads(ds.extras["transforms"].read_text())
    assert "FIXED" in table["convention"] and table["center_index"] == [110.5, 128.5]
    assert set(table["pairs"]) == {p.pair_id for p in ds.pairs}
    for p in ds.pairs:
        entry = table["pairs"][p.pair_id]
        back = ReferenceTransform.from_json(entry)
        np.testing.assert_allclose(back.matrix, p.transform.matrix, atol=1e-9)
        assert entry["documented"] and entry["derivation"]
    shift = table["pairs"]["pd_shift13x17"]
    assert shift["translation_index"] == [13.0, 17.0]
    # PNG pixel axes point to L and P, so a (+13, +17) pixel shift is (-13, -17) mm in RAS
    np.testing.assert_allclose(np.array(shift["matrix_ras_fixed_to_moving"])[:2, 3], [-13, -17])


def test_cross_modality_flags(ds):
    cross = {p.pair_id for p in ds.pairs if p.cross_modality}
    assert cross == {"t1_pd_shift13x17", "t1_pd_shift13x17_dirplus30",
                     "t1_pd_shift13x17_dirminus30"}
