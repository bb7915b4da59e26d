"""IPTW tested against truth: simulations with known potential-outcome risks (truth by Gauss-Hermite
quadrature over the confounder distribution, not by the estimator), closed-form standardisation on a small
frame, and exact balance properties of overlap weights (Li, Morgan & Zaslavsky, JASA 2018;113:390-400)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from hostats.errors import DataError, EstimationError
from hostats.stats.causal.weighting import iptw

NODES, QW = np.polynomial.hermite_e.hermegauss(60)
QW = QW / QW.sum()          # E[f(X1)] for X1 ~ N(0, 1)
P_X2 = 0.4                  # X2 ~ Bernoulli(0.4)


def expit(x):
    return 1 / (1 + np.exp(-x))


def expect(f):
    """E[f(X1, X2)] exactly (to quadrature precision) over X1 ~ N(0,1), X2 ~ Bern(0.4)."""
    return (1 - P_X2) * np.sum(QW * f(NODES, 0.0)) + P_X2 * np.sum(QW * f(NODES, 1.0))


# --- binary treatment: confounding by indication (sicker patients treated more) --------------------------
def ps_bin(x1, x2):
    return expit(-0.5 + 0.8 * x1 + 0.7 * x2)


def risk_bin(a, x1, x2):
    return expit(-1.5 + 0.9 * x1 + 0.6 * x2 - 0.7 * a)


def draw_binary(n, seed):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.binomial(1, P_X2, n)
    a = rng.binomial(1, ps_bin(x1, x2))
    y = rng.binomial(1, risk_bin(a, x1, x2))
    return pd.DataFrame({"x1": x1, "x2": x2.astype(bool), "treated": a.astype(bool), "ho": y})


@pytest.fixture(scope="module")
def binary_data():
    return draw_binary(30_000, 20261124)


@pytest.fixture(scope="module")
def binary_fit(binary_data):
    return iptw(binary_data, "treated", ["x1", "x2"], "ho")


def row(table, measure, contrast=None):
    t = table[table["measure"] == measure]
    if contrast is not None:
        t = t[t["contrast"] == contrast]
    assert len(t) == 1, (measure, contrast, table)
    return t.iloc[0]


def crude_log_rr(df, treat, ref, col="treated"):
    """Crude risk ratio with the Katz log-scale CI, computed independently of hostats."""
    y1, y0 = df.loc[df[col] == treat, "ho"], df.loc[df[col] == ref, "ho"]
    rr = y1.mean() / y0.mean()
    se = np.sqrt(1 / y1.sum() - 1 / len(y1) + 1 / y0.sum() - 1 / len(y0))
    return rr, rr * np.exp(-1.96 * se), rr * np.exp(1.96 * se)


def test_binary_iptw_recovers_marginal_rr_and_crude_does_not(binary_data, binary_fit):
    r1, r0 = expect(lambda x1, x2: risk_bin(1, x1, x2)), expect(lambda x1, x2: risk_bin(0, x1, x2))
    true_rr, true_rd = r1 / r0, r1 - r0
    tab = binary_fit.table()
    rr, rd = row(tab, "risk_ratio"), row(tab, "risk_difference")
    assert rr["ci_lower"] < true_rr < rr["ci_upper"]
    assert rd["ci_lower"] < true_rd < rd["ci_upper"]
    assert row(tab, "risk_treated")["ci_lower"] < r1 < row(tab, "risk_treated")["ci_upper"]
    assert row(tab, "risk_control")["ci_lower"] < r0 < row(tab, "risk_control")["ci_upper"]
    crude, lo, hi = crude_log_rr(binary_data, True, False)
    assert not lo < true_rr < hi           # confounding by indication biases the crude RR towards 1
    assert crude > rr["ci_upper"] > true_rr
    # the contract: ratios exponentiated, std_error on the log scale
    assert np.isclose(np.log(rr["ci_upper"] / rr["estimate"]), 1.959964 * rr["std_error"], rtol=1e-5)
    assert rr["contrast"] == "True vs False" and binary_fit.estimand == "ATE"


def test_aipw_agrees_with_iptw_when_both_models_are_correct(binary_fit):
    tab = binary_fit.table()
    ip, dr = row(tab, "risk_difference"), row(tab, "risk_difference_aipw")
    r1, r0 = expect(lambda x1, x2: risk_bin(1, x1, x2)), expect(lambda x1, x2: risk_bin(0, x1, x2))
    assert abs(ip["estimate"] - dr["estimate"]) < 0.5 * ip["std_error"]
    assert dr["ci_lower"] < r1 - r0 < dr["ci_upper"]


def test_outcome_regression_standardisation_recovers_truth(binary_fit):
    """g-formula risks with a correctly specified outcome model cover the true marginal risks and RR."""
    tab = binary_fit.table()
    r1, r0 = expect(lambda x1, x2: risk_bin(1, x1, x2)), expect(lambda x1, x2: risk_bin(0, x1, x2))
    for measure, truth in (("risk_treated_regression", r1), ("risk_control_regression", r0),
                           ("risk_ratio_regression", r1 / r0), ("risk_difference_regression", r1 - r0)):
        r = row(tab, measure)
        assert r["ci_lower"] < truth < r["ci_upper"], measure
    # a correctly specified outcome model is more efficient than weighting
    assert row(tab, "risk_difference_regression")["std_error"] < row(tab, "risk_difference")["std_error"]


def test_standardisation_se_equals_the_closed_form_with_one_categorical_confounder():
    """Saturated outcome model (3-level confounder): the standardised risk is sum_x w_x p_ax, with
    Var = sum_x w_x^2 p_ax(1 - p_ax)/n_ax + Var_X(p_aX)/n (delta method over the stratum shares w_x and
    the stratum risks p_ax); the influence-function SE must equal it."""
    rng = np.random.default_rng(7)
    n = 3000
    x = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    a = rng.random(n) < pd.Series(x).map({"a": 0.2, "b": 0.5, "c": 0.7}).to_numpy()
    y = rng.random(n) < 0.1 + 0.15 * (x == "b") + 0.3 * (x == "c") + 0.1 * a
    d = pd.DataFrame({"x": x, "a": np.where(a, "t", "c"), "y": y.astype(float)})
    tab = iptw(d, "a", ["x"], "y", reference="c").table()
    w = d["x"].value_counts(normalize=True)
    for arm, measure in (("t", "risk_treated_regression"), ("c", "risk_control_regression")):
        g = d[d["a"] == arm].groupby("x")["y"].agg(["mean", "size"])
        est = float((w * g["mean"]).sum())
        var = float((w ** 2 * g["mean"] * (1 - g["mean"]) / g["size"]).sum()
                    + (w * (g["mean"] - est) ** 2).sum() / n)
        r = row(tab, measure)
        assert r["estimate"] == pytest.approx(est, rel=1e-8)
        assert r["std_error"] == pytest.approx(np.sqrt(var), rel=1e-6)
    # saturated propensity and outcome models: weighting and standardisation are the same estimator
    assert row(tab, "risk_difference")["estimate"] == pytest.approx(
        row(tab, "risk_difference_regression")["estimate"], rel=1e-8)


def test_weighting_balances_confounders(binary_fit):
    bal = binary_fit.balance()
    assert set(bal["variable"]) == {"x1", "x2"}
    assert (bal["smd_unweighted"].abs() > 0.25).all() and bal["imbalanced_unweighted"].all()
    assert (bal["smd_weighted"].abs() < 0.05).all() and not bal["imbalanced_weighted"].any()
    love = binary_fit.love_plot_data()
    assert len(love) == 2 * len(bal) and set(love["sample"]) == {"unweighted", "weighted"}
    ess = binary_fit.ess.set_index("group")
    assert (ess["ess"] < ess["n"]).all() and (ess["ess"] > 0.5 * ess["n"]).all()


# --- three-level treatment ------------------------------------------------------------------------------
LEVELS = ["none", "radiotherapy", "nsaid"]
EFFECT = np.array([0.0, -0.9, -0.5])


def ps3(x1, x2):
    lin = np.stack([np.zeros_like(x1 + x2), -0.3 + 0.7 * x1 + 0.5 * x2, -0.6 - 0.4 * x1 + 0.8 * x2], axis=-1)
    p = np.exp(lin)
    return p / p.sum(axis=-1, keepdims=True)


def risk3(k, x1, x2):
    return expit(-1.2 + 0.8 * x1 + 0.5 * x2 + EFFECT[k])


def test_three_level_treatment_recovers_each_marginal_rr():
    rng = np.random.default_rng(7)
    n = 30_000
    x1, x2 = rng.normal(size=n), rng.binomial(1, P_X2, n)
    cum = np.cumsum(ps3(x1, x2), axis=1)
    a = (rng.random(n)[:, None] > cum).sum(axis=1)
    y = rng.binomial(1, risk3(a, x1, x2))
    df = pd.DataFrame({"x1": x1, "x2": x2, "ho": y,
                       "prophylaxis": pd.Categorical(np.array(LEVELS)[a], categories=LEVELS + ["bisphosphonate"])})
    res = iptw(df, "prophylaxis", ["x1", "x2"], "ho")
    tab = res.table()
    assert res.levels == tuple(LEVELS)             # unobserved category dropped, reference "none" first
    assert set(tab["contrast"]) == {"radiotherapy vs none", "nsaid vs none"}
    r = [expect(lambda x1, x2, k=k: risk3(k, x1, x2)) for k in range(3)]
    for k in (1, 2):
        label = f"{LEVELS[k]} vs none"
        est = row(tab, "risk_ratio", label)
        assert est["ci_lower"] < r[k] / r[0] < est["ci_upper"], label
        _, lo, hi = crude_log_rr(df, LEVELS[k], "none", col="prophylaxis")
        assert not lo < r[k] / r[0] < hi, label
        dr = row(tab, "risk_difference_aipw", label)
        assert dr["ci_lower"] < r[k] - r[0] < dr["ci_upper"]
    assert res.propensity.shape == (n, 3)
    np.testing.assert_allclose(res.propensity.sum(axis=1), 1.0)
    assert (res.balance()["smd_weighted"].abs() < 0.05).all()


# --- hand computation: one binary confounder, saturated propensity model ---------------------------------
@pytest.fixture
def small():
    # (z, a, y) cells with counts; P(A=1|Z=0) = 3/10, P(A=1|Z=1) = 6/8
    cells = [(0, 0, 0, 5), (0, 0, 1, 2), (0, 1, 0, 2), (0, 1, 1, 1),
             (1, 0, 0, 1), (1, 0, 1, 1), (1, 1, 0, 2), (1, 1, 1, 4)]
    rows = [(z, a, y) for z, a, y, k in cells for _ in range(k)]
    df = pd.DataFrame(rows, columns=["z", "a", "y"])
    df["age"] = np.random.default_rng(1).normal(60, 10, len(df)).round(1) + 3 * df["a"]
    return df


def test_weights_and_risks_equal_standardisation_by_hand(small):
    df = small
    e = df.groupby("z")["a"].transform("mean").to_numpy()     # saturated model = cell proportions
    a = df["a"].to_numpy()
    pz = df["z"].value_counts(normalize=True).sort_index()
    py = df.groupby(["a", "z"])["y"].mean()
    std = {arm: sum(pz[z] * py[(arm, z)] for z in (0, 1)) for arm in (0, 1)}   # standardisation

    res = iptw(df, "a", ["z"], "y", weights="unstabilized")
    np.testing.assert_allclose(res.propensity["1"], e, atol=1e-6)
    np.testing.assert_allclose(res.weights, np.where(a == 1, 1 / e, 1 / (1 - e)), rtol=1e-5)
    tab = res.table()
    assert row(tab, "risk_treated")["estimate"] == pytest.approx(std[1], abs=1e-6)
    assert row(tab, "risk_control")["estimate"] == pytest.approx(std[0], abs=1e-6)
    assert row(tab, "risk_ratio")["estimate"] == pytest.approx(std[1] / std[0], rel=1e-5)

    stab = iptw(df, "a", ["z"], "y")                            # stabilised: P(A=a) / P(A=a|Z)
    share = np.where(a == 1, a.mean(), 1 - a.mean())
    np.testing.assert_allclose(stab.weights, share * np.where(a == 1, 1 / e, 1 / (1 - e)), rtol=1e-5)
    assert row(stab.table(), "risk_ratio")["estimate"] == pytest.approx(std[1] / std[0], rel=1e-5)
    w = stab.weights.to_numpy()
    for arm in (0, 1):
        wk = w[a == arm]
        assert stab.ess.set_index("group").loc[arm, "ess"] == pytest.approx(wk.sum() ** 2 / (wk ** 2).sum())

    # ATT: controls weighted by e/(1-e); control risk standardised to the treated's Z distribution
    att = iptw(df, "a", ["z"], "y", estimand="ATT", weights="unstabilized")
    np.testing.assert_allclose(att.weights, np.where(a == 1, 1.0, e / (1 - e)), rtol=1e-5)
    pz_t = df.loc[df["a"] == 1, "z"].value_counts(normalize=True).sort_index()
    assert row(att.table(), "risk_control")["estimate"] == pytest.approx(
        sum(pz_t[z] * py[(0, z)] for z in (0, 1)), abs=1e-6)
    # overlap weights: 1 - e treated, e control
    ato = iptw(df, "a", ["z"], "y", estimand="overlap")
    np.testing.assert_allclose(ato.weights, np.where(a == 1, 1 - e, e), rtol=1e-5)


def test_smd_by_hand(small):
    df = small
    res = iptw(df, "a", ["z", "age"], "y")
    bal = res.balance().set_index("variable")
    t, c = df["a"] == 1, df["a"] == 0
    p1, p0 = df.loc[t, "z"].mean(), df.loc[c, "z"].mean()
    assert bal.loc["z", "smd_unweighted"] == pytest.approx((p1 - p0) / np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2))
    m1, m0 = df.loc[t, "age"].mean(), df.loc[c, "age"].mean()
    sd = np.sqrt((df.loc[t, "age"].var(ddof=1) + df.loc[c, "age"].var(ddof=1)) / 2)
    assert bal.loc["age", "smd_unweighted"] == pytest.approx((m1 - m0) / sd)
    w = res.weights
    wm1, wm0 = np.average(df.loc[t, "age"], weights=w[t]), np.average(df.loc[c, "age"], weights=w[c])
    assert bal.loc["age", "smd_weighted"] == pytest.approx((wm1 - wm0) / sd)   # unweighted pooled SD
    assert bal.loc["age", "variance_ratio_unweighted"] == pytest.approx(
        df.loc[t, "age"].var(ddof=1) / df.loc[c, "age"].var(ddof=1))
    # saturated model on z alone balances z exactly
    only_z = iptw(df, "a", ["z"], "y").balance()
    assert only_z["smd_weighted"].abs().max() < 1e-6


def test_overlap_weights_balance_logistic_covariates_exactly(binary_data):
    # Li, Morgan & Zaslavsky 2018 (Theorem 3): overlap weights from a logistic propensity model give exact
    # mean balance for every covariate in the model.
    res = iptw(binary_data.iloc[:5000], "treated", ["x1", "x2"], "ho", estimand="ATO")
    assert res.balance()["smd_weighted"].abs().max() < 1e-6


# --- ATE vs ATT -----------------------------------------------------------------------------------------
def test_ate_and_att_differ_under_effect_heterogeneity():
    # The treatment works only when x2 = 1, and patients with x2 = 1 are treated more often: the effect
    # among the treated (ATT) is larger in magnitude than the population effect (ATE).
    def ps(x1, x2):
        return expit(-1.0 + 0.5 * x1 + 1.5 * x2)

    def risk(a, x1, x2):
        return expit(-1.0 + 0.5 * x1 + 0.3 * x2 - 1.5 * a * x2)

    rng = np.random.default_rng(11)
    n = 30_000
    x1, x2 = rng.normal(size=n), rng.binomial(1, P_X2, n)
    a = rng.binomial(1, ps(x1, x2))
    df = pd.DataFrame({"x1": x1, "x2": x2, "a": a, "ho": rng.binomial(1, risk(a, x1, x2))})
    ate_true = expect(lambda x1, x2: risk(1, x1, x2) - risk(0, x1, x2))
    att_true = (expect(lambda x1, x2: ps(x1, x2) * (risk(1, x1, x2) - risk(0, x1, x2)))
                / expect(ps))
    ate = row(iptw(df, "a", ["x1", "x2"], "ho").table(), "risk_difference")
    att = row(iptw(df, "a", ["x1", "x2"], "ho", estimand="ATT").table(), "risk_difference")
    assert att_true < ate_true - 0.05
    assert ate["ci_lower"] < ate_true < ate["ci_upper"]
    assert att["ci_lower"] < att_true < att["ci_upper"]
    assert not att["ci_lower"] < ate_true < att["ci_upper"]
    assert att["estimate"] < ate["estimate"]


def test_ate_equals_att_when_risk_difference_is_homogeneous():
    # p_a(x) = baseline(x) - 0.08 a: every weighted average of the conditional RD is -0.08, so ATE = ATT.
    def risk(a, x1, x2):
        return 0.15 + 0.15 * x2 + 0.2 * norm.cdf(x1) - 0.08 * a

    rng = np.random.default_rng(12)
    n = 30_000
    x1, x2 = rng.normal(size=n), rng.binomial(1, P_X2, n)
    a = rng.binomial(1, expit(-0.5 + 0.8 * x1 + 1.0 * x2))
    df = pd.DataFrame({"x1": norm.cdf(x1), "x2": x2, "a": a, "ho": rng.binomial(1, risk(a, x1, x2))})
    ate = row(iptw(df, "a", ["x1", "x2"], "ho").table(), "risk_difference")
    att = row(iptw(df, "a", ["x1", "x2"], "ho", estimand="ATT").table(), "risk_difference")
    for r in (ate, att):
        assert r["ci_lower"] < -0.08 < r["ci_upper"]
    assert abs(ate["estimate"] - att["estimate"]) < ate["std_error"]


# --- variance: M-estimation vs bootstrap; reproducible parallel bootstrap ---------------------------------
@pytest.mark.filterwarnings("ignore:extreme weights")
def test_m_estimation_se_matches_bootstrap_and_bootstrap_is_reproducible(binary_data):
    df = binary_data.iloc[:3000]
    m = iptw(df, "treated", ["x1", "x2"], "ho").table().set_index("measure")
    boot = iptw(df, "treated", ["x1", "x2"], "ho", bootstrap=250, seed=5)
    bt = boot.table().set_index("measure")
    for measure in ("risk_treated", "risk_control", "risk_difference", "risk_ratio", "odds_ratio"):
        assert bt.loc[measure, "std_error"] == pytest.approx(m.loc[measure, "std_error"], rel=0.15), measure
        assert bt.loc[measure, "estimate"] == m.loc[measure, "estimate"]
    # one SeedSequence child per replicate: the same bytes whatever n_jobs; another seed differs
    b1 = iptw(df, "treated", ["x1", "x2"], "ho", bootstrap=30, seed=5)
    b2 = iptw(df, "treated", ["x1", "x2"], "ho", bootstrap=30, seed=5, n_jobs=2)
    pd.testing.assert_frame_equal(b1.table(), b2.table())
    pd.testing.assert_frame_equal(b1.bootstrap_estimates, boot.bootstrap_estimates.iloc[:30])
    b3 = iptw(df, "treated", ["x1", "x2"], "ho", bootstrap=30, seed=6)
    assert not b1.table().equals(b3.table())


# --- options --------------------------------------------------------------------------------------------
def test_truncation_at_percentiles(binary_data):
    df = binary_data.iloc[:5000]
    full = iptw(df, "treated", ["x1", "x2"], "ho").weights
    cut = iptw(df, "treated", ["x1", "x2"], "ho", truncate=(1, 99))
    lo, hi = np.percentile(full, [1, 99])
    assert cut.weights.min() == pytest.approx(lo) and cut.weights.max() == pytest.approx(hi)
    assert cut.truncation["n_truncated"] == int(((full < lo) | (full > hi)).sum())
    assert iptw(df, "treated", ["x1", "x2"], "ho", truncate=1).truncation["upper"] == pytest.approx(hi)


def test_formula_and_categorical_confounders(binary_data):
    df = binary_data.iloc[:4000].copy()
    df["band"] = pd.Categorical(np.where(df["x1"] > 0.5, "high", np.where(df["x1"] < -0.5, "low", "mid")))
    a = iptw(df, "treated", ["x1", "x2", "band"], "ho").table()
    b = iptw(df, "treated", "x1 + C(x2) + C(band)", "ho").table()
    np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=1e-6)
    res = iptw(df, "treated", ["x1", "x2", "band"], "ho")
    bal = res.balance()
    assert set(bal.loc[bal["variable"] == "band", "level"]) == {"high", "low", "mid"}
    t1 = res.weighted_table1()
    assert set(t1["sample"]) == {"unweighted", "weighted"}
    pct = t1[(t1["variable"] == "band") & (t1["sample"] == "weighted")].groupby("group")["value"].sum()
    np.testing.assert_allclose(pct, 100.0)


def test_gbm_propensity_close_to_truth(binary_data):
    df = binary_data.iloc[:10_000]
    r1, r0 = expect(lambda x1, x2: risk_bin(1, x1, x2)), expect(lambda x1, x2: risk_bin(0, x1, x2))
    res = iptw(df, "treated", ["x1", "x2"], "ho", ps_model="gbm")
    assert "gradient-boosting" in res.method
    assert row(res.table(), "risk_ratio")["estimate"] == pytest.approx(r1 / r0, abs=0.06)
    # any scikit-learn classifier: an unpenalised LogisticRegression reproduces the statsmodels fit
    from sklearn.linear_model import LogisticRegression

    sk = iptw(df, "treated", ["x1", "x2"], "ho", ps_model=LogisticRegression(C=1e8, max_iter=1000))
    sm = iptw(df, "treated", ["x1", "x2"], "ho")
    assert row(sk.table(), "risk_ratio")["estimate"] == pytest.approx(row(sm.table(), "risk_ratio")["estimate"],
                                                                     rel=1e-4)


def test_positivity_warning_on_separated_design():
    rng = np.random.default_rng(3)
    n = 400
    z = rng.binomial(1, 0.3, n)
    x = rng.normal(size=n)
    a = np.where(z == 1, 1, rng.binomial(1, 0.3, n))   # every z = 1 patient is treated
    df = pd.DataFrame({"z": z, "x": x, "a": a, "ho": rng.binomial(1, 0.2, n)})
    with pytest.warns(UserWarning, match="positivity"):
        res = iptw(df, "a", ["z", "x"], "ho")
    assert any(w.startswith("positivity") for w in res.warnings)


def test_att_multilevel_needs_named_level():
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"x": rng.normal(size=300), "t": rng.choice(["none", "rt", "nsaid"], 300),
                       "ho": rng.binomial(1, 0.3, 300)})
    with pytest.raises(ValueError, match="treated"):
        iptw(df, "t", ["x"], "ho", estimand="ATT")
    res = iptw(df, "t", ["x"], "ho", estimand="ATT", treated="rt")
    assert (res.weights[df["t"] == "rt"] == 1).all()


# --- bad input ------------------------------------------------------------------------------------------
def test_bad_input_gives_clear_errors(small):
    with pytest.raises(DataError, match="nope"):
        iptw(small, "a", ["nope"], "y")
    bad = small.astype({"age": float})
    bad.loc[3, "age"] = np.nan
    with pytest.warns(UserWarning, match="1 of .* rows dropped.*'age' \\(1\\)"):
        assert iptw(bad, "a", ["age"], "y").n == len(small) - 1
    with pytest.raises(EstimationError, match="single level"):
        iptw(small[small["a"] == 1], "a", ["z"], "y")
    with pytest.raises(DataError, match="binary"):
        iptw(small.assign(y=small["age"]), "a", ["z"], "y")
    with pytest.raises(ValueError, match="estimand"):
        iptw(small, "a", ["z"], "y", estimand="ATC")
    with pytest.raises(ValueError, match="seed"):
        iptw(small, "a", ["z"], "y", bootstrap=10)
    with pytest.raises(ValueError, match="reference"):
        iptw(small, "a", ["z"], "y", reference=5)


def test_constant_confounder_is_reported_not_fatal(small):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = iptw(small.assign(site="A"), "a", ["z", "site"], "y")
    assert any("constant" in w for w in res.warnings)
    assert row(res.table(), "risk_ratio")["estimate"] == pytest.approx(
        row(iptw(small, "a", ["z"], "y").table(), "risk_ratio")["estimate"])


# --- IPTW-adjusted curves -------------------------------------------------------------------------------
def test_weighted_curves_equal_standardised_risks_without_censoring():
    # No censoring: the IPTW-weighted Kaplan-Meier / Aalen-Johansen estimate at t in arm a is the weighted
    # share of the arm with the event by t, which under a saturated propensity model on one binary
    # confounder equals the standardised risk sum_z P(z) P(T <= t, cause 1 | a, z), computed here by hand.
    rng = np.random.default_rng(21)
    n = 2000
    z = rng.binomial(1, 0.4, n)
    a = rng.binomial(1, np.where(z == 1, 0.7, 0.3))
    t_ho = rng.exponential(1 / (0.004 * np.exp(0.8 * z - 0.7 * a)))
    t_death = rng.exponential(1 / 0.001, n)
    time = np.ceil(np.minimum(t_ho, t_death))
    status = np.where(t_ho <= t_death, 1, 2)
    df = pd.DataFrame({"z": z, "a": a, "time": time, "status": status})
    df["ho365"] = ((df["status"] == 1) & (df["time"] <= 365)).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the hazard ratio part may warn if survival.cox is absent
        res = iptw(df, "a", ["z"], "ho365", time="time", status="status")
    pz = df["z"].value_counts(normalize=True)
    for t in (100.0, 365.0):
        hit = (df["status"] == 1) & (df["time"] <= t)
        cif = res.curves("cumulative_incidence").at([t]).set_index("group")["estimate"]
        km = res.curves("km").at([t]).set_index("group")["estimate"]
        for arm in (0, 1):
            m = df["a"] == arm
            std_cif = sum(pz[v] * hit[m & (df["z"] == v)].mean() for v in (0, 1))
            assert cif[arm] == pytest.approx(std_cif, abs=1e-9)
            # KM censors deaths: 1 - KM is the cause-specific "naive" risk, larger than the CIF
            assert 1 - km[arm] > cif[arm] - 1e-12
    tab = res.table()
    assert row(tab, "risk_treated")["estimate"] == pytest.approx(
        res.curves("cumulative_incidence").at([365.0]).set_index("group").loc[1, "estimate"], abs=1e-9)


def test_weighted_cox_hazard_ratio_null_effect_and_lifelines_agreement():
    # Treatment has no effect on the HO hazard (a null marginal HR of 1 is collapsible) but is confounded
    # by x1, x2: the IPTW hazard ratio covers 1, the crude one does not. The weighted fit matches
    # lifelines' CoxPHFitter with the same weights and robust SE (continuous times: no ties).
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(31)
    n = 5000
    x1, x2 = rng.normal(size=n), rng.binomial(1, P_X2, n)
    a = rng.binomial(1, ps_bin(x1, x2))
    t_ho = rng.exponential(1 / (0.002 * np.exp(0.7 * x1 + 0.6 * x2)))
    cens = rng.uniform(100, 800, n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "a": a, "time": np.minimum(t_ho, cens),
                       "status": (t_ho <= cens).astype(int)})
    df["ho"] = df["status"]
    res = iptw(df, "a", ["x1", "x2"], "ho", time="time", status="status")
    hr = row(res.table(), "hazard_ratio")
    assert hr["ci_lower"] < 1 < hr["ci_upper"]
    crude = CoxPHFitter().fit(df[["time", "status", "a"]], "time", "status")
    assert crude.confidence_intervals_.iloc[0, 0] > 0           # crude log HR CI above 0
    ref = CoxPHFitter().fit(df[["time", "status", "a"]].assign(w=res.weights.to_numpy()), "time", "status",
                            weights_col="w", robust=True)
    assert hr["estimate"] == pytest.approx(np.exp(ref.params_["a"]), rel=1e-6)
    assert hr["std_error"] == pytest.approx(ref.standard_errors_["a"], rel=1e-4)


def test_risk_by_horizon_from_weighted_cumulative_incidence_with_censoring():
    # outcome=None: risks by the horizon from the IPTW-weighted Aalen-Johansen estimator. Exponential HO
    # hazard lam(a, x) and death hazard mu, so the potential-outcome risk by tau is
    # lam / (lam + mu) * (1 - exp(-(lam + mu) tau)), averaged over the confounders by quadrature.
    # Loss to follow-up (uniform censoring) would bias a plain "HO within 365 days" indicator.
    def lam(a, x1, x2):
        return 0.002 * np.exp(0.6 * x1 + 0.5 * x2 - 0.7 * a)

    mu, tau = 0.0008, 365.0

    def risk(a, x1, x2):
        h = lam(a, x1, x2) + mu
        return lam(a, x1, x2) / h * (1 - np.exp(-h * tau))

    rng = np.random.default_rng(41)
    n = 20_000
    x1, x2 = rng.normal(size=n), rng.binomial(1, P_X2, n)
    a = rng.binomial(1, ps_bin(x1, x2))
    t_ho, t_death = rng.exponential(1 / lam(a, x1, x2)), rng.exponential(1 / mu, n)
    cens = rng.uniform(30, 900, n)
    time = np.minimum.reduce([t_ho, t_death, cens])
    status = np.select([time == t_ho, time == t_death], [1, 2], 0)
    df = pd.DataFrame({"x1": x1, "x2": x2, "a": a, "time": time, "status": status})
    r1, r0 = expect(lambda x1, x2: risk(1, x1, x2)), expect(lambda x1, x2: risk(0, x1, x2))
    res = iptw(df, "a", ["x1", "x2"], None, time="time", status="status", horizon=tau)
    tab = res.table()
    assert "Aalen-Johansen" in res.method and "risk_difference_aipw" not in set(tab["measure"])
    for measure, truth in (("risk_treated", r1), ("risk_control", r0), ("risk_difference", r1 - r0),
                           ("risk_ratio", r1 / r0)):
        r = row(tab, measure)
        assert r["ci_lower"] < truth < r["ci_upper"], measure
    naive = df.assign(ho=((df["status"] == 1) & (df["time"] <= tau)).astype(int))
    biased = row(iptw(naive, "a", ["x1", "x2"], "ho").table(), "risk_control")
    assert biased["ci_upper"] < r0            # ignoring loss to follow-up underestimates the risk
    with pytest.raises(ValueError, match="horizon"):
        iptw(df, "a", ["x1", "x2"], None, time="time", status="status")


def test_arm_without_events_is_documented_not_silent():
    rng = np.random.default_rng(5)
    n = 300
    df = pd.DataFrame({"x": rng.normal(size=n), "t": rng.choice(["none", "rt", "nsaid"], n)})
    df["ho"] = np.where(df["t"] == "rt", 0, rng.binomial(1, 0.3, n))
    res = iptw(df, "t", ["x"], "ho", bootstrap=40, seed=2)
    tab = res.table()
    assert np.isnan(row(tab, "risk_ratio", "rt vs none")["estimate"])
    assert row(tab, "risk_treated", "rt vs none")["estimate"] == 0.0
    assert np.isfinite(row(tab, "risk_ratio", "nsaid vs none")["ci_lower"])
    assert any("'rt' has no events" in w for w in res.warnings)
    assert any(w.startswith("AIPW omitted") for w in res.warnings)


def test_bootstrap_newton_refit_matches_statsmodels():
    # bootstrap replicates refit the multinomial propensity by a hand-vectorised Newton-Raphson for speed;
    # it must land on statsmodels' MNLogit optimum
    from hostats.stats.causal.weighting import _fit_logistic, _newton_mnlogit

    rng = np.random.default_rng(9)
    n = 3000
    x1, x2 = rng.normal(size=n), rng.binomial(1, P_X2, n)
    a = (rng.random(n)[:, None] > np.cumsum(ps3(x1, x2), axis=1)).sum(axis=1)
    X = np.column_stack([np.ones(n), x1, x2])
    import statsmodels.api as sm

    _, fit = _fit_logistic(X, a, 3, [])
    idx = rng.integers(0, n, n)
    P_sm = np.asarray(sm.MNLogit(a[idx], X[idx]).fit(disp=0).predict(X[idx]))
    P_nr = _newton_mnlogit(X[idx], a[idx], 3, np.asarray(fit.params).ravel(order="F"))
    np.testing.assert_allclose(P_nr, P_sm, atol=1e-8)
