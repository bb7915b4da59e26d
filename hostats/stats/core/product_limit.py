"""The one (weighted) Aalen-Johansen product-limit kernel (from rows: ``product_limit``; from counts per
distinct time: ``product_limit_counts``), shared by the cumulative incidence
(:mod:`hostats.stats.competing.cif_fine_gray`), the restricted means (:mod:`hostats.stats.survival.restricted_mean`)
and the IPTW absolute risks (:mod:`hostats.stats.causal.absolute_risk`); each adds its own variance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProductLimit:
    """Counts, all-cause survival and cumulative incidences at the distinct times of one sample.

    Arrays are indexed by the distinct times ``time`` (t_1 < ... < t_m); ``index[i]`` is the position of row
    i's time. ``at_risk`` Y_j (weighted: sum of w_i with T_i >= t_j), ``n_at_risk`` the unweighted count,
    ``events[k]`` the weighted events of ``causes[k]`` at t_j, ``competing`` those of every other positive
    status, ``events_all`` d_j (all of them), ``survivors`` Y_j - d_j (computed as the weight still at risk
    after t_j plus the weight censored at t_j, so exactly 0 when the risk set is exhausted),
    ``survival`` S(t_j) and ``survival_minus`` S(t_j-), ``incidence[k]`` F_k(t_j). With ``tau`` the
    hazards after tau are 0 (S and F stay at their value at tau); ``inside`` marks t_j <= tau.
    """

    time: np.ndarray
    index: np.ndarray
    at_risk: np.ndarray
    n_at_risk: np.ndarray
    events: np.ndarray
    competing: np.ndarray
    events_all: np.ndarray
    survivors: np.ndarray
    inside: np.ndarray
    survival: np.ndarray
    survival_minus: np.ndarray
    incidence: np.ndarray


def _revcumsum(x: np.ndarray) -> np.ndarray:
    return x[::-1].cumsum()[::-1]


def product_limit_counts(at_risk: np.ndarray, events: np.ndarray, competing: np.ndarray | None = None,
                         survivors: np.ndarray | None = None,
                         inside: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """S(t_j), S(t_j-) and the cumulative incidences F_k(t_j) from counts at the distinct times t_j.

    ``at_risk`` Y_j, ``events`` d_kj (one row per cause of interest, or one vector), ``competing`` the other
    events (none if None), ``survivors`` Y_j - d_j (default: computed so; pass it exactly when a rounding
    remainder must not survive an exhausted risk set), ``inside`` the times whose hazards count (default all;
    after the last the curves stay flat). The product-limit recursion of :func:`product_limit`.
    """
    ev = np.atleast_2d(np.asarray(events, dtype=float))
    if survivors is None:
        d_all = ev.sum(axis=0) if competing is None else ev.sum(axis=0) + competing
        survivors = at_risk - d_all
    ratio = survivors / at_risk
    survival = np.cumprod(ratio if inside is None else np.where(inside, ratio, 1.0))
    survival_minus = np.r_[1.0, survival[:-1]]
    jumps = survival_minus * ev / at_risk
    incidence = np.cumsum(jumps if inside is None else np.where(inside, jumps, 0.0), axis=1)
    return survival, survival_minus, incidence


def product_limit(time: np.ndarray, status: np.ndarray, weights: np.ndarray | None = None,
                  causes: tuple[int, ...] = (1,), tau: float | None = None) -> ProductLimit:
    """The (weighted) Aalen-Johansen estimator of one sample, at every distinct time.

    Estimand: the all-cause event-free survival S(t) = P(T > t) and the cumulative incidence of each cause
    k in ``causes``, F_k(t) = P(T <= t, cause = k), with the other positive status codes competing and
    status 0 censored (independent censoring, conditional on nothing or on what the weights adjust for).
    Method: per distinct time t_j (ties exact, no jitter) the weighted number at risk Y_j and events d_kj by
    one sort (``np.unique``) and ``bincount``; S(t_j) = prod_{l <= j} (Y_l - d_l) / Y_l (the Kaplan-Meier
    product limit) and F_k(t_j) = sum_{l <= j} S(t_l-) d_kl / Y_l. Weights (e.g. IPTW) multiply each row's
    contribution to every count. Variances are the callers' (each needs a different one).
    Reference: Aalen OO, Johansen S. An empirical transition matrix for non-homogeneous Markov chains
    based on censored observations. Scand J Stat 1978;5:141-150; Kaplan EL, Meier P. JASA 1958;53:457-481.
    """
    t = np.asarray(time, dtype=float)
    s = np.asarray(status)
    one = np.ones_like(t) if weights is None else np.asarray(weights, dtype=float)
    u, inv = np.unique(t, return_inverse=True)
    m = u.size
    n_at_risk = _revcumsum(np.bincount(inv, minlength=m).astype(float))
    at_risk = _revcumsum(np.bincount(inv, weights=one, minlength=m))
    events = np.array([np.bincount(inv, weights=one * (s == c), minlength=m) for c in causes]).reshape(-1, m)
    competing = np.bincount(inv, weights=one * ((s > 0) & ~np.isin(s, causes)), minlength=m)
    events_all = events.sum(axis=0) + competing
    survivors = np.r_[at_risk[1:], 0.0] + np.bincount(inv, weights=one * (s == 0), minlength=m)
    inside = np.ones(m, bool) if tau is None else u <= tau
    survival, survival_minus, incidence = product_limit_counts(at_risk, events, competing, survivors,
                                                               None if tau is None else inside)
    return ProductLimit(time=u, index=inv, at_risk=at_risk, n_at_risk=n_at_risk, events=events,
                        competing=competing, events_all=events_all, survivors=survivors, inside=inside,
                        survival=survival, survival_minus=survival_minus, incidence=incidence)
