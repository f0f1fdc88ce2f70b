from __future__ import annotations

import json

import numpy as np
import pytest

from medlens.datasets import DatasetExportError, export_nnunet, fetch
from medlens.io import read_image
from tests.datasets.datasets_nnunet_check import nnunet_problems


def test_brain_extraction_layout(tmp_path):
    out = export_nnunet("brain-extraction", tmp_path)
    assert out.name == "Dataset901_BrainExtraction"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["colin27_0000.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["colin27.nii.gz"]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == ["itk_kmeanstest_0000.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["itk_kmeanstest.nii.gz"]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1"}
    assert meta["labels"] == {"background": 0, "brain": 1}
    assert meta["numTraining"] == 1 and meta["file_ending"] == ".nii.gz"
    assert nnunet_problems(out) == []
    src = fetch("brain-extraction").case("colin27")
    np.testing.assert_array_equal(read_image(out / "labelsTr" / "colin27.nii.gz").array,
                                  read_image(src.labels[0]).array)


def test_phantom_layout_and_ct_channel(tmp_path):
    out = export_nnunet("phantom-kidney", tmp_path, n_cases=3, n_test=1, dataset_id=42,
                        cache_dir=tmp_path / "cache")
    assert out.name == "Dataset042_PhantomKidney"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"}  # nnU-Net's CT normalisation
    assert meta["labels"] == {"background": 0, "kidney": 1, "tumor": 2, "cyst": 3}
    assert meta["numTraining"] == 2 and meta["synthetic"] is True
    assert nnunet_problems(out) == []


def test_parcellation_117_labels(tmp_path):
    out = export_nnunet("brain-parcellation", tmp_path)
    meta = json.loads((out / "dataset.json").read_text())
    assert len(meta["labels"]) == 117 and meta["labels"]["Precentral_L"] == 1
    assert nnunet_problems(out) == []


def test_dataset_without_any_label_refuses_and_says_why(tmp_path):
    with pytest.raises(DatasetExportError, match="no labelled training case") as err:
        export_nnunet("dicom-samples", tmp_path)
    msg = str(err.value)
    assert "at least one training case" in msg and "numTraining 0" in msg
    assert "medlens convert" in msg
    assert list(tmp_path.iterdir()) == []


def test_checker_refuses_a_zero_training_set(tmp_path):
    """The rule behind that refusal, as nnU-Net's verify_dataset_integrity applies it."""
    folder = tmp_path / "Dataset950_Empty"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1},
        "numTraining": 0, "file_ending": ".nii.gz"}))
    assert any("no training case" in p for p in nnunet_problems(folder))


def test_registration_2d_exports_its_mask_case_for_training(tmp_path):
    out = export_nnunet("registration-2d", tmp_path)
    assert out.name == "Dataset904_Registration2d"
    assert nnunet_problems(out) == []
    ds = fetch("registration-2d")
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["pd_0000.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["pd.nii.gz"]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == sorted(
        f"{c.case_id}_0000.nii.gz" for c in ds.cases if c.case_id != "pd")
    assert not (out / "labelsTs").exists()
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["numTraining"] == 1 and meta["channel_names"] == {"0": "MR"}
    assert meta["labels"] == {"background": 0, "registration mask": 1}
    # the NIfTI files hold the cached pixels and geometry (a 2D slice is one-slice 3D)
    for rel, src in [("imagesTr/pd_0000.nii.gz", ds.case("pd").images[0]),
                     ("labelsTr/pd.nii.gz", ds.case("pd").labels[0]),
                     ("imagesTs/pd_dirplus30_0000.nii.gz", ds.case("pd_dirplus30").images[0])]:
        a, b = read_image(out / rel), read_image(src)
        assert a.spatial_shape == (*b.spatial_shape, 1)
        np.testing.assert_array_equal(a.array[..., 0], b.array)
        np.testing.assert_allclose(a.affine[:2, [0, 1, 3]], b.affine[:2, [0, 1, 3]],
                                   atol=1e-5)


def test_checker_catches_broken_layouts(tmp_path):
    out = export_nnunet("brain-extraction", tmp_path)
    meta = json.loads((out / "dataset.json").read_text())
    meta["numTraining"] = 2
    meta["labels"] = {"background": 0, "brain": 2}
    (out / "dataset.json").write_text(json.dumps(meta))
    problems = nnunet_problems(out)
    assert any("numTraining" in p for p in problems)
    assert any("consecutive" in p for p in problems)
    assert any("unexpected label values [1]" in p for p in problems)


def test_existing_folder_needs_overwrite(tmp_path):
    export_nnunet("brain-extraction", tmp_path)
    with pytest.raises(DatasetExportError, match="exists"):
        export_nnunet("brain-extraction", tmp_path)
    out = export_nnunet("brain-extraction", tmp_path, overwrite=True)
    assert nnunet_problems(out) == []
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary folders left


def test_bad_dataset_id(tmp_path):
    with pytest.raises(DatasetExportError, match="1..999"):
        export_nnunet("brain-extraction", tmp_path, dataset_id=1000)


def test_brain_tissue_layout(tmp_path):
    out = export_nnunet("brain-tissue", tmp_path)
    assert out.name == "Dataset902_BrainTissue"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "grey matter": 1, "white matter": 2}
    assert nnunet_problems(out) == []
