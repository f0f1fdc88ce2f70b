"""Export a dataset in the nnU-Net v2 raw layout."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from medlens._atomic import full_suffix
from medlens.datasets._cache import check_folder_path, make_temp_folder
from medlens.datasets._errors import DatasetExportError, DatasetPathError
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
    A dataset without a train / test split (every case role ``"test"``, as in
    ``registration-2d``) has its labelled cases exported as the training set
    (``registration-2d``: the ``pd`` slice with its registration mask) and the
    others to ``imagesTs/``. Images that are not NIfTI are converted.
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
        If the dataset has no labelled case at all (``dicom-samples``: nnU-Net v2
        needs at least one training case, see Notes), its labels are not
        consecutive, the ID is out of range, or the folder exists and
        ``overwrite`` is false.
    DatasetPathError
        If ``out_dir`` cannot be created or written (a file of that name, no
        permission, a parent that takes no folders); the message names it.

    Notes
    -----
    nnU-Net v2 cannot take a raw dataset without training cases:
    ``verify_dataset_integrity`` opens the first training case to choose its image
    reader (with ``numTraining`` 0 there is none and it stops), and planning
    fingerprints the training cases. Images only meant for ``nnUNetv2_predict``
    need no raw dataset: convert them with ``medlens convert`` into a folder of
    ``{case}_0000.nii.gz`` files. With one training case (``registration-2d``)
    nnU-Net's 5-fold split is impossible; train with fold ``all``.

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

    check_folder_path(Path(out_dir), "export folder")  # before a long fetch
    if isinstance(dataset, str):
        ds = fetch(dataset, cache_dir=cache_dir, n_cases=n_cases, seed=seed, n_test=n_test)
    else:
        ds = dataset
    train = [c for c in ds.train if c.labels]
    if not train and not ds.train:
        train = [c for c in ds.cases if c.labels]  # no split: the labelled cases train
    if not train:
        raise DatasetExportError(
            f"dataset {ds.name!r} has no labelled training case, so it has no nnU-Net v2 raw "
            "layout: nnU-Net needs at least one training case in "
            "imagesTr + labelsTr (with numTraining 0 its verify_dataset_integrity stops when "
            "it opens the first training case to pick an image reader, and planning has "
            "nothing to fingerprint); for nnUNetv2_predict input, convert the files with "
            "`medlens convert FILE OUT/{case}_0000.nii.gz` instead"
        )
    train_ids = {c.case_id for c in train}
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
    tmp = make_temp_folder(out, f".{target.name}-", "export folder")
    try:
        _write_layout(ds, tmp, train_ids, names, values)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError as e:
        where = e.filename or target
        raise DatasetPathError(where, f"cannot write the nnU-Net export ({e.strerror or e})"
                               ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_layout(ds: Dataset, tmp: Path, train_ids: set[str], names: list[str],
                  values: list[int]) -> None:
    """Fill ``tmp`` with imagesTr / labelsTr / imagesTs (/ labelsTs) and dataset.json."""
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (tmp / sub).mkdir()
    n_train = 0
    for case in ds.cases:
        is_train = case.case_id in train_ids
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


def _copy_as_nifti(src: Path, dst: Path) -> None:
    if full_suffix(src) == FILE_ENDING:
        shutil.copyfile(src, dst)
        return
    from medlens.io import read_image, write_image

    write_image(read_image(src), dst)
