"""Review fixes in the DICOM readers: a DICOMDIR file given where an image is expected."""

from __future__ import annotations

import subprocess
import sys

import pydicom
import pytest

from medlens.cli import main
from medlens.io import UnsupportedFormatError, list_dicom_series, read_dicom_file, read_image
from tests.io.conftest import DICOMDIR_TESTS

DICOMDIR = DICOMDIR_TESTS / "DICOMDIR"


def test_the_sample_is_a_media_storage_directory():
    ds = pydicom.dcmread(DICOMDIR)
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert "SOPClassUID" not in ds and "PixelData" not in ds


@pytest.mark.parametrize("reader", [read_image, read_dicom_file])
def test_reading_a_dicomdir_says_what_it_is_and_to_pass_the_folder(reader):
    with pytest.raises(UnsupportedFormatError) as err:
        reader(DICOMDIR)
    msg = str(err.value)
    assert "DICOMDIR (Media Storage Directory)" in msg
    assert f"pass its folder instead: {DICOMDIR_TESTS}" in msg
    assert "unknown object" not in msg
    assert err.value.path == str(DICOMDIR)


def test_a_dicomdir_without_file_meta_is_recognised_by_its_records(tmp_path):
    ds = pydicom.dcmread(DICOMDIR)
    out = tmp_path / "sub" / "DICOMDIR"
    out.parent.mkdir()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.3"  # a wrong header: the records still tell
    ds.save_as(out, enforce_file_format=False)
    with pytest.raises(UnsupportedFormatError, match=r"DICOMDIR .*pass its folder instead: "):
        read_image(out)


def test_the_folder_it_indexes_reads():
    series = list_dicom_series(DICOMDIR_TESTS)
    assert len(series) > 1  # the folder is what to pass; the DICOMDIR is skipped there
    assert all("DICOMDIR" not in f for s in series for f in s.files)


def test_info_on_a_dicomdir_is_one_line_and_exit_2(capsys):
    code = main(["info", str(DICOMDIR)])
    err = capsys.readouterr().err
    assert code == 2
    assert "DICOMDIR (Media Storage Directory)" in err and str(DICOMDIR_TESTS) in err
    assert "Traceback" not in err and "unknown object" not in err


def test_info_on_a_dicomdir_from_the_shell():
    r = subprocess.run(
        [sys.executable, "-m", "medlens.cli", "info", str(DICOMDIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert "DICOMDIR (Media Storage Directory)" in r.stderr
    assert "Traceback" not in r.stderr
