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
