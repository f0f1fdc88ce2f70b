"""Ranking: hand-worked rankings of both kinds, missing values, bootstrap, Wilcoxon tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from medlens.evaluation import MetricRow, RankingError, rank_methods


def _rows(values: dict[str, float], metric: str = "dice", region: str = "WT") -> list[MetricRow]:
    return [MetricRow(c, region, metric, v) for c, v in values.items()]


def test_hand_worked_rankings_differ() -> None:
    # A wins most cases narrowly, B wins one case by far: the two schemes disagree.
    results = {
        "A": _rows({"c1": 0.90, "c2": 0.90, "c3": 0.90, "c4": 0.10}),
        "B": _rows({"c1": 0.89, "c2": 0.89, "c3": 0.89, "c4": 0.99}),
    }
    r = rank_methods(results, n_resamples=0)
    by = {m.method: m for m in r.methods}
    # rank-then-aggregate: A ranks 1,1,1,2 -> 1.25; B 2,2,2,1 -> 1.75
    assert by["A"].score == pytest.approx(1.25) and by["B"].score == pytest.approx(1.75)
    assert (by["A"].rank, by["B"].rank) == (1, 2)
    # aggregate-then-rank: means A 0.70, B 0.915 -> B first
    assert (by["A"].aggregate_rank, by["B"].aggregate_rank) == (2, 1)
    assert [m.method for m in r.methods] == ["A", "B"]


def test_lower_is_better_and_ties() -> None:
    results = {
        "A": _rows({"c1": 1.0, "c2": 5.0}, metric="hd95"),
        "B": _rows({"c1": 1.0, "c2": 2.0}, metric="hd95"),
        "C": _rows({"c1": 3.0, "c2": 9.0}, metric="hd95"),
    }
    r = rank_methods(results, n_resamples=0)
    by = {m.method: m for m in r.methods}
    # c1: A, B tie at rank 1 (min), C 3; c2: B 1, A 2, C 3
    assert by["A"].score == pytest.approx(1.5)
    assert by["B"].score == pytest.approx(1.0)
    assert by["C"].score == pytest.approx(3.0)
    assert [m.method for m in r.methods] == ["B", "A", "C"]


def test_missing_values_are_penalised_fets_style() -> None:
    results = {
        "A": _rows({"c1": 0.8, "c2": 0.8, "c3": 0.8}),
        "B": _rows({"c1": 0.9, "c2": math.nan}),  # c2 NaN, c3 absent: both worst
    }
    r = rank_methods(results, n_resamples=0)
    by = {m.method: m for m in r.methods}
    assert by["B"].n_missing == 2 and by["A"].n_missing == 0
    assert by["B"].score == pytest.approx((1 + 2 + 2) / 3)
    assert by["A"].score == pytest.approx((2 + 1 + 1) / 3)
    # aggregate-then-rank fills with the worst observed value (0.8): B mean 0.833 > A 0.8
    assert by["B"].aggregate_rank == 1
    # an explicit penalty (dice 0) reverses that
    r2 = rank_methods(results, n_resamples=0, penalties={"dice": 0.0})
    assert {m.method: m.aggregate_rank for m in r2.methods} == {"A": 1, "B": 2}


def test_bootstrap_rank_intervals_seeded() -> None:
    rng = np.random.default_rng(1)
    cases = [f"c{i}" for i in range(30)]
    base = rng.uniform(0.6, 0.9, len(cases))
    results = {
        "strong": _rows(dict(zip(cases, base + 0.05, strict=True))),
        "weak": _rows(dict(zip(cases, base - 0.05, strict=True))),
        "close": _rows(dict(zip(cases, base + 0.05 + rng.normal(0, 0.02, 30), strict=True))),
    }
    a = rank_methods(results, n_resamples=300, seed=7)
    b = rank_methods(results, n_resamples=300, seed=7)
    assert a.methods == b.methods
    by = {m.method: m for m in a.methods}
    assert by["weak"].rank == 3 and by["weak"].rank_lower == by["weak"].rank_upper == 3
    assert by["weak"].p_first == 0.0
    assert by["strong"].rank_lower <= by["strong"].rank <= by["strong"].rank_upper
    # ties share rank 1, so the two leaders' P(first) can add up to more than 1
    assert by["strong"].p_first + by["close"].p_first >= 1.0
    assert a.rank_samples["weak"].shape == (300,)


def test_wilcoxon_matches_scipy_with_holm() -> None:
    rng = np.random.default_rng(2)
    cases = [f"c{i}" for i in range(20)]
    x = rng.uniform(0.5, 0.9, 20)
    y = x + rng.normal(0.03, 0.02, 20)
    z = x + rng.normal(0.0, 0.05, 20)
    results = {
        "x": _rows(dict(zip(cases, x, strict=True))),
        "y": _rows(dict(zip(cases, y, strict=True))),
        "z": _rows(dict(zip(cases, z, strict=True))),
    }
    r = rank_methods(results, n_resamples=0)
    tests = {(t.method_a, t.method_b): t for t in r.wilcoxon if t.metric == "dice"}
    ref = stats.wilcoxon(x, y)
    assert tests[("x", "y")].pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert tests[("x", "y")].statistic == pytest.approx(ref.statistic)
    assert tests[("x", "y")].median_difference == pytest.approx(np.median(x - y))
    ps = sorted(t.pvalue for t in tests.values())
    holm = sorted(t.pvalue_holm for t in tests.values())
    assert holm[0] == pytest.approx(min(1.0, 3 * ps[0]))
    assert all(h >= p for h, p in zip(holm, ps, strict=True))
    assert any(t.metric == "mean_rank" for t in r.wilcoxon)


def test_identical_methods_and_errors() -> None:
    rows = _rows({"c1": 0.5, "c2": 0.7})
    r = rank_methods({"a": rows, "b": list(rows)}, n_resamples=10)
    assert {m.rank for m in r.methods} == {1}
    t = next(t for t in r.wilcoxon if t.metric == "dice")
    assert t.pvalue == 1.0 and t.median_difference == 0.0
    with pytest.raises(RankingError, match="two methods"):
        rank_methods({"a": rows})
    with pytest.raises(RankingError, match="direction"):
        rank_methods({"a": _rows({"c": 1.0}, metric="zzz"), "b": _rows({"c": 2.0}, metric="zzz")})
    r2 = rank_methods(
        {"a": _rows({"c": 1.0}, metric="zzz"), "b": _rows({"c": 2.0}, metric="zzz")},
        higher_better={"zzz": False},
        n_resamples=0,
    )
    assert r2.methods[0].method == "a"
