"""Synthetic label-map folders for the evaluation tests (NIfTI written with nibabel)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

AFFINE = np.diag([0.8, 0.9, 2.0, 1.0])


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def brats_like(rng: np.random.Generator, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reference with labels 1/2/3 in two lesions and a prediction shifted by ``shift``."""
    ref = np.zeros((32, 30, 16), np.uint8)
    ref[6:20, 6:20, 3:12] = 2
    ref[9:17, 9:17, 5:10] = 1
    ref[11:15, 11:15, 6:9] = 3
    ref[24:29, 22:27, 8:12] = 3  # a second, small enhancing lesion
    pred = np.roll(ref, shift, axis=0)
    noise = rng.random(ref.shape) < 0.002
    pred[noise] = 2
    return ref, pred


@pytest.fixture
def seg_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Four reference cases; predictions: two good, one on another grid, one missing, one extra."""
    rng = np.random.default_rng(5)
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    for i in range(4):
        ref, pred = brats_like(rng, shift=i % 2)
        write_nifti(ref_dir / f"case_{i:03d}.nii.gz", ref)
        if i == 2:
            write_nifti(pred_dir / f"case_{i:03d}.nii.gz", pred, np.diag([1.0, 0.9, 2.0, 1.0]))
        elif i != 3:
            write_nifti(pred_dir / f"case_{i:03d}.nii.gz", pred)
    write_nifti(pred_dir / "stray.nii.gz", np.zeros((32, 30, 16), np.uint8))
    return ref_dir, pred_dir


@pytest.fixture
def write() -> object:
    """The NIfTI writer, as a fixture (test modules do not import conftest)."""
    return write_nifti
