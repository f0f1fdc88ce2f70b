"""`medlens datasets list | info | fetch | export`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from medlens.cli import main
from tests.datasets.datasets_nnunet_check import nnunet_problems


def _run(*args: str, env_cache=None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    if env_cache is not None:
        env["MEDLENS_DATA"] = str(env_cache)
    return subprocess.run([sys.executable, "-m", "medlens.cli", "datasets", *args],
                          capture_output=True, text=True, encoding="utf-8", timeout=300, env=env)


def test_list():
    r = _run("list")
    assert r.returncode == 0
    out = r.stdout
    for name in ("brain-extraction", "brain-tissue", "brain-parcellation", "dicom-samples",
                 "registration-2d", "phantom-kidney"):
        assert name in out


def test_info_before_and_after_fetch(tmp_path):
    out = _run("info", "registration-2d", "--cache", str(tmp_path)).stdout
    assert "can show:" in out and "cannot show:" in out and "insighttoolkit5-examples" in out
    assert "medlens datasets fetch registration-2d" in out
    assert main(["datasets", "fetch", "registration-2d", "--cache", str(tmp_path)]) == 0
    out = _run("info", "registration-2d", "--cache", str(tmp_path), "--license").stdout
    assert "used 5.2.1-5+deb12u1" in out
    assert "Files: *" in out and "License: Apache-2.0" in out  # the Debian copyright file


def test_info_lists_malformed():
    out = _run("info", "dicom-samples").stdout
    assert "! pydicom/MR_truncated.dcm: Pixel Data truncated" in out


def test_fetch_phantom_and_export(tmp_path):
    r = _run("fetch", "phantom-kidney", "--n-cases", "2", "--n-test", "1", "--seed", "5",
             env_cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "1 train / 1 test cases" in r.stdout
    assert "phantom-kidney-seed5-n2-test1" in r.stdout
    r = _run("export", "phantom-kidney", str(tmp_path / "raw"), "--format", "nnunet",
             "--n-cases", "2", "--n-test", "1", "--seed", "5", "--cache",
             str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "raw" / "Dataset905_PhantomKidney"
    assert r.stdout.strip() == str(folder)
    assert nnunet_problems(folder) == []
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 1


@pytest.mark.parametrize("args, message", [
    (["fetch", "brain-extractor"], "unknown dataset 'brain-extractor'"),
    (["info", "nope"], "unknown dataset 'nope'"),
    (["export", "brain-extraction", "OUT", "--format", "msd"], "unknown export format 'msd'"),
    (["export", "dicom-samples", "OUT"], "no labelled training case"),
    (["fetch", "brain-extraction", "--n-cases", "3"], "takes no n_cases"),
])
def test_user_errors_exit_2(tmp_path, args, message):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    r = _run(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_help_texts():
    for sub in ("list", "info", "fetch", "export"):
        r = _run(sub, "--help")
        assert r.returncode == 0
        assert "Usage" in r.stdout
    r = _run("fetch", "--help")
    assert "--cache" in r.stdout and "MEDLENS_DATA" in r.stdout and "--n-cases" in r.stdout


def test_fetch_summaries_for_image_only_and_unsplit_sets():
    r = _run("fetch", "dicom-samples")
    assert r.returncode == 0, r.stderr
    assert "dicom-samples: 146 image files and 7 series folders (image-only, no training " \
           "labels)" in r.stdout
    assert "0 train" not in r.stdout
    r = _run("fetch", "registration-2d")
    assert r.returncode == 0, r.stderr
    assert ("registration-2d: 12 images, no train / test split (1 with a label), "
            "11 registration pairs") in r.stdout


@pytest.mark.parametrize("args, env, shown, reason", [
    (["fetch", "phantom-kidney", "--n-cases", "1"], "/proc/nope", "/proc/nope",
     "dataset cache: cannot create a folder in /proc"),
    (["fetch", "phantom-kidney", "--cache", "AFILE"], None, "AFILE",
     "dataset cache: is a file, not a folder"),
    (["fetch", "phantom-kidney", "--cache", "AFILE/sub"], None, "AFILE/sub",
     "dataset cache: AFILE is a file, not a folder"),
    (["export", "brain-parcellation", "AFILE"], None, "AFILE",
     "export folder: is a file, not a folder"),
    (["export", "brain-parcellation", "/proc/sys/x"], None, "/proc/sys/x",
     "export folder: "),
])
def test_path_mistakes_exit_2_with_one_line(tmp_path, args, env, shown, reason):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")

    def sub(text):
        return text.replace("AFILE", str(afile))

    r = _run(*map(sub, args), env_cache=env)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {sub(shown)}: ")
    assert sub(reason) in lines[0]
    assert afile.read_text() == "not a folder"
