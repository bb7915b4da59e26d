"""Derived columns of the analysed episodes: the horizon flags (``ho_within_horizon``,
``horizon_status_known``) and the spec's ``[[derive]]`` columns."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from hostats.analysis.expressions import _check_expr_columns, _names_in

if TYPE_CHECKING:
    from hostats.analysis.spec import Spec

OUTCOME_FLAG = "ho_within_horizon"  # derived: HO detected within the horizon (before death)
KNOWN_FLAG = "horizon_status_known"  # derived: HO status at the horizon is known (not lost before it)
FOLLOWUP_TOLERANCE_DAYS = 30  # a last visit within a month of the horizon counts as complete follow-up


def _derive(spec: Spec, episodes: pd.DataFrame, horizon: float) -> pd.DataFrame:
    """Standard derived columns plus the spec's ``[[derive]]`` ones (pandas eval expressions).

    ``ho_within_horizon``: HO detected within the horizon (status 1 and time <= horizon).
    ``horizon_status_known``: HO or death within the horizon, or follow-up reaching the horizon (within
    30 days: the last scheduled visit may fall just before it). Restricting a yes/no analysis to it is NOT
    unbiased under independent loss to follow-up: it keeps the patients lost after an event and drops those
    lost event-free, inflating the risk. Sections therefore analyse ``ho_within_horizon`` from everyone's
    follow-up with censoring-aware estimators and use this flag only for the complete-case sensitivity
    analysis.
    A ``[[derive]]`` with ``bins`` cuts a numeric expression into labelled intervals (right-closed);
    with ``labels`` as a table it maps values (e.g. true/false) to labels. With ``where`` (a condition) and
    ``otherwise`` (a number) the column is ``expr`` where the condition holds and ``otherwise`` elsewhere, so
    a measure that exists for some episodes only (GCS after brain injury) can enter a model without
    dropping the others; where the condition holds and ``expr`` is missing, the value stays missing.
    """
    e = episodes
    if {"status", "time_days"} <= set(e.columns):
        st = pd.to_numeric(e["status"], errors="coerce")
        t = pd.to_numeric(e["time_days"], errors="coerce")
        ok = st.notna() & t.notna()
        e[OUTCOME_FLAG] = ((st == 1) & (t <= horizon)).where(ok).astype("boolean")
        fu = pd.to_numeric(e["followup_days"], errors="coerce") if "followup_days" in e.columns else t
        known = ((st > 0) & (t <= horizon)) | (fu >= horizon - FOLLOWUP_TOLERANCE_DAYS)
        e[KNOWN_FLAG] = known.where(ok).astype("boolean")
    for i, d in enumerate(spec.derive):
        if d.get("optional") and any(n not in e.columns for n in _names_in(f"{d['expr']} {d.get('where', '')}")):
            continue  # optional: the export lacks a column it needs (sections using it say so)
        _check_expr_columns(spec, d["expr"], e.columns, "derive", "expr", i)
        try:
            v = e.eval(d["expr"], engine="python")
        except Exception as exc:  # an invalid expression in the user's spec
            raise spec.error(f"cannot evaluate {d['expr']!r}: {exc}", "derive", "expr", i) from None
        v = pd.Series(v, index=e.index)
        if "where" in d:
            _check_expr_columns(spec, d["where"], e.columns, "derive", "where", i)
            try:
                cond = pd.Series(e.eval(d["where"], engine="python"), index=e.index)
            except Exception as exc:  # an invalid condition in the user's spec
                raise spec.error(f"cannot evaluate {d['where']!r}: {exc}", "derive", "where", i) from None
            cond = cond.astype("boolean").fillna(False).to_numpy(dtype=bool)
            v = pd.to_numeric(v, errors="coerce").astype(float).where(cond, float(d["otherwise"]))
        labels = d.get("labels")
        if d.get("bins") is not None:
            bins = [float(b) for b in d["bins"]]
            if labels is not None and (not isinstance(labels, list) or len(labels) != len(bins) - 1):
                raise spec.error(f"needs one label per interval ({len(bins) - 1})", "derive", "labels", i)
            try:
                v = pd.cut(pd.to_numeric(v, errors="coerce"), bins=bins, labels=labels)
            except ValueError as exc:
                raise spec.error(f"cannot cut into bins {bins}: {exc}", "derive", "bins", i) from None
        elif isinstance(labels, dict):
            key = {"true": True, "false": False}
            mapping = {key.get(str(k).lower(), k): str(lbl) for k, lbl in labels.items()}
            by_text = {str(k).lower(): lbl for k, lbl in mapping.items()}
            v = v.astype(object).map(lambda x, m=mapping, bt=by_text: None if pd.isna(x) else
                                     m.get(x, bt.get(str(x).lower())))
            v = pd.Categorical(v, categories=list(dict.fromkeys(mapping.values())))
        e[d["name"]] = v
    return e
