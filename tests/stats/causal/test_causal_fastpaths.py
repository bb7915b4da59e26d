"""The fast paths of iptw (the vectorised Newton propensity fit wrapped in statsmodels results without a
refit, blockwise information, outcome models by the project's Newton) give the same estimates as
statsmodels fitting from scratch and the textbook block formula (closed form / refit)."""
import numpy as np
import pandas as pd
import pytest

from hostats.stats.causal import weighting as causal


def _data(n=4000, seed=11):
    rng = np.random.default_rng(seed)
    age = rng.normal(65, 10, n)
    sex = rng.choice(["female", "male"], n)
    lin = np.column_stack([np.zeros(n), -0.5 + 0.03 * (age - 65), 0.4 * (sex == "male"), 0.2 + 0 * age])
    p = np.exp(lin) / np.exp(lin).sum(axis=1, keepdims=True)
    arm = np.array(["none", "rt", "nsaid", "bis"])[(rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1)]
    y = rng.random(n) < 1 / (1 + np.exp(-(-1 + 0.02 * (age - 65) - 0.5 * (arm == "rt"))))
    return pd.DataFrame({"arm": arm, "age": age, "sex": sex, "y": y})


def test_warm_start_matches_statsmodels_from_scratch(monkeypatch):
    d = _data()
    warm_res = causal.iptw(d, "arm", ["age", "sex"], "y", reference="none")
    warm = warm_res.table()
    monkeypatch.setattr(causal, "WARM_START_N", 10 ** 12)   # statsmodels MNLogit.fit from zero
    cold_res = causal.iptw(d, "arm", ["age", "sex"], "y", reference="none")
    cold = cold_res.table()
    assert warm_res.fitted.mle_retvals["optimizer"] == "hostats vectorised Newton"
    assert cold_res.fitted.mle_retvals["converged"] and "optimizer" not in cold_res.fitted.mle_retvals
    np.testing.assert_allclose(np.asarray(warm_res.fitted.bse), np.asarray(cold_res.fitted.bse), rtol=1e-7)
    assert warm_res.fitted.llf == pytest.approx(cold_res.fitted.llf, rel=1e-12)
    num = ["estimate", "ci_lower", "ci_upper", "std_error"]
    np.testing.assert_allclose(warm[num].to_numpy(float), cold[num].to_numpy(float), rtol=1e-8, atol=1e-12)
    assert warm["measure"].tolist() == cold["measure"].tolist()


def test_information_equals_block_formula():
    rng = np.random.default_rng(2)
    n, p, K = 3001, 3, 4
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    P = rng.dirichlet(np.ones(K), n)
    want = np.zeros(((K - 1) * p, (K - 1) * p))
    for k in range(1, K):
        for m in range(1, K):
            want[(k - 1) * p:k * p, (m - 1) * p:m * p] = (X * (P[:, k] * ((k == m) - P[:, m]))[:, None]).T @ X
    np.testing.assert_allclose(causal._information(X, P), want, rtol=1e-12, atol=1e-9)


def test_warm_start_gives_up_under_separation():
    X = np.column_stack([np.ones(40), np.r_[np.zeros(20), np.ones(20)]])
    a = np.r_[np.zeros(20, int), np.ones(20, int)]
    assert causal._warm_start(X, a, 2) is None


@pytest.mark.parametrize("K", [2, 3])
def test_newton_beta_is_the_statsmodels_optimum(K):
    d = _data(2000, seed=K)
    d = d[d["arm"].isin(["none", "rt", "nsaid"][:K])]
    X = np.column_stack([np.ones(len(d)), d["age"], d["sex"] == "male"]).astype(float)
    a = d["arm"].map({"none": 0, "rt": 1, "nsaid": 2}).to_numpy()
    import statsmodels.api as sm

    model = sm.Logit((a == 1).astype(float), X) if K == 2 else sm.MNLogit(a, X)
    fit = model.fit(disp=0, method="newton", maxiter=200)
    beta = causal._warm_start(X, a, K)
    np.testing.assert_allclose(beta, np.asarray(fit.params).ravel(order="F"), rtol=1e-7, atol=1e-9)
    P, ours = causal._fit_logistic(X, a, K, [])
    np.testing.assert_allclose(np.asarray(ours.params), np.asarray(fit.params), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.bse), np.asarray(fit.bse), rtol=1e-7)
    np.testing.assert_allclose(P[:, 1:].reshape(len(a), -1) if K > 2 else P[:, 1],
                               np.asarray(fit.predict(X))[:, 1:] if K > 2 else fit.predict(X), atol=1e-9)


def test_newton_starts_at_the_intercept_only_fit_in_closed_form():
    d = _data(6000, seed=4)
    X = np.column_stack([np.ones(len(d)), d["age"], d["sex"] == "male"]).astype(float)
    a = d["arm"].map({"none": 0, "rt": 1, "nsaid": 2, "bis": 3}).to_numpy()
    start, (P, info, grad) = causal._marginal_start(X, a, 4)
    # the probabilities, information and gradient at the start, computed the long way
    P_ref = causal._mnlogit_probabilities(X, start, 4)
    np.testing.assert_allclose(P, P_ref, rtol=1e-12)
    np.testing.assert_allclose(info, causal._information(X, P_ref), rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(grad, (X.T @ (np.eye(4)[a][:, 1:] - P_ref[:, 1:])).T.ravel(), rtol=1e-9, atol=1e-7)
    fit = causal._newton_fit(X, a, 4)
    from_zero = causal._mnlogit_newton(X, a, 4, np.zeros(3 * X.shape[1]))
    np.testing.assert_allclose(fit[0], from_zero[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit[2], from_zero[2], rtol=1e-8)
    # without an intercept column: from zero, computed the long way
    assert causal._marginal_start(X[:, 1:], a, 4)[1] is None


def test_probabilities_without_and_with_overflow_guard():
    rng = np.random.default_rng(3)
    X = np.c_[np.ones(50), rng.normal(size=(50, 2))]
    for scale in (1.0, 400.0):   # the second puts linear predictors beyond 700: the guarded path
        beta = rng.normal(size=6) * scale
        lin = np.c_[np.zeros(50), X @ beta.reshape(2, 3).T]
        lin -= lin.max(axis=1, keepdims=True)
        want = np.exp(lin) / np.exp(lin).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(causal._mnlogit_probabilities(X, beta, 3), want, rtol=1e-12, atol=1e-300)


def test_outcome_models_are_the_statsmodels_glm_fits():
    import statsmodels.api as sm

    d = _data(3000, seed=5)
    res = causal.iptw(d, "arm", ["age", "sex"], "y", reference="none")
    X = np.column_stack([np.ones(len(d)), d["age"], d["sex"] == "male"]).astype(float)
    assert res.ps_terms == ("Intercept", "age", "sex[T.male]")
    for arm, fit in res.outcome_models.items():
        m = (d["arm"] == arm).to_numpy()
        ref = sm.GLM(d["y"].to_numpy(float)[m], X[m], family=sm.families.Binomial()).fit(tol=1e-13)
        np.testing.assert_allclose(np.asarray(fit.params), np.asarray(ref.params), rtol=1e-8)
        np.testing.assert_allclose(np.asarray(fit.bse), np.asarray(ref.bse), rtol=1e-7)


def test_direct_confounder_design_equals_the_formula_engine():
    from hostats.stats.core.formula import build_design

    rng = np.random.default_rng(21)
    n = 300
    d = pd.DataFrame({
        "age": rng.normal(60, 10, n), "dose": rng.integers(0, 4, n), "flag": rng.random(n) < 0.4,
        "site": rng.choice(["b", "A", "a", "C"], n),
        "grade": pd.Categorical(rng.choice(["high", "low"], n), categories=["low", "mid", "high"]),
    })
    cols = ["age", "dose", "flag", "site", "grade"]
    names, X = causal._direct_design(d, cols)
    design, ref = build_design(d, " + ".join(cols), " + ".join(cols), intercept=True)
    assert names == design.names
    np.testing.assert_array_equal(X, ref)
    # the engine is used where the direct coding is not known to agree
    assert causal._direct_design(d.assign(site=d.site.astype("string")), cols) is None
    assert causal._direct_design(d.assign(grade=pd.Categorical(rng.integers(1, 3, n))), cols) is None
    assert causal._direct_design(d.rename(columns={"age": "age.y"}), ["age.y"]) is None
    # and iptw gives the same result either way
    d["arm"] = rng.choice(["none", "rt", "nsaid"], n)
    d["y"] = rng.random(n) < 0.3
    res = causal.iptw(d, "arm", cols, "y")
    ref_res = causal.iptw(d, "arm", " + ".join(cols), "y")
    pd.testing.assert_frame_equal(res.table(), ref_res.table(), rtol=1e-10)
    assert res.ps_terms == ref_res.ps_terms


def test_statsmodels_results_built_when_first_read():
    d = _data(2000, seed=8)
    res = causal.iptw(d, "arm", ["age", "sex"], "y", reference="none")
    assert isinstance(res.__dict__["_fitted_value"], causal._PendingResults)
    assert all(isinstance(v, causal._PendingLogit) for v in res.outcome_models._models.values())
    assert res.fitted.mle_retvals["optimizer"] == "hostats vectorised Newton"
    assert res.fitted is res.fitted   # built once
    fits = dict(res.outcome_models)
    assert set(fits) == {"none", "rt", "nsaid", "bis"} and len(res.outcome_models) == 4
    assert all(np.all(np.isfinite(np.asarray(f.bse))) for f in fits.values())
    assert res.outcome_models["rt"] is fits["rt"]
