"""Tiny synthetic nnU-Net raw datasets for the segmentation tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlens.image import Image
from medlens.io import write_image


def make_case(rng: np.random.Generator, shape=(24, 24, 12), spacing=(1.0, 1.0, 2.0), ct=False):
    """A noisy image with a bright ellipsoid (label 1) holding a brighter core (label 2)."""
    idx = np.indices(shape).astype(float)
    c = np.array(shape) / 2 + rng.uniform(-2, 2, 3)
    r = np.array([7.0, 6.0, 3.5]) * rng.uniform(0.85, 1.15)
    d = np.sqrt((((idx - c[:, None, None, None]) / r[:, None, None, None]) ** 2).sum(0))
    lab = np.zeros(shape, np.uint8)
    lab[d < 1] = 1
    lab[d < 0.5] = 2
    base = 100.0 if ct else 1.0
    img = base * (0.2 + (lab == 1) * 1.0 + (lab == 2) * 1.6) + rng.normal(0, 0.15 * base, shape)
    img[0, :, :] = 0  # a zero border, as in skull-stripped MRI
    aff = np.diag([*spacing, 1.0])
    return Image(img.astype(np.float32), aff), Image(lab, aff)


def write_dataset(
    root: Path,
    n: int = 3,
    *,
    seed: int = 0,
    ct: bool = False,
    regions: bool = False,
    ending: str = ".nii.gz",
    spacing=(1.0, 1.0, 2.0),
) -> Path:
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "imagesTs").mkdir()
    for i in range(n):
        img, lab = make_case(rng, spacing=spacing, ct=ct)
        write_image(img, root / "imagesTr" / f"case{i:02d}_0000{ending}")
        write_image(lab, root / "labelsTr" / f"case{i:02d}{ending}")
    img, _ = make_case(rng, spacing=spacing, ct=ct)
    write_image(img, root / "imagesTs" / f"test00_0000{ending}")
    labels = (
        {"background": 0, "whole": [1, 2], "core": 2}
        if regions
        else {"background": 0, "outer": 1, "core": 2}
    )
    meta = {
        "channel_names": {"0": "CT" if ct else "MRI"},
        "labels": labels,
        "numTraining": n,
        "file_ending": ending,
        "name": "tiny",
    }
    if regions:
        meta["regions_class_order"] = [1, 2]
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "Dataset001_Tiny")


@pytest.fixture
def tiny_ct_dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "Dataset002_TinyCT", ct=True)


def tiny_plans(dataset_root: Path, *, patch=(16, 16, 8), iterations=6, features=(4, 8), dims=3):
    """Plans with a tiny network for fast training tests."""
    from dataclasses import replace

    from medlens.segmentation import (
        NetworkConfig,
        dataset_fingerprint,
        plan_experiment,
        pool_and_conv_props,
        read_dataset,
    )

    ds = read_dataset(dataset_root)
    fp = dataset_fingerprint(ds, workers=1)
    plans = plan_experiment(fp, regions_class_order=ds.regions_class_order)
    base = plans.configurations["3d_fullres" if dims == 3 else "2d"]
    strides, kernels, _patch2, _ = pool_and_conv_props(base.spacing, patch)
    n = len(features)
    net = NetworkConfig(
        dims,
        1,
        plans.n_outputs,
        features=features,
        strides=tuple(strides[:n]),
        kernel_sizes=tuple(kernels[:n]),
    )
    cfg = replace(
        base,
        name="tiny",
        patch_size=tuple(patch),
        network=net,
        iterations=iterations,
        iterations_per_epoch=3,
        batch_size=2,
    )
    plans = plans.with_configuration(cfg)
    return ds, replace(plans, default_configuration="tiny")
