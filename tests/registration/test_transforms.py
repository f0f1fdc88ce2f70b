"""Transforms, warping and ITK I/O: hand-worked cases, SimpleITK agreement, properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medlens.image import Image
from medlens.io import from_sitk, read_image, to_sitk
from medlens.registration import (
    AffineTransform,
    CompositeTransform,
    DisplacementField,
    TransformError,
    VelocityField,
    compose,
    euler_angles,
    jacobian_determinant,
    read_displacement_field,
    read_transform,
    rigid_transform,
    similarity_transform,
    to_displacement_field,
    transform_points,
    warp_image,
    write_displacement_field,
    write_transform,
)

from .conftest import grid_points


def _smooth_velocity(image: Image, amplitude: float, seed: int = 0) -> VelocityField:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    v = rng.standard_normal((image.spatial_ndim, *image.spatial_shape))
    v = np.stack([ndimage.gaussian_filter(c, 3.0) for c in v])
    v *= amplitude / np.abs(v).max()
    return VelocityField(Image(v, image.affine, channels=True))


def _oblique_image(shape: tuple[int, ...] = (20, 18, 16)) -> Image:
    rng = np.random.default_rng(1)
    from scipy import ndimage

    arr = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0).astype(np.float32)
    rot = rigid_transform((0.2, -0.1, 0.3), (0.0, 0.0, 0.0)).matrix
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([1.5, 2.0, 2.5])
    aff[:3, 3] = (-10.0, 5.0, 3.0)
    return Image(arr, aff)


def test_rigid_hand_worked() -> None:
    t = rigid_transform(90.0, (1.0, 0.0), center=(1.0, 1.0), degrees=True)
    # rotate (2, 1) by 90 deg about (1, 1) -> (1, 2), then shift by (1, 0)
    np.testing.assert_allclose(t.transform_points([2.0, 1.0, 0.0]), [2.0, 2.0, 0.0], atol=1e-12)
    assert t.ndim == 2
    assert t.kind == "rigid"


def test_euler_angles_round_trip() -> None:
    angles = (0.3, -0.2, 0.1)
    t = rigid_transform(angles, (1.0, 2.0, 3.0), center=(5.0, 5.0, 5.0))
    np.testing.assert_allclose(euler_angles(t), angles, atol=1e-12)
    s = similarity_transform(1.3, angles, (0.0, 0.0, 0.0))
    np.testing.assert_allclose(euler_angles(s), angles, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(s.matrix), 1.3**3, rtol=1e-12)


def test_inverse_and_composition() -> None:
    a = rigid_transform((0.1, 0.2, -0.3), (4.0, -2.0, 1.0), center=(10.0, 0.0, -5.0))
    b = AffineTransform([[1.1, 0.1, 0.0], [0.0, 0.9, 0.05], [0.02, 0.0, 1.05]], [1.0, 2.0, 3.0])
    pts = np.random.default_rng(0).uniform(-50, 50, (20, 3))
    np.testing.assert_allclose(a.inverse().transform_points(a.transform_points(pts)), pts,
                               atol=1e-10)
    ab = compose(a, b)
    assert isinstance(ab, AffineTransform)
    np.testing.assert_allclose(ab.transform_points(pts),
                               b.transform_points(a.transform_points(pts)), atol=1e-10)
    assert ab.kind == "affine"
    with pytest.raises(TransformError):
        AffineTransform(np.zeros((3, 3)), np.zeros(3)).inverse()


def test_velocity_field_exponential_properties() -> None:
    img = Image(np.zeros((24, 22, 20)), np.diag([2.0, 2.0, 2.0, 1.0]))
    # a constant velocity integrates to the same constant displacement
    const = np.zeros((3, 24, 22, 20))
    const[2] = 3.0
    d = VelocityField(Image(const, img.affine, channels=True)).exponential()
    np.testing.assert_allclose(d.field.array, const, atol=1e-12)
    # exp(v) then exp(-v) is close to the identity away from the border
    v = _smooth_velocity(img, 4.0)
    fwd = v.exponential()
    back = v.inverse().exponential()
    pts = grid_points(img)
    round_trip = back.transform_points(fwd.transform_points(pts))
    assert np.abs(round_trip - pts).max() < 0.1
    jac = jacobian_determinant(fwd)
    assert jac.array.min() > 0


def test_jacobian_of_oblique_grid_hand_worked() -> None:
    # On an oblique, anisotropic grid: an affine map's Jacobian is det(A) everywhere,
    # and a pure shear along a world axis has determinant 1.
    img = _oblique_image()
    a = AffineTransform([[1.1, 0.2, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.2]], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(jacobian_determinant(a, img).array, 1.1 * 0.9 * 1.2, rtol=1e-9)
    shear = AffineTransform([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.zeros(3))
    np.testing.assert_allclose(jacobian_determinant(shear, img).array, 1.0, rtol=1e-9)


def test_label_warp_never_mixes_labels() -> None:
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[3:10, 3:10, 3:10] = 1
    labels[10:17, 3:10, 3:10] = 7
    img = Image(labels, np.diag([1.5, 1.5, 1.5, 1.0]))
    t = rigid_transform((0.1, 0.2, 0.3), (0.7, -0.4, 0.3), center=(15.0, 15.0, 15.0))
    out = warp_image(img, t, like=img, interpolation="label")
    assert set(np.unique(out.array).tolist()) <= {0, 1, 7}
    assert out.dtype == np.uint8
    # a linear warp would invent values between 1 and 7
    lin = warp_image(img, t, like=img, interpolation="linear")
    assert np.any((lin.array > 1.5) & (lin.array < 6.5))


def test_warp_points_and_image_agree() -> None:
    # A bright voxel moves to where the inverse transform sends its world position.
    arr = np.zeros((21, 21), np.float32)
    arr[15, 6] = 1.0
    img = Image(arr)
    t = rigid_transform(0.0, (5.0, -4.0))
    moved = warp_image(img, t, like=img, interpolation="nearest")
    peak = np.unravel_index(np.argmax(moved.array), moved.shape if hasattr(moved, "shape")
                            else moved.spatial_shape)
    # moved(x) = img(x + (5, -4)) -> the peak at (15, 6) appears at (10, 10)
    assert tuple(int(v) for v in peak) == (10, 10)
    np.testing.assert_allclose(transform_points(t, [[10.0, 10.0, 0.0]]), [[15.0, 6.0, 0.0]])


@pytest.mark.parametrize("suffix", [".tfm", ".txt", ".h5"])
def test_itk_file_round_trip_and_sitk_meaning(tmp_path: Path, suffix: str) -> None:
    t = rigid_transform((0.1, -0.05, 0.2), (3.0, -2.0, 1.5), center=(4.0, 2.0, -1.0))
    path = write_transform(t, tmp_path / f"t{suffix}")
    back = read_transform(path)
    assert isinstance(back, AffineTransform)
    np.testing.assert_allclose(back.homogeneous, t.homogeneous, atol=1e-12)
    # SimpleITK reads the same meaning: LPS in, LPS out
    sx = sitk.ReadTransform(str(path))
    p_ras = np.array([10.0, -20.0, 30.0])
    flip = np.array([-1.0, -1.0, 1.0])
    out_lps = np.array(sx.TransformPoint(tuple(float(v) for v in p_ras * flip)))
    np.testing.assert_allclose(out_lps * flip, t.transform_points(p_ras), atol=1e-10)


def test_reads_itk_euler_and_similarity_types(tmp_path: Path) -> None:
    e = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, 0.2, 0.3, (4.0, 5.0, 6.0))
    sitk.WriteTransform(e, str(tmp_path / "e.tfm"))
    t = read_transform(tmp_path / "e.tfm")
    flip = np.array([-1.0, -1.0, 1.0])
    p = np.array([7.0, -8.0, 9.0])
    np.testing.assert_allclose(t.transform_points(p),
                               np.array(e.TransformPoint(tuple(p * flip))) * flip, atol=1e-10)


def test_sitk_resample_reproduces_warp_image_3d(tmp_path: Path) -> None:
    """Round trip: medlens writes the transform, SimpleITK resamples with it."""
    img = _oblique_image()
    t = compose(rigid_transform((0.05, -0.1, 0.15), (2.0, -1.0, 3.0), center=(0.0, 10.0, 5.0)),
                AffineTransform(np.diag([1.05, 0.97, 1.0]), np.zeros(3)))
    path = write_transform(t, tmp_path / "t.tfm")
    ours = warp_image(img, t, like=img, interpolation="linear")
    s_img = to_sitk(img)
    theirs = from_sitk(sitk.Resample(s_img, s_img, sitk.ReadTransform(str(path)),
                                     sitk.sitkLinear, 0.0))
    diff = np.abs(np.asarray(ours.array, np.float64) - np.asarray(theirs.array, np.float64))
    # same samples inside; ITK counts a sample outside a little differently at the very edge
    interior = np.zeros(img.spatial_shape, bool)
    interior[2:-2, 2:-2, 2:-2] = True
    assert diff[interior].max() < 1e-5
    assert np.mean(diff > 1e-5) < 0.02


def test_sitk_resample_reproduces_warp_image_2d_itk_slice(tmp_path: Path, pairs: dict) -> None:
    fixed = read_image(pairs["pd_shift13x17"].fixed)
    moving = read_image(pairs["pd_shift13x17"].moving)
    t = rigid_transform(0.1, (-13.0, -17.0), center=(-110.5, -128.5))
    path = write_transform(t, tmp_path / "t.tfm")
    ours = warp_image(moving, t, like=fixed, interpolation="linear")
    sf, sm = to_sitk(fixed), to_sitk(moving)
    theirs = from_sitk(sitk.Resample(sitk.Cast(sm, sitk.sitkFloat32), sf,
                                     sitk.ReadTransform(str(path)), sitk.sitkLinear, 0.0))
    diff = np.abs(np.asarray(ours.array, np.float64) - np.asarray(theirs.array, np.float64))
    assert diff[2:-2, 2:-2].max() < 1e-3  # uint8 intensities 0..255, float32 arithmetic


def test_displacement_field_h5_and_nifti_mean_the_same_to_sitk(tmp_path: Path) -> None:
    img = _oblique_image()
    field = _smooth_velocity(img, 3.0).exponential()
    linear = rigid_transform((0.0, 0.0, 0.1), (1.0, 2.0, -1.0))
    chain = compose(field, linear)
    assert isinstance(chain, CompositeTransform)
    h5 = write_transform(chain, tmp_path / "chain.h5")
    nii = write_displacement_field(field, tmp_path / "u.nii.gz")
    # medlens reads both back
    back = read_transform(h5)
    pts = grid_points(img)
    np.testing.assert_allclose(back.transform_points(pts), chain.transform_points(pts), atol=1e-6)
    f2 = read_displacement_field(nii)
    np.testing.assert_allclose(f2.field.array, field.field.array, atol=1e-4)
    # SimpleITK resampling through the .h5 composite equals medlens's warp
    ours = warp_image(img, chain, like=img)
    s_img = to_sitk(img)
    theirs = from_sitk(sitk.Resample(s_img, s_img, sitk.ReadTransform(str(h5)), sitk.sitkLinear,
                                     0.0))
    diff = np.abs(np.asarray(ours.array, np.float64) - np.asarray(theirs.array, np.float64))
    interior = np.zeros(img.spatial_shape, bool)
    interior[3:-3, 3:-3, 3:-3] = True
    assert diff[interior].max() < 1e-4
    # and the NIfTI field through sitk.DisplacementFieldTransform maps points the same way
    dft = sitk.DisplacementFieldTransform(sitk.Cast(sitk.ReadImage(str(nii)),
                                                    sitk.sitkVectorFloat64))
    flip = np.array([-1.0, -1.0, 1.0])
    got = np.array([dft.TransformPoint(tuple(float(c) for c in p * flip)) for p in pts]) * flip
    np.testing.assert_allclose(got, field.transform_points(pts), atol=1e-4)


def test_to_displacement_field_of_linear_is_exact() -> None:
    img = _oblique_image()
    t = similarity_transform(1.1, (0.1, 0.0, 0.0), (1.0, 1.0, 1.0))
    d = to_displacement_field(t, img)
    pts = grid_points(img)
    np.testing.assert_allclose(d.transform_points(pts), t.transform_points(pts), atol=1e-9)
    np.testing.assert_allclose(jacobian_determinant(d).array, 1.1**3, rtol=1e-9)


def test_bad_field_is_rejected() -> None:
    with pytest.raises(TransformError):
        DisplacementField(Image(np.zeros((2, 4, 4, 4)), channels=True))
