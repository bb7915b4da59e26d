"""The cleaning rules of the out-of-core road: a documented subset of :mod:`hostats.clean`, written once as
a plan and carried out twice, by SQL (DuckDB) and by pandas on one partition (the pandas and Dask engines).

Each engine turns its rows into the same *raw groups* table: one row per (excluded, by-values...,
time_days, status) with the number of rows and, per rule, how many of them the rule changed. Summing it
over partitions (or files, or workers) loses nothing, so every engine gives the same numbers.

Rules, in the order of :mod:`hostats.clean` (same step names in the ledger), applied to the columns read
(the required columns, ``ho`` and the outcome dates, and the ``by`` columns):

- text: leading/trailing spaces dropped; empty or a missing-value token (``NA``, ``unknown``, ...) is missing;
- unreadable values (text files): a number, ISO date (``YYYY-MM-DD``, a time part ignored) or yes/no that
  cannot be read is set missing;
- code lists: a category value (lower case) not in the schema's code list is set missing;
- future dates: a date after ``today`` or before 1900 is set missing;
- plausible ranges: a number outside the schema's range (age 0-110, ...) is set missing;
- required values: a row without patient_id, index_event or index_date is excluded;
- the date rules: ho_date, death_date, last_followup_date before index_date; ho_date after death_date;
  last follow-up after death; ho_date after last contact; ho from ho_date; ho_date without ho;
- derived as :func:`hostats.clean.derive_outcomes`: status (1 HO, 2 death before HO, 0 censored; missing
  when ho is) and time_days.

Not applied out of core (they need all rows of a patient together, or a human): exact and conflicting
duplicates, synonyms and misspelt codes (``"THR"`` for ``tha``), dialects (decimal commas, day-first
dates, cGy), the consistency rules of other columns (Brooker grade, dose, NSAID agent), and the imaging
interval bounds. Use :func:`hostats.read_cohort` on an extract for those.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hostats.clean import EARLIEST_DATE, FALSE_TOKENS, MISSING_TOKENS, TRUE_TOKENS
from hostats.errors import DataError
from hostats.schema import CODE_LISTS, COLUMNS, EPISODE_COLUMNS, REQUIRED

DATES = ("index_date", "ho_date", "death_date", "last_followup_date")
OUTCOME_OPTIONAL = ("ho", "ho_date", "death_date", "last_followup_date")
BY_KINDS = ("category", "bool", "string", "int", "float")

# (ledger step, reason when rows are affected, counted on: "all" rows or the "kept" rows)
CELL_STEPS = (
    ("missing-value tokens", "cell(s) holding a missing-value token (NA, unknown, ...) set missing"),
    ("unreadable values", "value(s) that cannot be read as a number, ISO date or yes/no set missing"),
    ("code lists", "value(s) not in a code list set missing"),
    ("future dates", "date(s) after the day of reading or before 1900 set missing"),
    ("plausible ranges", "value(s) outside the plausible range set missing"),
)
ROW_STEPS = (
    ("ho_date before index_date", "ho_date before index_date"),
    ("death_date before index_date", "death_date before index_date"),
    ("last_followup_date before index_date", "last_followup_date before index_date"),
    ("ho_date after death_date", "ho_date after death_date"),
    ("last follow-up after death", "last_followup_date after death_date"),
    ("ho_date after last contact", "ho_date after last_followup_date (HO detection is a contact)"),
    ("ho from ho_date", "ho missing but ho_date given: ho set true"),
    ("ho_date without ho", "ho_date given but ho is false"),
)
FLAGS = tuple(f"flag_{i}" for i in range(len(CELL_STEPS) + len(ROW_STEPS)))


@dataclass(frozen=True)
class Plan:
    """What to read and how to group: ``by`` columns (canonical, not identifying), ``bins`` (width per
    numeric by-column: the value becomes floor(x / width) * width), ``today`` (day number since 1970),
    ``present``: the canonical columns the files have."""

    by: tuple[str, ...]
    bins: dict = field(default_factory=dict)
    today: int = 0
    present: frozenset = frozenset()

    @property
    def read(self) -> tuple[str, ...]:
        """Columns to read from the files, in a fixed order."""
        want = list(REQUIRED) + [c for c in OUTCOME_OPTIONAL if c in self.present] + list(self.by)
        return tuple(dict.fromkeys(want))

    @property
    def keys(self) -> list[str]:
        return ["excluded", *self.by, "time_days", "status"]


def make_plan(by, bins, today: pd.Timestamp, present: set[str], where: str) -> Plan:
    """Check the grouping request against the schema and the columns of the files; a clear DataError
    for an unknown, identifying, absent or continuous-without-bins column."""
    by = tuple(dict.fromkeys([by] if isinstance(by, str) else list(by or ())))
    bins = dict(bins or {})
    missing_req = [c for c in REQUIRED if c not in present]
    if missing_req:
        raise DataError(f"{where}: required column(s) {missing_req} missing; the out-of-core road reads "
                        f"exports in the canonical schema (columns found: {sorted(present)[:20]})")
    for name in by:
        col = COLUMNS.get(name)
        if col is None or col not in EPISODE_COLUMNS:
            raise DataError(f"by: {name!r} is not a canonical episode column; choose from "
                            f"{[c.name for c in EPISODE_COLUMNS if not c.identifying]}")
        if col.identifying:
            raise DataError(f"by: {name!r} identifies patients (or is an exact date) and cannot be a grouping "
                            "column")
        if name not in present:
            raise DataError(f"by: column {name!r} is not in {where}", column=name)
        if col.kind == "float" and name not in bins:
            raise DataError(f"by: {name!r} is continuous; give a band width, e.g. bins={{{name!r}: 10}}")
    for name, width in bins.items():
        if name not in by or COLUMNS[name].kind not in ("float", "int"):
            raise DataError(f"bins: {name!r} must be a numeric column listed in by")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not np.isfinite(width) or width <= 0:
            raise DataError(f"bins: the width for {name!r} must be a positive number, got {width!r}")
    today_day = int(np.datetime64(pd.Timestamp(today).normalize().date(), "D").astype(np.int64))
    return Plan(by, {k: float(v) for k, v in bins.items()}, today_day, frozenset(present))


EARLIEST_DAY = int(np.datetime64(EARLIEST_DATE.date(), "D").astype(np.int64))


def _kind(name: str) -> str:
    return COLUMNS[name].kind


# --------------------------------------------------------------------------------------------------
# pandas: one partition (a batch of a file, a Dask partition)
# --------------------------------------------------------------------------------------------------

def _tokens(name: str) -> frozenset:
    """Missing-value tokens of a column: the built-in ones except its codes ('none' is a prophylaxis)."""
    return MISSING_TOKENS - set(CODE_LISTS.get(name, ()))


class _Cells:
    """One partition's per-row marks of the cell rules (which rows had a token, an unreadable value)."""

    def __init__(self, n: int) -> None:
        self.token = np.zeros(n, bool)
        self.unreadable = np.zeros(n, bool)

    def text(self, s: pd.Series, name: str) -> tuple[pd.Series, np.ndarray]:
        """Stripped text with blanks and missing tokens as NA; and the cells that hold a value."""
        t = s.astype("string").str.strip()
        blank = (t.isna() | (t == "")).to_numpy(dtype=bool)
        token = t.str.casefold().isin(_tokens(name)).fillna(False).to_numpy(dtype=bool) & ~blank
        self.token |= token
        missing = blank | token
        return t.mask(missing), ~missing

    def days(self, s: pd.Series, name: str) -> np.ndarray:
        """Day numbers since 1970 (NaN when missing); text that is not an ISO date is unreadable."""
        if pd.api.types.is_datetime64_any_dtype(s):
            v = s
        elif s.dtype == object and not s.map(lambda x: x is None or isinstance(x, (str, float))).all():
            v = pd.to_datetime(s, errors="coerce")  # datetime.date objects
        else:
            t, present = self.text(s, name)
            v = pd.to_datetime(t, format="ISO8601", errors="coerce")
            self.unreadable |= present & v.isna().to_numpy()
        day = v.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
        out = day.astype(np.int64).astype(float)
        out[np.isnat(day)] = np.nan
        return out

    def number(self, s: pd.Series, name: str) -> np.ndarray:
        if pd.api.types.is_bool_dtype(s):
            return s.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        if pd.api.types.is_numeric_dtype(s):
            v = s.to_numpy(dtype=float, na_value=np.nan)
            v[~np.isfinite(v)] = np.nan
            return v
        t, present = self.text(s, name)
        v = pd.to_numeric(t, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        v[~np.isfinite(v)] = np.nan
        self.unreadable |= present & np.isnan(v)
        return v

    def boolean(self, s: pd.Series, name: str) -> np.ndarray:
        """1.0 / 0.0 / NaN."""
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            v = s.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            bad = ~np.isnan(v) & (v != 0) & (v != 1)
            self.unreadable |= bad
            v[bad] = np.nan
            return v
        t, present = self.text(s, name)
        low = t.str.casefold()
        v = np.where(low.isin(TRUE_TOKENS).fillna(False), 1.0,
                     np.where(low.isin(FALSE_TOKENS).fillna(False), 0.0, np.nan))
        self.unreadable |= present & np.isnan(v)
        return v


def partition_groups(frame: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The raw groups of one partition (see the module docstring): pandas implementation of the rules."""
    n = len(frame)
    cells = _Cells(n)
    code_bad = np.zeros(n, bool)
    future = np.zeros(n, bool)
    ranges = np.zeros(n, bool)
    values: dict[str, object] = {}

    _, present_pid = cells.text(frame["patient_id"], "patient_id")
    for name in dict.fromkeys(["index_event", *plan.by]):
        kind = _kind(name)
        s = frame[name]
        if kind in ("category", "string"):
            t, _ = cells.text(s, name)
            if kind == "category":
                t = t.str.casefold()
                bad = (t.notna() & ~t.isin(CODE_LISTS[name])).to_numpy(dtype=bool)
                code_bad |= bad
                t = t.mask(bad)
            values[name] = t.astype(object).where(t.notna(), None).to_numpy()
        elif kind == "bool":
            values[name] = cells.boolean(s, name)
        else:
            v = cells.number(s, name)
            col = COLUMNS[name]
            out = np.zeros(n, bool)
            with np.errstate(invalid="ignore"):
                if col.low is not None:
                    out |= v < col.low
                if col.high is not None:
                    out |= v > col.high
            ranges |= out
            v = np.where(out, np.nan, v)
            if name in plan.bins:
                v = np.floor(v / plan.bins[name]) * plan.bins[name]
            values[name] = v
    days = {}
    for name in DATES:
        if name in frame.columns:
            d = cells.days(frame[name], name)
            with np.errstate(invalid="ignore"):
                fut = (d > plan.today) | (d < EARLIEST_DAY)
            future |= fut
            days[name] = np.where(fut, np.nan, d)
        else:
            days[name] = np.full(n, np.nan)
    ho = cells.boolean(frame["ho"], "ho") if "ho" in frame.columns else np.full(n, np.nan)

    excluded = ~present_pid | pd.isna(values["index_event"]) | np.isnan(days["index_date"])
    idx = days["index_date"]
    with np.errstate(invalid="ignore"):
        r = []
        for col in ("ho_date", "death_date", "last_followup_date"):
            m = days[col] < idx
            r.append(m)
            days[col] = np.where(m, np.nan, days[col])
        hod, dd, ld = days["ho_date"], days["death_date"], days["last_followup_date"]
        m = hod > dd
        r.append(m)
        hod = np.where(m, np.nan, hod)
        m = ld > dd
        r.append(m)
        ld = np.where(m, np.nan, ld)
        m = hod > ld
        r.append(m)
        ld = np.where(m, np.nan, ld)
        m = np.isnan(ho) & ~np.isnan(hod)
        r.append(m)
        ho = np.where(m, 1.0, ho)
        m = (ho == 0) & ~np.isnan(hod)
        r.append(m)
        hod = np.where(m, np.nan, hod)
        status = np.where(np.isnan(ho), np.nan, np.where(ho == 1, 1.0, np.where(~np.isnan(dd), 2.0, 0.0)))
        end = np.where(status == 1, hod, np.where(status == 2, dd, np.where(status == 0, ld, np.nan)))
        time_days = end - idx
    kept = ~excluded
    flags = [cells.token, cells.unreadable, code_bad, future, ranges] + [m & kept for m in r]
    by_values = {}
    for name in plan.by:  # an excluded row's values do not matter: one group for them
        v = values[name]
        by_values[name] = (np.where(excluded, None, v) if v.dtype == object else np.where(excluded, np.nan, v))
    out = pd.DataFrame({"excluded": excluded, **by_values,
                        "time_days": np.where(excluded, np.nan, time_days),
                        "status": np.where(excluded, np.nan, status),
                        **{f: fl.astype(np.int64) for f, fl in zip(FLAGS, flags, strict=True)}})
    out["n"] = np.int64(1)
    return combine([out], plan)


def combine(parts: list[pd.DataFrame], plan: Plan) -> pd.DataFrame:
    """Sum raw-group tables (of partitions, files or workers) into one: rows of the same keys added."""
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if frame.empty:
        return frame
    keys = plan.keys
    frame = _canonical_keys(frame, plan)
    out = frame.groupby(keys, dropna=False, sort=False, observed=True)[["n", *FLAGS]].sum().reset_index()
    return out


def _canonical_keys(frame: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """One dtype per key whichever engine made it: text keys object (None missing), the rest float."""
    out = frame.copy(deep=False)
    out["excluded"] = out["excluded"].astype(bool)
    for name in plan.by:
        if _kind(name) in ("category", "string"):
            s = out[name].astype(object)
            out[name] = s.where(s.notna(), None)
        else:
            out[name] = pd.to_numeric(out[name]).astype(float)
    out["time_days"] = out["time_days"].astype(float)
    out["status"] = out["status"].astype(float)
    for c in ("n", *FLAGS):
        out[c] = out[c].astype(np.int64)
    return out


# --------------------------------------------------------------------------------------------------
# SQL (DuckDB): the same rules over a view ``src`` with the files' columns
# --------------------------------------------------------------------------------------------------

def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_list(values) -> str:
    return "(" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in sorted(values)) + ")"


def duckdb_sql(plan: Plan, types: dict[str, str]) -> str:
    """The query giving the raw groups from view ``src`` (``types``: DuckDB type name of each column)."""
    true_, false_ = _sql_list(TRUE_TOKENS), _sql_list(FALSE_TOKENS)
    tokens: list[str] = []

    def raw(c: str) -> str:
        return f"trim(CAST({_q(c)} AS VARCHAR))"

    def text(c: str) -> str:
        """Stripped text, NULL for blanks and the column's missing-value tokens (noted once per column)."""
        is_token = f"(lower({raw(c)}) IN {_sql_list(_tokens(c))} AND {raw(c)} <> '')"
        if is_token not in tokens:
            tokens.append(is_token)
        return f"CASE WHEN {raw(c)} = '' OR {is_token} THEN NULL ELSE {raw(c)} END"

    def is_text(c: str) -> bool:
        return types[c].upper().startswith("VARCHAR")

    def number(c: str) -> tuple[str, str]:
        if is_text(c):
            v = f"TRY_CAST({text(c)} AS DOUBLE)"
            v = f"CASE WHEN isfinite({v}) THEN {v} END"
            return v, f"({text(c)} IS NOT NULL AND ({v}) IS NULL)"
        v = f"CAST({_q(c)} AS DOUBLE)"
        return f"CASE WHEN isfinite({v}) THEN {v} END", "FALSE"

    def boolean(c: str) -> tuple[str, str]:
        if is_text(c):
            low = f"lower({text(c)})"
            v = f"CASE WHEN {low} IN {true_} THEN 1.0 WHEN {low} IN {false_} THEN 0.0 END"
            return v, f"({text(c)} IS NOT NULL AND ({v}) IS NULL)"
        v = f"CAST({_q(c)} AS DOUBLE)"
        ok = f"({v} IN (0, 1))"
        return f"CASE WHEN {ok} THEN {v} END", f"({_q(c)} IS NOT NULL AND NOT coalesce({ok}, FALSE))"

    def day(c: str) -> tuple[str, str]:
        if is_text(c):
            ts = f"TRY_CAST({text(c)} AS TIMESTAMP)"
            v = f"CAST(date_diff('day', DATE '1970-01-01', CAST({ts} AS DATE)) AS DOUBLE)"
            return v, f"({text(c)} IS NOT NULL AND {ts} IS NULL)"
        return f"CAST(date_diff('day', DATE '1970-01-01', CAST({_q(c)} AS DATE)) AS DOUBLE)", "FALSE"

    sel, unread, code_bad, ranges, future = [], [], [], [], []
    sel.append(f"{text('patient_id')} AS pid")
    for name in dict.fromkeys(["index_event", *plan.by]):
        kind = _kind(name)
        alias = f"v_{name}"
        if kind in ("category", "string"):
            t = text(name)
            if kind == "category":
                low = f"lower({t})"
                bad = f"({low} IS NOT NULL AND {low} NOT IN {_sql_list(CODE_LISTS[name])})"
                code_bad.append(bad)
                sel.append(f"CASE WHEN {bad} THEN NULL ELSE {low} END AS {_q(alias)}")
            else:
                sel.append(f"{t} AS {_q(alias)}")
        elif kind == "bool":
            v, bad = boolean(name)
            unread.append(bad)
            sel.append(f"{v} AS {_q(alias)}")
        else:
            v, bad = number(name)
            unread.append(bad)
            col = COLUMNS[name]
            out = []
            if col.low is not None:
                out.append(f"({v}) < {col.low!r}")
            if col.high is not None:
                out.append(f"({v}) > {col.high!r}")
            out_expr = "coalesce(" + " OR ".join(out) + ", FALSE)" if out else "FALSE"
            ranges.append(out_expr)
            val = f"CASE WHEN {out_expr} THEN NULL ELSE {v} END"
            if name in plan.bins:
                w = repr(plan.bins[name])
                val = f"floor(({val}) / {w}) * {w}"
            sel.append(f"{val} AS {_q(alias)}")
    for name in DATES:
        if name in types:
            v, bad = day(name)
            unread.append(bad)
            fut = f"coalesce(({v}) > {plan.today} OR ({v}) < {EARLIEST_DAY}, FALSE)"
            future.append(fut)
            sel.append(f"CASE WHEN {fut} THEN NULL ELSE {v} END AS d_{name}")
        else:
            sel.append(f"CAST(NULL AS DOUBLE) AS d_{name}")
    if "ho" in types:
        v, bad = boolean("ho")
        unread.append(bad)
        sel.append(f"{v} AS ho0")
    else:
        sel.append("CAST(NULL AS DOUBLE) AS ho0")

    def any_of(items: list[str]) -> str:
        return "(" + " OR ".join(f"coalesce({i}, FALSE)" for i in items) + ")" if items else "FALSE"

    sel += [f"{any_of(tokens)} AS f_token", f"{any_of(unread)} AS f_unread", f"{any_of(code_bad)} AS f_code",
            f"{any_of(future)} AS f_future",
            f"{any_of(ranges)} AS f_range"]
    by_cols = [f"v_{b}" for b in plan.by]
    carry = ", ".join(_q(c) for c in dict.fromkeys(["v_index_event", *by_cols])) + ", f_token, f_unread, f_code, f_future, f_range"
    c = lambda e: f"coalesce({e}, FALSE)"  # noqa: E731
    return f"""
WITH a AS (SELECT {", ".join(sel)} FROM src),
b AS (SELECT {carry}, (pid IS NULL OR v_index_event IS NULL OR d_index_date IS NULL) AS excluded, ho0, d_index_date AS idx,
      d_death_date AS dd0, d_ho_date AS hod0, d_last_followup_date AS ld0,
      {c('d_ho_date < d_index_date')} AS r0, {c('d_death_date < d_index_date')} AS r1,
      {c('d_last_followup_date < d_index_date')} AS r2 FROM a),
c AS (SELECT *, CASE WHEN r0 THEN NULL ELSE hod0 END AS hod1, CASE WHEN r1 THEN NULL ELSE dd0 END AS dd,
      CASE WHEN r2 THEN NULL ELSE ld0 END AS ld1 FROM b),
d AS (SELECT *, {c('hod1 > dd')} AS r3, {c('ld1 > dd')} AS r4 FROM c),
e AS (SELECT *, CASE WHEN r3 THEN NULL ELSE hod1 END AS hod2, CASE WHEN r4 THEN NULL ELSE ld1 END AS ld2 FROM d),
f AS (SELECT *, {c('hod2 > ld2')} AS r5 FROM e),
g AS (SELECT *, CASE WHEN r5 THEN NULL ELSE ld2 END AS ld, (ho0 IS NULL AND hod2 IS NOT NULL) AS r6 FROM f),
h AS (SELECT *, CASE WHEN r6 THEN 1.0 ELSE ho0 END AS ho FROM g),
i AS (SELECT *, {c('ho = 0 AND hod2 IS NOT NULL')} AS r7 FROM h),
j AS (SELECT *, CASE WHEN r7 THEN NULL ELSE hod2 END AS hod,
      CASE WHEN ho IS NULL THEN NULL WHEN ho = 1 THEN 1.0 WHEN dd IS NOT NULL THEN 2.0 ELSE 0.0 END AS st FROM i),
k AS (SELECT *, CASE WHEN excluded THEN NULL WHEN st = 1 THEN hod - idx WHEN st = 2 THEN dd - idx
      WHEN st = 0 THEN ld - idx END AS time_days, CASE WHEN excluded THEN NULL ELSE st END AS status FROM j)
SELECT excluded, {", ".join(f"CASE WHEN excluded THEN NULL ELSE {_q(v)} END AS {_q(b)}" for v, b in zip(by_cols, plan.by, strict=True))}{"," if plan.by else ""}
       time_days, status, count(*) AS n,
       {", ".join(f"sum(CAST({x} AS BIGINT)) AS {f}" for x, f in zip(
           ["f_token", "f_unread", "f_code", "f_future", "f_range"] + [f"(r{i} AND NOT excluded)" for i in range(8)], FLAGS,
           strict=True))}
FROM k GROUP BY ALL
"""
