"""Tidy metric tables: rows, atomic CSV/JSON files, per-region summaries with bootstrap CIs."""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import MedlensError

__all__ = [
    "METRICS_COLUMNS",
    "MetricRow",
    "MetricSummary",
    "ResultsError",
    "atomic_write_text",
    "bootstrap_mean_ci",
    "higher_is_better",
    "json_safe",
    "read_metrics_csv",
    "summarize",
    "write_json",
    "write_metrics_csv",
]

#: The columns of every ``metrics.csv``, in order.
METRICS_COLUMNS = ("case", "region", "metric", "value")


class ResultsError(MedlensError, ValueError):
    """Raised for a malformed or missing results file (names the file and the problem)."""


@dataclass(frozen=True)
class MetricRow:
    """One value of the tidy long table ``case, region, metric, value``.

    Attributes
    ----------
    case : str
        Case id.
    region : str
        Region (label set) name, e.g. ``WT``; ``image`` for whole-image metrics.
    metric : str
        Metric name, e.g. ``dice``, ``hd95``, ``nsd@2.0``.
    value : float
        The value (NaN where undefined).
    """

    case: str
    region: str
    metric: str
    value: float


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : path-like
        Destination; its folder is created if needed.
    text : str
        UTF-8 content.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value))


def write_metrics_csv(path: str | os.PathLike[str], rows: Iterable[MetricRow]) -> None:
    """Write rows as ``metrics.csv`` with exactly the columns ``case,region,metric,value``.

    Values are written with full precision (``repr``), ``nan`` and ``inf`` spelled
    out. The file is replaced atomically.

    Parameters
    ----------
    path : path-like
        Destination file.
    rows : iterable of MetricRow
        Rows, written in the given order.
    """
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METRICS_COLUMNS)
    for r in rows:
        w.writerow((r.case, r.region, r.metric, _fmt(r.value)))
    atomic_write_text(path, buf.getvalue())


def read_metrics_csv(path: str | os.PathLike[str]) -> list[MetricRow]:
    """Read a ``metrics.csv`` written by :func:`write_metrics_csv`.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    list of MetricRow
        Its rows.

    Raises
    ------
    ResultsError
        If the file is missing, its header is not ``case,region,metric,value``
        or a value is not a number.
    """
    p = Path(path)
    if not p.is_file():
        raise ResultsError(f"no metrics file at {p}")
    rows: list[MetricRow] = []
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != METRICS_COLUMNS:
            raise ResultsError(f"{p}: header must be {','.join(METRICS_COLUMNS)}, got {header}")
        for lineno, rec in enumerate(reader, start=2):
            if len(rec) != 4:
                raise ResultsError(f"{p}:{lineno}: expected 4 fields, got {len(rec)}")
            try:
                value = float(rec[3])
            except ValueError:
                raise ResultsError(f"{p}:{lineno}: value {rec[3]!r} is not a number") from None
            rows.append(MetricRow(rec[0], rec[1], rec[2], value))
    return rows


_HIGHER = {
    "dice", "jaccard", "iou", "precision", "recall", "sensitivity", "specificity", "nsd",
    "f1", "pq", "sq", "rq", "ssim", "psnr", "auroc", "auprc", "accuracy",
    "balanced_accuracy", "ppv", "npv", "srcc", "plcc", "krcc",
}  # fmt: skip
_LOWER = {
    "hd", "hausdorff", "hd95", "assd", "masd", "mae", "mse", "rmse", "nmse", "tre",
    "volume_difference", "absolute_volume_difference", "relative_volume_difference",
    "avd", "rvd", "lesion_count_difference", "fraction_nonpositive_jacobian",
    "std_log_jacobian", "learn2reg_sdlogj", "brier", "ece", "abs_volume_change",
}  # fmt: skip


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better, from its base name.

    The base name drops any ``@tolerance`` or ``_p<q>`` ending and a
    ``lesion_`` / ``lesionwise_`` prefix: ``nsd@2.0`` → ``nsd``, ``lesion_hd95`` → ``hd95``,
    ``tre_p90`` → ``tre``.

    Parameters
    ----------
    metric : str
        Metric name.

    Returns
    -------
    bool
        True for similarity metrics, False for distances and errors.

    Raises
    ------
    KeyError
        For a metric whose direction is unknown (pass the direction explicitly).

    Examples
    --------
    >>> higher_is_better("nsd@2.0"), higher_is_better("lesion_hd95")
    (True, False)
    """
    base = metric.split("@", 1)[0].lower()
    for prefix in ("lesionwise_", "lesion_"):
        if base.startswith(prefix):
            base = base[len(prefix) :]
    for tail in ("_mean", "_median", "_p90", "_max"):
        if base.endswith(tail):
            base = base[: -len(tail)]
    if base in _HIGHER:
        return True
    if base in _LOWER:
        return False
    raise KeyError(f"unknown direction for metric {metric!r}; say whether higher is better")


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded).

    Parameters
    ----------
    values : sequence of float
        Finite values (one per case).
    n_resamples : int, optional
        Resamples with replacement.
    confidence : float, optional
        Coverage.
    seed : int, optional
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    tuple of float
        ``(lower, upper)``; ``(nan, nan)`` without values, ``(v, v)`` for one value.

    Examples
    --------
    >>> lo, hi = bootstrap_mean_ci([1.0, 2.0, 3.0, 4.0], n_resamples=500)
    >>> 1.0 <= lo < 2.5 < hi <= 4.0
    True
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class MetricSummary:
    """Summary of one (region, metric) over cases.

    Statistics are over the finite values; ``n_nan`` and ``n_infinite`` count
    the others and ``n_penalised`` the values that are a penalty (missing
    prediction, one empty mask), which *are* included in the statistics.

    Attributes
    ----------
    region, metric : str
        What is summarised.
    n : int
        Cases with a row.
    n_nan, n_infinite, n_penalised : int
        Counts as above.
    mean, median, std, q1, q3, minimum, maximum : float
        Of the finite values (``std`` with ``ddof = 1``; NaN if fewer than 2).
    ci_lower, ci_upper : float
        Percentile bootstrap 95 % interval of the mean (1,000 resamples, seeded).
    """

    region: str
    metric: str
    n: int
    n_nan: int
    n_infinite: int
    n_penalised: int
    mean: float
    median: float
    std: float
    q1: float
    q3: float
    minimum: float
    maximum: float
    ci_lower: float
    ci_upper: float

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-safe dict (NaN as ``None``)."""
        return {k: json_safe(v) for k, v in self.__dict__.items()}


def json_safe(value: Any) -> Any:
    """Replace non-finite floats by None (JSON null), recursively.

    Parameters
    ----------
    value : Any
        A number, string, list, tuple or mapping.

    Returns
    -------
    Any
        The same structure with NaN and ±inf replaced by None.

    Examples
    --------
    >>> json_safe({"a": float("nan"), "b": [1.0, float("inf")]})
    {'a': None, 'b': [1.0, None]}
    """
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def summarize(
    rows: Iterable[MetricRow],
    *,
    penalised: Iterable[tuple[str, str, str]] = (),
    n_resamples: int = 1000,
    seed: int = 0,
) -> list[MetricSummary]:
    """Summarise a tidy table per (region, metric).

    Parameters
    ----------
    rows : iterable of MetricRow
        The table.
    penalised : iterable of tuple
        ``(case, region, metric)`` triples whose value is a penalty.
    n_resamples : int, optional
        Bootstrap resamples for the interval of the mean.
    seed : int, optional
        Bootstrap seed (the same for every group, so reruns agree).

    Returns
    -------
    list of MetricSummary
        In order of first appearance of each (region, metric).

    Examples
    --------
    >>> rows = [MetricRow("a", "WT", "dice", 0.5), MetricRow("b", "WT", "dice", 1.0),
    ...         MetricRow("c", "WT", "dice", float("nan"))]
    >>> s = summarize(rows)[0]
    >>> s.n, s.n_nan, s.mean, s.median
    (3, 1, 0.75, 0.75)
    """
    groups: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for r in rows:
        groups.setdefault((r.region, r.metric), []).append((r.case, r.value))
    pen = set(penalised)
    out = []
    for (region, metric), items in groups.items():
        vals = np.array([v for _, v in items], dtype=np.float64)
        finite = vals[np.isfinite(vals)]
        n_pen = sum(1 for c, _ in items if (c, region, metric) in pen)
        if finite.size:
            q1, med, q3 = (float(v) for v in np.quantile(finite, [0.25, 0.5, 0.75]))
            mean = float(finite.mean())
            std = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
            lo, hi = bootstrap_mean_ci(finite, n_resamples=n_resamples, seed=seed)
            mn, mx = float(finite.min()), float(finite.max())
        else:
            q1 = med = q3 = mean = std = lo = hi = mn = mx = math.nan
        out.append(
            MetricSummary(
                region=region,
                metric=metric,
                n=len(items),
                n_nan=int(np.isnan(vals).sum()),
                n_infinite=int(np.isinf(vals).sum()),
                n_penalised=n_pen,
                mean=mean,
                median=med,
                std=std,
                q1=q1,
                q3=q3,
                minimum=mn,
                maximum=mx,
                ci_lower=lo,
                ci_upper=hi,
            )
        )
    return out


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented, strictly valid JSON (non-finite floats become null), atomically.

    Parameters
    ----------
    path : path-like
        Destination.
    data : Any
        JSON-able structure.
    """
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
