"""Survival: Kaplan-Meier curves with log-rank tests, and Cox proportional-hazards models.

``kaplan_meier`` estimates S(t) = P(T > t) per group (product-limit estimator, Kaplan & Meier 1958) with
Greenwood variance and log-log ("exponential Greenwood") confidence limits, as R's
``survfit(conf.type="log-log")``; with ``weights`` it is the weighted (IPTW-adjusted) product-limit estimator
with the variance of Xie & Liu (2005). ``cox`` fits the Cox model by its Efron partial likelihood with a
vectorised Newton-Raphson (``hostats.stats._efron``), reporting what R's ``coxph`` reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hostats.errors import EstimationError
from hostats.stats._result import CURVE_COLUMNS, CurveResult, Result, check_level, tidy, z_value
from hostats.stats._survdata import (
    event_array,
    label_array,
    require_columns,
    time_array,
    weight_array,
)

KM_REFERENCE = (
    "Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. JASA 1958;53:457-481; "
    "log-log confidence limits as in R survival::survfit (Therneau & Grambsch 2000); weighted curves: "
    "Xie J, Liu C. Adjusted Kaplan-Meier estimator and log-rank test with inverse probability of "
    "treatment weighting for survival data. Stat Med 2005;24:3089-3110"
)
LOGRANK_REFERENCE = ("Mantel N. Evaluation of survival data and two new rank order statistics arising in "
                     "its consideration. Cancer Chemother Rep 1966;50:163-170 (lifelines "
                     "multivariate_logrank_test)")

_TOL = np.sqrt(np.finfo(float).eps)  # R's quantile.survfit tolerance for "exactly 0.5"


def _quantile_time(time: np.ndarray, surv: np.ndarray, p: float) -> float:
    """First time the step curve ``surv`` reaches ``p`` or below; the midpoint to the next drop when it
    sits exactly at ``p`` (R's quantile.survfit rule). NaN when never reached."""
    ok = ~np.isnan(surv)
    time, surv = time[ok], surv[ok]
    hit = np.flatnonzero(surv <= p + _TOL)
    if hit.size == 0:
        return float("nan")
    i = hit[0]
    if abs(surv[i] - p) < _TOL:
        below = np.flatnonzero(surv < p - _TOL)
        if below.size:
            return float((time[i] + time[below[0]]) / 2.0)
    return float(time[i])


@dataclass(repr=False)
class KaplanMeierResult(CurveResult):
    """Kaplan-Meier survival by group.

    ``curve``: group, time, estimate (S(t)), ci_lower, ci_upper, n_at_risk (number with T >= time) at time
    0 and at every event time of the group (plus ``n_events`` and, with weights, ``n_at_risk_weighted``).
    ``.table()``: per group the median survival time with its CI, n and events. A median (or limit)
    that is not reached -- the curve (or its limit) stays above 0.5 -- is NaN, and ``median_reached`` says
    which, as R prints NA. ``.logrank``: the log-rank test between groups.
    """

    _sorted_times: dict = field(default_factory=dict)
    _logrank: Result | None = None
    _logrank_problem: str = ""

    def _start_value(self) -> float:
        return 1.0

    def at(self, times, kind: str = "survival") -> pd.DataFrame:
        """Survival (``kind="survival"``) or cumulative incidence 1 - S (``kind="cumulative_incidence"``)
        at ``times`` (right-continuous), with the number still at risk (T >= time, unweighted).
        Beyond the last follow-up time the last value is carried forward with n_at_risk 0."""
        if kind not in ("survival", "cumulative_incidence"):
            raise ValueError(f"kind must be 'survival' or 'cumulative_incidence', got {kind!r}")
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if np.any(~np.isfinite(times)) or np.any(times < 0):
            raise ValueError("times must be finite and non-negative")
        parts = []
        for group, g in self.curve.groupby("group", sort=False, observed=True):
            t = g["time"].to_numpy(float)
            idx = np.searchsorted(t, times, side="right") - 1  # time 0 row exists, so idx >= 0
            part = pd.DataFrame({"group": group, "time": times})
            for col in ("estimate", "ci_lower", "ci_upper"):
                part[col] = g[col].to_numpy(float)[idx]
            sorted_t = self._sorted_times[group]
            part["n_at_risk"] = sorted_t.size - np.searchsorted(sorted_t, times, side="left")
            parts.append(part)
        out = pd.concat(parts, ignore_index=True)[list(CURVE_COLUMNS)]
        if kind == "cumulative_incidence":
            out = _to_incidence(out)
        out["ci_level"] = self.level
        return out

    def cumulative_incidence(self) -> pd.DataFrame:
        """The curve as cumulative incidence 1 - S(t) (the limits swap: lower = 1 - upper of S)."""
        return _to_incidence(self.curve.copy())

    @property
    def logrank(self) -> Result:
        """Log-rank test of equal survival across groups (chi-square on groups - 1 df)."""
        if self._logrank is None:
            raise EstimationError(self._logrank_problem)
        return self._logrank


def _to_incidence(frame: pd.DataFrame) -> pd.DataFrame:
    lower, upper = frame["ci_lower"].to_numpy(), frame["ci_upper"].to_numpy()
    frame["estimate"] = 1.0 - frame["estimate"]
    frame["ci_lower"], frame["ci_upper"] = 1.0 - upper, 1.0 - lower
    return frame


def _group_codes(data: pd.DataFrame, group: str | None) -> tuple[np.ndarray, list]:
    if group is None:
        return np.zeros(len(data), dtype=np.int64), ["all"]
    raw = label_array(data, group, "group")
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.cat.remove_unused_categories()
        return raw.cat.codes.to_numpy(np.int64), list(raw.cat.categories)
    codes, labels = pd.factorize(raw, sort=True)
    return codes.astype(np.int64), list(labels)


def kaplan_meier(data: pd.DataFrame, time: str, event: str, group: str | None = None,
                 weights: str | None = None, level: float = 0.95) -> KaplanMeierResult:
    """Kaplan-Meier estimate of survival S(t) = P(T > t), by group, with log-log confidence limits.

    Estimand: the probability of remaining event-free beyond t (1 - S(t) is the cumulative incidence
    when there are no competing events; with competing deaths use ``cumulative_incidence``).
    Method: product-limit estimator; Greenwood variance of log S; limits exp(-exp(log(-log S) +/- z se))
    (R ``survfit(conf.type="log-log")``). Median: first time S <= 0.5 (midpoint rule of R's
    ``quantile.survfit`` when S is exactly 0.5); its CI from the pointwise limits (Brookmeyer-Crowley
    style, as R). With ``weights`` (e.g. IPTW) the weighted product-limit estimator with the variance of
    Xie & Liu (2005): the Greenwood sum with the risk set's Kish effective size,
    var(log S) = sum h (1 - h)^-1 / M, h = d_w / n_w, M = (sum w)^2 / sum w^2 (Greenwood when all w are
    equal). It treats the weights as known (it ignores estimation of the propensity score).
    Log-rank test between groups (unweighted data only): ``.logrank``.
    When S reaches 0 the limits are reported as 0 (log-log limits are undefined there).
    """
    level = check_level(level)
    cols = [time, event] + [c for c in (group, weights) if c is not None]
    require_columns(data, cols)
    t = time_array(data, time)
    e = event_array(data, event)
    w = weight_array(data, weights)
    codes, labels = _group_codes(data, group)
    wts = np.ones_like(t) if w is None else w

    order = np.lexsort((t, codes))
    gs, ts, es, ws = codes[order], t[order], e[order], wts[order]
    n = ts.size
    new = np.r_[True, (gs[1:] != gs[:-1]) | (ts[1:] != ts[:-1])]
    starts = np.flatnonzero(new)
    ug, ut = gs[starts], ts[starts]
    d_count = np.add.reduceat(es.astype(np.int64), starts)
    c_count = np.diff(np.r_[starts, n])
    d_w = np.add.reduceat(ws * es, starts)
    c_w = np.add.reduceat(ws, starts)
    c_w2 = np.add.reduceat(ws * ws, starts)

    def at_risk(x: np.ndarray) -> np.ndarray:  # sum over T >= t within the group
        return pd.Series(x[::-1]).groupby(ug[::-1]).cumsum().to_numpy()[::-1]

    n_risk = at_risk(c_count)
    n_w = at_risk(c_w)
    n_w2 = at_risk(c_w2)
    eff = n_w * n_w / n_w2  # effective risk-set size; equals n_risk without weights
    frac = np.where(n_w > 0, d_w / n_w, 0.0)
    surv = pd.Series(1.0 - frac).groupby(ug).cumprod().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(d_w > 0, d_w / (eff * (n_w - d_w)), 0.0)
    var_log = pd.Series(term).groupby(ug).cumsum().to_numpy()
    z = z_value(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        loglog_se = np.sqrt(var_log) / np.abs(np.log(surv))
        lower = np.exp(-np.exp(np.log(-np.log(surv)) + z * loglog_se))
        upper = np.exp(-np.exp(np.log(-np.log(surv)) - z * loglog_se))
    at_one = surv >= 1.0
    lower[at_one], upper[at_one] = 1.0, 1.0
    at_zero = surv <= 0.0
    lower[at_zero], upper[at_zero] = 0.0, 0.0

    jumps = d_count > 0
    curve = pd.DataFrame({"g": ug[jumps], "time": ut[jumps], "estimate": surv[jumps],
                          "ci_lower": lower[jumps], "ci_upper": upper[jumps],
                          "n_at_risk": n_risk[jumps], "n_events": d_count[jumps]})
    if w is not None:
        curve["n_at_risk_weighted"] = n_w[jumps]
    group_start = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    group_n = np.diff(np.r_[group_start, n])
    first = pd.DataFrame({"g": gs[group_start], "time": 0.0, "estimate": 1.0, "ci_lower": 1.0,
                          "ci_upper": 1.0, "n_at_risk": group_n, "n_events": 0})
    if w is not None:
        first["n_at_risk_weighted"] = np.add.reduceat(ws, group_start)
    has_zero_jump = set(curve.loc[curve["time"] == 0.0, "g"])
    first = first[~first["g"].isin(has_zero_jump)]
    curve = pd.concat([first, curve], ignore_index=True).sort_values(["g", "time"], kind="stable")
    curve.insert(0, "group", pd.Categorical.from_codes(curve.pop("g").to_numpy(), categories=labels)
                 if group is not None else "all")
    curve = curve.reset_index(drop=True)

    rows, sorted_times = [], {}
    for code, label in enumerate(labels):
        lo_hi = np.flatnonzero(gs == code)
        sorted_times[label] = ts[lo_hi]
        g = curve[curve["group"] == label]
        tt, s = g["time"].to_numpy(), g["estimate"].to_numpy()
        pos = s > 0  # limits are undefined where S = 0 (R gives NA there)
        median = _quantile_time(tt, s, 0.5)
        rows.append({"group": label, "measure": "median_survival", "estimate": median,
                     "ci_lower": _quantile_time(tt[pos], g["ci_lower"].to_numpy()[pos], 0.5),
                     "ci_upper": _quantile_time(tt[pos], g["ci_upper"].to_numpy()[pos], 0.5),
                     "n": int(lo_hi.size), "events": int(es[lo_hi].sum()),
                     "median_reached": bool(np.isfinite(median))})
    table = pd.DataFrame(rows)

    warnings: list[str] = []
    if not e.any():
        warnings.append("no events: every survival curve stays at 1 and no median is reached")
    logrank, problem = None, ""
    if group is None or len(labels) < 2:
        problem = ("the log-rank test needs a group column with at least two groups"
                   + ("" if group is None else f"; {group!r} has only {labels}"))
    elif w is not None:
        problem = ("no log-rank test for weighted curves (the ordinary test is invalid with IPTW "
                   "weights); compare groups with cox(..., weights=...) and its robust Wald test")
    elif not e.any():
        problem = "the log-rank test needs at least one event"
    else:
        logrank = _logrank(t, e, codes, labels, level)
    return KaplanMeierResult(_table=table, level=level, method="Kaplan-Meier (log-log CI)"
                             + (", IPTW-weighted" if w is not None else ""),
                             reference=KM_REFERENCE, fitted=None, warnings=warnings, curve=curve,
                             _sorted_times=sorted_times, _logrank=logrank, _logrank_problem=problem)


def _logrank(t: np.ndarray, e: np.ndarray, codes: np.ndarray, labels: list, level: float) -> Result:
    from lifelines.statistics import multivariate_logrank_test

    res = multivariate_logrank_test(t, codes, e)
    table = pd.DataFrame([{"measure": "logrank_chisq", "estimate": float(res.test_statistic),
                           "p_value": float(res.p_value), "df": int(res.degrees_of_freedom),
                           "groups": ", ".join(str(v) for v in labels)}])
    return Result(_table=tidy(table), level=level, method="log-rank test", reference=LOGRANK_REFERENCE,
                  fitted=res)
