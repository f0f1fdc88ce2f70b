"""The ITK example slices with rotated direction cosines keep their direction matrices."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose, assert_array_equal

from medlens import datasets
from medlens.io import lps_to_ras, read_image, write_image


@pytest.fixture(scope="module")
def itk_data_dir():
    datasets.fetch("registration-2d")
    root = datasets.cache_root() / "packages"
    hits = sorted(root.glob("debian-insighttoolkit5-examples*/files/**/examples/Data"))
    assert hits, f"insighttoolkit5-examples not unpacked under {root}"
    return hits[0]


@pytest.mark.parametrize("sign", [+1, -1])
def test_direction_plus_minus_30_are_kept(itk_data_dir, sign, tmp_path):
    name = f"BrainProtonDensitySliceBorder20Direction{'Plus' if sign > 0 else 'Minus'}30.mhd"
    path = itk_data_dir / name
    ref = sitk.ReadImage(str(path))
    img = read_image(path)
    assert img.spatial_ndim == 2
    d_lps = np.array(ref.GetDirection()).reshape(2, 2)
    angle = np.degrees(np.arctan2(d_lps[1, 0], d_lps[0, 0]))
    assert_allclose(angle, 30.0 * sign, atol=1e-4)
    # our direction is the same matrix, flipped once into RAS
    assert_allclose(img.direction[:2, :2], np.diag([-1.0, -1.0]) @ d_lps, atol=1e-9)
    n, m = img.spatial_shape
    for idx in [(0, 0), (n - 1, m - 1), (n - 1, 0)]:
        assert_allclose(img.voxel_to_world(idx),
                        lps_to_ras(np.array([*ref.TransformIndexToPhysicalPoint(idx), 0.0])),
                        atol=1e-4)
    # the same pixels as the axis-aligned original
    plain = read_image(itk_data_dir / "BrainProtonDensitySliceBorder20.png")
    assert plain.channels  # a grey palette PNG: SimpleITK expands it to RGB
    assert_array_equal(img.array, plain.array[0])
    # and the direction survives a write/read round trip in every 2D-capable format
    for suffix in (".mha", ".nrrd", ".nii.gz"):
        write_image(img, tmp_path / f"x{suffix}")
        back = read_image(tmp_path / f"x{suffix}")
        assert_allclose(back.affine[:2, :2], img.affine[:2, :2], atol=1e-5)
        assert_array_equal(np.squeeze(back.array), img.array)
