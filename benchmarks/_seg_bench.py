"""Shared set-up of the segmentation predictor benchmarks (seg_onnx.py, seg_vs_nnunet.py).

Both take the same options and use either a trained medlens model folder or the
width-8 5-stage U-Net that ``medlens demo`` plans for a 64x80x64 patch at 3 mm.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch


def parse_args(description: str, *, nnunet: bool = False) -> argparse.Namespace:
    """``--model``, ``--shape``, ``--repeats``, ``--threads``, ``--precision``, ``--tta``.

    Sets torch's thread count; adds ``mirrors`` and ``precisions`` tuples.

    With ``nnunet``: also ``--end-to-end IMAGE`` and ``--spacings`` (seg_vs_nnunet.py).
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", default=None, help="medlens model folder (optional)")
    ap.add_argument("--shape", default="96x112x96", help="input volume (preprocessed grid)")
    ap.add_argument(
        "--patch", default="64x80x64", help="patch of the random-weights network (not --model)"
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "bfloat16", "both"),
        help="medlens's network precision (both: float32 and bfloat16 rows)",
    )
    ap.add_argument(
        "--batch-size", type=int, default=1, help="medlens tiles a batch (its predictor's default)"
    )
    ap.add_argument("--tta", default="both", choices=("off", "on", "both"), help="mirroring TTA")
    if nnunet:
        ap.add_argument(
            "--end-to-end",
            default=None,
            metavar="IMAGE",
            help="file-to-file comparison on this case (needs --model)",
        )
        ap.add_argument(
            "--spacings",
            default="",
            help="also resample the case to these isotropic spacings (mm), e.g. 1.0",
        )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.patch = tuple(int(v) for v in args.patch.split("x"))
    args.mirrors = {"off": (False,), "on": (True,), "both": (False, True)}[args.tta]
    args.precisions = (
        ("float32", "bfloat16") if args.precision == "both" else (args.precision,)
    )
    return args


def trained_network(model: str, threads: int) -> tuple[Any, Any, tuple[int, ...]]:
    """The first network of a trained model folder, its NetworkConfig and patch size."""
    from medlens.segmentation._predict import load_predictor

    pred = load_predictor(model, threads=threads)  # medlens's inference network (group norms)
    return pred.networks[0], pred.configuration.network, tuple(pred.configuration.patch_size)


def medlens_network(
    cfg: Any, state: dict[str, Any] | None = None, patch: tuple[int, ...] | None = None
) -> Any:
    """medlens's network for a config as its predictor runs it.

    Eval mode, group norms, oneDNN convolutions and, given the patch, the memory
    layout that one timed forward finds faster (as ``load_predictor`` does).
    """
    from medlens.segmentation import build_network, channels_last_is_faster, inference_network

    net = build_network(cfg)
    if state is not None:
        net.load_state_dict(state)
    net.eval()
    cl = patch is not None and channels_last_is_faster(net, patch, cfg.in_channels)
    print(f"medlens layout: {'channels-last' if cl else 'contiguous'} (measured)")
    return inference_network(net, channels_last=cl)


def demo_network_config(
    patch_size: tuple[int, ...] = (64, 80, 64),
) -> tuple[Any, tuple[int, ...]]:
    """NetworkConfig and patch of the demo's planned U-Net (3 mm, 64x80x64, width 8).

    Another ``patch_size`` plans the same width-8 U-Net for it.
    """
    from medlens.segmentation import NetworkConfig, pool_and_conv_props

    strides, kernels, patch, _ = pool_and_conv_props((3.0, 3.0, 3.0), patch_size)
    cfg = NetworkConfig(
        3,
        1,
        2,
        features=(8, 16, 32, 64, 128),
        strides=tuple(strides[:5]),
        kernel_sizes=tuple(kernels[:5]),
    )
    return cfg, tuple(patch)
