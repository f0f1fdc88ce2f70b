"""``medlens register``: rigid, affine or deformable registration of two images."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from medlens.cli._common import console

__all__ = ["register_command"]

_MODELS = ("rigid", "similarity", "affine", "deformable")
_METRICS = ("mse", "ncc", "lncc", "mi", "feature")
_INITS = ("moments", "principal-axes", "geometry", "none")


def register_command(
    fixed: Path = typer.Argument(..., help="Fixed image (the grid the result lives on)."),
    moving: Path = typer.Argument(..., help="Moving image (pulled onto the fixed grid)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
    model: str = typer.Option("rigid", "--model", help="rigid, similarity, affine or deformable."),
    metric: str = typer.Option("mse", "--metric",
                               help="mse, ncc, lncc (deformable stage), mi (multimodal) or "
                                    "feature (gradient-feature similarity)."),
    mask: Path = typer.Option(None, "--mask", help="Fixed-image mask: where the metric counts."),
    preserve_volume: Path = typer.Option(
        None, "--preserve-volume",
        help="Fixed-grid (soft) mask of a region whose volume the deformable stage keeps."),
    volume_weight: float = typer.Option(1.0, "--volume-weight",
                                        help="Weight of the volume-preserving penalty."),
    shrink: str = typer.Option(None, "--shrink",
                               help="Pyramid shrink factors, coarse to fine, e.g. 4,2,1."),
    iterations: int = typer.Option(None, "--iterations",
                                   help="Gradient steps per level (linear stages)."),
    init: str = typer.Option("moments", "--init",
                             help="Start: moments (centres of mass), principal-axes (also "
                                  "rotates the principal axes onto each other, up to 90 "
                                  "degrees), geometry (grid centres) or none."),
    device: str = typer.Option(None, "--device", help="torch device (default: cuda if present)."),
) -> None:
    """Register MOVING to FIXED; write the ITK transform, the moved image and a JSON summary.

    The transform maps fixed-space points to moving-space points (ITK's and 3D
    Slicer's convention), so `sitk.Resample(moving, fixed, sitk.ReadTransform(f))`
    reproduces the moved image. Outputs in OUTPUT: transform.tfm (linear) or
    transform.h5 (deformable: field then linear part), moved.nii.gz, and for
    deformable displacement.nii.gz (ITK/ANTs vector field, LPS mm) and
    jacobian.nii.gz (.mha instead of .nii.gz for 2D images);
    registration.json holds final metric values and timings.
    """
    from medlens.errors import MedlensError
    from medlens.io import read_image, write_image
    from medlens.registration import (
        jacobian_determinant,
        register,
        warp_image,
        write_displacement_field,
        write_transform,
    )

    class RegisterOptionError(MedlensError, ValueError):
        """Bad option of ``medlens register``."""

    if model not in _MODELS:
        raise RegisterOptionError(f"--model must be one of {', '.join(_MODELS)}, got {model!r}")
    if metric not in _METRICS:
        raise RegisterOptionError(f"--metric must be one of {', '.join(_METRICS)}, got {metric!r}")
    if init not in _INITS:
        raise RegisterOptionError(f"--init must be one of {', '.join(_INITS)}, got {init!r}")
    shrinks = None
    if shrink:
        try:
            shrinks = tuple(int(v) for v in shrink.split(","))
        except ValueError as e:
            raise RegisterOptionError(f"--shrink takes integers like 4,2,1, got {shrink!r}") from e
    t0 = time.perf_counter()
    fixed_img = read_image(fixed)
    moving_img = read_image(moving)
    mask_img = read_image(mask) if mask is not None else None
    preserve_img = read_image(preserve_volume) if preserve_volume is not None else None
    if preserve_img is not None and model != "deformable":
        raise RegisterOptionError("--preserve-volume needs --model deformable")

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[tuple[str, int], Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:

        def progress(stage: str, level: int, n_levels: int, it: int, n_it: int,
                     loss: float) -> None:
            key = (stage, level)
            if key not in tasks:
                tasks[key] = bar.add_task(f"{stage} level {level + 1}/{n_levels}", total=n_it,
                                          loss="")
            bar.update(tasks[key], completed=it, loss=f"{loss:.5g}")

        res = register(fixed_img, moving_img, model=model, metric=metric,  # type: ignore[arg-type]
                       fixed_mask=mask_img, preserve_volume=preserve_img,
                       volume_weight=volume_weight, initialization=init,  # type: ignore[arg-type]
                       shrink_factors=shrinks,
                       iterations=iterations, device=device, progress=progress)
    output.mkdir(parents=True, exist_ok=True)
    tfile = output / ("transform.h5" if model == "deformable" else "transform.tfm")
    write_transform(res.transform if model == "deformable" else res.linear, tfile)
    moved = warp_image(moving_img, res.transform, like=fixed_img, interpolation="linear")
    # 2D results go to MetaImage, which keeps them 2D (NIfTI would add a third axis).
    ext = ".nii.gz" if fixed_img.spatial_ndim == 3 else ".mha"
    write_image(moved, output / f"moved{ext}")
    summary: dict[str, Any] = {
        "fixed": str(fixed),
        "moving": str(moving),
        "model": model,
        "metric": metric,
        "initialization": init,
        "convention": "transform maps fixed-space points to moving-space points (ITK, LPS file)",
        "transform_file": tfile.name,
        "moved_file": f"moved{ext}",
        "matrix_ras_fixed_to_moving": res.linear.homogeneous.round(8).tolist(),
        "final_metrics": {
            "mse": res.metrics.mse,
            "ncc": res.metrics.ncc,
            "mutual_information": res.metrics.mutual_information,
            "overlap": res.metrics.overlap,
        },
        "levels": [
            {"stage": lv.stage, "shrink": lv.shrink, "spacing_mm": list(lv.spacing),
             "iterations": lv.iterations, "loss": lv.loss, "time_s": round(lv.time_s, 3)}
            for lv in res.levels
        ],
        "registration_time_s": round(res.time_s, 3),
    }
    if model == "deformable" and res.displacement is not None:
        write_displacement_field(res.displacement, output / f"displacement{ext}")
        jac = jacobian_determinant(res.transform, fixed_img)
        write_image(jac.with_array(jac.array.astype("float32")), output / f"jacobian{ext}")
        arr = jac.array
        summary["jacobian"] = {"min": float(arr.min()), "max": float(arr.max()),
                               "fraction_nonpositive": float((arr <= 0).mean())}
        if preserve_img is not None:
            import numpy as np

            w = np.clip(np.asarray(preserve_img.array, dtype=np.float64), 0, None)
            w = (w > 0).astype(np.float64) if w.max() > 1 else w
            summary["preserve_volume_change"] = float((w * arr).sum() / max(w.sum(), 1e-9) - 1)
    summary["total_time_s"] = round(time.perf_counter() - t0, 3)
    (output / "registration.json").write_text(json.dumps(summary, indent=2))
    m = res.metrics
    console.print(f"[bold]{model}[/] ({metric}) in {res.time_s:.1f} s: mse {m.mse:.4g}, "
                  f"ncc {m.ncc:.4f}, MI {m.mutual_information:.4f}; wrote {output}")
