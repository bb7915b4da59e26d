"""Covariate balance for propensity-score weighting: standardised differences, variance ratios, Table 1.

Standardised mean difference (SMD) between a treated arm ``t`` and a comparison arm ``c``:

* continuous: ``(m_t - m_c) / sqrt((s2_t + s2_c) / 2)``
* binary (each level of a categorical variable is its own indicator):
  ``(p_t - p_c) / sqrt((p_t (1 - p_t) + p_c (1 - p_c)) / 2)``

The means (proportions) are weighted after weighting; the denominator is ALWAYS the pooled SD of the
unweighted groups, so that a change in the SMD reflects a change in the means and not in the yardstick
(Austin PC. Balance diagnostics for comparing the distribution of baseline covariates between treatment
groups in propensity-score matched samples. Stat Med 2009;28:3083-3107; Austin PC, Stuart EA. Stat Med
2015;34:3661-3679). ``|SMD| > 0.1`` is flagged as imbalance (Austin 2009). Variance ratios (treated over
comparison) use the weighted unbiased ("reliability weights") variance; a ratio far from 1 (outside 0.5-2)
signals imbalance in spread that the SMD misses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SMD_THRESHOLD = 0.1


@dataclass(frozen=True)
class Covariate:
    """One balance column: a continuous variable, or one level (0/1 indicator) of a binary/categorical one."""

    variable: str
    level: str | None       # None for a continuous or a plain binary variable
    kind: str               # "continuous" or "binary"
    values: np.ndarray      # float, no missing values


def weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / np.sum(w))


def weighted_var(x: np.ndarray, w: np.ndarray) -> float:
    """Unbiased weighted variance with reliability weights; equals the ddof=1 variance when w is constant."""
    sw = np.sum(w)
    denom = sw - np.sum(w * w) / sw
    if denom <= 0:
        return float("nan")
    m = np.sum(w * x) / sw
    return float(np.sum(w * (x - m) ** 2) / denom)


def _pooled_sd(cov: Covariate, xt: np.ndarray, xc: np.ndarray) -> float:
    if cov.kind == "binary":
        pt, pc = xt.mean(), xc.mean()
        return float(np.sqrt((pt * (1 - pt) + pc * (1 - pc)) / 2))
    vt = xt.var(ddof=1) if len(xt) > 1 else 0.0
    vc = xc.var(ddof=1) if len(xc) > 1 else 0.0
    return float(np.sqrt((vt + vc) / 2))


def smd_table(covariates: list[Covariate], arm: np.ndarray, levels: list, contrasts: list[tuple[int, int]],
              weights: np.ndarray, threshold: float = SMD_THRESHOLD) -> pd.DataFrame:
    """Balance before and after weighting, one row per covariate (level) and contrast.

    ``arm`` holds integer arm codes (indices into ``levels``); ``contrasts`` pairs (treated, comparison).
    Returns columns: variable, level, kind, contrast, mean_treated/mean_control (unweighted),
    mean_treated_weighted/mean_control_weighted, smd_unweighted, smd_weighted, variance_ratio_unweighted,
    variance_ratio_weighted, imbalanced_unweighted, imbalanced_weighted (|SMD| > threshold).
    A covariate whose pooled SD is zero in a contrast (constant in both arms) has SMD 0 by definition.
    """
    rows = []
    ones = np.ones_like(weights)
    for t, c in contrasts:
        mt, mc = arm == t, arm == c
        label = f"{levels[t]} vs {levels[c]}"
        for cov in covariates:
            xt, xc = cov.values[mt], cov.values[mc]
            wt, wc = weights[mt], weights[mc]
            sd = _pooled_sd(cov, xt, xc)
            row = {"variable": cov.variable, "level": cov.level, "kind": cov.kind, "contrast": label}
            for suffix, ut, uc in (("", ones[mt], ones[mc]), ("_weighted", wt, wc)):
                a, b = weighted_mean(xt, ut), weighted_mean(xc, uc)
                row[f"mean_treated{suffix}"] = a
                row[f"mean_control{suffix}"] = b
                row[f"smd{suffix or '_unweighted'}"] = 0.0 if sd == 0 else (a - b) / sd
                vc = weighted_var(xc, uc)
                row[f"variance_ratio{suffix or '_unweighted'}"] = (
                    weighted_var(xt, ut) / vc if vc and np.isfinite(vc) else float("nan"))
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["imbalanced_unweighted"] = out["smd_unweighted"].abs() > threshold
    out["imbalanced_weighted"] = out["smd_weighted"].abs() > threshold
    return out


def love_plot_data(balance: pd.DataFrame, threshold: float = SMD_THRESHOLD) -> pd.DataFrame:
    """Tidy (long) form of a balance table for a love plot: one row per covariate, contrast and sample."""
    if balance.empty:
        return balance
    term = np.where(balance["level"].isna(), balance["variable"],
                    balance["variable"] + ": " + balance["level"].astype(str))
    base = balance.assign(term=term)[["term", "variable", "level", "contrast"]]
    parts = []
    for sample, col in (("unweighted", "smd_unweighted"), ("weighted", "smd_weighted")):
        part = base.copy()
        part["sample"] = sample
        part["smd"] = balance[col].to_numpy()
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["abs_smd"] = out["smd"].abs()
    out["threshold"] = threshold
    return out


def weighted_table1(covariates: list[Covariate], arm: np.ndarray, levels: list,
                    weights: np.ndarray) -> pd.DataFrame:
    """Table 1 by arm, unweighted and weighted, in long form.

    Columns: variable, level, group, sample ("unweighted"/"weighted"), statistic ("mean"/"percent"),
    value, sd (continuous only), n (patients in the arm), weighted_n (sum of weights in the arm).
    The stats layer returns raw numbers; small-cell suppression happens in the report.
    """
    rows = []
    for k, name in enumerate(levels):
        m = arm == k
        n = int(m.sum())
        for sample, w in (("unweighted", np.ones(n)), ("weighted", weights[m])):
            wn = float(w.sum())
            for cov in covariates:
                x = cov.values[m]
                if cov.kind == "continuous":
                    rows.append({"variable": cov.variable, "level": cov.level, "group": name, "sample": sample,
                                 "statistic": "mean", "value": weighted_mean(x, w),
                                 "sd": float(np.sqrt(weighted_var(x, w))), "n": n, "weighted_n": wn})
                else:
                    rows.append({"variable": cov.variable, "level": cov.level, "group": name, "sample": sample,
                                 "statistic": "percent", "value": 100 * weighted_mean(x, w), "sd": np.nan,
                                 "n": n, "weighted_n": wn})
    return pd.DataFrame(rows)


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``."""
    return float(np.sum(w) ** 2 / np.sum(w * w))
