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
