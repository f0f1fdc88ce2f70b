"""DICOM-SEG: reading (vs highdicom and by hand) and writing (highdicom) with round trips."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from pydicom.sr.codedict import codes

from medlens import Image
from medlens.image import reorient
from medlens.io import (
    ImageWriteError,
    list_dicom_series,
    lps_to_ras,
    read_dicom_seg,
    read_image,
    write_dicom_seg,
    write_dicom_series,
)
from tests.io.conftest import DICOMDIR_TESTS, sample

LIVER = ["liver.dcm", "liver_expb.dcm", "liver_1frame.dcm", "liver_expb_1frame.dcm"]


def _highdicom_labels(path) -> Image:
    """highdicom's own reading as an Image: Volume axes (slice, row, column), LPS affine."""
    vol = hd.seg.segread(path).get_volume(combine_segments=True)
    return Image(np.asarray(vol.array), lps_to_ras(vol.affine))


def _same(a: Image, b: Image, atol=1e-4):
    ra, rb = reorient(a, "RAS"), reorient(b, "RAS")
    assert ra.spatial_shape == rb.spatial_shape
    assert_allclose(ra.affine, rb.affine, atol=atol, rtol=0)
    assert_array_equal(ra.array, rb.array)


@pytest.mark.parametrize("name", LIVER)
def test_liver_matches_highdicom(name):
    ours = read_image(sample(name))  # read_image dispatches SEG files to the SEG reader
    assert ours.meta["format"] == "dicom-seg"
    assert ours.meta["segments"][0]["label"] == "Liver"
    assert ours.dtype == np.uint8 and set(np.unique(ours.array)) <= {0, 1}
    assert ours.array.sum() > 0
    # highdicom parses little-endian SEGs only; the _expb files hold the same content
    _same(ours, _highdicom_labels(sample(name.replace("_expb", ""))))


def test_liver_frames_by_hand():
    path = sample("liver.dcm")
    ds = pydicom.dcmread(path)
    img = read_dicom_seg(path)
    assert img.spatial_shape == (512, 512, 3)
    for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ipp = np.array([float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient])
        assert fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1
        k = f  # positions -128.69, -127.69, -126.69: already ascending along +z
        assert_allclose(img.voxel_to_world([0, 0, k]), lps_to_ras(ipp), atol=1e-6)
        assert_array_equal(img.array[:, :, k], ds.pixel_array[f].T)
    assert img.meta["referenced_series_instance_uid"].endswith("23430.1")
    assert img.spacing == pytest.approx((0.810547, 0.810547, 1.0))


@pytest.fixture
def source(tmp_path, ct_volume):
    folder = tmp_path / "ct"
    write_dicom_series(ct_volume, folder, modality="CT")
    return folder, read_image(folder)


def _labels(shape, rng):
    lab = np.zeros(shape, np.uint8)
    lab[2:8, 2:7, 1:3] = 1
    lab[5:11, 4:9, 2:4] = 2  # touches 1, slice 0 and 5 stay empty
    lab[0:2, 0:2, 4] = 4  # label 3 absent
    return lab


def test_round_trip_source_labels_seg_labels(tmp_path, source, rng):
    folder, ct = source
    lab = _labels(ct.spatial_shape, rng)
    out = tmp_path / "seg.dcm"
    write_dicom_seg(ct.with_array(lab), folder, out, segment_names={1: "kidney", 2: "tumour"})
    back = read_dicom_seg(out, reference=ct)
    assert back.same_grid(ct)
    assert_array_equal(back.array, lab)
    names = [s["label"] for s in back.meta["segments"]]
    assert names == ["kidney", "tumour", "label 3", "label 4"]
    # highdicom and pydicom read it back: the same labels on the same grid
    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "BINARY" and seg.number_of_segments == 4
    # (highdicom's volume, like ours without a reference, spans the segmented slices 1-4)
    _same(_highdicom_labels(out), Image(lab[:, :, 1:5], ct.affine @ _shift(1)))
    # without the reference the grid spans the segmented slices (empty frames omitted)
    own = read_dicom_seg(out)
    assert own.spatial_shape == (12, 10, 4)
    assert_allclose(own.affine[:3, :3], ct.affine[:3, :3], atol=1e-5)
    assert_allclose(own.voxel_to_world([0, 0, 0]), ct.voxel_to_world([0, 0, 1]), atol=1e-4)
    assert_array_equal(own.array, lab[:, :, 1:5])


def test_seg_references_its_source(tmp_path, source, rng):
    folder, ct = source
    out = tmp_path / "seg.dcm"
    write_dicom_seg(ct.with_array(_labels(ct.spatial_shape, rng)), folder, out)
    ds = pydicom.dcmread(out)
    src = [pydicom.dcmread(f) for f in sorted(folder.iterdir())]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert ds.FrameOfReferenceUID == src[0].FrameOfReferenceUID
    assert ds.StudyInstanceUID == src[0].StudyInstanceUID
    ref = ds.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == src[0].SeriesInstanceUID
    referenced = {i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence}
    assert referenced == {d.SOPInstanceUID for d in src}
    assert ds.SeriesInstanceUID != src[0].SeriesInstanceUID
    assert str(ds.PatientName) == "" and ds.PatientID == ""


def test_overlapping_segments(tmp_path, source):
    folder, ct = source
    datasets = sorted(
        (pydicom.dcmread(f) for f in folder.iterdir()),
        key=lambda d: float(d.ImagePositionPatient[2]) * 0 + int(d.InstanceNumber),
    )
    shape = ct.spatial_shape
    masks = np.zeros((shape[2], shape[1], shape[0], 2), np.uint8)  # (frames, rows, cols, seg)
    masks[1:4, 2:6, 2:6, 0] = 1
    masks[2:5, 4:8, 4:8, 1] = 1  # overlaps segment 1 on slices 2, 3
    descs = [
        hd.seg.SegmentDescription(
            segment_number=i,
            segment_label=f"s{i}",
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for i in (1, 2)
    ]
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=masks,
        segmentation_type="BINARY",
        segment_descriptions=descs,
        series_instance_uid=hd.UID(),
        series_number=5,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="0",
        device_serial_number="0",
    )
    out = tmp_path / "overlap.dcm"
    seg.save_as(out)
    # write_dicom_series wrote slice k as InstanceNumber k + 1, so frames follow k here
    lab = read_dicom_seg(out, reference=ct)
    m1 = np.transpose(masks[..., 0], (2, 1, 0)).astype(bool)
    m2 = np.transpose(masks[..., 1], (2, 1, 0)).astype(bool)
    assert lab.meta["overlap_voxels"] == int((m1 & m2).sum()) > 0
    assert lab.meta["overlapping_segments"] == [[1, 2]]
    want = np.where(m2, 2, np.where(m1, 1, 0))  # the higher segment number wins
    assert_array_equal(lab.array, want)
    ch = read_dicom_seg(out, reference=ct, as_channels=True)
    assert ch.channels and ch.n_channels == 2
    assert_array_equal(ch.array[0].astype(bool), m1)
    assert_array_equal(ch.array[1].astype(bool), m2)


def test_fractional_seg_is_thresholded_at_half(tmp_path, source):
    folder, ct = source
    datasets = sorted(
        (pydicom.dcmread(f) for f in folder.iterdir()), key=lambda d: d.InstanceNumber
    )
    shape = ct.spatial_shape
    prob = np.zeros((shape[2], shape[1], shape[0]), np.float32)
    prob[2, 3:6, 3:6] = 0.4
    prob[2, 4, 4] = 0.6
    prob[3, 1:3, 1:3] = 1.0
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=prob,
        segmentation_type="FRACTIONAL",
        segment_descriptions=[
            hd.seg.SegmentDescription(
                1,
                "p",
                codes.SCT.Tissue,
                codes.SCT.Tissue,
                hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                hd.AlgorithmIdentificationSequence("x", codes.cid7162.ArtificialIntelligence, "1"),
            )
        ],
        series_instance_uid=hd.UID(),
        series_number=6,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="t",
        manufacturer_model_name="t",
        software_versions="0",
        device_serial_number="0",
        max_fractional_value=255,
    )
    out = tmp_path / "frac.dcm"
    seg.save_as(out)
    lab = read_dicom_seg(out, reference=ct)
    assert lab.meta["segmentation_type"] == "FRACTIONAL"
    assert_array_equal(lab.array, np.transpose(prob >= 0.5, (2, 1, 0)).astype(np.uint8))


def test_seg_of_a_real_ct_series(tmp_path):
    folder = DICOMDIR_TESTS / "98892001" / "CT5N"
    ct = read_image(folder)
    lab = (ct.array > np.percentile(ct.array, 70)).astype(np.uint8)
    lab[..., 0] = 0
    write_dicom_seg(ct.with_array(lab), folder, tmp_path / "seg.dcm", algorithm_name="threshold")
    back = read_dicom_seg(tmp_path / "seg.dcm", reference=ct)
    assert_array_equal(back.array, lab)
    assert back.meta["segments"][0]["algorithm_type"] == "AUTOMATIC"
    _same(_highdicom_labels(tmp_path / "seg.dcm"), Image(lab[..., 1:], ct.affine @ _shift(1)))


def _shift(k: int) -> np.ndarray:
    s = np.eye(4)
    s[2, 3] = k
    return s


def test_seg_of_an_enhanced_multiframe_source(tmp_path):
    src = sample("eCT_Supplemental.dcm")
    ct = read_image(src)
    lab = np.zeros(ct.spatial_shape, np.uint8)
    lab[100:200, 150:300, 0] = 1
    lab[250:300, 250:260, 1] = 2
    write_dicom_seg(ct.with_array(lab), src, tmp_path / "seg.dcm")
    back = read_dicom_seg(tmp_path / "seg.dcm", reference=ct)
    assert_array_equal(back.array, lab)
    _same(read_dicom_seg(tmp_path / "seg.dcm"), Image(lab, ct.affine))


def test_seg_next_to_its_series_is_listed_separately(tmp_path, source, rng):
    folder, ct = source
    write_dicom_seg(ct.with_array(_labels(ct.spatial_shape, rng)), folder, folder / "seg.dcm")
    found = list_dicom_series(folder)
    assert sorted(s.modality for s in found) == ["CT", "SEG"]
    ct_uid = next(s.series_instance_uid for s in found if s.modality == "CT")
    assert read_image(folder, series_uid=ct_uid).same_grid(ct)
    seg_uid = next(s.series_instance_uid for s in found if s.modality == "SEG")
    assert read_image(folder, series_uid=seg_uid).meta["format"] == "dicom-seg"


def test_write_errors_leave_no_file(tmp_path, source, monkeypatch):
    folder, ct = source
    lab = np.zeros(ct.spatial_shape, np.uint8)
    out = tmp_path / "seg.dcm"
    with pytest.raises(ImageWriteError, match="empty"):
        write_dicom_seg(ct.with_array(lab), folder, out)
    with pytest.raises(ImageWriteError, match="integers"):
        write_dicom_seg(ct.with_array(lab.astype(np.float32)), folder, out)
    lab[1, 1, 1] = 1
    shifted = Image(lab, ct.affine @ _shift(1))
    with pytest.raises(ImageWriteError, match="not on the source grid"):
        write_dicom_seg(shifted, folder, out)

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(hd.seg.Segmentation, "save_as", boom)
    with pytest.raises(ImageWriteError, match="disk full"):
        write_dicom_seg(ct.with_array(lab), folder, out)
    assert list(tmp_path.iterdir()) == [folder]


def test_write_replaces_atomically(tmp_path, source, rng):
    folder, ct = source
    out = tmp_path / "seg.dcm"
    lab = _labels(ct.spatial_shape, rng)
    write_dicom_seg(ct.with_array(lab), folder, out)
    lab2 = (lab > 0).astype(np.uint8)
    write_dicom_seg(ct.with_array(lab2), folder, out)
    assert_array_equal(read_dicom_seg(out, reference=ct).array, lab2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct", "seg.dcm"]


def test_reference_of_another_grid_is_refused(tmp_path, source, rng):
    folder, ct = source
    out = tmp_path / "seg.dcm"
    write_dicom_seg(ct.with_array(_labels(ct.spatial_shape, rng)), folder, out)
    other = Image(np.zeros(ct.spatial_shape), ct.affine @ np.diag([1.0, 1.0, 0.5, 1.0]))
    from medlens.io import ImageReadError

    with pytest.raises(ImageReadError, match="not a slice of the reference grid"):
        read_dicom_seg(out, reference=other)


# --- SpacingBetweenSlices that disagrees with the slice positions (review item) -----------

_GAP = 2.5  # slices every 2.5 mm, while SpacingBetweenSlices = SliceThickness = 5


@pytest.fixture
def overlapping_slices(tmp_path):
    """An oblique 8-slice CT series from CT_small.dcm, 2.5 mm apart, tagged 5 mm apart."""
    from pydicom.uid import generate_uid

    src = pydicom.dcmread(sample("CT_small.dcm"))
    row = np.array([np.cos(0.3), np.sin(0.3), 0.0])
    col = np.array([0.0, np.cos(0.2), np.sin(0.2)])
    col -= row * (row @ col)
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    folder = tmp_path / "ct"
    folder.mkdir()
    series = generate_uid()
    for k in range(8):
        ds = src.copy()
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
        pos = np.array([-10.0, 20.0, 30.0]) + _GAP * k * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.SliceThickness = 5
        ds.SpacingBetweenSlices = 5
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = 8 - k  # file order is not slice order
        ds.save_as(folder / f"{k:02d}.dcm")
    ct = read_image(folder)
    assert ct.spatial_shape == (128, 128, 8)
    assert ct.spacing[2] == pytest.approx(_GAP, abs=1e-5)  # from the positions, not the tag
    return folder, ct


def _sparse_labels(shape):
    lab = np.zeros(shape, np.uint8)
    lab[10:20, 10:30, 0] = 1
    lab[40:50, 40:60, 4] = 1  # slices 1-3 (and 5-7) empty: not written as frames
    return lab


def test_seg_writes_the_measured_slice_gap_not_the_source_tag(tmp_path, overlapping_slices):
    folder, ct = overlapping_slices
    out = tmp_path / "seg.dcm"
    write_dicom_seg(ct.with_array(_sparse_labels(ct.spatial_shape)), folder, out)
    meas = pydicom.dcmread(out).SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(meas.SpacingBetweenSlices) == pytest.approx(_GAP, abs=1e-5)
    assert float(meas.SliceThickness) == 5.0  # the thickness is kept: it is true
    assert [float(v) for v in meas.PixelSpacing] == [0.661468, 0.661468]
    # the source files were not touched through highdicom's shared sequence
    assert float(pydicom.dcmread(folder / "00.dcm").SpacingBetweenSlices) == 5.0


def test_seg_round_trip_with_slices_closer_than_the_tag(tmp_path, overlapping_slices):
    folder, ct = overlapping_slices
    lab = _sparse_labels(ct.spatial_shape)
    out = tmp_path / "seg.dcm"
    write_dicom_seg(ct.with_array(lab), folder, out)
    back = read_image(out)  # own grid: slice 0 to slice 4, 2.5 mm apart
    assert back.spatial_shape == (128, 128, 5)
    assert_allclose(back.affine, ct.affine, atol=1e-4, rtol=0)
    assert_array_equal(back.array, lab[..., :5])
    assert "read_warnings" not in back.meta
    assert_array_equal(read_dicom_seg(out, reference=ct).array, lab)
    # highdicom's own reading agrees on where the frames lie
    _same(_highdicom_labels(out), Image(lab[..., :5], ct.affine), atol=1e-3)


def test_seg_reader_trusts_positions_over_a_contradicting_tag(tmp_path, overlapping_slices):
    folder, ct = overlapping_slices
    lab = _sparse_labels(ct.spatial_shape)
    lab[5:8, 5:8, 1] = 1  # frames at slices 0, 1 and 4: 0, 2.5 and 10 mm
    out = tmp_path / "seg.dcm"
    write_dicom_seg(ct.with_array(lab), folder, out)
    ds = pydicom.dcmread(out)
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices = 5
    ds.save_as(out)  # as a writer that copies the source's tag would have made it
    back = read_image(out)
    assert back.spatial_shape == (128, 128, 5)
    assert_allclose(back.affine, ct.affine, atol=1e-4, rtol=0)
    assert_array_equal(back.array, lab[..., :5])
    assert any("contradicts the frame positions" in w for w in back.meta["read_warnings"])


def test_seg_reader_without_tag_uses_a_fraction_of_the_gaps(tmp_path, overlapping_slices):
    folder, ct = overlapping_slices
    lab = np.zeros(ct.spatial_shape, np.uint8)
    lab[1:3, 1:3, [0, 3, 5]] = 1  # gaps 7.5 and 5 mm: on a 2.5 mm grid
    out = tmp_path / "seg.dcm"
    write_dicom_seg(ct.with_array(lab), folder, out)
    ds = pydicom.dcmread(out)
    del ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices
    ds.save_as(out)
    back = read_image(out)
    assert back.spacing[2] == pytest.approx(_GAP, abs=1e-5)
    assert_array_equal(back.array, lab[..., :6])


def test_seg_frames_off_any_grid_are_refused(tmp_path, overlapping_slices):
    from medlens.io import ImageReadError

    folder, ct = overlapping_slices
    lab = _sparse_labels(ct.spatial_shape)
    lab[5:8, 5:8, 1] = 1
    out = tmp_path / "seg.dcm"
    write_dicom_seg(ct.with_array(lab), folder, out)
    ds = pydicom.dcmread(out)
    normal_lps = ct.affine[:3, 2] / np.linalg.norm(ct.affine[:3, 2]) * [-1.0, -1.0, 1.0]
    planes = [fg.PlanePositionSequence[0] for fg in ds.PerFrameFunctionalGroupsSequence]
    along = [np.array([float(v) for v in pl.ImagePositionPatient]) @ normal_lps for pl in planes]
    last = planes[int(np.argmax(along))]
    moved = np.array([float(v) for v in last.ImagePositionPatient]) + 1.1 * normal_lps
    last.ImagePositionPatient = [f"{v:.6f}" for v in moved]  # 0, 2.5, 11.1 mm
    ds.save_as(out)
    with pytest.raises(ImageReadError, match=r"not on a grid") as err:
        read_image(out)
    assert "SpacingBetweenSlices (2.5 mm)" in str(err.value)
    assert "pass reference=" in str(err.value)

