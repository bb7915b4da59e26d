"""Average treatment effects on the absolute risk of an event by a horizon, with competing risks and
right censoring: g-formula, IPTW, IPTW-IPCW and doubly robust AIPTW-AIPCW (as R's riskRegression::ate).

Estimand (ATE): for each treatment arm a, the marginal risk F_a(tau) = P(T^a <= tau, cause of interest)
had everyone received a (death and other causes compete: they end follow-up without the event), and the
risk difference F_a - F_ref and risk ratio F_a / F_ref against the reference arm. Identification
assumes no unmeasured confounding given the confounders, positivity, and censoring independent of the
event times given what the censoring model conditions on (the arm by default).

Estimators (riskRegression's names in brackets; Ozenne, Scheike, Staerk & Gerds 2020):

* ``gformula`` [GFORMULA]: cause-specific Cox models (one per cause, covariates = treatment dummies +
  confounders, Efron ties, as ``CSC(Hist(time, status) ~ A + X)``), product-limit absolute risk of the
  cause by tau for each patient under each arm, averaged (:mod:`hostats.stats.competing.cause_specific`).
* ``iptw``: the Aalen-Johansen cumulative incidence in each arm weighted by 1/e_a(X) (e from the
  multinomial logistic propensity model of :func:`hostats.stats.causal.weighting.iptw`), as
  ``survfit(Surv(time, factor(status)) ~ A, weights = w)``.
* ``ipcw`` [IPTW,IPCW]: (1/n) sum_i 1{A_i = a} / e_a(X_i) * 1{T_i <= tau, cause} / G(T_i- | strata_i).
* ``aipw`` [AIPTW,AIPCW]: the doubly robust estimator (1/n) sum_i [F(tau | a, X_i) + 1{A_i = a} / e_a(X_i)
  (1{T_i <= tau, cause} / G(T_i-) - F(tau | a, X_i) + int_0^tau (F(tau | a, X_i) - F(u | a, X_i)) /
  (S(u- | a, X_i) G(u-)) dM^C_i(u))], with F and S (event-free survival) from the g-formula's models;
  consistent if the outcome models, or the propensity and censoring models, are correct.

G is the Kaplan-Meier estimate of the censoring distribution, stratified by arm (riskRegression's
``coxph(Surv(time, status == 0) ~ strata(A))``) or by the ``censoring`` columns
(:mod:`hostats.stats.core.censoring_weights`).

Standard errors are from influence functions (Var = sum_i phi_i^2):

* gformula: includes the estimation of the Cox models (coefficients and baseline hazards), as
  riskRegression's default (``known.nuisance = FALSE``).
* ipcw: includes the estimation of the propensity model (M-estimation) and of G (Kaplan-Meier), as
  riskRegression's default.
* iptw: the Aalen-Johansen influence function plus the propensity model's estimation.
* aipw: the efficient influence function with the nuisance models treated as known (riskRegression's
  ``known.nuisance = TRUE``); for a doubly robust estimator with all models correct the nuisance terms
  vanish asymptotically (on the reference data riskRegression's default SEs are 0.5-1.1% larger).

Computation: iptw and ipcw take one sort and cumulative sums (O(n log n)); gformula and aipw evaluate
the predicted curves on the grid of distinct event times up to the horizon once per distinct row of the
confounders (U rows, shared by the arms), O(U x M) time for M grid times (M <= horizon for times in
whole days), in chunks of rows so that memory stays O(n); the patients' terms are read off per row (and
time), O(n).

Risk CIs are Wald intervals on the logit scale, risk-ratio CIs on the log scale (delta method), risk
differences on the natural scale.

References: Ozenne BMH, Scheike TH, Staerk L, Gerds TA. On the estimation of average treatment effects
with right-censored time to event outcome and competing risks. Biometrical Journal 2020;62:751-763;
Robins JM, Rotnitzky A. Recovery of information and adjustment for dependent censoring using surrogate
markers. In: AIDS Epidemiology, 1992, 297-331; Tsiatis AA. Semiparametric Theory and Missing Data.
Springer 2006 (ch. 9-10); Aalen OO, Johansen S. Scand J Stat 1978;5:141-150.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg

from hostats.errors import DataError, EstimationError
from hostats.stats.causal.weighting import (
    EXTREME_SHARE,
    EXTREME_WEIGHT,
    _contrast_rows,
    _covariates,
    _drop_collinear,
    _fit_propensity,
    _information,
    _list_formula,
    _positivity_flags,
    _treatment_levels,
    confounder_columns,
    treatment_arms,
)
from hostats.stats.competing import cause_specific as _csc
from hostats.stats.core.censoring_weights import censoring_km, strata_codes
from hostats.stats.core.formula import build_design
from hostats.stats.core.product_limit import product_limit
from hostats.stats.core.results import Result, check_level, tidy, z_value
from hostats.stats.core.survival_data import status_array, time_array
from hostats.stats.core.threads import single_blas_thread
from hostats.stats.core.validate import complete_cases, require_columns

METHODS = ("gformula", "iptw", "ipcw", "aipw")
MEASURES = ("risk_treated", "risk_control", "risk_difference", "risk_ratio")
ATE_REFERENCE = (
    "Ozenne BMH, Scheike TH, Staerk L, Gerds TA. On the estimation of average treatment effects with "
    "right-censored time to event outcome and competing risks. Biometrical Journal 2020;62:751-763 "
    "(R riskRegression::ate); Robins JM, Rotnitzky A. Recovery of information and adjustment for dependent "
    "censoring using surrogate markers. AIDS Epidemiology 1992:297-331; Aalen OO, Johansen S. Scand J Stat "
    "1978;5:141-150")
_LABELS = {"gformula": "g-formula (cause-specific Cox)", "iptw": "IPTW Aalen-Johansen",
           "ipcw": "IPTW-IPCW", "aipw": "AIPTW-AIPCW (doubly robust)"}


@dataclass(repr=False)
class ATEResult(Result):
    """Result of :func:`ate`.

    ``table()``: one row per (contrast, method, measure): contrast ("radiotherapy vs none"), method,
    measure (risk_treated, risk_control, risk_difference, risk_ratio), estimate, ci_lower, ci_upper,
    p_value, std_error (log scale for the ratio), n and events (observed events of the cause by the
    horizon) in the two arms, ci_level, horizon. ``risks()``: one row per method and arm.
    ``influence``: per method an n x arms DataFrame (index = the analysed rows) of influence-function
    values on the sum scale: risk_hat - risk ~ sum_i phi_i, so Var = (phi ** 2).sum() and the covariance
    of any two arms or methods is phi_1' phi_2 (to combine estimates, e.g. a contrast of two
    methods). ``propensity`` (n x arms), ``weights`` (1 / e_A(X)), ``models`` ("cause_specific_cox": per
    status code a table of log hazard ratios; "propensity": the statsmodels fit; "propensity_terms"),
    ``fitted`` (the propensity fit), ``n``, ``n_missing``, ``warnings``.
    """

    risks_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    influence: dict = field(default_factory=dict)
    propensity: pd.DataFrame = field(default_factory=pd.DataFrame)
    weights: pd.Series = field(default_factory=pd.Series)
    models: dict = field(default_factory=dict)
    levels: list = field(default_factory=list)
    reference_level: Any = None
    horizon: float = float("nan")
    cause: int = 1
    n: int = 0
    n_missing: int = 0

    def table(self) -> pd.DataFrame:
        out = super().table()
        first = [c for c in ("contrast", "method", "measure") if c in out.columns]
        return out[first + [c for c in out.columns if c not in first]]

    def risks(self) -> pd.DataFrame:
        """Tidy risks: method, group (arm), estimate, ci_lower, ci_upper, std_error, n, events, ci_level,
        horizon."""
        return self.risks_frame.copy()


# --------------------------------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------------------------------

def _ps_term(Xd: np.ndarray, P: np.ndarray, a: np.ndarray, R: np.ndarray, info: np.ndarray) -> np.ndarray:
    """Influence term (n x K) from estimating the multinomial-logit propensity model, for risks whose
    derivative with respect to log w_l (w = 1/e_A) is ``R[l, k]``: S_i' I^-1 D_k with the score
    S_i = (1{A_i = m} - e_m(X_i)) x_i and D_k = sum_l R[l, k] d log w_l / d gamma (M-estimation; as
    ``_influence`` in causal.py); ``info`` is the model's Fisher information."""
    n, K = P.shape
    p = Xd.shape[1]
    eye = np.eye(K)[:, 1:]
    chunks = [slice(lo, lo + _PS_CHUNK) for lo in range(0, n, _PS_CHUNK)]   # cache-sized temporaries

    def resid(sl: slice) -> np.ndarray:   # score factor; d log w / d gamma_m = -resid_m x
        return eye[a[sl]] - P[sl, 1:]

    D = np.zeros((K, p * (K - 1)))         # K x p(K-1)
    for sl in chunks:
        r, Rc, Xc = resid(sl), R[sl], Xd[sl]
        for m in range(K - 1):
            D[:, m * p:(m + 1) * p] += (Rc * -r[:, m, None]).T @ Xc
    try:
        proj = linalg.solve(info, D.T, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        proj = np.linalg.pinv(info) @ D.T
    out = np.zeros((n, K))
    for sl in chunks:
        r, Xc = resid(sl), Xd[sl]
        for m in range(K - 1):
            out[sl] += r[:, m, None] * (Xc @ proj[m * p:(m + 1) * p])
    return out


_PS_CHUNK = 32_768   # rows per pass of _ps_term


def _weighted_aj(t: np.ndarray, s: np.ndarray, w: np.ndarray, cause: int,
                 tau: float) -> tuple[float, np.ndarray]:
    """Weighted Aalen-Johansen risk of ``cause`` by ``tau`` in one arm and its influence function (sum
    scale, weights as given): phi_i = w_i sum_{u <= tau} [S(u-) dM1_i(u) - (F(tau) - F(u)) S(u-)/S(u)
    dM_i(u)] / Y_w(u), with M1 the cause's and M the all-cause counting-process martingale."""
    pl = product_limit(t, s, w, causes=(cause,), tau=tau)
    pos, Yw, inside = pl.index, pl.at_risk, pl.inside
    dl1 = np.where(inside, pl.events[0] / Yw, 0.0)
    dl = np.where(inside, pl.events_all / Yw, 0.0)
    surv, s_minus = pl.survival, pl.survival_minus
    Ftau = pl.incidence[0, -1]
    F = pl.incidence[0]
    alpha = np.where(inside, s_minus / Yw, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(inside & (surv > 0), (Ftau - F) * s_minus / (surv * Yw), 0.0)
    comp = np.cumsum(alpha * dl1 - beta * dl)
    phi = w * (alpha[pos] * (s == cause) - beta[pos] * (s > 0) - comp[pos])
    return float(Ftau), phi


def _augmentation(models: list[_csc.CauseModel], k_cause: int, Xu: np.ndarray, pattern: np.ndarray,
                  t: np.ndarray, s: np.ndarray, strata: np.ndarray, km, tau: float) -> np.ndarray:
    """For the patients of one arm (times ``t``, status ``s``, censoring ``strata``; patient i has the
    covariate row ``Xu[pattern[i]]``, the covariates set to that arm) the AIPCW term
    int_0^{min(T, tau)} (F(tau|x) - F(u|x)) / (S(u-|x) G(u-)) dM^C(u) in the patient's censoring stratum,
    with F(u) right-continuous and the left limits S(u-), G(u-) at the censoring times, as riskRegression's
    ``ATE_TI`` evaluates them. The integrand and its running sum over the censoring times depend only on
    the covariate row and the stratum: they are computed once per (row, stratum) and read off at each
    patient's time. Cost: (distinct rows) x (censoring times up to tau), in chunks of rows."""
    grid = models[0].grid
    M = grid.size
    aug = np.zeros(pattern.size)
    # per stratum: its censoring times u <= tau, dLambda_C(u), G(u-), and where u falls on the grid
    parts = {}
    for p in km._parts:
        sel = (p.dc > 0) & (p.times <= tau)
        if not sel.any():
            continue
        cu = p.times[sel]
        right = np.searchsorted(grid, cu, side="right")      # F(u): grid times <= u
        left = np.searchsorted(grid, cu, side="left")        # S(u-): grid times < u
        parts[int(km.strata[p.rows[0]])] = (cu, p.dc[sel] / p.y[sel], np.r_[1.0, p.g[:-1]][sel], right, left)
    used, pattern = np.unique(pattern, return_inverse=True)   # the rows these patients have
    order = np.argsort(pattern, kind="stable")
    bounds = np.searchsorted(pattern[order], np.arange(used.size + 1))   # patients of row u: order[bounds[u]:bounds[u + 1]]
    for pt in _csc.paths(models, k_cause, Xu[used]):
        rows = order[bounds[pt.rows.start]:bounds[pt.rows.stop]]    # the patients of this chunk's rows
        col = pattern[rows] - pt.rows.start
        ft = pt.F[-1]
        S_end = pt.S_minus[-1] * np.clip(1.0 - pt.dL[-1], 0.0, None)   # S(t_M), after the last grid time
        st = strata[rows]
        for code in np.unique(st):
            if code not in parts:
                continue
            cu, dlc, g_minus, right, left = parts[code]
            sub = rows[st == code]
            cols, j = np.unique(col[st == code], return_inverse=True)   # the stratum's rows; each patient's
            Fu = np.where((right > 0)[:, None], pt.F[np.ix_(np.maximum(right - 1, 0), cols)], 0.0)
            Su = np.where((left < M)[:, None], pt.S_minus[np.ix_(np.minimum(left, M - 1), cols)], S_end[None, cols])
            with np.errstate(divide="ignore", invalid="ignore"):
                h = np.where(Su > 0, (ft[None, cols] - Fu) / (Su * g_minus[:, None]), 0.0)   # (censoring times, rows)
            ti, si = t[sub], s[sub]
            # compensator: sum over censoring times u <= T_i of h(u) dLambda_C(u)
            upto = np.searchsorted(cu, ti, side="right")
            comp = np.cumsum(h * dlc[:, None], axis=0)
            val = np.where(upto > 0, comp[np.maximum(upto - 1, 0), j], 0.0)
            # jump: the patient's own censoring time, if it is before tau
            at = np.searchsorted(cu, ti)
            jump = (si == 0) & (at < cu.size)
            jump[jump] = cu[at[jump]] == ti[jump]
            jv = np.zeros(sub.size)
            jv[jump] = h[at[jump], j[jump]]
            aug[sub] = jv - val
    return aug


# --------------------------------------------------------------------------------------------------
# ate
# --------------------------------------------------------------------------------------------------

def _check_methods(methods) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    out = []
    for m in methods:
        key = str(m).lower()
        if key not in METHODS:
            raise ValueError(f"unknown method {m!r} in methods; choose from {list(METHODS)}")
        if key not in out:
            out.append(key)
    if not out:
        raise ValueError(f"methods is empty; choose from {list(METHODS)}")
    return out


# the products are thin (n x p, p small): a second BLAS thread gains little alone and costs much when the
# other core is busy (the propensity information of 1M rows: 1.4 s per evaluation with two threads at load 4)
@single_blas_thread()
def ate(data: pd.DataFrame, treatment: str, confounders: Sequence[str] | str, time: str, status: str,
        horizon: float, *, cause: int = 1, reference: Any = None,
        methods: Sequence[str] = METHODS, censoring: Sequence[str] | str | None = None,
        level: float = 0.95) -> ATEResult:
    """Adjusted absolute risks of ``cause`` by ``horizon`` under each treatment arm, with risk
    differences and risk ratios against ``reference``, by g-formula, IPTW, IPTW-IPCW and AIPTW-AIPCW
    (the estimand, methods, variances and references are in the module docstring).

    Parameters
    ----------
    data : one row per patient. Missing values: complete-case analysis on the treatment, confounder,
        time, status and censoring columns (counted in ``warnings`` and ``n_missing``).
    treatment : treatment column (binary or multi-level, e.g. ``prophylaxis``); every level present is
        an arm (a Categorical's unused categories are an error: drop them or keep the patients).
    confounders : list of columns or a right-hand-side formula ("age_years + C(sex)"), coded by the
        formula engine as every hostats model; used by the propensity and the cause-specific Cox models.
    time, status : follow-up time and status (0 censored, ``cause`` the event of interest, any other
        positive code a competing event such as death).
    horizon : the time by which the risk is estimated (same unit as ``time``), > 0.
    reference : comparison arm (default "none" if present, else the first level).
    methods : any of "gformula", "iptw", "ipcw", "aipw" (rows of the table, column ``method``).
    censoring : columns the censoring Kaplan-Meier is stratified by (default: the treatment arm).
    level : confidence level.
    """
    level = check_level(level)
    z = z_value(level)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"ate needs a pandas DataFrame, got {type(data).__name__}")
    meths = _check_methods(methods)
    horizon, cause = _check_horizon_cause(horizon, cause, time)

    formula, rhs, conf_cols = confounder_columns(data, confounders)
    cens_cols = [] if censoring is None else ([censoring] if isinstance(censoring, str) else list(censoring))
    require_columns(data, [treatment, time, status, *conf_cols, *cens_cols])
    if treatment in conf_cols:
        raise ValueError(f"the treatment {treatment!r} cannot also be a confounder")
    if time in conf_cols or status in conf_cols:
        raise ValueError("time and status cannot be confounders")
    data, dropped, n_missing = complete_cases(data, [treatment, time, status, *conf_cols, *cens_cols], "ate")
    notes: list[str] = list(dropped)

    levels, reference, a, counts = _arms(data[treatment], treatment, reference)
    K = len(levels)
    t = time_array(data, time)
    s = status_array(data, status, cause)
    y = (s == cause) & (t <= horizon)
    events = _events_by_arm(y, t, a, levels, cause, status, horizon, notes)
    Xd, X, x_names, ps_names = _designs(data, formula, rhs, conf_cols, treatment, levels, a, notes)
    models: dict[str, Any] = {"propensity_terms": ps_names}

    mus: dict[str, np.ndarray] = {}
    influence: dict[str, np.ndarray] = {}
    fitted, F_arm, patterns = None, None, None
    if any(m in meths for m in ("gformula", "aipw")):
        fitted, F_arm, mu, phi, patterns = _gformula(X, x_names, t, s, a, K, cause, horizon, models, notes)
        if "gformula" in meths:
            mus["gformula"], influence["gformula"] = mu, phi
    del X   # the outcome design (n x p) is not needed any more: free it before the weighting estimators
    P = w = None
    if any(m in meths for m in ("iptw", "ipcw", "aipw")):
        P, w = _propensity(Xd, a, levels, counts, models, notes)
        strata = None   # the censoring strata, for ipcw and aipw only
        if "ipcw" in meths or "aipw" in meths:
            strata = strata_codes(data, cens_cols)[0] if cens_cols else a.astype(np.int64)
        for meth, (mu, phi) in _weighting_estimates(meths, Xd, P, w, a, t, s, y, strata, cause, horizon,
                                                    fitted, F_arm, patterns).items():
            mus[meth], influence[meth] = mu, phi
    # the cause-specific models' per-patient arrays, the curves and the designs are not needed by the
    # tables: freed before the influence functions become frames (the section's memory peak at 1M rows)
    del fitted, F_arm, patterns, Xd

    table, risks = _ate_tables(meths, mus, influence, levels, counts, events, horizon, level, z, data.index)
    for msg in notes:
        if msg.startswith(("positivity", "extreme weights")):
            warnings.warn(msg, UserWarning, stacklevel=2)
    method = (f"ATE on the risk of status {cause} by {horizon:g} with competing events and censoring: "
              + ", ".join(_LABELS[m] for m in METHODS if m in meths)
              + "; influence-function CIs (logit scale for risks, log scale for risk ratios)")
    index = data.index
    prop = pd.DataFrame(P, index=index, columns=[str(v) for v in levels]) if P is not None else pd.DataFrame()
    wser = pd.Series(w, index=index, name="weight") if w is not None else pd.Series(dtype=float)
    return ATEResult(_table=tidy(table), level=level, method=method, reference=ATE_REFERENCE,
                     fitted=models.get("propensity"), warnings=notes, risks_frame=risks,
                     influence=influence, propensity=prop, weights=wser, models=models, levels=levels,
                     reference_level=reference, horizon=horizon, cause=cause, n=int(len(a)),
                     n_missing=n_missing)


# steps of ate

def _check_horizon_cause(horizon, cause, time) -> tuple[float, int]:
    try:
        horizon = float(horizon)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"horizon must be a positive number (a time in the unit of {time!r}), "
                         f"got {horizon!r}") from exc
    if not (np.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon must be a positive finite time, got {horizon!r}")
    if isinstance(cause, bool) or not float(cause).is_integer() or cause < 1:
        raise ValueError(f"cause must be a positive integer status code, got {cause!r}")
    return horizon, int(cause)


def _arms(col: pd.Series, treatment: str, reference: Any) -> tuple[list, Any, np.ndarray, np.ndarray]:
    """:func:`treatment_arms`, after refusing a Categorical's categories without patients (each category is
    an arm here)."""
    levels = _treatment_levels(col)
    if isinstance(col.dtype, pd.CategoricalDtype):
        empty = [c for c in col.cat.categories if c not in levels]
        if empty:
            raise DataError(f"treatment {treatment!r}: arm(s) {empty} have no patients (after removing rows "
                            "with missing values); drop the unused categories or the arm", column=treatment)
    return treatment_arms(col, treatment, reference)


def _events_by_arm(y, t, a, levels, cause, status, horizon, notes) -> np.ndarray:
    """Observed events of the cause by the horizon per arm; notes on arms nobody is followed to the
    horizon in, or without events; an error without any event."""
    K = len(levels)
    events = np.bincount(a, weights=y, minlength=K).astype(int)
    if events.sum() == 0:
        raise EstimationError(f"no events of status {cause} in {status!r} by the horizon {horizon:g}: no risk "
                              "to estimate")
    followed = np.bincount(a, weights=t >= horizon, minlength=K)
    for k in range(K):
        if followed[k] == 0:
            notes.append(f"no patient of arm {levels[k]!r} is followed to the horizon {horizon:g}: its risk rests on "
                         "the models' extrapolation (iptw and ipcw stop at the last follow-up)")
        if events[k] == 0:
            notes.append(f"arm {levels[k]!r} has no events of status {cause} by the horizon {horizon:g}: its "
                         "risk is 0 with no Wald interval and its risk ratios cannot be estimated")
    return events


def _designs(data, formula, rhs, conf_cols, treatment, levels, a, notes):
    """(propensity design with intercept, outcome design = treatment dummies + confounders, its names, the
    propensity terms): confounders as the formula engine codes them, collinear terms dropped with a note."""
    K = len(levels)
    if formula is None:
        covs = _covariates(data, conf_cols, notes)
        formula = rhs = _list_formula(list(dict.fromkeys(c.variable for c in covs)))
    design, Xd = build_design(data, rhs or "1", formula, intercept=True)
    keep = [j for j, nm in enumerate(design.names) if nm != "Intercept"]
    Z = Xd[:, keep]
    Xd, ps_names = _drop_collinear(Xd, design.names, notes)
    dummies = np.eye(K)[a][:, 1:]
    X, x_names = _drop_collinear(np.column_stack([dummies, Z]),
                                 [f"{treatment}[T.{v}]" for v in levels[1:]] + [design.names[j] for j in keep],
                                 notes)
    if any(f"{treatment}[T.{v}]" not in x_names for v in levels[1:]):
        raise EstimationError(f"treatment {treatment!r} is collinear with the confounders: its effect cannot be "
                              "separated from theirs")
    return Xd, X, x_names, ps_names


def _gformula(X, x_names, t, s, a, K, cause, horizon, models, notes):
    """Cause-specific Cox models of every cause (kept in ``models``) and each patient's standardised risk
    under each arm: (fitted models, F (distinct confounder rows x arms), the g-formula risks, their
    influence, (the distinct confounder rows, each patient's row))."""
    grid = np.unique(t[(s > 0) & (t <= horizon)])
    causes = [cause] + sorted(int(c) for c in np.unique(s[s > 0]) if c != cause)
    fitted = [_csc.fit_cause(X, t, s, c, grid, f"{'cause of interest' if c == cause else 'competing'}")
              for c in causes]
    for c, m in zip(causes, fitted, strict=True):
        for name in (nm for nm, inf in zip(x_names, m.fit.maybe_infinite, strict=True) if inf):
            notes.append(f"cause-specific Cox model for status {c}: the coefficient of {name!r} is probably "
                         "infinite (no events of that status in a group); the g-formula and aipw risks of "
                         "that group rest on it")
    models["cause_specific_cox"] = {c: pd.DataFrame({"term": x_names, "log_hr": m.beta,
                                                     "std_error": np.sqrt(np.diag(m.vcov))})
                                    for c, m in zip(causes, fitted, strict=True)}
    # the confounders' distinct rows, shared by every arm's counterfactual design
    Zu, pattern = _csc.distinct_rows(X[:, K - 1:])
    positions = _csc.grid_positions(t, grid)
    phi = np.zeros((len(a), K))
    mu = np.zeros(K)
    F_arm = np.zeros((Zu.shape[0], K))
    for k in range(K):
        mu[k], phi[:, k], F_arm[:, k] = _csc.standardised_risk(fitted, 0, _arm_design(Zu, K, k), t, s, grid,
                                                               inverse=pattern, positions=positions)
    for m in fitted:   # the augmentation needs only the curves
        m.release()
    return fitted, F_arm, mu, phi, (Zu, pattern)


def _arm_design(Zu: np.ndarray, K: int, k: int) -> np.ndarray:
    """The outcome design of the confounder rows ``Zu`` with everyone set to arm k (treatment dummies
    first, as :func:`_designs` builds it)."""
    return np.column_stack([np.broadcast_to(np.eye(K)[k][1:], (Zu.shape[0], K - 1)), Zu])


def _propensity(Xd, a, levels, counts, models, notes) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial-logistic propensities (n x arms, kept in ``models``) and the ATE weights 1 / e_A(X), with
    the positivity and extreme-weight notes."""
    P, ps_fit = _fit_propensity(Xd, a, len(levels), "logistic", notes)
    P = np.clip(P, 1e-12, 1.0)
    models["propensity"] = ps_fit
    w = 1.0 / P[np.arange(len(a)), a]
    _diagnostics(P, a, w, levels, counts, notes)
    return P, w


def _weighting_estimates(meths, Xd, P, w, a, t, s, y, strata, cause, horizon, fitted, F_arm, patterns
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Risks and influence (n x arms) of the weighting estimators asked for: iptw (weighted Aalen-Johansen),
    ipcw and aipw (censoring Kaplan-Meier in ``strata``)."""
    n, K = P.shape
    info = _information(Xd, P)
    out = {}
    if "iptw" in meths:
        mu, phi = np.zeros(K), np.zeros((n, K))
        for k in range(K):
            sel = a == k
            mu[k], phi[sel, k] = _weighted_aj(t[sel], s[sel], w[sel], cause, horizon)
        out["iptw"] = (mu, phi + _ps_term(Xd, P, a, phi, info))
    if "ipcw" not in meths and "aipw" not in meths:
        return out
    km = censoring_km(t, s, strata)
    if "ipcw" in meths:
        v = np.eye(K)[a] * (w * y / km.g_minus)[:, None]
        mu = v.mean(axis=0)
        out["ipcw"] = (mu, (v - mu + km.correction(v)) / n + _ps_term(Xd, P, a, v / n, info))
    if "aipw" in meths:
        Zu, pattern = patterns
        zeta = F_arm[pattern]
        for k in range(K):
            sel = a == k
            aug = _augmentation(fitted, 0, _arm_design(Zu, K, k), pattern[sel], t[sel], s[sel], strata[sel], km,
                                horizon)
            zeta[sel, k] += w[sel] * (y[sel] / km.g_minus[sel] - zeta[sel, k] + aug)
        mu = zeta.mean(axis=0)
        out["aipw"] = (mu, (zeta - mu) / n)
    return out


def _ate_tables(meths, mus, influence, levels, counts, events, horizon, level, z, index
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The contrast table and the risks table of the methods asked for; ``influence`` becomes, per method,
    an n x arms DataFrame on ``index``."""
    K = len(levels)
    rows, risk_rows = [], []
    pairs = [(k, 0) for k in range(1, K)]
    for meth in [m for m in METHODS if m in meths]:
        mu, phi = mus[meth], influence[meth]
        V = phi.T @ phi
        with np.errstate(over="ignore"):  # a risk of ~1e-20 (an arm without events) has limits 0 and 1
            contrast = _contrast_rows(mu, V, counts, events, pairs, levels, z)
            # paired with another arm (a contrast with itself has variance 0 up to rounding: sqrt of < 0)
            own = [_contrast_rows(mu, V, counts, events, [(k, 1 if k == 0 else 0)], levels, z)[0]
                   for k in range(K)]
        rows += [{**r, "method": meth} for r in contrast if r["measure"] != "odds_ratio"]
        for k, r in enumerate(own):  # the arm's own row of a contrast (risk_treated): logit-scale CI
            risk_rows.append({"method": meth, "group": levels[k],
                              **{c: r[c] for c in ("estimate", "ci_lower", "ci_upper", "std_error", "n",
                                                   "events")}})
        influence[meth] = pd.DataFrame(phi, index=index, columns=[str(v) for v in levels])

    table = pd.DataFrame(rows)
    table["horizon"] = horizon
    table["_c"] = table["contrast"].map({f"{levels[t_]} vs {levels[c_]}": i for i, (t_, c_) in enumerate(pairs)})
    table["_m"] = table["method"].map(METHODS.index)
    table["_o"] = table["measure"].map(MEASURES.index)
    table = table.sort_values(["_c", "_m", "_o"], kind="stable").drop(columns=["_c", "_m", "_o"])
    risks = tidy(pd.DataFrame(risk_rows))
    risks["ci_level"] = level
    risks["horizon"] = horizon
    return table, risks[["method"] + [c for c in risks.columns if c != "method"]]


def _diagnostics(P, a, w, levels, counts, notes) -> None:
    """Positivity and extreme-weight flags (thresholds of causal.py)."""
    for k in range(len(levels)):
        _positivity_flags(P, [k], levels, notes, "the weighting estimators (iptw, ipcw, aipw) may be unstable")
        wk = w[a == k]
        rel = wk / wk.mean()
        if rel.max() > EXTREME_WEIGHT and wk.max() / wk.sum() > EXTREME_SHARE:
            notes.append(f"extreme weights in arm {levels[k]!r}: the largest is {rel.max():.1f} times the arm's "
                         f"mean weight ({int(counts[k])} patients)")
