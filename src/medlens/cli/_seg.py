"""``medlens seg``: plan | preprocess | train | predict | ensemble | stats | evaluate.

A work folder ties the steps together::

    medlens seg plan DATASET WORK --time-budget 20m --explain   # WORK/plans.json, fingerprint.json
    medlens seg preprocess DATASET WORK                          # WORK/preprocessed/<config>/
    medlens seg train WORK --fold all                            # WORK/model/fold_all/
    medlens seg predict WORK/model INPUT OUTPUT
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from medlens.cli._common import console
from medlens.cli._demo import parse_duration
from medlens.errors import MedlensError

__all__ = ["app", "parse_size"]

app = typer.Typer(
    help="Self-configuring segmentation: plan, preprocess, train, predict, ensemble, stats, "
    "evaluate.",
    no_args_is_help=True,
)


def parse_size(text: str) -> float:
    """Gigabytes from ``"8GB"``, ``"512MB"``, ``"8"``.

    Examples
    --------
    >>> parse_size("8GB"), parse_size("512MB"), parse_size("2")
    (8.0, 0.5, 2.0)
    """
    t = text.strip().upper().replace(" ", "")
    for suf, mult in (
        ("GIB", 1.0),
        ("GB", 1.0),
        ("G", 1.0),
        ("MIB", 1 / 1024),
        ("MB", 1 / 1024),
        ("M", 1 / 1024),
    ):
        if t.endswith(suf):
            t, m = t[: -len(suf)], mult
            break
    else:
        m = 1.0
    try:
        return float(t) * m
    except ValueError as e:
        raise MedlensError(f"cannot read the size {text!r}; use e.g. 8GB or 512MB") from e


@app.command("plan")
def plan(
    dataset: Path = typer.Argument(..., help="Dataset folder (nnU-Net v2 raw or MSD layout)."),
    work: Path = typer.Argument(..., help="Work folder for fingerprint.json and plans.json."),
    time_budget: str | None = typer.Option(
        None, "--time-budget", help="Training wall time, e.g. 20m."
    ),
    memory_budget: str = typer.Option("8GB", "--memory-budget", help="Training memory, e.g. 8GB."),
    explain: bool = typer.Option(False, "--explain", help="Print why each value was chosen."),
    calibrate_speed: bool = typer.Option(
        True, "--calibrate/--no-calibrate", help="Measure this machine's speed."
    ),
    architecture: str = typer.Option("unet", "--architecture", help="unet or mednext."),
    workers: int | None = typer.Option(None, "--workers", help="Fingerprint processes."),
) -> None:
    """Fingerprint a dataset and plan 2D/3D configurations (plus a CPU-budget one)."""
    from medlens.segmentation import (
        Calibration,
        dataset_fingerprint,
        minimum_iterations,
        plan_experiment,
        read_dataset,
    )

    ds = read_dataset(dataset)
    fp = dataset_fingerprint(ds, workers=workers)
    work.mkdir(parents=True, exist_ok=True)
    fp.save(work / "fingerprint.json")
    kw: dict[str, Any] = {
        "time_budget_s": parse_duration(time_budget) if time_budget else None,
        "memory_budget_gb": parse_size(memory_budget),
        "architecture": architecture,
        "regions_class_order": ds.regions_class_order,
        # 300, or 2000 when the foreground is under 5% of the volume (from the fingerprint)
        "min_iterations": minimum_iterations(fp),
    }
    if calibrate_speed and time_budget is not None:
        from medlens.segmentation._calibrate import calibrate, plan_with_verification

        plans = plan_with_verification(fp, calibrate(), **kw)
    else:
        plans = plan_experiment(fp, calibration=Calibration.default(), **kw)
    plans.save(work / "plans.json")
    console.print(
        f"plans: {work / 'plans.json'} (default configuration {plans.default_configuration})"
    )
    if explain:
        for line in plans.explain:
            console.print(f"- {line}", highlight=False)


@app.command("preprocess")
def preprocess(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    work: Path = typer.Argument(..., help="Work folder holding plans.json."),
    configuration: str | None = typer.Option(
        None, "--configuration", "-c", help="Default: the plan's."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Processes (default: CPU count)."),
) -> None:
    """Crop, normalise and resample every training case into WORK/preprocessed/<config>/."""
    from medlens.segmentation import Plans, preprocess_dataset, read_dataset

    plans = Plans.load(work / "plans.json")
    folder = preprocess_dataset(
        read_dataset(dataset),
        plans,
        work / "preprocessed",
        configuration=configuration,
        workers=workers,
    )
    console.print(f"preprocessed: {folder}")


@app.command("train")
def train_cmd(
    work: Path = typer.Argument(..., help="Work folder (plans.json, preprocessed/)."),
    fold: str = typer.Option("all", "--fold", "-f", help="0..n_folds-1 or all."),
    configuration: str | None = typer.Option(
        None, "--configuration", "-c", help="Configuration (default: the plan's)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from checkpoint_latest.pt."),
    iterations: int | None = typer.Option(None, "--iterations", help="Override the plan."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd or adamw."),
    checkpoint_every: str = typer.Option("5m", "--checkpoint-every", help="Checkpoint interval."),
    time_limit: str | None = typer.Option(
        None, "--time-limit", help="Cut the schedule to this wall time."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Data-loading processes."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads."),
    ddp: int = typer.Option(
        0, "--ddp", help="Processes for DistributedDataParallel via torchrun (gloo)."
    ),
    seed: int = typer.Option(12345, "--seed", help="Base seed of sampling and augmentation."),
) -> None:
    """Train one fold; writes WORK/model/fold_<k>/ (checkpoints, log.csv)."""
    from medlens.segmentation import Plans

    plans = Plans.load(work / "plans.json")
    name = configuration or plans.default_configuration
    pre = work / "preprocessed" / name
    cfg: dict[str, Any] = {
        "fold": fold if fold == "all" else int(fold),
        "iterations": iterations,
        "optimizer": optimizer,
        "checkpoint_every_s": parse_duration(checkpoint_every),
        "time_limit_s": parse_duration(time_limit) if time_limit else None,
        "num_workers": workers,
        "threads": threads,
        "seed": seed,
    }
    if (work / "fingerprint.json").is_file():
        # nnU-Net's 0.33 of patches forced onto foreground, or all of them when the
        # foreground is a small share of the volume (as `medlens demo` decides it)
        from medlens.segmentation import DatasetFingerprint, foreground_oversampling

        fp = DatasetFingerprint.load(work / "fingerprint.json")
        cfg["oversample_foreground"] = foreground_oversampling(fp)
    if ddp > 1:
        from medlens.segmentation._ddp import ddp_command

        args = {
            "preprocessed": str(pre),
            "plans": str(work / "plans.json"),
            "out_dir": str(work / "model"),
            "configuration": name,
            "config": cfg,
            "resume": resume,
            "progress": True,
        }
        rc = subprocess.call(ddp_command(ddp, args), env={**os.environ, "OMP_NUM_THREADS": "1"})
        if rc != 0:
            raise MedlensError(f"torchrun exited with code {rc}")
        return
    from medlens.segmentation._train import TrainConfig, train

    res = train(
        pre, plans, work / "model", configuration=name, config=TrainConfig(**cfg), resume=resume
    )
    console.print(
        f"trained {res.iterations} iterations in {res.seconds:.0f} s; pseudo-Dice "
        + ", ".join(f"{k} {v:.3f}" for k, v in res.pseudo_dice.items())
        + f"; {res.model_dir}"
    )


def _group_inputs(inp: Path) -> list[tuple[str, list[Path]]]:
    """Cases of an input: a file, a DICOM folder, or a folder of CASE_XXXX files."""
    import re

    from medlens._atomic import full_suffix

    if inp.is_file():
        stem = inp.name[: -len(full_suffix(inp))] if full_suffix(inp) else inp.name
        m0 = re.match(r"^(.+)_(\d{4})$", stem)
        return [(m0.group(1) if m0 else stem, [inp])]
    files = sorted(p for p in inp.iterdir() if p.is_file() and not p.name.startswith("."))
    imgs = [
        p for p in files if full_suffix(p) in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".nhdr")
    ]
    if not imgs:
        return [(inp.name, [inp])]  # a DICOM series folder
    groups: dict[str, list[Path]] = {}
    for p in imgs:
        stem = p.name[: -len(full_suffix(p))]
        m = re.match(r"^(.+)_(\d{4})$", stem)
        groups.setdefault(m.group(1) if m else stem, []).append(p)
    return sorted((k, sorted(v)) for k, v in groups.items())


@app.command("predict")
def predict(
    model: Path = typer.Argument(..., help="Model folder (WORK/model)."),
    input_path: Path = typer.Argument(
        ..., metavar="INPUT", help="Image file, DICOM folder or folder of images."
    ),
    output: Path = typer.Argument(..., help="Output file (one input) or folder."),
    folds: str | None = typer.Option(
        None, "--folds", help="Comma-separated folds (default: all trained)."
    ),
    mirror: bool = typer.Option(
        True, "--mirror/--no-mirror", help="Mirroring test-time augmentation."
    ),
    step: float = typer.Option(0.5, "--step", help="Tile step (fraction of the patch)."),
    probabilities: bool = typer.Option(
        False, "--probabilities", help="Also save float16 probabilities (.npz)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="torch threads (default: plan)."),
    backend: str = typer.Option(
        "torch",
        "--backend",
        help="torch, or onnx (ONNX Runtime on the files `medlens seg export-onnx` wrote).",
    ),
    precision: str = typer.Option(
        "float32",
        "--precision",
        help="float32, or bfloat16 (torch backend: several times faster on CPUs with "
        "AMX/AVX512-BF16, label maps can differ slightly at boundaries).",
    ),
) -> None:
    """Segment images; outputs are on each input's grid, in its format (DICOM -> DICOM-SEG)."""
    import numpy as np

    from medlens._atomic import full_suffix
    from medlens.image import Image
    from medlens.io import read_image, write_image
    from medlens.segmentation._predict import PredictionError, load_predictor

    if precision not in ("float32", "bfloat16"):
        raise PredictionError(f"--precision must be float32 or bfloat16, got {precision!r}")
    pred = load_predictor(
        model, folds=folds.split(",") if folds else None, threads=threads, backend=backend
    )
    if precision != "float32" and backend != "torch":
        raise PredictionError(f"--precision {precision} needs --backend torch")
    cases = _group_inputs(input_path)
    # one output file for a file or a DICOM-series folder; a folder for a folder of images
    single = len(cases) == 1 and cases[0][1][0] == input_path and not output.is_dir()
    for case_id, paths in cases:
        parts = [read_image(p) for p in paths]
        img = (
            parts[0]
            if len(parts) == 1
            else Image(
                np.stack([np.asarray(p.array, dtype=np.float32) for p in parts]),
                parts[0].affine,
                channels=True,
                meta=parts[0].meta,
            )
        )
        lab, probs = pred.predict(
            img,
            step=step,
            mirror=mirror,
            return_probabilities=probabilities,
            precision=precision,
        )
        is_dicom = paths[0].is_dir() or full_suffix(paths[0]) in ("", ".dcm")
        if single:
            target = output
        else:
            output.mkdir(parents=True, exist_ok=True)
            target = output / (case_id + (".dcm" if is_dicom else full_suffix(paths[0])))
        if is_dicom:
            _write_dicom_seg(lab, paths[0], target, pred)
        else:
            write_image(lab, target)
        if probs is not None:
            np.savez_compressed(
                str(target) + ".probabilities.npz",
                probabilities=probs,
                affine=lab.affine,
                labels=np.array(pred.label_values),
            )
        console.print(f"{case_id}: {target}")


@app.command("export-onnx")
def export_onnx_cmd(
    model: Path = typer.Argument(..., help="Model folder (WORK/model)."),
    output: Path | None = typer.Argument(
        None,
        metavar="[OUT.onnx]",
        help="Output file (one fold only); default MODEL/fold_<k>/network.onnx per fold.",
    ),
    folds: str | None = typer.Option(
        None, "--folds", help="Comma-separated folds (default: all trained)."
    ),
) -> None:
    """Export trained networks to ONNX (then `seg predict --backend onnx`)."""
    from medlens.segmentation._onnx import export_onnx

    for p in export_onnx(model, output=output, folds=folds.split(",") if folds else None):
        console.print(f"wrote {p}")


def _write_dicom_seg(lab: object, source: Path, target: Path, pred: object) -> None:
    import medlens.io as mio

    writer = getattr(mio, "write_dicom_seg", None)
    if writer is None:
        raise MedlensError(
            f"{target}: DICOM-SEG output needs medlens.io.write_dicom_seg, which this install "
            "lacks; "
            "give a .nii.gz output name instead"
        )
    labels = pred.plans.labels  # type: ignore[attr-defined]
    names = {int(v): k for k, v in labels.items() if isinstance(v, int) and v != 0}
    writer(lab, source, target, segment_names=names, algorithm_name="medlens.segmentation")


@app.command("ensemble")
def ensemble(
    inputs: list[Path] = typer.Argument(
        ..., help="Probability files (.probabilities.npz) on one grid."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Label map to write."),
    like: Path = typer.Option(..., "--like", help="Image whose geometry the output takes."),
) -> None:
    """Average probabilities of several predictions (folds, configurations); take the argmax."""
    import numpy as np

    from medlens.image import Image
    from medlens.io import read_image, write_image

    acc = None
    labels = None
    for p in inputs:
        with np.load(p) as z:
            pr = z["probabilities"].astype(np.float32)
            labels = z["labels"]
        if acc is not None and acc.shape != pr.shape:
            raise MedlensError(f"{p}: probabilities of shape {pr.shape}, expected {acc.shape}")
        acc = pr if acc is None else acc + pr
    assert acc is not None and labels is not None
    ref = read_image(like)
    lab = labels[np.argmax(acc, 0)].astype(np.uint8 if labels.max() < 256 else np.int16)
    write_image(Image(lab, ref.affine), output)
    console.print(f"ensemble of {len(inputs)}: {output}")


@app.command("stats")
def stats(
    mask: Path = typer.Argument(..., help="Label map."),
    image: Path | None = typer.Argument(None, help="Intensity image on the same grid."),
    json_out: Path | None = typer.Option(None, "--json", help="Write JSON here (default: stdout)."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write CSV here."),
) -> None:
    """Per-structure volume (ml), voxel count, intensities, centroid (mm), bbox, axial diameters."""
    from dataclasses import asdict

    from medlens._atomic import atomic_write_text
    from medlens.io import read_image
    from medlens.segmentation import mask_statistics
    from medlens.segmentation._stats import stats_to_csv

    st = mask_statistics(read_image(mask), read_image(image) if image else None)
    text = json.dumps([asdict(s) for s in st], indent=2, default=float)
    if json_out:
        atomic_write_text(json_out, text + "\n")
    else:
        sys.stdout.write(text + "\n")
    if csv_out:
        atomic_write_text(csv_out, stats_to_csv(st))


@app.command("evaluate")
def evaluate(
    reference_dir: Path = typer.Argument(..., help="Reference label maps."),
    prediction_dir: Path = typer.Argument(..., help="Predicted label maps."),
    out: Path = typer.Argument(..., help="Output folder (metrics.csv, summary.json, report.html)."),
    preset: str = typer.Option(
        "generic", "--preset", help="kits21, brats2023, isles22, generic ..."
    ),
    postprocess_model: Path | None = typer.Option(
        None,
        "--decide-postprocessing",
        help="Model folder: decide largest-component rules from these (CV) results.",
    ),
) -> None:
    """Evaluate predictions (medlens.evaluation) and optionally decide post-processing."""
    from medlens.evaluation import evaluate_segmentation

    evaluate_segmentation(reference_dir, prediction_dir, out, preset=preset)
    console.print(f"evaluation: {out}")
    if postprocess_model is not None:
        from medlens.segmentation import Plans
        from medlens.segmentation._postprocess import decide_postprocessing

        plans = Plans.load(postprocess_model / "plans.json")
        rules = decide_postprocessing(reference_dir, prediction_dir, plans)
        from medlens._atomic import atomic_write_json

        atomic_write_json(postprocess_model / "postprocessing.json", rules)
        console.print(f"post-processing: {rules['keep_largest_component']}")
