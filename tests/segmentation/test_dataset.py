import json

import numpy as np
import pytest

from medlens.image import Image
from medlens.io import write_image
from medlens.segmentation import DatasetError, read_case, read_dataset

from .conftest import write_dataset


def test_reads_nnunet_layout(tiny_dataset):
    ds = read_dataset(tiny_dataset)
    assert ds.layout == "nnunet"
    assert ds.channel_names == ("MRI",)
    assert [c.case_id for c in ds.training] == ["case00", "case01", "case02"]
    assert [c.case_id for c in ds.test] == ["test00"]
    assert ds.labels == {"background": 0, "outer": 1, "core": 2}
    assert ds.n_outputs == 3 and not ds.region_based
    img, lab = read_case(ds.training[0])
    assert img.channels and img.n_channels == 1 and img.spatial_shape == (24, 24, 12)
    assert lab is not None and lab.spatial_shape == (24, 24, 12)


def test_region_based_labels(tmp_path):
    ds = read_dataset(write_dataset(tmp_path / "D", regions=True))
    assert ds.region_based
    assert ds.labels["whole"] == (1, 2)
    assert ds.regions_class_order == (1, 2)
    assert ds.n_outputs == 2
    assert ds.label_values == (0, 1, 2)


def test_region_labels_need_class_order(tmp_path):
    root = write_dataset(tmp_path / "D", regions=True)
    meta = json.loads((root / "dataset.json").read_text())
    del meta["regions_class_order"]
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="regions_class_order"):
        read_dataset(root)


def test_multichannel_and_missing_channel(tmp_path):
    root = write_dataset(tmp_path / "D", n=2)
    meta = json.loads((root / "dataset.json").read_text())
    meta["channel_names"] = {"0": "T1", "1": "T2"}
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="channel files"):
        read_dataset(root)
    for i in range(2):
        src = root / "imagesTr" / f"case{i:02d}_0000.nii.gz"
        (root / "imagesTr" / f"case{i:02d}_0001.nii.gz").write_bytes(src.read_bytes())
    src = root / "imagesTs" / "test00_0000.nii.gz"
    (root / "imagesTs" / "test00_0001.nii.gz").write_bytes(src.read_bytes())
    ds = read_dataset(root)
    img, _ = read_case(ds.training[1])
    assert img.n_channels == 2
    np.testing.assert_array_equal(img.array[0], img.array[1])


def test_missing_label_and_bad_json(tmp_path):
    root = write_dataset(tmp_path / "D", n=2)
    (root / "labelsTr" / "case01.nii.gz").unlink()
    with pytest.raises(DatasetError, match="case01"):
        read_dataset(root)
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="dataset.json"):
        read_dataset(root)


def test_other_file_ending(tmp_path):
    ds = read_dataset(write_dataset(tmp_path / "D", n=2, ending=".nrrd"))
    assert ds.file_ending == ".nrrd" and len(ds.training) == 2


def test_msd_layout(tmp_path):
    root = tmp_path / "Task01_Tiny"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    img4d = np.random.default_rng(0).random((8, 8, 4, 2)).astype(np.float32)
    import nibabel as nib

    nib.save(nib.Nifti1Image(img4d, aff), root / "imagesTr" / "a.nii.gz")
    write_image(Image(np.ones((8, 8, 4), np.uint8), aff), root / "labelsTr" / "a.nii.gz")
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "name": "tiny",
                "modality": {"0": "FLAIR", "1": "T1w"},
                "labels": {"0": "background", "1": "edema"},
                "training": [{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"}],
                "test": [],
            }
        )
    )
    ds = read_dataset(root)
    assert ds.layout == "msd" and ds.channel_names == ("FLAIR", "T1w")
    assert ds.labels == {"background": 0, "edema": 1}
    img, _lab = read_case(ds.training[0])
    assert img.n_channels == 2 and img.spatial_shape == (8, 8, 4)
    np.testing.assert_allclose(img.array[1], img4d[..., 1])
