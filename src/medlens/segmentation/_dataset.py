"""Reading segmentation datasets in the nnU-Net v2 raw layout and the MSD layout.

nnU-Net v2 raw layout (read as is)::

    DatasetXXX_Name/
      dataset.json       channel_names, labels, numTraining, file_ending
                         (optional: regions_class_order for region-based labels)
      imagesTr/CASE_0000.nii.gz, CASE_0001.nii.gz ...   one file per channel
      labelsTr/CASE.nii.gz
      imagesTs/CASE_0000.nii.gz ...                       optional

Medical Segmentation Decathlon layout: dataset.json with ``modality``, ``labels``
(value -> name), ``training`` (list of ``{"image", "label"}``) and ``test``;
images are 4D NIfTI files with the channels on the last axis.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import MedlensError
from medlens.image import Image

__all__ = [
    "Case",
    "DatasetError",
    "SegmentationDataset",
    "read_case",
    "read_dataset",
]


class DatasetError(MedlensError, ValueError):
    """A dataset folder or its dataset.json is malformed (names the file and value)."""


@dataclass(frozen=True)
class Case:
    """One case: its channel files (in channel order) and optional label file.

    For MSD datasets a single 4D file holds all channels (``images`` has one entry
    and ``msd_4d`` is true).
    """

    case_id: str
    images: tuple[Path, ...]
    label: Path | None = None
    msd_4d: bool = False


@dataclass(frozen=True)
class SegmentationDataset:
    """A segmentation dataset: channels, labels and cases.

    Attributes
    ----------
    root : Path
        Dataset folder.
    name : str
        ``name`` from dataset.json, else the folder name.
    channel_names : tuple of str
        One per input channel, e.g. ``("CT",)`` or ``("T1", "T2")``; the value
        decides the normalisation (``"CT"`` gets the CT scheme).
    labels : dict
        Label name -> value, or -> tuple of values for region-based labels
        (e.g. BraTS ``"whole tumor": (1, 2, 3)``). ``"background"`` is 0.
    regions_class_order : tuple of int or None
        For region-based labels, the label value each region writes when
        converting region predictions back to a label map (in this order).
    file_ending : str
        File suffix of every image, e.g. ``".nii.gz"``.
    training, test : tuple of Case
        Labelled training cases; unlabelled test cases (imagesTs).
    layout : {"nnunet", "msd"}
        The layout the folder was read as.
    """

    root: Path
    name: str
    channel_names: tuple[str, ...]
    labels: dict[str, int | tuple[int, ...]]
    file_ending: str
    training: tuple[Case, ...]
    test: tuple[Case, ...] = ()
    regions_class_order: tuple[int, ...] | None = None
    layout: str = "nnunet"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def region_based(self) -> bool:
        """Whether any label is a region (a set of label values)."""
        return any(isinstance(v, tuple) for v in self.labels.values())

    @property
    def foreground_labels(self) -> dict[str, int | tuple[int, ...]]:
        """Labels without background."""
        return {k: v for k, v in self.labels.items() if v != 0}

    @property
    def label_values(self) -> tuple[int, ...]:
        """All integer label values that occur in label maps (incl. background)."""
        vals: set[int] = {0}
        for v in self.labels.values():
            vals.update(v if isinstance(v, tuple) else (v,))
        return tuple(sorted(vals))

    @property
    def n_outputs(self) -> int:
        """Network output channels: classes incl. background, or one per region."""
        if self.region_based:
            return len(self.foreground_labels)
        return len(self.label_values)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: no dataset.json in the dataset folder") from e
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: dataset.json must hold an object")
    return data


def _parse_labels(raw: Any, path: Path) -> dict[str, int | tuple[int, ...]]:
    if not isinstance(raw, dict) or not raw:
        raise DatasetError(f"{path}: 'labels' must be a non-empty object")
    out: dict[str, int | tuple[int, ...]] = {}
    for k, v in raw.items():
        if isinstance(v, list | tuple):
            if not all(isinstance(x, int) for x in v) or not v:
                raise DatasetError(f"{path}: region label {k!r} must list integers, got {v!r}")
            out[str(k)] = tuple(int(x) for x in v)
        elif isinstance(v, int):
            out[str(k)] = int(v)
        else:
            raise DatasetError(f"{path}: label {k!r} has value {v!r}; expected an int or a list")
    return out


_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")


def _strip(name: str, ending: str) -> str | None:
    return name[: -len(ending)] if name.endswith(ending) else None


def _scan_images(folder: Path, ending: str, n_channels: int) -> dict[str, tuple[Path, ...]]:
    found: dict[str, dict[int, Path]] = {}
    if not folder.is_dir():
        return {}
    for p in sorted(folder.iterdir()):
        stem = _strip(p.name, ending)
        if stem is None or p.name.startswith("."):
            continue
        m = _CHANNEL_RE.match(stem)
        if m is None:
            raise DatasetError(
                f"{p}: image files must be named CASE_XXXX{ending} (XXXX = channel index)"
            )
        found.setdefault(m["case"], {})[int(m["ch"])] = p
    out = {}
    for case, chans in found.items():
        if sorted(chans) != list(range(n_channels)):
            raise DatasetError(
                f"{folder}: case {case!r} has channel files {sorted(chans)}, expected "
                f"0..{n_channels - 1} from channel_names"
            )
        out[case] = tuple(chans[i] for i in range(n_channels))
    return out


def read_dataset(path: str | os.PathLike[str]) -> SegmentationDataset:
    """Read a dataset folder in the nnU-Net v2 raw layout or the MSD layout.

    Parameters
    ----------
    path : str or os.PathLike
        Folder holding ``dataset.json``, ``imagesTr`` and ``labelsTr``.

    Returns
    -------
    SegmentationDataset

    Raises
    ------
    DatasetError
        If dataset.json is missing or malformed, channel files are missing, or a
        training case has no label file; the message names the file.

    Examples
    --------
    >>> import json, tempfile, numpy as np
    >>> from pathlib import Path
    >>> from medlens.io import write_image
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "imagesTr").mkdir(); (root / "labelsTr").mkdir()
    >>> write_image(Image(np.ones((4, 4, 4), np.float32)), root / "imagesTr/a_0000.nii.gz")
    >>> write_image(Image(np.ones((4, 4, 4), np.uint8)), root / "labelsTr/a.nii.gz")
    >>> _ = (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MRI"},
    ...     "labels": {"background": 0, "brain": 1}, "numTraining": 1, "file_ending": ".nii.gz"}))
    >>> ds = read_dataset(root)
    >>> ds.channel_names, [c.case_id for c in ds.training], ds.n_outputs
    (('MRI',), ['a'], 2)
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a dataset folder")
    meta = _load_json(root / "dataset.json")
    jpath = root / "dataset.json"
    if "training" in meta and "modality" in meta:
        return _read_msd(root, meta, jpath)
    for key in ("channel_names", "labels", "file_ending"):
        if key not in meta:
            alt = " (old name 'modality' is nnU-Net v1/MSD)" if key == "channel_names" else ""
            raise DatasetError(f"{jpath}: missing key {key!r}{alt}")
    ch = meta["channel_names"]
    if not isinstance(ch, dict) or not ch:
        raise DatasetError(f"{jpath}: channel_names must map '0', '1' ... to names")
    try:
        channel_names = tuple(str(ch[str(i)]) for i in range(len(ch)))
    except KeyError as e:
        raise DatasetError(f"{jpath}: channel_names keys must be 0..{len(ch) - 1}") from e
    labels = _parse_labels(meta["labels"], jpath)
    if labels.get("background", 0) != 0:
        raise DatasetError(f"{jpath}: background must be label 0")
    ending = str(meta["file_ending"])
    rco = meta.get("regions_class_order")
    if any(isinstance(v, tuple) for v in labels.values()):
        n_regions = sum(1 for v in labels.values() if v != 0)
        if rco is None or len(rco) != n_regions:
            raise DatasetError(
                f"{jpath}: region-based labels need regions_class_order with one entry per "
                f"region ({n_regions}), got {rco!r}"
            )
    images = _scan_images(root / "imagesTr", ending, len(channel_names))
    training = []
    for case, files in sorted(images.items()):
        lab = root / "labelsTr" / f"{case}{ending}"
        if not lab.exists():
            raise DatasetError(f"{lab}: training case {case!r} has no label file")
        training.append(Case(case, files, lab))
    if not training:
        raise DatasetError(f"{root / 'imagesTr'}: no training images ending in {ending!r}")
    n_decl = meta.get("numTraining")
    if isinstance(n_decl, int) and n_decl != len(training):
        raise DatasetError(
            f"{jpath}: numTraining is {n_decl} but imagesTr holds {len(training)} cases"
        )
    test = tuple(
        Case(c, f)
        for c, f in sorted(_scan_images(root / "imagesTs", ending, len(channel_names)).items())
    )
    return SegmentationDataset(
        root=root,
        name=str(meta.get("name", root.name)),
        channel_names=channel_names,
        labels=labels,
        file_ending=ending,
        training=tuple(training),
        test=test,
        regions_class_order=tuple(int(x) for x in rco) if rco is not None else None,
        layout="nnunet",
        extra={k: v for k, v in meta.items() if k not in ("labels", "channel_names")},
    )


def _read_msd(root: Path, meta: dict[str, Any], jpath: Path) -> SegmentationDataset:
    mod = meta["modality"]
    channel_names = tuple(str(mod[str(i)]) for i in range(len(mod)))
    raw = meta["labels"]
    # MSD: value -> name
    labels: dict[str, int | tuple[int, ...]] = {}
    for k, v in raw.items():
        try:
            labels["background" if int(k) == 0 else str(v)] = int(k)
        except ValueError as e:
            raise DatasetError(f"{jpath}: MSD labels map integers to names, got {k!r}") from e

    def resolve(rel: str) -> Path:
        p = (root / rel).resolve()
        if not p.exists():
            raise DatasetError(f"{jpath}: listed file {rel!r} does not exist")
        return p

    training = tuple(
        Case(Path(e["image"]).name.split(".")[0], (resolve(e["image"]),), resolve(e["label"]), True)
        for e in meta["training"]
    )
    test = tuple(
        Case(Path(t).name.split(".")[0], (resolve(t),), None, True) for t in meta.get("test", [])
    )
    return SegmentationDataset(
        root=root,
        name=str(meta.get("name", root.name)),
        channel_names=channel_names,
        labels=labels,
        file_ending=".nii.gz",
        training=training,
        test=test,
        layout="msd",
    )


def read_case(case: Case) -> tuple[Image, Image | None]:
    """Read a case's channels as one channels-first :class:`Image` and its label.

    Raises
    ------
    DatasetError
        If the channel files do not share one grid, or the label is on another.
    """
    from medlens.io import read_image

    if case.msd_4d:
        img = read_image(case.images[0])
        if img.spatial_ndim == 3 and not img.channels and img.array.ndim == 3:
            chans = img.with_array(img.array[None], channels=True)
        elif img.channels:
            chans = img
        else:
            chans = img.with_array(img.array[None], channels=True)
    else:
        parts = [read_image(p) for p in case.images]
        first = parts[0]
        for p, im in zip(case.images[1:], parts[1:], strict=True):
            if not first.same_grid(im, atol=1e-3):
                raise DatasetError(
                    f"{p}: channel is on another grid than {case.images[0]} "
                    f"({im.spatial_shape} vs {first.spatial_shape})"
                )
        arr = np.stack([np.asarray(im.array, dtype=np.float32) for im in parts])
        chans = Image(arr, first.affine, channels=True, meta=first.meta)
    label = None
    if case.label is not None:
        label = read_image(case.label)
        if label.spatial_shape != chans.spatial_shape or not np.allclose(
            label.affine, chans.affine, atol=1e-3
        ):
            raise DatasetError(
                f"{case.label}: label grid {label.spatial_shape} does not match the image "
                f"grid {chans.spatial_shape}"
            )
    return chans, label
