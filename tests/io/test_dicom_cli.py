"""``medlens info`` on DICOM: a CT file, series folders, malformed files, and the PHI rule."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medlens.cli import main
from tests.io.conftest import DICOMDIR_TESTS, sample

PHI_VALUES = ("CompressedSamples^CT1", "1CT1")  # CT_small.dcm's PatientName and PatientID


def _run(args, capsys):
    code = main(["info", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_info_on_a_ct_file(capsys):
    code, out, _ = _run([sample("CT_small.dcm"), "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["shape"] == [128, 128, 1]
    assert d["modality"] == "CT" and d["units"] == "HU"
    assert d["spacing_mm"] == [0.661468, 0.661468, 5.0]
    assert d["value_range"][0] >= -1024
    assert d["n_instances"] == 1
    assert "phi" not in d


def test_no_phi_without_the_flag(capsys):
    for args in ([], ["--json"]):
        code, out, err = _run([sample("CT_small.dcm"), *args], capsys)
        assert code == 0
        for v in PHI_VALUES:
            assert v not in out and v not in err


def test_phi_with_the_flag(capsys):
    code, out, _ = _run([sample("CT_small.dcm"), "--phi", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["phi"]["PatientName"] == PHI_VALUES[0] and d["phi"]["PatientID"] == PHI_VALUES[1]
    code, out, _ = _run([sample("CT_small.dcm"), "--phi"], capsys)
    assert all(v in out for v in PHI_VALUES)


def test_info_on_a_series_folder(capsys):
    code, out, _ = _run([DICOMDIR_TESTS / "98892001" / "CT5N", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["shape"] == [16, 16, 5] and d["n_instances"] == 5 and d["n_series_in_folder"] == 1
    assert d["spacing_mm"] == [0.488281, 0.488281, 2.5]


def test_info_on_a_folder_of_several_series_lists_them(capsys):
    folder = DICOMDIR_TESTS / "98892003"
    code, out, _ = _run([folder, "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["n_series"] == 7
    assert sorted(s["n_files"] for s in d["series"]) == [1, 1, 1, 1, 3, 3, 7]
    code, out, _ = _run([folder], capsys)
    assert code == 0 and "7 DICOM series" in out and "--series-uid" in out
    uid = next(s["series_instance_uid"] for s in d["series"] if s["n_files"] == 1)
    code, out, _ = _run([folder, "--series-uid", uid, "--json"], capsys)
    assert code == 0 and json.loads(out)["series_instance_uid"] == uid
    # the 3-file series are tri-planar localisers: not one volume
    uid = next(s["series_instance_uid"] for s in d["series"] if s["n_files"] == 3)
    code, _, err = _run([folder, "--series-uid", uid], capsys)
    assert code == 2 and "3 different orientations" in err


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("MR_truncated.dcm", "truncated pixel data"),
        ("rtplan.dcm", "holds no image"),
        ("no_meta.dcm", "not a DICOM file"),
    ],
)
def test_malformed_file_exits_2_naming_the_file(name, words, capsys):
    code, out, err = _run([sample(name)], capsys)
    assert code == 2
    assert name in err and words in err
    assert "Traceback" not in err + out


def test_nonuniform_series_exits_2_with_the_gaps(capsys):
    code, _, err = _run([DICOMDIR_TESTS / "77654033" / "CT2"], capsys)
    assert code == 2 and "slice spacing is not uniform" in err and "202.5 mm" in err


def test_console_script_end_to_end():
    r = subprocess.run(
        [sys.executable, "-m", "medlens.cli", "info", str(sample("MR_truncated.dcm"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "MR_truncated.dcm" in r.stderr and "Traceback" not in r.stderr
