"""Broken and non-image DICOM input: each gives a clear ImageReadError naming the file.

The deliberately malformed sample files of pydicom and pydicom-data are listed one by
one with the outcome asserted; synthetic breakages (truncation at any length, broken
values, unsupported or missing transfer syntax) are made from CT_small.dcm.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate

from medlens.io import (
    DicomSeriesError,
    ImageReadError,
    UnsupportedFormatError,
    read_dicom_file,
    read_image,
)
from tests.io.conftest import read_sitk, sample

# (file, exception type, words the message must contain)
MALFORMED = [
    ("MR_truncated.dcm", ImageReadError, "truncated pixel data (The number of bytes of pixel data"),
    ("emri_small_jpeg_2k_lossless_too_short.dcm", ImageReadError, "truncated DICOM file"),
    ("badVR.dcm", ImageReadError, "NumberOfFrames '1A' is not an integer"),
    ("no_meta.dcm", ImageReadError, "not a DICOM file: no 'DICM' header"),
    (
        "JPEG2000-embedded-sequence-delimiter.dcm",
        ImageReadError,
        "cannot decode the JPEG 2000 Image Compression pixel data",
    ),
    ("rtplan_truncated.dcm", UnsupportedFormatError, "RT Plan Storage is an RT plan"),
    ("meta_missing_tsyntax.dcm", ImageReadError, "pixel data present but Rows is missing"),
    ("nested_priv_SQ.dcm", ImageReadError, "pixel data present but Rows is missing"),
    ("no_meta_group_length.dcm", UnsupportedFormatError, "holds no pixel data"),
    ("UN_sequence.dcm", UnsupportedFormatError, "holds no pixel data"),
    ("empty_charset_LEI.dcm", UnsupportedFormatError, "holds no pixel data"),
    ("priv_SQ.dcm", UnsupportedFormatError, "holds no pixel data"),
    ("RG1_UNCI.dcm", ImageReadError, "PixelSpacing [0.0, 0.0] mm must be positive"),
    ("RG1_J2KR.dcm", ImageReadError, "PixelSpacing [0.0, 0.0] mm must be positive"),
    ("JPEG-lossy.dcm", ImageReadError, "cannot decode the JPEG Extended (Process 2 and 4)"),
    # non-image objects
    ("rtplan.dcm", UnsupportedFormatError, "RT Plan Storage is an RT plan and holds no image"),
    ("rtstruct.dcm", UnsupportedFormatError, "RT structure set (contours, not a voxel image)"),
    ("test-SR.dcm", UnsupportedFormatError, "Comprehensive SR Storage is a structured report"),
    ("reportsi.dcm", UnsupportedFormatError, "structured report"),
    ("waveform_ecg.dcm", UnsupportedFormatError, "12-lead ECG Waveform Storage is a waveform"),
    ("ExplVR_BigEndNoMeta.dcm", UnsupportedFormatError, "RT Ion Plan Storage is an RT plan"),
    ("ExplVR_LitEndNoMeta.dcm", UnsupportedFormatError, "RT Ion Plan Storage is an RT plan"),
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("name", "exc", "words"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_sample_gives_a_clear_error(name, exc, words):
    path = sample(name)
    before = _digest(path)
    with pytest.raises(exc) as e:
        read_image(path)
    assert str(path) in str(e.value)  # the message names the file
    assert e.value.path == str(path)
    assert words in e.value.reason
    assert _digest(path) == before  # input never modified


def test_zero_spacing_is_refused_although_simpleitk_reads_it():
    # SimpleITK silently replaces PixelSpacing 0\0 by 1 mm; medlens says what is wrong.
    ds = pydicom.dcmread(sample("RG1_UNCI.dcm"), stop_before_pixels=True)
    assert [float(v) for v in ds.PixelSpacing] == [0.0, 0.0]
    assert read_sitk(sample("RG1_UNCI.dcm")).GetSpacing()[:2] == (1.0, 1.0)


def test_missing_transfer_syntax_with_native_pixels_is_read_and_noted():
    # OT-PAL-8-face.dcm has file meta without (0002,0010); the data set is implicit VR
    # little endian with native pixel data, which pydicom detects, so medlens reads it
    # (as GDCM does; test_dicom.py compares the values) and says so in meta.
    img = read_image(sample("OT-PAL-8-face.dcm"))
    assert img.n_channels == 3 and img.spatial_shape == (640, 480)
    assert any("inferred Implicit VR Little Endian" in w for w in img.meta["read_warnings"])


def _ct(tmp_path: Path, name: str = "ct.dcm") -> tuple[pydicom.Dataset, Path]:
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    return ds, tmp_path / name


def test_missing_transfer_syntax_with_compressed_pixels(tmp_path):
    ds = pydicom.dcmread(sample("JPEG2000.dcm"))
    del ds.file_meta.TransferSyntaxUID
    out = tmp_path / "j2k_no_ts.dcm"
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=False)
    with pytest.raises(UnsupportedFormatError, match=r"no Transfer Syntax UID.*compressed"):
        read_image(out)


def test_unsupported_transfer_syntax(tmp_path):
    ds, out = _ct(tmp_path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    ds.save_as(out, enforce_file_format=True)
    with pytest.raises(UnsupportedFormatError, match=r"MPEG2 Main Profile / Main Level.*not supp"):
        read_image(out)


@pytest.mark.parametrize("fraction", [0.0005, 0.01, 0.05, 0.2, 0.5, 0.9, 0.99])
def test_truncated_at_any_length(tmp_path, fraction):
    src = sample("CT_small.dcm")
    data = src.read_bytes()
    end_of_pixels = 6300 + 12 + 128 * 128 * 2  # PixelData value ends here (checked below)
    assert pydicom.dcmread(src)["PixelData"].file_tell == 6300
    out = tmp_path / "cut.dcm"
    out.write_bytes(data[: max(1, int(end_of_pixels * fraction))])
    with pytest.raises(ImageReadError) as e:
        read_image(out)
    assert str(out) in str(e.value)


def test_truncated_trailing_padding_is_a_correct_read(tmp_path):
    # CT_small.dcm ends with DataSetTrailingPadding after the pixel data; cutting into
    # the padding loses nothing, and the image read is the complete one.
    src = sample("CT_small.dcm")
    out = tmp_path / "cut_padding.dcm"
    out.write_bytes(src.read_bytes()[:-20])
    np.testing.assert_array_equal(read_image(out).array, read_image(src).array)


def test_garbage_with_a_dicom_suffix(tmp_path, rng):
    out = tmp_path / "noise.dcm"
    out.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="noise.dcm"):
        read_image(out)
    dicm = tmp_path / "dicm_noise"
    dicm.write_bytes(b"\0" * 128 + b"DICM" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="dicm_noise"):
        read_image(dicm)


def test_empty_file(tmp_path):
    out = tmp_path / "empty.dcm"
    out.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.dcm"):
        read_image(out)


def test_missing_pixel_data(tmp_path):
    ds, out = _ct(tmp_path)
    del ds.PixelData
    ds.save_as(out)
    with pytest.raises(UnsupportedFormatError, match="CT Image Storage holds no pixel data"):
        read_image(out)


@pytest.mark.parametrize(
    ("keyword", "raw", "words"),
    [
        ("PixelSpacing", b"0\\0.5 ", "PixelSpacing [0.0, 0.5] mm must be positive"),
        ("PixelSpacing", b"-0.5\\0.5", "PixelSpacing [-0.5, 0.5] mm must be positive"),
        ("PixelSpacing", b"abc\\0.5", "PixelSpacing"),
        ("ImageOrientationPatient", b"1\\0\\0\\1\\0\\0 ", "not two orthogonal"),
        ("ImageOrientationPatient", b"0\\0\\0\\0\\1\\0 ", "has a zero vector"),
        ("ImageOrientationPatient", b"1\\0\\0 ", "is not 6 finite numbers"),
        ("ImagePositionPatient", b"1\\2 ", "is not 3 finite numbers"),
        ("ImagePositionPatient", b"nan\\2\\3 ", "is not 3 finite numbers"),
        ("RescaleSlope", b"0 ", "RescaleSlope '0' is not a usable value"),
        ("RescaleIntercept", b"x1", "RescaleIntercept"),
        ("NumberOfFrames", b"0 ", "NumberOfFrames 0 must be positive"),
    ],
)
def test_broken_values(tmp_path, keyword, raw, words):
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement

    ds, out = _ct(tmp_path)
    tag = tag_for_keyword(keyword)
    ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(raw), raw, 0, False, True)
    ds.save_as(out)
    with pytest.raises(ImageReadError) as e:
        read_image(out)
    assert words in e.value.reason and e.value.path == str(out)


def test_rows_that_do_not_match_the_pixel_data(tmp_path):
    ds, out = _ct(tmp_path)
    ds.Rows = 200  # 128 x 128 stored
    ds.save_as(out)
    with pytest.raises(ImageReadError, match="pixel data"):
        read_image(out)


def test_a_broken_slice_in_a_series_is_named(tmp_path):
    from medlens import Image
    from medlens.io import write_dicom_series

    files = write_dicom_series(
        Image(np.zeros((8, 8, 4), np.int16), np.diag([1.0, 1.0, 2.0, 1.0])), tmp_path / "s"
    )
    data = files[2].read_bytes()
    files[2].write_bytes(data[:-40])  # cut its pixel data
    with pytest.raises(ImageReadError) as e:
        read_image(tmp_path / "s")
    assert e.value.path == str(files[2]) and "truncated pixel data" in e.value.reason


def test_folder_without_dicom(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(ImageReadError, match="no DICOM image files"):
        read_image(tmp_path)
    assert not issubclass(ImageReadError, DicomSeriesError)


def test_copy_of_malformed_folder_is_untouched(tmp_path):
    for name, _, _ in MALFORMED[:6]:
        shutil.copy(sample(name), tmp_path / name)
    before = {p.name: _digest(p) for p in tmp_path.iterdir()}
    with pytest.raises(ImageReadError):
        read_image(tmp_path)
    assert {p.name: _digest(p) for p in tmp_path.iterdir()} == before


def test_read_dicom_file_on_a_missing_path(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_dicom_file(tmp_path / "nope.dcm")


def test_warnings_do_not_leak_identifiers():
    # pydicom's value warnings quote the offending value; identifiers are redacted.
    from medlens.io._dicom import _meta

    ds = pydicom.dcmread(sample("CT_small.dcm"), stop_before_pixels=True)
    name = str(ds.PatientName)
    meta = _meta(ds, sample("CT_small.dcm"), [f"Invalid value for VR PN: '{name}' in file x"])
    assert meta["phi"]["PatientName"] == name
    assert meta["read_warnings"] == ["Invalid value for VR PN: '<phi>'"]
