"""Logistic and Poisson regression from grouped data (covariate patterns with counts).

A binary outcome's likelihood depends on the data only through, per covariate pattern, the number of
people and of events; a Poisson rate model's only through, per pattern, the events and the person-time.
``logistic_counts`` fits :func:`hostats.stats.regression.logit.logistic` to the patterns with frequency
weights (the same odds ratios, standard errors, n and events as the fit to the rows), and
``poisson_counts`` fits a Poisson GLM with log person-time offset (statsmodels), reporting rate ratios.
"""
from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hostats.errors import DataError, EstimationError
from hostats.stats.core.formula import build_design, formula_variables, require_variables, split_formula
from hostats.stats.core.frequency import complete_counts, count_array
from hostats.stats.core.results import LogLik, Result, check_level, ratio_columns
from hostats.stats.regression.logit import LogisticResult, logistic

__all__ = ["logistic_counts", "poisson_counts", "PoissonResult"]

POISSON_REFERENCE = ("McCullagh P, Nelder JA. Generalized Linear Models, 2nd ed. 1989, ch. 6 (log-linear "
                     "models for rates, person-time as offset); statsmodels GLM(Poisson, exposure=)")


def logistic_counts(data: pd.DataFrame, formula: str, count: str, level: float = 0.95,
                    ci: str | None = None, firth: bool = False) -> LogisticResult:
    """Odds ratios of a logistic regression from a frequency table of (covariate pattern, outcome).

    Estimand: conditional odds ratios exp(beta) of logit P(outcome = 1) = x'beta, as
    :func:`hostats.stats.regression.logit.logistic`. Method: that function with ``count`` as frequency
    weights (statsmodels ``GLM(Binomial, freq_weights=)``; Firth's penalised likelihood with
    ``firth=True``): the likelihood of the rows is the weighted likelihood of the patterns, so estimates,
    model-based SEs, ``n``, ``events`` and the c-statistic are those of the row-level fit. Input: one
    row per (pattern, outcome 0/1) with ``count`` people; rows with a missing outcome or covariate are
    left out, counted in people (``n_missing``). Reference: Hosmer, Lemeshow & Sturdivant, Applied
    Logistic Regression, 3rd ed. 2013, ch. 1-2 (covariate patterns).
    """
    outcome, rhs = split_formula(formula, outcome=True)
    variables = formula_variables(rhs, formula) if rhs else []
    require_variables(data, variables, formula)
    frame, msgs, n_missing = complete_counts(data, [outcome, *variables], count, "logistic_counts")
    frame = frame.assign(**{"__count__": count_array(frame, count)})
    with _warnings.catch_warnings():
        _warnings.filterwarnings("ignore", message="cov_type not fully supported with freq_weights")
        res = logistic(frame, formula, weights="__count__", weight_type="frequency", level=level, ci=ci,
                       firth=firth)
    res._amend(method=res.method.replace("frequency weights", "from covariate-pattern counts"),
               n_missing=n_missing, warnings=msgs + list(res.warnings))
    return res


@dataclass(repr=False)
class PoissonResult(Result):
    """Rate ratios per term (``table()``: term, estimate = exp(coef), ci_lower, ci_upper, p_value,
    std_error of the log rate ratio, n, events, person_time; the Intercept row is the baseline rate per
    ``per`` units of person-time). ``coef`` (log scale), ``vcov``, ``loglik`` (null, fitted), ``n``
    (people), ``events``, ``person_time``, ``n_missing``; ``fitted``: the statsmodels GLM results."""

    coef: pd.Series = field(default_factory=pd.Series)
    vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    n: int = 0
    events: float = 0
    person_time: float = 0.0
    n_missing: int = 0
    _loglik_pair: LogLik | None = None

    @property
    def loglik(self) -> LogLik:
        return self._loglik_pair


def poisson_counts(data: pd.DataFrame, formula: str, person_time: str, count: str | None = None,
                   per: float = 100.0, level: float = 0.95) -> PoissonResult:
    """Incidence rate ratios from a Poisson regression of events on covariate patterns.

    Estimand: exp(beta) in log E[events] = log(person_time) + x'beta: rate ratios of the covariates, the
    Intercept the baseline rate (per ``per`` units of ``person_time``). Method: maximum likelihood,
    statsmodels ``GLM(Poisson, exposure=person_time)`` with model-based (Wald) CIs; ``formula`` is
    ``"events ~ terms"`` with the formula engine of every hostats model. The likelihood depends on the
    rows only through each pattern's total events and person-time, so grouped and row-level fits agree;
    with one categorical covariate the rate ratios are the crude ratios of :func:`hostats.rate`.
    ``count`` (optional): people per pattern, for ``n``. Rows with a missing value are left out, counted.
    Reference: McCullagh & Nelder 1989, ch. 6; Breslow & Day 1987, vol II, ch. 4.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    level = check_level(level)
    per = float(per)
    if not np.isfinite(per) or per <= 0:
        raise ValueError(f"per must be a positive number, got {per!r}")
    outcome, rhs = split_formula(formula, outcome=True)
    if not rhs:
        raise DataError(f"the formula {formula!r} has no right-hand side; use '{outcome} ~ 1' for the "
                        "overall rate")
    variables = formula_variables(rhs, formula)
    require_variables(data, [outcome, person_time, *variables], formula)
    if count is None:
        data = data.assign(__count__=1)
        count = "__count__"
    frame, msgs, n_missing = complete_counts(data, [outcome, person_time, *variables], count, "poisson_counts")
    y = frame[outcome].to_numpy(dtype=float)
    if np.any(y < 0) or np.any(y != np.round(y)):
        raise DataError(f"event counts in {outcome!r} must be whole non-negative numbers", column=outcome)
    pt = frame[person_time].to_numpy(dtype=float)
    if np.any(~np.isfinite(pt)) or np.any(pt < 0):
        raise DataError(f"person-time in {person_time!r} must be finite and non-negative", column=person_time)
    if np.any((pt == 0) & (y > 0)):
        raise DataError(f"events with zero person-time in {person_time!r}", column=person_time)
    n = int(count_array(frame, count).sum())  # people, including those with no follow-up time
    keep = pt > 0
    frame, y, pt = frame.loc[keep], y[keep], pt[keep]
    if y.sum() == 0:
        raise EstimationError("no events: every rate is 0 and the rate ratios are not estimable")
    design, X = build_design(frame, rhs, formula, intercept=True)
    names = design.names
    model = sm.GLM(y, pd.DataFrame(X, columns=names), family=sm.families.Poisson(), exposure=pt / per)
    saturated = np.linalg.matrix_rank(X) >= y.size  # one pattern per coefficient: fitted = observed
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        fitted = model.fit(tol=1e-12)
    for wn in caught:  # a saturated model "predicts perfectly" and has no residual df: not a problem
        if not (saturated and issubclass(wn.category, (RuntimeWarning, PerfectSeparationWarning))):
            msgs.append(f"statsmodels: {wn.message}")
    beta = np.asarray(fitted.params, float)
    cov = np.asarray(fitted.cov_params(), float)
    se = np.sqrt(np.diag(cov))
    table = pd.DataFrame({"term": names, **ratio_columns(beta, se, level), "n": n, "events": int(y.sum()),
                          "person_time": float(pt.sum()), "per": per, "log_rate_ratio": beta})
    null = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Poisson(), exposure=pt / per).fit(tol=1e-12)
    return PoissonResult(table, level=level, method="Poisson regression (maximum likelihood), person-time "
                         "offset; Wald CIs", reference=POISSON_REFERENCE, fitted=fitted, warnings=msgs,
                         coef=pd.Series(beta, index=names), vcov=pd.DataFrame(cov, index=names, columns=names),
                         n=n, events=float(y.sum()), person_time=float(pt.sum()), n_missing=n_missing,
                         _loglik_pair=LogLik(float(null.llf), float(fitted.llf)))

