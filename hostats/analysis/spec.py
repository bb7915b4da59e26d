"""The analysis spec (``analysis.toml``): its keys, declared once, the parser that checks a spec against
them (:func:`load_spec`), and the spec reference generated from the declaration
(``docs/spec-reference.md``, written by ``python -m hostats.analysis``).

Every mistake in a spec is a ``SpecError`` naming the spec file, the line and the key. Column names are
checked later against the data, since only the data know their columns.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from hostats.analysis.derive import KNOWN_FLAG
from hostats.analysis.derive import OUTCOME_FLAG as FLAG
from hostats.errors import SpecError
from hostats.sources import KINDS, read_option_problem

# ---------------------------------------------------------------------------------------------------
# the keys of a spec, declared once: the parser's allowed keys and the generated reference come from here
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """The values a number key may take, declared once: the parser checks a value with :meth:`holds` and the
    reference states :meth:`text`, so the two cannot drift."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # ``low`` itself is not allowed
    high_open: bool = False  # ``high`` itself is not allowed

    def holds(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def text(self) -> str:
        """``"1 to 50,000,000"``, ``"> 0"``, ``">= 1"``, ``"0.5 to < 1"``."""
        def num(x: float) -> str:
            return f"{x:,}" if isinstance(x, int) else f"{x:g}"

        if self.high is None:
            return f"{'>' if self.low_open else '>='} {num(self.low)}"
        high = ("< " if self.high_open else "") + num(self.high)
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {num(self.high)}"
        return f"{'> ' if self.low_open else ''}{num(self.low)} to {high}"


@dataclass(frozen=True)
class Key:
    """One key of a spec table: its TOML type, its default (as the reference shows it), what it does, the
    range of a number or the choices of a text the parser enforces (stated in the reference), an example
    line of TOML, and the source kinds (``[data] kind``) with which the parser refuses it (stated too)."""

    name: str
    type: str
    default: str
    description: str
    range: Range | None = None
    choices: tuple[str, ...] | None = None
    example: str | None = None
    refused_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A table of the spec (or a section type), how it is written, what it is for, and its keys."""

    header: str
    description: str
    keys: tuple[Key, ...]


REQUIRED = "required"
NONE = "-"

ADJUSTMENT_METHODS = ("crude", "regression", "iptw", "aipw", "ipcw")

TRUTH_KEY = "string or table"

# largest synthetic cohort a spec, ``hostats synth -n`` or ``hostats simulate --n`` may ask for: ten times the
# 1,000,000-patient draw of the population truth, and about the most a workstation's memory holds
# (``n = 10**12`` would need ~7 TiB for its first array alone). synthetic.generate refuses the same bound with
# its own synthetic.cohort.MAX_N, because synthetic does not import hostats (tests/test_layering.py); a test
# holds the two equal.
MAX_SYNTHETIC_N = 50_000_000
SEED_RANGE = Range(0)  # numpy refuses a negative seed


def _is_int(v: Any) -> bool:
    """A TOML integer (``true``/``false`` are booleans, not integers)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A finite TOML integer or float (not a boolean, not inf or nan)."""
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)

def did_you_mean(word: str, choices: Any) -> str:
    """``"; did you mean 'horizon_days'?"`` when a choice is close to ``word`` (difflib), else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# top-level tables, in the order a spec is checked
TABLES: dict[str, Table] = {
    "analysis": Table("[analysis]", "What the analysis is.", (
        Key("name", "string", "the folder's name", "Short name: the report folder and the `analysis` column "
            "of estimates.csv."),
        Key("title", "string", REQUIRED, "Title of the report."),
        Key("question", "string", '""', "The question the analysis answers, shown under the title."),
        Key("seed", "integer", "the first synthetic seed", "Seed of the run's own randomness (bootstrap).",
            SEED_RANGE),
    )),
    "data": Table("[data]", "Where the data come from: a synthetic scenario or a file with its mapping "
                  "(`hostats run --data` overrides it).", (
        Key("synthetic", "inline table or list of them", NONE, "Synthetic cohort(s) to generate; keys below "
            "(`[data] synthetic`). Either this or `path` is required."),
        Key("path", "string", NONE, "Data file, study folder or SQL URL, relative to the spec's folder (with "
            "`kind`, a REDCap export or an OMOP CDM)."),
        Key("kind", "string", '"redcap" with a `dictionary`, else none (a file read by its format)',
            "What `path` is: a REDCap export, read with its `dictionary` and `mapping` (README: REDCap projects), "
            "or an OMOP CDM (a .duckdb file, a folder of CDM tables or a postgresql:// URL; no mapping).",
            choices=KINDS, example='kind = "redcap"'),
        Key("dictionary", "string", NONE, "The REDCap project's data dictionary (CSV) of the export at `path`, "
            "relative to the spec's folder (and inside it, as `path`, `mapping` and `assessments`).",
            example='dictionary = "ho_registry_dictionary.csv"'),
        Key("mapping", "string", NONE, "Mapping TOML of the file (relative to the spec's folder)."),
        Key("assessments", "string", NONE, "Assessments table (imaging, ALP) of the file."),
        Key("sheet", "string or integer", NONE, "Sheet of the Excel workbook (.xlsx, .xls) at `path`; refused "
            "with any other file (a CSV file is read whole). Not used with `hostats run --data`, which reads "
            "another export (give `--sheet`).", refused_with=KINDS),
        Key("table", "string", NONE, "Table of the SQL database at `path` (a URL); refused with a file. Not "
            "used with `hostats run --data` (give `--table`).", refused_with=KINDS),
        Key("query", "string", NONE, "SQL query (a single SELECT) instead of a table (not both); refused with "
            "a file. Not used with `hostats run --data` (give `--query`).", refused_with=KINDS),
        Key("description", "string", NONE, "Free text about the data."),
    )),
    "synthetic": Table("[data] synthetic = {...}", "One synthetic cohort (an inline table in `[data]`).", (
        Key("scenario", "string", REQUIRED, "A scenario of the synthetic package (`synthetic.scenarios()`)."),
        Key("n", "integer", REQUIRED, "Number of patients (beyond the limit the draw runs out of memory).",
            Range(1, MAX_SYNTHETIC_N)),
        Key("seed", "integer", REQUIRED, "Seed of the generator.", SEED_RANGE),
        Key("fault_rate", "float", "0.03", "Share of export rows given a fault for the cleaning to find.",
            Range(0, 1, high_open=True)),
        Key("overrides", "table", NONE, "Scenario parameters to override, e.g. "
            "`{ loss_to_followup_per_year = 0.3 }`."),
    )),
    "criteria": Table("[[criteria]]", "Which episodes are analysed: each criterion a named step of the ledger "
                      "and a box of the flow diagram, applied in order.", (
        Key("name", "string", REQUIRED, "Name of the step in the flow diagram."),
        Key("keep", "string", REQUIRED, "Condition (pandas expression) of the episodes kept, e.g. "
            "`index_event == 'tha'`."),
        Key("description", "string", "the `keep` expression", "How the criterion reads in the report."),
    )),
    "derive": Table("[[derive]]", "Derived columns (pandas eval expressions), after the standard ones "
                    f"(`{FLAG}`, `{KNOWN_FLAG}`).", (
        Key("name", "string", REQUIRED, "Name of the new column."),
        Key("expr", "string", REQUIRED, "Expression over the episodes' columns."),
        Key("bins", "list of numbers", NONE, "Cut the (numeric) expression into right-closed intervals."),
        Key("labels", "list or table", NONE, "With `bins`, one label per interval; alone, a table mapping "
            "values (e.g. true/false) to labels."),
        Key("where", "string", NONE, "Condition: `expr` where it holds, `otherwise` elsewhere (goes with "
            "`otherwise`)."),
        Key("otherwise", "number", NONE, "The value where `where` does not hold."),
        Key("description", "string", NONE, "Free text about the column."),
        Key("optional", "boolean", "false", "When the data lack a column the expression needs (an optional "
            "column of the schema the export does not have), leave the derived column out instead of failing; "
            "sections using it must be optional too."),
    )),
    "outcome": Table("[outcome]", "The outcome and its horizon.", (
        Key("event", "string", '"ho"', "Yes/no column of the outcome (must have events)."),
        Key("horizon_days", "number", "365", f"Horizon in days from the index event: `{FLAG}` and the risks "
            "by the horizon.", Range(0, low_open=True)),
        Key("competing", "string", '"death"', '"death" (death before HO competes) or "none" (deaths '
            'censored).'),
        Key("label", "string", NONE, "How the outcome reads in the methods text."),
    )),
    "exposure": Table("[exposure]", "The exposure (treatment) compared, the default of `iptw` sections.", (
        Key("column", "string", NONE, "Exposure column."),
        Key("reference", "string", NONE, "Reference level of the exposure."),
        Key("label", "string", NONE, "How the exposure reads in the report."),
    )),
    "adjustment": Table("[adjustment]", "Confounding adjustment, the default of `iptw` sections.", (
        Key("confounders", "list of strings", "[]", "Confounder columns."),
        Key("methods", "list of strings", str(list(ADJUSTMENT_METHODS)).replace("'", '"'), "Which rows: "
            "drawn from " + ", ".join(f'"{m}"' for m in ADJUSTMENT_METHODS) + "."),
        Key("estimand", "string", '"ATE"', '"ATE", "ATT" or "ATO" (overlap weights).'),
    )),
    "report": Table("[report]", "How the report is made.", (
        Key("small_cell_threshold", "integer", "5", "Counts from 1 to threshold - 1 are shown as "
            "\"<threshold\".", Range(1)),
        Key("rounding", "integer or string", "5", "Counts of people and events are rounded to the nearest "
            "multiple of this (as OpenSAFELY does; percentages from the rounded counts), \"midpoint6\" for "
            "midpoint-6 rounding (1-6 shows 3, 7-12 shows 9), or 0 for exact counts (a table holding a small "
            "count is then rounded to the threshold, and a further cell withheld where needed; 1 is the same as "
            "0).", Range(0)),
        Key("ci_level", "float", "0.95", "Level of the confidence intervals.", Range(0.5, 1, high_open=True)),
        Key("truth", "string", '"population"', 'Which synthetic truth the estimates are compared with: '
            '"population" or "sample".'),
        Key("table1", "list of strings", NONE, "Variables of Table 1 (no Table 1 without it)."),
        Key("table1_by", "string", "the `[exposure]` column", "Column Table 1 is split by."),
        Key("risk_times", "list of numbers", "the horizon in quarters", "Times of the numbers at risk under "
            "the curves."),
        Key("headline", "list of strings", "the first 3 rows", 'Rows of the index page: "section" or '
            '"section/measure".'),
        Key("labels", "table", NONE, "Display labels of Table 1 variables."),
    )),
}

# keys every [[section]] accepts
COMMON_SECTION_KEYS: tuple[Key, ...] = (
    Key("type", "string", REQUIRED, "The estimator: one of the section types below."),
    Key("id", "string", '"<number>_<type>"', "Identifier: the `section` column of estimates.csv (unique)."),
    Key("title", "string", "the id", "Heading of the section in the report."),
    Key("subset", "string", NONE, "Condition (pandas expression) restricting the section's episodes."),
    Key("description", "string", NONE, "Note shown under the section's heading."),
    Key("optional", "boolean", "false", "When the data lack a column the section needs (an optional column of "
        "the schema that the export does not have) or the section cannot be estimated on these data, the "
        "report says so in its place instead of the run failing."),
)

_UNUSED_TRUTH = Key("truth", TRUTH_KEY, NONE, "Accepted, but this section's rows carry no truth yet.")
_TRUTH = Key("truth", TRUTH_KEY, NONE, "Where the synthetic truth of the estimates is (a dotted path into "
             "the truth, or a table of them).")

# section types: [[section]] type = "..." and the keys each accepts besides the common ones
SECTION_TYPES: dict[str, Table] = {
    "cumulative_incidence": Table('type = "cumulative_incidence"', "Aalen-Johansen cumulative incidence of HO "
                                  "with death competing (Kaplan-Meier 1 - S when `competing = \"none\"`), Gray's "
                                  "test between groups.", (
        Key("by", "string", NONE, "Group column."),
        Key("times", "list of numbers", "[horizon]", "Times (days) the curves are read at."),
        _TRUTH,
        Key("figure", "boolean", "true", "Draw the curves."),
    )),
    "proportion": Table('type = "proportion"', "Proportions with binomial CIs of a yes/no event by group, or the "
                        f"distribution of a category; `{FLAG}` gives Aalen-Johansen risks (complete case as a "
                        "sensitivity analysis).", (
        Key("event", "string", f'"{FLAG}"', "Yes/no column or condition."),
        Key("column", "string", NONE, "Category column whose distribution is shown (instead of `event`/`by`)."),
        Key("by", "string", NONE, "Group column."),
        Key("method", "string", '"wilson"', "CI method of `hostats.proportion`."),
        _TRUTH,
        Key("figure", "boolean", "false", "Draw a bar chart."),
        Key("measure", "string", '"proportion" ("share" with column, "risk" by the horizon)', "The `measure` "
            "column of the rows."),
    )),
    "rate": Table('type = "rate"', "Incidence rates with exact Poisson CIs and rate ratios between groups.", (
        Key("event", "string", '"ho"', "Yes/no column or condition."),
        Key("by", "string", NONE, "Group column."),
        Key("per", "number", "100", "Rates per this many person-years."),
        Key("time", "string", '"time_days"', "Person-time column in days."),
    )),
    "logistic": Table('type = "logistic"', f"Logistic regression (odds ratios); for `{FLAG}` binomial "
                      "regression with censoring weights (complete case as a sensitivity analysis).", (
        Key("formula", "string", REQUIRED, '"outcome ~ term + term" (formulaic syntax).'),
        Key("firth", "boolean", "false", "Firth's penalised likelihood."),
        Key("cluster", "string", NONE, "Column of clusters for robust SEs."),
        Key("calibration", "boolean", "true", "Calibration table and plot."),
        Key("truth", "table", NONE, "Term = path of its true odds ratio (`exp:` before a log-odds path)."),
        Key("forest", "boolean", "true", "Draw a forest plot."),
        Key("e_values", "boolean or list of strings", "false", "E-values of all (true) or the listed terms."),
    )),
    "iptw": Table('type = "iptw"', "Propensity-score weighting: balance, risks and contrasts per arm, weighted "
                  f"Cox, curves, E-values; for `{FLAG}` the adjusted risks of `hostats.ate`.", (
        Key("treatment", "string", "`[exposure] column`", "Treatment column."),
        Key("reference", "string", "`[exposure] reference`", "Reference arm."),
        Key("confounders", "list of strings", "`[adjustment] confounders`", "Confounder columns."),
        Key("outcome", "string", f'"{FLAG}"', "Yes/no outcome column."),
        Key("estimand", "string", "`[adjustment] estimand`", '"ATE", "ATT" or "ATO" (overlap weights).'),
        Key("truncate", "number or list", NONE, "Truncation of the weights (`hostats.iptw`)."),
        Key("curves", "boolean", "true", "Weighted cumulative incidence curves (and weighted Cox)."),
        Key("e_values", "boolean", "true", "E-values of the ratios."),
        Key("love_plot", "boolean", "true", "Draw a Love plot of the balance."),
        _TRUTH,
        Key("time", "string", '"time_days"', "Time column of the curves."),
        Key("status", "string", '"status"', "Status column of the curves (0 censored, 1 HO, 2 death)."),
        Key("bootstrap", "integer", "0", "Bootstrap replicates of the CIs (0: sandwich)."),
        Key("crude", "boolean", "true", "Crude (unweighted) rows as well."),
        Key("methods", "list of strings", "`[adjustment] methods`", "Which rows: drawn from "
            + ", ".join(f'"{m}"' for m in ADJUSTMENT_METHODS) + "."),
        Key("rmtl", "boolean", "true", "IPTW restricted mean time lost by the horizon (`<id>_rmtl`)."),
    )),
    "cox": Table('type = "cox"', "Cox proportional-hazards model of HO: hazard ratios and the PH check.", (
        Key("formula", "string", REQUIRED, '"term + term" (right-hand side).'),
        Key("time", "string", '"time_days"', "Time column."),
        Key("event", "string", '"ho_event"', "Event column (`ho_event`: status 1)."),
        Key("weights", "string", NONE, "Weight column."),
        Key("cluster", "string", NONE, "Column of clusters for robust SEs."),
        Key("strata", "string or list", NONE, "Stratification column(s)."),
        _UNUSED_TRUTH,
    )),
    "fine_gray": Table('type = "fine_gray"', "Fine-Gray subdistribution hazard ratios of HO with death "
                       "competing.", (
        Key("formula", "string", REQUIRED, '"term + term" (right-hand side).'),
        Key("time", "string", '"time_days"', "Time column."),
        Key("status", "string", '"status"', "Status column (0 censored, 1 HO, 2 death)."),
        _UNUSED_TRUTH,
    )),
    "meta_proportions": Table('type = "meta_proportions"', "Per-site proportions (for `ho_within_horizon`, "
                              "Aalen-Johansen risks) pooled by random effects, with a prediction interval.", (
        Key("by", "string", '"site"', "Site column."),
        Key("event", "string", f'"{FLAG}"', "Yes/no column or condition."),
        Key("method", "string", '"REML"', "Between-site variance estimator."),
        Key("transform", "string", '"logit"', "Scale of the pooling (logit only for risks by the horizon)."),
        Key("truth", "table", NONE, "`sites` and `pooled` paths into the truth."),
        Key("min_size", "integer", "1", "Sites with fewer episodes are left out of the pooling."),
    )),
    "interval_censored": Table('type = "interval_censored"', "Timing of HO from the imaging schedule: Turnbull "
                               "NPMLE, Weibull and log-normal fits, optionally corrected for the detection lag.", (
        Key("lower", "string", '"ho_interval_lo_days"', "Column of the last negative imaging day."),
        Key("upper", "string", '"ho_interval_hi_days"', "Column of the first positive imaging day."),
        Key("truth", "table", NONE, "Measure = path of its true value."),
        Key("figure", "boolean", "true", "Draw the cumulative distribution."),
        Key("n_boot", "integer", "0", "Bootstrap replicates of the NPMLE limits."),
        Key("detection_lag_days", "table", NONE, "Modality = mean lag in days (>= 0), e.g. "
            "`{ xray = 24.5, bone_scan = 16 }`: also estimate biological onset."),
        Key("lower_modality", "string", '"ho_interval_lo_test"', "Column of the lower bound's modality."),
        Key("upper_modality", "string", '"ho_interval_hi_test"', "Column of the upper bound's modality."),
        Key("min_onset_days", "number", NONE, "Earliest onset day a lag-corrected bound may take."),
    )),
    "diagnosis_timing": Table('type = "diagnosis_timing"', "Days from the first positive bone scan to the first "
                              "positive x-ray, and alkaline phosphatase at and before detection (needs the "
                              "assessments table).", (
        Key("truth", "table", NONE, "Measure = path of its true value."),
    )),
}

# allowed keys per table: a typo in a spec is an error, not a silently ignored setting
_KEYS: dict[str, set[str]] = {name: {k.name for k in t.keys} for name, t in TABLES.items()}
_SECTION_KEYS: dict[str, set[str]] = {name: {k.name for k in t.keys} for name, t in SECTION_TYPES.items()}
_COMMON_SECTION_KEYS = {k.name for k in COMMON_SECTION_KEYS}


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _key_table(keys: tuple[Key, ...]) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{k.name}` | {_md(k.type)} | {_md(k.default)} | {_md(_meaning(k))} |" for k in keys]
    return rows


def _meaning(key: Key) -> str:
    """What a key does, with the range or the choices the parser enforces, and its example."""
    allowed = (key.range.text() if key.range is not None
               else ", ".join(f'"{c}"' for c in key.choices) if key.choices is not None else None)
    refused = (" Refused with `kind` " + " or ".join(f'"{k}"' for k in key.refused_with)
               + " (such a source reads what it needs itself)." if key.refused_with else "")
    return (key.description + (f" Allowed: {allowed}." if allowed is not None else "") + refused
            + (f" Example: `{key.example}`." if key.example else ""))


def declared_range(table: str, key: str) -> Range:
    """The declared range of ``key`` in ``TABLES[table]``: what the parser checks and the reference states."""
    found = next(k.range for k in TABLES[table].keys if k.name == key)
    assert found is not None, f"[{table}] {key} declares no range"
    return found


def declared_choices(table: str, key: str) -> tuple[str, ...]:
    """The declared choices of ``key`` in ``TABLES[table]``: what the parser checks and the reference states."""
    found = next(k.choices for k in TABLES[table].keys if k.name == key)
    assert found is not None, f"[{table}] {key} declares no choices"
    return found


def kind_problem(kind: Any) -> str | None:
    """Why ``kind`` is not a declared source kind (with the closest one), or None when it is one or None."""
    kinds = declared_choices("data", "kind")
    if kind is None or (isinstance(kind, str) and kind in kinds):
        return None
    return f"unknown source kind {kind!r}{did_you_mean(kind, kinds)} (the kinds are " + ", ".join(
        f'"{k}"' for k in kinds) + ")"


def source_problem(kind: Any, dictionary: Any, mapping: Any = None,
                   options: dict[str, Any] | None = None, source: Any = None) -> tuple[str, str] | None:
    """What is wrong with a source's ``kind``, ``dictionary``, ``mapping`` and read ``options`` (``sheet``,
    ``table``, ``query``: the keys declared ``refused_with`` the kinds) together, as (the key at fault, the
    message), or None: the one check of ``[data]`` and of ``hostats run/init --kind/--dictionary``. The read
    options are checked by :func:`hostats.sources.read_option_problem` against the kind and ``source`` (the
    path or URL: a sheet of a CSV file is refused)."""
    if kind_problem(kind) is not None:
        return "kind", kind_problem(kind)
    if dictionary is not None and (not isinstance(dictionary, str) or not dictionary.strip()):
        return "dictionary", f"must be the file name of the data dictionary (text), not {dictionary!r}"
    if dictionary is not None and kind not in (None, "redcap"):
        return "dictionary", f"a data dictionary goes with a REDCap export (kind \"redcap\"), not with kind {kind!r}"
    if kind == "redcap" and dictionary is None:
        return "kind", "a REDCap export is read with the project's data dictionary: give its dictionary (CSV) too"
    if kind == "omop" and mapping is not None:
        return "mapping", ("an OMOP CDM is read through its concept sets (hostats/sources/concept_sets.toml); a "
                           "mapping does not apply")
    source_kind = kind if kind is not None else ("redcap" if dictionary is not None else None)
    declared = {k.name for k in TABLES["data"].keys if k.refused_with}
    return read_option_problem(source_kind, {k: v for k, v in (options or {}).items() if k in declared}, source)


def spec_reference() -> str:
    """The spec reference (Markdown), generated from the declaration above: ``docs/spec-reference.md``."""
    out = ["# Analysis spec reference", "",
           "<!-- Generated from hostats/analysis/spec.py by `python -m hostats.analysis`; do not edit. -->",
           "", "An analysis is a folder under `analyses/` with an `analysis.toml`. Every table and key is "
           "listed here; any other is an error naming the spec's line. Column names are checked against the "
           "data when the analysis runs.", ""]
    for t in TABLES.values():
        out += [f"## `{t.header}`", "", t.description, "", *_key_table(t.keys), ""]
    out += ["## `[[section]]`", "", "Each section runs one estimator on the analysed episodes and is a part of "
            "the report and a group of rows of estimates.csv. Keys every section accepts:", "",
            *_key_table(COMMON_SECTION_KEYS), ""]
    for t in SECTION_TYPES.values():
        out += [f"### `{t.header}`", "", t.description, "", *_key_table(t.keys), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def write_spec_reference(path: Path | str = "docs/spec-reference.md") -> Path:
    """Write :func:`spec_reference` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec_reference(), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------
# locating keys in the spec text (tomllib gives values, not line numbers)
# ---------------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")


_KEYLINE = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]+\")\s*=")


def _locate(text: str, table: str | None, key: str | None = None, index: int | None = None) -> int | None:
    """1-based line of ``key`` in ``[table]`` (the ``index``-th ``[[table]]``), or of the header itself."""
    current, count, header_line, in_string = None, {}, None, False
    for lineno, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_string:  # inside a multi-line string: its lines are text, not keys or headers
            in_string = quotes % 2 == 0
            continue
        in_string = quotes % 2 == 1
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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}, line {line}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                        "TOML files are UTF-8: save the spec as UTF-8 in your editor (e.g. 'Save with "
                        "encoding' > UTF-8)") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    stub = Spec(path, text, raw, "", "", "", {}, [], [], [], {}, {}, {}, {}, [])
    _check_tables(stub, raw)
    analysis = raw.get("analysis", {})
    if not analysis.get("title"):
        raise stub.error("every analysis needs a title", "analysis", "title")
    seeds = declared_range("analysis", "seed")
    if "seed" in analysis and not (_is_int(analysis["seed"]) and seeds.holds(analysis["seed"])):
        raise stub.error(f"must be an integer {seeds.text()}, got {analysis['seed']!r}", "analysis", "seed")
    data = dict(raw.get("data", {}))
    synthetic = _check_synthetic(stub, data)
    _check_source(stub, data)
    criteria = _check_criteria(stub, raw)
    derive = _check_derive(stub, raw)
    outcome = _check_outcome(stub, raw)
    report = _check_report(stub, raw)
    sections = _check_sections(stub, raw)
    if "methods" in raw.get("adjustment", {}):
        _check_methods(stub, raw["adjustment"]["methods"], "adjustment", None)
    ids = {s["id"] for s in sections}
    for h in _as_list(report.get("headline")):
        if str(h).partition("/")[0] not in ids:
            raise stub.error(f"{h!r} names no section{did_you_mean(str(h).partition('/')[0], ids)} (section "
                             f"ids: {sorted(ids)})", "report", "headline")
    for table, blocks in (("derive", derive), ("section", sections)):
        for i, block in enumerate(blocks):
            if "optional" in block and not isinstance(block["optional"], bool):
                raise stub.error("must be true or false", table, "optional", i)
    _check_columns(stub, raw, derive, sections)
    return Spec(path=path, text=text, raw=raw, name=analysis.get("name", path.parent.name),
                title=analysis["title"], question=analysis.get("question", ""), data=data, synthetic=synthetic,
                criteria=criteria, derive=derive, outcome=outcome, exposure=dict(raw.get("exposure", {})),
                adjustment=dict(raw.get("adjustment", {})), report=report, sections=sections)


def _check_tables(stub: Spec, raw: dict) -> None:
    """Only known tables, and in the single tables ([name]) only declared keys."""
    known_tables = set(_KEYS) - {"synthetic"} | {"section"}
    for table in raw:
        if table not in known_tables:
            raise stub.error(f"unknown table{did_you_mean(table, known_tables)} (known tables are "
                             f"{sorted(known_tables)})", table)
    for table, keys in _KEYS.items():
        if table in ("synthetic", "criteria", "derive"):
            continue
        block = raw.get(table, {})
        if not isinstance(block, dict):
            raise stub.error("must be a table ([name]), not a list", table)
        for k in block:
            if k not in keys:
                raise stub.error(f"unknown key{did_you_mean(k, keys)} (allowed: {sorted(keys)})", table, k)


def _check_synthetic(stub: Spec, data: dict) -> list[dict[str, Any]]:
    """``[data] synthetic``: each an inline table with scenario, n and seed; the data are somewhere."""
    synthetic = _as_list(data.get("synthetic"))
    sizes, seeds, faults = (declared_range("synthetic", k) for k in ("n", "seed", "fault_rate"))
    for i, s in enumerate(synthetic):
        if not isinstance(s, dict):
            raise stub.error("must be an inline table {scenario=..., n=..., seed=...}", "data", "synthetic")
        unknown = set(s) - _KEYS["synthetic"]
        if unknown:
            first = sorted(unknown)[0]
            raise stub.error(f"unknown key(s) {sorted(unknown)} in synthetic #{i + 1}"
                             f"{did_you_mean(first, _KEYS['synthetic'])}", "data", "synthetic")
        for k in ("scenario", "n", "seed"):
            if k not in s:
                raise stub.error(f"synthetic #{i + 1} needs {k!r}", "data", "synthetic")
        if not _is_int(s["n"]) or s["n"] < sizes.low:
            raise stub.error(f"n must be a positive integer, got {s['n']!r}", "data", "synthetic")
        if not sizes.holds(s["n"]):
            raise stub.error(f"n = {s['n']} is more than the at most {sizes.high:,} patients a synthetic "
                             "cohort may have (beyond it the draw runs out of memory)", "data", "synthetic")
        if not (_is_int(s["seed"]) and seeds.holds(s["seed"])):
            raise stub.error(f"seed must be an integer {seeds.text()}, got {s['seed']!r}", "data", "synthetic")
        if "fault_rate" in s and not (_is_number(s["fault_rate"]) and faults.holds(s["fault_rate"])):
            raise stub.error(f"fault_rate must be a number {faults.text()}, got {s['fault_rate']!r}", "data",
                             "synthetic")
    if not synthetic and "path" not in data:
        raise stub.error("say where the data are: path = \"...\" (with mapping) or synthetic = {...}", "data")
    return synthetic


def _check_source(stub: Spec, data: dict) -> None:
    """``[data] kind`` and ``dictionary``: a known kind, a dictionary with a REDCap export, both describing
    ``path``; no ``sheet``, ``table`` or ``query`` with a REDCap export or an OMOP CDM (they read what they
    need themselves). Whether the files exist and lie inside the spec's folder is checked when the analysis
    runs."""
    problem = source_problem(data.get("kind"), data.get("dictionary"), data.get("mapping"), data, data.get("path"))
    if problem is not None:
        raise stub.error(problem[1], "data", problem[0])
    for key in ("kind", "dictionary"):
        if key in data and "path" not in data:
            raise stub.error(f"{key} describes the file at path: give path = \"...\" too", "data", key)


def _check_criteria(stub: Spec, raw: dict) -> list[dict[str, Any]]:
    criteria = _as_list(raw.get("criteria"))
    for i, c in enumerate(criteria):
        _check_keys(stub, "criteria", i, c, _KEYS["criteria"])
        if not c.get("name") or not c.get("keep"):
            raise stub.error("each criterion needs a name and a keep expression", "criteria", None, i)
    return criteria


def _check_derive(stub: Spec, raw: dict) -> list[dict[str, Any]]:
    derive = _as_list(raw.get("derive"))
    for i, d in enumerate(derive):
        _check_keys(stub, "derive", i, d, _KEYS["derive"])
        if not d.get("name") or not d.get("expr"):
            raise stub.error("each derived column needs a name and an expr", "derive", None, i)
        if ("otherwise" in d) != ("where" in d):
            raise stub.error("'where' and 'otherwise' go together: expr where the condition holds, otherwise the "
                             "constant", "derive", "otherwise" if "otherwise" in d else "where", i)
        if "otherwise" in d and not _is_number(d["otherwise"]):
            raise stub.error("must be a finite number", "derive", "otherwise", i)
    return derive


def _check_outcome(stub: Spec, raw: dict) -> dict[str, Any]:
    """``[outcome]`` with its defaults filled in."""
    outcome = dict(raw.get("outcome", {}))
    outcome.setdefault("event", "ho")
    outcome.setdefault("horizon_days", 365)
    outcome.setdefault("competing", "death")
    if not (_is_number(outcome["horizon_days"]) and declared_range("outcome", "horizon_days").holds(
            outcome["horizon_days"])):
        raise stub.error(f"must be a finite positive number of days, got {outcome['horizon_days']!r}", "outcome",
                         "horizon_days")
    if outcome["competing"] not in ("death", "none"):
        raise stub.error("must be \"death\" or \"none\"", "outcome", "competing")
    return outcome


def _check_report(stub: Spec, raw: dict) -> dict[str, Any]:
    report = dict(raw.get("report", {}))
    thr = report.get("small_cell_threshold", 5)
    if not (_is_int(thr) and declared_range("report", "small_cell_threshold").holds(thr)):
        raise stub.error("must be a positive integer (counts below it are shown as <threshold)", "report",
                         "small_cell_threshold")
    rounding = report.get("rounding", 5)
    if not ((_is_int(rounding) and declared_range("report", "rounding").holds(rounding)) or rounding == "midpoint6"):
        raise stub.error(f"must be 0 (exact counts), a base of 2 or more, or \"midpoint6\"; got {rounding!r}",
                         "report", "rounding")
    if _is_int(rounding) and rounding == 1:
        report["rounding"] = 0  # rounding to the nearest 1 is exact counts
    lvl, levels = report.get("ci_level", 0.95), declared_range("report", "ci_level")
    if not (isinstance(lvl, float) and levels.holds(lvl)):
        raise stub.error(f"must be a fraction such as 0.95 ({levels.text()})", "report", "ci_level")
    if report.get("truth", "population") not in ("population", "sample"):
        raise stub.error("must be \"population\" or \"sample\"", "report", "truth")
    return report


def _check_sections(stub: Spec, raw: dict) -> list[dict[str, Any]]:
    """The ``[[section]]`` entries: a known type, its declared keys, unique ids (``id`` and ``_index``
    filled in)."""
    sections = _as_list(raw.get("section"))
    if not sections:
        raise stub.error("an analysis needs at least one [[section]] with an estimator", "section")
    ids = set()
    for i, s in enumerate(sections):
        t = s.get("type")
        if t not in _SECTION_KEYS:
            raise stub.error(f"unknown section type {t!r}{did_you_mean(t, _SECTION_KEYS)} (known: "
                             f"{sorted(_SECTION_KEYS)})", "section", "type", i)
        _check_keys(stub, "section", i, s, _SECTION_KEYS[t] | _COMMON_SECTION_KEYS)
        if "methods" in s:
            _check_methods(stub, s["methods"], "section", i)
        sid = s.get("id") or f"{i + 1}_{t}"
        if sid in ids:
            raise stub.error(f"duplicate section id {sid!r}", "section", "id", i)
        ids.add(sid)
        s["id"] = sid
        s["_index"] = i
    return sections


def _check_keys(spec: Spec, table: str, index: int, block: dict, allowed: set[str]) -> None:
    if not isinstance(block, dict):
        raise spec.error("must be a table", table, None, index)
    for k in block:
        if k not in allowed:
            raise spec.error(f"unknown key{did_you_mean(k, allowed)} (allowed: {sorted(allowed)})", table, k, index)



def _check_methods(stub: Any, methods: Any, table: str, index: int | None) -> None:
    bad = [m for m in _as_list(methods) if m not in ADJUSTMENT_METHODS] if isinstance(methods, list) else [methods]
    if bad or not methods:
        raise stub.error(f"methods must be a list drawn from {list(ADJUSTMENT_METHODS)}; not {bad or methods!r}",
                         table, "methods", index)


# ---------------------------------------------------------------------------------------------------
# column names, checked before any computation: a column a spec may name is a column of the schema
# (hostats/schema.py: the episodes, and the cleaning's derived columns), a standard derived flag, or a
# [[derive]] name. Whether the export has an optional schema column is known only once it is read.
# ---------------------------------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# columns a section makes itself (cox: ho_event = status 1)
_SECTION_MADE = {"ho_event"}
# per section type: the keys naming a column, with their defaults ("event"-like keys may hold a condition)
_COLUMN_KEYS: dict[str, dict[str, str | None]] = {
    "cumulative_incidence": {"by": None},
    "proportion": {"event": FLAG, "column": None, "by": None},
    "rate": {"event": "ho", "by": None, "time": "time_days"},
    "logistic": {"cluster": None},
    "iptw": {"treatment": None, "outcome": FLAG, "time": "time_days", "status": "status"},
    "cox": {"time": "time_days", "event": "ho_event", "weights": None, "cluster": None},
    "fine_gray": {"time": "time_days", "status": "status"},
    "meta_proportions": {"by": "site", "event": FLAG},
    "interval_censored": {"lower": "ho_interval_lo_days", "upper": "ho_interval_hi_days",
                          "lower_modality": "ho_interval_lo_test", "upper_modality": "ho_interval_hi_test"},
    "diagnosis_timing": {},
}
_CONDITION_KEYS = {"event", "outcome"}


def schema_columns() -> set[str]:
    """Every column the analysed episodes can have: the schema's, the cleaning's derived ones, the source
    reference, and the analysis' standard flags."""
    from hostats.schema import DERIVED_COLUMNS, EPISODE_COLUMNS

    return ({getattr(c, "name", c) for c in EPISODE_COLUMNS} | {getattr(c, "name", c) for c in DERIVED_COLUMNS}
            | {"source_file", "source_row", FLAG, KNOWN_FLAG})


def _expr_names(expr: str) -> list[str]:
    """Column names in a condition or derive expression: identifiers that are not keywords, string
    contents, function or method calls, attributes, or keyword arguments."""
    stripped = re.sub(r"'[^']*'|\"[^\"]*\"", "''", str(expr))
    names = []
    for m in re.finditer(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)(?![\w])", stripped):
        rest = stripped[m.end():].lstrip()
        if rest.startswith("(") or (rest.startswith("=") and not rest.startswith("==")):
            continue
        names.append(m.group(1))
    skip = {"and", "or", "not", "in", "is", "True", "False", "None", "true", "false", "nan", "inf", "np", "pd"}
    return [n for n in dict.fromkeys(names) if n not in skip]


def section_columns(sec: dict[str, Any], spec_like: Any = None) -> list[tuple[str, str]]:
    """(column, key) pairs a ``[[section]]`` names, defaults from ``[exposure]``/``[adjustment]`` included
    (pass the Spec, or the raw spec dict); used before any computation and, by the runner, to tell which
    columns of the schema a section needs that the data lack."""
    from hostats.stats.core.formula import formula_columns

    raw = getattr(spec_like, "raw", spec_like) or {}
    out: list[tuple[str, str]] = [(n, "subset") for n in _expr_names(sec["subset"])] if sec.get("subset") else []
    t = sec.get("type")
    for key, default in _COLUMN_KEYS.get(t, {}).items():
        v = sec.get(key, default)
        if key == "treatment" and v is None:
            v = raw.get("exposure", {}).get("column")
        if not isinstance(v, str) or not v:
            continue
        if key in _CONDITION_KEYS and not _IDENT.match(v):
            out += [(n, key) for n in _expr_names(v)]
        else:
            out.append((v, key))
    for v in _as_list(sec.get("strata")):
        if isinstance(v, str):
            out.append((v, "strata"))
    if t == "iptw":
        conf = sec.get("confounders", raw.get("adjustment", {}).get("confounders", []))
        out += [(c, "confounders") for c in _as_list(conf) if isinstance(c, str)]
    if t in ("logistic", "cox", "fine_gray") and isinstance(sec.get("formula"), str) and sec["formula"].strip():
        try:
            names = formula_columns(sec["formula"], outcome=(t == "logistic"))
        except Exception:  # a formula the engine cannot parse: the section reports it with its own message
            names = []
        out += [(n, "formula") for n in names]
    return out


def _check_columns(stub: Spec, raw: dict, derive: list[dict], sections: list[dict]) -> None:
    """Every column a spec names exists in the schema or is derived: a typo is a SpecError at its line,
    with a suggestion, before any data are generated or read."""
    known = schema_columns() | {d["name"] for d in derive}

    def check(name: Any, table: str, key: str, index: int | None = None, extra: set[str] = frozenset()) -> None:
        if isinstance(name, str) and name not in known and name not in extra:
            hint = did_you_mean(name, known | extra)
            raise stub.error(f"unknown column {name!r}{hint}" + ("" if hint else
                             f" (columns: those of hostats/schema.py, the [[derive]] names and {FLAG}, "
                             f"{KNOWN_FLAG}: {', '.join(sorted(known))})"), table, key, index)

    for i, c in enumerate(raw.get("criteria", []) if isinstance(raw.get("criteria"), list) else []):
        for n in _expr_names(c.get("keep", "")):
            check(n, "criteria", "keep", i)
    for i, d in enumerate(derive):
        for key in ("expr", "where"):
            for n in _expr_names(d.get(key, "")) if isinstance(d.get(key), str) else []:
                check(n, "derive", key, i)
    ev = raw.get("outcome", {}).get("event")
    if isinstance(ev, str):
        check(ev, "outcome", "event")
    check(raw.get("exposure", {}).get("column"), "exposure", "column")
    for c in _as_list(raw.get("adjustment", {}).get("confounders")):
        check(c, "adjustment", "confounders")
    rep = raw.get("report", {})
    for v in _as_list(rep.get("table1")):
        check(v, "report", "table1")
    check(rep.get("table1_by"), "report", "table1_by")
    for sec in sections:
        for name, key in section_columns(sec, raw):
            check(name, "section", key, sec["_index"], extra=_SECTION_MADE)
