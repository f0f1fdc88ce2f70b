"""One dataset cache for the whole test session, so every package is downloaded once.

``MEDLENS_DATA`` points at a session temporary folder; tests that need a fresh
cache pass ``cache_dir=`` explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("medlens-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLENS_DATA", str(root))
        yield root


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any download attempt fail loudly (to prove a fetch reuses the cache)."""
    from medlens.datasets import _sources

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(_sources, "_apt_download", refuse)
    monkeypatch.setattr(_sources, "_pip_download", refuse)
    monkeypatch.setattr(_sources, "_copy_installed", refuse)
