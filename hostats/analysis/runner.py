"""Declarative analyses: the ``analysis.toml`` spec, its validation, and the runner that turns a cohort
into a report folder (report.html, estimates.csv/json, figures/, manifest.json).

A spec says, in the user's terms, which data, which episodes (criteria: each a named ledger step and a
box in the flow diagram), which outcome and horizon, which exposure and confounders, which estimators
(``[[section]]`` entries) and how the report is made. Every mistake in a spec is a ``SpecError`` naming
the spec file, the line and the key. A run writes into a temporary folder and moves it into place only
when everything succeeded, so a failed run never leaves a report that looks complete.

This module never imports ``synthetic``: for synthetic data the command line generates the study folder
(through the ``prepare`` callback of ``run_analysis``) and passes the truth in.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from hostats.errors import DataError, EstimationError, HostatsError, SpecError
from hostats.provenance import Timer, build_manifest, hash_inputs, write_manifest
from hostats.report.html import FigureBlock, ReportContent, TableBlock, render_report
from hostats.report.tables import (
    ESTIMATE_COLUMNS,
    check_no_identifiers,
    format_count,
    format_counts,
    format_number,
    redact_text,
    suppress_estimates,
    table_one,
    write_csv,
)
from hostats.stats._formula import formula_columns

DAYS_PER_YEAR = 365.25
OUTCOME_FLAG = "ho_within_horizon"  # derived: HO detected within the horizon (before death)

# allowed keys per table: a typo in a spec is an error, not a silently ignored setting
_KEYS: dict[str, set[str]] = {
    "analysis": {"name", "title", "question", "seed"},
    "data": {"synthetic", "path", "mapping", "assessments", "sheet", "table", "query", "description"},
    "synthetic": {"scenario", "n", "seed", "fault_rate", "overrides"},
    "criteria": {"name", "keep", "description"},
    "derive": {"name", "expr", "labels", "bins", "description", "where", "otherwise"},
    "outcome": {"event", "horizon_days", "competing", "label"},
    "exposure": {"column", "reference", "label"},
    "adjustment": {"confounders", "methods", "estimand"},
    "report": {"small_cell_threshold", "ci_level", "truth", "table1", "table1_by", "risk_times", "headline",
               "labels"},
}
_SECTION_KEYS: dict[str, set[str]] = {
    "cumulative_incidence": {"by", "times", "truth", "figure"},
    "proportion": {"event", "column", "by", "method", "truth", "figure", "measure"},
    "rate": {"event", "by", "per", "time"},
    "logistic": {"formula", "firth", "cluster", "calibration", "truth", "forest", "e_values"},
    "iptw": {"treatment", "reference", "confounders", "outcome", "estimand", "truncate", "curves", "e_values",
             "love_plot", "truth", "time", "status", "bootstrap", "crude", "methods", "rmtl"},
    "cox": {"formula", "time", "event", "weights", "cluster", "strata", "truth"},
    "fine_gray": {"formula", "time", "status", "truth"},
    "meta_proportions": {"by", "event", "method", "transform", "truth", "min_size"},
    "interval_censored": {"lower", "upper", "truth", "figure", "n_boot", "detection_lag_days", "lower_modality",
                          "upper_modality", "min_onset_days"},
    "diagnosis_timing": {"truth"},
}
_COMMON_SECTION_KEYS = {"type", "title", "subset", "description", "id"}


# ---------------------------------------------------------------------------------------------------
# locating keys in the spec text (tomllib gives values, not line numbers)
# ---------------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
_KEYLINE = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]+\")\s*=")


def _locate(text: str, table: str | None, key: str | None = None, index: int | None = None) -> int | None:
    """1-based line of ``key`` in ``[table]`` (the ``index``-th ``[[table]]``), or of the header itself."""
    current, count, header_line = None, {}, None
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            current = m.group(2)
            count[current] = count.get(current, -1) + 1
            if current == table and (index is None or count[current] == index):
                header_line = lineno
                if key is None:
                    return lineno
            continue
        if key is None or current != table or (index is not None and count.get(current) != index):
            continue
        k = _KEYLINE.match(line)
        if k and k.group(1).strip('"') == key:
            return lineno
    if table is None and key is not None:  # top-level key
        for lineno, line in enumerate(text.splitlines(), start=1):
            if _HEADER.match(line):
                break
            k = _KEYLINE.match(line)
            if k and k.group(1).strip('"') == key:
                return lineno
    return header_line


@dataclass
class Spec:
    """A parsed, structurally validated ``analysis.toml``."""

    path: Path
    text: str
    raw: dict[str, Any]
    name: str
    title: str
    question: str
    data: dict[str, Any]
    synthetic: list[dict[str, Any]]
    criteria: list[dict[str, Any]]
    derive: list[dict[str, Any]]
    outcome: dict[str, Any]
    exposure: dict[str, Any]
    adjustment: dict[str, Any]
    report: dict[str, Any]
    sections: list[dict[str, Any]]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def horizon(self) -> float:
        return float(self.outcome.get("horizon_days", 365))

    @property
    def threshold(self) -> int:
        return int(self.report.get("small_cell_threshold", 5))

    @property
    def level(self) -> float:
        return float(self.report.get("ci_level", 0.95))

    @property
    def seed(self) -> int | None:
        if "seed" in self.raw.get("analysis", {}):
            return int(self.raw["analysis"]["seed"])
        return int(self.synthetic[0]["seed"]) if self.synthetic else None

    def error(self, message: str, table: str | None = None, key: str | None = None,
              index: int | None = None) -> SpecError:
        """A SpecError naming this spec file, the line and the key."""
        line = _locate(self.text, table, key, index)
        where = f"{self.path}" + (f", line {line}" if line else "")
        what = ""
        if table:
            what = f"[[{table}]] #{index + 1}" if index is not None else f"[{table}]"
            if key:
                what += f" {key}"
        elif key:
            what = key
        return SpecError(f"{where}: {what}: {message}" if what else f"{where}: {message}")


def _as_list(v) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def load_spec(path: Path | str) -> Spec:
    """Read and structurally validate an analysis spec. ``path`` is the TOML file or its folder.

    Checks every table and key against the known ones (typos are errors), types and ranges of the
    settings, and that each section has a known ``type``. Column names are checked later against the
    data (``validate_columns``), since only the data know their columns.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "analysis.toml"
    if not path.is_file():
        raise SpecError(f"{path}: analysis spec not found (expected analyses/NAME/analysis.toml)")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    stub = Spec(path, text, raw, "", "", "", {}, [], [], [], {}, {}, {}, {}, [])
    known_tables = set(_KEYS) - {"synthetic"} | {"section"}
    for table in raw:
        if table not in known_tables:
            raise stub.error(f"unknown table; known tables are {sorted(known_tables)}", table)
    for table, keys in _KEYS.items():
        if table in ("synthetic", "criteria", "derive"):
            continue
        block = raw.get(table, {})
        if not isinstance(block, dict):
            raise stub.error("must be a table ([name]), not a list", table)
        for k in block:
            if k not in keys:
                raise stub.error(f"unknown key; allowed: {sorted(keys)}", table, k)
    analysis = raw.get("analysis", {})
    if not analysis.get("title"):
        raise stub.error("every analysis needs a title", "analysis", "title")
    data = dict(raw.get("data", {}))
    synthetic = _as_list(data.get("synthetic"))
    for i, s in enumerate(synthetic):
        if not isinstance(s, dict):
            raise stub.error("must be an inline table {scenario=..., n=..., seed=...}", "data", "synthetic")
        unknown = set(s) - _KEYS["synthetic"]
        if unknown:
            raise stub.error(f"unknown key(s) {sorted(unknown)} in synthetic #{i + 1}", "data", "synthetic")
        for k in ("scenario", "n", "seed"):
            if k not in s:
                raise stub.error(f"synthetic #{i + 1} needs {k!r}", "data", "synthetic")
        if not isinstance(s["n"], int) or s["n"] < 1:
            raise stub.error(f"n must be a positive integer, got {s['n']!r}", "data", "synthetic")
        if not isinstance(s["seed"], int):
            raise stub.error(f"seed must be an integer, got {s['seed']!r}", "data", "synthetic")
    if not synthetic and "path" not in data:
        raise stub.error("say where the data are: path = \"...\" (with mapping) or synthetic = {...}", "data")
    criteria = _as_list(raw.get("criteria"))
    for i, c in enumerate(criteria):
        _check_keys(stub, "criteria", i, c, _KEYS["criteria"])
        if not c.get("name") or not c.get("keep"):
            raise stub.error("each criterion needs a name and a keep expression", "criteria", None, i)
    derive = _as_list(raw.get("derive"))
    for i, d in enumerate(derive):
        _check_keys(stub, "derive", i, d, _KEYS["derive"])
        if not d.get("name") or not d.get("expr"):
            raise stub.error("each derived column needs a name and an expr", "derive", None, i)
        if ("otherwise" in d) != ("where" in d):
            raise stub.error("'where' and 'otherwise' go together: expr where the condition holds, otherwise the "
                             "constant", "derive", "otherwise" if "otherwise" in d else "where", i)
        if "otherwise" in d and (isinstance(d["otherwise"], bool) or not isinstance(d["otherwise"], (int, float))):
            raise stub.error("must be a number", "derive", "otherwise", i)
    outcome = dict(raw.get("outcome", {}))
    outcome.setdefault("event", "ho")
    outcome.setdefault("horizon_days", 365)
    outcome.setdefault("competing", "death")
    if not isinstance(outcome["horizon_days"], (int, float)) or outcome["horizon_days"] <= 0:
        raise stub.error("must be a positive number of days", "outcome", "horizon_days")
    if outcome["competing"] not in ("death", "none"):
        raise stub.error("must be \"death\" or \"none\"", "outcome", "competing")
    report = dict(raw.get("report", {}))
    thr = report.get("small_cell_threshold", 5)
    if not isinstance(thr, int) or thr < 1:
        raise stub.error("must be a positive integer (counts below it are shown as <threshold)", "report",
                         "small_cell_threshold")
    lvl = report.get("ci_level", 0.95)
    if not isinstance(lvl, float) or not 0.5 <= lvl < 1:
        raise stub.error("must be a fraction such as 0.95", "report", "ci_level")
    if report.get("truth", "population") not in ("population", "sample"):
        raise stub.error("must be \"population\" or \"sample\"", "report", "truth")
    sections = _as_list(raw.get("section"))
    if not sections:
        raise stub.error("an analysis needs at least one [[section]] with an estimator", "section")
    ids = set()
    for i, s in enumerate(sections):
        t = s.get("type")
        if t not in _SECTION_KEYS:
            raise stub.error(f"unknown section type {t!r}; known: {sorted(_SECTION_KEYS)}", "section", "type", i)
        _check_keys(stub, "section", i, s, _SECTION_KEYS[t] | _COMMON_SECTION_KEYS)
        if "methods" in s:
            _check_methods(stub, s["methods"], "section", i)
        sid = s.get("id") or f"{i + 1}_{t}"
        if sid in ids:
            raise stub.error(f"duplicate section id {sid!r}", "section", "id", i)
        ids.add(sid)
        s["id"] = sid
        s["_index"] = i
    if "methods" in raw.get("adjustment", {}):
        _check_methods(stub, raw["adjustment"]["methods"], "adjustment", None)
    for h in _as_list(report.get("headline")):
        if str(h).partition("/")[0] not in ids:
            raise stub.error(f"{h!r} names no section (section ids: {sorted(ids)})", "report", "headline")
    return Spec(path=path, text=text, raw=raw, name=analysis.get("name", path.parent.name),
                title=analysis["title"], question=analysis.get("question", ""), data=data, synthetic=synthetic,
                criteria=criteria, derive=derive, outcome=outcome, exposure=dict(raw.get("exposure", {})),
                adjustment=dict(raw.get("adjustment", {})), report=report, sections=sections)


def _check_keys(spec: Spec, table: str, index: int, block: dict, allowed: set[str]) -> None:
    if not isinstance(block, dict):
        raise spec.error("must be a table", table, None, index)
    for k in block:
        if k not in allowed:
            raise spec.error(f"unknown key; allowed: {sorted(allowed)}", table, k, index)


# ---------------------------------------------------------------------------------------------------
# expressions over the episodes (pandas query/eval), with errors that name the spec line
# ---------------------------------------------------------------------------------------------------

def _names_in(expr: str) -> set[str]:
    """Identifiers an expression refers to (minus Python keywords and string literals)."""
    stripped = re.sub(r"'[^']*'|\"[^\"]*\"", "", expr)
    words = set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", stripped))
    return words - {"and", "or", "not", "in", "True", "False", "None", "true", "false", "isna", "notna",
                    "abs", "log", "exp", "sqrt", "C", "Q", "np", "I", "str", "contains", "between"}


def _check_expr_columns(spec: Spec, expr: str, columns: Iterable[str], table: str, key: str,
                        index: int | None) -> None:
    cols = set(columns)
    unknown = sorted(n for n in _names_in(expr) if n not in cols)
    if unknown:
        raise spec.error(f"unknown column(s) {unknown} in {expr!r}; the data have: {', '.join(sorted(cols))}",
                         table, key, index)


def _mask(spec: Spec, frame: pd.DataFrame, expr: str, table: str, key: str, index: int | None) -> np.ndarray:
    """Evaluate a boolean pandas expression over the episodes; missing counts as False."""
    _check_expr_columns(spec, expr, frame.columns, table, key, index)
    try:
        out = frame.eval(expr, engine="python")
    except Exception as exc:  # pandas raises many kinds; all mean "this expression is wrong here"
        raise spec.error(f"cannot evaluate {expr!r}: {exc}", table, key, index) from None
    if np.isscalar(out) or not hasattr(out, "__len__") or len(out) != len(frame):
        raise spec.error(f"{expr!r} must give one true/false value per episode", table, key, index)
    s = pd.Series(out, index=frame.index)
    if not (pd.api.types.is_bool_dtype(s) or str(s.dtype) == "boolean"):
        raise spec.error(f"{expr!r} must be a condition (true/false), got values of type {s.dtype}",
                         table, key, index)
    return s.fillna(False).to_numpy(bool)


# ---------------------------------------------------------------------------------------------------
# the run context and section outputs
# ---------------------------------------------------------------------------------------------------

@dataclass
class SectionOutput:
    estimates: list[pd.DataFrame] = field(default_factory=list)
    figures: list[tuple[str, str, str, Any]] = field(default_factory=list)  # name, title, caption, Figure
    tables: list[TableBlock] = field(default_factory=list)
    diagnostics: list[TableBlock] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sensitivity: list[TableBlock] = field(default_factory=list)
    methods: list[tuple[str, str]] = field(default_factory=list)  # (method, reference)
    balance: pd.DataFrame | None = None
    subsections: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (title, note)

    def result_table(self, res: Any, measure: str | None = None) -> pd.DataFrame:
        """Cite the estimator (method, reference) and return its tidy table, ``measure`` filled in if absent."""
        self.methods.append((res.method, res.reference))
        t = res.table()
        if measure is not None and "measure" not in t.columns:
            t["measure"] = measure
        return t

    def warn(self, sec: dict, *messages: str) -> None:
        """Add warnings, each prefixed with the section's title (its id when untitled)."""
        self.warnings += [f"{sec.get('title', sec['id'])}: {m}" for m in messages]


@dataclass
class Context:
    spec: Spec
    data: pd.DataFrame                 # analysed episodes (after criteria), with derived columns
    assessments: pd.DataFrame | None
    truth: dict[str, Any] | None
    threshold: int
    level: float
    horizon: float

    def truth_value(self, path: str | None, *keys: str) -> Any:
        """Look up a dotted ``path`` (plus ``keys``) in the synthetic truth; None when absent.

        The path is tried inside the chosen block (``[report] truth``: "population" or "sample") first and
        then from the top of the truth dict (e.g. ``sites``). With several scenarios the path starts with
        the scenario name.
        """
        if not self.truth or not path:
            return None
        node: Any = self.truth
        if all(isinstance(v, dict) and "scenario" in v for v in self.truth.values()):
            head, _, path = path.partition(".")
            node = self.truth.get(head)
        if not isinstance(node, dict):
            return None
        parts = [p for p in path.split(".") if p] + [str(k) for k in keys]
        source = self.spec.report.get("truth", "population")
        for start in ([node.get(source)] if parts and parts[0] not in ("population", "sample") else []) + [node]:
            found = _walk(start, parts)
            if found is not None:
                return found
        return None


def _walk(node: Any, parts: list[str]) -> Any:
    for p in parts:
        if not isinstance(node, dict):
            return None
        if p in node:
            node = node[p]
            continue
        lower = {str(k).lower(): k for k in node}
        if p.lower() not in lower:
            return None
        node = node[lower[p.lower()]]
    return node


def _number(v: Any) -> float | None:
    """A truth value as a number: dicts give their risk-like entry, a [low, high] range its midpoint."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, dict):
        for k in ("recurrence_risk", "risk", "estimate", "value", "median_days", "conditional_odds_ratio"):
            if k in v and isinstance(v[k], (int, float)):
                return float(v[k])
        return None
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return (float(v[0]) + float(v[1])) / 2.0  # the mean of a uniform range used to generate
    return None


def _truth_of(ctx: Context, spec_value: Any, *keys: str) -> Any:
    """Resolve a spec's truth entry: a number (a constant from the generating model), a dotted path into
    the truth (``"exp:"`` in front exponentiates a log-odds), or None."""
    if spec_value is None or ctx.truth is None:
        return None
    if isinstance(spec_value, (int, float)) and not isinstance(spec_value, bool):
        return float(spec_value)
    if isinstance(spec_value, str):
        exp = spec_value.startswith("exp:")
        v = ctx.truth_value(spec_value.removeprefix("exp:"), *keys)
        if exp:
            n = _number(v)
            return math.exp(n) if n is not None else None
        return v
    return None


def _group_truth(ctx: Context, spec_value: Any, group: str, single: bool) -> float | None:
    """Truth for one group: a table {group = path}, a path to a dict keyed by group, or (one group) a scalar."""
    if spec_value is None or ctx.truth is None:
        return None
    if isinstance(spec_value, dict):
        lower = {str(k).lower(): v for k, v in spec_value.items()}
        return _number(_truth_of(ctx, lower.get(str(group).lower())))
    v = _truth_of(ctx, spec_value)
    if isinstance(v, dict):
        lower = {str(k).lower(): x for k, x in v.items()}
        if str(group).lower() in lower:
            return _number(lower[str(group).lower()])
        return _number(v) if single else None
    return _number(v) if single else None


def _section_frame(ctx: Context, sec: dict) -> pd.DataFrame:
    d = ctx.data
    if sec.get("subset"):
        keep = _mask(ctx.spec, d, sec["subset"], "section", "subset", sec["_index"])
        d = d[keep]
        if len(d) == 0:
            raise ctx.spec.error(f"the subset {sec['subset']!r} leaves no episodes", "section", "subset",
                                 sec["_index"])
    return d


def _need_columns(ctx: Context, frame: pd.DataFrame, cols: Iterable[str | None], sec: dict, key: str) -> None:
    missing = [c for c in cols if c and c not in frame.columns]
    if missing:
        raise ctx.spec.error(f"unknown column(s) {missing}; the data have: {', '.join(sorted(frame.columns))}",
                             "section", key, sec["_index"])


def _complete(ctx: Context, frame: pd.DataFrame, cols: list[str], sec: dict, out: SectionOutput) -> pd.DataFrame:
    """Complete cases for the columns a model uses; how many were left out goes in the warnings.

    The estimators apply the same rule (``hostats.stats._validate.complete_cases``), but their warning
    gives exact counts, which the report would show as they are; dropping here first, with the counts
    formatted for disclosure ("<5"), leaves them nothing to drop. Sections also count n/events on the
    returned frame.
    """
    cols = [c for c in dict.fromkeys(cols) if c in frame.columns]
    isna = frame[cols].isna()
    miss = isna.any(axis=1).to_numpy()
    k = int(miss.sum())
    if k:
        per_col = isna.sum()
        detail = ", ".join(f"{c}: {format_count(v, ctx.threshold)}" for c, v in per_col[per_col > 0].items())
        out.warn(sec, f"{format_count(k, ctx.threshold)} episode(s) with missing values left out (complete-case "
                      f"analysis; missing by column: {detail}).")
    return frame.loc[~miss]


def _rows(ctx: Context, sec: dict, table: pd.DataFrame, *, measure: str | None = None, unit: str = "",
          truth: Callable[[pd.Series], Any] | None = None, method: str = "") -> pd.DataFrame:
    """Estimator output -> tidy estimate rows with the standard columns."""
    t = table.copy()
    out = pd.DataFrame(index=t.index)
    out["analysis"] = ctx.spec.name
    out["section"] = sec["id"]
    out["measure"] = t["measure"] if "measure" in t.columns else (measure or "")
    if measure and "measure" not in t.columns:
        out["measure"] = measure
    grp = t["group"] if "group" in t.columns else (t["contrast"] if "contrast" in t.columns else "")
    out["group"] = pd.Series(grp, index=t.index).astype(object).map(lambda v: "" if v is None or (
        isinstance(v, float) and math.isnan(v)) else str(v)) if not isinstance(grp, str) else grp
    out["term"] = t["term"].astype(str) if "term" in t.columns else ""
    for c in ("estimate", "ci_lower", "ci_upper", "ci_level", "p_value", "n", "events"):
        out[c] = t[c] if c in t.columns else np.nan
    if out["ci_level"].isna().all():
        out["ci_level"] = ctx.level
    out["unit"] = t["unit"] if "unit" in t.columns else unit
    out["truth"] = [truth(r) for _, r in t.iterrows()] if truth else np.nan
    out["truth"] = pd.to_numeric(out["truth"], errors="coerce")
    out["method"] = method
    if "time" in t.columns:
        out["time_days"] = t["time"]
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# yes/no outcomes by the horizon: censoring-aware primary rows, complete case as a sensitivity analysis
# ---------------------------------------------------------------------------------------------------

def _horizon_outcome(d: pd.DataFrame, outcome: str | None) -> bool:
    """True when ``outcome`` is HO by the horizon derived from follow-up (``ho_within_horizon``).

    Such an outcome is unknown for patients lost before the horizon. Analysing only the episodes whose status
    is known keeps the events of those lost later but drops the event-free patients lost early, so the
    risk is biased upward (about +5% relative at 10% loss a year, +20% at 30%). Sections then estimate it
    from the follow-up of everyone (time_days, status) with censoring-aware methods instead.
    """
    return outcome == OUTCOME_FLAG and {"time_days", "status"} <= set(d.columns)


def _warn_known_subset(ctx: Context, sec: dict, out: SectionOutput) -> None:
    if KNOWN_FLAG in str(sec.get("subset", "")):
        out.warn(sec, f"the subset keeps only episodes whose status at {int(ctx.horizon)} days is known "
                      f"({KNOWN_FLAG}); the censoring-aware estimates need everyone's follow-up, and this "
                      "restriction biases them upward when patients are lost to follow-up. Drop it from the "
                      "subset: the complete-case analysis is reported as a sensitivity analysis.")


def _known_status(d: pd.DataFrame) -> pd.DataFrame:
    """The complete cases of a horizon outcome: episodes whose HO status at the horizon is known."""
    return d[d[KNOWN_FLAG].fillna(False).astype(bool)] if KNOWN_FLAG in d.columns else d


def _as_sensitivity(ctx: Context, sec: dict, out: SectionOutput, rows: pd.DataFrame, what: str) -> pd.DataFrame:
    """Label complete-case rows as a sensitivity analysis: their own estimate group in the report and in
    estimates.csv (section ``<id>_complete_case``), with a note saying why they are not the answer."""
    sid = f"{sec['id']}_complete_case"
    out.subsections[sid] = (
        f"Sensitivity analysis (complete case): {sec.get('title', sec['id'])}",
        f"{what} among the episodes whose HO status at {int(ctx.horizon)} days is known (HO or death within "
        f"it, or follow-up reaching to within {FOLLOWUP_TOLERANCE_DAYS} days of it). Patients lost to follow-up "
        "before the horizon without HO are left out while those with HO before their loss are kept, so these "
        "risks are biased upward unless nobody is lost; compare with the censoring-aware estimates above.")
    rows = rows.copy()
    rows["section"] = sid
    rows["method"] = [f"complete case: {m}" if m else "complete case" for m in rows["method"]]
    return rows


def _risk_by_horizon(ctx: Context, d: pd.DataFrame, by: str | None) -> tuple[pd.DataFrame, Any]:
    """Aalen-Johansen risk of HO by the horizon (death competing) per group of ``by``: the censoring-aware
    counterpart of a proportion of ``ho_within_horizon``; rows group, estimate, CIs, std_error, n, events."""
    import hostats

    g = d[by].astype(str) if by else pd.Series("all", index=d.index)
    frame = pd.DataFrame({"t": d["time_days"].astype(float), "s": d["status"].astype(int), "g": g})
    res = hostats.cumulative_incidence(frame, "t", "s", cause=1, group="g", level=ctx.level)
    at = res.at([ctx.horizon]).copy()
    ev = (frame["s"] == 1) & (frame["t"] <= ctx.horizon)
    at["n"] = at["group"].map(frame["g"].value_counts()).astype(int)
    at["events"] = at["group"].map(ev.groupby(frame["g"]).sum()).astype(int)
    return at.drop(columns=["time"]), res


# ---------------------------------------------------------------------------------------------------
# sections: one function per estimator
# ---------------------------------------------------------------------------------------------------

def sec_cumulative_incidence(ctx: Context, sec: dict) -> SectionOutput:
    """Aalen-Johansen cumulative incidence of HO with death competing (or Kaplan-Meier 1 - S)."""
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    by = sec.get("by")
    _need_columns(ctx, d, [by], sec, "by")
    times = [float(t) for t in sec.get("times", [ctx.horizon])]
    cols = ["time_days", "status"] + ([by] if by else [])
    d = _complete(ctx, d, cols, sec, out)
    if by:
        d = d.assign(**{by: d[by].astype(str)})
    competing = ctx.spec.outcome.get("competing", "death") == "death"
    if competing:
        res = hostats.cumulative_incidence(d, "time_days", "status", cause=1, group=by, level=ctx.level)
        at = res.at(times)
    else:
        d = d.assign(_event=(d["status"] == 1).astype(int))
        res = hostats.kaplan_meier(d, "time_days", "_event", group=by)
        at = res.at(times, kind="cumulative_incidence")
    out.methods.append((res.method, res.reference))
    at = at.copy()
    gcol = d[by] if by else pd.Series("all", index=d.index)
    n_by = gcol.value_counts()
    ev = d["status"].to_numpy() == 1
    t_arr = d["time_days"].to_numpy(float)
    at["n"] = [int(n_by.get(g, len(d)) if by else len(d)) for g in at["group"]]
    at["events"] = [int(np.sum(ev & (t_arr <= t) & ((gcol.to_numpy() == g) if by else True)))
                    for g, t in zip(at["group"], at["time"], strict=True)]
    at["measure"] = "cumulative_incidence"
    at["unit"] = "proportion"
    tpath = sec.get("truth")
    horizon = ctx.horizon

    def truth(r):
        if not tpath or not np.isclose(float(r["time"]), horizon):
            return None
        return _group_truth(ctx, tpath, str(r["group"]), single=not by)

    if not by:
        at["group"] = "all"
    out.estimates.append(_rows(ctx, sec, at, truth=truth, method=res.method))
    # Gray's test / log-rank between groups where the estimator provides it
    test = _group_test(res)
    if by and test is not None:
        out.estimates.append(_rows(ctx, sec, test, method=test.attrs.get("method", "")))
        if test.attrs.get("reference"):
            out.methods.append((test.attrs.get("method", ""), test.attrs["reference"]))
    out.warn(sec, *getattr(res, "warnings", []))
    if sec.get("figure", True):
        from hostats.report.figures import curve_plot

        risk_times = ctx.spec.report.get("risk_times") or _default_risk_times(ctx.horizon)
        groups = [str(g) for g in res.curve["group"].unique()] if by else ["all"]
        tv = {g: _group_truth(ctx, tpath, g, single=not by) for g in groups} if tpath and ctx.truth else None
        if tv and all(v is None for v in tv.values()):
            tv = None
        curve = res.curve.copy()
        if not competing and curve["estimate"].iloc[0] > 0.5:
            curve[["estimate", "ci_lower", "ci_upper"]] = 1 - curve[["estimate", "ci_upper", "ci_lower"]].to_numpy()
        if not by:
            curve["group"] = "all"
        fig = curve_plot(curve, risk_times=risk_times, at_risk=_at_risk(res, risk_times, by, competing),
                         threshold=ctx.threshold, title=sec.get("title", ""),
                         ylabel="Cumulative incidence of HO", horizon=ctx.horizon,
                         truth=tv)
        out.figures.append((sec["id"], sec.get("title", "Cumulative incidence"),
                            "Aalen-Johansen cumulative incidence with pointwise CIs (death before HO competing); "
                            "number at risk under the axis; curves end where fewer than "
                            f"{ctx.threshold} remain at risk." + (" Diamonds: true values." if tv else ""), fig))
    return out


def _at_risk(res, times, by, competing) -> pd.DataFrame:
    a = res.at(times) if competing else res.at(times, kind="cumulative_incidence")
    a = a.copy()
    if not by:
        a["group"] = "all"
    return a


GRAY_REFERENCE = ("Gray RJ. A class of K-sample tests for comparing the cumulative incidence of a competing "
                  "risk. Ann Stat 1988;16:1141-1154")


def _group_test(res) -> pd.DataFrame | None:
    """The between-group test of a curve result (Gray's test or log-rank) as one estimate row."""
    for attr in ("gray_test", "logrank"):
        try:
            obj = getattr(res, attr, None)
            r = obj() if callable(obj) else obj
        except (HostatsError, ValueError):
            return None
        if r is None:
            continue
        if hasattr(r, "as_dict"):
            d = r.as_dict()
            stat, p, method, ref = d["statistic"], d["p_value"], "Gray's test", GRAY_REFERENCE
        else:
            t = r.table()
            p = t["p_value"].iloc[0] if "p_value" in t.columns else np.nan
            stat = t["statistic"].iloc[0] if "statistic" in t.columns else np.nan
            method, ref = getattr(r, "method", "log-rank test"), getattr(r, "reference", "")
        row = pd.DataFrame({"measure": ["gray_test" if attr == "gray_test" else "logrank_test"],
                            "group": ["between groups"], "estimate": [stat], "p_value": [p], "unit": ["chi2"]})
        row.attrs["method"], row.attrs["reference"] = method, ref
        return row
    return None


def _default_risk_times(horizon: float) -> list[float]:
    step = horizon / 4
    return [round(step * k) for k in range(5)]


def _event_series(ctx: Context, d: pd.DataFrame, event: str, sec: dict, key: str = "event") -> pd.Series:
    """A yes/no event: a boolean column or a condition; missing stays missing."""
    if event in d.columns:
        s = d[event]
        if not (pd.api.types.is_bool_dtype(s) or str(s.dtype) == "boolean"
                or (pd.api.types.is_numeric_dtype(s) and set(pd.unique(s.dropna())) <= {0, 1})):
            raise ctx.spec.error(f"column {event!r} is not yes/no (found {list(pd.unique(s.dropna()))[:5]})",
                                 "section", key, sec["_index"])
        return s.astype("boolean")
    return pd.Series(_mask(ctx.spec, d, event, "section", key, sec["_index"]), index=d.index, dtype="boolean")


def sec_proportion(ctx: Context, sec: dict) -> SectionOutput:
    """Proportions with binomial CIs: of a yes/no event by group, or the distribution of a category."""
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    by = sec.get("by")
    column = sec.get("column")
    method = sec.get("method", "wilson")
    _need_columns(ctx, d, [by, column], sec, "by" if by and by not in d.columns else "column")
    tpath = sec.get("truth")
    if column:
        s = d[column]
        k = int(s.isna().sum())
        if k:
            out.warn(sec, f"{format_count(k, ctx.threshold)} episode(s) with missing {column} not counted.")
        s = s.dropna()
        if by:
            raise ctx.spec.error("give either column (a distribution) or by (groups), not both", "section",
                                 "by", sec["_index"])
        levels = list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else sorted(s.unique(), key=str)
        counts = s.value_counts()
        ev = np.array([int(counts.get(lv, 0)) for lv in levels])
        if len(s) == 0:
            raise ctx.spec.error(f"no episodes with a value of {column!r}", "section", "column", sec["_index"])
        res = hostats.proportion(ev, np.full(len(levels), len(s)), method=method, level=ctx.level,
                                 groups=[str(v) for v in levels])
        measure = sec.get("measure", "share")
    else:
        event = sec.get("event", OUTCOME_FLAG)
        if _horizon_outcome(d, event):
            return _horizon_proportion(ctx, sec, d, by, method, out)
        res = _event_proportion(ctx, sec, d, event, by, method, out)
        measure = sec.get("measure", "proportion")
    t = out.result_table(res)
    t["measure"] = measure

    def truth(r):
        return _group_truth(ctx, tpath, str(r["group"]), single=len(t) == 1) if tpath else None

    rows = _rows(ctx, sec, t, unit="proportion", truth=truth, method=res.method)
    out.estimates.append(rows)
    if sec.get("figure", False):
        from hostats.report.figures import bar_plot

        shown = suppress_estimates(rows, ctx.threshold)
        fig_rows = shown[shown["estimate"].notna()].copy()
        for c in ("estimate", "ci_lower", "ci_upper"):
            fig_rows[c] = fig_rows[c].astype(float)
        tv = fig_rows["truth"].to_numpy(float) if fig_rows["truth"].notna().any() else None
        fig = bar_plot(fig_rows, x="group", title=sec.get("title", ""), ylabel=measure, truth=tv)
        out.figures.append((sec["id"], sec.get("title", measure), f"{measure} with {res.method} CIs"
                            + ("; diamonds: true values" if tv is not None else "") + ".", fig))
    return out


def _event_proportion(ctx: Context, sec: dict, d: pd.DataFrame, event: str, by: str | None, method: str,
                      out: SectionOutput) -> Any:
    """Binomial proportion of a yes/no event per group of ``by`` (missing values counted and left out)."""
    import hostats

    e = _event_series(ctx, d, event, sec)
    g = d[by].astype(object).where(d[by].notna(), None) if by else pd.Series("all", index=d.index)
    ok = e.notna().to_numpy() & (g.notna().to_numpy() if by else True)
    k = int((~ok).sum())
    if k:
        out.warn(sec, f"{format_count(k, ctx.threshold)} episode(s) with missing "
                      f"{event}{' or ' + by if by else ''} not counted.")
    frame = pd.DataFrame({"g": g[ok].astype(str), "e": e[ok].astype(bool)})
    if isinstance(d[by].dtype if by else None, pd.CategoricalDtype):
        order = [str(c) for c in d[by].cat.categories if str(c) in set(frame["g"])]
    else:
        order = sorted(frame["g"].unique(), key=str)
    agg = frame.groupby("g")["e"].agg(["sum", "size"]).reindex(order)
    if agg.empty:
        raise ctx.spec.error("no episodes to count", "section", "event", sec["_index"])
    return hostats.proportion(agg["sum"].to_numpy(int), agg["size"].to_numpy(int), method=method,
                              level=ctx.level, groups=order)


def _horizon_proportion(ctx: Context, sec: dict, d: pd.DataFrame, by: str | None, method: str,
                        out: SectionOutput) -> SectionOutput:
    """Risk of HO by the horizon per group: Aalen-Johansen on everyone's follow-up (primary), and the
    binomial proportion among episodes with known status as a labelled sensitivity analysis."""
    _warn_known_subset(ctx, sec, out)
    tpath = sec.get("truth")
    measure = sec.get("measure", "risk")
    dd = _complete(ctx, d, ["time_days", "status"] + ([by] if by else []), sec, out)
    at, res = _risk_by_horizon(ctx, dd, by)
    out.methods.append((res.method, res.reference))
    at["measure"] = measure

    def truth(r):
        return _group_truth(ctx, tpath, str(r["group"]), single=len(at) == 1) if tpath else None

    out.estimates.append(_rows(ctx, sec, at, unit="proportion", truth=truth, method=res.method))
    cc = _event_proportion(ctx, sec, _known_status(dd), OUTCOME_FLAG, by, method, out)
    ct = cc.table()
    ct["measure"] = "proportion"
    out.estimates.append(_as_sensitivity(ctx, sec, out, _rows(ctx, sec, ct, unit="proportion", truth=truth,
                                                              method=cc.method),
                                         f"Proportion with HO by {int(ctx.horizon)} days ({cc.method} CIs)"))
    return out


def sec_rate(ctx: Context, sec: dict) -> SectionOutput:
    """Incidence rate per 100 person-years with exact Poisson CIs (and rate ratios between groups)."""
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    by = sec.get("by")
    tcol = sec.get("time", "time_days")
    _need_columns(ctx, d, [by, tcol], sec, "by" if by and by not in d.columns else "time")
    event = sec.get("event", "ho")
    cols = [tcol] + ([by] if by else [])
    d = _complete(ctx, d, cols, sec, out)
    e = _event_series(ctx, d, event, sec).fillna(False).astype(bool)
    py = d[tcol].astype(float) / DAYS_PER_YEAR
    g = d[by].astype(str) if by else pd.Series("all", index=d.index)
    agg = pd.DataFrame({"g": g, "e": e, "py": py}).groupby("g", sort=False).agg(e=("e", "sum"), py=("py", "sum"),
                                                                               n=("e", "size"))
    per = float(sec.get("per", 100))
    res = hostats.rate(agg["e"].to_numpy(int), agg["py"].to_numpy(float), per=per, level=ctx.level,
                       groups=list(agg.index))
    t = out.result_table(res)
    if "n" not in t.columns or t["n"].isna().all():
        t["n"] = t["group"].map(agg["n"]) if "group" in t.columns else np.nan
    t["unit"] = np.where(t.get("measure", "rate") == "rate", f"per {per:g} person-years", "ratio")
    out.estimates.append(_rows(ctx, sec, t, method=res.method))
    return out


def sec_logistic(ctx: Context, sec: dict) -> SectionOutput:
    """Logistic regression: adjusted odds ratios, c-statistic, calibration; separation is reported."""
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    formula = sec.get("formula")
    if not formula or "~" not in formula:
        raise ctx.spec.error("needs formula = \"outcome ~ term + term\"", "section", "formula", sec["_index"])
    lhs, rhs = formula.split("~", 1)
    try:  # the formula engine's own parse: transforms and splines (bs, poly, ...) are not columns
        names = formula_columns(formula, outcome=True)
    except DataError as exc:
        raise ctx.spec.error(str(exc), "section", "formula", sec["_index"]) from None
    unknown = [n for n in names if n not in d.columns]
    if unknown:
        raise ctx.spec.error(f"unknown column(s) {unknown} in formula {formula!r}; the data have: "
                             f"{', '.join(sorted(d.columns))}", "section", "formula", sec["_index"])
    cluster = sec.get("cluster")
    y = lhs.strip()
    horizon = _horizon_outcome(d, y)
    if horizon:
        _warn_known_subset(ctx, sec, out)
        for key in ("cluster", "firth"):
            if sec.get(key):
                raise ctx.spec.error(f"{key} is not available for HO by the horizon, which is modelled by the "
                                     "censoring-aware binomial regression (IPCW); remove it", "section", key,
                                     sec["_index"])
        names = [n for n in names if n != y] + ["time_days", "status"]
    d = _complete(ctx, d, names + ([cluster] if cluster else []), sec, out)
    if y in d.columns and d[y].astype(float).sum() == 0:
        raise ctx.spec.error(f"the outcome {y!r} has no events in these episodes", "section", "formula",
                             sec["_index"])
    kwargs: dict[str, Any] = {}
    if cluster:
        kwargs["cluster"] = cluster
    if sec.get("firth"):
        kwargs["firth"] = True
    if horizon:
        # odds ratios of the risk by the horizon from everyone's follow-up (Scheike, Zhang & Gerds 2008);
        # logistic regression among the episodes with known status is the sensitivity analysis
        res = hostats.binreg(d, rhs.strip(), "time_days", "status", ctx.horizon, cause=1, level=ctx.level)
        cc = hostats.logistic(_known_status(d), formula, **kwargs)
    else:
        res = cc = hostats.logistic(d, formula, **kwargs)
    t = out.result_table(res, "odds_ratio")
    t = t[t["term"].astype(str) != "Intercept"] if "term" in t.columns else t
    tmap = sec.get("truth") or {}

    def truth(r):
        if "term" not in r or not tmap:
            return None
        term = str(r["term"])
        for key, path in tmap.items():
            if term == key or term.startswith(key + "[") or term.startswith(f"C({key})"):
                return _number(_truth_of(ctx, path))
        return None

    rows = _rows(ctx, sec, t, unit="odds ratio", truth=truth, method=res.method)
    rows.loc[rows["measure"] != "odds_ratio", "unit"] = ""
    out.estimates.append(rows)
    out.warn(sec, *getattr(res, "warnings", []))
    if cc is not res:
        ct = cc.table()
        ct = ct[ct["term"].astype(str) != "Intercept"].assign(measure="odds_ratio")
        out.estimates.append(_as_sensitivity(ctx, sec, out, _rows(ctx, sec, ct, unit="odds ratio", truth=truth,
                                                                  method=cc.method), "Logistic regression"))
        out.methods.append((cc.method, cc.reference))
    ev_terms = sec.get("e_values")
    if ev_terms:
        risk = (float(np.mean(res.predict(d))) if horizon else
                float(d[y].astype(float).mean()) if y in d.columns else 1.0)
        ev_rows = []
        for _, r in rows[rows["measure"] == "odds_ratio"].iterrows():
            term = str(r["term"])
            if ev_terms is not True and not any(term == k or term.startswith(k + "[") for k in ev_terms):
                continue
            if not np.isfinite(r["estimate"]) or not np.isfinite(r["ci_lower"]):
                continue
            cells = _e_value_cells(out, r, "OR", outcome_rare=risk < 0.15)
            ev_rows.append({"term": term, "odds ratio": cells.pop("estimate"), **cells})
        if ev_rows:
            out.sensitivity.append(TableBlock(
                f"E-values: {sec.get('title', '')}", pd.DataFrame(ev_rows),
                f"Outcome risk {risk:.2f}: odds ratios converted to risk ratios "
                f"{'directly (rare outcome)' if risk < 0.15 else 'by the square root (common outcome)'} "
                "before the E-value (VanderWeele & Ding 2017)."))
    if sec.get("forest", True) and len(rows[rows["measure"] == "odds_ratio"]):
        from hostats.report.figures import forest_plot

        f = suppress_estimates(rows[rows["measure"] == "odds_ratio"], ctx.threshold)
        f = f[f["estimate"].notna()].copy()
        for c in ("estimate", "ci_lower", "ci_upper"):
            f[c] = f[c].astype(float)
        f["label"] = f["term"]
        fig = forest_plot(f, label="label", null=1.0, xlabel="odds ratio (log scale)", title=sec.get("title", ""))
        out.figures.append((sec["id"] + "_forest", sec.get("title", "Odds ratios"),
                            f"Odds ratios with {int(ctx.level * 100)}% CIs ({res.method}).", fig))
    if sec.get("calibration", True) and not horizon and getattr(res, "fitted", None) is not None:
        from hostats.report.figures import calibration_plot, calibration_table

        try:
            p = np.asarray(res.fitted.predict(), dtype=float)
            yv = np.asarray(res.fitted.model.endog, dtype=float)
        except (AttributeError, TypeError, ValueError):
            p = None
        if p is not None and len(p) == len(yv):
            ct = calibration_table(p, yv, bins=10)
            fig = calibration_plot(ct, threshold=ctx.threshold, title=f"Calibration: {sec.get('title', '')}")
            out.figures.append((sec["id"] + "_calibration", f"Calibration: {sec.get('title', '')}",
                                "Observed against mean predicted risk in tenths of predicted risk (Wilson CIs); "
                                "the dashed line is perfect calibration.", fig))
    return out


ADJUSTMENT_METHODS = ("crude", "regression", "iptw", "aipw", "ipcw")


def _e_value_cells(out: SectionOutput, r: pd.Series, measure: str, **kw: Any) -> dict[str, str]:
    """E-value of one estimate row as report cells (estimate, CI, E-values); cites the method once."""
    import hostats

    ev = hostats.e_value(float(r["estimate"]), float(r["ci_lower"]), float(r["ci_upper"]), measure, **kw)
    et = ev.table().set_index("measure")["estimate"]
    if not any(x[0] == ev.method for x in out.methods):
        out.methods.append((ev.method, ev.reference))
    return {"estimate": format_number(r["estimate"]),
            "CI": f"{format_number(r['ci_lower'])} to {format_number(r['ci_upper'])}",
            "E-value (estimate)": format_number(et.get("e_value_point")),
            "E-value (CI limit)": format_number(et.get("e_value_ci"))}


def _check_methods(stub: Any, methods: Any, table: str, index: int | None) -> None:
    bad = [m for m in _as_list(methods) if m not in ADJUSTMENT_METHODS] if isinstance(methods, list) else [methods]
    if bad or not methods:
        raise stub.error(f"methods must be a list drawn from {list(ADJUSTMENT_METHODS)}; not {bad or methods!r}",
                         table, "methods", index)


def _adjustment_method(measure: str) -> str:
    """Which adjustment method an iptw-section row comes from (its measure's suffix)."""
    m = re.search(r"_(aipw|regression|ipcw)$", measure)
    return m.group(1) if m else "iptw"


def _truth_contrast(ctx: Context, spec_truth: Any, contrast: str, measure: str) -> float | None:
    """Truth for an iptw row. ``spec_truth`` is a path to a block with ``risk{arm}`` and
    ``contrasts{"<arm>_vs_<ref>": {...}}`` (the synthetic truth's layout), or a table with a ``risk`` path
    and constants or paths per contrast measure (e.g. risk_ratio = 1.0 for a null effect)."""
    if spec_truth is None or ctx.truth is None or " vs " not in contrast:
        return None
    arm, ref = contrast.split(" vs ", 1)
    measure = re.sub(r"_(aipw|regression|ipcw)$", "", measure)
    if isinstance(spec_truth, dict):
        if measure in ("risk_treated", "risk_control"):
            v = _truth_of(ctx, spec_truth.get("risk"))
            v = v.get(arm if measure == "risk_treated" else ref) if isinstance(v, dict) else v
            return _number(v)
        return _number(_truth_of(ctx, spec_truth.get(measure)))
    if measure == "risk_treated":
        return _number(ctx.truth_value(spec_truth, "risk", arm))
    if measure == "risk_control":
        return _number(ctx.truth_value(spec_truth, "risk", ref))
    return _number(ctx.truth_value(spec_truth, "contrasts", f"{arm}_vs_{ref}", measure))


_RISK_UNITS = {"risk_treated": "proportion", "risk_control": "proportion", "risk_difference": "difference",
               "risk_ratio": "ratio", "odds_ratio": "ratio", "hazard_ratio": "ratio"}
# [adjustment] methods -> hostats.ate's methods, and the suffix of their measures in estimates.csv
_ATE_METHODS = {"iptw": ("iptw", ""), "regression": ("gformula", "_regression"), "aipw": ("aipw", "_aipw"),
                "ipcw": ("ipcw", "_ipcw")}


def _with_units(t: pd.DataFrame) -> pd.DataFrame:
    base = t["measure"].astype(str).map(lambda m: re.sub(r"^crude_|_(regression|aipw|ipcw)$", "", m))
    return t.assign(group=t["contrast"], unit=base.map(_RISK_UNITS).fillna(""))


def _horizon_effects(ctx: Context, sec: dict, d: pd.DataFrame, treatment: str, reference: Any,
                     confounders: list[str], methods: set[str], out: SectionOutput) -> pd.DataFrame:
    """Adjusted risks of HO by the horizon per arm and their contrasts from everyone's follow-up: the
    methods of hostats.ate (IPTW-weighted Aalen-Johansen; g-formula with cause-specific Cox models; IPTW with
    IPCW; doubly robust AIPTW), suffixed as the binary-outcome rows were."""
    import hostats

    chosen = [m for m in _ATE_METHODS if m in methods]

    def fit(names: list[str]) -> Any:
        return hostats.ate(d, treatment, confounders, "time_days", "status", ctx.horizon, cause=1,
                           reference=reference, methods=tuple(_ATE_METHODS[m][0] for m in names), level=ctx.level)

    try:
        fits = [fit(chosen)]
    except EstimationError:
        # one model failing (e.g. the Cox model of death with a site that has no deaths) costs only the
        # methods that need it: fit each method on its own and say which could not be estimated
        fits = []
        for m in chosen:
            try:
                fits.append(fit([m]))
            except EstimationError as exc:
                out.warn(sec, f"{_ATE_METHODS[m][0]} risks not available: {exc}")
        if not fits:
            raise
    for res in fits:
        out.methods.append((res.method, res.reference))
        out.warn(sec, *res.warnings)
    t = pd.concat([r.table() for r in fits], ignore_index=True)
    # per contrast, the primary (unsuffixed, IPTW) rows first, then the other methods in the spec's order
    rank = {_ATE_METHODS[m][0]: i for i, m in enumerate(chosen)}
    order = {c: i for i, c in enumerate(dict.fromkeys(t["contrast"]))}
    t = t.iloc[np.lexsort((t["method"].map(rank).to_numpy(), t["contrast"].map(order).to_numpy()))]
    suffix = {_ATE_METHODS[m][0]: _ATE_METHODS[m][1] for m in chosen}
    t = t.assign(measure=t["measure"].astype(str) + t["method"].map(suffix))
    return _with_units(t)


def _rmtl_rows(ctx: Context, sec: dict, res: Any, out: SectionOutput) -> None:
    """IPTW-adjusted restricted mean time lost to HO by the horizon per arm and its differences (days)."""
    try:
        r = res.rmst(ctx.horizon, cause=1)
    except (HostatsError, ValueError) as exc:
        out.warn(sec, f"restricted mean time lost not available: {exc}")
        return
    out.methods.append((r.method, r.reference))
    t = r.table()
    t = t[t["measure"].isin(["rmtl", "rmtl_difference"])]
    t = t.assign(group=t["group"].where(t["group"].notna(), t["contrast"]), unit="days")
    rows = _rows(ctx, sec, t, method=r.method)
    sid = f"{sec['id']}_rmtl"
    rows["section"] = sid
    out.subsections[sid] = (
        f"Restricted mean time lost to HO by {int(ctx.horizon)} days (IPTW): {sec.get('title', sec['id'])}",
        f"Days of the first {int(ctx.horizon)} lived with HO (the area under the weighted cumulative incidence "
        "curve, death competing), per arm and as differences against the reference; standard errors treat "
        "the weights as known (conservative for the ATE).")
    out.estimates.append(rows)


def sec_iptw(ctx: Context, sec: dict) -> SectionOutput:
    """Propensity-score weighting: balance, marginal risks and contrasts, weighted Cox, curves, E-values.

    For HO by the horizon (``outcome = "ho_within_horizon"``) the risks come from everyone's follow-up with
    loss to follow-up as censoring (:func:`_horizon_effects`; crude rows from the unweighted Aalen-Johansen
    estimator) and the binary-outcome analysis of the episodes with known status is a labelled sensitivity
    analysis. Other yes/no outcomes (known for everyone, e.g. a wound complication during the stay) are
    weighted means.
    """
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    treatment = sec.get("treatment", ctx.spec.exposure.get("column"))
    reference = sec.get("reference", ctx.spec.exposure.get("reference"))
    confounders = list(sec.get("confounders", ctx.spec.adjustment.get("confounders", [])))
    outcome = sec.get("outcome", OUTCOME_FLAG)
    estimand = sec.get("estimand", ctx.spec.adjustment.get("estimand", "ATE"))
    methods = set(sec.get("methods", ctx.spec.adjustment.get("methods", ADJUSTMENT_METHODS)))
    if not treatment:
        raise ctx.spec.error("needs a treatment (or [exposure] column)", "section", "treatment", sec["_index"])
    for key, cols in (("treatment", [treatment]), ("confounders", confounders), ("outcome", [outcome])):
        _need_columns(ctx, d, cols, sec, key)
    time, status = sec.get("time", "time_days"), sec.get("status", "status")
    horizon = _horizon_outcome(d, outcome) and (time, status) == ("time_days", "status")
    use_surv = horizon or (bool(sec.get("curves", True)) and time in d.columns and status in d.columns)
    cols = [treatment, *confounders] + ([] if horizon else [outcome]) + ([time, status] if use_surv else [])
    d = _complete(ctx, d, cols, sec, out)
    if isinstance(d[treatment].dtype, pd.CategoricalDtype):
        d = d.assign(**{treatment: d[treatment].cat.remove_unused_categories()})
    if d[outcome].astype(float).sum() == 0:
        raise ctx.spec.error(f"the outcome {outcome!r} has no events in these episodes", "section", "outcome",
                             sec["_index"])
    kwargs: dict[str, Any] = {"estimand": estimand, "reference": reference, "level": ctx.level}
    if use_surv:
        kwargs.update(time=time, status=status, horizon=ctx.horizon)
    if sec.get("truncate") is not None:
        kwargs["truncate"] = sec["truncate"]
    if sec.get("bootstrap"):
        kwargs.update(bootstrap=int(sec["bootstrap"]), seed=ctx.spec.seed or 0)
    prefix = sec.get("truth")

    def truth(r: pd.Series) -> float | None:
        return _truth_contrast(ctx, prefix, str(r.get("group", "")), str(r["measure"]).removeprefix("crude_"))

    # one weighting fit for balance, weights, curves and the weighted Cox model; with a horizon outcome
    # its risks are the weighted Aalen-Johansen ones
    res = hostats.iptw(d, treatment, confounders, None if horizon else outcome, **kwargs)
    out.methods.append((res.method, res.reference))
    out.warn(sec, *res.warnings)
    if horizon:
        _warn_known_subset(ctx, sec, out)
        if str(estimand).upper() == "ATE":
            t = _horizon_effects(ctx, sec, d, treatment, reference, confounders, methods, out)
            t = pd.concat([t, _with_units(res.table()).query("measure == 'hazard_ratio'")], ignore_index=True)
        else:  # ATT / overlap: the weighted Aalen-Johansen risks of the iptw fit
            t = _with_units(res.table())
    else:
        t = _with_units(res.table())
        t = t[t["measure"].map(lambda m: _adjustment_method(str(m)) in methods)]
    out.estimates.append(_rows(ctx, sec, t, truth=truth, method=res.method))
    # crude (unadjusted) comparison on the same episodes, for contrast with the weighted one
    try:
        if not sec.get("crude", True) or "crude" not in methods:
            raise _Skip
        crude = hostats.iptw(d, treatment, [], None if horizon else outcome, estimand="ATE", reference=reference,
                             level=ctx.level, **({"time": time, "status": status, "horizon": ctx.horizon}
                                                 if horizon else {}))
        ct = crude.table()
        ct = ct[ct["measure"].isin(["risk_treated", "risk_control", "risk_difference", "risk_ratio", "odds_ratio"])]
        ct = _with_units(ct.assign(measure="crude_" + ct["measure"].astype(str)))
        out.estimates.append(_rows(ctx, sec, ct, truth=truth, method=(
            "crude (unweighted Aalen-Johansen)" if horizon else "crude (unweighted)")))
    except _Skip:
        pass
    except (HostatsError, ValueError) as exc:
        out.warn(sec, f"crude comparison not available: {exc}")
    if horizon and sec.get("rmtl", True):
        _rmtl_rows(ctx, sec, res, out)
    if horizon:  # the binary-outcome IPTW among episodes with known status, as a sensitivity analysis
        try:
            cc = hostats.iptw(_known_status(d), treatment, confounders, outcome, estimand=estimand,
                              reference=reference, level=ctx.level)
            ct = _with_units(cc.table())
            ct = ct[ct["measure"].isin(list(_RISK_UNITS))]
            out.estimates.append(_as_sensitivity(ctx, sec, out, _rows(ctx, sec, ct, truth=truth, method=cc.method),
                                                 f"IPTW ({estimand}) risks of HO by {int(ctx.horizon)} days"))
        except (HostatsError, ValueError) as exc:
            out.warn(sec, f"complete-case sensitivity analysis not available: {exc}")
    # balance and weights
    bal = res.balance()
    out.balance = bal
    out.diagnostics.append(TableBlock(f"Balance: {sec.get('title', '')}", _fmt_frame(bal),
                                      "Standardised mean differences (SMD) before and after weighting; "
                                      "|SMD| > 0.1 is flagged."))
    ess = getattr(res, "ess", None)
    if isinstance(ess, pd.DataFrame) and not ess.empty:
        out.diagnostics.append(TableBlock(f"Effective sample size by arm: {sec.get('title', '')}",
                                          _fmt_frame(ess, counts=("n",), threshold=ctx.threshold)))
    w = np.asarray(res.weights, dtype=float)
    out.diagnostics.append(TableBlock(
        f"Weights: {sec.get('title', '')}",
        pd.DataFrame({"min": [f"{w.min():.3f}"], "median": [f"{np.median(w):.3f}"],
                      "max": [f"{w.max():.3f}"], "99th percentile": [f"{np.percentile(w, 99):.3f}"]}),
        f"{estimand} weights (stabilised). Propensity scores near 0 or 1 signal positivity problems."))
    if sec.get("love_plot", True):
        from hostats.report.figures import love_plot

        lp = res.love_plot_data()
        wide = _love_wide(lp)
        if not wide.empty:
            fig = love_plot(wide, title=f"Covariate balance: {sec.get('title', '')}")
            out.figures.append((sec["id"] + "_love", f"Love plot: {sec.get('title', '')}",
                                "Largest absolute SMD over the contrasts, before and after weighting; "
                                "dashed line at 0.1.", fig))
    if use_surv and sec.get("curves", True):
        from hostats.report.figures import curve_plot

        try:
            cr = res.curves("cumulative_incidence")
            risk_times = ctx.spec.report.get("risk_times") or _default_risk_times(ctx.horizon)
            at = cr.at(risk_times)
            tv = ({arm: _truth_contrast(ctx, prefix, f"{arm} vs {reference}", "risk_treated")
                   for arm in cr.curve["group"].unique()} if prefix and ctx.truth else None)
            if tv and res.reference_level is not None:
                tv[str(res.reference_level)] = _truth_contrast(ctx, prefix, f"x vs {res.reference_level}",
                                                               "risk_control")
            fig = curve_plot(cr.curve, risk_times=risk_times, at_risk=at, threshold=ctx.threshold,
                             title=f"IPTW-adjusted cumulative incidence: {sec.get('title', '')}",
                             ylabel="Cumulative incidence of HO", horizon=ctx.horizon, truth=tv)
            out.figures.append((sec["id"] + "_curves", f"Adjusted cumulative incidence: {sec.get('title', '')}",
                                "Weighted Aalen-Johansen curves by arm (death competing); numbers at risk "
                                "unweighted." + (" Diamonds: true risks under each arm." if tv else ""), fig))
            out.methods.append((cr.method, cr.reference))
        except (HostatsError, ValueError) as exc:
            out.warn(sec, f"adjusted curves not available: {exc}")
    if getattr(res, "cox_result", None) is not None:
        cox = res.cox_result
        out.methods.append((getattr(cox, "method", ""), getattr(cox, "reference", "")))
        ph = _ph_table(cox)
        if ph is not None:
            out.diagnostics.append(TableBlock(f"Proportional hazards (weighted Cox): {sec.get('title', '')}", ph,
                                              "Scaled Schoenfeld residual test; small p suggests non-proportional "
                                              "hazards."))
    if sec.get("e_values", True):
        ev_rows = []
        for _, r in t.iterrows():
            m = str(r["measure"])
            if m not in ("risk_ratio", "odds_ratio", "hazard_ratio") or not np.isfinite(r["estimate"]):
                continue
            risk = t.loc[(t["group"] == r["group"]) & (t["measure"] == "risk_control"), "estimate"]
            rare = bool(len(risk) and float(risk.iloc[0]) < 0.15)
            kw = {} if m == "risk_ratio" else {"outcome_rare": rare}
            meas = {"risk_ratio": "RR", "odds_ratio": "OR", "hazard_ratio": "HR"}[m]
            ev_rows.append({"contrast": r["group"], "measure": m, **_e_value_cells(out, r, meas, **kw)})
        if ev_rows:
            out.sensitivity.append(TableBlock(f"E-values: {sec.get('title', '')}", pd.DataFrame(ev_rows),
                                              "Minimum strength of association (risk-ratio scale) an unmeasured "
                                              "confounder would need with both treatment and outcome to explain "
                                              "the estimate away (VanderWeele & Ding 2017)."))
    return out


class _Skip(Exception):
    """Internal: a step the spec switched off."""


def _love_wide(lp: pd.DataFrame) -> pd.DataFrame:
    """Love-plot data (term, contrast, sample, abs_smd) -> one row per term: max |SMD| before and after."""
    if lp is None or lp.empty:
        return pd.DataFrame()
    term = "term" if "term" in lp.columns else lp.columns[0]
    val = "abs_smd" if "abs_smd" in lp.columns else "smd"
    s = lp.assign(_v=lp[val].abs()).pivot_table(index=term, columns="sample", values="_v", aggfunc="max")
    cols = {c: ("smd_before" if str(c).lower().startswith(("un", "before", "crude")) else "smd_after")
            for c in s.columns}
    s = s.rename(columns=cols).reset_index().rename(columns={term: "variable"})
    if "smd_before" not in s.columns:
        return pd.DataFrame()
    return s


def _ph_table(cox) -> pd.DataFrame | None:
    check = getattr(cox, "check_ph", None)
    if check is None:
        return None
    try:
        r = check()
    except (HostatsError, ValueError, np.linalg.LinAlgError):
        return None
    t = r.table() if hasattr(r, "table") else r
    return _fmt_frame(pd.DataFrame(t)) if isinstance(t, pd.DataFrame) else None


def _hazard_formula(ctx: Context, d: pd.DataFrame, sec: dict) -> tuple[str, list[str]]:
    """A hazard model's right-hand-side formula and the data columns it names (each checked to exist)."""
    formula = sec.get("formula")
    if not formula:
        raise ctx.spec.error("needs formula = \"term + term\"", "section", "formula", sec["_index"])
    names = sorted(_names_in(formula) - {"C"})
    _need_columns(ctx, d, names, sec, "formula")
    return formula, names


def sec_cox(ctx: Context, sec: dict) -> SectionOutput:
    """Cox proportional-hazards model: hazard ratios with the PH check in the diagnostics."""
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    formula, names = _hazard_formula(ctx, d, sec)
    time, event = sec.get("time", "time_days"), sec.get("event", "ho_event")
    d = d.assign(ho_event=(d["status"] == 1).astype(int))
    d = _complete(ctx, d, names + [time], sec, out)
    kwargs = {k: sec[k] for k in ("weights", "cluster", "strata") if sec.get(k)}
    res = hostats.cox(d, formula, time, event, **kwargs)
    t = out.result_table(res, "hazard_ratio")
    out.estimates.append(_rows(ctx, sec, t, unit="hazard ratio", method=res.method))
    ph = _ph_table(res)
    if ph is not None:
        out.diagnostics.append(TableBlock(f"Proportional hazards: {sec.get('title', '')}", ph))
    out.warn(sec, *getattr(res, "warnings", []))
    return out


def sec_fine_gray(ctx: Context, sec: dict) -> SectionOutput:
    """Fine-Gray subdistribution hazard ratios for HO with death competing."""
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    formula, names = _hazard_formula(ctx, d, sec)
    time, status = sec.get("time", "time_days"), sec.get("status", "status")
    d = _complete(ctx, d, names + [time, status], sec, out)
    d[status] = d[status].astype(int)
    res = hostats.fine_gray(d, formula, time, status, cause=1)
    t = out.result_table(res, "subdistribution_hazard_ratio")
    out.estimates.append(_rows(ctx, sec, t, unit="hazard ratio", method=res.method))
    out.warn(sec, *getattr(res, "warnings", []))
    return out


def _site_counts(ctx: Context, sec: dict, d: pd.DataFrame, by: str, event: str, out: SectionOutput) -> pd.DataFrame:
    """Events (``sum``) and episodes (``size``) per site, sites below ``min_size`` left out with a warning."""
    e = _event_series(ctx, d, event, sec)
    ok = e.notna().to_numpy() & d[by].notna().to_numpy()
    frame = pd.DataFrame({"g": d.loc[ok, by].astype(str), "e": e[ok].astype(bool)})
    agg = frame.groupby("g", sort=True)["e"].agg(["sum", "size"])
    min_size = int(sec.get("min_size", 1))
    small = agg[agg["size"] < min_size]
    if len(small):
        out.warn(sec, f"{len(small)} site(s) with fewer than {min_size} episodes left out of the pooling.")
        agg = agg[agg["size"] >= min_size]
    if len(agg) < 2:
        raise ctx.spec.error(f"pooling needs at least two values of {by!r}; found {len(agg)}", "section", "by",
                             sec["_index"])
    if agg["sum"].sum() == 0:
        raise ctx.spec.error(f"the outcome {event!r} has no events in these episodes", "section", "event",
                             sec["_index"])
    return agg


@dataclass
class _Pooled:
    """A pooled proportion or risk on the proportion scale (back-transformed), whatever pooled it."""

    estimate: float
    ci_lower: float
    ci_upper: float
    pred_lower: float
    pred_upper: float
    tau2: float
    i2: float
    q: float
    q_pvalue: float
    method: str
    reference: str
    warnings: list[str]


def _pool_site_risks(ctx: Context, sec: dict, d: pd.DataFrame, by: str, method: str,
                     out: SectionOutput) -> tuple[pd.DataFrame, _Pooled]:
    """Per-site Aalen-Johansen risks by the horizon pooled on the logit scale by inverse variance.

    Each site's logit risk has the delta-method variance se^2 / (F (1 - F))^2 of its Aalen-Johansen SE, so
    sites with more loss to follow-up weigh less. A site without events gets the usual 0.5 correction on its
    episodes (logit (0.5 / (n + 0.5)), variance 1/0.5 + 1/(n + 0.5)), as a logit meta-analysis of counts does.
    """
    from scipy.special import expit

    import hostats

    at, res = _risk_by_horizon(ctx, d, by)
    out.methods.append((res.method, res.reference))
    min_size = int(sec.get("min_size", 1))
    small = at["n"] < min_size
    if small.any():
        out.warn(sec, f"{int(small.sum())} site(s) with fewer than {min_size} episodes left out of the pooling.")
        at = at[~small]
    if len(at) < 2:
        raise ctx.spec.error(f"pooling needs at least two values of {by!r}; found {len(at)}", "section", "by",
                             sec["_index"])
    if at["events"].sum() == 0:
        raise ctx.spec.error("HO by the horizon has no events in these episodes", "section", "event", sec["_index"])
    f = at["estimate"].to_numpy(float)
    se = at["std_error"].to_numpy(float)
    n = at["n"].to_numpy(float)
    inner = (f > 0) & (f < 1) & (se > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.where(inner, np.log(f / (1 - f)), np.log(0.5 / (n + 0.5)))
        vi = np.where(inner, (se / (f * (1 - f))) ** 2, 1 / 0.5 + 1 / (n + 0.5))
    corrected = [g for g, ok in zip(at["group"], inner, strict=True) if not ok]
    m = hostats.meta_effects(yi, vi, method=method, level=ctx.level, labels=list(at["group"]))
    out.methods.append((m.method, m.reference))
    warns = list(m.warnings) + ([f"{len(corrected)} site(s) without events by the horizon: logit risk with a 0.5 "
                                 "correction on the episodes"] if corrected else [])
    pooled = _Pooled(float(expit(m.estimate)), float(expit(m.ci_lower)), float(expit(m.ci_upper)),
                     float(expit(m.pred_lower)), float(expit(m.pred_upper)), m.tau2, m.i2, m.q, m.q_pvalue,
                     m.method, m.reference, warns)
    return at, pooled


def _meta_rows(ctx: Context, sec: dict, st: pd.DataFrame, res: Any, transform: str, measure: str,
               site_method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Estimate rows of a pooling: per site (``site_<measure>``) and pooled (``pooled_<measure>``, the
    prediction interval for a new site, tau2, I2), each with its truth where the spec gives one."""
    tpath = sec.get("truth")
    tsites = tpath.get("sites") if isinstance(tpath, dict) else None
    tpooled = tpath.get("pooled") if isinstance(tpath, dict) else None

    def site_truth(r):
        return _number(_truth_of(ctx, tsites, str(r["group"]))) if tsites else None

    st = st.assign(measure=f"site_{measure}")
    site_rows = _rows(ctx, sec, st, unit="proportion", truth=site_truth, method=site_method)
    pooled = pd.DataFrame({
        "measure": [f"pooled_{measure}", "prediction_interval", "tau2", "i2"],
        "group": ["pooled", "new site", "between sites", "between sites"],
        "estimate": [res.estimate, res.estimate, res.tau2, res.i2],
        "ci_lower": [res.ci_lower, res.pred_lower, np.nan, np.nan],
        "ci_upper": [res.ci_upper, res.pred_upper, np.nan, np.nan],
        "p_value": [np.nan, np.nan, getattr(res, "q_pvalue", np.nan), np.nan],
        "n": [int(st["n"].sum())] * 2 + [np.nan, np.nan],
        "events": [int(st["events"].sum())] * 2 + [np.nan, np.nan],
        "unit": ["proportion", "proportion", f"{transform} scale", "percent" if res.i2 > 1 else "fraction"],
    })
    pooled_truth = _truth_of(ctx, tpooled) if tpooled else None

    def ptruth(r):
        if not isinstance(pooled_truth, dict):
            return None
        if r["measure"] in (f"pooled_{measure}", "prediction_interval"):
            return pooled_truth.get("risk_at_mean")
        if r["measure"] == "tau2" and transform == "logit":
            return pooled_truth.get("tau2_logit")
        return None

    return site_rows, _rows(ctx, sec, pooled, truth=ptruth, method=res.method)


def sec_meta_proportions(ctx: Context, sec: dict) -> SectionOutput:
    """Per-site proportions (or, for HO by the horizon, censoring-aware risks) and their random-effects
    pooling with a prediction interval and forest plot."""
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    by = sec.get("by", "site")
    _need_columns(ctx, d, [by], sec, "by")
    event = sec.get("event", OUTCOME_FLAG)
    method = sec.get("method", "REML")
    transform = sec.get("transform", "logit")

    def counts_pooling(frame: pd.DataFrame) -> tuple[pd.DataFrame, Any]:
        agg = _site_counts(ctx, sec, frame, by, event, out)
        res = hostats.meta_proportions(agg["sum"].to_numpy(int), agg["size"].to_numpy(int), method=method,
                                       transform=transform)
        per_site = hostats.proportion(agg["sum"].to_numpy(int), agg["size"].to_numpy(int),
                                      method="clopper-pearson", level=ctx.level, groups=list(agg.index))
        out.methods += [(res.method, res.reference), (per_site.method, per_site.reference)]
        return per_site.table(), res

    if _horizon_outcome(d, event):
        _warn_known_subset(ctx, sec, out)
        if transform != "logit":
            raise ctx.spec.error(f"risks by the horizon are pooled on the logit scale (got transform = "
                                 f"{transform!r})", "section", "transform", sec["_index"])
        d = _complete(ctx, d, ["time_days", "status", by], sec, out)
        st, res = _pool_site_risks(ctx, sec, d, by, method, out)
        measure, site_method, ci_label = "risk", "Aalen-Johansen", "Aalen-Johansen CIs"
        cc_st, cc_res = counts_pooling(_known_status(d))
        cc_rows = pd.concat(_meta_rows(ctx, sec, cc_st, cc_res, transform, "proportion", "Clopper-Pearson"),
                            ignore_index=True)
        out.estimates.append(_as_sensitivity(ctx, sec, out, cc_rows[cc_rows["measure"] != "i2"],
                                             f"Per-site proportions and their {method} pooling ({transform})"))
    else:
        st, res = counts_pooling(d)
        measure, site_method, ci_label = "proportion", "Clopper-Pearson", "Clopper-Pearson CIs"
    site_rows, pooled_rows = _meta_rows(ctx, sec, st, res, transform, measure, site_method)
    out.estimates[:0] = [site_rows, pooled_rows]
    from hostats.report.figures import forest_plot

    sup = suppress_estimates(site_rows, ctx.threshold)
    drawn = sup[sup["estimate"].notna()].copy()
    for c in ("estimate", "ci_lower", "ci_upper"):
        drawn[c] = drawn[c].astype(float)
    drawn["label"] = drawn["group"]
    n_hidden = len(sup) - len(drawn)
    summary = pd.DataFrame({"label": [f"pooled ({method}, {transform})"], "estimate": [res.estimate],
                            "ci_lower": [res.ci_lower], "ci_upper": [res.ci_upper]})
    tv = pooled_rows["truth"].iloc[0] if pooled_rows["truth"].notna().iloc[0] else None
    fig = forest_plot(drawn, label="label", log=False, xlabel=f"{measure} of HO" if measure == "risk" else
                      "proportion with the event", title=sec.get("title", ""), summary=summary,
                      prediction=(res.pred_lower, res.pred_upper), truth=tv)
    out.figures.append((sec["id"] + "_forest", sec.get("title", "Forest plot"),
                        f"Per-site {measure} ({ci_label}), the random-effects pooled {measure} "
                        f"(diamond) and the {int(ctx.level * 100)}% prediction interval for a new site (bar)."
                        + (f" {n_hidden} site(s) with fewer than {ctx.threshold} events or episodes are pooled "
                           "but not drawn." if n_hidden else ""), fig))
    het = pd.DataFrame({"tau2": [format_number(res.tau2)], "I2": [format_number(res.i2)],
                        "Q": [format_number(getattr(res, "q", np.nan))],
                        "Q p-value": [format_number(getattr(res, "q_pvalue", np.nan))],
                        "prediction interval": [f"{format_number(res.pred_lower)} to "
                                                f"{format_number(res.pred_upper)}"]})
    out.diagnostics.append(TableBlock(f"Heterogeneity: {sec.get('title', '')}", het))
    out.warn(sec, *getattr(res, "warnings", []))
    return out


def sec_interval_censored(ctx: Context, sec: dict) -> SectionOutput:
    """Interval-censored timing of HO from the imaging schedule: Turnbull NPMLE and a Weibull fit.

    The bounds (last negative, first positive image) bracket when HO became VISIBLE on imaging, so the
    plain fit estimates the time to radiological visibility (group "first positive imaging"). With
    ``detection_lag_days = {xray = 24.5, bone_scan = 16}`` (mean lags, RATES.md R19/R20) the section also
    estimates biological onset by shifting each bound by the lag of the modality that produced it (group
    "onset (lag-corrected)"); the modalities come from the columns ``lower_modality``/``upper_modality``
    (default: the cohort's ``ho_interval_lo_test``/``ho_interval_hi_test``). ``truth`` ({measure = path}) applies to the onset rows when
    the lag is given, else to the visibility rows. Episodes whose first positive image is on day 0 (HO
    already visible at the index date: prevalent, no onset after it) are excluded and counted.
    """
    import hostats

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    lo, hi = sec.get("lower", "ho_interval_lo_days"), sec.get("upper", "ho_interval_hi_days")
    _need_columns(ctx, d, [lo, hi], sec, "lower" if lo not in d.columns else "upper")
    # as R's interval2: a missing upper bound is right-censored and a missing lower bound left-censored
    # (interval_censored reads both); only an episode without either bound is missing
    neither = (d[lo].isna() & d[hi].isna()).to_numpy()
    if neither.any():
        out.warn(sec, f"{format_count(int(neither.sum()), ctx.threshold)} episode(s) without either interval "
                      "bound left out.")
        d = d.loc[~neither]
    hiv = d[hi].to_numpy(dtype=float)
    if not np.isfinite(hiv).any():
        raise ctx.spec.error("no episode has a positive imaging result (all upper bounds infinite)", "section",
                             "upper", sec["_index"])
    thr = ctx.threshold
    flow = [("episodes with an interval bound", len(d))]
    prevalent = hiv == 0
    if prevalent.any():
        k = int(prevalent.sum())
        out.warn(sec, f"{format_count(k, thr)} episode(s) with a positive image on day 0 (HO already visible at "
                      "the index date: prevalent, no onset after it) excluded from the onset analysis.")
        d = d.loc[~prevalent]
        flow.append(("excluded: positive image on day 0 (prevalent HO)", k))
    kw: dict[str, Any] = {"n_boot": int(sec["n_boot"])} if "n_boot" in sec else {}
    if ctx.spec.seed is not None:
        kw["seed"] = int(ctx.spec.seed)
    lags = sec.get("detection_lag_days")
    if lags is not None and (not isinstance(lags, dict) or not lags
                             or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                        for v in lags.values())):
        raise ctx.spec.error("detection_lag_days must be a table of modality = days >= 0, e.g. "
                             "{ xray = 24.5, bone_scan = 16 }", "section", "detection_lag_days", sec["_index"])
    tpath = sec.get("truth")
    results = [(hostats.interval_censored(d, lo, hi, level=ctx.level, **kw), "first positive imaging",
                lags is None)]
    if lags is not None:
        lcol = sec.get("lower_modality", "ho_interval_lo_test")
        ucol = sec.get("upper_modality", "ho_interval_hi_test")
        dl = d
        res = hostats.interval_censored(dl, lo, hi, level=ctx.level, detection_lag_days=lags,
                                        lower_modality=lcol, upper_modality=ucol,
                                        **({"min_onset_days": float(sec["min_onset_days"])}
                                           if "min_onset_days" in sec else {}), **kw)
        results.append((res, "onset (lag-corrected)", True))
        for key, label in (("early", "lag-corrected upper bound set to the minimum onset day"),
                           ("inverted", "lag-corrected interval inverted (bounds swapped)")):
            if res.lag_adjustments.get(key):
                flow.append((label, res.lag_adjustments[key]))
    for res, group, with_truth in results:
        t = out.result_table(res, "onset")
        units = {"weibull_shape_rho": "shape", "lognormal_mu_log_days": "log days", "lognormal_sigma": "log days",
                 "aic_weibull": "AIC", "aic_lognormal": "AIC"}
        t["unit"] = t["measure"].map(lambda m, u=units: u.get(str(m), "days"))
        t["group"] = group

        def truth(r, with_truth=with_truth):  # a table {measure = path}, e.g. median_onset_npmle = "onset.median_days"
            if not with_truth or not isinstance(tpath, dict):
                return None
            return _number(_truth_of(ctx, tpath.get(str(r.get("measure", "")))))

        out.estimates.append(_rows(ctx, sec, t, truth=truth, method=res.method))
        out.warn(sec, *[f"{group}: {w}" for w in getattr(res, "warnings", [])])
    out.tables.append(TableBlock(
        f"Episodes in the analysis: {sec.get('title', '')}",
        pd.DataFrame({"step": [f[0] for f in flow], "episodes": format_counts([f[1] for f in flow], thr)}),
        "The interval bounds bracket the day HO became visible on imaging (first positive imaging); "
        + ("the lag-corrected rows shift each bound back by the mean detection lag of its modality ("
           + ", ".join(f"{k} {float(v):g} days" for k, v in lags.items()) + ") to estimate biological onset."
           if lags is not None else "no detection-lag correction: the estimand is the time to radiological "
           "visibility, not biological onset (x-rays turn positive 21-28 days after onset).")))
    if sec.get("figure", True):
        _interval_figure(out, sec, [(r, g) for r, g, _ in results])
    return out


def _interval_figure(out: SectionOutput, sec: dict, results: list) -> None:
    import matplotlib.pyplot as plt

    from hostats.report.figures import _style

    _style()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    tmax = 0.0
    for i, (res, group) in enumerate(results):
        g = getattr(res, "curve", pd.DataFrame()).sort_values("time") if isinstance(
            getattr(res, "curve", None), pd.DataFrame) else pd.DataFrame()
        if g.empty:
            continue
        color = f"C{i}"
        tt = np.concatenate([[0.0], g["time"].to_numpy(float)])
        ax.step(tt, np.concatenate([[0.0], g["estimate"].to_numpy(float)]), where="post", color=color,
                label=f"{group}: Turnbull NPMLE")
        if g["ci_lower"].notna().any():
            ax.fill_between(tt, np.concatenate([[0.0], g["ci_lower"].to_numpy(float)]),
                            np.concatenate([[0.0], g["ci_upper"].to_numpy(float)]), step="post", alpha=0.2,
                            lw=0, color=color)
        tmax = max(tmax, float(g["time"].max()))
    if tmax == 0.0:
        plt.close(fig)
        return
    grid = np.linspace(0.0, tmax * 1.05, 200)
    for i, (res, group) in enumerate(results):
        if hasattr(res, "weibull_cdf"):
            wc = res.weibull_cdf(grid)
            ax.plot(wc["time"], wc["estimate"], ls="--", color=f"C{i}", label=f"{group}: Weibull")
    ax.set_xlabel("days from index event")
    ax.set_ylabel("cumulative proportion")
    ax.set_title(sec.get("title", "Time to onset"), loc="left", fontsize=12)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.tight_layout()
    caption = ("Cumulative distribution of the day HO became visible on imaging (first positive imaging)"
               + ("; the lag-corrected curve shifts each imaging bound back by its modality's detection lag to "
                  "estimate biological onset" if len(results) > 1 else "") + ". Shaded: bootstrap limits.")
    out.figures.append((sec["id"], sec.get("title", "Time to onset"), caption, fig))


def sec_diagnosis_timing(ctx: Context, sec: dict) -> SectionOutput:
    """Time from the first positive bone scan to the first positive x-ray, and alkaline phosphatase (ALP)
    at and before detection.

    From the assessments table: for each analysed episode with HO, the first positive bone scan and the
    first positive x-ray after the index date; the observed lag is the difference in days (paired, among
    episodes with both). It is an upper bound of the biological lead (R20: 7-10 days): x-rays are taken
    at scheduled visits, so an x-ray turns positive only at the next visit after HO becomes visible. ALP at detection is the measurement closest to the first positive imaging (within 7
    days); ALP before is the last one 14-60 days before it. Summaries: mean with t-interval and median.
    """
    out = SectionOutput()
    a = ctx.assessments
    if a is None or a.empty:
        raise ctx.spec.error("needs an assessments table (imaging and ALP results); the data have none",
                             "section", "type", sec["_index"])
    d = _section_frame(ctx, sec)
    ep = d.loc[d["ho"].fillna(False).astype(bool), ["patient_id", "index_date"]].copy() if "ho" in d.columns else None
    if ep is None or ep.empty:
        raise ctx.spec.error("no episode with HO to time", "section", "subset", sec["_index"])
    ep["_ep"] = np.arange(len(ep))
    m = a.merge(ep, on="patient_id", how="inner")
    m = m[m["date"] >= m["index_date"]]
    m["day"] = (m["date"] - m["index_date"]).dt.days.astype(float)
    pos = m[m["result"].astype(str) == "positive"]
    first = pos.groupby(["_ep", pos["test"].astype(str)])["day"].min().unstack()
    rows, ref = [], "Student t interval for a mean (scipy.stats.t); medians with quartiles"
    from scipy import stats as st

    def summarise(x: np.ndarray, measure: str, unit: str, truth_key: str | None = None):
        x = x[np.isfinite(x)]
        n = len(x)
        if n >= 2:
            mean, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(n))
            q = st.t.ppf(0.5 + ctx.level / 2, n - 1)
            lo, hi = mean - q * se, mean + q * se
        else:
            mean, lo, hi = (float(x.mean()) if n else np.nan), np.nan, np.nan
        tmap = sec.get("truth") if isinstance(sec.get("truth"), dict) else {}
        tv = _number(_truth_of(ctx, tmap.get(measure))) if measure in tmap else None
        rows.append({"measure": measure, "group": "mean", "estimate": mean, "ci_lower": lo, "ci_upper": hi,
                     "ci_level": ctx.level, "n": n, "events": np.nan, "unit": unit, "truth": tv})
        if n:
            q1, q2, q3 = np.percentile(x, [25, 50, 75])
            rows.append({"measure": measure, "group": "median [quartiles]", "estimate": q2, "ci_lower": q1,
                         "ci_upper": q3, "ci_level": np.nan, "n": n, "events": np.nan,
                         "unit": unit + " (quartiles, not a CI)", "truth": None})

    if {"bone_scan", "xray"} <= set(first.columns):
        both = first[["bone_scan", "xray"]].dropna()
        summarise((both["xray"] - both["bone_scan"]).to_numpy(float), "days_first_positive_bone_scan_to_xray",
                  "days")
    else:
        out.warn(sec, "no episode has both a positive bone scan and a positive x-ray; the lead cannot be "
                      "estimated.")
    img = pos[pos["test"].astype(str).isin(["xray", "bone_scan", "ct"])]
    detect = img.groupby("_ep")["day"].min()
    alp = m[m["test"].astype(str) == "alp"][["_ep", "day", "value"]].dropna()
    if len(alp) and len(detect):
        alp = alp.assign(det=alp["_ep"].map(detect)).dropna(subset=["det"])
        alp["rel"] = alp["day"] - alp["det"]
        at = alp[alp["rel"].abs() <= 7].assign(ab=lambda f: f["rel"].abs()).sort_values(["_ep", "ab"])
        at = at.groupby("_ep")["value"].first()
        before = alp[(alp["rel"] <= -14) & (alp["rel"] >= -60)].sort_values(["_ep", "rel"])
        before = before.groupby("_ep")["value"].last()
        summarise(at.to_numpy(float), "alp_at_detection", "U/L")
        summarise(before.to_numpy(float), "alp_before_detection", "U/L")
        paired = pd.concat([at.rename("at"), before.rename("before")], axis=1).dropna()
        summarise((paired["at"] - paired["before"]).to_numpy(float), "alp_rise_at_detection", "U/L")
    else:
        out.warn(sec, "no ALP measurements around detection.")
    out.methods.append(("mean with t interval, median with quartiles", ref))
    if rows:
        out.estimates.append(_rows(ctx, sec, pd.DataFrame(rows), truth=lambda r: r["truth"],
                                   method="descriptive"))
    return out


SECTIONS: dict[str, Callable[[Context, dict], SectionOutput]] = {
    "cumulative_incidence": sec_cumulative_incidence,
    "proportion": sec_proportion,
    "rate": sec_rate,
    "logistic": sec_logistic,
    "iptw": sec_iptw,
    "cox": sec_cox,
    "fine_gray": sec_fine_gray,
    "meta_proportions": sec_meta_proportions,
    "interval_censored": sec_interval_censored,
    "diagnosis_timing": sec_diagnosis_timing,
}


def _fmt_frame(frame: pd.DataFrame, counts: Iterable[str] = (), threshold: int = 5) -> pd.DataFrame:
    """Format a diagnostics frame for display: numbers to 3 decimals, counts suppressed."""
    f = frame.copy()
    for c in f.columns:
        if c in counts or c in ("n", "events", "n_treated", "n_control"):
            f[c] = format_counts(f[c], threshold)
        elif pd.api.types.is_float_dtype(f[c]):
            f[c] = [format_number(v) for v in f[c]]
        elif pd.api.types.is_bool_dtype(f[c]):
            f[c] = f[c].map({True: "yes", False: ""})
    return f


# ---------------------------------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------------------------------

@dataclass
class RunResult:
    name: str
    out_dir: Path
    report: Path
    estimates: pd.DataFrame
    seconds: float
    n_analysed: int
    synthetic: bool


def _resolve(spec: Spec, value: str | None, key: str) -> Path | None:
    if not value:
        return None
    p = Path(value)
    if not p.is_absolute():
        p = (spec.folder / p)
    if not p.exists():
        raise spec.error(f"file not found: {p}", "data", key)
    return p


KNOWN_FLAG = "horizon_status_known"  # derived: HO status at the horizon is known (not lost before it)
FOLLOWUP_TOLERANCE_DAYS = 30  # a last visit within a month of the horizon counts as complete follow-up


def _derive(spec: Spec, episodes: pd.DataFrame, horizon: float) -> pd.DataFrame:
    """Standard derived columns plus the spec's ``[[derive]]`` ones (pandas eval expressions).

    ``ho_within_horizon``: HO detected within the horizon (status 1 and time <= horizon).
    ``horizon_status_known``: HO or death within the horizon, or follow-up reaching the horizon (within
    30 days: the last scheduled visit may fall just before it). Restricting a yes/no analysis to it is NOT
    unbiased under independent loss to follow-up: it keeps the patients lost after an event and drops those
    lost event-free, inflating the risk. Sections therefore analyse ``ho_within_horizon`` from everyone's
    follow-up with censoring-aware estimators and use this flag only for the complete-case sensitivity
    analysis.
    A ``[[derive]]`` with ``bins`` cuts a numeric expression into labelled intervals (right-closed);
    with ``labels`` as a table it maps values (e.g. true/false) to labels. With ``where`` (a condition) and
    ``otherwise`` (a number) the column is ``expr`` where the condition holds and ``otherwise`` elsewhere, so
    a measure that exists for some episodes only (GCS after brain injury) can enter a model without
    dropping the others; where the condition holds and ``expr`` is missing, the value stays missing.
    """
    e = episodes
    if {"status", "time_days"} <= set(e.columns):
        st = pd.to_numeric(e["status"], errors="coerce")
        t = pd.to_numeric(e["time_days"], errors="coerce")
        ok = st.notna() & t.notna()
        e[OUTCOME_FLAG] = ((st == 1) & (t <= horizon)).where(ok).astype("boolean")
        fu = pd.to_numeric(e["followup_days"], errors="coerce") if "followup_days" in e.columns else t
        known = ((st > 0) & (t <= horizon)) | (fu >= horizon - FOLLOWUP_TOLERANCE_DAYS)
        e[KNOWN_FLAG] = known.where(ok).astype("boolean")
    for i, d in enumerate(spec.derive):
        _check_expr_columns(spec, d["expr"], e.columns, "derive", "expr", i)
        try:
            v = e.eval(d["expr"], engine="python")
        except Exception as exc:  # an invalid expression in the user's spec
            raise spec.error(f"cannot evaluate {d['expr']!r}: {exc}", "derive", "expr", i) from None
        v = pd.Series(v, index=e.index)
        if "where" in d:
            _check_expr_columns(spec, d["where"], e.columns, "derive", "where", i)
            try:
                cond = pd.Series(e.eval(d["where"], engine="python"), index=e.index)
            except Exception as exc:  # an invalid condition in the user's spec
                raise spec.error(f"cannot evaluate {d['where']!r}: {exc}", "derive", "where", i) from None
            cond = cond.astype("boolean").fillna(False).to_numpy(dtype=bool)
            v = pd.to_numeric(v, errors="coerce").astype(float).where(cond, float(d["otherwise"]))
        labels = d.get("labels")
        if d.get("bins") is not None:
            bins = [float(b) for b in d["bins"]]
            if labels is not None and (not isinstance(labels, list) or len(labels) != len(bins) - 1):
                raise spec.error(f"needs one label per interval ({len(bins) - 1})", "derive", "labels", i)
            try:
                v = pd.cut(pd.to_numeric(v, errors="coerce"), bins=bins, labels=labels)
            except ValueError as exc:
                raise spec.error(f"cannot cut into bins {bins}: {exc}", "derive", "bins", i) from None
        elif isinstance(labels, dict):
            key = {"true": True, "false": False}
            mapping = {key.get(str(k).lower(), k): str(lbl) for k, lbl in labels.items()}
            by_text = {str(k).lower(): lbl for k, lbl in mapping.items()}
            v = v.astype(object).map(lambda x, m=mapping, bt=by_text: None if pd.isna(x) else
                                     m.get(x, bt.get(str(x).lower())))
            v = pd.Categorical(v, categories=list(dict.fromkeys(mapping.values())))
        e[d["name"]] = v
    return e


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
        if not p.is_file() or p.suffix not in (".html", ".csv", ".json", ".svg", ".txt"):
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        if p.name == "manifest.json":  # the run's own timestamp is not a record date
            text = re.sub(r'"created_utc": "[^"]*"', "", text)
        found = (set(token.findall(text)) & ids) if ids else set()
        found |= set(_ISO_DATE.findall(text)) & dates
        if found:
            raise HostatsError(f"disclosure check failed: {p.relative_to(folder)} would contain "
                               f"{len(found)} patient identifier(s) or exact date(s) of the input; nothing was "
                               "published")


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


def run_analysis(spec: Spec | Path | str, out_dir: Path | str, *, data: Any = None, mapping: Any = None,
                 assessments: Any = None,
                 prepare: Callable[[Path], tuple[Any, dict | None, dict]] | None = None,
                 progress: Any = None) -> RunResult:
    """Run one analysis spec to a report folder ``out_dir`` (replaced only when the run succeeds).

    data/mapping/assessments: override the spec's ``[data]`` (e.g. ``hostats run ... --data FILE``).
    prepare: called with the staging folder before reading; returns ``(source, truth, info)`` -- the
        command line uses it to write a synthetic study folder (outside the report) and pass the truth in.
    progress: an object with ``advance(description)`` (the CLI's rich progress bar) or None.
    """
    import hostats

    timer = Timer()
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
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
            source = _resolve(spec, spec.data.get("path"), "path")
            mapping = mapping if mapping is not None else _resolve(spec, spec.data.get("mapping"), "mapping")
            assessments = (assessments if assessments is not None
                           else _resolve(spec, spec.data.get("assessments"), "assessments"))
        elif isinstance(source, (str, Path)) and not Path(source).exists() and "://" not in str(source):
            raise HostatsError(f"data file not found: {source}")
        with timer.step("read and clean"):
            kw = {k: spec.data[k] for k in ("sheet", "table", "query") if k in spec.data}
            cohort = hostats.read_cohort(source, mapping, assessments, **kw)
        step("data read and cleaned")
        episodes = cohort.episodes
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
        outputs: list[SectionOutput] = []
        for sec in spec.sections:
            with timer.step(f"section {sec['id']}"):
                try:
                    outputs.append(SECTIONS[sec["type"]](ctx, sec))
                except SpecError:
                    raise
                except (EstimationError, ValueError) as exc:
                    raise spec.error(f"{sec.get('title', sec['type'])}: cannot be estimated on these data: {exc}",
                                     "section", "type", sec["_index"]) from None
            step(f"section {sec.get('title', sec['id'])}")
        with timer.step("report"):
            result = _write_report(spec, ctx, cohort, outputs, staging, truth, info, timer, source)
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
                     seconds=timer.total, n_analysed=len(ep), synthetic=truth is not None)


def _methods_paragraphs(spec: Spec, ctx: Context, outputs: list[SectionOutput], n: int,
                        source_desc: str) -> tuple[list[str], list[str]]:
    refs: list[str] = []

    def cite(ref: str) -> str:
        if not ref:
            return ""
        if ref not in refs:
            refs.append(ref)
        return f"[{refs.index(ref) + 1}]"

    crit = "; ".join(f"{c['name']} ({c['keep']})" for c in spec.criteria) or "all episodes"
    o = spec.outcome
    comp = ("death before HO was treated as a competing event" if o.get("competing") == "death"
            else "deaths were censored")
    paras = [f"Data: {source_desc}. Episodes were selected by the criteria {crit}, each a recorded step of the "
             f"flow diagram; {format_count(n, ctx.threshold)} episodes were analysed. The outcome was "
             f"{o.get('label', 'heterotopic ossification (HO) detected in follow-up')}, with a horizon of "
             f"{int(spec.horizon)} days from the index event; {comp}. "
             + (f"The exposure was {spec.exposure.get('column')} (reference: {spec.exposure.get('reference')}); "
                f"confounders: {', '.join(spec.adjustment.get('confounders', []))}. "
                if spec.exposure.get("column") else "")
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
    paras.append(f"Disclosure control: counts from 1 to {ctx.threshold - 1} are shown as \"<{ctx.threshold}\", "
                 "with secondary suppression where a total would reveal them; estimates resting on fewer than "
                 f"{ctx.threshold} people or events are withheld. Computed with hostats; package versions are in "
                 "manifest.json.")
    return paras, refs


def _headline(spec: Spec, est: pd.DataFrame) -> list[dict[str, str]]:
    """A few rows for the index page: ``[report] headline`` entries "section" or "section/measure" (curve
    values at the horizon only), else the first rows."""
    if "time_days" in est.columns:
        est = est[est["time_days"].isna() | np.isclose(est["time_days"].astype(float), spec.horizon)]
    picks = []
    for h in spec.report.get("headline") or []:
        sec, _, measure = str(h).partition("/")
        rows = est[est["section"] == sec]
        picks.append(rows[rows["measure"] == measure] if measure else rows)
    rows = pd.concat(picks) if picks else est.head(3)
    out = []
    for _, r in rows.head(8).iterrows():
        est_v = r["estimate"]
        if est_v is None or (isinstance(est_v, float) and math.isnan(est_v)):
            value = "withheld (small numbers)"
        elif r["ci_lower"] is None or pd.isna(r["ci_lower"]):
            value = format_number(est_v)
        else:
            value = f"{format_number(est_v)} ({format_number(r['ci_lower'])} to {format_number(r['ci_upper'])})"
        label = " ".join(str(x) for x in (r["measure"].replace("_", " "), r["group"] or r["term"]) if x)
        tv = r.get("truth")
        out.append({"label": label, "value": value,
                    "truth": format_number(tv) if tv is not None and not pd.isna(tv) else ""})
    return out


def _write_report(spec: Spec, ctx: Context, cohort, outputs: list[SectionOutput], folder: Path,
                  truth: dict | None, info: dict, timer: Timer, source: Any) -> pd.DataFrame:
    from hostats.report.figures import save_figure
    from hostats.schema import IDENTIFYING

    thr = ctx.threshold
    frames = [f for o in outputs for f in o.estimates]
    est = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ESTIMATE_COLUMNS))
    extra = [c for c in est.columns if c not in ESTIMATE_COLUMNS]
    est = est[[c for c in ESTIMATE_COLUMNS if c in est.columns] + extra]
    if truth is None:
        est = est.drop(columns=["truth"])
    shown = suppress_estimates(est, thr)
    check_no_identifiers([shown], IDENTIFYING)
    write_csv(shown, folder / "estimates.csv")
    records = json.loads(shown.to_json(orient="records", double_precision=10))
    (folder / "estimates.json").write_text(json.dumps({"analysis": spec.name, "ci_level": ctx.level,
                                                       "small_cell_threshold": thr, "estimates": records},
                                                      indent=1) + "\n", encoding="utf-8")
    figdir = folder / "figures"
    figures = []
    for o in outputs:
        for name, title, caption, fig in o.figures:
            saved = save_figure(fig, figdir, name)
            figures.append(FigureBlock(name=name, title=title, caption=caption, **saved))
    # Table 1, with SMDs from the first weighting section when there is one
    t1 = None
    t1_vars = spec.report.get("table1")
    if t1_vars:
        by = spec.report.get("table1_by", spec.exposure.get("column"))
        for v in list(t1_vars) + ([by] if by else []):
            if v not in ctx.data.columns:
                raise spec.error(f"unknown column {v!r}; the data have: {', '.join(sorted(ctx.data.columns))}",
                                 "report", "table1" if v in t1_vars else "table1_by")
        smd = _smd_map(next((o.balance for o in outputs if o.balance is not None), None))
        t1 = TableBlock(f"by {by}" if by else "", table_one(ctx.data, list(t1_vars), by=by, threshold=thr,
                                                            smd=smd, labels=spec.report.get("labels")),
                        "n (%) of non-missing values, mean (SD), median [IQR]; 'missing' rows give n (%) of all "
                        "episodes." + (" SMD: largest unweighted standardised mean difference against the "
                                       "reference arm." if smd else ""))
    flow = cohort.flow()
    n = len(ctx.data)
    if truth is not None:
        scen = ", ".join(f"{s['scenario']} (n = {s['n']}, seed {s['seed']})" for s in spec.synthetic)
        source_desc = (f"synthetic cohort(s) {scen} generated by hostats' synthetic package and written as "
                       "site exports with injected faults, then read and cleaned like real data")
    else:
        source_desc = f"{Path(str(source)).name if isinstance(source, (str, Path)) else 'a data frame'}"
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
    files = ["report.html", "estimates.csv", "estimates.json", "manifest.json"] + \
        [f"figures/{f.png}" for f in figures] + [f"figures/{f.svg}" for f in figures]
    inputs = []
    src_paths = [p for p in ([source] if not isinstance(source, list) else source)
                 if isinstance(p, (str, Path)) and Path(p).exists()]
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
        provenance=prov, files=files)
    render_report(content, folder / "report.html")
    manifest = build_manifest(
        analysis=spec.name, spec=spec.raw, spec_path=spec.path, inputs=inputs, seed=spec.seed,
        timings=timer.timings, outputs=files,
        extra={"synthetic": info if truth is not None else None, "episodes_analysed": n,
               "cohort_provenance": _safe_provenance(getattr(cohort, "provenance", {})),
               "headline": _headline(spec, shown)})
    manifest["timings_seconds"]["total"] = timer.total
    write_manifest(manifest, folder / "manifest.json")
    return shown


def _safe_provenance(p: Any) -> Any:
    """The cohort's provenance without the mapping (which names source columns, e.g. the ID column)."""
    if not isinstance(p, dict):
        return None
    return {k: v for k, v in p.items() if k not in ("mapping", "mappings")}


def _smd_map(balance: pd.DataFrame | None) -> dict | None:
    """Balance table -> {variable or (variable, level): largest |unweighted SMD| over contrasts}."""
    if balance is None or balance.empty:
        return None
    cols = balance.columns
    smd_col = next((c for c in ("smd_unweighted", "smd_before", "smd_crude", "smd") if c in cols), None)
    term_col = next((c for c in ("term", "variable", "covariate") if c in cols), None)
    if smd_col is None or term_col is None:
        return None
    out: dict = {}
    for term, v in balance.groupby(term_col)[smd_col].apply(lambda s: s.abs().max()).items():
        t = str(term)
        m = re.match(r"^(\w+)\[(?:T\.)?(.+)\]$", t) or re.match(r"^(\w+)[=:](.+)$", t)
        if m:
            var, lvl = m.group(1), m.group(2)
            out[(var, lvl)] = v
            if lvl in ("True", "true", "1"):
                out[(var, True)] = v
        else:
            out[t] = v
    return out


def _version() -> str:
    import hostats

    return hostats.__version__


def discover(root: Path | str = "analyses") -> list[Path]:
    """Every ``analyses/*/analysis.toml`` under ``root``, sorted by name; simulation studies (a
    ``[simulation]`` table, run by ``hostats simulate``) are not analyses and are left out."""
    return sorted(p for p in Path(root).glob("*/analysis.toml") if not is_simulation_spec(p))


def is_simulation_spec(path: Path | str) -> bool:
    """True when an analysis.toml declares a ``[simulation]`` table (analyses/simulation_study)."""
    try:
        with open(path, "rb") as fh:
            return "simulation" in tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return False  # load_spec reports the problem with its line
