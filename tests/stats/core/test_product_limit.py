"""The shared product-limit kernel against closed forms: without censoring the Aalen-Johansen estimator is
the empirical distribution; integer weights are replicated rows; counts and rows give the same curves."""
from __future__ import annotations

import numpy as np

from hostats.stats.core.product_limit import product_limit, product_limit_counts


def test_without_censoring_it_is_the_empirical_distribution():
    rng = np.random.default_rng(3)
    t = rng.integers(1, 30, 500).astype(float)
    s = rng.choice([1, 2], 500, p=[0.3, 0.7])
    pl = product_limit(t, s, causes=(1, 2))
    emp_f1 = [(s[t <= u] == 1).sum() / 500 for u in pl.time]
    emp_surv = [(t > u).sum() / 500 for u in pl.time]
    np.testing.assert_allclose(pl.incidence[0], emp_f1, atol=1e-14)
    np.testing.assert_allclose(pl.survival, emp_surv, atol=1e-14)
    np.testing.assert_allclose(pl.incidence.sum(axis=0) + pl.survival, 1.0, atol=1e-14)


def test_integer_weights_are_replicated_rows_and_tau_stops_the_curves():
    rng = np.random.default_rng(4)
    t = rng.exponential(10, 300).round(1)
    s = rng.choice([0, 1, 2], 300)
    w = rng.integers(1, 4, 300)
    weighted = product_limit(t, s, w.astype(float), tau=8.0)
    rep = product_limit(np.repeat(t, w), np.repeat(s, w), tau=8.0)
    np.testing.assert_allclose(weighted.incidence, rep.incidence, rtol=1e-12)
    np.testing.assert_allclose(weighted.survival, rep.survival, rtol=1e-12)
    after = weighted.time > 8.0
    assert after.any() and np.all(weighted.incidence[0, after] == weighted.incidence[0, ~after][-1])


def test_counts_give_the_curves_of_the_rows():
    rng = np.random.default_rng(5)
    t = rng.integers(0, 50, 400).astype(float)
    s = rng.choice([0, 1, 3], 400)
    pl = product_limit(t, s)
    surv, surv_m, inc = product_limit_counts(pl.at_risk, pl.events[0], pl.competing)
    np.testing.assert_allclose(surv, pl.survival, rtol=1e-13)
    np.testing.assert_allclose(inc[0], pl.incidence[0], rtol=1e-13)
    assert np.all(pl.events_all == pl.events[0] + pl.competing)
