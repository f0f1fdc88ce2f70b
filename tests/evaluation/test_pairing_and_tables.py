"""Case pairing, grid checks, tidy tables and summaries."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlens import Image
from medlens.evaluation import (
    MetricRow,
    PairingError,
    ResultsError,
    bootstrap_mean_ci,
    case_id,
    grid_mismatch,
    higher_is_better,
    json_safe,
    list_cases,
    pair_cases,
    read_metrics_csv,
    safe_name,
    summarize,
    write_json,
    write_metrics_csv,
)


def test_case_ids() -> None:
    assert case_id("a/case_1.nii.gz") == "case_1"
    assert case_id("x.NII") == "x"
    assert case_id("BraTS-1-seg.nii.gz", suffix="-seg") == "BraTS-1"
    assert case_id("BraTS-1.nii.gz", suffix="-seg") is None
    assert case_id("readme.md") is None
    assert safe_name("ok-1.2_x") == "ok-1.2_x"
    assert safe_name("a b") != safe_name("a_b")


def test_pairing_reports_both_sides(seg_dirs: tuple[Path, Path]) -> None:
    ref_dir, pred_dir = seg_dirs
    p = pair_cases(ref_dir, pred_dir)
    assert [c.case for c in p.pairs] == ["case_000", "case_001", "case_002", "case_003"]
    assert p.missing_predictions == ("case_003",)
    assert p.unmatched_predictions == ("stray",)
    assert p.pairs[3].prediction is None


def test_pairing_errors(tmp_path: Path, write: Callable[..., Any]) -> None:
    with pytest.raises(PairingError, match="not a directory"):
        list_cases(tmp_path / "nope")
    (tmp_path / "r").mkdir()
    with pytest.raises(PairingError, match="no reference image"):
        pair_cases(tmp_path / "r", tmp_path / "r")
    write(tmp_path / "d" / "a.nii.gz", np.zeros((2, 2, 2), np.uint8))
    write(tmp_path / "d" / "a.nii", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(PairingError, match="same case id|give case id"):
        list_cases(tmp_path / "d")


def test_grid_mismatch_names_the_difference() -> None:
    a = Image(np.zeros((4, 5, 6)), np.diag([1.0, 1.0, 2.0, 1.0]))
    assert grid_mismatch(a, Image(np.zeros((4, 5, 6)), np.diag([1.0, 1.0, 2.0, 1.0]))) is None
    assert "shape" in str(grid_mismatch(a, Image(np.zeros((4, 5, 7)), a.affine)))
    b = np.diag([1.0, 1.0, 2.5, 1.0])
    assert "spacing" in str(grid_mismatch(a, Image(np.zeros((4, 5, 6)), b)))
    c = a.affine.copy()
    c[0, 3] = 3.0
    assert "origin" in str(grid_mismatch(a, Image(np.zeros((4, 5, 6)), c)))
    c = a.affine.copy()
    c[:3, :3] = np.diag([-1.0, -1.0, 2.0])
    assert "direction" in str(grid_mismatch(a, Image(np.zeros((4, 5, 6)), c)))
    c = a.affine.copy()
    c[0, 3] = 1e-4  # within tolerance
    assert grid_mismatch(a, Image(np.zeros((4, 5, 6)), c)) is None


def test_metrics_csv_round_trip(tmp_path: Path) -> None:
    rows = [
        MetricRow("c1", "WT", "dice", 0.1 + 0.2),
        MetricRow("c1", "WT", "hd95", math.inf),
        MetricRow("c2", "WT, TC", "nsd@2.0", math.nan),
    ]
    path = tmp_path / "m" / "metrics.csv"
    write_metrics_csv(path, rows)
    text = path.read_text()
    assert text.splitlines()[0] == "case,region,metric,value"
    back = read_metrics_csv(path)
    assert back[0] == rows[0]  # full precision: 0.30000000000000004
    assert back[1].value == math.inf and math.isnan(back[2].value)
    assert back[2].region == "WT, TC"
    (tmp_path / "bad.csv").write_text("case,metric,value\n")
    with pytest.raises(ResultsError, match="header"):
        read_metrics_csv(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("case,region,metric,value\na,b,c,zz\n")
    with pytest.raises(ResultsError, match="not a number"):
        read_metrics_csv(tmp_path / "bad2.csv")
    assert not list(path.parent.glob(".*tmp"))  # atomic write leaves no temporary file


def test_summarize_hand_worked() -> None:
    values = [0.2, 0.4, 0.6, 0.8, math.nan]
    rows = [MetricRow(c, "WT", "dice", v) for c, v in zip("abcde", values, strict=True)]
    rows.append(MetricRow("f", "WT", "dice", math.inf))
    (s,) = summarize(rows, penalised=[("a", "WT", "dice")], n_resamples=500, seed=1)
    assert (s.n, s.n_nan, s.n_infinite, s.n_penalised) == (6, 1, 1, 1)
    assert s.mean == pytest.approx(0.5)
    assert s.median == pytest.approx(0.5)
    assert s.q1 == pytest.approx(0.35) and s.q3 == pytest.approx(0.65)
    assert s.std == pytest.approx(np.std([0.2, 0.4, 0.6, 0.8], ddof=1))
    assert 0.2 <= s.ci_lower < 0.5 < s.ci_upper <= 0.8
    assert summarize(rows, n_resamples=500, seed=1)[0].ci_lower == s.ci_lower  # seeded


def test_bootstrap_mean_ci_matches_manual() -> None:
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    rng = np.random.default_rng(3)
    idx = rng.integers(0, x.size, size=(400, x.size))
    lo, hi = np.quantile(x[idx].mean(axis=1), [0.025, 0.975])
    assert bootstrap_mean_ci(x, n_resamples=400, seed=3) == pytest.approx((lo, hi))
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))


def test_directions_and_json(tmp_path: Path) -> None:
    assert higher_is_better("dice") and higher_is_better("nsd@1.0330772532390826")
    assert not higher_is_better("hd95") and not higher_is_better("lesion_hd95")
    assert not higher_is_better("tre_p90") and higher_is_better("ssim")
    with pytest.raises(KeyError, match="direction"):
        higher_is_better("mystery")
    assert json_safe({"a": [math.nan, 1]}) == {"a": [None, 1]}
    write_json(tmp_path / "s.json", {"x": math.inf, "y": np.float32(0.5)})
    assert json.loads((tmp_path / "s.json").read_text()) == {"x": None, "y": 0.5}
