"""Fixtures of the segmentation-metric tests: shapes and the installed peer libraries.

Peers (test-only dependencies, see requirements/metrics.txt):

- DeepMind ``surface-distance`` 0.1 (PyPI). It crashes on NumPy 2 because it uses the
  aliases ``np.Inf`` and ``np.NaN`` removed in NumPy 2.0 (empty-mask branches and
  ``compute_dice_coefficient``), and it imports ``correlate`` / ``distance_transform_edt``
  through the deprecated ``scipy.ndimage.filters`` / ``.morphology`` namespaces, whose
  DeprecationWarning is an error under this suite's ``filterwarnings = error``. The
  ``deepmind`` fixture therefore restores the two aliases on the ``numpy`` module for the
  duration of a test and silences that DeprecationWarning around each call. Nothing else
  of the package is changed.
- MONAI (``monai.metrics``), called on CPU tensors.
- MedPy (``medpy.metric.binary``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy import ndimage


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            return fn(*args, **kwargs)

    return wrapped


@pytest.fixture
def deepmind(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """DeepMind surface-distance 0.1 made to run on NumPy 2 (see module docstring)."""
    sd = pytest.importorskip("surface_distance")
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    monkeypatch.setattr(np, "NaN", np.nan, raising=False)
    from surface_distance import lookup_tables

    yield SimpleNamespace(
        compute_surface_distances=_quiet(sd.compute_surface_distances),
        compute_robust_hausdorff=_quiet(sd.compute_robust_hausdorff),
        compute_average_surface_distance=_quiet(sd.compute_average_surface_distance),
        compute_surface_dice_at_tolerance=_quiet(sd.compute_surface_dice_at_tolerance),
        compute_dice_coefficient=_quiet(sd.compute_dice_coefficient),
        lookup_tables=lookup_tables,
    )


@pytest.fixture(scope="session")
def monai_metrics() -> SimpleNamespace:
    """MONAI's functional surface metrics (imported once; the import is slow)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch = pytest.importorskip("torch")
        metrics = pytest.importorskip("monai.metrics")

    def as_tensor(mask: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]

    def call(name: str, ref: np.ndarray, pred: np.ndarray, **kwargs: Any) -> float:
        fn = getattr(metrics, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(as_tensor(pred), as_tensor(ref), include_background=True, **kwargs)
        return float(out.reshape(-1)[0])

    return SimpleNamespace(call=call)


@pytest.fixture(scope="session")
def medpy_binary() -> Any:
    """``medpy.metric.binary``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("medpy.metric.binary")


def blob(
    rng: np.random.Generator, shape: tuple[int, ...], *, fill: float = 0.5, smooth: float = 2.0
) -> np.ndarray:
    """A random smooth blob-like mask (thresholded smoothed noise), never empty."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), smooth)
    mask = noise > np.quantile(noise, 1.0 - fill)
    return np.ascontiguousarray(mask)


def ellipsoid(
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    center_mm: tuple[float, ...],
    radii_mm: tuple[float, ...],
    *,
    wobble: float = 0.0,
) -> np.ndarray:
    """Ellipsoid (ellipse in 2D) in mm coordinates, optionally with a smooth radial wobble."""
    axes = [np.arange(n) * s for n, s in zip(shape, spacing, strict=True)]
    grids = np.meshgrid(*axes, indexing="ij")
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center_mm, radii_mm, strict=True))
    if wobble:
        r2 = r2 * (1 + wobble * np.sin(grids[0] / 7.0) * np.cos(grids[1] / 5.0))
    return np.ascontiguousarray(r2 <= 1.0)


@pytest.fixture(scope="session")
def shapes() -> SimpleNamespace:
    """Shape factories: ``shapes.blob(rng, shape)``, ``shapes.ellipsoid(...)``."""
    return SimpleNamespace(blob=blob, ellipsoid=ellipsoid)
