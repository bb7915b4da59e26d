"""Competing risks: Aalen-Johansen cumulative incidence with Gray's test, and Fine-Gray regression.

Status coding: 0 censored, 1..k event causes (hostats cohorts: 1 HO, 2 death before HO). The cause of
interest is ``cause``; every other positive code is a competing event.

``cumulative_incidence`` is the exact Aalen-Johansen estimator (ties handled exactly, deterministic; unlike
lifelines' AalenJohansenFitter it never jitters tied times), with the variance that R's ``cmprsk::cuminc``
reports and log-log confidence limits, plus Gray's (1988) K-sample test. ``fine_gray`` fits the
proportional subdistribution hazards model of Fine & Gray (1999) by Newton-Raphson on the IPCW-weighted
partial likelihood, with the sandwich variance of R's ``cmprsk::crr`` (including the censoring term).
Everything is vectorised: one sort, counts per distinct time, cumulative sums and products.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import EstimationError
from hostats.stats.core.formula import formula_columns, require_variables
from hostats.stats.core.product_limit import product_limit_counts
from hostats.stats.core.results import (
    CurveResult,
    GroupTest,
    LogLik,
    Result,
    check_level,
    deprecated_alias,
    ratio_columns,
    tidy,
    z_value,
)
from hostats.stats.core.survival_data import (
    covariate_matrix,
    group_codes,
    score_chisq,
    status_array,
    time_array,
    weight_array,
)
from hostats.stats.core.validate import complete_cases, require_columns

AJ_REFERENCE = (
    "Aalen OO, Johansen S. An empirical transition matrix for non-homogeneous Markov chains based on "
    "censored observations. Scand J Stat 1978;5:141-150; variance as R cmprsk::cuminc (Gray RJ, "
    "cmprsk 2.2-11); log-log confidence limits; Gray RJ. A class of K-sample tests for comparing the "
    "cumulative incidence of a competing risk. Ann Stat 1988;16:1141-1154"
)
GRAY_REFERENCE = ("Gray RJ. A class of K-sample tests for comparing the cumulative incidence of a competing "
                  "risk. Ann Stat 1988;16:1141-1154 (as R cmprsk::cuminc)")
FG_REFERENCE = (
    "Fine JP, Gray RJ. A proportional hazards model for the subdistribution of a competing risk. "
    "JASA 1999;94:496-509 (IPCW-weighted partial likelihood, sandwich variance with the censoring "
    "term, as R cmprsk::crr)"
)


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------

def _loglog_ci(f: np.ndarray, var: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-log limits for a probability F: F ** exp(+/- z se / (F log F)); 0 and 1 stay at 0 and 1."""
    f = np.asarray(f, float)
    se = np.sqrt(np.maximum(var, 0.0))
    inside = (f > 0) & (f < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(inside, z * se / (f * np.log(np.where(inside, f, 0.5))), 0.0)
        a = np.where(inside, f ** np.exp(-theta), f)
        b = np.where(inside, f ** np.exp(theta), f)
    return np.minimum(a, b), np.maximum(a, b)


# --------------------------------------------------------------------------------------------------
# Aalen-Johansen
# --------------------------------------------------------------------------------------------------

def _aalen_johansen(t: np.ndarray, s: np.ndarray, w: np.ndarray | None, cause: int) -> dict[str, np.ndarray]:
    """Exact AJ estimate for one group at every distinct time, with the cmprsk::cuminc variance: counts per
    distinct time by bincount, then :func:`_aalen_johansen_counts`. With weights, squared weights replace
    the counts in the variance (weights treated as known) and there is no tie correction."""
    u, inv = np.unique(t, return_inverse=True)
    m = u.size
    one = np.ones_like(t) if w is None else w
    is1 = s == cause
    isother = (s > 0) & ~is1
    n_t = np.bincount(inv, minlength=m).astype(float)
    nw = np.bincount(inv, weights=one, minlength=m)
    d1 = np.bincount(inv, weights=one * is1, minlength=m)
    d2 = np.bincount(inv, weights=one * isother, minlength=m)
    v_d = None
    if w is not None:
        v_d = (np.bincount(inv, weights=w * w * is1, minlength=m),
               np.bincount(inv, weights=w * w * isother, minlength=m))
    return _aalen_johansen_counts(u, n_t, nw, d1, d2, v_d)


def _aalen_johansen_counts(u: np.ndarray, n_t: np.ndarray, nw: np.ndarray, d1: np.ndarray, d2: np.ndarray,
                           v_d: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """AJ estimate and variance from counts at the distinct times ``u`` (ascending) of one group: ``n_t``
    rows ending at each time, ``nw`` their (weighted) number, ``d1``/``d2`` (weighted) events of the cause
    and of competing causes; ``v_d`` the squared-weight event sums (weighted data) or None (counts: the
    cmprsk tie correction). S(t-) and F by the shared product-limit kernel
    (:func:`hostats.stats.core.product_limit.product_limit_counts`). The variance is Gray's
    Aalen-type (delta-method) estimator as coded in cmprsk's ``cinc``."""
    m = u.size
    y_count = n_t[::-1].cumsum()[::-1]                          # unweighted number at risk
    y = nw[::-1].cumsum()[::-1]                                 # (weighted) number at risk
    surv, surv_m, f = product_limit_counts(y, d1, d2)          # all-cause KM S(t), S(t-), F(t)
    f = f[0]

    if v_d is None:
        c1, c2 = d1, d2
        with np.errstate(divide="ignore", invalid="ignore"):
            t5_1 = np.where(c1 > 1, 1.0 - (c1 - 1.0) / (y - 1.0), 1.0)
            t5_2 = np.where(c2 > 1, 1.0 - (c2 - 1.0) / (y - 1.0), 1.0)
        v_d1, v_d2 = t5_1 * d1, t5_2 * d2
    else:
        v_d1, v_d2 = v_d
    pos = surv > 0
    inv_s = np.where(pos, 1.0 / np.where(pos, surv, 1.0), 0.0)
    base = surv_m * surv_m / (y * y)
    t6_2 = np.where((d2 > 0) & pos, base * v_d2, 0.0)
    t6_1 = np.where(d1 > 0, base * v_d1, 0.0)
    t4_2 = f * inv_s
    t4_1 = 1.0 + inv_s * f
    v1 = np.cumsum(t4_2 * t4_2 * t6_2 + t4_1 * t4_1 * t6_1)
    v2 = np.cumsum(inv_s * t4_2 * t6_2 + inv_s * t4_1 * t6_1)
    v3 = np.cumsum(inv_s * inv_s * (t6_2 + t6_1))
    var_all = v1 + f * f * v3 - 2.0 * f * v2
    # cmprsk updates the variance only where F jumps: carry the last jump's value forward
    jump = d1 > 0
    last = np.maximum.accumulate(np.where(jump, np.arange(m), -1))
    var = np.where(last >= 0, var_all[np.maximum(last, 0)], 0.0)
    return {"time": u, "estimate": f, "variance": np.maximum(var, 0.0), "n_at_risk": y_count,
            "jump": jump, "d1": d1, "d2": d2, "n_at_risk_weighted": y}


# --------------------------------------------------------------------------------------------------
# Gray's test
# --------------------------------------------------------------------------------------------------

@dataclass(repr=False, eq=False)
class GrayTest(GroupTest):
    """Gray's K-sample test of equal cumulative incidence of ``cause`` across groups (rho = 0): a
    :class:`~hostats.stats.core.results.GroupTest` (``statistic``, ``df``, ``p_value``, ``table()``) like the
    Kaplan-Meier ``logrank``, plus ``cause``, ``score`` and ``as_dict()``."""

    cause: int = 1
    score: tuple = ()

    def as_dict(self) -> dict[str, float]:
        return {"statistic": self.statistic, "df": self.df, "p_value": self.p_value, "cause": self.cause}


def _gray_test(t: np.ndarray, s: np.ndarray, g: np.ndarray, n_groups: int, cause: int) -> GrayTest:
    """Gray (1988) score test with rho = 0, without strata, computed as cmprsk's ``crstm``.

    The score for group i is sum over cause times of d_i - d R_i / sum R, with R_i = Y_i (1 - F_i(t-)) /
    S_i(t-) the estimated subdistribution risk set. The variance is Gray's: sum over times and groups of
    squared influence terms u = a + t4 (C_end - C_t) for events of the cause and t4 (C_end - C_t) for
    competing events (the martingale form of cmprsk's running sums), all as (times x groups) arrays.
    """
    u, inv = np.unique(t, return_inverse=True)
    m, ng = u.size, n_groups
    cell = inv * ng + g
    cnt = np.bincount(cell, minlength=m * ng).reshape(m, ng).astype(float)
    d1 = np.bincount(cell, weights=(s == cause).astype(float), minlength=m * ng).reshape(m, ng)
    d2 = np.bincount(cell, weights=((s > 0) & (s != cause)).astype(float), minlength=m * ng).reshape(m, ng)
    return _gray_test_counts(cnt, d1, d2, cause)


def _gray_test_counts(cnt: np.ndarray, d1: np.ndarray, d2: np.ndarray, cause: int) -> GrayTest:
    """Gray's test from (distinct times x groups) tables: ``cnt`` rows ending at each time, ``d1`` events
    of the cause, ``d2`` competing events (times ascending); see :func:`_gray_test`."""
    m, ng = cnt.shape
    y = cnt[::-1].cumsum(axis=0)[::-1]
    at = y > 0
    ysafe = np.where(at, y, 1.0)
    skm = np.cumprod(np.where(at, 1.0 - (d1 + d2) / ysafe, 1.0), axis=0)
    skmm = np.vstack([np.ones((1, ng)), skm[:-1]])
    f1 = np.cumsum(np.where(at, skmm * d1 / ysafe, 0.0), axis=0)
    f1m = np.vstack([np.zeros((1, ng)), f1[:-1]])

    ev = (d1.sum(1) + d2.sum(1)) > 0                              # only event times contribute
    y, at, ysafe, skm, skmm, f1m = y[ev], at[ev], ysafe[ev], skm[ev], skmm[ev], f1m[ev]
    d1, d2 = d1[ev], d2[ev]
    nd1 = d1.sum(1)
    h = np.where(at, y / np.where(skmm > 0, skmm, 1.0), 0.0)     # Y_i / S_i(t-)
    tr = h.sum(1)
    tq = (h * (1.0 - f1m)).sum(1)
    fpool = np.cumsum(nd1 / tr)                                  # pooled F(t)
    fpool_m = np.r_[0.0, fpool[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        score_t = d1 - nd1[:, None] * np.where(at, h * (1.0 - f1m), 0.0) / np.where(tq > 0, tq, 1.0)[:, None]
    score = score_t.sum(0)[: ng - 1]

    # a_t = diag(h) - h h' / tr ; c_t = cumulative a_t * nd1 / (tr (1 - F(t-)))
    a = h[:, :, None] * (np.eye(ng)[None] - h[:, None, :] / tr[:, None, None])
    denom = tr * (1.0 - fpool_m)
    coef = np.where(denom > 0, nd1 / np.where(denom > 0, denom, 1.0), 0.0)
    inc = a * coef[:, None, None]
    c_after = inc[::-1].cumsum(axis=0)[::-1] - inc               # C_end - C_t  (future increments)

    with np.errstate(divide="ignore", invalid="ignore"):
        sk_pos = skm > 0
        t4_1 = np.where(sk_pos, 1.0 - (1.0 - fpool[:, None]) / np.where(sk_pos, skm, 1.0), 1.0)
        nd1b = nd1[:, None]
        t5_1 = np.where(nd1b > 1, 1.0 - (nd1b - 1.0) / (tr[:, None] * skmm - 1.0), 1.0)
        t3_1 = np.where(at & (nd1b > 0), t5_1 * skmm * nd1b / (tr[:, None] * ysafe), 0.0)
        t4_2 = np.where(sk_pos, (1.0 - fpool[:, None]) / np.where(sk_pos, skm, 1.0), 0.0)
        t5_2 = np.where(d2 > 1, 1.0 - (d2 - 1.0) / (ysafe - 1.0), 1.0)
        t3_2 = np.where(sk_pos & (d2 > 0), t5_2 * skmm * skmm * d2 / (ysafe * ysafe), 0.0)
    # u[t, i, k] for the first ng-1 groups i and every group k
    u1 = (a + t4_1[:, None, :] * c_after)[:, : ng - 1, :]
    u2 = (t4_2[:, None, :] * c_after)[:, : ng - 1, :]
    var = (np.einsum("tik,tjk,tk->ij", u1, u1, t3_1) + np.einsum("tik,tjk,tk->ij", u2, u2, t3_2))
    stat, df, p_value = score_chisq(score, var, "Gray's test: the score variance is singular (a group without "
                                    "any events of the cause or without follow-up?)")
    table = pd.DataFrame([{"measure": "gray_chisq", "estimate": float(stat), "p_value": float(p_value),
                           "df": int(df), "cause": int(cause)}])
    return GrayTest(_table=table, method="Gray's test", reference=GRAY_REFERENCE, statistic=float(stat),
                    df=int(df), p_value=float(p_value), cause=int(cause), score=tuple(float(x) for x in score))


# --------------------------------------------------------------------------------------------------
# result and public function
# --------------------------------------------------------------------------------------------------

@dataclass(repr=False)
class CumulativeIncidenceResult(CurveResult):
    """Aalen-Johansen cumulative incidence of one cause, by group.

    ``curve``: group, time, estimate, ci_lower, ci_upper, n_at_risk (number with T >= time), std_error,
    n_events (of the cause at that time; weighted with weights), n_competing, at every jump of the curve
    (plus n_at_risk_weighted with weights).
    ``table(times=None)``: per group n, events of the cause, competing events, censored, and the estimate
    at the last follow-up time (or at each of ``times``). ``gray_test``: Gray's test between groups.
    ``n``: rows analysed; ``n_missing``: rows left out for missing values (complete-case analysis).
    """

    cause: int = 1
    n: int = 0
    n_missing: int = 0
    _steps: dict = field(default_factory=dict)
    _counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    _gray: GrayTest | None = None
    _gray_problem: str = ""

    @property
    def gray_test(self) -> GrayTest:
        """Gray's test (statistic, df, p_value); an EstimationError says why when it cannot be computed."""
        if self._gray is None:
            raise EstimationError(self._gray_problem)
        return self._gray

    def _at_group(self, label, times: np.ndarray) -> pd.DataFrame:
        st = self._steps[label]
        idx = np.searchsorted(st["time"], times, side="right") - 1
        ok = idx >= 0
        est = np.where(ok, st["estimate"][np.maximum(idx, 0)], 0.0)
        var = np.where(ok, st["variance"][np.maximum(idx, 0)], 0.0)
        lo, hi = _loglog_ci(est, var, z_value(self.level))
        y = np.r_[st["n_at_risk"], 0.0][np.searchsorted(st["time"], times, side="left")]
        return pd.DataFrame({"group": [label] * times.size, "time": times, "estimate": est,
                             "ci_lower": lo, "ci_upper": hi, "n_at_risk": y.astype(np.int64),
                             "std_error": np.sqrt(var)})

    def __repr__(self) -> str:  # CurveResult's dataclass-generated repr would dump every field
        return Result.__repr__(self)

    def at(self, times) -> pd.DataFrame:
        """Estimate, log-log limits, standard error and number at risk (T >= time) at ``times``, per group."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if times.size == 0 or np.any(~np.isfinite(times)) or np.any(times < 0):
            raise ValueError("times must be finite and non-negative")
        out = pd.concat([self._at_group(label, times) for label in self._steps], ignore_index=True)
        out["ci_level"] = self.level
        return out

    def table(self, times=None) -> pd.DataFrame:  # type: ignore[override]
        """Per group: n, events of the cause, competing events, censored, and the estimate at the last
        follow-up time of the group (``times=None``) or at each of ``times``."""
        counts = self._counts
        if times is None:
            est = pd.concat([self._at_group(g, np.array([last]))
                             for g, last in zip(counts["group"], counts["last_time"], strict=True)], ignore_index=True)
            est["ci_level"] = self.level
        else:
            est = self.at(times)
        out = est.merge(counts.drop(columns="last_time"), on="group", how="left")
        out["measure"] = f"cumulative_incidence_cause_{self.cause}"
        return tidy(out)


def _curve_frame(label: Any, st: dict[str, np.ndarray], z: float, weighted: bool = False) -> pd.DataFrame:
    """One group's curve rows (the jumps of F) from an Aalen-Johansen step dict, with log-log limits."""
    j = st["jump"]
    lo, hi = _loglog_ci(st["estimate"][j], st["variance"][j], z)
    frame = pd.DataFrame({
        "group": label, "time": st["time"][j], "estimate": st["estimate"][j], "ci_lower": lo,
        "ci_upper": hi, "n_at_risk": st["n_at_risk"][j].astype(np.int64),
        "std_error": np.sqrt(st["variance"][j]), "n_events": st["d1"][j], "n_competing": st["d2"][j]})
    if weighted:
        frame["n_at_risk_weighted"] = st["n_at_risk_weighted"][j]
    return frame


def _group_counts(label: Any, n: int, n_cause: int, n_other: int, last_time: float, cause: int,
                  warns: list[str]) -> dict[str, Any]:
    """One group's row of the counts table; a group without events of the cause is noted."""
    if n_cause == 0:
        warns.append(f"group {label!r} has no events of cause {cause}: its cumulative incidence is 0 "
                     "throughout (limits 0 to 0)")
    return {"group": label, "n": n, "events": n_cause, "competing_events": n_other,
            "censored": n - n_cause - n_other, "last_time": last_time}


def _gray_or_problem(group: str | None, labels: list, weighted: bool, test, warns: list[str]
                     ) -> tuple[GrayTest | None, str]:
    """Gray's test (``test()``) when it is defined, else None and the reason (noted when a group was given)."""
    gray, problem = None, ""
    if group is None:
        problem = "Gray's test needs a group column (cumulative_incidence(..., group=...))"
    elif len(labels) < 2:
        problem = f"Gray's test needs at least two groups; column {group!r} has only {labels[0]!r}"
    elif weighted:
        problem = ("Gray's test is not defined for weighted data; compare weighted curves with a "
                   "bootstrap or use fine_gray with the weights' covariates")
    else:
        try:
            gray = test()
        except EstimationError as exc:
            problem = str(exc)
    if problem and group is not None:
        warns.append(problem)
    return gray, problem


def cumulative_incidence(data: pd.DataFrame, time: str, status: str, cause: int = 1,
                         group: str | None = None, weights: str | None = None,
                         level: float = 0.95) -> CumulativeIncidenceResult:
    """Cumulative incidence of ``cause`` in the presence of competing events (Aalen-Johansen), by group.

    Estimand: F_c(t) = P(T <= t, cause = c), the probability of the event of interest by time t with
    competing events (e.g. death before HO) treated as competing, not censored.
    Method: the Aalen-Johansen estimator F_c(t) = sum_{s <= t} S(s-) d_c(s) / Y(s) with the all-cause
    Kaplan-Meier S, exact with tied times (deterministic); variance as R ``cmprsk::cuminc`` (Aalen-type,
    delta method, with cmprsk's correction for ties), confidence limits on the log(-log) scale,
    F ** exp(+/- z se / (F log F)). With ``group``: Gray's (1988) test of equal cumulative incidence
    (rho = 0), as cmprsk (``result.gray_test``). With ``weights`` (e.g. IPTW): weighted counts give the
    adjusted cumulative incidence; its variance treats the weights as known (use a bootstrap over the
    weight model for full uncertainty) and Gray's test is not computed.
    Reference: Aalen & Johansen 1978 Scand J Stat 5:141; Gray 1988 Ann Stat 16:1141; R cmprsk.

    Status: 0 censored, 1..k causes; negative or non-integer codes and negative times raise a DataError
    naming the rows. Rows with a missing time, status, group or weight are left out (complete-case
    analysis, counted in ``warnings`` and ``n_missing``; see :mod:`hostats.stats.core.validate`). No events
    of ``cause`` raises an EstimationError.
    """
    level = check_level(level)
    cols = [time, status] + ([group] if group else []) + ([weights] if weights else [])
    data, dropped, n_missing = complete_cases(data, cols, "cumulative_incidence")
    t = time_array(data, time)
    s = status_array(data, status, cause)
    cause = int(cause)
    w = weight_array(data, weights)
    codes, labels = group_codes(data, group)
    if not np.any(s == cause):
        raise EstimationError(f"no events of cause {cause} in column {status!r} "
                              f"(codes present: {sorted(set(s.tolist()))}); the cumulative incidence is 0 "
                              "and has no confidence interval")

    z = z_value(level)
    steps: dict[Any, dict] = {}
    curves, count_rows, warns = [], [], list(dropped)
    for k, label in enumerate(labels):
        mask = codes == k
        st = _aalen_johansen(t[mask], s[mask], None if w is None else w[mask], cause)
        steps[label] = st
        curves.append(_curve_frame(label, st, z, weighted=w is not None))
        sg = s[mask]
        count_rows.append(_group_counts(label, int(mask.sum()), int(np.sum(sg == cause)),
                                        int(np.sum((sg > 0) & (sg != cause))), float(t[mask].max()), cause, warns))
    curve = pd.concat(curves, ignore_index=True)
    counts = pd.DataFrame(count_rows)
    gray, problem = _gray_or_problem(group, labels, w is not None, lambda: _gray_test(t, s, codes, len(labels), cause),
                                     warns)

    result = CumulativeIncidenceResult(
        _table=pd.DataFrame(), level=level,
        method="Aalen-Johansen cumulative incidence" + (" (weighted)" if w is not None else ""),
        reference=AJ_REFERENCE, fitted=None, warnings=warns, curve=curve, cause=cause, n=int(t.size),
        n_missing=n_missing, _steps=steps, _counts=counts, _gray=gray, _gray_problem=problem)
    result._table = result.table()
    return result


# --------------------------------------------------------------------------------------------------
# Fine-Gray
# --------------------------------------------------------------------------------------------------

@dataclass(repr=False)
class FineGrayResult(Result):
    """Fine-Gray subdistribution hazard ratios.

    ``table()``: term, estimate (SHR), ci_lower, ci_upper, p_value, std_error (log scale), n, events,
    coef (log SHR). Attributes: ``coef`` and ``vcov`` (sandwich covariance of the log SHRs, as crr's
    ``var``), ``naive_vcov`` (inverse information), ``loglik`` (LogLik(null, fitted): the log
    pseudo-likelihood at zero and at the estimate; note crr's ``$loglik`` is the fitted one alone),
    ``iterations``, ``n`` (analysed rows), ``events``, ``competing_events``, ``cause``, ``n_missing``
    (rows left out for missing values). Deprecated: ``cov`` (use ``vcov``), ``naive_cov``
    (``naive_vcov``).
    """

    coef: pd.Series = field(default_factory=pd.Series)
    vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    naive_vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    loglik: LogLik = LogLik(float("nan"), float("nan"))
    iterations: int = 0
    n: int = 0
    events: int = 0
    competing_events: int = 0
    cause: int = 1
    n_missing: int = 0

    cov = deprecated_alias("vcov")
    naive_cov = deprecated_alias("naive_vcov")


def _segment_sums(values: np.ndarray, seg: np.ndarray, n_seg: int) -> np.ndarray:
    return np.bincount(seg, weights=values, minlength=n_seg)


class _FGData:
    """Sorted data and the fixed pieces of the Fine-Gray pseudo-likelihood (censoring KM, risk-set
    boundaries). Risk set at a cause time t_k: everyone with T >= t_k (weight 1) plus everyone with a
    competing event before t_k, weighted G(t_k-)/G(T_j-), G the Kaplan-Meier of the censoring times."""

    def __init__(self, t: np.ndarray, s: np.ndarray, x: np.ndarray, cause: int) -> None:
        order = np.argsort(t, kind="stable")
        self.t, self.s, self.x = t[order], s[order], x[order]
        self.order = order
        n = t.size
        self.fail = self.s == cause
        self.comp = (self.s > 0) & ~self.fail
        self.cens = self.s == 0
        u, first, inv = np.unique(self.t, return_index=True, return_inverse=True)
        cnt = np.bincount(inv)
        y = (n - first).astype(float)                             # number with T >= u
        c = np.bincount(inv, weights=self.cens.astype(float))
        g = np.cumprod(1.0 - c / y)                              # censoring KM G(u)
        g_m = np.r_[1.0, g[:-1]]                                 # G(u-)
        self.u, self.first, self.inv, self.y_u, self.c_u, self.cnt = u, first, inv, y, c, cnt
        self.g_minus = g_m[inv]                                  # G(T_i-) per subject
        ft = np.unique(self.t[self.fail])                        # distinct cause times t_k
        self.tk = ft
        kidx = np.searchsorted(u, ft)
        self.pos = first[kidx]                                   # first subject with T >= t_k
        self.dk = np.bincount(inv[self.fail], minlength=u.size)[kidx].astype(float)
        self.g_tk = g_m[kidx]                                    # G(t_k-)
        # segment id of each subject: number of cause times t_k <= T_i
        self.seg = np.searchsorted(self.pos, np.arange(n), side="right")
        self.sum_x_fail = self.x[self.fail].sum(0)

    def sums(self, beta: np.ndarray, second: bool = True):
        x, n_k = self.x, self.tk.size
        eta = x @ beta
        e = np.exp(eta)
        a = np.where(self.comp, e / self.g_minus, 0.0)
        p = x.shape[1]
        # regular part: sum over T >= t_k  = total minus sum over segments before k
        def split(vals: np.ndarray) -> np.ndarray:
            seg = _segment_sums(vals, self.seg, n_k + 1)         # seg j: subjects with pos_{j-1} <= i < pos_j
            before = np.cumsum(seg)[:-1]                         # sum over i < pos_k
            return before
        def s_k(v_reg: np.ndarray, v_comp: np.ndarray) -> np.ndarray:
            reg = v_reg.sum() - split(v_reg)
            comp = split(v_comp)
            return reg + self.g_tk * comp
        s0 = s_k(e, a)
        s1 = np.column_stack([s_k(e * x[:, j], a * x[:, j]) for j in range(p)])
        s2 = None
        if second:
            s2 = np.empty((n_k, p, p))
            for i in range(p):
                for j in range(i, p):
                    s2[:, i, j] = s2[:, j, i] = s_k(e * x[:, i] * x[:, j], a * x[:, i] * x[:, j])
        return e, s0, s1, s2

    def loglik(self, beta: np.ndarray) -> float:
        _, s0, _, _ = self.sums(beta, second=False)
        return float(self.sum_x_fail @ beta - np.sum(self.dk * np.log(s0)))


def _fg_fit(fd: _FGData, max_iter: int = 50, tol: float = 1e-9):
    p = fd.x.shape[1]
    beta = np.zeros(p)
    ll = fd.loglik(beta)
    ll0 = ll
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        _, s0, s1, s2 = fd.sums(beta)
        xbar = s1 / s0[:, None]
        score = fd.sum_x_fail - (fd.dk[:, None] * xbar).sum(0)
        info = np.einsum("k,kij->ij", fd.dk, s2 / s0[:, None, None] - xbar[:, :, None] * xbar[:, None, :])
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError as exc:
            raise EstimationError("Fine-Gray: the information matrix is singular (collinear covariates "
                                  "or a covariate level without events)") from exc
        if float(score @ step) < tol:
            converged = True
            break
        new = beta + step
        new_ll = fd.loglik(new)
        halvings = 0
        while not np.isfinite(new_ll) or new_ll < ll - 1e-12:
            halvings += 1
            if halvings > 30:
                break
            step /= 2.0
            new = beta + step
            new_ll = fd.loglik(new)
        beta, ll = new, new_ll
    return beta, ll, ll0, converged, it


def _fg_variance(fd: _FGData, beta: np.ndarray):
    """Inverse information and the Fine & Gray (1999) sandwich: I^-1 [sum_i (eta_i + psi_i)^2] I^-1, where
    eta_i is subject i's score residual and psi_i the term from estimating the censoring distribution
    (as R cmprsk::crr)."""
    x = fd.x
    n, p = x.shape
    e, s0, s1, s2 = fd.sums(beta)
    xbar = s1 / s0[:, None]
    info = np.einsum("k,kij->ij", fd.dk, s2 / s0[:, None, None] - xbar[:, :, None] * xbar[:, None, :])
    inv_info = np.linalg.inv(info)
    dk_s0 = fd.dk / s0
    # cumulative sums over cause times t_k <= T_i (index seg_i - 1) and t_k > T_i
    c0 = np.r_[0.0, np.cumsum(dk_s0)]
    c1 = np.vstack([np.zeros((1, p)), np.cumsum(dk_s0[:, None] * xbar, axis=0)])
    w_k = dk_s0 * fd.g_tk
    d0_all = np.r_[np.cumsum(w_k[::-1])[::-1], 0.0]               # sum over k >= j
    d1_all = np.vstack([np.cumsum((w_k[:, None] * xbar)[::-1], axis=0)[::-1], np.zeros((1, p))])
    seg = fd.seg                                                   # number of t_k <= T_i
    eta = -e[:, None] * (x * c0[seg][:, None] - c1[seg])
    cw = np.where(fd.comp, e / fd.g_minus, 0.0)
    eta -= cw[:, None] * (x * d0_all[seg][:, None] - d1_all[seg])
    fail_k = seg - 1                                               # a failure's own time index
    eta[fd.fail] += x[fd.fail] - xbar[fail_k[fd.fail]]

    # censoring term: q(u) = A1(u) B0(u) - A0(u) B1(u) at distinct censoring times u
    a_w = cw                                                       # e_j / G(T_j-) for competing events
    first = fd.first
    # A(u): competing events with T_j < u  -> cumulative sum over subjects before first index of u
    a0_cum = np.r_[0.0, np.cumsum(a_w)][first]
    a1_cum = np.vstack([np.zeros((1, p)), np.cumsum(a_w[:, None] * x, axis=0)])[first]
    # B(u): cause times t_k >= u
    kstart = np.searchsorted(fd.tk, fd.u, side="left")
    b0 = d0_all[kstart]
    b1 = d1_all[kstart]
    q = a1_cum * b0[:, None] - a0_cum[:, None] * b1               # per distinct time u
    cens_u = fd.c_u > 0
    q = np.where(cens_u[:, None], q, 0.0)
    incr = q * (fd.c_u / fd.y_u ** 2)[:, None]
    cum = np.cumsum(incr, axis=0)                                  # sum over censoring times <= u
    psi = -cum[fd.inv]
    psi[fd.cens] += (q / fd.y_u[:, None])[fd.inv[fd.cens]]
    resid = eta + psi
    meat = resid.T @ resid
    cov = inv_info @ meat @ inv_info
    return cov, inv_info


def fine_gray(data: pd.DataFrame, formula: str, time: str, status: str, cause: int = 1,
              level: float = 0.95, max_iter: int = 50) -> FineGrayResult:
    """Fine-Gray proportional subdistribution hazards regression (subdistribution hazard ratios, SHR).

    Estimand: exp(beta), the ratio of subdistribution hazards of ``cause`` per unit of a covariate, i.e.
    the model 1 - F_c(t | x) = (1 - F_c0(t)) ** exp(x'beta) for the cumulative incidence F_c with the
    other causes competing. Method: Newton-Raphson on the partial likelihood in which subjects with a
    competing event stay in the risk set with the inverse-probability-of-censoring weight
    G(t-)/G(T_j-) (G: Kaplan-Meier of the censoring times, no censoring groups); Breslow handling of
    tied event times; standard errors from the sandwich of Fine & Gray (1999) including the term for
    the estimated censoring distribution, as R ``cmprsk::crr`` reports them. Wald CIs and p-values.
    ``formula``: right-hand side (``"age + sex + C(phase)"`` or ``"~ ..."``), the syntax and coding of
    every hostats model (:mod:`hostats.stats.core.formula`: treatment contrasts, first level the reference,
    the same columns as ``logistic`` and ``cox``). Missing values: complete-case analysis on the time,
    status and formula columns, counted in ``warnings`` and ``n_missing``.
    Reference: Fine JP, Gray RJ. JASA 1999;94:496-509.
    """
    level = check_level(level)
    require_columns(data, [time, status])
    fcols = formula_columns(formula, outcome=False)
    require_variables(data, fcols, formula)
    data, warns, n_missing = complete_cases(data, [time, status] + fcols, "fine_gray")
    t = time_array(data, time)
    s = status_array(data, status, cause)
    cause = int(cause)
    n_events = int(np.sum(s == cause))
    if n_events == 0:
        raise EstimationError(f"no events of cause {cause} in column {status!r}; no subdistribution "
                              "hazard ratio can be estimated")
    xraw, terms, _ = covariate_matrix(data, formula, "subdistribution hazard ratio", "cumulative_incidence")
    center = xraw.mean(0)                                          # centring leaves beta unchanged
    fd = _FGData(t, s, xraw - center, cause)
    beta, ll, ll0, converged, iters = _fg_fit(fd, max_iter=max_iter)
    if not converged:
        big = terms[int(np.argmax(np.abs(beta)))]
        raise EstimationError(f"Fine-Gray did not converge in {max_iter} iterations (largest coefficient: "
                              f"{big!r} = {beta[terms.index(big)]:.3g}); a covariate level with no or only "
                              "events of the cause? Merge sparse levels or drop the term")
    huge = np.flatnonzero(np.abs(beta) > 10)
    if huge.size:  # monotone likelihood: the SHR runs off to 0 or infinity
        raise EstimationError(f"Fine-Gray: coefficient(s) of {[terms[i] for i in huge]} diverge (|log SHR| > 10): "
                              f"(quasi-)separation, e.g. a level with no events of cause {cause}; merge sparse "
                              "levels or drop the term")
    cov, naive = _fg_variance(fd, beta)
    se = np.sqrt(np.diag(cov))
    table = pd.DataFrame({"term": terms, **ratio_columns(beta, se, level), "n": int(t.size), "events": n_events,
                          "coef": beta, "z": beta / se})
    return FineGrayResult(
        _table=table, level=level, method="Fine-Gray subdistribution hazards regression",
        reference=FG_REFERENCE, fitted=None, warnings=warns,
        coef=pd.Series(beta, index=terms), vcov=pd.DataFrame(cov, index=terms, columns=terms),
        naive_vcov=pd.DataFrame(naive, index=terms, columns=terms), loglik=LogLik(float(ll0), float(ll)),
        iterations=iters,
        n=int(t.size), events=n_events, competing_events=int(np.sum((s > 0) & (s != cause))), cause=cause,
        n_missing=n_missing)


__all__ = ["cumulative_incidence", "fine_gray", "CumulativeIncidenceResult", "FineGrayResult", "GrayTest"]
