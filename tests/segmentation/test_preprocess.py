import numpy as np
import pytest

from medlens.image import Image
from medlens.segmentation import normalize, preprocess_case, preprocess_dataset, resample_to_spacing

from .conftest import tiny_plans


def test_zscore_whole_image_and_mask():
    a = np.array([0.0, 0.0, 2.0, 4.0])
    np.testing.assert_allclose(normalize(a, "zscore"), (a - 1.5) / np.std(a), rtol=1e-6)
    # mask rule: statistics of the non-zero voxels (2, 4: mean 3, std 1), outside stays 0
    np.testing.assert_allclose(
        normalize(a, "zscore", use_mask=True), [0.0, 0.0, -1.0, 1.0], rtol=1e-6
    )


def test_ct_normalisation_hand_worked():
    st = {"mean": 40.0, "std": 20.0, "percentile_00_5": -100.0, "percentile_99_5": 200.0}
    out = normalize(np.array([-1000.0, 0.0, 40.0, 500.0]), "CT", intensity=st)
    np.testing.assert_allclose(out, [(-100 - 40) / 20, -2.0, 0.0, (200 - 40) / 20], rtol=1e-6)
    with pytest.raises(ValueError, match="intensity"):
        normalize(np.zeros(3), "CT")


def test_label_resampling_keeps_labels():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 4, (10, 10, 6)).astype(np.uint8) * 3  # values 0, 3, 6, 9
    img = Image(lab, np.diag([1.0, 1.0, 2.5, 1.0]))
    for sp in [(0.7, 0.7, 1.1), (2.0, 2.0, 2.0), (0.5, 0.5, 2.5)]:
        out = resample_to_spacing(img, sp, is_label=True)
        assert set(np.unique(out.array)) <= {0, 3, 6, 9}
        assert out.spacing == pytest.approx(sp)


def test_anisotropic_axis_is_nearest():
    # spacing (1, 1, 4): z is resampled separately with nearest neighbour, so every
    # output z-slice is a copy of one input slice
    arr = np.zeros((4, 4, 3), np.float32)
    arr[..., 0], arr[..., 1], arr[..., 2] = 1.0, 5.0, 9.0
    out = resample_to_spacing(
        Image(arr, np.diag([1.0, 1.0, 4.0, 1.0])), (1.0, 1.0, 2.0), is_label=False
    )
    assert out.spatial_shape == (4, 4, 6)
    assert set(np.round(np.unique(out.array), 5)) == {1.0, 5.0, 9.0}


def test_preprocess_case_geometry(tiny_ct_dataset):
    from medlens.segmentation import read_case

    ds, plans = tiny_plans(tiny_ct_dataset)
    cfg = plans.configurations["tiny"]
    img, lab = read_case(ds.training[0])
    pc = preprocess_case(img, lab, plans, cfg)
    assert pc.data.dtype == np.float32 and pc.seg is not None
    assert pc.data.shape[1:] == pc.seg.shape[1:]
    assert tuple(pc.properties["spacing"]) == pytest.approx(cfg.spacing)
    assert set(np.unique(pc.seg)) <= {0, 1, 2}
    # CT: clipped to the foreground percentiles, then z-scored with the foreground stats
    st = plans.intensity[0]
    lo = (st["percentile_00_5"] - st["mean"]) / st["std"]
    hi = (st["percentile_99_5"] - st["mean"]) / st["std"]
    assert pc.data.min() >= lo - 0.05 and pc.data.max() <= hi + 0.05
    # the preprocessed grid sits where the cropped image was (world first voxel)
    aff = np.array(pc.properties["affine"])
    assert aff[0, 3] == pytest.approx(1.0)  # slab i=0 was zero and cropped


def test_preprocess_dataset_writes_memmappable_cache(tiny_dataset, tmp_path):
    ds, plans = tiny_plans(tiny_dataset)
    folder = preprocess_dataset(ds, plans, tmp_path / "pre", workers=2, progress=False)
    data = np.load(folder / "case00.npy", mmap_mode="r")
    assert isinstance(data, np.memmap) and data.ndim == 4
    seg = np.load(folder / "case00_seg.npy")
    with np.load(folder / "case00_fg.npz") as z:
        assert set(z.files) == {"outer", "core"}
        assert np.all(seg[0][tuple(z["core"].T)] == 2)
    # second run is a no-op (cached)
    mtime = (folder / "case00.npy").stat().st_mtime_ns
    preprocess_dataset(ds, plans, tmp_path / "pre", workers=1, progress=False)
    assert (folder / "case00.npy").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("interpolation", ["bspline", "linear", "nearest", "label"])
# last-axis spacings chosen so that no sample falls exactly half-way between two input
# slices (where nearest neighbour is a tie that float rounding may break either way)
@pytest.mark.parametrize("spacing", [(1.5, 0.8, 2.3), (0.7, 1.0, 0.65)])
def test_resample_in_slabs_equals_one_pass(interpolation, spacing):
    from medlens.image import Image, resample
    from medlens.segmentation._preprocess import resample_in_slabs

    rng = np.random.default_rng(1)
    shape = (9, 7, 80)
    if interpolation == "label":
        arr = rng.integers(0, 3, shape).astype(np.uint8)
        img = Image(arr, np.diag([1.0, 1.2, 0.9, 1.0]))
    else:
        arr = rng.standard_normal((2, *shape)).astype(np.float32)
        img = Image(arr, np.diag([-1.0, 1.2, 0.9, 1.0]), channels=True)
    one = resample(img, spacing=spacing, interpolation=interpolation)
    slabs = resample_in_slabs(img, spacing, interpolation, max_voxels=9 * 7 * 10)
    np.testing.assert_allclose(slabs.affine, one.affine, atol=1e-12)
    assert slabs.array.shape == one.array.shape and slabs.array.dtype == one.array.dtype
    if interpolation in ("nearest", "label"):
        np.testing.assert_array_equal(slabs.array, one.array)
    elif interpolation == "linear":  # the same two samples, float32 rounding of weights
        np.testing.assert_allclose(slabs.array, one.array, rtol=0, atol=1e-6)
    else:  # the spline prefilter sees 16 extra slices each side: 0.268**16 ~ 7e-10
        np.testing.assert_allclose(slabs.array, one.array, rtol=0, atol=1e-5)


def test_resample_to_spacing_in_slabs_anisotropic():
    from medlens.image import Image
    from medlens.segmentation._preprocess import resample_to_spacing

    rng = np.random.default_rng(2)
    img = Image(rng.standard_normal((12, 12, 70)).astype(np.float32), np.diag([0.8, 0.8, 4.0, 1]))
    one = resample_to_spacing(img, (1.0, 1.0, 3.0), is_label=False)
    slabs = resample_to_spacing(img, (1.0, 1.0, 3.0), is_label=False, max_voxels=12 * 12 * 9)
    np.testing.assert_allclose(slabs.affine, one.affine, atol=1e-12)
    np.testing.assert_allclose(slabs.array, one.array, rtol=0, atol=1e-5)


@pytest.mark.parametrize("slab", [1, 7, 10**9])
def test_nonzero_bbox_in_slabs_matches_nonzero(monkeypatch, slab):
    import medlens.segmentation._fingerprint as fpm

    monkeypatch.setattr(fpm, "_BBOX_SLAB_VOXELS", slab)
    rng = np.random.default_rng(slab)
    for _ in range(50):
        shape = tuple(int(s) for s in rng.integers(1, 9, 3))
        a = np.zeros((2, *shape))
        for _ in range(int(rng.integers(0, 4))):
            a[(int(rng.integers(2)), *(int(rng.integers(s)) for s in shape))] = 1.0
        idx = np.nonzero(a.any(0))
        expected = (
            ((0, 0, 0), shape)
            if idx[0].size == 0
            else (tuple(int(i.min()) for i in idx), tuple(int(i.max()) + 1 for i in idx))
        )
        assert fpm.nonzero_bbox(a) == expected
        assert fpm.nonzero_bbox(a.any(0), channels=False) == expected
