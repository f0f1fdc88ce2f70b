"""Fixtures for the DICOM tests: where pydicom's and pydicom-data's sample files live."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
DICOMDIR_TESTS = PYDICOM_FILES / "dicomdirtests"


def _pydicom_data() -> Path:
    """pydicom-data's files; a missing package fails the DICOM tests, not collection."""
    try:
        import data_store  # the pydicom-data package (installed by the Makefile for tests)
    except ImportError:  # pragma: no cover - test_sample_collections_are_installed says so
        return Path("pydicom-data-is-not-installed")
    return Path(data_store.__file__).parent / "data"


PYDICOM_DATA = _pydicom_data()


def sample(name: str) -> Path:
    """A sample file by name, from pydicom's test files or pydicom-data."""
    for base in (PYDICOM_FILES, PYDICOM_DATA):
        if (base / name).is_file():
            return base / name
    raise FileNotFoundError(name)


def all_sample_files() -> list[Path]:
    """Every ``.dcm`` file of both collections (found at test time), sorted by name."""
    files = list(PYDICOM_FILES.glob("*.dcm")) + list(PYDICOM_DATA.glob("*.dcm"))
    return sorted(files, key=lambda p: (p.name, str(p)))


def read_sitk(path: Path):
    """SimpleITK's reading of a DICOM file, or None if it cannot read it."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return reader.Execute()
        except RuntimeError:
            return None


@pytest.fixture(scope="session", autouse=True)
def _quiet_itk():
    import SimpleITK as sitk

    old = sitk.ProcessObject_GetGlobalWarningDisplay()
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    yield
    sitk.ProcessObject_SetGlobalWarningDisplay(old)


@pytest.fixture
def ct_volume(rng):
    """A small oblique CT-like volume in HU (int16) for writer / reader round trips."""
    from medlens import Image
    from tests.conftest import oblique_affine

    arr = rng.integers(-1024, 2000, size=(12, 10, 6)).astype(np.int16)
    return Image(arr, oblique_affine(spacing=(0.7, 0.8, 2.5)))
