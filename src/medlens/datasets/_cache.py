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
from medlens.datasets._errors import DatasetPathError

__all__ = [
    "MANIFEST",
    "build_atomically",
    "cache_root",
    "check_folder_path",
    "ensure_folder",
    "make_temp_folder",
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


def _path_problem(path: Path, err: OSError) -> str:
    """Why ``path`` cannot be (made) a folder, from the error and its nearest existing ancestor."""
    if isinstance(err, PermissionError):
        return "permission denied"
    why = err.strerror or str(err)
    for p in (path, *path.parents):
        if not p.exists():
            continue
        if not p.is_dir():
            return "is a file, not a folder" if p == path else f"{p} is a file, not a folder"
        return why if p == path else f"cannot create a folder in {p} ({why})"
    return why


def ensure_folder(path: Path, what: str) -> None:
    """``mkdir -p path``; a user mistake (a file there, no permission ...) is a DatasetPathError.

    Parameters
    ----------
    path : pathlib.Path
        The folder.
    what : str
        What the folder is for, for the message (``"cache folder"``).

    Raises
    ------
    DatasetPathError
        Naming ``path`` and the reason.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "afile"
    >>> _ = f.write_text("x")
    >>> try:
    ...     ensure_folder(f, "cache folder")
    ... except DatasetPathError as e:
    ...     print(e.reason)
    cache folder: is a file, not a folder
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetPathError(path, f"{what}: {_path_problem(path, e)}") from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise DatasetPathError(path, f"{what}: not writable")


def check_folder_path(path: Path, what: str) -> None:
    """Refuse early, without creating anything, a folder path that is or lies under a file."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                reason = "is a file, not a folder" if p == path else f"{p} is a file, not a folder"
                raise DatasetPathError(path, f"{what}: {reason}")
            return


def make_temp_folder(parent: Path, prefix: str, what: str) -> Path:
    """``tempfile.mkdtemp`` in ``parent`` (created first), errors as :class:`DatasetPathError`."""
    ensure_folder(parent, what)
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as e:
        raise DatasetPathError(parent, f"{what}: {_path_problem(parent, e)}") from e


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
    tmp = make_temp_folder(target.parent, f".build-{target.name}-", "cache folder")
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
