"""Input checks shared by the estimators.

Aggregate inputs (counts, totals, person-time, effect sizes; incidence and meta): each check raises
``ValueError`` naming the offending groups or studies by their labels, so a caller never gets a silent NaN.
``where`` is the phrase before the labels ("in group(s)", "for study").

Patient-level data (every regression-type and curve estimator): ``require_columns``, the missing-data
policy ``complete_cases`` and ``binary_array``; problems are :class:`hostats.errors.DataError` naming the
column and the rows (index labels of the DataFrame).

Missing-data policy (one for ``logistic``, ``cox``, ``fine_gray``, ``iptw``, ``kaplan_meier`` and
``cumulative_incidence``): complete-case analysis on the columns the estimator uses (outcome, time,
event/status, formula variables or confounders, treatment, weights, cluster, strata, group). Rows with a
missing value there are left out; the result's ``warnings`` (and a ``UserWarning``) say how many rows were
dropped and how many were missing in each column, the result's ``n`` counts the analysed rows and
``n_missing`` the dropped ones. Values that are present but invalid (negative times, unknown codes) are
errors, never dropped.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import DataError


def as_vector(values: Any, name: str) -> tuple[np.ndarray, pd.Index | None]:
    """Flatten a scalar / array-like / Series to a float array, keeping a Series index for labels."""
    index = values.index if isinstance(values, pd.Series) else None
    if isinstance(values, pd.Series):
        values = values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers, got {values!r}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a scalar or one-dimensional, got shape {arr.shape}")
    return arr, index


def name_items(mask: np.ndarray, labels: Sequence | pd.Index, quote: bool = True, limit: int = 5) -> str:
    """The labels where ``mask`` is true, the first ``limit`` of them, then "and N more"."""
    hits = np.flatnonzero(np.asarray(mask))
    shown = [repr(labels[i]) if quote else str(labels[i]) for i in hits[:limit]]
    more = hits.size - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def item_labels(k: int, given: Any, indexes: Sequence[pd.Index | None], default: list, name: str,
                unit: str, skip_range_index: bool = False) -> list:
    """Labels of ``k`` groups or studies: ``given`` (``k`` of them), else the first Series index in
    ``indexes`` (a plain RangeIndex skipped when ``skip_range_index``), else ``default``."""
    if given is not None:
        out = list(np.atleast_1d(np.asarray(given, dtype=object)))
        if len(out) != k:
            raise ValueError(f"{name} has {len(out)} entries for {k} {unit}")
        return out
    for index in indexes:
        if index is not None and not (skip_range_index and isinstance(index, pd.RangeIndex)):
            return list(index)
    return default


def require_finite(values: np.ndarray, labels: Sequence, name: str, where: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{name} is missing or not finite {where} {name_items(bad, labels)}")


def check_counts(values: np.ndarray, labels: Sequence, name: str, where: str) -> None:
    """Counts: present, finite, non-negative whole numbers."""
    require_finite(values, labels, name, where)
    bad = values < 0
    if bad.any():
        raise ValueError(f"{name} must be non-negative; it is negative {where} {name_items(bad, labels)}")
    bad = values != np.round(values)
    if bad.any():
        raise ValueError(f"{name} must be whole numbers; not so {where} {name_items(bad, labels)}")


def check_binomial(events: np.ndarray, totals: np.ndarray, labels: Sequence, where: str,
                   totals_name: str = "n") -> None:
    """Binomial data: both counts valid, every total at least 1 and events <= total."""
    check_counts(events, labels, "events", where)
    check_counts(totals, labels, totals_name, where)
    bad = totals == 0
    if bad.any():
        raise ValueError(f"{totals_name} is 0 {where} {name_items(bad, labels)}: a proportion needs at least "
                         "one unit")
    bad = events > totals
    if bad.any():
        raise ValueError(f"events exceed {totals_name} {where} {name_items(bad, labels)}")


# --------------------------------------------------------------------------------------------------
# patient-level data
# --------------------------------------------------------------------------------------------------

def row_labels(mask: np.ndarray, index: pd.Index) -> str:
    """The first offending row labels (index labels of the DataFrame), unquoted."""
    return name_items(mask, index, quote=False)


def require_columns(data: pd.DataFrame, columns: Sequence[str]) -> None:
    """A DataFrame with rows that has every column (each absent one named, with the columns it has)."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    for col in columns:
        if col not in data.columns:
            raise DataError(f"column {col!r} is not in the data; columns are {list(data.columns)}",
                            column=col)
    if len(data) == 0:
        raise DataError("the data have no rows")


def complete_cases(data: pd.DataFrame, columns: Sequence[str],
                   estimator: str) -> tuple[pd.DataFrame, list[str], int]:
    """The rows complete in ``columns`` (the data themselves when nothing is missing), the warning (a
    list with zero or one message) and the number of rows dropped.

    The policy is in the module docstring. The message counts the dropped rows and the missing values of
    each column; it is also issued as a ``UserWarning``. No complete row left is a DataError.
    """
    cols = list(dict.fromkeys(c for c in columns if c is not None))
    require_columns(data, cols)
    miss = data[cols].isna()
    per_col = miss.sum()
    drop = miss.any(axis=1).to_numpy()
    k = int(drop.sum())
    if not k:
        return data, [], 0
    detail = ", ".join(f"{c!r} ({int(v)})" for c, v in per_col.items() if v)
    if k == len(data):
        raise DataError(f"{estimator}: no complete rows; missing values in {detail}", column=cols[0])
    msg = (f"complete-case analysis: {k} of {len(data)} rows dropped for missing values "
           f"(missing per column: {detail})")
    warnings.warn(f"{estimator}: {msg}", UserWarning, stacklevel=3)
    return data.loc[~drop], [msg], k


def binary_array(data: pd.DataFrame, column: str, role: str, codes: str = "binary (0/1 or true/false)",
                 advice: str = "") -> np.ndarray:
    """A binary column (True/False or 1/0, nothing else, nothing missing) as bool; ``codes`` says what
    is allowed in the error message, ``advice`` is appended to it."""
    raw = data[column]
    bad = raw.isna().to_numpy()
    if bad.any():
        raise DataError(f"{role} column {column!r} has missing values in rows {row_labels(bad, data.index)}",
                        column=column)
    if pd.api.types.is_bool_dtype(raw):
        return raw.to_numpy(dtype=bool)
    if not pd.api.types.is_numeric_dtype(raw):
        raise DataError(f"{role} column {column!r} must be {codes}; got values "
                        f"{sorted(map(str, raw.unique()))[:5]} (dtype {raw.dtype}){advice}", column=column)
    e = raw.to_numpy(dtype=float)
    bad = (e != 0) & (e != 1)
    if bad.any():
        raise DataError(f"{role} column {column!r} must be {codes}; rows {row_labels(bad, data.index)} have "
                        f"other values (e.g. {e[bad][0]:g}){advice}", column=column)
    return e == 1
