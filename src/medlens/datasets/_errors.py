"""Exceptions raised by :mod:`medlens.datasets`."""

from __future__ import annotations

from medlens.errors import MedlensError

__all__ = [
    "DatasetError",
    "DatasetExportError",
    "DatasetNotFoundError",
    "DatasetUnavailableError",
]


class DatasetError(MedlensError):
    """Base class of the dataset errors a user can cause."""


class DatasetNotFoundError(DatasetError, KeyError):
    """No dataset has this name; the message lists the known names."""

    def __str__(self) -> str:
        # KeyError would quote the message; show it as written.
        return str(self.args[0]) if self.args else ""


class DatasetUnavailableError(DatasetError, RuntimeError):
    """A dataset's source package cannot be had on this machine.

    The message names the package (and version) that is missing and the exact
    command that gets it.
    """


class DatasetExportError(DatasetError, ValueError):
    """A dataset cannot be written in the requested layout; the message says why."""
