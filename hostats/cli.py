"""The ``hostats`` command line (typer). Each command is a thin shell over the library.

Expected failures (``HostatsError``: bad data, bad spec) print a clear message and exit 1, never a
traceback. ``cli.py`` is, with ``analyses/``, the only place that may import both hostats and synthetic.
"""
from __future__ import annotations

import difflib
import json
import re
import shutil
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape  # messages name spec tables like [report]: not markup

from hostats.errors import HostatsError

# help texts are rich markup: a literal [word] is written \\[word] (tests/test_cli.py checks none is eaten)
app = typer.Typer(add_completion=False, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]},  # -h on every command
                  help="Retrospective cohort statistics for heterotopic ossification.")
console = Console()
err_console = Console(stderr=True)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(text: object) -> str:
    """Text for the terminal: control characters (ESC sequences, BEL, CR, bidi overrides, ...) written as
    visible escapes (``\\x1b``), so a data cell cannot move the cursor, retitle the window or hide text."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def fail(message: str, code: int = 1) -> None:
    """Print an error for a person (no traceback) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(safe(message))}", highlight=False, soft_wrap=True)
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


def _version(value: bool) -> None:
    if value:
        from hostats import __version__

        console.print(f"hostats {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """hostats: from a raw HO cohort export to reproducible estimates and reports."""
    from hostats.provenance import source_date

    # checked first: a bad SOURCE_DATE_EPOCH also breaks numpy's f2py, which scipy imports, with a traceback
    run_guarded(source_date)


@contextmanager
def one_line_warnings():
    """Show each Python warning raised inside the block once, as one line ``warning: message`` (no file,
    line number or source line); warnings the default filters hide stay hidden."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            err_console.print(f"[yellow]warning:[/] {escape(safe(text))}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _kind_callback(value: str | None) -> str | None:
    """``--kind``: an unknown kind is a one-line error with the closest kind, before anything is read."""
    if value is not None:
        from hostats.analysis.spec import kind_problem

        problem = kind_problem(value)
        if problem is not None:
            fail(f"--kind: {problem}")
    return value


# the source options of validate, run and init, defined once
KindOption = Annotated[str | None, typer.Option(
    "--kind", callback=_kind_callback, help="What the export is: redcap (a REDCap export, read with "
    "--dictionary and --mapping) or omop (an OMOP CDM: a .duckdb file, a folder of CDM tables or a postgresql:// "
    "URL). Without it, a file is read by its format.")]
DictionaryOption = Annotated[str | None, typer.Option(
    "--dictionary", help="The REDCap project's data dictionary (CSV): the export is then a REDCap export "
    "(--kind redcap). hostats init copies it into FOLDER.")]


def _source_options(data: str | None, kind: str | None, dictionary: str | None, mapping: str | None,
                    options: dict[str, str] | None = None) -> None:
    """``--kind``/``--dictionary`` of run and init: they describe ``--data``, go together as the spec's
    ``[data]`` keys do (hostats.analysis.spec.source_problem; ``options``: ``--sheet``/``--table``/``--query``,
    refused with a REDCap export or an OMOP CDM), and a dictionary that is not there is named."""
    from hostats.analysis.spec import source_problem

    if (kind is not None or dictionary is not None) and data is None:
        fail("--kind/--dictionary describe --data: give --data (the export) too")
    problem = source_problem(kind, dictionary, mapping, options, data)
    if problem is not None:
        fail(f"--{problem[0]}: {problem[1]}")
    if dictionary is not None and not Path(dictionary).is_file():
        raise FileNotFoundError(2, "--dictionary not found", dictionary)


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
    allow_outside_paths: bool = typer.Option(False, "--allow-outside-paths", help="Follow paths in a study "
                                             "folder's export.toml that leave the folder (refused by default)."),
    dictionary: DictionaryOption = None,
    kind: KindOption = None,
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
        cohort = read_cohort(file, mapping, assessments, sheet=sheet, table=table, query=query,
                             allow_outside=allow_outside_paths, kind=kind, dictionary=dictionary)
    except HostatsError as exc:
        _error(str(exc))
    except OSError as exc:
        _error(f"{exc.strerror or exc}: {exc.filename}")
    except Exception as exc:  # a bug, not bad data: still no traceback for the user
        _error(f"unexpected {type(exc).__name__} while reading {file} (please report this)")
    usable = cohort.usable
    flow, problems, excluded = cohort.flow(), cohort.problems, cohort.excluded
    complete = cohort.completeness()
    if as_json:
        out = _validation_summary(cohort, file, show, problems, excluded, complete)
        print(json.dumps(out, indent=2, default=str))
        raise typer.Exit(0 if usable else 1)
    _print_validation(cohort, file, show, flow, problems, excluded, complete)
    rows_read = cohort.ledger.rows_read
    if not usable:
        fail(f"no usable rows left: all {rows_read} row(s) were excluded (see the tables above)")
    console.print(f"[bold green]usable:[/] {len(cohort.episodes)} of {rows_read} row(s) kept, "
                  f"{cohort.ledger.rows_excluded} excluded, {len(problems)} cell problem(s).", highlight=False)


def _validation_summary(cohort, file: str, show: int, problems, excluded, complete) -> dict:
    """``hostats validate --json``: the summary, the first ``show`` problems and exclusions, completeness."""
    out = {"usable": cohort.usable, "file": file, **cohort.summary(),
           "problems": problems.head(show).to_dict(orient="records"), "problems_total": len(problems),
           "excluded": excluded.head(show).to_dict(orient="records"), "excluded_total": len(excluded),
           "completeness": complete.to_dict(orient="records")}
    if cohort.assessment_ledger is not None:
        al = cohort.assessment_ledger
        out["assessments"] = {"rows_read": al.rows_read, "rows_kept": len(cohort.assessments),
                              "rows_excluded": al.rows_excluded,
                              "problems": al.problems.head(show).to_dict(orient="records"),
                              "problems_total": len(al.problems), "notes": list(al.notes)}
    return out


def _print_validation(cohort, file: str, show: int, flow, problems, excluded, complete) -> None:
    """``hostats validate``: the ledger, the first ``show`` problems and exclusions, column completeness and
    the notes, as tables (data text escaped: it is neither markup nor terminal control)."""
    from rich.table import Table

    problems = problems.sort_values(["source_file", "source_row"], kind="stable")
    t = Table(title=f"Ledger: {escape(safe(file))}", title_justify="left")
    for c in ("step", "in", "excluded", "out", "changed", "reason"):
        t.add_column(c, justify="right" if c in ("in", "excluded", "out", "changed") else "left",
                     overflow="fold")
    for r in flow.itertuples(index=False):
        t.add_row(escape(safe(r.step)), str(r.rows_in), str(r.rows_excluded), str(r.rows_out),
                  str(r.rows_changed), escape(safe(r.reason)))
    console.print(t)
    for title, frame, cols in (
            (f"Problems (first {min(show, len(problems))} of {len(problems)}; row 1 = header)", problems,
             ["source_row", "column", "value", "problem", "action"]),
            (f"Excluded rows (first {min(show, len(excluded))} of {len(excluded)})", excluded,
             ["source_row", "step", "reason"])):
        if len(frame) and frame["source_file"].nunique() > 1:  # several files: say which
            cols = ["source_file", *cols]
        if len(frame):
            t = Table(title=title, title_justify="left")
            for c in cols:
                t.add_column(c.replace("source_", ""), overflow="fold")
            for r in frame.head(show)[cols].itertuples(index=False):
                t.add_row(*(escape(safe(v)) for v in r))
            console.print(t)
    t = Table(title="Column completeness (kept rows)", title_justify="left")
    for c in ("column", "present", "%"):
        t.add_column(c, justify="left" if c == "column" else "right")
    for r in complete[complete["in_source"]].itertuples(index=False):
        t.add_row(r.column, str(r.present), f"{r.percent_present:.1f}")
    console.print(t)
    absent = complete.loc[~complete["in_source"], "column"].tolist()
    if absent:
        console.print(f"Optional columns not in the export: {safe(', '.join(absent))}", highlight=False, markup=False)
    if cohort.assessments is not None and cohort.assessment_ledger is not None:
        al = cohort.assessment_ledger
        console.print(f"assessments: {len(cohort.assessments)} of {al.rows_read} row(s) kept, "
                      f"{al.rows_excluded} excluded, {len(al.problems)} cell problem(s)", highlight=False)
        for n in al.notes:
            console.print(f"note (assessments): {safe(n)}", highlight=False, soft_wrap=True, markup=False)
    for n in cohort.ledger.notes:
        console.print(f"note: {safe(n)}", highlight=False, soft_wrap=True, markup=False)


# run, reproduce (reports & analyses: hostats.analysis, hostats.report)
def _analyses_root() -> Path:
    """The analyses that come with hostats (the checkout's ``analyses/`` or the copy inside the wheel)."""
    from hostats.analysis.bundled import bundled_analyses

    return bundled_analyses()


def _spec_path(analysis: Path) -> Path:
    """``analysis`` as given when it exists, else the bundled analysis of that name (``hostats run
    prophylaxis`` works anywhere); an unknown name is an error listing the bundled ones."""
    if analysis.exists() or len(analysis.parts) != 1:  # a path: load_spec names what is missing
        return analysis
    from hostats.analysis.bundled import bundled_names, find_analysis

    found = find_analysis(str(analysis))
    if found is not None:
        return found
    names = bundled_names()
    hint = difflib.get_close_matches(str(analysis), names, n=1)
    fail(f"{analysis}: no such analysis folder or spec" + (f"; did you mean {hint[0]!r}?" if hint else "")
         + f" (the bundled analyses: {', '.join(names)})")


def _synthetic_prepare(spec):
    """The ``prepare`` callback for a spec with ``[data] synthetic``: generate, write the study folder to a
    temporary folder (one subfolder per scenario when there are several), return (source, truth, info).

    The row-level export (patient IDs, exact dates) never lands in the report folder: the manifest keeps
    its SHA-256 hashes and the ``hostats synth`` command that regenerates it byte for byte. The caller
    removes ``prepare.workdir`` when the run is over.
    """
    import tempfile

    import synthetic
    from synthetic.cohort import memory_problem

    for s in spec.synthetic:  # before any computation: a typo here would otherwise surface deep in the run
        if s["scenario"] not in synthetic.scenarios():
            raise spec.error(f"unknown scenario {s['scenario']!r}; choose one of {', '.join(synthetic.scenarios())}",
                             "data", "synthetic")
        problem = memory_problem(s["n"])  # a draw that does not fit ends in an out-of-memory kill, unexplained
        if problem is not None:
            raise spec.error(f"n = {s['n']}: {problem}", "data", "synthetic")

    def prepare(staging: Path):
        prepare.workdir = Path(tempfile.mkdtemp(prefix=f"hostats-{spec.name}-data-"))
        folders, truths, faults, scen = [], {}, {}, []
        for s in spec.synthetic:
            cohort = synthetic.generate(s["scenario"], int(s["n"]), int(s["seed"]), overrides=s.get("overrides"),
                                        fault_rate=float(s.get("fault_rate", 0.03)))
            folder = prepare.workdir / (s["scenario"] if len(spec.synthetic) > 1 else "")
            cohort.write(folder)
            folders.append(folder)
            truths[s["scenario"]] = cohort.truth
            for k, v in (cohort.truth.get("faults") or {}).items():
                faults[k] = faults.get(k, 0) + int(v)
            scen.append({"scenario": s["scenario"], "n": int(s["n"]), "seed": int(s["seed"]),
                         "fault_rate": float(s.get("fault_rate", 0.03)), "overrides": s.get("overrides")})
        single = len(folders) == 1
        regenerate = [f"hostats synth {x['scenario']} -n {x['n']} --seed {x['seed']} --fault-rate {x['fault_rate']}"
                      + ("" if not x["overrides"] else "  # with overrides " + repr(x["overrides"]))
                      for x in scen]
        info = {"scenarios": scen, "faults": faults, "regenerate": regenerate}
        return (folders[0] if single else folders), (next(iter(truths.values())) if single else truths), info

    return prepare


class _Steps:
    """A rich progress bar over the steps of one analysis (or a no-op when quiet)."""

    def __init__(self, progress, task) -> None:
        self.progress, self.task = progress, task

    def advance(self, message: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, status=message)


def _progress(quiet: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet:
        return None
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(), console=err_console, transient=False)


def _run_one(spec, out: Path, progress, *, data=None, mapping=None, assessments=None, kind=None, dictionary=None,
             read_options=None):
    from hostats.analysis import run_analysis

    task = progress.add_task(spec.name, total=len(spec.sections) + 4 + (1 if data is None and spec.synthetic else 0),
                             status="starting") if progress is not None else None
    prepare = _synthetic_prepare(spec) if data is None and spec.synthetic else None
    try:
        with one_line_warnings():
            result = run_analysis(spec, out, data=data, mapping=mapping, assessments=assessments, kind=kind,
                                  dictionary=dictionary, read_options=read_options, prepare=prepare,
                                  progress=_Steps(progress, task))
    finally:
        if getattr(prepare, "workdir", None) is not None:
            shutil.rmtree(prepare.workdir, ignore_errors=True)
    if progress is not None:
        progress.update(task, completed=progress.tasks[task].total, status=f"done in {result.seconds:.1f} s")
    return result


@app.command()
def run(
    analysis: Path = typer.Argument(..., help="Analysis folder, its analysis.toml, or the name of an analysis "
                                    "that comes with hostats (tha_incidence, prophylaxis, neurogenic, "
                                    "resection_recurrence)."),
    data: str = typer.Option(None, "--data", "-d", help="Data to analyse instead of the spec's \\[data]: a file, a "
                             "study folder (export.toml) or a database URL."),
    mapping: str = typer.Option(None, "--mapping", "-m", help="Mapping file (TOML) for --data."),
    assessments: str = typer.Option(None, "--assessments", "-a", help="Assessments table for --data."),
    sheet: str = typer.Option(None, "--sheet", help="Excel sheet name (with --data)."),
    table: str = typer.Option(None, "--table", help="Database table (with a database URL as --data)."),
    query: str = typer.Option(None, "--query", help="SQL SELECT query (with a database URL as --data)."),
    kind: KindOption = None,
    dictionary: DictionaryOption = None,
    out: Path = typer.Option(None, "--out", "-o", help="Report folder (default: reports/NAME)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    allow_outside_paths: bool = typer.Option(False, "--allow-outside-paths", help="Follow paths in a study "
                                             "folder's export.toml that leave the folder (refused by default)."),
) -> None:
    """Run one analysis to a report folder: report.html, estimates.csv/json, figures/, manifest.json."""
    from hostats.analysis import is_simulation_spec, load_spec

    def go():
        path = _spec_path(analysis)
        toml = path / "analysis.toml" if path.is_dir() else path
        if toml.is_file() and is_simulation_spec(toml):
            from hostats import simstudy

            names = simstudy.load_module(toml.parent / "study.py").names()
            fail(f"{toml} is a simulation study, not an analysis: run it with `hostats simulate SCENARIO "
                 f"--reps R` (SCENARIO: {', '.join(names)})")
        spec = load_spec(path)
        if data is not None and not Path(data).exists() and "://" not in data:
            raise FileNotFoundError(2, "data file not found", data)
        given = {k: v for k, v in (("sheet", sheet), ("table", table), ("query", query)) if v is not None}
        if given and data is None:
            fail(f"--{'/--'.join(given)} need(s) --data (a file or a database URL)")
        # they describe --data, as the spec's sheet/table/query describe its own data (not used with --data)
        _source_options(data, kind, dictionary, mapping, given)
        target = out or Path("reports") / spec.name
        progress = _progress(quiet)
        from hostats.cohort import allow_outside_paths as outside

        with outside(allow_outside_paths):
            if progress is not None:
                with progress:
                    result = _run_one(spec, target, progress, data=data, mapping=mapping, assessments=assessments,
                                      kind=kind, dictionary=dictionary, read_options=given)
            else:
                result = _run_one(spec, target, None, data=data, mapping=mapping, assessments=assessments,
                                  kind=kind, dictionary=dictionary, read_options=given)
        for note in result.not_run:  # optional sections these data could not feed: said even when quiet
            err_console.print(f"[yellow]note:[/] {escape(safe(note))}", highlight=False, soft_wrap=True)
        if not quiet:
            console.print(f"[green]report:[/] {result.report}  ({len(result.estimates)} estimates, "
                          f"{result.seconds:.1f} s)")

    run_guarded(go)


@app.command()
def reproduce(
    out: Path = typer.Option(Path("reports"), "--out", "-o", help="Folder for the reports and index.html."),
    analyses: Path = typer.Option(None, "--analyses", help="Folder holding the analyses (default: the analyses "
                                  "that come with hostats)."),
    only: list[str] = typer.Option(None, "--only", help="Run only these analyses (by name; repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run every analysis that comes with hostats (or under --analyses) on fresh synthetic data (fixed seeds)
    and write an index page.

    Exit status 1 when any analysis failed (the index page says which and why).
    """
    import json
    import time

    from hostats.analysis import discover, load_spec
    from hostats.provenance import build_manifest, hash_inputs, write_manifest
    from hostats.report.html import render_index

    def go():
        root = analyses or _analyses_root()
        specs = discover(root)
        if not specs:
            fail(f"no analyses found: {root}/*/analysis.toml")
        names = [p.parent.name for p in specs]
        unknown = [o for o in (only or []) if o not in names]
        if unknown:
            hints = [f"{o!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(o, names, n=1))
                     else repr(o) for o in unknown]
            fail(f"--only {', '.join(hints)}: no such analysis; the analyses in {root} are {', '.join(names)}")
        out.mkdir(parents=True, exist_ok=True)
        entries, failed, t0 = [], 0, time.perf_counter()
        progress = _progress(quiet)
        if progress is not None:
            progress.start()
        try:
            for path in specs:
                name = path.parent.name
                if only and name not in only:
                    continue
                entry = {"name": name, "title": name, "question": "", "href": f"{name}/report.html",
                         "status": "ok", "message": "", "seconds": 0.0, "files": "", "synthetic": True,
                         "headline": []}
                try:
                    spec = load_spec(path)
                    entry.update(title=spec.title, question=spec.question, name=spec.name,
                                 href=f"{spec.name}/report.html")
                    if not spec.synthetic:
                        raise HostatsError(f"{path}: [data] has no synthetic scenario; run it with hostats run")
                    result = _run_one(spec, out / spec.name, progress)
                    manifest = json.loads((result.out_dir / "manifest.json").read_text())
                    entry.update(seconds=round(result.seconds, 1), headline=manifest.get("headline", []),
                                 files="estimates.csv, estimates.json, figures/, manifest.json")
                except HostatsError as exc:
                    failed += 1
                    entry.update(status="failed", message=str(exc), href=f"{name}/")
                    err_console.print(f"[bold red]failed:[/] {name}: {escape(safe(exc))}", highlight=False,
                                      soft_wrap=True)
                except Exception as exc:  # a bug: record it and go on with the other analyses
                    import traceback

                    failed += 1
                    log = out / f"{name}.error.txt"
                    log.write_text(traceback.format_exc(), encoding="utf-8")
                    entry.update(status="failed", message=f"internal error ({type(exc).__name__}: {exc}); "
                                 f"traceback in {log.name}", href=log.name)
                    err_console.print(f"[bold red]failed:[/] {name}: internal error {type(exc).__name__}: "
                                      f"{escape(safe(exc))} (traceback in {safe(log)})", highlight=False, soft_wrap=True)
                entries.append(entry)
        finally:
            if progress is not None:
                progress.stop()
        manifests = [out / e["name"] / "manifest.json" for e in entries if e["status"] == "ok"]
        index_manifest = build_manifest(
            analysis="reproduce", spec={"analyses": [e["name"] for e in entries]}, spec_path=None,
            inputs=hash_inputs([p for p in specs if p.exists()]), seed=None,
            timings={e["name"]: e["seconds"] for e in entries} | {"total": round(time.perf_counter() - t0, 2)},
            outputs=["index.html"] + [str(m.relative_to(out)) for m in manifests],
            extra={"failed": [e["name"] for e in entries if e["status"] == "failed"]})
        write_manifest(index_manifest, out / "manifest.json")
        render_index(entries, out / "index.html",
                     provenance={"hostats": index_manifest["packages"]["hostats"],
                                 "analyses": len(entries), "failed": failed,
                                 "total time": f"{index_manifest['timings_seconds']['total']:.1f} s"})
        if not quiet:
            console.print(f"[green]index:[/] {out / 'index.html'}  ({len(entries) - failed} of {len(entries)} "
                          f"analyses, {time.perf_counter() - t0:.1f} s)")
        if failed:
            raise typer.Exit(1)

    run_guarded(go)


_TABLE_HEADER = re.compile(r"^\s*\[")


def _point_spec_at(text: str, data: dict[str, str]) -> str:
    """The spec text with its ``[data]`` table replaced by ``data`` (keys in order), comments elsewhere kept."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"^\s*\[data\]\s*(#.*)?$", ln)), None)
    body = ["[data]"] + [f"{k} = {json.dumps(v)}" for k, v in data.items()] + [""]
    if start is None:
        return text.rstrip("\n") + "\n\n" + "\n".join(body)
    end = next((i for i in range(start + 1, len(lines)) if _TABLE_HEADER.match(lines[i])), len(lines))
    while end > start + 1 and lines[end - 1].lstrip().startswith("#"):  # comments of the next table stay
        end -= 1
    return "\n".join(lines[:start] + body + lines[end:]).rstrip("\n") + "\n"


@app.command()
def init(
    folder: Path = typer.Argument(..., help="New analysis folder to create."),
    source: str = typer.Option(..., "--from", help="Bundled analysis to start from (tha_incidence, prophylaxis, "
                               "neurogenic, resection_recurrence) or a path to an analysis.toml."),
    data: str = typer.Option(None, "--data", "-d", help="Export to analyse (a file or a study folder, copied "
                             "into FOLDER; a database URL is kept as it is)."),
    mapping: str = typer.Option(None, "--mapping", "-m", help="Mapping file of --data (copied into FOLDER)."),
    assessments: str = typer.Option(None, "--assessments", "-a", help="Assessments table of --data (copied)."),
    kind: KindOption = None,
    dictionary: DictionaryOption = None,
) -> None:
    """Start an analysis of your own export: copy a spec into FOLDER/analysis.toml and point its \\[data] at
    the export (copied into FOLDER, where a spec's data must lie). Then edit the spec and `hostats run FOLDER`."""
    def go():
        from hostats.analysis import load_spec

        src = _spec_path(Path(source))
        src = src / "analysis.toml" if src.is_dir() else src
        load_spec(src)  # a broken source spec is an error now, not after the copy
        if (folder / "analysis.toml").exists():
            fail(f"{folder / 'analysis.toml'} exists already; choose a new folder")
        if (mapping or assessments) and not data:
            fail("--mapping/--assessments need --data")
        _source_options(data, kind, dictionary, mapping)
        # a dictionary is a REDCap export's (as read_cohort takes it): the spec says so in words
        source_kind = kind or ("redcap" if dictionary is not None else None)
        copies = {}
        for key, value in (("path", data), ("kind", source_kind), ("dictionary", dictionary),
                           ("mapping", mapping), ("assessments", assessments)):
            if value is None:
                continue
            if key == "kind" or ("://" in value and key == "path"):  # not a file: written as it is
                copies[key] = (value, None)
                continue
            p = Path(value)
            if not p.exists():
                raise FileNotFoundError(2, f"--{'data' if key == 'path' else key} not found", value)
            clash = next((k for k, (name, q) in copies.items() if q is not None and name == p.name), None)
            if clash is not None:
                fail(f"--{'data' if clash == 'path' else clash} and --{key} are both called {p.name!r}: they "
                     "would be copied onto one another in FOLDER; rename one")
            copies[key] = (p.name, p)
        folder.mkdir(parents=True, exist_ok=True)
        for name, p in copies.values():
            if p is not None and p.is_dir():
                shutil.copytree(p, folder / name)
            elif p is not None:
                shutil.copy2(p, folder / name)
        text = src.read_text(encoding="utf-8")
        if copies:
            text = _point_spec_at(text, {k: v[0] for k, v in copies.items()})
        (folder / "analysis.toml").write_text(text, encoding="utf-8")
        load_spec(folder)  # what we wrote reads back
        console.print(f"wrote {folder / 'analysis.toml'} (from {src})" + (
            f" with its data in {folder}" if copies else "; set its [data] path and mapping") +
            f". Edit it, then: hostats run {folder}", highlight=False, markup=False, soft_wrap=True)

    run_guarded(go)


# synth (synthetic engineer: package synthetic/)
def _check_synthetic_n(option: str, n: int) -> None:
    """Exit with a one-line error unless ``n`` lies in the spec's bound on a synthetic cohort's size (the
    same bound as ``[data] synthetic`` n in a spec: ``hostats.analysis.spec.MAX_SYNTHETIC_N``)."""
    from hostats.analysis.spec import declared_range

    sizes = declared_range("synthetic", "n")
    if not sizes.holds(n):
        fail(f"{option} {n}: the number of episodes must be from {sizes.low} to {sizes.high:,} (beyond it the "
             "draw runs out of memory)")


@app.command()
def synth(
    scenario: str = typer.Argument(..., help="Scenario name (see synthetic/scenarios/*.toml)."),
    n: int = typer.Option(5000, "-n", "--n", help="Number of episodes."),
    seed: int = typer.Option(..., "--seed", help="Random seed (same seed, same bytes)."),
    out: str = typer.Option(..., "--out", help="Folder to write the study export into."),
    fault_rate: float = typer.Option(0.03, "--fault-rate", help="Share of export rows given a fault (0: none)."),
    excel_site: str = typer.Option(None, "--excel-site", help="Write this site's export as .xlsx."),
) -> None:
    """Draw a synthetic HO cohort and write per-site exports, mappings, export.toml and truth.json."""
    import synthetic

    if scenario not in synthetic.scenarios():
        fail(f"unknown scenario {scenario!r}; choose one of {', '.join(synthetic.scenarios())}")
    _check_synthetic_n("-n", n)
    try:
        cohort = synthetic.generate(scenario, n=n, seed=seed, fault_rate=fault_rate)
        folder = cohort.write(out, excel_site=excel_site)
    except ValueError as exc:
        fail(str(exc))
    faults = sum(cohort.truth["faults"].values())
    drawn = set(cohort.episodes["site"])
    empty = [s for s in cohort.parameters["sites"] if s not in drawn]  # no export written for them
    console.print(f"wrote {scenario} (n={n}, seed={seed}, {faults} injected fault(s)) to {folder}"
                  + (f"; no episodes, so no export, at site(s) {', '.join(empty)}" if empty else ""), highlight=False)


# simulate (simulation study: hostats.simstudy + analyses/simulation_study/study.py)
@app.command()
def simulate(
    scenario: str = typer.Argument(..., help="Study: tha_prophylaxis (no loss to follow-up), tha_prophylaxis_loss10, "
                                  "tha_prophylaxis_loss30, neurogenic, detection, resection_recurrence."),
    reps: int = typer.Option(..., "--reps", "-r", help="Number of replicates."),
    workers: int = typer.Option(1, "--workers", "-w", help="Local worker processes (joblib)."),
    dask: str = typer.Option(None, "--dask", help="dask.distributed scheduler address (e.g. tcp://host:8786)."),
    n: int = typer.Option(None, "--n", "-n", help="Patients per replicate (per site for resection_recurrence)."),
    seed: int = typer.Option(20261124, "--seed", help="Master seed (replicate i: SeedSequence(seed).spawn child i)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default reports/simulation_study/SCENARIO)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run a simulation study of hostats' estimators (bias, coverage, MCSE) and write its report.

    Replicates are appended to OUT/replicates.jsonl as they finish: rerunning resumes an interrupted study.
    """
    from hostats import simstudy

    if dask and workers != 1:
        fail("give --workers or --dask, not both")
    if n is not None:  # before anything is built or written: --n 10**12 would run out of memory
        _check_synthetic_n("--n", n)

    def go():
        path = _analyses_root() / "simulation_study" / "study.py"  # shipped in the wheel too
        module = simstudy.load_module(path)
        if n is not None and scenario in module.names():  # the study's own bound (per site: 30 sites of n)
            problem = module.n_problem(scenario, n)
            if problem is not None:
                fail(f"--n {n}: {problem}")
        try:
            study = module.build(scenario, n)
        except ValueError as exc:
            fail(str(exc))
        target = out or Path("reports") / "simulation_study" / scenario
        try:
            result = simstudy.run_study(study, reps, seed, n_jobs=workers, dask=dask, out=target, quiet=quiet)
        except ValueError as exc:
            fail(str(exc))
        backend = f"dask {dask}" if dask else f"joblib, {workers} worker(s)" if workers != 1 else "serial"
        report = simstudy.write_outputs(result, target, study_file=path, backend=backend)
        if not quiet:
            failed = len(result.failures)
            console.print(f"[green]report:[/] {report}  ({reps} replicates, {result.computed} computed now, "
                          f"{result.seconds:.1f} s, {failed} method failure(s))", highlight=False)

    run_guarded(go)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
