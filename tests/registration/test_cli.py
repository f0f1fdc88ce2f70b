"""``medlens register`` end to end on the ITK slices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medlens.cli import main
from medlens.io import from_sitk, read_image, to_sitk


def test_register_rigid_writes_itk_transform_and_moved(tmp_path: Path, pairs: dict) -> None:
    pair = pairs["pd_shift13x17"]
    out = tmp_path / "out"
    code = main(["register", str(pair.fixed), str(pair.moving), "--model", "rigid",
                 "--metric", "mse", "-o", str(out)])
    assert code == 0
    summary = json.loads((out / "registration.json").read_text())
    assert summary["final_metrics"]["ncc"] > 0.99
    m = np.array(summary["matrix_ras_fixed_to_moving"])
    np.testing.assert_allclose(m[:2, 3], pair.transform.matrix[:2, 3], atol=0.1)
    # SimpleITK with the written file gives the written moved image
    fixed = read_image(pair.fixed)
    moving = read_image(pair.moving)
    tx = sitk.ReadTransform(str(out / "transform.tfm"))
    theirs = from_sitk(sitk.Resample(sitk.Cast(to_sitk(moving), sitk.sitkFloat32),
                                     to_sitk(fixed), tx, sitk.sitkLinear, 0.0))
    ours = read_image(out / "moved.mha")
    diff = np.abs(np.asarray(ours.array, float) - np.asarray(theirs.array, float))
    assert diff[2:-2, 2:-2].max() < 1e-3


def test_register_deformable_outputs(tmp_path: Path, pairs: dict) -> None:
    pair = pairs["pd_shift13x17"]
    out = tmp_path / "def"
    code = main(["register", str(pair.fixed), str(pair.moving), "--model", "deformable",
                 "--metric", "ncc", "--shrink", "4,2", "--iterations", "40", "-o", str(out)])
    assert code == 0
    for name in ("transform.h5", "moved.mha", "displacement.mha", "jacobian.mha"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "registration.json").read_text())
    assert summary["jacobian"]["fraction_nonpositive"] == 0.0
    assert summary["final_metrics"]["ncc"] > 0.95


def test_register_bad_option_is_a_user_error(tmp_path: Path, pairs: dict, capsys) -> None:
    pair = pairs["pd_shift13x17"]
    code = main(["register", str(pair.fixed), str(pair.moving), "--model", "bspline",
                 "-o", str(tmp_path)])
    assert code == 2
    assert "--model" in capsys.readouterr().err


def test_register_principal_axes_init(tmp_path: Path, pairs: dict, capsys) -> None:
    pair = pairs["pd_rot10"]
    out = tmp_path / "pa"
    code = main(["register", str(pair.fixed), str(pair.moving), "--model", "rigid",
                 "--init", "principal-axes", "--shrink", "4,2", "-o", str(out)])
    assert code == 0
    summary = json.loads((out / "registration.json").read_text())
    assert summary["initialization"] == "principal-axes"
    m = np.array(summary["matrix_ras_fixed_to_moving"])
    assert abs(abs(np.degrees(np.arctan2(m[1, 0], m[0, 0]))) - 10.0) < 0.3
    assert main(["register", str(pair.fixed), str(pair.moving), "--init", "pca",
                 "-o", str(tmp_path / "bad")]) == 2
    assert "--init" in capsys.readouterr().err
