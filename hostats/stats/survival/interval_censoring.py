"""Interval-censored time to HO onset: Turnbull's NPMLE and parametric Weibull and log-normal fits.

HO is seen on imaging, so its onset is only known to lie between the last negative and the first positive
image: onset in (lower, upper] (``ho_interval_lo_days``, ``ho_interval_hi_days`` of a hostats cohort;
upper = inf, or missing as in R's ``Surv(type = "interval2")``, when no positive image; lower == upper for
an exactly known onset). The NPMLE is Turnbull's
(1976) estimate over the innermost ("Turnbull") intervals, computed by Wang's (2007) constrained Newton
method (non-negative least squares steps; SQUAREM-accelerated EM for very large problems, where each
observation covers a contiguous run of intervals so one EM step is two cumulative sums and a sparse product). The Weibull and log-normal fits are lifelines'
``WeibullFitter``/``LogNormalFitter.fit_interval_censoring`` on the distinct intervals weighted by their counts.

What the bounds bracket: imaging sees HO only after it has calcified enough, so (last negative, first
positive] brackets the day HO became VISIBLE on imaging, not its biological onset (an x-ray turns positive
21-28 days after onset, docs/rates.md R19; a bone scan 7-10 days earlier than the x-ray, R20). Without
correction the estimand is the time to radiological visibility. ``detection_lag_days`` estimates onset
instead by shifting each bound by the mean lag of the modality that produced it (``DETECTION_LAG_DAYS``).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from hostats.errors import DataError, EstimationError
from hostats.stats.core.results import CurveResult, Result, check_level, tidy, z_value
from hostats.stats.core.survival_data import numeric_column
from hostats.stats.core.validate import require_columns
from hostats.stats.core.validate import row_labels as _rows

TURNBULL_REFERENCE = (
    "Turnbull BW. The empirical distribution function with arbitrarily grouped, censored and truncated "
    "data. J R Stat Soc B 1976;38:290-295 (computed by the constrained Newton method, Wang Y. J R Stat "
    "Soc B 2007;69:185-198); bootstrap percentile limits; Weibull and log-normal: lifelines "
    "fit_interval_censoring (Davidson-Pilon C. lifelines. JOSS 2019;4:1317)"
)


# Mean delay from biological onset to a positive image, by modality (days). x-ray: "3-4 weeks after onset
# before the x-ray is positive" (seed text; docs/rates.md R19: 21-28 days, midpoint 24.5); bone scan: "7-10 days
# earlier than an x-ray" (R20: 24.5 - 8.5 = 16). CT has no published lag in docs/rates.md: give one explicitly.
DETECTION_LAG_DAYS: dict[str, float] = {"xray": 24.5, "bone_scan": 16.0}
DETECTION_LAG_REFERENCE = (
    "detection lag of imaging: x-ray positive 3-4 weeks (21-28 days) after onset, bone scan 7-10 days "
    "earlier than the x-ray (Heterotopic ossification, seed text; hostats docs/rates.md R19, R20)"
)


def _bounds(data: pd.DataFrame, lower: str, upper: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(lower, upper, rows kept, counts) with R's ``Surv(lower, upper, type = "interval2")`` reading of
    missing bounds: a missing upper bound (or inf) means no upper bound, right-censored at the lower one;
    a missing lower bound means left-censored, onset in (0, upper]; a row with neither bound (or a
    missing lower and an infinite upper) says nothing about onset and is the only truly missing row
    (dropped, counted in ``counts["missing"]``, as R's na.action drops it)."""
    require_columns(data, [lower, upper])
    lo = numeric_column(data, lower, "interval bound", "days")
    hi = numeric_column(data, upper, "interval bound", "days")
    no_lo, no_hi = np.isnan(lo), np.isnan(hi) | (hi == np.inf)
    keep = ~(no_lo & no_hi)
    counts = {"missing": int((~keep).sum()), "left_censored": int((no_lo & keep).sum()),
              "right_censored": int((no_hi & keep).sum())}
    lo = np.where(no_lo, 0.0, lo)
    hi = np.where(np.isnan(hi), np.inf, hi)
    for col, v in ((lower, lo), (upper, hi)):
        bad = keep & (v < 0)
        if bad.any():
            raise DataError(f"interval bound column {col!r} has negative values in rows "
                            f"{_rows(bad, data.index)}", column=col)
    bad = keep & ~np.isfinite(lo)
    if bad.any():
        raise DataError(f"lower bound column {lower!r} must be finite; rows {_rows(bad, data.index)} are not",
                        column=lower)
    bad = keep & (hi < lo)
    if bad.any():
        raise DataError(f"upper bound {upper!r} is below lower bound {lower!r} in rows "
                        f"{_rows(bad, data.index)}", column=upper)
    return lo, hi, keep, counts


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
        # constrained Newton works on m x m matrices; beyond that, accelerated EM (O(observations) a step)
        self.small = m <= 1500

    def _step(self, p: np.ndarray, c: np.ndarray, n: np.ndarray):
        """One self-consistency step: new p, the gradient ratios d_j and the log-likelihood (per row)."""
        cum = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(p, axis=1)], axis=1)
        denom = np.maximum(cum[:, self.last] - cum[:, self.first], 1e-300)
        ratio = np.where(c > 0, c / denom, 0.0)
        d = np.cumsum(np.asarray(self.diff.T @ ratio.T).T, axis=1)[:, : self.m] / n
        loglik = np.sum(np.where(c > 0, c * np.log(denom), 0.0), axis=1)
        return p * d, d, loglik

    def cnm(self, counts: np.ndarray, tol: float = 1e-9, max_iter: int = 500,
            start: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Constrained Newton method (Wang 2007, J R Stat Soc B 69:185): each step solves the quadratic
        approximation of the log-likelihood on the simplex as a non-negative least-squares problem
        (scipy nnls), then a backtracking line search. Converges in tens of steps where EM needs
        thousands. Stops when max_j d_j <= 1 + tol (Kuhn-Tucker condition).

        The least-squares problem min sum_i c_i (s_i'q - 2)^2, s_ij = a_ij / P_i, is solved through its
        normal equations: because observation i covers the contiguous run [first_i, last_i) of Turnbull
        intervals, the Gram matrix sum_i c_i s_ij s_ik is a two-dimensional cumulative sum of the weights
        over (first, last) -- O(observations + m^2) per step instead of a dense observations x m matrix --
        and nnls then works on its m x m Cholesky factor (same minimiser)."""
        from scipy.linalg import LinAlgError, cholesky, solve_triangular
        from scipy.optimize import nnls

        c = np.asarray(counts, float)
        n = c.sum()
        keep = c > 0
        c, first, last = c[keep], self.first[keep], self.last[keep]
        m = self.m
        zeta2 = 100.0 * n                      # weight of the sum(q) = 1 row: (10 sqrt(n))^2
        flat = first * (m + 1) + last
        iu = np.triu_indices(m)

        def probs(q: np.ndarray) -> np.ndarray:
            cum = np.concatenate([[0.0], np.cumsum(q)])
            return np.maximum(cum[last] - cum[first], 0.0)

        def loglik(big: np.ndarray) -> float:         # -inf when an observed interval gets no mass
            return float(np.sum(c * np.log(big))) if np.all(big > 0) else -np.inf

        def grad(ratio: np.ndarray) -> np.ndarray:       # sum_i ratio_i a_ij for every j
            acc = np.bincount(first, ratio, minlength=m + 1) - np.bincount(last, ratio, minlength=m + 1)
            return np.cumsum(acc)[:m]

        p = np.full(m, 1.0 / m) if start is None else np.asarray(start, float).copy()
        big_p = probs(p)
        ll = loglik(big_p)
        it = 0
        while it < max_iter:
            it += 1
            g = grad(c / big_p)
            if np.max(g) / n <= 1.0 + tol:
                break
            # Gram G_jk (j <= k) = sum over i with first_i <= j < k < last_i of c_i / P_i^2
            w = np.bincount(flat, c / big_p ** 2, minlength=m * (m + 1)).reshape(m, m + 1)
            w = np.cumsum(w, axis=0)
            w = np.cumsum(w[:, ::-1], axis=1)[:, ::-1]   # w[j, l] = sum over first <= j, last >= l
            gram = np.zeros((m, m))
            gram[iu] = w[:, 1:][iu]
            gram = gram + np.triu(gram, 1).T + zeta2
            rhs = 2.0 * g + zeta2
            # Newton step over the current support plus the intervals whose gradient ratio exceeds 1 (the
            # others cannot enter an ascent step; Wang 2007's support update): small NNLS problems
            sup = np.flatnonzero((p > 0) | (g > n))
            gram, rhs = gram[np.ix_(sup, sup)], rhs[sup]
            k = sup.size
            # Jacobi scaling (q = u * sc) keeps the factorisation well conditioned when weights span
            # many orders of magnitude; the tiny ridge only perturbs the search direction
            sc = 1.0 / np.sqrt(np.diag(gram))
            gram = gram * sc[:, None] * sc[None, :]
            try:
                r = cholesky(gram + 1e-13 * np.eye(k), lower=False, check_finite=False)
            except LinAlgError:
                r = cholesky(gram + 1e-8 * np.eye(k), lower=False, check_finite=False)
            z = solve_triangular(r, rhs * sc, trans="T", check_finite=False)
            u, _ = nnls(r, z, maxiter=50 * k)
            q = np.zeros(m)
            q[sup] = u * sc
            q /= q.sum()
            lam, new = 1.0, q
            new_p = probs(new)
            new_ll = loglik(new_p)
            while new_ll < ll and lam > 1e-12:
                lam /= 2.0
                new = p + lam * (q - p)
                new_p = probs(new)
                new_ll = loglik(new_p)
            if new_ll <= ll + 1e-13 * abs(ll):       # no progress: converged to numerical precision
                if new_ll > ll:
                    p, big_p = new, new_p
                break
            p, ll, big_p = new, new_ll, new_p
        self.kkt = float(np.max(grad(c / big_p)) / n - 1.0)
        return p, it

    def kkt_gap(self, p: np.ndarray, counts: np.ndarray) -> float:
        """max_j d_j - 1, d_j = (1/n) sum_i c_i a_ij / P_i: <= 0 at the NPMLE (Gentleman & Geyer 1994)."""
        c = np.asarray(counts, float)
        cum = np.concatenate([[0.0], np.cumsum(p)])
        big_p = cum[self.last] - cum[self.first]
        r = np.divide(c, big_p, out=np.zeros_like(c), where=c > 0)
        acc = np.bincount(self.first, r, minlength=self.m + 1) - np.bincount(self.last, r, minlength=self.m + 1)
        return float(np.max(np.cumsum(acc)[: self.m]) / c.sum() - 1.0)

    def fit(self, counts: np.ndarray, tol: float = 1e-9, max_iter: int = 500) -> tuple[np.ndarray, int]:
        """The NPMLE: constrained Newton when the number of Turnbull intervals is moderate, otherwise
        accelerated EM. When Newton stalls at the limit of its numerical precision short of ``tol``, EM
        steps (exact, monotone) finish the job from there. ``self.kkt`` holds the final Kuhn-Tucker gap."""
        if self.small:
            p, it = self.cnm(counts, tol=tol, max_iter=max_iter)
            if self.kkt > tol and it < max_iter:
                pe, ite = self.em(counts, tol=tol, max_iter=max_iter, start=p)
                p, it = pe[0], it + ite
        else:
            pe, it = self.em(counts, tol=tol, max_iter=20 * max_iter)
            p = pe[0]
        self.kkt = self.kkt_gap(p, counts)
        return p, it

    def em(self, counts: np.ndarray, tol: float = 1e-9, max_iter: int = 5000,
           start: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Self-consistency (EM) with SQUAREM acceleration (Varadhan & Roland 2008, Scand J Stat 35:335),
        for one or more count vectors (rows of ``counts``) at once. Stops when the Kuhn-Tucker condition
        of the NPMLE holds to ``tol``: max_j d_j <= 1 + tol, d_j = (1/n) sum_i c_i a_ij / P_i (Gentleman &
        Geyer 1994), which bounds the log-likelihood gap by n * tol."""
        c = np.atleast_2d(counts)
        n = c.sum(1, keepdims=True)
        p = np.full((c.shape[0], self.m), 1.0 / self.m) if start is None else \
            np.broadcast_to(start, (c.shape[0], self.m)).copy()
        it = 0
        while it < max_iter:
            it += 1
            p1, d0, _ = self._step(p, c, n)
            if np.all(d0.max(1) <= 1.0 + tol):
                break
            p2, _, ll1 = self._step(p1, c, n)            # ll1: log-likelihood at p1
            r, v = p1 - p, p2 - 2.0 * p1 + p
            nr, nv = np.linalg.norm(r, axis=1), np.linalg.norm(v, axis=1)
            alpha = np.minimum(-nr / np.where(nv > 0, nv, 1.0), -1.0)[:, None]
            pe = p - 2.0 * alpha * r + alpha * alpha * v
            outside = np.any(pe < 0, axis=1)
            pe = np.where(outside[:, None], p2, pe)
            p3, _, lle = self._step(pe, c, n)            # lle: at the extrapolated point
            worse = outside | ~(lle >= ll1)              # then keep EM's monotone step p2
            p = np.where(worse[:, None], p2, p3)
        return p, it


def _shift_by_lag(data: pd.DataFrame, lo: np.ndarray, hi: np.ndarray, lags: Mapping[str, float],
                  lower_modality: str, upper_modality: str,
                  min_onset_days: float) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Onset bounds from imaging bounds: each bound minus the mean detection lag of its modality.

    A negative image of modality m on day L means HO was not yet visible, so onset > L - lag(m); a
    positive one on day R means onset <= R - lag(m). A lower bound of 0 (no negative image) stays 0, and
    shifted lower bounds are floored at 0 (onset follows the index event). A shifted upper bound below
    ``min_onset_days`` (the image turned positive sooner than the mean lag) becomes ``min_onset_days``:
    onset in the first day(s). Because real lags vary around their mean (x-ray 21-28 days), a shifted
    interval can come out inverted (lower above upper, e.g. a negative bone scan a few days before a
    positive x-ray); it is then used as (upper, lower]. Counts of both go in ``notes``.
    """
    require_columns(data, [lower_modality, upper_modality])
    unknown = {str(k): float(v) for k, v in lags.items() if not np.isfinite(float(v)) or float(v) < 0}
    if unknown:
        raise ValueError(f"detection_lag_days must be finite and >= 0 days; got {unknown}")
    out = []
    for mcol, bound, needed in ((lower_modality, lo, lo > 0), (upper_modality, hi, np.isfinite(hi))):
        mod = data[mcol].astype(object).to_numpy()
        missing = needed & pd.isna(mod)
        if missing.any():
            raise DataError(f"modality column {mcol!r} is missing for rows {_rows(missing, data.index)}, whose "
                            "bound comes from an image: the detection lag cannot be applied", column=mcol)
        key = np.where(needed, mod, "").astype(str)
        names = sorted(set(np.unique(key[needed]).tolist()) - {str(k) for k in lags})
        if names:
            bad = needed & np.isin(key, names)
            raise DataError(f"no detection lag for modality {', '.join(map(repr, names))} in column {mcol!r} "
                            f"(rows {_rows(bad, data.index)}): add it to detection_lag_days "
                            f"(known: {', '.join(map(str, lags))})", column=mcol)
        lag = np.zeros(bound.size)
        for name, v in lags.items():
            lag[needed & (key == str(name))] = float(v)
        out.append(bound - lag)
    lo2 = np.maximum(out[0], 0.0)
    hi2 = out[1]
    early = hi2 < min_onset_days
    hi2 = np.where(early, min_onset_days, hi2)
    inverted = lo2 > hi2
    lo2, hi2 = np.where(inverted, hi2, lo2), np.where(inverted, lo2, hi2)
    return lo2, hi2, {"early": int(early.sum()), "inverted": int(inverted.sum())}


@dataclass(repr=False)
class IntervalCensoredResult(CurveResult):
    """NPMLE (Turnbull) and Weibull estimates of the onset-time distribution.

    ``curve``: time (right end of each Turnbull interval with positive mass), estimate (NPMLE of
    P(onset <= time)), bootstrap ci_lower/ci_upper, n_at_risk (rows with lower bound >= time, i.e. known
    onset-free up to then), interval_lower, mass. ``turnbull``: every innermost interval with its mass.
    ``fitted``: the lifelines WeibullFitter. ``table()``: Weibull scale (lambda) and shape (rho) with
    Wald limits, median onset from the Weibull (delta method; its std_error is on the log scale), the
    log-normal mu (log days) and sigma with the median exp(mu), the AIC of both parametric models, and
    the median from the NPMLE (first Turnbull interval where F reaches 0.5: its right end, with interval_lower; bootstrap
    limits). ``estimand``: "first positive imaging" (time to radiological visibility: the bounds as given)
    or "onset (detection-lag corrected)". ``lag_adjustments``: how many shifted bounds were floored or
    inverted (see ``detection_lag_days``). ``n_missing``: rows dropped with neither bound known;
    ``censoring``: counts of ``missing``, ``left_censored`` (missing lower bound) and ``right_censored``
    (missing or infinite upper bound) rows.
    """

    turnbull: pd.DataFrame = field(default_factory=pd.DataFrame)
    iterations: int = 0
    n_boot: int = 0
    estimand: str = "first positive imaging"
    lag_adjustments: dict = field(default_factory=dict)
    n_missing: int = 0
    censoring: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # CurveResult's dataclass-generated repr would dump every field
        return Result.__repr__(self)

    @property
    def n(self) -> int:
        """Rows analysed (those with at least one bound known)."""
        return int(self._table["n"].iloc[0]) if "n" in self._table.columns and len(self._table) else 0

    def weibull_cdf(self, times) -> pd.DataFrame:
        """Weibull P(onset <= t) with lifelines' pointwise limits at ``times``."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        wf = self.fitted
        est = 1.0 - np.exp(-((times / wf.lambda_) ** wf.rho_))
        return pd.DataFrame({"time": times, "estimate": est})


def _fit_parametric(fitter: Any, name: str, pairs: np.ndarray, counts: np.ndarray, warns: list[str]) -> Any:
    """lifelines' interval-censored ML fit; its statistical warnings become result warnings (not stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitter.fit_interval_censoring(pairs[:, 0], pairs[:, 1], weights=counts)
    for w in caught:
        if "variance" in str(w.message) or "converge" in str(w.message).lower():
            warns.append(f"{name} fit: lifelines reports {str(w.message).splitlines()[0].strip()} Do not trust "
                         f"its limits (few or very coarse intervals?)")
            break
    return fitter


def interval_censored(data: pd.DataFrame, lower: str = "ho_interval_lo_days",
                      upper: str = "ho_interval_hi_days", *, level: float = 0.95, n_boot: int = 0,
                      seed: int = 20261124, tol: float = 1e-9, max_iter: int = 500,
                      detection_lag_days: Mapping[str, float] | None = None,
                      lower_modality: str = "ho_interval_lo_test", upper_modality: str = "ho_interval_hi_test",
                      min_onset_days: float = 1.0) -> IntervalCensoredResult:
    """Distribution of the time to HO onset when onset is only known to lie in (lower, upper].

    Estimand: F(t) = P(T <= t) (days from the index event). With imaging bounds as given (last negative,
    first positive image), T is the time HO became VISIBLE on imaging (time to radiological visibility),
    which lags biological onset by weeks (x-ray 21-28 days, docs/rates.md R19; bone scan 7-10 days less, R20).
    With ``detection_lag_days`` (modality -> mean lag in days, e.g. ``DETECTION_LAG_DAYS`` = {xray: 24.5,
    bone_scan: 16}) T is biological onset: each bound is shifted back by the lag of the modality that
    produced it (columns ``lower_modality``/``upper_modality``, e.g. "xray"), see ``_shift_by_lag``. The
    spread of the lag around its mean is ignored (it adds a few days^2 of variance to T, small beside the
    spread of onset). Pass only patients with HO to describe when HO starts among those who develop it;
    pass everyone (upper = inf for those never positive) for the onset incidence in the whole cohort
    (deaths then count as censored, not competing).

    Bounds: lower == upper is an exactly known time. Missing bounds follow R's
    ``Surv(lower, upper, type = "interval2")``: a missing (NA) or infinite upper bound means no positive
    image, right-censored at the lower bound (these rows are data, not missing values, and are never
    dropped: dropping them biases the onset distribution early); a missing lower bound means
    left-censored, onset in (0, upper] (noted in ``warnings``). Only a row with neither bound carries
    no information: it is left out, counted in ``n_missing`` and in ``warnings`` (also a UserWarning),
    as R's default na.action drops it. (Earlier hostats refused any missing bound and told the user to
    drop those rows.) An upper bound of 0 (a positive image on the index
    day: interval (0, 0]) is an EstimationError naming the rows: HO visible at the index date was present
    before it (prevalent), so it has no onset after the index event, and the Weibull density is 0 there.
    Exclude such rows and report how many (the analysis section does).

    Methods: (1) Turnbull's nonparametric maximum-likelihood estimate over the innermost intervals (the
    solution of Turnbull's self-consistency equations); the NPMLE fixes the mass of each innermost interval,
    not where inside it, so the curve is reported at the right ends (F jumps by each interval's mass
    there). It is computed by the constrained Newton method of Wang (2007) (EM with SQUAREM acceleration
    for very large problems), to the Kuhn-Tucker condition, on the distinct intervals with their counts.
    Limits of the curve and of the NPMLE median are bootstrap percentiles (``n_boot`` multinomial
    resamples of the distinct intervals, e.g. 200, with the numpy Generator seeded by ``seed``); with the
    default ``n_boot=0`` they are NaN and a warning says so.
    (2) A Weibull model fitted by maximum likelihood (lifelines ``WeibullFitter.fit_interval_censoring`` on
    the distinct intervals with frequency weights; S(t) = exp(-(t/lambda)^rho)) with Wald limits, and its
    median lambda (ln 2)^(1/rho) with a delta-method limit on the log scale; and a log-normal model
    (log T ~ N(mu, sigma^2), lifelines ``LogNormalFitter``) with median exp(mu). Their AICs (rows
    ``aic_weibull``, ``aic_lognormal``) say which shape the data prefer; the NPMLE assumes neither.
    Reference: Turnbull 1976 JRSS-B 38:290; Wang Y. 2007 JRSS-B 69:185; lifelines (Davidson-Pilon 2019).
    """
    from lifelines import LogNormalFitter, WeibullFitter
    from threadpoolctl import threadpool_limits

    level = check_level(level)
    lo, hi, keep, censored = _bounds(data, lower, upper)
    warns: list[str] = []
    if censored["missing"]:
        if censored["missing"] == len(data):
            raise DataError(f"interval_censored: no row has a lower or an upper bound in {lower!r}/{upper!r}",
                            column=lower)
        msg = (f"complete-case analysis: {censored['missing']} of {len(data)} rows dropped with neither bound "
               f"known (missing {lower!r} and missing or infinite {upper!r}); a missing upper bound alone is "
               "right-censoring and a missing lower bound alone left-censoring, kept as R's interval2 does")
        warnings.warn(f"interval_censored: {msg}", UserWarning, stacklevel=2)
        warns.append(msg)
        data, lo, hi = data.loc[keep], lo[keep], hi[keep]
    if censored["left_censored"]:
        warns.append(f"{censored['left_censored']} row(s) with a missing lower bound {lower!r} taken as "
                     "left-censored: onset in (0, upper], as R's Surv(type = 'interval2') reads NA")
    n = lo.size
    if not np.any(np.isfinite(hi)):
        raise EstimationError(f"no finite upper bound in {upper!r}: no onset was observed, so the onset "
                              "distribution cannot be estimated")
    prevalent = hi == 0
    if prevalent.any():
        raise EstimationError(
            f"rows {_rows(prevalent, data.index)} have a positive image on day 0 (interval (0, 0] in "
            f"{lower!r}/{upper!r}): HO visible at the index date was already present (prevalent), so it has "
            "no onset time after the index event and the Weibull model needs positive times; exclude these "
            "rows and report how many")
    adjust: dict[str, int] = {}
    if detection_lag_days is not None:
        lo, hi, adjust = _shift_by_lag(data, lo, hi, detection_lag_days, lower_modality, upper_modality,
                                       float(min_onset_days))
        lag_text = ", ".join(f"{k} {float(v):g}" for k, v in detection_lag_days.items())
        if adjust["early"]:
            warns.append(f"{adjust['early']} upper bound(s) fell below {min_onset_days:.1f} days after the "
                         f"detection-lag shift ({lag_text} days) and were set to {min_onset_days:.1f}: onset "
                         "right after the index event")
        if adjust["inverted"]:
            warns.append(f"{adjust['inverted']} interval(s) were inverted by the detection-lag shift (a negative "
                         "image shortly before a positive one of a modality with a longer lag) and were used "
                         "with their bounds swapped")
    with threadpool_limits(1, user_api="blas"):   # many small m x m problems: threads only contend
        tb = _Turnbull(lo, hi)
        p, iters = tb.fit(tb.counts, tol=tol, max_iter=max_iter)
        if tb.kkt > tol:
            warns.append(f"Turnbull fit stopped after {iters} iterations short of convergence (Kuhn-Tucker "
                         f"gap {tb.kkt:.1e} > tol={tol:g})")
        cdf = np.cumsum(p)

        alpha = 1.0 - level
        boot_cdf = None
        if n_boot > 0:
            rng = np.random.default_rng(seed)
            bc = rng.multinomial(n, tb.counts / n, size=int(n_boot)).astype(float)
            # each replicate is refitted to convergence, warm-started at the NPMLE
            if tb.small:
                pb = np.vstack([tb.cnm(row, tol=max(tol, 1e-7), max_iter=max_iter, start=p)[0] for row in bc])
            else:
                pb, _ = tb.em(bc, tol=max(tol, 1e-7), max_iter=20 * max_iter, start=0.99 * p + 0.01 / tb.m)
            boot_cdf = np.cumsum(pb, axis=1)
            ci_lo = np.quantile(boot_cdf, alpha / 2, axis=0)
            ci_hi = np.quantile(boot_cdf, 1 - alpha / 2, axis=0)
        else:
            ci_lo = ci_hi = np.full(tb.m, np.nan)
            warns.append("n_boot=0: the NPMLE curve and median have no confidence limits (NaN)")

    turnbull = pd.DataFrame({"lower": tb.left, "upper": tb.right, "exact": tb.exact_left, "mass": p,
                             "estimate": cdf})
    keep = p > 1e-12
    at_risk = n - np.searchsorted(np.sort(lo), tb.right[keep], side="left")   # rows with lo >= time
    curve = pd.DataFrame({"group": "all", "time": tb.right[keep], "estimate": cdf[keep],
                          "ci_lower": ci_lo[keep], "ci_upper": ci_hi[keep], "n_at_risk": at_risk,
                          "interval_lower": tb.left[keep], "mass": p[keep]})
    curve = curve[np.isfinite(curve["time"])].reset_index(drop=True)

    # Weibull (lifelines) on the distinct intervals, frequency-weighted: same likelihood, a fraction of the rows
    pairs, counts = np.unique(np.column_stack([lo, hi]), axis=0, return_counts=True)
    wf = _fit_parametric(WeibullFitter(alpha=alpha), "Weibull", pairs, counts, warns)
    summ = wf.summary
    z = z_value(level)
    lam, rho = float(wf.lambda_), float(wf.rho_)
    cov = wf.variance_matrix_.loc[["lambda_", "rho_"], ["lambda_", "rho_"]].to_numpy()
    ln2 = np.log(2.0)
    med = lam * ln2 ** (1.0 / rho)
    grad = np.array([1.0 / lam, -np.log(ln2) / rho ** 2])          # d log(median) / d (lambda, rho)
    se_log_med = float(np.sqrt(grad @ cov @ grad))

    # log-normal (lifelines) on the same intervals: onset times in the HO literature are right-skewed, and
    # the two parametric shapes disagreeing is itself worth seeing (AIC rows)
    lf = _fit_parametric(LogNormalFitter(alpha=alpha), "log-normal", pairs, counts, warns)
    mu, sig = float(lf.mu_), float(lf.sigma_)
    se_mu, se_sig = float(lf.summary.loc["mu_", "se(coef)"]), float(lf.summary.loc["sigma_", "se(coef)"])

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
        {"measure": "lognormal_mu_log_days", "estimate": mu, "ci_lower": mu - z * se_mu, "ci_upper": mu + z * se_mu,
         "std_error": se_mu},
        {"measure": "lognormal_sigma", "estimate": sig, "ci_lower": sig - z * se_sig, "ci_upper": sig + z * se_sig,
         "std_error": se_sig},
        {"measure": "median_onset_lognormal", "estimate": np.exp(mu), "ci_lower": np.exp(mu - z * se_mu),
         "ci_upper": np.exp(mu + z * se_mu), "std_error": se_mu},
        {"measure": "aic_weibull", "estimate": float(wf.AIC_), "ci_lower": np.nan, "ci_upper": np.nan},
        {"measure": "aic_lognormal", "estimate": float(lf.AIC_), "ci_lower": np.nan, "ci_upper": np.nan},
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
    if detection_lag_days is None:
        estimand, method = "first positive imaging", ("Turnbull NPMLE, Weibull and log-normal "
                                                      "(interval-censored time to radiological visibility)")
        reference = TURNBULL_REFERENCE
    else:
        estimand = "onset (detection-lag corrected)"
        method = ("Turnbull NPMLE, Weibull and log-normal (interval-censored onset, imaging bounds shifted by the "
                  "detection lag)")
        reference = f"{TURNBULL_REFERENCE}; {DETECTION_LAG_REFERENCE}"
    return IntervalCensoredResult(
        _table=tidy(table), level=level, method=method, reference=reference, fitted=wf, warnings=warns,
        curve=curve, turnbull=turnbull, iterations=iters, n_boot=int(n_boot), estimand=estimand,
        lag_adjustments=adjust, n_missing=censored["missing"], censoring=censored)


__all__ = ["interval_censored", "IntervalCensoredResult", "DETECTION_LAG_DAYS"]
