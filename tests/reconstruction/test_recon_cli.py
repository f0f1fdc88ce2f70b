"""``medlens recon simulate`` and ``medlens recon run`` end to end on a small volume."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlens.cli import main
from medlens.cli._recon import parse_slices
from medlens.errors import MedlensError
from medlens.io import read_fastmri


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory, make_phantom) -> Path:
    d = tmp_path_factory.mktemp("recon_cli")
    ph = make_phantom(40)[:, 4:36]  # 40 x 32
    vol = np.stack([ph * (1 + 0.1 * k) for k in range(5)], axis=-1).astype(np.float32)
    affine = np.array([[1.5, 0, 0, -30.0], [0, 1.5, 0, -24.0], [0, 0, 3.0, -6.0], [0, 0, 0, 1]])
    path = d / "vol.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), path)
    return path


@pytest.fixture(scope="module")
def simulated(volume: Path) -> Path:
    out = volume.parent / "sim.h5"
    rc = main(["recon", "simulate", str(volume), str(out), "--coils", "6", "--accel", "3",
               "--acs", "12", "--slices", "1:4:2", "--seed", "5"])  # fmt: skip
    assert rc == 0
    return out


def test_simulate_writes_fastmri_file(simulated: Path) -> None:
    vol = read_fastmri(simulated)
    assert vol.kspace.shape == (2, 6, 48, 32)  # 40 rows padded to a multiple of 16
    assert vol.mask is not None and vol.mask.shape == (32,) and vol.mask[10:22].all()
    # undersampled lines are exactly zero, sampled ones are not
    assert np.all(vol.kspace[:, :, :, ~vol.mask] == 0)
    assert np.all(np.abs(vol.kspace[:, :, :, vol.mask]).sum(axis=(0, 1, 2)) > 0)
    assert vol.target is not None and vol.target.shape == (2, 48, 32)
    assert vol.maps is not None and vol.maps.shape == (6, 48, 32)
    assert vol.acceleration == 3 and vol.num_low_frequency == 12
    assert vol.recon_fov_mm == (72.0, 48.0, 6.0)  # 48 * 1.5, 32 * 1.5, 2 slices apart * 3 mm
    assert vol.attrs["acquisition"] == "MEDLENS_SIMULATED"


@pytest.mark.parametrize("method", ["zf", "grappa", "sense", "cs-wavelet", "tv"])
def test_run_methods_to_nifti(simulated: Path, method: str) -> None:
    out = simulated.parent / f"{method}.nii.gz"
    assert main(["recon", "run", str(simulated), str(out), "--method", method]) == 0
    img = nib.load(out)
    assert img.shape == (48, 32, 2)
    # geometry: the source grid, padded by 4 rows before, every second slice from slice 1
    np.testing.assert_allclose(
        img.affine,
        [[1.5, 0, 0, -36.0], [0, 1.5, 0, -24.0], [0, 0, 6.0, -3.0], [0, 0, 0, 1]],
        atol=1e-5,
    )
    rec = np.asarray(img.dataobj)
    target = read_fastmri(simulated).target
    assert target is not None
    err = np.linalg.norm(rec - np.moveaxis(target, 0, -1)) / np.linalg.norm(target)
    assert err < (0.5 if method == "zf" else 0.2)


def test_run_true_maps_to_h5(simulated: Path) -> None:
    import h5py

    out = simulated.parent / "sense_true.h5"
    assert main(["recon", "run", str(simulated), str(out), "--method", "sense",
                 "--maps", "true", "--iters", "20"]) == 0  # fmt: skip
    with h5py.File(out) as f:
        assert f["reconstruction"].shape == (2, 48, 32)


def test_run_errors(simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recon", "run", str(simulated), str(tmp_path / "x.png")]) == 2
    assert "must end in .h5" in capsys.readouterr().err
    assert main(["recon", "run", str(simulated), str(tmp_path / "x.h5"), "--method", "magic"]) == 2
    assert "unknown --method 'magic'" in capsys.readouterr().err
    assert main(["recon", "run", str(tmp_path / "none.h5"), str(tmp_path / "x.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["recon", "run", str(simulated), str(tmp_path / "x.h5"), "--method", "zf",
                 "--iters", "3"]) == 2  # fmt: skip
    assert "--iters does not apply" in capsys.readouterr().err
    assert main(["recon", "run", str(simulated), str(tmp_path / "x.h5"), "--method",
                 "varnet"]) == 2  # fmt: skip
    assert "needs --model" in capsys.readouterr().err


def test_simulate_errors(volume: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recon", "simulate", str(volume), str(tmp_path / "s.h5"), "--mask", "spiral"]) == 2
    assert "unknown --mask" in capsys.readouterr().err
    assert main(["recon", "simulate", str(volume), str(tmp_path / "s.h5"), "--slices", "9"]) == 2
    assert "select nothing valid" in capsys.readouterr().err


def test_parse_slices() -> None:
    assert parse_slices("3", 5) == [3]
    assert parse_slices(":2", 5) == [0, 1]
    with pytest.raises(MedlensError):
        parse_slices("x:y", 5)
