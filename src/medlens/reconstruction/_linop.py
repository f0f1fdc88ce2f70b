"""Linear operators with adjoints, in the style of SigPy's ``Linop``.

A :class:`Linop` maps arrays of shape ``ishape`` to arrays of shape
``oshape``. ``A.H`` is its adjoint, ``A.N`` its normal operator ``A.H * A``;
``A * B`` composes (``B`` first), ``A + B`` adds, ``c * A`` scales, and
``A * x`` or ``A(x)`` applies ``A`` to an array. Every operator here is tested
for the adjoint identity ``<A x, y> = <x, A^H y>``, linearity and its normal.

The building blocks of MRI are :class:`FFT` (centred, orthonormal),
:class:`Multiply` (coil sensitivities, masks, scalars), :class:`Sum` (coil
combination) and the :func:`sense_operator` built from them.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from medlens.reconstruction._fft import fftc, ifftc

__all__ = [
    "FFT",
    "Add",
    "Compose",
    "FiniteDifference",
    "Identity",
    "Linop",
    "Multiply",
    "Sum",
    "Wavelet",
    "sense_operator",
]

Shape = tuple[int, ...]


def _shape(s: Sequence[int]) -> Shape:
    return tuple(int(v) for v in s)


class Linop:
    """Base class: a linear map from arrays of ``ishape`` to arrays of ``oshape``.

    Subclasses implement :meth:`_apply` and :meth:`_adjoint`.

    Parameters
    ----------
    oshape : sequence of int
        Output shape.
    ishape : sequence of int
        Input shape.
    """

    def __init__(self, oshape: Sequence[int], ishape: Sequence[int]) -> None:
        self.oshape: Shape = _shape(oshape)
        self.ishape: Shape = _shape(ishape)

    # -- to implement -------------------------------------------------------
    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def _adjoint(self) -> Linop:
        raise NotImplementedError  # pragma: no cover

    # -- public -------------------------------------------------------------
    def apply(self, x: npt.ArrayLike) -> np.ndarray:
        """Apply the operator to an array of shape ``ishape``.

        Parameters
        ----------
        x : array_like
            Input of shape ``ishape``.

        Returns
        -------
        numpy.ndarray
            Output of shape ``oshape``.

        Raises
        ------
        ValueError
            If ``x`` does not have shape ``ishape``.
        """
        arr = np.asarray(x)
        if arr.shape != self.ishape:
            raise ValueError(
                f"{type(self).__name__} expects input of shape {self.ishape}, got {arr.shape}"
            )
        out = self._apply(arr)
        if out.shape != self.oshape:  # pragma: no cover - a bug in a subclass
            raise RuntimeError(
                f"{type(self).__name__} produced shape {out.shape}, expected {self.oshape}"
            )
        return out

    def __call__(self, x: npt.ArrayLike) -> np.ndarray:
        """Apply the operator (same as :meth:`apply`)."""
        return self.apply(x)

    @property
    def H(self) -> Linop:
        """Adjoint operator (conjugate transpose)."""
        return self._adjoint()

    @property
    def N(self) -> Linop:
        """Normal operator ``A.H * A``."""
        return self.H * self

    @overload
    def __mul__(self, other: Linop) -> Linop: ...
    @overload
    def __mul__(self, other: complex | float | int) -> Linop: ...
    @overload
    def __mul__(self, other: np.ndarray) -> np.ndarray: ...

    def __mul__(self, other: Any) -> Any:
        if isinstance(other, Linop):
            return Compose([self, other])
        if np.isscalar(other):
            return Compose([self, Multiply(self.ishape, other)])
        if isinstance(other, np.ndarray):
            return self.apply(other)
        return NotImplemented

    def __rmul__(self, other: Any) -> Linop:
        if np.isscalar(other):
            return Compose([Multiply(self.oshape, other), self])
        return NotImplemented

    def __add__(self, other: Linop) -> Linop:
        if not isinstance(other, Linop):
            return NotImplemented
        return Add([self, other])

    def __neg__(self) -> Linop:
        return -1 * self

    def __sub__(self, other: Linop) -> Linop:
        if not isinstance(other, Linop):
            return NotImplemented
        return self + (-other)

    def __repr__(self) -> str:
        return f"<{self.oshape}x{self.ishape}> {type(self).__name__} Linop"


class Identity(Linop):
    """Identity operator on arrays of ``shape``.

    Parameters
    ----------
    shape : sequence of int
        Input and output shape.

    Examples
    --------
    >>> import numpy as np
    >>> Identity((3,))(np.arange(3.0)).tolist()
    [0.0, 1.0, 2.0]
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(shape, shape)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return x.copy()

    def _adjoint(self) -> Linop:
        return self


class Compose(Linop):
    """Composition ``A_0 * A_1 * ... * A_n``: the last operator is applied first.

    Parameters
    ----------
    linops : sequence of Linop
        Operators, outermost first.

    Examples
    --------
    >>> import numpy as np
    >>> A = Multiply((2,), 2.0) * Multiply((2,), 3.0)
    >>> A(np.ones(2)).tolist()
    [6.0, 6.0]
    """

    def __init__(self, linops: Sequence[Linop]) -> None:
        flat: list[Linop] = []
        for op in linops:
            flat.extend(op.linops if isinstance(op, Compose) else [op])
        self.linops: list[Linop]
        for outer, inner in itertools.pairwise(flat):
            if outer.ishape != inner.oshape:
                raise ValueError(
                    f"cannot compose {outer!r} after {inner!r}: "
                    f"shapes {outer.ishape} and {inner.oshape} differ"
                )
        self.linops = flat
        super().__init__(flat[0].oshape, flat[-1].ishape)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        for op in reversed(self.linops):
            x = op.apply(x)
        return x

    def _adjoint(self) -> Linop:
        return Compose([op.H for op in reversed(self.linops)])


class Add(Linop):
    """Sum of operators with equal shapes: ``(A + B) x = A x + B x``.

    Parameters
    ----------
    linops : sequence of Linop
        Operators with the same ``ishape`` and ``oshape``.
    """

    def __init__(self, linops: Sequence[Linop]) -> None:
        flat: list[Linop] = []
        for op in linops:
            flat.extend(op.linops if isinstance(op, Add) else [op])
        self.linops: list[Linop]
        for op in flat[1:]:
            if op.ishape != flat[0].ishape or op.oshape != flat[0].oshape:
                raise ValueError(f"cannot add {op!r} to {flat[0]!r}: shapes differ")
        self.linops = flat
        super().__init__(flat[0].oshape, flat[0].ishape)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        out = self.linops[0].apply(x)
        for op in self.linops[1:]:
            out = out + op.apply(x)
        return out

    def _adjoint(self) -> Linop:
        return Add([op.H for op in self.linops])


class Multiply(Linop):
    """Element-wise multiplication by ``mult`` (broadcast against ``ishape``).

    The output shape is the broadcast of ``ishape`` and ``mult.shape``: with
    ``ishape = (H, W)`` and coil maps of shape ``(C, H, W)`` this is the
    coil-sensitivity operator ``x -> S x``, whose adjoint multiplies by
    ``conj(S)`` and sums over the broadcast coil axis.

    Parameters
    ----------
    ishape : sequence of int
        Input shape.
    mult : scalar or array_like
        Multiplier (a sampling mask, coil maps, a scalar).

    Examples
    --------
    >>> import numpy as np
    >>> S = Multiply((2,), np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> S.oshape, S.H(np.ones((2, 2))).tolist()
    ((2, 2), [4.0, 6.0])
    """

    def __init__(self, ishape: Sequence[int], mult: npt.ArrayLike) -> None:
        self.mult = np.asarray(mult)
        ish = _shape(ishape)
        oshape = np.broadcast_shapes(ish, self.mult.shape)
        super().__init__(oshape, ish)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        out = x * self.mult
        return np.broadcast_to(out, self.oshape).copy() if out.shape != self.oshape else out

    def _adjoint(self) -> Linop:
        return _MultiplyAdjoint(self)


class _MultiplyAdjoint(Linop):
    def __init__(self, forward: Multiply) -> None:
        self.forward = forward
        self.conj = np.conj(forward.mult)
        super().__init__(forward.ishape, forward.oshape)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        out = x * self.conj
        return _sum_to_shape(out, self.oshape)

    def _adjoint(self) -> Linop:
        return self.forward


def _sum_to_shape(x: np.ndarray, shape: Shape) -> np.ndarray:
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    return np.asarray(x.sum(axis=axes, keepdims=False)).reshape(shape)


class Sum(Linop):
    """Sum over ``axes``; the adjoint broadcasts back (a "tile").

    Parameters
    ----------
    ishape : sequence of int
        Input shape.
    axes : sequence of int
        Axes to sum over (removed from the output).

    Examples
    --------
    >>> import numpy as np
    >>> A = Sum((2, 3), axes=(0,))
    >>> A(np.ones((2, 3))).tolist(), A.H(np.ones(3)).shape
    ([2.0, 2.0, 2.0], (2, 3))
    """

    def __init__(self, ishape: Sequence[int], axes: Sequence[int]) -> None:
        ish = _shape(ishape)
        self.axes = tuple(sorted(int(a) % len(ish) for a in axes))
        oshape = tuple(n for i, n in enumerate(ish) if i not in self.axes)
        super().__init__(oshape, ish)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x.sum(axis=self.axes))

    def _adjoint(self) -> Linop:
        return _Tile(self)


class _Tile(Linop):
    def __init__(self, forward: Sum) -> None:
        self.forward = forward
        super().__init__(forward.ishape, forward.oshape)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.expand_dims(x, self.forward.axes), self.oshape).copy()

    def _adjoint(self) -> Linop:
        return self.forward


class FFT(Linop):
    """Centred orthonormal FFT over ``axes`` (the last two by default).

    Unitary, so ``FFT.H`` is the inverse and ``FFT.N`` the identity.

    Parameters
    ----------
    shape : sequence of int
        Input and output shape.
    axes : sequence of int
        Axes to transform.
    inverse : bool
        Build the inverse (adjoint) transform instead.

    Examples
    --------
    >>> import numpy as np
    >>> F = FFT((4, 4))
    >>> x = np.random.default_rng(0).normal(size=(4, 4))
    >>> bool(np.allclose(F.H(F(x)), x))
    True
    """

    def __init__(
        self, shape: Sequence[int], axes: Sequence[int] = (-2, -1), *, inverse: bool = False
    ) -> None:
        self.axes = tuple(int(a) for a in axes)
        self.inverse = inverse
        super().__init__(shape, shape)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return ifftc(x, axes=self.axes) if self.inverse else fftc(x, axes=self.axes)

    def _adjoint(self) -> Linop:
        return FFT(self.ishape, self.axes, inverse=not self.inverse)


class FiniteDifference(Linop):
    """Circular forward differences along ``axes``, stacked on a new first axis.

    ``(D x)[a] = roll(x, -1, axis=a) - x``; the output has shape
    ``(len(axes),) + shape``. Its norm is at most ``2 sqrt(len(axes))``.

    Parameters
    ----------
    shape : sequence of int
        Input shape.
    axes : sequence of int, optional
        Axes to differentiate along (all by default).

    Examples
    --------
    >>> import numpy as np
    >>> FiniteDifference((4,))(np.array([0.0, 1.0, 3.0, 6.0])).tolist()
    [[1.0, 2.0, 3.0, -6.0]]
    """

    def __init__(self, shape: Sequence[int], axes: Sequence[int] | None = None) -> None:
        sh = _shape(shape)
        self.axes = tuple(range(len(sh))) if axes is None else tuple(int(a) % len(sh) for a in axes)
        super().__init__((len(self.axes), *sh), sh)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.stack([np.roll(x, -1, axis=a) - x for a in self.axes])

    def _adjoint(self) -> Linop:
        return _FiniteDifferenceAdjoint(self)


class _FiniteDifferenceAdjoint(Linop):
    def __init__(self, forward: FiniteDifference) -> None:
        self.forward = forward
        super().__init__(forward.ishape, forward.oshape)

    def _apply(self, y: np.ndarray) -> np.ndarray:
        out = np.zeros(self.oshape, dtype=y.dtype)
        for i, a in enumerate(self.forward.axes):
            out += np.roll(y[i], 1, axis=a) - y[i]
        return out

    def _adjoint(self) -> Linop:
        return self.forward


class Wavelet(Linop):
    """Orthonormal 2D discrete wavelet transform (PyWavelets, periodised).

    With an orthogonal wavelet (``db*``, ``sym*``, ``haar``) and
    ``mode="periodization"`` the transform is unitary, so the adjoint is the
    inverse transform. Coefficients are packed into one array of the input
    shape (:func:`pywt.coeffs_to_array`), which needs each transformed axis to
    be divisible by ``2 ** level``.

    Parameters
    ----------
    shape : sequence of int
        Input shape ``(..., H, W)``; the transform runs over the last two axes.
    wavelet : str
        Orthogonal PyWavelets wavelet name.
    level : int, optional
        Decomposition levels; the largest that divides ``H`` and ``W`` and
        keeps the coarsest band at least 8 samples wide (at most 4) if None.

    Examples
    --------
    >>> import numpy as np
    >>> W = Wavelet((32, 32))
    >>> x = np.random.default_rng(0).normal(size=(32, 32))
    >>> bool(np.allclose(W.H(W(x)), x)), bool(np.isclose(np.linalg.norm(W(x)), np.linalg.norm(x)))
    (True, True)
    """

    def __init__(
        self, shape: Sequence[int], wavelet: str = "db4", level: int | None = None
    ) -> None:
        import pywt

        sh = _shape(shape)
        if len(sh) < 2:
            raise ValueError(f"Wavelet needs at least 2 axes, got shape {sh}")
        w = pywt.Wavelet(wavelet)
        if not w.orthogonal:
            raise ValueError(f"wavelet {wavelet!r} is not orthogonal; use db*, sym* or haar")
        if level is None:
            level = 0
            h, wd = sh[-2], sh[-1]
            while (
                level < 4
                and h % 2 ** (level + 1) == 0
                and wd % 2 ** (level + 1) == 0
                and min(h, wd) // 2 ** (level + 1) >= 8
            ):
                level += 1
            level = max(min(level, pywt.dwt_max_level(min(h, wd), w.dec_len)), 1)
        if sh[-2] % 2**level or sh[-1] % 2**level:
            raise ValueError(
                f"Wavelet with level={level} needs H and W divisible by {2**level}, got {sh}"
            )
        self.wavelet = wavelet
        self.level = level
        self._pywt = pywt
        # levels beyond pywt's "max level" stay exact and orthonormal with
        # periodisation; pywt only warns about boundary effects
        self._quiet = level > pywt.dwt_max_level(min(sh[-2:]), w.dec_len)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            probe = pywt.wavedec2(np.zeros(sh[-2:]), wavelet, mode="periodization", level=level)
        _, self._slices = pywt.coeffs_to_array(probe)
        super().__init__(sh, sh)

    def _forward2(self, x: np.ndarray) -> np.ndarray:
        if self._quiet:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                c = self._pywt.wavedec2(x, self.wavelet, mode="periodization", level=self.level)
        else:
            c = self._pywt.wavedec2(x, self.wavelet, mode="periodization", level=self.level)
        arr, _ = self._pywt.coeffs_to_array(c)
        return np.asarray(arr)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if np.iscomplexobj(x):
            return self._map(x.real, self._forward2) + 1j * self._map(x.imag, self._forward2)
        return self._map(x, self._forward2)

    def _inverse2(self, c: np.ndarray) -> np.ndarray:
        coeffs = self._pywt.array_to_coeffs(c, self._slices, output_format="wavedec2")
        return np.asarray(self._pywt.waverec2(coeffs, self.wavelet, mode="periodization"))

    def inverse(self, c: npt.ArrayLike) -> np.ndarray:
        """Inverse transform (equal to the adjoint).

        Parameters
        ----------
        c : array_like
            Packed coefficients of shape ``ishape``.

        Returns
        -------
        numpy.ndarray
            Image of shape ``ishape``.
        """
        arr = np.asarray(c)
        if np.iscomplexobj(arr):
            return self._map(arr.real, self._inverse2) + 1j * self._map(arr.imag, self._inverse2)
        return self._map(arr, self._inverse2)

    def _map(self, x: np.ndarray, fn: Any) -> np.ndarray:
        if x.ndim == 2:
            return np.asarray(fn(x))
        flat = x.reshape(-1, *x.shape[-2:])
        return np.stack([fn(s) for s in flat]).reshape(x.shape)

    def _adjoint(self) -> Linop:
        return _WaveletAdjoint(self)


class _WaveletAdjoint(Linop):
    def __init__(self, forward: Wavelet) -> None:
        self.forward = forward
        super().__init__(forward.ishape, forward.oshape)

    def _apply(self, c: np.ndarray) -> np.ndarray:
        return self.forward.inverse(c).astype(np.result_type(c.dtype, np.float32), copy=False)

    def _adjoint(self) -> Linop:
        return self.forward


class _SetMaps(Linop):
    """``x (M, ...) -> sum_m S_m x_m (C, ...)`` for ``M`` sets of maps ``S (M, C, ...)``."""

    def __init__(self, maps: np.ndarray) -> None:
        self.maps = maps
        super().__init__(maps.shape[1:], (maps.shape[0], *maps.shape[2:]))

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.sum(self.maps * x[:, None], axis=0))

    def _adjoint(self) -> Linop:
        return _SetMapsAdjoint(self)


class _SetMapsAdjoint(Linop):
    def __init__(self, forward: _SetMaps) -> None:
        self.forward = forward
        self.conj = forward.maps.conj()
        super().__init__(forward.ishape, forward.oshape)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.sum(self.conj * x[None], axis=1))

    def _adjoint(self) -> Linop:
        return self.forward


def sense_operator(
    maps: npt.ArrayLike, mask: npt.ArrayLike | None = None, *, sets: bool = False
) -> Linop:
    """SENSE forward model ``A = M F S``: coil maps, centred FFT, sampling mask.

    Parameters
    ----------
    maps : array_like, shape (C, H, W), or (M, C, H, W) if ``sets``
        Complex coil sensitivities.
    mask : array_like of bool, optional
        Sampling mask broadcastable to ``(C, H, W)`` (e.g. ``(W,)`` columns or
        ``(H, W)``); fully sampled if None.
    sets : bool
        ``maps`` holds ``M`` sets of maps (soft SENSE, ESPIRiT's
        ``sets``): the image has one component per set, ``(M, H, W)``, and
        the coil images are ``sum_m S_m x_m``.

    Returns
    -------
    Linop
        Operator from images ``(H, W)`` (``(M, H, W)`` with ``sets``) to
        k-space ``(C, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.ones((2, 4, 4)) / np.sqrt(2)
    >>> A = sense_operator(maps, mask=np.array([1, 0, 1, 0], bool))
    >>> A.ishape, A.oshape
    ((4, 4), (2, 4, 4))
    >>> sense_operator(np.stack([maps, maps]), sets=True).ishape
    (2, 4, 4)
    """
    s = np.asarray(maps)
    if s.ndim < 3 + int(sets):
        want = "(M, C, H, W)" if sets else "(C, H, W)"
        raise ValueError(f"maps must have shape {want}, got {s.shape}")
    coil: Linop = _SetMaps(s) if sets else Multiply(s.shape[1:], s)
    kshape = coil.oshape
    fft = FFT(kshape, axes=tuple(range(1, len(kshape))))
    if mask is None:
        return fft * coil
    m = np.asarray(mask)
    try:
        np.broadcast_shapes(m.shape, kshape)
    except ValueError:
        raise ValueError(f"mask shape {m.shape} does not broadcast to k-space {kshape}") from None
    return Multiply(kshape, m.astype(s.real.dtype)) * fft * coil
