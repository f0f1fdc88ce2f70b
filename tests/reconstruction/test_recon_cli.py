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
        plain = f["reconstruction"][()]
    floor = simulated.parent / "sense_true_rss.h5"
    assert main(["recon", "run", str(simulated), str(floor), "--method", "sense", "--maps",
                 "true", "--iters", "20", "--magnitude", "expected-rss"]) == 0  # fmt: skip
    with h5py.File(floor) as f:
        with_floor = f["reconstruction"][()]
    # the expected RSS adds the noise floor: never below |x|, equal where |x| >> noise
    assert np.all(with_floor >= plain - 1e-6) and np.any(with_floor > plain)


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
    assert main(["recon", "run", str(simulated), str(tmp_path / "x.h5"), "--method", "sense",
                 "--magnitude", "loud"]) == 2  # fmt: skip
    assert "unknown --magnitude 'loud'" in capsys.readouterr().err


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


@pytest.fixture(scope="module")
def cmrxrecon_file(tmp_path_factory: pytest.TempPathFactory, make_phantom):  # type: ignore[no-untyped-def]
    """A CMRxRecon-2023-style cine file: kspace_sub04 (kx, ky, kc, kz, t) and its mask file."""
    from medlens.io import write_cmrxrecon
    from medlens.reconstruction import cmrxrecon_mask, simulate_kspace

    d = tmp_path_factory.mktemp("cmrx")
    ph = make_phantom(48)
    frames = []
    for t in range(3):
        sim = simulate_kspace(np.stack([ph * (1 + 0.2 * t), ph[::-1] * (1 + 0.2 * t)]),
                              coils=4, acceleration=1, acs=16, noise=0.002, seed=t)  # fmt: skip
        frames.append(sim.kspace)  # (kz=2, kc=4, kx=48, ky=48), fully sampled
    full = np.stack(frames)  # (t, kz, kc, kx, ky)
    mask = cmrxrecon_mask(48, 4, acs=16)
    sub = full * mask
    write_cmrxrecon(d / "cine_sax.mat", {"kspace_sub04": np.transpose(sub, (3, 4, 2, 1, 0))})
    write_cmrxrecon(d / "cine_sax_mask.mat",
                    {"mask04": np.broadcast_to(mask, (48, 48)).copy()})  # fmt: skip
    target = np.sqrt(np.sum(np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(
        full, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))) ** 2, axis=2))  # fmt: skip
    return d / "cine_sax.mat", d / "cine_sax_mask.mat", target, sub


def test_run_reads_cmrxrecon_mat(cmrxrecon_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import h5py

    from medlens.reconstruction import zero_filled

    mat, mask_mat, target, sub = cmrxrecon_file
    out = tmp_path / "cine.h5"
    assert main(["recon", "run", str(mat), str(out), "--method", "sense"]) == 0
    with h5py.File(out) as f:
        rec = f["reconstruction"][()]
    assert rec.shape == (3, 2, 48, 48)  # (t, kz, kx, ky)

    def err(x: np.ndarray) -> float:
        return float(np.linalg.norm(x - target) / np.linalg.norm(target))

    zf = np.stack([[zero_filled(sub[t, z]) for z in range(2)] for t in range(3)])
    assert err(rec) < 0.5 * err(zf), (err(rec), err(zf))
    # the mask file gives the same answer as the mask read from the data
    out2 = tmp_path / "cine_mask.h5"
    assert main(["recon", "run", str(mat), str(out2), "--method", "sense",
                 "--mask", str(mask_mat)]) == 0  # fmt: skip
    with h5py.File(out2) as f:
        np.testing.assert_allclose(f["reconstruction"][()], rec, rtol=1e-5, atol=1e-6)
    # one frame of the centre slice, zero-filled, to NIfTI (kx, ky, 1) on a 1 mm grid
    nii = tmp_path / "zf.nii.gz"
    assert main(["recon", "run", str(mat), str(nii), "--method", "zf", "--slices", "center",
                 "--frames", "2"]) == 0  # fmt: skip
    img = nib.load(nii)
    assert img.shape == (48, 48, 1)
    np.testing.assert_allclose(img.affine, np.eye(4))
    np.testing.assert_allclose(np.asarray(img.dataobj)[..., 0], zf[2, 1], rtol=1e-5, atol=1e-6)
    # all frames to NIfTI: (kx, ky, kz, t)
    assert main(["recon", "run", str(mat), str(nii), "--method", "zf"]) == 0
    np.testing.assert_allclose(np.asarray(nib.load(nii).dataobj),
                               np.transpose(zf, (2, 3, 1, 0)), rtol=1e-5, atol=1e-6)  # fmt: skip


def test_run_cmrxrecon_user_errors(cmrxrecon_file, simulated: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mat = cmrxrecon_file[0]
    out = str(tmp_path / "x.h5")
    assert main(["recon", "run", str(mat), out, "--maps", "true"]) == 2  # no maps in .mat
    assert main(["recon", "run", str(mat), out, "--key", "kspace_sub08"]) == 2
    assert main(["recon", "run", str(mat), out, "--frames", "7"]) == 2
    assert main(["recon", "run", str(simulated), out, "--frames", "0"]) == 2  # .mat only


def test_run_map_sets(tmp_path: Path, make_band) -> None:
    # a band that fills the field of view along the phase-encoding axis: cs-wavelet and sense
    # use two sets of ESPIRiT maps by default, --map-sets 1 gives the one-set result
    import h5py

    from medlens.io import write_fastmri
    from medlens.reconstruction import (
        estimate_maps,
        l1_wavelet_reconstruction,
        reconstruct_slice,
        rss,
        sense_reconstruction,
        simulate_kspace,
    )

    n = 64
    sim = simulate_kspace(make_band(n), coils=8, acceleration=4, acs=12, noise=0.005, seed=2)
    y, m = sim.masked_kspace[0], sim.mask
    two = estimate_maps(y, m, "espirit", sets=2)
    assert two.shape == (2, 8, n, n)
    np.testing.assert_allclose(
        reconstruct_slice(y, method="cs-wavelet", mask=m),
        rss(l1_wavelet_reconstruction(y, two, mask=m)), rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(
        reconstruct_slice(y, method="cs-wavelet", mask=m, sets=1),
        np.abs(l1_wavelet_reconstruction(y, estimate_maps(y, m, "espirit"), mask=m)),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(
        reconstruct_slice(y, method="sense", mask=m),
        rss(sense_reconstruction(y, two, mask=m)), rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    path = tmp_path / "band.h5"
    write_fastmri(path, sim.masked_kspace, mask=m, target=sim.target)
    outs = {}
    for flag in ([], ["--map-sets", "1"]):
        out = tmp_path / f"out{len(flag)}.h5"
        assert main(["recon", "run", str(path), str(out), "--no-crop", *flag]) == 0
        with h5py.File(out) as f:
            outs[len(flag)] = f["reconstruction"][()]
    ref = sim.target[0]
    err = {k: float(np.linalg.norm(v[0] - ref) / np.linalg.norm(ref)) for k, v in outs.items()}
    assert err[0] < 0.5 * err[2], err
