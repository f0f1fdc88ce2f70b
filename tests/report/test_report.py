"""report.html: self-contained, and its plots and tables render in headless Chromium."""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlens.evaluation import MetricRow, summarize
from medlens.report import RankingSection, render_report, write_report


def _rows() -> list[MetricRow]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        case = f"case_{i:02d}"
        for region in ("WT", "TC"):
            rows.append(MetricRow(case, region, "dice", float(rng.uniform(0.5, 1.0))))
            rows.append(MetricRow(case, region, "hd95", float(rng.uniform(0.0, 20.0))))
    rows.append(MetricRow("case_12", "WT", "dice", 0.0))
    rows.append(MetricRow("case_12", "WT", "hd95", math.inf))
    return rows


def _write(path: Path, *, ranking: bool = False) -> Path:
    rows = _rows()
    section = None
    if ranking:
        section = RankingSection(
            rows=[
                {"method": m, "rank": k, "score": s, "lower": 1, "upper": 2, "p_first": p,
                 "aggregate_rank": k}
                for m, k, s, p in (("A", 1, 1.2, 0.8), ("B", 2, 1.8, 0.2))
            ],
            rank_samples={"A": [1, 1, 2, 1], "B": [2, 2, 1, 2]},
            wilcoxon=[
                {"region": "WT", "metric": "dice", "method_a": "A", "method_b": "B", "n": 12,
                 "median_difference": 0.1, "pvalue": 0.01, "pvalue_holm": 0.02}
            ],
            note="test ranking",
        )
    return write_report(
        path,
        rows=rows,
        summaries=summarize(rows, n_resamples=100),
        title="test <report>",
        status={
            "n_cases": 13,
            "n_ok": 12,
            "problems": [
                {"case": "case_12", "status": "missing_prediction", "message": "no prediction"}
            ],
        },
        settings={"surface definition": "surfel"},
        ranking=section,
    )


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href", "srcset", "poster", "data") and value:
                self.refs.append(value)


def test_report_is_self_contained(tmp_path: Path) -> None:
    html = _write(tmp_path / "report.html", ranking=True).read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(html)
    assert "script" not in parser.tags and "link" not in parser.tags and "iframe" not in parser.tags
    assert parser.refs, "expected embedded images"
    assert all(r.startswith("data:image/png;base64,") for r in parser.refs)
    assert not re.search(r"url\(|@import|https?://", html)
    assert "test &lt;report&gt;" in html  # escaped
    assert parser.tags.count("img") == 3  # WT, TC distributions + the rank plot
    assert "case_12" in html and "missing_prediction" in html
    assert "∞" in html  # the infinite HD95 is shown, not hidden


def test_report_without_rows_renders() -> None:
    html = render_report(title="empty")
    assert "<h1>empty</h1>" in html and "<img" not in html


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(
            "headless Chromium is required for this test: apt-get install chromium "
            "chromium-driver (requirements/evaluation.apt), or set MEDLENS_NO_BROWSER=1"
        )
    return browser, driver


@pytest.fixture
def browser() -> Iterator[Any]:
    if os.environ.get("MEDLENS_NO_BROWSER") == "1":
        pytest.skip("MEDLENS_NO_BROWSER=1")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = _chromium()
    profile = tempfile.mkdtemp(prefix="medlens-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_report_renders_in_headless_chromium(tmp_path: Path, browser: Any) -> None:
    path = _write(tmp_path / "report.html", ranking=True)
    browser.get(path.resolve().as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
        "i.naturalHeight, i.getBoundingClientRect().width]);"
    )
    assert len(images) == 3
    for complete, w, h, shown in images:
        assert complete and w > 0 and h > 0 and shown > 0
    tables = browser.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('table[id]'))"
        ".map(t => [t.id, [t.rows.length, t.getBoundingClientRect().height]]));"
    )
    assert tables["summary"][0] == 1 + 4  # header + (WT, TC) x (dice, hd95)
    assert tables["ranking"][0] == 3 and tables["wilcoxon"][0] == 2
    assert tables["problems"][0] == 2
    assert all(height > 0 for _, height in tables.values())
    worst = browser.execute_script("return document.querySelectorAll('table.worst').length;")
    assert worst == 2
    # nothing was fetched from anywhere but the file itself
    entries = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert all(not e.startswith(("http:", "https:")) for e in entries)
