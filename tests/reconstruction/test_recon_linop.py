"""Adjoint, linearity and normal-operator checks for every Linop (as SigPy's tests do)."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.reconstruction import (
    FFT,
    FiniteDifference,
    Identity,
    Linop,
    Multiply,
    Sum,
    Wavelet,
    birdcage_maps,
    fft2c,
    ifft2c,
    sense_operator,
)

RNG = np.random.default_rng(1234)


def _crand(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


MAPS = birdcage_maps((4, 16, 12)).astype(np.complex128)
LINE = RNG.random(12) < 0.5
MASK2D = RNG.random((16, 12)) < 0.4


def _operators() -> list[tuple[str, Linop]]:
    ops: list[tuple[str, Linop]] = [
        ("identity", Identity((5, 3))),
        ("multiply-scalar", Multiply((5, 3), 2.0 - 1.5j)),
        ("multiply-array", Multiply((5, 3), _crand((5, 3)))),
        ("multiply-broadcast-coils", Multiply((16, 12), MAPS)),
        ("multiply-mask", Multiply((4, 16, 12), LINE.astype(float))),
        ("sum", Sum((4, 5, 3), axes=(0,))),
        ("sum-two-axes", Sum((4, 5, 3), axes=(0, 2))),
        ("fft-2d", FFT((4, 16, 12))),
        ("fft-odd", FFT((7, 9))),
        ("fft-1d", FFT((6, 10), axes=(0,))),
        ("fft-inverse", FFT((8, 8), inverse=True)),
        ("finite-difference", FiniteDifference((9, 7))),
        ("finite-difference-axis", FiniteDifference((4, 9, 7), axes=(1,))),
        ("wavelet-db4", Wavelet((32, 32))),
        ("wavelet-haar-stack", Wavelet((2, 16, 32), wavelet="haar", level=2)),
        ("sense-full", sense_operator(MAPS)),
        ("sense-line", sense_operator(MAPS, LINE)),
        ("sense-2d", sense_operator(MAPS, MASK2D)),
        ("sense-sets-line", sense_operator(np.stack([MAPS, _crand(MAPS.shape)]), LINE, sets=True)),
        ("compose", FFT((5, 3)) * Multiply((5, 3), _crand((5, 3)))),
        ("add", FFT((5, 3)) + Multiply((5, 3), _crand((5, 3)))),
        ("sub-scaled", 3.0 * Identity((5, 3)) - FFT((5, 3), inverse=True)),
        ("scalar-right", FiniteDifference((6, 6)) * 0.5j),
    ]
    ops += [(f"{name}.H", op.H) for name, op in list(ops)]
    ops += [("sense-line.N", sense_operator(MAPS, LINE).N)]
    return ops


OPS = _operators()


@pytest.mark.parametrize(("name", "op"), OPS, ids=[n for n, _ in OPS])
def test_adjoint_identity(name: str, op: Linop) -> None:
    x = _crand(op.ishape)
    y = _crand(op.oshape)
    lhs = np.vdot(op(x), y)
    rhs = np.vdot(x, op.H(y))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("name", "op"), OPS, ids=[n for n, _ in OPS])
def test_linearity(name: str, op: Linop) -> None:
    x1, x2 = _crand(op.ishape), _crand(op.ishape)
    a, b = 0.7 - 0.2j, -1.3 + 0.4j
    np.testing.assert_allclose(op(a * x1 + b * x2), a * op(x1) + b * op(x2), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("name", "op"), OPS, ids=[n for n, _ in OPS])
def test_normal(name: str, op: Linop) -> None:
    x = _crand(op.ishape)
    np.testing.assert_allclose(op.N(x), op.H(op(x)), rtol=1e-10, atol=1e-10)
    # the normal operator is Hermitian positive semi-definite
    assert np.vdot(x, op.N(x)).real >= -1e-10
    assert op.H.H.ishape == op.ishape and op.H.H.oshape == op.oshape
    np.testing.assert_allclose(op.H.H(x), op(x), rtol=1e-12, atol=1e-12)


def test_fft_matches_centred_numpy() -> None:
    x = _crand((6, 10))
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x), norm="ortho"))
    np.testing.assert_allclose(FFT((6, 10))(x), ref, rtol=1e-12)
    np.testing.assert_allclose(fft2c(x), ref, rtol=1e-12)
    np.testing.assert_allclose(ifft2c(ref), x, rtol=1e-12)


def test_fft_and_wavelet_are_unitary() -> None:
    x = _crand((32, 32))
    for op in (FFT((32, 32)), Wavelet((32, 32)), Wavelet((32, 32), wavelet="sym8", level=2)):
        np.testing.assert_allclose(np.linalg.norm(op(x)), np.linalg.norm(x), rtol=1e-10)
        np.testing.assert_allclose(op.H(op(x)), x, rtol=1e-10, atol=1e-10)


def test_sense_operator_sets_by_hand() -> None:
    # two sets: the coil images are S_0 x_0 + S_1 x_1, i.e. the sum of two one-set operators
    second = _crand(MAPS.shape)
    x = _crand((2, 16, 12))
    a = sense_operator(np.stack([MAPS, second]), LINE, sets=True)
    assert a.ishape == (2, 16, 12) and a.oshape == MAPS.shape
    np.testing.assert_allclose(
        a(x), sense_operator(MAPS, LINE)(x[0]) + sense_operator(second, LINE)(x[1]), rtol=1e-12
    )
    with pytest.raises(ValueError, match=r"\(M, C, H, W\)"):
        sense_operator(MAPS, sets=True)


def test_sense_operator_by_hand() -> None:
    x = _crand((16, 12))
    y = sense_operator(MAPS, LINE)(x)
    np.testing.assert_allclose(y, fft2c(MAPS * x) * LINE, rtol=1e-12)
    back = sense_operator(MAPS, LINE).H(y)
    np.testing.assert_allclose(back, np.sum(np.conj(MAPS) * ifft2c(y), axis=0), rtol=1e-12)


def test_finite_difference_by_hand() -> None:
    x = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    d = FiniteDifference((2, 3))(x)
    np.testing.assert_array_equal(d[0], [[2.0, 1.0, -1.0], [-2.0, -1.0, 1.0]])
    np.testing.assert_array_equal(d[1], [[1.0, 2.0, -3.0], [0.0, 0.0, 0.0]])


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="expects input of shape"):
        FFT((4, 4))(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="cannot compose"):
        _ = FFT((4, 4)) * FFT((4, 5))
    with pytest.raises(ValueError, match="cannot add"):
        _ = FFT((4, 4)) + FFT((4, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        sense_operator(MAPS, np.ones(7, bool))
    with pytest.raises(ValueError, match="not orthogonal"):
        Wavelet((16, 16), wavelet="bior2.2")
    with pytest.raises(ValueError, match="divisible"):
        Wavelet((18, 16), level=3)


def test_matrix_of_small_sense_operator_is_consistent() -> None:
    # build the dense matrix column by column and compare A^H with its conjugate transpose
    maps = birdcage_maps((2, 4, 4)).astype(np.complex128)
    op = sense_operator(maps, np.array([1, 0, 1, 1], bool))
    n = int(np.prod(op.ishape))
    mat = np.stack([op(np.eye(n)[i].reshape(op.ishape)).ravel() for i in range(n)], axis=1)
    m_out = int(np.prod(op.oshape))
    mat_h = np.stack([op.H(np.eye(m_out)[i].reshape(op.oshape)).ravel() for i in range(m_out)], 1)
    np.testing.assert_allclose(mat_h, mat.conj().T, atol=1e-12)
