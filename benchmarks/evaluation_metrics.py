"""Image-similarity and classification metrics: medlens vs scikit-image / scikit-learn.

Run:  .venv/bin/python benchmarks/evaluation_metrics.py [--quick]

Each row times the same definition computed by medlens and by the peer in one
process, checks that the values agree, and prints the ratio peer / medlens.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from skimage import metrics as skm
    from sklearn.metrics import average_precision_score, roc_auc_score

    from medlens import metrics as mm

    rng = np.random.default_rng(0)
    repeat = 2 if args.quick else 3
    rows = []

    # fastMRI knee volume: 36 slices of 320x320 float32
    n_sl = 8 if args.quick else 36
    gt = rng.random((n_sl, 320, 320)).astype(np.float32)
    pred = (gt + 0.05 * rng.standard_normal(gt.shape)).astype(np.float32)
    t_ml, v_ml = _best(lambda: mm.fastmri_image_metrics(gt, pred).ssim, repeat)
    def peer_ssim() -> float:
        dr = gt.max()
        return float(
            np.mean(
                [
                    skm.structural_similarity(g, p, data_range=dr)
                    for g, p in zip(gt, pred, strict=True)
                ]
            )
        )

    t_pe, v_pe = _best(peer_ssim, repeat)
    rows.append((f"fastMRI SSIM+PSNR+NMSE, {n_sl}x320x320", "skimage SSIM only", t_pe, t_ml,
                 abs(v_ml - v_pe)))  # fmt: skip

    # SynthRAD-like CT volume, 3D SSIM
    shape = (96, 160, 160) if args.quick else (160, 256, 256)
    ct = (1000 * rng.random(shape) - 500).astype(np.float32)
    sct = (ct + 30 * rng.standard_normal(shape)).astype(np.float32)
    t_ml, v_ml = _best(lambda: mm.structural_similarity(ct, sct, data_range=4024.0), repeat)
    t_pe, v_pe = _best(lambda: skm.structural_similarity(ct, sct, data_range=4024.0), repeat)
    rows.append((f"3D SSIM {shape}", "skimage", t_pe, t_ml, abs(v_ml - v_pe)))

    # bootstrap AUROC / AP: 1,000 stratified resamples of 2,000 cases
    n = 2000
    y = rng.random(n) < 0.3
    s = np.round(y + rng.normal(size=n), 2)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    n_boot = 200 if args.quick else 1000

    def peer_boot(fn: Callable[..., float]) -> float:
        r = np.random.default_rng(1)
        vals = []
        for _ in range(n_boot):
            idx = np.concatenate([pos[r.integers(0, pos.size, pos.size)],
                                  neg[r.integers(0, neg.size, neg.size)]])  # fmt: skip
            vals.append(fn(y[idx], s[idx]))
        return float(np.quantile(vals, 0.025))

    for name, ours, peer in (("AUROC", mm.auroc, roc_auc_score),
                             ("AP", mm.auprc, average_precision_score)):  # fmt: skip
        t_ml, ci = _best(lambda o=ours: mm.bootstrap_ci(y, s, o, n_resamples=n_boot, seed=1), 1)
        t_pe, lo = _best(lambda p=peer: peer_boot(p), 1)
        rows.append((f"bootstrap {name}, {n_boot} x {n} cases", "sklearn loop", t_pe, t_ml,
                     abs(ci.lower - lo)))  # fmt: skip

    print(f"{'task':<44} {'peer':<18} {'peer s':>8} {'medlens s':>10} {'ratio':>7} {'|diff|':>9}")
    for task, peer, tp, tm, diff in rows:
        print(f"{task:<44} {peer:<18} {tp:8.3f} {tm:10.3f} {tp / tm:7.1f} {diff:9.2e}")


if __name__ == "__main__":
    main()
