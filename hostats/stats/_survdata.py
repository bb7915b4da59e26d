"""Time-to-event input checks, the covariate matrix of hazard models and the K-sample score chi-square,
shared by ``kaplan_meier``, ``cox``, ``cumulative_incidence``, ``fine_gray`` and ``interval_censored``.

Every problem is a :class:`hostats.errors.DataError` naming the column and the offending rows (index
labels of the DataFrame), so nothing is dropped silently and no NaN travels into an estimate.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hostats.errors import DataError, EstimationError
from hostats.stats._validate import name_items


def _rows(mask: np.ndarray, index: pd.Index) -> str:
    """The first offending row labels (index labels of the DataFrame), unquoted."""
    return name_items(mask, index, quote=False)


def require_columns(data: pd.DataFrame, columns: list[str]) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    for col in columns:
        if col not in data.columns:
            raise DataError(f"column {col!r} is not in the data; columns are {list(data.columns)}",
                            column=col)
    if len(data) == 0:
        raise DataError("the data have no rows")


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
    raw = data[column]
    if raw.isna().any():
        bad = raw.isna().to_numpy()
        raise DataError(f"event column {column!r} has missing values in rows {_rows(bad, data.index)}",
                        column=column)
    if pd.api.types.is_bool_dtype(raw):
        return raw.to_numpy(dtype=bool)
    if not pd.api.types.is_numeric_dtype(raw):
        raise DataError(f"event column {column!r} must be 1/0 or True/False, got dtype {raw.dtype}",
                        column=column)
    e = raw.to_numpy(dtype=float)
    bad = (e != 0) & (e != 1)
    if bad.any():
        raise DataError(f"event column {column!r} must be 1 (event) or 0 (censored); rows "
                        f"{_rows(bad, data.index)} have other values (for competing risks use "
                        "cumulative_incidence with the status column)", column=column)
    return e == 1


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
    """Covariate matrix for a hazard model from a right-hand-side formula ("age + C(site)"), via formulaic.

    No intercept (the baseline hazard absorbs it); factors get R's treatment coding, full rank. Returns
    the matrix, its column names and the columns of each formula term. Unknown or missing covariates are
    a DataError naming the column and rows; a constant covariate is an EstimationError (its ``measure``,
    e.g. "hazard ratio", is not estimable). ``alternative`` names the estimator to use without covariates.
    """
    import formulaic

    rhs = formula.split("~", 1)[1] if "~" in formula else formula
    if not rhs.strip():
        raise DataError(f"the formula {formula!r} has no covariates; use {alternative} for a model without them")
    try:
        needed = sorted(formulaic.Formula(rhs).required_variables)
    except Exception as exc:  # formulaic's parse errors are not user-friendly on their own
        raise DataError(f"cannot parse the formula {formula!r}: {exc}") from exc
    for var in needed:
        if var not in data.columns:
            raise DataError(f"formula variable {var!r} is not in the data; columns are {list(data.columns)}",
                            column=var)
        bad = data[var].isna().to_numpy()
        if bad.any():
            raise DataError(f"covariate {var!r} has missing values in rows {_rows(bad, data.index)}; "
                            "impute them or exclude the rows explicitly (nothing is dropped silently)",
                            column=var)
    mm = formulaic.model_matrix(rhs, data, na_action="raise", output="numpy")  # no DataFrame copy
    names = list(mm.model_spec.column_names)
    keep = [i for i, c in enumerate(names) if c != "Intercept"]
    X = np.asarray(mm, dtype=float)[:, keep]
    names = [names[i] for i in keep]
    terms: dict[str, list[int]] = {}
    for term, idx in mm.model_spec.term_indices.items():
        cols = [keep.index(i) for i in idx if i in keep]
        if cols:
            terms[str(term)] = cols
    if not names:
        raise DataError(f"the formula {formula!r} gives no covariate columns")
    for name, col in zip(names, X.T, strict=True):
        if np.all(col == col[0]):
            raise EstimationError(f"covariate {name!r} is constant, so its {measure} cannot be estimated; "
                                  "remove it from the formula")
    return np.ascontiguousarray(X), names, terms


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
