"""Helpers shared by the CLI modules."""

from __future__ import annotations

from rich.console import Console

__all__ = ["console", "console_err"]

console = Console(highlight=False)
console_err = Console(stderr=True, highlight=False)
