from __future__ import annotations

import shutil
import subprocess

import pytest

from medlens.datasets import DatasetUnavailableError, SourcePackage, _sources, fetch
from medlens.datasets._brain import ITK_EXAMPLES
from medlens.errors import MedlensError

BOGUS_DEB = SourcePackage(kind="debian", name="medlens-no-such-package", version="1.0-1",
                          url="pool/main/m/medlens/medlens-no-such-package_1.0-1_all.deb")
BOGUS_WHEEL = SourcePackage(kind="pypi", name="medlens-no-such-package", version="0.0.1")


def test_bogus_debian_package(tmp_path):
    with pytest.raises(DatasetUnavailableError) as e:
        _sources.fetch_debian(BOGUS_DEB, tmp_path / "x", downloads=tmp_path / "downloads")
    msg = str(e.value)
    assert isinstance(e.value, MedlensError)
    assert "Debian package medlens-no-such-package (version 1.0-1)" in msg
    assert "apt-get download medlens-no-such-package" in msg
    assert "sudo apt-get update" in msg
    assert str(tmp_path / "downloads") in msg


def test_no_apt_get(tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(_sources.shutil, "which",
                        lambda cmd: None if cmd == "apt-get" else real_which(cmd))
    with pytest.raises(DatasetUnavailableError, match="apt-get is not available") as e:
        _sources.fetch_debian(ITK_EXAMPLES, tmp_path / "x", downloads=tmp_path / "dl")
    assert "https://deb.debian.org/debian/pool/main/i/insighttoolkit5/" in str(e.value)


def test_missing_apt_lists_says_update(tmp_path, monkeypatch):
    monkeypatch.setattr(_sources, "APT_LISTS", tmp_path / "empty-lists")

    def no_lists(cmd, cwd):
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package x")

    monkeypatch.setattr(_sources, "_run", no_lists)
    with pytest.raises(DatasetUnavailableError, match=r"no package lists.*apt-get update"):
        _sources.fetch_debian(ITK_EXAMPLES, tmp_path / "x", downloads=tmp_path / "dl")


def test_bogus_pypi_package(tmp_path):
    with pytest.raises(DatasetUnavailableError) as e:
        _sources.fetch_pypi(BOGUS_WHEEL, tmp_path / "x", downloads=tmp_path / "dl",
                            members=("x/",))
    msg = str(e.value)
    assert "PyPI package medlens-no-such-package==0.0.1" in msg
    assert "-m pip download --no-deps medlens-no-such-package==0.0.1 -d" in msg


def test_fetch_reports_missing_package(tmp_path, monkeypatch):
    """A dataset whose source is gone fails with the package's name and the command."""
    from medlens.datasets import _brain

    monkeypatch.setattr(_brain, "MRICRON_DATA", BOGUS_DEB)
    with pytest.raises(DatasetUnavailableError, match="medlens-no-such-package"):
        fetch("brain-extraction", cache_dir=tmp_path)
    assert not (tmp_path / "brain-extraction").exists()


@pytest.fixture(scope="module")
def itk_deb(tmp_path_factory):
    d = tmp_path_factory.mktemp("deb")
    return _sources._apt_download(ITK_EXAMPLES, d, d)


def test_pinned_version_downloaded(itk_deb):
    assert _sources._deb_version(itk_deb) == ITK_EXAMPLES.version


def test_python_deb_unpacker_matches_dpkg(itk_deb, tmp_path):
    _sources._extract_deb(itk_deb, tmp_path / "dpkg")
    _sources._extract_deb_python(itk_deb, tmp_path / "py")

    def listing(root):
        return sorted((p.relative_to(root).as_posix(), p.stat().st_size)
                      for p in root.rglob("*") if p.is_file())

    assert listing(tmp_path / "dpkg") == listing(tmp_path / "py")
    assert len(listing(tmp_path / "py")) > 50


def test_hand_downloaded_deb_is_used(itk_deb, tmp_path, no_download):
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    shutil.copy(itk_deb, downloads)
    ds = fetch("registration-2d", cache_dir=tmp_path / "cache")
    assert ds.card.sources[0].version_used == ITK_EXAMPLES.version


def test_unpinned_fallback_records_version_used(tmp_path, monkeypatch):
    """When the pinned version is gone, the available one is used and recorded."""
    old = SourcePackage(kind="debian", name=ITK_EXAMPLES.name, version="0.0-0")
    up = _sources.fetch_debian(old, tmp_path / "x", downloads=tmp_path / "dl")
    assert up.package.version == "0.0-0"
    assert up.package.version_used == ITK_EXAMPLES.version
    assert "Apache" in up.license_text


def test_installed_wheel_copy_needs_no_download(tmp_path, monkeypatch):
    """pydicom is installed at the pinned version: its files are copied, pip is not run."""
    from medlens.datasets._dicom import PYDICOM

    def refuse(*args, **kwargs):
        raise AssertionError("pip download attempted")

    monkeypatch.setattr(_sources, "_pip_download", refuse)
    up = _sources.fetch_pypi(PYDICOM, tmp_path / "x", downloads=tmp_path / "dl",
                             members=("pydicom/data/test_files/",))
    assert up.package.version_used == "3.0.2"
    assert (up.root / "pydicom/data/test_files/CT_small.dcm").is_file()
    assert not (up.root / "pydicom/dataset.py").exists()  # only the members asked for
    assert "MIT" in up.license_text or "Permission is hereby granted" in up.license_text


def test_pypi_pinned_version_gone_uses_newest(tmp_path):
    old = SourcePackage(kind="pypi", name="nilearn", version="0.0.1")
    up = _sources.fetch_pypi(old, tmp_path / "x", downloads=tmp_path / "dl",
                             members=("nilearn/datasets/data/mni_icbm152_t1",))
    assert up.package.version == "0.0.1" and up.package.version_used not in (None, "0.0.1")
    assert list((up.root / "nilearn/datasets/data").glob("mni_icbm152_t1_*.nii.gz"))
    assert "BSD" in up.license_text or "Redistribution" in up.license_text
