"""Compiling numba kernels for medlens's optional accelerators (numba is imported lazily)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["jit"]


def jit(fn: Callable[..., Any]) -> Any:
    """Compile ``fn`` with ``numba.njit(nogil=True, cache=True)``.

    Without the on-disk cache when neither the package directory nor numba's user cache
    directory can be written. Raises ``ImportError`` without numba.
    """
    import numba

    try:
        return numba.njit(nogil=True, cache=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(fn)
