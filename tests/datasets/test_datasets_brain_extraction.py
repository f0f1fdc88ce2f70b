from __future__ import annotations

import numpy as np
import pytest

from medlens.datasets import fetch, verify_manifest
from medlens.io import read_image


@pytest.fixture(scope="module")
def ds():
    return fetch("brain-extraction")


def test_cases_and_roles(ds):
    assert [(c.case_id, c.role) for c in ds.cases] == [("colin27", "train"),
                                                     ("itk_kmeanstest", "test")]
    assert ds.channel_names == {0: "T1"}
    assert ds.label_names == {0: "background", 1: "brain"}
    assert verify_manifest(ds.root) == []


@pytest.mark.parametrize("case_id", ["colin27", "itk_kmeanstest"])
def test_masks_binary_on_image_grid(ds, case_id):
    case = ds.case(case_id)
    img = read_image(case.images[0])
    mask = read_image(case.labels[0])
    assert mask.spatial_shape == img.spatial_shape
    assert mask.same_grid(img)
    np.testing.assert_allclose(mask.affine, img.affine, atol=1e-6)
    assert mask.array.dtype == np.uint8
    assert set(np.unique(mask.array).tolist()) == {0, 1}
    # a brain, not a speck or the whole head: 0.9 to 2.0 litres
    volume_ml = mask.array.sum() * np.prod(mask.spacing) / 1000.0
    assert 900 < volume_ml < 2000
    # the mask lies inside the head: the T1 is not dark under it
    assert np.median(img.array[mask.array == 1]) > np.median(img.array[mask.array == 0])


def test_mask_is_ch2bet_thresholded(ds, session_cache):
    """The label equals the package's ch2bet > 0, voxel for voxel."""
    from medlens.datasets._brain import TEMPLATES

    bet = read_image(next(session_cache.glob("packages/debian-mricron-data-*"))
                     / "files" / TEMPLATES / "ch2bet.nii.gz")
    mask = read_image(ds.case("colin27").labels[0])
    np.testing.assert_array_equal(mask.array, (bet.array > 0).astype(np.uint8))


def test_test_subject_differs_in_grid(ds):
    a = read_image(ds.case("colin27").images[0])
    b = read_image(ds.case("itk_kmeanstest").images[0])
    assert a.orientation == "RAS" and b.orientation == "LSA"
    assert a.spacing == (1.0, 1.0, 1.0) and b.spacing == (2.0, 2.0, 3.0)
    assert a.spatial_shape == (181, 217, 181) and b.spatial_shape == (128, 128, 62)


def test_card_says_masks_are_algorithmic(ds):
    text = ds.card.description
    assert "ALGORITHMIC, not manual" in text and "BET" in text
    assert any("algorithmic" in line for line in ds.card.cannot_show)
    assert [s.version_used for s in ds.card.sources] == ["1.2.20211006+dfsg-4",
                                                         "5.2.1-5+deb12u1"]
    assert "BSD" in ds.card.license_text and "Apache" in ds.card.license_text


def test_second_fetch_reuses_without_download(ds, no_download):
    again = fetch("brain-extraction")
    assert again.root == ds.root
    assert again.cases == ds.cases
