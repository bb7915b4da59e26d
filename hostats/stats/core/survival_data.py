"""Time-to-event input checks, the covariate matrix of hazard models and the K-sample score chi-square,
shared by ``kaplan_meier``, ``cox``, ``cumulative_incidence``, ``fine_gray`` and ``interval_censored``.

Every problem is a :class:`hostats.errors.DataError` naming the column and the offending rows (index
labels of the DataFrame), so no NaN travels into an estimate. The estimators drop rows with missing values
beforehand, counted, by the one complete-case rule (:func:`hostats.stats.core.validate.complete_cases`);
these checks then catch what is present but invalid (``require_columns`` and ``row_labels``: in
:mod:`hostats.stats.core.validate`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hostats.errors import DataError, EstimationError
from hostats.stats.core.formula import build_design, split_formula
from hostats.stats.core.validate import binary_array
from hostats.stats.core.validate import row_labels as _rows

__all__ = ["numeric_column", "time_array", "event_array", "status_array", "weight_array",
           "label_array", "group_codes", "covariate_matrix", "score_chisq"]


def numeric_column(data: pd.DataFrame, column: str, role: str, unit: str | None = None) -> np.ndarray:
    """A numeric (not boolean) column as float, missing values as NaN; otherwise a DataError."""
    raw = data[column]
    if not pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        unit_text = f" ({unit})" if unit else ""
        raise DataError(f"{role} column {column!r} must be numeric{unit_text}, got {raw.dtype}", column=column)
    return raw.to_numpy(dtype=float, na_value=np.nan)


def time_array(data: pd.DataFrame, column: str) -> np.ndarray:
    """Follow-up times as float: numeric, present, finite and non-negative, or a DataError."""
    t = numeric_column(data, column, "time", "days, months, ...")
    bad = np.isnan(t)
    if bad.any():
        raise DataError(f"time column {column!r} has {int(bad.sum())} missing value(s) in rows "
                        f"{_rows(bad, data.index)}; remove or impute them before fitting", column=column)
    bad = ~np.isfinite(t)
    if bad.any():
        raise DataError(f"time column {column!r} has infinite values in rows {_rows(bad, data.index)}",
                        column=column)
    bad = t < 0
    if bad.any():
        raise DataError(f"time column {column!r} has negative times in rows {_rows(bad, data.index)}; "
                        "check the dates (event before index?)", column=column)
    return t


def event_array(data: pd.DataFrame, column: str) -> np.ndarray:
    """Event indicator as bool: True/False or 1/0, nothing else, nothing missing."""
    return binary_array(data, column, "event", "1 (event) or 0 (censored)",
                        " (for competing risks use cumulative_incidence with the status column)")


def status_array(data: pd.DataFrame, column: str, cause: int) -> np.ndarray:
    """Competing-risks status as int: 0 censored, 1..k causes. Missing, negative or non-integer codes are
    errors; ``cause`` must be a positive integer code."""
    raw = data[column]
    if raw.isna().any():
        bad = raw.isna().to_numpy()
        raise DataError(f"status column {column!r} has missing values in rows {_rows(bad, data.index)}; "
                        "code them 0 (censored), 1 (event of interest) or 2.. (competing event)",
                        column=column)
    if pd.api.types.is_bool_dtype(raw) or not pd.api.types.is_numeric_dtype(raw):
        raise DataError(f"status column {column!r} must hold integer codes 0 (censored), 1..k (causes); "
                        f"got dtype {raw.dtype}", column=column)
    s = raw.to_numpy(dtype=float)
    bad = (s < 0) | (s != np.round(s)) | ~np.isfinite(s)
    if bad.any():
        raise DataError(f"status column {column!r} has unknown codes {sorted(set(s[bad].tolist()))[:5]} in "
                        f"rows {_rows(bad, data.index)}; allowed: 0 censored, 1..k event causes",
                        column=column)
    if not float(cause).is_integer() or cause < 1:
        raise ValueError(f"cause must be a positive integer status code, got {cause!r}")
    return s.astype(np.int64)


def weight_array(data: pd.DataFrame, column: str | None) -> np.ndarray | None:
    """Case weights: finite and strictly positive."""
    if column is None:
        return None
    w = numeric_column(data, column, "weights")
    bad = ~np.isfinite(w)
    if bad.any():
        raise DataError(f"weights column {column!r} has missing or infinite values in rows "
                        f"{_rows(bad, data.index)}", column=column)
    bad = w <= 0
    if bad.any():
        raise DataError(f"weights column {column!r} must be positive; rows {_rows(bad, data.index)} are not",
                        column=column)
    return w


def label_array(data: pd.DataFrame, column: str, role: str) -> pd.Series:
    """A grouping column (group, strata, cluster) without missing values."""
    raw = data[column]
    bad = raw.isna().to_numpy()
    if bad.any():
        raise DataError(f"{role} column {column!r} has missing values in rows {_rows(bad, data.index)}; "
                        "recode them (e.g. as 'unknown') or exclude the rows explicitly", column=column)
    return raw


def group_codes(data: pd.DataFrame, group: str | None) -> tuple[np.ndarray, list]:
    """Integer codes 0..k-1 and their labels for a grouping column (one group ``"all"`` when None).

    A Categorical keeps its category order (unused categories dropped); other columns are sorted.
    """
    if group is None:
        return np.zeros(len(data), dtype=np.int64), ["all"]
    raw = label_array(data, group, "group")
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.cat.remove_unused_categories()
        return raw.cat.codes.to_numpy(np.int64), list(raw.cat.categories)
    codes, labels = pd.factorize(raw, sort=True)
    return codes.astype(np.int64), list(labels)


def covariate_matrix(data: pd.DataFrame, formula: str, measure: str,
                     alternative: str) -> tuple[np.ndarray, list[str], dict[str, list[int]]]:
    """Covariate matrix of a hazard model from a right-hand-side formula ("age + C(site)").

    Built by the shared formula engine (:mod:`hostats.stats.core.formula`: the same columns as ``logistic``
    without the intercept, which the baseline hazard absorbs) on complete rows. Returns the matrix, its
    column names and the columns of each formula term. A constant covariate is an EstimationError (its
    ``measure``, e.g. "hazard ratio", is not estimable); ``alternative`` names the estimator to use
    without covariates.
    """
    _, rhs = split_formula(formula, outcome=False)
    if not rhs:
        raise DataError(f"the formula {formula!r} has no covariates; use {alternative} for a model without them")
    design, X = build_design(data, rhs, formula, intercept=False)
    if not design.names:
        raise DataError(f"the formula {formula!r} gives no covariate columns; use {alternative} for a model "
                        "without them")
    for name, col in zip(design.names, X.T, strict=True):
        if np.all(col == col[0]):
            raise EstimationError(f"covariate {name!r} is constant, so its {measure} cannot be estimated; "
                                  "remove it from the formula")
    return np.ascontiguousarray(X), design.names, design.terms


def score_chisq(u: np.ndarray, v: np.ndarray, singular: str) -> tuple[float, int, float]:
    """K-sample score test: u' V^-1 u, chi-square with len(u) degrees of freedom, and its p-value.

    ``u`` holds the scores of the first K-1 groups and ``v`` their covariance (log-rank, Gray's test); a
    singular ``v`` is an EstimationError with the message ``singular``.
    """
    from scipy import stats

    try:
        stat = float(u @ np.linalg.solve(v, u))
    except np.linalg.LinAlgError as exc:
        raise EstimationError(singular) from exc
    df = int(u.size)
    return stat, df, float(stats.chi2.sf(stat, df))
