"""Report tables: small-cell suppression (primary and secondary), Table 1 with missingness, estimate
tables, and CSV exports safe against formula injection.

Disclosure rules (DESIGN.md, "Rules of the house"): a count from 1 to ``threshold - 1`` is never shown; it
is printed as ``"<5"`` (for the default threshold 5). Where a shown total would let a reader recover a
suppressed cell by subtraction, a second cell of the same row or column is suppressed as well
("secondary suppression", shown as ``"s"``). The method is the usual cell-suppression heuristic of
statistical agencies: repeat until no line (row or column with its total) has exactly one unknown
sensitive entry; see Hundepool et al., *Statistical Disclosure Control*, Wiley 2012, ch. 4.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

PRIMARY = "<{t}"
SECONDARY = "s"
SECONDARY_NOTE = ("s: not shown because, with the totals, it would reveal a count below the small-cell "
                  "threshold elsewhere in the same row or column")

# Columns of an estimates table that hold counts of people or events.
COUNT_COLUMNS = ("n", "events", "n_at_risk", "rows_in", "rows_excluded", "rows_out", "rows_changed")
# Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_small(values, threshold: int = 5) -> np.ndarray:
    """True where a count lies in 1..threshold-1 (zero is not disclosive; missing is not small)."""
    v = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(float)
    with np.errstate(invalid="ignore"):
        return (v >= 1) & (v < threshold)


def format_count(value, threshold: int = 5) -> str:
    """A count as text: ``"<5"`` when it is small, ``""`` when missing, else the integer."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or pd.isna(value):
        return ""
    v = float(value)
    if 1 <= v < threshold:
        return PRIMARY.format(t=threshold)
    return f"{int(round(v)):d}"


def format_counts(values, threshold: int = 5) -> list[str]:
    return [format_count(v, threshold) for v in values]


def secondary_suppression(counts: np.ndarray, threshold: int = 5, *, hidden: np.ndarray | None = None,
                          row_totals_shown: bool = True, col_totals_shown: bool = True) -> np.ndarray:
    """Which cells of a count table must not be shown, margins included.

    ``counts`` is an r x c table of non-negative counts; the function appends row totals, column totals
    and the grand total (as a reader would see them) and returns an ``(r+1) x (c+1)`` integer array:
    0 shown, 1 primary (a count in 1..threshold-1, shown as "<5"), 2 secondary (shown as "s"), 3 hidden
    (never displayed, e.g. the "no" level of a yes/no variable, or a total the table does not show).

    A line (a row or a column with its total) whose entries are all known except one reveals that one by
    subtraction. When that one is sensitive, the smallest other shown cell of the line is suppressed too;
    when it is merely hidden, it becomes known (derivable) and may in turn reveal others. Repeats until no
    line reveals a sensitive cell. Hidden cells holding a small count are sensitive as well. A final exact
    check (linear algebra over all line equations together) adds suppressions until no sensitive cell
    can be recovered by any combination of rows and columns.
    """
    m = np.asarray(counts, dtype=float)
    if m.ndim != 2:
        raise ValueError("counts must be a two-dimensional table")
    if np.any(m < 0) or np.any(~np.isfinite(m)):
        raise ValueError("counts must be finite and non-negative")
    r, c = m.shape
    ext = np.zeros((r + 1, c + 1))
    ext[:r, :c] = m
    ext[:r, c] = m.sum(axis=1)
    ext[r, :c] = m.sum(axis=0)
    ext[r, c] = m.sum()
    state = np.zeros(ext.shape, dtype=int)
    hid = np.zeros(ext.shape, dtype=bool)
    if hidden is not None:
        hid[:r, :c] = np.asarray(hidden, dtype=bool)
    if not row_totals_shown:
        hid[:, c] = True
    if not col_totals_shown:
        hid[r, :] = True
    sensitive = (ext >= 1) & (ext < threshold)
    state[sensitive] = 1
    state[hid & ~sensitive] = 3
    # "unknown" to a reader: suppressed or hidden and not yet derivable
    unknown = state > 0
    lines = [("row", i) for i in range(r + 1)] + [("col", j) for j in range(c + 1)]
    changed = True
    while changed:
        changed = False
        for kind, k in lines:  # a loop over the lines of a small table, not over patients
            idx = [(k, j) for j in range(c + 1)] if kind == "row" else [(i, k) for i in range(r + 1)]
            unk = [p for p in idx if unknown[p]]
            if len(unk) != 1:
                continue
            p = unk[0]
            if state[p] == 3 and not sensitive[p]:
                unknown[p] = False  # derivable, and harmless to know
                changed = True
                continue
            # protect p: suppress the smallest shown cell of the line (prefer inner cells, then non-zero)
            cands = [q for q in idx if not unknown[q] and state[q] == 0]
            if not cands:
                continue
            total_pos = idx[-1]
            cands.sort(key=lambda q: (q == total_pos, ext[q] == 0, ext[q]))
            q = cands[0]
            state[q] = 2
            unknown[q] = True
            changed = True
    # The line rule misses disclosures that need several lines at once (e.g. two column totals whose sum
    # a shown row total gives). Exact check: a cell is recoverable iff its unit vector lies in the row
    # space of the line equations restricted to the unknown cells; suppress more until none is.
    while True:
        det = [p for p in _recoverable(state > 0) if sensitive[p]]
        if not det:
            return state
        i, j = det[0]
        line = [(i, k) for k in range(c + 1)] + [(k, j) for k in range(r + 1)]
        pool = [q for q in line if state[q] == 0] or [tuple(q) for q in np.argwhere(state == 0)]
        if not pool:
            return state
        pool.sort(key=lambda q: (q[0] == r or q[1] == c, ext[q] == 0, ext[q]))
        state[pool[0]] = 2


def _recoverable(unknown: np.ndarray) -> list[tuple[int, int]]:
    """Unknown cells of an (r+1) x (c+1) table with margins that the line equations determine."""
    cells = [tuple(p) for p in np.argwhere(unknown)]
    if not cells:
        return []
    pos = {p: k for k, p in enumerate(cells)}
    rows_, cols_ = unknown.shape
    eqs = []
    for i in range(rows_):      # sum of the inner entries of row i minus its total = 0
        v = np.zeros(len(cells))
        for j in range(cols_):
            if (i, j) in pos:
                v[pos[(i, j)]] = -1.0 if j == cols_ - 1 else 1.0
        eqs.append(v)
    for j in range(cols_):
        v = np.zeros(len(cells))
        for i in range(rows_):
            if (i, j) in pos:
                v[pos[(i, j)]] = -1.0 if i == rows_ - 1 else 1.0
        eqs.append(v)
    a = np.array(eqs)
    # null space of a: x_k is determined iff every null-space vector has a zero k-th component
    _, sv, vt = np.linalg.svd(a)
    rank = int(np.sum(sv > 1e-9 * max(1.0, sv.max() if sv.size else 1.0)))
    null = vt[rank:]
    if null.shape[0] == 0:
        return cells
    return [p for p in cells if np.all(np.abs(null[:, pos[p]]) < 1e-9)]


def render_cell(value, state: int, threshold: int = 5, fmt=None) -> str:
    """Text of one count cell given its suppression state (see ``secondary_suppression``)."""
    if state == 1:
        return PRIMARY.format(t=threshold)
    if state == 2:
        return SECONDARY
    if state == 3:
        return ""
    return fmt(value) if fmt else format_count(value, threshold)


# --------------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------------

def _pct(num: float, den: float) -> str:
    return f"{100.0 * num / den:.1f}%" if den > 0 else ""


def _block_cells(counts: np.ndarray, hidden: np.ndarray, threshold: int, grouped: bool,
                 denominators: np.ndarray) -> list[list[str]]:
    """Suppress a (levels x groups) count block and render each row as "n (%)" cells incl. Overall.

    ``denominators``: the percentage base, per displayed column (1-D) or per row and column (2-D).
    """
    state = secondary_suppression(counts, threshold, hidden=hidden, row_totals_shown=grouped)
    ext = np.column_stack([counts, counts.sum(axis=1)])
    if not grouped:  # the single column is the Overall column
        ext, state = ext[:, :1], state[:-1, :1]
    else:
        state = state[:-1, :]
    out = []
    den = np.broadcast_to(np.asarray(denominators, dtype=float), ext.shape)
    for i in range(ext.shape[0]):
        out.append([f"{int(v)} ({_pct(v, d)})" if st == 0 else render_cell(v, st, threshold)
                    for v, st, d in zip(ext[i], state[i], den[i], strict=True)])
    return out


def table_one(data: pd.DataFrame, variables: Sequence[str], by: str | None = None, *,
              threshold: int = 5, smd: pd.Series | dict | None = None,
              labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Table 1: baseline characteristics by group with missingness, small cells suppressed.

    Categorical and yes/no variables are shown as n (%) of the non-missing values in each column
    (yes/no variables as their "yes" row only); numeric variables as mean (SD) and median [IQR]. Every
    variable has a "missing" row with n (%). Counts in 1..threshold-1 are shown as "<5" (without a
    percentage); secondary suppression ("s") protects them against subtraction from the column n and
    the "Overall" column. Numeric summaries of fewer than ``threshold`` values are not shown ("—").

    Returns a DataFrame of strings: ``variable, level``, one column per group (header ``"<group> (n=..)"``),
    ``Overall (n=..)``, and ``SMD`` when ``smd`` (a mapping variable or (variable, level) -> standardised
    mean difference, e.g. from ``hostats.iptw``'s balance) is given.
    """
    missing_cols = [v for v in variables if v not in data.columns]
    if missing_cols:
        raise ValueError(f"Table 1: column(s) not in the data: {', '.join(missing_cols)}")
    labels = labels or {}
    masks: list[np.ndarray] = []
    names: list[str] = []
    if by is not None:
        g = data[by]
        present = set(g.dropna().unique())
        if isinstance(g.dtype, pd.CategoricalDtype):
            groups = [x for x in g.cat.categories if x in present]
        else:
            groups = sorted(present, key=str)
        gv = g.to_numpy(dtype=object)
        masks = [gv == x for x in groups]
        names = [str(x) for x in groups]
    grouped = bool(masks)
    col_masks = masks if grouped else [np.ones(len(data), dtype=bool)]
    n_cols = np.array([m.sum() for m in col_masks] + ([sum(m.sum() for m in masks)] if grouped else []),
                      dtype=float)
    if grouped:  # the group sizes add up to the Overall n: protect a small group against subtraction
        head_state = secondary_suppression(n_cols[None, :-1], threshold, col_totals_shown=False)[0]
    else:
        head_state = np.array([1 if 1 <= n_cols[0] < threshold else 0])
    headers = [f"{nm} (n={render_cell(n, st, threshold)})"
               for nm, n, st in zip(names + ["Overall"], n_cols, head_state, strict=True)]
    with_smd = smd is not None
    smd_map = dict(smd) if smd is not None else {}
    rows: list[list[str]] = []

    def counts_of(flags: np.ndarray) -> list[float]:
        return [float(np.sum(flags & cm)) for cm in col_masks]

    for var in variables:
        s = data[var]
        label = labels.get(var, var)
        is_bool = pd.api.types.is_bool_dtype(s.dtype) or str(s.dtype) == "boolean"
        is_cat = (isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object
                  or pd.api.types.is_string_dtype(s.dtype))
        miss = s.isna().to_numpy()
        if is_bool or is_cat:
            if is_bool:
                levels, display = [True, False], [True]
            elif isinstance(s.dtype, pd.CategoricalDtype):
                present = set(s.dropna().unique())
                levels = [x for x in s.cat.categories if x in present]
                display = levels
            else:
                levels = sorted(set(s.dropna().unique()), key=str)
                display = levels
            counts = np.array([counts_of(_equals(s, lv) & ~miss) for lv in levels] + [counts_of(miss)])
            hidden = np.zeros(counts.shape, dtype=bool)
            for i, lv in enumerate(levels):
                hidden[i, :] = lv not in display
            nonmiss = np.append(counts[:-1].sum(axis=0), counts[:-1].sum()) if grouped else counts[:-1].sum(axis=0)
            # levels as % of the non-missing values; the missing row as % of all rows in the column
            den = np.vstack([np.tile(nonmiss, (len(levels), 1)), n_cols[None, :]])
            cells = _block_cells(counts, hidden, threshold, grouped, den)
            for i, lv in enumerate(levels):
                if lv in display:
                    rows.append([label, "yes" if is_bool else str(lv)] + cells[i]
                                + ([_fmt_smd(smd_map, var, lv)] if with_smd else []))
            rows.append([label, "missing"] + cells[-1] + ([""] if with_smd else []))
        elif pd.api.types.is_numeric_dtype(s.dtype):
            x = pd.to_numeric(s, errors="coerce").astype(float).to_numpy()
            miss = ~np.isfinite(x)
            mean_cells, med_cells = [], []
            for cm in col_masks + ([np.any(masks, axis=0)] if grouped else []):
                xv = x[cm & ~miss]
                if len(xv) < threshold:
                    mean_cells.append("—")
                    med_cells.append("—")
                else:
                    q1, q2, q3 = np.percentile(xv, [25, 50, 75])
                    mean_cells.append(f"{xv.mean():.1f} ({xv.std(ddof=1):.1f})")
                    med_cells.append(f"{q2:.1f} [{q1:.1f}, {q3:.1f}]")
            rows.append([label, "mean (SD)"] + mean_cells + ([_fmt_smd(smd_map, var, None)] if with_smd else []))
            rows.append([label, "median [IQR]"] + med_cells + ([""] if with_smd else []))
            counts = np.array([counts_of(miss), counts_of(~miss)])
            hidden = np.array([[False] * counts.shape[1], [True] * counts.shape[1]])
            cells = _block_cells(counts, hidden, threshold, grouped, n_cols)
            rows.append([label, "missing"] + cells[0] + ([""] if with_smd else []))
        else:
            raise ValueError(f"Table 1: column {var!r} has type {s.dtype} which Table 1 cannot summarise")
    columns = ["variable", "level"] + (headers if grouped else [headers[-1]]) + (["SMD"] if with_smd else [])
    return pd.DataFrame(rows, columns=columns)


def _equals(s: pd.Series, value) -> np.ndarray:
    """Elementwise ``s == value`` as a plain bool array (missing -> False; works for nullable dtypes)."""
    return pd.Series(s == value, index=s.index).fillna(False).to_numpy(dtype=bool)


def _fmt_smd(smd_map: dict | None, var: str, level) -> str:
    if not smd_map:
        return ""
    for key in ((var, level), f"{var}[{level}]", f"{var}_{level}", f"{var}:{level}", var):
        if key in smd_map and smd_map[key] is not None and np.isfinite(smd_map[key]):
            return f"{float(smd_map[key]):.3f}"
    return ""


# --------------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------------

ESTIMATE_COLUMNS = ("analysis", "section", "measure", "group", "term", "estimate", "ci_lower", "ci_upper",
                    "ci_level", "p_value", "n", "events", "unit", "truth", "method")


def suppress_estimates(frame: pd.DataFrame, threshold: int = 5) -> pd.DataFrame:
    """Apply disclosure control to a tidy estimates frame (for every export: HTML, CSV, JSON).

    Counts (``n``, ``events``) in 1..threshold-1 become the string ``"<5"``; the estimate and its CI on
    such a row are withheld too (a proportion with its n reveals the count), with the reason in
    ``note``. Returns a copy; numeric columns of unaffected rows keep their values.
    """
    out = frame.copy()
    if out.empty:
        return out
    small = np.zeros(len(out), dtype=bool)
    for col in ("n", "events"):
        if col in out.columns:
            small |= is_small(out[col], threshold)
    for col in ("n", "events"):
        if col in out.columns:
            flag = is_small(out[col], threshold)
            out[col] = out[col].astype(object)
            out.loc[flag, col] = PRIMARY.format(t=threshold)
    # groups of one section (at one time) add up to that section's total, which other parts of the report
    # show: when one group's n is small, the smallest other n of the block is withheld too ("s")
    if "n" in out.columns and "group" in out.columns:
        keys = [c for c in ("section", "measure", "time_days") if c in out.columns]
        nums = pd.to_numeric(frame["n"], errors="coerce")
        for _, idx in out.groupby(keys, dropna=False, sort=False).groups.items() if keys else []:
            block = nums.loc[idx]
            if len(block) < 2 or out.loc[idx, "group"].nunique() < len(block):
                continue
            flag = is_small(block, threshold)
            if flag.sum() == 1:
                others = block[~flag & (block >= threshold)]
                if len(others):
                    out.loc[others.idxmin(), "n"] = SECONDARY
    if small.any():
        for col in ("estimate", "ci_lower", "ci_upper", "p_value"):
            if col in out.columns:
                out[col] = out[col].astype(object)
                out.loc[small, col] = None
        note = f"withheld: based on fewer than {threshold} people or events"
        if "note" in out.columns:
            out["note"] = out["note"].astype(object)
            out.loc[small, "note"] = note
        else:
            out["note"] = np.where(small, note, "")
    return out


def format_number(x, digits: int = 3) -> str:
    """Compact numeric text for tables: 3 significant decimals, p-values as <0.001."""
    if x is None or (isinstance(x, str) and not x):
        return ""
    if isinstance(x, str):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(v):
        return "∞" if v > 0 else ("-∞" if v < 0 else "")
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.{digits}g}"
    return f"{v:.{digits}f}"


def format_p(p) -> str:
    if p is None or (isinstance(p, float) and not np.isfinite(p)) or pd.isna(p):
        return ""
    p = float(p)
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def estimates_display(frame: pd.DataFrame, threshold: int = 5, show_truth: bool = False) -> pd.DataFrame:
    """A suppressed estimates frame formatted for reading: estimate (CI), p, n, events, truth."""
    f = suppress_estimates(frame, threshold) if "note" not in frame.columns else frame
    lab = (f.get("group", pd.Series([""] * len(f), index=f.index)).fillna("").astype(str)
           .where(lambda s: s != "", f.get("term", pd.Series([""] * len(f), index=f.index)).fillna("").astype(str)))
    est = [format_number(e) for e in f["estimate"]]
    ci = [f"{format_number(lo)} to {format_number(hi)}" if lo is not None and not pd.isna(lo) else ""
          for lo, hi in zip(f["ci_lower"], f["ci_upper"], strict=True)]
    lvl = f["ci_level"] if "ci_level" in f.columns else pd.Series([0.95] * len(f))
    out = pd.DataFrame({
        "measure": f["measure"].fillna("").astype(str).to_numpy(),
        "group / term": lab.to_numpy(),
        "estimate": est,
        "CI": [f"{c}" for c in ci],
        "level": [f"{100 * float(v):.0f}%" if v is not None and not pd.isna(v) else "" for v in lvl],
        "p": [format_p(p) for p in f["p_value"]] if "p_value" in f.columns else "",
        "n": [c if isinstance(c, str) else format_count(c, threshold) for c in f["n"]] if "n" in f.columns else "",
        "events": ([c if isinstance(c, str) else format_count(c, threshold) for c in f["events"]]
                   if "events" in f.columns else ""),
        "unit": f["unit"].fillna("").astype(str).to_numpy() if "unit" in f.columns else "",
    })
    if "time_days" in f.columns and f["time_days"].notna().any():
        out.insert(2, "at day", [format_number(t, 0) if t is not None and not pd.isna(t) else ""
                                 for t in f["time_days"]])
    if show_truth and "truth" in f.columns:
        out["truth"] = [format_number(t) for t in f["truth"]]
    if "note" in f.columns and f["note"].astype(str).str.len().gt(0).any():
        out["note"] = f["note"].fillna("").astype(str).to_numpy()
    return out


# --------------------------------------------------------------------------------------------------
# CSV export
# --------------------------------------------------------------------------------------------------

def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula (=, +, -, @, tab, CR) with ``'``.

    Numbers stay numbers (a negative log-odds is data, not a formula); only text cells (including column
    names) are changed. OWASP, "CSV Injection".
    """
    out = frame.copy()

    def fix(v):
        if isinstance(v, str) and v.startswith(_FORMULA_START):
            return "'" + v
        return v

    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]) or \
                isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).map(fix)
    out.columns = [fix(str(c)) for c in out.columns]
    return out


_ISO_DATE_TEXT = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?\b")
_SMALL_INT_TEXT = re.compile(r"(?<![\w.,/\-])(\d+)(?![\w.%/\-]|,\d)")


def redact_text(text: str, threshold: int = 5) -> str:
    """Free text for a report (ledger reasons, estimator warnings): exact dates become "[date]" and stand-
    alone whole numbers from 1 to threshold-1 (counts) become "<5"; repeated clauses are dropped."""
    text = _ISO_DATE_TEXT.sub("[date]", str(text))
    text = _SMALL_INT_TEXT.sub(lambda m: PRIMARY.format(t=threshold) if 1 <= int(m.group(1)) < threshold
                               else m.group(1), text)
    parts = text.split("; ")
    return "; ".join(dict.fromkeys(parts))


def write_csv(frame: pd.DataFrame, path) -> None:
    """Write a frame as UTF-8 CSV with formula-injection neutralised."""
    neutralise_formulas(frame).to_csv(path, index=False, lineterminator="\n")


def check_no_identifiers(frames: Iterable[pd.DataFrame], forbidden: Iterable[str]) -> None:
    """Raise if any identifying column name appears in a frame meant for output (defence in depth)."""
    forbidden = set(forbidden)
    for f in frames:
        bad = forbidden & {str(c) for c in f.columns}
        if bad:
            raise ValueError(f"identifying column(s) {sorted(bad)} must never be written to a report")
