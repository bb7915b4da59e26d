"""The self-contained HTML report (jinja2): one file that opens offline from disk in any browser.

Figures are embedded as base64 PNG (their PNG and SVG files sit beside the report), the style sheet is
inline and there is no script and no external resource, so nothing can fail to load. Sections, each with
a stable ``id`` that tests and readers can link to: question, data, flow, table1, estimates, figures,
diagnostics, sensitivity, methods, provenance.
"""
from __future__ import annotations

import base64
import html as _html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from hostats.report.disclosure import DisclosurePolicy, policy_for
from hostats.report.labels import (
    format_estimate,
    group_label,
    measure_label,
    readable_text,
    term_label,
    variable_label,
)
from hostats.report.publication import PublicationTable, _level_text
from hostats.report.tables import (
    estimates_display,
    format_count,
    redact_text,
)

SECTION_IDS = ("summary", "question", "data", "flow", "table1", "estimates", "figures", "diagnostics", "sensitivity",
               "methods", "provenance")
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class FigureBlock:
    name: str
    title: str
    caption: str
    base64: str
    png: str
    svg: str


@dataclass
class TableBlock:
    title: str
    frame: pd.DataFrame
    note: str = ""
    section: str = ""   # the section whose model terms its ``term`` column names (labelled as its estimates)

    def html(self) -> str:
        return frame_html(self.frame)


@dataclass
class ReportContent:
    """Everything a report shows; filled by the analysis runner, rendered by ``render_report``."""

    name: str
    title: str
    question: str = ""
    data_source: list[str] = field(default_factory=list)
    synthetic: bool = False
    threshold: int = 5
    flow: pd.DataFrame | None = None
    criteria: list[str] = field(default_factory=list)
    criteria_steps: list[str] = field(default_factory=list)  # ledger step names of the criteria
    table1: PublicationTable | None = None   # the manuscript's Table 1 (hostats.report.publication.table1)
    estimates: pd.DataFrame = field(default_factory=pd.DataFrame)   # tidy, already suppressed
    section_titles: dict[str, str] = field(default_factory=dict)
    section_notes: dict[str, str] = field(default_factory=dict)
    figures: list[FigureBlock] = field(default_factory=list)
    extra_tables: list[TableBlock] = field(default_factory=list)    # shown with the estimates
    diagnostics: list[TableBlock] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sensitivity: list[TableBlock] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # [report] headline: "section" or "section/measure"
    horizon: float | None = None                         # curve rows in the summary are read at the horizon
    labels: dict[str, str] = field(default_factory=dict)  # [report] labels of variables
    # section -> model term -> its label with the reference level, from the section's data (term_labels)
    term_names: dict[str, dict[str, str]] = field(default_factory=dict)
    flow_reasons: dict[str, list[str]] = field(default_factory=dict)  # step -> reasons, each naming its source
    policy: DisclosurePolicy | None = None  # the disclosure policy (None: the report's, else the default)
    downloads: list[tuple[str, str]] = field(default_factory=list)  # (file, what it is) linked from the summary


def frame_html(frame: pd.DataFrame) -> str:
    """A DataFrame as an escaped HTML table (no index), numbers already formatted by the caller."""
    return frame.to_html(index=False, escape=True, na_rep="", border=0, classes="tbl",
                         float_format=lambda v: f"{v:.3f}")


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\\/\s;,()]+)+[\\/]([^\\/\s;,()]+)")


def _short_paths(text: str) -> str:
    """File paths in ledger reasons shown as their file names (no folders of the machine in a report)."""
    return _PATH.sub(lambda m: m.group(1), text)


def flow_boxes(flow: pd.DataFrame, threshold: int = 5, always: tuple[str, ...] | list[str] = ()) -> list[dict[str, str]]:
    """The flow diagram as boxes, with disclosure control along the chain of exclusions.

    ``flow`` is ``Cohort.flow()``: step, rows_in, rows_excluded, rows_out, rows_changed, reason (first row
    = rows read). Counts follow the report's disclosure policy (rounded; 1..threshold-1 rows as "<5");
    because rows_in - excluded = rows_out, where the chain would still reveal a small exclusion the
    intermediate "remaining" counts are not shown and then the next smallest exclusion or the rows read
    are withheld ("s"): :meth:`hostats.report.disclosure.DisclosurePolicy.protect_flow`. Steps named in
    ``always`` (the analysis criteria) get a box even when they exclude nothing; other steps only when they
    excluded or changed rows.
    """
    f = flow.reset_index(drop=True).copy()
    if f.empty:
        return []
    if "reason" in f.columns:
        f["reason"] = f["reason"].fillna("").astype(str).map(lambda t: redact_text(_short_paths(t), threshold))
    exc = pd.to_numeric(f.get("rows_excluded", 0), errors="coerce").fillna(0).to_numpy(float)
    policy = policy_for(threshold)
    rows_read = f["rows_out"].iloc[0] if "rows_out" in f.columns else f["rows_in"].iloc[0]
    counts = policy.protect_flow(rows_read, exc)
    exc[0] = 0.0  # the first row is the read step
    boxes = [{"kind": "main", "label": "Rows read", "count": counts["read"],
              "reason": str(f["reason"].iloc[0]) if "reason" in f.columns and pd.notna(f["reason"].iloc[0]) else ""}]
    last = len(f) - 1
    for i in range(1, len(f)):
        r = f.iloc[i]
        changed = float(r.get("rows_changed", 0) or 0)
        shown = exc[i] > 0 or str(r["step"]) in set(always)
        if shown or i == last or changed > 0:
            count = counts["excluded"][i]
            if shown:
                boxes.append({"kind": "side", "label": str(r["step"]), "count": count,
                              "reason": str(r.get("reason", "") or "")})
            if changed > 0:
                boxes.append({"kind": "note", "label": str(r["step"]),
                              "count": format_count(changed, threshold),
                              "reason": "values corrected (rows kept): " + str(r.get("reason", "") or "")})
            if exc[i] > 0 and i != last and counts["remaining"] is not None:
                boxes.append({"kind": "main", "label": "Remaining", "count": counts["remaining"][i], "reason": ""})
    boxes.append({"kind": "main final", "label": "Analysed", "count": counts["analysed"], "reason": ""})
    return boxes


def source_reasons(steps: Any) -> dict[str, list[str]]:
    """The ledger's reasons per step with the source file they come from (``Ledger.steps``: each source's
    steps follow its "read" step, "rows read from FILE"): ``{"dates": ["site_A.csv: 10 unreadable ...",
    ...]}``. A step recorded once (one source, the analysis criteria) keeps its reason unlabelled."""
    steps = list(steps or [])
    times: dict[str, int] = {}
    for st in steps:
        times[st.step] = times.get(st.step, 0) + 1
    source, out = None, {}
    for st in steps:
        reason = str(getattr(st, "reason", "") or "")
        if st.step == "read":
            m = re.match(r"rows read from (.+)$", reason)
            source = _short_paths(m.group(1)) if m else None
        if not reason:
            continue
        text = _short_paths(reason)
        if st.step == "read" and source:
            text = source
        elif source and times[st.step] > 1:
            text = f"{source}: " + "; ".join(seg.removeprefix(f"{source}: ") for seg in text.split("; "))
        lines = out.setdefault(st.step, [])
        if text not in lines:
            lines.append(text)
    return out


def _flow_layout(boxes: list[dict[str, str]], reasons: dict[str, list[str]], threshold: int,
                 criteria: list[str] | tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The flow diagram's exclusions and remaining counts apart from the cleaning notes (values corrected,
    rows kept), each box's reasons one per line and labelled with their source."""
    main, cleaning = [], []
    for b in boxes:
        b = dict(b)
        own = reasons.get(b["label"]) if b["kind"] != "main" else None
        if b["label"] == "Rows read":
            own = reasons.get("read")
        prefix = "values corrected (rows kept): "
        text = b.get("reason", "").removeprefix(prefix)
        b["lines"] = ([redact_text(x, threshold) for x in own] if own and b["kind"] != "main final"
                      else [x for x in text.split("; ") if x] if text else [])
        if b["kind"] == "side":
            b["title"] = (f"Excluded by the criterion \u201c{b['label']}\u201d" if b["label"] in set(criteria)
                          else f"Excluded: {b['label']}")
        (cleaning if b["kind"] == "note" else main).append(b)
    return main, cleaning


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env


def _who(section: str, group: str, term: str, labels: dict[str, str],
         term_names: dict[str, dict[str, str]] | None) -> str:
    """An estimate's group or model term as a reader says it: a term in the model tables' words with its
    reference level ("Sex: male (ref. female)") where the writer named the section's terms from its data,
    else without the reference (:func:`hostats.report.labels.term_label`)."""
    if group:
        return group_label(group)
    named = (term_names or {}).get(section, {}).get(term)
    return named if named is not None else term_label(term, labels)


def _readable(disp: pd.DataFrame, rows: pd.DataFrame, labels: dict[str, str],
              term_names: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """An estimates display frame with readable measures and groups/terms (machine names stay in the CSV)."""
    disp = disp.copy()
    disp["measure"] = [measure_label(m) for m in rows["measure"].fillna("").astype(str)]
    empty = pd.Series("", index=rows.index)
    grp = rows["group"].fillna("").astype(str) if "group" in rows.columns else empty
    term = rows["term"].fillna("").astype(str) if "term" in rows.columns else empty
    disp["group / term"] = [_who(str(s), g, t, labels, term_names)
                            for s, g, t in zip(rows["section"], grp, term, strict=True)]
    return disp


def _readable_terms(frame: pd.DataFrame, labels: dict[str, str], section: str = "",
                    term_names: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """A table read as words: its ``term`` column (model terms such as ``gram_negative_infection[T.True]``,
    named as :func:`_who` names the estimates of ``section``: "Sex: male (ref. female)"),
    its ``measure`` column (``risk_ratio`` -> "Risk ratio"), its covariates (``variable``, ``level``: a
    balance table's "age_years", "sex"/"male"), its group/contrast/arm columns ("radiotherapy_nsaid vs
    none" read as groups) and its column names (``p_value`` -> "p value")."""
    if not isinstance(frame, pd.DataFrame):
        return frame
    out = frame.copy()

    def text(col: str) -> bool:
        return col in out.columns and (out[col].dtype == object or pd.api.types.is_string_dtype(out[col]))

    if "term" in out.columns:
        out["term"] = [group_label(t) if " vs " in t else _who(section, "", t, labels, term_names)
                       for t in out["term"].fillna("").astype(str)]
    if text("measure"):
        out["measure"] = [measure_label(v) if isinstance(v, str) and v else v for v in out["measure"]]
    if text("variable"):
        variables = out["variable"].copy()
        out["variable"] = [variable_label(v, labels) if isinstance(v, str) and v else v for v in variables]
        if text("level"):
            out["level"] = [_level_text(lv, v if isinstance(v, str) else None) if isinstance(lv, str) and lv
                            else lv for v, lv in zip(variables, out["level"], strict=True)]
    for col in ("group", "contrast", "arm"):  # arms and contrasts of arms: "radiotherapy_nsaid vs none"
        if text(col):
            out[col] = [group_label(v) if isinstance(v, str) and v else v for v in out[col]]
    return out.rename(columns={c: c.replace("_", " ") for c in out.columns if isinstance(c, str)})


def summary_rows(est: pd.DataFrame, headline: list[str], horizon: float | None = None,
                 labels: dict[str, str] | None = None, section_titles: dict[str, str] | None = None,
                 per_entry: int = 6, term_names: dict[str, dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """The answer at the top of a report: for each ``[report] headline`` entry ("section" or
    "section/measure"; none: the first rows) its rows (curves at the horizon), each with a readable label,
    the estimate in journal format "0.43 (0.36 to 0.52)", and whether it is a ratio. Every requested entry
    is kept (up to ``per_entry`` rows each); an entry without rows says so."""
    if est.empty:
        return []
    if "time_days" in est.columns and horizon is not None:
        t = pd.to_numeric(est["time_days"], errors="coerce")
        est = est[t.isna() | np.isclose(t.fillna(-1).astype(float), float(horizon))]
    entries = [str(h) for h in headline] or [None]
    out = []
    for h in entries:
        if h is None:
            picks = est.head(3)
            sec, measure = "", ""
        else:
            sec, _, measure = h.partition("/")
            picks = est[(est["section"] == sec) & ((est["measure"] == measure) if measure else True)]
        title = (section_titles or {}).get(sec, sec)
        if picks.empty:
            out.append({"label": f"{measure_label(measure) if measure else title}", "value": "not estimated",
                        "section": title, "ratio": False, "estimate": np.nan, "ci_lower": np.nan,
                        "ci_upper": np.nan})
            continue
        for _, r in picks.head(per_entry).iterrows():
            who = _who(str(r["section"]), str(r.get("group", "") or ""), str(r.get("term", "") or ""), labels or {},
                       term_names)
            est_v = r["estimate"]
            withheld = est_v is None or pd.isna(est_v)
            value = "withheld (small numbers)" if withheld else format_estimate(est_v, r.get("ci_lower"),
                                                                                r.get("ci_upper"))
            out.append({"label": measure_label(str(r["measure"])) + (f", {who}" if who else ""), "value": value,
                        "section": title, "ratio": "ratio" in str(r["measure"]) and not withheld,
                        "estimate": est_v, "ci_lower": r.get("ci_lower"), "ci_upper": r.get("ci_upper")})
    return out


def summary_forest(rows: list[dict[str, Any]], figures: Path | None = None) -> str:
    """A forest plot (base64 PNG) of the summary's ratios with a CI, or "" when there are none; with
    ``figures`` (a folder) also written there as summary_forest.png and .svg."""
    from hostats.report.figures import _RC, forest_plot, plt, save_figure

    f = pd.DataFrame([r for r in rows if r["ratio"]])
    if f.empty:
        return ""
    f = f[np.isfinite(pd.to_numeric(f["ci_lower"], errors="coerce")) &
          np.isfinite(pd.to_numeric(f["ci_upper"], errors="coerce")) & (pd.to_numeric(f["ci_lower"]) > 0)]
    if f.empty:
        return ""
    f = f.assign(estimate=pd.to_numeric(f["estimate"]), ci_lower=pd.to_numeric(f["ci_lower"]),
                 ci_upper=pd.to_numeric(f["ci_upper"]))
    fig = forest_plot(f, label="label", null=1.0, xlabel="ratio (log scale; 1 = no difference)", group="section")
    if figures is not None:
        return save_figure(fig, figures, "summary_forest")["base64"]
    buf = io.BytesIO()
    with plt.rc_context(_RC):
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_report(content: ReportContent, path: Path | str) -> Path:
    """Render ``content`` to a single self-contained HTML file at ``path``: a summary first (the question,
    the headline estimates in journal format, a forest plot of their ratios), then the details."""
    est = content.estimates
    content.warnings = [readable_text(redact_text(w, content.threshold), content.labels) for w in content.warnings]
    content.section_notes = {k: readable_text(v, content.labels) for k, v in content.section_notes.items()}
    groups = []
    if not est.empty:
        for sec, rows in est.groupby("section", sort=False):
            disp = _readable(estimates_display(rows, show_truth=content.synthetic), rows,
                             content.labels, content.term_names)
            groups.append({"title": content.section_titles.get(sec, str(sec)), "table": frame_html(disp),
                           "note": content.section_notes.get(sec, "")})
    for block in [*content.extra_tables, *content.diagnostics, *content.sensitivity]:
        block.frame = _readable_terms(block.frame, content.labels, block.section, content.term_names)
    summary = summary_rows(est, content.headline, content.horizon, content.labels, content.section_titles,
                           term_names=content.term_names)
    summary_png = summary_forest(summary, Path(path).parent / "figures")
    if summary_png:  # the files beside the report (the writer's list: the manifest names them too)
        content.files.extend(f for f in ("figures/summary_forest.png", "figures/summary_forest.svg")
                             if f not in content.files)
    lvl = pd.to_numeric(est["ci_level"], errors="coerce").dropna() if "ci_level" in est.columns else pd.Series([])
    summary_level = f"{100 * float(lvl.iloc[0]):.0f}%" if len(lvl) else "95%"
    flow = flow_boxes(content.flow, content.threshold, content.criteria_steps) if content.flow is not None else []
    flow, cleaning = _flow_layout(flow, content.flow_reasons, content.threshold, content.criteria_steps)
    html = _env().get_template("report.html.j2").render(
        c=content, flow=flow, estimate_groups=groups, summary=summary, disclosure=disclosure_text(content),
        manifest_note=MANIFEST_NOTE,
        summary_png=summary_png, summary_level=summary_level, cleaning=cleaning,
        table1_html=content.table1.to_html() if content.table1 is not None else "",
        esc=_html.escape)
    path = Path(path)
    path.write_text(_plain_names(html), encoding="utf-8")
    return path


# manifest.json is the analyst's record of a run, not a published output: it keeps the exact number of
# episodes analysed (and, for synthetic data, the exact counts of the injected faults), which a re-run is
# checked against; the report and its other files carry the published (rounded) counts
MANIFEST_NOTE = "exact counts, for the analyst; do not publish"


def disclosure_text(content: ReportContent) -> str:
    """The report's disclosure policy in words, from its settings, where it applies, and which file of the
    report folder it does not apply to (manifest.json, the analyst's record)."""
    policy = policy_for(content.threshold, content.policy)
    where = ["the tables", "the flow diagram and its notes", "estimates.csv and estimates.json", "the figures"]
    where += [f for f, _ in content.downloads]
    record = (" manifest.json is the analyst's record of the run, with exact counts (the episodes analysed"
              + (", the faults injected into the synthetic data" if content.synthetic else "")
              + "): keep it with the analysis, do not publish it." if "manifest.json" in content.files else "")
    return (f"{policy.describe()} The same rule applies to every count of people in {', '.join(where[:-1])} and "
            f"{where[-1]}. No identifiers or exact dates are shown.{record}")


def _plain_names(html: str) -> str:
    """The identifier column is named in words ("patient ID"): reports never carry its column name, so a
    scan for it (as the acceptance check does) finds nothing even in ledger reasons that mention it."""
    return re.sub(r"patient_id", "patient ID", html, flags=re.IGNORECASE)


def render_index(entries: list[dict[str, Any]], path: Path | str, *, title: str = "hostats reports",
                 provenance: dict[str, Any] | None = None) -> Path:
    """The index page of ``hostats reproduce``: one entry per analysis with a link to its report.

    ``entries``: dicts with name, title, question, href (relative), status ("ok" or "failed"), message,
    seconds, and ``headline`` (a small list of {measure, estimate, truth} dicts).
    """
    html = _plain_names(_env().get_template("index.html.j2").render(entries=entries, title=title,
                                                                     provenance=provenance or {}))
    path = Path(path)
    path.write_text(html, encoding="utf-8")
    return path
