"""Tables for a manuscript: Table 1 (crude and IPTW-weighted, with SMDs) and model tables (odds, hazard and
subdistribution hazard ratios; IPTW and ``ate`` contrasts), each one object that renders to HTML, Word
(.docx), LaTeX and Excel.

A :class:`PublicationTable` holds the cells as text, already formatted the way a journal prints them
("0.43 (0.36 to 0.52)", p "<0.001"), with readable labels (variable labels from ``labels=`` or made from the
column name: ``age_years`` -> "Age (years)"), categorical levels in their categorical order (not
alphabetical) and a reference row for every factor ("female (ref.)" above "male"). Each renderer only lays
these cells out, so the four formats always show the same numbers.

Libraries, and why:

- **Word: python-docx** (``docx``): the maintained library for writing .docx from Python (merged spanner
  cells, indents, a three-line table through its XML layer); nothing else writes Word without Word.
- **Excel: openpyxl**, already a dependency of the ingest (merged header cells, indents; text cells are
  stored as text, so a label such as ``=1+1`` can never run as a formula).
- **HTML and LaTeX: pandas' Styler** (with jinja2, both already dependencies): multi-level headers with
  spanners, ``to_latex(hrules=True)`` writes booktabs rules (``\\toprule``, ``\\midrule``,
  ``\\bottomrule``), and the HTML has stable ids. great_tables was the other candidate: it renders HTML
  (and an experimental LaTeX) but neither Word nor Excel, so it would have been a second layout engine
  for one format out of four, with its own dependencies (htmltools, babel, ...); the tables here need only
  spanners, indented rows and footnotes, which Styler does.

Disclosure: every count and every estimate that rests on a small count goes through the report's one
policy (:mod:`hostats.report.tables`, backed by :mod:`hostats.report.disclosure`); the three calls are in
the "Disclosure" section below, and nowhere else in this module.
"""
from __future__ import annotations

import html
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import DataError
from hostats.report.tables import format_p as format_p_value  # one rule of a p-value, by its public name here

__all__ = ["PublicationTable", "table1", "model_table", "save_tables", "default_label", "format_estimate",
           "estimate_parts", "format_p_value", "term_labels"]

DASH = "—"          # a withheld or not-estimable cell
REF = "ref."

# --------------------------------------------------------------------------------------------------
# Disclosure: the only calls into the report's suppression policy (switch here when it moves)
# --------------------------------------------------------------------------------------------------


def _protected_table_one(data: pd.DataFrame, variables: Sequence[str], by: str | None,
                         threshold: int) -> pd.DataFrame:
    """Table 1 cells with small counts shown as "<5" and secondary suppression ("s")."""
    from hostats.report.tables import table_one

    return table_one(data, list(variables), by, threshold=threshold)


def _protected_estimates(frame: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Estimates with counts protected; estimate, CI and p withheld (None) where n or events are small: the
    report's one decision of what is withheld (``suppress_estimates``), for a table made from a result
    (:func:`model_table`). Tables made from a report's estimates take its rows as published and never call it."""
    from hostats.report.tables import suppress_estimates

    return suppress_estimates(frame, threshold)


def _count_text(value: Any, threshold: int) -> str:
    """A count of people or events as the report's policy publishes it."""
    from hostats.report.tables import format_count

    return format_count(value, threshold)


# --------------------------------------------------------------------------------------------------
# Labels and number formats
# --------------------------------------------------------------------------------------------------

_ACRONYMS = {"ho": "HO", "rt": "RT", "nsaid": "NSAID", "nsaids": "NSAIDs", "tbsa": "TBSA", "gcs": "GCS",
             "tha": "THA", "sci": "SCI", "tbi": "TBI", "ct": "CT", "alp": "ALP", "bmi": "BMI", "id": "ID",
             "ate": "ATE", "att": "ATT"}
_UNITS = {"years": "years", "gy": "Gy", "days": "days", "hours": "hours", "percent": "%", "kg": "kg",
          "cm": "cm", "mg": "mg"}
_LEVEL_LABELS = {"radiotherapy_nsaid": "radiotherapy + NSAID", "long_bone_fracture": "long-bone fracture",
                 "True": "yes", "False": "no"}
# the cohort's derived times (hostats.schema), which their words would not say
_NAMES = {"time_days": "Follow-up time (days)", "followup_days": "Follow-up to last contact (days)"}


def default_label(name: str) -> str:
    """A readable label made from a column name: ``age_years`` -> "Age (years)", ``rt_dose_gy`` -> "RT dose
    (Gy)", ``prior_ho`` -> "Prior HO", ``tbsa_burned_percent`` -> "TBSA burned (%)", ``time_days`` ->
    "Follow-up time (days)"."""
    if str(name) in _NAMES:
        return _NAMES[str(name)]
    if not re.fullmatch(r"[\w.]+", str(name)):   # a transformed term (bs(x, df=4)[1]): as it is
        return str(name)
    words = [w for w in str(name).replace(".", "_").split("_") if w]
    if not words:
        return str(name)
    unit = None
    if len(words) > 1 and words[-1].lower() in _UNITS:
        unit = _UNITS[words.pop().lower()]
    text = " ".join(_ACRONYMS.get(w.lower(), w) for w in words)
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def _level_text(level: Any, variable: str | None = None,
                level_labels: Mapping[str, Mapping[str, str]] | None = None) -> str:
    key = str(level)
    own = (level_labels or {}).get(variable or "", {})
    if key in own:
        return str(own[key])
    if key in _LEVEL_LABELS:
        return _LEVEL_LABELS[key]
    if "_" in key or key.lower() in _ACRONYMS:
        return " ".join(_ACRONYMS.get(w.lower(), w) for w in key.split("_"))
    return key


MAX_DECIMALS = 6   # the most decimals of an estimate and its CI; a smaller estimate is written 3.2e-07


def estimate_decimals(estimate: float | None, digits: int = 2) -> int | None:
    """The decimals of an estimate and its CI, together, chosen from the estimate's scale as journals do:
    ``digits``, or more when the estimate would show fewer than two significant figures with them
    (0.042 -> 3 decimals, 0.0042 -> 4), at most ``MAX_DECIMALS``; None when even those would show fewer
    (an estimate nearer zero than 0.00001, with ``digits`` <= 6): it is written in e-notation."""
    if estimate is None or pd.isna(estimate) or not np.isfinite(float(estimate)) or float(estimate) == 0:
        return digits
    needed = int(1 - np.floor(np.log10(abs(float(estimate)))))
    return None if needed > max(digits, MAX_DECIMALS) else max(digits, needed)


def _fixed(x: float, decimals: int) -> str:
    """A number with exactly ``decimals`` decimals; infinity as ∞; no "-0"."""
    x = float(x)
    if not np.isfinite(x):
        return "∞" if x > 0 else "-∞"
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _scientific(x: float) -> str:
    """A number with two significant figures in e-notation (3.2e-07); zero as 0, infinity as ∞."""
    x = float(x)
    if not np.isfinite(x):
        return "∞" if x > 0 else "-∞"
    return "0" if x == 0 else f"{x:.1e}"


def estimate_parts(estimate: float | None, lower: float | None = None, upper: float | None = None,
                   digits: int = 2) -> tuple[str, str]:
    """An estimate and its CI as text, apart ("0.43", "0.36 to 0.52"), the three numbers with the same
    decimals (:func:`estimate_decimals`): the one rule of every estimate with a CI a report writes.
    An estimate nearer zero than 0.00001 (say a rate per day) has all three numbers in e-notation with two
    significant figures: "3.2e-07", "1.1e-07 to 9.0e-07".
    ("", "") when the estimate is missing; no CI text when a limit is."""
    if estimate is None or pd.isna(estimate):
        return "", ""
    k = estimate_decimals(estimate, digits)
    # not "0.000000" (a zero it is not) nor "<0.000001" (a bound instead of the estimate, and no CI to
    # go with it): e-notation keeps two significant figures of each number, in plain text in every format
    text = _scientific if k is None else (lambda x: _fixed(x, k))
    if lower is None or upper is None or pd.isna(lower) or pd.isna(upper):
        return text(estimate), ""
    return text(estimate), f"{text(lower)} to {text(upper)}"


def format_estimate(estimate: float | None, lower: float | None = None, upper: float | None = None,
                    digits: int = 2) -> str:
    """Journal format of an estimate with its CI: ``0.43 (0.36 to 0.52)``, ``-0.042 (-0.900 to 0.800)``
    (the three numbers with the same decimals, from the estimate's scale: :func:`estimate_parts`); "—"
    when withheld or missing."""
    est, ci = estimate_parts(estimate, lower, upper, digits)
    if not est:
        return DASH
    return f"{est} ({ci})" if ci else est


# --------------------------------------------------------------------------------------------------
# The table object and its renderers
# --------------------------------------------------------------------------------------------------

@dataclass
class PublicationTable:
    """A table for a manuscript: text cells, a two-level header and footnotes, rendered to four formats.

    ``cells``: rows x columns of text, the first column the row labels. ``columns``: one
    ``(spanner, header)`` pair per column ("" spanner: none). ``indent``: 0 for a variable (or contrast)
    row, 1 for a level (or measure) row. ``values``: the numbers behind the cells (one row per table row:
    ``estimate``, ``ci_lower``, ``ci_upper``, ``p_value`` where they apply, else NaN), for checks.
    """

    title: str
    cells: list[list[str]]
    columns: list[tuple[str, str]]
    indent: list[int]
    footnotes: list[str] = field(default_factory=list)
    values: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        width = len(self.columns)
        if any(len(r) != width for r in self.cells) or len(self.indent) != len(self.cells):
            raise ValueError("a publication table needs one cell per column and one indent per row")

    # ----- plain views ---------------------------------------------------------------------------
    @property
    def has_spanners(self) -> bool:
        return any(s for s, _ in self.columns)

    def to_frame(self) -> pd.DataFrame:
        """The cells as a DataFrame of strings (columns a MultiIndex when there are spanners; level rows
        indented with two spaces in the label column)."""
        rows = [["  " * ind + r[0]] + r[1:] for r, ind in zip(self.cells, self.indent, strict=True)]
        cols: Any = (pd.MultiIndex.from_tuples(self.columns) if self.has_spanners
                     else [h for _, h in self.columns])
        return pd.DataFrame(rows, columns=cols)

    def __repr__(self) -> str:
        return f"{self.title}\n{self.to_frame().to_string(index=False)}"

    def _repr_html_(self) -> str:
        return self.to_html()

    # ----- HTML and LaTeX (pandas Styler) ------------------------------------------------------------
    def _styler(self, frame: pd.DataFrame) -> Any:
        import hashlib

        st = frame.style.hide(axis="index")
        # ids stable for the same table and different between tables of one page (no random uuid)
        digest = hashlib.sha1(repr((self.title, self.columns, self.cells)).encode("utf-8")).hexdigest()[:10]
        st.set_uuid(f"hostats-{digest}")
        return st

    def _frame(self, cells: list[list[str]], headers: list[tuple[str, str]]) -> pd.DataFrame:
        if self.has_spanners:
            return pd.DataFrame(cells, columns=pd.MultiIndex.from_tuples(headers))
        # unique column keys (two headers may read the same) while showing the header text
        return pd.DataFrame(cells, columns=[h for _, h in headers])

    def to_html(self, path: str | Path | None = None) -> str:
        """Self-contained HTML (a ``<table>`` with a caption and the footnotes below it); also written to
        ``path`` when given."""
        esc = [[html.escape(c) for c in r] for r in self.cells]
        headers = [(html.escape(s), html.escape(h)) for s, h in self.columns]
        frame = self._frame(esc, headers)
        st = self._styler(frame)
        if not self.has_spanners and len(set(frame.columns)) < len(frame.columns):
            raise ValueError("column headers must differ")
        styles = [{"selector": "", "props": "border-collapse: collapse; font-size: 0.95em;"},
                  {"selector": "th", "props": "text-align: center; padding: 2px 8px; font-weight: 600;"},
                  {"selector": "td", "props": "padding: 2px 8px; text-align: center; white-space: nowrap;"},
                  {"selector": "td.col0, th.col0", "props": "text-align: left;"},
                  # a level row's label: a class, as a cell's own id rule would lose to "td" above
                  {"selector": "td.indent", "props": "padding-left: 1.5em;"},
                  {"selector": "thead tr:last-child th", "props": "border-bottom: 1px solid #333;"},
                  {"selector": "thead tr:first-child th", "props": "border-top: 2px solid #333;"},
                  {"selector": "tbody tr:last-child td", "props": "border-bottom: 2px solid #333;"},
                  {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: 600;"}]
        st.set_table_styles(styles)
        st.set_caption(html.escape(self.title))
        if len(self.cells):
            st.set_td_classes(pd.DataFrame([["indent" if ind and j == 0 else "" for j in range(len(self.columns))]
                                            for ind in self.indent], index=frame.index, columns=frame.columns))
        body = st.to_html(escape=False, sparse_columns=True)
        notes = "".join(f"<p class=\"hostats-note\" style=\"font-size: 0.85em; margin: 2px 0;\">"
                        f"{html.escape(n)}</p>" for n in self.footnotes)
        out = f"<div class=\"hostats-publication-table\">{body}{notes}</div>\n"
        if path is not None:
            Path(path).write_text(out, encoding="utf-8")
        return out

    def to_latex(self, path: str | Path | None = None, label: str | None = None) -> str:
        """A LaTeX ``table`` with booktabs rules (``\\usepackage{booktabs}``); level rows indented with
        ``\\quad``, footnotes under the tabular; also written to ``path`` when given."""
        cells = [[("\\quad " if ind and j == 0 else "") + latex_escape(c) for j, c in enumerate(r)]
                 for r, ind in zip(self.cells, self.indent, strict=True)]
        headers = [(latex_escape(s), latex_escape(h)) for s, h in self.columns]
        st = self._styler(self._frame(cells, headers))
        align = "l" + "c" * (len(self.columns) - 1)
        tex = st.to_latex(hrules=True, column_format=align, multicol_align="c", caption=latex_escape(self.title),
                          label=label, position_float="centering")
        if self.footnotes:
            notes = "\n".join(f"\\par\\smallskip{{\\footnotesize {latex_escape(n)}}}" for n in self.footnotes)
            tex = tex.replace("\\end{tabular}\n", "\\end{tabular}\n" + notes + "\n", 1)
        if path is not None:
            Path(path).write_text(tex, encoding="utf-8")
        return tex

    # ----- Word (python-docx) ---------------------------------------------------------------------
    def to_docx(self, path: str | Path | None = None, document: Any = None) -> Any:
        """Add the table (title, three-line table, footnotes) to a python-docx ``document`` (a new one when
        None) and save it to ``path`` when given; returns the document, so several tables can share one."""
        try:
            import docx
            from docx.enum.text import WD_ALIGN_PARAGRAPH
            from docx.shared import Pt
        except ImportError as exc:  # pragma: no cover - python-docx is a dependency
            raise ImportError("Word output needs python-docx: pip install python-docx") from exc
        doc = document if document is not None else docx.Document()
        title = doc.add_paragraph()
        title.add_run(self.title).bold = True
        spanner = self.has_spanners
        n_head = 2 if spanner else 1
        table = doc.add_table(rows=n_head + len(self.cells), cols=len(self.columns))
        if spanner:
            j = 0
            while j < len(self.columns):
                k = j
                while k + 1 < len(self.columns) and self.columns[k + 1][0] == self.columns[j][0]:
                    k += 1
                cell = table.cell(0, j) if k == j else table.cell(0, j).merge(table.cell(0, k))
                cell.text = self.columns[j][0]
                j = k + 1
        # a row's cells, not table.cell(i, j): python-docx builds the cells of the whole table for each
        # table.cell call (quadratic in the cells: 1.9 of the 2.2 s of a report's four tables)
        rows = table.rows
        for cell, (_, head) in zip(rows[n_head - 1].cells, self.columns, strict=True):
            cell.text = head
        for i, (row, ind) in enumerate(zip(self.cells, self.indent, strict=True)):
            for j, (cell, text) in enumerate(zip(rows[n_head + i].cells, row, strict=True)):
                cell.text = text
                para = cell.paragraphs[0]
                if j == 0 and ind:
                    para.paragraph_format.left_indent = Pt(12)
        for r_i, row in enumerate(table.rows):
            for j, cell in enumerate(row.cells):
                for para in cell.paragraphs:
                    if j > 0:
                        para.alignment = WD_ALIGN_PARAGRAPH.CENTER
                    for run in para.runs:
                        run.font.size = Pt(9)
                        run.bold = r_i < n_head or None
        _three_line_borders(table, n_head)
        for note in self.footnotes:
            p = doc.add_paragraph()
            run = p.add_run(note)
            run.font.size = Pt(8)
        if path is not None:
            _save_package(doc, path)
        return doc

    # ----- Excel (openpyxl) -----------------------------------------------------------------------
    def to_excel(self, path: str | Path | None = None, sheet_name: str = "Table", workbook: Any = None) -> Any:
        """Write the table to a worksheet (title, header with merged spanners, indented level rows,
        footnotes) of ``workbook`` (a new one when None); saved to ``path`` when given. Returns the
        workbook. Every cell is stored as text, never as a formula."""
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Border, Font, Side

        wb = workbook if workbook is not None else Workbook()
        if workbook is None:
            ws = wb.active
            ws.title = _sheet_title(sheet_name)
        else:
            ws = wb.create_sheet(_sheet_title(sheet_name, set(wb.sheetnames)))
        bold, thin, thick = Font(bold=True), Side(style="thin"), Side(style="medium")

        def put(r: int, c: int, text: str) -> Any:
            cell = ws.cell(row=r, column=c)
            cell.value = text
            cell.data_type = "s"          # text, even when it starts with "=" (no formula)
            return cell

        put(1, 1, self.title).font = bold
        r0 = 3
        if self.has_spanners:
            j = 0
            while j < len(self.columns):
                k = j
                while k + 1 < len(self.columns) and self.columns[k + 1][0] == self.columns[j][0]:
                    k += 1
                put(r0, j + 1, self.columns[j][0]).alignment = Alignment(horizontal="center")
                if k > j and self.columns[j][0]:
                    ws.merge_cells(start_row=r0, start_column=j + 1, end_row=r0, end_column=k + 1)
                j = k + 1
            r0 += 1
        for j, (_, head) in enumerate(self.columns):
            c = put(r0, j + 1, head)
            c.font = bold
            c.alignment = Alignment(horizontal="left" if j == 0 else "center", wrap_text=True)
            c.border = Border(bottom=thin)
        for j in range(len(self.columns)):
            top = ws.cell(row=3, column=j + 1)
            top.border = Border(top=thick, bottom=top.border.bottom)
        for i, (row, ind) in enumerate(zip(self.cells, self.indent, strict=True)):
            for j, text in enumerate(row):
                c = put(r0 + 1 + i, j + 1, text)
                c.alignment = Alignment(indent=2 * ind) if j == 0 else Alignment(horizontal="center")
                if i == len(self.cells) - 1:
                    c.border = Border(bottom=thick)
        note_row = r0 + len(self.cells) + 2
        for k, note in enumerate(self.footnotes):
            put(note_row + k, 1, note).font = Font(size=9)
        ws.column_dimensions["A"].width = max([len(r[0]) + 4 for r in self.cells] + [24])
        for j in range(1, len(self.columns)):
            letter = ws.cell(row=1, column=j + 1).column_letter
            ws.column_dimensions[letter].width = max([len(r[j]) + 2 for r in self.cells]
                                                     + [len(self.columns[j][1]) + 2, 10])
        if path is not None:
            _save_package(wb, path)
        return wb


def _sheet_title(name: str, taken: set[str] | None = None) -> str:
    """A valid, unused worksheet title (at most 31 characters, none of []:*?/\\)."""
    base = re.sub(r"[\[\]:*?/\\]", " ", str(name)).strip()[:31] or "Table"
    title, k = base, 2
    while taken and title in taken:
        title = f"{base[:28]} {k}"
        k += 1
    return title


def _three_line_borders(table: Any, n_head: int) -> None:
    """A journal's three rules: above the header, below it, below the body (and no vertical lines)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    def borders(cell: Any, **edges: str) -> None:
        tc_pr = cell._tc.get_or_add_tcPr()
        el = tc_pr.find(qn("w:tcBorders"))
        if el is None:
            el = OxmlElement("w:tcBorders")
            tc_pr.append(el)
        for edge, size in edges.items():
            node = OxmlElement(f"w:{edge}")
            node.set(qn("w:val"), "single")
            node.set(qn("w:sz"), size)
            node.set(qn("w:space"), "0")
            node.set(qn("w:color"), "000000")
            el.append(node)

    rows = table.rows
    for cell in rows[0].cells:
        borders(cell, top="12")
    for cell in rows[n_head - 1].cells:
        borders(cell, bottom="6")
    for cell in rows[len(rows) - 1].cells:
        borders(cell, bottom="12")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "∞": r"$\infty$", "≥": r"$\geq$",
                  "≤": r"$\leq$", "×": r"$\times$", "—": "---", "–": "--", "|": r"\textbar{}"}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """Text for LaTeX: its special characters (and <, >, |, ∞, dashes) written as commands."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))


# --------------------------------------------------------------------------------------------------
# Reproducible Word and Excel files
# --------------------------------------------------------------------------------------------------

_CORE_TIME = re.compile(rb"(<dcterms:(created|modified)\b[^>]*>)[^<]*(</dcterms:\2>)")


def _save_package(book: Any, path: str | Path) -> Path:
    """Save a python-docx document or an openpyxl workbook to ``path`` byte for byte the same on every run.

    Both libraries stamp each zip entry with the time of the save, and openpyxl writes it into the
    workbook's created and modified properties (docProps/core.xml; python-docx keeps its template's, from
    2013). Here the entries and both properties carry :func:`hostats.provenance.source_date` instead, and
    the entries a fixed platform and mode; names, order, compression and contents are the library's."""
    from hostats.provenance import source_date

    path = Path(path)
    when = source_date()
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode("ascii")
    # zip entries hold a local time from 1980 to 2107 (no zone): the UTC time, within those years
    entry_time = min(max(when.replace(tzinfo=None), datetime(1980, 1, 1)), datetime(2107, 12, 31, 23, 59, 58))
    buffer = io.BytesIO()
    book.save(buffer)
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "docProps/core.xml":
                data = _CORE_TIME.sub(lambda m: m.group(1) + stamp + m.group(3), data)
            entry = zipfile.ZipInfo(item.filename, date_time=entry_time.timetuple()[:6])
            entry.compress_type, entry.create_system, entry.external_attr = item.compress_type, 3, 0o644 << 16
            zout.writestr(entry, data)
    path.write_bytes(out.getvalue())
    return path


def save_tables(path: str | Path, tables: Sequence[PublicationTable] | PublicationTable) -> Path:
    """Write one or several tables to one file, the format by its suffix: ``.docx`` (one after the
    other), ``.xlsx`` (one sheet each), ``.tex`` or ``.html`` (one after the other)."""
    path = Path(path)
    items = [tables] if isinstance(tables, PublicationTable) else list(tables)
    if not items:
        raise ValueError("save_tables: no table to save")
    suffix = path.suffix.lower()
    if suffix == ".docx":
        doc = None
        for t in items:
            doc = t.to_docx(document=doc)
        _save_package(doc, path)
    elif suffix == ".xlsx":
        wb = None
        for k, t in enumerate(items, start=1):
            wb = t.to_excel(sheet_name=_short_title(t.title, k), workbook=wb)
        _save_package(wb, path)
    elif suffix == ".tex":
        path.write_text("\n".join(t.to_latex() for t in items), encoding="utf-8")
    elif suffix in (".html", ".htm"):
        path.write_text("\n".join(t.to_html() for t in items), encoding="utf-8")
    else:
        raise ValueError(f"save_tables: unknown format {path.suffix!r}; use .docx, .xlsx, .tex or .html")
    return path


def _short_title(title: str, k: int) -> str:
    m = re.match(r"\s*(Table\s+\S+?)[.:]", title)
    return m.group(1) if m else f"Table {k}"


# --------------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------------

def _complete_levels(s: pd.Series) -> list:
    present = set(s.dropna().unique())
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [x for x in s.cat.categories if x in present]
    return sorted(present, key=str)


def _covariate_columns(s: pd.Series) -> list[tuple[str | None, np.ndarray, str]]:
    """Balance indicators of one variable (as hostats.iptw's balance builds them): a number, a yes/no
    indicator, or one indicator per level; NaN where missing."""
    miss = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype) or str(s.dtype) == "boolean":
        v = np.where(miss, np.nan, s.fillna(False).astype(bool).to_numpy(dtype=float))
        return [(None, v, "binary")]
    if pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype):
        return [(None, pd.to_numeric(s, errors="coerce").astype(float).to_numpy(), "continuous")]
    out = []
    for lv in _complete_levels(s):
        v = np.where(miss, np.nan, (s.astype(object) == lv).to_numpy(dtype=float))
        out.append((str(lv), v, "binary"))
    return out


def _crude_smds(data: pd.DataFrame, variables: Sequence[str], by: str, groups: list) -> dict:
    """|SMD| of each variable (level) between the groups, on the rows where it is known: for two groups
    the SMD of the second against the first, for more the largest |SMD| of a group against the first."""
    from hostats.stats.causal import balance as bal

    g = data[by].astype(object).to_numpy()
    out: dict = {}
    for var in variables:
        for level, values, kind in _covariate_columns(data[var]):
            known = ~np.isnan(values) & pd.notna(data[by]).to_numpy()
            arm = np.full(len(data), -1)
            for k, grp in enumerate(groups):
                arm[g == grp] = k
            keep = known & (arm >= 0)
            arms_present = sorted(set(arm[keep].tolist()))
            if len(arms_present) < 2 or 0 not in arms_present:
                continue
            cov = bal.Covariate(var, level, kind, values[keep])
            tab = bal.smd_table([cov], arm[keep], list(groups), [(k, 0) for k in arms_present if k != 0],
                                np.ones(int(keep.sum())))
            if len(tab):
                out[(var, level)] = float(tab["smd_unweighted"].abs().max())
    return out


def _iptw_smds(iptw: Any) -> tuple[dict, dict]:
    b = iptw.balance()
    if b.empty:
        return {}, {}
    lev = b["level"].where(b["level"].notna(), None)
    keys = list(zip(b["variable"], lev, strict=True))
    unw, wtd = {}, {}
    for key, u, w in zip(keys, b["smd_unweighted"].abs(), b["smd_weighted"].abs(), strict=True):
        unw[key] = max(unw.get(key, 0.0), float(u))
        wtd[key] = max(wtd.get(key, 0.0), float(w))
    return unw, wtd


def _fmt_smd(value: float | None) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _is_shown_count(cell: str) -> bool:
    """Whether a Table 1 cell shows a count (``"12 (4.0%)"``, or ``"0"`` in a column without a non-missing
    value), rather than "<5", "s" or nothing."""
    return bool(re.match(r"^\d[\d,]*( \(|$)", cell or ""))


def _check_table1(data: Any, variables: Sequence[str] | str, by: str | None, iptw: Any) -> list[str]:
    """The variables of a Table 1 call, after checking its arguments."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"table1 needs a DataFrame, got {type(data).__name__}")
    variables = [variables] if isinstance(variables, str) else list(variables)
    missing = [v for v in variables + ([by] if by else []) if v not in data.columns]
    if missing:
        raise DataError(f"table1: column(s) not in the data: {', '.join(map(repr, missing))}")
    if iptw is not None and by is None:
        raise DataError("table1: with iptw=, give by= (the treatment column the weights are for)")
    if not variables:
        raise DataError("table1: no variables given")
    from hostats.schema import IDENTIFYING

    identifying = [v for v in variables + ([by] if by else []) if v in IDENTIFYING]
    if identifying:
        raise DataError(f"table1: {', '.join(map(repr, identifying))} identif{'ies' if len(identifying) == 1 else 'y'} "
                        "patients or holds exact dates, which a table must never show")
    return variables


@dataclass
class _Weighting:
    """What Table 1 shows of the weighting: SMDs before and after, and the weighted values by (variable,
    level, group)."""

    unweighted_smd: dict
    weighted_smd: dict
    values: dict


def _table1_weighting(data: pd.DataFrame, variables: list[str], by: str | None, groups: list, iptw: Any,
                      smd: bool) -> _Weighting:
    if iptw is None:
        unw = _crude_smds(data, variables, by, groups) if (by and smd and len(groups) > 1) else {}
        return _Weighting(unw, {}, {})
    unw, wtd = _iptw_smds(iptw)
    arm_levels = [str(x) for x in iptw.levels]
    if set(arm_levels) != {str(g) for g in groups}:
        raise DataError(f"table1: the groups of {by!r} ({', '.join(map(str, groups))}) are not the arms "
                        f"of the iptw result ({', '.join(arm_levels)})")
    wt1 = iptw.weighted_table1()
    wt1 = wt1[wt1["sample"] == "weighted"]
    values = {(r.variable, None if pd.isna(r.level) else str(r.level), str(r.group)): r
              for r in wt1.itertuples(index=False)}
    return _Weighting(unw, wtd, values)


def _table1_columns(headers: list[str], with_smd: bool, iptw: Any, groups: list, by: str | None,
                    level_labels: Mapping[str, Mapping[str, str]] | None) -> list[tuple[str, str]]:
    columns: list[tuple[str, str]] = [("", "Characteristic")]
    spanner_u = "Unweighted" if iptw is not None else ""
    columns += [(spanner_u, h) for h in headers]
    if with_smd:
        columns.append((spanner_u, "SMD"))
    if iptw is not None:
        spanner_w = f"IPTW-weighted ({iptw.estimand})"
        columns += [(spanner_w, _level_text(g, by, level_labels)) for g in groups]
        if with_smd:
            columns.append((spanner_w, "SMD"))
    return columns


def _weighted_cells(w: _Weighting, key: tuple | None, groups: list, vals: list[str]) -> list[str]:
    """The weighted % or mean (SD) of one row per group; withheld with its unweighted count."""
    out = []
    for k, grp in enumerate(groups):
        r = w.values.get((key[0], key[1], str(grp))) if key else None
        if r is None:
            out.append("")
        elif r.statistic == "mean":
            out.append(f"{r.value:.1f} ({r.sd:.1f})" if vals[k] not in ("", DASH) else DASH)
        else:
            out.append(f"{r.value:.1f}%" if _is_shown_count(vals[k]) else DASH)
    return out


def _table1_level(var: str, lvl: str, is_bool: bool,
                  level_labels: Mapping[str, Mapping[str, str]] | None) -> tuple[str, tuple | None]:
    """A Table 1 row's label and its key into the SMDs and weighted values."""
    if lvl == "missing":
        return "Missing", None
    if lvl in ("mean (SD)", "median [IQR]"):
        return lvl, ((var, None) if lvl == "mean (SD)" else None)
    return ("yes" if is_bool else _level_text(lvl, var, level_labels)), ((var, None) if is_bool else (var, lvl))


def _table1_block(var: str, block: pd.DataFrame, value_cols: list[str], is_bool: bool, w: _Weighting,
                  groups: list, with_smd: bool, weighted: bool,
                  level_labels: Mapping[str, Mapping[str, str]] | None) -> tuple[list[list[str]], bool]:
    """The level rows of one variable, and whether its SMDs are withheld.

    An SMD (and a weighted SMD, whose yardstick is the unweighted proportions) is computed from the shown
    percentages or means and SDs, unless one of them is not shown: then it could give back a count that is
    not shown, and is withheld for the whole variable."""
    smd_shown = all(str(r[c]) != DASH if str(r["level"]) in ("mean (SD)", "median [IQR]")
                    else _is_shown_count(str(r[c]))
                    for _, r in block.iterrows() if str(r["level"]) != "missing" for c in value_cols)

    def smd_text(table: dict, key: tuple | None) -> str:
        if not key:
            return ""
        return _fmt_smd(table.get(key)) if smd_shown else DASH

    rows = []
    for _, r in block.iterrows():
        lvl = str(r["level"])
        vals = [str(r[c]) for c in value_cols]
        if lvl == "missing" and all(v.startswith("0 (") or v in ("0", "") for v in vals):
            continue
        text, key = _table1_level(var, lvl, is_bool, level_labels)
        row = [text] + vals
        if with_smd:
            row.append(smd_text(w.unweighted_smd, key))
        if weighted:
            row += _weighted_cells(w, key, groups, vals)
            if with_smd:
                row.append(smd_text(w.weighted_smd, key))
        rows.append(row)
    return rows, not smd_shown


def _table1_notes(raw: pd.DataFrame, threshold: int, with_smd: bool, n_groups: int, smd_withheld: bool,
                  iptw: Any) -> list[str]:
    notes = ["Counts are n (%), % of the non-missing values (Missing: % of all episodes); numbers mean (SD) "
             "and median [IQR]."]
    if raw.apply(lambda col: col.astype(str).str.startswith("<")).to_numpy().any():
        notes.append(f"<{threshold}: fewer than {threshold} people (not shown); "
                     "s: not shown, it would reveal a small count with the totals.")
    if with_smd:
        notes.append("SMD: absolute standardised mean difference"
                     + (" (the largest of each group against the first)" if n_groups > 2 else "") + "."
                     + (f" {DASH}: withheld, with the shown cells it would reveal a count not shown."
                        if smd_withheld else ""))
    if iptw is not None:
        notes.append(f"IPTW-weighted columns: weighted % or mean (SD) of the {_count_text(iptw.n, threshold)} "
                     f"patients analysed with inverse probability of treatment weights ({iptw.estimand}); "
                     f"{DASH}: withheld with its unweighted count.")
    return notes


def table1(data: pd.DataFrame, variables: Sequence[str], by: str | None = None, *, iptw: Any = None,
           labels: Mapping[str, str] | None = None,
           level_labels: Mapping[str, Mapping[str, str]] | None = None,
           threshold: int = 5, smd: bool = True, title: str = "Characteristics at baseline"
           ) -> PublicationTable:
    """Table 1 for a manuscript: n (%) of each level (yes/no variables: "yes"), mean (SD) and median [IQR]
    of numbers, missing counts (shown only where some are missing), by ``by`` with an Overall column. Each
    variable is a heading row ("Sex, n (%)"; a number's: "Age (years)") with its levels or statistics
    indented beneath it, and the groups are headed by their level labels ("radiotherapy + NSAID (n=410)").

    Counts from 1 to ``threshold - 1`` are shown as "<5", with secondary suppression, as in the report.
    With ``by`` the standardised mean differences (|SMD|; for more than two groups the largest of each
    group against the first) are added (``smd=False``: not). With ``iptw`` (the result of
    ``hostats.iptw`` with treatment ``by``) the IPTW-weighted percentages and means of its confounders are
    added beside the unweighted ones, with the SMD before and after weighting from its ``balance()``; a
    weighted value whose unweighted count is not shown is withheld too.
    """
    variables = _check_table1(data, variables, by, iptw)
    labels = dict(labels or {})
    raw = _protected_table_one(data, variables, by, threshold)
    value_cols = list(raw.columns[2:])
    groups = _complete_levels(data[by]) if by else []

    def head(col: str, grp: Any | None) -> str:
        if grp is None:
            return col
        name = str(grp)
        return _level_text(grp, by, level_labels) + col[len(name):] if col.startswith(name) else col

    headers = [head(c, g) for c, g in zip(value_cols, groups + [None], strict=False)]
    weighting = _table1_weighting(data, variables, by, groups, iptw, smd)
    with_smd = bool(by) and smd and len(groups) > 1
    columns = _table1_columns(headers, with_smd, iptw, groups, by, level_labels)
    cells: list[list[str]] = []
    indent: list[int] = []
    smd_withheld = False
    for var in variables:
        is_bool = pd.api.types.is_bool_dtype(data[var].dtype) or str(data[var].dtype) == "boolean"
        block = raw[raw["variable"] == var]
        # a counted variable's heading says what its level rows hold; a number's rows each name their own
        counted = not block["level"].isin(["mean (SD)", "median [IQR]"]).any()
        cells.append([labels.get(var, default_label(var)) + (", n (%)" if counted else "")]
                     + [""] * (len(columns) - 1))
        indent.append(0)
        rows, withheld = _table1_block(var, block, value_cols, is_bool, weighting, groups, with_smd,
                                       iptw is not None, level_labels)
        smd_withheld = smd_withheld or withheld
        cells += rows
        indent += [1] * len(rows)
    notes = _table1_notes(raw, threshold, with_smd, len(groups), smd_withheld, iptw)
    return PublicationTable(title=title, cells=cells, columns=columns, indent=indent, footnotes=notes)


# --------------------------------------------------------------------------------------------------
# Model tables
# --------------------------------------------------------------------------------------------------

_MEASURES = {"LogisticResult": ("OR", "odds ratio"), "BinregResult": ("OR", "odds ratio"),
             "CoxResult": ("HR", "hazard ratio"), "FineGrayResult": ("SHR", "subdistribution hazard ratio")}
_TREATMENT = re.compile(r"Treatment\(\s*(?:reference\s*=\s*)?(['\"])(?P<ref>.*?)\1\s*\)")
_PER = re.compile(r"I\(\s*`?(?P<var>[^`/()]+?)`?\s*/\s*(?P<k>[0-9.]+)\s*\)")
_TRT = re.compile(r"_trt(?P<k>\d+)")


@dataclass
class _Term:
    variable: str            # a column (or the raw term when it is not one variable)
    level: str | None        # the level of a factor term
    reference: str | None    # an explicit reference level (Treatment('x'))
    label: str | None = None  # a label of its own (per-10 terms, raw terms)


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def _parse_term(term: str, labels: Mapping[str, str]) -> _Term:
    """The variable and level of a model term: ``C(sex)[T.male]``, ``sex[T.male]``,
    ``C(x, Treatment('none'))[T.nsaid]``, ``prior_ho[T.True]``, ``age_years``, ``I(age_years / 10)``."""
    term = term.replace("`", "")
    if term in labels:
        return _Term(term, None, None, labels[term])
    outside = re.sub(r"\[.*?\]", "", term)
    if ":" in outside:  # an interaction: its parts joined by ×
        parts = [_parse_term(p, labels) for p in re.split(r":(?![^\[]*\])", term)]
        text = " × ".join((p.label or labels.get(p.variable, default_label(p.variable)))
                          + (f": {_level_text(p.level)}" if p.level is not None else "") for p in parts)
        return _Term(term, None, None, text)
    m = re.fullmatch(r"(?P<fac>.+?)\[(?P<t>T\.)?(?P<level>.*)\]", term, re.S)
    if m and (m.group("t") or re.fullmatch(r"[\w.]+|C\(.*\)", m.group("fac").strip(), re.S)):
        fac, level = m.group("fac").strip(), m.group("level")
        ref = None
        if fac.startswith("C(") and fac.endswith(")"):
            pieces = _split_top(fac[2:-1])
            fac = pieces[0].strip()
            mt = _TREATMENT.search(",".join(pieces[1:]))
            ref = mt.group("ref") if mt else None
        return _Term(fac, level, ref)
    m = _PER.fullmatch(term)
    if m:
        var, k = m.group("var").strip(), m.group("k")
        k_text = k.rstrip("0").rstrip(".") if "." in k else k
        return _Term(var, None, None, f"{labels.get(var, default_label(var))}, per {k_text}")
    if term.startswith("C(") and term.endswith(")"):   # a factor as a whole (a joint test of its levels)
        return _Term(_split_top(term[2:-1])[0].strip(), None, None)
    m = _TRT.fullmatch(term)
    if m:   # iptw's outcome-model indicator of the k-th arm
        return _Term(term, None, None, f"treatment arm {m.group('k')} vs reference")
    return _Term(term, None, None)


def _level_order(variable: str, data: pd.DataFrame | None, levels: Mapping[str, Sequence] | None) -> list[str]:
    """Levels of a factor in their order: ``levels=``, the data's categories (present ones), the cohort
    schema's code list; [] when unknown."""
    if levels and variable in levels:
        return [str(x) for x in levels[variable]]
    if data is not None and variable in data.columns:
        s = data[variable]
        if pd.api.types.is_bool_dtype(s.dtype) or str(s.dtype) == "boolean":
            return ["False", "True"]
        if isinstance(s.dtype, pd.CategoricalDtype):
            return [str(x) for x in _complete_levels(s)]
        present = s.dropna().unique().tolist()
        try:   # the formula engine sorts levels by value (2 before 10), not as text
            return [str(x) for x in sorted(present)]
        except TypeError:
            return [str(x) for x in sorted(present, key=str)]
    from hostats.schema import CODE_LISTS

    return list(CODE_LISTS.get(variable, ()))


def _model_rows(results: Sequence[tuple[str, Sequence[str]]], data: pd.DataFrame | None,
                labels: Mapping[str, str], level_labels: Mapping[str, Mapping[str, str]] | None,
                levels: Mapping[str, Sequence] | None, intercept: bool) -> tuple[list, list[str]]:
    """Rows of a model table from each model's terms: (label, indent, {(model, term) | None}) in variable
    order, factors with their reference row first and levels in their order."""
    order: list[str] = []
    numeric: dict[str, dict[str, str]] = {}      # variable -> {model: term}
    own_label: dict[str, str] = {}
    factor: dict[str, dict[str, dict[str, str]]] = {}   # variable -> level -> {model: term}
    refs: dict[str, str] = {}
    models_of: dict[str, set[str]] = {}
    notes: list[str] = []
    for name, terms in results:
        for term in terms:
            if term == "Intercept" and not intercept:
                continue
            t = _parse_term(term, labels)
            if t.variable not in order:
                order.append(t.variable)
            models_of.setdefault(t.variable, set()).add(name)
            if t.level is None:
                numeric.setdefault(t.variable, {})[name] = term
                if t.label:
                    own_label[t.variable] = t.label
            else:
                factor.setdefault(t.variable, {}).setdefault(t.level, {})[name] = term
                if t.reference is not None:
                    refs[t.variable] = t.reference
    rows: list = []
    for var in order:
        label = own_label.get(var) or labels.get(var) or default_label(var)
        if var in numeric and var not in factor:
            rows.append((label, 0, numeric[var]))
            continue
        rows.append((label, 0, None))
        estimated = factor.get(var, {})
        known = _level_order(var, data, levels)
        if set(estimated) <= {"True"} and not known:
            known = ["False", "True"]
        ref = refs.get(var) or next((lv for lv in known if lv not in estimated), None)
        if ref is None:
            notes.append(f"{label}: reference level not known (give data= or levels=).")
        else:
            rows.append((f"{_level_text(ref, var, level_labels)} ({REF})", 1, models_of[var]))
        in_order = [lv for lv in known if lv in estimated] + [lv for lv in estimated if lv not in known]
        for lv in in_order:
            rows.append((_level_text(lv, var, level_labels), 1, estimated[lv]))
    return rows, notes


def term_labels(terms: Sequence[str], data: pd.DataFrame | None = None, *,
                labels: Mapping[str, str] | None = None,
                level_labels: Mapping[str, Mapping[str, str]] | None = None,
                levels: Mapping[str, Sequence] | None = None, reference: bool = True) -> dict[str, str]:
    """Each model term on one line, in the words of a model table's rows (the same parse, labels, level
    order and reference level: :func:`model_table`): ``C(sex)[T.male]`` -> "Sex: male (ref. female)",
    ``prior_ho[T.True]`` -> "Prior HO: yes", ``I(age_years / 10)`` -> "Age (years), per 10", ``age_years``
    -> "Age (years)". For rows that stand alone (a forest plot's, an estimate table's), where the model
    table puts the levels under their variable's heading with a reference row. ``reference``: name the
    reference level, when known (from ``data``, ``levels`` or the cohort schema), but not for yes/no.
    """
    rows, _ = _model_rows([("", [str(t) for t in terms])], data, dict(labels or {}), level_labels, levels,
                          intercept=True)
    out: dict[str, str] = {}
    heading, ref = "", None
    for label, indent, cell in rows:
        if indent == 0:
            heading, ref = label, None
            if cell:
                out[cell[""]] = label
        elif isinstance(cell, set):   # the reference row: "female (ref.)"
            ref = label.removesuffix(f" ({REF})")
        else:
            named = reference and ref is not None and (label, ref) != ("yes", "no")
            out[cell[""]] = f"{heading}: {label}" + (f" ({REF} {ref})" if named else "")
    return out


def _as_named(results: Any) -> list[tuple[str, Any]]:
    if isinstance(results, Mapping):
        return [(str(k), v) for k, v in results.items()]
    if isinstance(results, list | tuple):
        return [(f"Model {k}", v) for k, v in enumerate(results, start=1)]
    return [("", results)]


@dataclass
class _Model:
    """One model of a model table: its estimates as published (one row per term, indexed by term), the
    measure it estimates (short, long), and the counts and method of its footnote."""

    name: str
    frame: pd.DataFrame
    measure: tuple[str, str]
    n: Any = None
    events: Any = None
    method: str = ""


def _checked_results(results: Any) -> list[tuple[str, Any]]:
    named = _as_named(results)
    if not named:
        raise DataError("model_table: no result given")
    for name, res in named:
        if not hasattr(res, "table"):
            raise DataError(f"model_table: {name or 'the result'} is a {type(res).__name__}, not a hostats "
                            "result (logistic, binreg, cox, fine_gray, iptw or ate)")
    return named


def model_table(results: Any, data: pd.DataFrame | None = None, *, labels: Mapping[str, str] | None = None,
                level_labels: Mapping[str, Mapping[str, str]] | None = None,
                levels: Mapping[str, Sequence] | None = None, digits: int = 2, p_values: bool = True,
                intercept: bool = False, threshold: int = 5, title: str | None = None) -> PublicationTable:
    """A model table for a manuscript: one row per covariate, factors with a reference row ("female (ref.)"
    then "male") and their levels in categorical order, estimates as "0.43 (0.36 to 0.52)", p formatted.

    ``results``: a model result (``logistic``, ``binreg``, ``cox``, ``fine_gray``: ORs, HRs, SHRs), a dict
    ``{"Crude": fit1, "Adjusted": fit2}`` of them (side by side), or an ``iptw``/``ate`` result (a table of
    contrasts: risks per arm and their difference and ratio, one column per adjustment method). ``data``
    (the analysed data), ``levels`` (``{column: [levels in order]}``) or the cohort schema give the level
    order and the reference level; ``labels`` (``{column or term: label}``) and ``level_labels``
    (``{column: {level: label}}``) the text. Estimates resting on fewer than ``threshold`` people or
    events are withheld ("—"), as in the report.
    """
    named = _checked_results(results)
    if {type(r).__name__ for _, r in named} & {"IPTWResult", "ATEResult"}:
        if len(named) > 1:
            raise DataError("model_table: give one iptw/ate result at a time")
        return _contrast_table(named[0][1], digits=digits, threshold=threshold, title=title,
                               level_labels=level_labels)
    models = []
    for name, res in named:
        tab = res.table()
        if "term" not in tab.columns:
            raise DataError(f"model_table: {name or 'the result'} ({type(res).__name__}) has no model terms; "
                            "model tables are for logistic, binreg, cox, fine_gray, iptw and ate results")
        events = getattr(res, "events", None)
        models.append(_Model(name, _protected_estimates(tab, threshold).set_index(tab["term"].astype(str)),
                             _MEASURES.get(type(res).__name__, ("Estimate", "estimate")), getattr(res, "n", None),
                             events if isinstance(events, int | float | np.integer | np.floating) else None,
                             res.method))
    levels_ci = sorted({float(x) for _, r in named for x in r.table().get("ci_level", pd.Series([r.level]))})
    return _model_table(models, levels_ci, data, labels=labels, level_labels=level_labels, levels=levels,
                        digits=digits, p_values=p_values, intercept=intercept, threshold=threshold, title=title)


# the measures of a report's estimates (estimates.csv) that model tables show
_ESTIMATE_MEASURES = {"odds_ratio": ("OR", "odds ratio"), "hazard_ratio": ("HR", "hazard ratio"),
                      "subdistribution_hazard_ratio": ("SHR", "subdistribution hazard ratio")}


def model_table_from_estimates(rows: pd.DataFrame, data: pd.DataFrame | None = None, *,
                               labels: Mapping[str, str] | None = None,
                               level_labels: Mapping[str, Mapping[str, str]] | None = None,
                               levels: Mapping[str, Sequence] | None = None, digits: int = 2,
                               p_values: bool = True, threshold: int = 5, title: str | None = None,
                               notes: Sequence[str] = ()) -> PublicationTable:
    """A model table from a report's published estimates: the rows of one model (``term``, ``measure``,
    estimate, CI, p, ``n``, ``events``, ``method``; estimates.csv's columns) whose counts and withheld
    estimates are already those of the report (they are shown as they are, not protected again), laid
    out as :func:`model_table` lays out a model result."""
    rows = rows[rows["term"].notna() & (rows["term"].astype(str) != "")
                & rows["measure"].astype(str).isin(list(_ESTIMATE_MEASURES))]
    if rows.empty:
        raise DataError("model_table_from_estimates: no odds, hazard or subdistribution hazard ratios of model terms")
    measure = str(rows["measure"].iloc[0])
    rows = rows[rows["measure"].astype(str) == measure]

    def first(col: str) -> Any:
        vals = rows[col].dropna().unique().tolist() if col in rows.columns else []
        return vals[0] if len(vals) == 1 else None

    model = _Model("", rows.set_index(rows["term"].astype(str)),
                   _ESTIMATE_MEASURES.get(measure, ("Estimate", "estimate")), first("n"), first("events"),
                   str(first("method") or ""))
    levels_ci = sorted({float(x) for x in pd.to_numeric(rows.get("ci_level", pd.Series([0.95])),
                                                        errors="coerce").dropna()})
    table = _model_table([model], levels_ci, data, labels=labels, level_labels=level_labels, levels=levels,
                         digits=digits, p_values=p_values, intercept=False, threshold=threshold, title=title)
    table.footnotes += list(notes)
    return table


def _model_cells(rows: list, models: list[_Model], digits: int, p_values: bool
                 ) -> tuple[list[list[str]], list[int], list[dict], bool]:
    """Cells, indents and values of a model table's rows, and whether an estimate is withheld."""
    cells, indent, values = [], [], []
    withheld = False
    for label, ind, terms in rows:
        row = [label]
        vrow: dict[str, float] = {}
        for m in models:
            if terms is None or (not isinstance(terms, set) and m.name not in terms):
                row += [""] * (1 + p_values)
            elif isinstance(terms, set):  # a reference row: 1 in the models that have the variable
                row += (["1"] if m.name in terms else [""]) + ([""] if p_values else [])
            else:
                r = m.frame.loc[terms[m.name]]
                withheld = withheld or r["estimate"] is None or pd.isna(r["estimate"])
                row.append(format_estimate(r["estimate"], r["ci_lower"], r["ci_upper"], digits))
                if p_values:
                    row.append(format_p_value(r.get("p_value")))
                if len(models) == 1:
                    vrow = {k: r.get(k) for k in ("estimate", "ci_lower", "ci_upper", "p_value")}
        cells.append(row)
        indent.append(ind)
        values.append(vrow)
    return cells, indent, values, withheld


def _model_footnotes(models: list[_Model], kinds_shown: list[tuple[str, str]], threshold: int,
                     withheld: bool, notes: list[str]) -> list[str]:
    named = [a for a, _ in kinds_shown if a != "Estimate"]
    footnotes = ["; ".join(f"{a}, {b}" for a, b in kinds_shown if a != "Estimate") + ("; " if named else "")
                 + "CI, confidence interval."]
    for m in models:
        counts = [f"{_count_text(m.n, threshold)} analysed"] if m.n is not None else []
        if m.events is not None:
            counts.append(f"{_count_text(m.events, threshold)} events")
        if counts:
            method = f"; {m.method}" if m.method else ""
            footnotes.append(f"{m.name + ': ' if m.name else ''}{', '.join(counts)}{method}.")
    if withheld:
        footnotes.append(f"{DASH}: withheld, based on fewer than {threshold} people or events.")
    return footnotes + notes


def _model_table(models: list[_Model], levels_ci: list[float], data: pd.DataFrame | None, *,
                 labels: Mapping[str, str] | None, level_labels: Mapping[str, Mapping[str, str]] | None,
                 levels: Mapping[str, Sequence] | None, digits: int, p_values: bool, intercept: bool,
                 threshold: int, title: str | None) -> PublicationTable:
    """Lay out published model estimates (one :class:`_Model` per column group)."""
    kinds_shown = list(dict.fromkeys(m.measure for m in models))
    rows, notes = _model_rows([(m.name, list(m.frame.index)) for m in models], data, dict(labels or {}),
                              level_labels, levels, intercept)
    ci = "/".join(f"{100 * x:g}%" for x in levels_ci) or "95%"
    columns: list[tuple[str, str]] = [("", "Characteristic")]
    for m in models:
        columns.append((m.name, f"{m.measure[0]} ({ci} CI)"))
        if p_values:
            columns.append((m.name, "p"))
    cells, indent, values, withheld = _model_cells(rows, models, digits, p_values)
    if len(models) == 1:
        columns = [("", h) for _, h in columns]
    footnotes = _model_footnotes(models, kinds_shown, threshold, withheld, notes)
    if title is None:
        long_ = kinds_shown[0][1] if len(kinds_shown) == 1 else "model estimate"
        title = f"{long_[0].upper() + long_[1:]}s"
    return PublicationTable(title=title, cells=cells, columns=columns, indent=indent, footnotes=footnotes,
                            values=pd.DataFrame(values, columns=["estimate", "ci_lower", "ci_upper", "p_value"]))


_METHOD_NAMES = {"": "IPTW", "regression": "Regression (g-formula)", "aipw": "AIPW", "gformula": "G-formula",
                 "iptw": "IPTW", "ipcw": "IPTW-IPCW", "crude": "Crude"}
_MEASURE_ROWS = (("risk_treated", "Risk, {t} (%)", 100, 1), ("risk_control", "Risk, {c} (%)", 100, 1),
                 ("risk_difference", "Risk difference (percentage points)", 100, 1),
                 ("risk_ratio", "Risk ratio", 1, None), ("odds_ratio", "Odds ratio", 1, None),
                 ("hazard_ratio", "Hazard ratio", 1, None))
_CONTRAST_MEASURES = r"(risk_treated|risk_control|risk_difference|risk_ratio|odds_ratio|hazard_ratio)"


def _contrast_table(res: Any, *, digits: int, threshold: int, title: str | None,
                    level_labels: Mapping[str, Mapping[str, str]] | None) -> PublicationTable:
    """IPTW / ate contrasts: a block per contrast (risks per arm, difference, ratios), a column per method."""
    tab = res.table()
    if "contrast" not in tab.columns:
        raise DataError(f"model_table: {type(res).__name__} has no contrasts to show")
    tab = tab[tab["measure"].astype(str).str.match("^" + _CONTRAST_MEASURES)].reset_index(drop=True)
    if "method" in tab.columns:
        method = tab["method"].astype(str)
        measure = tab["measure"].astype(str)
    else:
        split = tab["measure"].astype(str).str.extract(r"^(?P<m>[a-z]+_[a-z]+)(?:_(?P<s>[a-z]+))?$")
        measure, method = split["m"], split["s"].fillna("")
    tab = tab.assign(_measure=measure.to_numpy(), _method=method.to_numpy())
    levels_ci = tab.get("ci_level", pd.Series([res.level])).astype(float)
    estimand = getattr(res, "estimand", None)
    horizon = tab["horizon"].dropna().iloc[0] if "horizon" in tab.columns and tab["horizon"].notna().any() else None
    what = f"{res.method}" + (f"; estimand {estimand}" if estimand else "")
    if horizon is not None and f"{float(horizon):g}" not in what:
        what += f"; risk of the outcome by day {float(horizon):g}"
    notes = [what + f"; {_count_text(res.n, threshold)} patients analysed."]
    # the report's one decision of what is withheld, on the rows as a report's estimates hold them (the
    # contrast "a vs b" as their group): an arm's risk resting on a small count is withheld, and with it the
    # differences and ratios that would give it back with the other arm's risk
    published = _protected_estimates(tab.assign(group=tab["contrast"].astype(str), section="contrasts"), threshold)
    return _contrast_layout(tab, published, levels_ci, digits=digits, threshold=threshold, title=title, notes=notes)


def contrast_table_from_estimates(rows: pd.DataFrame, *, digits: int = 2, threshold: int = 5,
                                  title: str | None = None, notes: Sequence[str] = ()) -> PublicationTable:
    """The contrast table of :func:`model_table` from a report's published estimates of an ``iptw`` section
    (``group`` "a vs b", ``measure`` such as ``risk_ratio``, ``crude_risk_ratio``, ``risk_ratio_aipw``): a
    column per method (IPTW, g-formula, AIPW, IPTW-IPCW, crude), estimates withheld as the report withholds
    them. The footnotes name the methods and the patients per arm as published."""
    rows = rows[rows["group"].astype(str).str.contains(" vs ", regex=False)]
    parts = rows["measure"].astype(str).str.extract("^(?P<crude>crude_)?" + _CONTRAST_MEASURES
                                                    + r"(?:_(?P<suffix>[a-z]+))?$")
    keep = parts[1].notna().to_numpy()
    rows, parts = rows[keep].reset_index(drop=True), parts[keep].reset_index(drop=True)
    if rows.empty:
        raise DataError("contrast_table_from_estimates: no risks or contrasts of arms ('a vs b') in the rows")
    method = np.where(parts["crude"].notna(), "crude", parts["suffix"].fillna(""))
    tab = rows.assign(contrast=rows["group"].astype(str), _measure=parts[1].to_numpy(), _method=method)
    arms: dict[str, Any] = {}
    for _, r in tab[tab["_method"] == ""].iterrows():
        if r["_measure"] in ("risk_treated", "risk_control"):
            t_lvl, _, c_lvl = str(r["contrast"]).partition(" vs ")
            arms.setdefault(t_lvl if r["_measure"] == "risk_treated" else c_lvl, r.get("n"))
    methods = "; ".join(dict.fromkeys(str(m) for m in tab.get("method", pd.Series(dtype=str)).dropna() if str(m)))
    extra = [f"Methods: {methods}."] if methods else []
    if arms:
        extra.append("Patients analysed per arm: " + ", ".join(f"{_level_text(a)} {_count_text(n, threshold)}"
                                                               for a, n in arms.items()) + ".")
    levels_ci = pd.to_numeric(tab.get("ci_level", pd.Series([0.95])), errors="coerce").dropna()
    return _contrast_layout(tab, tab, levels_ci, digits=digits, threshold=threshold, title=title,
                            notes=extra + list(notes))


def _contrast_layout(tab: pd.DataFrame, prot: pd.DataFrame, levels_ci: pd.Series, *, digits: int, threshold: int,
                     title: str | None, notes: list[str]) -> PublicationTable:
    """Lay out contrasts (``tab``: contrast, _measure, _method; ``prot``: the same rows as published)."""
    methods = list(dict.fromkeys(tab["_method"]))
    ci = "/".join(f"{100 * x:g}%" for x in sorted(set(levels_ci)))
    columns = [("", "Contrast")] + [("", f"{_METHOD_NAMES.get(m, m)} ({ci} CI)") for m in methods]
    cells, indent = [], []
    withheld = False
    for contrast in dict.fromkeys(tab["contrast"].astype(str)):
        t_lvl, _, c_lvl = contrast.partition(" vs ")
        t_text, c_text = _level_text(t_lvl, None, None), _level_text(c_lvl, None, None)
        cells.append([f"{t_text} vs {c_text}"] + [""] * len(methods))
        indent.append(0)
        block = prot[(tab["contrast"].astype(str) == contrast).to_numpy()]
        rows, hidden = _contrast_rows(block, methods, t_text, c_text, digits)
        withheld = withheld or hidden
        cells += rows
        indent += [1] * len(rows)
    footnotes = ["Risks and risk differences in %; CI, confidence interval."] + notes
    if withheld:
        footnotes.append(f"{DASH}: withheld, based on fewer than {threshold} people or events, or revealing "
                         "such a risk with the risk of the other arm.")
    return PublicationTable(title=title or "Risks and effects of the treatment", cells=cells, columns=columns,
                            indent=indent, footnotes=footnotes)


def _contrast_rows(block: pd.DataFrame, methods: list[str], t_text: str, c_text: str, digits: int
                   ) -> tuple[list[list[str]], bool]:
    """The rows of one contrast (risks, difference, ratios) as published in ``block``, and whether a cell is
    withheld. What is withheld is decided before, once (a withheld risk withholds the contrast's differences
    and ratios, which would give it back with the other arm's risk): a withheld estimate shows as a dash."""
    rows, withheld = [], False
    for key, text, scale, dig in _MEASURE_ROWS:
        part = block[block["_measure"] == key]
        if part.empty:
            continue
        row = [text.format(t=t_text, c=c_text)]
        for m in methods:
            hit = part[part["_method"] == m]
            if hit.empty:
                row.append("")
                continue
            r = hit.iloc[0]
            if r["estimate"] is None or pd.isna(r["estimate"]):
                withheld = True
                row.append(DASH)
                continue
            row.append(format_estimate(scale * float(r["estimate"]), scale * float(r["ci_lower"]),
                                       scale * float(r["ci_upper"]), digits if dig is None else dig))
        rows.append(row)
    return rows, withheld
