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

# validate (foundation: hostats.cohort / ingest / clean)
@app.command()
def validate(
    file: str = typer.Argument(..., help="Export to check: a file, a study folder (export.toml) or a database URL."),
    mapping: str = typer.Option(None, "--mapping", "-m", help="Mapping file (TOML)."),
    assessments: str = typer.Option(None, "--assessments", "-a", help="Assessments table (long format)."),
    sheet: str = typer.Option(None, "--sheet", help="Excel sheet name."),
    table: str = typer.Option(None, "--table", help="Database table (with a database URL)."),
    query: str = typer.Option(None, "--query", help="SQL query (with a database URL)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    show: int = typer.Option(20, "--show", help="How many problems and exclusions to list."),
) -> None:
    """Read and clean an export; print the ledger, the first problems and column completeness.

    Exit status 0 when the data are usable, 1 when not (unreadable, a required column missing, no rows left).
    """
    import json

    from hostats.cohort import read_cohort

    def _error(msg: str) -> None:
        if as_json:
            print(json.dumps({"usable": False, "error": msg}, indent=2))
            raise typer.Exit(1)
        fail(msg)

    try:
        cohort = run_guarded(read_cohort, file, mapping, assessments, sheet=sheet, table=table, query=query)
    except typer.Exit:
        raise
    except Exception as exc:  # a bug, not bad data: still no traceback for the user
        _error(f"unexpected {type(exc).__name__} while reading {file}: {exc} (please report this)")
    usable = cohort.usable
    flow, problems, excluded = cohort.flow(), cohort.problems, cohort.excluded
    complete = cohort.completeness()
    if as_json:
        out = {"usable": usable, "file": file, **cohort.summary(),
               "problems": problems.head(show).to_dict(orient="records"), "problems_total": len(problems),
               "excluded": excluded.head(show).to_dict(orient="records"), "excluded_total": len(excluded),
               "completeness": complete.to_dict(orient="records")}
        print(json.dumps(out, indent=2, default=str))
        raise typer.Exit(0 if usable else 1)
    from rich.markup import escape
    from rich.table import Table

    problems = problems.sort_values(["source_file", "source_row"], kind="stable")
    t = Table(title=f"Ledger: {escape(file)}", title_justify="left")
    for c in ("step", "in", "excluded", "out", "changed", "reason"):
        t.add_column(c, justify="right" if c in ("in", "excluded", "out", "changed") else "left",
                     overflow="fold")
    for r in flow.itertuples(index=False):
        t.add_row(escape(r.step), str(r.rows_in), str(r.rows_excluded), str(r.rows_out), str(r.rows_changed),
                  escape(r.reason))
    console.print(t)
    for title, frame, cols in (
            (f"Problems (first {min(show, len(problems))} of {len(problems)}; row 1 = header)", problems,
             ["source_row", "column", "value", "problem", "action"]),
            (f"Excluded rows (first {min(show, len(excluded))} of {len(excluded)})", excluded,
             ["source_row", "step", "reason"])):
        if len(frame):
            t = Table(title=title, title_justify="left")
            for c in cols:
                t.add_column(c.replace("source_", ""), overflow="fold")
            for r in frame.head(show)[cols].itertuples(index=False):
                t.add_row(*(escape(str(v)) for v in r))
            console.print(t)
    t = Table(title="Column completeness (kept rows)", title_justify="left")
    for c in ("column", "present", "%"):
        t.add_column(c, justify="left" if c == "column" else "right")
    for r in complete[complete["in_source"]].itertuples(index=False):
        t.add_row(r.column, str(r.present), f"{r.percent_present:.1f}")
    console.print(t)
    absent = complete.loc[~complete["in_source"], "column"].tolist()
    if absent:
        console.print(f"Optional columns not in the export: {', '.join(absent)}", highlight=False)
    if cohort.assessments is not None and cohort.assessment_ledger is not None:
        al = cohort.assessment_ledger
        console.print(f"assessments: {len(cohort.assessments)} of {al.rows_read} row(s) kept, "
                      f"{al.rows_excluded} excluded, {len(al.problems)} cell problem(s)", highlight=False)
    for n in cohort.ledger.notes:
        console.print(f"note: {n}", highlight=False, soft_wrap=True, markup=False)
    rows_read = cohort.ledger.rows_read
    if not usable:
        fail(f"no usable rows left: all {rows_read} row(s) were excluded (see the tables above)")
    console.print(f"[bold green]usable:[/] {len(cohort.episodes)} of {rows_read} row(s) kept, "
                  f"{cohort.ledger.rows_excluded} excluded, {len(problems)} cell problem(s).", highlight=False)



if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
