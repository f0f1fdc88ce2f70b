"""``medlens evaluate``: every subcommand end to end, and user errors as exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlens.cli import main


def _write(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([1.0, 1.0, 2.0, 1.0]) if affine is None else affine),
             str(path))  # fmt: skip


@pytest.fixture
def two_methods(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(6):
        ref = np.zeros((20, 20, 10), np.uint8)
        ref[4:14, 4:14, 2:8] = 2
        ref[6:11, 6:11, 3:7] = 1
        ref[7:10, 7:10, 4:6] = 3
        _write(tmp_path / "ref" / f"BraTS-{i:03d}-seg.nii.gz", ref)
        _write(tmp_path / "good" / f"BraTS-{i:03d}.nii.gz", np.roll(ref, i % 2, axis=0))
        bad = np.roll(ref, 2 + (i % 2), axis=1)
        bad[rng.random(ref.shape) < 0.01] = 2
        if i != 5:  # method "bad" misses a case
            _write(tmp_path / "bad" / f"BraTS-{i:03d}.nii.gz", bad)
    return tmp_path


def test_segmentation_then_rank(two_methods: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = two_methods
    for method in ("good", "bad"):
        code = main(["evaluate", "segmentation", "--reference", str(t / "ref"),
                     "--prediction", str(t / method), "--preset", "brats2023",
                     "--reference-suffix", "-seg", "--out", str(t / f"out_{method}"),
                     "--jobs", "2"])  # fmt: skip
        assert code == 0
    out = capsys.readouterr()
    assert "lesion_dice" in out.out
    with (t / "out_bad" / "metrics.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["case", "region", "metric", "value"]
    assert len(rows) == 1 + 6 * 3 * 4  # cases x regions x metrics, missing case included
    summary = json.loads((t / "out_bad" / "summary.json").read_text())
    assert summary["problems"] == [
        {"case": "BraTS-005", "status": "missing_prediction",
         "message": "no prediction file: scored as empty"}
    ]  # fmt: skip
    # rerun resumes from the per-case files
    assert main(["evaluate", "segmentation", "--reference", str(t / "ref"), "--prediction",
                 str(t / "bad"), "--preset", "brats2023", "--reference-suffix", "-seg",
                 "--out", str(t / "out_bad"), "-q"]) == 0  # fmt: skip
    code = main(["evaluate", "rank", str(t / "out_good"), str(t / "out_bad"),
                 "--out", str(t / "ranking"), "--n-resamples", "200",
                 "--metric", "lesion_dice", "--metric", "lesion_hd95"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "good" in text and "bad" in text
    with (t / "ranking" / "ranking.csv").open() as f:
        ranking = list(csv.DictReader(f))
    assert [r["method"] for r in ranking] == ["out_good", "out_bad"]
    assert ranking[0]["rank"] == "1"
    assert (t / "ranking" / "wilcoxon.csv").is_file()
    html = (t / "ranking" / "report.html").read_text(encoding="utf-8")
    assert "Ranking" in html and "rank interval" in html


def test_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "r" / "a.nii.gz", np.zeros((4, 4, 4), np.uint8))
    base = ["evaluate", "segmentation", "--reference", str(tmp_path / "r"),
            "--prediction", str(tmp_path / "r"), "--out", str(tmp_path / "o")]  # fmt: skip
    assert main([*base, "--preset", "nope"]) == 2
    assert "unknown segmentation preset" in capsys.readouterr().err
    assert main(base) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["evaluate", "segmentation", "--reference", str(tmp_path / "missing"),
                 "--prediction", str(tmp_path / "r"), "--out", str(tmp_path / "o"),
                 "--preset", "generic"]) == 2  # fmt: skip
    assert "not a directory" in capsys.readouterr().err
    assert main(["evaluate", "rank", str(tmp_path / "r"), "--out", str(tmp_path / "x")]) == 2
    assert "no metrics file" in capsys.readouterr().err
    assert main(["evaluate", "image", "--reference", str(tmp_path / "r"), "--prediction",
                 str(tmp_path / "r"), "--out", str(tmp_path / "o"),
                 "--preset", "x"]) == 2  # fmt: skip
    assert main(["evaluate", "rank", str(tmp_path), "--out", str(tmp_path / "x"),
                 "--penalty", "hd95"]) == 2  # fmt: skip


def test_image_classification_registration(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vol = rng.random((12, 12, 4)).astype(np.float32) + 1
    _write(tmp_path / "gt" / "v1.nii.gz", vol)
    _write(tmp_path / "rec" / "v1.nii.gz", vol + 0.01 * rng.random(vol.shape).astype(np.float32))
    assert main(["evaluate", "image", "--reference", str(tmp_path / "gt"), "--prediction",
                 str(tmp_path / "rec"), "--preset", "cmrxrecon", "--no-crop",
                 "--out", str(tmp_path / "img"), "-q"]) == 0  # fmt: skip
    assert (tmp_path / "img" / "report.html").is_file()
    with (tmp_path / "scores.csv").open("w") as f:
        f.write("case,label,score,sex\n")
        for i in range(40):
            f.write(f"c{i},{i % 2},{(i % 2) * 0.5 + rng.random() * 0.5:.4f},{'FM'[i % 3 == 0]}\n")
    assert main(["evaluate", "classification", "--scores", str(tmp_path / "scores.csv"),
                 "--out", str(tmp_path / "cls"), "--group", "sex",
                 "--n-resamples", "100"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "cls" / "summary.json").read_text())["n"] == 40
    (tmp_path / "lf").mkdir()
    (tmp_path / "lw").mkdir()
    (tmp_path / "lf" / "c.csv").write_text("x,y,z\n0,0,0\n1,1,1\n")
    (tmp_path / "lw" / "c.csv").write_text("x,y,z\n0,0,1\n1,1,1\n")
    assert main(["evaluate", "registration", "--fixed-landmarks", str(tmp_path / "lf"),
                 "--warped-landmarks", str(tmp_path / "lw"), "--out", str(tmp_path / "reg"),
                 "-q"]) == 0  # fmt: skip
    text = (tmp_path / "reg" / "metrics.csv").read_text()
    assert "c,all,tre_mean,0.5" in text
    assert main(["evaluate", "registration", "--fixed-landmarks", str(tmp_path / "lf"),
                 "--out", str(tmp_path / "reg2")]) == 2  # fmt: skip
