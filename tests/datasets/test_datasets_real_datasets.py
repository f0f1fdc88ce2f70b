"""brain-tissue, brain-parcellation and dicom-samples, fetched from their packages."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

from medlens.datasets import fetch, tissue_labels
from medlens.datasets._brain import TISSUE_THRESHOLD
from medlens.io import read_image


@pytest.fixture(scope="module")
def tissue():
    return fetch("brain-tissue")


def test_brain_tissue_labels(tissue):
    case = tissue.case("mni152_2009a")
    img, lab = read_image(case.images[0]), read_image(case.labels[0])
    assert lab.same_grid(img) and img.spatial_shape == (197, 233, 189)
    assert set(np.unique(lab.array).tolist()) == {0, 1, 2}
    gm = read_image(tissue.extras["probability_gm"]).array.astype(np.float64) / 255
    wm = read_image(tissue.extras["probability_wm"]).array.astype(np.float64) / 255
    np.testing.assert_array_equal(lab.array, tissue_labels(gm * 255, wm * 255))
    # the documented threshold: both below 1/3 -> background
    low = (gm < TISSUE_THRESHOLD) & (wm < TISSUE_THRESHOLD)
    assert np.all(lab.array[low] == 0)
    # GM where GM is the most probable class
    sure_gm = gm > 0.5
    assert np.all(lab.array[sure_gm] == 1)
    # hard volumes stay within 15 % of the soft (probability-sum) volumes; GM > WM
    for value, p in ((1, gm), (2, wm)):
        ratio = (lab.array == value).sum() / p.sum()
        assert 0.85 < ratio < 1.15, (value, ratio)
    assert (lab.array == 1).sum() > (lab.array == 2).sum()
    # WM is brighter than GM on T1
    assert img.array[lab.array == 2].mean() > img.array[lab.array == 1].mean()


def test_tissue_labels_hand_worked():
    gm = np.array([0.0, 0.5, 0.2, 0.34, 0.3])
    wm = np.array([0.0, 0.4, 0.5, 0.33, 0.3])
    # p_bg = 1, 0.1, 0.3, 0.33, 0.4
    assert tissue_labels(gm, wm, scale=1.0).tolist() == [0, 1, 2, 1, 0]


def test_brain_parcellation():
    ds = fetch("brain-parcellation")
    case = ds.case("colin27")
    img, lab = read_image(case.images[0]), read_image(case.labels[0])
    assert lab.same_grid(img)
    values = np.unique(lab.array).tolist()
    assert values == list(range(117))
    assert len(ds.label_names) == 117
    assert ds.label_names[1] == "Precentral_L" and ds.label_names[2] == "Precentral_R"
    assert len(set(ds.label_names.values())) == 117
    # the ch2 T1 from brain-parcellation is the brain-extraction training image
    other = read_image(fetch("brain-extraction").case("colin27").images[0])
    np.testing.assert_array_equal(other.array, img.array)
    # AAL regions lie on the brain: 90 % of their voxels are inside the (tight) BET mask
    bet = read_image(fetch("brain-extraction").case("colin27").labels[0]).array
    assert (bet[lab.array > 0] == 1).mean() > 0.88


@pytest.fixture(scope="module")
def dicom():
    return fetch("dicom-samples")


def test_dicom_samples_modalities(dicom):
    counts = collections.Counter(c.modality for c in dicom.cases)
    for m in ("CT", "MR", "US", "CR", "SEG"):
        assert counts[m] >= 1, m
    assert all(c.role == "test" and not c.labels for c in dicom.cases)
    assert len(dicom.cases) == 146 + 7
    assert dicom.case("pydicom-data_liver").modality == "SEG"
    assert dicom.case("pydicom_CT_small").modality == "CT"
    assert dicom.case("pydicom-data_US1_UNCR").modality == "US"
    assert "transfer_syntax" in dicom.case("pydicom_CT_small").meta


def test_dicom_samples_malformed_flagged(dicom):
    flagged = {c.meta["source"] for c in dicom.cases if c.malformed}
    assert flagged == {name for name, _ in dicom.card.malformed}
    assert len(flagged) == 22
    assert dicom.case("pydicom_MR_truncated").malformed.startswith("Pixel Data truncated")
    assert dicom.case("pydicom_CT_small").malformed is None


def test_dicom_truncated_claim_is_true(dicom):
    """What the card says about MR_truncated holds for the file in the cache."""
    import pydicom

    ds = pydicom.dcmread(dicom.case("pydicom_MR_truncated").images[0])
    assert (ds.Rows, ds.Columns, ds.BitsAllocated) == (64, 64, 16)
    assert len(ds.PixelData) == 8130 < 64 * 64 * 2


def test_dicom_files_identical_to_packages(dicom):
    import hashlib
    import importlib.metadata

    dist = importlib.metadata.distribution("pydicom-data")
    src = next(f for f in dist.files if str(f).endswith("data_store/data/liver.dcm"))
    a = hashlib.sha256(dist.locate_file(src).read_bytes()).hexdigest()
    b = hashlib.sha256(dicom.case("pydicom-data_liver").images[0].read_bytes()).hexdigest()
    assert a == b


def test_dicom_series_folders(dicom):
    # looked up by their original pydicom folder, kept in meta["source"]
    series = {c.meta["source"].removeprefix("pydicom/dicomdirtests/"): c
              for c in dicom.cases if c.meta.get("kind") == "series folder"}
    assert len(series) == 7
    ct5 = series["98892001/CT5N"]
    assert ct5.images[0].is_dir() and ct5.modality == "CT"
    assert (ct5.meta["n_files"], ct5.meta["n_series"], ct5.meta["n_orientations"]) == (
        "5", "1", "1")
    img = read_image(ct5.images[0])
    assert img.spatial_shape == (16, 16, 5)
    assert series["98892001/CT2N"].meta["n_orientations"] == "2"
    assert series["98892003/MR2"].meta["n_series"] == "3"
    assert series["TINY_ALPHA/PT000000/ST000000/SE000000"].malformed


def test_dicom_series_folders_have_neutral_names(dicom):
    """pydicom names its dicomdirtests folders after patient IDs; the cache does not."""
    import re

    folders = sorted((c for c in dicom.cases if c.meta.get("kind") == "series folder"),
                     key=lambda c: c.case_id)
    assert [c.case_id for c in folders] == [f"pydicom-series_{k:02d}" for k in range(1, 8)]
    assert [c.images[0].relative_to(dicom.root).as_posix() for c in folders] == [
        f"files/pydicom-series/series-{k:02d}" for k in range(1, 8)]
    # numbered in the order of the original folders: the mapping is kept in the record
    sources = [c.meta["source"] for c in folders]
    assert sources == sorted(sources)
    patient_ids = {"77654033", "98892001", "98892003"}
    for path in dicom.root.rglob("*"):
        assert not patient_ids & set(path.relative_to(dicom.root).parts), path
    for c in dicom.cases:
        assert not any(pid in c.case_id for pid in patient_ids), c.case_id
    # what is shown by default (the card) names no patient ID
    card = dicom.card
    shown = " ".join([card.description, *card.cases, *(n for n, _ in card.malformed)])
    assert not re.search(r"7765|9889", shown)
    # the files are the originals, under their own names
    import pydicom

    original = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests"
    ct5 = next(c for c in folders if c.meta["source"].endswith("98892001/CT5N"))
    names = sorted(p.name for p in (original / "98892001" / "CT5N").iterdir())
    assert sorted(p.name for p in ct5.images[0].iterdir()) == names
    for name in names:
        assert (ct5.images[0] / name).read_bytes() == (
            original / "98892001" / "CT5N" / name).read_bytes()
