"""numba kernel of the channels-last predictor: instance norm and leaky ReLU in two passes.

torch has no fused channels-last instance norm on the CPU: its channels-last group
norm is off by about 2e-3 (one-pass float32 statistics) and slower, and the exact
two-pass norm written with torch operations reads and writes the activations five
times. This kernel reads them once for the statistics (accumulated in float64, so
the variance keeps its precision when the mean is large) and once more to
normalise and activate in place: the cost of torch's contiguous group norm, in the
layout where oneDNN's convolutions need no 16-channel padding. Imported only on
demand by :mod:`medlens.segmentation._networks` (torch and numba are loaded then).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["available", "norm_act_"]


_F32 = NDArray[np.float32]


def _norm_act_kernel(x: _F32, weight: _F32, bias: _F32, eps: float, slope: float) -> None:
    """Instance-normalise and leaky-ReLU ``x`` of shape ``(N, L, C)`` in place."""
    n_samples, length, channels = x.shape
    scale = np.empty(channels, dtype=np.float32)
    shift = np.empty(channels, dtype=np.float32)
    for n in range(n_samples):
        s = np.zeros(channels)
        ss = np.zeros(channels)
        for i in range(length):
            for c in range(channels):
                v = np.float64(x[n, i, c])
                s[c] += v
                ss[c] += v * v
        for c in range(channels):
            mean = s[c] / length
            var = max(ss[c] / length - mean * mean, 0.0)
            r = weight[c] / math.sqrt(var + eps)
            scale[c] = r
            shift[c] = bias[c] - mean * r
        for i in range(length):
            for c in range(channels):
                y = x[n, i, c] * scale[c] + shift[c]
                x[n, i, c] = y if y > 0 else y * slope


@functools.cache
def _kernel() -> Any:
    from medlens._numba import jit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's own notes at import and compile time
        return jit(_norm_act_kernel)


@functools.cache
def available() -> bool:
    """Whether numba can be imported; the first call also compiles (or loads) the kernel.

    Returns
    -------
    bool
        ``True`` when :func:`norm_act_` can run.
    """
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    x = np.ones((1, 2, 1), dtype=np.float32)
    one = np.ones(1, dtype=np.float32)
    _kernel()(x, one, one, 1e-5, 0.01)
    return True


def norm_act_(x: _F32, weight: _F32, bias: _F32, eps: float, slope: float) -> None:
    """Instance-normalise (biased variance, per-channel affine) and leaky-ReLU ``x`` in place.

    ``x`` is float32 of shape ``(N, L, C)`` with C contiguous (a channels-last
    activation viewed as ``(N, DHW, C)``); statistics per sample and channel.

    Examples
    --------
    >>> x = np.array([[[1.0], [3.0]]], dtype=np.float32)
    >>> one = np.ones(1, dtype=np.float32)
    >>> norm_act_(x, one, 0 * one, 0.0, 0.01)
    >>> [round(float(v), 4) for v in x.ravel()]
    [-0.01, 1.0]
    """
    _kernel()(x, weight, bias, float(eps), float(slope))
