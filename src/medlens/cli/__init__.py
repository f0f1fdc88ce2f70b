"""The ``medlens`` command: one entry point, one subcommand per task.

Each subcommand is a thin layer over the public Python API. Errors a user can
cause (:class:`medlens.MedlensError`) print one line on stderr and exit with
code 2; nothing else is caught.
"""

from __future__ import annotations

import sys

import typer

from medlens.cli._io import convert, info
from medlens.errors import MedlensError

__all__ = ["app", "main"]

app = typer.Typer(
    name="medlens",
    help="CPU-first toolkit for medical image AI: read clinical images, evaluate, "
    "segment, reconstruct and register.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        from medlens import __version__

        typer.echo(f"medlens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """CPU-first toolkit for medical image AI."""


app.command("info")(info)
app.command("convert")(convert)

# Task wings register their sub-apps below, one line each.
from medlens.cli._datasets import app as _datasets_app  # noqa: E402

app.add_typer(_datasets_app, name="datasets")
from medlens.cli._evaluate import app as _evaluate_app  # noqa: E402

app.add_typer(_evaluate_app, name="evaluate")
from medlens.cli._register import register_command as _register_command  # noqa: E402

app.command("register")(_register_command)
from medlens.cli._demo import demo as _demo_command  # noqa: E402

app.command("demo")(_demo_command)
from medlens.cli._seg import app as _seg_app  # noqa: E402

app.add_typer(_seg_app, name="seg")

from medlens.cli._recon import app as _recon_app  # noqa: E402

app.add_typer(_recon_app, name="recon")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (2 for user errors)."""
    try:
        app(args=argv, prog_name="medlens", standalone_mode=True)
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except MedlensError as e:
        # plain text, never wrapped, so the file name stays greppable
        sys.stderr.write(f"error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
