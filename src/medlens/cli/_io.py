"""``medlens info`` and ``medlens convert``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from medlens.cli._common import console

__all__ = ["convert", "describe", "info"]

# DICOM attributes that identify a patient; printed only with --phi.
PHI_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
            "OtherPatientIDs", "PatientAddress", "InstitutionName", "ReferringPhysicianName")


def describe(path: Path, *, phi: bool = False, series_uid: str | None = None) -> dict[str, Any]:
    """Summarise an image file or DICOM folder as a JSON-able dict (no PHI unless asked)."""
    import numpy as np

    from medlens.io import list_dicom_series, read_image

    n_series = None
    if path.is_dir():
        found = list_dicom_series(path)
        n_series = len(found)
        if series_uid is None and n_series > 1:
            return {
                "path": str(path),
                "n_series": n_series,
                "series": [
                    {
                        "series_instance_uid": s.series_instance_uid,
                        "series_number": s.series_number,
                        "series_description": s.series_description,
                        "modality": s.modality,
                        "n_files": s.n_files,
                    }
                    for s in found
                ],
            }
    img = read_image(path, series_uid=series_uid)
    arr = img.array
    finite = arr[np.isfinite(arr)] if np.issubdtype(arr.dtype, np.floating) else arr
    out: dict[str, Any] = {
        "path": str(path),
        "shape": list(img.spatial_shape),
        "channels": img.n_channels,
        "spacing_mm": [round(s, 6) for s in img.spacing],
        "orientation": img.orientation,
        "origin_mm": [round(v, 4) for v in img.origin],
        "direction": np.round(img.direction, 6).tolist(),
        "dtype": str(arr.dtype),
        "value_range": [float(finite.min()), float(finite.max())] if finite.size else None,
    }
    for key, value in img.meta.items():
        if key == "phi":
            continue
        out[key] = value
    if n_series is not None:
        out["n_series_in_folder"] = n_series
    if phi and "phi" in img.meta:
        out["phi"] = dict(img.meta["phi"])
    return out


def info(
    path: Path = typer.Argument(..., help="Image file (NIfTI, NRRD, MHA/MHD, PNG/TIFF, DICOM) "
                                          "or a folder holding a DICOM series."),
    series_uid: str = typer.Option(
        None, "--series-uid", help="SeriesInstanceUID to read from a folder of several series."
    ),
    phi: bool = typer.Option(False, "--phi",
                             help="Also print patient identifiers (name, ID, birth date, "
                                  "accession). Off by default."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Describe an image: shape, spacing (mm), orientation, origin (RAS+ mm), dtype, range.

    For DICOM also modality, series/study description and instance counts. Patient
    identifiers are printed only with --phi.
    """
    d = describe(path, phi=phi, series_uid=series_uid)
    if as_json:
        console.print_json(json.dumps(d, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    if "series" in d:  # a folder of several DICOM series: list them
        listing = Table(title=f"{path}: {d['n_series']} DICOM series", title_justify="left")
        listing.add_column("series_instance_uid", overflow="fold")
        for col in ("number", "description", "modality", "files"):
            listing.add_column(col)
        for s in d["series"]:
            listing.add_row(*(escape(_fmt(s[k])) for k in (
                "series_instance_uid", "series_number", "series_description", "modality",
                "n_files")))
        console.print(listing)
        console.print("Describe one with --series-uid UID.")
        return
    table = Table(title=escape(str(path)), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in d.items():
        if key in ("path", "phi"):
            continue
        table.add_row(key, escape(_fmt(value)))
    for key, value in d.get("phi", {}).items():
        table.add_row(f"[red]{escape(key)}[/]", escape(_fmt(value)))
    console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def convert(
    src: Path = typer.Argument(..., help="Input image file or DICOM series folder."),
    dst: Path = typer.Argument(..., help="Output file; the format follows the suffix "
                                         "(.nii.gz, .nii, .nrrd, .mha, .mhd, .png, .tif)."),
    reorient: str = typer.Option(None, "--reorient",
                                 help="Reorient to this code first, e.g. RAS or LPS (no "
                                      "interpolation)."),
    spacing: tuple[float, float, float] = typer.Option(
        None, "--spacing",
        help="Resample to this voxel size in mm (three numbers; a 2D image uses the first "
             "two). Integer images keep their dtype (values rounded), as in SimpleITK."),
    interpolation: str = typer.Option(
        "linear", "--interpolation",
        help="Resampling interpolation: linear, bspline, nearest or label (for label maps)."),
    series_uid: str = typer.Option(
        None, "--series-uid", help="SeriesInstanceUID to read from a folder of several series."
    ),
) -> None:
    """Convert between formats, e.g. a DICOM folder to NIfTI.

    Optionally reorient (no interpolation) and resample. The output is written
    atomically; the input is never modified.
    """
    import numpy as np

    from medlens.image import reorient as _reorient
    from medlens.image import resample
    from medlens.io import read_image, write_image

    img = read_image(src, series_uid=series_uid)
    if reorient:
        img = _reorient(img, reorient)
    if spacing:
        sp = tuple(spacing)[: img.spatial_ndim]
        out = resample(img, spacing=sp, interpolation=interpolation)  # type: ignore[arg-type]
        if np.issubdtype(img.dtype, np.integer) and out.dtype != img.dtype:
            info = np.iinfo(img.dtype)
            out = out.with_array(np.clip(np.rint(out.array), info.min, info.max).astype(img.dtype))
        img = out
    write_image(img, dst)
    console.print(f"wrote {dst}  shape={img.spatial_shape} spacing="
                  f"{tuple(round(s, 4) for s in img.spacing)} orientation={img.orientation}")
