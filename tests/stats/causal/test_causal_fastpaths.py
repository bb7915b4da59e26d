"""The large-n paths of iptw (vectorised Newton warm start, blockwise information) give the same
estimates as the statsmodels-from-scratch path and the textbook block formula (closed form / refit)."""
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
    cold = causal.iptw(d, "arm", ["age", "sex"], "y", reference="none").table()
    monkeypatch.setattr(causal, "WARM_START_N", 0)
    warm = causal.iptw(d, "arm", ["age", "sex"], "y", reference="none").table()
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
    _, fit = causal._fit_logistic(X, a, K, [])
    beta = causal._warm_start(X, a, K)
    np.testing.assert_allclose(beta, np.asarray(fit.params).ravel(order="F"), rtol=1e-7, atol=1e-9)
