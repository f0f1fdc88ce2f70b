"""DICOM files and series against SimpleITK (GDCM), and against hand checks where GDCM is wrong.

Every ``.dcm`` file in pydicom's test files and in pydicom-data is classified here:
either it is compared with SimpleITK (same values after the same rescale, same
world position of every voxel: after reorienting both to RAS the arrays are equal
and the affines agree to 1e-4 mm, which fixes the first and the last voxel too),
or it is listed in ``NOT_COMPARED`` with the reason and the test that covers it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose, assert_array_equal

from medlens import Image
from medlens.image import reorient
from medlens.io import (
    DicomSeriesError,
    ImageReadError,
    from_sitk,
    list_dicom_series,
    lps_to_ras,
    read_dicom_file,
    read_dicom_series,
    read_image,
    write_dicom_series,
    write_image,
)
from tests.io.conftest import (
    DICOMDIR_TESTS,
    PYDICOM_DATA,
    PYDICOM_FILES,
    all_sample_files,
    read_sitk,
    sample,
)

WORLD_ATOL = 1e-4  # mm

# Files not compared with SimpleITK, and why. Each is checked elsewhere (named).
NOT_COMPARED = {
    # -- SimpleITK cannot read them (non-image objects or broken files): test_dicom_malformed.py
    "ExplVR_BigEndNoMeta.dcm": "RT Ion Plan without file meta: no image",
    "ExplVR_LitEndNoMeta.dcm": "RT Ion Plan without file meta: no image",
    "JPEG2000-embedded-sequence-delimiter.dcm": "corrupt JPEG 2000 stream; both fail",
    "MR_truncated.dcm": "truncated pixel data",
    "UN_sequence.dcm": "data set without pixel data",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "truncated file",
    "empty_charset_LEI.dcm": "data set without pixel data",
    "meta_missing_tsyntax.dcm": "no transfer syntax, no image attributes",
    "nested_priv_SQ.dcm": "pixel data element without Rows/Columns",
    "no_meta.dcm": "no DICM header; the data set does not parse",
    "no_meta_group_length.dcm": "data set without pixel data",
    "priv_SQ.dcm": "data set without pixel data",
    "reportsi.dcm": "SR",
    "reportsi_with_empty_number_tags.dcm": "SR",
    "rtplan.dcm": "RT plan",
    "rtplan_truncated.dcm": "RT plan",
    "rtstruct.dcm": "RT structure set",
    "test-SR.dcm": "SR",
    "waveform_ecg.dcm": "waveform",
    # -- SimpleITK fails on these readable RT dose files ("invalid logic behavior" in GDCM):
    #    test_single_frame_rt_dose_matches_the_multi_frame_one checks them by hand.
    "rtdose_1frame.dcm": "GDCM cannot read it",
    "rtdose_expb_1frame.dcm": "GDCM cannot read it",
    "rtdose_rle_1frame.dcm": "GDCM cannot read it",
    # -- medlens refuses them on purpose; SimpleITK reads them: test_dicom_malformed.py
    "RG1_J2KI.dcm": "PixelSpacing 0\\0: medlens raises, SimpleITK silently uses 1 mm",
    "RG1_J2KR.dcm": "PixelSpacing 0\\0: medlens raises, SimpleITK silently uses 1 mm",
    "RG1_UNCI.dcm": "PixelSpacing 0\\0: medlens raises, SimpleITK silently uses 1 mm",
    "RG1_UNCR.dcm": "PixelSpacing 0\\0: medlens raises, SimpleITK silently uses 1 mm",
    "badVR.dcm": "NumberOfFrames '1A' is not an integer: medlens raises, GDCM guesses 1",
    # -- pydicom's decoders reject this 12-bit JPEG stream, GDCM decodes it:
    #    test_dicom_malformed.py::test_undecodable_jpeg_names_the_codec
    "JPEG-lossy.dcm": "pylibjpeg-libjpeg: 'Invalid SOS parameters for sequential JPEG'",
    # -- GDCM is wrong; hand checks below
    # GDCM swaps the RLE byte segments: test_rle_colour_matches_uncompressed
    "SC_rgb_rle_16bit.dcm": "GDCM decodes 16/32-bit RLE colour wrongly",
    "SC_rgb_rle_16bit_2frame.dcm": "as above",
    "SC_rgb_rle_32bit.dcm": "as above",
    "SC_rgb_rle_32bit_2frame.dcm": "as above",
    "rtdose_expb.dcm": "GDCM misreads big-endian 32-bit dose: test_rt_dose_transfer_syntaxes_agree",
    # -- DICOM-SEG is read by the SEG reader: test_dicom_seg.py compares it with highdicom
    "liver.dcm": "SEG",
    "liver_1frame.dcm": "SEG",
    "liver_expb.dcm": "SEG",
    "liver_expb_1frame.dcm": "SEG",
}

LOSSY_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")

# The files of pydicom's dicomdirtests series (no suffix), one by one; TINY_ALPHA's
# files hold no pixel data (test_dicomdir_stub_series_without_pixels_is_an_error).
DICOMDIR_FILES = sorted(
    p for p in DICOMDIR_TESTS.glob("*/*/*") if p.is_file() and "TINY_ALPHA" not in p.parts
)
COMPARED = [p for p in all_sample_files() if p.name not in NOT_COMPARED] + DICOMDIR_FILES


def _id(p: Path) -> str:
    return p.relative_to(DICOMDIR_TESTS).as_posix() if DICOMDIR_TESTS in p.parents else p.name


def _ras(img: Image) -> Image:
    if img.spatial_ndim == 2:  # SimpleITK reads a 2D file as a one-slice volume
        arr = img.array[..., np.newaxis]
        img = Image(arr, img.affine, channels=img.channels)
    return reorient(img, "RAS")


def test_sample_collections_are_installed():
    assert PYDICOM_DATA.is_dir(), "pip install pydicom-data (the Makefile does)"
    assert len(all_sample_files()) > 120
    missing = [n for n in NOT_COMPARED if not any(p.name == n for p in all_sample_files())]
    assert missing == []


@pytest.mark.parametrize("path", COMPARED, ids=_id)
def test_file_matches_simpleitk(path: Path):
    ref = read_sitk(path)
    assert ref is not None, f"SimpleITK cannot read {path.name}: add it to NOT_COMPARED"
    ours = read_dicom_file(path)
    theirs = from_sitk(ref)
    public = json.dumps({k: v for k, v in ours.meta.items() if k != "phi"})  # JSON-able
    name = str(ours.meta["phi"].get("PatientName", ""))
    if len(name) >= 3:
        assert name not in public  # identifiers only under meta["phi"]
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    if ds.get("Modality") == "RTDOSE":  # medlens applies DoseGridScaling (Gy), GDCM does not
        theirs = theirs.with_array(theirs.array * float(ds.DoseGridScaling))
    a, b = _ras(ours), _ras(theirs)
    assert a.array.shape == b.array.shape
    assert_allclose(a.affine, b.affine, atol=WORLD_ATOL, rtol=0)
    first_last = [(0,) * 3, tuple(s - 1 for s in a.spatial_shape)]
    assert_allclose(a.voxel_to_world(first_last), b.voxel_to_world(first_last), atol=WORLD_ATOL)
    got, want = a.array, b.array
    if str(ds.get("PhotometricInterpretation")) == "PALETTE COLOR" and ours.dtype == np.uint16:
        if ref.GetPixelID() == sitk.sitkVectorUInt8 and got.max() > 255:
            # 16-bit palette entries holding 8-bit colours in the high byte: pydicom keeps
            # the 16-bit values (as the LUT descriptor says), GDCM shifts them to 8 bits.
            assert ds.RedPaletteColorLookupTableDescriptor[2] == 16
            got = got >> 8
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if ts in LOSSY_JPEG:
        # Two conforming JPEG decoders (libjpeg-turbo in pylibjpeg-libjpeg, IJG in GDCM)
        # round the inverse DCT and the chroma upsampling differently.
        diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
        assert diff.max() <= 5 and diff.mean() <= 0.15, (diff.max(), diff.mean())
    elif np.issubdtype(ours.dtype, np.floating) or np.issubdtype(want.dtype, np.floating):
        assert_allclose(got, want, rtol=2e-7, atol=1e-6 * float(np.abs(want).max()))
    else:
        assert_array_equal(got, want)


# -- hand checks where SimpleITK / GDCM is wrong ------------------------------------


@pytest.mark.parametrize(
    ("rle", "plain"),
    [
        ("SC_rgb_rle_16bit.dcm", "SC_rgb_16bit.dcm"),
        ("SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_16bit_2frame.dcm"),
        ("SC_rgb_rle_32bit.dcm", "SC_rgb_32bit.dcm"),
        ("SC_rgb_rle_32bit_2frame.dcm", "SC_rgb_32bit_2frame.dcm"),
    ],
)
def test_rle_colour_matches_uncompressed(rle, plain):
    ours = read_dicom_file(sample(rle))
    truth = read_dicom_file(sample(plain))  # the same image, uncompressed (SimpleITK agrees)
    assert_array_equal(ours.array, truth.array)
    gdcm = from_sitk(read_sitk(sample(rle)))
    assert not np.array_equal(gdcm.array, truth.array)  # GDCM's RLE 16/32-bit colour is wrong


def test_rt_dose_transfer_syntaxes_agree():
    implicit = read_dicom_file(sample("rtdose.dcm"))
    for name in ("rtdose_expb.dcm", "rtdose_rle.dcm"):
        other = read_dicom_file(sample(name))
        assert_array_equal(other.array, implicit.array)
        assert_allclose(other.affine, implicit.affine)
    # GDCM reads the big-endian uint32 dose with the wrong byte order.
    ds = pydicom.dcmread(sample("rtdose_expb.dcm"))
    gdcm = sitk.GetArrayFromImage(read_sitk(sample("rtdose_expb.dcm")))
    assert gdcm.max() > 100 * ds.pixel_array.max()


def test_single_frame_rt_dose_matches_the_multi_frame_one():
    full = read_dicom_file(sample("rtdose.dcm"))
    for name in ("rtdose_1frame.dcm", "rtdose_expb_1frame.dcm", "rtdose_rle_1frame.dcm"):
        one = read_dicom_file(sample(name))
        assert one.spatial_shape == (10, 10, 1)
        assert_array_equal(one.array[..., 0], full.array[..., 0])
        assert_allclose(one.origin, full.origin)


def test_rt_dose_geometry_by_hand():
    img = read_dicom_file(sample("rtdose.dcm"))
    ds = pydicom.dcmread(sample("rtdose.dcm"))
    # GridFrameOffsetVector 0, 5, 10 ... along the normal (+z), IPP is frame 0.
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    last = ipp + np.array([0, 0, float(ds.GridFrameOffsetVector[-1])])
    last[:2] += 9 * 10.0  # 10 columns / rows of 10 mm
    assert_allclose(img.voxel_to_world([0, 0, 0]), lps_to_ras(ipp), atol=1e-6)
    assert_allclose(img.voxel_to_world([9, 9, 14]), lps_to_ras(last), atol=1e-6)
    assert img.meta["units"] == "RELATIVE" or img.meta["units"] == "Gy"
    assert_allclose(img.array.max(), ds.pixel_array.max() * float(ds.DoseGridScaling), rtol=1e-6)


# -- values, dtype, metadata ----------------------------------------------------------


def test_ct_values_are_hounsfield_units():
    path = sample("CT_small.dcm")
    ds = pydicom.dcmread(path)
    img = read_dicom_file(path)
    assert img.meta["units"] == "HU"
    assert img.dtype == np.int16  # slope 1, intercept -1024: exact in int16
    raw = ds.pixel_array.T.astype(np.int64)
    assert_array_equal(img.array[..., 0], raw * int(ds.RescaleSlope) + int(ds.RescaleIntercept))
    assert img.array.min() >= -1024


def test_non_integer_slope_gives_float32():
    path = sample("MR2_UNCR.dcm")
    ds = pydicom.dcmread(path)
    img = read_dicom_file(path)
    assert img.dtype == np.float32
    want = ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert_allclose(img.array[..., 0], want, rtol=1e-6)


def test_big_endian_files_give_native_arrays():
    img = read_dicom_file(sample("MR_small_bigendian.dcm"))
    assert img.dtype == np.dtype(np.int16) and img.dtype.isnative
    assert_array_equal(img.array, read_dicom_file(sample("MR_small.dcm")).array)


def test_no_rescale_keeps_the_stored_dtype():
    img = read_dicom_file(sample("MR_small.dcm"))
    assert img.dtype == np.int16
    assert img.meta["rescale_slope"] == 1.0


def test_monochrome1_is_inverted_over_bits_stored():
    path = sample("RG3_UNCR.dcm")
    ds = pydicom.dcmread(path)
    img = read_dicom_file(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert_array_equal(img.array, (2**ds.BitsStored - 1) - ds.pixel_array.T.astype(np.int64))
    assert img.meta["photometric_interpretation"] == "MONOCHROME1"


def test_meta_is_json_serialisable_and_phi_is_separate():
    import json

    img = read_dicom_file(sample("CT_small.dcm"))
    json.dumps(dict(img.meta))
    assert img.meta["modality"] == "CT"
    assert img.meta["series_instance_uid"].startswith("1.3.6.1.4.1.5962")
    assert img.meta["phi"]["PatientName"] == "CompressedSamples^CT1"
    assert img.meta["phi"]["PatientID"] == "1CT1"
    for key, value in img.meta.items():
        if key != "phi":
            assert "CompressedSamples" not in str(value), key
            assert value != "1CT1", key


def test_colour_is_channels_first_rgb():
    img = read_dicom_file(sample("US1_UNCR.dcm"))
    ds = pydicom.dcmread(sample("US1_UNCR.dcm"))
    assert img.channels and img.n_channels == 3 and img.spatial_ndim == 2
    assert img.spatial_shape == (ds.Columns, ds.Rows)
    assert_array_equal(img.array, np.transpose(ds.pixel_array, (2, 1, 0)))


# -- geometry ----------------------------------------------------------------------


def test_axes_are_column_row_slice_by_hand():
    path = sample("MR_small.dcm")
    ds = pydicom.dcmread(path)
    img = read_dicom_file(path)
    assert img.spatial_shape == (ds.Columns, ds.Rows, 1)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    row_cos = np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
    col_cos = np.array([float(v) for v in ds.ImageOrientationPatient[3:]])
    dr, dc = (float(v) for v in ds.PixelSpacing)  # between rows, between columns
    # pixel at column c, row r sits at IPP + c * dc * row_cos + r * dr * col_cos (LPS)
    c, r = 17, 40
    assert img.array[c, r, 0] == ds.pixel_array[r, c]
    lps = ipp + c * dc * row_cos + r * dr * col_cos
    assert_allclose(img.voxel_to_world([c, r, 0]), lps_to_ras(lps), atol=1e-9)


def test_file_without_geometry_is_2d_at_the_origin_like_gdcm():
    img = read_dicom_file(sample("US1_UNCR.dcm"))  # no IPP / IOP / PixelSpacing
    assert img.spatial_ndim == 2
    assert img.origin == (0.0, 0.0, 0.0)
    assert img.spacing == (1.0, 1.0)
    assert_allclose(img.affine, np.diag([-1.0, -1.0, 1.0, 1.0]))  # LPS identity
    assert img.meta["has_patient_geometry"] is False
    nm = read_dicom_file(sample("JPEG2000_UNC.dcm"))  # PixelSpacing 2.26 but no position
    assert nm.spacing == (2.26, 2.26)


def test_enhanced_ct_frames_by_hand():
    path = sample("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    img = read_dicom_file(path)
    assert img.spatial_shape == (512, 512, 2)
    pos = [
        np.array([float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient])
        for fg in ds.PerFrameFunctionalGroupsSequence
    ]
    iop = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    normal = np.cross([float(v) for v in iop[:3]], [float(v) for v in iop[3:]])
    # frames sorted along the normal: frame 1 (z=-149) comes first since the normal is -z
    order = np.argsort([p @ normal for p in pos])
    assert order.tolist() == [1, 0]
    for k, f in enumerate(order):
        assert_allclose(img.voxel_to_world([0, 0, k]), lps_to_ras(pos[f]), atol=1e-6)
        pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
        raw = ds.pixel_array[f].T.astype(np.int64)
        assert_array_equal(img.array[..., k], raw + int(float(pvt.RescaleIntercept)))
    assert img.meta["units"] == "HU"
    assert img.spacing == pytest.approx((0.388672, 0.388672, 10.0))


def test_enhanced_mr_without_functional_groups_is_stacked_like_gdcm():
    img = read_dicom_file(sample("emri_small.dcm"))
    assert img.spatial_shape == (64, 64, 10)
    assert img.meta["has_patient_geometry"] is False
    assert img.spacing == (1.0, 1.0, 1.0)


def test_enhanced_frames_in_any_order_are_sorted(tmp_path):
    src = sample("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(src)
    frames = ds.pixel_array
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence(
        list(ds.PerFrameFunctionalGroupsSequence)[::-1]
    )
    ds.PixelData = np.ascontiguousarray(frames[::-1]).tobytes()
    out = tmp_path / "reversed.dcm"
    ds.save_as(out)
    a, b = read_dicom_file(src), read_dicom_file(out)
    assert_array_equal(a.array, b.array)
    assert_allclose(a.affine, b.affine)


# -- series ------------------------------------------------------------------------


def _sitk_series(folder: Path, uid: str | None = None) -> Image:
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid or "")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    return from_sitk(reader.Execute())


def _assert_same(ours: Image, theirs: Image):
    a, b = _ras(ours), _ras(theirs)
    assert a.array.shape == b.array.shape
    assert_allclose(a.affine, b.affine, atol=WORLD_ATOL, rtol=0)
    if np.issubdtype(ours.dtype, np.floating):  # float32 here, float64 in SimpleITK
        assert_allclose(a.array, b.array, rtol=2e-7, atol=0)
    else:
        assert_array_equal(a.array.astype(np.float64), b.array.astype(np.float64))


def test_dicomdir_ct_series_matches_simpleitk():
    folder = DICOMDIR_TESTS / "98892001" / "CT5N"
    img = read_dicom_series(folder)
    assert img.spatial_shape == (16, 16, 5)
    assert img.meta["n_instances"] == 5
    _assert_same(img, _sitk_series(folder))
    # file names ascend while positions descend: the order comes from the positions
    zs = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in sorted(folder.iterdir())]
    assert zs == sorted(zs, reverse=True)
    assert img.voxel_to_world([0, 0, 0])[2] == pytest.approx(min(zs))
    # values in HU: slice k is the file with the k-th smallest z, rescaled by hand
    assert img.meta["units"] == "HU"
    by_z = sorted(folder.iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    for k, f in enumerate(by_z):
        ds = pydicom.dcmread(f)
        hu = ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert_array_equal(img.array[..., k], hu)


DICOMDIR_SERIES_FOLDERS = sorted(
    p.parent.relative_to(DICOMDIR_TESTS).as_posix()
    for p in DICOMDIR_TESTS.glob("*/*/*")
    if p.is_file() and "TINY_ALPHA" not in p.parts
)


@pytest.mark.parametrize("rel", sorted(set(DICOMDIR_SERIES_FOLDERS)))
def test_every_dicomdir_series_matches_simpleitk_or_is_refused_for_a_checked_reason(rel):
    folder = DICOMDIR_TESTS / rel
    found = list_dicom_series(folder)
    assert sum(s.n_files for s in found) == len(list(folder.iterdir()))
    for s in found:
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in s.files]
        iops = {
            tuple(round(float(v), 4) for v in h.get("ImageOrientationPatient", [])) for h in headers
        }
        if len(iops) > 1:  # checked by hand from the headers: not one volume
            with pytest.raises(DicomSeriesError, match=f"{len(iops)} different orientations"):
                read_dicom_series(folder, series_uid=s.series_instance_uid)
            continue
        if len(headers) > 2:
            iop = np.array(next(iter(iops)))
            normal = np.cross(iop[:3], iop[3:])
            d = np.sort([np.array(h.ImagePositionPatient, float) @ normal for h in headers])
            gaps = np.diff(d)
            if np.ptp(gaps) > 0.01 * np.median(gaps):
                with pytest.raises(DicomSeriesError, match="slice spacing is not uniform"):
                    read_dicom_series(folder, series_uid=s.series_instance_uid)
                continue
        ours = read_dicom_series(folder, series_uid=s.series_instance_uid)
        assert ours.meta["n_instances"] == s.n_files
        _assert_same(ours, _sitk_series(folder, s.series_instance_uid))


def test_cr_uses_imager_pixel_spacing_like_gdcm():
    img = read_image(DICOMDIR_TESTS / "77654033" / "CR1")
    assert img.spatial_ndim == 2 and img.spacing == (0.1, 0.1)


def test_series_with_rotating_slices_is_an_error_simpleitk_stacks_it_anyway():
    folder = DICOMDIR_TESTS / "98892003" / "MR700"
    with pytest.raises(DicomSeriesError, match="7 different orientations") as e:
        read_dicom_series(folder)
    assert str(folder) in str(e.value)
    # SimpleITK reads it as a volume with one direction for all 7 slices, which is wrong
    # for 6 of them: their ImageOrientationPatient differ (a radial localiser).
    iops = {tuple(pydicom.dcmread(f).ImageOrientationPatient) for f in folder.iterdir()}
    assert len(iops) == 7
    assert _sitk_series(folder).spatial_shape == (16, 16, 7)


def test_series_with_two_orientations_is_an_error():
    with pytest.raises(DicomSeriesError, match="2 different orientations"):
        read_dicom_series(DICOMDIR_TESTS / "98892001" / "CT2N")


def test_missing_slices_are_reported_with_the_gaps():
    folder = DICOMDIR_TESTS / "77654033" / "CT2"  # z = -99.48, 103.02, 104.27, 105.52
    with pytest.raises(
        DicomSeriesError, match=r"1\.25 mm \(x2\), 202\.5 mm \(x1\).*between sorted slices 0 and 1"
    ):
        read_dicom_series(folder)
    img = read_dicom_series(folder, allow_nonuniform_spacing=True)
    assert img.meta["nonuniform_spacing"] is True
    assert img.meta["slice_positions_mm"] == pytest.approx([-99.48, 103.02, 104.27, 105.52])
    assert img.spacing[2] == pytest.approx((105.52 + 99.48) / 3, abs=1e-4)


def test_folder_with_several_series_lists_them():
    folder = DICOMDIR_TESTS / "98892003"
    found = list_dicom_series(folder)
    assert [s.n_files for s in found] == [1, 1, 1, 3, 3, 1, 7]
    with pytest.raises(DicomSeriesError) as e:
        read_image(folder)
    msg = str(e.value)
    assert "holds 7 series" in msg and str(folder) in msg
    for s in found:
        assert s.series_instance_uid in msg
    assert "#700 'ANGIO Projected from   C' MR, 7 files" in msg
    one = next(s for s in found if s.n_files == 1)
    img = read_image(folder, series_uid=one.series_instance_uid)
    assert img.meta["series_instance_uid"] == one.series_instance_uid
    with pytest.raises(DicomSeriesError, match="no series with SeriesInstanceUID"):
        read_image(folder, series_uid="1.2.3")


def test_files_without_pixel_data_and_dicomdir_are_not_series(tmp_path):
    shutil.copy(DICOMDIR_TESTS / "DICOMDIR", tmp_path / "DICOMDIR")
    shutil.copy(PYDICOM_FILES / "rtplan.dcm", tmp_path / "plan.dcm")
    (tmp_path / "README.txt").write_text("not dicom")
    with pytest.raises(ImageReadError, match="no DICOM image files") as e:
        read_dicom_series(tmp_path)
    assert "RT Plan Storage holds no image" in str(e.value)
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", tmp_path / "ct.dcm")
    assert read_image(tmp_path).spatial_shape == (128, 128, 1)


def test_dicomdir_stub_series_without_pixels_is_an_error():
    folder = DICOMDIR_TESTS / "TINY_ALPHA" / "PT000000" / "ST000000" / "SE000000"
    with pytest.raises(ImageReadError, match="holds no image"):
        read_dicom_series(folder)


def test_written_series_reads_back_and_matches_simpleitk(tmp_path, ct_volume):
    files = write_dicom_series(ct_volume, tmp_path / "ct", modality="CT")
    assert len(files) == 6
    back = read_image(tmp_path / "ct")
    assert_array_equal(back.array, ct_volume.array)
    assert_allclose(back.affine, ct_volume.affine, atol=1e-5)
    assert back.meta["units"] == "HU" and back.meta["phi"] == {
        "StudyDate": back.meta["phi"]["StudyDate"],
        "StudyTime": back.meta["phi"]["StudyTime"],
        "ContentDate": back.meta["phi"]["ContentDate"],
        "ContentTime": back.meta["phi"]["ContentTime"],
    }
    _assert_same(back, _sitk_series(tmp_path / "ct"))


def test_shuffled_file_names_give_the_same_volume(tmp_path, ct_volume):
    files = write_dicom_series(ct_volume, tmp_path / "a")
    names = [f"{random.Random(7).random():.12f}_{i}.dcm" for i in range(len(files))]
    random.Random(3).shuffle(names)
    (tmp_path / "b").mkdir()
    for f, n in zip(files, names, strict=True):
        shutil.copy(f, tmp_path / "b" / n)
    a, b = read_image(tmp_path / "a"), read_image(tmp_path / "b")
    assert_array_equal(a.array, b.array)
    assert_allclose(a.affine, b.affine)


def test_instance_numbers_are_ignored(tmp_path, ct_volume):
    files = write_dicom_series(ct_volume, tmp_path / "s")
    for f in files:  # scramble InstanceNumber
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = 100 - ds.InstanceNumber if ds.InstanceNumber % 2 else ds.InstanceNumber
        ds.save_as(f)
    assert_array_equal(read_image(tmp_path / "s").array, ct_volume.array)


def test_float_mr_series_round_trip_within_the_stored_precision(tmp_path, rng):
    from tests.conftest import oblique_affine

    arr = rng.normal(300.0, 80.0, size=(9, 7, 4)).astype(np.float32)
    img = Image(arr, oblique_affine())
    write_dicom_series(img, tmp_path / "mr", modality="MR")
    back = read_image(tmp_path / "mr")
    assert back.dtype == np.float32 and back.meta["modality"] == "MR"
    step = (arr.max() - arr.min()) / 65535
    assert np.abs(back.array - arr).max() <= step
    _assert_close_sitk = _sitk_series(tmp_path / "mr")
    assert_allclose(_ras(back).array, _ras(_assert_close_sitk).array, rtol=1e-6, atol=1e-4)


def test_two_series_in_one_folder(tmp_path, ct_volume):
    write_dicom_series(ct_volume, tmp_path / "x" / "one", series_number=1)
    other = ct_volume.with_array(ct_volume.array[::-1].copy())
    write_dicom_series(other, tmp_path / "x" / "two", series_number=2, series_description="two")
    found = list_dicom_series(tmp_path / "x")
    assert [(s.series_number, s.n_files) for s in found] == [(1, 6), (2, 6)]
    with pytest.raises(DicomSeriesError, match="holds 2 series"):
        read_image(tmp_path / "x")
    got = read_image(tmp_path / "x", series_uid=found[1].series_instance_uid)
    assert_array_equal(got.array, other.array)
    theirs = _sitk_series(tmp_path / "x" / "two", found[1].series_instance_uid)
    _assert_same(got, theirs)


def test_nonuniform_spacing_and_duplicates_from_a_written_series(tmp_path, ct_volume):
    files = write_dicom_series(ct_volume, tmp_path / "gap")
    os.remove(files[3])
    with pytest.raises(DicomSeriesError, match=r"slice spacing is not uniform.*5 mm \(x1\)"):
        read_image(tmp_path / "gap")
    shutil.copy(files[1], tmp_path / "gap" / "copy.dcm")
    ds = pydicom.dcmread(tmp_path / "gap" / "copy.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "gap" / "copy.dcm")
    with pytest.raises(DicomSeriesError, match="share a position"):
        read_image(tmp_path / "gap")


def test_small_position_rounding_is_accepted(tmp_path, ct_volume):
    files = write_dicom_series(ct_volume, tmp_path / "s")
    ds = pydicom.dcmread(files[2])
    ipp = [float(v) for v in ds.ImagePositionPatient]
    normal = np.cross(
        [float(v) for v in ds.ImageOrientationPatient[:3]],
        [float(v) for v in ds.ImageOrientationPatient[3:]],
    )
    ds.ImagePositionPatient = [f"{v:.4f}" for v in np.array(ipp) + 0.01 * normal]  # 0.4 %
    ds.save_as(files[2])
    assert read_image(tmp_path / "s").spatial_shape == (12, 10, 6)


def test_mixed_sizes_are_an_error(tmp_path, ct_volume):
    write_dicom_series(ct_volume, tmp_path / "s")
    small = ct_volume.with_array(ct_volume.array)  # same geometry, then crop rows of one file
    del small
    f = sorted((tmp_path / "s").iterdir())[0]
    ds = pydicom.dcmread(f)
    ds.Rows = ds.Rows - 1
    ds.PixelData = ds.PixelData[: ds.Rows * ds.Columns * 2]
    ds.save_as(f)
    with pytest.raises(DicomSeriesError, match="differ in size"):
        read_image(tmp_path / "s")


def test_gantry_tilt_keeps_true_voxel_positions(tmp_path):
    # 4 axial slices whose positions shift 1 mm in y per 2 mm in z (tilted gantry)
    img = Image(np.arange(4 * 3 * 4, dtype=np.int16).reshape(4, 3, 4), np.diag([-1.0, -1, 2, 1]))
    files = write_dicom_series(img, tmp_path / "t")
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0], ipp[1] + 1.0 * k, ipp[2]]
        ds.save_as(f)
    back = read_image(tmp_path / "t")
    assert back.meta["gantry_tilt_deg"] == pytest.approx(np.degrees(np.arctan(0.5)), abs=1e-3)
    for k in range(4):
        want = lps_to_ras(np.array([0.0, 1.0 * k, 2.0 * k]))
        assert_allclose(back.voxel_to_world([0, 0, k]), want, atol=1e-6)


def test_series_converts_to_nifti_with_the_same_geometry(tmp_path, ct_volume):
    write_dicom_series(ct_volume, tmp_path / "ct")
    img = read_image(tmp_path / "ct")
    write_image(img, tmp_path / "ct.nii.gz")
    back = read_image(tmp_path / "ct.nii.gz")
    assert_allclose(back.affine, img.affine, atol=1e-5)
    assert_array_equal(back.array, img.array)


def test_single_file_series_folder(tmp_path):
    shutil.copy(sample("MR_small.dcm"), tmp_path / "only")
    img = read_image(tmp_path)
    assert img.meta["n_instances"] == 1
    assert_array_equal(img.array, read_dicom_file(sample("MR_small.dcm")).array)


def test_data_dirs_exist():
    assert PYDICOM_DATA.is_dir() and PYDICOM_FILES.is_dir()


# -- enhanced multi-frame written by an independent writer (highdicom) -----------------


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_legacy_converted_enhanced_matches_its_series(tmp_path, ct_volume, modality):
    import highdicom as hd

    files = write_dicom_series(ct_volume, tmp_path / "s", modality=modality)
    datasets = [pydicom.dcmread(f) for f in files]
    random.Random(5).shuffle(datasets)  # frames in no particular order
    cls = {
        "CT": hd.legacy.LegacyConvertedEnhancedCTImage,
        "MR": hd.legacy.LegacyConvertedEnhancedMRImage,
    }[modality]
    enhanced = cls(datasets, hd.UID(), 10, hd.UID(), 1)
    out = tmp_path / "enhanced.dcm"
    enhanced.save_as(out)
    ds = pydicom.dcmread(out)
    assert "PerFrameFunctionalGroupsSequence" in ds and int(ds.NumberOfFrames) == len(files)
    img = read_image(out)
    series = read_image(tmp_path / "s")
    assert img.meta["n_frames"] == len(files) and img.meta["modality"] == modality
    assert_array_equal(img.array, series.array)
    assert_allclose(img.affine, series.affine, atol=1e-5)


def test_series_written_by_simpleitk(tmp_path):
    # SimpleITK's own recipe for writing a DICOM series (Examples/DicomSeriesFromArray),
    # with an oblique direction and 2.5 mm slices.
    from tests.conftest import oblique_affine

    rng = np.random.default_rng(1)
    src = Image(rng.integers(-1000, 1500, (10, 9, 5)).astype(np.int16), oblique_affine())
    simg = __import__("medlens.io", fromlist=["to_sitk"]).to_sitk(src)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid, frame_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    direction = simg.GetDirection()
    order = list(range(simg.GetDepth()))
    random.Random(2).shuffle(order)
    (tmp_path / "itk").mkdir()
    for n, k in enumerate(order):
        sl = simg[:, :, k]
        for tag, value in [
            ("0008|0060", "CT"),
            ("0020|000e", series_uid),
            ("0020|0052", frame_uid),
            ("0008|0018", pydicom.uid.generate_uid()),
            ("0020|0037", "\\".join(f"{v:.10g}" for v in direction[0:7:3] + direction[1:8:3])),
            (
                "0020|0032",
                "\\".join(f"{v:.10g}" for v in simg.TransformIndexToPhysicalPoint((0, 0, k))),
            ),
            ("0020|0013", str(n + 1)),
            ("0018|0050", "2.5"),
        ]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / "itk" / f"{n:03d}.dcm"))
        writer.Execute(sl)
    ours = read_image(tmp_path / "itk")
    assert_allclose(ours.affine, src.affine, atol=1e-4)
    assert_array_equal(ours.array, src.array)
    _assert_same(ours, _sitk_series(tmp_path / "itk"))
