import json

import numpy as np
import pytest

from medlens.cli._demo import otsu_brain_baseline, parse_duration
from medlens.errors import MedlensError


def test_parse_duration():
    assert parse_duration("15m") == 900.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("90s") == 90.0
    with pytest.raises(MedlensError, match="duration"):
        parse_duration("soon")


def test_otsu_baseline_on_synthetic_head():
    # brain (bright) inside a dark CSF gap inside a bright scalp shell
    idx = np.indices((48, 48, 32)).astype(float)
    r = np.sqrt(
        ((idx[0] - 24) / 1.0) ** 2 + ((idx[1] - 24) / 1.0) ** 2 + ((idx[2] - 16) * 1.5) ** 2
    )
    img = np.zeros(r.shape, np.float32)
    img[r < 14] = 100.0
    img[(r >= 17) & (r < 20)] = 90.0
    out = otsu_brain_baseline(img, (2.0, 2.0, 3.0), radius_mm=4.0)
    brain = r < 14
    dice = 2 * (out & brain).sum() / (out.sum() + brain.sum())
    assert dice > 0.95


@pytest.mark.slow
def test_tiny_phantom_demo_end_to_end(tmp_path):
    from medlens.cli import main

    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--dataset",
            "phantom-kidney",
            "--out",
            str(out),
            "--time-budget",
            "40s",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--quiet",
            "--n-cases",
            "3",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["metrics"]["medlens U-Net"]) == {"kidney_and_mass", "mass", "tumor"}
    html = (out / "report.html").read_text()
    assert "kidney+masses" in html and "masses" in html and "tumour" in html
    assert "synthetic" in html and "data:image/png;base64," in html
    assert (out / "predictions").is_dir() and any((out / "predictions").iterdir())
