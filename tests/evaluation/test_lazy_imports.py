"""Importing the evaluation stack loads no torch, and no sklearn/matplotlib until used."""

from __future__ import annotations

import subprocess
import sys


def test_evaluation_imports_are_light() -> None:
    code = (
        "import sys; import medlens.metrics, medlens.evaluation, medlens.report, "
        "medlens.cli._evaluate; "
        "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib', 'jinja2', 'skimage') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
