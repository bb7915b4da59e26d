"""Frequency tables: the input of the estimators that work from sufficient statistics.

A frequency table has one row per distinct combination of values (a covariate pattern, a group and a
follow-up time and status, ...) and a ``count`` column saying how many people (rows of the row-level
data) share it. The row-level data are the special case ``count == 1``; every estimator that takes a
frequency table (``kaplan_meier_counts``, ``cumulative_incidence_counts``, ``logistic_counts``) gives what
its row-level form gives on the rows the table stands for, and counts people, never table rows, in ``n``,
``events`` and ``n_missing``.

The missing-data rule is the row-level one (:func:`hostats.stats.core.validate.complete_cases`): rows of
the table with a missing value in a column the estimator uses are left out, and the message counts the
people they stand for.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hostats.errors import DataError
from hostats.stats.core.validate import require_columns
from hostats.stats.core.validate import row_labels as _rows

__all__ = ["count_array", "complete_counts"]


def count_array(data: pd.DataFrame, column: str) -> np.ndarray:
    """The count column as int64: numeric, present, whole and non-negative, or a DataError naming rows."""
    raw = data[column]
    if not pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        raise DataError(f"count column {column!r} must hold whole numbers of people, got {raw.dtype}",
                        column=column)
    c = raw.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(c) | (c < 0) | (c != np.round(c))
    if bad.any():
        raise DataError(f"count column {column!r} must hold whole non-negative numbers; not so in rows "
                        f"{_rows(bad, data.index)}", column=column)
    return c.astype(np.int64)


def complete_counts(data: pd.DataFrame, columns: Sequence[str], count: str,
                    estimator: str) -> tuple[pd.DataFrame, list[str], int]:
    """The rows of a frequency table with a positive count and no missing value in ``columns``, the
    complete-case message (zero or one, counting people) and the number of people left out.

    Rows with count 0 stand for nobody and are dropped silently. No person left is a DataError.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame (a frequency table with a count column)")
    cols = list(dict.fromkeys(c for c in columns if c is not None))
    require_columns(data, [*cols, count])
    n = count_array(data, count)
    data = data.loc[n > 0]
    n = n[n > 0]
    if not n.size:
        raise DataError(f"{estimator}: the frequency table counts nobody (column {count!r})", column=count)
    miss = data[cols].isna().to_numpy()
    drop = miss.any(axis=1)
    k = int(n[drop].sum())
    if not k:
        return data, [], 0
    per_col = ", ".join(f"{c!r} ({int(n[miss[:, j]].sum())})" for j, c in enumerate(cols) if miss[:, j].any())
    if drop.all():
        raise DataError(f"{estimator}: no complete rows; missing values in {per_col}", column=cols[0])
    msg = (f"complete-case analysis: {k} of {int(n.sum())} rows dropped for missing values "
           f"(missing per column: {per_col})")
    warnings.warn(f"{estimator}: {msg}", UserWarning, stacklevel=3)
    return data.loc[~drop], [msg], k
