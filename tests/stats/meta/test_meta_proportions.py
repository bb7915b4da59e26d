"""meta_proportions: logit, Freeman-Tukey (Miller's back-transformation) and the binomial-normal GLMM.

References:
- [miller] metafor tests/testthat/test_analysis_example_miller1978.r (Miller JJ. The inverse of the
  Freeman-Tukey double arcsine transformation. Am Stat 1978;32:138): the PFT values of page 138, the
  equal-effects estimate back-transformed with the harmonic mean of n (transf.ipft.hm) = 0.3595, and for a
  second data set with 0 and n events 0.6886 (0.5734, 0.7943); transf.ipft recovers x/n exactly. Re-computed
  with metafor in tests/reference/meta_proportions.R (meta_proportions.json).
- The GLMM has no published fit whose data we could copy, so it is checked three independent ways: its
  marginal likelihood against brute-force integration on a dense grid, its maximum against a Nelder-Mead
  maximisation of that brute-force likelihood, and recovery of known parameters in a simulation.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import optimize, special, stats

from hostats.errors import EstimationError
from hostats.stats.meta import meta_effects
from hostats.stats.meta.proportions import _ft, _glmm_loglik, ft_back, meta_proportions
from tests.paths import REFERENCE

FT = json.loads((REFERENCE / "meta_proportions.json").read_text())["freeman_tukey"]

MILLER_X, MILLER_N = np.array([3, 6, 10, 1]), np.array([11, 17, 21, 6])
EDGE_X, EDGE_N = np.array([0, 4, 9, 16, 20]), np.array([10, 10, 15, 20, 20])


def test_freeman_tukey_values_match_miller_page_138():
    yi = _ft(MILLER_X.astype(float), MILLER_N.astype(float))
    assert yi * 2 == pytest.approx(FT["miller_yi_times2"], abs=5e-5)   # [miller]
    assert 4 / (4 * MILLER_N + 2) == pytest.approx(FT["miller_vi_times4"], abs=5e-5)


def test_freeman_tukey_pooled_with_harmonic_mean_back_transform_matches_metafor():
    r = meta_proportions(MILLER_X, MILLER_N, method="FE", transform="ft")
    assert r.estimate == pytest.approx(FT["miller_ee_estimate"], abs=5e-5)  # [miller] weighted EE model
    r = meta_proportions(EDGE_X, EDGE_N, method="EE", transform="ft")
    assert (r.estimate, r.ci_lower, r.ci_upper) == pytest.approx(tuple(FT["edge_ee"].values()), abs=5e-5)
    assert r.warnings == () or not any("continuity" in w for w in r.warnings)  # FT needs no correction


def test_freeman_tukey_inverse_recovers_each_proportion():
    t = _ft(EDGE_X.astype(float), EDGE_N.astype(float))
    back = [float(ft_back(ti, ni)) for ti, ni in zip(t, EDGE_N, strict=True)]
    assert back == pytest.approx([0.0, 0.4, 0.6, 0.8, 1.0], abs=1e-12)  # [miller]


def test_logit_continuity_only_for_zero_or_all_event_studies():
    r = meta_proportions(EDGE_X, EDGE_N, method="DL")
    # studies 2-4 are untouched: log(x / (n - x)) and 1/x + 1/(n - x)
    assert r.yi[1:4] == pytest.approx(np.log(EDGE_X[1:4] / (EDGE_N[1:4] - EDGE_X[1:4])))
    assert r.vi[1:4] == pytest.approx(1 / EDGE_X[1:4] + 1 / (EDGE_N[1:4] - EDGE_X[1:4]))
    # studies 1 and 5 (0/10 and 20/20) get 0.5 added to events and non-events, and are named
    assert r.yi[0] == pytest.approx(np.log(0.5 / 10.5)) and r.yi[4] == pytest.approx(np.log(20.5 / 0.5))
    assert list(r.corrected) == [True, False, False, False, True]
    assert any("continuity correction 0.5" in w and "1, 5" in w for w in r.warnings)
    fd = r.forest_data()
    assert list(fd.continuity_corrected.iloc[:5]) == [True, False, False, False, True]


def test_logit_pooling_equals_meta_effects_on_the_log_odds_and_back_transforms():
    x, n = np.array([2, 5, 11, 3, 8]), np.array([40, 61, 90, 25, 70])
    y, v = np.log(x / (n - x)), 1 / x + 1 / (n - x)
    for method in ("FE", "DL", "REML", "PM"):
        r = meta_proportions(x, n, method=method)
        e = meta_effects(y, v, method=method)
        assert r.estimate_transformed == pytest.approx(e.estimate, rel=1e-12)
        assert r.tau2 == pytest.approx(e.tau2, abs=1e-12)
        assert r.estimate == pytest.approx(special.expit(e.estimate), rel=1e-12)
        assert (r.ci_lower, r.ci_upper) == pytest.approx(tuple(special.expit([e.ci_lower, e.ci_upper])))
        assert (r.pred_lower, r.pred_upper) == pytest.approx(tuple(special.expit([e.pred_lower,
                                                                                   e.pred_upper])))
    assert r.warnings == ()
    # FE closed form: inverse-variance weighted mean of the log odds
    fe = meta_proportions(x, n, method="FE")
    assert fe.estimate_transformed == pytest.approx(np.sum(y / v) / np.sum(1 / v))
    t = fe.table()
    assert t.loc[t.measure == "pooled", "events"].iloc[0] == x.sum()
    assert t.loc[t.measure == "pooled", "n"].iloc[0] == n.sum()
    assert t.loc[t.measure == "pooled", "studies"].iloc[0] == 5
    assert set(t.scale) == {"proportion", "logit"}


def test_logit_without_continuity_refuses_zero_event_studies():
    with pytest.raises(EstimationError, match="0 or all events"):
        meta_proportions(EDGE_X, EDGE_N, continuity=0)


@pytest.mark.parametrize("x, n, message", [
    ([1, 2], [10, 0], "totals is 0 for study 2"),
    ([11, 2], [10, 20], "events exceed totals for study 1"),
    ([1.5, 2], [10, 20], "whole numbers"),
    ([-1, 2], [10, 20], "non-negative"),
    ([1, np.nan], [10, 20], "events is missing"),
    ([1], [10], "at least 2 studies"),
])
def test_bad_counts_give_clear_errors(x, n, message):
    with pytest.raises(ValueError, match=message):
        meta_proportions(x, n)


def test_unknown_transform():
    with pytest.raises(ValueError, match="unknown transform"):
        meta_proportions([1, 2], [10, 20], transform="arcsine")


# ------------------------------------------------------------------------------------------ GLMM
def _loglik_grid(mu: float, tau: float, x: np.ndarray, n: np.ndarray, points: int = 200001) -> float:
    """Independent reference: the marginal likelihood by the trapezoid rule on a dense fixed grid (no
    adaptation, no Gauss-Hermite). QUADPACK (scipy.integrate.quad) was tried first and misses the narrow
    peak when tau is small and a study has 0 or n events, so a brute-force grid is used instead."""
    u = np.linspace(-12 * tau - 5, 12 * tau + 5, points)
    log_binom = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
    eta = mu + u[None, :]
    log_f = (log_binom[:, None] + x[:, None] * eta - n[:, None] * np.logaddexp(0, eta)
             + stats.norm.logpdf(u, 0, tau)[None, :])
    top = log_f.max(axis=1, keepdims=True)
    return float(np.sum(np.log(np.trapezoid(np.exp(log_f - top), u, axis=1)) + top[:, 0]))


@pytest.mark.parametrize("mu, tau", [(0.3, 2.0), (-1.0, 0.5), (0.5, 3.0), (-3.0, 0.1)])
def test_glmm_likelihood_matches_brute_force_integration(mu, tau):
    x, n = EDGE_X.astype(float), EDGE_N.astype(float)
    assert _glmm_loglik(mu, tau, x, n) == pytest.approx(_loglik_grid(mu, tau, x, n), abs=1e-6)
    big_x, big_n = np.array([3.0, 250.0, 40.0]), np.array([500.0, 2000.0, 90.0])
    assert _glmm_loglik(mu, tau, big_x, big_n) == pytest.approx(_loglik_grid(mu, tau, big_x, big_n),
                                                                abs=1e-6)


def test_glmm_maximum_matches_brute_force_maximisation():
    x, n = EDGE_X.astype(float), EDGE_N.astype(float)
    brute = optimize.minimize(lambda th: -_loglik_grid(th[0], abs(th[1]), x, n, points=40001), [0.0, 1.0],
                              method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-10})
    g = meta_proportions(EDGE_X, EDGE_N, transform="glmm")
    assert g.estimate_transformed == pytest.approx(brute.x[0], abs=1e-4)
    assert g.tau2 == pytest.approx(brute.x[1] ** 2, rel=1e-4)
    assert g.estimate == pytest.approx(special.expit(brute.x[0]), abs=1e-4)
    assert not any("continuity" in w for w in g.warnings)  # the exact likelihood needs no correction


def test_glmm_homogeneous_studies_reduce_to_pooled_logistic():
    # every study has the same proportion -> ML tau2 = 0 and mu = logit of the pooled proportion (closed form)
    x, n = np.array([2, 4, 6, 10]), np.array([20, 40, 60, 100])
    g = meta_proportions(x, n, transform="glmm")
    assert g.tau2 == 0.0
    assert g.estimate == pytest.approx(0.1, abs=1e-4)
    fe = meta_proportions(x, n, method="FE", transform="glmm")
    assert fe.estimate == pytest.approx(0.1, rel=1e-12)
    assert fe.std_error == pytest.approx(1 / np.sqrt(220 * 0.1 * 0.9), rel=1e-12)  # inverse information


def test_glmm_recovers_known_parameters_in_a_simulation():
    rng = np.random.default_rng(20261124)
    k, mu, tau2 = 60, -2.0, 0.5
    n = rng.integers(30, 300, k)
    x = rng.binomial(n, special.expit(mu + rng.normal(0.0, np.sqrt(tau2), k)))
    g = meta_proportions(x, n, transform="glmm")
    assert abs(g.estimate_transformed - mu) < 3 * g.std_error
    assert 0.25 < g.tau2 < 1.0            # sampling SD of the tau2 MLE at k = 60 is about 0.1
    assert g.ci_lower < special.expit(mu) < g.ci_upper
    assert g.pred_lower < g.ci_lower and g.pred_upper > g.ci_upper


def test_glmm_handles_rare_events_with_zero_studies():
    x, n = np.array([0, 0, 1, 0, 3, 2]), np.array([40, 25, 60, 30, 120, 80])
    g = meta_proportions(x, n, transform="glmm")
    assert 0 < g.ci_lower < g.estimate < g.ci_upper < 0.2
    with pytest.raises(EstimationError, match="no study has an event"):
        meta_proportions([0, 0, 0], [10, 20, 30], transform="glmm")
    with pytest.raises(ValueError, match="maximum likelihood"):
        meta_proportions(x, n, transform="glmm", method="DL")


def test_leave_one_out_refits_on_the_proportion_scale():
    for transform in ("logit", "ft", "glmm"):
        r = meta_proportions(EDGE_X, EDGE_N, transform=transform)
        loo = r.leave_one_out()
        assert list(loo.omitted) == [1, 2, 3, 4, 5]
        direct = meta_proportions(EDGE_X[1:], EDGE_N[1:], transform=transform)
        assert loo.estimate.iloc[0] == pytest.approx(direct.estimate, rel=1e-10)
        assert ((loo.estimate > 0) & (loo.estimate < 1)).all()
