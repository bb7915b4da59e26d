"""Report tables: Table 1 with missingness, estimate tables, and CSV exports safe against formula injection.

Disclosure control follows the one policy of :mod:`hostats.report.disclosure` (``[report]
small_cell_threshold`` and ``rounding``): counts of people and events are rounded (default: to the nearest
5) and counts from 1 to ``threshold - 1`` are shown as ``"<5"``; where a total would still reveal such a
count, a second cell is withheld ("s"). ``secondary_suppression`` is the classic cell suppression of an
exact table (Hundepool et al., *Statistical Disclosure Control*, Wiley 2012, ch. 4).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from hostats.report.disclosure import (
    PRIMARY_TEXT,
    SECONDARY_TEXT,
    DisclosurePolicy,
    policy_for,
    suppress_table,
)

PRIMARY = PRIMARY_TEXT
SECONDARY = SECONDARY_TEXT
SECONDARY_NOTE = ("s: not shown because, with the totals, it would reveal a count below the small-cell "
                  "threshold elsewhere in the same row or column")

# Columns of an estimates table that hold counts of people or events.
COUNT_COLUMNS = ("n", "events", "n_at_risk", "rows_in", "rows_excluded", "rows_out", "rows_changed")
# Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_small(values, threshold: int = 5) -> np.ndarray:
    """True where a count lies in 1..threshold-1 (zero is not disclosive; missing is not small)."""
    return DisclosurePolicy(threshold).is_small(values)


def format_count(value, threshold: int = 5) -> str:
    """A count as published: ``"<5"`` when it is small, ``""`` when missing, else the integer rounded as the
    report's policy says (see :func:`hostats.report.disclosure.use_policy`)."""
    return policy_for(threshold).format_count(value)


def format_counts(values, threshold: int = 5) -> list[str]:
    return [format_count(v, threshold) for v in values]


def secondary_suppression(counts: np.ndarray, threshold: int = 5, *, hidden: np.ndarray | None = None,
                          row_totals_shown: bool = True, col_totals_shown: bool = True) -> np.ndarray:
    """Which cells of an exact count table must not be shown, margins included (classic cell suppression).

    ``counts`` is an r x c table of non-negative counts; returns an ``(r+1) x (c+1)`` integer array (row
    totals last column, column totals last row): 0 shown, 1 primary (a count in 1..threshold-1, shown as
    "<5"), 2 secondary (shown as "s"), 3 hidden. See :func:`hostats.report.disclosure.suppress_table`;
    reports use :meth:`DisclosurePolicy.protect_table`, which rounds before it hides.
    """
    return suppress_table(counts, threshold, hidden=hidden, row_totals_shown=row_totals_shown,
                          col_totals_shown=col_totals_shown)


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

def _block_cells(counts: np.ndarray, hidden: np.ndarray, policy: DisclosurePolicy, grouped: bool,
                 denominators: np.ndarray) -> list[list[str]]:
    """Protect a (levels x groups) count block and render each row as "n (%)" cells incl. Overall.

    ``denominators``: the percentage base, per displayed column (1-D) or per row and column (2-D); the
    percentage is computed from the published (rounded) count and denominator.
    """
    state, base = policy.protect_table(counts, hidden, row_totals_shown=grouped, exact_col_totals=True)
    ext = np.column_stack([counts, counts.sum(axis=1)])
    if not grouped:  # the single column is the Overall column
        ext, state, base = ext[:, :1], state[:-1, :1], base[:-1, :1]
    else:
        state, base = state[:-1, :], base[:-1, :]
    out = []
    den = np.broadcast_to(np.asarray(denominators, dtype=float), ext.shape)
    for i in range(ext.shape[0]):
        out.append([_count_percent(policy.format_count(v, b), policy.percent(v, d, b, b)) if st == 0
                    else policy.render(v, st, b)
                    for v, st, b, d in zip(ext[i], state[i], base[i], den[i], strict=True)])
    return out


def _count_percent(count: str, percent: str) -> str:
    """"n (%)", or the count alone where there is no percentage (no non-missing value in the column: a
    percentage of nothing is undefined, and "0 ()" read as a broken cell)."""
    return f"{count} ({percent})" if percent else count


def table_one(data: pd.DataFrame, variables: Sequence[str], by: str | None = None, *,
              threshold: int = 5, smd: pd.Series | dict | None = None,
              labels: dict[str, str] | None = None, policy: DisclosurePolicy | None = None) -> pd.DataFrame:
    """Table 1: baseline characteristics by group with missingness, small cells suppressed.

    Categorical and yes/no variables are shown as n (%) of the non-missing values in each column
    (yes/no variables as their "yes" row only); numeric variables as mean (SD) and median [IQR]. Every
    variable has a "missing" row with n (%). Counts follow ``policy`` (default: the report's, else
    rounding to 5 with ``threshold``): rounded counts, percentages from rounded counts, counts in
    1..threshold-1 as "<5" (without a percentage), and a further cell withheld ("s") only where the column
    n and the "Overall" column would still reveal a small count. With exact counts (``rounding = 0``) a
    block holding a small count is rounded to the threshold instead of having large cells hidden.
    Numeric summaries of fewer than ``threshold`` values are not shown ("—").

    Returns a DataFrame of strings: ``variable, level``, one column per group (header ``"<group> (n=..)"``),
    ``Overall (n=..)``, and ``SMD`` when ``smd`` (a mapping variable or (variable, level) -> standardised
    mean difference, e.g. from ``hostats.iptw``'s balance) is given.
    """
    policy = policy_for(threshold, policy)
    threshold = policy.threshold
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
    if grouped:  # the group sizes add up to the Overall n (the number analysed, shown elsewhere as well)
        st, bs = policy.protect_table(n_cols[None, :-1], col_totals_shown=False, exact_row_totals=True)
        head_state, head_base = st[0], bs[0]
    else:
        head_state = np.array([1 if policy.shows_small() and 1 <= n_cols[0] < threshold else 0])
        head_base = np.array([policy.base])
    headers = [f"{nm} (n={policy.render(n, st, b)})"
               for nm, n, st, b in zip(names + ["Overall"], n_cols, head_state, head_base, strict=True)]
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
            cells = _block_cells(counts, hidden, policy, grouped, den)
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
            cells = _block_cells(counts, hidden, policy, grouped, n_cols)
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


def suppress_estimates(frame: pd.DataFrame, threshold: int = 5, policy: DisclosurePolicy | None = None
                       ) -> pd.DataFrame:
    """Apply disclosure control to a tidy estimates frame (for every export: HTML, CSV, JSON).

    Counts (``n``, ``events``) take their published form (rounded, ``"<5"``, or ``"s"`` where a sum of
    groups -- a contrast row, a pooled row, the section's total -- would reveal a small count); the
    estimate and CI of a row resting on a small count are withheld too, with the reason in ``note``. See
    :meth:`hostats.report.disclosure.DisclosurePolicy.protect_estimates`. Returns a copy.
    """
    return policy_for(threshold, policy).protect_estimates(frame)


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


def format_p(p: float | None) -> str:
    """A p-value as journals print it: ``<0.001``, otherwise three decimals; empty when there is none (also
    ``hostats.report.publication.format_p_value``)."""
    if p is None or (isinstance(p, float) and not np.isfinite(p)) or pd.isna(p):
        return ""
    p = float(p)
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def estimates_display(published: pd.DataFrame, show_truth: bool = False) -> pd.DataFrame:
    """Published estimates (after :func:`suppress_estimates`, the one decision of what is withheld: the rows
    of estimates.csv) formatted for reading: estimate (CI), p, n, events, truth. Nothing is decided here: a
    withheld estimate is blank and the counts are shown as published."""
    f = published
    lab = (f.get("group", pd.Series([""] * len(f), index=f.index)).fillna("").astype(str)
           .where(lambda s: s != "", f.get("term", pd.Series([""] * len(f), index=f.index)).fillna("").astype(str)))
    from hostats.report.publication import estimate_parts

    # an estimate and its CI with the same decimals (the report's one rule); an estimate without a CI as before
    parts = [estimate_parts(e, lo, hi, 3) if lo is not None and not pd.isna(lo) else (format_number(e), "")
             for e, lo, hi in zip(f["estimate"], f["ci_lower"], f["ci_upper"], strict=True)]
    est = [e for e, _ in parts]
    ci = [c for _, c in parts]
    lvl = f["ci_level"] if "ci_level" in f.columns else pd.Series([0.95] * len(f))
    out = pd.DataFrame({
        "measure": f["measure"].fillna("").astype(str).to_numpy(),
        "group / term": lab.to_numpy(),
        "estimate": est,
        "CI": [f"{c}" for c in ci],
        "level": [f"{100 * float(v):.0f}%" if v is not None and not pd.isna(v) else "" for v in lvl],
        "p": [format_p(p) for p in f["p_value"]] if "p_value" in f.columns else "",
        "n": [_published_count(c) for c in f["n"]] if "n" in f.columns else "",
        "events": [_published_count(c) for c in f["events"]] if "events" in f.columns else "",
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


def _published_count(value) -> str:
    """A count of the published estimates as text: "<5" and "s" as they are, a number as its integer."""
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    return str(int(round(float(value))))


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
# a whole number standing alone (not part of a decimal, a version, a date, a range, a name or "<5")
_INT_TEXT = re.compile(r"(?<![\w.,/\-<>≤≥])(\d{1,3}(?:,\d{3})+|\d+)(?![\w.%/\-]|,\d)")
# what a count counts: a number followed by one of these (a few words may stand between) is a count of people
_COUNT_NOUN = re.compile(r"\s+(?:[A-Za-z\-]+\s+){0,4}?(?:rows?|episodes?|patients?|people|persons?|records?|"
                         r"events?|cells?|values?|dates?|duplicates?|observations?|subjects?|cases?|deaths?|"
                         r"participants?|individuals?)(?:\(s\))?(?![\w(])", re.I)
# a number that labels (grade 1, Brooker 1, version 2, row 1, before 1900) rather than counts
_LABEL_BEFORE = re.compile(r"(?:\b(?:grade|brooker|class|stage|type|version|step|row|line|column|page|day|week|"
                           r"month|year|level|seed|site|section|table|figure|item|criterion|df|at|before|after|"
                           r"since|until|horizon|number|no\.)s?|#)\s*[:=]?\s*(?:\d+\s*(?:,|or|and|to)\s*)*$", re.I)
# a number with a unit, or counting something other than people (1 year, 48 h, 3 sites, 25 iterations)
_UNIT_AFTER = re.compile(r"\s*(?:years?|yrs?|months?|weeks?|days?|d|hours?|h|minutes?|min|seconds?|Gy|cGy|mg|kg|"
                         r"g|cm|mm|ml|%|percent|iterations?|replicates?|bootstraps?|sites?|columns?|terms?|knots?|"
                         r"parameters?|levels?|categor(?:y|ies)|decimals?|digits?|times|steps?|arms?|groups?|"
                         r"models?|files?|sheets?|degrees?|SDs?|st|nd|rd|th)\b", re.I)


def _is_count(text: str, m: re.Match) -> bool:
    """Whether the number ``m`` in ``text`` counts people (rows, episodes, events): a count noun after it says
    so; a label before it ("grade", "Brooker", "version", "before") or a unit or another noun after it ("year",
    "h", "Gy", "sites") says not; a number with neither is taken as a count (a missed count would leak)."""
    after = text[m.end():]
    if _COUNT_NOUN.match(after):
        return True
    return not (_LABEL_BEFORE.search(text[:m.start()]) or _UNIT_AFTER.match(after))


def redact_text(text: str, threshold: int = 5, policy: DisclosurePolicy | None = None) -> str:
    """Free text for a report (ledger reasons, flow-diagram notes, estimator warnings): exact dates become
    "[date]" and counts of people are published as the tables publish them (rounded to the policy's base,
    1 to threshold-1 as "<5"); numbers that are not counts ("grade 1", "1 year", "Brooker 1", "48 h",
    "version 1.2.1") stay as they are. Repeated clauses are dropped."""
    pol = policy_for(threshold, policy)
    text = _ISO_DATE_TEXT.sub("[date]", str(text))

    def publish(m: re.Match) -> str:
        if not _is_count(text, m):
            return m.group(0)
        value = int(m.group(1).replace(",", ""))
        shown = pol.format_count(value)
        if "," in m.group(1) and shown.isdigit():
            shown = f"{int(shown):,}"
        return shown

    text = _INT_TEXT.sub(publish, text)
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
