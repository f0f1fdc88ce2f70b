"""Atomic file output: write to a temporary name in the same folder, then rename.

A reader never sees a half-written file, and a killed job leaves the previous
version (or nothing) in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_json", "atomic_write_text", "full_suffix"]


def full_suffix(path: str | os.PathLike[str]) -> str:
    """Lower-case suffix including a compression suffix, e.g. ``".nii.gz"``.

    Examples
    --------
    >>> full_suffix("case_0000.NII.GZ"), full_suffix("a.b/scan.mha"), full_suffix("dir/x")
    ('.nii.gz', '.mha', '')
    """
    name = Path(path).name.lower()
    for double in (".nii.gz", ".tar.gz"):
        if name.endswith(double):
            return double
    return Path(name).suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file keeps the full suffix of ``path`` so that writers which
    pick the format from the name (SimpleITK, nibabel) still do. Formats that
    write a header and a separate data file (``.mhd``/``.raw``, ``.nhdr``/``.raw``)
    are written into a temporary folder and moved file by file, data first and
    header last. On error nothing is left behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp = tmpdir / target.name
    try:
        yield tmp
        produced = sorted(tmpdir.iterdir(), key=lambda p: p.name == target.name)
        if tmp not in produced:
            raise FileNotFoundError(f"writer did not create {tmp}")
        for p in produced:  # header (the target name) moves last
            os.replace(p, target.parent / p.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")
