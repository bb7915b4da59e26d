"""Writing a run's outputs: estimates.csv/json, figures, report.html (with the methods paragraphs), the
manifest (with the headline rows of the index page), and the disclosure scan of everything written."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hostats.analysis.context import Context, PublishedFigure, SectionOutput
from hostats.analysis.derive import FOLLOWUP_TOLERANCE_DAYS, KNOWN_FLAG, OUTCOME_FLAG
from hostats.analysis.spec import Spec
from hostats.errors import DataError, HostatsError
from hostats.provenance import Timer, build_manifest, hash_inputs, write_manifest
from hostats.report.disclosure import DisclosurePolicy, use_policy
from hostats.report.html import FigureBlock, ReportContent, _who, render_report, source_reasons
from hostats.report.labels import format_estimate, group_label, in_sentence, measure_label, variable_label
from hostats.report.tables import (
    ESTIMATE_COLUMNS,
    check_no_identifiers,
    format_count,
    format_number,
    redact_text,
    suppress_estimates,
    write_csv,
)

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _scan_outputs(folder: Path, ids: set[str], dates: set[str]) -> None:
    """Refuse to publish when an identifier or an exact record date of the input appears in an output.

    Defence in depth behind the report layer's rules: every text output is tokenised and checked against
    the input's patient IDs and its record dates (ISO form).
    """
    if not ids and not dates:
        return
    token = re.compile(r"[A-Za-z0-9_\-]+")
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.suffix not in (".html", ".csv", ".json", ".svg", ".txt", ".tex", ".docx", ".xlsx"):
            continue
        text = _office_text(p) if p.suffix in (".docx", ".xlsx") else p.read_text(encoding="utf-8", errors="replace")
        if p.name == "manifest.json":  # the run's own timestamp is not a record date
            text = re.sub(r'"created_utc": "[^"]*"', "", text)
        found = (set(token.findall(text)) & ids) if ids else set()
        found |= set(_ISO_DATE.findall(text)) & dates
        if found:
            raise HostatsError(f"disclosure check failed: {p.relative_to(folder)} would contain "
                               f"{len(found)} patient identifier(s) or exact date(s) of the input; nothing was "
                               "published")


def _office_text(path: Path) -> str:
    """The text of a Word or Excel file: what its XML parts (a zip of them) hold between their tags; the
    tags and their attributes (sizes, widths, revision ids) are layout, not content, and are left out, and
    so are the file's properties (docProps/: the library's name, the template's and the save's time), as
    the run's own timestamp is in manifest.json."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        parts = [z.read(n).decode("utf-8", errors="replace") for n in z.namelist()
                 if n.endswith(".xml") and not n.startswith("docProps/")]
    return "\n".join(re.sub(r"<[^>]*>", " ", x) for x in parts)


def _identifiers(episodes: pd.DataFrame) -> tuple[set[str], set[str]]:
    """Patient IDs (those long enough to be recognisable) and record dates (ISO) of the input."""
    from hostats.schema import IDENTIFYING

    ids: set[str] = set()
    if "patient_id" in episodes.columns:
        # purely numeric IDs are checked only when long (a short one is indistinguishable from a count)
        ids = {v for v in pd.unique(episodes["patient_id"].dropna().astype(str))
               if len(v) >= (6 if v.isdigit() else 4)}
    dates: set[str] = set()
    for c in IDENTIFYING:
        if c in episodes.columns and pd.api.types.is_datetime64_any_dtype(episodes[c]):
            dates |= set(pd.unique(episodes[c].dropna().dt.strftime("%Y-%m-%d")))
    return ids, dates


def _methods_paragraphs(spec: Spec, ctx: Context, outputs: list[SectionOutput], n: int,
                        source_desc: str) -> tuple[list[str], list[str]]:
    refs: list[str] = []

    def cite(ref: str) -> str:
        if not ref:
            return ""
        if ref not in refs:
            refs.append(ref)
        return f"[{refs.index(ref) + 1}]"

    labels = spec.report.get("labels")
    exposure = ""
    if spec.exposure.get("column"):   # named as Table 1 and the model tables name it, not by its column
        ref, confounders = spec.exposure.get("reference"), spec.adjustment.get("confounders", [])
        exposure = (f"Exposure: {spec.exposure.get('label') or variable_label(spec.exposure['column'], labels)}"
                    + (f" (reference: {group_label(str(ref))})" if ref is not None else "")
                    + (f"; confounders: {', '.join(variable_label(c, labels) for c in confounders)}"
                       if confounders else "") + ". ")
    crit = "; ".join(f"{c['name']} ({c['keep']})" for c in spec.criteria) or "all episodes"
    o = spec.outcome
    comp = ("death before HO was treated as a competing event" if o.get("competing") == "death"
            else "deaths were censored")
    paras = [f"Data: {source_desc}. Episodes were selected by the criteria {crit}, each a recorded step of the "
             f"flow diagram; {format_count(n, ctx.threshold)} episodes were analysed. The outcome was "
             f"{o.get('label', 'heterotopic ossification (HO) detected in follow-up')}, with a horizon of "
             f"{int(spec.horizon)} days from the index event; {comp}. "
             + exposure
             + f"Confidence intervals are {int(ctx.level * 100)}%."]
    for sec, out in zip(spec.sections, outputs, strict=True):
        parts = []
        for method, ref in out.methods:
            if method:
                c = cite(ref)
                parts.append(f"{method} {c}".strip())
        if parts:
            paras.append(f"{sec.get('title', sec['type'])}: " + "; ".join(dict.fromkeys(parts)) + ".")
    if any(k.endswith("_complete_case") for o in outputs for k in o.subsections):
        paras.append(f"Risks of HO by {int(spec.horizon)} days were estimated from the follow-up of every episode, "
                     "with loss to follow-up as (independent) censoring and death before HO as a competing event: "
                     "Aalen-Johansen estimates, adjusted risks by inverse probability of treatment weighting "
                     "(weighted Aalen-Johansen), the g-formula (cause-specific Cox models), IPTW with inverse "
                     "probability of censoring weights and the doubly robust AIPTW, and odds ratios of the risk by "
                     "binomial regression with inverse probability of censoring weights. Analyses restricted to "
                     f"episodes whose status at {int(spec.horizon)} days was known (HO or death within it, or "
                     f"follow-up reaching to within {FOLLOWUP_TOLERANCE_DAYS} days of it) are reported as "
                     "sensitivity analyses only: they are biased upward when patients are lost to follow-up.")
    elif any(KNOWN_FLAG in str(s.get("subset", "")) for s in spec.sections):
        paras.append(f"Some yes/no outcomes were analysed among episodes whose status at {int(spec.horizon)} days "
                     "was known; this is biased when patients are lost to follow-up before the horizon.")
    paras.append(DisclosurePolicy.from_report(spec.report).describe()
                 + " Computed with hostats; package versions are in manifest.json.")
    return paras, refs


def _term_names(spec: Spec, ctx: Context, outputs: list[SectionOutput], shown: pd.DataFrame
                ) -> dict[str, dict[str, str]]:
    """{section (or sensitivity subsection) id: {model term: label}}: the terms of its published estimates in
    the model tables' words, with its data for the reference level ("Sex: male (ref. female)"), as its model
    table and forest plot name them."""
    from hostats.analysis.sections._common import _section_frame
    from hostats.report.publication import term_labels

    out: dict[str, dict[str, str]] = {}
    if "term" not in shown.columns:
        return out
    for sec, o in zip(spec.sections, outputs, strict=True):
        ids = [sec["id"], *o.subsections]
        terms = [t for t in shown.loc[shown["section"].isin(ids), "term"].dropna().astype(str).unique() if t]
        if terms:
            named = term_labels(terms, _section_frame(ctx, sec), labels=spec.report.get("labels"))
            out.update(dict.fromkeys(ids, named))
    return out


def _headline(spec: Spec, est: pd.DataFrame, term_names: dict[str, dict[str, str]] | None = None
              ) -> list[dict[str, str]]:
    """A few rows for the index page: ``[report] headline`` entries "section" or "section/measure" (curve
    values at the horizon only), else the first rows; model terms named as the report names them
    (``term_names``: :func:`_term_names`)."""
    if "time_days" in est.columns:
        est = est[est["time_days"].isna() | np.isclose(est["time_days"].astype(float), spec.horizon)]
    picks = []
    for h in spec.report.get("headline") or []:
        sec, _, measure = str(h).partition("/")
        rows = est[est["section"] == sec]
        picks.append((rows[rows["measure"] == measure] if measure else rows).head(6))  # every entry kept
    rows = pd.concat(picks) if picks else est.head(3)
    out = []
    for _, r in rows.iterrows():
        est_v = r["estimate"]
        if est_v is None or (isinstance(est_v, float) and math.isnan(est_v)):
            value = "withheld (small numbers)"
        elif r["ci_lower"] is None or pd.isna(r["ci_lower"]):
            value = format_number(est_v)
        else:   # as the report's summary writes it
            value = format_estimate(est_v, r["ci_lower"], r["ci_upper"])
        who = _who(str(r["section"]), str(r["group"] or ""), str(r["term"] or ""), spec.report.get("labels") or {},
                   term_names)
        label = measure_label(r["measure"]) + (f", {who}" if who else "")
        tv = r.get("truth")
        out.append({"label": label, "value": value,
                    "truth": format_number(tv) if tv is not None and not pd.isna(tv) else ""})
    return out


def _write_report(spec: Spec, ctx: Context, cohort, outputs: list[SectionOutput], folder: Path,
                  truth: dict | None, info: dict, timer: Timer, source: Any,
                  read_with: dict[str, Any] | None = None) -> pd.DataFrame:
    """Write every output of a run under the spec's disclosure policy (``[report] small_cell_threshold``,
    ``rounding``): the same count is published the same way in the HTML, the CSV/JSON and the figures.

    ``read_with``: what else decided how ``source`` was read (``kind``, and the ``mapping``, ``assessments``
    and ``dictionary`` files); the files are hashed into manifest.json with the export."""
    policy = DisclosurePolicy.from_report(spec.report)
    with use_policy(policy):
        return _write_outputs(spec, ctx, cohort, outputs, folder, truth, info, timer, source, policy,
                              dict(read_with or {}))


def _describe_source(source: Any, read_with: dict[str, Any]) -> str:
    """The data line of a report for a user's own export: file names only (never a path or a URL's
    credentials), the kind of source and the files it was read with."""
    def name(p: Any) -> str:
        text = str(p)
        return text.rsplit("/", 1)[-1].split("?", 1)[0] if "://" in text else Path(text).name

    if isinstance(source, (str, Path)):
        desc = name(source)
        if "://" in str(source):
            desc = f"database {desc} ({str(source).split('://', 1)[0]})"
    elif isinstance(source, (list, tuple)) and all(isinstance(p, (str, Path)) for p in source):
        desc = f"{len(source)} exports: {', '.join(name(p) for p in source)}"
    else:
        desc = "a data frame"
    kind = read_with.get("kind")
    if kind == "redcap":
        desc = f"REDCap export {desc}"
    elif kind == "omop":
        desc = f"OMOP CDM {desc}"
    used = [f"{what} {name(read_with[key])}" for key, what in (("dictionary", "data dictionary"),
                                                               ("mapping", "mapping"),
                                                               ("assessments", "assessments"))
            if read_with.get(key) is not None]
    return desc + (f", read with its {', '.join(used)}" if used else "")


def _write_outputs(spec: Spec, ctx: Context, cohort, outputs: list[SectionOutput], folder: Path,
                   truth: dict | None, info: dict, timer: Timer, source: Any,
                   policy: DisclosurePolicy, read_with: dict[str, Any]) -> pd.DataFrame:
    from hostats.report.figures import save_figure
    from hostats.schema import IDENTIFYING

    thr = ctx.threshold
    frames = [f for o in outputs for f in o.estimates]
    est = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ESTIMATE_COLUMNS))
    extra = [c for c in est.columns if c not in ESTIMATE_COLUMNS]
    est = est[[c for c in ESTIMATE_COLUMNS if c in est.columns] + extra]
    if truth is None:
        est = est.drop(columns=["truth"])
    shown = suppress_estimates(est, thr, policy)   # the one decision of what is withheld
    _section_tables_from_published(outputs, shown)
    term_names = _term_names(spec, ctx, outputs, shown)
    check_no_identifiers([shown], IDENTIFYING)
    write_csv(shown, folder / "estimates.csv")
    records = json.loads(shown.to_json(orient="records", double_precision=10))
    (folder / "estimates.json").write_text(json.dumps({"analysis": spec.name, "ci_level": ctx.level,
                                                       "small_cell_threshold": thr,
                                                       "rounding": policy.rounding, "estimates": records},
                                                      indent=1) + "\n", encoding="utf-8")
    figdir = folder / "figures"
    figures = []
    for o in outputs:
        for item in o.figures:
            # a figure of a section's estimates is drawn now, from the published rows: the same decision
            drawn = item.drawn(shown) if isinstance(item, PublishedFigure) else item
            if drawn is None:   # every estimate it would draw is withheld
                continue
            name, title, caption, fig = drawn
            saved = save_figure(fig, figdir, name)
            figures.append(FigureBlock(name=name, title=title, caption=caption, **saved))
    # Table 1: the manuscript's table, laid out once for the report and tables.docx/xlsx/tex alike
    t1 = None
    t1_vars = spec.report.get("table1")
    if t1_vars:
        by = spec.report.get("table1_by", spec.exposure.get("column"))
        for v in list(t1_vars) + ([by] if by else []):
            if v not in ctx.data.columns:
                raise spec.error(f"unknown column {v!r}; the data have: {', '.join(sorted(ctx.data.columns))}",
                                 "report", "table1" if v in t1_vars else "table1_by")
        t1 = _manuscript_table1(spec, ctx, outputs, policy)
    flow = cohort.flow()
    n = len(ctx.data)
    if truth is not None:
        scen = ", ".join(f"{s['scenario']} (n = {s['n']}, seed {s['seed']})" for s in spec.synthetic)
        source_desc = (f"synthetic cohort(s) {scen} generated by hostats' synthetic package and written as "
                       "site exports with injected faults, then read and cleaned like real data")
    else:
        source_desc = _describe_source(source, read_with)
    methods, refs = _methods_paragraphs(spec, ctx, outputs, n, source_desc)
    data_lines = [source_desc]
    if truth is not None and isinstance(info, dict) and info.get("faults"):
        faults = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info["faults"].items())
        data_lines.append(redact_text(f"Faults injected by the generator (to be found by the cleaning; exact "
                                      f"counts in manifest.json): {faults}.", thr))
    if truth is not None and isinstance(info, dict) and info.get("regenerate"):
        data_lines.append("The generated exports are not kept beside the report (they hold row-level data); "
                          "regenerate them byte for byte (SHA-256 in manifest.json) with: "
                          + "; ".join(info["regenerate"]))
    downloads = _write_manuscript_tables(spec, ctx, t1, shown, folder)
    files = ["report.html", "estimates.csv", "estimates.json", "manifest.json"] + [f for f, _ in downloads] + \
        [f"figures/{f.png}" for f in figures] + [f"figures/{f.svg}" for f in figures]
    given = ([source] if not isinstance(source, list) else list(source)) + \
        [read_with.get(k) for k in ("mapping", "assessments", "dictionary")]
    src_paths = list(dict.fromkeys(Path(p) for p in given if isinstance(p, (str, Path)) and Path(p).exists()))
    # a generated study folder lives outside the report: name its files relative to it, not to a temp path
    generated = truth is not None and bool(src_paths) and all(Path(q).is_dir() for q in src_paths)
    root = Path(os.path.commonpath([str(q) for q in src_paths])) if generated else folder
    inputs = hash_inputs(src_paths, root=root)
    prov = {"analysis": spec.name, "spec": str(spec.path.name), "seed": spec.seed, "hostats": _version(),
            "input files": f"{len(inputs)} (SHA-256 in manifest.json)",
            "episodes analysed": format_count(n, thr), "run time": f"{timer.total:.1f} s"}
    content = ReportContent(
        name=spec.name, title=spec.title, question=spec.question, data_source=data_lines,
        synthetic=truth is not None, threshold=thr, flow=flow,
        criteria=[f"{c['name']}: {c.get('description') or c['keep']}" for c in spec.criteria],
        criteria_steps=[c["name"] for c in spec.criteria],
        table1=t1, estimates=shown,
        section_titles={**{s["id"]: s.get("title", s["type"]) for s in spec.sections},
                        **{k: v[0] for o in outputs for k, v in o.subsections.items()}},
        section_notes={**{s["id"]: s["description"] for s in spec.sections if s.get("description")},
                       **{k: v[1] for o in outputs for k, v in o.subsections.items()}},
        figures=figures, extra_tables=[t for o in outputs for t in o.tables],
        diagnostics=[t for o in outputs for t in o.diagnostics], warnings=[w for o in outputs for w in o.warnings],
        sensitivity=[t for o in outputs for t in o.sensitivity], methods=methods, references=refs,
        provenance=prov, files=files, headline=[str(h) for h in spec.report.get("headline") or []],
        horizon=spec.horizon, labels=dict(spec.report.get("labels") or {}), term_names=term_names,
        flow_reasons=source_reasons(cohort.ledger.steps), policy=policy, downloads=downloads)
    render_report(content, folder / "report.html")
    manifest = build_manifest(
        analysis=spec.name, spec=spec.raw, spec_path=spec.path, inputs=inputs, seed=spec.seed,
        timings=timer.timings, outputs=files,
        extra={"publication": "not for publication: the analyst's record of the run, with exact counts "
                              "(episodes_analysed; for synthetic data, the injected faults). The report's other "
                              "files are published under its disclosure control.",
               "synthetic": info if truth is not None else None, "episodes_analysed": n,
               "cohort_provenance": _safe_provenance(getattr(cohort, "provenance", {})),
               "headline": _headline(spec, shown, term_names)})
    manifest["timings_seconds"]["total"] = timer.total
    write_manifest(manifest, folder / "manifest.json")
    return shown


def _section_tables_from_published(outputs: list[SectionOutput], shown: pd.DataFrame) -> None:
    """The tables a section asks for that repeat some of its estimates (E-values of its ratios), built now
    from ``shown``, the estimates as published: a row estimates.csv withholds (small numbers, or a contrast
    that would give a withheld arm back) is withheld in them by that same decision, not by a second rule."""
    from hostats.analysis.sections.causal import e_value_table

    for out in outputs:
        for req in out.e_values:
            block = e_value_table(req, shown, out)
            if block is not None:
                out.sensitivity.append(block)


MANUSCRIPT_FILES = (("tables.docx", "Word"), ("tables.xlsx", "Excel, a sheet per table"),
                    ("tables.tex", "LaTeX with booktabs"))
# the section types whose estimates make a model table of ratios by term (iptw sections: a contrast table)
_MODEL_SECTIONS = ("logistic", "cox", "fine_gray")


def _write_manuscript_tables(spec: Spec, ctx: Context, table1: Any, shown: pd.DataFrame,
                             folder: Path) -> list[tuple[str, str]]:
    """Table 1 (``table1``, the report's, or None) and a model table per regression or ``iptw`` section, for a
    manuscript, written beside the report as Word, Excel and LaTeX; returns ``[(file, what it is)]`` (none
    when there is no table).

    Their numbers are the report's: Table 1 is counted under the report's disclosure policy (set by the
    caller) and the model tables are laid out from ``shown``, the estimates as published in estimates.csv
    (withheld estimates stay withheld; counts are the published ones), so no file shows a count or an
    estimate that the HTML hides."""
    from hostats.report.publication import save_tables

    tables = [table1] if table1 is not None else []
    tables += _model_tables(spec, ctx, shown, first_number=len(tables) + 1)
    if not tables:
        return []
    for name, _ in MANUSCRIPT_FILES:
        save_tables(folder / name, tables)
    return list(MANUSCRIPT_FILES)


def _manuscript_table1(spec: Spec, ctx: Context, outputs: list[SectionOutput], policy: DisclosurePolicy):
    """Table 1 by the exposure (``[report] table1_by``), with the IPTW-weighted columns of the first ``iptw``
    section weighting that column, when there is one; counted under ``policy`` (the report's)."""
    from hostats.report.publication import table1

    labels = dict(spec.report.get("labels") or {})
    by = spec.report.get("table1_by", spec.exposure.get("column"))
    weighting, note = _table1_weighting(spec, outputs, by) if by else (None, "")
    title = "Table 1. Characteristics of the episodes analysed" + (f", by {in_sentence(variable_label(by, labels))}"
                                                                  if by else "")
    try:
        t = table1(ctx.data, list(spec.report["table1"]), by=by, iptw=weighting, labels=labels,
                   threshold=ctx.threshold, title=title)
    except DataError as exc:   # the weighting's arms are not Table 1's groups
        if weighting is None:
            raise
        t = table1(ctx.data, list(spec.report["table1"]), by=by, labels=labels, threshold=ctx.threshold, title=title)
        note = f"IPTW-weighted columns not shown: {exc}"
    if note:
        t.footnotes.append(note)
    if policy.base > 1:
        t.footnotes.append(f"Counts rounded to the nearest {policy.base}; percentages from the rounded counts.")
    return t


def _table1_weighting(spec: Spec, outputs: list[SectionOutput], by: str) -> tuple[Any, str]:
    """The weighting of the first ``iptw`` section on all analysed episodes whose treatment is ``by``, as
    the section fitted it (:class:`hostats.analysis.context.FittedWeighting`: its weights, estimand and arms;
    not fitted again), for Table 1's weighted columns; a section on a subset weights another population."""
    for sec, out in zip(spec.sections, outputs, strict=True):
        w = out.weighting
        if sec["type"] != "iptw" or w is None or sec.get("subset") or w.treatment != by:
            continue
        return w, ""
    return None, ""


def _model_tables(spec: Spec, ctx: Context, shown: pd.DataFrame, first_number: int) -> list:
    """One table per ``logistic``, ``cox``, ``fine_gray`` (ratios by model term) and ``iptw`` section (risks
    and contrasts by method), from the published estimates of the section (not of its sensitivity
    analyses)."""
    from hostats.analysis.sections._common import _section_frame
    from hostats.report.publication import contrast_table_from_estimates, model_table_from_estimates

    labels = dict(spec.report.get("labels") or {})
    tables = []
    for sec in spec.sections:
        rows = shown[shown["section"] == sec["id"]]
        title = f"Table {first_number + len(tables)}. {sec.get('title', sec['id'])}"
        if rows.empty or sec["type"] not in (*_MODEL_SECTIONS, "iptw"):
            continue
        notes = ([f"Risks of HO by day {int(ctx.horizon)} from the follow-up of every episode."]
                 if sec["type"] == "iptw" and sec.get("outcome", OUTCOME_FLAG) == OUTCOME_FLAG else [])
        try:
            tables.append(contrast_table_from_estimates(rows, threshold=ctx.threshold, title=title, notes=notes)
                          if sec["type"] == "iptw" else
                          model_table_from_estimates(rows, _section_frame(ctx, sec), labels=labels,
                                                     threshold=ctx.threshold, title=title))
        except DataError:   # no ratios of terms (or contrasts of arms) among its rows: no table
            continue
    return tables


def _safe_provenance(p: Any) -> Any:
    """The cohort's provenance without the mapping (which names source columns, e.g. the ID column)."""
    if not isinstance(p, dict):
        return None
    return {k: v for k, v in p.items() if k not in ("mapping", "mappings")}


def _version() -> str:
    from hostats import __version__

    return __version__
