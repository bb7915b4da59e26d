"""The ``hostats`` command line (typer). Each command is a thin shell over the library.

Expected failures (``HostatsError``: bad data, bad spec) print a clear message and exit 1, never a
traceback. ``cli.py`` is, with ``analyses/``, the only place that may import both hostats and synthetic.
"""
from __future__ import annotations

import sys

import typer
from rich.console import Console

from hostats.errors import HostatsError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Retrospective cohort statistics for heterotopic ossification.")
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Print an error for a person (no traceback) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run_guarded(func, *args, **kwargs):
    """Call ``func``; turn expected failures into a clear message and exit status 1."""
    try:
        return func(*args, **kwargs)
    except HostatsError as exc:
        fail(str(exc))
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}")
    except KeyboardInterrupt:
        fail("interrupted", 130)


@app.callback()
def main() -> None:
    """hostats: from a raw HO cohort export to reproducible estimates and reports."""


# --- commands: each owned by the part of the library it fronts -------------------------------------


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
