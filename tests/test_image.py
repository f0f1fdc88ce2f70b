"""Tests for medlens.image: geometry properties and the geometric operations."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose, assert_array_equal

from medlens import GeometryError, Image
from medlens.image import crop, orientation_code, pad, reorient, resample
from medlens.io import from_sitk, to_sitk
from tests.conftest import oblique_affine


def test_properties_of_a_plain_lps_affine():
    a = np.diag([-0.8, -0.8, 2.5, 1.0])
    a[:3, 3] = [1.0, 2.0, 3.0]
    img = Image(np.zeros((10, 20, 5), np.int16), a)
    assert img.spacing == (0.8, 0.8, 2.5)
    assert img.origin == (1.0, 2.0, 3.0)
    assert img.orientation == "LPS"
    assert_allclose(img.direction, np.diag([-1.0, -1.0, 1.0]))
    assert img.spatial_shape == (10, 20, 5) and img.spatial_ndim == 3 and img.n_channels == 1
    assert "spacing=(0.8, 0.8, 2.5)" in repr(img)


def test_channels_first():
    img = Image(np.zeros((3, 4, 5, 6)), np.eye(4), channels=True)
    assert img.n_channels == 3 and img.spatial_shape == (4, 5, 6)
    with pytest.raises(GeometryError):
        img.with_array(np.zeros((3, 4, 5, 7)))


def test_2d_image_geometry():
    a = np.diag([0.5, 0.7, 1.0, 1.0])
    img = Image(np.zeros((4, 3)), a)
    assert img.spacing == (0.5, 0.7)
    assert img.orientation == "RA"
    assert_allclose(img.voxel_to_world([2, 2]), [1.0, 1.4, 0.0])
    assert_allclose(img.world_to_voxel([1.0, 1.4, 0.0]), [2, 2])


def test_voxel_world_round_trip(oblique_image):
    pts = np.random.default_rng(0).uniform(-3, 10, size=(50, 3))
    assert_allclose(oblique_image.world_to_voxel(oblique_image.voxel_to_world(pts)), pts,
                    atol=1e-10)
    assert_allclose(oblique_image.spacing, (0.9, 1.2, 2.5), rtol=1e-12)


@pytest.mark.parametrize(
    "affine",
    [
        np.eye(3),
        np.diag([1.0, 0.0, 1.0, 1.0]),
        np.full((4, 4), np.nan),
        np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1.0]]),
    ],
)
def test_invalid_affines_raise(affine):
    with pytest.raises(GeometryError):
        Image(np.zeros((2, 2, 2)), affine)


def test_invalid_dimensionality_raises():
    with pytest.raises(GeometryError, match="spatial axes"):
        Image(np.zeros(5))
    with pytest.raises(GeometryError, match="spatial axes"):
        Image(np.zeros((2, 2, 2, 2)))


def test_affine_is_read_only(oblique_image):
    with pytest.raises(ValueError):
        oblique_image.affine[0, 0] = 3.0


def _all_codes():
    for perm in itertools.permutations("012"):
        for signs in itertools.product((0, 1), repeat=3):
            yield "".join(("RL", "AP", "SI")[int(p)][s] for p, s in zip(perm, signs, strict=True))


@pytest.mark.parametrize("code", list(_all_codes()))
def test_reorient_keeps_every_voxel_in_place(oblique_image, code):
    out = reorient(oblique_image, code)
    assert out.orientation == code
    # every voxel of the output sits at the world position of the same value in the input
    idx = np.argwhere(np.ones(out.spatial_shape, bool))
    src = np.rint(oblique_image.world_to_voxel(out.voxel_to_world(idx))).astype(int)
    assert_array_equal(out.array[tuple(idx.T)], oblique_image.array[tuple(src.T)])


def test_reorient_matches_nibabel_canonical(oblique_image):
    nimg = nib.Nifti1Image(np.asarray(oblique_image.array), oblique_image.affine)
    canon = nib.as_closest_canonical(nimg)
    out = reorient(oblique_image, "RAS")
    assert_allclose(out.affine, canon.affine, atol=1e-10)
    assert_array_equal(out.array, np.asanyarray(canon.dataobj))


def test_reorient_channels_and_2d():
    arr = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    img = Image(arr, np.diag([-1.0, 1.0, 1.0, 1.0]), channels=True)
    out = reorient(img, "RAS")
    assert_array_equal(out.array, arr[:, ::-1])
    img2 = Image(np.arange(6).reshape(2, 3), np.diag([1.0, -1.0, 1.0, 1.0]))
    out2 = reorient(img2, "RAS")
    assert out2.orientation == "RA"
    assert_array_equal(out2.array, np.arange(6).reshape(2, 3)[:, ::-1])
    with pytest.raises(GeometryError, match="normal"):
        reorient(img2, "SAR")
    with pytest.raises(GeometryError):
        reorient(img2, "RRS")


def test_orientation_code_of_oblique_affine_names_closest_axis():
    assert orientation_code(oblique_affine(angles=(0.1, 0.1, 0.1))) == "RAS"


def test_crop_and_pad_keep_world_positions(oblique_image):
    c = crop(oblique_image, (1, 2, 0), (5, 7, 3))
    assert c.spatial_shape == (4, 5, 3)
    assert_allclose(c.voxel_to_world([0, 0, 0]), oblique_image.voxel_to_world([1, 2, 0]))
    assert_array_equal(c.array, oblique_image.array[1:5, 2:7, 0:3])
    p = pad(c, (1, 2, 0), (1, 0, 2), value=-5)
    assert p.spatial_shape == (6, 7, 5)
    assert_allclose(p.voxel_to_world([1, 2, 0]), c.voxel_to_world([0, 0, 0]), atol=1e-12)
    assert p.array[0, 0, 0] == -5
    with pytest.raises(GeometryError):
        crop(oblique_image, (0, 0, 0), (8, 8, 5))
    with pytest.raises(GeometryError):
        pad(oblique_image, -1, 0)


def test_resample_onto_own_grid_is_identity(oblique_image):
    for interp in ("linear", "bspline", "nearest"):
        out = resample(oblique_image, like=oblique_image, interpolation=interp)
        assert_allclose(out.array, oblique_image.array, atol=1e-5)


def test_resample_linear_matches_simpleitk(oblique_image):
    """An oblique image resampled onto another oblique grid, against sitk.Resample."""
    target = Image(np.zeros((9, 6, 7), np.float32),
                   oblique_affine(spacing=(0.7, 1.0, 1.5), angles=(0.1, 0.4, -0.3),
                                  origin=(9.0, -19.0, 31.0)))
    ours = resample(oblique_image, like=target, interpolation="linear", default=-7.0)
    ref = from_sitk(sitk.Resample(to_sitk(oblique_image), to_sitk(target), sitk.Transform(),
                                  sitk.sitkLinear, -7.0, sitk.sitkFloat32))
    assert ours.same_grid(ref)
    inside = ref.array != -7.0
    assert inside.sum() > 20
    assert_allclose(ours.array[inside], ref.array[inside], rtol=1e-5, atol=1e-5)
    # outside voxels agree too (ITK's half-voxel rule), except a sliver right on the edge
    assert np.mean((ours.array == -7.0) == ~inside) > 0.97


def test_resample_to_spacing_keeps_field_of_view():
    img = Image(np.arange(8.0).reshape(2, 2, 2), np.diag([2.0, 2.0, 2.0, 1.0]))
    out = resample(img, spacing=(1.0, 1.0, 1.0))
    assert out.spatial_shape == (4, 4, 4)
    # outer edge of the first voxel stays at -1 mm
    assert_allclose(np.array(out.origin) - 0.5, -1.0)
    # linear interpolation between voxel centres: centre of output voxel 1 is at 0.5 mm,
    # i.e. input index 0.25 along each axis
    expected = 8.0 * 0 + (0.25 * 4 + 0.25 * 2 + 0.25 * 1)
    assert_allclose(out.array[1, 1, 1], expected)
    # clamped at the edges (nearest extension inside the half-voxel border)
    assert_allclose(out.array[0, 0, 0], 0.0)


def test_resample_labels_never_invents_values(rng):
    labels = rng.integers(0, 4, size=(10, 10, 6)).astype(np.uint8) * 3  # values 0,3,6,9
    img = Image(labels, np.diag([1.0, 1.0, 3.0, 1.0]))
    for interp in ("label", "nearest"):
        out = resample(img, spacing=(0.7, 0.7, 1.1), interpolation=interp)
        assert out.dtype == np.uint8
        assert set(np.unique(out.array)) <= {0, 3, 6, 9}
    # 'label' of a single smooth blob equals thresholding linear interpolation at 0.5
    blob = np.zeros((12, 12, 12), np.uint8)
    blob[3:9, 4:8, 2:10] = 1
    bimg = Image(blob, np.diag([1.0, 1.0, 2.0, 1.0]))
    lab = resample(bimg, spacing=(0.6, 0.6, 0.6), interpolation="label").array
    lin = resample(Image(blob.astype(np.float32), bimg.affine), spacing=(0.6, 0.6, 0.6)).array
    assert_array_equal(lab, (lin > 0.5).astype(np.uint8))
    with pytest.raises(GeometryError, match="integer"):
        resample(Image(np.zeros((3, 3, 3))), spacing=(1, 1, 1), interpolation="label")


def test_resample_channels_and_errors():
    img = Image(np.ones((2, 4, 4, 4), np.float32), np.eye(4), channels=True)
    out = resample(img, spacing=(2.0, 2.0, 2.0))
    assert out.array.shape == (2, 2, 2, 2)
    with pytest.raises(GeometryError):
        resample(img)
    with pytest.raises(GeometryError):
        resample(img, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(GeometryError):
        resample(img, spacing=(1.0, 1.0, 1.0), interpolation="cubic")  # type: ignore[arg-type]


def test_resample_integer_image_linear_gives_float32():
    img = Image(np.arange(27, dtype=np.int16).reshape(3, 3, 3))
    assert resample(img, spacing=(0.5, 0.5, 0.5)).dtype == np.float32
    assert resample(img, spacing=(0.5, 0.5, 0.5), interpolation="nearest").dtype == np.int16


def _labels_by_full_passes(arr, image, target):
    """Reference: one full-volume linear pass per label, largest wins, ties to lower label."""
    best = np.full(target.spatial_shape, -1.0)
    out = np.zeros(target.spatial_shape, arr.dtype)
    for v in np.unique(arr):
        p = resample(Image((arr == v).astype(np.float32), image.affine), like=target,
                     default=-1.0).array
        out[p > best] = v
        best = np.maximum(best, p)
    out[best < 0] = 0
    return out


def test_label_resampling_equals_full_per_label_passes(rng):
    arr = np.zeros((30, 28, 20), np.int16)
    for v in range(1, 12):  # blobs of 11 labels, some touching the border
        c = rng.integers(0, [30, 28, 20])
        r = rng.integers(2, 6)
        sl = tuple(slice(max(0, a - r), a + r) for a in c)
        arr[sl] = v * 7
    img = Image(arr, oblique_affine(spacing=(1.0, 1.1, 2.0)))
    target = Image(np.zeros((33, 31, 29), np.uint8),
                   oblique_affine(spacing=(0.9, 1.0, 1.3), angles=(0.35, -0.25, 0.45),
                                  origin=(11.0, -19.0, 29.0)))
    ours = resample(img, like=target, interpolation="label").array
    assert_array_equal(ours, _labels_by_full_passes(arr, img, target))


def test_pad_refuses_fill_values_the_dtype_cannot_hold():
    from medlens.errors import ParameterError

    img = Image(np.zeros((2, 2, 2), np.uint8))
    for bad in (-5, 0.7, 1e6, float("nan")):
        with pytest.raises(ParameterError, match="cannot be stored"):
            pad(img, 1, 1, value=bad)
    assert pad(img, 1, 1, value=255).array.max() == 255


def test_reorient_2d_accepts_two_letter_codes():
    img = Image(np.arange(6).reshape(2, 3), np.diag([-1.0, 1.0, 1.0, 1.0]))
    assert reorient(img, img.orientation).orientation == "LA"
    assert reorient(img, "RA").orientation == "RA"


def test_resample_refuses_string_spacing():
    with pytest.raises(GeometryError, match="string"):
        resample(Image(np.zeros((3, 3, 3))), spacing="111")  # type: ignore[arg-type]
