"""Rank several methods on the same cases: two rankings, bootstrap rank stability, Wilcoxon tests.

Every (region, metric) pair is a *task*; a value missing for a method (no row,
or NaN) gets the worst possible value — rank last in rank-then-aggregate, the
worst observed value (or a given penalty) in aggregate-then-rank — as in the
FeTS 2021 and BraTS rankings. Ties share the lowest rank (``min``), as in
challengeR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medlens.errors import MedlensError
from medlens.evaluation._table import MetricRow, higher_is_better

__all__ = [
    "MethodRank",
    "Ranking",
    "RankingError",
    "WilcoxonResult",
    "pairwise_wilcoxon",
    "rank_methods",
    "ranking_table",
]


class RankingError(MedlensError, ValueError):
    """Raised when methods cannot be ranked (fewer than two, no common task ...)."""


@dataclass(frozen=True)
class MethodRank:
    """One method's place in a ranking.

    Attributes
    ----------
    method : str
        Method name.
    rank : int
        Final rank by rank-then-aggregate (1 = best).
    score : float
        Its mean rank over cases and tasks.
    rank_lower, rank_upper : float
        Bootstrap interval of the final rank (percentiles of the resampled ranks).
    p_first : float
        Fraction of bootstrap resamples in which the method ranks first.
    aggregate_rank : int
        Final rank by aggregate-then-rank.
    aggregate_score : float
        Its mean over tasks of the per-task rank of the case-mean value.
    n_missing : int
        (case, task) values missing for this method and penalised.
    """

    method: str
    rank: int
    score: float
    rank_lower: float
    rank_upper: float
    p_first: float
    aggregate_rank: int
    aggregate_score: float
    n_missing: int


@dataclass(frozen=True)
class WilcoxonResult:
    """A two-sided Wilcoxon signed-rank test of two methods on one task.

    Attributes
    ----------
    region, metric : str
        The task (``all``/``mean_rank`` for the per-case mean ranks).
    method_a, method_b : str
        The pair.
    n : int
        Cases where both have finite values.
    median_difference : float
        Median of ``a - b``.
    statistic, pvalue : float
        From ``scipy.stats.wilcoxon`` (NaN with fewer than one non-zero difference; p = 1
        when every difference is zero).
    pvalue_holm : float
        Holm-adjusted p-value within the task.
    """

    region: str
    metric: str
    method_a: str
    method_b: str
    n: int
    median_difference: float
    statistic: float
    pvalue: float
    pvalue_holm: float


@dataclass(frozen=True)
class Ranking:
    """The result of :func:`rank_methods`.

    Attributes
    ----------
    methods : tuple of MethodRank
        Sorted by rank.
    tasks : tuple
        ``(region, metric)`` tasks used.
    cases : tuple of str
        Cases used (union over methods).
    rank_samples : dict
        ``{method: bootstrap final ranks}``.
    wilcoxon : tuple of WilcoxonResult
        Pairwise tests.
    n_resamples : int
        Bootstrap resamples.
    confidence : float
        Coverage of the rank intervals.
    """

    methods: tuple[MethodRank, ...]
    tasks: tuple[tuple[str, str], ...]
    cases: tuple[str, ...]
    rank_samples: dict[str, npt.NDArray[np.float64]]
    wilcoxon: tuple[WilcoxonResult, ...]
    n_resamples: int
    confidence: float


def _rank_min(values: npt.NDArray[np.float64], axis: int) -> npt.NDArray[np.float64]:
    """Ranks (1 = smallest) along ``axis`` with ties given the minimum rank."""
    from scipy.stats import rankdata

    out: npt.NDArray[np.float64] = rankdata(values, method="min", axis=axis).astype(np.float64)
    return out


def _cube(
    results: Mapping[str, Sequence[MetricRow]],
    tasks: Sequence[tuple[str, str]] | None,
) -> tuple[list[str], list[str], list[tuple[str, str]], npt.NDArray[np.float64]]:
    methods = list(results)
    if len(methods) < 2:
        raise RankingError(f"need at least two methods to rank, got {len(methods)}")
    cases = sorted({r.case for rows in results.values() for r in rows})
    if tasks is None:
        per_method = [{(r.region, r.metric) for r in rows} for rows in results.values()]
        common = set.union(*per_method)
        tasks = sorted(common)
    task_list = list(tasks)
    if not task_list or not cases:
        raise RankingError("no (region, metric) task or case to rank on")
    ci = {c: i for i, c in enumerate(cases)}
    ti = {t: i for i, t in enumerate(task_list)}
    cube = np.full((len(methods), len(cases), len(task_list)), np.nan)
    for m, rows in enumerate(results.values()):
        for r in rows:
            t = ti.get((r.region, r.metric))
            if t is not None:
                cube[m, ci[r.case], t] = r.value
    return methods, cases, task_list, cube


def rank_methods(
    results: Mapping[str, Sequence[MetricRow]],
    *,
    tasks: Sequence[tuple[str, str]] | None = None,
    higher_better: Mapping[str, bool] | None = None,
    penalties: Mapping[str, float] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Ranking:
    """Rank methods by rank-then-aggregate and aggregate-then-rank, with bootstrap intervals.

    *Rank-then-aggregate*: for each case and task, methods are ranked by value
    (missing = worst); a method's score is its mean rank over cases and tasks;
    the final rank orders the scores. *Aggregate-then-rank*: for each task the
    methods' case means (missing values filled with ``penalties[metric]`` or
    else the worst finite value any method got on that task) are ranked; the
    final rank orders the mean of those ranks. *Rank stability*: cases are
    resampled with replacement ``n_resamples`` times
    (``numpy.random.default_rng(seed)``) and the rank-then-aggregate ranking is
    recomputed; each method's rank interval is the central ``confidence``
    range of its resampled ranks.

    Parameters
    ----------
    results : mapping
        ``{method: rows}`` (e.g. each method's ``metrics.csv``).
    tasks : sequence of (region, metric), optional
        Tasks to rank on (default: every task any method reports).
    higher_better : mapping, optional
        ``{metric: bool}`` overriding :func:`~medlens.evaluation.higher_is_better`.
    penalties : mapping, optional
        ``{metric: value}`` for missing values in aggregate-then-rank.
    n_resamples : int, optional
        Bootstrap resamples (0 to skip).
    confidence : float, optional
        Coverage of the rank intervals.
    seed : int, optional
        Bootstrap seed.

    Returns
    -------
    Ranking
        Ranks, intervals and pairwise tests (see :func:`pairwise_wilcoxon`).

    Raises
    ------
    RankingError
        With fewer than two methods, no task, or a metric of unknown direction.
    """
    methods, cases, task_list, cube = _cube(results, tasks)
    hb = dict(higher_better or {})
    signs = []
    for _, metric in task_list:
        if metric in hb:
            signs.append(1.0 if hb[metric] else -1.0)
            continue
        try:
            signs.append(1.0 if higher_is_better(metric) else -1.0)
        except KeyError as e:
            raise RankingError(str(e.args[0])) from None
    sign = np.array(signs)
    # "badness": lower is better for every task
    bad = -cube * sign[None, None, :]
    missing = ~np.isfinite(cube) & ~np.isinf(cube)  # NaN or absent
    filled = np.where(missing, np.inf, bad)  # missing ranks last
    filled = np.where(np.isnan(filled), np.inf, filled)
    ranks = _rank_min(filled, axis=0)  # (M, C, T)
    per_case = ranks.mean(axis=2)  # (M, C)
    score = per_case.mean(axis=1)
    final = _rank_min(score, axis=0).astype(int)

    # aggregate-then-rank
    pen = dict(penalties or {})
    agg = np.empty((len(methods), len(task_list)))
    for t, (_, metric) in enumerate(task_list):
        col = bad[:, :, t]
        finite = col[np.isfinite(col)]
        if metric in pen:
            fill = -float(pen[metric]) * sign[t]
        else:
            fill = float(finite.max()) if finite.size else 0.0
        col = np.where(np.isnan(col), fill, col)
        agg[:, t] = col.mean(axis=1)
    agg_task_ranks = _rank_min(np.where(np.isnan(agg), np.inf, agg), axis=0)
    agg_score = agg_task_ranks.mean(axis=1)
    agg_final = _rank_min(agg_score, axis=0).astype(int)

    # bootstrap rank stability over cases
    samples = np.empty((len(methods), n_resamples))
    if n_resamples > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(cases), size=(n_resamples, len(cases)))
        boot_scores = per_case[:, idx].mean(axis=2)  # (M, B)
        samples = _rank_min(boot_scores, axis=0)
    alpha = (1 - confidence) / 2
    out = []
    for m, name in enumerate(methods):
        if n_resamples > 0:
            lo, hi = np.quantile(samples[m], [alpha, 1 - alpha], method="inverted_cdf")
            p1 = float(np.mean(samples[m] == 1))
        else:
            lo = hi = p1 = math.nan
        out.append(
            MethodRank(
                method=name,
                rank=int(final[m]),
                score=float(score[m]),
                rank_lower=float(lo),
                rank_upper=float(hi),
                p_first=p1,
                aggregate_rank=int(agg_final[m]),
                aggregate_score=float(agg_score[m]),
                n_missing=int(missing[m].sum()),
            )
        )
    order = sorted(range(len(methods)), key=lambda m: (out[m].rank, out[m].score, methods[m]))
    tests = pairwise_wilcoxon(methods, task_list, cube, per_case=per_case)
    return Ranking(
        methods=tuple(out[m] for m in order),
        tasks=tuple(task_list),
        cases=tuple(cases),
        rank_samples={methods[m]: samples[m] for m in range(len(methods))},
        wilcoxon=tests,
        n_resamples=n_resamples,
        confidence=confidence,
    )


def _holm(p: Sequence[float]) -> list[float]:
    arr = np.asarray(p, dtype=float)
    out = np.full(arr.size, np.nan)
    ok = np.flatnonzero(np.isfinite(arr))
    if ok.size == 0:
        return out.tolist()
    order = ok[np.argsort(arr[ok])]
    k = order.size
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (k - i) * arr[j]))
        out[j] = running
    return out.tolist()


def _wilcoxon(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> tuple[int, float, float, float]:
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = int(ok.sum())
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    med = float(np.median(d))
    if np.all(d == 0):
        return n, med, 0.0, 1.0
    from scipy.stats import wilcoxon

    res = wilcoxon(a[ok], b[ok], zero_method="wilcox", alternative="two-sided")
    return n, med, float(res.statistic), float(res.pvalue)


def pairwise_wilcoxon(
    methods: Sequence[str],
    tasks: Sequence[tuple[str, str]],
    cube: npt.NDArray[np.float64],
    *,
    per_case: npt.NDArray[np.float64] | None = None,
) -> tuple[WilcoxonResult, ...]:
    """Two-sided Wilcoxon signed-rank tests for every pair of methods and every task.

    Parameters
    ----------
    methods : sequence of str
        Method names (first axis of ``cube``).
    tasks : sequence of (region, metric)
        Tasks (last axis of ``cube``).
    cube : numpy.ndarray
        Values ``(methods, cases, tasks)``, NaN where missing; pairs are
        compared on the cases where both are finite.
    per_case : numpy.ndarray, optional
        ``(methods, cases)`` mean ranks; if given, also tested (task
        ``all``/``mean_rank``).

    Returns
    -------
    tuple of WilcoxonResult
        With Holm-adjusted p-values within each task.
    """
    out: list[WilcoxonResult] = []
    columns: list[tuple[str, str, npt.NDArray[np.float64]]] = [
        (region, metric, cube[:, :, t]) for t, (region, metric) in enumerate(tasks)
    ]
    if per_case is not None:
        columns.append(("all", "mean_rank", per_case))
    for region, metric, values in columns:
        block: list[tuple[str, str, int, float, float, float]] = []
        for i in range(len(methods)):
            for j in range(i + 1, len(methods)):
                n, med, stat, p = _wilcoxon(values[i], values[j])
                block.append((methods[i], methods[j], n, med, stat, p))
        adj = _holm([b[5] for b in block])
        for (a, b, n, med, stat, p), ph in zip(block, adj, strict=True):
            out.append(WilcoxonResult(region, metric, a, b, n, med, stat, p, ph))
    return tuple(out)


def ranking_table(ranking: Ranking) -> list[dict[str, Any]]:
    """Rows for ``ranking.csv`` and the report."""
    return [
        {
            "method": m.method,
            "rank": m.rank,
            "score": m.score,
            "lower": _int_or(m.rank_lower),
            "upper": _int_or(m.rank_upper),
            "p_first": m.p_first,
            "aggregate_rank": m.aggregate_rank,
            "aggregate_score": m.aggregate_score,
            "n_missing": m.n_missing,
        }
        for m in ranking.methods
    ]


def _int_or(v: float) -> int | float:
    return int(v) if math.isfinite(v) and float(v).is_integer() else v
