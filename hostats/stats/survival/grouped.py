"""Kaplan-Meier curves and the log-rank test from a frequency table (counts per group and time).

The product-limit estimator, its Greenwood variance and the log-rank test depend on the data only through
the number of people whose follow-up ends at each distinct time, and how many of them had the event: a
table of counts per (group, time, event) is a sufficient statistic. ``kaplan_meier_counts`` computes from
such a table what :func:`hostats.stats.survival.km_cox.kaplan_meier` computes from the rows, so a cohort
summarised out of core (:mod:`hostats.scale`) gets the same curves, medians and test.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hostats.stats.core.frequency import complete_counts, count_array
from hostats.stats.core.results import check_level, z_value
from hostats.stats.core.survival_data import event_array, group_codes, time_array
from hostats.stats.survival.km_cox import (
    KM_REFERENCE,
    KaplanMeierResult,
    _logrank,
    _quantile_time,
)

__all__ = ["kaplan_meier_counts", "GroupedKaplanMeierResult"]


@dataclass(repr=False)
class GroupedKaplanMeierResult(KaplanMeierResult):
    """A :class:`~hostats.stats.survival.km_cox.KaplanMeierResult` computed from counts: the same curve,
    table, ``at()`` and ``logrank``; the number at risk in ``at()`` comes from the counts per time."""

    _ends: dict = field(default_factory=dict)  # group -> (distinct times ascending, people ending there)

    def at(self, times, kind: str = "survival") -> pd.DataFrame:
        """As :meth:`KaplanMeierResult.at`; n_at_risk (T >= time) from the counts per time."""
        out = super().at(times, kind)
        parts = []
        for group in out["group"].unique():
            t, c = self._ends[group]
            after = np.r_[np.cumsum(c[::-1])[::-1], 0]  # people with T >= t[i]; 0 past the last time
            asked = out.loc[out["group"] == group, "time"].to_numpy(float)
            parts.append(after[np.searchsorted(t, asked, side="left")])
        out["n_at_risk"] = np.concatenate(parts).astype(np.int64)
        return out


def kaplan_meier_counts(data: pd.DataFrame, time: str, event: str, count: str, group: str | None = None,
                        level: float = 0.95) -> GroupedKaplanMeierResult:
    """Kaplan-Meier estimate of survival S(t) = P(T > t) by group, from a frequency table.

    Estimand and method: those of :func:`hostats.stats.survival.km_cox.kaplan_meier` (product-limit
    estimator, Greenwood variance, log-log limits and median as R ``survfit(conf.type="log-log")``,
    log-rank test as R ``survdiff``; Kaplan & Meier 1958, Mantel 1966). Input: one row per (group, time,
    event) with ``count`` people (several rows for the same values are added); the result equals
    ``kaplan_meier`` on the rows the table stands for. Rows with a missing time, event or group are left
    out, counted in people (``n_missing``); a negative time or count is an error.
    """
    level = check_level(level)
    cols = [time, event] + ([group] if group is not None else [])
    data, warnings, n_missing = complete_counts(data, cols, count, "kaplan_meier_counts")
    t = time_array(data, time)
    e = event_array(data, event)
    c = count_array(data, count)
    codes, labels = group_codes(data, group)
    k = len(labels)

    # counts per (group, distinct time): people ending there and events among them
    ut, tinv = np.unique(t, return_inverse=True)
    cell = codes * ut.size + tinv
    c_all = np.bincount(cell, weights=c, minlength=k * ut.size).reshape(k, ut.size)
    d_all = np.bincount(cell, weights=c * e, minlength=k * ut.size).reshape(k, ut.size)
    z = z_value(level)
    curves, rows, ends = [], [], {}
    for g, label in enumerate(labels):
        present = c_all[g] > 0
        tt, cc, dd = ut[present], c_all[g, present], d_all[g, present]
        ends[label] = (tt, cc.astype(np.int64))
        n_risk = np.cumsum(cc[::-1])[::-1]
        surv = np.cumprod(1.0 - np.where(n_risk > 0, dd / n_risk, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            var_log = np.cumsum(np.where(dd > 0, dd / (n_risk * (n_risk - dd)), 0.0))
            loglog_se = np.sqrt(var_log) / np.abs(np.log(surv))
            lower = np.exp(-np.exp(np.log(-np.log(surv)) + z * loglog_se))
            upper = np.exp(-np.exp(np.log(-np.log(surv)) - z * loglog_se))
        lower[surv >= 1.0], upper[surv >= 1.0] = 1.0, 1.0
        lower[surv <= 0.0], upper[surv <= 0.0] = 0.0, 0.0
        jump = dd > 0
        part = pd.DataFrame({"time": tt[jump], "estimate": surv[jump], "ci_lower": lower[jump],
                             "ci_upper": upper[jump], "n_at_risk": n_risk[jump].astype(np.int64),
                             "n_events": dd[jump].astype(np.int64)})
        if not (jump.any() and tt[jump][0] == 0.0):
            start = pd.DataFrame({"time": [0.0], "estimate": [1.0], "ci_lower": [1.0], "ci_upper": [1.0],
                                  "n_at_risk": [int(cc.sum())], "n_events": [0]})
            part = pd.concat([start, part], ignore_index=True)
        part.insert(0, "group", label)
        curves.append(part)
        tj, sj = part["time"].to_numpy(), part["estimate"].to_numpy()
        pos = sj > 0
        median = _quantile_time(tj, sj, 0.5)
        rows.append({"group": label, "measure": "median_survival", "estimate": median,
                     "ci_lower": _quantile_time(tj[pos], part["ci_lower"].to_numpy()[pos], 0.5),
                     "ci_upper": _quantile_time(tj[pos], part["ci_upper"].to_numpy()[pos], 0.5),
                     "n": int(cc.sum()), "events": int(dd.sum()), "median_reached": bool(np.isfinite(median))})
    curve = pd.concat(curves, ignore_index=True)
    curve["group"] = (pd.Categorical(curve["group"], categories=labels) if group is not None else "all")
    table = pd.DataFrame(rows)

    any_event = bool(d_all.sum() > 0)
    if not any_event:
        warnings.append("no events: every survival curve stays at 1 and no median is reached")
    logrank, problem = None, ""
    if group is None or k < 2:
        problem = ("the log-rank test needs a group column with at least two groups"
                   + ("" if group is None else f"; {group!r} has only {labels}"))
    elif not any_event:
        problem = "the log-rank test needs at least one event"
    else:
        logrank = _logrank(None, None, None, labels, level, tables=(c_all.T, d_all.T))
    return GroupedKaplanMeierResult(
        _table=table, level=level, method="Kaplan-Meier (log-log CI), from counts", reference=KM_REFERENCE,
        fitted=None, warnings=warnings, curve=curve, n=int(c.sum()), n_missing=n_missing,
        _sorted_times={label: np.empty(0) for label in labels}, _logrank=logrank, _logrank_problem=problem,
        _ends=ends)

