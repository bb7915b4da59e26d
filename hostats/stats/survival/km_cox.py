"""Survival: Kaplan-Meier curves with log-rank tests, and Cox proportional-hazards models.

``kaplan_meier`` estimates S(t) = P(T > t) per group (product-limit estimator, Kaplan & Meier 1958) with
Greenwood variance and log-log ("exponential Greenwood") confidence limits, as R's
``survfit(conf.type="log-log")``; with ``weights`` it is the weighted (IPTW-adjusted) product-limit estimator
with the variance of Xie & Liu (2005). ``cox`` fits the Cox model by its Efron partial likelihood with a
vectorised Newton-Raphson (``hostats.stats.core.cox_efron``), reporting what R's ``coxph`` reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sstats

from hostats.errors import EstimationError
from hostats.stats.core.censoring_weights import strata_codes
from hostats.stats.core.formula import formula_columns, require_variables
from hostats.stats.core.results import (
    CURVE_COLUMNS,
    CurveResult,
    GroupTest,
    LogLik,
    ReadOnlyDict,
    Result,
    check_level,
    ratio_columns,
    tidy,
    z_value,
)
from hostats.stats.core.survival_data import (
    covariate_matrix,
    event_array,
    group_codes,
    label_array,
    score_chisq,
    time_array,
    weight_array,
)
from hostats.stats.core.validate import complete_cases, require_columns

KM_REFERENCE = (
    "Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. JASA 1958;53:457-481; "
    "log-log confidence limits as in R survival::survfit (Therneau & Grambsch 2000); weighted curves: "
    "Xie J, Liu C. Adjusted Kaplan-Meier estimator and log-rank test with inverse probability of "
    "treatment weighting for survival data. Stat Med 2005;24:3089-3110"
)
LOGRANK_REFERENCE = ("Mantel N. Evaluation of survival data and two new rank order statistics arising in "
                     "its consideration. Cancer Chemother Rep 1966;50:163-170 (as R survival::survdiff)")

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
    which, as R prints NA. ``.logrank``: the log-rank test between groups. ``n``: rows analysed;
    ``n_missing``: rows left out for missing values (complete-case analysis).
    """

    n: int = 0
    n_missing: int = 0
    _sorted_times: dict = field(default_factory=dict)
    _ends: dict = field(default_factory=dict)  # group -> (distinct times ascending, people ending there)
    _logrank: GroupTest | None = None
    _logrank_problem: str = ""
    _logrank_args: tuple | None = None  # the inputs of the log-rank test, computed on first access

    __repr__ = Result.__repr__  # print as the table (CurveResult's dataclass repr would dump everything)

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
            if group in self._ends:  # people with T >= time from the counts per distinct time
                ut, c = self._ends[group]
                after = np.r_[np.cumsum(c[::-1])[::-1], 0]
                part["n_at_risk"] = after[np.searchsorted(ut, times, side="left")].astype(np.int64)
            else:
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
    def logrank(self) -> GroupTest:
        """Log-rank test of equal survival across groups (chi-square on groups - 1 df): ``statistic``,
        ``df``, ``p_value`` and ``table()``, as ``CumulativeIncidenceResult.gray_test``."""
        if self._logrank is None and self._logrank_args is not None:
            self._logrank = _logrank(*self._logrank_args)  # on first access: curves alone pay nothing for it
            self._logrank_args = None
        if self._logrank is None:
            raise EstimationError(self._logrank_problem)
        return self._logrank


def _to_incidence(frame: pd.DataFrame) -> pd.DataFrame:
    lower, upper = frame["ci_lower"].to_numpy(), frame["ci_upper"].to_numpy()
    frame["estimate"] = 1.0 - frame["estimate"]
    frame["ci_lower"], frame["ci_upper"] = 1.0 - upper, 1.0 - lower
    return frame


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
    equal; the same formula as R's adjustedCurves ``surv_iptw_km``, Denz et al. Stat Med 2023). It
    treats the weights as known (ignoring estimation of the propensity score), which Xie & Liu's
    critics note tends to overstate the variance slightly.
    Log-rank test between groups (unweighted data only): ``.logrank`` (computed when first asked for).
    When S reaches 0 the limits are reported as 0 (log-log limits are undefined there).
    Rows with a missing time, event, group or weight are left out (complete-case analysis, counted in
    ``warnings`` and ``n_missing``; see :mod:`hostats.stats.core.validate`); negative times are an error.
    """
    level = check_level(level)
    cols = [time, event] + [c for c in (group, weights) if c is not None]
    data, warnings, n_missing = complete_cases(data, cols, "kaplan_meier")
    t = time_array(data, time)
    e = event_array(data, event)
    w = weight_array(data, weights)
    codes, labels = group_codes(data, group)
    k = len(labels)

    # counts per (group, time) cell: whole-day times index a grid directly (no sort), then one bincount
    # per quantity over the cells present, in (group, time) order
    tcode, ut = _distinct_times(t)
    cells, cell_idx = _cells(codes * ut.size + tcode, k * ut.size, t.size)

    def per_cell(weights_: np.ndarray | None) -> np.ndarray:
        return np.bincount(cell_idx, weights=weights_, minlength=cells.size)

    c_count = per_cell(None).astype(np.int64)
    d_count = per_cell(e.astype(float)).astype(np.int64)
    if w is None:
        c_w, d_w, c_w2 = c_count.astype(float), d_count.astype(float), None
    else:
        c_w, d_w, c_w2 = per_cell(w), per_cell(w * e), per_cell(w * w)
    ug, ut_cell = cells // ut.size, ut[cells % ut.size]

    # groups are contiguous among the cells: segment sums by slicing (a loop over groups only)
    seg = np.searchsorted(ug, np.arange(k + 1))
    bounds = [(lo, hi) for lo, hi in zip(seg[:-1], seg[1:], strict=True)]

    def by_group(fn, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x, dtype=float)
        for lo, hi in bounds:
            out[lo:hi] = fn(x[lo:hi])
        return out

    def at_risk(x: np.ndarray) -> np.ndarray:  # sum over T >= t within the group
        return by_group(lambda v: np.cumsum(v[::-1])[::-1], x)

    n_risk = at_risk(c_count).astype(np.int64)
    n_w = n_risk.astype(float) if w is None else at_risk(c_w)
    eff = n_w if w is None else n_w * n_w / at_risk(c_w2)  # effective risk-set size (n_risk unweighted)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(n_w > 0, d_w / n_w, 0.0)
        surv = by_group(np.cumprod, 1.0 - frac)
        term = np.where(d_w > 0, d_w / (eff * (n_w - d_w)), 0.0)
    var_log = by_group(np.cumsum, term)
    z = z_value(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        loglog_se = np.sqrt(var_log) / np.abs(np.log(surv))
        lower = np.exp(-np.exp(np.log(-np.log(surv)) + z * loglog_se))
        upper = np.exp(-np.exp(np.log(-np.log(surv)) - z * loglog_se))
    at_one = surv >= 1.0
    lower[at_one], upper[at_one] = 1.0, 1.0
    at_zero = surv <= 0.0
    lower[at_zero], upper[at_zero] = 0.0, 0.0

    # the curve: a row at time 0 (unless the group jumps there) and one per event time, in group order
    jumps = np.flatnonzero(d_count > 0)
    jg, jt = ug[jumps], ut_cell[jumps]
    group_n = np.bincount(ug, weights=c_count, minlength=k).astype(np.int64)
    group_events = np.bincount(ug, weights=d_count, minlength=k).astype(np.int64)
    first_jump = np.searchsorted(jg, np.arange(k))
    zero_jump = np.zeros(k, dtype=bool)
    if jg.size:
        j = np.minimum(first_jump, jg.size - 1)
        zero_jump = (first_jump < jg.size) & (jg[j] == np.arange(k)) & (jt[j] == 0.0)
    start = np.flatnonzero(~zero_jump)
    at = first_jump[start]
    cols_ = {"g": np.insert(jg, at, start), "time": np.insert(jt, at, 0.0),
             "estimate": np.insert(surv[jumps], at, 1.0), "ci_lower": np.insert(lower[jumps], at, 1.0),
             "ci_upper": np.insert(upper[jumps], at, 1.0),
             "n_at_risk": np.insert(n_risk[jumps], at, group_n[start]),
             "n_events": np.insert(d_count[jumps], at, 0)}
    if w is not None:
        cols_["n_at_risk_weighted"] = np.insert(n_w[jumps], at, np.bincount(codes, weights=w, minlength=k)[start])
    g_codes = cols_.pop("g")
    curve = pd.DataFrame(cols_)
    curve.insert(0, "group", pd.Categorical.from_codes(g_codes, categories=labels) if group is not None else "all")

    rows, ends = [], {}
    cseg = np.searchsorted(g_codes, np.arange(k + 1))
    tt_all, s_all = curve["time"].to_numpy(), curve["estimate"].to_numpy()
    lo_all, hi_all = curve["ci_lower"].to_numpy(), curve["ci_upper"].to_numpy()
    for code, label in enumerate(labels):
        lo, hi = bounds[code]
        ends[label] = (ut_cell[lo:hi], c_count[lo:hi])
        sl = slice(cseg[code], cseg[code + 1])
        tt, s = tt_all[sl], s_all[sl]
        pos = s > 0  # limits are undefined where S = 0 (R gives NA there)
        median = _quantile_time(tt, s, 0.5)
        rows.append({"group": label, "measure": "median_survival", "estimate": median,
                     "ci_lower": _quantile_time(tt[pos], lo_all[sl][pos], 0.5),
                     "ci_upper": _quantile_time(tt[pos], hi_all[sl][pos], 0.5),
                     "n": int(group_n[code]), "events": int(group_events[code]),
                     "median_reached": bool(np.isfinite(median))})
    table = pd.DataFrame(rows)

    if not e.any():
        warnings.append("no events: every survival curve stays at 1 and no median is reached")
    logrank_args, problem = None, ""
    if group is None or len(labels) < 2:
        problem = ("the log-rank test needs a group column with at least two groups"
                   + ("" if group is None else f"; {group!r} has only {labels}"))
    elif w is not None:
        problem = ("no log-rank test for weighted curves (the ordinary test is invalid with IPTW "
                   "weights); compare groups with cox(..., weights=...) and its robust Wald test")
    elif not e.any():
        problem = "the log-rank test needs at least one event"
    else:
        tables = None
        if ut.size * k <= 4 * t.size + 100_000:  # the (time x group) tables from the cells, not the rows
            tables = np.zeros((2, ut.size, k))
            tables[0, cells % ut.size, ug] = c_count
            tables[1, cells % ut.size, ug] = d_count
        logrank_args = (t, e, codes, labels, level, (tcode, ut), tables)
    return KaplanMeierResult(_table=table, level=level, method="Kaplan-Meier (log-log CI)"
                             + (", IPTW-weighted" if w is not None else ""),
                             reference=KM_REFERENCE, fitted=None, warnings=warnings, curve=curve,
                             n=int(t.size), n_missing=n_missing, _ends=ends,
                             _logrank_args=logrank_args, _logrank_problem=problem)


def _distinct_times(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row's time on a grid of times, the grid ascending): every row's time is
    ``grid[code]``, and the grid holds every distinct time (and possibly times no row has, which every
    count then skips). Whole-number times (days) within a range not much wider than the data use the
    range itself as the grid: no sort and no hashing, O(n). Otherwise the distinct times (np.unique)."""
    if t.size:
        lo, hi = float(t.min()), float(t.max())
        if hi - lo <= 4 * t.size + 100_000 and np.array_equal(t, np.floor(t)):
            return (t - lo).astype(np.int64), lo + np.arange(int(hi - lo) + 1, dtype=float)
    uniques, codes = np.unique(t, return_inverse=True)
    return codes.ravel().astype(np.int64, copy=False), uniques


def _cells(cell: np.ndarray, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(the present cell ids ascending, each row's index among them). A bincount over all ``size`` cells
    when that is not much more than the rows (no sort); otherwise np.unique."""
    if size <= 4 * n + 100_000:
        present = np.flatnonzero(np.bincount(cell, minlength=size))
        index = np.full(size, -1, dtype=np.int64)
        index[present] = np.arange(present.size)
        return present, index[cell]
    present, inverse = np.unique(cell, return_inverse=True)
    return present, inverse.ravel()


def _logrank(t: np.ndarray, e: np.ndarray, codes: np.ndarray, labels: list, level: float,
             distinct: tuple[np.ndarray, np.ndarray] | None = None,
             tables: np.ndarray | None = None) -> GroupTest:
    """K-group log-rank test (Mantel 1966; as R's survdiff with rho = 0): observed minus expected
    events per group, hypergeometric covariance summed over distinct event times, chi-square on K - 1
    df. Vectorised over times (a times x groups table); ``distinct``: ``_distinct_times(t)`` if known;
    ``tables``: the (2, times, groups) counts of people ending and of events at each time if known."""
    k = len(labels)
    if tables is not None:
        c, d = tables
    else:
        inv, ut = _distinct_times(t) if distinct is None else distinct
        cell = inv * k + codes
        d = np.bincount(cell, weights=e.astype(float), minlength=ut.size * k).reshape(ut.size, k)
        c = np.bincount(cell, minlength=ut.size * k).reshape(ut.size, k).astype(float)
    n_g = np.cumsum(c[::-1], axis=0)[::-1]
    keep = d.sum(axis=1) > 0
    d, n_g = d[keep], n_g[keep]
    d_tot, n_tot = d.sum(axis=1), n_g.sum(axis=1)
    share = n_g / n_tot[:, None]
    o_minus_e = (d - share * d_tot[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n_tot > 1, d_tot * (n_tot - d_tot) / (n_tot - 1), 0.0)
    cov = np.diag((factor[:, None] * share).sum(axis=0)) - (share * factor[:, None]).T @ share
    u, v = o_minus_e[:-1], cov[:-1, :-1]
    stat, df, p_value = score_chisq(u, v, "the log-rank covariance is singular (a group has no one at risk at "
                                    "any event time)")
    table = pd.DataFrame([{"measure": "logrank_chisq", "estimate": stat,
                           "p_value": p_value, "df": df,
                           "groups": ", ".join(str(v) for v in labels)}])
    detail = pd.DataFrame({"group": labels, "observed": (d.sum(axis=0)).astype(float),
                           "expected": (d.sum(axis=0) - o_minus_e)})
    return GroupTest(_table=tidy(table), level=level, method="log-rank test", reference=LOGRANK_REFERENCE,
                     fitted=detail, statistic=float(stat), df=int(df), p_value=float(p_value))


# ----------------------------------------------------------------------------------------------------
# Cox proportional-hazards model
# ----------------------------------------------------------------------------------------------------
COX_REFERENCE = (
    "Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34:187-220; Efron B. The efficiency "
    "of Cox's likelihood function for censored data. JASA 1977;72:557-565 (ties); Lin DY, Wei LJ. The "
    "robust inference for the Cox proportional hazards model. JASA 1989;84:1074-1078 (robust SE); "
    "computed as R survival::coxph (Therneau & Grambsch 2000)"
)
ZPH_REFERENCE = ("Grambsch PM, Therneau TM. Proportional hazards tests and diagnostics based on weighted "
                 "residuals. Biometrika 1994;81:515-526; score test as R survival::cox.zph (>= 3.0)")


@dataclass(repr=False)
class CoxResult(Result):
    """Cox model: ``.table()`` has one row per coefficient (term, estimate = hazard ratio, ci_lower,
    ci_upper, p_value, std_error of the log hazard ratio, n, events, plus log_hr and z).

    Also: ``vcov`` (used covariance of the log hazard ratios), ``naive_vcov`` (inverse information),
    ``loglik`` (LogLik(null, fitted)), ``n`` (rows analysed), ``n_missing`` (rows left out for missing values),
    ``tests()`` (likelihood-ratio, Wald, score), ``concordance()``,
    ``check_ph()``, ``term_coefficients`` (each term's coefficients) and ``to_lifelines()`` (the same model
    fitted by lifelines' CoxPHFitter).
    """

    coef: pd.Series = field(default_factory=pd.Series)
    vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    naive_vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    loglik: LogLik = LogLik(float("nan"), float("nan"))
    robust: bool = False
    n: int = 0
    events: int = 0
    n_missing: int = 0
    _score_test: float = float("nan")
    _fit: object = None
    _dat: object = None
    _terms: dict = field(default_factory=dict)
    _spec: dict = field(default_factory=dict)

    @property
    def term_coefficients(self) -> ReadOnlyDict:
        """Each term of the formula, as ``check_ph()`` names its rows ("C(sex)", "age_years"), with the names
        of its coefficients in ``coef`` (("C(sex)[T.male]",); a factor of k levels has k - 1)."""
        names = self.coef.index
        return ReadOnlyDict((term, tuple(str(names[c]) for c in cols)) for term, cols in self._terms.items())

    def tests(self) -> pd.DataFrame:
        """Global tests of all coefficients = 0: likelihood ratio, Wald (with the reported, possibly
        robust, covariance) and score (log-rank generalisation, at beta = 0)."""
        p = len(self.coef)
        b = self.coef.to_numpy()
        wald = float(b @ np.linalg.solve(self.vcov.to_numpy(), b))
        lr = 2.0 * (self.loglik[1] - self.loglik[0])
        rows = [("likelihood_ratio", lr), ("wald", wald), ("score", self._score_test)]
        return pd.DataFrame([{"measure": m, "estimate": s, "df": p, "p_value": float(sstats.chi2.sf(s, p))}
                             for m, s in rows])

    def concordance(self) -> float:
        """Harrell's C of the linear predictor (pairs in the same stratum; ties in the predictor count
        1/2), from lifelines' O(n log n) implementation. Unweighted."""
        from lifelines.utils.concordance import _concordance_ratio, _concordance_summary_statistics

        dat = self._dat
        lp = dat.X @ self.coef.to_numpy()
        segs = [slice(None)] if dat.rseg is None else [dat.rseg == s for s in np.unique(dat.rseg)]
        correct = tied = pairs = 0
        for seg in segs:
            c, t, p = _concordance_summary_statistics(dat.time[seg], -lp[seg], dat.event[seg])
            correct, tied, pairs = correct + c, tied + t, pairs + p
        if pairs == 0:
            raise EstimationError("no comparable pairs for the concordance")
        return float(_concordance_ratio(correct, tied, pairs))

    def _zph_time(self, transform: str) -> np.ndarray:
        """The transformed time g(t) at each event (sorted as the events), as ``cox.zph(fit)$x``: the
        transform is applied to every subject's follow-up time and then read at the events. This matters
        for "rank": R ranks all follow-up times (censored ones too), ``rank(times)[event]``, not the ranks
        among event times (earlier hostats ranked only the event times, so its rank-transform tests
        differed from R's: 0.364 instead of 0.117 for age on survival::lung)."""
        dat = self._dat
        t_ev = dat.time[dat.ev]
        if transform == "identity":
            return t_ev.astype(float)
        if transform == "log":
            if np.any(t_ev <= 0):
                raise EstimationError("transform='log' needs positive event times")
            return np.log(t_ev)
        if transform == "rank":
            return sstats.rankdata(dat.time)[dat.ev]  # ties: average ranks, as R's rank()
        if transform == "km":
            return 1.0 - _left_km(dat.time, dat.event, t_ev)
        raise ValueError(f"transform must be 'km', 'identity', 'rank' or 'log', got {transform!r}")

    def check_ph(self, transform: str = "km") -> pd.DataFrame:
        """Test of proportional hazards per term and GLOBAL, as R's ``cox.zph`` (survival >= 3.0): a
        score test of adding x * g(t) for each term, g = the transform of time centred over the events
        ("km": 1 - left-continuous Kaplan-Meier of all data; "identity"; "log"; "rank": the rank of each
        event's time among all subjects' follow-up times, censored ones included, as R's cox.zph).
        Small p-values suggest the hazard ratio changes over follow-up. Uses the model-based
        information (as cox.zph does, also for robust fits)."""
        from hostats.stats.core import cox_efron as _efron

        dat, fit = self._dat, self._fit
        g = self._zph_time(transform)
        g = g - g.mean()
        gk = g[dat.evstart]  # g is constant within an event group (same time)
        pc = fit.pieces
        sres = _efron.schoenfeld(dat, pc) * dat.w[dat.ev][:, None]
        u = np.r_[pc.score, g @ sres]
        i_bb = pc.info
        i_bg = _efron.information(dat, pc, gk)
        i_gg = _efron.information(dat, pc, gk * gk)
        imat = np.block([[i_bb, i_bg], [i_bg.T, i_gg]])
        p = len(self.coef)
        rows = []
        for term, cols in self._terms.items():
            ii = list(range(p)) + [p + c for c in cols]
            stat = float(u[ii] @ np.linalg.solve(imat[np.ix_(ii, ii)], u[ii]))
            rows.append({"term": term, "chisq": stat, "df": len(cols)})
        stat = float(u @ np.linalg.solve(imat, u))
        rows.append({"term": "GLOBAL", "chisq": stat, "df": p})
        out = pd.DataFrame(rows)
        out["p_value"] = sstats.chi2.sf(out["chisq"].to_numpy(), out["df"].to_numpy())
        out["transform"] = transform
        return out

    def ph_residuals(self, transform: str = "km") -> pd.DataFrame:
        """Scaled Schoenfeld residuals (one row per event: ``time``, transformed time ``g``, and per
        covariate beta + d V s, as R's ``cox.zph(fit)$y``) for plotting the hazard ratio over time.
        ``g`` is ``cox.zph(fit, transform)$x`` (for "rank", ranks among all follow-up times, as check_ph)."""
        from hostats.stats.core import cox_efron as _efron

        dat, fit = self._dat, self._fit
        t_ev = dat.time[dat.ev]
        g = self._zph_time(transform)
        sres = _efron.schoenfeld(dat, fit.pieces)
        scaled = self.coef.to_numpy() + dat.ev.size * sres @ self.naive_vcov.to_numpy()
        out = pd.DataFrame(scaled, columns=list(self.coef.index))
        out.insert(0, "g", g)
        out.insert(0, "time", t_ev)
        return out

    def to_lifelines(self, **kwargs: Any):
        """Fit the same model with lifelines' CoxPHFitter (Efron ties) and return it, for its plots and
        residuals. Slow on large data; strata and weights are passed on, cluster as cluster_col."""
        from lifelines import CoxPHFitter

        s = self._spec
        data: pd.DataFrame = s["data"]
        cols = [s["time"], s["event"]] + [c for c in (s["weights"], s["cluster"]) if c] + list(s["strata"])
        from hostats.stats.core import cox_efron as _efron

        frame = pd.DataFrame(_efron.unsorted_design(self._dat), columns=list(self.coef.index),
                             index=data.index)
        for c in cols:
            frame[c] = data[c].to_numpy()
        cph = CoxPHFitter(alpha=1 - self.level, **kwargs)
        return cph.fit(frame, s["time"], s["event"], weights_col=s["weights"], cluster_col=s["cluster"],
                       strata=list(s["strata"]) or None, robust=self.robust)


def _left_km(time: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Unweighted Kaplan-Meier of all rows (ignoring strata) just before each of ``at``."""
    ut, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event.astype(float))
    c = np.bincount(inv)
    n_risk = np.cumsum(c[::-1])[::-1]
    surv = np.cumprod(1.0 - d / n_risk)
    idx = np.searchsorted(ut, at, side="left")  # number of unique times < at
    return np.r_[1.0, surv][idx]


def cox(data: pd.DataFrame, formula: str, time: str, event: str, weights: str | None = None,
        cluster: str | None = None, strata: str | list[str] | None = None, level: float = 0.95,
        robust: bool | None = None, ci: str = "wald") -> CoxResult:
    """Cox proportional-hazards model: hazard ratios exp(beta) with Wald confidence limits.

    Estimand: the hazard ratio per unit of each covariate (per level versus the reference for
    ``C(factor)`` terms), assumed constant over follow-up (check with ``.check_ph()``).
    Method: maximum of the Efron partial likelihood by Newton-Raphson with step halving
    (``hostats.stats.core.cox_efron``; same estimates as R's ``coxph(ties="efron")``). ``strata``: separate
    baseline hazards (risk sets within strata). ``weights``: case weights as in coxph (mean weight of
    tied events). Standard errors: inverse information, or the Lin-Wei robust sandwich from the
    Efron score residuals (summed within ``cluster`` when given). ``robust=None`` means robust when a
    cluster is given or when the weights are not all integers (probability weights such as IPTW),
    as coxph does. Confidence limits are Wald limits on the log scale, as printed by coxph, or with
    ``ci="profile"`` profile-likelihood limits (model-based, so not with robust SEs; each limit needs
    a series of constrained fits: meant for cohorts, not for millions of rows).

    ``formula``: right-hand side such as ``"age_years + C(prophylaxis)"`` (a leading ``"~"`` is
    allowed), the syntax and coding of every hostats model (:mod:`hostats.stats.core.formula`: the columns of
    ``logistic`` without the intercept). Missing values: complete-case analysis on the time, event,
    formula, weights, cluster and strata columns, counted in ``warnings`` and ``n_missing``.
    """
    from hostats.stats.core import cox_efron as _efron

    level = check_level(level)
    if ci not in ("wald", "profile"):
        raise ValueError(f"ci must be 'wald' or 'profile', got {ci!r}")
    strata_cols = [strata] if isinstance(strata, str) else list(strata or [])
    cols = [time, event] + [c for c in (weights, cluster) if c] + strata_cols
    require_columns(data, cols)
    fcols = formula_columns(formula, outcome=False)
    require_variables(data, fcols, formula)
    data, warnings, n_missing = complete_cases(data, cols + fcols, "cox")
    t = time_array(data, time)
    e = event_array(data, event)
    w = weight_array(data, weights)
    if cluster is not None:
        label_array(data, cluster, "cluster")
    X, names, terms = covariate_matrix(data, formula, "hazard ratio", "kaplan_meier")
    if not e.any():
        raise EstimationError("no events: a Cox model needs at least one event")
    if e.sum() < X.shape[1]:
        raise EstimationError(f"only {int(e.sum())} events for {X.shape[1]} coefficients")
    sc = strata_codes(data, strata_cols, "strata")[0] if strata_cols else None
    wts = np.ones_like(t) if w is None else w
    dat = _efron.prepare(X, t, e, wts, sc)
    del X  # prepare keeps a sorted, centred copy
    fit = _efron.newton(dat)
    for name, flag in zip(names, fit.maybe_infinite, strict=True):
        if flag:
            warnings.append(f"the coefficient of {name!r} may be infinite (monotone likelihood: e.g. no "
                            "events in one level); its hazard ratio and CI are not trustworthy")
    if robust is None:
        robust = cluster is not None or (w is not None and bool(np.any(w != np.round(w))))
    vcov = fit.vcov
    if robust:
        # V (sum_c U_c U_c') V with U_c the weighted score residuals summed within cluster c
        resid = _efron.score_residuals(dat, fit.pieces)
        if cluster is not None:
            codes = pd.factorize(data[cluster])[0][dat.order]
            resid *= dat.w[:, None]
            summed = pd.DataFrame(resid).groupby(codes).sum().to_numpy()
            meat = summed.T @ summed
        else:
            meat = _efron._weighted_cross(resid, dat.w * dat.w)
        vcov = fit.vcov @ meat @ fit.vcov
        vcov = (vcov + vcov.T) / 2.0
    if ci == "profile" and robust:
        raise ValueError("profile-likelihood limits are model-based: use ci='wald' with robust SEs "
                         "(clusters or probability weights)")
    se = np.sqrt(np.diag(vcov))
    lo_b = hi_b = None  # Wald limits
    if ci == "profile":
        lims = np.array([_efron.profile_limits(dat, fit, j, level) for j in range(len(names))])
        lo_b, hi_b = lims[:, 0], lims[:, 1]
    table = pd.DataFrame({
        "term": names, **ratio_columns(fit.beta, se, level, lo_b, hi_b), "n": len(t), "events": int(e.sum()),
        "log_hr": fit.beta, "z": fit.beta / se,
    })
    details = ["Efron ties"] + (["profile-likelihood CI"] if ci == "profile" else [])
    if strata_cols:
        details.append(f"stratified by {', '.join(strata_cols)}")
    if weights is not None:
        details.append("weighted")
    if robust:
        details.append(f"robust SE clustered by {cluster}" if cluster else "robust SE")
    method = f"Cox proportional hazards ({', '.join(details)})"
    spec = {"data": data, "time": time, "event": event, "weights": weights, "cluster": cluster,
            "strata": strata_cols, "formula": formula}
    return CoxResult(_table=table, level=level, method=method, reference=COX_REFERENCE, fitted=None,
                     warnings=warnings, coef=pd.Series(fit.beta, index=names),
                     vcov=pd.DataFrame(vcov, index=names, columns=names),
                     naive_vcov=pd.DataFrame(fit.vcov, index=names, columns=names),
                     loglik=LogLik(float(fit.loglik0), float(fit.loglik)), robust=bool(robust), n=len(t), events=int(e.sum()),
                     n_missing=n_missing, _score_test=fit.score_test, _fit=fit, _dat=dat, _terms=terms,
                     _spec=spec)


