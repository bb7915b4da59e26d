"""Propensity-score weighting (IPTW) for binary and multi-level treatments.

``iptw`` estimates marginal (population-averaged) risks of a binary outcome under each treatment level and
their contrasts against a reference level, by inverse probability of treatment weighting:

* Propensity model: multinomial logistic regression (binary logistic for two levels) on the confounders,
  fitted by a vectorised Newton-Raphson and returned as statsmodels' results at that optimum (statsmodels
  fits from scratch only where Newton does not converge cleanly), or gradient boosting (scikit-learn
  ``HistGradientBoostingClassifier``, ``ps_model="gbm"``). BLAS runs on one thread inside ``iptw``: its
  matrix products are thin, and a second thread only waits when the other core is busy.
* Estimands and weights (Li F, Morgan KL, Zaslavsky AM. Balancing covariates via propensity score weighting.
  JASA 2018;113:390-400; Li F, Li F. Propensity score weighting for causal inference with multiple
  treatments. Ann Appl Stat 2019;13:2389-2415):
  ATE ``w = 1/e_a(X)``; ATT (target population = patients given ``treated``) ``w = e_t(X)/e_a(X)``;
  overlap (ATO) ``w = (1/e_a(X)) / sum_k 1/e_k(X)`` (for two levels: ``1-e`` treated, ``e`` control).
  Stabilised weights multiply by the marginal share of the arm (ATE: ``P(A=a)/e_a``; Hernan MA, Robins JM.
  Epidemiology 2000;11:561-570; Xu S et al. Value Health 2010;13:273-277). Risks are weighted means within
  each arm (Hajek), so stabilisation changes the weights shown but not the risks, unless truncating.
* Truncation at percentiles of the weight distribution (Cole SR, Hernan MA. Am J Epidemiol
  2008;168:656-664); under ATT the target arm keeps weight 1.
* Confidence intervals: M-estimation (stacked estimating equations of the propensity model and the
  weighted means; Lunceford JK, Davidian M. Stat Med 2004;23:2937-2960; Stefanski LA, Boos DD. Am Stat
  2002;56:29-38), which accounts for the estimated propensity score. With ``ps_model="gbm"`` the
  propensity is treated as known (robust sandwich; conservative for the ATE). Optional nonparametric
  bootstrap that refits the propensity model in each replicate (percentile intervals).
* Risk ratio and odds ratio CIs by the delta method on the log scale; risk CIs on the logit scale.
* Outcome regression (ATE only; logistic outcome model per arm on the same confounders, fitted by the
  project's Newton solver of :mod:`hostats.stats.regression.logit`, statsmodels' GLM as the fallback): standardised
  risks by the g-formula (Robins 1986; Snowden JM, Rose S, Mortimer KM. Am J Epidemiol 2011;173:731-738)
  and their contrasts, rows ``*_regression``, with influence-function SEs that include the outcome
  models' estimation; and a doubly robust AIPW risk difference (Robins JM, Rotnitzky A, Zhao LP. JASA
  1994;89:846-866; Funk MJ et al. Am J Epidemiol 2011;173:761-767) as a check row ``risk_difference_aipw``.
* With ``time``/``status``: weighted Cox hazard ratio with robust SE (treats the weights as known:
  conservative for the ATE; Austin PC. Stat Med 2016;35:5642-5655) and IPTW-adjusted curves.

E-values (``e_value``) live in :mod:`hostats.stats.causal.sensitivity`.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from hostats.errors import DataError, EstimationError
from hostats.stats.causal import balance as _bal
from hostats.stats.core.formula import build_design, formula_variables, require_variables, split_formula
from hostats.stats.core.results import CurveResult, Result, check_level, tidy, z_value
from hostats.stats.core.survival_data import status_array, time_array
from hostats.stats.core.threads import single_blas_thread
from hostats.stats.core.validate import binary_array, complete_cases, require_columns

# Diagnostics thresholds (flags, not rules: a report shows them next to the estimates).
POSITIVITY_BOUND = 0.01      # propensities below this (for an arm that matters) ...
POSITIVITY_SHARE = 0.001     # ... are flagged when more than this share of patients have them, or any < 0.001
EXTREME_WEIGHT = 10.0        # a weight above this multiple of its arm's mean weight ...
EXTREME_SHARE = 0.01         # ... that also carries more than this share of the arm's total weight is flagged
LOW_ESS = 0.3                # as is an effective sample size below this fraction of the arm's size
_ESTIMANDS = {"ATE": "ATE", "ATT": "ATT", "ATO": "ATO", "OVERLAP": "ATO"}

IPTW_REFERENCE = (
    "Austin PC, Stuart EA. Moving towards best practice when using inverse probability of treatment "
    "weighting (IPTW) using the propensity score to estimate causal treatment effects in observational "
    "studies. Stat Med 2015;34:3661-3679; Li F, Morgan KL, Zaslavsky AM. JASA 2018;113:390-400; "
    "Lunceford JK, Davidian M. Stat Med 2004;23:2937-2960; Snowden JM, Rose S, Mortimer KM. Implementation of "
    "G-computation on a simulated data set. Am J Epidemiol 2011;173:731-738; Funk MJ et al. Doubly robust "
    "estimation of causal effects. Am J Epidemiol 2011;173:761-767")


# --------------------------------------------------------------------------------------------------
# input preparation
# --------------------------------------------------------------------------------------------------

def _treatment_levels(s: pd.Series) -> list:
    present = set(s.dropna().unique().tolist())
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [c for c in s.cat.categories if c in present]
    try:
        return sorted(present)
    except TypeError:
        return sorted(present, key=str)


def confounder_columns(data: pd.DataFrame, confounders: Sequence[str] | str
                       ) -> tuple[str | None, str | None, list[str]]:
    """(formula, its right-hand side, columns) of a confounder list (formula None) or right-hand-side
    formula ("age_years + C(sex)"); a formula's variables must be columns (parse errors and unknown names
    are DataErrors naming them)."""
    if isinstance(confounders, str):
        _, rhs = split_formula(confounders, outcome=False)
        cols = formula_variables(rhs or "1", confounders)
        require_variables(data, cols, confounders)
        return confounders, rhs, cols
    return None, None, list(confounders)


def treatment_arms(col: pd.Series, treatment: str, reference: Any) -> tuple[list, Any, np.ndarray, np.ndarray]:
    """Arms of a treatment column: (levels with the reference first, the reference, each row's arm code,
    patients per arm). The reference is the base category of the multinomial propensity model; default
    "none" if present, else the first level. A single arm, an unknown reference or an arm with fewer than 2
    patients is an error naming the treatment."""
    levels = _treatment_levels(col)
    if len(levels) < 2:
        raise EstimationError(f"treatment {treatment!r} has a single level ({levels}) in these data; "
                              "nothing to compare")
    if reference is None:
        reference = "none" if "none" in levels else levels[0]
    if reference not in levels:
        raise ValueError(f"reference {reference!r} is not a level of {treatment!r} (levels: {levels})")
    levels = [reference] + [v for v in levels if v != reference]
    a = col.map({v: i for i, v in enumerate(levels)}).to_numpy(int)
    counts = np.bincount(a, minlength=len(levels))
    if counts.min() < 2:
        small = [levels[k] for k in range(len(levels)) if counts[k] < 2]
        raise EstimationError(f"treatment level(s) {small} of {treatment!r} have fewer than 2 patients")
    return levels, reference, a, counts


def _is_binary_numeric(x: pd.Series) -> bool:
    vals = pd.unique(x.dropna())
    return len(vals) <= 2 and set(np.asarray(vals, dtype=float).tolist()) <= {0.0, 1.0}


def _covariates(data: pd.DataFrame, columns: list[str], notes: list[str]) -> list[_bal.Covariate]:
    """Balance columns: continuous variables, binary 0/1 or bool, and every level of a categorical."""
    out: list[_bal.Covariate] = []
    for col in columns:
        s = data[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            raise DataError(f"confounder {col!r} is a date; use a derived number (e.g. days or year)",
                            column=col)
        if pd.api.types.is_bool_dtype(s) or (pd.api.types.is_numeric_dtype(s) and _is_binary_numeric(s)):
            vals = s.astype(float).to_numpy()
            kind, items = "binary", [(None, vals)]
        elif pd.api.types.is_numeric_dtype(s):
            kind, items = "continuous", [(None, s.astype(float).to_numpy())]
        else:
            lv = _treatment_levels(s)
            kind = "binary"
            codes = pd.Categorical(s, categories=lv).codes   # one pass over the rows, not one per level
            items = [(str(v), (codes == j).astype(float)) for j, v in enumerate(lv)]
        if all(np.ptp(v) == 0 for _, v in items):
            notes.append(f"confounder {col!r} is constant in these data and was left out "
                         "(it cannot confound)")
            continue
        out.extend(_bal.Covariate(col, lvl, kind, v) for lvl, v in items)
    return out


def _list_formula(columns: list[str]) -> str:
    """A confounder list as a formula right-hand side (names that are not identifiers in backticks)."""
    if not columns:
        return "1"
    return " + ".join(c if c.isidentifier() else f"`{c}`" for c in columns)


def _direct_design(data: pd.DataFrame, variables: list[str]) -> tuple[list[str], np.ndarray] | None:
    """The propensity model matrix of a confounder list built directly: intercept, numeric columns as they
    are, and treatment dummies ``col[T.level]`` (first level the reference) of boolean, Categorical (its
    categories present in the data, in their order) and text columns (sorted levels): the columns and
    names the formula engine builds for ``a + b + ...`` (:mod:`hostats.stats.core.formula`), without
    its parsing and materialising (a third of a 10,000-row iptw). None when a column needs the engine
    (a name that is not an identifier, nullable or other types, non-text categories or values)."""
    cols: list[tuple[str, np.ndarray | None, list]] = []   # (name, numeric values or category codes, levels)
    for v in dict.fromkeys(variables):
        s = data[v]
        if not v.isidentifier():
            return None
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf":
            cols.append((v, s.to_numpy(dtype=float), []))
            continue
        if isinstance(s.dtype, np.dtype) and s.dtype.kind == "b":
            levels = [False, True]
            codes = s.to_numpy().astype(np.int8)
        elif isinstance(s.dtype, pd.CategoricalDtype):
            present = np.bincount(s.cat.codes.to_numpy(), minlength=len(s.cat.categories)) > 0
            levels = [c for c, p in zip(s.cat.categories, present, strict=True) if p]
            if not all(isinstance(c, str) for c in levels):
                return None
            codes = pd.Categorical(s, categories=levels).codes
        elif s.dtype == object and all(isinstance(x, str) for x in pd.unique(s)):
            levels = sorted(pd.unique(s))
            codes = pd.Categorical(s, categories=levels).codes
        else:
            return None
        if len(levels) < 2:
            return None   # a single level: the formula engine names the error
        cols.append((v, codes, levels))
    names = ["Intercept"]
    for v, _, levels in cols:
        names += [v] if not levels else [f"{v}[T.{lv}]" for lv in levels[1:]]
    X = np.empty((len(data), len(names)))
    X[:, 0] = 1.0
    j = 1
    for _, values, levels in cols:
        if not levels:
            X[:, j] = values
            j += 1
            continue
        for k in range(1, len(levels)):
            np.equal(values, k, out=X[:, j], casting="unsafe")
            j += 1
    if not np.all(np.isfinite(X.sum(axis=0))):
        return None
    return names, X


def _drop_collinear(X: np.ndarray, names: list[str], notes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Drop columns that are linear combinations of earlier ones (a rank-deficient propensity model)."""
    cross = X.T @ X                                   # p x p, one pass over the rows
    norms = np.sqrt(np.maximum(np.diag(cross), 0.0))
    scale = np.where(norms > 0, norms, 1.0)
    gram = cross / np.outer(scale, scale)             # the cross-products of the unit-length columns
    keep: list[int] = []
    for j in range(X.shape[1]):
        cand = keep + [j]
        if norms[j] > 0 and np.linalg.matrix_rank(gram[np.ix_(cand, cand)], tol=1e-10) == len(cand):
            keep.append(j)
        else:
            notes.append(f"propensity model term {names[j]!r} is collinear with others (or constant) "
                         "and was dropped")
    return X[:, keep], [names[j] for j in keep]


# --------------------------------------------------------------------------------------------------
# propensity model
# --------------------------------------------------------------------------------------------------

# From this many patients on (all, by default), the propensity MLE is found by the vectorised Newton below
# and statsmodels only wraps it in its results object, without iterating again (its MNLogit Hessian is ~10x
# slower); statsmodels fits from scratch only when that Newton does not converge cleanly (separation...).
WARM_START_N = 0


def _warm_start(X: np.ndarray, a: np.ndarray, K: int) -> np.ndarray | None:
    """The multinomial-logit MLE (statsmodels' parameter order) by Newton from the intercept-only fit, or
    None when Newton does not converge cleanly (separation...): statsmodels then fits from scratch and
    reports what it finds."""
    fit = _newton_fit(X, a, K)
    return None if fit is None else fit[0]


def _newton_fit(X: np.ndarray, a: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """(beta, fitted probabilities, information at beta, iterations) of the multinomial logit by Newton from
    the intercept-only fit, or None when it does not converge cleanly. (Starting from a fit to a subsample,
    as before issue 16's second round, saved no full-data passes once the first point needs none:
    4.0 passes of ``_information`` at 100,000 and 1,000,000 rows from the intercept-only fit, 4.8 and 4.1
    with the subsample.)"""
    with np.errstate(all="ignore"):
        start, first = _marginal_start(X, a, K)
        try:
            fit = _mnlogit_newton(X, a, K, start, first=first)
        except (EstimationError, np.linalg.LinAlgError):
            return None
    return fit if np.all(np.isfinite(fit[0])) and np.all(np.isfinite(fit[2])) else None


def _marginal_start(X: np.ndarray, a: np.ndarray, K: int) -> tuple[np.ndarray, tuple | None]:
    """The intercept-only multinomial fit (log shares of the arms against arm 0) as the Newton start, with
    the probabilities, information and gradient there without a pass of ``_information``: every row has the
    arm shares pi as probabilities, so the information blocks are pi_k (1{k=m} - pi_m) X'X and the gradient
    X'(1{A=k} - pi_k). (Zeros and no ``first`` when column 0 of X is not the intercept.)"""
    n, p = X.shape
    start = np.zeros((K - 1) * p)
    counts = np.bincount(a, minlength=K).astype(float)
    if n == 0 or counts.min() == 0 or not np.all(X[:, 0] == 1.0):
        return start, None
    pi = counts / n
    start[::p] = np.log(pi[1:] / pi[0])
    P = np.broadcast_to(pi, (n, K))
    sums = np.eye(K)[a].T @ X                       # K x p: row k = X'1{A=k}
    q = pi[1:]
    info = np.kron(np.diag(q) - np.outer(q, q), X.T @ X)
    grad = (sums[1:] - q[:, None] * sums.sum(axis=0)[None, :]).ravel()
    return start, (P, (info + info.T) / 2, grad)


def _results_at(X: np.ndarray, a: np.ndarray, K: int, beta: np.ndarray, info: np.ndarray, iterations: int) -> Any:
    """The statsmodels Logit (two arms) or MNLogit results object at an MLE found elsewhere: what
    ``model.fit()`` returns, without repeating the iterations (covariance: the inverse information)."""
    import statsmodels.api as sm
    from statsmodels.base.model import LikelihoodModelResults
    from statsmodels.discrete.discrete_model import (
        BinaryResultsWrapper,
        LogitResults,
        MultinomialResults,
        MultinomialResultsWrapper,
    )

    # check_rank=False: collinear terms were dropped before the fit (statsmodels' rank check is an SVD of X)
    model = (sm.Logit((a == 1).astype(float), X, check_rank=False) if K == 2
             else sm.MNLogit(a, X, check_rank=False))
    mle = LikelihoodModelResults(model, beta, normalized_cov_params=np.linalg.inv(info), scale=1.0)
    mle.mle_retvals = {"converged": True, "iterations": iterations, "optimizer": "hostats vectorised Newton"}
    mle.mle_settings = {"optimizer": "newton", "start_params": None, "maxiter": 30}
    if K == 2:
        return BinaryResultsWrapper(LogitResults(model, mle))
    mle.params = mle.params.reshape(model.K, -1, order="F")   # as MNLogit.fit: one column per non-base arm
    return MultinomialResultsWrapper(MultinomialResults(model, mle))


def _fit_logistic(X: np.ndarray, a: np.ndarray, K: int, notes: list[str],
                  start: np.ndarray | None = None) -> tuple[np.ndarray, Any]:
    """Fitted probabilities (n x arms) and the statsmodels results of the (multinomial) logistic
    propensity model; separation and non-convergence are noted."""
    return _fit_logistic_info(X, a, K, notes, start)[:2]


@dataclass
class _PendingResults:
    """statsmodels' results of a propensity model fitted here, to be built when first asked for
    (``IPTWResult.fitted``): the arguments of ``_results_at``."""

    X: np.ndarray
    a: np.ndarray
    K: int
    beta: np.ndarray
    info: np.ndarray
    iterations: int

    def build(self) -> Any:
        return _results_at(self.X, self.a, self.K, self.beta, self.info, self.iterations)


def _fit_logistic_info(X: np.ndarray, a: np.ndarray, K: int, notes: list[str],
                       start: np.ndarray | None = None, pending: bool = False
                       ) -> tuple[np.ndarray, Any, np.ndarray | None]:
    """``_fit_logistic`` and the Fisher information at the estimate when the vectorised Newton found it
    (None when statsmodels fitted), which the M-estimation variance then need not compute again.
    ``pending``: the results object of that Newton fit as a ``_PendingResults``, built when needed."""
    import statsmodels.api as sm

    if start is None and len(a) >= WARM_START_N:
        fit = _newton_fit(X, a, K)
        if fit is not None:
            beta, P, info, iterations = fit
            results = _PendingResults(X, a, K, beta, info, iterations)
            return P, results if pending else results.build(), info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = sm.Logit((a == 1).astype(float), X) if K == 2 else sm.MNLogit(a, X)
        fit = None
        for method in ("newton", "bfgs"):
            try:
                fit = model.fit(start_params=start, method=method, disp=0,
                                maxiter=200 if method == "newton" else 2000)
                break
            except np.linalg.LinAlgError:
                continue
            except Exception as exc:  # statsmodels raises PerfectSeparationError in some versions
                if "separation" in str(exc).lower():
                    continue
                raise
    msgs = {str(w.message).split("\n")[0] for w in caught}
    if any("separation" in m.lower() for m in msgs):
        notes.append("positivity: the propensity model shows (quasi-)complete separation: some confounder "
                     "pattern predicts treatment perfectly, so those patients have no comparable patients in "
                     "another arm")
    if fit is None:
        raise EstimationError("the propensity model could not be fitted (singular information matrix): "
                              "check for confounders that determine treatment (positivity violation)")
    if not fit.mle_retvals.get("converged", True):
        notes.append("propensity model did not converge: the weights may be unreliable")
    P = fit.predict(X)
    P = np.column_stack([1 - P, P]) if K == 2 else np.asarray(P)
    return P, fit, None


def _fit_gbm(X: np.ndarray, a: np.ndarray, ps_model: Any) -> tuple[np.ndarray, Any]:
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier

    if isinstance(ps_model, str):
        # deterministic: no early stopping (which would draw a random validation split), no subsampling
        est = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=200, max_leaf_nodes=15,
                                             min_samples_leaf=20, l2_regularization=1.0,
                                             early_stopping=False)
    else:
        est = clone(ps_model)
    est.fit(X[:, 1:], a)
    P = np.asarray(est.predict_proba(X[:, 1:]), dtype=float)
    return P, est


def _fit_propensity(X, a, K, ps_model, notes, start=None):
    if isinstance(ps_model, str) and ps_model == "logistic":
        return _fit_logistic(X, a, K, notes, start)
    if (isinstance(ps_model, str) and ps_model == "gbm") or hasattr(ps_model, "predict_proba"):
        return _fit_gbm(X, a, ps_model)
    raise ValueError(f"ps_model must be 'logistic', 'gbm' or a scikit-learn classifier, got {ps_model!r}")


# --------------------------------------------------------------------------------------------------
# weights and estimating equations
# --------------------------------------------------------------------------------------------------

def _weights(P: np.ndarray, a: np.ndarray, estimand: str, target: int | None, stabilized: bool,
             truncate: tuple[float, float] | None):
    """Weights, d log w / d beta_k factors g (n x K-1, multinomial logit with base arm 0), truncation info."""
    n, K = P.shape
    e_obs = P[np.arange(n), a]
    onehot = np.eye(K)[a]
    if estimand == "ATE":
        w = 1.0 / e_obs
        g = -(onehot[:, 1:] - P[:, 1:])
    elif estimand == "ATT":
        w = P[:, target] / e_obs
        g = (np.arange(1, K) == target).astype(float)[None, :] - onehot[:, 1:]
    else:  # ATO: generalised overlap weights
        inv = 1.0 / P
        S = inv.sum(axis=1)
        w = (1.0 / e_obs) / S
        g = inv[:, 1:] / S[:, None] - onehot[:, 1:]
    if stabilized and estimand != "ATO":
        share = np.bincount(a, minlength=K) / n
        w = w * (share[a] if estimand == "ATE" else share[a] / share[target])
    info = None
    if truncate is not None:
        free = np.ones(n, bool) if estimand != "ATT" else a != target
        lo, hi = np.percentile(w[free], truncate)
        clipped = free & ((w < lo) | (w > hi))
        w = np.where(free, np.clip(w, lo, hi), w)
        g = g * (~clipped)[:, None]  # a clipped weight no longer moves with the propensity parameters
        info = {"percentiles": truncate, "lower": float(lo), "upper": float(hi), "n_truncated": int(clipped.sum())}
    return w, g, info


_INFO_CHUNK = 32_768   # rows per pass of _information: the temporaries stay in cache


def _information(X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Fisher information of the multinomial logit (base arm 0): blocks X' diag(P_k (1{k=m} - P_m)) X.

    Over chunks of rows, Z = [x_i P_i1, ..., x_i P_i(K-1)] (chunk x p(K-1)) gives every block of the second
    term at once as Z'Z, and X'Z the diagonal blocks' first term X' diag(P_k) X: two matrix products per
    chunk instead of one per pair of arms over all rows, and no n-row temporary. (The diagonal blocks are a
    difference, X' diag(P_k) X - X' diag(P_k^2) X: relative rounding ~1e-16 / (1 - P_k), negligible unless
    propensities are within ~1e-8 of 1, which the positivity diagnostics flag anyway.)"""
    n, p = X.shape
    K = P.shape[1]
    q = (K - 1) * p
    first, cross = np.zeros((p, q)), np.zeros((q, q))
    for s in range(0, n, _INFO_CHUNK):
        Xc, Pc = X[s:s + _INFO_CHUNK], P[s:s + _INFO_CHUNK, 1:]
        Z = (Pc[:, :, None] * Xc[:, None, :]).reshape(len(Xc), q)
        cross += Z.T @ Z
        first += Xc.T @ Z
    info = -cross
    for k in range(K - 1):
        block = slice(k * p, (k + 1) * p)
        info[block, block] += first[:, block]
    return (info + info.T) / 2


def _mnlogit_newton(X: np.ndarray, a: np.ndarray, K: int, start: np.ndarray, maxiter: int = 30,
                    tol: float = 1e-8, first: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(beta, fitted probabilities, Fisher information at beta, iterations) of the multinomial logit (base
    arm 0) by Newton-Raphson from ``start``, converged when no parameter is left to move by ``tol``; an
    EstimationError when it does not converge in ``maxiter`` steps (separation...). ``first``: the
    (probabilities, information, gradient) at ``start`` when known (``_marginal_start``)."""
    n, p = X.shape
    beta = np.asarray(start, dtype=float).copy()
    onehot = np.eye(K)[a][:, 1:]
    if first is None:
        P = _mnlogit_probabilities(X, beta, K)
        info = _information(X, P)
        grad = (X.T @ (onehot - P[:, 1:])).T.ravel()
    else:
        P, info, grad = first
    for it in range(1, maxiter + 1):
        step = np.linalg.solve(info, grad)
        beta += step
        if not np.all(np.isfinite(beta)):
            break
        P = _mnlogit_probabilities(X, beta, K)
        info = _information(X, P)
        # Newton converges quadratically here (the information is the observed Hessian of the logit): after a
        # step of size s the error is ~s^2, so a step below sqrt(tol) / 10 already leaves beta within ~tol
        if np.max(np.abs(step)) < np.sqrt(tol) / 10:
            return beta, P, info, it
        grad = (X.T @ (onehot - P[:, 1:])).T.ravel()   # block k = X'(1{A=k} - P_k)
    raise EstimationError("the multinomial propensity Newton-Raphson did not converge (separation?)")


def _mnlogit_probabilities(X: np.ndarray, beta: np.ndarray, K: int) -> np.ndarray:
    """Multinomial-logit probabilities (n x K, base arm 0 with linear predictor 0). The exponentials are
    taken directly when no linear predictor exceeds 700 (no overflow: e^700 < 1.8e308); otherwise after
    subtracting each row's largest."""
    lin = X @ beta.reshape(K - 1, X.shape[1]).T                 # n x (K-1)
    P = np.empty((X.shape[0], K))
    if lin.size and lin.max() < 700.0:
        np.exp(lin, out=P[:, 1:])
        P[:, 0] = 1.0
    else:
        top = np.maximum(lin.max(axis=1), 0.0)
        np.exp(lin - top[:, None], out=P[:, 1:])
        np.exp(-top, out=P[:, 0])
    total = P[:, 0].copy()
    for k in range(1, K):
        total += P[:, k]
    P /= total[:, None]
    return P


def _newton_mnlogit(X: np.ndarray, a: np.ndarray, K: int, start: np.ndarray, maxiter: int = 30,
                    return_beta: bool = False) -> np.ndarray:
    """Fitted probabilities (or, with ``return_beta``, the parameters) of the multinomial logit (base arm 0)
    by Newton-Raphson from ``start`` (bootstrap refits start at the full-sample estimate)."""
    beta, P, _, _ = _mnlogit_newton(X, a, K, start, maxiter)
    return beta if return_beta else P


def _arm_means(y: np.ndarray, a: np.ndarray, w: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    W = np.bincount(a, weights=w, minlength=K)
    mu = np.bincount(a, weights=w * y, minlength=K) / W
    return mu, W


def _influence(y, a, w, g, X, P, mu, W, account_ps: bool, info: np.ndarray | None = None) -> np.ndarray:
    """Influence contributions phi (n x K) so that Var(mu_hat) = phi' phi (sums, not means); ``info``: the
    propensity model's information at P when known."""
    n, K = P.shape
    onehot = np.eye(K)[a]
    r = onehot * (w * (y - mu[a]))[:, None]          # n x K: 1{A=a} w (Y - mu_a)
    phi = r.copy()
    if account_ps:
        # score S_i = (1{A_i=k} - P_ik) x_i and d log w_i / d beta_k = g_ik x_i, block k by block k:
        # no n x p(K-1) matrix is formed
        p = X.shape[1]
        resid = onehot[:, 1:] - P[:, 1:]
        info = _information(X, P) if info is None else info
        # D[a] = sum_i r_ia * d log w_i / d beta  (p(K-1) vector per arm)
        D = np.hstack([(r * g[:, k, None]).T @ X for k in range(K - 1)])   # K x p(K-1)
        try:
            proj = np.linalg.solve(info, D.T)        # p(K-1) x K
        except np.linalg.LinAlgError:
            proj = np.linalg.pinv(info) @ D.T
        for k in range(K - 1):                        # phi += S @ proj
            phi += resid[:, k, None] * (X @ proj[k * p:(k + 1) * p])
    return phi / W[None, :]


# --------------------------------------------------------------------------------------------------
# the result object
# --------------------------------------------------------------------------------------------------

@dataclass(repr=False)
class IPTWResult(Result):
    """Result of :func:`iptw`.

    ``table()``: one row per contrast and ``measure`` (risk_treated, risk_control, risk_difference,
    risk_ratio, odds_ratio, hazard_ratio with time/status, risk_difference_aipw for the ATE), with a
    ``contrast`` column ("radiotherapy vs none"). ``propensity`` (n x levels), ``weights``, ``ess`` (per
    arm), ``balance()``, ``love_plot_data()``, ``weighted_table1()``, ``curves(kind)``; ``n`` (patients
    analysed) and ``n_missing`` (left out for missing values); ``ps_terms``, the columns of the propensity
    model (named as ``logistic`` names them).
    ``fitted`` is the propensity model (statsmodels results or scikit-learn estimator).
    """

    propensity: pd.DataFrame = field(default_factory=pd.DataFrame)
    weights: pd.Series = field(default_factory=pd.Series)
    ess: pd.DataFrame = field(default_factory=pd.DataFrame)
    estimand: str = "ATE"
    reference_level: Any = None
    treated_level: Any = None
    levels: list = field(default_factory=list)
    truncation: dict | None = None
    outcome_models: Mapping = field(default_factory=dict)
    cox_result: Any = None
    bootstrap_estimates: pd.DataFrame | None = None
    n: int = 0
    n_missing: int = 0
    ps_terms: list = field(default_factory=list)
    _covariates: list = field(default_factory=list, repr=False)
    _arm: np.ndarray = field(default_factory=lambda: np.empty(0, int), repr=False)
    _surv: pd.DataFrame | None = field(default=None, repr=False)

    # ``fitted`` (a field of Result) is read through a property: statsmodels' results object of a propensity
    # model fitted here is built when first asked for (constructing it scans the design again)
    def _get_fitted(self) -> Any:
        value = self.__dict__.get("_fitted_value")
        if isinstance(value, _PendingResults):
            value = self.__dict__["_fitted_value"] = value.build()
        return value

    def _set_fitted(self, value: Any) -> None:
        self.__dict__["_fitted_value"] = value

    fitted = property(_get_fitted, _set_fitted)

    def table(self) -> pd.DataFrame:
        out = super().table()
        if "contrast" in out.columns:
            out = out[["contrast"] + [c for c in out.columns if c != "contrast"]]
        return out

    def _contrasts(self) -> list[tuple[int, int]]:
        ref = self.levels.index(self.reference_level)
        return [(k, ref) for k in range(len(self.levels)) if k != ref]

    def balance(self, threshold: float = _bal.SMD_THRESHOLD) -> pd.DataFrame:
        """Standardised mean differences and variance ratios before and after weighting (see balance.py)."""
        return _bal.smd_table(self._covariates, self._arm, self.levels, self._contrasts(),
                              self.weights.to_numpy(float), threshold)

    def love_plot_data(self, threshold: float = _bal.SMD_THRESHOLD) -> pd.DataFrame:
        """Long table (term, contrast, sample, smd, abs_smd, threshold) a love plot is drawn from."""
        return _bal.love_plot_data(self.balance(threshold), threshold)

    def weighted_table1(self) -> pd.DataFrame:
        """Confounders by arm, unweighted and weighted (mean/SD or percent, n, weighted n)."""
        return _bal.weighted_table1(self._covariates, self._arm, self.levels, self.weights.to_numpy(float))

    def curves(self, kind: str = "km") -> CurveResult:
        """IPTW-adjusted curves by arm: ``"km"`` (Kaplan-Meier of HO-free survival, deaths censored) or
        ``"cumulative_incidence"`` (Aalen-Johansen, death competing). Needs ``time``/``status``."""
        if self._surv is None:
            raise ValueError("curves need time= and status= in iptw(...)")
        frame = self._surv.assign(_w=self.weights.to_numpy(float))
        if kind == "km":
            from hostats.stats.survival.km_cox import kaplan_meier

            frame = frame.assign(_event=(frame["_status"] == 1).astype(int))
            return kaplan_meier(frame, "_time", "_event", group="_arm", weights="_w", level=self.level)
        if kind == "cumulative_incidence":
            from hostats.stats.competing.cif_fine_gray import cumulative_incidence

            return cumulative_incidence(frame, "_time", "_status", cause=1, group="_arm", weights="_w",
                                        level=self.level)
        raise ValueError(f"kind must be 'km' or 'cumulative_incidence', got {kind!r}")

    def rmst(self, tau: float, cause: int | None = 1) -> Result:
        """IPTW-adjusted restricted mean survival time and time lost up to ``tau`` by arm, with contrasts
        against the reference arm (:func:`hostats.stats.survival.restricted_mean.rmst` on the weighted data; needs
        ``time``/``status``).

        ``cause=1`` (default): Aalen-Johansen, death competing: "rmst" is the HO- and death-free restricted
        mean, "rmtl" the time lost to HO (status 1), "rmtl_competing" to death. ``cause=None``: HO-free
        Kaplan-Meier with deaths censored (as ``curves("km")``). Estimand: the marginal restricted means
        of the weighting's target population (ATE/ATT/ATO). Standard errors: the infinitesimal-jackknife
        robust variance treating the weights as known, which ignores the estimation of the propensity
        score (conservative for the ATE). ``tau`` must not exceed ``horizon`` given to ``iptw``.
        """
        if self._surv is None:
            raise ValueError("rmst needs time= and status= in iptw(...)")
        from hostats.stats.survival.restricted_mean import rmst

        frame = self._surv.assign(_w=self.weights.to_numpy(float))
        status = "_status"
        if cause is None:
            frame, status = frame.assign(_event=(frame["_status"] == 1).astype(int)), "_event"
        res = rmst(frame, "_time", status, tau, cause=cause, group="_arm", weights="_w",
                   reference=self.reference_level, level=self.level)
        res._amend(method=f"IPTW ({self.estimand}) {res.method}")
        return res


# --------------------------------------------------------------------------------------------------
# iptw
# --------------------------------------------------------------------------------------------------

def _parse_truncate(truncate) -> tuple[float, float] | None:
    if truncate is None:
        return None
    if np.isscalar(truncate):
        p = float(truncate)
        lo, hi = min(p, 100 - p), max(p, 100 - p)
    else:
        lo, hi = (float(v) for v in truncate)
    if not 0 <= lo < hi <= 100:
        raise ValueError(f"truncate must be percentiles 0 <= lower < upper <= 100 (e.g. (1, 99)), got {truncate!r}")
    return lo, hi


def _contrast_rows(mu, V, counts, events, pairs, levels, z) -> list[dict]:
    rows = []
    for t, c in pairs:
        label = f"{levels[t]} vs {levels[c]}"
        n_pair, e_pair = counts[t] + counts[c], events[t] + events[c]
        for measure, k in (("risk_treated", t), ("risk_control", c)):
            m, se = mu[k], np.sqrt(V[k, k])
            if 0 < m < 1:
                lg, sl = np.log(m / (1 - m)), se / (m * (1 - m))
                lo, hi = 1 / (1 + np.exp(-(lg - z * sl))), 1 / (1 + np.exp(-(lg + z * sl)))
            else:
                lo = hi = np.nan
            rows.append({"contrast": label, "measure": measure, "estimate": m, "ci_lower": lo, "ci_upper": hi,
                         "p_value": np.nan, "std_error": se, "n": counts[k], "events": events[k]})
        rd = mu[t] - mu[c]
        se = np.sqrt(V[t, t] + V[c, c] - 2 * V[t, c])
        rows.append({"contrast": label, "measure": "risk_difference", "estimate": rd,
                     "ci_lower": rd - z * se, "ci_upper": rd + z * se,
                     "p_value": 2 * norm.sf(abs(rd / se)) if se > 0 else np.nan, "std_error": se,
                     "n": n_pair, "events": e_pair})
        for measure, f in (("risk_ratio", lambda m: 1 / m), ("odds_ratio", lambda m: 1 / (m * (1 - m)))):
            ok = all(0 < mu[k] < 1 for k in (t, c))
            if ok:
                gt, gc = f(mu[t]), f(mu[c])
                est = (np.log(mu[t] / mu[c]) if measure == "risk_ratio"
                       else np.log(mu[t] / (1 - mu[t])) - np.log(mu[c] / (1 - mu[c])))
                se = np.sqrt(gt ** 2 * V[t, t] + gc ** 2 * V[c, c] - 2 * gt * gc * V[t, c])
                rows.append({"contrast": label, "measure": measure, "estimate": np.exp(est),
                             "ci_lower": np.exp(est - z * se), "ci_upper": np.exp(est + z * se),
                             "p_value": 2 * norm.sf(abs(est / se)) if se > 0 else np.nan, "std_error": se,
                             "n": n_pair, "events": e_pair})
            else:
                rows.append({"contrast": label, "measure": measure, "estimate": np.nan, "ci_lower": np.nan,
                             "ci_upper": np.nan, "p_value": np.nan, "std_error": np.nan,
                             "n": n_pair, "events": e_pair})
    return rows


def _estimate(Xd, a, K, ps_model, estimand, target, stabilized, trunc, notes, start=None, pending=False):
    """(clipped propensities, propensity fit, weights, d log w / d beta factors, truncation info, Fisher
    information of the logistic propensity model at its estimate or None). ``pending``: the fit may be a
    ``_PendingResults``."""
    info = None
    if isinstance(ps_model, str) and ps_model == "logistic":
        P, fit, info = _fit_logistic_info(Xd, a, K, notes, start, pending)
    else:
        P, fit = _fit_propensity(Xd, a, K, ps_model, notes, start)
    if info is not None and P.min() < 1e-12:
        info = None   # the clipped propensities differ from the fitted ones: recompute it from them
    P = np.clip(P, 1e-12, 1.0)
    w, g, tinfo = _weights(P, a, estimand, target, stabilized, trunc)
    return P, fit, w, g, tinfo, info


def _cif_risks(surv: tuple, a: np.ndarray, w: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Aalen-Johansen risk of cause 1 by the horizon in each arm, and its SE (weights as known)."""
    from hostats.stats.competing.cif_fine_gray import cumulative_incidence

    t, st, horizon = surv
    frame = pd.DataFrame({"t": t, "s": st, "g": a, "w": w})
    at = cumulative_incidence(frame, "t", "s", cause=1, group="g", weights="w").at([horizon])
    at = at.set_index("group").reindex(range(K))
    return at["estimate"].fillna(0.0).to_numpy(float), at["std_error"].fillna(0.0).to_numpy(float)


def _risks(y, a, w, K) -> np.ndarray:
    if isinstance(y, tuple):
        return _cif_risks(y, a, w, K)[0]
    return _arm_means(y, a, w, K)[0]


def _summaries(mu: np.ndarray, pairs) -> np.ndarray:
    """Vector bootstrapped: risks, then per contrast RD, log RR, log OR."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = list(mu)
        for t, c in pairs:
            out += [mu[t] - mu[c], np.log(mu[t] / mu[c]),
                    np.log(mu[t] / (1 - mu[t])) - np.log(mu[c] / (1 - mu[c]))]
    return np.asarray(out)


def _bootstrap_chunk(seeds, Xd, a, y, K, ps_model, estimand, target, stabilized, trunc, pairs, start):
    n = len(a)
    out = []
    for ss in seeds:
        rng = np.random.default_rng(ss)
        idx = rng.integers(0, n, n)
        ab = a[idx]
        if np.bincount(ab, minlength=K).min() == 0:
            out.append(np.full(K + 3 * len(pairs), np.nan))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if start is not None:  # logistic: fast Newton from the full-sample estimate
                    P = np.clip(_newton_mnlogit(Xd[idx], ab, K, start), 1e-12, 1.0)
                    w = _weights(P, ab, estimand, target, stabilized, trunc)[0]
                else:
                    w = _estimate(Xd[idx], ab, K, ps_model, estimand, target, stabilized, trunc, [])[2]
                yb = (y[0][idx], y[1][idx], y[2]) if isinstance(y, tuple) else y[idx]
                mu = _risks(yb, ab, w, K)
            out.append(_summaries(mu, pairs))
        except (EstimationError, np.linalg.LinAlgError, ValueError):
            out.append(np.full(K + 3 * len(pairs), np.nan))
    return out


@dataclass
class _PendingLogit:
    """statsmodels' Logit results of an outcome model fitted here, built when first read (``_Models``)."""

    X: np.ndarray
    y: np.ndarray
    fit: Any

    def build(self) -> Any:
        import statsmodels.api as sm

        from hostats.stats.regression.logit import _logit_results

        return _logit_results(sm.Logit(self.y, self.X, check_rank=False), self.fit)


class _Models(Mapping):
    """The outcome models by arm (``IPTWResult.outcome_models``): a read-only mapping whose statsmodels
    results objects are built when first read (constructing one scans the arm's design again)."""

    def __init__(self, models: dict) -> None:
        self._models = dict(models)

    def __getitem__(self, key: Any) -> Any:
        value = self._models[key]
        if isinstance(value, _PendingLogit):
            value = self._models[key] = value.build()
        return value

    def __iter__(self):
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: <{type(v).__name__}>' for k, v in self._models.items())}}}"


def _outcome_model(X: np.ndarray, y: np.ndarray, level: Any, notes: list[str]
                   ) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """Logistic outcome model of one arm: (statsmodels results, coefficients, information X'WX at them or
    None). Fitted by the project's Newton solver (:mod:`hostats.stats.regression.logit`) and wrapped in
    statsmodels' Logit results without iterating again (a ``_PendingLogit``, built when read); statsmodels' GLM fits it when Newton does not
    converge (separation, a confounder constant in the arm), and its separation warning becomes a note."""
    import statsmodels.api as sm

    from hostats.stats.regression.logit import _ml_newton

    with np.errstate(all="ignore"):
        try:
            fit = _ml_newton(X, y, np.ones_like(y))
        except np.linalg.LinAlgError:
            fit = None
    if fit is not None and fit.converged and np.all(np.isfinite(fit.beta)):
        return _PendingLogit(X, y, fit), fit.beta, fit.info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        glm = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    if any("separation" in str(w.message).lower() for w in caught):
        notes.append(f"AIPW outcome model in arm {level!r} shows separation; AIPW row may be unstable")
    return glm, np.asarray(glm.params, dtype=float), None


def _aipw(Xd, a, y, P, K, pairs, z, levels, counts, events, notes):
    """Outcome-model estimates with a logistic model fitted in each arm: standardised (g-formula) risks and
    their contrasts (``*_regression``), and the AIPW risk difference vs the reference."""
    n = len(a)
    phi, phi_g = np.zeros((n, K)), np.zeros((n, K))
    mu, mu_g = np.zeros(K), np.zeros(K)
    models = {}
    for k in range(K):
        m = a == k
        yk = y[m]
        if yk.min() == yk.max():
            notes.append(f"AIPW omitted: arm {levels[k]!r} has {'no' if yk.max() == 0 else 'only'} events, "
                         "so no outcome model can be fitted")
            return [], {}
        try:
            fit, beta, h_k = _outcome_model(Xd[m], yk, levels[k], notes)
        except (np.linalg.LinAlgError, ValueError) as exc:
            notes.append(f"AIPW omitted: outcome model in arm {levels[k]!r} failed ({exc})")
            return [], {}
        models[levels[k]] = fit
        mk = expit(Xd @ beta)
        val = mk + m * (y - mk) / P[:, k]
        mu[k] = val.mean()
        phi[:, k] = val - mu[k]
        # standardisation (g-formula): mean prediction over everyone; its influence adds the outcome
        # model's own estimation error, D' H^-1 x_i (y_i - m_i) for the patients of arm k
        mu_g[k] = mk.mean()
        d_k = (mk * (1 - mk)) @ Xd / n
        xm, mm = Xd[m], mk[m]
        if h_k is None:
            h_k = (xm * (mm * (1 - mm))[:, None]).T @ xm
        try:
            g = np.linalg.solve(h_k, d_k)
        except np.linalg.LinAlgError:
            g = np.linalg.lstsq(h_k, d_k, rcond=None)[0]
        phi_g[:, k] = mk - mu_g[k]
        phi_g[m, k] += n * (xm @ g) * (yk - mm)
    V_g = phi_g.T @ phi_g / n ** 2
    rows = [dict(r, measure=f"{r['measure']}_regression")
            for r in _contrast_rows(mu_g, V_g, counts, events, pairs, levels, z)]
    for t, c in pairs:
        rd = mu[t] - mu[c]
        se = np.sqrt(np.sum((phi[:, t] - phi[:, c]) ** 2)) / n
        rows.append({"contrast": f"{levels[t]} vs {levels[c]}", "measure": "risk_difference_aipw",
                     "estimate": rd, "ci_lower": rd - z * se, "ci_upper": rd + z * se,
                     "p_value": 2 * norm.sf(abs(rd / se)) if se > 0 else np.nan, "std_error": se,
                     "n": counts[t] + counts[c], "events": events[t] + events[c]})
    return rows, _Models(models)


def iptw(data: pd.DataFrame, treatment: str, confounders: Sequence[str] | str, outcome: str | None,
         estimand: str = "ATE", reference: Any = None, ps_model: Any = "logistic",
         weights: str = "stabilized", truncate: float | tuple[float, float] | None = None,
         time: str | None = None, status: str | None = None, horizon: float | None = None,
         level: float = 0.95, bootstrap: int = 0, seed: int | None = None, n_jobs: int = 1,
         treated: Any = None) -> IPTWResult:
    """Marginal risks and effects of a (binary or multi-level) treatment by propensity-score weighting.

    Estimand: the marginal risk of ``outcome`` under each treatment level in the target population
    (ATE: everyone; ATT: patients who received ``treated``; ATO: the overlap population), and the risk
    difference, risk ratio and odds ratio of each level against ``reference``.

    Parameters
    ----------
    data : one row per patient. Missing values: complete-case analysis on the treatment, outcome,
        confounder, time and status columns; the dropped rows are counted in ``.warnings`` (also a
        ``UserWarning``) and ``n_missing``, and ``n``, the propensities and the weights cover the rest.
    treatment : treatment column (bool, 0/1, or categorical such as ``prophylaxis``).
    confounders : list of columns, or a right-hand-side formula ("age_years + C(sex) + age_years:sex"),
        coded for the propensity model as every hostats model codes a formula
        (:mod:`hostats.stats.core.formula`; a list ``["a", "b"]`` is the formula ``"a + b"``).
    outcome : binary outcome column (bool or 0/1), known for everyone analysed (e.g. HO within a fixed
        horizon with complete follow-up). ``None``: the risk of status 1 by ``horizon`` is read from the weighted
        Aalen-Johansen cumulative incidence (``time``/``status``/``horizon`` required), which handles
        censoring and competing death; its SEs treat the weights as known (use ``bootstrap=`` for
        intervals that also reflect the propensity model) and there is no AIPW row.
    estimand : "ATE", "ATT" or "ATO"/"overlap".
    reference : comparison level (default "none" if present, else False/0, else the first level).
    treated : target level for ATT (default: the non-reference level of a binary treatment).
    ps_model : "logistic" (multinomial for >2 levels), "gbm", or a scikit-learn classifier.
    weights : "stabilized" or "unstabilized" (the risks are the same; the weights shown differ). Overlap
        weights are bounded by 1 and are used as they are.
    truncate : percentiles, e.g. 1 or (1, 99): weights outside are set to those percentiles.
    time, status : follow-up time and status (0 censored, 1 event, 2 competing death) for the weighted Cox
        hazard ratio and ``curves()``; ``horizon`` censors follow-up administratively at that time.
    bootstrap : number of bootstrap replicates (0: none). Needs ``seed``; replicates are spread over
        ``n_jobs`` processes (joblib) with one numpy SeedSequence child per replicate, so the result does not
        depend on ``n_jobs``. CIs for risks, RD, RR and OR are then bootstrap percentile intervals.

    Returns an :class:`IPTWResult`. Warnings (positivity, extreme weights, separation) are in
    ``.warnings`` and are also issued as Python warnings.
    """
    # the products are thin (n x p, p small): a second BLAS thread gains little alone and costs much when
    # the other core is busy (benchmarks/bench_iptw.py --busy 2)
    with single_blas_thread():
        level = check_level(level)
        z = z_value(level)
        if not isinstance(data, pd.DataFrame):
            raise DataError("iptw needs a pandas DataFrame")
        est_key, stabilized, trunc, bootstrap = _check_options(estimand, weights, truncate, bootstrap, seed)
        formula, rhs, conf_cols = confounder_columns(data, confounders)
        data, n_missing, notes = _analysed_rows(data, treatment, outcome, conf_cols, time, status, horizon)
        levels, reference, a, counts = treatment_arms(data[treatment], treatment, reference)
        K = len(levels)
        treated, target = _att_target(est_key, treated, levels, reference, treatment)
        surv, y, yev = _outcome(data, outcome, time, status, horizon, levels, a)
        events = np.bincount(a, weights=yev, minlength=K).astype(int)

        covs = _covariates(data, conf_cols, notes)
        if formula is None:  # a list: the confounders that vary, each as the formula engine codes it
            formula = rhs = _list_formula(list(dict.fromkeys(c.variable for c in covs)))
        direct = None if isinstance(confounders, str) else _direct_design(data, [c.variable for c in covs])
        if direct is None:
            design, Xd = build_design(data, rhs or "1", formula, intercept=True)
            direct = (design.names, Xd)
        Xd, names = _drop_collinear(direct[1], direct[0], notes)

        P, fit, w, g, tinfo, ps_info = _estimate(Xd, a, K, ps_model, est_key, target, stabilized, trunc, notes,
                                                 pending=True)
        is_logistic = isinstance(ps_model, str) and ps_model == "logistic"
        mu, V = _risks_and_variance(y, a, w, g, Xd, P, K, is_logistic, ps_info)
        pairs = [(k, 0) for k in range(1, K)]
        rows = _contrast_rows(mu, V, counts, events, pairs, levels, z)
        _note_arms_without_events(mu, levels, notes)
        ess_df = _weight_diagnostics(P, w, a, counts, levels, est_key, target, notes)
        method = _method_label(est_key, K, is_logistic, outcome is None, horizon)

        boot_df = None
        if bootstrap:
            rows, boot_df = _apply_bootstrap(rows, bootstrap, seed, n_jobs, Xd, a, y, K, ps_model, est_key, target,
                                             stabilized, trunc, pairs, levels, level, notes,
                                             start=_propensity_beta(fit) if is_logistic else None)
            method = method[:-1] + f"; {bootstrap} bootstrap replicates, percentile CIs)"

        outcome_models: Mapping = {}
        if est_key == "ATE" and outcome is not None:
            aipw_rows, outcome_models = _aipw(Xd, a, y, P, K, pairs, z, levels, counts, events, notes)
            rows += aipw_rows
            if outcome_models:
                method = method[:-1] + ("; outcome regression: g-formula standardisation and AIPW, a logistic "
                                        "outcome model per arm, influence-function CIs)")

        cox_res = None
        if surv is not None:
            hr_rows, cox_res = _hazard_ratio(surv, w, a, levels, pairs, counts, level, notes)
            rows += hr_rows

        for msg in notes:
            if msg.startswith(("positivity", "extreme weights")):
                warnings.warn(msg, UserWarning, stacklevel=2)

        prop = pd.DataFrame(P, index=data.index, columns=[str(v) for v in levels])
        return IPTWResult(
            _table=tidy(_ordered_table(rows, pairs, levels)), level=level, method=method, reference=IPTW_REFERENCE,
            fitted=fit, warnings=notes, propensity=prop, weights=pd.Series(w, index=data.index, name="weight"),
            ess=ess_df, estimand=est_key, reference_level=reference, treated_level=treated, levels=levels,
            truncation=tinfo, outcome_models=outcome_models, cox_result=cox_res, bootstrap_estimates=boot_df,
            n=int(len(a)), n_missing=n_missing, ps_terms=list(names), _covariates=covs, _arm=a, _surv=surv)


# steps of iptw

def _propensity_beta(fit: Any) -> np.ndarray:
    """The logistic propensity model's coefficients in the Newton order (arm by arm)."""
    if isinstance(fit, _PendingResults):
        return fit.beta
    return np.asarray(fit.params).ravel(order="F")


def _check_options(estimand, weights, truncate, bootstrap, seed) -> tuple[str, bool, tuple | None, int]:
    """(estimand key, stabilised?, truncation percentiles, bootstrap replicates) of iptw's options, or a
    ValueError naming the option."""
    est_key = _ESTIMANDS.get(str(estimand).upper())
    if est_key is None:
        raise ValueError(f"estimand must be 'ATE', 'ATT' or 'ATO' (overlap), got {estimand!r}")
    wkey = str(weights).lower().replace("stabilised", "stabilized")
    if wkey not in {"stabilized", "unstabilized"}:
        raise ValueError(f"weights must be 'stabilized' or 'unstabilized', got {weights!r}")
    trunc = _parse_truncate(truncate)
    bootstrap = int(bootstrap)
    if bootstrap < 0:
        raise ValueError("bootstrap must be >= 0")
    if bootstrap and seed is None:
        raise ValueError("bootstrap needs an explicit seed (seed=...) so that results are reproducible")
    return est_key, wkey == "stabilized", trunc, bootstrap


def _analysed_rows(data, treatment, outcome, conf_cols, time, status, horizon
                   ) -> tuple[pd.DataFrame, int, list[str]]:
    """The complete cases of the columns iptw uses (their count left out, and the notes saying so), after
    checking that the columns exist and play one role each."""
    surv_cols = [c for c in (time, status) if c is not None]
    if (time is None) != (status is None):
        raise ValueError("give both time= and status= (or neither)")
    if outcome is None and (time is None or horizon is None):
        raise ValueError("without outcome=, give time=, status= and horizon= (risks by the horizon are then "
                         "read from the weighted cumulative incidence)")
    out_cols = [] if outcome is None else [outcome]
    require_columns(data, [treatment, *out_cols, *conf_cols, *surv_cols])
    if treatment in conf_cols or (outcome is not None and outcome in conf_cols):
        raise ValueError("the treatment and the outcome cannot also be confounders")
    used = list(dict.fromkeys([treatment, *out_cols, *conf_cols, *surv_cols]))
    if len(used) < data.shape[1]:  # only these columns: the complete cases then copy them, not the whole frame
        data = data[used]
    data, dropped, n_missing = complete_cases(data, used, "iptw")
    return data, n_missing, list(dropped)


def _att_target(est_key, treated, levels, reference, treatment) -> tuple[Any, int | None]:
    """The ATT's target level and its arm code (None for the other estimands)."""
    if est_key != "ATT":
        return treated, None
    if treated is None:
        if len(levels) > 2:
            raise ValueError("estimand='ATT' with more than two levels needs treated=<level>")
        treated = levels[1]
    if treated not in levels or treated == reference:
        raise ValueError(f"treated must be a non-reference level of {treatment!r}, got {treated!r}")
    return treated, levels.index(treated)


def _outcome(data, outcome, time, status, horizon, levels, a):
    """(survival frame or None, the outcome as the risk estimators take it, each row's event indicator):
    a binary column, or (time, status, horizon) for the weighted Aalen-Johansen risk by the horizon, with
    follow-up censored administratively at the horizon."""
    surv = None
    if time is not None:
        t = time_array(data, time)
        st = status_array(data, status, 1).astype(float)
        if horizon is not None:
            if not horizon > 0:
                raise ValueError(f"horizon must be a positive time, got {horizon!r}")
            over = t > horizon
            t, st = np.where(over, horizon, t), np.where(over, 0.0, st)
        surv = pd.DataFrame({"_time": t, "_status": st.astype(int),
                             "_arm": pd.Categorical([levels[k] for k in a], categories=levels)},
                            index=data.index)
    if outcome is not None:
        y = binary_array(data, outcome, "outcome").astype(float)
        return surv, y, y
    # risk of cause 1 by the horizon, censoring handled by the Aalen-Johansen estimator
    y = (surv["_time"].to_numpy(float), surv["_status"].to_numpy(int), float(horizon))
    if (surv["_status"] == 1).sum() == 0:
        raise EstimationError(f"no events (status 1) in {status!r} by the horizon {horizon}")
    return surv, y, ((y[1] == 1) & (y[0] <= horizon)).astype(float)


def _risks_and_variance(y, a, w, g, Xd, P, K, is_logistic, info=None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted risk of each arm and their covariance: M-estimation (binary outcome) or the weighted
    Aalen-Johansen variance treating the weights as known (arms independent)."""
    if not isinstance(y, tuple):
        mu, W = _arm_means(y, a, w, K)
        phi = _influence(y, a, w, g, Xd, P, mu, W, account_ps=is_logistic, info=info)
        return mu, phi.T @ phi
    mu, se = _cif_risks(y, a, w, K)
    return mu, np.diag(se ** 2)   # arms are disjoint samples: independent given the weights


def _note_arms_without_events(mu, levels, notes) -> None:
    for k in range(len(levels)):
        if mu[k] in (0.0, 1.0):
            notes.append(f"arm {levels[k]!r} has {'no' if mu[k] == 0 else 'only'} events: its risk ratio and "
                         "odds ratio cannot be estimated (shown as missing), its risk has no Wald interval, and "
                         "the risk difference interval ignores that arm's sampling error")


def _positivity_flags(P: np.ndarray, arms, levels: list, notes: list[str], advice: str) -> None:
    """Note each arm in ``arms`` whose propensity is below POSITIVITY_BOUND for more than POSITIVITY_SHARE
    of the patients (or below a tenth of it for anyone), ending with ``advice``."""
    for k in arms:
        low = P[:, k] < POSITIVITY_BOUND
        if low.mean() > POSITIVITY_SHARE or P[:, k].min() < POSITIVITY_BOUND / 10:
            notes.append(f"positivity: {int(low.sum())} patient(s) ({100 * low.mean():.1f}%) have a propensity "
                         f"below {POSITIVITY_BOUND} for arm {levels[k]!r} (minimum {P[:, k].min():.2g}); "
                         + advice)


def _weight_diagnostics(P, w, a, counts, levels, est_key, target, notes) -> pd.DataFrame:
    """Positivity flags (arms that matter for the estimand) and, per arm, the effective sample size and
    extreme-weight flags; returns the ess table."""
    K = len(levels)
    check_arms = (range(K) if est_key == "ATE" else [k for k in range(K) if k != target]
                  if est_key == "ATT" else [])
    _positivity_flags(P, check_arms, levels, notes, "consider restricting the cohort, truncation or overlap "
                      "weights (estimand='ATO')")
    ess = []
    for k in range(K):
        wk = w[a == k]
        rel = wk / wk.mean()
        ess.append({"group": levels[k], "n": int(counts[k]), "sum_weights": float(wk.sum()),
                    "ess": _bal.effective_sample_size(wk), "max_weight": float(wk.max())})
        if ((rel.max() > EXTREME_WEIGHT and wk.max() / wk.sum() > EXTREME_SHARE)
                or ess[-1]["ess"] < LOW_ESS * counts[k]):
            notes.append(f"extreme weights in arm {levels[k]!r}: the largest is {rel.max():.1f} times the arm's "
                         f"mean weight (effective sample size {ess[-1]['ess']:.0f} of {counts[k]})")
    return pd.DataFrame(ess)


def _method_label(est_key, K, is_logistic, from_curves, horizon) -> str:
    method = f"IPTW ({est_key}, {'multinomial logistic' if K > 2 else 'logistic'} propensity score"
    if not is_logistic:
        method = f"IPTW ({est_key}, gradient-boosting propensity score"
    if from_curves:
        return method + (f", risks by time {horizon:g} from the weighted Aalen-Johansen cumulative incidence, "
                         "SEs treating the weights as known)")
    return method + (", M-estimation CIs)" if is_logistic else ", robust sandwich CIs treating weights as known)")


def _ordered_table(rows, pairs, levels) -> pd.DataFrame:
    """The rows by contrast, then measure in the documented order."""
    base = ["risk_treated", "risk_control", "risk_difference", "risk_ratio", "odds_ratio"]
    order = base + ["hazard_ratio"] + [f"{m}_regression" for m in base] + ["risk_difference_aipw"]
    contrast = {f"{levels[t]} vs {levels[c]}": i for i, (t, c) in enumerate(pairs)}
    rank = {m: i for i, m in enumerate(order)}
    keyed = sorted(enumerate(rows), key=lambda ir: (contrast[ir[1]["contrast"]], rank[ir[1]["measure"]], ir[0]))
    return pd.DataFrame([r for _, r in keyed], index=[i for i, _ in keyed])


def _apply_bootstrap(rows, B, seed, n_jobs, Xd, a, y, K, ps_model, est_key, target, stabilized, trunc, pairs,
                     levels, level, notes, start=None):
    from joblib import Parallel, delayed, effective_n_jobs

    seeds = np.random.SeedSequence(seed).spawn(B)
    n_chunks = max(1, min(effective_n_jobs(n_jobs or 1), B))
    chunks = [seeds[i::n_chunks] for i in range(n_chunks)]
    args = (Xd, a, y, K, ps_model, est_key, target, stabilized, trunc, pairs, start)
    if n_chunks == 1:
        parts = [_bootstrap_chunk(chunks[0], *args)]
    else:
        parts = Parallel(n_jobs=n_chunks)(delayed(_bootstrap_chunk)(ch, *args) for ch in chunks)
    # restore replicate order (chunk i holds replicates i, i + n_chunks, ...)
    reps = np.empty((B, K + 3 * len(pairs)))
    for i, part in enumerate(parts):
        reps[i::n_chunks] = np.asarray(part)
    fitted_ok = np.all(np.isfinite(reps[:, :K]), axis=1)   # the risks: the replicate itself worked
    if fitted_ok.sum() < B:
        notes.append(f"bootstrap: {B - int(fitted_ok.sum())} of {B} replicates could not be estimated (an arm "
                     "missing from the resample, or the propensity model failed) and were left out")
    if fitted_ok.sum() < 20:
        raise EstimationError(f"only {int(fitted_ok.sum())} usable bootstrap replicates; increase bootstrap= or "
                              "check that every arm has enough patients")
    alpha = (1 - level) / 2
    n_stats = reps.shape[1]
    lo_q, hi_q, sd = np.full(n_stats, np.nan), np.full(n_stats, np.nan), np.full(n_stats, np.nan)
    for j in range(n_stats):
        v = reps[fitted_ok, j]
        v = v[np.isfinite(v)]   # a ratio is undefined in replicates where an arm has no events
        if len(v) >= 20:
            lo_q[j], hi_q[j] = np.quantile(v, [alpha, 1 - alpha])
            sd[j] = v.std(ddof=1)
    cols = [f"risk[{v}]" for v in levels]
    where: dict[tuple[str, str], int] = {}
    for i, (t, c) in enumerate(pairs):
        label = f"{levels[t]} vs {levels[c]}"
        for j, m in enumerate(("risk_difference", "risk_ratio", "odds_ratio")):
            where[(label, m)] = K + 3 * i + j
            where[(label, "risk_treated")], where[(label, "risk_control")] = t, c
        cols += [f"{m}[{label}]" for m in ("risk_difference", "log_risk_ratio", "log_odds_ratio")]
    for row in rows:
        m = row["measure"]
        j = where[(row["contrast"], m)]
        tr = np.exp if m in ("risk_ratio", "odds_ratio") else (lambda v: v)
        row.update(ci_lower=tr(lo_q[j]), ci_upper=tr(hi_q[j]), std_error=sd[j])
    return rows, pd.DataFrame(reps, columns=cols)


def _hazard_ratio(surv, w, a, levels, pairs, counts, level, notes):
    """Weighted Cox model of the cause-1 (HO) hazard on treatment dummies, robust SE."""
    try:
        from hostats.stats.survival.km_cox import cox
    except ImportError:
        notes.append("hazard ratio omitted: hostats.stats.survival.km_cox.cox is not available")
        return [], None
    frame = surv.copy()
    frame["_event"] = (frame["_status"] == 1).astype(int)
    frame["_w"] = w
    terms = []
    for k in range(1, len(levels)):
        name = f"_trt{k}"
        frame[name] = (a == k).astype(float)
        terms.append(name)
    if frame["_event"].sum() == 0:
        notes.append("hazard ratio omitted: no events")
        return [], None
    res = cox(frame, " + ".join(terms), time="_time", event="_event", weights="_w", robust=True, level=level)
    tab = res.table().set_index("term")
    rows = []
    for (t, c), name in zip(pairs, terms, strict=True):
        r = tab.loc[name]
        events = int(frame.loc[(a == t) | (a == c), "_event"].sum())
        rows.append({"contrast": f"{levels[t]} vs {levels[c]}", "measure": "hazard_ratio",
                     "estimate": r["estimate"], "ci_lower": r["ci_lower"], "ci_upper": r["ci_upper"],
                     "p_value": r.get("p_value", np.nan), "std_error": r["std_error"],
                     "n": int(counts[t] + counts[c]), "events": events})
    return rows, res
