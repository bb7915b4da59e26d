"""Binomial-normal GLMM of meta_proportions(transform="glmm") against independent references.

References (all produced outside hostats; R is not needed at test time: the R values are stored in
tests/reference/meta_proportions.json by tests/reference/meta_proportions.R):
- [glmer] R 4.2.2, lme4 1.1.31:
  ``glmer(cbind(x, n - x) ~ 1 + (1 | study), family = binomial, nAGQ = 25,
  control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))``;
  mu = fixef(f)[1], se = sqrt(vcov(f)[1, 1]), tau2 = VarCorr(f)$study[1].
- [integrate] R 4.2.2 ``sum(log(integrate(function(u) dbinom(x, n, plogis(mu + u)) * dnorm(u, 0, tau),
  -Inf, Inf, rel.tol = 1e-12)$value))`` at the [glmer] estimates: the full marginal log-likelihood
  (binomial coefficients included; glmer's own logLik uses another constant).
- [metafor] R 4.2.2, metafor 3.8.1: ``rma.glmm(measure = "PLO", xi = x, ni = n, method = "ML")``, whose
  logLik equals the full one when tau2 = 0.
- [quad] scipy.integrate.quad of each study's integrand around its numerically found mode (independent of
  the Gauss-Hermite code).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from hostats.errors import EstimationError
from hostats.stats.meta.proportions import _glmm_loglik, _glmm_modes, meta_proportions
from tests.paths import REFERENCE

R = json.loads((REFERENCE / "meta_proportions.json").read_text())

# the reproducer of the bug report: 104/154 (and the 0/149, 0/126 studies) lie far from the pooled logit
REPRO_X = np.array([0, 0, 21, 7, 10, 104, 13, 12, 6, 13, 19, 14, 13, 10, 6, 9, 10, 6, 13, 5, 28, 2, 32, 11, 51,
                    4, 14, 4, 5, 21])
REPRO_N = np.array([149, 126, 159, 149, 143, 154, 144, 152, 130, 151, 171, 138, 147, 145, 148, 156, 158, 154,
                    156, 149, 137, 133, 152, 163, 157, 145, 153, 156, 168, 157])
ZEROS_X, ZEROS_N = np.array([0, 1, 0, 4, 9, 2, 0]), np.array([12, 30, 25, 28, 31, 40, 18])
EDGE_X, EDGE_N = np.array([0, 4, 9, 16, 20]), np.array([10, 10, 15, 20, 20])
HOMOG_X, HOMOG_N = np.array([10, 11, 9, 10, 12, 10]), np.full(6, 100)

# data, then [glmer] mu, se, tau2 and the [integrate] log-likelihood at those estimates
R_REFERENCE = {
    name: (x, n, *(R["glmer"][name][k] for k in ("mu", "std_error", "tau2", "loglik_integrate")))
    for name, x, n in (("reproducer", REPRO_X, REPRO_N), ("zero_events", ZEROS_X, ZEROS_N),
                       ("zero_and_all_events", EDGE_X, EDGE_N))
}


def _quad_loglik(mu: float, tau: float, x: np.ndarray, n: np.ndarray) -> float:
    """[quad]: per-study adaptive QUADPACK integration, split at the integrand's mode (found by a bounded
    scalar search) so that the narrow peak of a large study is not missed."""
    total = 0.0
    for xi, ni in zip(x, n, strict=True):
        log_c = special.gammaln(ni + 1) - special.gammaln(xi + 1) - special.gammaln(ni - xi + 1)

        def log_f(u: float, xi: float = xi, ni: float = ni, log_c: float = log_c) -> float:
            eta = mu + u
            return log_c + xi * eta - ni * np.logaddexp(0.0, eta) + stats.norm.logpdf(u, 0.0, tau)

        half = 20 * tau + 8
        mode = optimize.minimize_scalar(lambda u: -log_f(u), bounds=(-half, half), method="bounded",
                                        options={"xatol": 1e-12}).x
        top = log_f(mode)
        value = integrate.quad(lambda u, top=top: np.exp(log_f(u) - top), mode - half, mode + half,
                               points=[mode], limit=500, epsabs=0.0, epsrel=1e-12)[0]
        total += np.log(value) + top
    return float(total)


@pytest.mark.parametrize("name", list(R_REFERENCE))
def test_glmm_fit_matches_lme4_glmer(name):
    x, n, mu, se, tau2, loglik = R_REFERENCE[name]
    g = meta_proportions(x, n, transform="glmm")
    assert g.estimate_transformed == pytest.approx(mu, abs=2e-5)       # [glmer]
    assert g.tau2 == pytest.approx(tau2, rel=1e-4)                      # [glmer]
    assert g.std_error == pytest.approx(se, rel=1e-4)                   # [glmer] vcov from the full Hessian
    assert g.loglik == pytest.approx(loglik, abs=1e-6)                  # [integrate]
    assert g.estimate == pytest.approx(special.expit(mu), abs=1e-5)
    assert g.warnings == ()


def test_glmm_reproducer_is_no_longer_stuck_at_the_wrong_optimum():
    # hostats before the fix returned mu = -1.884, tau2 = 2.12 (log-likelihood -117.26 by [quad])
    g = meta_proportions(REPRO_X, REPRO_N, transform="glmm")
    x, n = REPRO_X.astype(float), REPRO_N.astype(float)
    wrong = _quad_loglik(-1.8840506, np.sqrt(2.1234802), x, n)
    assert g.loglik > wrong + 5.0
    assert g.ci_lower < special.expit(R["glmer"]["reproducer"]["mu"]) < g.ci_upper


def test_glmm_homogeneous_studies_hit_the_boundary_tau2_zero():
    g = meta_proportions(HOMOG_X, HOMOG_N, transform="glmm")
    assert g.tau2 == 0.0                                                 # [glmer] singular fit, tau2 = 0
    ref = R["glmer"]["homogeneous"]
    assert g.estimate_transformed == pytest.approx(ref["mu"], abs=1e-8)  # [glmer]
    assert g.std_error == pytest.approx(ref["std_error"], rel=1e-7)     # [glmer]
    assert g.loglik == pytest.approx(R["rma_glmm_homogeneous"]["loglik"], abs=1e-8)  # [metafor] logLik
    assert any("boundary" in w for w in g.warnings)
    # tau2 = 0 is a maximum: the score in tau2 at 0 is negative and every small tau lowers the likelihood
    for tau in (1e-3, 0.05, 0.2):
        assert _glmm_loglik(g.estimate_transformed, tau, HOMOG_X.astype(float), HOMOG_N.astype(float)) < g.loglik


@pytest.mark.parametrize("mu, tau, x, n", [
    (-2.609, 1.0902, REPRO_X, REPRO_N),          # the point where the old quadrature gave -6072
    (-2.6, 0.1, np.array([104]), np.array([154])),
    (-2.6, 3.0, np.array([0, 104]), np.array([5000, 154])),
    (2.0, 0.01, np.array([0, 3, 150]), np.array([150, 3, 160])),
    (-6.0, 2.0, np.array([0, 1, 5000]), np.array([5000, 2000, 5000])),
])
def test_glmm_likelihood_matches_per_study_quad(mu, tau, x, n):
    x, n = x.astype(float), n.astype(float)
    assert _glmm_loglik(mu, tau, x, n) == pytest.approx(_quad_loglik(mu, tau, x, n), abs=1e-6)


def test_glmm_mode_search_converges_where_plain_newton_oscillates():
    # plain Newton from u = 0 cycles between -59 and 124 for 104/154 at mu = -2.609, tau = 1.09
    x, n = np.array([104.0, 0.0, 5000.0, 1.0]), np.array([154.0, 5000.0, 5000.0, 2.0])
    for mu, tau in [(-2.609, 1.0902), (-8.0, 30.0), (3.0, 1e-4)]:
        u, s = _glmm_modes(mu, tau, x, n)
        score = x - n * special.expit(mu + u) - u / tau**2
        assert np.all(np.abs(score * s) < 1e-6)       # h'(mode) = 0 relative to the integrand's scale
        assert np.all(s > 0)


@pytest.mark.parametrize("name", ["reproducer", "zero_events"])
def test_glmm_estimate_is_the_maximum(name):
    x, n = R_REFERENCE[name][0], R_REFERENCE[name][1]
    g = meta_proportions(x, n, transform="glmm")
    mu, tau = g.estimate_transformed, np.sqrt(g.tau2)
    xf, nf = x.astype(float), n.astype(float)
    assert _glmm_loglik(mu, tau, xf, nf) == pytest.approx(g.loglik, abs=1e-10)
    for dm in (-1e-2, -1e-3, 0.0, 1e-3, 1e-2):
        for dt in (-1e-2, -1e-3, 0.0, 1e-3, 1e-2):
            if dm or dt:
                assert _glmm_loglik(mu + dm, tau + dt, xf, nf) < g.loglik
    # and a derivative-free maximisation of the same likelihood from elsewhere finds no higher point
    other = optimize.minimize(lambda th: -_glmm_loglik(th[0], abs(th[1]), xf, nf), [mu + 0.5, 2 * tau],
                              method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12})
    assert -other.fun <= g.loglik + 1e-9
    assert other.x[0] == pytest.approx(mu, abs=1e-4)


def test_glmm_standard_error_matches_a_numerical_hessian():
    # the SE comes from the analytic (Louis) information; check it against central differences of the
    # log-likelihood in (mu, tau2), a different parametrisation with the same (mu, mu) inverse element
    x, n = ZEROS_X.astype(float), ZEROS_N.astype(float)
    g = meta_proportions(ZEROS_X, ZEROS_N, transform="glmm")
    theta = np.array([g.estimate_transformed, g.tau2])
    f = lambda th: _glmm_loglik(th[0], np.sqrt(th[1]), x, n)  # noqa: E731
    h = 1e-3
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)) / (
                4 * h * h)
    assert g.std_error == pytest.approx(np.sqrt(np.linalg.inv(-hess)[0, 0]), rel=1e-4)


def test_glmm_does_not_depend_on_study_order_and_is_reproducible():
    order = np.random.default_rng(3).permutation(REPRO_X.size)
    a = meta_proportions(REPRO_X, REPRO_N, transform="glmm")
    b = meta_proportions(REPRO_X[order], REPRO_N[order], transform="glmm")
    c = meta_proportions(REPRO_X, REPRO_N, transform="glmm")
    assert (b.estimate_transformed, b.tau2, b.std_error) == pytest.approx(
        (a.estimate_transformed, a.tau2, a.std_error), rel=1e-7)
    assert (c.estimate_transformed, c.tau2, c.std_error) == (a.estimate_transformed, a.tau2, a.std_error)


def test_glmm_unbounded_heterogeneity_is_a_clear_error():
    # studies at 0 and all events only: the likelihood keeps rising as tau -> infinity
    with pytest.raises(EstimationError, match="tau2 exceeds .* not estimable"):
        meta_proportions([0, 10, 0, 10], [10, 10, 10, 10], transform="glmm")
