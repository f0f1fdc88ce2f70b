"""The `medlens` command: version, help for every subcommand, info and convert."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import typer
from numpy.testing import assert_allclose

from medlens import Image, __version__
from medlens.cli import app, main
from medlens.io import read_image, write_image
from tests.conftest import oblique_affine


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medlens.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_version():
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"medlens {__version__}"


def _all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*prefix, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "medlens")
def test_every_command_has_help_describing_its_arguments(path, capsys):
    code = main([*path, "--help"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Usage" in out
    root = typer.main.get_command(app)
    cmd = root
    for name in path:
        cmd = cmd.commands[name]
    assert cmd.help or cmd.short_help, f"{path} has no help text"
    for param in cmd.params:
        if type(param).__name__.endswith("Option") and param.name not in ("help",):
            assert param.help, f"option {param.opts} of {path} has no help text"


def test_info_prints_geometry(tmp_path, capsys):
    write_image(Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), oblique_affine()),
                tmp_path / "a.nii.gz")
    assert main(["info", str(tmp_path / "a.nii.gz"), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"shape": [\n    3,\n    4,\n    5\n  ]' in out or '"shape": [3, 4, 5]' in out
    assert '"value_range"' in out and "59" in out


def test_user_errors_exit_2_with_the_file_named(tmp_path):
    out = _run("info", str(tmp_path / "missing.nii.gz"))
    assert out.returncode == 2
    assert "missing.nii.gz" in out.stderr and "no such file" in out.stderr
    assert "Traceback" not in out.stderr
    bad = tmp_path / "bad.mha"
    bad.write_text("garbage")
    out = _run("convert", str(bad), str(tmp_path / "o.nii.gz"))
    assert out.returncode == 2 and "bad.mha" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_convert_reorients_and_resamples(tmp_path):
    src = tmp_path / "in.mha"
    img = Image(np.random.default_rng(0).normal(size=(6, 5, 4)).astype(np.float32),
                np.diag([-1.0, -1.0, 2.0, 1.0]))
    write_image(img, src)
    before = src.read_bytes()
    assert main(["convert", str(src), str(tmp_path / "o.nii.gz"), "--reorient", "RAS",
                 "--spacing", "1", "1", "1"]) == 0
    out = read_image(tmp_path / "o.nii.gz")
    assert out.orientation == "RAS" and out.spacing == (1.0, 1.0, 1.0)
    assert out.spatial_shape == (6, 5, 8)
    # same world extent: centre of the field of view unchanged
    centre_in = img.voxel_to_world((np.array(img.spatial_shape) - 1) / 2)
    centre_out = out.voxel_to_world((np.array(out.spatial_shape) - 1) / 2)
    assert_allclose(centre_in, centre_out, atol=1e-6)
    assert src.read_bytes() == before
