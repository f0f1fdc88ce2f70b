"""medlens's sliding-window predictor vs nnU-Net v2's, same network and weights, on CPU.

One process runs both on the same preprocessed volume:

* nnU-Net: ``nnUNetPredictor(tile_step_size=0.5, use_gaussian=True,
  use_mirroring=..., perform_everything_on_device=False, device=cpu)`` with a
  ``PlainConvUNet`` (dynamic_network_architectures) set up by
  ``manual_initialization``, then ``predict_sliding_window_return_logits``;
* medlens: ``medlens.segmentation.sliding_window_inference`` with medlens's
  ``UNet`` built from the same topology, its weights copied from the
  ``PlainConvUNet`` key by key (the two lay out the same convolutions, instance
  norms, transposed convolutions and 1x1 heads).

Same tile step (0.5), Gaussian importance map (sigma = patch / 8), and mirroring
TTA over all three axes on or off. The networks are first checked to give the
same logits on one tile; the two predictors' logits are then compared. nnU-Net
accumulates tiles in float16 with its Gaussian scaled by 10, so where the
Gaussian is smallest (the image border) its logits are off by up to ~0.5; the
table gives the maximum and the 99th percentile of the difference and the share
of voxels whose argmax agrees.

nnunetv2 is not a medlens dependency. Install it in a separate virtual
environment beside the same torch (its torchvision does not import with torch
2.13, but its predictor does not need it)::

    python3.11 -m venv /tmp/nnv
    /tmp/nnv/bin/pip install torch==2.13.0
    /tmp/nnv/bin/pip install -c <(echo torch==2.13.0) nnunetv2
    PYTHONPATH=src /tmp/nnv/bin/python benchmarks/seg_vs_nnunet.py [--model medlens-demo/model]

With ``--model`` the network topology and patch come from a trained medlens
model folder (``medlens demo`` writes one) and its weights are used for both;
without it, the width-8 5-stage U-Net with patch 64x80x64 that ``medlens demo``
plans is built with random weights.
"""

from __future__ import annotations

import re
import time

import numpy as np
import torch
from _seg_bench import demo_network_config, parse_args, trained_network


def _medlens_key(k: str) -> str:
    k = k.replace("all_modules.0", "conv").replace("all_modules.1", "norm")
    if k.startswith("decoder.encoder."):
        k = k[len("decoder.") :]
    m = re.match(r"encoder\.stages\.(\d+)\.0\.convs\.(\d+)\.(conv|norm)\.(\w+)$", k)
    if m:
        return f"encoder.{m[1]}.{m[2]}.{0 if m[3] == 'conv' else 1}.{m[4]}"
    m = re.match(r"decoder\.stages\.(\d+)\.convs\.(\d+)\.(conv|norm)\.(\w+)$", k)
    if m:
        return f"decoder.{m[1]}.{m[2]}.{0 if m[3] == 'conv' else 1}.{m[4]}"
    m = re.match(r"decoder\.transpconvs\.(\d+)\.(\w+)$", k)
    if m:
        return f"ups.{m[1]}.{m[2]}"
    m = re.match(r"decoder\.seg_layers\.(\d+)\.(\w+)$", k)
    if m:
        return f"heads.{m[1]}.{m[2]}"
    raise KeyError(k)


def _plain_conv_unet(cfg):  # type: ignore[no-untyped-def]
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    n = len(cfg.features)
    return PlainConvUNet(
        input_channels=cfg.in_channels,
        n_stages=n,
        features_per_stage=list(cfg.features),
        conv_op=torch.nn.Conv3d,
        kernel_sizes=[list(k) for k in cfg.kernel_sizes],
        strides=[list(s) for s in cfg.strides],
        n_conv_per_stage=[cfg.convs_per_stage] * n,
        num_classes=cfg.out_channels,
        n_conv_per_stage_decoder=[cfg.convs_per_stage] * (n - 1),
        conv_bias=True,
        norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=torch.nn.LeakyReLU,
        nonlin_kwargs={"inplace": True, "negative_slope": 0.01},
        deep_supervision=False,
    )


def _nnunet_predictor(net, patch, n_classes, mirror):  # type: ignore[no-untyped-def]
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    p = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=mirror,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        verbose=False,
        allow_tqdm=False,
    )

    from types import SimpleNamespace

    p.network = net
    # the two attributes predict_sliding_window_return_logits reads
    p.configuration_manager = SimpleNamespace(patch_size=list(patch))
    p.label_manager = SimpleNamespace(num_segmentation_heads=n_classes)
    p.allowed_mirroring_axes = (0, 1, 2)
    return p


def main() -> None:
    args = parse_args(__doc__.split("\n")[0])

    from medlens.segmentation import build_network
    from medlens.segmentation._sliding import sliding_window_inference

    if args.model:
        ours, cfg, patch = trained_network(args.model, args.threads)
        theirs = _plain_conv_unet(cfg)
        theirs.load_state_dict({k: ours.state_dict()[_medlens_key(k)] for k in theirs.state_dict()})
        source = f"trained model {args.model}"
    else:
        cfg, patch = demo_network_config()
        torch.manual_seed(0)
        theirs = _plain_conv_unet(cfg)
        ours = build_network(cfg)
        ours.load_state_dict({_medlens_key(k): v for k, v in theirs.state_dict().items()})
        source = "random weights"
    ours.eval()
    theirs.eval()
    x1 = torch.randn((1, cfg.in_channels, *patch), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours(x1), theirs(x1)
    assert isinstance(a, torch.Tensor)
    net_diff = float((a - b).abs().max())
    print(
        f"network: features {list(cfg.features)}, patch {list(patch)}, {source}; one-tile "
        f"max |medlens - PlainConvUNet| = {net_diff:.2e}"
    )
    shape = tuple(int(s) for s in args.shape.split("x"))
    rng = np.random.default_rng(0)
    vol = torch.from_numpy(rng.standard_normal((cfg.in_channels, *shape)).astype(np.float32))
    k = cfg.out_channels
    rows = []
    for mirror in (False, True):
        nn_pred = _nnunet_predictor(theirs, patch, k, mirror)
        t_nn, t_ml, c_nn, c_ml = [], [], [], []
        out_nn = out_ml = None
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            out_nn = nn_pred.predict_sliding_window_return_logits(vol)
            t_nn.append(time.perf_counter() - t0)
            c_nn.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            out_ml = sliding_window_inference(
                ours,
                vol,
                patch,
                n_outputs=k,
                step=0.5,
                batch_size=4,
                mirror_axes=(0, 1, 2) if mirror else None,
            )
            t_ml.append(time.perf_counter() - t0)
            c_ml.append(time.process_time() - c0)
        assert out_nn is not None and out_ml is not None
        o_nn = torch.as_tensor(out_nn).float()
        ad = (o_nn - out_ml).abs()
        diff = float(ad.max())
        p99 = float(torch.quantile(ad.flatten()[:: max(1, ad.numel() // 2_000_000)], 0.99))
        scale = float(out_ml.abs().max())
        agree = float((o_nn.argmax(0) == out_ml.argmax(0)).float().mean())
        rows.append(
            (mirror, min(t_ml), min(t_nn), min(c_ml), min(c_nn), diff, p99, scale, agree)
        )
    print(
        f"\ninput {args.shape} (preprocessed grid), tile step 0.5, Gaussian, "
        f"{args.threads} thread(s), fastest of {args.repeats}\n"
    )
    print(
        "| mirroring TTA | medlens wall / CPU s | nnU-Net wall / CPU s | nnU-Net / medlens wall "
        "/ CPU | |logit diff| max / 99th "
        "percentile (max |logit|) | argmax agreement |"
    )
    print("|---|---|---|---|---|---|")
    for mirror, tm, tn, cm, cn, diff, p99, scale, agree in rows:
        print(
            f"| {'on (8 passes)' if mirror else 'off'} | {tm:.2f} / {cm:.2f} | {tn:.2f} / "
            f"{cn:.2f} | {tn / tm:.2f} / {cn / cm:.2f} | "
            f"{diff:.2e} / {p99:.2e} ({scale:.1f}) | {agree:.5f} |"
        )


if __name__ == "__main__":
    main()
