"""Export a dataset in the nnU-Net v2 raw layout."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from medlens._atomic import full_suffix
from medlens.datasets._errors import DatasetExportError
from medlens.datasets._types import Dataset

__all__ = ["DEFAULT_DATASET_IDS", "export_nnunet"]

FILE_ENDING = ".nii.gz"

#: The nnU-Net dataset ID used when none is given (IDs below 500 are nnU-Net's own).
DEFAULT_DATASET_IDS = {
    "brain-extraction": 901,
    "brain-tissue": 902,
    "brain-parcellation": 903,
    "registration-2d": 904,
    "phantom-kidney": 905,
}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def export_nnunet(
    dataset: str | Dataset,
    out_dir: str | os.PathLike[str],
    *,
    dataset_id: int | None = None,
    dataset_name: str | None = None,
    overwrite: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    n_cases: int | None = None,
    seed: int | None = None,
    n_test: int | None = None,
) -> Path:
    """Write a dataset as nnU-Net v2 raw data: ``DatasetXXX_Name/{imagesTr,labelsTr,imagesTs}``.

    Training cases (role ``"train"``) go to ``imagesTr/{case}_{channel:04d}.nii.gz`` and
    ``labelsTr/{case}.nii.gz``; test cases to ``imagesTs/`` (and their labels, when
    there are any, to ``labelsTs/``, which nnU-Net ignores but evaluation can use).
    ``dataset.json`` holds ``channel_names``, ``labels`` (name -> value, background
    0, consecutive), ``numTraining`` and ``file_ending`` as nnU-Net requires, plus
    name, description, licence and source. The folder is built under a temporary
    name and renamed into place.

    Parameters
    ----------
    dataset : str or Dataset
        A dataset name (fetched first, with ``cache_dir`` and the procedural
        options) or a fetched :class:`Dataset`.
    out_dir : str or os.PathLike
        The folder that receives ``DatasetXXX_Name`` (e.g. ``$nnUNet_raw``).
    dataset_id : int, optional
        nnU-Net dataset ID, 1..999; defaults to :data:`DEFAULT_DATASET_IDS`.
    dataset_name : str, optional
        Name part of the folder; defaults to the dataset name in CamelCase.
    overwrite : bool, optional
        Replace an existing folder of the same name.
    cache_dir, n_cases, seed, n_test
        Passed to :func:`medlens.datasets.fetch` when ``dataset`` is a name.

    Returns
    -------
    pathlib.Path
        The ``DatasetXXX_Name`` folder.

    Raises
    ------
    DatasetExportError
        If the dataset has no labelled training case (``dicom-samples``), its
        labels are not consecutive, the ID is out of range, or the folder exists
        and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile, json
    >>> d = tempfile.mkdtemp()
    >>> out = export_nnunet("phantom-kidney", d, n_cases=2, n_test=1, cache_dir=d + "/cache")
    >>> out.name, sorted(p.name for p in (out / "imagesTr").iterdir())
    ('Dataset905_PhantomKidney', ['kidney_0000_0000.nii.gz'])
    >>> json.loads((out / "dataset.json").read_text())["labels"]
    {'background': 0, 'kidney': 1, 'tumor': 2, 'cyst': 3}
    """
    from medlens.datasets._api import fetch

    if isinstance(dataset, str):
        ds = fetch(dataset, cache_dir=cache_dir, n_cases=n_cases, seed=seed, n_test=n_test)
    else:
        ds = dataset
    train = [c for c in ds.train if c.labels]
    if not train:
        raise DatasetExportError(
            f"dataset {ds.name!r} has no labelled training case, so it has no nnU-Net raw "
            "layout (nnU-Net needs imagesTr + labelsTr); convert single files with "
            "`medlens convert` instead"
        )
    n_channels = {len(c.images) for c in ds.cases}
    if len(n_channels) != 1:
        raise DatasetExportError(f"dataset {ds.name!r} mixes cases with {sorted(n_channels)} "
                                 "channels; nnU-Net needs the same channels for every case")
    values = sorted(ds.label_names)
    if values != list(range(len(values))):
        raise DatasetExportError(
            f"dataset {ds.name!r} has label values {values}; nnU-Net needs 0, 1, 2, ... "
            "consecutive")
    names = ["background"] + [ds.label_names[v] for v in values[1:]]
    if len(set(names)) != len(names):
        raise DatasetExportError(f"dataset {ds.name!r} has duplicate label names")
    did = DEFAULT_DATASET_IDS.get(ds.name, 999) if dataset_id is None else int(dataset_id)
    if not 1 <= did <= 999:
        raise DatasetExportError(f"nnU-Net dataset IDs are 1..999, got {did}")
    dname = _camel(dataset_name or ds.name)
    if not dname:
        raise DatasetExportError(f"dataset name {dataset_name!r} has no letters or digits")
    out = Path(out_dir)
    target = out / f"Dataset{did:03d}_{dname}"
    if target.exists() and not overwrite:
        raise DatasetExportError(f"{target} exists; pass overwrite=True (--overwrite) to "
                                 "replace it")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=out))
    try:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (tmp / sub).mkdir()
        n_train = 0
        for case in ds.cases:
            is_train = case.role == "train" and bool(case.labels)
            img_dir, lab_dir = ("imagesTr", "labelsTr") if is_train else ("imagesTs", "labelsTs")
            for ch, path in enumerate(case.images):
                _copy_as_nifti(path, tmp / img_dir / f"{case.case_id}_{ch:04d}{FILE_ENDING}")
            if case.labels:
                (tmp / lab_dir).mkdir(exist_ok=True)
                _copy_as_nifti(case.labels[0], tmp / lab_dir / f"{case.case_id}{FILE_ENDING}")
            n_train += is_train
        meta: dict[str, Any] = {
            "channel_names": {str(k): v for k, v in sorted(ds.channel_names.items())},
            "labels": {name: value for name, value in zip(names, values, strict=True)},
            "numTraining": n_train,
            "file_ending": FILE_ENDING,
            "name": ds.name,
            "description": ds.card.title,
            "reference": "; ".join(f"{s.kind} {s.name} {s.version_used or s.version}"
                                   for s in ds.card.sources),
            "licence": ds.card.license,
            "release": "medlens datasets",
            "synthetic": ds.card.synthetic,
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=4) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _copy_as_nifti(src: Path, dst: Path) -> None:
    if full_suffix(src) == FILE_ENDING:
        shutil.copyfile(src, dst)
        return
    from medlens.io import read_image, write_image

    write_image(read_image(src), dst)
