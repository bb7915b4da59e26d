"""The fast paths of logistic (issue 16): the blocked likelihood pass of the Newton iterations, the
class-wise column ranges of the separation check, and the linear program deferred until after the ML
fit (run only when that fit does not converge on a full step). Independent truth: the likelihood, score
and information written out in full, and the Konis linear program run before the fit as it used to be."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import hostats.stats.regression.logit as reg
from hostats.errors import EstimationError
from hostats.stats.regression.logit import logistic


@pytest.mark.parametrize("weighted,offset", [(False, False), (True, True)])
def test_blocked_likelihood_pass_equals_full_formulas(monkeypatch, weighted, offset):
    monkeypatch.setattr(reg, "_CHUNK", 37)  # many blocks, a short last one
    rng = np.random.default_rng(5)
    X = np.c_[np.ones(500), rng.normal(size=(500, 3))]
    y = (rng.random(500) < 0.3).astype(float)
    w = rng.uniform(0.2, 3, 500) if weighted else np.ones(500)
    off = rng.normal(size=500) if offset else None
    beta = np.array([-1.0, 0.3, -0.2, 0.5])
    ll, score, info = reg._ml_eval(X, y, w, beta, off, not weighted)
    eta = X @ beta + (0 if off is None else off)
    p = expit(eta)
    assert ll == pytest.approx(np.sum(w * (y * eta - np.log1p(np.exp(eta)))), rel=1e-12)
    np.testing.assert_allclose(score, X.T @ (w * (y - p)), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(info, (X * (w * p * (1 - p))[:, None]).T @ X, rtol=1e-11)


def test_class_ranges_equal_per_class_extremes(monkeypatch):
    monkeypatch.setattr(reg, "_CHUNK", 16)
    rng = np.random.default_rng(6)
    X = rng.normal(size=(101, 4))
    ev = rng.random(101) < 0.2
    ev[:40] = False  # whole blocks without events
    max0, min0, max1, min1 = reg._class_ranges(X, ev)
    np.testing.assert_array_equal(max0, X[~ev].max(axis=0))
    np.testing.assert_array_equal(min0, X[~ev].min(axis=0))
    np.testing.assert_array_equal(max1, X[ev].max(axis=0))
    np.testing.assert_array_equal(min1, X[ev].min(axis=0))


def test_linear_program_skipped_when_the_fit_converges(monkeypatch):
    rng = np.random.default_rng(8)
    d = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    d["y"] = (rng.random(400) < expit(-0.5 + d.a - d.b)).astype(int)
    calls = []
    real = reg.optimize.linprog
    monkeypatch.setattr(reg.optimize, "linprog", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = logistic(d, "y ~ a + b")
    assert calls == []  # converged on a full Newton step: no separation possible, no LP
    # the same fit as statsmodels' own Logit
    import statsmodels.api as sm

    ref = sm.Logit(d["y"].to_numpy(float), sm.add_constant(d[["a", "b"]].to_numpy())).fit(disp=0)
    np.testing.assert_allclose(res.coef.to_numpy(), ref.params, rtol=1e-8)
    logistic(d, "y ~ a + b", firth=True)  # Firth still checks before fitting (for its warning)
    assert calls


def test_quasi_complete_separation_found_by_linear_program_after_the_fit():
    rng = np.random.default_rng(9)
    d = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    s = d.a + d.b
    d["y"] = (s > 0).astype(int)
    tie = np.arange(80) < 10  # rows on the separating line, events and non-events: quasi-complete
    d.loc[tie, "b"] = -d.loc[tie, "a"]
    d.loc[tie, "y"] = np.arange(10) % 2
    a1, a0 = d.loc[d.y == 1, "a"], d.loc[d.y == 0, "a"]
    assert a1.min() < a0.max() and a0.min() < a1.max()  # no single term separates
    with pytest.raises(EstimationError, match=r"^quasi-complete separation: a, b.*firth=True"):
        logistic(d, "y ~ a + b")


# --- issue 16, second round: the intercept-only start, the checks from X'WX, the direct complete path,
# the statsmodels results and the c-statistic built when first read


@pytest.mark.parametrize("weighted", [False, True])
def test_intercept_start_equals_a_likelihood_pass(weighted):
    rng = np.random.default_rng(12)
    X = np.asfortranarray(np.c_[np.ones(300), rng.normal(size=(300, 3))])
    y = (rng.random(300) < 0.3).astype(float)
    w = rng.uniform(0.2, 3, 300) if weighted else np.ones(300)
    beta, (ll, score, info) = reg._intercept_start(X, y, w)
    assert np.all(beta[1:] == 0) and beta[0] == pytest.approx(np.log(np.sum(w * y) / np.sum(w * (1 - y))))
    ll_ref, score_ref, info_ref = reg._ml_eval(X, y, w, beta, None, not weighted)
    assert ll == pytest.approx(ll_ref, rel=1e-12)
    np.testing.assert_allclose(score, score_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(info, info_ref, rtol=1e-11)


def test_direct_path_equals_the_complete_case_path():
    rng = np.random.default_rng(13)
    d = pd.DataFrame({"a": rng.normal(size=600), "b": rng.integers(0, 5, 600)})
    d["y"] = (rng.random(600) < expit(-0.3 + d.a - 0.2 * d.b)).astype(int)
    missing = d.astype({"a": float}).copy()
    missing.loc[[3, 50], "a"] = np.nan  # the complete-case path
    with pytest.warns(UserWarning, match="complete-case"):
        res_missing = logistic(missing, "y ~ a + b")
    res = logistic(d.drop(index=[3, 50]), "y ~ a + b")  # the direct path
    assert res_missing.n_missing == 2 and res.n_missing == 0 and res.warnings == ()
    pd.testing.assert_frame_equal(res.table(), res_missing.table(), rtol=1e-12)
    assert res.concordance() == pytest.approx(res_missing.concordance(), rel=1e-12)
    inf = d.astype({"a": float}).copy()
    inf.loc[7, "a"] = np.inf
    with pytest.raises(Exception, match="not finite"):
        logistic(inf, "y ~ a + b")


def test_constant_and_collinear_terms_named_without_the_ranges():
    rng = np.random.default_rng(14)
    d = pd.DataFrame({"a": rng.normal(size=200), "c": 2.0, "z": 0.0})
    d["b"] = 2 * d.a
    d["y"] = (rng.random(200) < 0.4).astype(int)
    for rhs, msg in (("a + c", "term 'c' is constant"), ("a + z", "term 'z' is constant"),
                     ("a + b", "term 'b' is collinear")):
        with pytest.raises(EstimationError, match=msg):
            logistic(d, f"y ~ {rhs}")


def test_statsmodels_results_and_c_statistic_built_when_first_read():
    import statsmodels.api as sm

    rng = np.random.default_rng(15)
    d = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    d["y"] = (rng.random(500) < expit(0.2 + d.a - d.b)).astype(int)
    res = logistic(d, "y ~ a + b")
    assert res.__dict__["_fitted_value"] is None and res._c_stat is None
    ref = sm.Logit(d["y"].to_numpy(float), sm.add_constant(d[["a", "b"]].to_numpy())).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(res.fitted.params, ref.params, rtol=1e-9)
    np.testing.assert_allclose(res.fitted.bse, ref.bse, rtol=1e-7)
    np.testing.assert_allclose(res.table().std_error, ref.bse, rtol=1e-7)
    assert list(res.fitted.params.index) == ["Intercept", "a", "b"]
    want = reg.c_statistic(d["y"].to_numpy(float), res.linear_predictor(d).to_numpy())
    assert res.c_stat == want and res.concordance() == want["estimate"]


def test_separated_design_fails_after_a_bounded_number_of_steps(monkeypatch):
    d = pd.DataFrame({"a": np.r_[np.linspace(-3, -0.1, 50), np.linspace(0.1, 3, 50)], "b": np.tile([0, 1], 50)})
    d["y"] = (d.a > 0).astype(int)
    steps = []
    real = reg._ml_eval
    monkeypatch.setattr(reg, "_ml_eval", lambda *a, **k: steps.append(1) or real(*a, **k))
    with pytest.raises(EstimationError, match=r"^complete separation: a perfectly"):
        logistic(d, "y ~ a + b")
    assert len(steps) <= 31 * reg._SEPARATION_CHECK_AT  # not the 100 steps of a full run
