"""Run an evaluation over cases: parallel processes, progress bar, resumable per-case results.

An *evaluator* is a picklable object with ``name``, ``fingerprint()`` and
``evaluate(task) -> CaseResult``. :func:`run_cases` evaluates every task (in a
``ProcessPoolExecutor`` when ``jobs > 1``), writes each case's result
atomically to ``OUT/cases/<case>.json`` as soon as it finishes, and on a
rerun with the same evaluator (same fingerprint) reuses the finished cases
instead of recomputing them. :func:`finish` then writes ``metrics.csv``,
``summary.json`` and ``report.html``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medlens.evaluation._pairing import safe_name
from medlens.evaluation._table import (
    MetricRow,
    MetricSummary,
    atomic_write_text,
    summarize,
    write_json,
    write_metrics_csv,
)

__all__ = [
    "CaseResult",
    "CaseTask",
    "EvaluationResult",
    "Evaluator",
    "finish",
    "run_cases",
]

#: Case statuses. ``ok`` cases were scored as given; ``missing_prediction`` and
#: ``geometry_mismatch`` cases were scored with the preset's failure policy
#: (empty prediction / NaN); ``error`` cases could not be scored at all.
STATUSES = ("ok", "missing_prediction", "geometry_mismatch", "unreadable_prediction", "error")


@dataclass(frozen=True)
class CaseTask:
    """The files of one case.

    Attributes
    ----------
    case : str
        Case id.
    files : tuple
        ``(name, path or None)`` pairs, e.g. ``(("reference", p1), ("prediction", p2))``.
    """

    case: str
    files: tuple[tuple[str, Path | None], ...]

    def get(self, name: str) -> Path | None:
        """Return the path stored under ``name`` (None if absent or missing)."""
        for key, value in self.files:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case.

    Attributes
    ----------
    case : str
        Case id.
    status : str
        One of ``ok``, ``missing_prediction``, ``geometry_mismatch``,
        ``unreadable_prediction``, ``error``.
    rows : tuple
        ``(region, metric, value)`` triples.
    penalised : tuple
        ``(region, metric)`` pairs whose value is a penalty rather than a measurement.
    message : str
        Why the status is not ``ok`` (no patient identifiers; file names only).
    """

    case: str
    status: str
    rows: tuple[tuple[str, str, float], ...] = ()
    penalised: tuple[tuple[str, str], ...] = ()
    message: str = ""

    def to_json(self, fingerprint: str) -> dict[str, Any]:
        """Serialise (with the evaluator fingerprint) for the per-case file."""
        return {
            "case": self.case,
            "status": self.status,
            "message": self.message,
            "fingerprint": fingerprint,
            "rows": [[r, m, repr(float(v))] for r, m, v in self.rows],
            "penalised": [list(p) for p in self.penalised],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        """Inverse of :meth:`to_json`."""
        return cls(
            case=str(data["case"]),
            status=str(data["status"]),
            rows=tuple((str(r), str(m), float(v)) for r, m, v in data["rows"]),
            penalised=tuple((str(r), str(m)) for r, m in data["penalised"]),
            message=str(data.get("message", "")),
        )


class Evaluator(Protocol):
    """What :func:`run_cases` needs from an evaluator (it must be picklable)."""

    @property
    def name(self) -> str:
        """Name shown on the progress bar."""
        ...

    def fingerprint(self) -> str:
        """Return a string that changes whenever results would change."""
        ...

    def evaluate(self, task: CaseTask) -> CaseResult:
        """Score one case."""
        ...


def _evaluate_safely(evaluator: Evaluator, task: CaseTask) -> CaseResult:
    try:
        return evaluator.evaluate(task)
    except Exception as e:  # one bad case must not stop the run; it is reported
        return CaseResult(case=task.case, status="error", message=f"{type(e).__name__}: {e}")


def _case_file(out_dir: Path, case: str) -> Path:
    return out_dir / "cases" / f"{safe_name(case)}.json"


def _load_done(out_dir: Path, tasks: Sequence[CaseTask], fingerprint: str) -> dict[str, CaseResult]:
    done: dict[str, CaseResult] = {}
    for t in tasks:
        p = _case_file(out_dir, t.case)
        if not p.is_file():
            continue
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a torn or foreign file is recomputed
        if data.get("fingerprint") != fingerprint or data.get("case") != t.case:
            continue
        if data.get("status") == "error":
            continue  # retry failures
        done[t.case] = CaseResult.from_json(data)
    return done


@dataclass(frozen=True)
class EvaluationResult:
    """Everything an evaluation produced.

    Attributes
    ----------
    results : tuple of CaseResult
        Per case, in task order.
    reused : int
        Cases taken from an earlier run's output.
    """

    results: tuple[CaseResult, ...]
    reused: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> list[MetricRow]:
        """All rows as a tidy table."""
        return [MetricRow(r.case, reg, m, v) for r in self.results for reg, m, v in r.rows]

    @property
    def penalised(self) -> set[tuple[str, str, str]]:
        """``(case, region, metric)`` triples holding penalties."""
        return {(r.case, reg, m) for r in self.results for reg, m in r.penalised}


def run_cases(
    evaluator: Evaluator,
    tasks: Sequence[CaseTask],
    out_dir: str | os.PathLike[str],
    *,
    jobs: int = 1,
    progress: bool = True,
    resume: bool = True,
    on_result: Callable[[CaseResult], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``tasks``, persisting each case's result as soon as it is ready.

    Parameters
    ----------
    evaluator : Evaluator
        What to compute per case.
    tasks : sequence of CaseTask
        The cases.
    out_dir : path-like
        Output folder; per-case results go to ``out_dir/cases/``.
    jobs : int, optional
        Worker processes (1 = in this process).
    progress : bool, optional
        Show a rich progress bar on stderr.
    resume : bool, optional
        Reuse per-case results of an earlier run with the same fingerprint.
    on_result : callable, optional
        Called with each new result (after it is written).

    Returns
    -------
    EvaluationResult
        Results in task order.
    """
    out = Path(out_dir)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    fp = evaluator.fingerprint()
    done = _load_done(out, tasks, fp) if resume else {}
    todo = [t for t in tasks if t.case not in done]
    results: dict[str, CaseResult] = dict(done)

    def record(res: CaseResult) -> None:
        atomic_write_text(_case_file(out, res.case), json.dumps(res.to_json(fp)) + "\n")
        results[res.case] = res
        if on_result is not None:
            on_result(res)

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from medlens.cli._common import console_err

    bar = Progress(
        TextColumn(f"[bold]{evaluator.name}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console_err,
        disable=not progress,
        transient=False,
    )
    with bar:
        task_id = bar.add_task("cases", total=len(tasks), completed=len(done))
        if jobs <= 1 or len(todo) <= 1:
            for t in todo:
                record(_evaluate_safely(evaluator, t))
                bar.advance(task_id)
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx)
            try:
                pending: set[Future[CaseResult]] = {
                    pool.submit(_evaluate_safely, evaluator, t) for t in todo
                }
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        record(fut.result())
                        bar.advance(task_id)
            except BaseException:
                # interrupted: keep what is written, drop queued cases, do not wait for them
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    ordered = tuple(results[t.case] for t in tasks)
    return EvaluationResult(results=ordered, reused=len(done))


def status_report(
    result: EvaluationResult, *, unmatched_predictions: Iterable[str] = ()
) -> dict[str, Any]:
    """Per-status case lists for ``summary.json`` and the report.

    Parameters
    ----------
    result : EvaluationResult
        The run.
    unmatched_predictions : iterable of str
        Prediction files without a reference.

    Returns
    -------
    dict
        Keys ``n_cases``, ``n_ok``, ``problems`` (list of ``{case, status, message}``)
        and ``unmatched_predictions``.
    """
    problems = [
        {"case": r.case, "status": r.status, "message": r.message}
        for r in result.results
        if r.status != "ok"
    ]
    return {
        "n_cases": len(result.results),
        "n_ok": sum(1 for r in result.results if r.status == "ok"),
        "problems": problems,
        "unmatched_predictions": list(unmatched_predictions),
    }


def nested_summary(summaries: Sequence[MetricSummary]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{region: {metric: stats}}`` from a flat list of summaries."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for s in summaries:
        d = s.as_dict()
        d.pop("region")
        d.pop("metric")
        out.setdefault(s.region, {})[s.metric] = d
    return out


def finish(
    result: EvaluationResult,
    out_dir: str | os.PathLike[str],
    *,
    task: str,
    preset: str,
    unmatched_predictions: Iterable[str] = (),
    settings: dict[str, Any] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    report: bool = True,
) -> list[MetricSummary]:
    """Write ``metrics.csv``, ``summary.json`` and (optionally) ``report.html``.

    Parameters
    ----------
    result : EvaluationResult
        From :func:`run_cases`.
    out_dir : path-like
        Output folder.
    task : str
        ``segmentation``, ``image``, ``registration`` ...
    preset : str
        Preset (or labels file) name.
    unmatched_predictions : iterable of str
        Reported in the summary.
    settings : dict, optional
        Definitions used (method, tolerances, penalties), recorded in the summary.
    n_resamples, seed : int, optional
        Bootstrap of the mean's 95 % interval.
    report : bool, optional
        Also render ``report.html``.

    Returns
    -------
    list of MetricSummary
        The per-(region, metric) summaries.
    """
    from medlens import __version__

    out = Path(out_dir)
    rows = result.rows
    write_metrics_csv(out / "metrics.csv", rows)
    summaries = summarize(rows, penalised=result.penalised, n_resamples=n_resamples, seed=seed)
    status = status_report(result, unmatched_predictions=unmatched_predictions)
    data = {
        "medlens_version": __version__,
        "task": task,
        "preset": preset,
        "settings": settings or {},
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": 0.95},
        **status,
        "summary": nested_summary(summaries),
    }
    write_json(out / "summary.json", data)
    if report:
        from medlens.report import write_report

        write_report(
            out / "report.html",
            rows=rows,
            summaries=summaries,
            title=f"medlens {task} evaluation — {preset}",
            status=status,
            settings=settings or {},
            penalised=result.penalised,
        )
    problems = status["problems"]
    if problems:
        print(f"{len(problems)} of {status['n_cases']} cases had problems:", file=sys.stderr)
        for p in problems[:20]:
            print(f"  {p['case']}: {p['status']} — {p['message']}", file=sys.stderr)
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more", file=sys.stderr)
        print(f"  (all listed in {out / 'summary.json'})", file=sys.stderr)
    unmatched = status["unmatched_predictions"]
    if unmatched:
        shown = ", ".join(unmatched[:10]) + (" ..." if len(unmatched) > 10 else "")
        print(f"{len(unmatched)} prediction(s) without a reference, ignored: {shown}",
              file=sys.stderr)  # fmt: skip
    return summaries
