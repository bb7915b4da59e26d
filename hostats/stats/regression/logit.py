"""Logistic regression for binary outcomes (odds ratios), with Firth's penalised likelihood.

``logistic(data, formula, ...)`` fits ``outcome ~ terms`` by maximum likelihood (statsmodels Logit/GLM)
or by Firth's penalised likelihood (hand-written here: no maintained Python library has it), and returns a
:class:`LogisticResult`: odds ratios with Wald or profile-likelihood CIs, cluster-robust or
probability-weight (sandwich) SEs, the c-statistic with a DeLong CI, calibration, and ``.predict``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit

from hostats.errors import DataError, EstimationError
from hostats.stats.core.formula import (
    Design,
    build_design,
    complete_direct_design,
    formula_variables,
    require_variables,
    split_formula,
)
from hostats.stats.core.results import (
    LogLik,
    Result,
    check_level,
    deprecated_alias,
    ratio_columns,
    read_only,
    z_value,
)
from hostats.stats.core.threads import single_blas_thread
from hostats.stats.core.validate import binary_array, complete_cases, require_columns

_LP_MAX_CELLS = 250_000  # rows x terms up to which the linear-programming separation check runs (~0.3 s)
_MAX_STEP = 5.0  # largest Newton step per coefficient (as logistf's maxstep)
_CHUNK = 16384  # rows per block of the likelihood pass (a cache-sized buffer instead of n x p temporaries)


# ----------------------------------------------------------------------------------------------------
# Newton-Raphson for ordinary and Firth-penalised logistic likelihoods
# ----------------------------------------------------------------------------------------------------
@dataclass
class _Fit:
    beta: np.ndarray
    loglik: float  # penalised when firth
    info: np.ndarray  # Fisher information X'WX at beta
    converged: bool
    iterations: int
    full_step: bool = False  # converged on a full Newton step (no halving, no cap)


def _loglik(X, y, w, beta, offset, firth):
    eta = X @ beta
    if offset is not None:
        eta = eta + offset
    p = expit(eta)
    ll = float(np.sum(w * (y * eta - np.logaddexp(0.0, eta))))
    W = w * p * (1.0 - p)
    info = X.T @ (X * W[:, None])
    if firth:
        sign, logdet = np.linalg.slogdet(info)
        ll = ll + 0.5 * logdet if sign > 0 else -np.inf
    return ll, p, W, info


def _ml_eval(X: np.ndarray, y: np.ndarray, w: np.ndarray, beta: np.ndarray, offset: np.ndarray | None,
             unit: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, score X'w(y - p) and Fisher information X'WX of the unpenalised likelihood at
    ``beta``, in one pass over row blocks: no n-length or n x p temporaries (``unit``: all weights 1).
    Per block, one matrix product X_b'[W X_b, r] gives the block's information and score together.
    ``X`` may be C- or Fortran-ordered (``logistic`` builds it column-major: its column sums, X'beta and
    the column reductions of the checks then run along contiguous memory)."""
    n, k = X.shape
    ll, acc = 0.0, np.zeros((k, k + 1))
    buf = np.empty((min(_CHUNK, n), k + 1), order="F")  # [W X_b, r] of a block
    with single_blas_thread():
        for lo in range(0, n, _CHUNK):
            xc, yc = X[lo:lo + _CHUNK], y[lo:lo + _CHUNK]
            eta = xc @ beta
            if offset is not None:
                eta += offset[lo:lo + _CHUNK]
            # one exponential per row: z = exp(-|eta|) gives p = expit(eta), log(1 + e^eta) and p(1 - p);
            # log(1 + z) as log(d): its rounding is ~1e-16 absolute per row (log1p is 3 x slower, not SIMD)
            z = np.exp(-np.abs(eta))
            d = 1.0 + z
            lc = yc * eta - (np.maximum(eta, 0.0) + np.log(d))
            b = buf[:xc.shape[0]]
            resid = b[:, k]
            np.divide(np.where(eta >= 0.0, 1.0, z), d, out=resid)
            np.subtract(yc, resid, out=resid)
            W = z / (d * d)
            if not unit:
                wc = w[lo:lo + _CHUNK]
                lc *= wc
                resid *= wc
                W *= wc
            ll += float(lc.sum())
            np.multiply(xc, W[:, None], out=b[:, :k])
            acc += xc.T @ b
    return ll, acc[:, k].copy(), acc[:, :k].copy()


def _intercept_start(X: np.ndarray, y: np.ndarray, w: np.ndarray, xtx: np.ndarray | None = None
                     ) -> tuple[np.ndarray, tuple[float, np.ndarray, np.ndarray]]:
    """The intercept-only MLE as the starting point (column 0 of ``X`` the intercept) and the likelihood,
    score and information there without a likelihood pass: eta is the constant b0 = logit(weighted mean
    of y), so the information is p0 (1 - p0) X'diag(w)X (``xtx`` when the caller has it) and the score
    X'w(y - p0). It saves one of the four or five passes of a Newton fit and starts nearer the optimum."""
    sw, swy = float(np.sum(w)), float(w @ y)
    ybar = min(max(swy / sw, 1e-12), 1.0 - 1e-12)
    b0 = float(np.log(ybar / (1.0 - ybar)))
    p0 = float(expit(b0))
    with single_blas_thread():
        if xtx is None:
            xtx = _cross(X, w)
        score = (w * (y - p0)) @ X
    ll = swy * b0 - sw * (max(b0, 0.0) + float(np.log1p(np.exp(-abs(b0)))))
    beta = np.zeros(X.shape[1])
    beta[0] = b0
    return beta, (ll, score, p0 * (1.0 - p0) * xtx)


def _cross(X: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """X'diag(w)X (X'X when ``w`` is None or all ones)."""
    if w is None or bool(np.all(w == 1.0)):
        return X.T @ X
    return X.T @ (X * w[:, None])


def _firth_eval(X: np.ndarray, y: np.ndarray, w: np.ndarray, beta: np.ndarray,
                offset: np.ndarray | None) -> tuple[float, np.ndarray, np.ndarray]:
    """Penalised log-likelihood, Firth's modified score X'(w(y - p) + h(1/2 - p)) and X'WX at ``beta``."""
    ll, p, W, info = _loglik(X, y, w, beta, offset, True)
    if not np.isfinite(ll):
        return ll, np.full(X.shape[1], np.nan), info
    inv = np.linalg.inv(info)
    h = W * np.einsum("ij,jk,ik->i", X, inv, X, optimize=True)
    return ll, X.T @ (w * (y - p) + h * (0.5 - p)), info


def _newton(X: np.ndarray, y: np.ndarray, w: np.ndarray, *, firth: bool = False,
            beta0: np.ndarray | None = None, free: np.ndarray | None = None,
            offset: np.ndarray | None = None, tol: float = 1e-9, maxiter: int = 100,
            first: tuple[float, np.ndarray, np.ndarray] | None = None) -> _Fit:
    """Maximise the (Firth-penalised) log-likelihood over the ``free`` coefficients.

    Firth (1993): the score gains ``X'(h (1/2 - p))``, ``h`` the diagonal of the weighted hat matrix
    ``W^1/2 X (X'WX)^-1 X' W^1/2``; this is the gradient of ``l(beta) + 1/2 log|X'WX|``. Steps use the
    Fisher information, are capped at 5 per coefficient and halved until the objective does not fall
    (Heinze & Schemper 2002, as in R's logistf). Fixed coefficients (``free`` False) stay at ``beta0``:
    this gives the profile likelihood used for profile CIs and likelihood-ratio tests. The unpenalised
    likelihood, score and information come from one blocked pass over the rows per point (``_ml_eval``);
    ``first``: (log-likelihood, score, information) at ``beta0`` when the caller has them already.
    """
    p_ = X.shape[1]
    beta = np.zeros(p_) if beta0 is None else np.array(beta0, dtype=float)
    free = np.ones(p_, dtype=bool) if free is None else free
    if firth:
        def point(b):
            return _firth_eval(X, y, w, b, offset)
    else:
        unit = bool(np.all(w == 1.0))

        def point(b):
            return _ml_eval(X, y, w, b, offset, unit)
    ll, score, info = point(beta) if first is None else first
    converged = full_step = False
    it = 0
    for it in range(1, maxiter + 1):  # noqa: B007 - iterations reported
        try:
            step = np.linalg.solve(info[np.ix_(free, free)], score[free])
        except np.linalg.LinAlgError:
            break
        big = np.max(np.abs(step)) if step.size else 0.0
        if big > _MAX_STEP:
            step *= _MAX_STEP / big
        for halvings in range(30):  # noqa: B007 - used after the loop
            trial = beta.copy()
            trial[free] += step
            ll_new, score_new, info_new = point(trial)
            if ll_new >= ll - 1e-10 * max(1.0, abs(ll)):
                break
            step /= 2.0
        beta, ll, score, info = trial, ll_new, score_new, info_new
        # ML: Fisher scoring is Newton's method for the logit link, so after a full step of size s the
        # error is O(s^2) and a step below sqrt(tol) already leaves beta within ~tol. Firth's iteration
        # uses the expected information, not the penalised Hessian: converge on the step itself.
        full_step = halvings == 0 and big <= _MAX_STEP
        size = np.max(np.abs(step), initial=0.0)
        if size < tol or (not firth and full_step and size < np.sqrt(tol)):
            converged = True
            break
    return _Fit(beta, ll, info, converged, it, converged and full_step)


# ----------------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------------
def _class_ranges(X: np.ndarray, ev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column maxima and minima among non-events and among events (max0, min0, max1, min1), in one
    blocked pass over the rows (no copy of the matrix; -inf/inf for a class without rows)."""
    k = X.shape[1]
    max0, max1 = np.full(k, -np.inf), np.full(k, -np.inf)
    min0, min1 = np.full(k, np.inf), np.full(k, np.inf)
    for lo in range(0, X.shape[0], _CHUNK):
        xc, e = X[lo:lo + _CHUNK], ev[lo:lo + _CHUNK]
        for rows, mx, mn in ((xc[~e], max0, min0), (xc[e], max1, min1)):
            if rows.shape[0]:
                np.maximum(mx, rows.max(axis=0), out=mx)
                np.minimum(mn, rows.min(axis=0), out=mn)
    return max0, min0, max1, min1


def _check_events(y: np.ndarray, w: np.ndarray) -> None:
    events = float(np.sum(w * y))
    total = float(np.sum(w))
    if events == 0:
        raise EstimationError("no events in the analysed rows: odds ratios cannot be estimated "
                              "(report the proportion with hostats.proportion instead)")
    if events == total:
        raise EstimationError("every analysed row is an event: odds ratios cannot be estimated")


def _check_design(X: np.ndarray, names: list[str], y: np.ndarray, w: np.ndarray,
                  ranges: tuple[np.ndarray, ...] | None = None) -> None:
    _check_events(y, w)
    bounds = None
    if ranges is not None:
        max0, min0, max1, min1 = ranges
        bounds = (np.maximum(max0, max1), np.minimum(min0, min1))
    check_terms(X, names, w, bounds)


def check_terms(X: np.ndarray, names: list[str], w: np.ndarray | None = None,
                bounds: tuple[np.ndarray, np.ndarray] | None = None, xtx: np.ndarray | None = None) -> None:
    """A constant term (other than the intercept), or a term collinear with those before it, among the rows
    with positive weight, is an error naming the term. ``bounds``: the column maxima and minima over
    those rows when already known; ``xtx``: X'diag(w)X when already known. Given ``xtx`` and no
    ``bounds``, a design with an intercept whose ``xtx`` has full rank passes without the column ranges
    (a constant term would be collinear with the intercept)."""
    unit = w is None or bool(np.all(w == 1))
    if xtx is None:
        with single_blas_thread():
            xtx = X.T @ X if unit else X.T @ (X * w[:, None])
    diag = np.diag(xtx)
    if bounds is None and "Intercept" in names and np.all(diag > 0) and np.all(np.isfinite(xtx)):
        scale = np.sqrt(diag)
        if np.linalg.matrix_rank(xtx / np.outer(scale, scale), tol=1e-10) == len(names):
            return  # full rank: every leading block has full rank too (interlacing), nothing constant
    Xu = X if unit or bounds is not None else X[w > 0]
    hi, lo = bounds if bounds is not None else (Xu.max(axis=0), Xu.min(axis=0))
    constant = np.flatnonzero(hi == lo)
    for j in constant:
        if names[j] != "Intercept":
            raise EstimationError(f"term {names[j]!r} is constant ({hi[j]:g}) in the analysed rows: "
                                  "drop it from the formula")
    scale = np.sqrt(np.diag(xtx))
    corr = xtx / np.outer(scale, scale)
    for k in range(2, len(names) + 1):
        if np.linalg.matrix_rank(corr[:k, :k], tol=1e-10) < k:
            raise EstimationError(f"term {names[k - 1]!r} is collinear with the terms before it "
                                  f"({', '.join(names[:k - 1])}): drop or recode it")


def _separation(X: np.ndarray, names: list[str], y: np.ndarray, w: np.ndarray,
                ranges: tuple[np.ndarray, ...] | None = None,
                linear_program: bool = True) -> tuple[str, list[str]]:
    """Detect complete or quasi-complete separation; returns (kind, terms) or ("", []).

    First term by term (a term whose values among events and non-events do not overlap; ``ranges`` are
    the class-wise column ranges of the rows with positive weight, ``_class_ranges``, computed when not
    given), then, with ``linear_program`` and for data up to ``_LP_MAX_CELLS`` cells, the linear program
    of Konis (2007; R's detectseparation): separation exists iff some direction b != 0 has
    (2y - 1) x'b >= 0 for every row.
    """
    used = w > 0
    if not used.all():
        X, y = X[used], y[used]
    if ranges is None:
        ranges = _class_ranges(X, y == 1)
    max0, min0, max1, min1 = ranges
    term = np.array([n != "Intercept" for n in names])
    sep = term & ((max0 <= min1) | (max1 <= min0))
    strict = term & ((max0 < min1) | (max1 < min0))
    found = [n for n, f in zip(names, sep, strict=True) if f]
    complete = bool(strict.any())
    if found:
        return ("complete" if complete else "quasi-complete"), found
    if not linear_program or X.shape[0] * X.shape[1] > _LP_MAX_CELLS:
        return "", []
    # unique rows suffice and keep the LP small
    signed = np.unique(X * np.where(y == 1, 1.0, -1.0)[:, None], axis=0)
    res = optimize.linprog(-signed.sum(axis=0), A_ub=-signed, b_ub=np.zeros(len(signed)),
                           bounds=[(-1, 1)] * X.shape[1], method="highs")
    if res.status != 0 or -res.fun < 1e-7:
        return "", []
    b = res.x
    # complete separation iff some direction separates every row strictly: maximise the smallest margin
    k = signed.shape[1]
    strict = optimize.linprog(np.r_[np.zeros(k), -1.0], A_ub=np.c_[-signed, np.ones(len(signed))],
                              b_ub=np.zeros(len(signed)), bounds=[(-1, 1)] * k + [(0, 1)], method="highs")
    kind = "complete" if strict.status == 0 and -strict.fun > 1e-7 else "quasi-complete"
    terms = [n for n, v in zip(names, b, strict=True) if abs(v) > 1e-7 and n != "Intercept"]
    return kind, terms or ["Intercept"]


# ----------------------------------------------------------------------------------------------------
# discrimination and calibration
# ----------------------------------------------------------------------------------------------------
def c_statistic(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None,
                method: str = "delong", level: float = 0.95) -> dict[str, float]:
    """c-statistic (area under the ROC curve) with a CI.

    Estimate: the (weighted) Mann-Whitney probability that an event has a higher score than a non-event,
    ties counting one half. ``method="delong"`` (default): DeLong, DeLong & Clarke-Pearson (Biometrics
    1988;44:837-45) variance from placement values, computed by sorting (Sun & Xu, IEEE SPL 2014), with
    weights acting as replicated rows (exact for frequency weights; an approximation that ignores the
    design for probability weights); ``method="hanley-mcneil"``: Hanley & McNeil (Radiology
    1982;143:29-36). The CI is estimate +- z SE truncated to [0, 1] (as R's pROC).
    """
    level = check_level(level)
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    pos, neg = y == 1, y == 0
    if not pos.any() or not neg.any():
        raise EstimationError("the c-statistic needs both events and non-events")
    s1, w1, s0, w0 = score[pos], w[pos], score[neg], w[neg]
    W1, W0 = w1.sum(), w0.sum()
    # placement values only enter through sums, so work in sorted order (sorted queries search fast)
    if weights is None:
        s0, s1 = np.sort(s0), np.sort(s1)
        c0, c1 = np.arange(s0.size + 1.0), np.arange(s1.size + 1.0)
    else:
        o0, o1 = np.argsort(s0), np.argsort(s1)
        s0, w0, s1, w1 = s0[o0], w0[o0], s1[o1], w1[o1]
        c0 = np.concatenate([[0.0], np.cumsum(w0)])
        c1 = np.concatenate([[0.0], np.cumsum(w1)])
    lo, hi = np.searchsorted(s0, s1, "left"), np.searchsorted(s0, s1, "right")
    v10 = (c0[lo] + 0.5 * (c0[hi] - c0[lo])) / W0  # per event: share of non-events scored lower
    lo, hi = np.searchsorted(s1, s0, "left"), np.searchsorted(s1, s0, "right")
    v01 = ((W1 - c1[hi]) + 0.5 * (c1[hi] - c1[lo])) / W1  # per non-event: share of events scored higher
    auc = float(np.sum(w1 * v10) / W1)
    key = method.lower().replace("_", "-")
    if key == "delong":
        s10 = np.sum(w1 * (v10 - auc) ** 2) / (W1 - 1) if W1 > 1 else 0.0
        s01 = np.sum(w0 * (v01 - auc) ** 2) / (W0 - 1) if W0 > 1 else 0.0
        var = s10 / W1 + s01 / W0
        name = "DeLong"
    elif key == "hanley-mcneil":
        q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
        var = (auc * (1 - auc) + (W1 - 1) * (q1 - auc**2) + (W0 - 1) * (q2 - auc**2)) / (W1 * W0)
        name = "Hanley-McNeil"
    else:
        raise ValueError(f"unknown c-statistic method {method!r}; use 'delong' or 'hanley-mcneil'")
    se = float(np.sqrt(max(var, 0.0)))
    z = z_value(level)
    return {"estimate": auc, "ci_lower": max(0.0, auc - z * se), "ci_upper": min(1.0, auc + z * se),
            "std_error": se, "method": name}


# ----------------------------------------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------------------------------------
@dataclass(repr=False)
class LogisticResult(Result):
    """Odds ratios per term (``table()``: term, estimate = OR, ci_lower, ci_upper, p_value, std_error of
    the log OR, n, events), plus ``.profile_ci()``, ``.predict()``, ``.performance()``, ``.calibration()``.

    Attributes: ``coef`` (log odds, a Series indexed by term), ``vcov`` (their covariance as used for Wald
    CIs, a DataFrame), ``loglik`` (:class:`~hostats.stats.core.results.LogLik` (null, fitted): the intercept-only
    and the fitted model, both penalised for Firth, weighted with weights), ``n``, ``events``,
    ``n_missing`` (rows dropped for missing values), ``concordance()`` (the c-statistic; with its DeLong
    CI in ``performance()``), ``firth``, ``weight_type``, ``cluster``; ``fitted`` is the statsmodels
    results object (built when first read for an unweighted fit without clusters; None for Firth, which is
    fitted here). Deprecated: ``params`` (use ``coef``), ``cov``
    (``vcov``), ``c_statistic`` (``concordance()`` / ``performance()``).
    """

    coef: pd.Series = field(default_factory=pd.Series)
    vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    n: int = 0
    events: float = 0
    n_missing: int = 0
    firth: bool = False
    weight_type: str | None = None
    cluster: str | None = None
    outcome: str = ""
    _design: Design | None = None
    _X: np.ndarray | None = None
    _y: np.ndarray | None = None
    _w: np.ndarray | None = None
    _profile: pd.DataFrame | None = None
    _loglik_pair: LogLik | None = None
    _sm_fit: _Fit | None = None  # the ML fit whose statsmodels results .fitted builds when first read
    _c_stat: dict | None = None

    # ``fitted`` (a field of Result) is read through a property: the statsmodels results object of an
    # unweighted fit without clusters is built when first asked for (constructing it scans X again)
    def _get_fitted(self) -> Any:
        value = self.__dict__.get("_fitted_value")
        if value is None and self._sm_fit is not None:
            value = self.__dict__["_fitted_value"] = _statsmodels_logit(self._X, self._y, list(self.coef.index),
                                                                        self._sm_fit)
        return value

    def _set_fitted(self, value: Any) -> None:
        self.__dict__["_fitted_value"] = value

    fitted = property(_get_fitted, _set_fitted)

    @property
    def c_stat(self) -> dict:
        """The c-statistic with its DeLong CI (computed when first read)."""
        if self._c_stat is None:
            self._c_stat = read_only(c_statistic(self._y, self._X @ self.coef.to_numpy(),
                                                 None if self.weight_type is None else self._w, level=self.level))
        return self._c_stat

    params = deprecated_alias("coef")
    cov = deprecated_alias("vcov", convert=lambda v: v.to_numpy())
    c_statistic = deprecated_alias("c_stat", hint=" (or concordance() for the estimate, performance() for its CI)")

    def concordance(self) -> float:
        """The c-statistic (area under the ROC curve) of the fitted linear predictor on the fitting data
        (weighted with weights); ``performance()`` gives it with its DeLong CI."""
        return float(self.c_stat["estimate"])

    @property
    def loglik(self) -> LogLik:
        """(null, fitted) log-likelihood: intercept-only model (all coefficients 0 without an intercept)
        and the fitted model; Firth's penalised likelihood for Firth fits, weighted by the row weights."""
        if self._loglik_pair is None:
            beta = self.coef.to_numpy()
            fitted = (_loglik(self._X, self._y, self._w, beta, None, True)[0] if self.firth else
                      _ml_eval(self._X, self._y, self._w, beta, None, bool(np.all(self._w == 1.0)))[0])
            names = list(self.coef.index)
            if "Intercept" in names:
                j = names.index("Intercept")
                fit0 = _newton(self._X[:, [j]], self._y, self._w, firth=self.firth, maxiter=1000)
                null = fit0.loglik
            else:
                null = _loglik(self._X, self._y, self._w, np.zeros_like(beta), None, self.firth)[0]
            self._loglik_pair = LogLik(float(null), float(fitted))
        return self._loglik_pair

    def profile_ci(self, level: float | None = None) -> pd.DataFrame:
        """Profile-likelihood CIs for the odds ratios (Venzon & Moolgavkar 1988; penalised for Firth, as
        R's logistf and MASS::confint report them) and likelihood-ratio p-values of OR = 1.

        Not available with probability weights or clusters: the likelihood then ignores the design
        (use the robust Wald CI in ``table()``).
        """
        level = self.level if level is None else check_level(level)
        if self.weight_type == "probability" or self.cluster is not None:
            raise ValueError("profile-likelihood CIs assume independent, unweighted (or frequency-weighted) "
                             "rows; with probability weights or clusters use the robust Wald CI in table()")
        if self._profile is not None and level == self.level:
            return self._profile.copy()
        out = _profile_table(self._X, self._y, self._w, self.coef.to_numpy(), self.vcov.to_numpy(), self.firth,
                             list(self.coef.index), level)
        failed = out.loc[out.ci_method == "wald", "term"].tolist()
        if failed:
            msg = (f"profile likelihood could not be maximised for {', '.join(failed)} (a flat ridge, "
                   "typically under separation): Wald CI and p-value shown for these terms")
            if msg not in self.warnings:
                self._amend(warnings=(*self.warnings, msg))
                warnings.warn(msg, UserWarning, stacklevel=2)
        if level == self.level:
            self._profile = out
        return out.copy()

    def predict(self, data: pd.DataFrame) -> pd.Series:
        """Predicted probabilities for the rows of ``data`` (NaN where a model column is missing)."""
        X = self._design.matrix(data)
        return pd.Series(expit(X @ self.coef.to_numpy()), index=data.index, name="probability")

    def linear_predictor(self, data: pd.DataFrame) -> pd.Series:
        X = self._design.matrix(data)
        return pd.Series(X @ self.coef.to_numpy(), index=data.index, name="log_odds")

    def calibration(self, data: pd.DataFrame | None = None) -> pd.DataFrame:
        """Calibration intercept (calibration-in-the-large: the intercept of ``logit P(y) = a + lp`` with the
        linear predictor ``lp`` as offset) and calibration slope (``b`` of ``logit P(y) = a + b lp``), with
        Wald CIs (Cox 1958; Van Calster et al., J Clin Epidemiol 2016;74:167-76). On the fitting data an
        ML fit has intercept 0 and slope 1 by construction; pass validation data to learn something.
        """
        y, lp, w = self._eval_data(data)
        z = z_value(self.level)
        ones = np.ones((len(y), 1))
        fit_int = _newton(ones, y, w, offset=lp)
        se_int = float(np.sqrt(1.0 / fit_int.info[0, 0]))
        X2 = np.column_stack([ones[:, 0], lp])
        fit_slope = _newton(X2, y, w)
        se_slope = float(np.sqrt(np.linalg.inv(fit_slope.info)[1, 1]))
        a, b = float(fit_int.beta[0]), float(fit_slope.beta[1])
        return pd.DataFrame({
            "measure": ["calibration_intercept", "calibration_slope"],
            "estimate": [a, b],
            "ci_lower": [a - z * se_int, b - z * se_slope],
            "ci_upper": [a + z * se_int, b + z * se_slope],
            "std_error": [se_int, se_slope],
            "n": len(y),
            "events": float(np.sum(y * w)),
            "ci_level": self.level,
        })

    def performance(self, data: pd.DataFrame | None = None, method: str = "delong") -> pd.DataFrame:
        """c-statistic (with its CI method named) and calibration, one row per ``measure``."""
        y, lp, w = self._eval_data(data)
        c = c_statistic(y, lp, w, method=method, level=self.level)
        row = pd.DataFrame({"measure": ["c_statistic"], "estimate": [c["estimate"]],
                            "ci_lower": [c["ci_lower"]], "ci_upper": [c["ci_upper"]],
                            "std_error": [c["std_error"]], "n": [len(y)], "events": [float(np.sum(y * w))],
                            "ci_level": [self.level], "ci_method": [c["method"]]})
        return pd.concat([row, self.calibration(data)], ignore_index=True)

    def _eval_data(self, data):
        if data is None:
            return self._y, self._X @ self.coef.to_numpy(), self._w
        if self.outcome not in data.columns:
            raise DataError(f"evaluation data lack the outcome column {self.outcome!r}", column=self.outcome)
        y = data[self.outcome].to_numpy(dtype=float, na_value=np.nan)
        known = ~np.isnan(y)
        if known.any():
            binary_array(data[known], self.outcome, "outcome")
        lp = self.linear_predictor(data).to_numpy()
        keep = known & ~np.isnan(lp)
        if not keep.all():
            warnings.warn(f"{int((~keep).sum())} rows with missing values left out of the evaluation",
                          stacklevel=3)
        return y[keep], lp[keep], np.ones(int(keep.sum()))


class _ProfileFailed(Exception):
    """A restricted fit on the profile did not converge (a flat ridge, typically under separation)."""


def _profile_bound(deviance, b_hat: float, se: float, sign: float, q: float) -> float:
    """Where the profile deviance first reaches ``q`` on one side of ``b_hat`` (inf if it never does)."""
    step = max(se, 1e-3)
    inner, outer = b_hat, b_hat + sign * step
    for _ in range(60):
        if deviance(outer) >= q:
            return optimize.brentq(lambda b: deviance(b) - q, min(inner, outer), max(inner, outer),
                                   xtol=1e-9, rtol=1e-10)
        inner, step = outer, step * 1.6
        outer = b_hat + sign * (abs(outer - b_hat) + step)
        if abs(outer - b_hat) > 200 * max(se, 1e-3):  # the profile never falls by q (separation)
            break
    return np.inf * sign


def _profile_table(X, y, w, beta, cov, firth, names, level) -> pd.DataFrame:
    q = stats.chi2.ppf(level, 1)
    full = _newton(X, y, w, firth=firth, beta0=beta)
    ll_max = full.loglik
    se = np.sqrt(np.diag(cov))
    rows = []
    failed: list[str] = []
    for j, name in enumerate(names):
        free = np.ones(len(beta), dtype=bool)
        free[j] = False

        def deviance(b, j=j, free=free):
            # always started from the full fit, so the value is a function of b alone (brentq needs that)
            start = full.beta.copy()
            start[j] = b
            fit = _newton(X, y, w, firth=firth, beta0=start, free=free, tol=1e-7, maxiter=200)
            if not fit.converged:
                raise _ProfileFailed
            return 2.0 * (ll_max - fit.loglik)

        try:
            bounds = [_profile_bound(deviance, beta[j], se[j], sign, q) for sign in (-1.0, 1.0)]
            chi = max(deviance(0.0), 0.0)
        except _ProfileFailed:  # documented fallback: Wald for this term, named in the warnings
            failed.append(name)
            zq = np.sqrt(q)
            bounds = [beta[j] - zq * se[j], beta[j] + zq * se[j]]
            chi = (beta[j] / se[j]) ** 2
        rows.append({"term": name, "estimate": float(np.exp(beta[j])), "ci_lower": float(np.exp(bounds[0])),
                     "ci_upper": float(np.exp(bounds[1])), "p_value": float(stats.chi2.sf(chi, 1)),
                     "lr_chisq": chi if name not in failed else np.nan,
                     "ci_method": "wald" if name in failed else "profile"})
    out = pd.DataFrame(rows)
    out["ci_level"] = level
    return out


# ----------------------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------------------
def logistic(data: pd.DataFrame, formula: str, weights: str | None = None, cluster: str | None = None,
             firth: bool = False, weight_type: str = "probability", level: float = 0.95,
             ci: str | None = None) -> LogisticResult:
    """Odds ratios from a logistic regression of a binary outcome.

    Estimand: conditional odds ratios ``exp(beta)`` of ``logit P(outcome = 1) = x'beta`` (the Intercept row
    is the baseline odds). ``formula`` is ``"outcome ~ a + b + C(c)"``, the syntax and coding of every
    hostats model (:mod:`hostats.stats.core.formula`: text, Categorical and boolean columns get treatment
    dummies ``col[T.level]`` with the first level as reference; ``C(x, Treatment('level'))`` sets
    another; interactions ``a:b``, ``a*b``; ``I(age / 10)``). The outcome column must be 0/1 or boolean.

    Methods
    - ML (default): Newton-Raphson, giving statsmodels ``Logit``'s estimates and model-based SEs
      (unweighted; ``.fitted`` is its results object, built when first read); with weights or clusters
      statsmodels' ``Logit``/``GLM(Binomial)`` results at that solution give the SEs. Wald CIs.
      ``cluster=<column>`` gives cluster-robust (sandwich) SEs with the usual G/(G-1) (N-1)/(N-K)
      correction (as Stata and R sandwich::vcovCL type HC1). ``weights=<column>``: with
      ``weight_type="frequency"`` each row counts ``w`` times (model SEs); with ``"probability"`` (default)
      the weights are inverse sampling/treatment probabilities and SEs are the robust sandwich (HC0,
      or cluster-robust with ``cluster=``, as R ``sandwich::vcovCL(glm(..., weights = w), type = "HC1")``;
      statsmodels' SpecificationWarning about var_weights is no longer shown for this case, where it
      does not apply).
    - ``firth=True``: Firth's (1993) penalised likelihood by Newton-Raphson with the Jeffreys-prior
      modified score (Heinze & Schemper, Stat Med 2002;21:2409-19); CIs and p-values from the profile
      penalised likelihood (likelihood-ratio), as R's logistf reports them.
    - ``ci="profile"``: profile-likelihood CIs and likelihood-ratio p-values in ``table()`` (also
      ``.profile_ci()``); default ``"wald"`` for ML, ``"profile"`` for Firth. Where a restricted fit on
      the profile does not converge (a flat ridge under separation) that term falls back to Wald, with
      a warning naming it and ``ci_method`` saying so in ``.profile_ci()``.

    Also computed: the c-statistic with a DeLong CI (``.concordance()``; with the CI ``.performance()``), and
    calibration intercept/slope (``.calibration(new_data)``).

    Degenerate data: no events, all events, a constant term, collinear terms -> ``EstimationError``
    naming the term; complete or quasi-complete separation (checked before fitting, term by term and by
    the Konis linear program) -> ``EstimationError`` naming the separating term(s) and recommending
    ``firth=True`` (with ``firth=True`` it is a warning in ``.warnings``). Missing values: complete-case
    analysis on the outcome, formula, weight and cluster columns; the rows dropped are counted in
    ``.warnings`` (also a ``UserWarning``) and ``n_missing``, and ``n`` counts the analysed rows.
    """
    level = check_level(level)
    ci = _check_options(data, firth, weight_type, ci, weights, cluster)
    # the products are thin (n x p, p small): one BLAS thread over the whole fit (core/threads.py)
    with single_blas_thread():
        outcome, frame, design, X, y, w, msgs, n_missing = _model_data(data, formula, weights, cluster,
                                                                        weight_type)
        names = design.names
        groups = _cluster_groups(frame, cluster)
        # n and events count people: frequency weights replicate rows, probability weights do not
        if weights is not None and weight_type == "frequency":
            n_rows, events = int(round(float(np.sum(w)))), int(round(float(np.sum(w * y))))
        else:
            n_rows, events = int(len(y)), int(np.sum(y))
        sm_fit = fitted = None
        if firth:
            beta, cov = _firth_fit(X, names, y, w, outcome, msgs)
            method = "Firth penalised logistic regression"
            reference = ("Firth D. Biometrika 1993;80:27-38; Heinze G, Schemper M. Stat Med 2002;21:2409-19 "
                         "(profile penalised-likelihood CIs and tests, as R logistf)")
        else:
            start = _ml_fit_checked(X, names, y, w, outcome)
            if weights is None and cluster is None:
                # model-based SEs: the inverse information, as statsmodels' Logit gives them; its results
                # object is built when .fitted is first read
                beta, cov, sm_fit = start.beta, np.linalg.inv(start.info), start
            else:
                beta, cov, fitted = _fit_ml(X, y, w, names, weights, weight_type, groups, msgs, start)
            method = "logistic regression (maximum likelihood)" + _se_label(weights, weight_type, cluster)
            reference = ("statsmodels Logit/GLM; Hosmer DW, Lemeshow S, Sturdivant RX. Applied Logistic "
                         "Regression, 3rd ed. 2013")

        se = np.sqrt(np.diag(cov))
        table = pd.DataFrame({
            "term": names,
            **ratio_columns(beta, se, level),
            "n": n_rows,
            "events": events,
            "log_odds": beta,
        })
        res = LogisticResult(table, level=level, method=method, reference=reference, fitted=fitted,
                             warnings=msgs, coef=pd.Series(beta, index=names),
                             vcov=pd.DataFrame(cov, index=names, columns=names), n=n_rows,
                             events=events, n_missing=n_missing, firth=firth,
                             weight_type=None if weights is None else weight_type, cluster=cluster,
                             outcome=outcome, _design=design, _X=X, _y=y, _w=w, _sm_fit=sm_fit)
        if ci == "profile":
            prof = res.profile_ci()
            res._table[["ci_lower", "ci_upper", "p_value"]] = prof[["ci_lower", "ci_upper", "p_value"]].to_numpy()
            res._amend(method=res.method + ("; profile penalised-likelihood CIs and penalised likelihood-ratio "
                                            "p-values" if firth else
                                            "; profile-likelihood CIs and likelihood-ratio p-values"))
        else:
            res._amend(method=res.method + "; Wald CIs")
        lp = X @ beta
    extreme = int(np.count_nonzero(np.abs(lp[w > 0]) > 18.42))  # fitted p within 1e-8 of 0 or 1
    if extreme and not firth:  # after the fit: near-separation the checks before it could not see
        msg = (f"fitted probabilities numerically 0 or 1 for {extreme} rows: possible quasi-separation or "
               "an extreme covariate; odds ratios may be unstable, consider firth=True")
        warnings.warn(msg, UserWarning, stacklevel=2)
        res._amend(warnings=(*res.warnings, msg))
    return res


def _check_options(data, firth, weight_type, ci, weights, cluster) -> str:
    """The CI method ('wald' or 'profile') after checking logistic's options."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    if weight_type not in ("probability", "frequency"):
        raise ValueError(f"weight_type must be 'probability' or 'frequency', got {weight_type!r}")
    ci = ("profile" if firth else "wald") if ci is None else str(ci).lower()
    if ci not in ("wald", "profile"):
        raise ValueError(f"ci must be 'wald' or 'profile', got {ci!r}")
    if firth and cluster is not None:
        raise ValueError("firth=True with cluster= is not supported: Firth's method uses model-based SEs")
    if firth and weights is not None and weight_type == "probability":
        raise ValueError("firth=True supports frequency weights only (weight_type='frequency')")
    return ci


def _model_data(data, formula, weights, cluster, weight_type):
    """(outcome, analysed frame, design, X, y, w, messages, rows dropped) of a logistic formula.

    X is column-major. When the formula is plain numeric columns without missing or infinite values and
    the outcome, weight and cluster columns are complete, the data are used as they are (no complete-case
    copy); otherwise complete-case analysis first, as every estimator does."""
    outcome, rhs = split_formula(formula, outcome=True)
    if not rhs:
        raise DataError(f"the formula {formula!r} has no right-hand side; use '{outcome} ~ 1' for an "
                        "intercept-only model")
    variables = formula_variables(rhs, formula)
    if outcome not in data.columns:
        raise DataError(f"outcome column {outcome!r} is not in the data; columns are {list(data.columns)}",
                        column=outcome)
    if outcome in variables:
        raise DataError(f"the outcome {outcome!r} is also on the right-hand side of {formula!r}", column=outcome)
    require_variables(data, variables, formula)
    extra = [c for c in (weights, cluster) if c is not None]
    require_columns(data, extra)
    direct = None
    if not any(data[c].isna().any() for c in dict.fromkeys([outcome, *extra])):
        direct = complete_direct_design(data, rhs, formula, intercept=True, order="F")
    if direct is not None:
        frame, msgs, n_missing = data, [], 0
        design, X = direct
    else:
        frame, msgs, n_missing = complete_cases(data, [outcome, *variables, *extra], "logistic")
        design, X = build_design(frame, rhs, formula, intercept=True, order="F")
    y = binary_array(frame, outcome, "outcome").astype(float)
    w = np.ones(len(y)) if weights is None else _weight_array(frame, weights, weight_type)
    return outcome, frame, design, X, y, w, msgs, n_missing


def _weight_array(frame: pd.DataFrame, weights: str, weight_type: str) -> np.ndarray:
    w = frame[weights].to_numpy(dtype=float, na_value=np.nan)
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        bad_row = frame.index[~np.isfinite(w) | (w < 0)][0]
        raise ValueError(f"weights column {weights!r} must be finite and >= 0; row {bad_row!r} is not")
    if weight_type == "frequency" and np.any(w != np.round(w)):
        bad_row = frame.index[w != np.round(w)][0]
        raise ValueError(f"frequency weights in {weights!r} must be whole numbers (row {bad_row!r} has "
                         f"{w[w != np.round(w)][0]:g}); use weight_type='probability' for other weights")
    return w


def _cluster_groups(frame: pd.DataFrame, cluster: str | None) -> np.ndarray | None:
    if cluster is None:
        return None
    groups = pd.factorize(frame[cluster])[0]
    if groups.max() < 1:
        raise EstimationError(f"cluster column {cluster!r} has a single cluster: robust SEs need several")
    return groups


def _se_label(weights, weight_type, cluster) -> str:
    if cluster is not None:
        return f", cluster-robust SE by {cluster}"
    if weights is not None and weight_type == "probability":
        return ", probability weights with robust (sandwich) SE"
    if weights is not None:
        return ", frequency weights"
    return ""


def _separation_message(kind: str, sep_terms: list[str], outcome: str) -> str:
    return (f"{kind} separation: {', '.join(sep_terms)} perfectly predict(s) the outcome "
            f"{outcome!r} in some rows, so the maximum-likelihood odds ratio is infinite")


def _raise_if_separated(X, names, y, w, outcome, linear_program: bool = True) -> None:
    kind, sep_terms = _separation(X, names, y, w, linear_program=linear_program)
    if kind:
        raise EstimationError(_separation_message(kind, sep_terms, outcome) + "; refit with firth=True "
                              "(Firth's penalised likelihood) or combine categories")


_SEPARATION_CHECK_AT = 25  # Newton steps after which the term-by-term separation check runs (ML)


def _ml_fit_checked(X, names, y, w, outcome) -> _Fit:
    """The ML Newton fit with the checks of the design and of separation.

    No events / only events, a constant or a collinear term are errors (``_check_design``): the collinearity
    check reads X'diag(w)X, which is also the information at the intercept-only start up to a factor, so one
    pass serves both; the column ranges of the constant-term check are computed only when that matrix is
    singular (a constant column is collinear with the intercept). Separation: a converged full Newton step
    at a finite beta is a finite maximiser of the (strictly concave) likelihood, which exists iff the data
    are not separated (Albert & Anderson, Biometrika 1984;71:1-10); under separation the Newton step in the
    separating direction does not shrink. So the term-by-term check and the linear program (most of a
    10,000-row fit) run only when the fit does not converge on a full step; the term-by-term check also
    after ``_SEPARATION_CHECK_AT`` steps without convergence, so that a separated design fails early.
    """
    _check_events(y, w)
    xtx = _cross(X, w)
    check_terms(X, names, w, xtx=xtx)
    fit = _ml_newton(X, y, w, xtx=xtx, maxiter=_SEPARATION_CHECK_AT)
    if not fit.converged:
        _raise_if_separated(X, names, y, w, outcome, linear_program=False)
        done = fit.iterations
        fit = _newton(X, y, w, beta0=fit.beta, maxiter=100 - done)
        fit.iterations += done
    if not fit.full_step:
        _raise_if_separated(X, names, y, w, outcome)
    if not fit.converged:
        raise EstimationError(f"the logistic likelihood did not converge in {fit.iterations} iterations "
                              "(near-separation?); consider firth=True")
    return fit


def _firth_fit(X, names, y, w, outcome, msgs) -> tuple[np.ndarray, np.ndarray]:
    """Firth's penalised fit (beta, inverse information); separation, checked before it, is a message."""
    used = w > 0
    ranges = _class_ranges(X, y == 1) if used.all() else _class_ranges(X[used], y[used] == 1)
    _check_design(X, names, y, w, ranges)
    kind, sep_terms = _separation(X, names, y, w, ranges)
    if kind:
        msgs.append(_separation_message(kind, sep_terms, outcome) + "; Firth's penalised estimate is finite")
    fit = _newton(X, y, w, firth=True, maxiter=1000)
    if not fit.converged:
        raise EstimationError(f"Firth's penalised likelihood did not converge in {fit.iterations} iterations")
    return fit.beta, np.linalg.inv(fit.info)


def _fit_ml(X, y, w, names, weights, weight_type, groups, msgs, start=None):
    """Maximum likelihood by statsmodels, started at our own Newton solution ``start`` (fitted here when
    None; fast, and lets the statsmodels object be the one users get)."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning,
        PerfectSeparationWarning,
        SpecificationWarning,
    )

    start = _ml_newton(X, y, w) if start is None else start
    if not start.converged:
        raise EstimationError(f"the logistic likelihood did not converge in {start.iterations} iterations "
                              "(near-separation?); consider firth=True")
    exog = pd.DataFrame(X, columns=names, copy=False)
    cluster_kw = {"cov_type": "cluster", "cov_kwds": {"groups": groups}} if groups is not None else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if weights is None:
            fitted = _logit_results(sm.Logit(y, exog, check_rank=False), start, **cluster_kw)
        else:
            family = sm.families.Binomial()
            if weight_type == "frequency":
                model = sm.GLM(y, exog, family=family, freq_weights=w)
                kw = cluster_kw
            else:  # probability weights: the score of row i is w_i x_i (y_i - p_i); sandwich SE
                model = sm.GLM(y, exog, family=family, var_weights=w)
                kw = cluster_kw or {"cov_type": "HC0"}
                if groups is not None:
                    # statsmodels warns "cov_type not fully supported with var_weights" for any robust
                    # covariance with var_weights. Harmless here: the binomial scale is fixed at 1, so its
                    # score_obs is w_i x_i (y_i - p_i) and its Hessian the weighted information, and the
                    # cluster sandwich is the pseudo-likelihood one with the G/(G-1) (N-1)/(N-K) factor
                    # over rows (R sandwich::vcovCL type HC1 to 1e-6 in tests/stats/regression/test_regression.py).
                    # Only that message, only here: with freq_weights the same warning is real (its N
                    # counts rows, not replicated people) and still reaches the user.
                    warnings.filterwarnings("ignore", message="cov_type not fully supported with var_weights",
                                            category=SpecificationWarning)
            fitted = model.fit(start_params=start.beta, maxiter=5, tol=1e-10, **kw)
    for wn in caught:
        if issubclass(wn.category, (PerfectSeparationWarning, ConvergenceWarning)):
            msgs.append(f"statsmodels: {wn.message}")
        elif not issubclass(wn.category, (DeprecationWarning, FutureWarning)):
            warnings.warn(wn.message, wn.category, stacklevel=3)
    beta = np.asarray(fitted.params, dtype=float)
    cov = np.asarray(fitted.cov_params(), dtype=float)
    return beta, cov, fitted


def _ml_newton(X: np.ndarray, y: np.ndarray, w: np.ndarray, xtx: np.ndarray | None = None,
               maxiter: int = 100) -> _Fit:
    """ML Newton-Raphson, started at the intercept-only fit when column 0 of ``X`` is the intercept (its
    likelihood, score and information need no pass over the rows: ``_intercept_start``; ``xtx``:
    X'diag(w)X when the caller has it), else at zero. From there 4-5 steps reach the optimum."""
    if X.shape[1] and X.shape[0] and bool(np.all(X[:, 0] == 1.0)) and float(w @ y) > 0:
        beta0, first = _intercept_start(X, y, w, xtx)
        return _newton(X, y, w, beta0=beta0, first=first, maxiter=maxiter)
    return _newton(X, y, w, maxiter=maxiter)


def _statsmodels_logit(X: np.ndarray, y: np.ndarray, names: list[str], fit: _Fit) -> Any:
    """statsmodels' LogitResults of an unweighted ML fit (``LogisticResult.fitted``)."""
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return _logit_results(sm.Logit(y, pd.DataFrame(X, columns=names, copy=False), check_rank=False), fit)


def _logit_results(model, fit: _Fit, **cov):
    """statsmodels LogitResults at our converged Newton solution (what ``Logit.fit`` would return, without
    repeating the iterations); robust covariances are computed by statsmodels from its own scores."""
    from statsmodels.base.model import LikelihoodModelResults
    from statsmodels.discrete.discrete_model import BinaryResultsWrapper, LogitResults

    mle = LikelihoodModelResults(model, fit.beta, normalized_cov_params=np.linalg.inv(fit.info), scale=1.0)
    mle.mle_retvals = {"converged": fit.converged, "iterations": fit.iterations,
                       "optimizer": "hostats Newton-Raphson"}
    mle.mle_settings = {"optimizer": "newton", "start_params": None, "maxiter": 100}
    return BinaryResultsWrapper(LogitResults(model, mle, **cov))
