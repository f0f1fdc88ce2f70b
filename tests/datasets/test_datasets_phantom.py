from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from medlens.datasets import DatasetError, fetch, kidney_phantom
from medlens.io import read_image

SMALL = {"shape": (64, 64, 24), "spacing": (2.0, 2.0, 8.0)}


def test_deterministic_by_seed_and_index():
    a = kidney_phantom(3, seed=7, **SMALL)
    b = kidney_phantom(3, seed=7, **SMALL)
    np.testing.assert_array_equal(a.image.array, b.image.array)
    np.testing.assert_array_equal(a.label.array, b.label.array)
    assert dict(a.params) == dict(b.params)
    c = kidney_phantom(3, seed=8, **SMALL)
    d = kidney_phantom(4, seed=7, **SMALL)
    assert not np.array_equal(a.label.array, c.label.array)
    assert not np.array_equal(a.label.array, d.label.array)


@pytest.mark.parametrize("index", range(6))
def test_default_case_content(index):
    case = kidney_phantom(index, seed=0)
    img, lab = case.image, case.label
    assert img.spatial_shape == (160, 160, 64) and img.spacing == (0.8, 0.8, 3.0)
    assert img.orientation == "LPS" and lab.same_grid(img)
    assert img.array.dtype == np.int16 and lab.array.dtype == np.uint8
    values = set(np.unique(lab.array).tolist())
    assert {0, 1, 2} <= values <= {0, 1, 2, 3}
    assert (3 in values) == bool(case.params["cysts"])
    hu = img.array.astype(np.float64)
    assert abs(np.median(hu[0:5, 0:5, :]) + 1000) < 30  # air in the corner
    kidney, tumour = lab.array == 1, lab.array == 2
    assert 80 < hu[kidney].mean() < 200  # enhancing parenchyma (cortex + medulla)
    assert 60 < hu[tumour].mean() < 150
    if (lab.array == 3).sum() >= 100:  # tiny cysts are all partial volume
        assert -20 < np.median(hu[lab.array == 3]) < 40  # water-like
    assert (hu > 500).sum() > 1000  # cortical bone of the spine
    # every tumour touches a kidney (KiTS: renal masses)
    comps, n = ndimage.label(tumour)
    grown = ndimage.binary_dilation(kidney, iterations=2)
    for k in range(1, n + 1):
        assert (grown & (comps == k)).any()
    # two kidneys, one on each side of the midline (x = 0 at the centre column)
    i_centre = np.argwhere(kidney)[:, 0]
    assert (i_centre < 80).any() and (i_centre > 80).any()


def test_noise_present_and_recorded():
    case = kidney_phantom(0, seed=0)
    hu = case.image.array.astype(np.float64)
    air = hu[0:10, 0:10, :]
    assert 8 < air.std() < 22
    assert case.params["noise_sd_hu"] == pytest.approx(air.std(), rel=0.25)


def test_fetch_roles_and_prefix_stability(tmp_path):
    ds = fetch("phantom-kidney", n_cases=5, seed=2, cache_dir=tmp_path)
    assert [c.role for c in ds.cases] == ["train"] * 4 + ["test"]
    assert [c.case_id for c in ds.cases] == [f"kidney_{k:04d}" for k in range(5)]
    small = fetch("phantom-kidney", n_cases=2, seed=2, n_test=0, cache_dir=tmp_path)
    for a, b in zip(small.cases, ds.cases[:2], strict=True):
        np.testing.assert_array_equal(read_image(a.labels[0]).array,
                                      read_image(b.labels[0]).array)
    direct = kidney_phantom(1, seed=2)
    np.testing.assert_array_equal(read_image(ds.cases[1].images[0]).array, direct.image.array)
    params = json.loads(ds.cases[1].meta["params"])
    assert params["seed"] == 2 and params["index"] == 1
    assert ds.card.synthetic and "medlens" in ds.card.license_text


@pytest.mark.parametrize("kw", [{"n_cases": 0}, {"n_cases": 3, "n_test": 3},
                                {"n_cases": 3, "seed": -1}])
def test_fetch_rejects_bad_options(tmp_path, kw):
    with pytest.raises(DatasetError):
        fetch("phantom-kidney", cache_dir=tmp_path, **kw)
