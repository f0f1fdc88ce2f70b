"""Exceptions raised by :mod:`medlens.io`."""

from __future__ import annotations

from os import PathLike

from medlens.errors import MedlensError

__all__ = [
    "DicomSeriesError",
    "ImageReadError",
    "ImageWriteError",
    "UnsupportedFormatError",
]


class _PathErrorMixin:
    """``path: reason`` message, both kept as attributes, picklable across processes."""

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")  # type: ignore[call-arg]  # next: Exception

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.path, self.reason))


class ImageReadError(_PathErrorMixin, MedlensError, ValueError):
    """A file or folder could not be read as an image.

    The message names the path and the reason; both are also attributes.

    Parameters
    ----------
    path : str or os.PathLike
        The file or folder that failed.
    reason : str
        What is wrong with it, in words a user can act on.
    """


class UnsupportedFormatError(ImageReadError):
    """The file exists but is not in a format (or encoding) medlens can read."""


class DicomSeriesError(ImageReadError):
    """A DICOM folder is ambiguous (several series) or inconsistent (spacing, geometry)."""


class ImageWriteError(_PathErrorMixin, MedlensError, OSError):
    """An image could not be written; the message names the path and the reason."""
