"""Meta-analysis of effects: inverse-variance pooling of study estimates ``yi`` with sampling variances ``vi``
(log risk ratios, log odds ratios, mean differences ...) by a fixed-effect (equal-effects) model or a
random-effects model with tau2 estimated by DerSimonian-Laird, REML or Paule-Mandel, optionally with the
Knapp-Hartung adjustment (:func:`meta_effects`); the fit and the result class shared by
:mod:`hostats.stats.meta.proportions`.

The formulas follow R's metafor (Viechtbauer W. J Stat Softw 2010;36(3)), which the tests reproduce.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hostats.errors import EstimationError
from hostats.stats.core.results import Result, check_level
from hostats.stats.core.validate import as_vector, item_labels, name_items, require_finite

_METHODS = ("FE", "DL", "REML", "PM")
_METHOD_NAMES = {
    "FE": "fixed-effect (inverse-variance) model",
    "DL": "random-effects model, DerSimonian-Laird tau2",
    "REML": "random-effects model, REML tau2",
    "PM": "random-effects model, Paule-Mandel tau2",
}
_REFERENCES = {
    "FE": "Hedges LV, Olkin I. Statistical Methods for Meta-Analysis. Academic Press 1985",
    "DL": "DerSimonian R, Laird N. Control Clin Trials 1986;7:177-88",
    "REML": "Viechtbauer W. J Educ Behav Stat 2005;30:261-93 (REML by Fisher scoring, as metafor)",
    "PM": "Paule RC, Mandel J. J Res Natl Bur Stand 1982;87:377-85; DerSimonian R, Kacker R. "
          "Contemp Clin Trials 2007;28:105-14",
}
_KH_REFERENCE = "Knapp G, Hartung J. Stat Med 2003;22:2693-710 (t with k-1 df, scale factor not truncated)"
_QPROFILE_REFERENCE = "Viechtbauer W. Stat Med 2007;26:37-52 (Q-profile CI for tau2)"
_METAFOR_REFERENCE = "Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw 2010;36(3)"


# --------------------------------------------------------------------------------------------- inputs
def _labels(k: int, labels: Sequence | None, *indexes: pd.Index | None) -> list:
    # a RangeIndex is no label: studies are then numbered from 1, as metafor does
    return item_labels(k, labels, indexes, list(range(1, k + 1)), "labels", "studies", skip_range_index=True)


def _method(method: str) -> str:
    key = str(method).upper()
    if key == "EE":  # metafor's name for the equal-effects (fixed-effect) model
        key = "FE"
    if key not in _METHODS:
        raise ValueError(f"unknown meta-analysis method {method!r}; choose one of {list(_METHODS)}")
    return key


def _check_k(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.size != b.size:
        raise ValueError(f"{a_name} has {a.size} values but {b_name} has {b.size}")
    if a.size < 2:
        raise ValueError(f"a meta-analysis needs at least 2 studies, got {a.size}")


def _check_effects(yi: np.ndarray, vi: np.ndarray, labels: list) -> None:
    _check_k(yi, vi, "yi", "vi")
    require_finite(yi, labels, "yi (effect estimate)", "for study")
    require_finite(vi, labels, "vi (sampling variance)", "for study")
    bad = vi <= 0
    if bad.any():
        raise ValueError(f"vi (sampling variance) must be > 0; it is not for study {name_items(bad, labels)}")


# --------------------------------------------------------------------------------------------- core fit
def _tau2_dl(yi: np.ndarray, vi: np.ndarray) -> float:
    w = 1.0 / vi
    mu = np.sum(w * yi) / np.sum(w)
    q = np.sum(w * (yi - mu) ** 2)
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    return max(0.0, (q - (yi.size - 1)) / c)


def _typical_variance(vi: np.ndarray) -> float:
    """The "typical" within-study variance s2 of Higgins & Thompson (2002), behind metafor's I2 and H2."""
    w = 1.0 / vi
    return float((vi.size - 1) / (np.sum(w) - np.sum(w**2) / np.sum(w)))


def _q_gen(tau2: float, yi: np.ndarray, vi: np.ndarray) -> float:
    """Generalised Q statistic at tau2: sum (y - mu_tau2)^2 / (v + tau2), chi2 with k-1 df at the truth."""
    w = 1.0 / (vi + tau2)
    mu = np.sum(w * yi) / np.sum(w)
    return float(np.sum(w * (yi - mu) ** 2))


def _solve_q(target: float, yi: np.ndarray, vi: np.ndarray) -> float:
    """tau2 >= 0 with Q_gen(tau2) = target (Q_gen decreases in tau2); 0 if Q_gen(0) <= target."""
    if _q_gen(0.0, yi, vi) <= target:
        return 0.0
    hi = max(1.0, 10.0 * float(np.var(yi)) + float(np.max(vi)))
    while _q_gen(hi, yi, vi) > target:
        hi *= 10.0
        if hi > 1e12:
            raise EstimationError("the generalised Q equation has no finite root (tau2 diverges)")
    return float(optimize.brentq(lambda t: _q_gen(t, yi, vi) - target, 0.0, hi, xtol=1e-12, rtol=1e-12))


def _reml_loglik(t: float, yi: np.ndarray, vi: np.ndarray) -> float:
    """Restricted log-likelihood of the random-effects model at tau2 = t (up to a constant)."""
    w = 1.0 / (vi + t)
    sw = np.sum(w)
    mu = np.sum(w * yi) / sw
    return float(-0.5 * (np.sum(np.log(vi + t)) + np.log(sw) + np.sum(w * (yi - mu) ** 2)))


def _tau2_reml(yi: np.ndarray, vi: np.ndarray, tol: float = 1e-10, maxiter: int = 100) -> float:
    """REML tau2: Fisher scoring with step halving, truncated at 0 (metafor's algorithm for rma.uni); if
    scoring does not converge, Brent's method on the restricted log-likelihood over [0, upper]."""
    def score_info(t: float) -> tuple[float, float]:
        w = 1.0 / (vi + t)
        sw = np.sum(w)
        mu = np.sum(w * yi) / sw
        py = w * (yi - mu)                               # P y with P = W - w w'/sum(w)
        tr_p = sw - np.sum(w**2) / sw
        tr_pp = np.sum(w**2) - 2.0 * np.sum(w**3) / sw + np.sum(w**2) ** 2 / sw**2
        return 0.5 * (np.sum(py**2) - tr_p), 0.5 * tr_pp

    t = _tau2_dl(yi, vi)
    converged = False
    for _ in range(maxiter):
        score, info = score_info(t)
        new = max(0.0, t + score / info)                 # truncation at 0, as metafor
        if abs(new - t) < tol * max(1.0, t):
            t, converged = new, True
            break
        t = new
    # The restricted likelihood can have two local maxima (one at 0); a log-spaced grid guards the
    # scoring result, and Brent's method refines whichever region is best.
    upper = 100.0 * (float(np.var(yi)) + float(np.max(vi)))
    grid = np.concatenate([[0.0], np.geomspace(1e-6 * upper, upper, 80)])
    lls = np.array([_reml_loglik(g, yi, vi) for g in grid])
    best = int(np.argmax(lls))
    if not converged or lls[best] > _reml_loglik(t, yi, vi) + 1e-10:
        if best == 0:
            t = 0.0
        else:
            lo, hi = grid[best - 1], grid[min(best + 1, grid.size - 1)]
            r = optimize.minimize_scalar(lambda x: -_reml_loglik(x, yi, vi), bounds=(lo, hi),
                                         method="bounded", options={"xatol": tol * max(1.0, hi)})
            t = float(r.x)
        if best == grid.size - 1:
            raise EstimationError("REML estimation of tau2 diverges (restricted likelihood keeps rising)")
    return float(t)


@dataclass
class _Fit:
    estimate: float
    std_error: float
    ci_lower: float
    ci_upper: float
    p_value: float
    tau2: float
    q: float
    q_pvalue: float
    i2: float
    h2: float
    pred_lower: float
    pred_upper: float
    weights: np.ndarray
    scale_kh: float


def _fit(yi: np.ndarray, vi: np.ndarray, method: str, knapp_hartung: bool, level: float) -> _Fit:
    k = yi.size
    w_fe = 1.0 / vi
    mu_fe = np.sum(w_fe * yi) / np.sum(w_fe)
    q = float(np.sum(w_fe * (yi - mu_fe) ** 2))
    q_p = float(stats.chi2.sf(q, k - 1))
    if method == "FE":
        tau2 = 0.0
    elif method == "DL":
        tau2 = _tau2_dl(yi, vi)
    elif method == "PM":
        tau2 = _solve_q(k - 1.0, yi, vi)
    else:
        tau2 = _tau2_reml(yi, vi)
    w = 1.0 / (vi + tau2)
    mu = float(np.sum(w * yi) / np.sum(w))
    se = float(np.sqrt(1.0 / np.sum(w)))
    scale = float(np.sum(w * (yi - mu) ** 2) / (k - 1))
    if knapp_hartung:
        se = se * np.sqrt(scale)
        crit = float(stats.t.ppf(0.5 + level / 2.0, k - 1))
        p = float(2.0 * stats.t.sf(abs(mu / se), k - 1)) if se > 0 else float("nan")
    else:
        crit = float(stats.norm.ppf(0.5 + level / 2.0))
        p = float(2.0 * stats.norm.sf(abs(mu / se)))
    # I2 and H2 as metafor: from tau2 and the "typical" within-study variance s2 (Higgins & Thompson
    # 2002); for the fixed-effect model from Q.
    s2 = _typical_variance(vi)
    if method == "FE":
        i2 = max(0.0, 100.0 * (q - (k - 1)) / q) if q > 0 else 0.0
        h2 = q / (k - 1)
    else:
        i2 = 100.0 * tau2 / (tau2 + s2)
        h2 = (tau2 + s2) / s2
    half_pi = crit * np.sqrt(se**2 + tau2)
    return _Fit(estimate=mu, std_error=se, ci_lower=mu - crit * se, ci_upper=mu + crit * se, p_value=p,
                tau2=tau2, q=q, q_pvalue=q_p, i2=float(i2), h2=float(h2), pred_lower=mu - half_pi,
                pred_upper=mu + half_pi, weights=w, scale_kh=scale)


def _tau2_ci(yi: np.ndarray, vi: np.ndarray, level: float) -> tuple[float, float]:
    """Q-profile CI (Viechtbauer 2007): the tau2 where Q_gen crosses the chi2_{k-1} quantiles."""
    k = yi.size
    alpha = 1.0 - level
    lower = _solve_q(float(stats.chi2.ppf(1.0 - alpha / 2.0, k - 1)), yi, vi)
    upper = _solve_q(float(stats.chi2.ppf(alpha / 2.0, k - 1)), yi, vi)
    return lower, upper


# --------------------------------------------------------------------------------------------- results
@dataclass(repr=False)  # keep Result's repr: the table
class MetaResult(Result):
    """A pooled estimate with heterogeneity statistics (see :func:`meta_effects`).

    Attributes are on the analysis scale (e.g. log risk ratio). ``i2`` is in percent (0-100) as metafor
    prints it; ``h2`` = total / sampling variance; ``tau2_ci`` the Q-profile interval.
    """

    estimate: float = float("nan")
    ci_lower: float = float("nan")
    ci_upper: float = float("nan")
    std_error: float = float("nan")
    p_value: float = float("nan")
    tau2: float = float("nan")
    tau2_ci: tuple[float, float] = (float("nan"), float("nan"))
    i2: float = float("nan")
    i2_ci: tuple[float, float] = (float("nan"), float("nan"))
    h2: float = float("nan")
    h2_ci: tuple[float, float] = (float("nan"), float("nan"))
    q: float = float("nan")
    q_pvalue: float = float("nan")
    pred_lower: float = float("nan")
    pred_upper: float = float("nan")
    k: int = 0
    knapp_hartung: bool = False
    yi: np.ndarray = field(default_factory=lambda: np.empty(0))
    vi: np.ndarray = field(default_factory=lambda: np.empty(0))
    labels: list = field(default_factory=list)
    weights: np.ndarray = field(default_factory=lambda: np.empty(0))
    tau2_method: str = "REML"

    @property
    def n(self) -> int | None:
        """None: pooled study estimates carry no patient count (``k`` is the number of studies)."""
        return None

    def leave_one_out(self) -> pd.DataFrame:
        """Refit without each study in turn (same method and adjustment), as metafor's ``leave1out``.

        Columns: ``omitted`` (label), estimate, std_error, ci_lower, ci_upper, p_value, q, q_pvalue, tau2,
        i2, h2. Needs k >= 3 (two studies must remain).
        """
        if self.k < 3:
            raise EstimationError("leave-one-out needs at least 3 studies (2 must remain)")
        rows = []
        keep = np.ones(self.k, dtype=bool)
        for i in range(self.k):
            keep[:] = True
            keep[i] = False
            f = _fit(self.yi[keep], self.vi[keep], self.tau2_method, self.knapp_hartung, self.level)
            rows.append({"omitted": self.labels[i], "estimate": f.estimate, "std_error": f.std_error,
                         "ci_lower": f.ci_lower, "ci_upper": f.ci_upper, "p_value": f.p_value, "q": f.q,
                         "q_pvalue": f.q_pvalue, "tau2": f.tau2, "i2": f.i2, "h2": f.h2})
        out = pd.DataFrame(rows)
        out["ci_level"] = self.level
        return out

    def forest_data(self) -> pd.DataFrame:
        """The numbers a forest plot is drawn from: one row per study, then the pooled row.

        Study rows: ``label``, ``estimate`` (yi), ``std_error`` (sqrt vi), ``ci_lower``/``ci_upper`` (normal
        interval yi +/- z sqrt(vi), as metafor's forest), ``weight_percent`` (the model's inverse-variance
        weight, in percent of the total). The pooled row (``row_type == "pooled"``) carries the pooled
        estimate, its CI and the prediction interval (``pred_lower``/``pred_upper``).
        """
        z = float(stats.norm.ppf(0.5 + self.level / 2.0))
        se = np.sqrt(self.vi)
        studies = pd.DataFrame({
            "row_type": "study", "label": self.labels, "estimate": self.yi, "std_error": se,
            "ci_lower": self.yi - z * se, "ci_upper": self.yi + z * se,
            "weight_percent": 100.0 * self.weights / np.sum(self.weights),
        })
        pooled = pd.DataFrame([{
            "row_type": "pooled", "label": self.method, "estimate": self.estimate,
            "std_error": self.std_error, "ci_lower": self.ci_lower, "ci_upper": self.ci_upper,
            "weight_percent": 100.0, "pred_lower": self.pred_lower, "pred_upper": self.pred_upper,
        }])
        out = pd.concat([studies, pooled], ignore_index=True)
        out["ci_level"] = self.level
        return out


def _summary_table(r: MetaResult, extra: dict | None = None) -> pd.DataFrame:
    rows = [
        {"measure": "pooled", "estimate": r.estimate, "ci_lower": r.ci_lower, "ci_upper": r.ci_upper,
         "p_value": r.p_value, "std_error": r.std_error, "studies": r.k},
        {"measure": "prediction_interval", "estimate": r.estimate, "ci_lower": r.pred_lower,
         "ci_upper": r.pred_upper},
        {"measure": "tau2", "estimate": r.tau2, "ci_lower": r.tau2_ci[0], "ci_upper": r.tau2_ci[1]},
        {"measure": "i2_percent", "estimate": r.i2, "ci_lower": r.i2_ci[0], "ci_upper": r.i2_ci[1]},
        {"measure": "h2", "estimate": r.h2, "ci_lower": r.h2_ci[0], "ci_upper": r.h2_ci[1]},
        {"measure": "q", "estimate": r.q, "p_value": r.q_pvalue, "studies": r.k},
    ]
    out = pd.DataFrame(rows)
    out["studies"] = out["studies"].astype("Int64")
    for key, value in (extra or {}).items():
        out[key] = value
    return out


def _heterogeneity_cis(yi: np.ndarray, vi: np.ndarray, level: float) -> tuple[tuple, tuple, tuple]:
    lo, hi = _tau2_ci(yi, vi, level)
    s2 = _typical_variance(vi)
    i2 = (float(100.0 * lo / (lo + s2)), float(100.0 * hi / (hi + s2)))
    h2 = (float((lo + s2) / s2), float((hi + s2) / s2))
    return (lo, hi), i2, h2


def meta_effects(yi: Any, vi: Any, method: str = "REML", knapp_hartung: bool = False,
                 level: float = 0.95, labels: Sequence | None = None) -> MetaResult:
    """Inverse-variance meta-analysis of study estimates ``yi`` with sampling variances ``vi``.

    Estimand: the mean of the distribution of true study effects (random effects), or the common effect
    (``method="FE"``), on the scale of ``yi`` (e.g. log risk ratio: exponentiate estimate and bounds).

    Methods: ``"FE"`` (alias ``"EE"``) fixed-effect; random effects with tau2 by ``"DL"``
    (DerSimonian-Laird moment estimator), ``"REML"`` (restricted maximum likelihood by Fisher scoring,
    truncated at 0, as metafor's default) or ``"PM"`` (Paule-Mandel: generalised Q = k - 1). The pooled
    estimate uses weights 1/(vi + tau2) and a normal (z) interval; ``knapp_hartung=True`` multiplies the
    variance by sum w (y - mu)^2 / (k - 1) and uses t with k - 1 df (metafor's ``test="knha"``; the scale
    factor is not truncated at 1, as in metafor's default).

    Heterogeneity: Cochran's Q (fixed-effect weights) with its chi2_{k-1} p-value; tau2 with its
    Q-profile CI (Viechtbauer 2007, as metafor's ``confint``); I2 (percent) and H2 computed from tau2 and the
    typical within-study variance, as metafor (Higgins & Thompson 2002); their CIs from the tau2 CI.

    Prediction interval (the range of true effects in a new setting), as metafor's ``predict``:
    mu +/- z * sqrt(SE^2 + tau2), with t_{k-1} instead of z under Knapp-Hartung (W. Viechtbauer,
    R-sig-meta-analysis, 5 June 2018; Higgins, Thompson & Spiegelhalter 2009 suggest t_{k-2} instead).

    Returns a :class:`MetaResult` with ``.table()``, ``.leave_one_out()`` and ``.forest_data()``.
    Raises ``ValueError`` for fewer than 2 studies, missing values or vi <= 0 (naming the study).
    """
    level = check_level(level)
    key = _method(method)
    y, y_index = as_vector(yi, "yi")
    v, v_index = as_vector(vi, "vi")
    labs = _labels(y.size, labels, y_index, v_index)
    _check_effects(y, v, labs)
    warnings: list[str] = []
    if knapp_hartung and key == "FE":
        warnings.append("the Knapp-Hartung adjustment is meant for random-effects models, not fixed-effect")
    return _build(y, v, labs, key, bool(knapp_hartung), level, warnings)


def _build(y: np.ndarray, v: np.ndarray, labs: list, key: str, kh: bool, level: float,
           warnings: list[str], cls: type = MetaResult, **extra: Any) -> Any:
    f = _fit(y, v, key, kh, level)
    tau2_ci, i2_ci, h2_ci = _heterogeneity_cis(y, v, level)
    if f.tau2 > 0 and y.size < 5:
        warnings.append(f"only {y.size} studies: tau2 and the prediction interval are very imprecise")
    name = _METHOD_NAMES[key] + (" with Knapp-Hartung adjustment" if kh else "")
    reference = "; ".join(filter(None, [_REFERENCES[key], _KH_REFERENCE if kh else "", _QPROFILE_REFERENCE,
                                        _METAFOR_REFERENCE]))
    result = cls(pd.DataFrame(), level=level, method=name, reference=reference, fitted=None,
                 warnings=warnings, estimate=f.estimate, ci_lower=f.ci_lower, ci_upper=f.ci_upper,
                 std_error=f.std_error, p_value=f.p_value, tau2=f.tau2, tau2_ci=tau2_ci, i2=f.i2,
                 i2_ci=i2_ci, h2=f.h2, h2_ci=h2_ci, q=f.q, q_pvalue=f.q_pvalue, pred_lower=f.pred_lower,
                 pred_upper=f.pred_upper, k=int(y.size), knapp_hartung=kh, yi=y, vi=v, labels=labs,
                 weights=f.weights, tau2_method=key, **extra)
    result._table = _summary_table(result)
    return result
