"""Classification and registration evaluations from files."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from sklearn import metrics as skm

from medlens.evaluation import (
    ResultsError,
    evaluate_classification,
    evaluate_registration,
    read_metrics_csv,
)


def _scores_csv(path: Path, n: int = 120) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(3)
    y = rng.random(n) < 0.4
    s = np.clip(0.5 * y + 0.25 + 0.2 * rng.normal(size=n), 0, 1)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    patient = np.array([f"p{i // 2}" for i in range(n)])
    y = np.array([y[2 * (i // 2)] for i in range(n)])  # same label for a patient's 2 images
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "patient", "sex", "label", "score"])
        for i in range(n):
            w.writerow([f"img{i}", patient[i], sex[i], int(y[i]), repr(float(s[i]))])
    return y, s, sex, patient


def test_classification_from_csv(tmp_path: Path) -> None:
    y, s, sex, _ = _scores_csv(tmp_path / "scores.csv")
    summary = evaluate_classification(
        tmp_path / "scores.csv", tmp_path / "out", threshold=0.5, target_sensitivity=0.9,
        groups=["sex"], n_resamples=200, report=True,
    )  # fmt: skip
    m = {(r["group"], r["metric"]): r for r in summary["metrics"]}
    assert m[("all", "auroc")]["value"] == pytest.approx(skm.roc_auc_score(y, s))
    assert m[("all", "auprc")]["value"] == pytest.approx(skm.average_precision_score(y, s))
    assert m[("all", "sensitivity")]["value"] == pytest.approx(skm.recall_score(y, s >= 0.5))
    assert m[("all", "brier")]["value"] == pytest.approx(skm.brier_score_loss(y, s))
    lo, hi = m[("all", "auroc")]["ci_lower"], m[("all", "auroc")]["ci_upper"]
    assert lo < m[("all", "auroc")]["value"] < hi
    f = sex == "F"
    assert m[("sex=F", "auroc")]["value"] == pytest.approx(skm.roc_auc_score(y[f], s[f]))
    assert ("all", "specificity@sensitivity0.9") in m
    disp = summary["groups"]["sex"]["disparity"]
    assert {d["metric"] for d in disp} >= {"auroc", "sensitivity"}
    with (tmp_path / "out" / "metrics.csv").open() as fh:
        assert next(csv.reader(fh)) == ["group", "metric", "value", "ci_lower", "ci_upper"]
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["n"] == y.size
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("<img") == 2 and "ROC" in html and "Calibration" in html
    assert html.count("<tr><td class=\"l\">sex=F</td>") == len(
        [r for r in summary["metrics"] if r["group"] == "sex=F"]
    )


def test_classification_patient_level(tmp_path: Path) -> None:
    y, s, _, patient = _scores_csv(tmp_path / "scores.csv")
    summary = evaluate_classification(
        tmp_path / "scores.csv", tmp_path / "out", patient_column="patient", aggregate="max",
        n_resamples=0, report=False,
    )  # fmt: skip
    ids = sorted(set(patient))
    pmax = np.array([s[patient == p].max() for p in ids])
    py = np.array([y[patient == p].max() for p in ids])
    assert summary["n"] == len(ids)
    auroc = next(r for r in summary["metrics"] if r["metric"] == "auroc")
    assert auroc["value"] == pytest.approx(skm.roc_auc_score(py, pmax))
    assert math.isnan(auroc["ci_lower"])  # no bootstrap requested
    (tmp_path / "bad.csv").write_text("case,score\na,0.1\n")
    with pytest.raises(ResultsError, match="label"):
        evaluate_classification(tmp_path / "bad.csv", tmp_path / "o2")
    with pytest.raises(ResultsError, match="group column"):
        evaluate_classification(tmp_path / "scores.csv", tmp_path / "o3", groups=["site"])


def _landmarks(path: Path, pts: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "y", "z"])
        w.writerows(pts.tolist())


def test_registration_from_folders(tmp_path: Path, write: Callable[..., Any]) -> None:
    fixed = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 5.0, 5.0]])
    warped = fixed + np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    _landmarks(tmp_path / "lf" / "case1.csv", fixed)
    _landmarks(tmp_path / "lw" / "case1.csv", warped)
    lab = np.zeros((12, 12, 8), np.uint8)
    lab[2:8, 2:8, 2:6] = 1
    lab[8:11, 8:11, 2:6] = 2
    write(tmp_path / "fl" / "case1.nii.gz", lab)
    moved = lab.copy()
    moved[2:8, 2:8, 2:6] = 0
    moved[3:9, 2:8, 2:6] = 1
    write(tmp_path / "wl" / "case1.nii.gz", moved)
    # u = -0.1 x (world mm) on a 2 mm grid: J = 0.9^3 everywhere
    spacing = np.array([2.0, 2.0, 2.0])
    x = np.indices((10, 10, 10)).astype(float) * spacing[:, None, None, None]
    u = np.moveaxis(-0.1 * x, 0, -1)[:, :, :, None, :]
    (tmp_path / "fields").mkdir()
    nib.save(nib.Nifti1Image(u.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0])),
             str(tmp_path / "fields" / "case1.nii.gz"))  # fmt: skip
    write(tmp_path / "masks" / "case1.nii.gz", np.ones((10, 10, 10), np.uint8),
          np.diag([2.0, 2.0, 2.0, 1.0]))  # fmt: skip
    evaluate_registration(
        tmp_path / "out", fixed_landmarks=tmp_path / "lf", warped_landmarks=tmp_path / "lw",
        fixed_labels=tmp_path / "fl", warped_labels=tmp_path / "wl", fields=tmp_path / "fields",
        masks=tmp_path / "masks",
    )  # fmt: skip
    rows = read_metrics_csv(tmp_path / "out" / "metrics.csv")
    got = {(r.region, r.metric): r.value for r in rows}
    assert got[("all", "tre_mean")] == pytest.approx(2.0)
    assert got[("all", "tre_max")] == pytest.approx(5.0)
    assert got[("all", "tre_median")] == pytest.approx(1.0)
    assert got[("label_1", "dice")] == pytest.approx(2 * 120 / 288)
    assert got[("label_2", "dice")] == 1.0
    assert got[("all", "fraction_nonpositive_jacobian")] == 0.0
    assert got[("all", "std_log_jacobian")] == pytest.approx(0.0, abs=1e-6)
    assert got[("all", "learn2reg_sdlogj")] == pytest.approx(0.0, abs=1e-6)
    assert got[("mask", "relative_volume_change")] == pytest.approx(0.9**3 - 1, rel=1e-5)


def test_landmarks_without_header_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "c.csv").write_text("1e-3,0,0\n0,0,0\n")  # no header, exponent notation
    (tmp_path / "b" / "c.csv").write_text("1e-3,0,2\n0,0,0\n")
    evaluate_registration(tmp_path / "o", fixed_landmarks=tmp_path / "a",
                          warped_landmarks=tmp_path / "b", report=False)  # fmt: skip
    got = {r.metric: r.value for r in read_metrics_csv(tmp_path / "o" / "metrics.csv")}
    assert got["tre_mean"] == pytest.approx(1.0) and got["tre_max"] == pytest.approx(2.0)
    (tmp_path / "b" / "c.csv").write_text("x,y,z\n1,2\n")
    with pytest.raises(ResultsError, match="landmarks of 3 coordinates"):
        evaluate_registration(tmp_path / "o2", fixed_landmarks=tmp_path / "a",
                              warped_landmarks=tmp_path / "b", report=False)  # fmt: skip


def test_registration_reports_learn2reg_sdlogj_of_a_varying_field(tmp_path: Path) -> None:
    # a smooth non-uniform field: the CSV row equals the metric on the field in memory,
    # and differs from std_log_jacobian (another definition)
    import medlens.metrics as mm

    x = np.indices((9, 8, 7)).astype(float)
    u = np.stack([0.3 * np.sin(x[0] / 2.0), 0.2 * np.cos(x[1] / 3.0), 0.6 * x[2] ** 2 / 7.0])
    (tmp_path / "fields").mkdir()
    spacing = (1.5, 1.0, 2.0)
    field = nib.Nifti1Image(np.moveaxis(u, 0, -1).astype(np.float32), np.diag([*spacing, 1.0]))
    nib.save(field, str(tmp_path / "fields" / "c.nii.gz"))
    evaluate_registration(tmp_path / "out", fields=tmp_path / "fields")
    rows = read_metrics_csv(tmp_path / "out" / "metrics.csv")
    got = {(r.region, r.metric): r.value for r in rows}
    want = mm.learn2reg_sdlogj(u.astype(np.float32), spacing=spacing)
    assert want > 0.01
    assert got[("all", "learn2reg_sdlogj")] == pytest.approx(want, rel=1e-6)
    assert got[("all", "learn2reg_sdlogj")] != pytest.approx(got[("all", "std_log_jacobian")])
