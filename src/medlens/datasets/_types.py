"""The records of the dataset API: cards, sources, cases, fetched datasets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Case",
    "Dataset",
    "DatasetCard",
    "ImagePair",
    "ReferenceTransform",
    "Role",
    "SourceKind",
    "SourcePackage",
]

Role = Literal["train", "test"]
SourceKind = Literal["debian", "pypi", "procedural"]


def _frozen_map(m: Mapping[Any, Any] | None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class SourcePackage:
    """One package a dataset is built from.

    Attributes
    ----------
    kind : {"debian", "pypi", "procedural"}
        Debian binary package (fetched with ``apt-get download``), PyPI wheel
        (``pip download``), or medlens's own generator.
    name : str
        Package name, e.g. ``"mricron-data"``.
    version : str
        The pinned version medlens asks for.
    files : tuple of str
        Paths inside the package that the dataset uses.
    version_used : str or None
        The version actually unpacked into the cache (``None`` until fetched).
        Differs from ``version`` only when the pinned one was not obtainable.
    url : str
        Where the package lives (Debian pool path or PyPI project page).
    """

    kind: SourceKind
    name: str
    version: str
    files: tuple[str, ...] = ()
    version_used: str | None = None
    url: str = ""


@dataclass(frozen=True)
class DatasetCard:
    """What a dataset is, where it comes from, and what it can and cannot show.

    Attributes
    ----------
    name : str
        The name ``fetch`` takes, e.g. ``"brain-extraction"``.
    title : str
        One line.
    description : str
        A paragraph: content, how labels were made, geometry.
    modality : str
        Imaging modality (``"MR (T1-weighted)"``, ``"CT-like (synthetic)"`` ...).
    sources : tuple of SourcePackage
        The packages (with pinned versions) it is built from.
    license : str
        Short licence statement (SPDX-like) of the data as the package declares it.
    license_text : str or None
        The licence text as shipped in the unpacked package (its Debian
        ``copyright`` file or wheel ``LICENSE``). ``None`` until the dataset has
        been fetched into the cache.
    size : str
        Number of cases, array sizes, spacing, bytes on disk.
    can_show : tuple of str
        What the data is good for.
    cannot_show : tuple of str
        What it must not be used to claim.
    cases : tuple of str
        One line per case (or group of cases): id, role, content.
    label_names : Mapping[int, str]
        Label value to name; empty for unlabelled data.
    malformed : tuple of tuple of (str, str)
        For DICOM samples: ``(file name, reason)`` of every deliberately
        malformed or non-conformant file.
    synthetic : bool
        True when the images are generated, not acquired.
    transforms : tuple of tuple of (str, str)
        For registration data: ``(pair id, reference transform in words)``; the
        full matrices are in :attr:`Dataset.pairs` and the cache's
        ``transforms.json``.
    """

    name: str
    title: str
    description: str
    modality: str
    sources: tuple[SourcePackage, ...]
    license: str
    size: str
    can_show: tuple[str, ...]
    cannot_show: tuple[str, ...]
    cases: tuple[str, ...]
    license_text: str | None = None
    label_names: Mapping[int, str] = field(default_factory=dict)
    malformed: tuple[tuple[str, str], ...] = ()
    synthetic: bool = False
    transforms: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_names", _frozen_map(self.label_names))


@dataclass(frozen=True)
class Case:
    """One case of a fetched dataset.

    Attributes
    ----------
    case_id : str
        Identifier, unique within the dataset (safe as a file name).
    images : tuple of pathlib.Path
        Image files, one per channel, in the cache.
    labels : tuple of pathlib.Path
        Label map file (at most one); empty when the case is unlabelled.
    role : {"train", "test"}
        Intended use.
    modality : str
        Modality of the images (e.g. ``"MR"``, ``"CT"``).
    malformed : str or None
        For deliberately malformed files: the reason; otherwise ``None``.
    meta : Mapping[str, str]
        Descriptive strings (source file, scanner, SOP class ...).
    """

    case_id: str
    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    role: Role
    modality: str = ""
    malformed: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", _frozen_map(self.meta))


@dataclass(frozen=True, eq=False)
class ReferenceTransform:
    """The known misalignment between a fixed and a moving image.

    Attributes
    ----------
    model : {"identity", "translation", "rigid", "similarity"}
        The transform family.
    matrix : numpy.ndarray
        4x4 homogeneous matrix mapping **fixed world** points (RAS+ mm) to the
        corresponding **moving world** points, i.e. the transform a registration
        of moving onto fixed should find (ITK's direction: fixed -> moving).
    index_matrix : numpy.ndarray
        3x3 homogeneous matrix mapping fixed pixel indices ``(i, j, 1)`` to
        moving pixel indices.
    angle_deg : float
        Rotation angle of the index-space transform, degrees (counter-clockwise
        from axis i to axis j).
    scale : float
        Isotropic scale of the index-space transform.
    center_index : tuple of float
        Centre of rotation and scaling, in fixed pixel indices.
    translation_index : tuple of float
        Translation after rotation and scaling about the centre, in pixels (mm:
        the slices have unit spacing).
    derivation : str
        How this reference was established (exact pixel shift, the guide's
        stated rotation, or a fit here that agrees with the guide's result).
    documented : str
        What the ITK Software Guide says about this image pair.
    reported : str
        The parameters the ITK example reports after registering the pair.
    example : str
        The ITK example program that documents the pair.
    """

    model: Literal["identity", "translation", "rigid", "similarity"]
    matrix: npt.NDArray[np.float64]
    index_matrix: npt.NDArray[np.float64]
    angle_deg: float
    scale: float
    center_index: tuple[float, float]
    translation_index: tuple[float, float]
    derivation: str
    documented: str
    reported: str
    example: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (the form stored in ``transforms.json``)."""
        return {
            "model": self.model,
            "matrix_ras_fixed_to_moving": np.asarray(self.matrix).round(10).tolist(),
            "index_matrix_fixed_to_moving": np.asarray(self.index_matrix).round(10).tolist(),
            "angle_deg": self.angle_deg,
            "scale": self.scale,
            "center_index": list(self.center_index),
            "translation_index": list(self.translation_index),
            "derivation": self.derivation,
            "documented": self.documented,
            "reported": self.reported,
            "example": self.example,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReferenceTransform:
        """Inverse of :meth:`to_json`."""
        return cls(
            model=d["model"],
            matrix=np.array(d["matrix_ras_fixed_to_moving"], dtype=np.float64),
            index_matrix=np.array(d["index_matrix_fixed_to_moving"], dtype=np.float64),
            angle_deg=float(d["angle_deg"]),
            scale=float(d["scale"]),
            center_index=(float(d["center_index"][0]), float(d["center_index"][1])),
            translation_index=(float(d["translation_index"][0]), float(d["translation_index"][1])),
            derivation=d["derivation"],
            documented=d["documented"],
            reported=d["reported"],
            example=d["example"],
        )


@dataclass(frozen=True)
class ImagePair:
    """A fixed / moving image pair with its reference transform.

    Attributes
    ----------
    pair_id : str
        Identifier, e.g. ``"pd-shift13x17"``.
    fixed, moving : pathlib.Path
        Image files in the cache.
    fixed_case, moving_case : str
        The ``case_id`` of each image in :attr:`Dataset.cases`.
    cross_modality : bool
        True when fixed and moving are different MR contrasts (T1 vs PD).
    transform : ReferenceTransform
        The known fixed -> moving transform.
    """

    pair_id: str
    fixed: Path
    moving: Path
    fixed_case: str
    moving_case: str
    cross_modality: bool
    transform: ReferenceTransform


@dataclass(frozen=True)
class Dataset:
    """A dataset fetched into the cache: its card, cases and files.

    Attributes
    ----------
    name : str
        Dataset name.
    root : pathlib.Path
        Its folder in the cache.
    card : DatasetCard
        The card, with licence text and versions as unpacked.
    cases : tuple of Case
        All cases (train and test).
    channel_names : Mapping[int, str]
        Channel index to name, as in nnU-Net's ``dataset.json``.
    label_names : Mapping[int, str]
        Label value to name (0 is background); empty when unlabelled.
    pairs : tuple of ImagePair
        Registration pairs (``registration-2d`` only).
    extras : Mapping[str, pathlib.Path]
        Further files by role, e.g. ``"transforms"`` (JSON) or
        ``"probability_gm"``.
    """

    name: str
    root: Path
    card: DatasetCard
    cases: tuple[Case, ...]
    channel_names: Mapping[int, str] = field(default_factory=dict)
    label_names: Mapping[int, str] = field(default_factory=dict)
    pairs: tuple[ImagePair, ...] = ()
    extras: Mapping[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("channel_names", "label_names", "extras"):
            object.__setattr__(self, name, _frozen_map(getattr(self, name)))

    @property
    def train(self) -> tuple[Case, ...]:
        """The cases with role ``"train"``."""
        return tuple(c for c in self.cases if c.role == "train")

    @property
    def test(self) -> tuple[Case, ...]:
        """The cases with role ``"test"``."""
        return tuple(c for c in self.cases if c.role == "test")

    def summary(self) -> str:
        """One line saying what the dataset holds, as ``medlens datasets fetch`` prints it.

        A train / test split is counted as such; a dataset without training cases
        says what its cases are instead of "0 train": image-only files and series
        folders (``dicom-samples``), or images of which some carry a label
        (``registration-2d``).

        Examples
        --------
        >>> from pathlib import Path
        >>> card = DatasetCard(name="x", title="", description="", modality="", sources=(),
        ...                    license="", size="", can_show=(), cannot_show=(), cases=())
        >>> cases = tuple(Case(f"c{i}", (Path(f"/nonexistent/c{i}.dcm"),), (), "test")
        ...               for i in range(3))
        >>> Dataset("x", Path("/nonexistent"), card, cases).summary()
        'x: 3 image files (image-only, no training labels)'
        """
        n_train, n_test = len(self.train), len(self.test)
        pairs = f", {len(self.pairs)} registration pairs" if self.pairs else ""
        if n_train:
            return f"{self.name}: {n_train} train / {n_test} test cases{pairs}"
        labelled = sum(1 for c in self.cases if c.labels)
        if labelled:
            return (f"{self.name}: {len(self.cases)} images, no train / test split "
                    f"({labelled} with a label){pairs}")
        folders = sum(1 for c in self.cases if c.images and c.images[0].is_dir())
        files = len(self.cases) - folders
        parts = [f"{files} image files"] if files else []
        if folders:
            parts.append(f"{folders} series folders")
        return f"{self.name}: {' and '.join(parts)} (image-only, no training labels){pairs}"

    def case(self, case_id: str) -> Case:
        """Return the case called ``case_id``.

        Raises
        ------
        KeyError
            If there is no such case; the message lists the known ids.
        """
        for c in self.cases:
            if c.case_id == case_id:
                return c
        known = ", ".join(c.case_id for c in self.cases[:20])
        raise KeyError(f"dataset {self.name!r} has no case {case_id!r}; cases: {known}")

    def pair(self, pair_id: str) -> ImagePair:
        """Return the registration pair called ``pair_id``.

        Raises
        ------
        KeyError
            If there is no such pair; the message lists the known ids.
        """
        for p in self.pairs:
            if p.pair_id == pair_id:
                return p
        known = ", ".join(p.pair_id for p in self.pairs)
        raise KeyError(f"dataset {self.name!r} has no pair {pair_id!r}; pairs: {known or 'none'}")
