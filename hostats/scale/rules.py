"""The cleaning rules of the out-of-core road: a documented subset of :mod:`hostats.clean`, written once as
a plan and carried out twice, by SQL (DuckDB) and by pandas on one partition (the pandas and Dask engines).

Each engine turns its rows into the same *raw groups* table: one row per (excluded, by-values...,
time_days, status, flags) with the number of rows, where bit i of ``flags`` says that the i-th ledger
step changed the row (faults are rare, so this adds few groups, and one count per group is all the SQL
sums). Summing it over partitions (or files, or workers) loses nothing, so every engine gives the same
numbers.

Rules, in the order of :mod:`hostats.clean` (same step names in the ledger), applied to the columns read
(the required columns, ``ho`` and the outcome dates, and the ``by`` columns):

- text: leading/trailing spaces dropped; empty or a missing-value token (``NA``, ``unknown``, ...) is missing;
- unreadable values (text files): a number (``NUMBER_TEXT``), ISO date (``YYYY-MM-DD``, a valid time part
  ignored: ``DATE_TEXT``) or yes/no that cannot be read is set missing;
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

import re
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from hostats.clean import EARLIEST_DATE, FALSE_TOKENS, MISSING_TOKENS, TRUE_TOKENS
from hostats.errors import DataError
from hostats.schema import CODE_LISTS, COLUMNS, EPISODE_COLUMNS, REQUIRED

DATES = ("index_date", "ho_date", "death_date", "last_followup_date")
OUTCOME_OPTIONAL = ("ho", "ho_date", "death_date", "last_followup_date")

# (ledger step, what it changed): cell steps count every row read, row steps the rows kept
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
N_FLAGS = len(CELL_STEPS) + len(ROW_STEPS)  # bit i of the key ``flags``: the i-th step changed the row


@dataclass(frozen=True)
class Plan:
    """What to read and how to group: ``by`` columns (canonical, not identifying), ``bins`` (width per
    numeric by-column: the value becomes floor(x / width) * width), ``today`` (day number since 1970),
    ``present``: the canonical columns the files have."""

    by: tuple[str, ...]
    bins: dict = field(default_factory=dict)
    today: int = 0
    present: frozenset = frozenset()
    source: dict = field(default_factory=dict)        # canonical -> source column (a mapping's [columns])
    values: dict = field(default_factory=dict)        # canonical -> {source value (casefolded): code}
    missing: frozenset = frozenset()                  # extra missing-value tokens ([source] missing)
    true_tokens: frozenset = TRUE_TOKENS
    false_tokens: frozenset = FALSE_TOKENS

    def tokens(self, name: str) -> frozenset:
        """Missing-value tokens of a column: the built-in ones and the mapping's, except the column's codes
        ('none' is a prophylaxis)."""
        return (MISSING_TOKENS | self.missing) - set(CODE_LISTS.get(name, ()))

    @property
    def numeric_missing(self) -> list[float]:
        """The extra missing tokens that are numbers ("-99"): missing in numeric columns too."""
        return sorted(float(v) for v in pd.to_numeric(pd.Series(sorted(self.missing), dtype=object),
                                                     errors="coerce").dropna())

    def source_of(self, name: str) -> str:
        return self.source.get(name, name)

    @property
    def read(self) -> tuple[str, ...]:
        """Columns to read from the files, in a fixed order."""
        want = list(REQUIRED) + [c for c in OUTCOME_OPTIONAL if c in self.present] + list(self.by)
        return tuple(dict.fromkeys(want))

    @property
    def keys(self) -> list[str]:
        return ["excluded", *self.by, "time_days", "status", "flags"]


def make_plan(by, bins, today: pd.Timestamp, columns: set[str], where: str, mapping=None) -> Plan:
    """Check the grouping request against the schema and the columns of the files (``columns``, source
    names; ``mapping``: a :class:`hostats.ingest.Mapping` whose [columns], [values], [source] missing and
    [booleans] apply); a clear DataError for an unknown, identifying, absent or continuous-without-bins
    column, or for what the mapping asks that the out-of-core road does not do (date formats, units)."""
    by = tuple(dict.fromkeys([by] if isinstance(by, str) else list(by or ())))
    bins = dict(bins or {})
    source = dict(mapping.columns) if mapping is not None else {}
    present = {c.name for c in EPISODE_COLUMNS if source.get(c.name, c.name) in columns}
    missing_req = [c for c in REQUIRED if c not in present]
    if missing_req:
        raise DataError(f"{where}: required column(s) {missing_req} missing; the out-of-core road reads "
                        f"exports in the canonical schema (columns found: {sorted(present)[:20]})")
    for name in by:
        col = COLUMNS.get(name)
        if col is None or col not in EPISODE_COLUMNS:
            raise DataError(f"by: {name!r} is not a canonical episode column; choose from "
                            f"{[c.name for c in EPISODE_COLUMNS if not c.identifying]}")
        if name in ("ho", "index_date"):
            raise DataError(f"by: {name!r} is part of the outcome (status and time_days are always counted)")
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
    plan = Plan(by, {k: float(v) for k, v in bins.items()}, today_day, frozenset(present))
    if mapping is None:
        return plan
    used = set(plan.read)
    fmt = {c: mapping.date_format_of(c) for c in DATES if c in used}
    odd = {c: f for c, f in fmt.items() if f not in ("auto", "iso")}
    if odd:
        raise DataError(f"mapping {mapping.path or ''}: date format(s) {odd} are not read out of core; export ISO "
                        "dates (YYYY-MM-DD) or use hostats.read_cohort")
    units = {c: u for c, u in mapping.units.items() if c in used}
    if units:
        raise DataError(f"mapping {mapping.path or ''}: unit conversion {units} is not done out of core")
    return Plan(plan.by, plan.bins, plan.today, plan.present, source={c: s for c, s in source.items() if c in used},
                values={c: dict(t) for c, t in mapping.values.items() if c in used},
                missing=frozenset(t.strip().casefold() for t in mapping.missing),
                true_tokens=TRUE_TOKENS | {t.strip().casefold() for t in mapping.true_tokens},
                false_tokens=FALSE_TOKENS | {t.strip().casefold() for t in mapping.false_tokens})


EARLIEST_DAY = int(np.datetime64(EARLIEST_DATE.date(), "D").astype(np.int64))
# What text counts as a number or an ISO date, the same in both engines (each parser accepts more: DuckDB
# '1_000', pandas '20200105' or '2020'); a date's time part is checked here and then dropped.
NUMBER_TEXT = r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
DATE_TEXT = r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,9})?)?)?"
_EPOCH = date(1970, 1, 1)


def _kind(name: str) -> str:
    return COLUMNS[name].kind


# --------------------------------------------------------------------------------------------------
# pandas: one partition (a batch of a file, a Dask partition)
# --------------------------------------------------------------------------------------------------

def _as_arrow_text(values: np.ndarray):
    import pyarrow as pa

    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers, dates, ...: their text
        return pa.array([str(v) for v in values], type=pa.string())


class _Cells:
    """One partition's per-row marks of the cell rules (which rows had a token, an unreadable value).

    Text is handled per distinct value (``pd.factorize``, then pyarrow compute on the distinct values), so
    a code column of a million rows costs a factorisation, not a million string operations."""

    def __init__(self, n: int, plan: Plan) -> None:
        self.plan = plan
        self.token = np.zeros(n, bool)
        self.unreadable = np.zeros(n, bool)

    def text(self, s: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Row codes into the distinct texts (-1: missing, blank or a missing token) and those texts (spaces
        trimmed; recoded by the mapping's [values] table of the column, where "" means missing)."""
        import pyarrow.compute as pc

        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        if not len(uniques):
            return codes, np.empty(0, dtype=object)
        t = pc.utf8_trim(_as_arrow_text(np.asarray(uniques, dtype=object)), characters=" ")
        blank = pc.equal(t, "").to_numpy(zero_copy_only=False)
        low = pc.utf8_lower(t)
        token = pc.is_in(low, value_set=pc.cast(sorted(self.plan.tokens(name)), "string")) \
            .to_numpy(zero_copy_only=False) & ~blank
        if token.any():
            self.token |= (codes >= 0) & token[codes]
        text = np.asarray(t.to_numpy(zero_copy_only=False), dtype=object)
        table = self.plan.values.get(name)
        if table:
            text = np.array([table.get(k, v) for k, v in zip(low.to_pylist(), text, strict=True)], dtype=object)
            blank = blank | (text == "")
        keep = ~(blank | token)
        new_index = np.where(keep, np.cumsum(keep) - 1, -1)
        codes = np.where(codes >= 0, new_index[codes], -1)
        return codes, text[keep]

    @staticmethod
    def take(values_u: np.ndarray, codes: np.ndarray, missing) -> np.ndarray:
        """Per-row values from per-distinct ones (``missing`` where the code is -1)."""
        return np.append(values_u, np.array([missing], dtype=values_u.dtype))[codes]

    def category(self, s: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Lower-case codes (None when missing or not in the code list) and the rows not in the code list."""
        import pyarrow.compute as pc

        codes, u = self.text(s, name)
        low = np.asarray(pc.utf8_lower(_as_arrow_text(u)).to_numpy(zero_copy_only=False), dtype=object) \
            if len(u) else u
        ok = np.isin(low, CODE_LISTS[name])
        bad = (codes >= 0) & ~np.append(ok, True)[codes]
        return self.take(np.where(ok, low, None).astype(object), codes, None), bad

    def string(self, s: pd.Series, name: str) -> np.ndarray:
        codes, u = self.text(s, name)
        return self.take(u, codes, None)

    def _parsed(self, s: pd.Series, name: str, parse) -> np.ndarray:
        codes, u = self.text(s, name)
        v_u = parse(u)
        self.unreadable |= (codes >= 0) & np.append(np.isnan(v_u), False)[codes]
        return self.take(v_u, codes, np.nan)

    def days(self, s: pd.Series, name: str) -> np.ndarray:
        """Day numbers since 1970 (NaN when missing); text that is not an ISO date is unreadable."""
        def from_text(u: np.ndarray) -> np.ndarray:
            return np.array([_iso_day(x) for x in u], dtype=float)

        if pd.api.types.is_datetime64_any_dtype(s):
            return _day_numbers(s)
        if s.dtype == object and not s.map(lambda x: x is None or isinstance(x, (str, float))).all():
            return _day_numbers(pd.to_datetime(s, errors="coerce"))  # datetime.date objects
        return self._parsed(s, name, from_text)

    def number(self, s: pd.Series, name: str) -> np.ndarray:
        def from_text(u: np.ndarray) -> np.ndarray:
            ok = pd.Series(u, dtype=object).str.fullmatch(NUMBER_TEXT).to_numpy(dtype=bool)
            v = pd.to_numeric(pd.Series(np.where(ok, u, None), dtype=object), errors="coerce") \
                .to_numpy(dtype=float, na_value=np.nan)
            v[~np.isfinite(v)] = np.nan
            return v

        if pd.api.types.is_bool_dtype(s):
            return s.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        if pd.api.types.is_numeric_dtype(s):
            v = s.to_numpy(dtype=float, na_value=np.nan)
            v[~np.isfinite(v)] = np.nan
            if self.plan.numeric_missing:  # the mapping's numeric tokens (-99) in a numeric column
                token = np.isin(v, self.plan.numeric_missing)
                self.token |= token
                v[token] = np.nan
            return v
        return self._parsed(s, name, from_text)

    def boolean(self, s: pd.Series, name: str) -> np.ndarray:
        """1.0 / 0.0 / NaN."""
        def from_text(u: np.ndarray) -> np.ndarray:
            low = np.array([x.lower() for x in u], dtype=object)
            yes, no = list(self.plan.true_tokens), list(self.plan.false_tokens)
            return np.where(np.isin(low, yes), 1.0, np.where(np.isin(low, no), 0.0, np.nan))

        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            v = s.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            bad = ~np.isnan(v) & (v != 0) & (v != 1)
            self.unreadable |= bad
            v[bad] = np.nan
            return v
        return self._parsed(s, name, from_text)


def _iso_day(text: str) -> float:
    """Days since 1970 of an ISO date text (``DATE_TEXT``), NaN when it is not one or not a real day."""
    if not re.fullmatch(DATE_TEXT, text):
        return np.nan
    try:
        return float((date.fromisoformat(text[:10]) - _EPOCH).days)
    except ValueError:  # 2019-02-29
        return np.nan


def _day_numbers(v: pd.Series) -> np.ndarray:
    day = v.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    out = day.astype(np.int64).astype(float)
    out[np.isnat(day)] = np.nan
    return out


def partition_groups(frame: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The raw groups of one partition (see the module docstring): pandas implementation of the rules."""
    n = len(frame)
    frame = frame.rename(columns={plan.source_of(c): c for c in plan.read})
    cells = _Cells(n, plan)
    code_bad = np.zeros(n, bool)
    future = np.zeros(n, bool)
    ranges = np.zeros(n, bool)
    values: dict[str, object] = {}

    pid_codes, _ = cells.text(frame["patient_id"], "patient_id")
    present_pid = pid_codes >= 0
    for name in dict.fromkeys(["index_event", *plan.by]):
        kind = _kind(name)
        s = frame[name]
        if kind == "category":
            values[name], bad = cells.category(s, name)
            code_bad |= bad
        elif kind == "string":
            values[name] = cells.string(s, name)
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
                        "flags": sum(fl.astype(np.int64) << i for i, fl in enumerate(flags))})
    out["n"] = np.int64(1)
    return combine([out], plan)


def combine(parts: list[pd.DataFrame], plan: Plan) -> pd.DataFrame:
    """Sum raw-group tables (of partitions, files or workers) into one: rows of the same keys added."""
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if frame.empty:
        return frame
    keys = plan.keys
    frame = _canonical_keys(frame, plan)
    out = frame.groupby(keys, dropna=False, sort=False, observed=True)["n"].sum().reset_index()
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
    for c in ("n", "flags"):
        out[c] = out[c].astype(np.int64)
    return out


# --------------------------------------------------------------------------------------------------
# SQL (DuckDB): the same rules over a view ``src`` with the files' columns
# --------------------------------------------------------------------------------------------------

def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_list(values) -> str:
    return "(" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in sorted(values)) + ")"


def _parse_sql(c: str, kind: str, text: bool, plan: Plan, unread: list[str], tokens: list[str]) -> str:
    """Layer ``a3`` of :func:`duckdb_sql` for column ``c``: its parsed value ``p_<c>``. The test of an
    unreadable cell is appended to ``unread``, that of a numeric missing-value token to ``tokens``."""
    if kind in ("category", "string"):
        return f"{'lower(' + f'x_{c}' + ')' if kind == 'category' else f'x_{c}'} AS p_{c}"
    if kind == "date":
        if not text:
            return f"n_{c} AS p_{c}"
        unread.append(f"(x_{c} IS NOT NULL AND p_{c} IS NULL)")
        return (f"CASE WHEN regexp_full_match(x_{c}, '{DATE_TEXT}') THEN CAST(date_diff('day', "
                f"DATE '1970-01-01', TRY_CAST(substr(x_{c}, 1, 10) AS DATE)) AS DOUBLE) END AS p_{c}")
    if kind == "bool":
        if text:
            unread.append(f"(x_{c} IS NOT NULL AND p_{c} IS NULL)")
            return (f"CASE WHEN lower(x_{c}) IN {_sql_list(plan.true_tokens)} THEN 1.0 WHEN lower(x_{c}) IN "
                    f"{_sql_list(plan.false_tokens)} THEN 0.0 END AS p_{c}")
        unread.append(f"(n_{c} IS NOT NULL AND p_{c} IS NULL)")
        return f"CASE WHEN n_{c} IN (0, 1) THEN n_{c} END AS p_{c}"
    if text:  # numbers
        num = f"TRY_CAST(x_{c} AS DOUBLE)"
        unread.append(f"(x_{c} IS NOT NULL AND p_{c} IS NULL)")
        return f"CASE WHEN regexp_full_match(x_{c}, '{NUMBER_TEXT}') AND isfinite({num}) THEN {num} END AS p_{c}"
    nums = plan.numeric_missing
    if not nums:
        return f"CASE WHEN isfinite(n_{c}) THEN n_{c} END AS p_{c}"
    listed = "(" + ", ".join(repr(v) for v in nums) + ")"
    tokens.append(f"coalesce(n_{c} IN {listed}, FALSE)")
    return f"CASE WHEN isfinite(n_{c}) AND NOT coalesce(n_{c} IN {listed}, FALSE) THEN n_{c} END AS p_{c}"


def _value_sql(c: str, kind: str, plan: Plan, code_bad: list[str], future: list[str], ranges: list[str]) -> str:
    """Layer ``a4`` of :func:`duckdb_sql` for column ``c``: its value after the code list, the range (and bin)
    or the date window. The test of each rule is appended to ``code_bad``, ``future`` or ``ranges``."""
    if c == "patient_id":
        return "p_patient_id AS pid"
    if kind == "category":
        bad = f"(p_{c} IS NOT NULL AND p_{c} NOT IN {_sql_list(CODE_LISTS[c])})"
        code_bad.append(bad)
        return f"CASE WHEN {bad} THEN NULL ELSE p_{c} END AS v_{c}"
    if kind == "string":
        return f"p_{c} AS v_{c}"
    if kind == "date":
        fut = f"coalesce(p_{c} > {plan.today} OR p_{c} < {EARLIEST_DAY}, FALSE)"
        future.append(fut)
        return f"CASE WHEN {fut} THEN NULL ELSE p_{c} END AS d_{c}"
    if kind == "bool":
        return f"p_{c} AS {'ho0' if c == 'ho' else f'v_{c}'}"
    col = COLUMNS[c]
    out = ([f"p_{c} < {col.low!r}"] if col.low is not None else []) + \
          ([f"p_{c} > {col.high!r}"] if col.high is not None else [])
    bad = f"coalesce({' OR '.join(out)}, FALSE)" if out else "FALSE"
    ranges.append(bad)
    val = f"CASE WHEN {bad} THEN NULL ELSE p_{c} END"
    if c in plan.bins:
        w = repr(plan.bins[c])
        val = f"floor(({val}) / {w}) * {w}"
    return f"{val} AS v_{c}"


def duckdb_sql(plan: Plan, types: dict[str, str]) -> str:
    """The query giving the raw groups from view ``src`` (``types``: DuckDB type name of each column).

    Layers, so that each column's intermediate value is computed once: ``a1`` reads (text trimmed,
    numbers and dates cast), ``a2`` drops blanks and missing tokens, ``a3`` parses text, ``a4`` applies
    code lists, ranges, bins and the date window; ``a`` marks the cell rules; then the row rules."""
    def is_text(c: str) -> bool:
        return types[c].upper().startswith("VARCHAR")

    dates = [d for d in DATES if d in types]
    cols = list(dict.fromkeys(["patient_id", "index_event", *plan.by, *dates] + (["ho"] if "ho" in types else [])))
    kind = {c: ("date" if c in DATES else _kind(c)) for c in cols}
    texty = [c for c in cols if kind[c] in ("category", "string") or is_text(c)]
    a1, a2, a2b, a3, a4 = [], [], [], [], []
    unread, code_bad, ranges, future = [], [], [], []
    tokens = [f"k_{c}" for c in texty]
    for c in cols:
        q = _q(c)
        if c in texty:
            a1.append(f"trim(CAST({q} AS VARCHAR)) AS t_{c}")
            longest = max(len(t) for t in plan.tokens(c))  # longer text is no token: skip lower() and the list
            a2.append(f"t_{c}, CASE WHEN t_{c} IS NULL OR t_{c} = '' OR length(t_{c}) > {longest} THEN FALSE "
                      f"ELSE lower(t_{c}) IN {_sql_list(plan.tokens(c))} END AS k_{c}")
            recode = "".join(f" WHEN lower(t_{c}) = {_sql_list([k])[1:-1]} THEN "
                             + ("NULL" if v == "" else _sql_list([v])[1:-1]) for k, v in plan.values.get(c, {}).items())
            a2b.append(f"CASE WHEN t_{c} = '' OR k_{c} THEN NULL{recode} ELSE t_{c} END AS x_{c}")
        elif kind[c] == "date":
            a1.append(f"CAST(date_diff('day', DATE '1970-01-01', CAST({q} AS DATE)) AS DOUBLE) AS n_{c}")
            a2.append(f"n_{c}")
        else:
            a1.append(f"CAST({q} AS DOUBLE) AS n_{c}")
            a2.append(f"n_{c}")
        a3.append(_parse_sql(c, kind[c], c in texty, plan, unread, tokens))
        a4.append(_value_sql(c, kind[c], plan, code_bad, future, ranges))
    for d in DATES:
        if d not in types:
            a4.append(f"CAST(NULL AS DOUBLE) AS d_{d}")
    if "ho" not in types:
        a4.append("CAST(NULL AS DOUBLE) AS ho0")

    def any_of(items: list[str]) -> str:
        return "(" + " OR ".join(f"coalesce({i}, FALSE)" for i in items) + ")" if items else "FALSE"

    a4 += [f"{any_of(tokens)} AS f_token", f"{any_of(unread)} AS f_unread", f"{any_of(code_bad)} AS f_code",
           f"{any_of(future)} AS f_future", f"{any_of(ranges)} AS f_range"]
    layers = (f"a1 AS (SELECT {', '.join(a1)} FROM src),\n"
              f"a2 AS (SELECT {', '.join(a2)} FROM a1),\n"
              f"a2b AS (SELECT *{''.join(', ' + x for x in a2b)} FROM a2),\n"
              f"a3 AS (SELECT *, {', '.join(a3)} FROM a2b),\n"
              f"a AS (SELECT {', '.join(a4)} FROM a3),")
    by_cols = [f"v_{b}" for b in plan.by]
    carry = ", ".join(_q(c) for c in dict.fromkeys(["v_index_event", *by_cols])) + ", f_token, f_unread, f_code, f_future, f_range"
    c = lambda e: f"coalesce({e}, FALSE)"  # noqa: E731
    return f"""
WITH {layers}
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
       time_days, status, {" + ".join(f"(CAST({x} AS BIGINT) << {i})" for i, x in enumerate(
           ["f_token", "f_unread", "f_code", "f_future", "f_range"] + [f"(r{i} AND NOT excluded)" for i in range(8)]))}
       AS flags, count(*) AS n
FROM k GROUP BY ALL
"""
