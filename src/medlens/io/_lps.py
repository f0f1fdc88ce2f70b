"""The one place where LPS (ITK, DICOM) and RAS+ (medlens, NIfTI) world spaces meet.

ITK and DICOM express world coordinates in LPS+ (x grows to the patient's left,
y to posterior); medlens uses RAS+. The two differ by negating x and y, so the
conversion is its own inverse.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["LPS_RAS_FLIP", "lps_to_ras", "ras_to_lps"]

LPS_RAS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
"""4x4 matrix that maps LPS+ homogeneous points to RAS+ ones, and back."""


def lps_to_ras(affine_or_points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Convert a 4x4 voxel-to-LPS affine, or ``(N, 3)`` LPS points, to RAS+.

    Examples
    --------
    >>> lps_to_ras([[1.0, 2.0, 3.0]]).tolist()
    [[-1.0, -2.0, 3.0]]
    >>> a = np.diag([0.5, 0.5, 2.0, 1.0])
    >>> bool(np.array_equal(ras_to_lps(lps_to_ras(a)), a))
    True
    """
    a = np.asarray(affine_or_points, dtype=np.float64)
    if a.shape == (4, 4):
        return LPS_RAS_FLIP @ a
    if a.ndim in (1, 2) and a.shape[-1] == 3:
        return a * np.array([-1.0, -1.0, 1.0])
    raise ValueError(f"expected a 4x4 affine or (N, 3) points, got shape {a.shape}")


def ras_to_lps(affine_or_points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Convert a 4x4 voxel-to-RAS+ affine, or ``(N, 3)`` RAS+ points, to LPS+.

    The flip is an involution, so this is :func:`lps_to_ras` again; both names
    exist so that call sites say which way they go.
    """
    return lps_to_ras(affine_or_points)
