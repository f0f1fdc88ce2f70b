"""Training throughput of a plan's configuration and peak memory of predicting a big CT.

1. Training: iterations/s and samples/s of ``medlens.segmentation.train`` on a
   synthetic preprocessed case for the configuration given (default: the plan
   that ``medlens demo`` writes, ``--plans medlens-demo/plans.json``; without it a
   width-8 3D U-Net with patch 96x96x80, batch 2).
2. Prediction: peak resident memory (ru_maxrss of a fresh process) and wall time
   of ``Predictor.predict`` on 512x512x400 and 512x512x800 int16 CT phantoms with a randomly
   initialised width-8 U-Net planned at 2x2x3 mm (the network size does not
   change the memory bound; the input, the preprocessed copy and one output
   slab do).

Run:  .venv/bin/python benchmarks/seg_train_predict.py [--plans PATH] [--iterations 20]
      [--skip-train] [--slices 400,800]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

_PREDICT = r"""
import resource, sys, time, json
import numpy as np, torch
from medlens.image import Image
from medlens.segmentation import Plans
from medlens.segmentation._predict import Predictor
from medlens.segmentation._networks import build_network
torch.set_num_threads(int(sys.argv[2]))
plans = Plans.load(sys.argv[1])
cfg = plans.configurations["bench"]
torch.manual_seed(0)
net = build_network(cfg.network).eval()
shape = (512, 512, int(sys.argv[3]))
rng = np.random.default_rng(0)
arr = np.full(shape, -1000, np.int16)
ii, jj = np.ogrid[:512, :512]
body = ((ii - 256) / 220.0) ** 2 + ((jj - 256) / 170.0) ** 2 <= 1
arr[body] = 40
for z in range(0, shape[2], 16):  # noise slab by slab: no big temporaries before the measurement
    arr[:, :, z : z + 16] += rng.integers(-20, 20, arr[:, :, z : z + 16].shape, dtype=np.int16)
img = Image(arr, np.diag([-0.8, -0.8, 1.0, 1.0]))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pred = Predictor(plans, cfg, [net], ["bench"], {})
t0 = time.perf_counter()
lab, _ = pred.predict(img, mirror=False, batch_size=2)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "peak_rss_mb": peak / 1024, "before_predict_rss_mb": base / 1024,
                  "input_mb": arr.nbytes / 2**20, "output_shape": list(lab.spatial_shape)}))
"""


def _plans(tmp: Path, patch: tuple[int, ...], spacing: tuple[float, ...], ct: bool) -> Path:
    from medlens.segmentation import NetworkConfig, plan_experiment, pool_and_conv_props
    from medlens.segmentation._fingerprint import (
        CaseFingerprint,
        DatasetFingerprint,
        IntensityStats,
    )

    st = IntensityStats(40.0, 20.0, 40.0, -1000.0, 200.0, -100.0, 150.0)
    fp = DatasetFingerprint(
        "bench",
        ("CT" if ct else "MRI",),
        {"background": 0, "a": 1, "b": 2},
        (CaseFingerprint("c", spacing, (200, 200, 150), (200, 200, 150), {}, ()),),
        (st,),
    )
    plans = plan_experiment(fp)
    strides, kernels, patch, _ = pool_and_conv_props(spacing, patch)
    n = min(5, len(strides))
    net = NetworkConfig(
        3,
        1,
        3,
        features=tuple(min(320, 8 * 2**i) for i in range(n)),
        strides=tuple(strides[:n]),
        kernel_sizes=tuple(kernels[:n]),
    )
    cfg = replace(
        plans.configurations["3d_fullres"],
        name="bench",
        spacing=spacing,
        patch_size=patch,
        network=net,
        batch_size=2,
        iterations=10**6,
        iterations_per_epoch=10**6,
    )
    p = tmp / "plans.json"
    plans.with_configuration(cfg).save(p)
    return p


def train_throughput(plans_path: Path | None, iterations: int, threads: int) -> dict[str, float]:
    from medlens.segmentation import Plans
    from medlens.segmentation._train import TrainConfig, train

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if plans_path is None:
            plans_path = _plans(tmp, (96, 96, 80), (1.5, 1.5, 1.5), ct=False)
            name = "bench"
        else:
            name = Plans.load(plans_path).default_configuration
        plans = Plans.load(plans_path)
        cfg = plans.configurations[name]
        cfg = replace(cfg, iterations=iterations, iterations_per_epoch=iterations)
        plans = plans.with_configuration(cfg)
        pre = tmp / "pre"
        pre.mkdir()
        shape = tuple(max(2 * p, 64) for p in cfg.patch_size)
        rng = np.random.default_rng(0)
        np.save(pre / "c.npy", rng.normal(size=(1, *shape)).astype(np.float32))
        seg = np.zeros((1, *shape), np.int16)
        seg[(0, *(slice(s // 4, 3 * s // 4) for s in shape))] = 1
        np.save(pre / "c_seg.npy", seg)
        names = list(plans.foreground)
        np.savez(
            pre / "c_fg.npz", **{n: np.argwhere(seg[0] == 1)[:1000].astype(np.int32) for n in names}
        )
        (pre / "c.json").write_text("{}")
        t0 = time.perf_counter()
        res = train(
            pre,
            plans,
            tmp / "m",
            configuration=name,
            config=TrainConfig(threads=threads, validation_batches=1),
            progress=False,
        )
        wall = time.perf_counter() - t0
        return {
            "iterations": res.iterations,
            "seconds": wall,
            "it_per_s": res.iterations / wall,
            "samples_per_s": res.iterations * cfg.batch_size / wall,
            "patch": list(cfg.patch_size),
            "features": list(cfg.network.features),
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plans", type=Path, default=None)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument(
        "--slices", default="400,800", help="comma-separated CT slice counts (512x512xN)"
    )
    args = ap.parse_args()
    tr = None if args.skip_train else train_throughput(args.plans, args.iterations, args.threads)
    results = []
    with tempfile.TemporaryDirectory() as d:
        p = _plans(Path(d), (128, 128, 64), (2.0, 2.0, 3.0), ct=True)
        for n in (int(x) for x in args.slices.split(",")):
            out = subprocess.run(
                [sys.executable, "-c", _PREDICT, str(p), str(args.threads), str(n)],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append((n, json.loads(out.stdout.strip().splitlines()[-1])))
    print(f"threads {args.threads}, load {os.getloadavg()[0]:.1f}")
    if tr is not None:
        print("| training (patch, features) | iterations | s | it/s | samples/s |")
        print("|---|---|---|---|---|")
        print(
            f"| {tr['patch']}, {tr['features']} | {tr['iterations']} | {tr['seconds']:.1f} | "
            f"{tr['it_per_s']:.3f} | {tr['samples_per_s']:.3f} |"
        )
    print(
        "| predict 512x512xN int16 CT (2x2x3 mm plan), width-8 U-Net, no TTA | s | peak RSS MB "
        "| RSS before predict MB | input MB |"
    )
    print("|---|---|---|---|---|")
    for n, pr in results:
        print(
            f"| 512x512x{n} | {pr['seconds']:.1f} | {pr['peak_rss_mb']:.0f} | "
            f"{pr['before_predict_rss_mb']:.0f} | {pr['input_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
