"""Sliding-window inference: medlens vs MONAI on the same network and weights.

Equality is checked on 240x240x144 (patch 96^3, step 0.5), where both libraries
place their tiles at the same positions; speed is measured on 256x256x160, where
both run 5x5x3 = 75 tiles. Same Gaussian importance map (medlens's, passed to
MONAI as ``roi_weight_map``), no mirroring; medlens one tile a pass (its
predictor's default), MONAI 4 (``--monai-batch-size``). medlens runs the
network as its predictor does (instance norms as the equivalent group norms);
MONAI runs the modules as built. CPU seconds (``time.process_time``) beside wall.

Run:  .venv/bin/python benchmarks/seg_inference_vs_monai.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch

from medlens.segmentation import NetworkConfig
from medlens.segmentation._networks import (
    build_network,
    channels_last_is_faster,
    inference_network,
)
from medlens.segmentation._sliding import gaussian_importance_map, sliding_window_inference


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--features", type=str, default="8,16,32,64,128")
    ap.add_argument(
        "--batch-size", type=int, default=1, help="medlens tiles a pass (its predictor's default)"
    )
    ap.add_argument(
        "--monai-batch-size",
        type=int,
        default=4,
        help="MONAI sw_batch_size (4: faster for it than its default 1 on this network)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from monai.inferers import sliding_window_inference as monai_swi

    feats = tuple(int(f) for f in args.features.split(","))
    torch.manual_seed(0)
    net = build_network(NetworkConfig(3, 1, 3, features=feats)).eval()
    # medlens's network as its predictor runs it (load_predictor -> inference_network,
    # in the layout one timed forward of the patch finds faster); MONAI gets it as built
    patch = (96, 96, 96)
    layout = channels_last_is_faster(net, patch, 1)
    ours_net = inference_network(copy.deepcopy(net), channels_last=layout)
    print(f"medlens layout: {'channels-last' if layout else 'contiguous'} (measured)")
    g = gaussian_importance_map(patch)

    def ours(x: torch.Tensor) -> torch.Tensor:
        return sliding_window_inference(
            ours_net, x[0], patch, n_outputs=3, step=0.5, batch_size=args.batch_size
        )

    def theirs(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return monai_swi(
                x,
                patch,
                args.monai_batch_size,
                net,
                overlap=0.5,
                mode="gaussian",
                roi_weight_map=g,
            )[0]

    x_eq = torch.randn(1, 1, 240, 240, 144)
    a, b = ours(x_eq), theirs(x_eq)
    diff = float((a - b).abs().max())
    x = torch.randn(1, 1, 256, 256, 160)
    times: dict[str, list[float]] = {"medlens": [], "monai": []}
    cpu: dict[str, list[float]] = {"medlens": [], "monai": []}
    for _ in range(args.repeats):
        for name, fn in (("medlens", ours), ("monai", theirs)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(x)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    tm, tn = min(times["medlens"]), min(times["monai"])
    cm, cn = min(cpu["medlens"]), min(cpu["monai"])
    load = os.getloadavg()
    print(
        f"network features {list(feats)}, patch {patch}, threads {args.threads}, load {load[0]:.1f}"
        f"; tiles a pass: medlens {args.batch_size}, MONAI {args.monai_batch_size}"
    )
    print(f"max |medlens - monai| on 240x240x144: {diff:.2e}")
    print(
        "| input | medlens wall / CPU s | MONAI wall / CPU s | MONAI / medlens wall / CPU |"
    )
    print("|---|---|---|---|")
    print(
        f"| 256x256x160 | {tm:.2f} / {cm:.2f} | {tn:.2f} / {cn:.2f} | "
        f"{tn / tm:.2f} / {cn / cm:.2f} |"
    )


if __name__ == "__main__":
    main()
