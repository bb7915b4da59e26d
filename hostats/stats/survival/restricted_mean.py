"""Restricted mean survival time (RMST) and restricted mean time lost (RMTL), crude, weighted and
IPTW-adjusted, with their differences and ratios between groups.

Estimands (for a horizon tau): RMST = E[min(T, tau)] = int_0^tau S(s) ds, the expected event-free time
within tau; RMTL = tau - RMST = int_0^tau (1 - S(s)) ds, the expected time lost before tau. With competing
events the time lost splits by cause: RMTL_k = int_0^tau F_k(s) ds = E[(tau - min(T, tau)) 1(cause = k)],
the expected time within tau spent after an event of cause k (Andersen PK. Decomposition of number of
life years lost according to causes of death. Stat Med 2013;32:5278-5285). Both stay interpretable under
censoring and competing death, and need no proportional hazards.

Method: the step-function integrals of the Kaplan-Meier S and the Aalen-Johansen F_k, and standard errors
from the infinitesimal jackknife (IJ): the exact derivative of the estimate with respect to each
observation's weight, phi_i, and var = sum_i (w_i phi_i)^2. phi_i is a sum over the distinct times
of martingale increments dM_i(t_j) times fixed coefficients, so it is computed for all n rows by one sort
and cumulative sums.

* Without weights the IJ variance of the Kaplan-Meier RMST is exactly the Greenwood-type variance
  sum_j A_j^2 d_j / (Y_j (Y_j - d_j)), A_j = int_{t_j}^tau S (the increments dM_i are orthogonal across
  times), which is what R ``print(survfit(...), rmean = tau)`` and ``survRM2::rmst2`` report.
* The Aalen-Johansen RMTL_k (``cause=k``) has the IJ variance of R's multi-state
  ``survfit(Surv(t, factor(status)) ~ g, influence = TRUE)`` printed with ``rmean = tau``.
* With ``weights`` (e.g. IPTW) the same IJ variance with w_i phi_i, as survfit(..., weights = w, id = id,
  robust = TRUE) gives; the weights are treated as known (for IPTW weights from an estimated propensity
  score this is conservative for the ATE; Austin PC, Stat Med 2016;35:5642).

Confidence limits are Wald limits on the time scale (as survRM2); ratios are on the log scale (delta
method), reported exponentiated with ``std_error`` on the log scale (the result contract). Groups are
independent samples, so a contrast's variance is the sum of the two groups' variances.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from hostats.errors import EstimationError
from hostats.stats.core.product_limit import product_limit
from hostats.stats.core.results import Result, check_level, tidy, z_value
from hostats.stats.core.survival_data import group_codes, status_array, time_array, weight_array
from hostats.stats.core.validate import binary_array, complete_cases

RMST_REFERENCE = (
    "Royston P, Parmar MKB. Restricted mean survival time: an alternative to the hazard ratio for the "
    "design and analysis of randomized trials with a time-to-event outcome. BMC Med Res Methodol "
    "2013;13:152; Uno H et al. Moving beyond the hazard ratio in quantifying the between-group difference "
    "in survival analysis. J Clin Oncol 2014;32:2380-2385 (R survRM2); Andersen PK. Decomposition of "
    "number of life years lost according to causes of death. Stat Med 2013;32:5278-5285; variances as R "
    "survival (Therneau TM) print.survfit(rmean = tau): Greenwood-type for Kaplan-Meier, infinitesimal "
    "jackknife for Aalen-Johansen and weighted (robust) fits"
)

TABLE_COLUMNS = ["group", "contrast", "measure", "estimate", "ci_lower", "ci_upper", "p_value",
                 "std_error", "n", "events", "ci_level", "tau"]


@dataclass(repr=False)
class RMSTResult(Result):
    """Restricted means by group and their contrasts.

    ``table()``: columns group, contrast, measure, estimate (in the time unit; ratios unitless), ci_lower,
    ci_upper, p_value (contrasts only), std_error (log scale for ratios), n, events (events counted up to
    tau: any event for "rmst", the cause for "rmtl", other causes for "rmtl_competing"), ci_level, tau.
    Group rows (``contrast`` missing) have measures "rmst", "rmtl" and, with ``cause``, "rmtl_competing";
    contrast rows ("A vs ref", ``group`` missing) have "rmst_difference", "rmst_ratio",
    "rmtl_difference", "rmtl_ratio".
    Attributes: ``tau``, ``cause`` (None for a plain event indicator), ``reference_group``, ``n`` (rows
    analysed), ``n_missing`` (rows left out for missing values), ``warnings``.
    """

    tau: float = float("nan")
    cause: int | None = None
    reference_group: Any = None
    n: int = 0
    n_missing: int = 0

    __repr__ = Result.__repr__

    def table(self) -> pd.DataFrame:
        out = tidy(self._table.copy())
        return out[TABLE_COLUMNS + [c for c in out.columns if c not in TABLE_COLUMNS]]


def _revcumsum(x: np.ndarray) -> np.ndarray:
    return x[::-1].cumsum()[::-1]


def _restricted_means(t: np.ndarray, code: np.ndarray, w: np.ndarray | None,
                      tau: float) -> dict[str, tuple[float, float]]:
    """RMST, RMTL of code 1 and RMTL of code 2 on [0, tau] for one group, each with its IJ variance.

    ``code``: 0 censored, 1 event of interest, 2 competing event (never 2 without competing risks).
    Notation: distinct times t_j <= tau, weighted at-risk Y_j (T >= t_j), events d1_j, d2_j, d_j,
    hazards lam = d / Y, S the all-cause Kaplan-Meier, F_k the Aalen-Johansen cumulative incidences.
    Influence of row i (derivative with respect to its weight):
      RMST:    phi_S = -sum_j A_j / (Y_j - d_j) dM_i(t_j),                 A_j = int_{t_j}^tau S
      RMTL_k:  phi_k = sum_j (tau - t_j) S(t_j-) / Y_j dM_ik(t_j) - sum_j B_kj / (Y_j - d_j) dM_i(t_j),
               B_kj = int_{t_j}^tau (F_k(s) - F_k(t_j)) ds,
    with dM_ik(t_j) = dN_ik(t_j) - lam_kj 1(T_i >= t_j): a jump term at the row's own event time minus a
    cumulative sum of compensators up to min(T_i, tau).
    """
    one = np.ones_like(t) if w is None else w
    pl = product_limit(t, code, w, causes=(1, 2), tau=tau)
    inv = pl.index
    J = int(pl.inside.sum())                         # distinct times <= tau
    if J == 0:  # tau before the first follow-up time: nobody has had an event by tau
        return {"rmst": (tau, 0.0), "rmtl": (0.0, 0.0), "rmtl_competing": (0.0, 0.0)}
    u, y, d1, d2, ymd = pl.time[:J], pl.at_risk[:J], pl.events[0, :J], pl.events[1, :J], pl.survivors[:J]
    lam1, lam2 = d1 / y, d2 / y
    lam = lam1 + lam2
    surv, surv_m = pl.survival[:J], pl.survival_minus[:J]   # product of (Y - d) / Y: exact when all left fail
    f1, f2 = pl.incidence[0, :J], pl.incidence[1, :J]
    width = np.diff(np.r_[u, tau])                   # each step holds from t_j to the next time (or tau)
    rest = tau - u
    area_s, area_1, area_2 = surv * width, f1 * width, f2 * width
    est_s = tau - np.sum((1.0 - surv) * width)       # S = 1 on [0, t_1); exactly tau without events
    est_1, est_2 = area_1.sum(), area_2.sum()

    inv_ymd = np.where(ymd > 0, 1.0 / np.where(ymd > 0, ymd, 1.0), 0.0)  # 0 where S drops to 0 (A = B = 0)
    b_s = _revcumsum(area_s) * inv_ymd
    b_1 = (_revcumsum(area_1) - f1 * rest) * inv_ymd
    b_2 = (_revcumsum(area_2) - f2 * rest) * inv_ymd
    a = rest * surv_m / y

    idx = np.minimum(inv, J - 1)                     # last time <= min(T_i, tau) at which row i is at risk
    jump = inv < J                                   # the row's own event (if any) is at or before tau
    ev = jump & (code > 0)
    phi_s = np.cumsum(b_s * lam)[idx] - np.where(ev, b_s[idx], 0.0)
    phi_1 = (np.where(jump & (code == 1), a[idx], 0.0) - np.where(ev, b_1[idx], 0.0)
             - np.cumsum(a * lam1 - b_1 * lam)[idx])
    phi_2 = (np.where(jump & (code == 2), a[idx], 0.0) - np.where(ev, b_2[idx], 0.0)
             - np.cumsum(a * lam2 - b_2 * lam)[idx])

    def ij(phi: np.ndarray) -> float:
        return float(np.sum((one * phi) ** 2))

    return {"rmst": (float(est_s), ij(phi_s)), "rmtl": (float(est_1), ij(phi_1)),
            "rmtl_competing": (float(est_2), ij(phi_2))}


def _check_tau(tau: Any) -> float:
    try:
        value = float(tau)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tau must be a positive number (a time in the unit of the time column), got {tau!r}") \
            from exc
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"tau must be a positive, finite time (in the unit of the time column), got {tau!r}")
    return value


def _wald(est: float, se: float, z: float) -> tuple[float, float, float]:
    p = 2.0 * norm.sf(abs(est / se)) if se > 0 else np.nan
    return est - z * se, est + z * se, p


def rmst(data: pd.DataFrame, time: str, status: str, tau: float, *, cause: int | None = None,
         group: str | None = None, weights: str | None = None, reference: Any = None,
         level: float = 0.95) -> RMSTResult:
    """Restricted mean survival time and restricted mean time lost up to ``tau``, by group, with contrasts.

    Estimands (``tau`` in the unit of ``time``):

    * ``cause=None``: ``status`` is an event indicator (bool or 0/1). "rmst" = int_0^tau S(s) ds (Kaplan-
      Meier S) = E[min(T, tau)]; "rmtl" = tau - rmst.
    * ``cause=k``: ``status`` codes 0 censored, k the event of interest, any other positive code a competing
      event. "rmst" = restricted mean event-free time (no event of any cause); "rmtl" = int_0^tau F_k(s) ds
      with the Aalen-Johansen F_k, the expected time within tau lost to cause k (R's multi-state survfit
      ``rmean`` of the absorbing state k; Andersen 2013); "rmtl_competing" = the same for all other causes
      together (rmst + rmtl + rmtl_competing = tau).

    ``group``: one row per group and measure, and contrasts of every other group against ``reference``
    (default "none" if it is a level, else the first level; a Categorical keeps its order):
    "rmst_difference", "rmtl_difference" (group minus reference, Wald CI and p-value) and "rmst_ratio",
    "rmtl_ratio" (log-scale Wald, shown exponentiated, ``std_error`` on the log scale).

    Variance: infinitesimal jackknife (see the module docstring), which equals the Greenwood-type variance
    of R ``print(survfit(...), rmean = tau)`` / ``survRM2::rmst2`` for the unweighted Kaplan-Meier RMST,
    the IJ variance of R's multi-state survfit (``influence = TRUE``) for the Aalen-Johansen measures, and
    with ``weights`` the robust variance of survfit(..., weights = w, id = id, robust = TRUE), weights
    treated as known. Wald limits on the time scale.

    ``tau`` must be positive and no later than the last follow-up time of every group (the curve is not
    estimated beyond it; survRM2 refuses too): otherwise a ValueError/EstimationError naming the groups.
    Missing values: complete-case analysis on time, status, group and weights (counted in ``warnings`` and
    ``n_missing``); invalid values (negative times, unknown status codes, non-positive weights) are errors.
    Cost: one sort per group and cumulative sums, O(n log n).
    """
    level = check_level(level)
    tau = _check_tau(tau)
    if reference is not None and group is None:
        raise ValueError("reference= needs group=")
    cols = [time, status] + [c for c in (group, weights) if c is not None]
    data, notes, n_missing = complete_cases(data, cols, "rmst")
    t = time_array(data, time)
    if cause is None:
        code = binary_array(data, status, "status", "1 (event) or 0 (censored)",
                            " (with competing events give cause=k: 0 censored, k the event of interest, other "
                            "codes competing)").astype(np.int8)
    else:
        s = status_array(data, status, cause)
        cause = int(cause)
        code = np.where(s == cause, 1, np.where(s > 0, 2, 0)).astype(np.int8)
    w = weight_array(data, weights)
    codes, labels = group_codes(data, group)
    if group is not None:
        if reference is None:
            reference = "none" if "none" in labels else labels[0]
        elif reference not in labels:
            raise ValueError(f"reference {reference!r} is not a level of {group!r} (levels: {labels})")

    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
    parts = [order[bounds[k]:bounds[k + 1]] for k in range(len(labels))]
    last = np.array([t[p].max() for p in parts])
    late = tau > last
    if late.any():
        where = "; ".join(f"group {labels[k]!r} (last follow-up {last[k]:g})" for k in np.flatnonzero(late))
        raise EstimationError(f"tau = {tau:g} is beyond the last follow-up time of {where}: the survival "
                              f"curve is not estimated there; choose tau <= {last.min():g}")

    z = z_value(level)
    measures = ["rmst", "rmtl"] + (["rmtl_competing"] if cause is not None else [])
    fits, rows = [], []
    for k, label in enumerate(labels):
        p = parts[k]
        fit = _restricted_means(t[p], code[p], None if w is None else w[p], tau)
        by_tau = t[p] <= tau
        counts = {"rmst": int(np.sum(by_tau & (code[p] > 0))), "rmtl": int(np.sum(by_tau & (code[p] == 1))),
                  "rmtl_competing": int(np.sum(by_tau & (code[p] == 2)))}
        if cause is None:
            counts["rmtl"] = counts["rmst"]
        fits.append((fit, counts, p.size))
        for measure in measures:
            est, var = fit[measure]
            se = float(np.sqrt(var))
            rows.append({"group": label, "contrast": None, "measure": measure, "estimate": est,
                         "ci_lower": est - z * se, "ci_upper": est + z * se, "p_value": np.nan,
                         "std_error": se, "n": int(p.size), "events": counts[measure]})
        if counts["rmst"] == 0:
            notes.append(f"group {label!r} has no events by tau = {tau:g}: its rmst is tau and its rmtl 0, "
                         "both with standard error 0")

    if group is not None:
        ref = labels.index(reference)
        fr, cr, nr = fits[ref]
        for k, label in enumerate(labels):
            if k == ref:
                continue
            fa, ca, na = fits[k]
            contrast = f"{label} vs {reference}"
            for measure in ("rmst", "rmtl"):
                (ea, va), (er, vr) = fa[measure], fr[measure]
                base = {"group": None, "contrast": contrast, "n": na + nr, "events": ca[measure] + cr[measure]}
                diff, se = ea - er, float(np.sqrt(va + vr))
                lo, hi, p = _wald(diff, se, z)
                rows.append({**base, "measure": f"{measure}_difference", "estimate": diff, "ci_lower": lo,
                             "ci_upper": hi, "p_value": p, "std_error": se})
                if ea > 0 and er > 0:
                    lr = np.log(ea / er)
                    se = float(np.sqrt(va / ea ** 2 + vr / er ** 2))
                    lo, hi, p = _wald(lr, se, z)
                    rows.append({**base, "measure": f"{measure}_ratio", "estimate": float(np.exp(lr)),
                                 "ci_lower": float(np.exp(lo)), "ci_upper": float(np.exp(hi)), "p_value": p,
                                 "std_error": se})
                else:
                    rows.append({**base, "measure": f"{measure}_ratio", "estimate": np.nan, "ci_lower": np.nan,
                                 "ci_upper": np.nan, "p_value": np.nan, "std_error": np.nan})
                    notes.append(f"{contrast}: the {measure} ratio is not estimable ({measure} is 0 in "
                                 f"{label if ea <= 0 else reference!r})")

    table = pd.DataFrame(rows)
    # object dtype keeps numeric group labels as given (1, not 1.0) next to the contrasts' missing group
    table["group"] = pd.Series([r["group"] for r in rows], dtype=object)
    table["ci_level"] = level
    table["tau"] = tau
    if cause is None:
        method = "restricted mean survival time, Kaplan-Meier"
    else:
        method = f"restricted mean time lost to cause {cause} (Aalen-Johansen) and event-free RMST"
    method += (", weighted; infinitesimal-jackknife (robust) SEs, weights treated as known" if w is not None
               else ("; Greenwood-type SEs" if cause is None else "; infinitesimal-jackknife SEs"))
    method += f"; tau = {tau:g}"
    return RMSTResult(_table=table, level=level, method=method, reference=RMST_REFERENCE, fitted=None,
                      warnings=notes, tau=tau, cause=cause, reference_group=reference, n=int(t.size),
                      n_missing=n_missing)
