"""Sensitivity to unmeasured confounding: E-values (VanderWeele & Ding 2017), as R's EValue package."""
from __future__ import annotations

import numpy as np
import pandas as pd

from hostats.stats.core.results import Result

EVALUE_REFERENCE = ("VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the "
                    "E-value. Ann Intern Med 2017;167:268-274")


def _threshold(rr: float) -> float:
    """E-value of a risk ratio >= 1 (VanderWeele & Ding 2017, eq. 1): RR + sqrt(RR (RR - 1))."""
    return float(rr + np.sqrt(rr * (rr - 1.0)))


def _to_rr(x: float | None, measure: str, rare: bool | None, sd: float | None) -> float | None:
    if x is None:
        return None
    if measure == "RR" or (measure in ("OR", "HR") and rare):
        return x
    if measure == "OR":
        return float(np.sqrt(x))
    if measure == "HR":
        return float((1 - 0.5 ** np.sqrt(x)) / (1 - 0.5 ** np.sqrt(1 / x)))
    return float(np.exp(0.91 * x / sd))  # MD: standardised difference d = x / sd, RR ~ exp(0.91 d)


def e_value(estimate: float, lower: float | None = None, upper: float | None = None, measure: str = "RR",
            outcome_rare: bool | None = None, sd: float | None = None, true: float | None = None) -> Result:
    """E-value for an observed association and for the confidence limit closest to the null.

    The E-value is the minimum strength of association, on the risk-ratio scale, that an unmeasured
    confounder would need with both treatment and outcome (conditional on the measured covariates) to
    explain away the estimate (VanderWeele & Ding 2017, Ann Intern Med 167:268-274; as R's EValue package).

    measure : "RR"; "OR" and "HR" (``outcome_rare`` required: if False, OR -> sqrt(OR), and
        HR -> (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR)) as in the paper's Table 2); "MD" a mean difference
        with ``sd`` the outcome SD (pass sd=1 for an already standardised difference d):
        RR ~ exp(0.91 d). Protective estimates (RR < 1) are inverted. The CI E-value uses the limit
        closest to the null and is 1 when the interval includes the null.
    true : the value to shift the estimate to (default: the null, 1 for ratios and 0 for MD).

    Returns a Result whose table has rows ``e_value_point`` and ``e_value_ci`` (the latter only when a
    limit is given), with the estimate on the risk-ratio scale in ``rr`` and the limit used in ``limit``.
    """
    m = str(measure).upper()
    if m not in {"RR", "OR", "HR", "MD"}:
        raise ValueError(f"measure must be 'RR', 'OR', 'HR' or 'MD', got {measure!r}")
    if m in {"OR", "HR"} and outcome_rare is None:
        raise ValueError(f"for measure={m!r} say whether the outcome is rare (outcome_rare=True if under 15% "
                         "at the end of follow-up): the conversion to a risk ratio depends on it")
    if m == "MD":
        if sd is None or not sd > 0:
            raise ValueError("measure='MD' needs sd= (the outcome standard deviation; 1 if already standardised)")
    vals = [v for v in (estimate, lower, upper) if v is not None]
    if any(not np.isfinite(v) for v in vals):
        raise ValueError("estimate and limits must be finite numbers")
    if m != "MD" and any(v <= 0 for v in vals):
        raise ValueError(f"a {m} must be positive; got {vals}")
    if lower is not None and upper is not None and lower > upper:
        lower, upper = upper, lower
    if (lower is not None and estimate < lower) or (upper is not None and estimate > upper):
        raise ValueError("the point estimate should be inside the confidence interval")
    null = 0.0 if m == "MD" else 1.0
    true = null if true is None else float(true)
    rr = _to_rr(estimate, m, outcome_rare, sd)
    rr_true = _to_rr(true, m, outcome_rare, sd)

    def ev(x: float) -> float:
        return _threshold(max(x / rr_true, rr_true / x))

    rows = [{"measure": "e_value_point", "estimate": ev(rr), "rr": rr, "limit": np.nan}]
    limit = lower if rr >= rr_true else upper
    if limit is not None:
        rr_lim = _to_rr(limit, m, outcome_rare, sd)
        crosses = rr_lim <= rr_true if rr >= rr_true else rr_lim >= rr_true
        rows.append({"measure": "e_value_ci", "estimate": 1.0 if crosses else ev(rr_lim), "rr": rr_lim,
                     "limit": limit})
    elif lower is not None or upper is not None:
        pass  # only the limit away from the null was given: no CI E-value (as in R's EValue)
    note = {"RR": "risk ratio", "OR": "odds ratio", "HR": "hazard ratio", "MD": "standardised mean difference"}[m]
    conv = "" if m == "RR" or (m in ("OR", "HR") and outcome_rare) else " (converted to the risk-ratio scale)"
    return Result(_table=pd.DataFrame(rows), method=f"E-value for a {note}{conv}", reference=EVALUE_REFERENCE)
