"""Per-distinct-time tie sums of the Efron fit (hostats.stats.core.cox_efron, issue 16) against the
textbook per-event loop: for every event time, every Efron term l = 0..d-1 with its own denominator,
mean and second moment (Efron 1977; Therneau & Grambsch 2000, section 3.3, as R's coxph computes them).
Heavily tied data (whole-day times), case weights, strata, and a last time where everyone at risk has
the event."""
from __future__ import annotations

import numpy as np
import pytest

from hostats.stats.core import cox_efron as efron


def _naive(X, time, event, w, strata, beta):
    """Log partial likelihood, score, information and per-event Schoenfeld means by explicit loops."""
    p = X.shape[1]
    eta = X @ beta
    r = w * np.exp(eta)
    ll, score, info = 0.0, np.zeros(p), np.zeros((p, p))
    means = {}
    for s in np.unique(strata):
        for t in np.unique(time[(strata == s) & event]):
            risk = (strata == s) & (time >= t)
            dead = risk & (time == t) & event
            d = int(dead.sum())
            wbar = w[dead].mean()
            S0, E0 = r[risk].sum(), r[dead].sum()
            S1, E1 = r[risk] @ X[risk], r[dead] @ X[dead]
            S2 = (X[risk] * r[risk, None]).T @ X[risk]
            E2 = (X[dead] * r[dead, None]).T @ X[dead]
            ll += w[dead] @ eta[dead]
            score += w[dead] @ X[dead]
            terms = []
            for ell in range(d):
                a = ell / d
                den = S0 - a * E0
                m = (S1 - a * E1) / den
                ll -= wbar * np.log(den)
                score -= wbar * m
                info += wbar * ((S2 - a * E2) / den - np.outer(m, m))
                terms.append(m)
            means[(s, t)] = np.mean(terms, axis=0)
    return ll, score, info, means


def _data(seed, n=400, p=3, strata=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    X[:, -1] = rng.integers(0, 2, n)  # a binary covariate as well
    t = np.ceil(rng.exponential(np.exp(-(X @ np.linspace(-0.5, 0.5, p)))) * 8)  # few distinct days: many ties
    c = np.ceil(rng.exponential(1.5, n) * 8)
    time = np.minimum(t, c)
    event = t <= c
    last = time == time.max()
    event[last] = True  # at the last time everyone at risk has the event (R0 = 0 for that group)
    w = np.round(rng.uniform(0.5, 2.0, n), 2)
    s = rng.integers(0, strata, n)
    return X, time, event, w, s


@pytest.mark.parametrize("seed,stratified,weighted", [(1, False, False), (2, True, True), (3, False, True)])
def test_tie_sums_equal_per_event_loop(seed, stratified, weighted):
    X, time, event, w, s = _data(seed)
    assert np.bincount(np.unique(time, return_inverse=True)[1], weights=event).max() >= 10  # heavily tied
    if not weighted:
        w = np.ones_like(w)
    if not stratified:
        s = np.zeros_like(s)
    beta = np.array([0.3, -0.2, 0.5])
    dat = efron.prepare(X.copy(), time, event, w, s if stratified else None)
    pc = efron.evaluate(dat, beta)
    ll, score, info, means = _naive(X, time, event, w, s, beta)
    assert pc.loglik == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(pc.score, score, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(pc.info, info, rtol=1e-10, atol=1e-10)
    # Schoenfeld residuals: x_i minus the mean of the Efron means of its group
    sres = efron.schoenfeld(dat, pc)
    srt = dat.rseg if stratified else np.zeros(dat.time.size, dtype=int)
    want = np.array([X[dat.order[i]] - means[(srt[i], dat.time[i])] for i in dat.ev])
    np.testing.assert_allclose(sres, want, rtol=1e-10, atol=1e-10)
    # the per-term means formed on demand agree with the group sums
    m = efron.term_means(dat, pc)
    np.testing.assert_allclose(np.add.reduceat(m, dat.evstart, axis=0) / dat.d[:, None],
                               X[dat.order[dat.ev]][dat.evstart] - dat.center - sres[dat.evstart], atol=1e-12)


def test_information_with_time_function_is_weighted_sum():
    """information(f) = sum_k f_k V_k (the cox.zph blocks): linear in f, and f = 1 is the information."""
    X, time, event, w, _ = _data(4, strata=1)
    dat = efron.prepare(X.copy(), time, event, w, None)
    pc = efron.evaluate(dat, np.array([0.1, 0.2, -0.3]))
    f = np.linspace(-1, 2, dat.d.size)
    np.testing.assert_allclose(efron.information(dat, pc, np.ones(dat.d.size)), pc.info, rtol=1e-12)
    parts = [efron.information(dat, pc, np.eye(dat.d.size)[k]) for k in range(dat.d.size)]
    np.testing.assert_allclose(efron.information(dat, pc, f), sum(fk * v for fk, v in zip(f, parts, strict=True)),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["days", "wide", "fractional"])
def test_time_order_is_the_stable_sort(kind):
    rng = np.random.default_rng(11)
    t = {"days": np.ceil(rng.exponential(300, 5000)) + 40_000,  # offset: only the span counts
         "wide": np.ceil(rng.exponential(1e5, 5000)),           # span beyond 16 bits: the float sort
         "fractional": np.round(rng.exponential(3, 5000), 1)}[kind]
    np.testing.assert_array_equal(efron._time_order(t), np.argsort(t, kind="stable"))
