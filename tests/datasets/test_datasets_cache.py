from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlens.datasets import cache_root, fetch, verify_manifest
from medlens.datasets._cache import MANIFEST, sha256_file


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDLENS_DATA", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MEDLENS_DATA")
    assert cache_root() == Path.home() / ".cache" / "medlens"


def test_fetch_uses_medlens_data(session_cache):
    ds = fetch("registration-2d")
    assert ds.root == session_cache / "registration-2d"
    assert (session_cache / "packages").is_dir()


def test_manifest_lists_every_file(session_cache):
    ds = fetch("registration-2d")
    files = json.loads((ds.root / MANIFEST).read_text())["files"]
    on_disk = {p.relative_to(ds.root).as_posix() for p in ds.root.rglob("*")
               if p.is_file() and p.name != MANIFEST}
    assert set(files) == on_disk
    for rel, digest in files.items():
        assert sha256_file(ds.root / rel) == digest
    # no temporary build folders left behind
    assert not list(session_cache.glob(".build-*")) and not list(session_cache.glob(".trash-*"))


def test_corrupted_dataset_detected_and_rebuilt(no_download):
    ds = fetch("registration-2d")
    victim = ds.case("pd_rot10").images[0]
    good = victim.read_bytes()
    victim.write_bytes(good[:-10] + b"corrupted!")
    assert verify_manifest(ds.root) == ["images/pd_rot10.mha: sha256 mismatch"]
    again = fetch("registration-2d")  # rebuilt from the unpacked package: no download
    assert victim.read_bytes() == good
    assert verify_manifest(again.root) == []


def test_deleted_file_detected_and_rebuilt(no_download):
    ds = fetch("registration-2d")
    ds.extras["transforms"].unlink()
    assert verify_manifest(ds.root) == ["transforms.json: missing"]
    assert fetch("registration-2d").extras["transforms"].is_file()


def test_corrupted_package_is_downloaded_again(tmp_path):
    root = tmp_path / "cache"
    fetch("registration-2d", cache_dir=root)
    pkg = next(root.glob("packages/debian-insighttoolkit5-examples-*"))
    victim = next((pkg / "files").rglob("BrainT1SliceBorder20.png"))
    victim.write_bytes(b"not a png")
    assert any("sha256 mismatch" in p for p in verify_manifest(pkg))
    # the dataset itself is intact, so it is reused as is ...
    fetch("registration-2d", cache_dir=root)
    assert victim.read_bytes() == b"not a png"
    # ... and when it must be rebuilt, the package is fetched afresh first
    (root / "registration-2d" / MANIFEST).write_text("{}")
    ds = fetch("registration-2d", cache_dir=root)
    assert verify_manifest(pkg) == [] and verify_manifest(ds.root) == []


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    from medlens.datasets import _registration2d

    def boom(ctx):
        (ctx.out / "half-written").write_text("x")
        raise RuntimeError("killed")

    from medlens.datasets import _api

    entry = _api._REGISTRY["registration-2d"]
    monkeypatch.setitem(_api._REGISTRY, "registration-2d",
                        _api._Entry(entry.card, boom))
    with pytest.raises(RuntimeError, match="killed"):
        fetch("registration-2d", cache_dir=tmp_path)
    assert not (tmp_path / "registration-2d").exists()
    assert [p.name for p in tmp_path.iterdir()] == []
    assert _registration2d.REGISTRATION_2D is entry.card


def test_outdated_builder_output_is_rebuilt(no_download):
    from medlens.datasets._build import RECORD

    ds = fetch("registration-2d")
    rec = json.loads((ds.root / RECORD).read_text())
    assert rec["builder_version"] == 1
    rec["builder_version"] = 0  # as if written by an older medlens
    (ds.root / RECORD).write_text(json.dumps(rec))
    from medlens.datasets._cache import write_manifest

    write_manifest(ds.root)  # intact, but outdated
    again = fetch("registration-2d")
    assert json.loads((again.root / RECORD).read_text())["builder_version"] == 1


def test_cache_that_is_a_file_is_a_path_error(tmp_path):
    from medlens.datasets import DatasetError, DatasetPathError

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DatasetPathError) as err:
        fetch("phantom-kidney", n_cases=1, cache_dir=afile)
    e = err.value
    assert isinstance(e, DatasetError) and isinstance(e, OSError)  # old handlers still catch it
    assert e.path == str(afile) and e.reason == "dataset cache: is a file, not a folder"
    assert str(e) == f"{afile}: dataset cache: is a file, not a folder"
    assert afile.read_text() == "x"


def test_unwritable_place_for_the_cache_is_a_path_error(monkeypatch):
    from medlens.datasets import DatasetPathError

    monkeypatch.setenv("MEDLENS_DATA", "/proc/nope")
    with pytest.raises(DatasetPathError, match=r"^/proc/nope: dataset cache: "):
        fetch("phantom-kidney", n_cases=1)


def test_export_to_a_file_is_refused_before_fetching(tmp_path, monkeypatch):
    from medlens.datasets import DatasetPathError, _api, export_nnunet

    def no_fetch(*a, **k):
        raise AssertionError("fetched before checking the output folder")

    monkeypatch.setattr(_api, "fetch", no_fetch)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "raw"):
        with pytest.raises(DatasetPathError, match="export folder: .*is a file, not a folder"):
            export_nnunet("brain-parcellation", out)


def test_export_write_failure_is_a_path_error_and_leaves_nothing(tmp_path, monkeypatch):
    from medlens.datasets import DatasetPathError, _nnunet, export_nnunet

    def full(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(_nnunet, "_copy_as_nifti", full)
    with pytest.raises(DatasetPathError, match="No space left on device") as err:
        export_nnunet("phantom-kidney", tmp_path / "raw", n_cases=1,
                      cache_dir=tmp_path / "cache")
    assert err.value.path.endswith("_0000.nii.gz")
    assert list((tmp_path / "raw").iterdir()) == []
