"""torch vs ONNX Runtime for medlens's sliding-window prediction, same network and input.

The network is exported with ``medlens.segmentation._onnx.export_network_onnx``
(the code path of ``medlens seg export-onnx``, which exports the trained
instance norms) and run through the same
``sliding_window_inference`` (tile step 0.5, Gaussian map, ``--batch-size`` tiles,
default 1 as medlens's predictor)
once as the torch module and once as an ONNX Runtime session, with mirroring
TTA off and on. Prints the times, the ratio and the largest logit difference.

Default network: the width-8 5-stage U-Net with patch 64x80x64 that ``medlens
demo`` plans (random weights); ``--model DIR`` uses a trained model folder.

Run:  .venv/bin/python benchmarks/seg_onnx.py [--model medlens-demo/model] [--threads 1]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _seg_bench import demo_network_config, medlens_network, parse_args, trained_network


def main() -> None:
    args = parse_args(__doc__.split("\n")[0])

    from medlens.segmentation import build_network
    from medlens.segmentation._onnx import OnnxNetwork, export_network_onnx
    from medlens.segmentation._sliding import sliding_window_inference

    if args.model:
        net, cfg, patch = trained_network(args.model, args.threads)
        source = f"trained model {args.model}"
    else:
        cfg, patch = demo_network_config()
        torch.manual_seed(0)
        net = build_network(cfg)
        net = medlens_network(cfg, net.state_dict())  # as the predictor runs it
        source = "random weights"
    net.eval()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trained_modules = build_network(cfg)  # what `seg export-onnx` exports: instance norms
        trained_modules.load_state_dict(net.state_dict())
        path = export_network_onnx(trained_modules, cfg.in_channels, patch, Path(tmp) / "n.onnx")
        t_export = time.perf_counter() - t0
        onnx_net = OnnxNetwork(path, threads=args.threads)
        shape = tuple(int(s) for s in args.shape.split("x"))
        vol = torch.from_numpy(
            np.random.default_rng(0).standard_normal((cfg.in_channels, *shape)).astype(np.float32)
        )
        rows = []
        for mirror in args.mirrors:
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
                        batch_size=args.batch_size,
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
