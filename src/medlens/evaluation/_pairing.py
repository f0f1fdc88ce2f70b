"""Pair reference and prediction files by case id, and check that their grids agree."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medlens.errors import MedlensError

if TYPE_CHECKING:  # pragma: no cover
    from medlens.image import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "CasePair",
    "Pairing",
    "PairingError",
    "case_id",
    "grid_mismatch",
    "list_cases",
    "pair_cases",
    "safe_name",
]

#: File endings recognised as images, longest first (the ending is not part of the case id).
IMAGE_EXTENSIONS = (
    ".nii.gz",
    ".nii",
    ".mha",
    ".mhd",
    ".nrrd",
    ".nhdr",
    ".h5",
    ".mat",
    ".csv",
    ".png",
    ".tif",
    ".tiff",
)


class PairingError(MedlensError, ValueError):
    """Raised when a folder holds no case, or two files map to the same case id."""


def case_id(path: str | os.PathLike[str], *, suffix: str = "") -> str | None:
    """Return the case id of an image file: its name without the extension and ``suffix``.

    Parameters
    ----------
    path : path-like
        File path.
    suffix : str, optional
        Extra ending to strip after the extension, e.g. ``"-seg"`` for BraTS
        references ``BraTS-GLI-00001-000-seg.nii.gz``, or ``"_0000"`` for nnU-Net
        channel files.

    Returns
    -------
    str or None
        The id, or None when the file has no recognised extension (or lacks the suffix).

    Examples
    --------
    >>> case_id("labels/case_007.nii.gz")
    'case_007'
    >>> case_id("BraTS-GLI-00001-000-seg.nii.gz", suffix="-seg")
    'BraTS-GLI-00001-000'
    >>> case_id("notes.txt") is None
    True
    """
    name = Path(path).name
    low = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if low.endswith(ext):
            stem = name[: -len(ext)]
            if suffix:
                if not stem.endswith(suffix):
                    return None
                stem = stem[: -len(suffix)]
            return stem or None
    return None


def list_cases(
    folder: str | os.PathLike[str],
    *,
    suffix: str = "",
    extensions: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Map case id to file for every image file directly inside ``folder``.

    Parameters
    ----------
    folder : path-like
        Directory to scan (not recursive; hidden files are skipped).
    suffix : str, optional
        Ending stripped from ids, see :func:`case_id`.
    extensions : sequence of str, optional
        Only files with these endings (default: every image ending).

    Returns
    -------
    dict
        ``{case_id: path}`` sorted by id.

    Raises
    ------
    PairingError
        If the folder does not exist or two files give the same case id.
    """
    root = Path(folder)
    if not root.is_dir():
        raise PairingError(f"not a directory: {root}")
    found: dict[str, Path] = {}
    exts = tuple(e.lower() for e in extensions) if extensions else None
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if exts is not None and not entry.name.lower().endswith(exts):
            continue
        cid = case_id(entry, suffix=suffix)
        if cid is None:
            continue
        if cid in found:
            raise PairingError(
                f"two files in {root} give case id {cid!r}: {found[cid].name} and {entry.name}"
            )
        found[cid] = entry
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class CasePair:
    """One case: its reference file and its prediction file (None when missing).

    Attributes
    ----------
    case : str
        Case id.
    reference : pathlib.Path
        Reference (ground truth) file.
    prediction : pathlib.Path or None
        Prediction file, None if the prediction folder lacks the case.
    """

    case: str
    reference: Path
    prediction: Path | None


@dataclass(frozen=True)
class Pairing:
    """Result of pairing two folders.

    Attributes
    ----------
    pairs : tuple of CasePair
        Every reference case, in id order (missing predictions included, with
        ``prediction=None``: they are scored as empty predictions, never dropped).
    missing_predictions : tuple of str
        Reference cases without a prediction.
    unmatched_predictions : tuple of str
        Prediction files without a reference (ignored, but reported).
    """

    pairs: tuple[CasePair, ...]
    missing_predictions: tuple[str, ...]
    unmatched_predictions: tuple[str, ...]


def pair_cases(
    reference_dir: str | os.PathLike[str],
    prediction_dir: str | os.PathLike[str],
    *,
    reference_suffix: str = "",
    prediction_suffix: str = "",
    extensions: Sequence[str] | None = None,
    cases: Iterable[str] | None = None,
) -> Pairing:
    """Pair the files of two folders by case id.

    Parameters
    ----------
    reference_dir, prediction_dir : path-like
        Folders of reference and prediction files.
    reference_suffix, prediction_suffix : str, optional
        Endings stripped from the file names before matching (see :func:`case_id`).
    extensions : sequence of str, optional
        Only files with these endings.
    cases : iterable of str, optional
        Restrict to these case ids (a regular expression is not accepted here).

    Returns
    -------
    Pairing
        Pairs plus the unmatched ids on either side.

    Raises
    ------
    PairingError
        If the reference folder holds no case.
    """
    refs = list_cases(reference_dir, suffix=reference_suffix, extensions=extensions)
    preds = list_cases(prediction_dir, suffix=prediction_suffix, extensions=extensions)
    if cases is not None:
        wanted = set(cases)
        refs = {k: v for k, v in refs.items() if k in wanted}
    if not refs:
        raise PairingError(f"no reference image found in {reference_dir}")
    pairs = tuple(CasePair(c, p, preds.get(c)) for c, p in refs.items())
    return Pairing(
        pairs=pairs,
        missing_predictions=tuple(c for c in refs if c not in preds),
        unmatched_predictions=tuple(c for c in preds if c not in refs),
    )


def grid_mismatch(reference: Image, prediction: Image, *, tolerance: float = 1e-3) -> str | None:
    """Describe how two images' grids differ, or return None if they agree.

    Grids agree when the spatial shapes are equal and every affine entry agrees
    within ``tolerance`` (mm for the translation column; the same absolute
    tolerance for the spacing-scaled direction columns).

    Parameters
    ----------
    reference, prediction : Image
        The two images.
    tolerance : float, optional
        Absolute tolerance on affine entries.

    Returns
    -------
    str or None
        A one-line reason (shapes, spacings, origins or directions that
        differ, with values), or None.
    """
    if reference.spatial_shape != prediction.spatial_shape:
        return f"shape {reference.spatial_shape} vs {prediction.spatial_shape}"
    a, b = reference.affine, prediction.affine
    if np.allclose(a, b, rtol=0.0, atol=tolerance):
        return None
    sa, sb = np.round(reference.spacing, 4), np.round(prediction.spacing, 4)
    if not np.allclose(reference.spacing, prediction.spacing, rtol=0, atol=tolerance):
        return f"spacing {tuple(sa.tolist())} vs {tuple(sb.tolist())} mm"
    if not np.allclose(a[:3, 3], b[:3, 3], rtol=0, atol=tolerance):
        oa, ob = np.round(a[:3, 3], 3).tolist(), np.round(b[:3, 3], 3).tolist()
        return f"origin {oa} vs {ob} mm"
    return "direction cosines differ"


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(case: str) -> str:
    """Return a file-system-safe version of a case id (used for per-case result files).

    Parameters
    ----------
    case : str
        Case id.

    Returns
    -------
    str
        ``case`` with characters outside ``[A-Za-z0-9._-]`` replaced by ``_``
        and, when anything was replaced, a short hash appended so that
        distinct ids stay distinct.

    Examples
    --------
    >>> safe_name("case_01")
    'case_01'
    >>> safe_name("a b/c")[:6]
    'a_b_c-'
    """
    cleaned = _SAFE.sub("_", case)
    if cleaned == case:
        return case
    import hashlib

    return f"{cleaned}-{hashlib.sha1(case.encode()).hexdigest()[:8]}"
