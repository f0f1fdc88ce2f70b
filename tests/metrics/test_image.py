"""Image similarity metrics: hand-worked values, skimage equality, official conventions.

The "official" helpers below transcribe the published definitions (fastMRI
``fastmri/evaluate.py``, SynthRAD2023 ``functions/image_metrics.py`` and CMRxRecon
2023 ``Evaluation/Evaluation.py``), which are themselves written on top of
``skimage.metrics``; medlens computes SSIM with its own filters, so these are
independent checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import metrics as skm
from skimage.util import crop as sk_crop

from medlens import metrics as mm


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _phantom(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64
) -> np.ndarray:
    x = np.zeros(shape)
    centre = np.array(shape) / 2
    grid = np.indices(shape).astype(float)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    x[r < min(shape) / 3] = 1.0
    x[r < min(shape) / 6] = 2.5
    return (x + 0.05 * rng.standard_normal(shape)).astype(dtype)


# ------------------------------------------------------------------ elementary


def test_hand_worked_errors() -> None:
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 3.0, 1.0, 4.0])
    assert mm.mean_absolute_error(ref, pred) == pytest.approx(0.75, abs=1e-15)
    assert mm.mean_squared_error(ref, pred) == pytest.approx(1.25, abs=1e-15)
    assert mm.root_mean_squared_error(ref, pred) == pytest.approx(math.sqrt(1.25), abs=1e-15)
    assert mm.normalized_mean_squared_error(ref, pred) == pytest.approx(5.0 / 30.0, abs=1e-15)
    # PSNR with L = 4: 10 log10(16 / 1.25)
    assert mm.peak_signal_noise_ratio(ref, pred, data_range=4.0) == pytest.approx(
        10 * math.log10(16 / 1.25), abs=1e-12
    )
    mask = np.array([0, 1, 1, 0])
    assert mm.mean_absolute_error(ref, pred, mask=mask) == pytest.approx(1.5)
    assert mm.mean_squared_error(ref, pred, mask=mask) == pytest.approx(2.5)
    assert mm.normalized_mean_squared_error(ref, pred, mask=mask) == pytest.approx(5.0 / 13.0)


def test_identical_and_degenerate() -> None:
    x = np.array([0.0, 1.0, 2.0])
    assert mm.peak_signal_noise_ratio(x, x, data_range=2.0) == math.inf
    assert math.isnan(mm.normalized_mean_squared_error(np.zeros(3), np.zeros(3)))
    assert mm.normalized_mean_squared_error(np.zeros(3), np.ones(3)) == math.inf
    with pytest.raises(ValueError, match="data_range"):
        mm.peak_signal_noise_ratio(x, x, data_range=0.0)
    with pytest.raises(ValueError, match="same shape"):
        mm.mean_squared_error(x, x[:2])
    with pytest.raises(ValueError, match="empty"):
        mm.mean_absolute_error(x, x, mask=np.zeros(3))
    with pytest.raises(ValueError, match="complex"):
        mm.mean_squared_error(x + 1j, x)


@pytest.mark.parametrize("shape", [(37, 41), (12, 13, 14)])
def test_errors_match_skimage(rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    ref = _phantom(rng, shape)
    pred = ref + 0.1 * rng.standard_normal(shape)
    mask = ref > 0.5
    np.testing.assert_allclose(
        mm.mean_squared_error(ref, pred), skm.mean_squared_error(ref, pred), rtol=1e-12
    )
    np.testing.assert_allclose(
        mm.normalized_mean_squared_error(ref, pred),
        skm.normalized_root_mse(ref, pred, normalization="euclidean") ** 2,
        rtol=1e-12,
    )
    for dr in (1.0, 2.5, float(ref.max() - ref.min())):
        np.testing.assert_allclose(
            mm.peak_signal_noise_ratio(ref, pred, data_range=dr),
            skm.peak_signal_noise_ratio(ref, pred, data_range=dr),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            mm.peak_signal_noise_ratio(ref, pred, data_range=dr, mask=mask),
            skm.peak_signal_noise_ratio(ref[mask], pred[mask], data_range=dr),
            rtol=1e-12,
        )


# ------------------------------------------------------------------ SSIM


@pytest.mark.parametrize(
    ("shape", "dtype", "kwargs"),
    [
        ((48, 40), np.float64, {}),
        ((48, 40), np.float32, {}),
        ((48, 40), np.float64, {"win_size": 5}),
        ((48, 40), np.float64, {"gaussian_weights": True, "use_sample_covariance": False}),
        ((48, 40), np.float64, {"k1": 0.02, "k2": 0.05}),
        ((20, 18, 16), np.float64, {}),
        ((20, 18, 16), np.float32, {}),
        ((20, 18, 16), np.float64, {"gaussian_weights": True, "sigma": 1.0}),
    ],
)
def test_ssim_matches_skimage(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: type, kwargs: dict[str, object]
) -> None:
    ref = _phantom(rng, shape, dtype)
    pred = (ref + 0.2 * rng.standard_normal(shape)).astype(dtype)
    dr = 3.0
    sk_kwargs = {k.upper() if k in ("k1", "k2") else k: v for k, v in kwargs.items()}
    expected, expected_map = skm.structural_similarity(
        ref, pred, data_range=dr, full=True, **sk_kwargs
    )
    got = mm.structural_similarity(ref, pred, data_range=dr, **kwargs)
    got_map = mm.structural_similarity_map(ref, pred, data_range=dr, **kwargs)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=rtol)
    assert got_map.dtype == expected_map.dtype
    np.testing.assert_allclose(got_map, expected_map, rtol=rtol, atol=rtol)


def test_ssim_hand_worked_constant_images() -> None:
    # Constant images a and b: variances vanish, SSIM = (2ab + C1) / (a² + b² + C1) everywhere.
    a, b, L = 2.0, 3.0, 4.0
    c1 = (0.01 * L) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = mm.structural_similarity(np.full((9, 9), a), np.full((9, 9), b), data_range=L)
    assert got == pytest.approx(expected, rel=1e-12)


def test_ssim_mask_and_errors(rng: np.random.Generator) -> None:
    ref = _phantom(rng, (30, 30))
    pred = ref + 0.1 * rng.standard_normal(ref.shape)
    full = mm.structural_similarity(ref, pred, data_range=3.0)
    ones = np.ones(ref.shape)
    assert mm.structural_similarity(ref, pred, data_range=3.0, mask=ones) == pytest.approx(full)
    mask = np.zeros(ref.shape, bool)
    mask[10:20, 5:25] = True
    _, smap = skm.structural_similarity(ref, pred, data_range=3.0, full=True)
    expected = sk_crop(smap, 3)[sk_crop(mask, 3)].mean()
    got = mm.structural_similarity(ref, pred, data_range=3.0, mask=mask)
    assert got == pytest.approx(expected, rel=1e-12)
    border = np.zeros(ref.shape, bool)
    border[0, :] = True
    with pytest.raises(ValueError, match="window fits"):
        mm.structural_similarity(ref, pred, data_range=3.0, mask=border)
    with pytest.raises(ValueError, match="exceeds"):
        mm.structural_similarity(ref[:5, :5], pred[:5, :5], data_range=3.0)
    with pytest.raises(ValueError, match="odd"):
        mm.structural_similarity(ref, pred, data_range=3.0, win_size=4)


# ------------------------------------------------------------------ fastMRI


def _official_fastmri(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    # fastmri/evaluate.py: crop both to (W, W), W = gt.shape[-1]; volume-level
    # NMSE/PSNR with data_range = gt.max(); SSIM per slice with data_range = gt.max().
    w = gt.shape[-1]

    def crop(x: np.ndarray) -> np.ndarray:
        r0 = (x.shape[-2] - w) // 2
        c0 = (x.shape[-1] - w) // 2
        return x[..., r0 : r0 + w, c0 : c0 + w]

    gt, pred = crop(gt), crop(pred)
    nmse = np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2
    psnr = skm.peak_signal_noise_ratio(gt, pred, data_range=gt.max())
    ssim = sum(
        skm.structural_similarity(gt[i], pred[i], data_range=gt.max()) for i in range(gt.shape[0])
    )
    return {"nmse": float(nmse), "psnr": float(psnr), "ssim": float(ssim / gt.shape[0])}


@pytest.mark.parametrize("shape", [(4, 32, 32), (3, 45, 30)])
def test_fastmri_convention(rng: np.random.Generator, shape: tuple[int, int, int]) -> None:
    gt = np.abs(_phantom(rng, shape, np.float32)) * 1e-4  # fastMRI magnitudes are ~1e-4
    pred = np.abs(gt + 1e-5 * rng.standard_normal(shape)).astype(np.float32)
    expected = _official_fastmri(gt, pred)
    got = mm.fastmri_image_metrics(gt, pred)
    assert got.nmse == pytest.approx(expected["nmse"], rel=1e-5)
    assert got.psnr == pytest.approx(expected["psnr"], rel=1e-6)
    assert got.ssim == pytest.approx(expected["ssim"], rel=1e-5)
    w = shape[-1]
    assert got.mse == pytest.approx(
        skm.mean_squared_error(*(mm.fastmri_center_crop(a, (w, w)) for a in (gt, pred))), rel=1e-6
    )


def test_fastmri_volume_max_not_slice_max(rng: np.random.Generator) -> None:
    # The data range is the volume maximum: a dim slice is scored with the bright slice's range.
    gt = np.ones((2, 16, 16))
    gt[1] *= 10.0
    pred = gt.copy()
    pred[0] += 0.1
    m = mm.fastmri_image_metrics(gt, pred)
    mse = 0.01 / 2
    assert m.psnr == pytest.approx(10 * math.log10(100 / mse), rel=1e-12)
    with pytest.raises(ValueError, match="slices"):
        mm.fastmri_image_metrics(gt[0], pred[0])


def test_fastmri_center_crop_offsets() -> None:
    a = np.arange(7 * 6).reshape(7, 6)
    out = mm.fastmri_center_crop(a, (4, 3))
    assert out[0, 0] == a[1, 1]  # (7-4)//2 = 1, (6-3)//2 = 1
    with pytest.raises(ValueError, match="fit"):
        mm.fastmri_center_crop(a, (8, 3))


# ------------------------------------------------------------------ SynthRAD2023


def _official_synthrad(ct: np.ndarray, sct: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    # functions/image_metrics.py (ImageMetrics, dynamic_range = [-1024, 3000]).
    lo, hi = -1024.0, 3000.0
    m = np.where(mask > 0, 1.0, 0.0)
    mae = np.sum(np.abs(ct * m - sct * m)) / m.sum()
    g = np.clip(ct, lo, hi)
    p = np.clip(sct, lo, hi)
    psnr = skm.peak_signal_noise_ratio(g[m == 1], p[m == 1], data_range=hi - lo)
    g = np.where(m == 0, lo, g) - lo
    p = np.where(m == 0, lo, p) - lo
    _, smap = skm.structural_similarity(g, p, data_range=hi - lo, full=True)
    ssim = sk_crop(smap, 3)[sk_crop(m, 3).astype(bool)].mean(dtype=np.float64)
    return {"mae": float(mae), "psnr": float(psnr), "ssim": float(ssim)}


def test_synthrad2023_convention(rng: np.random.Generator) -> None:
    shape = (24, 22, 20)
    body = _phantom(rng, shape) > 0.5
    ct = np.where(body, 40 + 300 * rng.standard_normal(shape), -1000.0)
    ct[body & (rng.random(shape) < 0.02)] = 3500.0  # metal above the window
    ct[0, 0, 0] = -2048.0  # padding below the window
    sct = ct + 80 * rng.standard_normal(shape)
    ct = ct.astype(np.float32)
    sct = sct.astype(np.float32)
    mask = body.astype(np.float32)
    expected = _official_synthrad(ct, sct, mask)
    got = mm.synthrad2023_image_metrics(ct, sct, mask=mask)
    assert got.mae == pytest.approx(expected["mae"], rel=1e-6)
    assert got.psnr == pytest.approx(expected["psnr"], rel=1e-6)
    assert got.ssim == pytest.approx(expected["ssim"], rel=1e-6)
    # MAE is not clipped (published code), PSNR is: metal changes them differently.
    assert got.mae == pytest.approx(mm.mean_absolute_error(ct, sct, mask=mask), rel=1e-9)


def test_synthrad2023_hand_worked_clipping() -> None:
    ct = np.full((8, 8, 8), 0.0, np.float32)
    sct = ct.copy()
    ct[4, 4, 4] = 4000.0  # clipped to 3000 for PSNR
    sct[4, 4, 4] = 3000.0
    mask = np.ones(ct.shape)
    got = mm.synthrad2023_image_metrics(ct, sct, mask=mask)
    assert got.mae == pytest.approx(1000.0 / 512)
    assert got.psnr == math.inf
    assert got.ssim == pytest.approx(1.0)


# ------------------------------------------------------------------ CMRxRecon


def _official_cmrxrecon(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    # Evaluation.py calmetric on (sx, sy, slices, frames): each 2D image normalised by its max.
    ps, ss, ns = [], [], []
    for i in range(gt.shape[-2]):
        for j in range(gt.shape[-1]):
            g = gt[:, :, i, j] / gt[:, :, i, j].max()
            p = pred[:, :, i, j] / pred[:, :, i, j].max()
            ps.append(skm.peak_signal_noise_ratio(g, p, data_range=g.max()))
            ss.append(skm.structural_similarity(g, p, data_range=g.max()))
            ns.append(np.linalg.norm(g - p) ** 2 / np.linalg.norm(g) ** 2)
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "nmse": float(np.mean(ns))}


def test_cmrxrecon_convention(rng: np.random.Generator) -> None:
    sx, sy, nz, nt = 30, 24, 2, 3
    gt = np.abs(rng.standard_normal((sx, sy, nz, nt)) + 3).astype(np.float32)
    pred = (2.0 * gt + 0.3 * rng.standard_normal(gt.shape)).astype(np.float32)
    pred = np.abs(pred)
    expected = _official_cmrxrecon(gt, pred)
    # medlens layout: image plane last
    got = mm.cmrxrecon_image_metrics(
        np.moveaxis(gt, (0, 1), (-2, -1)), np.moveaxis(pred, (0, 1), (-2, -1))
    )
    assert got.n_images == nz * nt
    assert got.psnr == pytest.approx(expected["psnr"], rel=1e-6)
    assert got.ssim == pytest.approx(expected["ssim"], rel=1e-5)
    assert got.nmse == pytest.approx(expected["nmse"], rel=1e-5)


def test_cmrxrecon_crop_matlab_convention() -> None:
    # run4Ranking.m: crop(img, [round(sx/3), round(sy/2)]) with crop.m's centring.
    a = np.arange(12 * 10).reshape(12, 10)
    out = mm.cmrxrecon_crop(a)
    assert out.shape == (4, 5)
    assert out[0, 0] == a[4, 3]  # 1-based rows 5..8, cols 4..8
    b = np.zeros((7, 7))  # MATLAB round(7/3) = 2, round(3.5) = 4 (half away from zero)
    assert mm.cmrxrecon_crop(b).shape == (2, 4)
    img = np.ones((1, 24, 24)) + np.eye(24)
    got = mm.cmrxrecon_image_metrics(img, img, crop=True)
    assert got.ssim == pytest.approx(1.0)


def test_cmrxrecon_zero_image() -> None:
    with pytest.raises(ValueError, match="all zero"):
        mm.cmrxrecon_image_metrics(np.zeros((8, 8)), np.ones((8, 8)))


def test_fastmri_crop_keeps_rows_of_a_wide_image():
    from medlens.metrics import fastmri_image_metrics

    rng = np.random.default_rng(3)
    ref = rng.uniform(0.5, 1.0, size=(2, 12, 20))
    pred = ref * 0.95
    m = fastmri_image_metrics(ref, pred)
    # no rows or columns dropped: equals the uncropped computation
    assert m == fastmri_image_metrics(ref, pred, crop=False)
