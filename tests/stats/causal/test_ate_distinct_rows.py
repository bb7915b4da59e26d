"""The g-formula and AIPW of hostats.ate compute each predicted curve once per distinct covariate row
(cause_specific.distinct_rows) instead of once per patient. Checked against the per-patient computation
and against a straightforward loop implementation of the estimators, on a small cohort with tied times
(whole days, events and censorings on the same days) and a few covariate patterns."""
import numpy as np
import pandas as pd
import pytest

from hostats.stats.causal import absolute_risk as ar
from hostats.stats.competing import cause_specific as csc
from hostats.stats.core.censoring_weights import censoring_km


def _cohort(n=600, seed=5):
    rng = np.random.default_rng(seed)
    age = rng.choice([48.5, 61.0, 70.2, 83.9], n)
    male = rng.integers(0, 2, n)
    lin = np.column_stack([np.zeros(n), 0.03 * (age - 65), -0.4 + 0.5 * male])
    p = np.exp(lin) / np.exp(lin).sum(axis=1, keepdims=True)
    arm = (rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1)
    t1 = rng.exponential(300 * np.exp(-0.02 * (age - 65) + 0.5 * (arm > 0)))
    t2 = rng.exponential(900 * np.exp(-0.04 * (age - 65)))
    c = rng.uniform(20, 500, n)
    t = np.ceil(np.minimum.reduce([t1, t2, c]) / 7) * 7        # weekly: many ties across statuses
    status = np.select([t1 <= np.minimum(t2, c), t2 <= c], [1, 2], 0)
    return pd.DataFrame({"A": np.array(["none", "rt", "nsaid"])[arm], "age": age, "male": male,
                         "time": t, "status": status})


def test_distinct_rows_reconstruct_the_rows():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.choice([0.0, 1.0], 500), rng.choice([2.5, -1.0, 7.0], 500), np.ones(500)])
    U, inv = csc.distinct_rows(X)
    np.testing.assert_array_equal(U[inv], X)
    assert len({tuple(r) for r in U}) == U.shape[0] == len({tuple(r) for r in X})
    # a combined key beyond 2^62 (five columns of 20,000 distinct values) is renumbered on the way
    Y = rng.normal(size=(20_000, 5))
    Y[::2] = Y[1::2]
    U, inv = csc.distinct_rows(Y)
    np.testing.assert_array_equal(U[inv], Y)
    assert U.shape[0] == 10_000


def _models(d, horizon):
    X = np.column_stack([d["A"] == "rt", d["A"] == "nsaid", d["age"], d["male"]]).astype(float)
    t, s = d["time"].to_numpy(float), d["status"].to_numpy()
    grid = np.unique(t[(s > 0) & (t <= horizon)])
    return X, t, s, grid, [csc.fit_cause(X, t, s, c, grid, "test") for c in (1, 2)]


def test_standardised_risk_per_distinct_row_equals_per_patient():
    d = _cohort()
    X, t, s, grid, models = _models(d, 364.0)
    for k in range(3):
        Xa = X.copy()
        Xa[:, :2] = np.eye(3)[k][1:]
        mu0, phi0, F0 = csc.standardised_risk(models, 0, Xa, t, s, grid)
        U, inv = csc.distinct_rows(Xa)
        assert U.shape[0] == 8
        mu1, phi1, F1 = csc.standardised_risk(models, 0, U, t, s, grid, inverse=inv)
        assert mu1 == pytest.approx(mu0, rel=1e-13)
        np.testing.assert_allclose(F1[inv], F0, rtol=1e-13)
        np.testing.assert_allclose(phi1, phi0, rtol=1e-9, atol=1e-15 * np.abs(phi0).max())


def _curve(models, x):
    """F_1(t_m | x) and S(t_m- | x) on the grid by the product limit, one time after the other."""
    e = [np.exp((x - m.center) @ m.beta - m.shift) for m in models]
    F, S = np.zeros(models[0].grid.size), np.zeros(models[0].grid.size)
    surv, cum = 1.0, 0.0
    for i in range(models[0].grid.size):
        S[i] = surv
        cum += surv * e[0] * models[0].dhaz[i]
        F[i] = cum
        surv *= max(0.0, 1.0 - sum(ej * m.dhaz[i] for ej, m in zip(e, models, strict=True)))
    return F, S, surv


def test_gformula_and_aipw_equal_a_straightforward_loop():
    d = _cohort()
    tau = 364.0
    res = ar.ate(d, "A", ["age", "male"], "time", "status", tau, reference="none",
                 methods=["gformula", "aipw"])
    X, t, s, grid, models = _models(d, tau)
    levels = res.levels
    a = np.array([levels.index(v) for v in d["A"]])
    design = {"none": [0, 0], "rt": [1, 0], "nsaid": [0, 1]}   # the design's dummy order: rt, nsaid
    w = res.weights.to_numpy()
    y = (s == 1) & (t <= tau)
    km = censoring_km(t, s, a)
    risks = res.risks().set_index(["method", "group"])["estimate"]
    for k, arm in enumerate(levels):
        F_tau = np.empty(len(d))
        aug = np.zeros(len(d))
        for i in range(len(d)):
            x = np.r_[design[arm], d["age"].iloc[i], d["male"].iloc[i]]
            F, S, S_end = _curve(models, x)
            F_tau[i] = F[-1]
            if a[i] != k:
                continue
            # the censoring martingale of patient i in its arm, up to min(T_i, tau)
            same = a == k
            for u in np.unique(t[same & (s == 0) & (t <= tau)]):
                if u > t[i]:
                    break
                at_risk = np.sum(same & (t >= u))
                dlc = np.sum(same & (t == u) & (s == 0)) / at_risk
                g_minus = np.prod([1 - np.sum(same & (t == v) & (s == 0)) / np.sum(same & (t >= v))
                                   for v in np.unique(t[same & (t < u)])])
                Fu = F[grid <= u][-1] if (grid <= u).any() else 0.0
                Su = S[grid >= u][0] if (grid >= u).any() else S_end
                h = (F[-1] - Fu) / (Su * g_minus) if Su > 0 else 0.0
                aug[i] += h * (float(t[i] == u and s[i] == 0) - dlc)
        assert risks[("gformula", arm)] == pytest.approx(F_tau.mean(), rel=1e-10)
        zeta = F_tau + (a == k) * w * (y / km.g_minus - F_tau + aug)
        assert risks[("aipw", arm)] == pytest.approx(zeta.mean(), rel=1e-10)
