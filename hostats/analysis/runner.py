"""The runner: one spec to a report folder (:func:`run_analysis`), written into a staging folder and moved
into place only when everything succeeded; and the discovery of the analyses under ``analyses/``."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hostats.errors import EstimationError, HostatsError, SpecError
from hostats.provenance import Timer

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib
from hostats.analysis.context import Context, SectionOutput
from hostats.analysis.derive import KNOWN_FLAG, OUTCOME_FLAG, _derive
from hostats.analysis.expressions import _mask
from hostats.analysis.sections import SECTIONS
from hostats.analysis.spec import (
    Spec,
    _expr_names,
    load_spec,
    schema_columns,
    section_columns,
    source_problem,
)
from hostats.analysis.writer import _identifiers, _scan_outputs, _write_report
from hostats.report.disclosure import DisclosurePolicy, use_policy
from hostats.sources import READ_OPTIONS


@dataclass
class RunResult:
    name: str
    out_dir: Path
    report: Path
    estimates: pd.DataFrame
    seconds: float
    n_analysed: int
    synthetic: bool
    not_run: list[str] = field(default_factory=list)  # optional sections these data could not feed, and why


def _resolve(spec: Spec, value: str | None, key: str, allow_outside: bool = False) -> Path | None:
    """``[data] key`` relative to the spec's folder, refused when it leaves the folder (``..``, an absolute
    path, a symlink pointing elsewhere) unless ``allow_outside`` (as ``read_cohort`` does for export.toml)."""
    from hostats.ingest import EXPECTED_FILE, not_a_file

    if not value:
        return None
    p = Path(value)
    if not p.is_absolute():
        p = (spec.folder / p)
    if not allow_outside and "://" not in str(value):
        root, target = spec.folder.resolve(), p.resolve()
        if target != root and root not in target.parents:
            raise spec.error(f"{value!r} leaves the spec's folder {spec.folder}; the data of an analysis must lie "
                             "inside its folder (pass allow_outside=True to run_analysis, or "
                             "--allow-outside-paths to hostats run, if this is intended)", "data", key)
    if not p.exists():
        raise spec.error(f"file not found: {p}", "data", key)
    # [data] path may be a study folder (export.toml) or, with kind = "omop", a folder of CDM tables
    folder_ok = key == "path" and ((p / "export.toml").is_file() or spec.data.get("kind") == "omop")
    problem = not_a_file(p, folder_ok)
    if problem is not None:
        expected = EXPECTED_FILE[key]
        if key == "path":
            problem = "is a folder without export.toml" if p.is_dir() else problem
            expected += ', a study folder holding export.toml, or with kind = "omop" a folder of CDM tables'
        raise spec.error(f"{value!r} {problem}; expected {expected}", "data", key)
    return p


def run_analysis(spec: Spec | Path | str, out_dir: Path | str, *, data: Any = None, mapping: Any = None,
                 assessments: Any = None, kind: str | None = None, dictionary: Any = None,
                 read_options: dict[str, Any] | None = None,
                 prepare: Callable[[Path], tuple[Any, dict | None, dict]] | None = None,
                 progress: Any = None, allow_outside: bool | None = None) -> RunResult:
    """Run one analysis spec to a report folder ``out_dir`` (replaced only when the run succeeds).

    data/mapping/assessments/kind/dictionary: override the spec's ``[data]`` (e.g. ``hostats run ... --data
        FILE --kind redcap --dictionary DICT``). With ``data``, the spec's files (mapping, assessments,
        dictionary), kind and read options (``sheet``, ``table``, ``query``) describe another file and are not
        used: only these arguments describe ``data``.
    read_options: ``{"sheet": ..., "table": ..., "query": ...}`` for ``data`` (``hostats run --sheet/--table/
        --query``); only with ``data``. Without ``data`` the spec's ``[data]`` keys are used.
    prepare: called with the staging folder before reading; returns ``(source, truth, info)`` -- the
        command line uses it to write a synthetic study folder (outside the report) and pass the truth in.
    progress: an object with ``advance(description)`` (the CLI's rich progress bar) or None.
    allow_outside: follow ``[data]`` paths (and export.toml paths) that leave the spec's (study) folder;
        refused by default (default: False, or True inside :func:`hostats.cohort.allow_outside_paths`).
    """
    from hostats.cohort import _ALLOW_OUTSIDE, read_cohort

    if allow_outside is None:
        allow_outside = _ALLOW_OUTSIDE.get()

    timer = Timer()
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    options = {k: v for k, v in (read_options or {}).items() if v is not None}
    if options and data is None:
        raise SpecError(f"{', '.join(options)}: read options given to the run describe its data: give data too "
                        "(without it the spec's [data] keys are used)")
    if kind is not None or dictionary is not None or options:   # the spec's own [data] was checked when read
        given = {"kind": kind, "dictionary": None if dictionary is None else str(dictionary), "mapping": mapping}
        problem = source_problem(*given.values(), options, data)
        if problem is not None:
            value = options.get(problem[0], given.get(problem[0]))
            raise SpecError(f"{problem[0]}={value!r}: {problem[1]}")
    if (kind is not None or dictionary is not None) and data is None:
        # the spec's sheet, table or query go to the read of its own path: refused, not ignored, with a
        # structured source (with other data they are not used: they belong to the spec's data)
        problem = source_problem(kind, given["dictionary"], None, {k: spec.data.get(k) for k in READ_OPTIONS})
        if problem is not None:
            raise spec.error(f"{problem[1]}; this run reads a {kind or 'redcap'} source (kind/dictionary given to "
                             "the run)", "data", problem[0])
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    step = (progress.advance if progress is not None else (lambda _msg: None))
    try:
        truth, info = None, {}
        source = data
        if prepare is not None and data is None:
            with timer.step("generate synthetic data"):
                source, truth, info = prepare(staging)
            step("synthetic data written")
        if source is None:
            source = _resolve(spec, spec.data.get("path"), "path", allow_outside)
            mapping = (mapping if mapping is not None
                       else _resolve(spec, spec.data.get("mapping"), "mapping", allow_outside))
            assessments = (assessments if assessments is not None
                           else _resolve(spec, spec.data.get("assessments"), "assessments", allow_outside))
            dictionary = (dictionary if dictionary is not None
                          else _resolve(spec, spec.data.get("dictionary"), "dictionary", allow_outside))
            kind = kind if kind is not None else spec.data.get("kind")
        elif isinstance(source, (str, Path)) and not Path(source).exists() and "://" not in str(source):
            raise HostatsError(f"data file not found: {source}")
        with timer.step("read and clean"):
            # the spec's sheet/table/query are for its own data; other data come with their own options
            kw = options if data is not None else {k: spec.data[k] for k in READ_OPTIONS if k in spec.data}
            cohort = read_cohort(source, mapping, assessments, allow_outside=allow_outside, kind=kind,
                                 dictionary=dictionary, **kw)
        step("data read and cleaned")
        episodes = cohort.episodes
        _check_data_columns(spec, episodes)
        with timer.step("criteria"):
            _derive(spec, episodes, spec.horizon)
            for i, c in enumerate(spec.criteria):
                keep = _mask(spec, cohort.episodes, c["keep"], "criteria", "keep", i)
                if not keep.any():
                    raise spec.error(f"criterion {c['name']!r} ({c['keep']!r}) excludes every episode "
                                     f"({len(keep)} before it)", "criteria", "keep", i)
                cohort = cohort.filter(c["name"], c["keep"])
            ep = cohort.episodes
            if OUTCOME_FLAG not in ep.columns or any(d["name"] not in ep.columns for d in spec.derive):
                _derive(spec, ep, spec.horizon)
            ev_col = spec.outcome.get("event", "ho")
            if ev_col not in ep.columns:
                raise spec.error(f"unknown column {ev_col!r}; the data have: {', '.join(sorted(ep.columns))}",
                                 "outcome", "event")
            if int(pd.Series(ep[ev_col]).fillna(False).astype(bool).sum()) == 0:
                raise spec.error(f"the outcome {ev_col!r} has no events among the {len(ep)} analysed episodes",
                                 "outcome", "event")
        step("criteria applied")
        ctx = Context(spec=spec, data=ep, assessments=cohort.assessments, truth=truth, threshold=spec.threshold,
                      level=spec.level, horizon=spec.horizon)
        outputs, not_run = _run_sections(spec, ctx, ep, timer, step)
        with timer.step("report"):
            result = _write_report(spec, ctx, cohort, outputs, staging, truth, info, timer, source,
                                   {"kind": kind, "mapping": mapping, "assessments": assessments,
                                    "dictionary": dictionary})
        step("report written")
        with timer.step("disclosure check"):
            _scan_outputs(staging, *_identifiers(episodes))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RunResult(name=spec.name, out_dir=out_dir, report=out_dir / "report.html", estimates=result,
                     seconds=timer.total, n_analysed=len(ep), synthetic=truth is not None, not_run=not_run)


def _run_sections(spec: Spec, ctx: Context, ep: pd.DataFrame, timer: Timer,
                  step: Callable[[str], Any]) -> tuple[list[SectionOutput], list[str]]:
    """Every section of the spec on the analysed episodes, under the spec's disclosure policy. A section
    that cannot run stops the run with a spec error at its line, unless it is optional (then it is reported
    as not run)."""
    outputs: list[SectionOutput] = []
    not_run: list[str] = []
    with use_policy(DisclosurePolicy.from_report(spec.report)):  # counts in the sections' figures, tables
        for sec in spec.sections:
            with timer.step(f"section {sec['id']}"):
                lacking = _lacking(sec, spec, ep)
                try:
                    if lacking:
                        raise SpecError(f"the data have no column {lacking[0][0]!r}")
                    outputs.append(SECTIONS[sec["type"]](ctx, sec))
                except (SpecError, EstimationError, ValueError) as exc:
                    if sec.get("optional"):
                        outputs.append(_not_run(sec, lacking, exc))
                        not_run += outputs[-1].warnings
                    elif lacking:
                        name, key = lacking[0]
                        raise spec.error(_lacking_message(spec, name) + "; map it in the export's mapping, "
                                         "or set optional = true in this section to report it as not run",
                                         "section", key, sec["_index"]) from None
                    elif isinstance(exc, SpecError):
                        raise
                    else:
                        raise spec.error(f"{sec.get('title', sec['type'])}: cannot be estimated on these "
                                         f"data: {exc} (optional = true reports such a section as not "
                                         "estimable instead)", "section", "type", sec["_index"]) from None
            step(f"section {sec.get('title', sec['id'])}")
    return outputs, not_run


def _lacking(sec: dict, spec: Spec, data: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, key) pairs the section names that the analysed episodes do not have (an optional column of
    the schema the export lacks, or a derived column left out because of one)."""
    return [(n, k) for n, k in section_columns(sec, spec) if n not in data.columns and n != "ho_event"]


def _lacking_message(spec: Spec, name: str) -> str:
    derived = next((d for d in spec.derive if d["name"] == name), None)
    if derived is not None:
        return (f"the data have no column {name!r}: it is derived from {derived['expr']!r}, which needs a column "
                "this export does not have")
    return f"the data have no column {name!r} (an optional column of the schema that this export does not have)"


def _not_run(sec: dict, lacking: list[tuple[str, str]], exc: Exception) -> SectionOutput:
    """What the report shows for an optional section that could not run on these data."""
    why = (f"the data have no column {lacking[0][0]!r}" if lacking
           else f"cannot be estimated on these data: {exc}")
    out = SectionOutput()
    out.warn(sec, f"not run ({why}); the section is optional in the spec.")
    return out


def _check_data_columns(spec: Spec, episodes: pd.DataFrame) -> None:
    """Before any computation: the columns the spec needs outside its optional parts are in the data
    (a schema column the export does not map is named with the line that needs it)."""
    have = set(episodes.columns) | {d["name"] for d in spec.derive} | {OUTCOME_FLAG, KNOWN_FLAG}
    absent = schema_columns() - set(episodes.columns)
    need = [(spec.outcome.get("event"), "outcome", "event", None),
            (spec.exposure.get("column"), "exposure", "column", None)]
    need += [(c, "adjustment", "confounders", None) for c in spec.adjustment.get("confounders", [])]
    need += [(v, "report", "table1", None) for v in spec.report.get("table1") or []]
    need += [(spec.report.get("table1_by"), "report", "table1_by", None)]
    for i, d in enumerate(spec.derive):
        if not d.get("optional"):
            need += [(n, "derive", "expr", i) for n in _expr_names(d["expr"])]
    for sec in spec.sections:
        if not sec.get("optional"):
            need += [(n, "section", k, sec["_index"]) for n, k in section_columns(sec, spec)]
    for name, table, key, index in need:
        if isinstance(name, str) and name not in have and name in absent:
            raise spec.error(f"the data have no column {name!r} (an optional column of the schema that this "
                             "export does not have): map it in the export's mapping" +
                             (", or set optional = true here" if table in ("derive", "section") else ""),
                             table, key, index)


def discover(root: Path | str = "analyses") -> list[Path]:
    """Every ``analyses/*/analysis.toml`` under ``root``, sorted by name; simulation studies (a
    ``[simulation]`` table, run by ``hostats simulate``) are not analyses and are left out."""
    return sorted(p for p in Path(root).glob("*/analysis.toml") if not is_simulation_spec(p))


def is_simulation_spec(path: Path | str) -> bool:
    """True when an analysis.toml declares a ``[simulation]`` table (analyses/simulation_study)."""
    try:
        with open(path, "rb") as fh:
            return "simulation" in tomllib.load(fh)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # load_spec reports the problem with its line
