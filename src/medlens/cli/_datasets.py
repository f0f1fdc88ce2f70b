"""``medlens datasets list | info | fetch | export``."""

from __future__ import annotations

from pathlib import Path

import typer

from medlens.cli._common import console

__all__ = ["app"]

app = typer.Typer(
    name="datasets",
    help="Offline sample datasets, built from PyPI / Debian packages or generated, in a "
    "checksummed cache (default ~/.cache/medlens, or $MEDLENS_DATA, or --cache).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_CACHE_HELP = "Cache folder (default: $MEDLENS_DATA, else ~/.cache/medlens)."
_N_CASES_HELP = "phantom-kidney only: number of cases to generate (default 10)."
_SEED_HELP = "phantom-kidney only: random seed (default 0)."
_N_TEST_HELP = "phantom-kidney only: how many of the last cases are test cases " \
               "(default n_cases // 5, at least 1)."


@app.command("list")
def list_cmd() -> None:
    """List the named datasets: name, modality, size, sources."""
    from rich.table import Table

    from medlens.datasets import list_datasets

    table = Table(show_lines=False, title_justify="left")
    for col in ("name", "modality", "size", "sources"):
        table.add_column(col, overflow="fold")
    for card in list_datasets():
        sources = ", ".join(f"{s.name} {s.version}" for s in card.sources)
        table.add_row(card.name, card.modality, card.size, sources)
    console.print(table)


@app.command("info")
def info_cmd(
    name: str = typer.Argument(..., help="Dataset name (see `medlens datasets list`)."),
    cache: Path = typer.Option(None, "--cache", help=_CACHE_HELP),
    license_text: bool = typer.Option(
        False, "--license", help="Print the full licence text as shipped (needs a fetch first)."
    ),
) -> None:
    """Show a dataset's card: sources, licence, modality, size, what it can and cannot show.

    Nothing is downloaded. The licence text as shipped and the package versions
    actually used appear once the dataset has been fetched.
    """
    from medlens.datasets import dataset_info

    card = dataset_info(name, cache_dir=cache)
    out = console.print
    out(f"[bold]{card.name}[/] - {card.title}")
    out(card.description)
    out(f"[bold]modality:[/] {card.modality}")
    out(f"[bold]size:[/] {card.size}")
    out(f"[bold]synthetic:[/] {'yes' if card.synthetic else 'no'}")
    out("[bold]sources:[/]")
    for s in card.sources:
        used = f", used {s.version_used}" if s.version_used else ""
        out(f"  - {s.kind} {s.name} {s.version}{used} {s.url}")
    out(f"[bold]licence:[/] {card.license}")
    if card.license_text is None:
        out(f"  (licence text as shipped: run `medlens datasets fetch {card.name}` first)")
    elif license_text:
        out(card.license_text, markup=False)
    else:
        out(f"  (licence text as shipped: {len(card.license_text)} characters; --license "
            "prints it)")
    out("[bold]can show:[/]")
    for line in card.can_show:
        out(f"  + {line}")
    out("[bold]cannot show:[/]")
    for line in card.cannot_show:
        out(f"  - {line}")
    out("[bold]cases:[/]")
    for line in card.cases:
        out(f"  {line}", markup=False)
    if card.label_names:
        shown = list(card.label_names.items())
        text = ", ".join(f"{k} {v}" for k, v in shown[:12])
        more = f", ... ({len(shown)} labels)" if len(shown) > 12 else ""
        out(f"[bold]labels:[/] {text}{more}", markup=True)
    if card.transforms:
        out(f"[bold]reference transforms ({len(card.transforms)} pairs; matrices in "
            "transforms.json):[/]")
        for pid, text in card.transforms:
            out(f"  {pid}: {text}", markup=False)
    if card.malformed:
        out(f"[bold]deliberately malformed files ({len(card.malformed)}):[/]")
        for fname, why in card.malformed:
            out(f"  ! {fname}: {why}", markup=False)


@app.command("fetch")
def fetch_cmd(
    name: str = typer.Argument(..., help="Dataset name (see `medlens datasets list`)."),
    cache: Path = typer.Option(None, "--cache", help=_CACHE_HELP),
    n_cases: int = typer.Option(None, "--n-cases", help=_N_CASES_HELP),
    seed: int = typer.Option(None, "--seed", help=_SEED_HELP),
    n_test: int = typer.Option(None, "--n-test", help=_N_TEST_HELP),
) -> None:
    """Build a dataset in the cache (downloading its packages once) and print where it is.

    A second fetch verifies the sha256 manifest and reuses the folder without
    downloading; a corrupted folder is rebuilt.
    """
    from medlens.datasets import fetch

    ds = fetch(name, cache_dir=cache, n_cases=n_cases, seed=seed, n_test=n_test)
    console.print(ds.summary(), markup=False)
    console.print(str(ds.root), markup=False)


@app.command("export")
def export_cmd(
    name: str = typer.Argument(..., help="Dataset name (see `medlens datasets list`)."),
    out: Path = typer.Argument(..., help="Folder receiving DatasetXXX_Name/ (e.g. $nnUNet_raw)."),
    fmt: str = typer.Option("nnunet", "--format", help="Layout to write; only 'nnunet' "
                            "(nnU-Net v2 raw: imagesTr, labelsTr, imagesTs, dataset.json)."),
    dataset_id: int = typer.Option(None, "--id", help="nnU-Net dataset ID 1..999 (default: "
                                   "901-905 by dataset)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
    cache: Path = typer.Option(None, "--cache", help=_CACHE_HELP),
    n_cases: int = typer.Option(None, "--n-cases", help=_N_CASES_HELP),
    seed: int = typer.Option(None, "--seed", help=_SEED_HELP),
    n_test: int = typer.Option(None, "--n-test", help=_N_TEST_HELP),
) -> None:
    """Export a dataset in a training framework's layout (fetching it first if needed)."""
    from medlens.datasets import DatasetExportError, export_nnunet

    if fmt.lower() not in ("nnunet", "nnunetv2", "nnu-net"):
        raise DatasetExportError(f"unknown export format {fmt!r}; supported: nnunet")
    folder = export_nnunet(name, out, dataset_id=dataset_id, overwrite=overwrite,
                           cache_dir=cache, n_cases=n_cases, seed=seed, n_test=n_test)
    console.print(str(folder), markup=False)
