"""NIfTI / NRRD / MetaImage / PNG / TIFF reading and writing, against nibabel and SimpleITK."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose, assert_array_equal

from medlens import Image
from medlens.io import (
    ImageReadError,
    ImageWriteError,
    UnsupportedFormatError,
    from_sitk,
    lps_to_ras,
    ras_to_lps,
    read_image,
    to_sitk,
    write_image,
)
from tests.conftest import oblique_affine

VOLUME_SUFFIXES = [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"]
NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


@pytest.mark.parametrize("suffix", VOLUME_SUFFIXES)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip_preserves_affine_and_values(tmp_path, suffix, dtype, rng):
    arr = (rng.normal(size=(6, 7, 5)) * 50).astype(dtype)
    img = Image(arr, oblique_affine())
    path = tmp_path / f"img{suffix}"
    write_image(img, path)
    back = read_image(path)
    assert_allclose(back.affine, img.affine, atol=1e-5, rtol=0)
    assert back.dtype == arr.dtype
    assert_array_equal(back.array, arr)


def test_chain_nifti_nrrd_mha_keeps_geometry(tmp_path, oblique_image):
    img = oblique_image
    for suffix in (".nii.gz", ".nrrd", ".mha", ".nii"):
        p = tmp_path / f"x{suffix}"
        write_image(img, p)
        img = read_image(p)
    assert_allclose(img.affine, oblique_image.affine, atol=1e-5, rtol=0)
    assert_array_equal(img.array, oblique_image.array)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_multichannel_round_trip(tmp_path, suffix, rng):
    arr = rng.normal(size=(3, 5, 6, 4)).astype(np.float32)
    img = Image(arr, oblique_affine(), channels=True)
    write_image(img, tmp_path / f"v{suffix}")
    back = read_image(tmp_path / f"v{suffix}")
    assert back.channels and back.n_channels == 3
    assert_array_equal(back.array, arr)
    assert_allclose(back.affine, img.affine, atol=1e-5)


def test_bool_and_int64_are_stored_compactly(tmp_path):
    img = Image(np.ones((3, 3, 3), bool))
    write_image(img, tmp_path / "m.nii.gz")
    assert read_image(tmp_path / "m.nii.gz").dtype == np.uint8
    lab = Image(np.arange(27, dtype=np.int64).reshape(3, 3, 3) * 100)
    write_image(lab, tmp_path / "l.nii.gz")
    back = read_image(tmp_path / "l.nii.gz")
    assert back.dtype == np.int32
    assert_array_equal(back.array, lab.array)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".mha", ".nrrd"])
def test_2d_round_trip(tmp_path, suffix):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    img = Image(arr, np.diag([0.5, 0.25, 1.0, 1.0]))
    write_image(img, tmp_path / f"s{suffix}")
    back = read_image(tmp_path / f"s{suffix}")
    assert back.spatial_ndim == 2
    assert_array_equal(back.array, arr)
    if suffix in (".mha", ".nrrd", ".tif"):
        assert back.spacing == pytest.approx((0.5, 0.25))


def test_rgb_png_reads_as_channels(tmp_path):
    rgb = np.zeros((5, 4, 3), np.uint8)  # sitk (rows=j, cols=i, components)
    rgb[1, 2] = (10, 20, 30)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "c.png"))
    img = read_image(tmp_path / "c.png")
    assert img.channels and img.n_channels == 3 and img.spatial_shape == (4, 5)
    assert img.array[:, 2, 1].tolist() == [10, 20, 30]


def test_writing_a_volume_as_png_fails_and_leaves_nothing(tmp_path, oblique_image):
    with pytest.raises(ImageWriteError, match="2D"):
        write_image(oblique_image, tmp_path / "x.png")
    with pytest.raises(ImageWriteError, match="unknown image format"):
        write_image(oblique_image, tmp_path / "x.xyz")
    assert os.listdir(tmp_path) == []


def test_write_is_atomic_and_replaces_only_on_success(tmp_path, oblique_image, monkeypatch):
    path = tmp_path / "a.nii.gz"
    write_image(oblique_image, path)
    before = path.read_bytes()
    import medlens.io._nibabel as nb

    def boom(image):
        raise OSError("disk full")

    monkeypatch.setattr(nb, "to_nibabel", boom)
    with pytest.raises(ImageWriteError, match="disk full"):
        write_image(oblique_image.with_array(oblique_image.array * 2), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.nii.gz"]


def test_reading_never_modifies_input(tmp_path, oblique_image):
    path = tmp_path / "a.mha"
    write_image(oblique_image, path)
    stat, data = path.stat(), path.read_bytes()
    img = read_image(path)
    img2 = Image(img.array + 1, img.affine)
    assert img2 is not None
    assert path.read_bytes() == data and path.stat().st_mtime_ns == stat.st_mtime_ns


# --- SimpleITK and LPS/RAS ---------------------------------------------------------


def test_sitk_conversion_agrees_with_itk_physical_points(oblique_image):
    s = to_sitk(oblique_image)
    for idx in [(0, 0, 0), (6, 7, 4), (3, 1, 2)]:
        lps = s.TransformIndexToPhysicalPoint(idx)
        assert_allclose(lps_to_ras(np.array(lps)), oblique_image.voxel_to_world(idx), atol=1e-9)
        # and the value at that index is the same
        assert s[idx] == pytest.approx(float(oblique_image.array[idx]))
    back = from_sitk(s)
    assert_allclose(back.affine, oblique_image.affine, atol=1e-12)


def test_ras_lps_twice_is_identity(rng):
    a = oblique_affine()
    assert_array_equal(lps_to_ras(lps_to_ras(a)), a)
    assert_array_equal(ras_to_lps(lps_to_ras(a)), a)
    pts = rng.normal(size=(10, 3))
    assert_array_equal(ras_to_lps(lps_to_ras(pts)), pts)
    with pytest.raises(ValueError):
        lps_to_ras(np.zeros((2, 2)))


def test_nifti_written_by_medlens_reads_the_same_in_simpleitk(tmp_path, oblique_image):
    write_image(oblique_image, tmp_path / "a.nii.gz")
    s = sitk.ReadImage(str(tmp_path / "a.nii.gz"))
    assert_allclose(from_sitk(s).affine, oblique_image.affine, atol=1e-5)


# --- nibabel's bundled test images -----------------------------------------------


NIBABEL_FILES = sorted(
    p for p in NIBABEL_DATA.iterdir()
    if p.name.endswith((".nii", ".nii.gz", ".mgz")) and ".dconn." not in p.name
)


@pytest.mark.parametrize("path", NIBABEL_FILES, ids=lambda p: p.name)
def test_nibabel_bundled_images_give_nibabel_affine(path):
    ref = nib.load(path)
    img = read_image(path)
    assert_allclose(img.affine, ref.affine, atol=1e-6)
    data = np.asanyarray(ref.dataobj)
    if data.ndim == 4:
        data = np.moveaxis(data, -1, 0)
    assert_array_equal(img.array, data)


def test_cifti_is_rejected_clearly():
    path = NIBABEL_DATA / "row_major.dconn.nii"
    with pytest.raises(ImageReadError, match="affine"):
        read_image(path)


# --- bad input ---------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(ImageReadError, match="no such file") as e:
        read_image(tmp_path / "nope.nii.gz")
    assert str(tmp_path / "nope.nii.gz") in str(e.value)


def test_unknown_suffix(tmp_path):
    (tmp_path / "x.foo").write_text("hello")
    with pytest.raises(UnsupportedFormatError, match="unknown image format"):
        read_image(tmp_path / "x.foo")


def test_truncated_nifti_gz(tmp_path, oblique_image):
    p = tmp_path / "t.nii.gz"
    write_image(oblique_image, p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="t.nii.gz"):
        read_image(p)


def test_truncated_uncompressed_nifti(tmp_path, oblique_image):
    p = tmp_path / "t.nii"
    write_image(oblique_image, p)
    data = p.read_bytes()
    p.write_bytes(data[:400])
    with pytest.raises(ImageReadError, match="t.nii"):
        read_image(p)


def test_garbage_files(tmp_path):
    for name in ("g.nii", "g.nii.gz", "g.mha", "g.nrrd", "g.png"):
        p = tmp_path / name
        p.write_bytes(b"this is not an image" * 10)
        with pytest.raises(ImageReadError, match=name):
            read_image(p)
    p = tmp_path / "gz.nii.gz"
    p.write_bytes(gzip.compress(b"short"))
    with pytest.raises(ImageReadError, match="gz.nii.gz"):
        read_image(p)


def test_zero_spacing_nifti_is_an_error(tmp_path):
    nimg = nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), None)
    nimg.header.set_zooms((1.0, 0.0, 1.0))  # no sform/qform: nibabel falls back on pixdim
    nib.save(nimg, tmp_path / "z.nii.gz")
    with pytest.raises(ImageReadError, match="z.nii.gz.*(voxel size|spacing|singular)"):
        read_image(tmp_path / "z.nii.gz")


def test_zero_spacing_mha_is_an_error(tmp_path):
    p = tmp_path / "z.mha"
    write_image(Image(np.zeros((3, 3, 3), np.uint8)), p)
    text = p.read_bytes().replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 0 1")
    p.write_bytes(text)
    with pytest.raises(ImageReadError, match="z.mha"):
        read_image(p)


def test_truncated_mha(tmp_path, oblique_image):
    p = tmp_path / "t.mha"
    write_image(oblique_image.with_array(np.asarray(oblique_image.array)), p)
    sitk.WriteImage(to_sitk(oblique_image), str(p), useCompression=False)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 100])
    with pytest.raises(ImageReadError, match="t.mha"):
        read_image(p)


def test_truncated_or_detached_metaimage_says_why(tmp_path, oblique_image, capfd):
    import SimpleITK as sitk

    p = tmp_path / "t.mha"
    sitk.WriteImage(to_sitk(oblique_image), str(p), useCompression=False)
    data = p.read_bytes()
    p.write_bytes(data[:-50])
    with pytest.raises(ImageReadError, match=r"t.mha: truncated data: .* holds \d+ bytes of the "):
        read_image(p)
    h = tmp_path / "d.mhd"
    sitk.WriteImage(to_sitk(oblique_image), str(h))
    (tmp_path / "d.raw").unlink()
    with pytest.raises(ImageReadError, match="d.raw.*does not exist"):
        read_image(h)
    assert "MetaImage" not in capfd.readouterr().err


def test_write_image_dtype_edge_cases(tmp_path):
    img16 = Image(np.ones((3, 3, 3), np.float16))
    write_image(img16, tmp_path / "h.nrrd")
    assert read_image(tmp_path / "h.nrrd").dtype == np.float32
    cplx = Image(np.ones((3, 3, 3), np.complex64) * (1 + 2j))
    with pytest.raises(ImageWriteError, match="complex"):
        write_image(cplx, tmp_path / "c.mha")
    write_image(cplx, tmp_path / "c.nii.gz")
    assert_array_equal(read_image(tmp_path / "c.nii.gz").array, cplx.array)
    big = Image(np.full((2, 2, 2), 2**40, np.int64))
    write_image(big, tmp_path / "b.nii.gz")
    back = read_image(tmp_path / "b.nii.gz")
    assert back.dtype == np.int64 and int(back.array.max()) == 2**40


def test_write_to_a_directory_or_unwritable_place_names_the_target(tmp_path, oblique_image):
    with pytest.raises(ImageWriteError, match="is a directory"):
        write_image(oblique_image, tmp_path)
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ImageWriteError) as e:
        write_image(oblique_image, target / "x.nii.gz")
    assert str(target / "x.nii.gz") in str(e.value) and ".x.nii.gz." not in str(e.value)


def test_series_uid_for_a_file_is_an_error(tmp_path, oblique_image):
    write_image(oblique_image, tmp_path / "a.nii.gz")
    with pytest.raises(ImageReadError, match="series_uid"):
        read_image(tmp_path / "a.nii.gz", series_uid="1.2.3")
