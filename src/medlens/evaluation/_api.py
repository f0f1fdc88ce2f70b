"""One function per ``medlens evaluate`` subcommand (the CLI only parses options)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import MedlensError
from medlens.evaluation._image_eval import IMAGE_PRESETS, ImageEvaluator
from medlens.evaluation._pairing import list_cases, pair_cases
from medlens.evaluation._ranking import Ranking, rank_methods, ranking_table
from medlens.evaluation._runner import (
    CaseResult,
    CaseTask,
    EvaluationResult,
    finish,
    run_cases,
)
from medlens.evaluation._segmentation_eval import (
    SegmentationEvaluator,
    SegmentationSpec,
    load_labels_spec,
    segmentation_preset,
)
from medlens.evaluation._table import (
    MetricRow,
    MetricSummary,
    ResultsError,
    atomic_write_text,
    read_metrics_csv,
    summarize,
    write_json,
)

__all__ = [
    "evaluate_classification",
    "evaluate_images",
    "evaluate_registration",
    "evaluate_segmentation",
    "rank_results",
]


def evaluate_segmentation(
    reference_dir: str | os.PathLike[str],
    prediction_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    preset: str | None = None,
    labels: str | os.PathLike[str] | SegmentationSpec | None = None,
    jobs: int = 1,
    reference_suffix: str = "",
    prediction_suffix: str = "",
    resume: bool = True,
    progress: bool = True,
    report: bool = True,
    seed: int = 0,
) -> list[MetricSummary]:
    """Evaluate a folder of predicted label maps against a folder of references.

    Files are paired by case id (file name without extension and optional
    suffix). A reference without prediction is scored as an empty prediction;
    a prediction on another grid is not resampled but scored as empty and
    reported; predictions without reference are listed and ignored. Writes
    ``OUT/metrics.csv``, ``OUT/summary.json``, ``OUT/report.html`` and the
    per-case files under ``OUT/cases/`` that let an interrupted run resume.

    Parameters
    ----------
    reference_dir, prediction_dir : path-like
        Folders of label maps (NIfTI, NRRD, MHA ...).
    out_dir : path-like
        Output folder.
    preset : str, optional
        ``kits21``, ``brats2023``, ``isles22``, ``fets2021`` or ``generic``.
    labels : path-like or SegmentationSpec, optional
        A labels file (see :func:`load_labels_spec`) instead of a preset.
    jobs : int, optional
        Worker processes.
    reference_suffix, prediction_suffix : str, optional
        Endings stripped from file names when pairing (e.g. ``-seg``).
    resume : bool, optional
        Reuse finished cases of an earlier run with the same settings.
    progress : bool, optional
        Show a progress bar.
    report : bool, optional
        Write ``report.html``.
    seed : int, optional
        Bootstrap seed of the summary's confidence intervals.

    Returns
    -------
    list of MetricSummary
        Per region and metric.

    Raises
    ------
    MedlensError
        For a bad preset, labels file or folder.
    """
    if (preset is None) == (labels is None):
        raise MedlensError("give exactly one of a preset or a labels file")
    if preset is not None:
        spec = segmentation_preset(preset)
    elif isinstance(labels, SegmentationSpec):
        spec = labels
    else:
        assert labels is not None
        spec = load_labels_spec(labels)
    pairing = pair_cases(
        reference_dir,
        prediction_dir,
        reference_suffix=reference_suffix,
        prediction_suffix=prediction_suffix,
    )
    tasks = [
        CaseTask(p.case, (("reference", p.reference), ("prediction", p.prediction)))
        for p in pairing.pairs
    ]
    evaluator = SegmentationEvaluator(spec, threads=1 if jobs > 1 else None)
    result = run_cases(evaluator, tasks, out_dir, jobs=jobs, progress=progress, resume=resume)
    return finish(
        result,
        out_dir,
        task="segmentation",
        preset=spec.name,
        unmatched_predictions=pairing.unmatched_predictions,
        settings=spec.settings(),
        seed=seed,
        report=report,
    )


def evaluate_images(
    reference_dir: str | os.PathLike[str],
    prediction_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    preset: str,
    mask_dir: str | os.PathLike[str] | None = None,
    crop: bool = True,
    jobs: int = 1,
    reference_suffix: str = "",
    prediction_suffix: str = "",
    resume: bool = True,
    progress: bool = True,
    report: bool = True,
    seed: int = 0,
) -> list[MetricSummary]:
    """Evaluate reconstructions or synthetic images with a challenge convention.

    Parameters
    ----------
    reference_dir, prediction_dir : path-like
        Folders of reference and predicted images (``.h5`` fastMRI files,
        ``.mat`` CMRxRecon files, or NIfTI/MHA/NRRD).
    out_dir : path-like
        Output folder.
    preset : str
        ``fastmri``, ``synthrad2023`` or ``cmrxrecon``.
    mask_dir : path-like, optional
        Body masks by case id (required for ``synthrad2023``).
    crop : bool, optional
        Apply the convention's centre crop.
    jobs, reference_suffix, prediction_suffix, resume, progress, report, seed
        As in :func:`evaluate_segmentation`.

    Returns
    -------
    list of MetricSummary
        Per metric (region ``image``, or ``body`` for SynthRAD2023).
    """
    if preset not in IMAGE_PRESETS:
        raise MedlensError(
            f"unknown image preset {preset!r}; choose from {', '.join(IMAGE_PRESETS)}"
        )
    if preset == "synthrad2023" and mask_dir is None:
        raise MedlensError("the synthrad2023 preset scores inside the body mask: pass --mask DIR")
    pairing = pair_cases(
        reference_dir,
        prediction_dir,
        reference_suffix=reference_suffix,
        prediction_suffix=prediction_suffix,
    )
    masks = list_cases(mask_dir) if mask_dir is not None else {}
    tasks = []
    for p in pairing.pairs:
        files: list[tuple[str, Path | None]] = [
            ("reference", p.reference),
            ("prediction", p.prediction),
        ]
        if mask_dir is not None:
            if p.case not in masks:
                raise MedlensError(f"no mask for case {p.case!r} in {mask_dir}")
            files.append(("mask", masks[p.case]))
        tasks.append(CaseTask(p.case, tuple(files)))
    evaluator = ImageEvaluator(preset, crop=crop)
    result = run_cases(evaluator, tasks, out_dir, jobs=jobs, progress=progress, resume=resume)
    return finish(
        result,
        out_dir,
        task="image",
        preset=preset,
        unmatched_predictions=pairing.unmatched_predictions,
        settings=evaluator.settings(),
        seed=seed,
        report=report,
    )


# --------------------------------------------------------------------------- classification

#: Required and optional columns of the ``--scores`` CSV.
SCORES_COLUMNS = ("case", "label", "score")


def _read_scores(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    if not path.is_file():
        raise ResultsError(f"no scores file at {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    missing = [c for c in ("label", "score") if c not in header]
    if missing:
        raise ResultsError(
            f"{path}: missing column(s) {missing}; need label, score (and optionally case, "
            "patient and group columns)"
        )
    return rows, header


def evaluate_classification(
    scores_csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
    target_sensitivity: float | None = None,
    groups: Sequence[str] = (),
    patient_column: str | None = None,
    aggregate: str = "mean",
    n_resamples: int = 1000,
    seed: int = 0,
    n_bins: int = 10,
    report: bool = True,
) -> dict[str, Any]:
    """Evaluate binary classification scores from a CSV file.

    The CSV has a header with at least ``label`` (0/1) and ``score`` (positive-class
    score; a probability in [0, 1] for Brier and ECE), optionally ``case``, a
    patient column (``patient_column``) to aggregate image scores to patients, and
    group columns (``groups``, e.g. ``sex``, ``age_group``) for per-group results
    and a disparity summary. Writes ``metrics.csv`` (columns
    ``group,metric,value,ci_lower,ci_upper``), ``groups.csv``, ``summary.json``
    and ``report.html``.

    Parameters
    ----------
    scores_csv : path-like
        The scores file.
    out_dir : path-like
        Output folder.
    threshold : float, optional
        Decision threshold (positive when ``score >= threshold``).
    target_sensitivity : float, optional
        Also report the operating point at this sensitivity.
    groups : sequence of str, optional
        Group columns.
    patient_column : str, optional
        Aggregate rows to patients first (label: any positive; score: ``aggregate``).
    aggregate : {"mean", "max"}, optional
        Patient-level aggregation.
    n_resamples : int, optional
        Stratified bootstrap resamples for the intervals.
    seed : int, optional
        Bootstrap seed.
    n_bins : int, optional
        Equal-width calibration bins for ECE.
    report : bool, optional
        Write ``report.html``.

    Returns
    -------
    dict
        The content of ``summary.json``.
    """
    from medlens import metrics as mm

    path = Path(scores_csv)
    recs, header = _read_scores(path)
    for g in groups:
        if g not in header:
            raise ResultsError(f"{path}: group column {g!r} not found; columns are {header}")
    if patient_column is not None and patient_column not in header:
        raise ResultsError(f"{path}: patient column {patient_column!r} not found")
    try:
        y = np.array([int(float(r["label"])) for r in recs])
        s = np.array([float(r["score"]) for r in recs])
    except ValueError as e:
        raise ResultsError(f"{path}: label/score must be numbers ({e})") from None
    group_values = {g: np.array([r[g] for r in recs]) for g in groups}
    level = "image"
    if patient_column is not None:
        ids = [r[patient_column] for r in recs]
        ps = mm.patient_scores(ids, s, reference=y, how=aggregate)  # type: ignore[arg-type]
        assert ps.reference is not None
        first: dict[str, int] = {}
        for i, pid in enumerate(ids):
            first.setdefault(str(pid), i)
        group_values = {
            g: np.array([v[first[p]] for p in ps.patients]) for g, v in group_values.items()
        }
        y, s = ps.reference.astype(int), ps.scores
        level = f"patient ({aggregate} of image scores)"
    probabilities = bool(s.min() >= 0 and s.max() <= 1)

    def metric_rows(yy: np.ndarray, ss: np.ndarray, group: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        yb = yy.astype(bool)

        def add(name: str, fn: Any) -> None:
            value = float(fn(yb, ss))
            lo = hi = math.nan
            if n_resamples > 0 and yb.any() and (~yb).any():
                ci = mm.bootstrap_ci(yb, ss, fn, n_resamples=n_resamples, seed=seed)
                lo, hi = ci.lower, ci.upper
            out.append(
                {"group": group, "metric": name, "value": value, "ci_lower": lo, "ci_upper": hi}
            )

        add("auroc", mm.auroc)
        add("auprc", mm.auprc)
        for key in ("sensitivity", "specificity", "ppv", "npv", "f1", "balanced_accuracy"):
            add(
                key,
                lambda a, b, k=key: getattr(mm.operating_point(a, b, threshold=threshold), k),
            )
        if target_sensitivity is not None and yb.any():
            add(
                f"specificity@sensitivity{target_sensitivity:g}",
                lambda a, b: mm.operating_point_at_sensitivity(
                    a, b, target_sensitivity=target_sensitivity
                ).specificity
                if a.any()
                else math.nan,
            )
        if probabilities:
            add("brier", mm.brier_score)
            add("ece", lambda a, b: mm.expected_calibration_error(a, b, n_bins=n_bins))
        return out

    table = metric_rows(y, s, "all")
    group_results: dict[str, Any] = {}
    for g, values in group_values.items():
        res = mm.group_results(y, s, values, threshold=threshold)
        for r in res:
            table.extend(metric_rows(y[values == r.group], s[values == r.group], f"{g}={r.group}"))
        disp = mm.disparity_summary(res)
        group_results[g] = {
            "groups": [
                {
                    "group": r.group,
                    "n": r.n,
                    "n_positive": r.n_positive,
                    "auroc": r.auroc,
                    **{k: getattr(r.point, k) for k in ("sensitivity", "specificity", "ppv")},
                }
                for r in res
            ],
            "disparity": [asdict(d) for d in disp],
        }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("group", "metric", "value", "ci_lower", "ci_upper"))
    for rec in table:
        numbers = (repr(float(rec[k])) for k in ("value", "ci_lower", "ci_upper"))
        w.writerow([rec["group"], rec["metric"], *numbers])
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    from medlens import __version__

    summary = {
        "medlens_version": __version__,
        "task": "classification",
        "level": level,
        "n": int(y.size),
        "n_positive": int(y.sum()),
        "threshold": threshold,
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "stratified": True},
        "calibration_bins": f"{n_bins} equal-width, right-closed (first bin [0, 1/{n_bins}])",
        "metrics": table,
        "groups": group_results,
    }
    write_json(out / "summary.json", summary)
    if report:
        from medlens.report import classification_plots, write_report

        write_report(
            out / "report.html",
            metric_table=table,
            extra_plots=classification_plots(y.astype(bool), s, n_bins=n_bins),
            title="medlens classification evaluation",
            status={"n_cases": int(y.size), "n_ok": int(y.size)},
            settings={
                "level": level,
                "threshold": threshold,
                "n": int(y.size),
                "positives": int(y.sum()),
                "bootstrap": f"{n_resamples} stratified, seed {seed}",
            },
        )
    return summary


# --------------------------------------------------------------------------- registration


def _read_landmarks(path: Path) -> np.ndarray:
    with path.open(newline="", encoding="utf-8") as f:
        records = [rec for rec in csv.reader(f) if rec and any(v.strip() for v in rec)]

    def numeric(rec: list[str]) -> bool:
        try:
            [float(v) for v in rec]
        except ValueError:
            return False
        return True

    if records and not numeric(records[0]):
        records = records[1:]  # a header line such as x,y,z
    try:
        pts = [[float(v) for v in rec] for rec in records]
    except ValueError as e:
        raise ResultsError(f"{path}: landmark coordinates must be numbers ({e})") from None
    arr = np.asarray(pts, dtype=float)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ResultsError(
            f"{path}: expected rows of 2 or 3 coordinates (mm), got shape {arr.shape}"
        )
    return arr


def _read_field(path: Path) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    import nibabel as nib

    img: Any = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float64)
    # NIfTI vector fields are (X, Y, Z, 1, 3) (intent VECTOR) or (X, Y, Z, 3)
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim != 4 or data.shape[3] != 3:
        raise ResultsError(f"{path}: expected a (X, Y, Z, 3) displacement field, got {data.shape}")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    affine = np.asarray(img.affine)
    direction = affine[:3, :3] / np.asarray(zooms)[None, :]
    return np.moveaxis(data, -1, 0), zooms, direction


def evaluate_registration(
    out_dir: str | os.PathLike[str],
    *,
    fixed_landmarks: str | os.PathLike[str] | None = None,
    warped_landmarks: str | os.PathLike[str] | None = None,
    fixed_labels: str | os.PathLike[str] | None = None,
    warped_labels: str | os.PathLike[str] | None = None,
    fields: str | os.PathLike[str] | None = None,
    masks: str | os.PathLike[str] | None = None,
    world_components: bool = True,
    report: bool = True,
    seed: int = 0,
) -> list[MetricSummary]:
    """Evaluate registrations per case from folders of landmarks, label maps and fields.

    Each folder holds one file per case id: landmarks as CSV (``x,y,z`` in
    world mm, one row per landmark, corresponding rows across folders),
    label maps (the fixed image's and the moving one warped into fixed space),
    displacement fields as NIfTI ``(X, Y, Z, 3)`` (or ``(X, Y, Z, 1, 3)``) in mm,
    and masks on the field's grid. Metrics (region ``all`` unless per label):
    ``tre_mean``, ``tre_median``, ``tre_p90``, ``tre_max`` (mm), ``dice`` per
    label (region ``label_<n>``), ``fraction_nonpositive_jacobian``,
    ``std_log_jacobian`` (std of log J over J > 0), ``learn2reg_sdlogj``
    (Learn2Reg's SDlogJ, std of log(J + 3) inside a 2-voxel border; fields with at
    least 5 voxels per axis), and inside the mask (region ``mask``)
    ``relative_volume_change``.

    Parameters
    ----------
    out_dir : path-like
        Output folder.
    fixed_landmarks, warped_landmarks : path-like, optional
        Landmark folders (both or neither).
    fixed_labels, warped_labels : path-like, optional
        Label-map folders (both or neither).
    fields : path-like, optional
        Displacement-field folder.
    masks : path-like, optional
        Mask folder for the volume change (needs ``fields``).
    world_components : bool, optional
        The field's vectors are in world (RAS) mm (ITK/ANTs convention
        converted to RAS) rather than along the array axes.
    report : bool, optional
        Write ``report.html``.
    seed : int, optional
        Bootstrap seed.

    Returns
    -------
    list of MetricSummary
        Per region and metric.
    """
    from medlens import metrics as mm

    if (fixed_landmarks is None) != (warped_landmarks is None):
        raise MedlensError("give both --fixed-landmarks and --warped-landmarks, or neither")
    if (fixed_labels is None) != (warped_labels is None):
        raise MedlensError("give both --fixed-labels and --warped-labels, or neither")
    if masks is not None and fields is None:
        raise MedlensError("--mask needs --field (the volume change comes from the field)")
    sources = {
        "fixed_landmarks": fixed_landmarks,
        "warped_landmarks": warped_landmarks,
        "fixed_labels": fixed_labels,
        "warped_labels": warped_labels,
        "fields": fields,
        "masks": masks,
    }
    listed = {k: list_cases(v) for k, v in sources.items() if v is not None}
    if not listed:
        raise MedlensError("nothing to evaluate: give landmarks, label maps or fields")
    cases = sorted(set.union(*(set(v) for v in listed.values())))
    results = []
    for case in cases:
        rows: list[tuple[str, str, float]] = []
        problems = []
        if "fixed_landmarks" in listed:
            a = listed["fixed_landmarks"].get(case)
            b = listed["warped_landmarks"].get(case)
            if a is None or b is None:
                problems.append("landmarks missing")
            else:
                pa, pb = _read_landmarks(a), _read_landmarks(b)
                if pa.shape != pb.shape:
                    raise ResultsError(
                        f"case {case}: {a.name} has {pa.shape[0]} landmarks of {pa.shape[1]} "
                        f"coordinates, {b.name} {pb.shape[0]} of {pb.shape[1]}"
                    )
                tre = mm.target_registration_error(pa, pb)
                rows += [
                    ("all", "tre_mean", float(tre.mean())),
                    ("all", "tre_median", float(np.median(tre))),
                    ("all", "tre_p90", float(np.percentile(tre, 90))),
                    ("all", "tre_max", float(tre.max())),
                ]
        if "fixed_labels" in listed:
            a = listed["fixed_labels"].get(case)
            b = listed["warped_labels"].get(case)
            if a is None or b is None:
                problems.append("label maps missing")
            else:
                from medlens.evaluation._pairing import grid_mismatch
                from medlens.io import read_image
                from medlens.metrics import _overlap

                fa, fb = read_image(a), read_image(b)
                why = grid_mismatch(fa, fb)
                if why is not None:
                    problems.append(f"warped labels on another grid ({why})")
                else:
                    la, lb = np.rint(fa.array).astype(int), np.rint(fb.array).astype(int)
                    for v in sorted(set(np.unique(la).tolist()) - {0}):
                        rows.append((f"label_{v}", "dice", float(_overlap.dice(la == v, lb == v))))
        if "fields" in listed:
            fpath = listed["fields"].get(case)
            if fpath is None:
                problems.append("field missing")
            else:
                u, spacing, direction = _read_field(fpath)
                rdir = direction if world_components else None
                js = mm.jacobian_statistics(u, spacing=spacing, direction=rdir)
                rows += [
                    ("all", "fraction_nonpositive_jacobian", js.fraction_nonpositive),
                    ("all", "std_log_jacobian", js.std_log_jacobian),
                ]
                if min(u.shape[1:]) >= 5:
                    sdlogj = mm.learn2reg_sdlogj(u, spacing=spacing, direction=rdir)
                    rows.append(("all", "learn2reg_sdlogj", sdlogj))
                mpath = listed.get("masks", {}).get(case)
                if mpath is not None:
                    import nibabel as nib

                    mimg: Any = nib.load(str(mpath))
                    m = np.asarray(mimg.dataobj) > 0
                    vc = mm.volume_change(u, m, spacing=spacing, direction=rdir)
                    rows.append(("mask", "relative_volume_change", vc.relative_change))
        status = "ok" if not problems else "missing_prediction"
        results.append(CaseResult(case, status, tuple(rows), (), "; ".join(problems)))
    result = EvaluationResult(results=tuple(results))
    return finish(
        result,
        out_dir,
        task="registration",
        preset="registration",
        settings={
            "landmarks": "world mm; TRE = Euclidean distance per pair",
            "jacobian": "det(I + grad u), numpy.gradient with spacing; std of log J over J > 0",
            "learn2reg_sdlogj": (
                "Learn2Reg SDlogJ: std of log(clip(J + 3, 1e-9, 1e9)), 2-voxel border dropped"
            ),
            "field vectors": "world (RAS) mm" if world_components else "array-axis mm",
        },
        seed=seed,
        report=report,
    )


# --------------------------------------------------------------------------- ranking


def rank_results(
    result_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    penalties: dict[str, float] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    report: bool = True,
) -> Ranking:
    """Rank the methods whose ``metrics.csv`` files are in ``result_dirs``.

    Writes ``ranking.csv``, ``wilcoxon.csv``, ``ranking.json`` and ``report.html``.

    Parameters
    ----------
    result_dirs : sequence of path-like
        One evaluation output folder per method.
    out_dir : path-like
        Output folder.
    names : sequence of str, optional
        Method names (default: the folder names).
    metrics, regions : sequence of str, optional
        Restrict the tasks.
    penalties : dict, optional
        Missing-value fill per metric for aggregate-then-rank.
    n_resamples, seed : int, optional
        Bootstrap of the rank stability.
    report : bool, optional
        Write ``report.html``.

    Returns
    -------
    Ranking
        The ranking.
    """
    from medlens.report import RankingSection, write_report

    dirs = [Path(d) for d in result_dirs]
    labels = list(names) if names else [d.resolve().name for d in dirs]
    if len(set(labels)) != len(labels):
        raise MedlensError(f"method names must be distinct, got {labels}; pass --name")
    results = {}
    for label, d in zip(labels, dirs, strict=True):
        rows = read_metrics_csv(d / "metrics.csv" if d.is_dir() else d)
        rows = [
            r
            for r in rows
            if (metrics is None or r.metric in metrics) and (regions is None or r.region in regions)
        ]
        results[label] = rows
    ranking = rank_methods(results, penalties=penalties, n_resamples=n_resamples, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import io

    table = ranking_table(ranking)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    atomic_write_text(out / "ranking.csv", buf.getvalue())
    buf = io.StringIO()
    tests = [asdict(t) for t in ranking.wilcoxon]
    w = csv.DictWriter(buf, fieldnames=list(tests[0]) if tests else ["region"], lineterminator="\n")
    w.writeheader()
    w.writerows(tests)
    atomic_write_text(out / "wilcoxon.csv", buf.getvalue())
    write_json(
        out / "ranking.json",
        {
            "methods": table,
            "tasks": [list(t) for t in ranking.tasks],
            "n_cases": len(ranking.cases),
            "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": 0.95},
            "missing_values": "worst rank (rank-then-aggregate); worst observed value or "
            "penalty (aggregate-then-rank)",
            "wilcoxon": tests,
        },
    )
    combined = [
        MetricRow(r.case, f"{method} · {r.region}", r.metric, r.value)
        for method, rows in results.items()
        for r in rows
    ]
    comparison: dict[str, dict[str, dict[str, list[float]]]] = {}
    for method, rows in results.items():
        for r in rows:
            comparison.setdefault(r.region, {}).setdefault(r.metric, {}).setdefault(
                method, []
            ).append(r.value)
    if report:
        section = RankingSection(
            rows=table,
            rank_samples={k: v.tolist() for k, v in ranking.rank_samples.items()},
            wilcoxon=tests,
            note=(
                f"{len(ranking.cases)} cases × {len(ranking.tasks)} (region, metric) tasks. "
                "Rank-then-aggregate: per case and task, methods ranked (ties share the "
                "lowest rank; missing = last); score = mean rank. Rank intervals from "
                f"{n_resamples} case resamples (seed {seed})."
            ),
        )
        write_report(
            out / "report.html",
            rows=combined,
            summaries=summarize(combined, n_resamples=200, seed=seed),
            title="medlens ranking",
            status={"n_cases": len(ranking.cases), "n_ok": len(ranking.cases)},
            settings={"methods": ", ".join(labels)},
            ranking=section,
            comparison=comparison,
        )
    return ranking
