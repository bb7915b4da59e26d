"""Helpers every section uses: its episodes (subset), column checks, complete cases (with disclosure-safe
warnings), tidy estimate rows, yes/no events, and diagnostics formatting."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from hostats.analysis.context import Context, SectionOutput
from hostats.analysis.expressions import _mask
from hostats.errors import HostatsError
from hostats.report.labels import variable_label
from hostats.report.tables import (
    format_count,
    format_counts,
    format_number,
)


def _section_frame(ctx: Context, sec: dict) -> pd.DataFrame:
    d = ctx.data
    if sec.get("subset"):
        keep = _mask(ctx.spec, d, sec["subset"], "section", "subset", sec["_index"])
        d = d[keep]
        if len(d) == 0:
            raise ctx.spec.error(f"the subset {sec['subset']!r} leaves no episodes", "section", "subset",
                                 sec["_index"])
    return d


def _need_columns(ctx: Context, frame: pd.DataFrame, cols: Iterable[str | None], sec: dict, key: str) -> None:
    missing = [c for c in cols if c and c not in frame.columns]
    if missing:
        raise ctx.spec.error(f"unknown column(s) {missing}; the data have: {', '.join(sorted(frame.columns))}",
                             "section", key, sec["_index"])


def _complete(ctx: Context, frame: pd.DataFrame, cols: list[str], sec: dict, out: SectionOutput,
              keep: Iterable[str] | None = None) -> pd.DataFrame:
    """Complete cases for the columns a model uses; how many were left out goes in the warnings.

    The estimators apply the same rule (``hostats.stats.core.validate.complete_cases``), but their warning
    gives exact counts, which the report would show as they are; dropping here first, with the counts
    formatted for disclosure ("<5"), leaves them nothing to drop. Sections also count n/events on the
    returned frame.

    The returned frame is the section's own (it may assign a column, not write into one): the complete rows
    copied, or, with nothing missing, every row sharing the columns of ``frame`` (no copy). ``keep``: the
    only columns it has (every column of ``frame`` when None), so that a section that needs a few columns
    of the episodes copies only those when rows are left out.
    """
    cols = [c for c in dict.fromkeys(cols) if c in frame.columns]
    isna = frame[cols].isna()
    miss = isna.any(axis=1).to_numpy()
    k = int(miss.sum())
    if k:
        per_col = isna.sum()
        labels = ctx.spec.report.get("labels")
        detail = ", ".join(f"{variable_label(c, labels)}: {format_count(v, ctx.threshold)}"
                           for c, v in per_col[per_col > 0].items())
        out.warn(sec, f"{format_count(k, ctx.threshold)} episode(s) with missing values left out (complete-case "
                      f"analysis; missing by column: {detail}).")
    wanted = None if keep is None else set(keep)
    if k:
        # a shallow copy of the copied rows: pandas no longer takes them for a slice of ``frame``
        rows = frame.loc[~miss] if wanted is None else frame.loc[~miss, [c for c in frame.columns if c in wanted]]
        return rows.copy(deep=False)
    d = frame.copy(deep=False)
    for c in [c for c in d.columns if wanted is not None and c not in wanted]:
        del d[c]   # from the shallow copy only: the other columns stay shared, not copied
    return d


def _rows(ctx: Context, sec: dict, table: pd.DataFrame, *, measure: str | None = None, unit: str = "",
          truth: Callable[[pd.Series], Any] | None = None, method: str = "") -> pd.DataFrame:
    """Estimator output -> tidy estimate rows with the standard columns."""
    t = table.copy()
    out = pd.DataFrame(index=t.index)
    out["analysis"] = ctx.spec.name
    out["section"] = sec["id"]
    out["measure"] = t["measure"] if "measure" in t.columns else (measure or "")
    if measure and "measure" not in t.columns:
        out["measure"] = measure
    grp = t["group"] if "group" in t.columns else (t["contrast"] if "contrast" in t.columns else "")
    out["group"] = pd.Series(grp, index=t.index).astype(object).map(lambda v: "" if v is None or (
        isinstance(v, float) and math.isnan(v)) else str(v)) if not isinstance(grp, str) else grp
    out["term"] = t["term"].astype(str) if "term" in t.columns else ""
    for c in ("estimate", "ci_lower", "ci_upper", "ci_level", "p_value", "n", "events"):
        out[c] = t[c] if c in t.columns else np.nan
    if out["ci_level"].isna().all():
        out["ci_level"] = ctx.level
    out["unit"] = t["unit"] if "unit" in t.columns else unit
    out["truth"] = [truth(r) for _, r in t.iterrows()] if truth else np.nan
    out["truth"] = pd.to_numeric(out["truth"], errors="coerce")
    out["method"] = method
    if "time" in t.columns:
        out["time_days"] = t["time"]
    return out.reset_index(drop=True)


def _event_series(ctx: Context, d: pd.DataFrame, event: str, sec: dict, key: str = "event") -> pd.Series:
    """A yes/no event: a boolean column or a condition; missing stays missing."""
    if event in d.columns:
        s = d[event]
        if not (pd.api.types.is_bool_dtype(s) or str(s.dtype) == "boolean"
                or (pd.api.types.is_numeric_dtype(s) and set(pd.unique(s.dropna())) <= {0, 1})):
            raise ctx.spec.error(f"column {event!r} is not yes/no (found {list(pd.unique(s.dropna()))[:5]})",
                                 "section", key, sec["_index"])
        return s.astype("boolean")
    return pd.Series(_mask(ctx.spec, d, event, "section", key, sec["_index"]), index=d.index, dtype="boolean")


def _default_risk_times(horizon: float) -> list[float]:
    step = horizon / 4
    return [round(step * k) for k in range(5)]


def _fmt_frame(frame: pd.DataFrame, counts: Iterable[str] = (), threshold: int = 5) -> pd.DataFrame:
    """Format a diagnostics frame for display: numbers to 3 decimals, counts suppressed."""
    f = frame.copy()
    for c in f.columns:
        if c in counts or c in ("n", "events", "n_treated", "n_control"):
            f[c] = format_counts(f[c], threshold)
        elif pd.api.types.is_float_dtype(f[c]):
            f[c] = [format_number(v) for v in f[c]]
        elif pd.api.types.is_bool_dtype(f[c]):
            f[c] = f[c].map({True: "yes", False: ""})
    return f


def _ph_table(cox) -> pd.DataFrame | None:
    """A Cox model's proportional-hazards test (``CoxResult.check_ph``) formatted for a report; None when it
    cannot be computed (singular information). A term of one coefficient is named by it (``C(sex)`` ->
    ``C(sex)[T.male]``), the term of its hazard ratio, so the report labels both alike ("Sex: male (ref.
    female)"); a factor of several levels is tested as a whole and keeps its name (``C(prophylaxis)``)."""
    try:
        ph = cox.check_ph()
    except (HostatsError, ValueError, np.linalg.LinAlgError):
        return None
    # check_ph's rows are the model's terms (as R's cox.zph); GLOBAL is R's name of the test of all of them
    one = {t: cols[0] for t, cols in cox.term_coefficients.items() if len(cols) == 1}
    one["GLOBAL"] = "Global (all terms)"
    ph = ph.assign(term=ph["term"].astype(str).map(lambda t: one.get(t, t)))
    if "transform" in ph.columns:
        ph["transform"] = ph["transform"].map(lambda t: _PH_TIME.get(str(t), t))
        ph = ph.rename(columns={"transform": "time scale"})
    return _fmt_frame(ph)


# check_ph's transform of time, as a reader says it
_PH_TIME = {"km": "1 - Kaplan-Meier", "identity": "time", "log": "log time", "rank": "rank of time"}
