"""Reconstruction algorithms: exact recovery on consistent data, and phantom round trips."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.reconstruction import (
    SimulatedKspace,
    birdcage_maps,
    conjugate_gradient,
    espirit_maps,
    fft2c,
    fista,
    grappa,
    grappa_reconstruction,
    ifft2c,
    infer_mask,
    l1_wavelet_reconstruction,
    mad_noise_level,
    rss,
    sense_operator,
    sense_reconstruction,
    tv_reconstruction,
    zero_filled,
)


def _nrmse(ref: np.ndarray, x: np.ndarray) -> float:
    return float(np.linalg.norm(np.abs(x) - ref) / np.linalg.norm(ref))


def test_zero_filled_full_is_rss(sim8: SimulatedKspace) -> None:
    np.testing.assert_allclose(zero_filled(sim8.kspace[0]), sim8.target[0], rtol=1e-5, atol=1e-6)


def test_infer_mask(sim8: SimulatedKspace) -> None:
    np.testing.assert_array_equal(infer_mask(sim8.masked_kspace[0]), sim8.mask)
    k = np.zeros((2, 4, 4), complex)
    k[:, 1, 2] = 1
    assert infer_mask(k).shape == (4, 4)


def test_conjugate_gradient_solves_spd_system() -> None:
    rng = np.random.default_rng(0)
    m = rng.normal(size=(20, 20)) + 1j * rng.normal(size=(20, 20))
    a = m.conj().T @ m + np.eye(20)
    b = rng.normal(size=20) + 0j
    x = conjugate_gradient(lambda v: a @ v, b, max_iter=100, tol=1e-12)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-8)


def test_fista_solves_lasso_against_closed_form() -> None:
    # separable problem min 0.5 ||x - v||^2 + lam ||x||_1 has the soft-threshold solution
    v = np.array([3.0, -0.2, 0.0, -4.0, 1.0])

    def soft(u: np.ndarray, t: float) -> np.ndarray:
        return np.sign(u) * np.maximum(np.abs(u) - 0.5 * t, 0)

    x = fista(lambda x: x - v, soft, np.zeros(5), step=0.5, max_iter=500, tol=1e-12)
    np.testing.assert_allclose(x, [2.5, 0.0, 0.0, -3.5, 0.5], atol=1e-8)


@pytest.fixture(scope="module")
def consistent() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Data made with the reconstruction's own forward model (for exactness checks)."""
    rng = np.random.default_rng(5)
    maps = birdcage_maps((8, 32, 32)).astype(np.complex128)
    x = rng.normal(size=(32, 32)) + 1j * rng.normal(size=(32, 32))
    mask = np.zeros(32, bool)
    mask[::2] = True
    y = sense_operator(maps, mask)(x)
    return maps, x, mask, y


def test_cg_sense_exact_on_consistent_data(consistent) -> None:
    maps, x, mask, y = consistent
    xr = sense_reconstruction(y, maps, mask=mask, max_iter=100, tol=1e-12, discrepancy=None)
    np.testing.assert_allclose(xr, x, rtol=1e-6, atol=1e-6)


def test_cg_sense_tikhonov_matches_normal_equations(consistent) -> None:
    maps, _, mask, y = consistent
    a = sense_operator(maps, mask)
    lam = 0.1
    xr = sense_reconstruction(
        y, maps, mask=mask, lamda=lam, max_iter=200, tol=1e-12, discrepancy=None
    )
    # the optimality condition (A^H A + lam L I) x = A^H y, L = max_r sum_c |S_c|^2 = 1
    np.testing.assert_allclose(a.N(xr) + lam * xr, a.H(y), rtol=1e-8, atol=1e-8)


def test_sparse_solvers_reduce_to_least_squares_without_regulariser(consistent) -> None:
    maps, x, mask, y = consistent
    l1 = l1_wavelet_reconstruction(
        y, maps, mask=mask, lamda=0.0, max_iter=300, tol=1e-12, warm_start=0
    )
    np.testing.assert_allclose(l1, x, atol=1e-3)
    tv = tv_reconstruction(y, maps, mask=mask, lamda=0.0, max_iter=300, tol=1e-12, warm_start=20)
    np.testing.assert_allclose(tv, x, atol=1e-2)


def test_grappa_exact_for_fully_sampled_input(sim8: SimulatedKspace) -> None:
    full = sim8.kspace[0]
    out = grappa(full, np.ones(full.shape[-1], bool))
    np.testing.assert_array_equal(out, full)


def test_grappa_keeps_acquired_lines_and_fills_missing(phantom: np.ndarray) -> None:
    from medlens.reconstruction import simulate_kspace

    # noiseless (but not inverse-crime) data: the missing lines are predictable
    sim = simulate_kspace(phantom, coils=8, acceleration=3, acs=16, noise=0.0, seed=3)
    y = sim.masked_kspace[0]
    full = sim.kspace[0]
    miss = ~sim.mask
    # plain GRAPPA with two source columns per side (the classical kernel), and the
    # default (one column per side, Wiener gain): both keep the acquired lines
    for opts, tol in (
        ({"sources_per_side": 2, "lamda": "auto", "shrink": False}, 0.1),
        ({}, 0.15),
    ):
        out = grappa(y, sim.mask, **opts)
        np.testing.assert_array_equal(out[:, :, sim.mask], y[:, :, sim.mask])
        err = np.linalg.norm(out[:, :, miss] - full[:, :, miss]) / np.linalg.norm(full[:, :, miss])
        assert err < tol, (opts, err)


@pytest.mark.parametrize("method", ["grappa", "sense", "l1", "tv"])
def test_phantom_round_trip_beats_zero_filling(sim8: SimulatedKspace, method: str) -> None:
    y = sim8.masked_kspace[0]
    ref = sim8.target[0]
    maps = espirit_maps(y, calib=16)
    if method == "grappa":
        x = grappa_reconstruction(y, sim8.mask)
    elif method == "sense":
        x = sense_reconstruction(y, maps, mask=sim8.mask)
    elif method == "l1":
        x = l1_wavelet_reconstruction(y, maps, mask=sim8.mask)
    else:
        x = tv_reconstruction(y, maps, mask=sim8.mask)
    zf = _nrmse(ref, zero_filled(y))
    err = _nrmse(ref, x)
    assert err < 0.5 * zf
    assert err < 0.1


def test_regularised_methods_beat_cg_sense_at_high_acceleration(phantom: np.ndarray) -> None:
    from medlens.reconstruction import simulate_kspace

    # the true maps: with ESPIRiT maps from 12 ACS lines at 64 x 64 map errors dominate at this
    # mask offset, and whatever smooths most wins (the L1 weight follows the noise level)
    sim = simulate_kspace(phantom, coils=8, acceleration=6, acs=12, noise=0.01, seed=9)
    y = sim.masked_kspace[0]
    ref = sim.target[0]
    maps = sim.maps
    e_sense = _nrmse(ref, sense_reconstruction(y, maps, mask=sim.mask))
    assert _nrmse(ref, l1_wavelet_reconstruction(y, maps, mask=sim.mask)) < e_sense
    assert _nrmse(ref, tv_reconstruction(y, maps, mask=sim.mask)) < e_sense


def test_two_dimensional_mask(phantom: np.ndarray) -> None:
    from medlens.reconstruction import simulate_kspace

    sim = simulate_kspace(phantom, coils=8, acceleration=4, acs=16, mask="poisson", seed=2)
    y = sim.masked_kspace[0]
    assert sim.mask.shape == (64, 64)
    maps = espirit_maps(y, calib=16)
    x = l1_wavelet_reconstruction(y, maps, mask=sim.mask)
    assert _nrmse(sim.target[0], x) < 0.5 * _nrmse(sim.target[0], zero_filled(y))
    with pytest.raises(ValueError, match="column mask"):
        grappa(y, sim.mask)


def test_mad_noise_level_is_scale_equivariant(sim8: SimulatedKspace) -> None:
    img = ifft2c(sim8.masked_kspace[0])[0]
    np.testing.assert_allclose(mad_noise_level(10 * img), 10 * mad_noise_level(img), rtol=1e-6)
    assert mad_noise_level(np.zeros((8, 8))) == 0.0


def test_default_lambda_is_scale_invariant(sim8: SimulatedKspace) -> None:
    y = sim8.masked_kspace[0]
    maps = espirit_maps(y, calib=16)
    a = np.abs(l1_wavelet_reconstruction(y, maps, mask=sim8.mask, max_iter=20))
    b = np.abs(l1_wavelet_reconstruction(1000 * y, maps, mask=sim8.mask, max_iter=20))
    np.testing.assert_allclose(b / 1000, a, rtol=1e-3, atol=1e-5 * a.max())


def test_input_errors(sim8: SimulatedKspace) -> None:
    y = sim8.masked_kspace[0]
    with pytest.raises(ValueError, match="shape"):
        sense_reconstruction(y[0], sim8.maps)
    with pytest.raises(ValueError, match="broadcast"):
        sense_reconstruction(y, sim8.maps, mask=np.ones(5, bool))
    with pytest.raises(ValueError, match="differs"):
        l1_wavelet_reconstruction(y, sim8.maps[:4])
    with pytest.raises(ValueError, match="odd"):
        grappa(y, sim8.mask, kernel_readout=4)


def test_rss_of_fft_roundtrip() -> None:
    x = np.random.default_rng(0).normal(size=(3, 8, 8))
    np.testing.assert_allclose(rss(ifft2c(fft2c(x))), rss(x), rtol=1e-12)


def _sense_loop_before_merge(y, maps, mask, lamda, max_iter, tol, discrepancy, x0):  # type: ignore[no-untyped-def]
    """The CG-SENSE loop as it was before it was merged into ``conjugate_gradient`` (frozen)."""
    import math

    from medlens.reconstruction._algorithms import _lipschitz, calibration_noise_level

    a = sense_operator(maps, mask)
    lam = lamda * _lipschitz(maps)
    stop = 0.0
    if discrepancy is not None:
        n_sampled = int(np.count_nonzero(np.broadcast_to(mask, y.shape)))
        stop = discrepancy * math.sqrt(2.0 * n_sampled) * calibration_noise_level(y, mask)
    x = np.zeros(y.shape[1:], dtype=y.dtype) if x0 is None else x0.astype(y.dtype, copy=True)
    r_data = y - a(x) if x0 is not None else y.copy()
    r = a.H(r_data) - lam * x
    p = r.copy()
    rr = float(np.vdot(r, r).real)
    bnorm = math.sqrt(rr) or 1.0
    for _ in range(max_iter):
        if math.sqrt(rr) <= tol * bnorm:
            break
        if stop and float(np.linalg.norm(r_data)) <= stop:
            break
        ap_data = a(p)
        ap = a.H(ap_data) + lam * p
        denom = float(np.vdot(p, ap).real)
        if denom <= 0:
            break
        alpha = rr / denom
        x += alpha * p
        r_data -= alpha * ap_data
        r -= alpha * ap
        rr_new = float(np.vdot(r, r).real)
        p *= rr_new / rr
        p += r
        rr = rr_new
    return x


@pytest.mark.parametrize(
    ("lamda", "max_iter", "discrepancy", "warm"),
    [(0.0, 30, None, False), (1e-2, 30, None, False), (0.0, 200, None, False),
     (0.0, 30, 1.0, False), (0.0, 30, 3.0, False), (1e-3, 15, None, True),
     (0.0, 30, 1.0, True)],
)  # fmt: skip
def test_sense_on_shared_cg_matches_the_former_loop(
    sim8: SimulatedKspace, lamda: float, max_iter: int, discrepancy: float | None, warm: bool
) -> None:
    # CG-SENSE now runs on conjugate_gradient (with a stop hook for the discrepancy
    # principle); the result must be that of its former hand-written loop
    y = sim8.masked_kspace[0]
    maps = sim8.maps.astype(y.dtype)
    x0 = zero_filled(y).astype(y.dtype) * 0.5 if warm else None
    old = _sense_loop_before_merge(y, maps, sim8.mask, lamda, max_iter, 1e-6, discrepancy, x0)
    new = sense_reconstruction(y, maps, mask=sim8.mask, lamda=lamda, max_iter=max_iter,
                               discrepancy=discrepancy, x0=x0)  # fmt: skip
    # the column-mask normal operator (1D FFTs along the phase-encoding axis) is the same
    # operator as M F S's normal; only the float32 rounding differs
    np.testing.assert_allclose(new, old, rtol=0, atol=3e-4 * float(np.abs(old).max()))


@pytest.fixture(scope="module")
def band_problem(make_band) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(y, mask, two sets of ESPIRiT maps, target) for the band at R = 4, 12 ACS lines."""
    from medlens.reconstruction import equispaced_mask, simulate_kspace

    n = 96
    sim = simulate_kspace(make_band(n), coils=8, acceleration=4, acs=24, noise=0.005, seed=1)
    m = equispaced_mask(n, 4, num_low_frequencies=12, offset=0)
    y = sim.masked_kspace[0] * m
    maps = espirit_maps(y, calib=(24, 12), kernel_size=5, sets=2)
    assert np.any(maps[1])
    return y, m, maps, sim.target[0]


def _band_psnr(ref: np.ndarray, x: np.ndarray) -> float:
    """PSNR inside the band (> 30 % of the max) of ``|x|``, or of the RSS over the sets."""
    obj = ref > 0.3 * ref.max()
    mag = rss(x) if x.ndim == 3 else np.abs(x)
    return float(10 * np.log10(ref.max() ** 2 / np.mean((mag - ref)[obj] ** 2)))


@pytest.mark.parametrize("method", [l1_wavelet_reconstruction, tv_reconstruction])
def test_two_sets_of_maps_at_the_edge_of_the_field_of_view(band_problem, method) -> None:
    # one set of maps cannot follow the sensitivities where the object meets the edge of
    # the field of view, and SENSE folds that error into the image (R = 4: 13 dB in the
    # object); two sets (soft SENSE) reconstruct it
    y, m, maps, ref = band_problem

    def psnr(x: np.ndarray) -> float:
        return _band_psnr(ref, x)

    one, two = method(y, maps[0], mask=m), method(y, maps, mask=m)
    assert two.shape == (2, 96, 96) and one.shape == (96, 96)
    assert psnr(two) > psnr(one) + 8 and psnr(two) > 22, (psnr(one), psnr(two))


@pytest.mark.parametrize("method", [l1_wavelet_reconstruction, tv_reconstruction])
def test_an_empty_second_set_changes_nothing(band_problem, method) -> None:
    y, m, maps, _ = band_problem
    padded = np.stack([maps[0], np.zeros_like(maps[0])])
    two = method(y, padded, mask=m, max_iter=20)
    # the same iterations up to complex64 rounding (|x| is up to 2.3 here)
    np.testing.assert_allclose(two[0], method(y, maps[0], mask=m, max_iter=20), rtol=0, atol=1e-4)
    assert not np.any(two[1])


def test_set_gradient_on_column_ffts_equals_the_operator(band_problem) -> None:
    from medlens.reconstruction._algorithms import _data_gradient, _lipschitz

    y, m, maps, _ = band_problem
    s = maps.astype(np.complex128)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 96, 96)) + 1j * rng.standard_normal((2, 96, 96))
    a = sense_operator(s, m, sets=True)
    b = a.H(y)
    fast = _data_gradient(y.astype(np.complex128), s, m, a, b, sets=True)(x)
    np.testing.assert_allclose(fast, a.H(a(x) - y), rtol=1e-10, atol=1e-10)
    # the step bound: the largest eigenvalue of A^H A, by power iterations, is at most it
    v = x
    for _ in range(100):
        v = a.N(v)
        v /= np.linalg.norm(v)
    top = float(np.vdot(v, a.N(v)).real)
    bound = _lipschitz(s, sets=True)
    assert top <= bound * (1 + 1e-9) and bound < 1.0 + 1e-6, (top, bound)


def test_cg_sense_with_two_sets(band_problem) -> None:
    # CG-SENSE with its automatic weight and count (k-space hold-out, multi-shift CG) on the
    # two-set operator: the band is reconstructed far better than with one set
    y, m, maps, ref = band_problem

    def psnr(x: np.ndarray) -> float:
        return _band_psnr(ref, x)

    one, two = sense_reconstruction(y, maps[0], mask=m), sense_reconstruction(y, maps, mask=m)
    assert two.shape == (2, 96, 96)
    assert psnr(two) > psnr(one) + 5, (psnr(one), psnr(two))
    with pytest.raises(ValueError, match="sets of maps"):
        l1_wavelet_reconstruction(y, maps[:, :4], mask=m)


def test_set_hold_out_on_column_ffts_equals_the_operator(band_problem) -> None:
    # the cross-validation's column-FFT normal operator and held-out predictions, with sets,
    # against the generic operator on the training points
    from medlens.reconstruction._algorithms import _ColumnSense

    _, m, maps, _ = band_problem
    s = maps.astype(np.complex128)
    rng = np.random.default_rng(1)
    hold = np.broadcast_to(m, (96, 96)) & (rng.random((96, 96)) < 0.05)
    ky, kx = np.nonzero(hold)
    op = _ColumnSense(s, m, 0.3, holdout=(ky, kx), sets=True)
    x = rng.standard_normal((2, 96, 96)) + 1j * rng.standard_normal((2, 96, 96))
    normal, pred = op.normal(x)
    train = np.broadcast_to(m, (96, 96)) & ~hold
    a = sense_operator(s, train, sets=True)
    np.testing.assert_allclose(normal, a.H(a(x)) + 0.3 * x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(pred, sense_operator(s, sets=True)(x)[:, ky, kx], rtol=1e-10,
                               atol=1e-10)  # fmt: skip
