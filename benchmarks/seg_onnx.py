"""torch vs ONNX Runtime for medlens's sliding-window prediction, same network and input.

The network is exported with ``medlens.segmentation._onnx.export_network_onnx``
(the code path of ``medlens seg export-onnx``) and run through the same
``sliding_window_inference`` (tile step 0.5, Gaussian map, 4 tiles per batch)
once as the torch module and once as an ONNX Runtime session, with mirroring
TTA off and on. Prints the times, the ratio and the largest logit difference.

Default network: the width-8 5-stage U-Net with patch 64x80x64 that ``medlens
demo`` plans (random weights); ``--model DIR`` uses a trained model folder.

Run:  .venv/bin/python benchmarks/seg_onnx.py [--model medlens-demo/model] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--shape", default="96x112x96", help="input volume (network grid)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from medlens.segmentation import NetworkConfig, build_network, pool_and_conv_props
    from medlens.segmentation._onnx import OnnxNetwork, export_network_onnx
    from medlens.segmentation._sliding import sliding_window_inference

    if args.model:
        from medlens.segmentation._predict import load_predictor

        pred = load_predictor(args.model, threads=args.threads)
        net = pred.networks[0]
        cfg = pred.configuration.network
        patch = tuple(pred.configuration.patch_size)
        source = f"trained model {args.model}"
    else:
        strides, kernels, patch, _ = pool_and_conv_props((3.0, 3.0, 3.0), (64, 80, 64))
        cfg = NetworkConfig(
            3,
            1,
            2,
            features=(8, 16, 32, 64, 128),
            strides=tuple(strides[:5]),
            kernel_sizes=tuple(kernels[:5]),
        )
        torch.manual_seed(0)
        net = build_network(cfg)
        source = "random weights"
    net.eval()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = export_network_onnx(net, cfg.in_channels, patch, Path(tmp) / "n.onnx")
        t_export = time.perf_counter() - t0
        onnx_net = OnnxNetwork(path, threads=args.threads)
        shape = tuple(int(s) for s in args.shape.split("x"))
        vol = torch.from_numpy(
            np.random.default_rng(0).standard_normal((cfg.in_channels, *shape)).astype(np.float32)
        )
        rows = []
        for mirror in (False, True):
            times: dict[str, list[float]] = {"torch": [], "onnx": []}
            cpu: dict[str, list[float]] = {"torch": [], "onnx": []}
            outs = {}
            for _ in range(args.repeats):
                for name, m in (("torch", net), ("onnx", onnx_net)):
                    t0, c0 = time.perf_counter(), time.process_time()
                    outs[name] = sliding_window_inference(
                        m,
                        vol,
                        patch,
                        n_outputs=cfg.out_channels,
                        step=0.5,
                        batch_size=4,
                        mirror_axes=(0, 1, 2) if mirror else None,
                    )
                    times[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
            diff = float((outs["torch"] - outs["onnx"]).abs().max())
            rows.append(
                (
                    mirror,
                    min(times["torch"]),
                    min(times["onnx"]),
                    min(cpu["torch"]),
                    min(cpu["onnx"]),
                    diff,
                )
            )
    print(
        f"network features {list(cfg.features)}, patch {list(patch)} ({source}); input "
        f"{args.shape}; {args.threads} thread(s); fastest of {args.repeats}; ONNX export "
        f"{t_export:.1f} s (torch {torch.__version__}, dynamo exporter, opset 18)\n"
    )
    print(
        "| mirroring TTA | torch wall / CPU s | ONNX Runtime wall / CPU s | torch / ONNX Runtime "
        "wall / CPU | max abs diff |"
    )
    print("|---|---|---|---|---|")
    for mirror, tt, to, ct, co, diff in rows:
        print(
            f"| {'on (8 passes)' if mirror else 'off'} | {tt:.2f} / {ct:.2f} | {to:.2f} / "
            f"{co:.2f} | {tt / to:.2f} / {ct / co:.2f} | {diff:.1e} |"
        )


if __name__ == "__main__":
    main()
