"""Multi-site pooling from aggregates: the non-identifying numbers one site shares (``site_summary``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import DataError
from hostats.stats.core.validate import name_items


# --------------------------------------------------------------------------------------------- sites
def _binary(series: pd.Series, column: str) -> np.ndarray:
    s = series
    if s.isna().any():
        rows = name_items(s.isna(), s.index, quote=False)
        raise DataError(f"{column} is missing in row(s) {rows}; a site summary needs a value for every row",
                        column=column)
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.astype(bool).to_numpy()
    vals = pd.to_numeric(s, errors="coerce")
    bad = vals.isna() | ~vals.isin([0, 1])
    if bad.any():
        rows = name_items(bad, s.index, quote=False)
        raise DataError(f"{column} must be 0/1 or true/false; not so in row(s) {rows}", column=column)
    return vals.to_numpy() == 1


def site_summary(data: pd.DataFrame, site: str, outcome: str, exposure: str | None = None,
                 time: str | None = None, *, exposed: Any = True, reference: Any = None,
                 continuity: float = 0.5) -> pd.DataFrame:
    """The aggregate, non-identifying numbers one site shares for a multi-site meta-analysis.

    One row per site (``site`` column): ``n`` (patients/episodes), ``events`` (``outcome`` true),
    ``person_time`` (sum of ``time``, when given, in its unit). With a binary ``exposure`` (bool or 0/1, or
    any column with ``exposed=`` the exposed value and ``reference=`` the comparison value; other values are
    left out and counted in ``n_other_exposure``): the 2x2 counts ``events_exposed``, ``n_exposed``,
    ``events_reference``, ``n_reference`` and ``log_or`` with its variance ``var_log_or`` (Woolf:
    1/a + 1/b + 1/c + 1/d, the inverse information of the per-site logistic regression on the exposure, so
    identical to fitting that regression to the rows); a site with a zero cell gets ``continuity`` added to
    its four cells and is flagged in ``continuity_corrected``.

    Pool the rows with ``meta_proportions(s.events, s.n, labels=s.site)`` or
    ``meta_effects(s.log_or, s.var_log_or, labels=s.site)``: the answer is the one the same functions give
    when fed the quantities computed from the sites' individual rows (tests/stats/meta/test_meta_sites.py).

    The counts are exact because pooling needs them; suppress small cells (1-4) before publishing the table
    itself. No identifier or date leaves the site.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    needed = [c for c in (site, outcome, exposure, time) if c is not None]
    for column in needed:
        if column not in data.columns:
            raise DataError(f"column {column!r} is not in the data (columns: {list(data.columns)[:12]})",
                            column=column)
    if data.empty:
        raise DataError("the data have no rows", column=site)
    if data[site].isna().any():
        rows = name_items(data[site].isna(), data.index, quote=False)
        raise DataError(f"site is missing in row(s) {rows}", column=site)
    frame = pd.DataFrame({"site": data[site].astype(str).to_numpy(),
                          "event": _binary(data[outcome], outcome)}, index=data.index)
    if time is not None:
        t = pd.to_numeric(data[time], errors="coerce")
        bad = t.isna() | ~np.isfinite(t) | (t < 0)
        if bad.any():
            rows = name_items(bad, data.index, quote=False)
            raise DataError(f"{time} must be a non-negative number; not so in row(s) {rows}", column=time)
        frame["time"] = t.to_numpy(dtype=float)
    grouped = frame.groupby("site", sort=True)
    out = pd.DataFrame({"n": grouped.size(), "events": grouped["event"].sum().astype(np.int64)})
    if time is not None:
        out["person_time"] = grouped["time"].sum()
    if exposure is not None:
        col = data[exposure]
        if reference is None and exposed is True:
            is_exp = _binary(col, exposure)
            is_ref = ~is_exp
        else:
            if col.isna().any():
                rows = name_items(col.isna(), data.index, quote=False)
                raise DataError(f"{exposure} is missing in row(s) {rows}", column=exposure)
            is_exp = (col == exposed).to_numpy()
            is_ref = (col == reference).to_numpy() if reference is not None else ~is_exp
            if not is_exp.any():
                raise DataError(f"no row has {exposure} == {exposed!r}", column=exposure)
        frame["exp"], frame["ref"] = is_exp, is_ref
        frame["a"] = frame["event"] & frame["exp"]
        frame["c"] = frame["event"] & frame["ref"]
        g = frame.groupby("site", sort=True)
        out["events_exposed"] = g["a"].sum().astype(np.int64)
        out["n_exposed"] = g["exp"].sum().astype(np.int64)
        out["events_reference"] = g["c"].sum().astype(np.int64)
        out["n_reference"] = g["ref"].sum().astype(np.int64)
        out["n_other_exposure"] = out["n"] - out["n_exposed"] - out["n_reference"]
        a = out["events_exposed"].to_numpy(float)
        b = out["n_exposed"].to_numpy(float) - a
        c = out["events_reference"].to_numpy(float)
        d = out["n_reference"].to_numpy(float) - c
        empty_arm = (out["n_exposed"].to_numpy() == 0) | (out["n_reference"].to_numpy() == 0)
        zero = ((a == 0) | (b == 0) | (c == 0) | (d == 0)) & ~empty_arm
        add = np.where(zero, float(continuity), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_or = np.log(((a + add) * (d + add)) / ((b + add) * (c + add)))
            var = 1 / (a + add) + 1 / (b + add) + 1 / (c + add) + 1 / (d + add)
        out["log_or"] = np.where(empty_arm, np.nan, log_or)
        out["var_log_or"] = np.where(empty_arm, np.nan, var)
        out["continuity_corrected"] = zero
        out["log_or_note"] = np.where(empty_arm, "one exposure group empty at this site: no log-OR",
                                      np.where(zero, f"zero cell: {continuity:g} added to each cell", ""))
    return out.reset_index()
