"""An attack on the published outputs of a report: can a reader pin down a count shown as "<5"?

The attacker is written from the outside, without the report layer's suppression code: it reads what a
reader gets (Table 1 and the flow diagram from report.html, estimates.csv, the numbers at risk drawn in
the figures' SVG, the publication rule from estimates.json) and writes down every relation a reader knows
to hold between the published counts:

- Table 1: per column, the levels (with the hidden "no" of a yes/no variable) and the missing row add up
  to the column's n; per row, the groups add up to the Overall column; the group sizes to the Overall n.
- Flow diagram: rows read minus each exclusion gives the next "remaining" box and, at the end, the number
  analysed, which is at least Table 1's Overall n (Table 1 leaves out episodes without its by-column).
- Estimates: a contrast row "A vs B" counts the people (events) of both arms; the rows of sites add up to
  the pooled row; the shares of a category's distribution add up to their n; a group's events do not
  decrease with time, nor exceed its n; a group has no more than the episodes analysed; and a plain proportion
  (share, proportion) with its n gives its events (events = estimate x n).
- Figures: the number at risk at time 0 of a cumulative-incidence figure is its group's n; later numbers
  at risk are no more.
- Estimates withheld for small numbers: an arm's risk (or restricted mean) is the other arm's plus the
  difference, or times the ratio (odds ratios on the odds scale), of the same contrast, method and time;
  a withheld arm estimate that comes back this way is a leak as well (27.6% - 11.4 points = 16.2%), and
  with the arm's n it would give its events back.
- Estimates shown outside estimates.csv: the HTML's E-value tables, the contrast tables and the model tables
  of tables.docx/xlsx/tex, and the HTML's ratios of model terms (a section's estimates, the summary at the
  top, the E-values by term). A model term's label ("Sex" above "male", "Age (years), per 10"; in the HTML
  "Sex: male (ref. female)") is read back to estimates.csv's term by the words both are made of; a
  label that is no single term is an error. An estimate estimates.csv withholds shown there is a leak.

A shown count means the set of integers consistent with it under the published rule (rounded to the
nearest ``base``: within half a base, and at least the threshold unless 0; exact counts: itself; in a
table holding a "<5" under exact counts, a multiple of the threshold may be rounded). Each "<5" is then
minimised and maximised by an integer program over all relations together (scipy's HiGHS); the count is
recoverable when both ends meet. The test runs the attack on the bundled analyses at a small n (where
small cells occur), under the default rounding and with exact counts, and on targeted synthetic cases.
"""
from __future__ import annotations

import json
import re
import shutil
import warnings
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from tests.paths import ROOT

BIG = 10**7
PROPORTION_MEASURES = ("share", "proportion", "site_proportion")


# ---------------------------------------------------------------------------------------------------
# what a reader knows
# ---------------------------------------------------------------------------------------------------
class Reader:
    """Published counts as integer unknowns with bounds, and the linear relations between them."""

    def __init__(self, threshold: int, rounding, local_rounding: bool = True) -> None:
        """``local_rounding``: with exact counts, a table holding a "<5" may have rounded its other counts
        (hostats' published rule); False for a publication known to show exact counts."""
        self.t = int(threshold)
        self.local_rounding = local_rounding
        self.midpoint = rounding == "midpoint6"
        self.base = 6 if self.midpoint else (int(rounding) if int(rounding or 0) >= 2 else 1)
        self.lo: dict = {}
        self.hi: dict = {}
        self.eqs: list[dict] = []    # sum coef * var == 0
        self.les: list[dict] = []    # sum coef * var <= 0 (floats allowed)
        self.targets: dict = {}      # var -> where it was shown as "<t"

    def var(self, name) -> object:
        self.lo.setdefault(name, 0)
        self.hi.setdefault(name, BIG)
        return name

    def _bound(self, name, lo: float, hi: float) -> None:
        self.var(name)
        self.lo[name] = max(self.lo[name], lo)
        self.hi[name] = min(self.hi[name], hi)

    def see(self, name, text, where: str = "", maybe_rounded_to: int = 1) -> object:
        """Record a published count text for ``name`` (the same quantity may be shown in several places)."""
        self.var(name)
        text = str(text).strip() if text is not None else ""
        if isinstance(text, str) and text.endswith(".0") and text[:-2].isdigit():
            text = text[:-2]
        if text in ("", "s", "—", "nan", "None"):
            return name
        if text == f"<{self.t}":
            self._bound(name, 1, self.t - 1)
            self.targets[name] = where or str(name)
            return name
        v = int(text)
        if v == 0:
            self._bound(name, 0, 0)
        elif self.midpoint:
            self._bound(name, v - 2, v + 3)
        else:
            b = self.base if self.base > 1 else (maybe_rounded_to if self.local_rounding and v % maybe_rounded_to == 0
                                                 else 1)
            lo, hi = v - b // 2, v + (b - 1) // 2
            self._bound(name, max(lo, self.t if self.base > 1 or b > 1 else lo), hi)
        return name

    def equal(self, total, parts) -> None:
        """``total`` is the sum of ``parts``."""
        eq = {total: -1.0}
        for p in parts:
            eq[p] = eq.get(p, 0.0) + 1.0
        self.eqs.append(eq)

    def at_most(self, small, large, factor: float = 1.0) -> None:
        """``small <= factor * large``."""
        self.les.append({small: 1.0, large: -factor} if small != large else {small: 1.0 - factor})

    def recovered(self) -> dict:
        """Counts shown as "<t" that the relations pin down to one value: {where: value}."""
        names = list(self.lo)
        pos = {n: i for i, n in enumerate(names)}
        cons = []
        for rows, lo, hi in ((self.eqs, 0.0, 0.0), (self.les, -np.inf, 0.0)):
            if rows:
                a = np.zeros((len(rows), len(names)))
                for k, row in enumerate(rows):
                    for n, c in row.items():
                        a[k, pos[n]] += c
                cons.append(LinearConstraint(a, lo, hi))
        bounds = Bounds(np.array([self.lo[n] for n in names], float), np.array([self.hi[n] for n in names], float))
        out = {}
        for name, where in self.targets.items():
            ends = []
            for sign in (1.0, -1.0):
                c = np.zeros(len(names))
                c[pos[name]] = sign
                res = milp(c, constraints=cons, integrality=np.ones(len(names)), bounds=bounds)
                assert res.status == 0, f"the published numbers contradict the attacker's relations at {where}"
                ends.append(round(res.x[pos[name]]))
            if ends[0] == ends[1]:
                out[where] = ends[0]
        return out


# ---------------------------------------------------------------------------------------------------
# reading the outputs
# ---------------------------------------------------------------------------------------------------
def _cells(fragment: str, tag: str) -> list[str]:
    return [unescape(re.sub(r"<.*?>", "", c)).strip() for c in re.findall(rf"<{tag}.*?>(.*?)</{tag}>", fragment, re.S)]


def html_table1(html: str) -> tuple[list[str], list[list[str]]] | None:
    """The HTML's Table 1 as (header, rows of [variable, level, cells...]): the journal layout (a heading row
    per variable, "Sex, n (%)", with its levels, "Missing" among them, beneath it) read back into one row per
    level named by its variable."""
    if 'id="table1"' not in html:
        return None
    part = html[html.index('id="table1"'):]
    m = re.search(r"<table.*?</table>", part, re.S)
    if m is None:
        return None
    rows = re.findall(r"<tr.*?>(.*?)</tr>", m.group(0), re.S)
    heads = [_cells(r, "th") for r in rows if _cells(r, "th")]
    out, variable = [], ""
    for r in rows:
        cells = _cells(r, "td")
        if not cells:
            continue
        if not any(cells[1:]):   # a variable's heading row
            variable = cells[0]
            continue
        level = "missing" if cells[0] == "Missing" else cells[0]
        out.append([variable, level, *cells[1:]])
    return ["variable", "level", *heads[-1][1:]], out


def read_table1(reader: Reader, header: list[str], rows: list[list[str]]) -> object | None:
    """Table 1 relations; returns the variable of the Overall n."""
    cols = [i for i, h in enumerate(header) if "(n=" in h]
    if not cols:
        return None
    n_text = {i: re.search(r"\(n=([^)]*)\)", header[i]).group(1) for i in cols}
    has_small = lambda texts: any(t.startswith("<") for t in texts)  # noqa: E731
    local = max(reader.t, 2) if reader.base == 1 else 1
    head_local = local if has_small(n_text.values()) else 1
    n_var = {i: reader.see(("t1n", i), n_text[i], f"Table 1 header {header[i]}", head_local) for i in cols}
    overall = cols[-1]
    groups = cols[:-1]
    if groups:
        reader.equal(n_var[overall], [n_var[i] for i in groups])
    by_var: dict[str, list[list[str]]] = {}
    for r in rows:
        by_var.setdefault(r[0], []).append(r)
    for var, block in by_var.items():
        levels = [r for r in block if r[1] not in ("mean (SD)", "median [IQR]", "missing")]
        if not levels and not any(r[1] == "mean (SD)" for r in block):
            continue
        texts = [r[i].split(" (")[0] for r in block for i in cols if r[1] not in ("mean (SD)", "median [IQR]")]
        rnd = local if has_small(texts) else 1
        cell = {}
        for r in block:
            if r[1] in ("mean (SD)", "median [IQR]"):
                continue
            for i in cols:
                cell[(r[1], i)] = reader.see(("t1", var, r[1], i), r[i].split(" (")[0],
                                             f"Table 1 {var}={r[1]} in {header[i]}", rnd)
        numeric = any(r[1] == "mean (SD)" for r in block)
        yes_no = [r[1] for r in levels] == ["yes"]
        names = [r[1] for r in block if r[1] not in ("mean (SD)", "median [IQR]")]
        if numeric or yes_no:   # the values present (numeric) or the "no" level are not shown
            names.append("__hidden__")
            for i in cols:
                cell[("__hidden__", i)] = reader.var(("t1", var, "__hidden__", i))
        for i in cols:
            reader.equal(n_var[i], [cell[(lv, i)] for lv in names])
        if groups:
            for lv in names:
                reader.equal(cell[(lv, overall)], [cell[(lv, i)] for i in groups])
    return n_var[overall]


def read_flow(reader: Reader, html: str) -> object | None:
    """Flow relations; returns the variable of the number analysed."""
    boxes = re.findall(r'<div class="box ([^"]*)">(.*?)<span class="count">(.*?)</span>', html, re.S)
    current: dict = {}
    analysed = None
    for k, (kind, label, count) in enumerate(boxes):
        label, count = unescape(re.sub(r"<.*?>", "", label)).strip(), unescape(count).strip()
        name = ("flow", k)
        if kind == "main" and label == "Rows read":
            current = {reader.see(name, count, "flow: rows read"): 1.0}
        elif kind == "side":
            e = reader.see(name, count, f"flow: excluded by {label}")
            current[e] = current.get(e, 0.0) - 1.0
        elif kind.startswith("main"):
            v = reader.see(name, count, f"flow: {label}")
            if "final" in kind:
                analysed = v
            eq = {v: -1.0}
            for x, c in current.items():
                eq[x] = eq.get(x, 0.0) + c
            reader.eqs.append(eq)
            current = {v: 1.0}
    return analysed


def _key(group: str, measure: str) -> tuple:
    if " vs " in group:
        a, b = (s.strip() for s in group.split(" vs ", 1))
        if "treated" in measure:
            return ("arm", a)
        if "control" in measure:
            return ("arm", b)
        return ("contrast", a, b)
    if group.lower() in ("pooled", "new site"):
        return ("total",)
    return ("arm", group)


def read_estimates(reader: Reader, est: pd.DataFrame, analysed_var=None) -> None:
    est = est.copy()
    for c in ("group", "measure", "section"):
        est[c] = est[c].fillna("").astype(str) if c in est.columns else ""
    if "time_days" not in est.columns:
        est["time_days"] = ""
    est["time_days"] = est["time_days"].fillna("").astype(str)
    small = f"<{reader.t}"
    for (sec, time), rows in est.groupby(["section", "time_days"], sort=False):
        if rows["group"].eq("").all():
            continue  # model terms: one n for the model
        # exact counts: in a block holding a "<5", the other counts may be rounded (the published rule)
        local = {c: max(reader.t, 2) if reader.base == 1 and rows[c].astype(str).eq(small).any() else 1
                 for c in ("n", "events")}
        # a group shown with different counts under different measures (a mean and a median of different
        # subsets) is not one quantity: such rows stand for themselves
        texts: dict = {}
        for _, r in rows.iterrows():
            texts.setdefault(_key(r["group"], r["measure"]), set()).add((str(r.get("n")), str(r.get("events"))))
        keys = {}
        for _, r in rows.iterrows():
            k = _key(r["group"], r["measure"])
            if len(texts[k]) > 1:
                k = ("row", r["group"], r["measure"])
            keys[k] = r
            n = reader.see(("n", sec, k), r.get("n"), f"{sec} {r['group']} n", local["n"])
            e = reader.see(("events", sec, time, k), r.get("events"), f"{sec} {r['group']} events at {time}",
                           local["events"])
            est_v = pd.to_numeric(pd.Series([r.get("estimate")]), errors="coerce").iloc[0]
            from_published = "published (rounded) counts" in str(r.get("note", ""))
            if r["measure"] in PROPORTION_MEASURES and np.isfinite(est_v) and not from_published:
                reader.at_most(e, n, est_v + 1e-9)      # events = estimate x n
                reader.les.append({e: -1.0, n: est_v - 1e-9})
        arms = [k for k in keys if k[0] == "arm"]
        for tag in (("n", sec), ("events", sec, time)):
            for k in keys:
                if k[0] == "contrast" and ("arm", k[1]) in keys and ("arm", k[2]) in keys:
                    reader.equal((*tag, k), [(*tag, ("arm", k[1])), (*tag, ("arm", k[2]))])
            if ("total",) in keys and arms:
                reader.equal((*tag, ("total",)), [(*tag, a) for a in arms])
        measures = set(rows["measure"])
        ns = set(rows["n"].astype(str))
        if measures == {"share"} and len(ns) == 1:  # a distribution: the categories add up to its n
            reader.equal(("n", sec, arms[0]), [("events", sec, time, a) for a in arms])
        for a in arms:
            reader.at_most(("events", sec, time, a), ("n", sec, a))
            if analysed_var is not None:
                reader.at_most(("n", sec, a), analysed_var)
    # events of a group do not decrease with time
    timed = est[est["time_days"] != ""]
    for (sec, group, measure), rows in timed.groupby(["section", "group", "measure"], sort=False):
        times = sorted(rows["time_days"].unique(), key=float)
        k = _key(group, measure)
        if not all(("events", sec, t, k) in reader.lo for t in times):
            continue
        for t1, t2 in zip(times, times[1:], strict=False):
            reader.at_most(("events", sec, t1, k), ("events", sec, t2, k))


def read_at_risk(reader: Reader, svg: str, section: str) -> None:
    placed = [(float(x), float(y), unescape(t).strip())
              for x, y, t in re.findall(r'<text[^>]*\bx="([-\d.]+)"[^>]*\by="([-\d.]+)"[^>]*>([^<]*)</text>', svg)]
    title = [y for x, y, t in placed if t == "Number at risk"]
    if not title:
        return
    ty = title[0]
    below = [(x, y, t) for x, y, t in placed if y > ty]
    labels = [(y, t) for x, y, t in below if not re.fullmatch(r"<?\d+|s|", t)]
    ticks = {round(x, 1): t for x, y, t in placed if y < ty and re.fullmatch(r"\d+", t) and y > ty - 40}
    for x, y, t in below:
        if not re.fullmatch(r"<?\d+|s", t) or not labels:
            continue
        group = min(labels, key=lambda lab: abs(lab[0] - y))[1]
        time = ticks.get(round(x, 1))
        if time is None:
            continue
        name = ("n", section, ("arm", group)) if float(time) == 0 else ("at_risk", section, group, time)
        reader.see(name, t, f"{section} at risk {group} day {time}")
        if float(time) != 0:
            reader.at_most(name, ("n", section, ("arm", group)))


_CONTRAST = re.compile(r"^(?P<p>crude_)?(?P<kind>risk_difference|risk_ratio|odds_ratio|rmtl_difference)(?P<s>_[a-z]+)?$")


def _arm_measures(measure: str) -> tuple[str, str, str] | None:
    """(kind, treated arm's measure, control arm's measure) of a contrast measure; None for other rows."""
    m = _CONTRAST.match(measure)
    if m is None:
        return None
    p, s = m.group("p") or "", m.group("s") or ""
    if m.group("kind") == "rmtl_difference":
        return "difference", "rmtl" + s, "rmtl" + s
    kind = "difference" if m.group("kind") == "risk_difference" else m.group("kind")
    return kind, f"{p}risk_treated{s}", f"{p}risk_control{s}"


def _solve(kind: str, known: float, contrast: float, known_is_treated: bool) -> float:
    if kind == "difference":
        return known - contrast if known_is_treated else known + contrast
    if kind == "risk_ratio":
        return known / contrast if known_is_treated else known * contrast
    odds = known / (1 - known)
    odds = odds / contrast if known_is_treated else odds * contrast
    return odds / (1 + odds)


def recovered_estimates(est: pd.DataFrame) -> dict:
    """Arm estimates withheld (blank) that the other arm's shown estimate and a shown contrast of the same
    section, time and method give back: {where: value}."""
    est = est.copy()
    for c in ("group", "measure", "section", "time_days"):
        est[c] = est[c].fillna("").astype(str) if c in est.columns else ""
    value = pd.to_numeric(est["estimate"], errors="coerce")
    shown = {(r.section, r.time_days, r.group, r.measure): value[i] for i, r in est.iterrows() if np.isfinite(value[i])}
    blank = {(r.section, r.time_days, r.group, r.measure) for i, r in est.iterrows() if not np.isfinite(value[i])}
    out = {}
    for (sec, time, group, measure), c_value in list(shown.items()):
        arms = _arm_measures(measure)
        if arms is None or " vs " not in group:
            continue
        kind, m_t, m_c = arms
        a, b = (x.strip() for x in group.split(" vs ", 1))
        # a risk row names its contrast ("a vs b"); a restricted mean row names its arm
        t_key = (sec, time, group if m_t.startswith(("risk", "crude")) else a, m_t)
        c_key = (sec, time, group if m_c.startswith(("risk", "crude")) else b, m_c)
        for gone, known, known_is_treated in ((t_key, c_key, False), (c_key, t_key, True)):
            if gone in blank and known in shown:
                out[f"{sec} {gone[2]} {gone[3]} at {time or '-'} (withheld estimate)"] = round(
                    _solve(kind, shown[known], c_value, known_is_treated), 6)
    return out


# ---------------------------------------------------------------------------------------------------
# estimates shown outside estimates.csv: the HTML's E-value tables, the tables for a manuscript
# ---------------------------------------------------------------------------------------------------
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?")


def _number(text) -> float | None:
    """The leading number of a cell ("0.54 (0.36 to 0.81)" gives 0.54), None for a blank, dash or word."""
    m = _NUMBER.match(str(text or "").strip().replace("\u2212", "-"))
    return float(m.group(0)) if m else None


def html_e_values(html: str, titles: dict[str, str]) -> list[dict]:
    """The rows of the HTML's E-value tables as estimate rows: {section, group, term, measure, estimate}
    (``titles``: section title -> id, from the spec in manifest.json)."""
    out = []
    for title, table in re.findall(r"<h3>E-values: (.*?)</h3>\s*<div[^>]*>(<table.*?</table>)", html, re.S):
        sec = titles.get(unescape(title).strip())
        assert sec is not None, f"an E-value table of no section: {title}"
        rows = re.findall(r"<tr.*?>(.*?)</tr>", table, re.S)
        header = _cells(rows[0], "th")
        for r in rows[1:]:
            cells = dict(zip(header, _cells(r, "td"), strict=True))
            if "contrast" in cells:
                # the report reads the measure as words ("Risk ratio"); a table built here keeps risk_ratio
                measure = {**_RATIO_LABELS, "Risk ratio": "risk_ratio"}.get(cells["measure"], cells["measure"])
                out.append({"section": sec, "group": cells["contrast"], "term": "", "measure": measure,
                            "estimate": _number(cells["estimate"])})
            else:
                out.append({"section": sec, "group": "", "term": cells["term"], "measure": "odds_ratio",
                            "estimate": _number(cells["odds ratio"])})
    return out


def manuscript_grids(folder: Path) -> dict[str, list[list[str]]]:
    """The tables of tables.xlsx, tables.docx and tables.tex as grids of cell texts by title; the three
    files must hold the same tables (checked), so a number shown in one is shown in all."""
    import docx
    import openpyxl

    if not (folder / "tables.xlsx").exists():
        return {}

    def clean(row) -> list[str]:
        return [re.sub(r"\s+", " ", "" if v is None else str(v)).strip() for v in row]

    wb = openpyxl.load_workbook(str(folder / "tables.xlsx"))
    xlsx = {}
    for ws in wb.worksheets:
        rows = [clean(r) for r in ws.iter_rows(values_only=True)]
        xlsx[rows[0][0]] = [r for r in rows[1:] if any(r)]
    d = docx.Document(str(folder / "tables.docx"))
    titles = [p.text for p in d.paragraphs if p.runs and p.runs[0].bold]
    word = {t: [clean(c.text for c in r.cells) for r in tab.rows] for t, tab in zip(titles, d.tables, strict=True)}
    tex = (folder / "tables.tex").read_text(encoding="utf-8")
    tex_cells = [x.strip() for line in re.findall(r"^(.*?)\\\\\s*$", tex, re.M) for x in line.split("&")]

    def estimates_in(cells) -> set[str]:   # "0.54 (0.36 to 0.81)", "31.2 (25.6 to 37.5)"
        return {c for c in cells if re.fullmatch(r"-?[\d.]+ \(-?[\d.]+ to -?[\d.]+\)", c)}

    assert set(word) == set(xlsx), (set(word), set(xlsx))
    in_xlsx = estimates_in(c for grid in xlsx.values() for r in grid for c in r)
    assert in_xlsx == estimates_in(c for grid in word.values() for r in grid for c in r), "Word differs from Excel"
    assert in_xlsx == estimates_in(tex_cells), "LaTeX differs from Excel"
    return xlsx


_ROW_MEASURES = {"Risk difference (percentage points)": "risk_difference", "Risk ratio": "risk_ratio",
                 "Odds ratio": "odds_ratio", "Hazard ratio": "hazard_ratio"}
_COLUMN_METHODS = {"IPTW": ("", ""), "Regression (g-formula)": ("", "_regression"), "AIPW": ("", "_aipw"),
                   "IPTW-IPCW": ("", "_ipcw"), "Crude": ("crude_", "")}


def _manuscript_tables(grids: dict[str, list[list[str]]], titles: dict[str, str], first: str):
    """(section id, header row, the rows below it) of the manuscript's tables of a section whose header
    row starts with ``first`` ("Contrast": a contrast table; "Characteristic": Table 1 or a model table)."""
    for title, grid in grids.items():
        sec = titles.get(re.sub(r"^Table \d+\. ", "", title))
        header = next((r for r in grid if r and r[0] == first), None)
        if sec is not None and header is not None:
            yield sec, header, grid[grid.index(header) + 1:]


def manuscript_contrasts(grids: dict[str, list[list[str]]], titles: dict[str, str]) -> list[dict]:
    """The cells of the manuscript's contrast tables (an iptw section's risks and contrasts by method) as
    estimate rows {section, group, term, measure, estimate} on estimates.csv's scale (risks as proportions)."""
    out = []
    for sec, header, body in _manuscript_tables(grids, titles, "Contrast"):
        methods = [_COLUMN_METHODS.get(re.sub(r" \(\d+% CI\)$", "", h)) for h in header]
        contrast = None
        for row in body:
            if " vs " in row[0] and not any(row[1:]):
                contrast = row[0]
                continue
            if contrast is None:
                continue
            arm = re.match(r"^Risk, (.*) \(%\)$", row[0])
            if arm:
                base, scale = ("risk_treated" if arm.group(1) == contrast.split(" vs ")[0] else "risk_control"), 0.01
            elif row[0] in _ROW_MEASURES:
                base = _ROW_MEASURES[row[0]]
                scale = 0.01 if base == "risk_difference" else 1.0
            else:
                continue
            for method, cell in zip(methods, row, strict=True):
                v = _number(cell)
                if method is not None and v is not None:
                    out.append({"section": sec, "group": contrast, "term": "", "measure": method[0] + base + method[1],
                                "estimate": v * scale})
    return out


# the model tables (ratios by model term): the tables for a manuscript and the HTML label a term for a reader
# ("Sex" with its level "male", "Age (years), per 10"; in the HTML "Sex: male (ref. female)"); the
# attacker maps each label back to estimates.csv's term (``C(sex)[T.male]``, ``I(age_years / 10)``) by the
# words both are made of. A label that is no single term of its section is an error, never a row left out.
_RATIO_COLUMNS = {"OR": "odds_ratio", "HR": "hazard_ratio", "SHR": "subdistribution_hazard_ratio"}
_RATIO_LABELS = {"Odds ratio": "odds_ratio", "Hazard ratio": "hazard_ratio",
                 "Subdistribution hazard ratio": "subdistribution_hazard_ratio"}
_FACTOR_TERM = re.compile(r"^(?:C\(\s*)?(?P<var>[\w.]+)\s*(?:,[^\[]*)?\)?\[T\.(?P<level>.*)\]$")
_PER_TERM = re.compile(r"^I\(\s*(?P<var>[\w.]+)\s*/\s*(?P<k>[\d.]+)\s*\)$")


def _words(text) -> tuple[str, ...]:
    """The words of a label or a term as a reader compares them: runs of letters or of digits, lower case,
    in no order ("Age (years), per 10" is "Age (per 10 years)"), true/false read as yes/no."""
    words = re.findall(r"[a-z]+|\d+(?:\.\d+)?", str(text).lower())
    return tuple(sorted({"true": "yes", "false": "no"}.get(w, w) for w in words))


def term_words(term: str, labels: dict[str, str] | None = None) -> tuple[str, ...] | None:
    """The words of a model term of estimates.csv (``C(sex)[T.male]``: sex, male; ``prior_ho[T.True]``:
    prior, ho, yes; ``I(age_years / 10)``: age, years, per, 10), a variable read through the spec's
    ``[report] labels``; None for a term the attacker cannot read (splines, interactions)."""
    t = str(term).replace("`", "").strip()

    def var(name: str) -> str:
        return str((labels or {}).get(name, name)).replace("_", " ")

    m = _PER_TERM.match(t)
    if m:
        return _words(f"{var(m.group('var'))} per {m.group('k')}")
    m = _FACTOR_TERM.match(t)
    if m:
        return _words(f"{var(m.group('var'))} {m.group('level')}")
    return _words(var(t)) if re.fullmatch(r"[\w.]+", t) else None


def section_terms(est: pd.DataFrame, labels: dict[str, str] | None = None) -> dict[str, dict[tuple, str]]:
    """{section: {words: term}} of estimates.csv's model terms (rows with a term and no group)."""
    out: dict[str, dict[tuple, str]] = {}
    rows = est.reindex(columns=["section", "group", "term"]).fillna("").astype(str)
    for sec, group, term in rows.to_numpy():
        words = term_words(term, labels) if term and not group else None
        if words is not None:
            seen = out.setdefault(sec, {})
            assert seen.get(words, term) == term, f"{sec}: terms {seen[words]!r} and {term!r} read alike"
            seen[words] = term
    return out


def as_term(terms: dict[str, dict[tuple, str]], sec: str, *labels: str) -> str:
    """The one term of ``sec`` that a row labelled ``labels`` (tried in turn: a label alone, a level with its
    variable's heading) shows."""
    # the reference level a row names ("Sex: male (ref. female)") is no word of its term
    found = {terms.get(sec, {}).get(_words(re.sub(r" \(ref\. [^()]*\)$", "", lab))) for lab in labels if lab} - {None}
    assert len(found) == 1, (f"{sec}: the row {' / '.join(labels)!r} is no single model term of estimates.csv "
                             f"({sorted(terms.get(sec, {}).values())})")
    return found.pop()


def manuscript_terms(grids: dict[str, list[list[str]]], titles: dict[str, str],
                     terms: dict[str, dict[tuple, str]]) -> list[dict]:
    """The estimate cells of the manuscript's model tables (a column "OR (95% CI)", "HR ..." or "SHR ...";
    rows a variable, or its heading with a reference row and its levels below) as estimate rows {section,
    group, term, measure, estimate}, each row's label mapped to estimates.csv's term."""
    out = []
    for sec, header, body in _manuscript_tables(grids, titles, "Characteristic"):
        columns = [(j, _RATIO_COLUMNS[m.group(1)]) for j, h in enumerate(header)
                   if (m := re.match(r"^(OR|HR|SHR) \(", h))]
        heading = ""
        for row in body if columns else []:
            if not any(row[1:]):   # a variable's heading (its levels follow), or a footnote
                heading = row[0]
                continue
            if row[0].endswith("(ref.)"):
                continue
            term = as_term(terms, sec, row[0], f"{heading} {row[0]}" if heading else "")
            out += [{"section": sec, "group": "", "term": term, "measure": measure, "estimate": _number(row[j])}
                    for j, measure in columns]
    return out


def html_terms(html: str, titles: dict[str, str], terms: dict[str, dict[tuple, str]]) -> list[dict]:
    """The model terms' ratios the HTML shows, as estimate rows: the rows of the sections' estimate tables
    (measure "Odds ratio", ..., and the term's label), of the summary at the top ("Odds ratio, Sex: male (ref.
    female)" with the section's title), and of the E-value tables by term."""
    out = []
    for title, block in re.findall(r"<h3>(.*?)</h3>(.*?)(?=<h[23][ >]|</section>)", html, re.S):
        sec = titles.get(unescape(title).strip())
        table = re.search(r"<table.*?</table>", block, re.S)
        if sec not in terms or table is None:
            continue
        rows = re.findall(r"<tr.*?>(.*?)</tr>", table.group(0), re.S)
        header = _cells(rows[0], "th")
        if header[:2] != ["measure", "group / term"]:
            continue
        for r in rows[1:]:
            cells = dict(zip(header, _cells(r, "td"), strict=True))
            if cells["measure"] in _RATIO_LABELS:
                out.append({"section": sec, "group": "", "term": as_term(terms, sec, cells["group / term"]),
                            "measure": _RATIO_LABELS[cells["measure"]], "estimate": _number(cells["estimate"])})
    summary = re.search(r'<table class="tbl summary">(.*?)</table>', html, re.S)
    for label, sec_title, value in re.findall(r'<tr><td>(.*?)<div class="muted">(.*?)</div></td>'
                                              r'<td class="value">(.*?)</td></tr>', summary.group(1) if summary else ""):
        measure, _, who = unescape(label).partition(", ")
        sec = titles.get(unescape(sec_title).strip())
        if measure in _RATIO_LABELS and sec in terms:
            out.append({"section": sec, "group": "", "term": as_term(terms, sec, who),
                        "measure": _RATIO_LABELS[measure], "estimate": _number(unescape(value))})
    for r in html_e_values(html, titles):
        if r["term"]:
            out.append({**r, "term": as_term(terms, r["section"], r["term"])})
    return out


def report_titles(spec: dict) -> dict[str, str]:
    """Section title -> section id, from the spec (in manifest.json): the sections and their sensitivity
    analyses (``<id>_complete_case``), as the report heads them."""
    titles = {sec.get("title", sec["id"]): sec["id"] for sec in spec.get("section", [])}
    return {**titles, **{f"Sensitivity analysis (complete case): {t}": f"{i}_complete_case" for t, i in titles.items()}}


def _same(text) -> str:
    """A group or term as a reader matches it across outputs: the tables for a manuscript print readable
    labels ("radiotherapy + NSAID vs none" for estimates.csv's "radiotherapy_nsaid vs none")."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower().replace(" vs ", "|"))


def _keys(est: pd.DataFrame) -> list[tuple]:
    k = est.reindex(columns=["section", "group", "term", "measure"]).fillna("").astype(str)
    return [(a, _same(b), _same(c), d) for a, b, c, d in k.to_numpy()]


def shown_elsewhere(est: pd.DataFrame, elsewhere: list[dict], what: str) -> dict:
    """Estimates withheld (blank) in estimates.csv that another output shows: {where: value}."""
    value = pd.to_numeric(est["estimate"], errors="coerce").to_numpy()
    blank = {k for k, v in zip(_keys(est), value, strict=True) if not np.isfinite(v)}
    return {f"{r['section']} {r['group'] or r['term']} {r['measure']} ({what})": r["estimate"] for r in elsewhere
            if r["estimate"] is not None
            and (r["section"], _same(r["group"]), _same(r["term"]), r["measure"]) in blank}


def _fill_blanks(est: pd.DataFrame, elsewhere: list[dict]) -> pd.DataFrame:
    """estimates.csv with its blank estimates filled from another output where that shows them (at its
    precision): the attacker combines everything published."""
    est = est.copy()
    found = {(r["section"], _same(r["group"]), _same(r["term"]), r["measure"]): r["estimate"] for r in elsewhere
             if r["estimate"] is not None}
    value = pd.to_numeric(est["estimate"], errors="coerce").to_numpy()
    for i, (k, v) in enumerate(zip(_keys(est), value, strict=True)):
        if not np.isfinite(v) and k in found:
            est.iloc[i, est.columns.get_loc("estimate")] = str(found[k])
    return est


def attack_report(folder: Path) -> dict:
    """Every "<5" of a report folder that the published numbers pin down, and every estimate estimates.csv
    withholds that another output shows or gives back: {where: value}."""
    rule = json.loads((folder / "estimates.json").read_text())
    reader = Reader(rule["small_cell_threshold"], rule.get("rounding", 0))
    html = (folder / "report.html").read_text(encoding="utf-8")
    t1 = html_table1(html)
    overall = read_table1(reader, *t1) if t1 else None
    analysed = read_flow(reader, html)
    if overall is not None and analysed is not None:  # Table 1 leaves out episodes without its by-column
        reader.at_most(overall, analysed)
    est = pd.read_csv(folder / "estimates.csv", dtype=str)
    read_estimates(reader, est, analysed)
    spec = json.loads((folder / "manifest.json").read_text())["spec"]
    for sec in spec.get("section", []):
        svg = folder / "figures" / f"{sec.get('id')}.svg"
        if sec.get("type") == "cumulative_incidence" and svg.exists():
            read_at_risk(reader, svg.read_text(encoding="utf-8"), sec["id"])
    assert reader.targets, "the report shows small counts for the attack to aim at"
    titles = report_titles(spec)
    terms = section_terms(est, (spec.get("report") or {}).get("labels"))
    e_values = [r for r in html_e_values(html, titles) if not r["term"]]   # by contrast; by term below
    grids = manuscript_grids(folder)
    contrasts = manuscript_contrasts(grids, titles)
    in_html, in_tables = html_terms(html, titles, terms), manuscript_terms(grids, titles, terms)
    leaks = {**shown_elsewhere(est, e_values, "HTML E-value table"),
             **shown_elsewhere(est, contrasts, "tables.docx/xlsx/tex"),
             **shown_elsewhere(est, in_html, "HTML, a model term"),
             **shown_elsewhere(est, in_tables, "tables.docx/xlsx/tex, a model table")}
    # the arm estimates the contrasts give back, with every published estimate (wherever shown) known
    everything = _fill_blanks(est, e_values + contrasts + in_html + in_tables)
    return {**reader.recovered(), **recovered_estimates(everything), **leaks}


# ---------------------------------------------------------------------------------------------------
# the bundled analyses at a small n
# ---------------------------------------------------------------------------------------------------
SMALL_N = {"tha_incidence": 400, "neurogenic": 400, "resection_recurrence": 400, "prophylaxis": 800}


def _run_small(name: str, n: int, folder: Path, rounding=None, edit=None) -> Path:
    """A bundled analysis run at ``n`` (with ``rounding``; ``edit``: a change of the spec's text)."""
    from hostats.analysis import load_spec, run_analysis
    from hostats.cli import _synthetic_prepare

    spec_dir = folder / "specs" / name
    spec_dir.mkdir(parents=True)
    text = (ROOT / "analyses" / name / "analysis.toml").read_text(encoding="utf-8")
    text = re.sub(r"\bn = \d+", f"n = {n}", text)
    text = edit(text) if edit is not None else text
    if rounding is not None:
        text = re.sub(r"(?m)^small_cell_threshold = \d+$", lambda m: f"{m.group(0)}\nrounding = {rounding}", text)
        assert f"rounding = {rounding}" in text
    (spec_dir / "analysis.toml").write_text(text, encoding="utf-8")
    spec = load_spec(spec_dir)
    prepare = _synthetic_prepare(spec)
    out = folder / name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # estimator warnings (positivity, ...) are not the point here
            run_analysis(spec, out, prepare=prepare)
    finally:
        if getattr(prepare, "workdir", None) is not None:
            shutil.rmtree(prepare.workdir, ignore_errors=True)
    return out


@pytest.fixture(scope="module")
def small_reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attack")
    return {name: _run_small(name, n, folder) for name, n in SMALL_N.items()}


@pytest.mark.parametrize("name", list(SMALL_N))
def test_no_small_count_recoverable_in_bundled_reports(small_reports, name):
    assert attack_report(small_reports[name]) == {}


@pytest.mark.parametrize("name", ["tha_incidence", "neurogenic"])
def test_no_small_count_recoverable_with_exact_counts(tmp_path, name):
    out = _run_small(name, SMALL_N[name], tmp_path, rounding=0)
    assert json.loads((out / "estimates.json").read_text())["rounding"] == 0
    assert attack_report(out) == {}


# ---------------------------------------------------------------------------------------------------
# targeted cases: the attack finds what a naive publication leaks, and nothing in the policy's output
# ---------------------------------------------------------------------------------------------------
def _effect_rows() -> pd.DataFrame:
    """An IPTW section: arm 'bis' has 2 events, 'none' 5; the contrast rows count both (7)."""
    rows = []
    for arm, (n_t, ev_t) in {"bis": (40, 2), "rt": (120, 30)}.items():
        g = f"{arm} vs none"
        rows += [{"section": "effect", "measure": "risk_treated", "group": g, "n": n_t, "events": ev_t},
                 {"section": "effect", "measure": "risk_control", "group": g, "n": 200, "events": 5},
                 {"section": "effect", "measure": "risk_difference", "group": g, "n": n_t + 200, "events": ev_t + 5},
                 {"section": "effect", "measure": "risk_ratio", "group": g, "n": n_t + 200, "events": ev_t + 5}]
    f = pd.DataFrame(rows)
    f["estimate"] = 0.1
    f["time_days"] = np.nan
    return f


def _naive(frame: pd.DataFrame, t: int = 5) -> pd.DataFrame:
    """Only the small counts replaced by "<5" (the publication of issue 13)."""
    out = frame.copy()
    for c in ("n", "events"):
        out[c] = [f"<{t}" if 1 <= v < t else str(v) for v in frame[c]]
    return out


def _attack_estimates(frame: pd.DataFrame, rounding, local_rounding: bool = True) -> dict:
    reader = Reader(5, rounding, local_rounding)
    read_estimates(reader, frame.astype({c: str for c in ("n", "events")}))
    return reader.recovered()


def test_contrast_rows_reveal_a_withheld_event_count_unless_protected():
    from hostats.report.disclosure import DisclosurePolicy

    frame = _effect_rows()
    assert set(_attack_estimates(_naive(frame), 0, False).values()) == {2}   # 7 - 5 = 2: the attack has teeth
    for rounding in (5, 0):
        shown = DisclosurePolicy(5, rounding).protect_estimates(frame)
        assert _attack_estimates(shown, rounding) == {}, shown
    exact = DisclosurePolicy(5, 0).protect_estimates(frame)
    # exact counts: the other event counts of the section are rounded (7 shows as 5), nothing is hidden
    assert exact.loc[exact["measure"] == "risk_difference", "events"].tolist() == [5, 35]
    assert "s" not in exact["events"].tolist()
    # bis's risk is withheld (2 events), and so are bis's difference and ratio, which would give it back
    assert exact["estimate"].notna().tolist() == [False, True, False, False, True, True, True, True]


def _withheld_risk_rows() -> pd.DataFrame:
    """An ate section: arm 'bis' has 3 events of 40 (risk 7.5%), 'none' 60 of 200 (30%); IPTW and g-formula
    rows, risks with their difference, ratio and odds ratio, and a crude block."""
    rows = []
    for suffix, prefix in (("", ""), ("_regression", ""), ("", "crude_")):
        for arm, (n_t, ev_t) in {"bis": (40, 3), "rt": (120, 30)}.items():
            g, r_t, r_c = f"{arm} vs none", ev_t / n_t, 0.3
            for measure, n, ev, est in (("risk_treated", n_t, ev_t, r_t), ("risk_control", 200, 60, r_c),
                                        ("risk_difference", n_t + 200, ev_t + 60, r_t - r_c),
                                        ("risk_ratio", n_t + 200, ev_t + 60, r_t / r_c),
                                        ("odds_ratio", n_t + 200, ev_t + 60, r_t / (1 - r_t) / (r_c / (1 - r_c)))):
                rows.append({"section": "effect", "measure": f"{prefix}{measure}{suffix}", "group": g, "n": n,
                             "events": ev, "estimate": est, "ci_lower": est * 0.8, "ci_upper": est * 1.2})
    for arm, (n, ev, rmtl) in {"none": (200, 60, 80.0), "bis": (40, 3, 20.0)}.items():
        rows.append({"section": "effect_rmtl", "measure": "rmtl", "group": arm, "n": n, "events": ev,
                     "estimate": rmtl, "ci_lower": rmtl - 5, "ci_upper": rmtl + 5})
    rows.append({"section": "effect_rmtl", "measure": "rmtl_difference", "group": "bis vs none", "n": 240,
                 "events": 63, "estimate": -60.0, "ci_lower": -70.0, "ci_upper": -50.0})
    return pd.DataFrame(rows).assign(time_days=np.nan)


def test_contrasts_do_not_give_back_a_withheld_arm_estimate():
    """A withheld risk is the other arm's risk plus the difference (or times the ratio): the contrasts of an
    arm whose estimate is withheld are withheld too, for every method, and the other arms keep theirs."""
    from hostats.report.disclosure import DisclosurePolicy

    frame = _withheld_risk_rows()
    naive = frame.assign(estimate=frame["estimate"].where(frame["events"] >= 5))   # only the small rows
    leaked = recovered_estimates(naive)
    assert leaked and set(np.round(list(leaked.values()), 6)) == {0.075, 20.0}   # the attack has teeth
    for rounding in (5, 0, "midpoint6"):
        shown = DisclosurePolicy(5, rounding).protect_estimates(frame)
        assert recovered_estimates(shown) == {}, shown
        assert _attack_estimates(shown, rounding) == {}
        bis = shown["group"].str.startswith("bis") & ~shown["measure"].str.contains("control")
        assert shown.loc[bis, "estimate"].isna().all()   # its risks, restricted mean and contrasts
        assert shown.loc[shown["measure"].str.contains("control"), "estimate"].notna().all()
        rt_contrasts = shown[shown["group"].eq("rt vs none") & shown["measure"].str.contains("ratio|difference")]
        assert rt_contrasts["estimate"].notna().all()


def test_shares_of_a_distribution_protected():
    from hostats.report.disclosure import DisclosurePolicy

    ev = {"hip": 31, "elbow": 7, "knee": 8, "shoulder": 2, "jaw": 0}
    frame = pd.DataFrame({"section": "joints", "measure": "share", "group": list(ev), "n": 48,
                          "events": list(ev.values()), "time_days": np.nan})
    frame["estimate"] = frame["events"] / 48
    assert set(_attack_estimates(_naive(frame).assign(estimate=lambda d: d["estimate"].where(
        d["events"] != "<5")), 0, False).values()) == {2}   # 48 - 31 - 7 - 8 - 0
    for rounding in (5, 0):
        shown = DisclosurePolicy(5, rounding).protect_estimates(frame)
        assert _attack_estimates(shown, rounding) == {}, shown


def test_sites_and_pooled_row_protected():
    from hostats.report.disclosure import DisclosurePolicy

    ev = [14, 1, 1, 11, 0, 12]
    frame = pd.DataFrame({"section": "pooled", "measure": "site_risk", "group": [f"S{i}" for i in range(6)],
                          "n": [60, 40, 30, 38, 28, 50], "events": ev, "time_days": np.nan, "estimate": 0.1})
    frame = pd.concat([frame, pd.DataFrame([{"section": "pooled", "measure": "pooled_risk", "group": "pooled",
                                             "n": 246, "events": sum(ev), "time_days": np.nan, "estimate": 0.1}])])
    assert set(_attack_estimates(_naive(frame), 0, False).values()) == {1}   # two "<5" adding up to 2
    for rounding in (5, 0):
        assert _attack_estimates(DisclosurePolicy(5, rounding).protect_estimates(frame), rounding) == {}


def _table1_attack(t: pd.DataFrame, rounding, local_rounding: bool = True) -> dict:
    reader = Reader(5, rounding, local_rounding)
    read_table1(reader, list(t.columns), t.astype(str).to_numpy().tolist())
    return reader.recovered()


def test_table1_small_missing_protected_without_hiding_large_cells():
    from hostats.report.disclosure import DisclosurePolicy
    from hostats.report.tables import table_one

    rng = np.random.default_rng(4)
    d = pd.DataFrame({"arm": np.repeat(["a", "b", "c"], [403, 298, 201]),
                      "sex": rng.choice(["female", "male"], 902).astype(object),
                      "prior_ho": pd.array(rng.random(902) < 0.1, dtype="boolean")})
    d.loc[[0, 1, 450, 800, 801, 802], "sex"] = None
    d.loc[[5, 6, 7], "prior_ho"] = pd.NA
    naive = table_one(d, ["sex"], by="arm", policy=DisclosurePolicy(5, 0))
    for policy in (DisclosurePolicy(5), DisclosurePolicy(5, 0)):
        t = table_one(d, ["sex", "prior_ho"], by="arm", policy=policy)
        assert _table1_attack(t, policy.rounding) == {}, t
        assert "s" not in t.to_numpy().ravel().tolist()
    # the attack has teeth: exact counts with only the small cells replaced leak every missing count
    exact = naive.copy()
    for col in exact.columns[2:]:
        grp = col.split(" (n=")[0]
        sub = d if grp == "Overall" else d[d["arm"] == grp]
        for i, lv in enumerate(exact["level"]):
            k = int(sub["sex"].isna().sum()) if lv == "missing" else int((sub["sex"] == lv).sum())
            exact.iloc[i, exact.columns.get_loc(col)] = "<5" if 1 <= k < 5 else str(k)
        exact = exact.rename(columns={col: f"{grp} (n={len(sub)})"})
    assert sorted(_table1_attack(exact, 0, False).values()) == [1, 2, 3]


def test_flow_chain_protected():
    from hostats.report.disclosure import DisclosurePolicy, use_policy
    from hostats.report.html import flow_boxes

    flow = pd.DataFrame({"step": ["read", "a", "b", "c"], "rows_in": [1000, 1000, 997, 967],
                         "rows_excluded": [0, 3, 30, 12], "rows_out": [1000, 997, 967, 955],
                         "rows_changed": 0, "reason": ""})
    for rounding in (5, 0):
        with use_policy(DisclosurePolicy(5, rounding)):
            boxes = flow_boxes(flow, 5)
        html = "".join(f'<div class="box {b["kind"]}">{b["label"]}<span class="count">{b["count"]}</span></div>'
                       for b in boxes)
        reader = Reader(5, rounding)
        read_flow(reader, html)
        assert reader.targets and reader.recovered() == {}, boxes
    naive = ('<div class="box main">Rows read<span class="count">1000</span></div>'
             '<div class="box side">a<span class="count">&lt;5</span></div>'
             '<div class="box main final">Analysed<span class="count">997</span></div>')
    reader = Reader(5, 0)
    read_flow(reader, naive)
    assert list(reader.recovered().values()) == [3]


def test_curves_show_no_small_event_count():
    """The steps of a curve count its events: a group's curve is drawn from its threshold-th event."""
    from hostats.report.figures import curve_plot

    t = np.arange(1, 21, dtype=float) * 15
    ev = np.ones(20)
    curve = pd.DataFrame({"group": "a", "time": t, "estimate": np.cumsum(ev) / 100, "ci_lower": np.cumsum(ev) / 120,
                          "ci_upper": np.cumsum(ev) / 80, "n_at_risk": 100 - np.arange(20), "n_events": ev})
    few = pd.DataFrame({"group": "b", "time": [30.0, 60.0, 90.0], "estimate": [0.01, 0.02, 0.03],
                        "ci_lower": 0.0, "ci_upper": 0.1, "n_at_risk": [90.0, 89.0, 88.0], "n_events": 1.0})
    fig = curve_plot(pd.concat([curve, few]), risk_times=[0, 100, 200, 300], threshold=5)
    drawn = {ln.get_label(): (np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float))
             for ln in fig.axes[0].lines}
    x, y = drawn["a"]
    assert x.min() == 75.0 and y.min() == pytest.approx(0.05)   # starts at the 5th event (day 75)
    xb, yb = drawn["b"]
    assert len(np.unique(yb)) <= 1 and not ((yb > 0) & (xb < 300)).any()   # 3 events: never drawn


# ---------------------------------------------------------------------------------------------------
# E-value tables and the tables for a manuscript: read by the attack, built from the published estimates
# ---------------------------------------------------------------------------------------------------
def _e_value_html(frame: pd.DataFrame, title: str = "Effect") -> str:
    """An E-value table as the report renders a sensitivity table."""
    return f"<h3>E-values: {title}</h3>\n<div class=\"scroll\">{frame.to_html(index=False)}</div>"


def test_attack_reads_the_e_value_tables():
    """An E-value table that shows the ratio of a contrast estimates.csv withholds is a leak (the ratio
    itself, and with the other arm's risk the withheld arm's risk); the section's E-value table built by
    hostats from the published estimates shows neither."""
    from hostats.analysis.context import EValueRequest, SectionOutput
    from hostats.analysis.sections.causal import e_value_table
    from hostats.report.disclosure import DisclosurePolicy

    frame = _withheld_risk_rows()
    shown = DisclosurePolicy(5, 5).protect_estimates(frame).assign(term="")
    est = shown.astype(str).replace({"None": "", "nan": ""})
    # naive: E-values of the unprotected ratios (as built before the disclosure decision)
    raw = frame[frame["section"].eq("effect") & frame["measure"].isin(["risk_ratio", "odds_ratio"])]
    naive = pd.DataFrame({"contrast": raw["group"], "measure": raw["measure"],
                          "estimate": [f"{v:.3f}" for v in raw["estimate"]]})
    found = html_e_values(_e_value_html(naive), {"Effect": "effect"})
    assert shown_elsewhere(est, found, "E-values") and recovered_estimates(_fill_blanks(est, found))  # teeth
    block = e_value_table(EValueRequest("effect", "E-values: Effect", "", by="contrast"), shown, SectionOutput())
    f = block.frame
    assert (f.loc[f["contrast"].eq("bis vs none"), ["estimate", "CI"]] == "withheld").all().all()
    assert f.loc[f["contrast"].eq("rt vs none"), "estimate"].ne("withheld").all()
    found = html_e_values(_e_value_html(f), {"Effect": "effect"})
    assert shown_elsewhere(est, found, "E-values") == {}
    assert recovered_estimates(_fill_blanks(est, found)) == {}


def test_attack_reads_the_manuscript_tables(tmp_path):
    """The prophylaxis report at n = 400 withholds an arm (fewer than 5 events) and its contrasts: the
    attack reads the HTML's E-value tables and the contrast tables of tables.docx/xlsx/tex (checked to hold
    the same estimates) and recovers nothing; a contrast table showing a withheld cell would be found."""
    folder = _run_small("prophylaxis", 400, tmp_path)
    est = pd.read_csv(folder / "estimates.csv", dtype=str)
    assert est["estimate"].isna().sum() > 0, "the test needs withheld estimates"
    assert attack_report(folder) == {}
    spec = json.loads((folder / "manifest.json").read_text())["spec"]
    titles = {sec.get("title", sec["id"]): sec["id"] for sec in spec["section"]}
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert any(r["estimate"] is None for r in html_e_values(html, titles)), "an E-value row withheld"
    grids = manuscript_grids(folder)
    shown = manuscript_contrasts(grids, titles)
    assert len(shown) > 20 and shown_elsewhere(est, shown, "tables") == {}
    # the same tables with the withheld cells filled in: every one of them is found
    leaky = {t: [[("12.3 (4.5 to 29.9)" if c == "—" else c) for c in r] for r in g] for t, g in grids.items()}
    filled = manuscript_contrasts(leaky, titles)
    found = shown_elsewhere(est, filled, "tables")
    assert len(found) >= 4 and len(found) == len(filled) - len(shown), found


# ---------------------------------------------------------------------------------------------------
# the model tables: ratios by model term, in the tables for a manuscript and in the HTML
# ---------------------------------------------------------------------------------------------------
FEW_EVENTS = '''
[[section]]
id = "few_events"
type = "logistic"
title = "HO after radiotherapy with an NSAID"
subset = "index_event == 'tha' and prophylaxis == 'radiotherapy_nsaid'"
formula = "ho_within_horizon ~ age_years + C(sex)"
e_values = true
'''
FEW_TITLE = "HO after radiotherapy with an NSAID"
PUT_BACK = "2.13 (0.71 to 6.40)"


@pytest.fixture(scope="module")
def withheld_model(tmp_path_factory) -> Path:
    """tha_incidence at n = 400 with a logistic section on a few patients (fewer than 5 events: its odds ratios
    withheld), with its E-values and in the summary at the top."""
    def edit(text: str) -> str:
        text, k = re.subn(r'(?m)^(headline = \[.*)\]$', r'\1, "few_events/odds_ratio"]', text)
        assert k == 1
        return text + FEW_EVENTS

    return _run_small("tha_incidence", 400, tmp_path_factory.mktemp("model"), edit=edit)


def _model_outputs(folder: Path) -> tuple[pd.DataFrame, dict, dict, str]:
    est = pd.read_csv(folder / "estimates.csv", dtype=str)
    spec = json.loads((folder / "manifest.json").read_text())["spec"]
    return est, report_titles(spec), section_terms(est), (folder / "report.html").read_text(encoding="utf-8")


def test_term_labels_read_back_to_terms():
    """The attacker's reading of a label against hostats' labelling of the same terms, the HTML's and the
    model tables' (a factor's level under its variable's heading)."""
    from hostats.report.labels import term_label

    terms = ["C(sex)[T.male]", "prior_ho[T.True]", "I(age_years / 10)", "age_years", "tbi_gcs_below_9",
             "C(prophylaxis)[T.radiotherapy_nsaid]", "C(index_event)[T.long_bone_fracture]", "rt_dose_gy",
             "C(rt_timing)[T.48-72 h]", "C(prophylaxis, Treatment('none'))[T.nsaid]"]
    est = pd.DataFrame({"section": "m", "group": "", "term": terms, "measure": "odds_ratio"})
    found = section_terms(est)
    assert [as_term(found, "m", term_label(t)) for t in terms] == terms
    assert as_term(found, "m", "male", "Sex male") == "C(sex)[T.male]"   # a level with its heading
    assert as_term(found, "m", "Age (years), per 10") == "I(age_years / 10)"
    assert as_term(found, "m", "Sex: male (ref. female)") == "C(sex)[T.male]"   # the HTML's, with its reference
    assert as_term(found, "m", "RT timing: 48-72 h (ref. within 48 h)") == "C(rt_timing)[T.48-72 h]"
    with pytest.raises(AssertionError, match="no single model term"):
        as_term(found, "m", "Weight (kg)")   # a row that is no term is an error, not a row left out
    labelled = section_terms(est, {"prior_ho": "Previous HO"})   # the spec's [report] labels
    assert as_term(labelled, "m", "Previous HO: yes") == "prior_ho[T.True]"


def test_attack_reads_the_model_tables(withheld_model):
    """Every ratio of a model term that the report shows (the model tables of tables.docx/xlsx/tex, and in
    the HTML the section's estimates, the summary at the top and the E-values) is read back to its row of
    estimates.csv; the odds ratios estimates.csv withholds are withheld in all of them."""
    folder = withheld_model
    est, titles, terms, html = _model_outputs(folder)
    few = est[est["section"].eq("few_events") & est["measure"].eq("odds_ratio")]
    assert len(few) == 2 and few["estimate"].isna().all(), "the test needs withheld odds ratios"
    assert attack_report(folder) == {}
    in_tables = manuscript_terms(manuscript_grids(folder), titles, terms)
    main = est[est["measure"].eq("odds_ratio") & est["section"].isin(["risk_factors", "few_events"])]
    assert sorted((r["section"], r["term"]) for r in in_tables) == sorted(zip(main["section"], main["term"],
                                                                              strict=True))
    assert [r["term"] for r in in_tables if r["estimate"] is None] == few["term"].tolist()
    in_html = [r for r in html_terms(html, titles, terms) if r["section"] == "few_events"]
    assert len(in_html) == 6 and all(r["estimate"] is None for r in in_html)   # table, summary, E-values


def _tamper(html: str, where: str) -> str:
    """The report's HTML with the withheld odds ratio of age in the few_events section put back in one place."""
    if where == "estimates":
        part = html.index(f"<h3>{FEW_TITLE}</h3>")
        head, tail = html[:part], html[part:]
        tail = re.sub(r"(<td>Odds ratio</td>\s*<td>Age \(years\)</td>\s*)<td></td>", r"\1<td>2.130</td>", tail,
                      count=1)
        return head + tail
    if where == "summary":
        row = re.search(rf"<tr><td>Odds ratio, Age \(years\)<div class=\"muted\">{FEW_TITLE}</div></td>"
                        r"<td class=\"value\">withheld \(small numbers\)</td></tr>", html)
        return html.replace(row.group(0), row.group(0).replace("withheld (small numbers)", PUT_BACK))
    part = html.index(f"<h3>E-values: {FEW_TITLE}</h3>")
    head, tail = html[:part], html[part:]
    return head + re.sub(r"(<td>Age \(years\)</td>\s*)<td>withheld</td>", r"\1<td>2.130</td>", tail, count=1)


def test_attack_finds_a_withheld_odds_ratio_put_back(withheld_model, tmp_path):
    """A withheld odds ratio shown in a model table of tables.docx/xlsx/tex, or in any place of the HTML that
    shows a term's odds ratio, is found and named by its row of estimates.csv."""
    folder = withheld_model
    est, titles, terms, html = _model_outputs(folder)
    grids = manuscript_grids(folder)
    title = next(t for t in grids if t.endswith(FEW_TITLE))
    leaky = {t: [[PUT_BACK if t == title and c == "—" else c for c in r] for r in g] for t, g in grids.items()}
    found = shown_elsewhere(est, manuscript_terms(leaky, titles, terms), "tables")
    assert found == {"few_events age_years odds_ratio (tables)": 2.13,
                     "few_events C(sex)[T.male] odds_ratio (tables)": 2.13}
    for where in ("estimates", "summary", "e-values"):
        tampered = _tamper(html, where)
        assert tampered != html, where
        copy = tmp_path / where
        shutil.copytree(folder, copy)
        (copy / "report.html").write_text(tampered, encoding="utf-8")
        assert attack_report(copy) == {"few_events age_years odds_ratio (HTML, a model term)": 2.13}, where
