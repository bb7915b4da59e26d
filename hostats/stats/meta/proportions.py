"""Meta-analysis of proportions: logit and Freeman-Tukey pooling by inverse variance, and the exact
binomial-normal model (GLMM) by Gauss-Hermite quadrature (as R's metafor ``rma.glmm``)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from hostats.errors import EstimationError
from hostats.stats.core.results import check_level
from hostats.stats.core.validate import as_vector, check_binomial, name_items
from hostats.stats.meta.effects import (
    MetaResult,
    _build,
    _check_k,
    _fit,
    _labels,
    _method,
    _summary_table,
    _typical_variance,
)


# --------------------------------------------------------------------------------------------- proportions
def _ft(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Freeman-Tukey double arcsine as metafor's PFT: half the sum of the two arcsines."""
    return 0.5 * (np.arcsin(np.sqrt(x / (n + 1.0))) + np.arcsin(np.sqrt((x + 1.0) / (n + 1.0))))


def ft_back(t: Any, n: float) -> np.ndarray:
    """Miller's (1978) inverse of the (halved) Freeman-Tukey transform for sample size ``n``.

    With ``n`` the harmonic mean of the study sizes this is metafor's ``transf.ipft.hm``; values beyond
    the transform of 0 or 1 events are set to 0 and 1 (as metafor).
    """
    t = np.asarray(t, dtype=float)
    s = np.sin(2.0 * t)
    with np.errstate(invalid="ignore", divide="ignore"):
        inner = 1.0 - (s + (s - 1.0 / s) / n) ** 2
        p = 0.5 * (1.0 - np.sign(np.cos(2.0 * t)) * np.sqrt(inner))
    p = np.where(t > _ft(np.asarray(n), np.asarray(n)), 1.0, p)
    p = np.where(t < _ft(np.asarray(0.0), np.asarray(n)), 0.0, p)
    return np.clip(p, 0.0, 1.0)


@dataclass(repr=False)
class MetaProportionResult(MetaResult):
    """Pooled proportion: ``estimate``, CI and prediction bounds back-transformed to proportions.

    ``tau2``, ``i2``, ``q`` and ``estimate_transformed`` / ``std_error`` are on the transformed scale
    (logit or Freeman-Tukey). ``events`` and ``totals`` are the study counts; ``corrected`` flags studies
    that received the continuity correction (logit only).
    """

    transform: str = "logit"
    estimate_transformed: float = float("nan")
    events: np.ndarray = field(default_factory=lambda: np.empty(0))
    totals: np.ndarray = field(default_factory=lambda: np.empty(0))
    corrected: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    continuity: float = 0.5
    loglik: float = float("nan")

    @property
    def n(self) -> int:
        """Patients (episodes) over the pooled studies, the ``n`` of the table's pooled row."""
        return int(np.sum(self.totals))

    def leave_one_out(self) -> pd.DataFrame:
        """Refit without each study in turn (same transform and method); proportions back-transformed.

        Columns: ``omitted``, estimate, ci_lower, ci_upper, pred_lower, pred_upper (proportions),
        estimate_transformed, std_error, tau2, i2, q, q_pvalue (transformed scale).
        """
        if self.k < 3:
            raise EstimationError("leave-one-out needs at least 3 studies (2 must remain)")
        rows = []
        for i in range(self.k):
            keep = np.arange(self.k) != i
            r = meta_proportions(self.events[keep], self.totals[keep], method=self.tau2_method,
                                 transform=self.transform, level=self.level, continuity=self.continuity)
            rows.append({"omitted": self.labels[i], "estimate": r.estimate, "ci_lower": r.ci_lower,
                         "ci_upper": r.ci_upper, "pred_lower": r.pred_lower, "pred_upper": r.pred_upper,
                         "estimate_transformed": r.estimate_transformed, "std_error": r.std_error,
                         "tau2": r.tau2, "i2": r.i2, "q": r.q, "q_pvalue": r.q_pvalue})
        out = pd.DataFrame(rows)
        out["ci_level"] = self.level
        return out

    def forest_data(self) -> pd.DataFrame:
        """Forest-plot rows on the proportion scale: each study's observed proportion with a Wilson
        interval (exact at 0 and 1), weight percent, and the pooled row with its prediction interval."""
        from hostats.stats.incidence import binomial_ci

        lo, hi = binomial_ci(self.events, self.totals, self.level)
        weights = (100.0 * self.weights / np.sum(self.weights) if self.weights.size
                   else np.full(self.k, np.nan))
        studies = pd.DataFrame({
            "row_type": "study", "label": self.labels, "estimate": self.events / self.totals,
            "ci_lower": lo, "ci_upper": hi,
            "weight_percent": weights, "events": self.events.astype(np.int64),
            "n": self.totals.astype(np.int64), "continuity_corrected": self.corrected,
        })
        pooled = pd.DataFrame([{
            "row_type": "pooled", "label": self.method, "estimate": self.estimate,
            "ci_lower": self.ci_lower, "ci_upper": self.ci_upper, "weight_percent": 100.0,
            "pred_lower": self.pred_lower, "pred_upper": self.pred_upper,
            "events": int(self.events.sum()), "n": int(self.totals.sum()),
        }])
        out = pd.concat([studies, pooled], ignore_index=True)
        out["ci_level"] = self.level
        return out


def _check_counts(x: np.ndarray, n: np.ndarray, labels: list) -> None:
    _check_k(x, n, "events", "totals")
    check_binomial(x, n, labels, "for study", totals_name="totals")


def _expit(x: Any) -> Any:
    return special.expit(x)


def meta_proportions(events: Any, totals: Any, method: str = "REML", transform: str = "logit",
                     level: float = 0.95, labels: Sequence | None = None,
                     continuity: float = 0.5) -> MetaProportionResult:
    """Meta-analysis of single proportions (e.g. recurrence of HO after resection, one per report).

    Estimand: the mean true proportion across studies (random effects: the back-transformed mean of the
    transformed true proportions, i.e. a median-type summary) or the common proportion (``method="FE"``).

    ``transform``:

    - ``"logit"`` (default): log odds ``log(x / (n - x))`` with variance ``1/x + 1/(n - x)``, pooled by
      :func:`meta_effects`. Only studies with 0 or all events get ``continuity`` added to events and
      non-events (metafor's ``to="only0"``); they are named in ``warnings`` and flagged in
      ``forest_data()``. Nothing is added to the other studies.
    - ``"ft"``: the Freeman-Tukey double arcsine (halved, as metafor's ``PFT``; variance 1/(4n + 2)), which
      needs no correction at 0 or n; back-transformed by Miller's (1978) inversion with the harmonic mean of
      the study sizes (metafor's ``transf.ipft.hm``).
    - ``"glmm"``: the exact binomial-normal model (Stijnen, Hamza & Ozdemir 2010): x_i ~ Binomial(n_i,
      expit(mu + u_i)), u_i ~ N(0, tau2), fitted by maximum likelihood with adaptive Gauss-Hermite
      quadrature (81 nodes at each study's own mode and curvature), Newton-Raphson on (mu, log tau) from
      the logit DL fit, and a check of the boundary tau2 = 0 (pooled logistic regression); the SE of mu
      is from the observed information of (mu, tau). No continuity correction is needed. ``method`` must be "REML"/"ML" (both give
      the ML fit, as metafor's ``rma.glmm``) or "FE" (tau2 = 0: pooled logistic regression). Wald CI for mu;
      Q, I2 and H2 are those of the logit inverse-variance model (metafor reports the same Wald-type Q).

    ``estimate``, ``ci_lower``, ``ci_upper``, ``pred_lower`` and ``pred_upper`` are proportions;
    ``estimate_transformed``, ``std_error``, ``tau2``, ``i2``, ``q`` are on the transformed scale.
    """
    level = check_level(level)
    tf = str(transform).lower().replace("-", "").replace("_", "")
    if tf in ("freemantukey", "pft", "doublearcsine"):
        tf = "ft"
    if tf not in ("logit", "ft", "glmm"):
        raise ValueError(f"unknown transform {transform!r}; choose 'logit', 'ft' or 'glmm'")
    x, x_index = as_vector(events, "events")
    n, n_index = as_vector(totals, "totals")
    labs = _labels(x.size, labels, x_index, n_index)
    _check_counts(x, n, labs)
    continuity = float(continuity)
    warnings: list[str] = []

    edge = (x == 0) | (x == n)
    if tf == "glmm":
        return _meta_glmm(x, n, labs, method, level, continuity, warnings)
    key = _method(method)
    if tf == "logit":
        if edge.any():
            if continuity <= 0:
                raise EstimationError(f"study {name_items(edge, labs)} has 0 or all events: the logit is infinite; "
                                      "use continuity > 0, transform='ft' or transform='glmm'")
            warnings.append(f"continuity correction {continuity:g} added to events and non-events of "
                            f"{int(edge.sum())} study(ies) with 0 or all events only: {name_items(edge, labs)}")
        xc = np.where(edge, x + continuity, x)
        mc = np.where(edge, n - x + continuity, n - x)
        y = np.log(xc / mc)
        v = 1.0 / xc + 1.0 / mc
        corrected = edge
    else:
        y = _ft(x, n)
        v = 1.0 / (4.0 * n + 2.0)
        corrected = np.zeros(x.size, dtype=bool)
    res = _build(y, v, labs, key, False, level, warnings, cls=MetaProportionResult, transform=tf,
                 events=x, totals=n, corrected=corrected, continuity=continuity)
    res._amend(estimate_transformed=res.estimate)
    if tf == "logit":
        back = _expit
        res._amend(reference=res.reference + "; logit proportions with continuity correction for 0/n studies "
                   "only (metafor PLO)")
    else:
        n_hm = float(1.0 / np.mean(1.0 / n))
        def back(t: Any) -> Any:
            return ft_back(t, n_hm)
        res._amend(reference=res.reference + "; Freeman MF, Tukey JW. Ann Math Stat 1950;21:607-11; Miller JJ. "
                   "Am Stat 1978;32:138 (back-transformation with the harmonic mean of n)",
                   method=res.method + ", Freeman-Tukey double arcsine")
    _back_transform(res, back)
    return res


def _back_transform(res: MetaProportionResult, back: Any) -> None:
    names = ("estimate", "ci_lower", "ci_upper", "pred_lower", "pred_upper")
    res._amend(**{k: float(back(getattr(res, k))) for k in names})
    table = res._table
    pooled = table["measure"].isin(["pooled", "prediction_interval"])
    table["scale"] = np.where(pooled, "proportion", res.transform)
    table.loc[table["measure"] == "pooled", ["estimate", "ci_lower", "ci_upper"]] = (
        res.estimate, res.ci_lower, res.ci_upper)
    table.loc[table["measure"] == "prediction_interval", ["estimate", "ci_lower", "ci_upper"]] = (
        res.estimate, res.pred_lower, res.pred_upper)
    table.loc[table["measure"] == "pooled", "events"] = int(res.events.sum())
    table.loc[table["measure"] == "pooled", "n"] = int(res.totals.sum())
    extra = pd.DataFrame([{"measure": "pooled_transformed", "estimate": res.estimate_transformed,
                           "std_error": res.std_error, "p_value": res.p_value, "scale": res.transform}])
    out = pd.concat([table, extra], ignore_index=True)
    for column in ("events", "n", "studies"):
        out[column] = out[column].astype("Int64")
    res._table = out


# --------------------------------------------------------------------------------------------- GLMM
# 81 nodes: log-likelihood error < 1e-7 per study for tau <= 3 even at 0 or n events (checked against
# scipy.integrate.quad); the skewed integrand of a 0/n study with tau ~ 10 still errs by ~1e-3
_GH_POINTS = 81
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(_GH_POINTS)
_GH_LOGW = np.log(_GH_WEIGHTS) + _GH_NODES**2   # + z^2 undoes the exp(-z^2) weight function of Gauss-Hermite
_TAU_BOUNDS = (1e-4, 50.0)                      # search range of tau (tau = 0 is checked separately)
_TAU_DIVERGES = 20.0                            # a logit-scale SD beyond this means tau -> infinity


def _glmm_modes(mu: float, tau: float, x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mode u_i and curvature scale s_i of each study's integrand in the random effect u,
    h_i(u) = x_i (mu + u) - n_i log(1 + e^(mu + u)) - u^2 / (2 tau^2).

    h_i is strictly concave and its mode u = tau^2 (x_i - n_i p) lies between 0 (the prior mode) and the
    study's own logit minus mu (within +-tau^2 n_i when x_i is 0 or n_i). Plain Newton from u = 0
    oscillates without converging when that logit is far from mu (e.g. 104/154 against mu = -2.6), so
    each Newton step is kept inside the shrinking bracket and replaced by bisection when it leaves it.
    """
    t2 = tau * tau
    with np.errstate(divide="ignore"):
        own = np.clip(np.log(x) - np.log(n - x) - mu, -t2 * n, t2 * n)
    lo, hi = np.minimum(0.0, own), np.maximum(0.0, own)
    # start: the 0.5-corrected study logit shrunk towards mu by its approximate precision w
    w = 1.0 / (1.0 / (x + 0.5) + 1.0 / (n - x + 0.5))
    y = np.log((x + 0.5) / (n - x + 0.5)) - mu
    u = np.clip(w * t2 * y / (1.0 + w * t2), lo, hi)
    for _ in range(200):
        p = _expit(mu + u)
        info = n * p * (1.0 - p) + 1.0 / t2
        g = x - n * p - u / t2
        lo = np.where(g > 0, u, lo)
        hi = np.where(g < 0, u, hi)
        new = u + g / info
        new = np.where((new < lo) | (new > hi), 0.5 * (lo + hi), new)
        step = np.abs(new - u)
        u = new
        # the mode only centres the quadrature: 1e-9 of the integrand's scale is far more than enough
        if np.all(step <= 1e-9 * np.sqrt(1.0 / info)):
            break
    p = _expit(mu + u)
    return u, 1.0 / np.sqrt(n * p * (1.0 - p) + 1.0 / t2)


def _glmm_quadrature(mu: float, tau: float, x: np.ndarray, n: np.ndarray,
                     derivatives: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """Marginal log-likelihood of the binomial-normal model and, if asked, its gradient and Hessian in
    (mu, log tau), by adaptive Gauss-Hermite quadrature (Liu & Pierce 1994) at each study's own mode
    and curvature. The derivatives are posterior moments of the complete-data score (Louis 1982):
    d log L = E[s | x], d2 log L = E[ds/dtheta | x] + Var[s | x], with the same nodes and weights."""
    t2 = tau * tau
    u, s = _glmm_modes(mu, tau, x, n)
    nodes = u[:, None] + np.sqrt(2.0) * s[:, None] * _GH_NODES[None, :]
    eta = mu + nodes
    h = x[:, None] * eta - n[:, None] * np.logaddexp(0.0, eta) - nodes**2 / (2.0 * t2) + _GH_LOGW[None, :]
    log_int = special.logsumexp(h, axis=1)
    log_binom = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
    loglik = float(np.sum(log_binom + log_int + np.log(np.sqrt(2.0) * s) - 0.5 * np.log(2 * np.pi * t2)))
    if not derivatives:
        return loglik, np.empty(0), np.empty(0)
    post = np.exp(h - log_int[:, None])           # posterior weights of the nodes, each row sums to 1
    p = _expit(eta)
    s_mu = x[:, None] - n[:, None] * p               # complete-data score for mu
    s_lt = nodes**2 / t2 - 1.0                       # ... for log tau
    e_mu, e_lt = np.sum(post * s_mu, axis=1), np.sum(post * s_lt, axis=1)
    h_mm = np.sum(post * (s_mu**2 - n[:, None] * p * (1.0 - p)), axis=1) - e_mu**2
    h_tt = np.sum(post * (s_lt**2 - 2.0 * nodes**2 / t2), axis=1) - e_lt**2
    h_mt = np.sum(post * s_mu * s_lt, axis=1) - e_mu * e_lt
    grad = np.array([e_mu.sum(), e_lt.sum()])
    hess = np.array([[h_mm.sum(), h_mt.sum()], [h_mt.sum(), h_tt.sum()]])
    return loglik, grad, hess


def _glmm_loglik(mu: float, tau: float, x: np.ndarray, n: np.ndarray) -> float:
    """Marginal log-likelihood of the binomial-normal model (binomial coefficients included); tau = 0
    gives the pooled binomial likelihood, its limit."""
    if tau <= 0.0:
        return _binom_loglik(mu, x, n)
    return _glmm_quadrature(mu, tau, x, n)[0]


def _binom_loglik(mu: float, x: np.ndarray, n: np.ndarray) -> float:
    return float(np.sum(stats.binom.logpmf(x, n, _expit(mu))))


def _glmm_ml(x: np.ndarray, n: np.ndarray, mu_start: float, tau2_start: float,
             score0: float) -> tuple[float, float, optimize.OptimizeResult]:
    """ML of (mu, tau) by Newton-Raphson on (mu, log tau) with the analytic (Louis) Hessian, from the logit
    DL fit. Where the Hessian is not negative definite its eigenvalues are replaced by their absolute
    values (still an ascent direction); steps are capped at 1 unit, halved until the likelihood increases,
    and log tau is kept in ``_TAU_BOUNDS``. ``score0`` is d loglik / d tau2 at tau = 0: when it is <= 0 and
    tau shrinks below 0.01 the fit is heading for the boundary tau = 0, which the caller then checks."""
    lb, ub = np.log(_TAU_BOUNDS[0]), np.log(_TAU_BOUNDS[1])
    theta = np.array([mu_start, np.clip(0.5 * np.log(max(tau2_start, 0.01)), lb, ub)])
    ll, grad, hess = _glmm_quadrature(theta[0], np.exp(theta[1]), x, n, derivatives=True)
    nfev, nit, decrement, message = 1, 0, np.inf, "iteration limit reached"
    for _ in range(100):
        nit += 1
        lam, vec = np.linalg.eigh(hess)
        step = vec @ ((vec.T @ grad) / np.maximum(np.abs(lam), 1e-10))
        decrement = float(grad @ step)
        if decrement < 1e-12:
            message = "converged (Newton decrement < 1e-12)"
            break
        step *= min(1.0, 1.0 / np.max(np.abs(step)))
        for _ in range(30):
            trial = theta + step
            trial[1] = np.clip(trial[1], lb, ub)
            ll_t, grad_t, hess_t = _glmm_quadrature(trial[0], np.exp(trial[1]), x, n, derivatives=True)
            nfev += 1
            if ll_t > ll:
                break
            step = step / 2.0
        else:
            message = "no further increase (maximum reached to numerical precision)"
            break
        theta, ll, grad, hess = trial, ll_t, grad_t, hess_t
        if theta[1] <= lb or theta[1] >= ub or (score0 <= 0 and theta[1] < np.log(0.01) and step[1] < 0):
            message = "stopped at the search bound of tau"
            break
    # success: within 1e-6 of the local quadratic maximum, or (when the line search stalls, as at tau ~ 8
    # with 0/n studies where the quadrature errs by ~1e-3) within 1e-3; the caller warns about the latter
    stalled = message.startswith("no further")
    opt = optimize.OptimizeResult(x=theta, fun=-ll, jac=-grad, hess=-hess, nit=nit, nfev=nfev,
                                  success=decrement < 1e-6 or message.startswith("stopped")
                                  or (stalled and decrement < 1e-3), message=message,
                                  decrement=decrement)
    return float(theta[0]), float(np.exp(theta[1])), opt


def _meta_glmm(x: np.ndarray, n: np.ndarray, labs: list, method: str, level: float, continuity: float,
               warnings: list[str]) -> MetaProportionResult:
    key = str(method).upper()
    if key not in ("REML", "ML", "FE", "EE"):
        raise ValueError(f"transform='glmm' is fitted by maximum likelihood: method must be 'ML' (or 'REML', "
                         f"treated as ML as in metafor's rma.glmm) or 'FE', got {method!r}")
    fixed = key in ("FE", "EE")
    total_x, total_n = x.sum(), n.sum()
    if total_x == 0 or total_x == total_n:
        raise EstimationError("no study has an event (or every patient has one): the pooled log odds is "
                              "infinite; report the exact binomial interval of the pooled count instead")
    # tau = 0: pooled logistic regression, whose MLE and information are closed-form
    mu_fe = float(np.log(total_x / (total_n - total_x)))
    ll_fe = _binom_loglik(mu_fe, x, n)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    # logit inverse-variance model (0.5 added to 0/n studies only): Wald-type Q, I2, H2 as metafor's
    # rma.glmm prints them, and the DL fit as the GLMM's starting value
    edge = (x == 0) | (x == n)
    xc = np.where(edge, x + continuity if continuity > 0 else x + 0.5, x)
    mc = np.where(edge, n - x + continuity if continuity > 0 else n - x + 0.5, n - x)
    y, v = np.log(xc / mc), 1.0 / xc + 1.0 / mc
    f_fe = _fit(y, v, "FE", False, level)
    mu_hat, tau_hat, loglik, opt = mu_fe, 0.0, ll_fe, None
    if not fixed:
        f_dl = _fit(y, v, "DL", False, level)
        p_fe = total_x / total_n
        score0 = 0.5 * float(np.sum((x - n * p_fe) ** 2 - n * p_fe * (1 - p_fe)))
        mu_ml, tau_ml, opt = _glmm_ml(x, n, f_dl.estimate, f_dl.tau2, score0)
        if tau_ml > _TAU_DIVERGES:
            raise EstimationError(f"GLMM: the ML estimate of tau2 exceeds {_TAU_DIVERGES**2:g} on the logit scale "
                                  "(it runs to infinity when the studies' proportions are at 0 and 1 or nearly "
                                  "so); the between-study variance is not estimable, use transform='logit' or "
                                  "'ft'")
        if not (np.isfinite(opt.fun) and opt.success):
            raise EstimationError(f"GLMM: the likelihood could not be maximised ({opt.message}; gradient "
                                  f"{np.array2string(-opt.jac, precision=2)} at mu = {mu_ml:.4g}, tau = {tau_ml:.4g})")
        if opt.decrement >= 1e-6 and not opt.message.startswith("stopped"):
            warnings.append(f"GLMM: the maximum is located only to within {opt.decrement:.0e} in log-likelihood "
                            f"(quadrature precision at tau = {tau_ml:.3g}); the estimates are approximate")
        # boundary check: the fit at tau = 0 (pooled logistic) wins unless the interior fit is better
        if -opt.fun > ll_fe + 1e-9:
            mu_hat, tau_hat, loglik = mu_ml, tau_ml, -float(opt.fun)
        else:
            warnings.append("GLMM: tau2 estimated at the boundary 0 (no detectable heterogeneity)")
    se = _glmm_se(mu_hat, tau_hat, x, n)
    tau2 = tau_hat**2
    s2 = _typical_variance(v)
    i2 = 100.0 * tau2 / (tau2 + s2) if not fixed else f_fe.i2
    h2 = (tau2 + s2) / s2 if not fixed else f_fe.h2
    p_value = float(2 * stats.norm.sf(abs(mu_hat / se)))
    half_pi = z * np.sqrt(se**2 + tau2)
    name = ("binomial-normal random-effects model (GLMM, ML, adaptive Gauss-Hermite quadrature)" if not fixed
            else "fixed-effect logistic model (pooled binomial likelihood)")
    reference = ("Stijnen T, Hamza TH, Ozdemir P. Stat Med 2010;29:3046-67; Hamza TH, van Houwelingen HC, "
                 "Stijnen T. J Clin Epidemiol 2008;61:41-51; Liu Q, Pierce DA. Biometrika 1994;81:624-9 "
                 "(adaptive Gauss-Hermite quadrature); Louis TA. J R Stat Soc B 1982;44:226-33 "
                 "(observed information)")
    res = MetaProportionResult(
        pd.DataFrame(), level=level, method=name, reference=reference, fitted=opt, warnings=warnings,
        estimate=mu_hat, ci_lower=mu_hat - z * se, ci_upper=mu_hat + z * se, std_error=se, p_value=p_value,
        tau2=tau2, tau2_ci=(float("nan"), float("nan")), i2=float(i2), h2=float(h2), q=f_fe.q,
        q_pvalue=f_fe.q_pvalue, pred_lower=mu_hat - half_pi, pred_upper=mu_hat + half_pi, k=int(x.size),
        yi=y, vi=v, labels=labs, weights=np.empty(0), tau2_method="FE" if fixed else "ML", transform="glmm",
        events=x, totals=n, corrected=np.zeros(x.size, dtype=bool), continuity=continuity, loglik=loglik)
    res._table = _summary_table(res, {})
    res._table.loc[res._table["measure"] == "tau2", ["ci_lower", "ci_upper"]] = np.nan
    res._table.loc[res._table["measure"].isin(["i2_percent", "h2"]), ["ci_lower", "ci_upper"]] = np.nan
    res._amend(estimate_transformed=mu_hat)
    _back_transform(res, _expit)
    return res


def _glmm_se(mu: float, tau: float, x: np.ndarray, n: np.ndarray) -> float:
    """SE of mu: the (mu, mu) element of the inverse observed information of (mu, log tau), from the
    analytic Louis Hessian (the same SE whatever the scale of tau); at tau = 0 the pooled logistic one."""
    if tau == 0.0:
        p = _expit(mu)
        return float(1.0 / np.sqrt(np.sum(n) * p * (1 - p)))
    info = -_glmm_quadrature(mu, tau, x, n, derivatives=True)[2]
    if not np.all(np.isfinite(info)) or np.any(np.linalg.eigvalsh(info) <= 0):
        raise EstimationError("GLMM: the observed information matrix of (mu, tau) is not positive definite "
                              "at the estimate; the SE of the pooled logit is not identifiable on these data")
    return float(np.sqrt(np.linalg.inv(info)[0, 0]))
