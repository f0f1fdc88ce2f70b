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


@pytest.mark.parametrize("name", ["dicom-samples", "registration-2d"])
def test_datasets_without_segmentation_task_refuse(tmp_path, name):
    with pytest.raises(DatasetExportError, match="no labelled training case"):
        export_nnunet(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


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
