"""Interval-censored time to HO onset: Turnbull's NPMLE and a parametric Weibull fit.

HO is seen on imaging, so its onset is only known to lie between the last negative and the first positive
image: onset in (lower, upper] (``ho_interval_lo_days``, ``ho_interval_hi_days`` of a hostats cohort;
upper = inf when no positive image, lower == upper for an exactly known onset). The NPMLE is Turnbull's
(1976) self-consistency (EM) algorithm over the innermost ("Turnbull") intervals, vectorised: each
observation covers a contiguous run of Turnbull intervals, so one EM step is two cumulative sums and a
sparse product. The Weibull fit is lifelines' ``WeibullFitter.fit_interval_censoring``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from hostats.errors import DataError, EstimationError
from hostats.stats._result import CurveResult, check_level, tidy, z_value
from hostats.stats._survdata import _rows, require_columns

TURNBULL_REFERENCE = (
    "Turnbull BW. The empirical distribution function with arbitrarily grouped, censored and truncated "
    "data. J R Stat Soc B 1976;38:290-295; bootstrap percentile limits; Weibull: lifelines "
    "WeibullFitter.fit_interval_censoring (Davidson-Pilon C. lifelines. JOSS 2019;4:1317)"
)


def _bounds(data: pd.DataFrame, lower: str, upper: str) -> tuple[np.ndarray, np.ndarray]:
    require_columns(data, [lower, upper])
    out = []
    for col in (lower, upper):
        raw = data[col]
        if not pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
            raise DataError(f"interval bound column {col!r} must be numeric (days), got {raw.dtype}",
                            column=col)
        v = raw.to_numpy(dtype=float, na_value=np.nan)
        bad = np.isnan(v)
        if bad.any():
            raise DataError(f"interval bound column {col!r} has missing values in rows "
                            f"{_rows(bad, data.index)}; rows without imaging cannot bound the onset: "
                            "exclude them explicitly", column=col)
        bad = v < 0
        if bad.any():
            raise DataError(f"interval bound column {col!r} has negative values in rows "
                            f"{_rows(bad, data.index)}", column=col)
        out.append(v)
    lo, hi = out
    bad = ~np.isfinite(lo)
    if bad.any():
        raise DataError(f"lower bound column {lower!r} must be finite; rows {_rows(bad, data.index)} are not",
                        column=lower)
    bad = hi < lo
    if bad.any():
        raise DataError(f"upper bound {upper!r} is below lower bound {lower!r} in rows "
                        f"{_rows(bad, data.index)}", column=upper)
    return lo, hi


class _Turnbull:
    """Innermost intervals and the EM algorithm for onset in (lo, hi] (lo == hi: exact at hi)."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        exact = lo == hi
        vals = np.unique(np.r_[lo, hi[np.isfinite(hi)]])
        # integer keys: a value v has key 2*rank(v); "just below v" (left end of an exact time) 2*rank-1
        key_lo = 2 * np.searchsorted(vals, lo) - exact.astype(np.int64)
        key_hi = np.where(np.isfinite(hi), 2 * np.searchsorted(vals, np.where(np.isfinite(hi), hi, 0)),
                          np.iinfo(np.int64).max)
        pairs, counts = np.unique(np.column_stack([key_lo, key_hi]), axis=0, return_counts=True)
        self.pairs, self.counts = pairs, counts.astype(float)
        lefts, rights = np.unique(pairs[:, 0]), np.unique(pairs[:, 1])
        # innermost interval (l, r]: a left key followed by a right key with no left key in between
        keys = np.r_[lefts, rights]
        kind = np.r_[np.ones(lefts.size, int), np.zeros(rights.size, int)]  # right sorts first at ties
        order = np.lexsort((kind, keys))
        keys, kind = keys[order], kind[order]
        start = np.flatnonzero((kind[:-1] == 1) & (kind[1:] == 0))
        self.kl, self.kr = keys[start], keys[start + 1]
        m = self.kl.size

        def value(k: np.ndarray) -> np.ndarray:
            big = k == np.iinfo(np.int64).max
            idx = np.clip((k + 1) // 2, 0, vals.size - 1)
            return np.where(big, np.inf, vals[idx])

        self.left, self.right = value(self.kl), value(self.kr)
        self.exact_left = (self.kl % 2) == 1                     # (v-, v]: a point mass at v
        # observation i covers Turnbull intervals j in [first_i, last_i) (contiguous)
        self.first = np.searchsorted(self.kl, pairs[:, 0], side="left")
        self.last = np.searchsorted(self.kr, pairs[:, 1], side="right")
        if np.any(self.last <= self.first):
            raise EstimationError("an observation interval contains no Turnbull interval (internal error)")
        nu = pairs.shape[0]
        rows = np.r_[np.arange(nu), np.arange(nu)]
        cols = np.r_[self.first, self.last]
        vals_ = np.r_[np.ones(nu), -np.ones(nu)]
        self.diff = sparse.csr_matrix((vals_, (rows, cols)), shape=(nu, m + 1))
        self.m = m

    def em(self, counts: np.ndarray, tol: float = 1e-10, max_iter: int = 20000) -> tuple[np.ndarray, int]:
        """Self-consistency iterations for one or more count vectors (rows of ``counts``)."""
        c = np.atleast_2d(counts)
        n = c.sum(1, keepdims=True)
        p = np.full((c.shape[0], self.m), 1.0 / self.m)
        it = 0
        while it < max_iter:
            it += 1
            cum = np.concatenate([np.zeros((c.shape[0], 1)), np.cumsum(p, axis=1)], axis=1)
            denom = cum[:, self.last] - cum[:, self.first]
            ratio = np.where(c > 0, c / np.where(denom > 0, denom, 1.0), 0.0)
            numer = np.cumsum(np.asarray(self.diff.T @ ratio.T).T, axis=1)[:, : self.m]
            new = p * numer / n
            delta = np.max(np.abs(new - p))
            p = new
            if delta < tol:
                break
        return p, it


@dataclass(repr=False)
class IntervalCensoredResult(CurveResult):
    """NPMLE (Turnbull) and Weibull estimates of the onset-time distribution.

    ``curve``: time (right end of each Turnbull interval with positive mass), estimate (NPMLE of
    P(onset <= time)), bootstrap ci_lower/ci_upper, n_at_risk (rows with lower bound >= time, i.e. known
    onset-free up to then), interval_lower, mass. ``turnbull``: every innermost interval with its mass.
    ``fitted``: the lifelines WeibullFitter. ``table()``: Weibull scale (lambda) and shape (rho) with
    Wald limits, median onset from the Weibull (delta method) and from the NPMLE (bootstrap).
    """

    turnbull: pd.DataFrame = field(default_factory=pd.DataFrame)
    iterations: int = 0
    n_boot: int = 0

    def weibull_cdf(self, times) -> pd.DataFrame:
        """Weibull P(onset <= t) with lifelines' pointwise limits at ``times``."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        wf = self.fitted
        est = 1.0 - np.exp(-((times / wf.lambda_) ** wf.rho_))
        return pd.DataFrame({"time": times, "estimate": est})


def interval_censored(data: pd.DataFrame, lower: str = "ho_interval_lo_days",
                      upper: str = "ho_interval_hi_days", *, level: float = 0.95, n_boot: int = 200,
                      seed: int = 20261124, tol: float = 1e-10, max_iter: int = 20000) -> IntervalCensoredResult:
    """Distribution of the time to HO onset when onset is only known to lie in (lower, upper].

    Estimand: F(t) = P(onset <= t) (days from the index event). Pass only patients with HO to describe
    when HO starts among those who develop it; pass everyone (upper = inf for those never positive) for
    the onset incidence in the whole cohort (deaths then count as censored, not competing).
    Methods: (1) Turnbull's nonparametric maximum-likelihood estimate by self-consistency (EM) over the
    innermost intervals; the NPMLE fixes the mass of each innermost interval, not where inside it, so the
    curve is reported at the right ends (F jumps by each interval's mass there). Limits and the median's
    limits are bootstrap percentiles (``n_boot`` resamples with the numpy Generator seeded by ``seed``;
    ``n_boot=0``: no limits, reported as NaN with a warning). (2) A Weibull model fitted by maximum
    likelihood (lifelines ``WeibullFitter.fit_interval_censoring``; S(t) = exp(-(t/lambda)^rho)) with Wald
    limits, and its median lambda (ln 2)^(1/rho) with a delta-method limit on the log scale.
    Reference: Turnbull 1976 JRSS-B 38:290; lifelines (Davidson-Pilon 2019).
    """
    from lifelines import WeibullFitter

    level = check_level(level)
    lo, hi = _bounds(data, lower, upper)
    n = lo.size
    if not np.any(np.isfinite(hi)):
        raise EstimationError(f"no finite upper bound in {upper!r}: no onset was observed, so the onset "
                              "distribution cannot be estimated")
    tb = _Turnbull(lo, hi)
    p, iters = tb.em(tb.counts, tol=tol, max_iter=max_iter)
    p = p[0]
    warns: list[str] = []
    if iters >= max_iter:
        warns.append(f"Turnbull EM stopped after {max_iter} iterations without reaching tol={tol}")
    cdf = np.cumsum(p)

    alpha = 1.0 - level
    boot_cdf = None
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        bc = rng.multinomial(n, tb.counts / n, size=int(n_boot)).astype(float)
        pb, _ = tb.em(bc, tol=max(tol, 1e-8), max_iter=max_iter)
        boot_cdf = np.cumsum(pb, axis=1)
        ci_lo = np.quantile(boot_cdf, alpha / 2, axis=0)
        ci_hi = np.quantile(boot_cdf, 1 - alpha / 2, axis=0)
    else:
        ci_lo = ci_hi = np.full(tb.m, np.nan)
        warns.append("n_boot=0: the NPMLE curve and median have no confidence limits (NaN)")

    turnbull = pd.DataFrame({"lower": tb.left, "upper": tb.right, "exact": tb.exact_left, "mass": p,
                             "estimate": cdf})
    keep = p > 1e-12
    at_risk = (lo[None, :] >= tb.right[keep][:, None]).sum(1) if keep.sum() * n <= 5e7 else \
        n - np.searchsorted(np.sort(lo), tb.right[keep], side="left")
    curve = pd.DataFrame({"group": "all", "time": tb.right[keep], "estimate": cdf[keep],
                          "ci_lower": ci_lo[keep], "ci_upper": ci_hi[keep], "n_at_risk": at_risk,
                          "interval_lower": tb.left[keep], "mass": p[keep]})
    curve = curve[np.isfinite(curve["time"])].reset_index(drop=True)

    # Weibull (lifelines); exact onsets at day 0 have zero Weibull density
    if np.any(hi == 0):
        raise EstimationError(f"rows {_rows(hi == 0, data.index)} have onset at day 0 exactly; the Weibull "
                              "model needs positive onset times (check the interval bounds)")
    wf = WeibullFitter(alpha=alpha).fit_interval_censoring(lo, hi)
    summ = wf.summary
    z = z_value(level)
    lam, rho = float(wf.lambda_), float(wf.rho_)
    cov = wf.variance_matrix_.loc[["lambda_", "rho_"], ["lambda_", "rho_"]].to_numpy()
    ln2 = np.log(2.0)
    med = lam * ln2 ** (1.0 / rho)
    grad = np.array([1.0 / lam, -np.log(ln2) / rho ** 2])          # d log(median) / d (lambda, rho)
    se_log_med = float(np.sqrt(grad @ cov @ grad))

    n_events = int(np.sum(np.isfinite(hi)))
    rows = [
        {"measure": "weibull_scale_lambda", "estimate": lam, "ci_lower": summ.loc["lambda_", f"coef lower {level:.0%}"]
         if f"coef lower {level:.0%}" in summ.columns else lam - z * summ.loc["lambda_", "se(coef)"],
         "ci_upper": summ.loc["lambda_", f"coef upper {level:.0%}"]
         if f"coef upper {level:.0%}" in summ.columns else lam + z * summ.loc["lambda_", "se(coef)"],
         "std_error": float(summ.loc["lambda_", "se(coef)"])},
        {"measure": "weibull_shape_rho", "estimate": rho, "ci_lower": rho - z * summ.loc["rho_", "se(coef)"],
         "ci_upper": rho + z * summ.loc["rho_", "se(coef)"], "std_error": float(summ.loc["rho_", "se(coef)"])},
        {"measure": "median_onset_weibull", "estimate": med, "ci_lower": med * np.exp(-z * se_log_med),
         "ci_upper": med * np.exp(z * se_log_med), "std_error": se_log_med},
    ]
    reached = np.flatnonzero(cdf >= 0.5 - 1e-12)
    if reached.size and np.isfinite(tb.right[reached[0]]):
        j = reached[0]
        row = {"measure": "median_onset_npmle", "estimate": float(tb.right[j]),
               "interval_lower": float(tb.left[j]), "ci_lower": np.nan, "ci_upper": np.nan}
        if boot_cdf is not None:
            idx = np.argmax(boot_cdf >= 0.5 - 1e-12, axis=1)
            ok = boot_cdf[np.arange(boot_cdf.shape[0]), idx] >= 0.5 - 1e-12
            meds = np.where(ok, tb.right[idx], np.inf)
            row["ci_lower"] = float(np.quantile(meds, alpha / 2))
            row["ci_upper"] = float(np.quantile(meds, 1 - alpha / 2))
        rows.append(row)
    else:
        warns.append("the NPMLE never reaches 0.5: the nonparametric median onset is not reached "
                     "(pass only patients with HO to describe onset among them)")
    table = pd.DataFrame(rows)
    table["n"] = n
    table["events"] = n_events
    table["ci_level"] = level
    for col in ("ci_lower", "ci_upper", "estimate"):
        table[col] = table[col].astype(float)
    return IntervalCensoredResult(
        _table=tidy(table), level=level, method="Turnbull NPMLE and Weibull (interval-censored onset)",
        reference=TURNBULL_REFERENCE, fitted=wf, warnings=warns, curve=curve, turnbull=turnbull,
        iterations=iters, n_boot=int(n_boot))


__all__ = ["interval_censored", "IntervalCensoredResult"]
