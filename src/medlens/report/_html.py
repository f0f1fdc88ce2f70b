"""Self-contained HTML reports: jinja2 template, matplotlib plots embedded as base64 PNG."""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from medlens.evaluation._table import MetricRow, MetricSummary

__all__ = [
    "RankingSection",
    "classification_plots",
    "comparison_plot",
    "distribution_plot",
    "render_report",
    "write_report",
]


@dataclass(frozen=True)
class RankingSection:
    """What the report shows about a ranking.

    Attributes
    ----------
    rows : sequence of dict
        Per method: ``method, rank, score, lower, upper, p_first, aggregate_rank``.
    rank_samples : dict
        ``{method: bootstrap ranks}`` for the plot.
    wilcoxon : sequence of dict
        Pairwise tests: ``region, metric, method_a, method_b, n, median_difference,
        pvalue, pvalue_holm``.
    note : str
        How the ranking was made.
    confidence : float
        Coverage of the rank intervals.
    """

    rows: Sequence[Mapping[str, Any]]
    rank_samples: Mapping[str, Sequence[float]] = field(default_factory=dict)
    wilcoxon: Sequence[Mapping[str, Any]] = ()
    note: str = ""
    confidence: float = 0.95


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, int | np.integer):
        return str(int(v))
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if f != 0 and (abs(f) >= 1e5 or abs(f) < 1e-3):
        return f"{f:.3e}"
    return f"{f:.4f}"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def distribution_plot(
    region: str,
    values: Mapping[str, Sequence[float]],
    penalised: Mapping[str, Sequence[bool]] | None = None,
) -> str:
    """Box plots with the individual cases overlaid, one panel per metric.

    Parameters
    ----------
    region : str
        Region name (panel title prefix).
    values : mapping
        ``{metric: per-case values}``; non-finite values are left out of the
        panel and counted in its title.
    penalised : mapping, optional
        ``{metric: per-case flags}``; penalised cases are drawn as red crosses.

    Returns
    -------
    str
        Base64-encoded PNG.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    metrics = list(values)
    n = max(len(metrics), 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        v = np.asarray(values[metric], dtype=float)
        flags = np.zeros(v.size, bool)
        if penalised is not None and metric in penalised:
            flags = np.asarray(penalised[metric], dtype=bool)
        ok = np.isfinite(v)
        finite = v[ok]
        dropped = v.size - finite.size
        if finite.size:
            ax.boxplot(finite, widths=0.5, showfliers=False)
            x = 1 + rng.uniform(-0.12, 0.12, v.size)
            m = ok & ~flags
            ax.scatter(x[m], v[m], s=10, alpha=0.6)
            m = ok & flags
            if m.any():
                ax.scatter(x[m], v[m], s=22, marker="x", color="#c0392b", label="penalised")
                ax.legend(fontsize=7, loc="best")
        title = metric if not dropped else f"{metric} ({dropped} non-finite)"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(region, fontsize=10)
    return _png(fig)


def classification_plots(
    reference: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    *,
    n_bins: int = 10,
) -> list[dict[str, str]]:
    """ROC curve and, for probabilities, a reliability diagram, as base64 PNGs.

    Parameters
    ----------
    reference : array_like
        True labels.
    scores : array_like
        Positive-class scores.
    n_bins : int, optional
        Equal-width calibration bins.

    Returns
    -------
    list of dict
        ``{"title", "png"}`` entries for ``write_report(extra_plots=...)``.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from medlens.metrics import auroc, calibration_bins

    y = np.asarray(reference, dtype=bool)
    s = np.asarray(scores, dtype=float)
    out = []
    order = np.argsort(-s, kind="mergesort")
    tp = np.r_[0, np.cumsum(y[order])]
    fp = np.r_[0, np.cumsum(~y[order])]
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.plot(fp / max(fp[-1], 1), tp / max(tp[-1], 1), lw=1.5)
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"ROC (AUROC {auroc(y, s):.3f})", fontsize=9)
    out.append({"title": "ROC curve", "png": _png(fig)})
    if s.min() >= 0 and s.max() <= 1:
        obs, pred, counts = calibration_bins(y, s, n_bins=n_bins)
        keep = counts > 0
        fig, ax = plt.subplots(figsize=(3.6, 3.4))
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.plot(pred[keep], obs[keep], marker="o", lw=1.2)
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed frequency")
        ax.set_title(f"reliability ({n_bins} equal-width bins)", fontsize=9)
        out.append({"title": "Calibration", "png": _png(fig)})
    return out


def comparison_plot(region: str, values: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Side-by-side box plots of several methods, one panel per metric.

    Parameters
    ----------
    region : str
        Region name (figure title).
    values : mapping
        ``{metric: {method: per-case values}}``; non-finite values are left out.

    Returns
    -------
    str
        Base64-encoded PNG.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    metrics = list(values)
    cols = min(max(len(metrics), 1), 3)
    rows = math.ceil(max(len(metrics), 1) / cols)
    n_methods = max((len(v) for v in values.values()), default=1)
    width = max(3.4, 0.7 * n_methods + 1.5)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.0 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        methods = list(values[metric])
        data = []
        for m in methods:
            v = np.asarray(values[metric][m], dtype=float)
            data.append(v[np.isfinite(v)])
        ax.boxplot([d if d.size else [np.nan] for d in data], widths=0.5, showfliers=False)
        for i, d in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, d.size), d, s=8, alpha=0.5)
        ax.set_xticks(range(1, len(methods) + 1))
        ax.set_xticklabels(methods, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(region, fontsize=10)
    return _png(fig)


def _rank_plot(samples: Mapping[str, Sequence[float]], order: Sequence[str]) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = len(order)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * n + 2), 3.2))
    for i, m in enumerate(order):
        r = np.asarray(samples[m], dtype=float)
        ranks, counts = np.unique(r, return_counts=True)
        ax.scatter(np.full(ranks.size, i), ranks, s=600 * counts / r.size + 4, alpha=0.6)
    ax.set_xticks(range(n))
    ax.set_xticklabels(order, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("bootstrap rank")
    ax.invert_yaxis()
    ax.set_title("rank stability (area ∝ frequency)", fontsize=9)
    return _png(fig)


def _worst_tables(rows: Sequence[MetricRow], *, n_worst: int = 10) -> list[dict[str, Any]]:
    by_region: dict[str, dict[str, dict[str, float]]] = {}
    metric_order: dict[str, list[str]] = {}
    for r in rows:
        by_region.setdefault(r.region, {}).setdefault(r.case, {})[r.metric] = r.value
        order = metric_order.setdefault(r.region, [])
        if r.metric not in order:
            order.append(r.metric)
    out = []
    for region, cases in by_region.items():
        metrics = metric_order[region]
        key_metric = next((m for m in metrics if m == "dice"), None)
        if key_metric is None:
            key_metric = next((m for m in metrics if _direction(m) is not None), metrics[0])
        hib = _direction(key_metric)
        higher = True if hib is None else hib

        def sort_key(
            item: tuple[str, dict[str, float]], metric: str = key_metric, higher: bool = higher
        ) -> float:
            v = item[1].get(metric, math.nan)
            if math.isnan(v):
                return -math.inf  # undefined values first: they need a look
            return v if higher else -v

        worst = sorted(cases.items(), key=sort_key)[:n_worst]
        out.append(
            {
                "region": region,
                "metric": key_metric,
                "higher_better": higher,
                "columns": metrics,
                "rows": [
                    {"case": c, "values": [vals.get(m, math.nan) for m in metrics]}
                    for c, vals in worst
                ],
            }
        )
    return out


def _direction(metric: str) -> bool | None:
    from medlens.evaluation._table import higher_is_better

    try:
        return higher_is_better(metric)
    except KeyError:
        return None


def render_report(
    *,
    rows: Sequence[MetricRow] = (),
    summaries: Sequence[MetricSummary] = (),
    title: str = "medlens evaluation",
    status: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    penalised: Iterable[tuple[str, str, str]] = (),
    ranking: RankingSection | None = None,
    n_worst: int = 10,
    extra_plots: Sequence[Mapping[str, str]] = (),
    metric_table: Sequence[Mapping[str, Any]] = (),
    comparison: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]] | None = None,
) -> str:
    """Render the HTML report as a string (see :func:`write_report`)."""
    import jinja2

    from medlens import __version__

    status = dict(status or {})
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("medlens.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("report.html.j2")
    plots = []
    pen = set(penalised)
    grouped: dict[str, dict[str, list[float]]] = {}
    flags: dict[str, dict[str, list[bool]]] = {}
    for r in rows:
        grouped.setdefault(r.region, {}).setdefault(r.metric, []).append(r.value)
        flags.setdefault(r.region, {}).setdefault(r.metric, []).append(
            (r.case, r.region, r.metric) in pen
        )
    if comparison is not None:
        for region, by_metric in comparison.items():
            plots.append({"region": region, "png": comparison_plot(region, by_metric)})
    else:
        for region, vals in grouped.items():
            plots.append(
                {"region": region, "png": distribution_plot(region, vals, flags[region])}
            )
    ranking_ctx = None
    if ranking is not None:
        order = [str(r["method"]) for r in ranking.rows]
        ranking_ctx = {
            "rows": ranking.rows,
            "wilcoxon": ranking.wilcoxon,
            "note": ranking.note,
            "confidence_pct": round(100 * ranking.confidence),
            "plot": _rank_plot(ranking.rank_samples, order) if ranking.rank_samples else None,
        }
    return template.render(
        title=title,
        version=__version__,
        n_cases=status.get("n_cases", len({r.case for r in rows})),
        n_ok=status.get("n_ok", len({r.case for r in rows})),
        problems=status.get("problems", []),
        unmatched=status.get("unmatched_predictions", []),
        settings=dict(settings or {}),
        summaries=summaries,
        plots=plots,
        worst=_worst_tables(rows, n_worst=n_worst) if rows else [],
        ranking=ranking_ctx,
        extra_plots=list(extra_plots),
        metric_table=list(metric_table),
        fmt=_fmt,
    )


def write_report(path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write a self-contained HTML report (opens offline: nothing is loaded from elsewhere).

    The report has the run's definitions, the problem cases, a summary table
    per region and metric, per-region distribution plots (box plot plus every
    case), the worst cases per region and, when given, the ranking with
    bootstrap rank intervals and pairwise tests. Plots are PNG images embedded
    as base64 ``data:`` URIs; styles are inline; there is no script.

    Parameters
    ----------
    path : path-like
        Destination ``.html`` file (written atomically).
    **kwargs
        ``rows``, ``summaries``, ``title``, ``status``, ``settings``,
        ``penalised``, ``ranking`` (a :class:`RankingSection`), ``n_worst``,
        ``extra_plots`` (``{"title", "png"}`` mappings, PNG as base64),
        ``metric_table`` (``{"group", "metric", "value", "ci_lower", "ci_upper"}``
        mappings, for dataset-level metrics such as classification),
        ``comparison`` (``{region: {metric: {method: values}}}``: methods side by
        side instead of one distribution plot per region).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    from medlens.evaluation._table import atomic_write_text

    html = render_report(**kwargs)
    atomic_write_text(path, html)
    return Path(path)
