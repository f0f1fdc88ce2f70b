"""The dataset cache: where it is, sha256 manifests, atomic builds.

Layout under the cache root (``~/.cache/medlens``, ``$MEDLENS_DATA`` or
``cache_dir=``)::

    downloads/                     hand-downloaded .deb / .whl files (optional)
    packages/<kind>-<name>-<ver>/  unpacked source packages, each with a manifest
    <dataset>/                     one folder per dataset, with a manifest

Every folder is built under a temporary name in the root and renamed into place
once complete, with a ``manifest.json`` that lists the sha256 of every file. A
folder is reused only if every file still matches its manifest; otherwise it is
rebuilt (and swapped in atomically).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from medlens._atomic import atomic_write_json

__all__ = [
    "MANIFEST",
    "build_atomically",
    "cache_root",
    "sha256_file",
    "verify_manifest",
    "write_manifest",
]

MANIFEST = "manifest.json"
ENV_VAR = "MEDLENS_DATA"
_log = logging.getLogger("medlens.datasets")


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the cache root: ``cache_dir``, else ``$MEDLENS_DATA``, else ``~/.cache/medlens``.

    Examples
    --------
    >>> str(cache_root("/tmp/medlens-cache"))
    '/tmp/medlens-cache'
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "medlens"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: Path) -> dict[str, str]:
    """Write ``folder/manifest.json`` listing the sha256 of every other file; return it."""
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in _files(folder)}
    atomic_write_json(folder / MANIFEST, {"format": 1, "files": files})
    return files


def verify_manifest(folder: Path) -> list[str]:
    """Check a folder against its manifest; return the problems (empty when intact).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x")
    >>> _ = write_manifest(d)
    >>> verify_manifest(d)
    []
    >>> _ = (d / "a.txt").write_text("y")
    >>> verify_manifest(d)
    ['a.txt: sha256 mismatch']
    """
    mf = folder / MANIFEST
    if not mf.is_file():
        return [f"{mf}: missing"]
    try:
        files = json.loads(mf.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [f"{mf}: unreadable ({e})"]
    problems = []
    for rel, digest in files.items():
        p = folder / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(p) != digest:
            problems.append(f"{rel}: sha256 mismatch")
    return problems


def build_atomically(
    root: Path,
    name: str,
    build: Callable[[Path], None],
    *,
    is_current: Callable[[Path], bool] | None = None,
) -> tuple[Path, bool]:
    """Return ``root/name``, building it with ``build(tmp_folder)`` unless intact.

    Parameters
    ----------
    root : pathlib.Path
        Cache root (created if missing).
    name : str
        Folder name (may contain ``/`` for a sub-folder such as ``packages/x``).
    build : callable
        Fills an empty temporary folder; the manifest is written afterwards.
    is_current : callable, optional
        Called on an intact folder; returning False (e.g. it was built by an older
        version of the builder) rebuilds it.

    Returns
    -------
    path : pathlib.Path
        The folder.
    built : bool
        False when an intact folder was reused.
    """
    target = root / name
    if target.is_dir():
        problems = verify_manifest(target)
        if not problems and (is_current is None or is_current(target)):
            return target, False
        _log.warning("rebuilding %s: %s", target, "; ".join(problems[:5]) or "outdated")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=target.parent))
    trash: Path | None = None
    try:
        build(tmp)
        write_manifest(tmp)
        if target.exists():
            trash = target.parent / f".trash-{target.name}-{uuid.uuid4().hex[:8]}"
            os.replace(target, trash)
        try:
            os.replace(tmp, target)
        except OSError:
            # another process put an intact copy in place meanwhile: use it
            if target.is_dir() and not verify_manifest(target):
                return target, True
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    return target, True
