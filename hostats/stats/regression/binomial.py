"""Direct binomial regression: covariate effects on the risk of an event by a horizon, censoring-aware.

``binreg(data, formula, time, status, horizon)`` models the cumulative incidence at one horizon,
logit P(T <= horizon, cause | X) = X'beta, by the inverse-probability-of-censoring-weighted (IPCW)
estimating equation of Scheike, Zhang & Gerds (2008), as R ``mets::binreg``. Unlike a logistic regression
among the patients whose status at the horizon is known (complete case), it is unbiased under
independent loss to follow-up, and competing events (e.g. death before HO) count as "no event of the
cause by the horizon", as in the Aalen-Johansen cumulative incidence. The result has the table of
:class:`hostats.stats.regression.logit.LogisticResult` (odds ratios per term), so a report can swap one for
the other.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit

from hostats.errors import DataError, EstimationError
from hostats.stats.core.censoring_weights import IPCW_REFERENCE, censoring_km, strata_codes
from hostats.stats.core.formula import Design, build_design, formula_columns, require_variables, split_formula
from hostats.stats.core.results import LogLik, Result, check_level, deprecated_alias, ratio_columns
from hostats.stats.core.survival_data import status_array, time_array
from hostats.stats.core.validate import complete_cases, require_columns
from hostats.stats.regression.logit import _newton, check_terms

BINREG_REFERENCE = (
    "Scheike TH, Zhang MJ, Gerds TA. Predicting cumulative incidence probability by direct binomial "
    "regression. Biometrika 2008;95:205-220 (IPCW estimating equation and robust SEs with the censoring "
    "term, as R mets::binreg)"
)
_DIVERGED = 15.0  # |log OR| beyond which the solution is running off to infinity (no events in a level)


@dataclass(repr=False)
class BinregResult(Result):
    """Odds ratios of the risk of ``cause`` by ``horizon`` per term.

    ``table()``: term, estimate (OR; the Intercept row is the baseline odds), ci_lower, ci_upper, p_value,
    std_error (of the log OR, robust), n, events, ci_level, log_odds: the columns of
    :class:`~hostats.stats.regression.logit.LogisticResult`. Attributes: ``coef`` (log odds, a Series indexed
    by term), ``vcov`` (robust covariance, a DataFrame, as ``LogisticResult.vcov``), ``naive_vcov``
    (treating the censoring weights as known), ``loglik`` (LogLik(null, fitted): NaN, an estimating
    equation has no likelihood), ``influence`` (n x p DataFrame indexed like the analysed rows:
    beta-hat - beta ~ the column sums, so ``vcov = influence.T @ influence``; mets' ``iid``), ``n``
    (analysed rows), ``events`` (events of ``cause`` observed by the horizon), ``competing_events``
    (other causes observed by the horizon), ``n_missing``, ``horizon``, ``cause``, ``censoring`` (the
    censoring strata columns), ``iterations``; ``.predict(data)`` the risk at the horizon. Deprecated:
    ``params`` (use ``coef``), ``cov`` (``vcov``), ``naive_cov`` (``naive_vcov``), which return ndarrays.
    """

    coef: pd.Series = field(default_factory=pd.Series)
    vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    naive_vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    influence: pd.DataFrame = field(default_factory=pd.DataFrame)
    n: int = 0
    events: int = 0
    competing_events: int = 0
    n_missing: int = 0
    horizon: float = float("nan")
    cause: int = 1
    censoring: list[str] = field(default_factory=list)
    iterations: int = 0
    _design: Design | None = None

    params = deprecated_alias("coef")
    cov = deprecated_alias("vcov", convert=lambda v: v.to_numpy())
    naive_cov = deprecated_alias("naive_vcov", convert=lambda v: v.to_numpy())

    @property
    def loglik(self) -> LogLik:
        """LogLik(null, fitted), both NaN: the IPCW estimating equation has no likelihood."""
        return LogLik(float("nan"), float("nan"))

    def predict(self, data: pd.DataFrame) -> pd.Series:
        """Risk of ``cause`` by the horizon, P(T <= horizon, cause | X), for the rows of ``data`` (NaN where
        a formula column is missing; an unseen factor level is a DataError)."""
        X = self._design.matrix(data)
        return pd.Series(expit(X @ self.coef.to_numpy()), index=data.index, name="risk")

    def linear_predictor(self, data: pd.DataFrame) -> pd.Series:
        X = self._design.matrix(data)
        return pd.Series(X @ self.coef.to_numpy(), index=data.index, name="log_odds")


def binreg(data: pd.DataFrame, formula: str, time: str, status: str, horizon: float, *, cause: int = 1,
           censoring: str | Sequence[str] | None = None, level: float = 0.95) -> BinregResult:
    """Odds ratios for the risk of ``cause`` by ``horizon`` from the direct binomial regression (IPCW).

    Estimand: exp(beta) of logit P(T <= horizon, cause | X) = X'beta, the odds ratios of the cumulative
    incidence of ``cause`` at the horizon (competing events, any other non-zero status, count as no event
    of the cause; the Intercept row is the baseline odds).
    Method: Scheike, Zhang & Gerds (2008), as R ``mets::binreg``: the estimating equation
    sum_i X_i (Delta_i I(T_i <= horizon, cause_i = cause) / G(T_i- | stratum) - expit(X_i'beta)) = 0,
    G the Kaplan-Meier estimate of the censoring distribution (``censoring=None``: one curve, as mets'
    ``cens.model = ~1``; ``censoring=["col", ...]``: one curve per combination of the columns' values,
    as ``cens.model = ~strata(col)``), solved by Newton-Raphson. G(T-) is the left limit: an event and
    a censoring at the same time count the event first (mets 1.3.2 uses G(T); the two differ only where
    a censoring shares an event's time). Standard errors: robust, from the influence functions
    H^-1 [X_i (Y_i - p_i) + c_i], where the term c_i (:mod:`hostats.stats.core.censoring_weights`) accounts for
    estimating G; so they cover the sampling variation of the outcome and of the censoring weights, with
    the censoring model (independent censoring given the strata) taken as correct. The SEs treat rows as
    independent (no clustering). Wald CIs and p-values. The censoring weights are valid when censoring is
    independent of the event times given the censoring strata (not given X, unless X's columns are the
    strata).
    ``formula``: the right-hand side only (``"age_years + C(sex)"``, a leading ``~`` allowed; the outcome
    is defined by ``time``, ``status``, ``horizon`` and ``cause``), coded as every hostats model
    (:mod:`hostats.stats.core.formula`) with the intercept, so the terms are those of ``logistic``.
    ``status``: 0 censored, ``cause`` the event of interest, any other positive code a competing event.
    ``horizon`` in the units of ``time``, within the follow-up.
    Missing values: complete-case analysis on the time, status, formula and censoring columns (counted in
    ``warnings`` and ``n_missing``). Errors: negative times or unknown status codes (DataError naming the
    column and rows), a horizon <= 0 or beyond the last follow-up (ValueError), no events of the cause
    by the horizon, a constant or collinear term, non-convergence or a diverging coefficient (a level
    without events) (EstimationError naming the term).
    Reference: Scheike TH, Zhang MJ, Gerds TA. Biometrika 2008;95:205-220.
    """
    level = check_level(level)
    require_columns(data, [time, status])
    if isinstance(formula, str) and formula.count("~") == 1 and formula.split("~")[0].strip():
        raise DataError(f"binreg takes the right-hand side of the formula only (the outcome is the event "
                        f"'{status} == {cause}' by the horizon, from time={time!r} and status={status!r}); "
                        f"give {formula.split('~')[1].strip()!r} instead of {formula!r}")
    _, rhs = split_formula(formula, outcome=False)
    if not rhs:
        raise DataError(f"the formula {formula!r} has no terms; use '1' for an intercept-only model (or "
                        "cumulative_incidence for the risk without covariates)")
    cens_cols = [] if censoring is None else ([censoring] if isinstance(censoring, str) else list(censoring))
    for c in cens_cols:
        if not isinstance(c, str):
            raise ValueError(f"censoring must be None, a column name or a list of column names, got {censoring!r}")
    require_columns(data, cens_cols)
    fcols = formula_columns(formula, outcome=False)
    require_variables(data, fcols, formula)
    frame, warns, n_missing = complete_cases(data, [time, status, *fcols, *cens_cols], "binreg")
    t = time_array(frame, time)
    s = status_array(frame, status, cause)
    cause = int(cause)
    try:
        horizon = float(horizon)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"horizon must be a number (in the units of {time!r}), got {horizon!r}") from exc
    if not np.isfinite(horizon) or horizon <= 0:
        raise ValueError(f"horizon must be a positive number (in the units of {time!r}), got {horizon!r}")
    last = float(t.max())
    if horizon > last:
        raise ValueError(f"horizon {horizon:g} is beyond the last follow-up time in {time!r} ({last:g}): the "
                         "risk there cannot be estimated; choose a horizon within the follow-up")
    event = (s == cause) & (t <= horizon)
    n_events = int(event.sum())
    if n_events == 0:
        raise EstimationError(f"no events of cause {cause} (column {status!r}) by the horizon {horizon:g} "
                              f"(column {time!r}): odds ratios of the risk cannot be estimated")

    design, X = build_design(frame, rhs, formula, intercept=True)
    names = design.names
    check_terms(X, names)
    codes, labels = strata_codes(frame, cens_cols)
    km = censoring_km(t, s, codes)
    g = km.at(np.minimum(t, horizon))                       # G(min(T, horizon)-), in the own stratum
    g_h = km.at(np.full(t.size, horizon))
    if np.any(g_h <= 0):
        where = "" if not cens_cols else f" in censoring stratum {labels[int(codes[g_h <= 0][0])]!r}"
        raise EstimationError(f"everyone still followed{where} is censored before the horizon {horizon:g} "
                              "(the censoring survival is 0): choose an earlier horizon or coarser censoring "
                              "strata")
    y = np.where(event, 1.0 / np.where(event, g, 1.0), 0.0)
    if n_events == t.size:
        raise EstimationError("every analysed row has an event of the cause by the horizon: odds ratios "
                              "cannot be estimated")
    for j, name in enumerate(names):  # a 0/1 term whose rows have no events: its log OR is -infinity
        col = X[:, j]
        if name != "Intercept" and np.all((col == 0) | (col == 1)) and not np.any(y[col == 1] > 0):
            raise EstimationError(f"term {name!r}: no events of cause {cause} by the horizon {horizon:g} in its "
                                  f"{int(np.sum(col == 1))} rows, so its odds ratio is 0 (not estimable); merge "
                                  "sparse levels or drop the term")
    # the IPCW equation is the logistic score with a non-binary outcome y: logistic's Newton solves it
    # (same concave objective sum y eta - log(1 + e^eta), capped and halved steps), from the intercept-only fit
    start = np.zeros(X.shape[1])
    if np.allclose(X[:, 0], 1.0):
        ybar = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        start[0] = np.log(ybar / (1 - ybar))
    fit = _newton(X, y, np.ones_like(y), beta0=start, tol=1e-10)
    beta, iterations, converged = fit.beta, fit.iterations, fit.converged
    big = names[int(np.argmax(np.abs(beta[1:]))) + 1] if len(names) > 1 else names[0]
    if not converged or not np.all(np.isfinite(beta)):
        raise EstimationError(f"binreg: Newton-Raphson did not converge in {iterations} iterations (largest "
                              f"coefficient: {big!r}); a covariate level with no (or only) events of cause "
                              f"{cause} by the horizon? Merge sparse levels or drop the term")
    huge = [names[j] for j in np.flatnonzero(np.abs(beta) > _DIVERGED) if names[j] != "Intercept"]
    if huge:
        raise EstimationError(f"binreg: coefficient(s) of {huge} diverge (|log OR| > {_DIVERGED:g}): "
                              f"(quasi-)separation, e.g. a level with no events of cause {cause} by the "
                              "horizon; merge sparse levels or drop the term")

    p = expit(X @ beta)
    info = X.T @ (X * (p * (1.0 - p))[:, None])
    try:
        inv_info = np.linalg.inv(info)
    except np.linalg.LinAlgError as exc:
        raise EstimationError("binreg: the information matrix is singular (collinear terms?)") from exc
    score = X * (y - p)[:, None]
    # the outcome part of the score, X_i Y_i = X_i phi_i / G(T_i-), is an IPCW mean (module _ipcw); its
    # censoring term adds to each subject's score (mets' MGCiid). Y_i is non-zero only for events by the
    # horizon, which use G at their own time: the default u of correction()
    corr = km.correction(X * y[:, None])
    iid = (score + corr) @ inv_info
    naive = score @ inv_info
    cov = iid.T @ iid
    naive_cov = naive.T @ naive
    se = np.sqrt(np.diag(cov))

    comp = int(np.sum((s > 0) & (s != cause) & (t <= horizon)))
    small = float(np.min(g_h))
    if small < 0.1:
        warns.append(f"the censoring survival at the horizon is {small:.3f}{' in a stratum' if cens_cols else ''}: "
                     "few patients are followed that long and the largest IPCW weights exceed 10; estimates "
                     "rest on them")
    table = pd.DataFrame({"term": names, **ratio_columns(beta, se, level), "n": int(t.size), "events": n_events,
                          "log_odds": beta})
    method = (f"direct binomial regression (IPCW, logit link) for the risk of cause {cause} by {horizon:g}; "
              "censoring Kaplan-Meier" + (f" stratified by {', '.join(cens_cols)}" if cens_cols else "")
              + "; robust SEs including the censoring-weight term; Wald CIs")
    return BinregResult(
        table, level=level, method=method, reference=f"{BINREG_REFERENCE}; {IPCW_REFERENCE}", fitted=None,
        warnings=warns, coef=pd.Series(beta, index=names), vcov=pd.DataFrame(cov, index=names, columns=names),
        naive_vcov=pd.DataFrame(naive_cov, index=names, columns=names),
        influence=pd.DataFrame(iid, index=frame.index, columns=names), n=int(t.size), events=n_events,
        competing_events=comp, n_missing=n_missing, horizon=horizon, cause=cause, censoring=cens_cols,
        iterations=iterations, _design=design)


__all__ = ["binreg", "BinregResult"]
