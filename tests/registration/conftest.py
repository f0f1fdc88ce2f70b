from __future__ import annotations

import numpy as np
import pytest

from medlens import datasets
from medlens.image import Image, resample
from medlens.io import read_image


@pytest.fixture(scope="session")
def reg2d() -> datasets.Dataset:
    return datasets.fetch("registration-2d")


@pytest.fixture(scope="session")
def pairs(reg2d: datasets.Dataset) -> dict[str, datasets.ImagePair]:
    return {p.pair_id: p for p in reg2d.pairs}


def brain_at(case_id: str, spacing_mm: float) -> tuple[Image, Image]:
    """A brain-extraction T1 resampled to isotropic ``spacing_mm``, and its brain mask."""
    ds = datasets.fetch("brain-extraction")
    case = next(c for c in ds.cases if c.case_id == case_id)
    img = read_image(case.images[0])
    mask = read_image(case.labels[0])
    fixed = resample(img, spacing=(spacing_mm,) * 3)
    fmask = resample(mask, like=fixed, interpolation="label")
    return fixed.with_array(np.asarray(fixed.array, np.float32)), fmask


@pytest.fixture(scope="session")
def brain4mm() -> tuple[Image, Image]:
    """The ITK KmeansTest T1 of brain-extraction, resampled to 4 mm (64x64x47), and its mask."""
    return brain_at("itk_kmeanstest", 4.0)


def grid_points(image: Image, n: int = 5) -> np.ndarray:
    """World coordinates of an n^d grid covering the central 60 % of an image."""
    axes = [np.linspace(0.2, 0.8, n) * (s - 1) for s in image.spatial_shape]
    idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, image.spatial_ndim)
    return image.voxel_to_world(idx)
