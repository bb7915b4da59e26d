"""Cleaning rules: each a small named function that records what it did in the ledger.

Policy (what an epidemiologist expects):

* A bad **optional cell** (text in a number, an impossible or future date, a value outside the plausible
  range of the schema, a code not in the code list, one side of a logical contradiction) is **set missing**
  and reported in ``cohort.problems`` with its source row, column, value, problem and action.
* A **row** is **excluded** (``cohort.excluded``, with a reason) only when it cannot be used at all: no
  usable ``patient_id``, ``index_event`` or ``index_date`` (missing, unreadable, impossible, in the future or
  not in the code list), an exact duplicate of an earlier row, or one of several conflicting records for the
  same patient and index date (all of them are excluded: there is no way to tell which one is right).
* Logical consistency: a date before ``index_date`` is set missing; ``ho_date`` after ``death_date`` is set
  missing; ``last_followup_date`` before ``ho_date`` or after ``death_date`` is set missing;
  ``brooker_grade > 0`` with ``ho`` false sets ``brooker_grade`` missing; ``ho_date`` with ``ho`` false sets
  ``ho_date`` missing, with ``ho`` missing sets ``ho`` true; a dose without radiotherapy is set missing;
  radiotherapy without a dose and HO without a date are flagged (kept, reported).
* Every rule is vectorised (whole columns, or the distinct values of a column) and never mutates its input.
  Running the cleaning on a cleaned cohort changes nothing (idempotent).

Row numbers: see :mod:`hostats.ingest` (header = row 1, first data row = row 2).
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hostats.errors import DataError
from hostats.ingest import Mapping
from hostats.ledger import Ledger
from hostats.schema import (
    ASSESSMENT_CODE_LISTS,
    ASSESSMENT_COLUMNS,
    CODE_LISTS,
    EPISODE_COLUMNS,
    IMAGING_BY_DETECTION_LAG,
    IMAGING_TESTS,
    REQUIRED,
    Column,
    dtype_of,
)

MISSING_TOKENS = frozenset({"", "na", "n/a", "n.a.", "nan", "none", "null", "nil", ".", "-", "--", "?",
                            "unknown", "unk", "missing", "not known", "#n/a", "<na>", "nat", "k.a.",
                            "unbekannt"})
TRUE_TOKENS = frozenset({"1", "1.0", "true", "t", "yes", "y", "ja", "j", "oui", "si", "positive", "pos",
                         "present"})
FALSE_TOKENS = frozenset({"0", "0.0", "false", "f", "no", "n", "nein", "non", "negative", "neg", "absent"})

# normalised (lower case, underscores) common spellings -> canonical code; only unambiguous ones
CODE_SYNONYMS: dict[str, dict[str, str]] = {
    "sex": {"m": "male", "f": "female", "w": "female", "man": "male", "woman": "female", "men": "male",
            "women": "female", "mannlich": "male", "weiblich": "female", "maennlich": "male"},
    "index_event": {"total_hip_arthroplasty": "tha", "thr": "tha", "total_hip_replacement": "tha",
                    "hip_arthroplasty": "tha", "revision": "hip_revision", "fracture": "long_bone_fracture",
                    "spinal_cord_injury": "sci", "traumatic_brain_injury": "tbi", "brain_injury": "tbi",
                    "cva": "stroke", "burns": "burn", "ho_resection": "resection", "excision": "resection"},
    "prophylaxis": {"rt": "radiotherapy", "radiation": "radiotherapy", "irradiation": "radiotherapy",
                    "nsaids": "nsaid", "bisphosphonates": "bisphosphonate", "rt_nsaid": "radiotherapy_nsaid",
                    "radiotherapy_and_nsaid": "radiotherapy_nsaid", "no": "none", "nil": "none"},
    "nsaid_agent": {"indometacin": "indomethacin", "indocin": "indomethacin"},
    "adjuvant": {"indometacin": "indomethacin", "etidronate_disodium": "etidronate"},
    "detection_modality": {"x_ray": "xray", "radiograph": "xray", "radiography": "xray",
                           "bonescan": "bone_scan", "scintigraphy": "bone_scan", "computed_tomography": "ct"},
    "test": {"x_ray": "xray", "radiograph": "xray", "bonescan": "bone_scan", "scintigraphy": "bone_scan",
             "alkaline_phosphatase": "alp"},
    "result": {"pos": "positive", "neg": "negative", "+": "positive"},
}

# the plausible range of a dose converted from another unit, per value (Gy): below it, the value was not in
# that unit (a site that typed Gy into a cGy column gives 8 -> 0.08 Gy)
PLAUSIBLE_CONVERTED: dict[str, tuple[float, float]] = {"rt_dose_gy": (1.0, 30.0)}

EXCEL_ORIGIN = pd.Timestamp("1899-12-30")
EARLIEST_DATE = pd.Timestamp("1900-01-01")
MAX_SERIAL = (pd.Timestamp("2262-04-10") - EXCEL_ORIGIN).days  # datetime64[ns] ends in 2262
_ISO = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d", "%Y/%m/%d")
_DAYFIRST = ("%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%y", "%d/%m/%y", "%d-%m-%y")
_MONTHFIRST = ("%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y", "%m-%d-%y", "%m.%d.%y")
_DATELIKE = re.compile(r"^\s*\d{1,4}[-./]\d{1,2}[-./]\d{1,4}(?:[ T].*)?$")


@dataclass
class Context:
    """What a rule needs besides the frame: the ledger, the source's mapping and 'today'."""

    ledger: Ledger
    mapping: Mapping = field(default_factory=Mapping)
    today: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.today().normalize())
    columns: tuple[Column, ...] = EPISODE_COLUMNS
    code_lists: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(CODE_LISTS))
    # string columns left as a Categorical of the trimmed text (converted by the caller): duplicates and
    # joins on millions of rows then work on integer codes instead of hashing Python strings
    keep_categorical: tuple[str, ...] = ()


# --- helpers --------------------------------------------------------------------------------------------

def _factor(s: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(codes, distinct values) of a column; code -1 = missing. Categorical columns are used as they are."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(), pd.Series(np.asarray(s.cat.categories, dtype=object), dtype=object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes, pd.Series(uniques, dtype=object if not len(uniques) or uniques.dtype == object else None)


def _by_unique(s: pd.Series, func: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply a vectorised ``func`` to the distinct non-missing values of ``s`` and spread the result back
    (columns of a cohort repeat few values, so this is much faster than working on every cell)."""
    codes, uniques = _factor(s)
    out = func(uniques)
    return pd.Series(_take(out, codes), index=s.index, name=s.name)


def _take(values: pd.Series, codes: np.ndarray, fill=None):
    """``values[codes]`` with code -1 -> missing, for numpy and extension dtypes alike."""
    if isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        return values.array.take(codes, allow_fill=True)
    arr = values.to_numpy()
    kw = {"fill_value": fill} if arr.dtype == object else {}
    return pd.api.extensions.take(arr, codes, allow_fill=True, **kw)


def _mask_by_unique(s: pd.Series, func: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """Boolean mask: ``func`` (distinct values -> bools) spread back over ``s``; missing cells are False."""
    codes, uniques = _factor(s)
    return _spread(np.asarray(func(uniques).fillna(False), dtype=bool), codes)


def _spread(hit: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A per-distinct-value boolean spread back over the cells (missing cells: False)."""
    if not len(hit):
        return np.zeros(len(codes), dtype=bool)
    return np.append(np.asarray(hit, dtype=bool), False)[codes]  # one gather: code -1 reads the False at the end


def _text(u: pd.Series) -> pd.Series:
    """Distinct values as stripped text; whole floats (Excel, Stata) lose their '.0'."""
    if pd.api.types.is_float_dtype(u):
        whole = np.isfinite(u) & (u == np.round(u))
        return pd.Series(np.where(whole, u.round().astype("Int64").astype(str), u.astype(str)),
                         index=u.index, dtype=object)
    t = u.astype(str)
    if t.dtype == object:  # str.strip per value without the string accessor's per-value overhead
        return pd.Series(_STRIP(t.to_numpy()), index=u.index, name=u.name, dtype=object)
    return t.str.strip()


_STRIP = np.frompyfunc(str.strip, 1, 1)


def _in_tokens(text: pd.Series, tokens: set[str]) -> np.ndarray:
    """``text.str.casefold().isin(tokens)``; case folding never shortens a text, so only the texts no longer
    than the longest token are folded (a column of two million distinct ids has none)."""
    arr = text.to_numpy(dtype=object)
    lengths = np.fromiter(map(len, arr), dtype=np.int64, count=len(arr))
    short = np.flatnonzero(lengths <= max(map(len, tokens), default=0))
    out = np.zeros(len(arr), dtype=bool)
    if len(short):
        out[short] = pd.Series(arr[short], dtype=object).str.casefold().isin(tokens).to_numpy()
    return out


def _norm(u: pd.Series) -> pd.Series:
    """Text normalised for matching codes and tokens: stripped, case-folded."""
    return _text(u).str.casefold()


def _data_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("source_file", "source_row")]


# --- cell rules (per source, with that source's mapping) -----------------------------------------------

def missing_tokens(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Missing-value tokens ('', NA, N/A, '.', '-', 'unknown', ... and [source] missing) -> missing."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    extra = {t.strip().casefold() for t in ctx.mapping.missing}
    tokens = MISSING_TOKENS | extra
    numeric_tokens = pd.to_numeric(pd.Series(sorted(extra), dtype=object), errors="coerce").dropna()
    changed = np.zeros(len(out), dtype=bool)
    cells = 0
    for col in _data_columns(out):
        s = out[col]
        col_tokens = tokens - set(ctx.code_lists.get(col, ()))  # 'none' is a code for prophylaxis
        if s.dtype == object or isinstance(s.dtype, (pd.StringDtype, pd.CategoricalDtype)):
            # text columns become Categorical here: every later rule then works on the distinct values
            codes, uniques = _factor(s)
            if not len(uniques):  # all missing already
                continue
            text = _text(uniques)
            miss_u = _in_tokens(text, col_tokens)
            if not miss_u.any():  # no token among the values: the codes stay as they are
                if not (isinstance(s.dtype, pd.CategoricalDtype) and s.cat.categories.dtype == object):
                    out[col] = pd.Categorical.from_codes(codes.astype(np.int32), uniques.to_numpy())
                continue
            keep_u = ~miss_u
            # per distinct value, then one gather per cell (code -1, missing, reads the entry at the end)
            remap = np.append(np.where(keep_u, np.cumsum(keep_u) - 1, -1), -1).astype(np.int32)
            out[col] = pd.Categorical.from_codes(remap[codes], uniques[keep_u].to_numpy())
            real = _spread(miss_u & (text != "").to_numpy(), codes)  # an empty cell was missing already
            changed |= real
            cells += int(real.sum())
            continue
        elif pd.api.types.is_numeric_dtype(s) and len(numeric_tokens):
            is_missing = s.isin(numeric_tokens.to_numpy()).to_numpy()
            blank = np.zeros(len(s), dtype=bool)
        else:
            continue
        if is_missing.any():
            out[col] = s.where(~is_missing, None if s.dtype == object else np.nan)
            real = is_missing & ~blank  # an empty cell was missing already: not a change
            changed |= real
            cells += int(real.sum())
    ctx.ledger.record("missing-value tokens", len(out), rows_changed=int(changed.sum()),
                      reason=f"{cells} cell(s) holding a missing-value token set missing" if cells else "")
    return out


def map_values(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """The mapping's [values.<column>] tables: source value (stripped, case-insensitive) -> canonical."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    changed = np.zeros(len(out), dtype=bool)
    for col, table in ctx.mapping.values.items():
        if col not in out.columns or not table:
            continue
        # on the distinct values: map them, then rebuild the column as a Categorical of the results
        codes, u = _factor(out[col])
        if not len(u):
            continue
        norm = _norm(u)
        hit_u = norm.isin(list(table)).to_numpy()
        if not hit_u.any():
            continue
        new_u = u.astype(object).where(~hit_u, norm.map(table))
        new_u = new_u.where(~(hit_u & (new_u.astype(str) == "").to_numpy()), None)  # mapped to "": missing
        changed |= _spread(hit_u & (new_u.astype(str) != _text(u)).to_numpy(), codes)
        ncodes, nuniq = pd.factorize(new_u)
        out[col] = pd.Categorical.from_codes(np.where(codes >= 0, ncodes[np.maximum(codes, 0)], -1).astype(np.int32),
                                             pd.Index(nuniq, dtype=object))
    ctx.ledger.record("value mapping", len(out), rows_changed=int(changed.sum()),
                      reason="source codes mapped by the mapping's [values] tables" if ctx.mapping.values else "")
    return out


def _stripped_categorical(s: pd.Series) -> pd.Series:
    """A column as a Categorical of its trimmed text (as :func:`coerce_strings` would give it, still coded)."""
    codes, u = _factor(s)
    text = _text(u).to_numpy(dtype=object)
    if isinstance(s.dtype, pd.CategoricalDtype) and s.cat.categories.dtype == object and \
            bool((text == u.to_numpy(dtype=object)).all()):
        return s  # already trimmed text (ids of an export, two million distinct): no recoding
    ncodes, nuniq = pd.factorize(text)  # trimming can merge two values
    new = np.where(codes >= 0, ncodes[np.maximum(codes, 0)] if len(ncodes) else -1, -1)
    return pd.Series(pd.Categorical.from_codes(new.astype(np.int32), pd.Index(nuniq, dtype=object)),
                     index=s.index, name=s.name)


def as_string(s: pd.Series) -> pd.Series:
    """A column kept Categorical by ``Context.keep_categorical`` to the canonical 'string' dtype."""
    if not isinstance(s.dtype, pd.CategoricalDtype):
        return s.astype("string")
    codes, u = _factor(s)
    return pd.Series(pd.array(_take(u, codes), dtype="string"), index=s.index, name=s.name)


def coerce_strings(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Identifier-like text columns (patient_id, site) to trimmed strings; whole numbers lose '.0'."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    for c in ctx.columns:
        if c.kind == "string" and c.name in out.columns:
            s = out[c.name]
            if isinstance(s.dtype, pd.StringDtype):
                out[c.name] = s.str.strip()
            elif c.name in ctx.keep_categorical:
                out[c.name] = _stripped_categorical(s)
            else:
                codes, u = _factor(s)
                text = _text(u).to_numpy(dtype=object)
                out[c.name] = pd.array(_take(pd.Series(text, dtype=object), codes), dtype="string")
    ctx.ledger.record("text columns", len(out))
    return out


def coerce_categories(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Category columns to the schema code lists. Case, spaces and common spellings are normalised;
    a value not in the code list is a problem and set missing (a required one excludes the row later)."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    changed = np.zeros(len(out), dtype=bool)
    bad_cells = 0
    for c in ctx.columns:
        if c.kind != "category" or c.name not in out.columns:
            continue
        codes = ctx.code_lists[c.name]
        s = out[c.name]
        if isinstance(s.dtype, pd.CategoricalDtype) and set(s.cat.categories) <= set(codes):
            out[c.name] = s.cat.set_categories(codes)
            continue
        syn = CODE_SYNONYMS.get(c.name, {})

        def to_code(u: pd.Series, codes=codes, syn=syn) -> pd.Series:
            t = _norm(u).str.replace(r"[\s\-+/&]+", "_", regex=True).str.strip("_")
            t = t.where(t.isin(codes), t.map(syn))
            return t.where(t.isin(codes), None)

        ucodes, u = _factor(s)
        new_u = to_code(u)
        bad_u = new_u.isna().to_numpy()
        changed_u = (new_u.astype(object) != _text(u)).to_numpy()
        target = pd.Index(codes).get_indexer(new_u.astype(object))
        new_codes = np.where(ucodes >= 0, target[np.maximum(ucodes, 0)] if len(target) else -1, -1)
        bad = _spread(bad_u, ucodes)
        if bad.any():
            hints = [difflib.get_close_matches(str(v).strip().lower(), codes, n=1) for v in u[bad_u]]
            why_u = pd.Series("", index=u.index, dtype=object)
            why_u[bad_u] = [f"not in the code list {list(codes)}" + (f" (did you mean {h[0]!r}?)" if h else "")
                            for h in hints]
            full_why = pd.Series(_take(why_u, ucodes), index=s.index)
            ctx.ledger.problems_from_mask(out, bad, c.name, s, full_why,
                                          "excluded row (required column)" if c.required else "set missing")
            bad_cells += int(bad.sum())
        changed |= _spread(changed_u, ucodes)
        out[c.name] = pd.Categorical.from_codes(new_codes.astype(np.int32), categories=list(codes))
    reasons = ([f"{bad_cells} value(s) not in a code list set missing"] if bad_cells else []) + \
        ([f"{int(changed.sum())} row(s) with values recoded to canonical codes"] if changed.any() else [])
    ctx.ledger.record("code lists", len(out), rows_changed=int(changed.sum()), reason="; ".join(reasons))
    return out


def coerce_booleans(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Yes/no columns to pandas 'boolean' (1/0, true/false, yes/no, ja/nein ... and [booleans] tokens);
    anything else is a problem and set missing."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    true = TRUE_TOKENS | {t.strip().casefold() for t in ctx.mapping.true_tokens}
    false = FALSE_TOKENS | {t.strip().casefold() for t in ctx.mapping.false_tokens}
    bad_cells = 0
    changed = np.zeros(len(out), dtype=bool)
    for c in ctx.columns:
        if c.kind != "bool" or c.name not in out.columns:
            continue
        s = out[c.name]
        if pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.BooleanDtype):
            out[c.name] = s.astype("boolean")
            continue

        def to_bool(u: pd.Series) -> pd.Series:
            t = _norm(u)
            return pd.Series(np.where(t.isin(true), True, np.where(t.isin(false), False, None)),
                             dtype="boolean", index=u.index)

        new = _by_unique(s, to_bool).astype("boolean")
        bad = (new.isna() & s.notna()).to_numpy()
        bad_cells += ctx.ledger.problems_from_mask(out, bad, c.name, s,
                                                   "not a yes/no value", "set missing")
        changed |= bad
        out[c.name] = new
    ctx.ledger.record("yes/no columns", len(out), rows_changed=int(changed.sum()),
                      reason=f"{bad_cells} value(s) that are not yes/no set missing" if bad_cells else "")
    return out


_GROUPED = r"[+-]?\d{1,3}(?:,\d{3})+"  # "1,000" / "12,500": a thousands separator, or a decimal comma?
AMBIGUOUS_COMMA = ("ambiguous number: the comma may be a decimal comma or a thousands separator; write it "
                   "without the separator (1000) or with a decimal point")


def _comma_role(u: pd.Series) -> str | None:
    """How a column uses commas inside numbers, judged on the whole column: 'decimal' when some value can
    only be a decimal comma ("61,5"), 'thousands' when the column also writes decimal points ("1,250.5",
    "7.5"), None when every comma value is ambiguous ("1,000") or there are none."""
    t = _text(u)
    comma = t.str.fullmatch(r"[+-]?\d*,\d+").fillna(False).astype(bool)
    if (comma & ~t.str.fullmatch(_GROUPED).fillna(False).astype(bool)).any():
        return "decimal"
    if t.str.contains(".", regex=False).fillna(False).to_numpy().any():
        return "thousands"
    return None


def _to_number(u: pd.Series, comma: str | None = "decimal") -> pd.Series:
    t = _text(u)
    if comma == "thousands":
        t = t.where(~t.str.fullmatch(_GROUPED + r"(?:\.\d+)?"), t.str.replace(",", "", regex=False))
    else:
        decimal = t.str.fullmatch(r"[+-]?\d*,\d+")
        if comma is None:
            decimal &= ~t.str.fullmatch(_GROUPED)  # left unparsed: reported as ambiguous
        t = t.where(~decimal, t.str.replace(",", ".", regex=False))
    return pd.to_numeric(t, errors="coerce").astype("float64")


def _whole_numbers(num: pd.Series) -> pd.Series:
    """``num.round().astype("Int64")``, built directly from the values and their missing mask when every value
    is exactly representable (|x| < 2**53): pandas' checked conversion costs ~0.15 s per million values."""
    v = num.round().to_numpy(dtype="float64")
    missing = np.isnan(v)
    if missing.all() or np.abs(v[~missing]).max() >= 2.0**53:
        return num.round().astype("Int64")
    ints = np.where(missing, 0.0, v).astype(np.int64)
    return pd.Series(pd.arrays.IntegerArray(ints, missing), index=num.index, name=num.name)


def coerce_numbers(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Numeric columns to float64 / Int64 (decimal commas accepted); text that is not a number and
    fractions in whole-number columns are problems and set missing. Units are converted ([units])."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    bad_cells = 0
    changed = np.zeros(len(out), dtype=bool)
    reasons = []
    for c in ctx.columns:
        if c.kind not in ("float", "int") or c.name not in out.columns:
            continue
        s = out[c.name]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            num = s.astype("float64")
        else:
            comma = _comma_role(pd.Series(s.dropna().unique()))
            num = _by_unique(s, lambda u, comma=comma: _to_number(u, comma)).astype("float64")
            bad = (num.isna() & s.notna()).to_numpy()
            why: str | pd.Series = "not a number"
            if comma is None and bad.any():
                grouped = _text(s).str.fullmatch(_GROUPED).fillna(False)
                why = pd.Series(np.where(grouped, AMBIGUOUS_COMMA, "not a number"), index=s.index, dtype=object)
            bad_cells += ctx.ledger.problems_from_mask(out, bad, c.name, s, why, "set missing")
            changed |= bad
        if c.kind == "int":
            frac = (num.notna() & (num != np.round(num))).to_numpy()
            bad_cells += ctx.ledger.problems_from_mask(out, frac, c.name, num,
                                                       "not a whole number", "set missing")
            changed |= frac
            num = num.where(~frac)
        unit = ctx.mapping.units.get(c.name)
        if unit and unit.casefold() != "gy":
            from hostats.ingest import UNITS
            factor = UNITS[c.name][unit.casefold()]
            raw_num = num
            num = num * factor
            changed |= num.notna().to_numpy()
            reasons.append(f"{c.name} converted from {unit} to Gy")
            # per value: a converted dose too small to be a dose (one site typed 8 Gy in a cGy column)
            low, high = PLAUSIBLE_CONVERTED.get(c.name, (None, None))
            if low is not None:
                tiny = (num > 0) & (num < low)
                if tiny.any():
                    as_gy = tiny & (raw_num >= low) & (raw_num <= high)
                    why = pd.Series(f"implausible for the unit {unit}: below {low:g} Gy after conversion",
                                    index=num.index, dtype=object)
                    why[as_gy] = why[as_gy] + " (plausible as Gy: typed in Gy?)"
                    bad_cells += ctx.ledger.problems_from_mask(out, tiny.to_numpy(), c.name, raw_num,
                                                               why.where(tiny), "set missing")
                    num = num.where(~tiny)
                    reasons.append(f"{int(tiny.sum())} {c.name} value(s) implausible for the unit {unit} set "
                                   "missing")
        out[c.name] = _whole_numbers(num) if c.kind == "int" else num
    if bad_cells:
        reasons.insert(0, f"{bad_cells} value(s) that are not numbers set missing")
    ctx.ledger.record("numbers", len(out), rows_changed=int(changed.sum()), reason="; ".join(reasons))
    return out


def _slash_order(t: pd.Series) -> str:
    """'dayfirst' or 'monthfirst' for d/m/y-looking values, from the values that can only be one."""
    m = t.str.extract(r"^(\d{1,2})[/\-](\d{1,2})[/\-](\d{2,4})$").dropna().astype(int)
    if m.empty:
        return "dayfirst"
    day_first = bool((m[0] > 12).any())
    month_first = bool((m[1] > 12).any())
    return "monthfirst" if month_first and not day_first else "dayfirst"


def _date_formats(fmt: str, t: pd.Series, notes: list[str]) -> list[str]:
    """The strftime formats to try, in turn, for the date format ``fmt`` of a column whose distinct values
    (as text) are ``t``; "auto" takes d/m/y or m/d/y as the values decide and says so in ``notes``."""
    if fmt in ("auto", "iso"):
        formats = list(_ISO)
        if fmt == "auto":
            order = _slash_order(t.dropna())
            formats += ["%d.%m.%Y", "%d.%m.%y"] + list(_DAYFIRST[1:3] + _DAYFIRST[4:] if order == "dayfirst"
                                                        else _MONTHFIRST[:2] + _MONTHFIRST[3:5])
            if t.str.fullmatch(r"\d{1,2}/\d{1,2}/\d{2,4}").any():
                notes.append(f"d/m/y-style dates read {'day' if order == 'dayfirst' else 'month'}-first "
                             "(set [dates] format in the mapping to override)")
        return formats
    if fmt == "dayfirst":
        return list(_DAYFIRST) + list(_ISO)
    if fmt == "monthfirst":
        return list(_MONTHFIRST) + list(_ISO)
    if fmt == "excel":
        return list(_ISO)
    return [fmt]


def _date_problems(failed: pd.Series, t: pd.Series, too_big: pd.Series, today: pd.Timestamp) -> pd.Series:
    """Why each value that did not parse (``failed``) is not a date: no such day or an undeclared format,
    in the future (a year after today's, or an Excel serial beyond 2262), or not a date at all; None elsewhere."""
    problem = pd.Series(None, index=t.index, dtype=object)
    if failed.any():
        looks = t.str.match(_DATELIKE).fillna(False)
        year = pd.to_numeric(t.str.extract(r"(?:^|\D)(\d{4})(?:\D|$)")[0], errors="coerce")
        future = looks & (year > today.year)
        problem[failed & looks] = "impossible date (no such day) or a date format not declared"
        problem[failed & future] = "date in the future"
        problem[failed & ~looks] = "not a date"
        problem[failed & too_big] = "date in the future"
    return problem


def parse_date_values(u: pd.Series, fmt: str, today: pd.Timestamp) -> tuple[pd.Series, pd.Series, list[str]]:
    """Parse distinct date values: (dates, problem text or None, notes). Formats tried in turn, each a
    vectorised ``pd.to_datetime`` call; two-digit years that would be after ``today`` go back a century."""
    notes: list[str] = []
    index = u.index
    if pd.api.types.is_datetime64_any_dtype(u):
        d = pd.to_datetime(u)
        d = d.dt.tz_localize(None) if getattr(d.dt, "tz", None) is not None else d
        return d.dt.normalize().astype("datetime64[ns]"), pd.Series(None, index=index, dtype=object), notes
    out = pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
    is_dt = u.map(lambda v: isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "year")) \
        if u.dtype == object else pd.Series(False, index=index)
    if is_dt.any():  # Excel and SQL hand over date objects mixed with text
        out[is_dt] = pd.to_datetime(u[is_dt].astype(object), errors="coerce")
    numeric = pd.to_numeric(u.where(~is_dt), errors="coerce") if u.dtype == object else \
        pd.to_numeric(u, errors="coerce")
    t = _text(u.where(~is_dt)) if u.dtype == object else _text(u)
    too_big = pd.Series(False, index=index)
    if fmt in ("auto", "excel"):
        serial = numeric.notna() & (numeric >= 1) & (numeric <= MAX_SERIAL) & ~is_dt
        too_big = numeric.notna() & (numeric > MAX_SERIAL) & ~is_dt
        if fmt == "auto":  # only 5-digit day counts (1927-2173) can pass for Excel serials in auto mode
            serial &= (numeric >= 10000) & (numeric < 100000) & ~t.str.fullmatch(r"\d{8}").fillna(False)
        if serial.any():
            out[serial] = EXCEL_ORIGIN + pd.to_timedelta(numeric[serial].round(), unit="D")
            # no date in the note: the report redacts every date, and the origin is not a patient's
            notes.append("Excel serial day numbers converted (Excel's 1900 date system)")
    formats = _date_formats(fmt, t, notes)
    two_digit = pd.Series(False, index=index)
    for f in formats:
        todo = out.isna() & t.notna() & (t != "")
        if not todo.any():
            break
        parsed = pd.to_datetime(t[todo], format=f, errors="coerce")
        hit = parsed.notna()
        if hit.any():
            out[parsed.index[hit]] = parsed[hit]
            if "%y" in f:
                two_digit[parsed.index[hit]] = True
    if fmt not in ("auto", "iso", "dayfirst", "monthfirst", "excel"):
        pass
    elif out.isna().any():  # last resort for ISO 8601 variants (fractions of seconds, time zones)
        todo = out.isna() & t.str.match(r"^\d{4}-\d{2}-\d{2}[T ]").fillna(False)
        if todo.any():
            parsed = pd.to_datetime(t[todo], format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None)
            out[todo] = parsed
    if two_digit.any():
        late = two_digit & (out > today)
        out[late] = out[late] - pd.DateOffset(years=100)
        notes.append("two-digit years read as the latest year not after today")
    out = out.dt.normalize()
    return out.astype("datetime64[ns]"), _date_problems(out.isna() & u.notna(), t, too_big, today), notes


def parse_dates(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Date columns to datetime64 (per-column format from the mapping, else ISO, d.m.y, d/m/y or m/d/y as
    the column's own values decide, Excel serials). Unreadable and impossible dates (2021-02-30) are
    problems and set missing."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    bad_cells = 0
    changed = np.zeros(len(out), dtype=bool)
    notes: list[str] = []
    cols = [c.name for c in ctx.columns if c.kind == "date"] + (["date_of_birth"] if "date_of_birth" in out else [])
    for name in cols:
        if name not in out.columns:
            continue
        s = out[name]
        if pd.api.types.is_datetime64_any_dtype(s):
            d, _, _ = parse_date_values(s, "iso", ctx.today)
            out[name] = d
            continue
        fmt = ctx.mapping.date_format_of(name)
        res: dict[str, list] = {}

        def parse(u: pd.Series, fmt=fmt, res=res) -> pd.Series:
            d, p, n = parse_date_values(u, fmt, ctx.today)
            res["problem"], res["notes"] = [p], n
            return d

        codes, u = _factor(s)
        d = parse(u)
        taken = pd.Series(_take(d, codes), index=s.index)
        prob_u = res["problem"][0]
        where = f"{out['source_file'].iloc[0]}: " if len(out) and out["source_file"].nunique() == 1 else ""
        notes += [f"{where}{name}: {n}" for n in res["notes"]]
        bad = _spread(prob_u.notna().to_numpy(), codes)  # the problem texts per cell only where there are some
        prob = pd.Series(_take(prob_u.astype(object), codes), index=s.index) if bad.any() else ""
        bad_cells += ctx.ledger.problems_from_mask(out, bad, name, s, prob,
                                                   "excluded row (required column)" if name in REQUIRED
                                                   else "set missing")
        changed |= bad
        out[name] = taken if taken.dtype == "datetime64[ns]" else taken.astype("datetime64[ns]")
    for n in notes:
        ctx.ledger.note(n)
    ctx.ledger.record("dates", len(out), rows_changed=int(changed.sum()),
                      reason="; ".join(([f"{bad_cells} unreadable or impossible date(s) set missing"]
                                        if bad_cells else []) + notes))
    return out


def future_dates(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Dates after today (the day of cleaning) or before 1900 are problems and set missing."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    changed = np.zeros(len(out), dtype=bool)
    for name in [c.name for c in ctx.columns if c.kind == "date"] + ["date_of_birth"]:
        if name not in out.columns:
            continue
        s = out[name]
        for mask, why in ((s > ctx.today, "date in the future"), (s < EARLIEST_DATE, "date before 1900")):
            m = mask.to_numpy()
            if m.any():
                ctx.ledger.problems_from_mask(out, m, name, s, why,
                                              "excluded row (required column)" if name in REQUIRED
                                              else "set missing")
                changed |= m
                s = s.mask(m)
        out[name] = s
    ctx.ledger.record("future dates", len(out), rows_changed=int(changed.sum()),
                      reason=f"{int(changed.sum())} row(s) with a date after {ctx.today.date()} or before 1900"
                      if changed.any() else "")
    return out


def age_from_birth_date(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Age at index from a date of birth (when the export has one), which is then dropped (identifying).
    Age = whole days / 365.25. An age given in the export is kept where present."""
    if "date_of_birth" not in frame.columns:
        return frame
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    age = (out["index_date"] - out.pop("date_of_birth")).dt.days / 365.25
    if "age_years" in out.columns:
        fill = out["age_years"].isna() & age.notna()
        out["age_years"] = out["age_years"].where(~fill, age)
    else:
        fill = age.notna()
        out["age_years"] = age
    ctx.ledger.record("age from date of birth", len(out), rows_changed=int(fill.sum()),
                      reason="age_years derived from the date of birth (then dropped)")
    return out


def plausibility(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Numbers outside the schema's plausible range (age 0-110, dose 0-30 Gy, Brooker 0-4, GCS 3-15,
    TBSA 0-100 %, ...) are problems and set missing."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    changed = np.zeros(len(out), dtype=bool)
    for c in ctx.columns:
        if c.name not in out.columns or (c.low is None and c.high is None):
            continue
        s = out[c.name]
        bad = pd.Series(False, index=s.index)
        if c.low is not None:
            bad |= (s < c.low).fillna(False)
        if c.high is not None:
            bad |= (s > c.high).fillna(False)
        m = bad.to_numpy(dtype=bool)
        if m.any():
            rng = f"[{c.low:g}, {c.high:g}]" if c.high is not None else f">= {c.low:g}"
            ctx.ledger.problems_from_mask(out, m, c.name, s, f"outside the plausible range {rng}",
                                          "set missing")
            out[c.name] = s.mask(m)
            changed |= m
    ctx.ledger.record("plausible ranges", len(out), rows_changed=int(changed.sum()),
                      reason=f"{int(changed.sum())} row(s) with a value outside its plausible range"
                      if changed.any() else "")
    return out


CELL_RULES: tuple[Callable[[pd.DataFrame, Context], pd.DataFrame], ...] = (
    missing_tokens, map_values, coerce_strings, coerce_categories, coerce_booleans, coerce_numbers,
    parse_dates, future_dates, age_from_birth_date, plausibility,
)


def clean_cells(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Run the cell rules on one mapped source; returns a frame with canonical dtypes."""
    for rule in CELL_RULES:
        frame = rule(frame, ctx)
    return conform(frame, ctx)


def conform(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Canonical column order and dtypes (absent optional columns stay absent)."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    for c in ctx.columns:
        if c.name in out.columns and c.name not in ctx.keep_categorical:
            target = dtype_of(c, ctx.code_lists)
            if str(out[c.name].dtype) != str(target):
                out[c.name] = out[c.name].astype(target)
    cols = ["source_file", "source_row"] + [c.name for c in ctx.columns if c.name in out.columns]
    if list(out.columns) == cols:
        return out
    return pd.DataFrame({c: out[c] for c in cols}, index=out.index, copy=False)  # out[cols] copies every column


# --- row rules (whole cohort) ----------------------------------------------------------------------------

def required_values(frame: pd.DataFrame, ctx: Context, required: tuple[str, ...] = REQUIRED) -> pd.DataFrame:
    """Exclude rows without a usable value in a required column (patient_id, index_event, index_date)."""
    miss = pd.DataFrame({c: frame[c].isna().to_numpy() for c in required}, index=frame.index)
    bad = miss.any(axis=1)
    reasons = None
    if bad.any():
        sub = miss[bad]
        reasons = pd.Series("", index=sub.index, dtype=object)
        for c in required:
            reasons = reasons + np.where(sub[c], c + ", ", "")
        reasons = "no usable " + reasons.str.rstrip(", ")
        empty = frame.loc[bad, _data_columns(frame)].isna().all(axis=1)
        reasons = reasons.where(~empty, "empty row")
    ctx.ledger.record("required values", len(frame), excluded=frame[bad], row_reasons=reasons,
                      reason=f"no usable {' / '.join(required)}")
    return frame[~bad] if bad.any() else frame  # nothing excluded: no copy of the frame


def _row_ref(frame: pd.DataFrame) -> pd.Series:
    return "row " + frame["source_row"].astype(str) + " of " + frame["source_file"].astype(str)


def _column_codes(s: pd.Series) -> tuple[np.ndarray, int]:
    """(int64 codes, number of codes) of a column, -1 = missing: a Categorical's codes as they are; whole
    days (datetime64 at midnight) within a span not much longer than the column as day numbers (no
    hashing); otherwise pd.factorize."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy().astype(np.int64), len(s.cat.categories)
    if s.dtype == "datetime64[ns]" and len(s):
        v = s.to_numpy().view(np.int64)
        nat = v == np.iinfo(np.int64).min
        day, rest = np.divmod(v, 86_400_000_000_000)
        if not nat.all() and not rest[~nat].any():
            lo, hi = int(day[~nat].min()), int(day[~nat].max())
            if hi - lo <= 4 * len(s) + 100_000:
                return np.where(nat, -1, day - lo), hi - lo + 1
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int64), len(uniques)


def _combined_key(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One int64 per row, equal exactly when the rows' values of ``cols`` are equal (missing equals
    missing): each column coded once (:func:`_column_codes`), the codes combined arithmetically."""
    key = np.zeros(len(frame), dtype=np.int64)
    bound = 1
    for col in cols:
        codes, n_u = _column_codes(frame[col])
        if bound * (n_u + 1) >= 2**62:  # keep the combined key within int64: renumber it first
            key, uniques = pd.factorize(key)
            bound = len(uniques)
        key = key * (n_u + 1) + (codes + 1)   # code 0 = missing
        bound *= n_u + 1
    return key


def _row_groups(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Group number of each row by the values of ``cols`` (missing equals missing), numbered in order of
    first appearance. Each column is factorised once (a Categorical's codes are used as they are) and the
    codes combined into one integer key, so no row of text is hashed twice."""
    return pd.factorize(_combined_key(frame, cols))[0]


def _shares_key(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Rows whose values of ``cols`` another row shares: by sorting the combined key (a hash table over
    millions of mostly distinct keys is twice as slow)."""
    key = _combined_key(frame, cols)
    order = np.argsort(key)
    ks = key[order]
    eq = ks[1:] == ks[:-1]
    hit = np.zeros(len(key), dtype=bool)
    hit[1:] |= eq
    hit[:-1] |= eq
    out = np.empty(len(key), dtype=bool)
    out[order] = hit
    return out


def exact_duplicates(frame: pd.DataFrame, ctx: Context, keys: tuple[str, ...] = ("patient_id", "index_date")
                     ) -> pd.DataFrame:
    """Exclude exact duplicates (every canonical value equal) of an earlier row, which is kept."""
    cols = _data_columns(frame)
    # exact duplicates share the keys: compare only those candidates
    cand = _shares_key(frame, list(keys))
    dup = np.zeros(len(frame), dtype=bool)
    reasons = None
    if cand.any():
        pos = np.flatnonzero(cand)
        # the candidates' combined key over every data column, by sorting it (no hash table over millions
        # of mostly distinct keys); coded on the whole frame when most rows are candidates (no row copy)
        if len(pos) * 2 >= len(frame):
            key = _combined_key(frame, cols)[pos]
        else:
            key = _combined_key(frame.iloc[pos], cols)
        order = np.argsort(key)
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        # the first row (in frame order) of each run of equal keys, for every row of the run
        first_sorted = np.repeat(np.minimum.reduceat(order, starts), np.diff(np.r_[starts, len(ks)]))
        first = np.empty(len(key), dtype=np.intp)
        first[order] = first_sorted
        sub_dup = first != np.arange(len(key))
        dup[pos[sub_dup]] = True
        first = pos[first[sub_dup]]             # position in the frame of the first row with the same values
        reasons = pd.Series("exact duplicate of " + _row_ref(frame.iloc[first]).to_numpy(),
                            index=frame.index[pos[sub_dup]])
    ctx.ledger.record("exact duplicates", len(frame), excluded=frame[dup], row_reasons=reasons,
                      reason="exact duplicate of an earlier row")
    return frame[~dup] if dup.any() else frame


def _group_rows(sub: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Per row: 'conflicting records ... (rows 5, 9)' naming the source rows of every row with the same
    ``keys`` (in frame order); NaN where a key is missing (such rows form no group). One string per group,
    not one Python call per row (thousands of groups in a large export)."""
    g = _row_groups(sub, keys)
    na = np.zeros(len(sub), dtype=bool)
    for k in keys:
        na |= sub[k].isna().to_numpy()
    order = np.argsort(g, kind="stable")
    gs = g[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    rows = sub["source_row"].astype(str).to_numpy(dtype=object)[order]
    text = np.empty(len(starts), dtype=object)
    for i, (a, b) in enumerate(zip(starts, np.r_[starts[1:], len(gs)], strict=True)):
        text[i] = "conflicting records for the same patient and index date (rows " + ", ".join(rows[a:b]) + ")"
    per_group = np.empty(g.max() + 1 if len(g) else 0, dtype=object)
    per_group[gs[starts]] = text
    out = per_group[g]
    out[na] = np.nan
    return out


def conflicting_duplicates(frame: pd.DataFrame, ctx: Context, keys: tuple[str, ...] = ("patient_id", "index_date")
                           ) -> pd.DataFrame:
    """Exclude ALL records of a patient and index date that appear more than once with different values."""
    conflict = _shares_key(frame, list(keys))
    reasons = None
    if conflict.any():
        sub = frame[conflict]
        reasons = pd.Series(_group_rows(sub, list(keys)), index=sub.index, dtype=object)
    ctx.ledger.record("conflicting duplicates", len(frame), excluded=frame[conflict], row_reasons=reasons,
                      reason="several different records for the same patient_id and index_date")
    return frame[~conflict] if conflict.any() else frame


def _blank(frame: pd.DataFrame, ctx: Context, step: str, mask: pd.Series, column: str, problem: str,
           action: str | None = None) -> pd.DataFrame:
    """Set ``column`` missing where ``mask``, recording one problem per cell and a ledger step."""
    m = mask.fillna(False).to_numpy(dtype=bool) if hasattr(mask, "fillna") else np.asarray(mask, bool)
    out = frame
    if m.any():
        s = frame[column]
        ctx.ledger.problems_from_mask(frame, m, column, s, problem, action or f"{column} set missing")
        out = frame.copy(deep=False)  # rules assign whole columns, never write into them
        out[column] = s.mask(m)
    ctx.ledger.record(step, len(frame), rows_changed=int(m.sum()), reason=problem if m.any() else "")
    return out


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or an all-missing stand-in when the export lacks it (optional columns)."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(pd.NA, index=frame.index, dtype="object")


def dates_before_index(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """ho_date, death_date and last_followup_date before index_date are set missing."""
    for col in ("ho_date", "death_date", "last_followup_date"):
        if col in frame.columns:
            frame = _blank(frame, ctx, f"{col} before index_date", frame[col] < frame["index_date"], col,
                           f"{col} before index_date")
    return frame


def ho_after_death(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """HO first detected after death is set missing (ho_date)."""
    if {"ho_date", "death_date"} <= set(frame.columns):
        frame = _blank(frame, ctx, "ho_date after death_date", frame["ho_date"] > frame["death_date"],
                       "ho_date", "ho_date after death_date")
    return frame


def followup_consistency(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """last_followup_date after death or before HO detection (HO detection is itself a contact) is set
    missing; follow-up then ends at death or HO."""
    if "last_followup_date" not in frame.columns:
        return frame
    if "death_date" in frame.columns:
        frame = _blank(frame, ctx, "last follow-up after death", frame["last_followup_date"] > frame["death_date"],
                       "last_followup_date", "last_followup_date after death_date")
    if "ho_date" in frame.columns:
        frame = _blank(frame, ctx, "ho_date after last contact", frame["ho_date"] > frame["last_followup_date"],
                       "last_followup_date", "ho_date after last_followup_date (HO detection is a contact)")
    return frame


def ho_and_date(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """ho missing with an ho_date -> ho true; ho false with an ho_date -> ho_date set missing; ho true
    without an ho_date is flagged (its time to HO is unknown)."""
    if "ho" not in frame.columns or "ho_date" not in frame.columns:
        return frame
    has_date = frame["ho_date"].notna()
    fill = (frame["ho"].isna() & has_date).to_numpy()
    out = frame
    if fill.any():
        ctx.ledger.problems_from_mask(frame, fill, "ho", frame["ho"], "ho missing but ho_date given",
                                      "ho set true")
        out = frame.copy(deep=False)  # rules assign whole columns, never write into them
        out["ho"] = out["ho"].mask(fill, True)
    ctx.ledger.record("ho from ho_date", len(frame), rows_changed=int(fill.sum()),
                      reason="ho missing but ho_date given: ho set true" if fill.any() else "")
    out = _blank(out, ctx, "ho_date without ho", (out["ho"] == False) & has_date, "ho_date",  # noqa: E712
                 "ho_date given but ho is false")
    flag = ((out["ho"] == True) & out["ho_date"].isna()).fillna(False).to_numpy()  # noqa: E712
    ctx.ledger.problems_from_mask(out, flag, "ho_date", out["ho_date"],
                                  "ho is true but ho_date is missing (time to HO unknown)", "flagged")
    return out


def brooker_implies_ho(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """brooker_grade > 0 means HO on imaging: with ho false the grade is set missing."""
    if not {"brooker_grade", "ho"} <= set(frame.columns):
        return frame
    return _blank(frame, ctx, "brooker_grade without ho", (frame["brooker_grade"] > 0) & (frame["ho"] == False),  # noqa: E712
                  "brooker_grade", "brooker_grade > 0 but ho is false")


def radiotherapy_dose(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """A dose without radiotherapy prophylaxis is set missing; radiotherapy without a dose is flagged."""
    if not {"prophylaxis", "rt_dose_gy"} <= set(frame.columns):
        return frame
    rt = frame["prophylaxis"].isin(["radiotherapy", "radiotherapy_nsaid"])
    no_rt = frame["prophylaxis"].notna() & ~rt
    out = _blank(frame, ctx, "dose without radiotherapy", no_rt & (frame["rt_dose_gy"] > 0), "rt_dose_gy",
                 "rt_dose_gy given but prophylaxis is not radiotherapy")
    flag = (rt & out["rt_dose_gy"].isna()).to_numpy()
    ctx.ledger.problems_from_mask(out, flag, "rt_dose_gy", out["rt_dose_gy"],
                                  "radiotherapy without a dose", "flagged")
    return out


def nsaid_agent_consistency(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """NSAID prophylaxis with nsaid_agent 'none' is a contradiction: the agent is set missing."""
    if not {"prophylaxis", "nsaid_agent"} <= set(frame.columns):
        return frame
    nsaid = frame["prophylaxis"].isin(["nsaid", "radiotherapy_nsaid"])
    return _blank(frame, ctx, "nsaid prophylaxis without agent", nsaid & (frame["nsaid_agent"] == "none"),
                  "nsaid_agent", "prophylaxis includes an NSAID but nsaid_agent is 'none'")


ROW_RULES: tuple[Callable[[pd.DataFrame, Context], pd.DataFrame], ...] = (
    required_values, exact_duplicates, conflicting_duplicates, dates_before_index, ho_after_death,
    followup_consistency, ho_and_date, brooker_implies_ho, radiotherapy_dose, nsaid_agent_consistency,
)


def clean_rows(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Run the row rules (exclusions, duplicates, logical consistency) on the combined episodes."""
    for rule in ROW_RULES:
        frame = rule(frame, ctx)
    return _renumbered(frame)


def _renumbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame.reset_index(drop=True)`` without copying every column (reset_index copies them)."""
    out = frame.copy(deep=False)
    out.index = pd.RangeIndex(len(out))
    return out


# --- derivations -------------------------------------------------------------------------------------------

def derive_outcomes(frame: pd.DataFrame) -> pd.DataFrame:
    """followup_days (index to last contact: death, else last follow-up), status (1 HO, 2 death without HO
    before it, 0 censored; missing when ho is missing) and time_days (to HO, death or last follow-up)."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    idx = out["index_date"]
    death = _col(out, "death_date") if "death_date" in out else pd.Series(pd.NaT, index=out.index)
    last = _col(out, "last_followup_date") if "last_followup_date" in out else pd.Series(pd.NaT, index=out.index)
    hodate = out["ho_date"] if "ho_date" in out else pd.Series(pd.NaT, index=out.index)
    death, last, hodate = (pd.to_datetime(x) for x in (death, last, hodate))
    contact = death.where(death.notna(), last)
    out["followup_days"] = (contact - idx).dt.days.astype("float64")
    ho = out["ho"].astype("boolean") if "ho" in out else pd.Series(pd.NA, index=out.index, dtype="boolean")
    died = death.notna()
    status = pd.Series(np.where(ho.fillna(False), 1, np.where(died, 2, 0)), index=out.index).astype("Int64")
    # HO unknown: so is the outcome (HO may have preceded a death); time_days is then missing too
    status = status.mask(ho.isna().to_numpy())
    out["status"] = status
    end = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
    st = status.fillna(-1).to_numpy(dtype=np.int64)  # NA status: no end of follow-up
    end = end.mask(st == 1, hodate).mask(st == 2, death).mask(st == 0, last)
    out["time_days"] = (end - idx).dt.days.astype("float64")
    return out


def _shared_codes(ep_ids: pd.Series, ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of patient ids in the episodes and in another table (-1: missing or not an episode's
    patient). A Categorical ``ids`` is matched through its distinct values only."""
    ep_codes, uniq = pd.factorize(np.asarray(ep_ids.astype(object), dtype=object))
    index = pd.Index(uniq, dtype=object)
    if isinstance(ids.dtype, pd.CategoricalDtype):
        cat = index.get_indexer(pd.Index(np.asarray(ids.cat.categories, dtype=object), dtype=object))
        codes = ids.cat.codes.to_numpy()
        return ep_codes, np.where(codes >= 0, cat[np.maximum(codes, 0)] if len(cat) else -1, -1)
    return ep_codes, index.get_indexer(pd.Index(np.asarray(ids.astype(object), dtype=object), dtype=object))


def _days(s: pd.Series) -> np.ndarray:
    """Whole days since 1970 of a normalised datetime column (int64)."""
    return s.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def interval_bounds(frame: pd.DataFrame, assessments: pd.DataFrame | None) -> pd.DataFrame:
    """Interval-censoring bounds from the assessments (days from index_date): lo = last negative imaging
    before the first positive one (0 if none), hi = first positive imaging (inf if none), and the imaging
    test that set each (``ho_interval_lo_test``/``ho_interval_hi_test``; missing where no image set it). The
    test is what a detection-lag correction needs: an x-ray turns positive weeks after onset, a bone scan
    earlier. Same-day ties go to the tighter onset bound (``schema.IMAGING_BY_DETECTION_LAG``). An assessment
    belongs to the patient's latest episode with index_date on or before it. Episodes without imaging:
    all missing."""
    out = frame.copy(deep=False)  # rules assign whole columns, never write into them
    n = len(out)
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    # rank of each test by detection lag; -1 = no image set the bound
    lo_rank = np.full(n, len(IMAGING_BY_DETECTION_LAG), dtype=np.int64)
    hi_rank = np.full(n, -1, dtype=np.int64)
    if assessments is not None and len(assessments) and n:
        img = assessments[assessments["test"].isin(IMAGING_TESTS) & assessments["result"].notna()
                          & assessments["date"].notna()]
        ep_code, a_code = _shared_codes(out["patient_id"], img["patient_id"])
        ep_ok = (ep_code >= 0) & out["index_date"].notna().to_numpy()
        ok = a_code >= 0
        if ep_ok.any() and ok.any():
            # the as-of join by patient as one sorted search: key = patient code, then day
            ep_day, a_day = _days(out["index_date"]), _days(img["date"])
            d0 = min(ep_day[ep_ok].min(), a_day[ok].min())
            span = max(ep_day[ep_ok].max(), a_day[ok].max()) - d0 + 1
            ep_rows = np.flatnonzero(ep_ok)
            ep_key = ep_code[ep_rows] * span + (ep_day[ep_rows] - d0)
            order = np.argsort(ep_key, kind="stable")
            ep_key, ep_rows = ep_key[order], ep_rows[order]
            a_rows = np.flatnonzero(ok)
            a_key = a_code[a_rows] * span + (a_day[a_rows] - d0)
            j = np.searchsorted(ep_key, a_key, side="right") - 1
            jj = np.maximum(j, 0)
            same = (j >= 0) & (ep_key[jj] // span == a_code[a_rows])
            episode = ep_rows[jj[same]]
            a_rows = a_rows[same]
            day = (a_day[a_rows] - ep_day[episode]).astype("float64")
            pos = (img["result"].to_numpy(dtype=object)[a_rows] == "positive")
            rank = pd.Categorical(img["test"].to_numpy(dtype=object)[a_rows],
                                  categories=IMAGING_BY_DETECTION_LAG).codes.astype(np.int64)
            first_pos = np.full(n, np.inf)
            np.minimum.at(first_pos, episode[pos], day[pos])
            neg = ~pos & (day < first_pos[episode])
            last_neg = np.full(n, -np.inf)
            np.maximum.at(last_neg, episode[neg], day[neg])
            at_hi = pos & (day == first_pos[episode])      # longest lag among the first positives
            np.maximum.at(hi_rank, episode[at_hi], rank[at_hi])
            at_lo = neg & (day == last_neg[episode])       # shortest lag among the last negatives
            np.minimum.at(lo_rank, episode[at_lo], rank[at_lo])
            has = np.zeros(n, dtype=bool)
            has[episode] = True
            lo[has] = np.where(np.isfinite(last_neg[has]), last_neg[has], 0.0)
            hi[has] = first_pos[has]
    out["ho_interval_lo_days"] = lo
    out["ho_interval_hi_days"] = hi
    tests = np.array(IMAGING_BY_DETECTION_LAG + (None,), dtype=object)
    last = len(IMAGING_BY_DETECTION_LAG)
    out["ho_interval_lo_test"] = pd.array(tests[np.where(lo_rank < last, lo_rank, last)], dtype="string")
    out["ho_interval_hi_test"] = pd.array(tests[np.where(hi_rank >= 0, hi_rank, last)], dtype="string")
    return out


# --- assessments ------------------------------------------------------------------------------------------

def clean_assessments(frame: pd.DataFrame, ctx: Context, *, ids_as_category: bool = False) -> pd.DataFrame:
    """Clean an assessments table (long format: patient_id, date, test, result, value) with the same
    rules; rows without patient_id, date or test are excluded, exact duplicates removed.

    patient_id stays a Categorical through the row rules (millions of rows, few distinct ids) and becomes
    'string' at the end, unless ``ids_as_category`` (for :func:`interval_bounds`; convert with
    :func:`as_string`)."""
    actx = Context(ctx.ledger, ctx.mapping, ctx.today, ASSESSMENT_COLUMNS, dict(ASSESSMENT_CODE_LISTS),
                   keep_categorical=("patient_id",))
    for rule in (missing_tokens, map_values, coerce_strings, coerce_categories, coerce_numbers, parse_dates,
                 future_dates, plausibility):
        frame = rule(frame, actx)
    frame = conform(frame, actx)
    frame = required_values(frame, actx, required=("patient_id", "date", "test"))
    frame = exact_duplicates(frame, actx, keys=("patient_id", "date"))
    imaging = frame["test"].isin(IMAGING_TESTS)
    ctx.ledger.problems_from_mask(frame, (imaging & frame["result"].isna()).to_numpy(), "result",
                                  frame["result"], "imaging without a positive/negative result",
                                  "flagged (not used for HO intervals)")
    frame = _renumbered(frame)
    if not ids_as_category:
        frame["patient_id"] = as_string(frame["patient_id"])
    return frame


def require_rows(frame: pd.DataFrame, name: str) -> None:
    if frame.empty:
        raise DataError("the source has a header but no data rows", file=name)
