"""k-space I/O: fastMRI HDF5 and CMRxRecon .mat round trips, peer loaders, clear errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from medlens.errors import MedlensError
from medlens.io import (
    ImageReadError,
    KspaceReadError,
    ismrmrd_header,
    read_cmrxrecon,
    read_cmrxrecon_mask,
    read_fastmri,
    write_cmrxrecon,
    write_fastmri,
)

RNG = np.random.default_rng(7)


def _ksp(shape: tuple[int, ...]) -> np.ndarray:
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)


def test_fastmri_round_trip(tmp_path: Path) -> None:
    k = _ksp((3, 4, 10, 8))
    mask = np.zeros(8, bool)
    mask[[0, 3, 4, 7]] = True
    target = np.abs(RNG.standard_normal((3, 10, 8))).astype(np.float32)
    maps = _ksp((4, 10, 8))
    path = tmp_path / "file_brain_001.h5"
    write_fastmri(
        path, k * mask, mask=mask, target=target, maps=maps,
        attrs={"acceleration": 4, "num_low_frequency": 2}, fov_mm=(220.0, 176.0, 5.0),
    )  # fmt: skip
    vol = read_fastmri(path)
    np.testing.assert_array_equal(vol.kspace, k * mask)
    np.testing.assert_array_equal(vol.mask, mask)
    np.testing.assert_array_equal(vol.target, target)
    np.testing.assert_array_equal(vol.maps, maps)
    assert vol.encoded_size == (10, 8, 1) and vol.recon_size == (10, 8, 1)
    assert vol.recon_fov_mm == (220.0, 176.0, 5.0)
    assert vol.acceleration == 4 and vol.num_low_frequency == 2
    assert vol.attrs["acquisition"] == "CORPD_FBK"
    assert vol.attrs["patient_id"] == "file_brain_001"
    np.testing.assert_allclose(vol.attrs["max"], target.max())
    np.testing.assert_allclose(vol.attrs["norm"], np.linalg.norm(target), rtol=1e-6)
    assert vol.multicoil
    part = read_fastmri(path, slices=slice(1, 2))
    np.testing.assert_array_equal(part.kspace, (k * mask)[1:2])
    # the raw layout is exactly fastMRI's
    with h5py.File(path) as f:
        assert f["kspace"].dtype == np.complex64 and f["kspace"].shape == (3, 4, 10, 8)
        assert f["reconstruction_rss"].dtype == np.float32


def test_fastmri_single_coil_and_real_header(tmp_path: Path) -> None:
    # a hand-made single-coil file with a knee-like header (640x368 encoded, 320x320 recon)
    path = tmp_path / "sc.h5"
    xml = ismrmrd_header((640, 368, 1), (320, 320, 1), encoded_fov_mm=(280.0, 161.0, 4.5),
                         recon_fov_mm=(140.0, 140.0, 3.0))  # fmt: skip
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=_ksp((2, 64, 36)))
        f.create_dataset("reconstruction_esc", data=np.ones((2, 32, 32), np.float32))
        f.create_dataset("ismrmrd_header", data=xml.encode())
        f.attrs["acquisition"] = "CORPDFS_FBK"
    vol = read_fastmri(path)
    assert vol.kspace.shape == (2, 1, 64, 36) and not vol.multicoil
    assert vol.encoded_size == (640, 368, 1) and vol.recon_size == (320, 320, 1)
    assert vol.encoded_fov_mm == (280.0, 161.0, 4.5)
    assert vol.target is not None and vol.target.shape == (2, 32, 32)


def test_fastmri_own_loader_reads_our_file(tmp_path: Path) -> None:
    mri_data = pytest.importorskip("fastmri.data.mri_data")
    k = _ksp((2, 3, 12, 10))
    write_fastmri(tmp_path / "a.h5", k, target=np.ones((2, 12, 10), np.float32))
    ds = mri_data.SliceDataset(tmp_path, challenge="multicoil")
    assert len(ds) == 2
    kspace, mask, target, attrs, fname, dataslice = ds[1]
    np.testing.assert_array_equal(kspace, k[1])
    assert mask is None and target.shape == (12, 10)
    assert attrs["recon_size"] == (12, 10, 1) and attrs["encoding_size"] == (12, 10, 1)
    assert attrs["padding_left"] == 0 and attrs["padding_right"] == 10
    assert fname == "a.h5" and dataslice == 1


def test_fastmri_errors(tmp_path: Path) -> None:
    with pytest.raises(KspaceReadError, match="no such file") as info:
        read_fastmri(tmp_path / "missing.h5")
    assert isinstance(info.value, ImageReadError) and isinstance(info.value, MedlensError)
    assert "missing.h5" in str(info.value)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(KspaceReadError, match="not a readable HDF5"):
        read_fastmri(tmp_path / "text.h5")
    good = tmp_path / "good.h5"
    write_fastmri(good, _ksp((2, 2, 16, 16)))
    data = good.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(KspaceReadError, match=r"trunc\.h5"):
        read_fastmri(tmp_path / "trunc.h5")
    with h5py.File(tmp_path / "nok.h5", "w") as f:
        f.create_dataset("image", data=np.zeros(3))
    with pytest.raises(KspaceReadError, match="no 'kspace' dataset.*image"):
        read_fastmri(tmp_path / "nok.h5")
    with h5py.File(tmp_path / "real.h5", "w") as f:
        f.create_dataset("kspace", data=np.zeros((1, 2, 4, 4)))
    with pytest.raises(KspaceReadError, match="must be complex"):
        read_fastmri(tmp_path / "real.h5")
    with h5py.File(tmp_path / "dims.h5", "w") as f:
        f.create_dataset("kspace", data=np.zeros((4, 4), np.complex64))
    with pytest.raises(KspaceReadError, match="slices, coils, H, W"):
        read_fastmri(tmp_path / "dims.h5")
    with h5py.File(tmp_path / "badmask.h5", "w") as f:
        f.create_dataset("kspace", data=np.zeros((1, 2, 4, 4), np.complex64))
        f.create_dataset("mask", data=np.ones(5, bool))
    with pytest.raises(KspaceReadError, match="'mask' shape"):
        read_fastmri(tmp_path / "badmask.h5")
    with h5py.File(tmp_path / "badxml.h5", "w") as f:
        f.create_dataset("kspace", data=np.zeros((1, 2, 4, 4), np.complex64))
        f.create_dataset("ismrmrd_header", data=b"<ismrmrdHeader")
    with pytest.raises(KspaceReadError, match="not valid XML"):
        read_fastmri(tmp_path / "badxml.h5")
    with pytest.raises(ValueError, match="slices, coils, H, W"):
        write_fastmri(tmp_path / "x.h5", np.zeros((4, 4), np.complex64))
    with pytest.raises(ValueError, match="mask shape"):
        write_fastmri(tmp_path / "x.h5", np.zeros((1, 1, 4, 4), np.complex64), mask=np.ones(3))


def _official_loader(path: Path, key: str) -> np.ndarray:
    """What CMRxRecon's loadFun.py does for multi-coil k-space (h5py branch)."""
    with h5py.File(path, "r") as f:
        dataset = f[key][:]
    k = np.transpose(dataset, [4, 3, 2, 1, 0])
    return k["real"] + 1j * k["imag"]


def test_cmrxrecon_round_trip_matches_official_loader(tmp_path: Path) -> None:
    official = _ksp((12, 10, 3, 2, 5))  # (kx, ky, kc, kz, t)
    path = tmp_path / "cine_sax.mat"
    write_cmrxrecon(path, {"kspace_full": official, "kspace_sub08": official * 0.5})
    np.testing.assert_array_equal(_official_loader(path, "kspace_full"), official)
    with open(path, "rb") as fh:
        assert fh.read(10) == b"MATLAB 7.3"
    data = read_cmrxrecon(path)
    assert data.key == "kspace_full" and data.acceleration is None and data.kind == "cine"
    assert data.kspace.shape == (5, 2, 3, 12, 10)
    np.testing.assert_array_equal(data.official(), official)
    # medlens layout: frame t, slice z, coil c, then the (kx, ky) image plane
    np.testing.assert_array_equal(data.kspace[4, 1, 2], official[:, :, 2, 1, 4])
    sub = read_cmrxrecon(path, "kspace_sub08")
    assert sub.acceleration == 8
    np.testing.assert_array_equal(sub.official(), official * 0.5)


def test_cmrxrecon_mapping_single_coil_and_masks(tmp_path: Path) -> None:
    sc = _ksp((8, 6, 2, 9))  # single-coil (kx, ky, kz, w)
    write_cmrxrecon(tmp_path / "T1map.mat", {"kspace_single_sub04": sc})
    data = read_cmrxrecon(tmp_path / "T1map.mat")
    assert data.kind == "mapping" and data.acceleration == 4
    assert data.kspace.shape == (9, 2, 1, 8, 6)
    np.testing.assert_array_equal(data.official()[:, :, 0], sc)
    m4 = np.zeros((8, 6), bool)
    m4[:, ::4] = True
    m4[:, 2:4] = True
    write_cmrxrecon(tmp_path / "T1map_mask.mat", {"mask04": m4, "mask08": m4 & False})
    np.testing.assert_array_equal(read_cmrxrecon_mask(tmp_path / "T1map_mask.mat", 4), m4)
    np.testing.assert_array_equal(read_cmrxrecon_mask(tmp_path / "T1map_mask.mat"), m4)
    with h5py.File(tmp_path / "T1map_mask.mat") as f:  # as MATLAB stores it: (ky, kx)
        assert f["mask04"].shape == (6, 8)


def test_cmrxrecon_v5_mat_via_scipy(tmp_path: Path) -> None:
    import scipy.io

    k = _ksp((6, 4, 2, 1, 3))
    scipy.io.savemat(tmp_path / "cine_lax.mat", {"kspace_sub10": k})
    data = read_cmrxrecon(tmp_path / "cine_lax.mat")
    assert data.acceleration == 10
    np.testing.assert_array_equal(data.official(), k)


def test_cmrxrecon_errors(tmp_path: Path) -> None:
    with pytest.raises(KspaceReadError, match="no such file"):
        read_cmrxrecon(tmp_path / "cine_sax.mat")
    (tmp_path / "junk.mat").write_bytes(b"\x00" * 300)
    with pytest.raises(KspaceReadError, match=r"junk\.mat.*not a MATLAB file"):
        read_cmrxrecon(tmp_path / "junk.mat")
    write_cmrxrecon(tmp_path / "cine_sax.mat", {"kspace_full": _ksp((4, 4, 2, 1, 2))})
    with pytest.raises(KspaceReadError, match="no variable 'kspace_sub04'"):
        read_cmrxrecon(tmp_path / "cine_sax.mat", "kspace_sub04")
    data = (tmp_path / "cine_sax.mat").read_bytes()
    (tmp_path / "cut.mat").write_bytes(data[:700])
    with pytest.raises(KspaceReadError, match=r"cut\.mat"):
        read_cmrxrecon(tmp_path / "cut.mat")
    write_cmrxrecon(tmp_path / "real.mat", {"kspace_full": np.zeros((4, 4, 2, 1, 2))})
    with pytest.raises(KspaceReadError, match="not complex"):
        read_cmrxrecon(tmp_path / "real.mat")
    write_cmrxrecon(tmp_path / "flat.mat", {"kspace_full": _ksp((4, 4))})
    with pytest.raises(KspaceReadError, match=r"\(kx, ky, kc, kz, t\)"):
        read_cmrxrecon(tmp_path / "flat.mat")
    write_cmrxrecon(tmp_path / "m.mat", {"mask04": np.ones((2, 2, 2), bool)})
    with pytest.raises(KspaceReadError, match="2D"):
        read_cmrxrecon_mask(tmp_path / "m.mat", 4)
