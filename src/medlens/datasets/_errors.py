"""Exceptions raised by :mod:`medlens.datasets`."""

from __future__ import annotations

from os import PathLike

from medlens.errors import MedlensError

__all__ = [
    "DatasetError",
    "DatasetExportError",
    "DatasetNotFoundError",
    "DatasetPathError",
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


class DatasetPathError(DatasetError, OSError):
    """A cache or output folder cannot be created or written; names the path and why.

    Also an :class:`OSError`, so code that caught the underlying ``FileNotFoundError``
    or ``FileExistsError`` keeps working.

    Parameters
    ----------
    path : str or os.PathLike
        The folder or file at fault.
    reason : str
        What is wrong with it.

    Examples
    --------
    >>> e = DatasetPathError("/proc/nope", "cannot create a folder in /proc")
    >>> str(e), isinstance(e, OSError)
    ('/proc/nope: cannot create a folder in /proc', True)
    """

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
        self.filename = self.path

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self) -> tuple[type[DatasetPathError], tuple[str, str]]:
        return (type(self), (self.path, self.reason))
