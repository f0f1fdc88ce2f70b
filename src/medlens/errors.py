"""Exceptions shared by every part of medlens.

Every error a user can cause derives from :class:`MedlensError`; the ``medlens``
command turns these into a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

__all__ = ["GeometryError", "MedlensError", "ParameterError"]


class MedlensError(Exception):
    """Base class of the errors a user can cause (bad input, bad options)."""


class GeometryError(MedlensError, ValueError):
    """Raised for an invalid affine, spacing, orientation code or grid mismatch."""


class ParameterError(MedlensError, ValueError):
    """Raised for an option value that cannot be used (out of range, wrong type)."""
