"""`import medlens` stays light: no torch, no heavy libraries at import time."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "SimpleITK", "nibabel", "pydicom", "matplotlib", "sklearn", "scipy.ndimage",
         "h5py", "highdicom", "typer")


def test_import_medlens_pulls_in_no_heavy_module():
    code = (
        "import sys, medlens; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_subpackages_load_lazily():
    code = (
        "import sys, medlens; assert 'medlens.io' not in sys.modules; "
        "medlens.io.read_image; assert 'medlens.io' in sys.modules; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute_raises():
    import medlens

    try:
        medlens.does_not_exist  # noqa: B018
    except AttributeError as e:
        assert "does_not_exist" in str(e)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
