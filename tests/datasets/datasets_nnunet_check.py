"""The checks nnU-Net v2 runs on a raw dataset, re-stated for the tests.

Written from reading nnunetv2/experiment_planning/verify_dataset_integrity.py
and nnunetv2/utilities/utils.py (MIC-DKFZ/nnUNet); nnunetv2 itself is not a
dependency. Returns a list of problems (empty when nnU-Net would accept it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from medlens.io import read_image


def identifiers(folder: Path, file_ending: str) -> list[str]:
    # nnU-Net: files ending in file_ending, identifier = name minus "_XXXX" + ending
    names = [p.name for p in folder.iterdir() if p.name.endswith(file_ending)]
    return sorted({n[: -(len(file_ending) + 5)] for n in names})


def channel_files(folder: Path, ident: str, file_ending: str) -> list[Path]:
    pattern = re.compile(re.escape(ident) + r"_\d\d\d\d" + re.escape(file_ending) + "$")
    return sorted(p for p in folder.iterdir() if pattern.match(p.name))


def nnunet_problems(folder: Path) -> list[str]:
    problems: list[str] = []
    if not re.fullmatch(r"Dataset\d{3}_[A-Za-z0-9]+", folder.name):
        problems.append(f"folder name {folder.name!r} is not DatasetXXX_Name")
    dj = folder / "dataset.json"
    if not dj.is_file():
        return [*problems, "no dataset.json"]
    meta = json.loads(dj.read_text())
    for key in ("labels", "channel_names", "numTraining", "file_ending"):
        if key not in meta:
            problems.append(f"dataset.json lacks {key!r}")
    if problems:
        return problems
    for sub in ("imagesTr", "labelsTr"):
        if not (folder / sub).is_dir():
            problems.append(f"no {sub}/")
    if problems:
        return problems
    ending = meta["file_ending"]
    n_channels = len(meta["channel_names"])
    if sorted(meta["channel_names"]) != [str(i) for i in range(n_channels)]:
        problems.append(f"channel_names keys {list(meta['channel_names'])} are not 0..n-1")
    ids = identifiers(folder / "imagesTr", ending)
    if len(ids) != meta["numTraining"]:
        problems.append(f"numTraining {meta['numTraining']} but {len(ids)} cases in imagesTr")
    if not ids:
        # verify_dataset_integrity picks the image reader from the first training case:
        # dataset[dataset.keys().__iter__().__next__()] raises StopIteration on none
        problems.append("no training case: nnU-Net needs at least one to pick a reader")
    values = sorted(meta["labels"].values())
    if meta["labels"].get("background") != 0:
        problems.append("labels has no background = 0")
    if not np.all(np.ediff1d(values) == 1) or values[0] != 0:
        problems.append(f"labels {values} are not consecutive from 0")
    for ident in ids:
        imgs = channel_files(folder / "imagesTr", ident, ending)
        lab_path = folder / "labelsTr" / f"{ident}{ending}"
        if not lab_path.is_file():
            problems.append(f"{ident}: no label file")
            continue
        if len(imgs) != n_channels:
            problems.append(f"{ident}: {len(imgs)} channels, expected {n_channels}")
        lab = read_image(lab_path)
        found = np.unique(lab.array).tolist()
        if set(found) - set(values):
            problems.append(f"{ident}: unexpected label values {sorted(set(found) - set(values))}")
        for p in imgs:
            img = read_image(p)
            if np.issubdtype(img.array.dtype, np.floating) and np.isnan(img.array).any():
                problems.append(f"{p.name}: NaN")
            if img.spatial_shape != lab.spatial_shape:
                problems.append(f"{p.name}: shape {img.spatial_shape} vs {lab.spatial_shape}")
            if not np.allclose(img.spacing, lab.spacing):
                problems.append(f"{p.name}: spacing mismatch")
            if not np.allclose(img.affine, lab.affine, atol=1e-4):
                problems.append(f"{p.name}: origin / direction mismatch")
    for p in (folder / "imagesTs").glob(f"*{ending}") if (folder / "imagesTs").is_dir() else []:
        if not re.search(r"_\d\d\d\d" + re.escape(ending) + "$", p.name):
            problems.append(f"imagesTs/{p.name} lacks the _XXXX channel suffix")
    return problems
