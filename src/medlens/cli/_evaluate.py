"""``medlens evaluate``: segmentation, image, classification, registration and ranking.

Each command parses its options and calls one function of :mod:`medlens.evaluation`;
heavy modules load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from medlens.cli._common import console
from medlens.errors import MedlensError

__all__ = ["app"]

app = typer.Typer(
    name="evaluate",
    help="Score predictions with challenge-grade metrics; write metrics.csv, summary.json "
    "and a self-contained report.html.",
    no_args_is_help=True,
)


def _print_summary(out: Path, summaries: list[Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{out}", title_justify="left")
    for col in ("region", "metric", "n", "mean", "95% CI", "median", "NaN", "penalised"):
        table.add_column(col)
    for s in summaries:
        table.add_row(
            s.region,
            s.metric,
            str(s.n),
            f"{s.mean:.4g}",
            f"{s.ci_lower:.4g} – {s.ci_upper:.4g}",
            f"{s.median:.4g}",
            str(s.n_nan),
            str(s.n_penalised),
        )
    console.print(table)


@app.command("segmentation")
def segmentation(
    reference: Path = typer.Option(..., "--reference", help="Folder of reference label maps."),
    prediction: Path = typer.Option(..., "--prediction", help="Folder of predicted label maps."),
    out: Path = typer.Option(..., "--out", help="Output folder (created; resumes if it exists)."),
    preset: str = typer.Option(
        None, "--preset", help="kits21, brats2023, isles22, fets2021 or generic."
    ),
    labels: Path = typer.Option(
        None, "--labels", help="JSON labels file (regions, metrics) instead of --preset."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes."),
    reference_suffix: str = typer.Option(
        "", "--reference-suffix", help="Ending stripped from reference names, e.g. -seg."
    ),
    prediction_suffix: str = typer.Option(
        "", "--prediction-suffix", help="Ending stripped from prediction names."
    ),
    no_resume: bool = typer.Option(False, "--no-resume", help="Recompute every case."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
) -> None:
    """Evaluate predicted label maps against references, pairing files by case id.

    Unmatched and mismatched-geometry cases are reported; a missing or mismatched
    prediction is scored as an empty prediction (never resampled, never dropped).
    """
    from medlens.evaluation import evaluate_segmentation

    if (preset is None) == (labels is None):
        raise MedlensError("give exactly one of --preset NAME or --labels FILE")
    summaries = evaluate_segmentation(
        reference,
        prediction,
        out,
        preset=preset,
        labels=labels,
        jobs=jobs,
        reference_suffix=reference_suffix,
        prediction_suffix=prediction_suffix,
        resume=not no_resume,
        progress=not quiet,
    )
    if not quiet:
        _print_summary(out, summaries)


@app.command("image")
def image(
    reference: Path = typer.Option(..., "--reference", help="Folder of reference images."),
    prediction: Path = typer.Option(..., "--prediction", help="Folder of predicted images."),
    preset: str = typer.Option(..., "--preset", help="fastmri, synthrad2023 or cmrxrecon."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    mask: Path = typer.Option(None, "--mask", help="Folder of body masks (synthrad2023)."),
    no_crop: bool = typer.Option(
        False, "--no-crop", help="Skip the convention's centre crop (inputs already cropped)."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes."),
    reference_suffix: str = typer.Option(
        "", "--reference-suffix", help="Ending stripped from reference names."
    ),
    prediction_suffix: str = typer.Option(
        "", "--prediction-suffix", help="Ending stripped from prediction names."
    ),
    no_resume: bool = typer.Option(False, "--no-resume", help="Recompute every case."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
) -> None:
    """Evaluate reconstructions or synthetic images (NMSE, PSNR, SSIM, MAE) by convention."""
    from medlens.evaluation import evaluate_images

    summaries = evaluate_images(
        reference,
        prediction,
        out,
        preset=preset,
        mask_dir=mask,
        crop=not no_crop,
        jobs=jobs,
        reference_suffix=reference_suffix,
        prediction_suffix=prediction_suffix,
        resume=not no_resume,
        progress=not quiet,
    )
    if not quiet:
        _print_summary(out, summaries)


@app.command("classification")
def classification(
    scores: Path = typer.Option(
        ..., "--scores", help="CSV with columns label (0/1), score, and optional case, "
        "patient and group columns."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    threshold: float = typer.Option(0.5, "--threshold", help="Positive when score >= threshold."),
    target_sensitivity: float = typer.Option(
        None, "--target-sensitivity", help="Also report specificity at this sensitivity."
    ),
    group: list[str] = typer.Option(
        [], "--group", help="Group column for per-group results (repeatable), e.g. sex."
    ),
    patient: str = typer.Option(
        None, "--patient-column", help="Aggregate image scores to this patient column first."
    ),
    aggregate: str = typer.Option(
        "mean", "--aggregate", help="mean or max (with --patient-column)."
    ),
    n_resamples: int = typer.Option(1000, "--n-resamples", min=0, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
) -> None:
    """Evaluate binary classification scores with stratified bootstrap intervals."""
    from medlens.evaluation import evaluate_classification

    if aggregate not in ("mean", "max"):
        raise MedlensError(f"--aggregate must be mean or max, got {aggregate!r}")
    summary = evaluate_classification(
        scores,
        out,
        threshold=threshold,
        target_sensitivity=target_sensitivity,
        groups=group,
        patient_column=patient,
        aggregate=aggregate,
        n_resamples=n_resamples,
        seed=seed,
    )
    for m in summary["metrics"]:
        if m["group"] == "all":
            console.print(
                f"{m['metric']:>28}  {m['value']:.4f}  [{m['ci_lower']:.4f}, {m['ci_upper']:.4f}]"
            )


@app.command("registration")
def registration(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    fixed_landmarks: Path = typer.Option(
        None, "--fixed-landmarks", help="Folder of CSV landmarks (x,y,z mm) per case."
    ),
    warped_landmarks: Path = typer.Option(
        None, "--warped-landmarks", help="Folder of the corresponding registered landmarks."
    ),
    fixed_labels: Path = typer.Option(None, "--fixed-labels", help="Folder of fixed label maps."),
    warped_labels: Path = typer.Option(
        None, "--warped-labels", help="Folder of moving label maps warped to the fixed grid."
    ),
    field: Path = typer.Option(
        None, "--field", help="Folder of displacement fields (NIfTI, X,Y,Z,3 in mm)."
    ),
    mask: Path = typer.Option(None, "--mask", help="Folder of masks for the volume change."),
    array_components: bool = typer.Option(
        False, "--array-components", help="Field vectors are along array axes, not world RAS."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary table."),
) -> None:
    """Evaluate registrations: TRE, Dice of warped labels, Jacobian folding, volume change."""
    from medlens.evaluation import evaluate_registration

    summaries = evaluate_registration(
        out,
        fixed_landmarks=fixed_landmarks,
        warped_landmarks=warped_landmarks,
        fixed_labels=fixed_labels,
        warped_labels=warped_labels,
        fields=field,
        masks=mask,
        world_components=not array_components,
    )
    if not quiet:
        _print_summary(out, summaries)


@app.command("rank")
def rank(
    result_dirs: list[Path] = typer.Argument(
        ..., help="Evaluation output folders, one per method."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    name: list[str] = typer.Option([], "--name", help="Method names in order (default: folders)."),
    metric: list[str] = typer.Option([], "--metric", help="Only these metrics (repeatable)."),
    region: list[str] = typer.Option([], "--region", help="Only these regions (repeatable)."),
    penalty: list[str] = typer.Option(
        [], "--penalty", help="METRIC=VALUE fill for missing values, e.g. hd95=374."
    ),
    n_resamples: int = typer.Option(1000, "--n-resamples", min=0, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
) -> None:
    """Rank methods: rank-then-aggregate, aggregate-then-rank, rank intervals, Wilcoxon tests."""
    from rich.table import Table

    from medlens.evaluation import rank_results

    penalties = {}
    for p in penalty:
        key, sep, value = p.partition("=")
        try:
            penalties[key] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise MedlensError(f"--penalty must be METRIC=VALUE, got {p!r}")
    ranking = rank_results(
        result_dirs,
        out,
        names=name or None,
        metrics=metric or None,
        regions=region or None,
        penalties=penalties,
        n_resamples=n_resamples,
        seed=seed,
    )
    table = Table(title=f"ranking ({len(ranking.cases)} cases)", title_justify="left")
    for col in ("rank", "method", "mean rank", "95% rank interval", "P(first)", "agg. rank"):
        table.add_column(col)
    for m in ranking.methods:
        table.add_row(
            str(m.rank),
            m.method,
            f"{m.score:.3f}",
            f"{m.rank_lower:g}–{m.rank_upper:g}",
            f"{m.p_first:.3f}",
            str(m.aggregate_rank),
        )
    console.print(table)
