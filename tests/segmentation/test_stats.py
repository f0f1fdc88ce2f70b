import math

import numpy as np
import pytest

from medlens.errors import GeometryError
from medlens.image import Image
from medlens.segmentation import mask_statistics
from medlens.segmentation._stats import axial_diameters, stats_to_csv


def test_hand_worked_box():
    m = np.zeros((6, 5, 3), np.uint8)
    m[1:4, 2:4, 1] = 1  # 3 x 2 x 1 voxels
    m[5, 0, 0] = 2
    img = np.arange(m.size, dtype=np.float32).reshape(m.shape)
    aff = np.diag([2.0, 2.0, 5.0, 1.0])
    aff[:3, 3] = [10.0, 0.0, -5.0]
    s1, s2 = mask_statistics(Image(m, aff), Image(img, aff), names={1: "box"})
    assert (s1.label, s1.name, s1.voxel_count) == (1, "box", 6)
    assert s1.volume_ml == pytest.approx(6 * 20 / 1000)
    # centroid: i in {1,2,3} -> x = 10 + 2*2 = 14; j in {2,3} -> y = 5; k = 1 -> z = 0
    assert s1.centroid_mm == pytest.approx((14.0, 5.0, 0.0))
    assert (s1.bbox_start, s1.bbox_stop) == ((1, 2, 1), (4, 4, 2))
    # voxel centres span 4 mm x 2 mm: diagonal sqrt(20); width perpendicular to it 8/sqrt(5)
    assert s1.longest_axial_diameter_mm == pytest.approx(math.sqrt(20))
    assert s1.short_axis_mm == pytest.approx(8 / math.sqrt(5))
    assert s1.axial_slice == 1
    vals = img[m == 1]
    assert (s1.mean, s1.std, s1.min, s1.max) == pytest.approx(
        (vals.mean(), vals.std(), vals.min(), vals.max())
    )
    assert s2.voxel_count == 1 and s2.longest_axial_diameter_mm == 0.0
    csv_text = stats_to_csv([s1, s2])
    assert csv_text.splitlines()[0].startswith("label,name,voxel_count,volume_ml")
    assert len(csv_text.splitlines()) == 3


def test_no_image_gives_nan_and_grid_mismatch():
    m = np.zeros((4, 4, 4), np.uint8)
    m[1, 1, 1] = 3
    (s,) = mask_statistics(Image(m))
    assert math.isnan(s.mean)
    with pytest.raises(GeometryError, match="grid"):
        mask_statistics(Image(m), Image(np.zeros((4, 4, 5))))


def test_disc_diameter():
    yy, xx = np.mgrid[-20:21, -20:21]
    m = ((xx**2 + yy**2) <= 15**2).astype(np.uint8)[..., None]
    (s,) = mask_statistics(Image(m, np.diag([0.5, 0.5, 1.0, 1.0])))
    assert s.longest_axial_diameter_mm == pytest.approx(15.0, abs=0.05)  # 30 voxels * 0.5 mm
    assert s.short_axis_mm == pytest.approx(15.0, abs=0.6)


def test_axial_diameters_collinear():
    assert axial_diameters(np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])) == (3.0, 0.0)
