"""Meta-analysis: inverse-variance pooling of effects and proportions, and multi-site pooling from aggregates.

Three public functions:

- :func:`meta_effects` pools study estimates ``yi`` with sampling variances ``vi`` (log risk ratios, log odds
  ratios, mean differences ...) by a fixed-effect (equal-effects) model or a random-effects model with
  tau2 estimated by DerSimonian-Laird, REML or Paule-Mandel, optionally with the Knapp-Hartung adjustment.
- :func:`meta_proportions` pools proportions (e.g. HO recurrence after resection, one proportion per report)
  on the logit scale, by the Freeman-Tukey double arcsine, or by the exact binomial-normal model (GLMM).
- :func:`site_summary` gives the non-identifying numbers a hospital may share (counts, person-time, log-OR
  and its variance) so that several sites can run one study without moving patient rows.

The formulas follow R's metafor (Viechtbauer W. J Stat Softw 2010;36(3)), which the tests reproduce.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from hostats.errors import DataError, EstimationError
from hostats.stats._result import Result, check_level
from hostats.stats._validate import as_vector, check_binomial, item_labels, name_items, require_finite

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
    res.estimate_transformed = res.estimate
    if tf == "logit":
        back = _expit
        res.reference += "; logit proportions with continuity correction for 0/n studies only (metafor PLO)"
    else:
        n_hm = float(1.0 / np.mean(1.0 / n))
        def back(t: Any) -> Any:
            return ft_back(t, n_hm)
        res.reference += ("; Freeman MF, Tukey JW. Ann Math Stat 1950;21:607-11; Miller JJ. Am Stat "
                          "1978;32:138 (back-transformation with the harmonic mean of n)")
        res.method += ", Freeman-Tukey double arcsine"
    _back_transform(res, back)
    return res


def _back_transform(res: MetaProportionResult, back: Any) -> None:
    res.estimate, res.ci_lower, res.ci_upper, res.pred_lower, res.pred_upper = (
        float(back(v)) for v in (res.estimate, res.ci_lower, res.ci_upper, res.pred_lower, res.pred_upper))
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
    res.estimate_transformed = mu_hat
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


# --------------------------------------------------------------------------------------------- sites
def _binary(series: pd.Series, column: str) -> np.ndarray:
    s = series
    if s.isna().any():
        rows = name_items(s.isna(), s.index, quote=False)
        raise DataError(f"{column} is missing in row(s) {rows}; a site summary needs a value for every row",
                        column=column)
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.astype(bool).to_numpy()
    vals = pd.to_numeric(s, errors="coerce")
    bad = vals.isna() | ~vals.isin([0, 1])
    if bad.any():
        rows = name_items(bad, s.index, quote=False)
        raise DataError(f"{column} must be 0/1 or true/false; not so in row(s) {rows}", column=column)
    return vals.to_numpy() == 1


def site_summary(data: pd.DataFrame, site: str, outcome: str, exposure: str | None = None,
                 time: str | None = None, *, exposed: Any = True, reference: Any = None,
                 continuity: float = 0.5) -> pd.DataFrame:
    """The aggregate, non-identifying numbers one site shares for a multi-site meta-analysis.

    One row per site (``site`` column): ``n`` (patients/episodes), ``events`` (``outcome`` true),
    ``person_time`` (sum of ``time``, when given, in its unit). With a binary ``exposure`` (bool or 0/1, or
    any column with ``exposed=`` the exposed value and ``reference=`` the comparison value; other values are
    left out and counted in ``n_other_exposure``): the 2x2 counts ``events_exposed``, ``n_exposed``,
    ``events_reference``, ``n_reference`` and ``log_or`` with its variance ``var_log_or`` (Woolf:
    1/a + 1/b + 1/c + 1/d, the inverse information of the per-site logistic regression on the exposure, so
    identical to fitting that regression to the rows); a site with a zero cell gets ``continuity`` added to
    its four cells and is flagged in ``continuity_corrected``.

    Pool the rows with ``meta_proportions(s.events, s.n, labels=s.site)`` or
    ``meta_effects(s.log_or, s.var_log_or, labels=s.site)``: the answer is the one the same functions give
    when fed the quantities computed from the sites' individual rows (tests/test_meta_sites.py).

    The counts are exact because pooling needs them; suppress small cells (1-4) before publishing the table
    itself. No identifier or date leaves the site.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    needed = [c for c in (site, outcome, exposure, time) if c is not None]
    for column in needed:
        if column not in data.columns:
            raise DataError(f"column {column!r} is not in the data (columns: {list(data.columns)[:12]})",
                            column=column)
    if data.empty:
        raise DataError("the data have no rows", column=site)
    if data[site].isna().any():
        rows = name_items(data[site].isna(), data.index, quote=False)
        raise DataError(f"site is missing in row(s) {rows}", column=site)
    frame = pd.DataFrame({"site": data[site].astype(str).to_numpy(),
                          "event": _binary(data[outcome], outcome)}, index=data.index)
    if time is not None:
        t = pd.to_numeric(data[time], errors="coerce")
        bad = t.isna() | ~np.isfinite(t) | (t < 0)
        if bad.any():
            rows = name_items(bad, data.index, quote=False)
            raise DataError(f"{time} must be a non-negative number; not so in row(s) {rows}", column=time)
        frame["time"] = t.to_numpy(dtype=float)
    grouped = frame.groupby("site", sort=True)
    out = pd.DataFrame({"n": grouped.size(), "events": grouped["event"].sum().astype(np.int64)})
    if time is not None:
        out["person_time"] = grouped["time"].sum()
    if exposure is not None:
        col = data[exposure]
        if reference is None and exposed is True:
            is_exp = _binary(col, exposure)
            is_ref = ~is_exp
        else:
            if col.isna().any():
                rows = name_items(col.isna(), data.index, quote=False)
                raise DataError(f"{exposure} is missing in row(s) {rows}", column=exposure)
            is_exp = (col == exposed).to_numpy()
            is_ref = (col == reference).to_numpy() if reference is not None else ~is_exp
            if not is_exp.any():
                raise DataError(f"no row has {exposure} == {exposed!r}", column=exposure)
        frame["exp"], frame["ref"] = is_exp, is_ref
        frame["a"] = frame["event"] & frame["exp"]
        frame["c"] = frame["event"] & frame["ref"]
        g = frame.groupby("site", sort=True)
        out["events_exposed"] = g["a"].sum().astype(np.int64)
        out["n_exposed"] = g["exp"].sum().astype(np.int64)
        out["events_reference"] = g["c"].sum().astype(np.int64)
        out["n_reference"] = g["ref"].sum().astype(np.int64)
        out["n_other_exposure"] = out["n"] - out["n_exposed"] - out["n_reference"]
        a = out["events_exposed"].to_numpy(float)
        b = out["n_exposed"].to_numpy(float) - a
        c = out["events_reference"].to_numpy(float)
        d = out["n_reference"].to_numpy(float) - c
        empty_arm = (out["n_exposed"].to_numpy() == 0) | (out["n_reference"].to_numpy() == 0)
        zero = ((a == 0) | (b == 0) | (c == 0) | (d == 0)) & ~empty_arm
        add = np.where(zero, float(continuity), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_or = np.log(((a + add) * (d + add)) / ((b + add) * (c + add)))
            var = 1 / (a + add) + 1 / (b + add) + 1 / (c + add) + 1 / (d + add)
        out["log_or"] = np.where(empty_arm, np.nan, log_or)
        out["var_log_or"] = np.where(empty_arm, np.nan, var)
        out["continuity_corrected"] = zero
        out["log_or_note"] = np.where(empty_arm, "one exposure group empty at this site: no log-OR",
                                      np.where(zero, f"zero cell: {continuity:g} added to each cell", ""))
    return out.reset_index()
