"""Segmentation evaluation end to end: presets, failure policy, resume, parallel runs."""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlens.evaluation import (
    CaseTask,
    PresetError,
    SegmentationEvaluator,
    evaluate_segmentation,
    load_labels_spec,
    pair_cases,
    read_metrics_csv,
    run_cases,
    score_label_maps,
    segmentation_preset,
)
from medlens.metrics import (
    BRATS2023_LESION_PARAMETERS,
    BRATS_REGIONS,
    KITS21_REGIONS,
    label_regions,
    segmentation_metrics,
)

SPACING = (0.8, 0.9, 2.0)


def _tasks(ref_dir: Path, pred_dir: Path) -> list[CaseTask]:
    return [
        CaseTask(p.case, (("reference", p.reference), ("prediction", p.prediction)))
        for p in pair_cases(ref_dir, pred_dir).pairs
    ]


def _load(path: Path) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(str(path)).dataobj)


def _spacing(path: Path) -> tuple[float, ...]:
    import nibabel as nib

    # the file stores float32 voxel sizes: use those, as the reader does
    return tuple(float(z) for z in nib.load(str(path)).header.get_zooms())


def test_generic_run_writes_tidy_outputs(seg_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    ref_dir, pred_dir = seg_dirs
    out = tmp_path / "out"
    summaries = evaluate_segmentation(ref_dir, pred_dir, out, preset="generic", progress=False)
    with (out / "metrics.csv").open() as f:
        header = next(csv.reader(f))
    assert header == ["case", "region", "metric", "value"]
    rows = read_metrics_csv(out / "metrics.csv")
    assert {r.metric for r in rows} == {"dice", "hd95", "assd", "masd", "nsd@2.0"}
    # case_000 equals a direct call of the metrics core with the generic settings
    ref = _load(ref_dir / "case_000.nii.gz")
    pred = _load(pred_dir / "case_000.nii.gz")
    sp = _spacing(ref_dir / "case_000.nii.gz")
    diag = math.sqrt(sum((n * s) ** 2 for n, s in zip(ref.shape, sp, strict=True)))
    direct = segmentation_metrics(
        ref, pred, spacing=sp, regions=label_regions([1, 2, 3]),
        metrics=["dice", "hd95", "assd", "masd", "nsd@2.0"], method="surfel",
        pooling="max_directed", empty_penalty=diag,
    )  # fmt: skip
    got = {(r.region, r.metric): r.value for r in rows if r.case == "case_000"}
    for d in direct:
        assert got[(d.region, d.metric)] == pytest.approx(d.value, rel=1e-12)
    # missing prediction (case_003) and mismatched grid (case_002): scored as empty
    for case in ("case_002", "case_003"):
        vals = {(r.region, r.metric): r.value for r in rows if r.case == case}
        assert vals[("label_1", "dice")] == 0.0
        assert vals[("label_1", "hd95")] == pytest.approx(diag)
        assert vals[("label_1", "nsd@2.0")] == 0.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 4 and summary["n_ok"] == 2
    status = {p["case"]: p["status"] for p in summary["problems"]}
    assert status == {"case_002": "geometry_mismatch", "case_003": "missing_prediction"}
    assert "spacing" in next(p["message"] for p in summary["problems"] if p["case"] == "case_002")
    assert summary["unmatched_predictions"] == ["stray"]
    dice = summary["summary"]["label_1"]["dice"]
    assert dice["n"] == 4 and dice["n_penalised"] == 2
    assert set(dice) >= {"mean", "median", "std", "q1", "q3", "ci_lower", "ci_upper", "n_nan"}
    s = next(x for x in summaries if x.region == "label_1" and x.metric == "dice")
    assert s.mean == pytest.approx(dice["mean"])
    assert (out / "report.html").is_file()


def test_resume_and_parallel(seg_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    ref_dir, pred_dir = seg_dirs
    tasks = _tasks(ref_dir, pred_dir)
    ev = SegmentationEvaluator(segmentation_preset("generic"))
    first = run_cases(ev, tasks, tmp_path / "a", jobs=1, progress=False)
    assert first.reused == 0
    again = run_cases(ev, tasks, tmp_path / "a", jobs=1, progress=False)
    assert again.reused == 4 and again.results == first.results
    # an interrupted run: one case file lost, one torn mid-write
    files = sorted((tmp_path / "a" / "cases").glob("*.json"))
    files[0].unlink()
    files[1].write_text('{"case": "case_0')
    resumed = run_cases(ev, tasks, tmp_path / "a", jobs=1, progress=False)
    assert resumed.reused == 2 and resumed.results == first.results
    # other settings: nothing reused
    other = SegmentationEvaluator(segmentation_preset("fets2021"))
    assert run_cases(other, tasks, tmp_path / "a", jobs=1, progress=False).reused == 0
    # parallel workers give the same results
    par = run_cases(ev, tasks, tmp_path / "b", jobs=2, progress=False)
    assert par.results == first.results


def test_kits21_preset(tmp_path: Path, write: Callable[..., Any]) -> None:
    ref = np.zeros((24, 24, 12), np.uint8)
    ref[4:18, 4:18, 2:10] = 1
    ref[8:13, 8:13, 4:8] = 2
    ref[14:16, 14:16, 4:6] = 3
    pred = np.roll(ref, 1, axis=1)
    write(tmp_path / "r" / "case_00001.nii.gz", ref)
    write(tmp_path / "p" / "case_00001.nii.gz", pred)
    evaluate_segmentation(tmp_path / "r", tmp_path / "p", tmp_path / "o", preset="kits21",
                          progress=False, report=False)  # fmt: skip
    rows = read_metrics_csv(tmp_path / "o" / "metrics.csv")
    assert [r.region for r in rows[::2]] == ["kidney_and_mass", "mass", "tumor"]
    sp = _spacing(tmp_path / "r" / "case_00001.nii.gz")
    direct = segmentation_metrics(ref, pred, spacing=sp, regions=KITS21_REGIONS,
                                  metrics=["dice", "nsd"], method="surfel")  # fmt: skip
    assert [(r.region, r.metric) for r in rows] == [(d.region, d.metric) for d in direct]
    np.testing.assert_allclose([r.value for r in rows], [d.value for d in direct], rtol=1e-12)
    assert rows[1].metric == "nsd@1.0330772532390826"  # the official KiTS21 tolerance


def test_brats2023_preset_penalises_missed_lesions(
    tmp_path: Path, write: Callable[..., Any]
) -> None:
    ref = np.zeros((40, 40, 30), np.uint8)
    ref[5:20, 5:20, 5:20] = 2
    ref[8:16, 8:16, 8:16] = 1
    ref[10:14, 10:14, 10:14] = 3
    pred = ref.copy()
    pred[30:34, 30:34, 20:24] = 3  # a false-positive enhancing component
    write(tmp_path / "r" / "BraTS-GLI-00001-000-seg.nii.gz", ref, np.eye(4))
    write(tmp_path / "r" / "BraTS-GLI-00002-000-seg.nii.gz", ref, np.eye(4))
    write(tmp_path / "p" / "BraTS-GLI-00001-000.nii.gz", pred, np.eye(4))
    evaluate_segmentation(tmp_path / "r", tmp_path / "p", tmp_path / "o", preset="brats2023",
                          reference_suffix="-seg", progress=False, report=False)  # fmt: skip
    rows = read_metrics_csv(tmp_path / "o" / "metrics.csv")
    got = {(r.case, r.region, r.metric): r.value for r in rows}
    direct = segmentation_metrics(
        ref, pred, spacing=(1.0, 1.0, 1.0), regions=BRATS_REGIONS,
        metrics=["lesion_dice", "lesion_hd95", "dice", "hd95"], empty_penalty=374.0,
        brats_parameters=BRATS2023_LESION_PARAMETERS["BraTS-GLI"],
    )  # fmt: skip
    for d in direct:
        assert got[("BraTS-GLI-00001-000", d.region, d.metric)] == pytest.approx(d.value)
    # the FP component costs ET lesion-wise Dice (one TP lesion, one FP: 0.5)
    assert got[("BraTS-GLI-00001-000", "ET", "lesion_dice")] == pytest.approx(0.5)
    # the case without prediction: every lesion missed, HD95 = 374 mm
    for region in ("WT", "TC", "ET"):
        assert got[("BraTS-GLI-00002-000", region, "lesion_dice")] == 0.0
        assert got[("BraTS-GLI-00002-000", region, "lesion_hd95")] == 374.0
        assert got[("BraTS-GLI-00002-000", region, "hd95")] == 374.0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["summary"]["ET"]["hd95"]["n_penalised"] == 1
    assert "dilation 3" in summary["settings"]["BraTS lesion-wise"]


def test_isles22_and_fets2021_presets(tmp_path: Path, write: Callable[..., Any]) -> None:
    ref = np.zeros((30, 30, 20), np.uint8)
    ref[3:8, 3:8, 3:8] = 1
    ref[15:25, 15:25, 10:15] = 1
    pred = np.zeros_like(ref)
    pred[15:25, 16:26, 10:15] = 1  # finds one of two lesions
    write(tmp_path / "r" / "sub-1.nii.gz", ref, np.diag([2.0, 2.0, 2.0, 1.0]))
    write(tmp_path / "p" / "sub-1.nii.gz", pred, np.diag([2.0, 2.0, 2.0, 1.0]))
    evaluate_segmentation(tmp_path / "r", tmp_path / "p", tmp_path / "o", preset="isles22",
                          progress=False, report=False)  # fmt: skip
    got = {r.metric: r.value for r in read_metrics_csv(tmp_path / "o" / "metrics.csv")}
    assert got["lesion_count_difference"] == 1.0
    assert got["lesion_f1"] == pytest.approx(1 / (1 + 0.5))  # TP 1, FN 1
    # |V_pred - V_ref| = |500 - 625| voxels of 8 mm³ = 1.0 ml
    assert got["absolute_volume_difference"] == pytest.approx(1.0)
    labels = np.where(ref > 0, 2, 0).astype(np.uint8)
    labels[17:20, 17:20, 11:13] = 4
    write(tmp_path / "r2" / "c.nii.gz", labels)
    write(tmp_path / "p2" / "c.nii.gz", labels)
    evaluate_segmentation(tmp_path / "r2", tmp_path / "p2", tmp_path / "o2", preset="fets2021",
                          progress=False, report=False)  # fmt: skip
    rows2 = read_metrics_csv(tmp_path / "o2" / "metrics.csv")
    got2 = {(r.region, r.metric): r.value for r in rows2}
    assert got2[("WT", "dice")] == 1.0 and got2[("ET", "hd95")] == 0.0
    assert got2[("TC", "dice")] == 1.0  # TC = {1, 4}


def test_labels_file(tmp_path: Path, write: Callable[..., Any]) -> None:
    spec_file = tmp_path / "labels.json"
    spec_file.write_text(json.dumps({
        "name": "liver",
        "regions": {"liver": {"labels": [1, 2], "nsd_tolerance": 2.0},
                    "tumour": {"labels": [2], "nsd_tolerance": 1.5}},
        "metrics": ["dice", "nsd", "hd"],
        "method": "border",
        "empty_penalty": "nan",
    }))  # fmt: skip
    spec = load_labels_spec(spec_file)
    assert spec.name == "liver" and spec.method == "border"
    assert [r.name for r in spec.regions] == ["liver", "tumour"]
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[2:8, 2:8, 2:8] = 1
    ref[4:6, 4:6, 4:6] = 2
    write(tmp_path / "r" / "a.nii.gz", ref)
    write(tmp_path / "p" / "a.nii.gz", np.roll(ref, 1, axis=2))
    evaluate_segmentation(tmp_path / "r", tmp_path / "p", tmp_path / "o", labels=spec_file,
                          progress=False, report=False)  # fmt: skip
    rows = read_metrics_csv(tmp_path / "o" / "metrics.csv")
    assert [(r.region, r.metric) for r in rows] == [
        ("liver", "dice"), ("liver", "nsd@2.0"), ("liver", "hd"),
        ("tumour", "dice"), ("tumour", "nsd@1.5"), ("tumour", "hd"),
    ]  # fmt: skip
    assert rows[2].value == pytest.approx(2.0)  # a one-slice shift along the 2 mm axis
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"regions": {"liver": [1]}, "metrics": ["nsd"]}))
    with pytest.raises(PresetError, match="nsd_tolerance"):
        load_labels_spec(bad)
    bad.write_text(json.dumps({"regions": {"liver": [0]}}))
    with pytest.raises(PresetError, match="positive integer"):
        load_labels_spec(bad)
    bad.write_text(json.dumps({"regions": {"x": [1]}, "metrics": ["wat"]}))
    with pytest.raises(PresetError, match="unknown metric"):
        load_labels_spec(bad)
    bad.write_text("{not json")
    with pytest.raises(PresetError, match="cannot read"):
        load_labels_spec(bad)
    with pytest.raises(PresetError, match="unknown segmentation preset"):
        segmentation_preset("brats2099")


class _Interrupting:
    """Wraps an evaluator and raises KeyboardInterrupt at the n-th case (like Ctrl-C)."""

    def __init__(self, inner: SegmentationEvaluator, at: int) -> None:
        self.inner, self.at, self.calls = inner, at, 0

    @property
    def name(self) -> str:
        return self.inner.name

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def evaluate(self, task: CaseTask) -> Any:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner.evaluate(task)


def test_interrupted_run_resumes(seg_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    ref_dir, pred_dir = seg_dirs
    tasks = _tasks(ref_dir, pred_dir)
    ev = SegmentationEvaluator(segmentation_preset("generic"))
    with pytest.raises(KeyboardInterrupt):
        run_cases(_Interrupting(ev, at=3), tasks, tmp_path / "o", progress=False)
    assert len(list((tmp_path / "o" / "cases").glob("*.json"))) == 2
    resumed = run_cases(ev, tasks, tmp_path / "o", progress=False)
    assert resumed.reused == 2
    assert resumed.results == run_cases(ev, tasks, tmp_path / "fresh", progress=False).results


def test_fets2021_hd95_in_voxel_units_as_captk() -> None:
    """CaPTk's FeTS 2021 HD95 (CBICA Hausdorff95 = MedPy ``hd95`` without voxelspacing):
    border voxels, pooled, in voxel units; one side empty scores the image diagonal in
    voxels, both empty 0. Worked by hand on a (8, 6, 5) grid with spacing (2.5, 1, 1)."""
    spec = segmentation_preset("fets2021")
    ref = np.zeros((8, 6, 5), np.uint8)
    pred = np.zeros_like(ref)
    ref[1, 2, 2] = 4  # ET, so also in TC and WT
    pred[3, 2, 2] = 4  # two voxels away along axis 0: 2 voxels (5 mm)
    rows, penalised = score_label_maps(ref, pred, spacing=(2.5, 1.0, 1.0), spec=spec)
    got = {(r, m): v for r, m, v in rows}
    for region in ("WT", "TC", "ET"):
        assert got[(region, "hd95")] == 2.0
        assert got[(region, "dice")] == 0.0
    assert penalised == ()
    # ET empty in the prediction only: sqrt(8² + 6² + 5²) = sqrt(125) voxels
    pred[3, 2, 2] = 1
    rows, penalised = score_label_maps(ref, pred, spacing=(2.5, 1.0, 1.0), spec=spec)
    got = {(r, m): v for r, m, v in rows}
    assert got[("ET", "hd95")] == pytest.approx(math.sqrt(125.0), rel=1e-12)
    assert ("ET", "hd95") in penalised
    assert got[("TC", "hd95")] == 2.0
    # ET empty in both: 0 (and Dice 1)
    ref[1, 2, 2] = 1
    rows, _ = score_label_maps(ref, pred, spacing=(2.5, 1.0, 1.0), spec=spec)
    got = {(r, m): v for r, m, v in rows}
    assert got[("ET", "hd95")] == 0.0 and got[("ET", "dice")] == 1.0


def test_fets2021_hd95_equals_medpy_without_spacing() -> None:
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(7)
    ref = np.zeros((20, 18, 12), np.uint8)
    pred = np.zeros_like(ref)
    ref[4:14, 3:12, 2:9] = 4
    pred[5:15, 4:12, 3:10] = 4
    ref[rng.random(ref.shape) < 0.02] = 4
    rows, _ = score_label_maps(
        ref, pred, spacing=(0.7, 1.3, 3.0), spec=segmentation_preset("fets2021")
    )
    got = {(r, m): v for r, m, v in rows}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = binary.hd95(pred == 4, ref == 4)  # no voxelspacing, as CaPTk calls it
    assert got[("ET", "hd95")] == pytest.approx(expected, rel=1e-9)
