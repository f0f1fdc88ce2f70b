"""Learned reconstruction (torch): shapes, ACS handling, training, resume, CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medlens.cli import main  # noqa: E402
from medlens.io import write_fastmri  # noqa: E402
from medlens.reconstruction import (  # noqa: E402
    fft2c,
    ifft2c,
    l1_wavelet_reconstruction,
    sense_reconstruction,
    simulate_kspace,
    zero_filled,
)
from medlens.reconstruction._fft_torch import fft2c_torch, ifft2c_torch  # noqa: E402
from medlens.reconstruction.varnet import (  # noqa: E402
    VarNet,
    VarNetConfig,
    _acs_mask,
    _augment,
    _augment_with_start,
    _cs_start,
    _draw_mask,
    _espirit,
    _reflect,
    _Sample,
    _tensors,
    build_model,
    load_model,
    object_weight,
    parameter_count,
    train,
)

TINY = VarNetConfig(num_cascades=2, chans=4, pools=2, sens_chans=2, sens_pools=1)


def test_import_reconstruction_does_not_import_torch() -> None:
    code = "import sys, medlens.reconstruction, medlens.io; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_torch_fft_matches_numpy() -> None:
    x = np.random.default_rng(0).normal(size=(3, 10, 7)) + 0j
    np.testing.assert_allclose(fft2c_torch(torch.from_numpy(x)).numpy(), fft2c(x), atol=1e-12)
    np.testing.assert_allclose(ifft2c_torch(torch.from_numpy(x)).numpy(), ifft2c(x), atol=1e-12)


def test_acs_mask_keeps_centre_run() -> None:
    m = torch.zeros(1, 1, 1, 16)
    m[..., [0, 4, 6, 7, 8, 9, 12]] = 1
    assert torch.nonzero(_acs_mask(m)[0, 0, 0]).ravel().tolist() == [6, 7, 8, 9]


@pytest.mark.parametrize("kind", ["varnet", "unet"])
def test_forward_shapes_and_gradients(kind: str) -> None:
    model = build_model(VarNetConfig(kind=kind, num_cascades=2, chans=4, pools=2,
                                     sens_chans=2, sens_pools=1))  # fmt: skip
    k = torch.randn(2, 3, 24, 20, dtype=torch.complex64)
    m = torch.zeros(2, 1, 1, 20)
    m[..., ::3] = 1
    m[..., 8:12] = 1
    out = model(k * m, m)
    assert out.shape == (2, 24, 20) and out.dtype == torch.float32
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert parameter_count(model) > 0


def _problem(make_phantom, n: int = 32, accel: int = 3, seed: int = 1):  # type: ignore[no-untyped-def]
    sim = simulate_kspace(make_phantom(n), coils=4, acceleration=accel, acs=8, noise=0.002,
                          seed=seed)  # fmt: skip
    k = torch.from_numpy(sim.masked_kspace)  # (1, C, H, W)
    m = torch.from_numpy(sim.mask.astype(np.float32))[None, None, None, :]
    return sim, k, m


def test_untrained_varnet_is_zero_filling(make_phantom) -> None:
    # the regulariser's last convolution starts at zero: cascades of pure data consistency on
    # zero-filled data leave it unchanged, so the output is the zero-filled RSS image
    sim, k, m = _problem(make_phantom)
    model = VarNet(VarNetConfig(num_cascades=3, chans=4, pools=2, sens_chans=2, sens_pools=2,
                                init_cg_iters=0))  # fmt: skip
    with torch.no_grad():
        out = model(k, m)[0].numpy()
    np.testing.assert_allclose(out, zero_filled(sim.masked_kspace[0]), rtol=1e-5, atol=1e-6)


def test_untrained_varnet_with_sense_start_is_cg_sense(make_phantom) -> None:
    # init_cg_iters = n: the cascades start from F S x_n, x_n after n CG-SENSE iterations with
    # the estimated maps; untrained, the cascades only put the measured columns back (eta = 1)
    sim, k, m = _problem(make_phantom)
    model = VarNet(VarNetConfig(num_cascades=2, chans=4, pools=2, sens_chans=2, sens_pools=2,
                                init_cg_iters=6))  # fmt: skip
    with torch.no_grad():
        maps = model.sens(k, m)[0].numpy().astype(np.complex128)
        out = model(k, m)[0].numpy()
    y = sim.masked_kspace[0].astype(np.complex128)
    x = sense_reconstruction(y, maps, mask=sim.mask, max_iter=6, tol=0.0)
    coil_k = fft2c(maps * x)
    coil_k[..., sim.mask] = y[..., sim.mask]
    expect = np.sqrt(np.sum(np.abs(ifft2c(coil_k)) ** 2, axis=0))
    np.testing.assert_allclose(out, expect, rtol=1e-3, atol=1e-4 * float(expect.max()))
    zf = zero_filled(sim.masked_kspace[0])
    assert np.linalg.norm(out - sim.target[0]) < 0.7 * np.linalg.norm(zf - sim.target[0])


def _hard_dc_rss(maps: np.ndarray, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    coil_k = fft2c(maps * x)
    coil_k[..., mask] = y[..., mask]
    return np.sqrt(np.sum(np.abs(ifft2c(coil_k)) ** 2, axis=0))


def test_untrained_espirit_varnet_is_cg_sense_with_espirit_maps(make_phantom) -> None:
    # maps="espirit": no sensitivity network; the given ESPIRiT maps (zero outside the support)
    # are used as they are, so the untrained network is CG-SENSE with those maps + measured data
    sim, k, m = _problem(make_phantom)
    y = sim.masked_kspace[0]
    maps = _espirit(y, sim.mask)
    assert np.abs(maps).min() == 0  # ESPIRiT crops outside the object support
    model = VarNet(VarNetConfig(num_cascades=2, chans=4, pools=2, maps="espirit",
                                init_cg_iters=5))  # fmt: skip
    assert model.sens is None
    with torch.no_grad():
        out = model(k, m, torch.from_numpy(maps)[None])[0].numpy()
    x = sense_reconstruction(y.astype(np.complex128), maps.astype(np.complex128), mask=sim.mask,
                             max_iter=5, tol=0.0)  # fmt: skip
    expect = _hard_dc_rss(maps, x, y.astype(np.complex128), sim.mask)
    np.testing.assert_allclose(out, expect, rtol=1e-3, atol=1e-4 * float(expect.max()))
    with pytest.raises(ValueError, match="pass maps"):
        model(k, m)


def test_untrained_cs_start_varnet_is_l1_wavelet_with_measured_samples(make_phantom) -> None:
    # init="cs": the cascades start from F S x_cs (medlens's automatic L1-wavelet result); the
    # untrained cascades only put the measured columns back
    sim, k, m = _problem(make_phantom)
    y = sim.masked_kspace[0]
    maps = _espirit(y, sim.mask)
    x_cs = _cs_start(y, maps, sim.mask)
    with np.errstate(over="ignore"):
        ref = l1_wavelet_reconstruction(y, maps, mask=sim.mask)
    np.testing.assert_allclose(x_cs, ref, rtol=1e-5, atol=1e-6)
    model = VarNet(VarNetConfig(num_cascades=2, chans=4, pools=2, maps="espirit", init="cs"))
    with torch.no_grad():
        out = model(k, m, torch.from_numpy(maps)[None], torch.from_numpy(x_cs)[None])[0].numpy()
    expect = _hard_dc_rss(maps.astype(np.complex128), x_cs, y.astype(np.complex128), sim.mask)
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-5 * float(expect.max()))
    with pytest.raises(ValueError, match="pass start"):
        model(k, m, torch.from_numpy(maps)[None])
    with pytest.raises(ValueError, match="needs maps='espirit'"):
        VarNet(VarNetConfig(init="cs"))


def test_augment_flips_and_transposes_image_target_and_maps(make_phantom) -> None:
    sim = simulate_kspace(make_phantom(32)[:, :24], coils=3, acceleration=1, acs=8, seed=3)
    maps = np.asarray(sim.maps, dtype=np.complex64)
    weight = object_weight(sim.target[0])
    sample = _Sample(sim.kspace[0], None, sim.target[0], maps, weight=weight)
    src = ifft2c(sample.kspace)

    def candidates(a: np.ndarray) -> list[np.ndarray]:
        flips = [a, a[..., ::-1, :], a[..., ::-1], a[..., ::-1, ::-1]]
        return flips + [np.swapaxes(f, -2, -1) for f in flips]

    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(30):
        out = _augment(sample, rng)
        img = ifft2c(out.kspace)
        assert out.maps is not None and out.mask is None
        # the new k-space is that of the transformed coil images; target and maps move alike
        hits = [i for i, c in enumerate(candidates(src))
                if c.shape == img.shape and np.allclose(c, img, atol=1e-5)]  # fmt: skip
        assert len(hits) == 1
        np.testing.assert_array_equal(out.maps, candidates(maps)[hits[0]])
        np.testing.assert_array_equal(out.target, candidates(sample.target)[hits[0]])
        # the loss weights too, and they stay those of the moved target
        assert out.weight is not None
        np.testing.assert_array_equal(out.weight, candidates(weight)[hits[0]])
        np.testing.assert_array_equal(out.weight, object_weight(out.target))
        seen.add(hits[0])
    assert seen == set(range(8))


@pytest.mark.parametrize("n", [8, 9])
def test_reflection_about_the_centre_commutes_with_the_centred_fft(n: int) -> None:
    x = np.random.default_rng(n).normal(size=(2, n, n + 3)) + 1j
    for axis in (-2, -1):
        np.testing.assert_allclose(fft2c(_reflect(x, axis)), _reflect(fft2c(x), axis), atol=1e-12)
    # index n // 2 (the origin) stays put; neighbours swap
    r = _reflect(np.arange(n), 0)
    assert r[n // 2] == n // 2 and r[n // 2 + 1] == n // 2 - 1


def test_augment_with_start_reflects_slice_mask_and_start_together(make_phantom) -> None:
    sim = simulate_kspace(make_phantom(32)[:, :24], coils=3, acceleration=1, acs=8, seed=3)
    maps = np.asarray(sim.maps, dtype=np.complex64)
    weight = object_weight(sim.target[0])
    sample = _Sample(sim.kspace[0], None, sim.target[0], maps, weight=weight)
    mask = _draw_mask(24, [4], 8, np.random.default_rng(1))
    start = np.random.default_rng(2).normal(size=(32, 24)).astype(np.complex64)
    # a SENSE acquisition of some image; reflected, it must stay one of the reflected image
    img = np.random.default_rng(3).normal(size=(32, 24)) + 0j
    y = fft2c(maps * img) * mask

    def apply(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        for ax in axes:
            a = _reflect(a, ax)
        return a

    combos = [(), (-2,), (-1,), (-2, -1)]
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(20):
        out, m, x0 = _augment_with_start(sample, mask, start, rng)
        assert out.mask is None and out.maps is not None
        # which reflections were drawn (the random start tells them apart) ...
        axes = next(c for c in combos if np.array_equal(x0, apply(start, c)))
        seen.add(axes)
        # ... and k-space, target, maps and mask moved with the start
        np.testing.assert_array_equal(out.kspace, apply(sample.kspace, axes))
        np.testing.assert_array_equal(out.target, apply(sample.target, axes))
        np.testing.assert_array_equal(out.maps, apply(maps, axes))
        np.testing.assert_array_equal(out.weight, apply(weight, axes))
        np.testing.assert_array_equal(m, _reflect(mask, -1) if -1 in axes else mask)
        np.testing.assert_allclose(fft2c(out.maps * apply(img, axes)) * m, apply(y, axes),
                                   atol=1e-5)  # fmt: skip
    assert seen == set(combos)
    # a reflected equispaced mask keeps its line count and the size of its ACS block
    acs = [_acs_mask(torch.from_numpy(a.astype(np.float32))[None, None, None]).sum().item()
           for a in (mask, _reflect(mask, -1))]  # fmt: skip
    assert _reflect(mask, -1).sum() == mask.sum() and acs[0] == acs[1] == 8


def test_untrained_sensitivity_maps_are_acs_images_over_rss(make_phantom) -> None:
    sim, k, m = _problem(make_phantom)
    model = VarNet(TINY)
    with torch.no_grad():
        maps = model.sens(k, m)[0].numpy()
    acs = sim.masked_kspace[0] * _acs_mask(m)[0].numpy()
    imgs = ifft2c(acs)
    norm = np.sqrt(np.sum(abs(imgs) ** 2, axis=0))
    inside = norm > 0.05 * norm.max()  # float32 division by a tiny RSS is noisy outside
    np.testing.assert_allclose(maps[:, inside], (imgs / norm)[:, inside], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.sum(abs(maps) ** 2, axis=0), 1.0, atol=1e-4)


def test_soft_data_consistency_restores_sampled_values(make_phantom) -> None:
    # eta = 1 and a zero regulariser: k - M (k - y) equals y on the sampled columns and k off them
    _, y, m = _problem(make_phantom)
    model = VarNet(TINY)
    cascade = model.cascades[0]
    with torch.no_grad():
        maps = model.sens(y, m)
        k = torch.randn_like(y)
        out = cascade(k, y, m, maps)
    sampled = m[0, 0, 0] > 0
    np.testing.assert_allclose(out[..., sampled].numpy(), y[..., sampled].numpy(), atol=1e-6)
    np.testing.assert_allclose(out[..., ~sampled].numpy(), k[..., ~sampled].numpy(), atol=1e-6)


def test_varnet_overfits_one_slice_well_above_zero_filling(make_phantom) -> None:
    # 120 Adam steps on one 32 x 32 slice: the network must learn far more than zero filling
    torch.manual_seed(0)
    sim, k, m = _problem(make_phantom, accel=4)
    target = torch.from_numpy(sim.target)
    sc = float(np.percentile(zero_filled(sim.masked_kspace[0]), 99.5))
    model = VarNet(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster, and much faster under load
    try:
        for _ in range(120):
            loss = torch.nn.functional.l1_loss(model(k / sc, m), target / sc)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        out = model(k / sc, m)[0].numpy() * sc
    ref = sim.target[0]

    def psnr(x: np.ndarray) -> float:
        return float(10 * np.log10(ref.max() ** 2 / np.mean((ref - x) ** 2)))

    zf = psnr(zero_filled(sim.masked_kspace[0]))
    assert psnr(out) > zf + 8.0, (psnr(out), zf)


def test_row_crop_keeps_the_aliasing_of_the_whole_slice(make_phantom) -> None:
    sim = simulate_kspace(make_phantom(32), coils=4, acceleration=1, acs=8, noise=0.002, seed=2)
    sample = _Sample(sim.kspace[0], None, sim.target[0], weight=object_weight(sim.target[0]))
    mask = _draw_mask(32, [4], 8, np.random.default_rng(0))
    full_k, _, full_t, _, _, full_w = _tensors(sample, mask)
    rng = np.random.default_rng(5)
    r0 = int(np.random.default_rng(5).integers(32 - 12 + 1))
    crop_k, crop_m, crop_t, _, _, crop_w = _tensors(sample, mask, crop_rows=12, rng=rng)
    assert crop_k.shape == (1, 4, 12, 32) and crop_t.shape == (1, 12, 32)
    # the loss weights are cut to the same band (and not scaled)
    assert full_w is not None and crop_w is not None
    np.testing.assert_array_equal(crop_w[0].numpy(), full_w[0, r0 : r0 + 12].numpy())
    np.testing.assert_array_equal(full_w[0].numpy(), object_weight(sim.target[0]))
    # the zero-filled image of the band is the band of the zero-filled image
    band = ifft2c(full_k[0].numpy())[:, r0 : r0 + 12]
    np.testing.assert_allclose(ifft2c(crop_k[0].numpy()), band, atol=1e-5)
    np.testing.assert_allclose(crop_t[0].numpy(), full_t[0, r0 : r0 + 12].numpy(), rtol=1e-6)
    # only the sampled columns are non-zero in the band's k-space
    assert np.array_equal(np.flatnonzero(np.abs(crop_k[0].numpy()).sum(axis=(0, 1)) > 0),
                          np.flatnonzero(mask))  # fmt: skip
    assert crop_m[0, 0, 0].numpy().astype(bool).tolist() == mask.tolist()


@pytest.mark.parametrize("accelerations", [[4], [4, 8]])
def test_drawn_masks_are_equispaced_with_acs(accelerations: list[int]) -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        mask = _draw_mask(128, accelerations, 24, rng)
        assert mask[52:76].all()  # the 24 centre lines
        spacing = set(np.diff(np.flatnonzero(mask[:52])).tolist())
        assert len(spacing) == 1
        seen |= spacing
    assert seen == set(accelerations)


def test_default_size_is_cpu_trainable() -> None:
    # 4 cascades / 8 channels: about half a million parameters
    assert 2e5 < parameter_count(build_model(VarNetConfig())) < 3e6


def test_untrained_two_set_varnet_is_two_set_cs_with_measured_samples(make_band) -> None:
    # map_sets=2: the maps are (2, C, H, W) soft-SENSE sets, the start the two-set CS image;
    # the untrained cascades only put the measured columns back
    from medlens.reconstruction import equispaced_mask, estimate_maps

    n = 64
    sim = simulate_kspace(make_band(n), coils=8, acceleration=4, acs=12, noise=0.005, seed=2)
    y = sim.masked_kspace[0].astype(np.complex64)
    mask = equispaced_mask(n, 4, num_low_frequencies=12, offset=0)
    y = y * mask
    maps = _espirit(y, mask, 2)
    assert maps.shape == (2, 8, n, n) and np.any(maps[1])
    np.testing.assert_array_equal(maps, estimate_maps(y, mask, "espirit", sets=2))
    x_cs = _cs_start(y, maps, mask)
    with np.errstate(over="ignore"):
        ref = l1_wavelet_reconstruction(y, maps, mask=mask)
    assert x_cs.shape == (2, n, n)
    np.testing.assert_allclose(x_cs, ref, rtol=1e-5, atol=1e-6)
    cfg = VarNetConfig(num_cascades=2, chans=4, pools=2, maps="espirit", init="cs", map_sets=2)
    model = VarNet(cfg)
    k = torch.from_numpy(y)[None]
    m = torch.from_numpy(mask.astype(np.float32))[None, None, None, :]
    with torch.no_grad():
        out = model(k, m, torch.from_numpy(maps)[None], torch.from_numpy(x_cs)[None])[0].numpy()
    coils = np.sum(maps.astype(np.complex128) * x_cs[:, None], axis=0)
    expect = _hard_dc_rss(np.ones(1), coils, y.astype(np.complex128), mask)
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-5 * float(expect.max()))
    # an object clear of the edge: the second set and start component are zero
    clear = np.zeros((n, n))
    clear[16:48, 16:48] = 1.0
    y2 = simulate_kspace(clear, coils=8, acs=12, noise=0.005, seed=2).masked_kspace[0] * mask
    maps2 = _espirit(y2.astype(np.complex64), mask, 2)
    x2 = _cs_start(y2.astype(np.complex64), maps2, mask)
    assert not np.any(maps2[1]) and not np.any(x2[1])
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(
            x2[0], l1_wavelet_reconstruction(y2, maps2[0], mask=mask), rtol=1e-5, atol=1e-6
        )
    with pytest.raises(ValueError, match="map_sets=2 needs init='cs'"):
        VarNet(VarNetConfig(maps="espirit", map_sets=2))


def test_complex_unet_with_sets_keeps_components_apart() -> None:
    # residual and zero-initialised: the identity on (B, M, H, W); a trained U-Net sees the
    # 2 M channels (real, imaginary of each set)
    from medlens.reconstruction.varnet import _ComplexUNet

    net = _ComplexUNet(4, 2, residual=True, sets=2)
    x = torch.randn(1, 2, 16, 16, dtype=torch.complex64)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), x.numpy(), atol=1e-6)
    assert net.unet.out.out_channels == 4


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, make_phantom) -> Path:
    d = tmp_path_factory.mktemp("varnet_data")
    ph = make_phantom(32)
    for name, seed in (("train_a.h5", 1), ("train_b.h5", 2), ("val_c.h5", 3)):
        sim = simulate_kspace(np.stack([ph, ph[::-1]]), coils=4, acceleration=3, acs=8,
                              noise=0.002, seed=seed)  # fmt: skip
        write_fastmri(d / name, sim.masked_kspace, mask=sim.mask, target=sim.target)
    return d


def test_train_resume_and_reconstruct(data_dir: Path, tmp_path: Path) -> None:
    files = sorted(data_dir.glob("train_*.h5"))
    val = [data_dir / "val_c.h5"]
    res = train(files, val, tmp_path, config=TINY, time_budget_s=600, max_steps=4,
                num_threads=1)
    assert res.steps == 4 and res.checkpoint.exists() and np.isfinite(res.val_psnr)
    res2 = train(files, val, tmp_path, resume=True, time_budget_s=600, max_steps=7,
                 num_threads=1)
    assert res2.steps == 7 and res2.elapsed_s >= res.elapsed_s
    with open(res2.log) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r["train_loss"]] == list(range(1, 8))
    rec = load_model(tmp_path)
    from medlens.io import read_fastmri

    vol = read_fastmri(val[0])
    img = rec.reconstruct(vol.masked_kspace[0], vol.mask)
    assert img.shape == (32, 32) and np.isfinite(img).all()
    with pytest.raises(FileNotFoundError):
        train(files, val, tmp_path / "empty", resume=True)


def test_object_weight_fills_holes_and_closes_gaps() -> None:
    # a ring (hole inside) with a 2-pixel gap in its wall, on a faint background
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    t = np.where((r >= 8) & (r <= 12), 1.0, 0.01)
    t[18:20, 27:33] = 0.01  # the gap, through the wall
    w = object_weight(t, background=0.25)
    assert w.dtype == np.float32 and set(np.unique(w).tolist()) == {0.25, 1.0}
    assert w[20, 20] == 1.0  # the hole is filled (once the gap is closed)
    assert (w[18:20, 28:31] == 1.0).all()  # the gap is closed
    assert (w[r > 14] == 0.25).all() and (w[r <= 11] == 1.0).all()
    # 5 % of the maximum: a pixel at 4 % of it, alone, is background
    t2 = np.zeros((16, 16))
    t2[8, 8], t2[2, 2] = 1.0, 0.04
    assert object_weight(t2)[2, 2] == np.float32(0.1)


def test_train_object_loss_is_the_weighted_l1(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the logged loss of the first step is sum(w |out - t|) / sum(w) with the weights of the
    # target band that step used, and differs from the plain L1 of the same step
    import medlens.reconstruction.varnet as vn

    seen: dict[str, torch.Tensor] = {}
    real_tensors, real_build = vn._tensors, vn.build_model

    def tensors(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real_tensors(*args, **kwargs)
        if kwargs.get("crop_rows") is not None or "t" not in seen:  # the training call
            seen["t"], seen["w"] = out[2], out[5]
        return out

    def build(config):  # type: ignore[no-untyped-def]
        model = real_build(config)

        def hook(_m, _inp, out):  # type: ignore[no-untyped-def]
            if model.training and "out" not in seen:
                seen["out"] = out.detach().clone()

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(vn, "_tensors", tensors)
    monkeypatch.setattr(vn, "build_model", build)
    files = sorted(data_dir.glob("train_*.h5"))
    res = train(files, [data_dir / "val_c.h5"], tmp_path, config=TINY, time_budget_s=600,
                max_steps=1, crop_rows=16, loss_region="object", num_threads=1)  # fmt: skip
    with open(res.log) as f:
        first = float(next(r for r in csv.DictReader(f) if r["train_loss"])["train_loss"])
    t, w, out = seen["t"], seen["w"], seen["out"]
    assert w is not None and w.shape == t.shape == out.shape
    assert set(np.unique(w.numpy()).tolist()) == {np.float32(0.1), np.float32(1.0)}
    weighted = float((w * (out - t).abs()).sum() / w.sum())
    assert first == pytest.approx(weighted, abs=2e-6)
    assert abs(float((out - t).abs().mean()) - weighted) > 1e-4
    with pytest.raises(ValueError, match="loss_region"):
        train(files, [data_dir / "val_c.h5"], tmp_path / "bad", loss_region="roi")


def test_cli_train_and_run(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    rc = main(["recon", "train", "--data", str(data_dir), "--out", str(out), "--cascades", "1",
               "--chans", "4", "--max-steps", "3", "--time-budget", "5m",
               "--threads", "1", "--loss-region", "object"])  # fmt: skip
    assert rc == 0 and (out / "checkpoint.pt").exists() and (out / "log.csv").exists()
    assert main(["recon", "train", "--data", str(data_dir), "--out", str(tmp_path / "x"),
                 "--loss-region", "roi"]) == 2  # fmt: skip
    dst = tmp_path / "rec.h5"
    rc = main(["recon", "run", str(data_dir / "val_c.h5"), str(dst), "--method", "varnet",
               "--model", str(out / "checkpoint.pt")])  # fmt: skip
    assert rc == 0 and dst.exists()
    assert main(["recon", "run", str(data_dir / "val_c.h5"), str(dst), "--method", "varnet",
                 "--model", str(tmp_path / "nothing.pt")]) == 2  # fmt: skip
    assert main(["recon", "train", "--data", str(tmp_path), "--out", str(out)]) == 2


def test_train_with_espirit_maps_and_cs_start(data_dir: Path, tmp_path: Path) -> None:
    # init="cs": the starts are computed once per slice (undersampled files: on their own mask);
    # before any step the validation score is that of CS with the measured samples put back
    files = sorted(data_dir.glob("train_*.h5"))
    val = [data_dir / "val_c.h5"]
    cfg = VarNetConfig(num_cascades=1, chans=4, pools=2, maps="espirit", init="cs")
    res = train(files, val, tmp_path, config=cfg, time_budget_s=600, max_steps=2, lr=1e-9,
                num_threads=1)  # fmt: skip
    from medlens.io import read_fastmri

    vol = read_fastmri(val[0])
    rec = load_model(tmp_path)
    assert rec.model.config.init == "cs"  # type: ignore[union-attr]
    psnrs = []
    for s in range(2):
        y = vol.masked_kspace[s]
        maps = _espirit(y, vol.mask)
        x = _cs_start(y, maps, vol.mask)
        expect = _hard_dc_rss(maps.astype(np.complex128), x, y.astype(np.complex128), vol.mask)
        got = rec.reconstruct(y, vol.mask)
        # lr 1e-9: two steps leave the network at its (CS + measured samples) start
        np.testing.assert_allclose(got, expect, rtol=1e-3, atol=1e-4 * float(expect.max()))
        ref = vol.target[s]
        psnrs.append(10 * np.log10(ref.max() ** 2 / np.mean((ref - expect) ** 2)))
    assert abs(res.val_psnr - float(np.mean(psnrs))) < 0.05


def test_train_augments_cs_starts(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_phantom
) -> None:
    # --augment with init="cs": every step on a fully sampled slice goes through the reflection
    import medlens.reconstruction.varnet as vn

    calls = []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return _augment_with_start(*args, **kwargs)

    monkeypatch.setattr(vn, "_augment_with_start", spy)
    ph = make_phantom(32)
    files = []
    for seed in (1, 2):  # fully sampled, as fastMRI's training files: the masks are drawn
        sim = simulate_kspace(np.stack([ph, ph[::-1]]), coils=4, acceleration=1, acs=8,
                              noise=0.002, seed=seed)  # fmt: skip
        files.append(tmp_path / f"full_{seed}.h5")
        write_fastmri(files[-1], sim.kspace, target=sim.target)
    cfg = VarNetConfig(num_cascades=1, chans=4, pools=2, maps="espirit", init="cs")
    res = train(files, [data_dir / "val_c.h5"], tmp_path / "model", config=cfg,
                time_budget_s=600, max_steps=3, augment=True, acs=8, num_threads=1)  # fmt: skip
    assert res.steps == 3 and len(calls) == 3 and np.isfinite(res.val_psnr)


def test_train_with_two_sets_of_maps(data_dir: Path, tmp_path: Path) -> None:
    files = sorted(data_dir.glob("train_*.h5"))
    cfg = VarNetConfig(num_cascades=1, chans=4, pools=2, maps="espirit", init="cs", map_sets=2)
    res = train(files, [data_dir / "val_c.h5"], tmp_path, config=cfg, time_budget_s=600,
                max_steps=2, crop_rows=16, num_threads=1)  # fmt: skip
    assert res.steps == 2 and np.isfinite(res.val_psnr)
    rec = load_model(tmp_path)
    assert rec.model.config.map_sets == 2  # type: ignore[union-attr]
    from medlens.io import read_fastmri

    vol = read_fastmri(files[0])
    out = rec.reconstruct(vol.masked_kspace[0], vol.mask)
    assert out.shape == vol.masked_kspace.shape[-2:] and np.isfinite(out).all()


def test_cli_train_espirit_cs_options(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    rc = main(["recon", "train", "--data", str(data_dir), "--out", str(out), "--cascades", "1",
               "--chans", "4", "--max-steps", "2", "--time-budget", "5m", "--threads", "1",
               "--maps", "espirit", "--init", "cs"])  # fmt: skip
    assert rc == 0 and (out / "checkpoint.pt").exists()
    assert main(["recon", "train", "--data", str(data_dir), "--out", str(out),
                 "--init", "cs"]) == 2  # fmt: skip
    assert main(["recon", "train", "--data", str(data_dir), "--out", str(out),
                 "--map-sets", "2"]) == 2  # fmt: skip
