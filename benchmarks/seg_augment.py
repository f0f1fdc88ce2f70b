"""Augmentation: medlens's batched torch transforms vs MONAI's per-sample transforms.

The same operations (rotation + scaling via one affine resampling, mirroring,
Gaussian noise, gamma) on a batch of 2 patches of 96^3 from 125^3 regions.

Run:  .venv/bin/python benchmarks/seg_augment.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from medlens.segmentation._augment import AugmentConfig, augment_batch, sample_parameters


def main() -> None:
    torch.set_num_threads(1)
    from monai import transforms as mt

    b, region, patch = 2, (126, 126, 126), (96, 96, 96)
    img = torch.randn(b, 1, *region)
    lab = (img > 1).to(torch.int16)
    cfg = AugmentConfig(
        p_rotation=1,
        p_scale=1,
        p_noise=1,
        p_gamma=1,
        p_blur=0,
        p_brightness=0,
        p_contrast=0,
        p_lowres=0,
        p_gamma_inverted=0,
    )
    g = torch.Generator().manual_seed(0)
    monai_tf = mt.Compose(
        [
            mt.RandAffined(
                ("img", "lab"),
                prob=1.0,
                rotate_range=(0.52, 0.52, 0.52),
                scale_range=(0.3,) * 3,
                mode=("bilinear", "nearest"),
                padding_mode="border",
                spatial_size=patch,
            ),
            mt.RandFlipd(("img", "lab"), prob=0.5, spatial_axis=0),
            mt.RandFlipd(("img", "lab"), prob=0.5, spatial_axis=1),
            mt.RandFlipd(("img", "lab"), prob=0.5, spatial_axis=2),
            mt.RandGaussianNoised("img", prob=1.0, std=0.3),
            mt.RandAdjustContrastd("img", prob=1.0, gamma=(0.7, 1.5)),
        ]
    )
    monai_tf.set_random_state(0)
    res: dict[str, list[float]] = {"medlens": [], "monai": []}
    for _ in range(5):
        t0 = time.perf_counter()
        augment_batch(img, lab, patch, sample_parameters(cfg, b, 3, g))
        res["medlens"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(b):
            monai_tf({"img": img[i], "lab": lab[i].float()})
        res["monai"].append(time.perf_counter() - t0)
    tm, tn = float(np.median(res["medlens"])), float(np.median(res["monai"]))
    print(f"batch {b} x {patch} from {region}, 1 thread, load {os.getloadavg()[0]:.1f}")
    print("| batch augmentation | medlens s | MONAI s | MONAI / medlens |")
    print("|---|---|---|---|")
    print(f"| rotate+scale, mirror, noise, gamma | {tm:.3f} | {tn:.3f} | {tn / tm:.2f} |")


if __name__ == "__main__":
    main()
