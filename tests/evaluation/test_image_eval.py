"""Image presets end to end: fastMRI .h5, SynthRAD2023 NIfTI + mask, CMRxRecon .mat (HDF5)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from medlens import metrics as mm
from medlens.errors import MedlensError
from medlens.evaluation import evaluate_images, read_metrics_csv


def _volume(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    grid = np.indices(shape[-2:]).astype(float)
    c = np.array(shape[-2:])[:, None, None] / 2
    disk = (((grid - c) ** 2).sum(0) < (min(shape[-2:]) / 3) ** 2).astype(float)
    return (np.broadcast_to(disk, shape) + 0.05 * rng.random(shape)).astype(np.float32)


def test_fastmri_h5(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truth = {}
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    for i in range(3):
        gt = _volume(rng, (4, 40, 32)) * 1e-4
        pred = (gt + 5e-6 * rng.standard_normal(gt.shape)).astype(np.float32)
        with h5py.File(tmp_path / "ref" / f"file{i}.h5", "w") as f:
            f["reconstruction_rss"] = gt
            f["kspace"] = np.zeros((1, 2, 2), np.complex64)
        with h5py.File(tmp_path / "pred" / f"file{i}.h5", "w") as f:
            f["reconstruction"] = pred
        truth[f"file{i}"] = mm.fastmri_image_metrics(gt, pred)
    evaluate_images(tmp_path / "ref", tmp_path / "pred", tmp_path / "out", preset="fastmri",
                    progress=False)  # fmt: skip
    rows = read_metrics_csv(tmp_path / "out" / "metrics.csv")
    assert {r.metric for r in rows} == {"nmse", "psnr", "ssim"}
    for r in rows:
        assert r.region == "image"
        assert r.value == pytest.approx(getattr(truth[r.case], r.metric), rel=1e-12)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    mean_ssim = np.mean([t.ssim for t in truth.values()])
    assert summary["summary"]["image"]["ssim"]["mean"] == pytest.approx(mean_ssim)


def test_synthrad2023_nifti_with_mask(tmp_path: Path, write: Callable[..., Any]) -> None:
    rng = np.random.default_rng(1)
    shape = (20, 18, 16)
    body = np.zeros(shape, np.uint8)
    body[3:17, 3:15, 2:14] = 1
    ct = np.where(body > 0, 40 + 200 * rng.standard_normal(shape), -1000).astype(np.float32)
    sct = (ct + 50 * rng.standard_normal(shape)).astype(np.float32)
    write(tmp_path / "ct" / "1PA001.nii.gz", ct)
    write(tmp_path / "sct" / "1PA001.nii.gz", sct)
    write(tmp_path / "mask" / "1PA001.nii.gz", body)
    evaluate_images(tmp_path / "ct", tmp_path / "sct", tmp_path / "out", preset="synthrad2023",
                    mask_dir=tmp_path / "mask", progress=False, report=False)  # fmt: skip
    got = {r.metric: r.value for r in read_metrics_csv(tmp_path / "out" / "metrics.csv")}
    expected = mm.synthrad2023_image_metrics(ct, sct, mask=body)
    assert got["mae"] == pytest.approx(expected.mae, rel=1e-9)
    assert got["psnr"] == pytest.approx(expected.psnr, rel=1e-9)
    assert got["ssim"] == pytest.approx(expected.ssim, rel=1e-9)
    with pytest.raises(MedlensError, match="mask"):
        evaluate_images(tmp_path / "ct", tmp_path / "sct", tmp_path / "o2", preset="synthrad2023")


def test_cmrxrecon_mat_and_missing(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    (tmp_path / "gt").mkdir()
    (tmp_path / "rec").mkdir()
    # MATLAB (sx, sy, sz, t) = (36, 30, 2, 3) is stored by HDF5 as (t, sz, sy, sx)
    gt = np.abs(rng.standard_normal((3, 2, 30, 36)) + 2).astype(np.float32)
    rec = np.abs(gt + 0.2 * rng.standard_normal(gt.shape)).astype(np.float32)
    for name in ("P001", "P002"):
        with h5py.File(tmp_path / "gt" / f"{name}.mat", "w") as f:
            f["img4ranking"] = gt
    with h5py.File(tmp_path / "rec" / "P001.mat", "w") as f:
        f["img4ranking"] = rec
    evaluate_images(tmp_path / "gt", tmp_path / "rec", tmp_path / "out", preset="cmrxrecon",
                    crop=False, progress=False, report=False)  # fmt: skip
    rows = read_metrics_csv(tmp_path / "out" / "metrics.csv")
    got = {(r.case, r.metric): r.value for r in rows}
    ref = mm.cmrxrecon_image_metrics(np.swapaxes(gt, -1, -2), np.swapaxes(rec, -1, -2))
    assert got[("P001", "psnr")] == pytest.approx(ref.psnr, rel=1e-12)
    assert got[("P001", "ssim")] == pytest.approx(ref.ssim, rel=1e-12)
    assert math.isnan(got[("P002", "psnr")])  # missing: NaN, flagged
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["problems"][0]["status"] == "missing_prediction"
    assert summary["summary"]["image"]["psnr"]["n_nan"] == 1
