import json

import numpy as np
import pytest

from medlens.cli import main
from medlens.image import Image
from medlens.io import read_image, write_image
from tests.segmentation.conftest import write_dataset


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seg")
    ds = write_dataset(tmp / "Dataset001_Tiny", n=2)
    w = tmp / "work"
    assert (
        main(
            ["seg", "plan", str(ds), str(w), "--time-budget", "20s", "--no-calibrate", "--explain"]
        )
        == 0
    )
    assert main(["seg", "preprocess", str(ds), str(w), "--workers", "1"]) == 0
    assert (
        main(["seg", "train", str(w), "--iterations", "2", "--workers", "0", "--threads", "1"]) == 0
    )
    return tmp, ds, w


def test_plan_files(work):
    _, _, w = work
    plans = json.loads((w / "plans.json").read_text())
    assert plans["default_configuration"] == "3d_cpu"
    assert {"2d", "3d_fullres", "3d_cpu"} <= set(plans["configurations"])
    assert any("time budget" in e for e in plans["explain"])
    assert (w / "fingerprint.json").exists()
    assert (w / "model" / "fold_all" / "checkpoint_final.pt").exists()


def test_plan_minimum_iterations_follow_the_foreground_fraction(work, tmp_path):
    # seg plan floors a budgeted plan at 300 iterations, or 2000 when the foreground
    # is under 5 % of the cropped volume (minimum_iterations of the fingerprint)
    w = work[2]
    explain = json.loads((w / "plans.json").read_text())["explain"]
    assert any("(minimum 300)" in e or "reached 300 iterations" in e for e in explain)
    small = write_dataset(tmp_path / "Dataset002_Small", n=2)
    for f in (small / "labelsTr").iterdir():  # keep only the core: ~1 % foreground
        lab = read_image(f)
        write_image(lab.with_array((lab.array == 2).astype(np.uint8) * 2), f)
    w2 = tmp_path / "work"
    argv = ["seg", "plan", str(small), str(w2), "--time-budget", "20s", "--no-calibrate"]
    assert main(argv) == 0
    explain = json.loads((w2 / "plans.json").read_text())["explain"]
    assert any("(minimum 2000)" in e or "reached 2000 iterations" in e for e in explain)
    assert not any("minimum 300)" in e or "reached 300 iterations" in e for e in explain)


def test_train_takes_foreground_oversampling_from_the_fingerprint(work):
    from medlens.segmentation import DatasetFingerprint, foreground_oversampling

    _, _, w = work
    fp = DatasetFingerprint.load(w / "fingerprint.json")
    used = json.loads((w / "model" / "fold_all" / "train_config.json").read_text())
    assert used["oversample_foreground"] == foreground_oversampling(fp)


def test_train_forces_foreground_patches_for_a_small_foreground(work, tmp_path):
    import shutil

    _, _, w = work
    w2 = tmp_path / "work"
    shutil.copytree(w, w2, ignore=shutil.ignore_patterns("model"))
    fpj = json.loads((w2 / "fingerprint.json").read_text())
    for c in fpj["cases"]:  # foreground 1/1000 of what it was: below the 5 % rule
        c["class_volumes_ml"] = {k: v / 1000 for k, v in c["class_volumes_ml"].items()}
    (w2 / "fingerprint.json").write_text(json.dumps(fpj))
    args = ["seg", "train", str(w2), "--iterations", "1", "--workers", "0", "--threads", "1"]
    assert main(args) == 0
    used = json.loads((w2 / "model" / "fold_all" / "train_config.json").read_text())
    assert used["oversample_foreground"] == 1.0


def test_predict_file_and_folder(work, tmp_path):
    _, ds, w = work
    src = ds / "imagesTs" / "test00_0000.nii.gz"
    out = tmp_path / "pred.nii.gz"
    assert (
        main(
            [
                "seg",
                "predict",
                str(w / "model"),
                str(src),
                str(out),
                "--no-mirror",
                "--probabilities",
            ]
        )
        == 0
    )
    a, b = read_image(src), read_image(out)
    assert b.spatial_shape == a.spatial_shape
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-5)
    assert (tmp_path / "pred.nii.gz.probabilities.npz").exists()
    outdir = tmp_path / "preds"
    assert (
        main(["seg", "predict", str(w / "model"), str(ds / "imagesTs"), str(outdir), "--no-mirror"])
        == 0
    )
    assert (outdir / "test00.nii.gz").exists()
    # ensemble of the same probabilities twice equals the single prediction
    ens = tmp_path / "ens.nii.gz"
    npz = str(tmp_path / "pred.nii.gz.probabilities.npz")
    assert main(["seg", "ensemble", npz, npz, "--output", str(ens), "--like", str(src)]) == 0
    with np.load(npz) as z:
        expected = z["labels"][np.argmax(2 * z["probabilities"].astype(np.float32), 0)]
    np.testing.assert_array_equal(read_image(ens).array, expected)
    # and the stored probabilities agree with the label map where they are not tied
    with np.load(npz) as z:
        p = np.sort(z["probabilities"].astype(np.float32), 0)
    clear = (p[-1] - p[-2]) > 1e-2
    np.testing.assert_array_equal(read_image(ens).array[clear], read_image(out).array[clear])


def test_dicom_series_in_dicom_seg_out(work, tmp_path):
    from medlens.io import write_dicom_series

    _, ds, w = work
    img = read_image(ds / "imagesTs" / "test00_0000.nii.gz")
    arr = np.round(np.asarray(img.array) * 100).astype(np.int16)
    write_dicom_series(Image(arr, img.affine), tmp_path / "series", modality="MR")
    out = tmp_path / "seg.dcm"
    assert (
        main(
            ["seg", "predict", str(w / "model"), str(tmp_path / "series"), str(out), "--no-mirror"]
        )
        == 0
    )
    import pydicom

    dcm = pydicom.dcmread(out)
    assert dcm.Modality == "SEG"
    src = read_image(tmp_path / "series")
    seg = read_image(out)
    assert seg.spatial_shape == src.spatial_shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-3)


def test_stats_json_csv(tmp_path, capsys):
    m = np.zeros((5, 5, 2), np.uint8)
    m[1:3, 1:3, 0] = 1
    write_image(Image(m, np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "m.nii.gz")
    write_image(
        Image(m.astype(np.float32) * 7, np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "i.nii.gz"
    )
    assert (
        main(
            [
                "seg",
                "stats",
                str(tmp_path / "m.nii.gz"),
                str(tmp_path / "i.nii.gz"),
                "--csv",
                str(tmp_path / "s.csv"),
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["voxel_count"] == 4 and rows[0]["volume_ml"] == pytest.approx(4 * 12 / 1000)
    assert rows[0]["mean"] == 7.0
    assert (tmp_path / "s.csv").read_text().startswith("label,")


def test_evaluate_and_postprocessing_decision(work, tmp_path):
    _tmp, ds, w = work
    refs = ds / "labelsTr"
    preds = tmp_path / "p"
    assert (
        main(["seg", "predict", str(w / "model"), str(ds / "imagesTr"), str(preds), "--no-mirror"])
        == 0
    )
    assert (
        main(
            [
                "seg",
                "evaluate",
                str(refs),
                str(preds),
                str(tmp_path / "ev"),
                "--decide-postprocessing",
                str(w / "model"),
            ]
        )
        == 0
    )
    assert (tmp_path / "ev" / "metrics.csv").exists()
    rules = json.loads((w / "model" / "postprocessing.json").read_text())
    assert set(rules["keep_largest_component"]) == {"outer", "core"}
    assert rules["n_cases"] == 2
    (w / "model" / "postprocessing.json").unlink()


def test_user_errors_exit_2(tmp_path):
    assert main(["seg", "plan", str(tmp_path / "missing"), str(tmp_path / "w")]) == 2
    assert (
        main(
            [
                "seg",
                "predict",
                str(tmp_path),
                str(tmp_path / "x.nii.gz"),
                str(tmp_path / "y.nii.gz"),
            ]
        )
        == 2
    )
    assert main(["demo", "--dataset", "nope", "--out", str(tmp_path / "d")]) == 2
