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
    /tmp/nnv/bin/pip install numba  # medlens's optional accelerator (fused channels-last norm)
    PYTHONPATH=src /tmp/nnv/bin/python benchmarks/seg_vs_nnunet.py [--model medlens-demo/model]

With ``--model`` the network topology and patch come from a trained medlens
model folder (``medlens demo`` writes one) and its weights are used for both;
without it, the width-8 5-stage U-Net with patch 64x80x64 that ``medlens demo``
plans is built with random weights. medlens runs the network as its predictor
does (``inference_network``: group norms, oneDNN convolutions; one tile-mirroring
pair a batch, ``--batch-size``); ``--precision bfloat16|both`` adds medlens's
bfloat16 autocast (nnU-Net stays float32, its CPU default) with the argmax
agreement to medlens float32.

``--end-to-end IMAGE --model DIR`` compares whole cases from a NIfTI file to a
NIfTI label map: an nnU-Net v2 model folder equivalent to the medlens model is
written (same target spacing, patch, z-score normalisation, PlainConvUNet and
weights; see ``_nnunet_model_folder``) and nnU-Net runs
``nnUNetPredictor.predict_from_files_sequential`` (its preprocessing, sliding
window, resampling of the probabilities back and export, in this process),
medlens ``read_image`` -> ``Predictor.predict`` -> ``write_image``. The case is
written in RAS with a diagonal affine as acquired, resampled to each
``--spacings`` value and resampled to the plan's spacing. CPU time counts this
process and its children (``getrusage``).

    PYTHONPATH=src /tmp/nnv/bin/python benchmarks/seg_vs_nnunet.py --model DIR \
        --end-to-end IMAGE --spacings 1.0 --precision both
"""

from __future__ import annotations

import re
import time

import numpy as np
import torch
from _seg_bench import demo_network_config, medlens_network, parse_args, trained_network


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


def _nnunet_cpu_predictor(mirror):  # type: ignore[no-untyped-def]
    """nnUNetPredictor on its CPU path: tile step 0.5, Gaussian, quiet."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    return nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=mirror,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        verbose=False,
        verbose_preprocessing=False,
        allow_tqdm=False,
    )


def _nnunet_predictor(net, patch, n_classes, mirror):  # type: ignore[no-untyped-def]
    p = _nnunet_cpu_predictor(mirror)

    from types import SimpleNamespace

    p.network = net
    # the two attributes predict_sliding_window_return_logits reads
    p.configuration_manager = SimpleNamespace(patch_size=list(patch))
    p.label_manager = SimpleNamespace(num_segmentation_heads=n_classes)
    p.allowed_mirroring_axes = (0, 1, 2)
    return p


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], nnunet=True)
    if args.end_to_end:
        end_to_end(args)
        return

    from medlens.segmentation._sliding import sliding_window_inference

    if args.model:
        ours, cfg, patch = trained_network(args.model, args.threads)
        theirs = _plain_conv_unet(cfg)
        theirs.load_state_dict({k: ours.state_dict()[_medlens_key(k)] for k in theirs.state_dict()})
        source = f"trained model {args.model}"
    else:
        cfg, patch = demo_network_config(args.patch)
        torch.manual_seed(0)
        theirs = _plain_conv_unet(cfg)
        state = {_medlens_key(k): v for k, v in theirs.state_dict().items()}
        ours = medlens_network(cfg, state, patch)
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
    for mirror in args.mirrors:
        nn_pred = _nnunet_predictor(theirs, patch, k, mirror)
        t_nn, c_nn = [], []
        t_ml: dict[str, list[float]] = {p: [] for p in args.precisions}
        c_ml: dict[str, list[float]] = {p: [] for p in args.precisions}
        out_ml: dict[str, torch.Tensor] = {}
        out_nn = None
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            out_nn = nn_pred.predict_sliding_window_return_logits(vol)
            t_nn.append(time.perf_counter() - t0)
            c_nn.append(time.process_time() - c0)
            for prec in args.precisions:
                t0, c0 = time.perf_counter(), time.process_time()
                out_ml[prec] = sliding_window_inference(
                    ours,
                    vol,
                    patch,
                    n_outputs=k,
                    step=0.5,
                    batch_size=args.batch_size,
                    mirror_axes=(0, 1, 2) if mirror else None,
                    precision=prec,
                )
                t_ml[prec].append(time.perf_counter() - t0)
                c_ml[prec].append(time.process_time() - c0)
        assert out_nn is not None
        o_nn = torch.as_tensor(out_nn).float()
        for prec in args.precisions:
            ad = (o_nn - out_ml[prec]).abs()
            diff = float(ad.max())
            p99 = float(torch.quantile(ad.flatten()[:: max(1, ad.numel() // 2_000_000)], 0.99))
            scale = float(out_ml[prec].abs().max())
            agree = float((o_nn.argmax(0) == out_ml[prec].argmax(0)).float().mean())
            vs32 = (
                float((out_ml[prec].argmax(0) == out_ml["float32"].argmax(0)).float().mean())
                if "float32" in out_ml
                else float("nan")
            )
            rows.append(
                (
                    mirror,
                    prec,
                    min(t_ml[prec]),
                    min(t_nn),
                    min(c_ml[prec]),
                    min(c_nn),
                    diff,
                    p99,
                    scale,
                    agree,
                    vs32,
                )
            )
    print(
        f"\ninput {args.shape} (preprocessed grid), tile step 0.5, Gaussian, "
        f"{args.threads} thread(s), fastest of {args.repeats}; nnU-Net float32\n"
    )
    print(
        "| mirroring TTA | medlens precision | medlens wall / CPU s | nnU-Net wall / CPU s | "
        "nnU-Net / medlens wall / CPU | |logit diff| max / 99th percentile (max |logit|) | "
        "argmax agreement with nnU-Net | argmax agreement with medlens float32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mirror, prec, tm, tn, cm, cn, diff, p99, scale, agree, vs32 in rows:
        print(
            f"| {'on (8 passes)' if mirror else 'off'} | {prec} | {tm:.2f} / {cm:.2f} | "
            f"{tn:.2f} / {cn:.2f} | {tn / tm:.2f} / {cn / cm:.2f} | "
            f"{diff:.2e} / {p99:.2e} ({scale:.1f}) | {agree:.5f} | {vs32:.5f} |"
        )


# ---------------------------------------------------------------------------
# End to end: a NIfTI file in, a NIfTI label map out, on both sides.


def _nnunet_model_folder(folder, plans, cfg_name, state_dict_nn):  # type: ignore[no-untyped-def]
    """Write an nnU-Net v2 trained-model folder equivalent to a medlens model.

    Same target spacing, patch, normalisation (per-image z-score, no mask),
    3rd-order spline resampling of the image and 1st-order resampling of the
    probabilities back (nnU-Net's defaults, ``order_z=0`` for anisotropic
    spacing as medlens), the same PlainConvUNet and weights. medlens works in RAS
    (i, j, k); SimpleITK gives nnU-Net (k, j, i), so ``transpose_forward`` is
    (2, 1, 0) and the test files have a diagonal (RAS) affine: both then see the
    same voxels in the same axis order.
    """
    import json
    from pathlib import Path

    c = plans.configurations[cfg_name]
    n = c.network
    fg = plans.intensity[0]
    root = Path(folder)
    (root / "fold_all").mkdir(parents=True, exist_ok=True)
    labels = {"background": 0, **{k: v for k, v in plans.labels.items() if k != "background"}}
    dataset = {
        "channel_names": {str(i): ch for i, ch in enumerate(plans.channel_names)},
        "labels": labels,
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    zscore = {"zscore": "ZScoreNormalization", "CT": "CTNormalization"}
    k = len(n.features)
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": k,
            "features_per_stage": list(n.features),
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [list(x) for x in n.kernel_sizes],
            "strides": [list(x) for x in n.strides],
            "n_conv_per_stage": [n.convs_per_stage] * k,
            "n_conv_per_stage_decoder": [n.convs_per_stage] * (k - 1),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    resample = "resample_data_or_seg_to_shape"
    conf = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": c.batch_size,
        "patch_size": list(c.patch_size),
        "median_image_size_in_voxels": list(c.median_shape),
        "spacing": list(c.spacing),
        "normalization_schemes": [zscore[s] for s in c.normalization],
        "use_mask_for_norm": list(c.use_mask_for_norm),
        "resampling_fn_data": resample,
        "resampling_fn_seg": resample,
        "resampling_fn_data_kwargs": {
            "is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None
        },
        "resampling_fn_seg_kwargs": {
            "is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None
        },
        "resampling_fn_probabilities": resample,
        "resampling_fn_probabilities_kwargs": {
            "is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None
        },
        "architecture": arch,
        "batch_dice": False,
    }
    nn_plans = {
        "dataset_name": "Dataset901_Bench",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": list(c.spacing),
        "original_median_shape_after_transp": list(c.median_shape),
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [2, 1, 0],
        "transpose_backward": [2, 1, 0],
        "configurations": {"3d_fullres": conf},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "mean": fg["mean"], "std": fg["std"], "median": fg["median"],
                "min": fg["min"], "max": fg["max"],
                "percentile_00_5": fg["percentile_00_5"], "percentile_99_5": fg["percentile_99_5"],
            }
        },
    }
    (root / "dataset.json").write_text(json.dumps(dataset, indent=1))
    (root / "plans.json").write_text(json.dumps(nn_plans, indent=1))
    torch.save(
        {
            "network_weights": state_dict_nn,
            "init_args": {"configuration": "3d_fullres"},
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2),
        },
        root / "fold_all" / "checkpoint_final.pth",
    )


def _test_cases(image_path, out_dir, plan_spacing, extra_spacings):  # type: ignore[no-untyped-def]
    """RAS, diagonal-affine NIfTI copies of a case: as acquired, resampled to each spacing.

    Resampled copies are cubic B-spline, rounded and clipped at 0 to int16 (as a
    scanner would store them), so the zero background stays zero for the crop.
    """
    from pathlib import Path

    from medlens.image import Image, reorient, resample
    from medlens.io import read_image, write_image

    img = reorient(read_image(image_path), "RAS")
    diag = np.diag([*img.spacing, 1.0])
    diag[:3, 3] = img.origin
    ras = Image(np.asarray(img.array), diag)
    cases = {"as acquired": ras}
    for sp in extra_spacings:
        cases[f"{sp:g} mm"] = resample(ras, spacing=(sp,) * 3, interpolation="bspline")
    cases["plan spacing"] = resample(ras, spacing=tuple(plan_spacing), interpolation="bspline")
    paths = {}
    for i, (name, im) in enumerate(cases.items()):
        p = Path(out_dir) / f"case{i}_0000.nii.gz"
        arr = np.clip(np.rint(np.asarray(im.array, dtype=np.float64)), 0, 32767)
        write_image(im.with_array(arr.astype(np.int16)), p)
        paths[name] = (p, im.spatial_shape, im.spacing)
    return paths


def end_to_end(args) -> None:  # type: ignore[no-untyped-def]
    """File-to-file comparison (``--end-to-end IMAGE``)."""
    import resource
    import tempfile
    from pathlib import Path

    from medlens.io import read_image, write_image
    from medlens.segmentation._predict import load_predictor

    if not args.model:
        raise SystemExit("--end-to-end needs --model (a trained medlens model folder)")
    ours = load_predictor(args.model, threads=args.threads)
    cfg = ours.configuration
    theirs = _plain_conv_unet(cfg.network)
    sd = ours.networks[0].state_dict()
    nn_sd = {k: sd[_medlens_key(k)].clone() for k in theirs.state_dict()}
    extra = [float(s) for s in args.spacings.split(",")] if args.spacings else []

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        _nnunet_model_folder(t / "nnunet_model", ours.plans, cfg.name, nn_sd)
        (t / "in").mkdir()
        (t / "out").mkdir()
        cases = _test_cases(args.end_to_end, t / "in", cfg.spacing, extra)
        for mirror in args.mirrors:
            nnp = _nnunet_cpu_predictor(mirror)
            nnp.initialize_from_trained_model_folder(str(t / "nnunet_model"), ("all",))
            for name, (path, shape, spacing) in cases.items():
                t_nn, c_nn = [], []
                t_ml: dict[str, list[float]] = {p: [] for p in args.precisions}
                c_ml: dict[str, list[float]] = {p: [] for p in args.precisions}
                out_nn = t / "out" / f"nn_{path.name[:-12]}"
                for _ in range(args.repeats):
                    t0, c0 = time.perf_counter(), cpu()
                    nnp.predict_from_files_sequential([[str(path)]], [str(out_nn)], False, True)
                    t_nn.append(time.perf_counter() - t0)
                    c_nn.append(cpu() - c0)
                    for prec in args.precisions:
                        t0, c0 = time.perf_counter(), cpu()
                        img = read_image(path)
                        lab, _ = ours.predict(img, step=0.5, mirror=mirror, precision=prec)
                        write_image(lab, t / "out" / f"ml_{prec}_{path.name[:-12]}.nii.gz")
                        t_ml[prec].append(time.perf_counter() - t0)
                        c_ml[prec].append(cpu() - c0)
                a = np.asarray(read_image(str(out_nn) + ".nii.gz").array) > 0
                masks = {
                    p: np.asarray(
                        read_image(t / "out" / f"ml_{p}_{path.name[:-12]}.nii.gz").array
                    )
                    > 0
                    for p in args.precisions
                }
                for prec in args.precisions:
                    b = masks[prec]
                    d32 = _dice(b, masks["float32"]) if "float32" in masks else float("nan")
                    rows.append(
                        (
                            name,
                            shape,
                            spacing,
                            mirror,
                            prec,
                            min(t_ml[prec]),
                            min(c_ml[prec]),
                            min(t_nn),
                            min(c_nn),
                            _dice(a, b),
                            d32,
                        )
                    )
    print(
        f"\nend to end, NIfTI in -> NIfTI label map out; model {args.model} "
        f"({cfg.name}: {[round(s, 2) for s in cfg.spacing]} mm, patch {list(cfg.patch_size)}, "
        f"features {list(cfg.network.features)}); nnU-Net float32; "
        f"tile step 0.5; {args.threads} thread(s); fastest of {args.repeats}\n"
    )
    print(
        "| input (shape, spacing mm) | mirroring TTA | medlens precision | medlens wall / CPU s | "
        "nnU-Net wall / CPU s | nnU-Net / medlens wall / CPU | Dice(nnU-Net, medlens) | "
        "Dice(medlens float32, this) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, shape, sp, mirror, prec, tm, cm, tn, cn, dice, d32 in rows:
        print(
            f"| {name}: {'x'.join(map(str, shape))}, {'x'.join(f'{s:g}' for s in sp)} | "
            f"{'on (8 passes)' if mirror else 'off'} | {prec} | {tm:.2f} / {cm:.2f} | "
            f"{tn:.2f} / {cn:.2f} | {tn / tm:.2f} / {cn / cm:.2f} | {dice:.4f} | {d32:.5f} |"
        )


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, int(a.sum() + b.sum())))

if __name__ == "__main__":
    main()
