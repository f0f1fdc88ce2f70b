"""medlens: a CPU-first toolkit for medical image AI.

``import medlens`` is cheap: it loads NumPy and the :class:`Image` type only.
Subpackages (``medlens.io``, ``medlens.metrics``, ``medlens.segmentation`` ...)
are imported on first attribute access, and nothing here imports torch.

Examples
--------
>>> import numpy as np
>>> import medlens
>>> img = medlens.Image(np.zeros((4, 5, 6)), np.diag([2.0, 2.0, 3.0, 1.0]))
>>> img.spacing
(2.0, 2.0, 3.0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from medlens.errors import GeometryError, MedlensError
from medlens.image import Image

__version__ = "0.1.0"

__all__ = ["GeometryError", "Image", "MedlensError", "__version__"]

_SUBPACKAGES = {
    "cli",
    "datasets",
    "evaluation",
    "io",
    "metrics",
    "reconstruction",
    "registration",
    "report",
    "segmentation",
}

if TYPE_CHECKING:  # pragma: no cover
    from medlens import datasets, evaluation, io, metrics  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"medlens.{name}")
    raise AttributeError(f"module 'medlens' has no attribute {name!r}")
