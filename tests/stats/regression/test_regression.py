"""Tests for hostats.stats.regression.logit.logistic against R glm/confint, R logistf, closed forms and simulation."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from hostats.errors import DataError, EstimationError
from hostats.stats.regression.logit import c_statistic, logistic
from tests.paths import DATA, REFERENCE

# logistf's sex2 data (Heinze & Schemper 2002; R package logistf, `data(sex2)`: 239 women, 130 cases of
# urinary tract infection) as counts of identical rows: case, age, oc, vic, vicl, vis, dia, count.
SEX2_COUNTS = [
    (1, 1, 1, 1, 0, 0, 0, 3), (1, 1, 1, 0, 0, 0, 0, 5), (1, 1, 0, 1, 1, 1, 1, 1), (1, 1, 0, 1, 1, 0, 0, 1),
    (1, 1, 0, 1, 0, 1, 1, 1), (1, 1, 0, 1, 0, 1, 0, 1), (1, 1, 0, 1, 0, 0, 0, 2), (1, 0, 1, 1, 1, 1, 0, 3),
    (1, 0, 1, 1, 1, 0, 0, 7), (1, 0, 1, 1, 0, 1, 0, 2), (1, 0, 1, 1, 0, 0, 1, 1), (1, 0, 1, 1, 0, 0, 0, 15),
    (1, 0, 1, 0, 0, 0, 1, 3), (1, 0, 1, 0, 0, 0, 0, 44), (1, 0, 0, 1, 1, 1, 1, 1), (1, 0, 0, 1, 1, 1, 0, 12),
    (1, 0, 0, 1, 1, 0, 0, 10), (1, 0, 0, 1, 0, 1, 0, 3), (1, 0, 0, 1, 0, 0, 0, 14), (1, 0, 0, 0, 0, 1, 0, 1),
    (0, 1, 1, 1, 1, 1, 0, 2), (0, 1, 1, 1, 0, 0, 0, 1), (0, 1, 1, 0, 0, 1, 0, 1), (0, 1, 1, 0, 0, 0, 0, 14),
    (0, 1, 0, 1, 1, 1, 0, 4), (0, 1, 0, 1, 1, 0, 0, 2), (0, 0, 1, 1, 1, 1, 0, 6), (0, 0, 1, 1, 1, 0, 0, 5),
    (0, 0, 1, 1, 0, 0, 0, 1), (0, 0, 1, 0, 0, 1, 0, 1), (0, 0, 1, 0, 0, 0, 0, 42), (0, 0, 0, 1, 1, 1, 0, 18),
    (0, 0, 0, 1, 1, 0, 0, 8), (0, 0, 0, 1, 0, 1, 0, 1), (0, 0, 0, 1, 0, 0, 0, 2), (0, 0, 0, 0, 0, 1, 0, 1),
]
SEX2_FORMULA = "case ~ age + oc + vic + vicl + vis + dia"
R = json.loads((REFERENCE / "regression.json").read_text())  # tests/reference/regression.R

# R logistf, example in the logistf documentation (reproduced in the logistfPrint help page of R package
# "biostatUtil"): logistf(case ~ age + oc + vic + vicl + vis + dia, data = sex2, alpha = 0.1):
# coef, profile penalised-likelihood 90% CI, penalised likelihood-ratio chi-square and p-value.
# Kept as published: logistf is not packaged for Debian, so tests/reference cannot re-run it (brglm2's
# Firth estimate in regression.json agrees with these coefficients to 1e-6 but has no profile limits).
LOGISTF_SEX2 = {
    "Intercept": (0.12025405, -0.6673577, 0.9177303, 0.06286298, 8.020268e-01),
    "age": (-1.10598131, -1.8277045, -0.4328451, 7.50773092, 6.143472e-03),
    "oc": (-0.06881673, -0.7986318, 0.6507581, 0.02467044, 8.751911e-01),
    "vic": (2.26887464, 1.4248338, 3.2325326, 22.93139022, 1.678877e-06),
    "vicl": (-2.11140817, -3.0613215, -1.2704704, 19.10407252, 1.237805e-05),
    "vis": (-0.78831694, -1.4743338, -0.1137542, 3.69740975, 5.449701e-02),
    "dia": (3.09601166, 1.0835108, 6.8752016, 7.89693139, 4.951873e-03),
}
# Standard errors sqrt(diag((X'WX)^-1)) at the Firth estimate, as printed by logistf (versions < 1.24) and
# by the Python package firthlogist (README, sex2 example). Newer logistf prints different SEs.
# Full precision from R brglm2 (type = "AS_mean"), regression.json.
FIRTH_SEX2_SE = dict(zip(["Intercept", "age", "oc", "vic", "vicl", "vis", "dia"], R["sex2_firth"]["std_error"],
                         strict=True))


def sex2(expanded: bool = True) -> pd.DataFrame:
    cols = ["case", "age", "oc", "vic", "vicl", "vis", "dia", "count"]
    counts = pd.DataFrame(SEX2_COUNTS, columns=cols)
    if not expanded:
        return counts
    return counts.loc[counts.index.repeat(counts["count"])].drop(columns="count").reset_index(drop=True)


@pytest.fixture(scope="module")
def admissions(data_dir_module) -> pd.DataFrame:
    return pd.read_csv(data_dir_module / "ucla_admissions.csv")


@pytest.fixture(scope="module")
def data_dir_module():

    return DATA


# --------------------------------------------------------------------------------------------------
# maximum likelihood against R
# --------------------------------------------------------------------------------------------------
def test_ml_matches_r_glm_and_profile_confint(admissions):
    """UCLA IDRE "Logit regression | R data analysis examples" (tests/data/ucla_admissions.csv):
    glm(admit ~ gre + gpa + rank, family = binomial) with rank a factor; coefficients and SEs from
    summary(), residual deviance 458.52, and profile CIs from confint() (MASS profiling), re-run in
    tests/reference/regression.R (regression.json)."""
    g = R["ucla_glm"]
    terms = ["Intercept", "gre", "gpa", "C(rank)[T.2]", "C(rank)[T.3]", "C(rank)[T.4]"]  # R's order
    r_glm = {  # term: (coef, se, profile 2.5%, profile 97.5%)
        t: v for t, *v in zip(terms, g["coef"], g["std_error"], g["profile_lower"], g["profile_upper"], strict=True)
    }
    res = logistic(admissions, "admit ~ gre + gpa + C(rank)")
    t = res.table().set_index("term")
    assert res.fitted.llf * -2 == pytest.approx(g["deviance"], abs=5e-3)
    prof = res.profile_ci().set_index("term")
    for term, (coef, se, lo, hi) in r_glm.items():
        assert np.log(t.loc[term, "estimate"]) == pytest.approx(coef, abs=5e-6)
        assert t.loc[term, "std_error"] == pytest.approx(se, abs=5e-6)
        # Wald CI = R confint.default, on the OR scale
        assert t.loc[term, "ci_lower"] == pytest.approx(np.exp(coef - 1.959964 * se), rel=1e-4)
        # R's confint interpolates the profile on a grid: agreement to ~1e-4 on the log scale
        assert np.log(prof.loc[term, "ci_lower"]) == pytest.approx(lo, abs=2e-4)
        assert np.log(prof.loc[term, "ci_upper"]) == pytest.approx(hi, abs=2e-4)
    assert (t["n"] == 400).all() and (t["events"] == 127).all()
    assert list(res.table().columns[:8]) == ["term", "estimate", "ci_lower", "ci_upper", "p_value",
                                             "std_error", "n", "events"]


def test_text_column_coded_as_factor_of_the_numbers(admissions):
    d = admissions.assign(rank_cat=admissions["rank"].astype(str))
    fast = logistic(d, "admit ~ gre + gpa + rank_cat").coef
    slow = logistic(d, "admit ~ gre + gpa + C(rank)").coef
    assert fast["rank_cat[T.4]"] == pytest.approx(slow["C(rank)[T.4]"], rel=1e-10)
    assert fast["gpa"] == pytest.approx(slow["gpa"], rel=1e-10)


def test_ci_profile_option_puts_profile_bounds_in_table(admissions):
    res = logistic(admissions, "admit ~ gre + gpa", ci="profile")
    prof = res.profile_ci()
    assert np.allclose(res.table().ci_lower, prof.ci_lower)
    assert "profile" in res.method


# --------------------------------------------------------------------------------------------------
# weights and clusters
# --------------------------------------------------------------------------------------------------
def test_frequency_weights_equal_replicated_rows(admissions):
    rng = np.random.default_rng(11)
    d = admissions.assign(w=rng.integers(1, 4, len(admissions)))
    weighted = logistic(d, "admit ~ gre + gpa", weights="w", weight_type="frequency").table()
    expanded = logistic(d.loc[d.index.repeat(d.w)], "admit ~ gre + gpa").table()
    for col in ("estimate", "ci_lower", "ci_upper", "std_error", "p_value", "n", "events"):
        assert np.allclose(weighted[col], expanded[col], rtol=1e-8), col


def _sandwich(X, y, w, p, groups=None):
    bread = np.linalg.inv(X.T @ (X * (w * p * (1 - p))[:, None]))
    scores = X * (w * (y - p))[:, None]
    if groups is not None:
        scores = pd.DataFrame(scores).groupby(groups).sum().to_numpy()
    return bread @ (scores.T @ scores) @ bread


def test_probability_weights_give_hc0_sandwich(admissions):
    rng = np.random.default_rng(5)
    d = admissions.assign(w=rng.uniform(0.5, 4.0, len(admissions)))
    res = logistic(d, "admit ~ gre + gpa", weights="w")
    X = np.column_stack([np.ones(len(d)), d.gre, d.gpa])
    p = expit(X @ res.coef.to_numpy())
    score = X.T @ (d.w * (d.admit - p))
    assert np.abs(score).max() < 1e-6  # weighted score equations solved
    expected = np.sqrt(np.diag(_sandwich(X, d.admit.to_numpy(), d.w.to_numpy(), p)))
    assert np.allclose(res.table().std_error, expected, rtol=1e-6)
    assert res.n == 400 and res.events == 127  # people, not weights
    with pytest.raises(ValueError, match="profile-likelihood"):
        res.profile_ci()


def test_cluster_robust_se_matches_vcovcl_hc1(admissions):
    # R sandwich::vcovCL(fit, cluster = ~site, type = "HC1"): G/(G-1) * (N-1)/(N-K) * sandwich.
    d = admissions.assign(site=np.arange(len(admissions)) % 7)
    res = logistic(d, "admit ~ gre + gpa", cluster="site")
    X = np.column_stack([np.ones(len(d)), d.gre, d.gpa])
    p = expit(X @ res.coef.to_numpy())
    v = _sandwich(X, d.admit.to_numpy(), np.ones(len(d)), p, groups=d.site.to_numpy())
    g, n, k = 7, len(d), 3
    expected = np.sqrt(np.diag(v * g / (g - 1) * (n - 1) / (n - k)))
    assert np.allclose(res.table().std_error, expected, rtol=1e-6)
    with pytest.raises(EstimationError, match="single cluster"):
        logistic(d.assign(site=1), "admit ~ gre", cluster="site")


def _cluster_reference(admissions):
    """The data and values of tests/reference/logistic_cluster.R (R glm + sandwich::vcovCL, stored)."""
    import json

    ref = json.loads((REFERENCE / "logistic_cluster.json").read_text())
    i = np.arange(len(admissions))
    d = admissions.assign(w=0.5 + ((37 * i) % 11) / 4, fw=1 + i % 3, cl=i % 40)
    return d, ref


def test_probability_weights_and_clusters_no_specification_warning_and_r_vcovcl(admissions):
    """statsmodels' 'cov_type not fully supported with var_weights' is harmless for probability weights
    with clusters: silenced there, and the SEs are R's vcovCL(glm(weights = w), cluster = ~cl, "HC1")."""
    d, ref = _cluster_reference(admissions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping logistic() fails the test
        res = logistic(d, "admit ~ gre + gpa + C(rank)", weights="w", cluster="cl")
    tab = res.table()
    np.testing.assert_allclose(tab["log_odds"], ref["pw_coef"], rtol=1e-7)
    np.testing.assert_allclose(tab["std_error"], ref["pw_cluster_hc1_se"], rtol=1e-5)
    assert res.warnings == () and "cluster-robust SE by cl" in res.method
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hc0 = logistic(d, "admit ~ gre + gpa + C(rank)", weights="w").table()
        unweighted = logistic(d, "admit ~ gre + gpa + C(rank)", cluster="cl").table()
    np.testing.assert_allclose(hc0["std_error"], ref["pw_hc0_se"], rtol=1e-5)
    np.testing.assert_allclose(unweighted["std_error"], ref["unweighted_cluster_hc1_se"], rtol=1e-6)


def test_frequency_weights_with_clusters_keep_the_statsmodels_warning(admissions):
    """Not silenced where it is not harmless: with frequency weights statsmodels' small-sample factor
    counts rows (400), not the replicated people (800) of R's vcovCL on the expanded rows."""
    from statsmodels.tools.sm_exceptions import SpecificationWarning

    d, ref = _cluster_reference(admissions)
    with pytest.warns(SpecificationWarning, match="freq_weights"):
        res = logistic(d, "admit ~ gre + gpa + C(rank)", weights="fw", weight_type="frequency", cluster="cl")
    np.testing.assert_allclose(res.table()["log_odds"], ref["fw_coef"], rtol=1e-7)
    ratio = res.table()["std_error"].to_numpy() / ref["fw_cluster_hc1_se"]
    np.testing.assert_allclose(ratio, np.sqrt((399 / 394) / (799 / 794)), rtol=1e-5)


# --------------------------------------------------------------------------------------------------
# Firth
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("expanded", [True, False])
def test_firth_matches_logistf_on_sex2(expanded):
    data = sex2(expanded)
    kw = {} if expanded else {"weights": "count", "weight_type": "frequency"}
    res = logistic(data, SEX2_FORMULA, firth=True, level=0.90, **kw)
    t = res.table().set_index("term")
    prof = res.profile_ci().set_index("term")
    for term, (coef, lo, hi, chisq, p) in LOGISTF_SEX2.items():
        assert prof.loc[term, "lr_chisq"] == pytest.approx(chisq, abs=2e-5), term
        assert np.log(t.loc[term, "estimate"]) == pytest.approx(coef, abs=1e-6), term
        assert np.log(t.loc[term, "ci_lower"]) == pytest.approx(lo, abs=2e-5), term
        assert np.log(t.loc[term, "ci_upper"]) == pytest.approx(hi, abs=2e-5), term
        assert t.loc[term, "p_value"] == pytest.approx(p, rel=1e-4), term
        assert t.loc[term, "std_error"] == pytest.approx(FIRTH_SEX2_SE[term], abs=1e-5), term
    assert t["n"].iloc[0] == 239 and t["events"].iloc[0] == 130
    assert res.fitted is None and "Firth" in res.method
    # dia = 1 only in cases: quasi-complete separation, reported as a warning with firth=True
    assert any("separation" in w and "dia" in w for w in res.warnings)


def test_ml_refuses_separated_sex2_and_names_the_term():
    with pytest.raises(EstimationError, match=r"quasi-complete separation: dia.*firth=True"):
        logistic(sex2(), SEX2_FORMULA)


def test_firth_saturated_2x2_equals_adding_half_to_each_cell():
    # With one binary covariate the Firth estimate is the empirical log OR with 0.5 added to each cell
    # (Firth 1993; Heinze & Schemper 2002) -- finite even with an empty cell (complete separation).
    for a, b, c, d in [(8, 2, 3, 9), (6, 0, 2, 7)]:  # exposed events/non-events, unexposed events/non
        data = pd.DataFrame({"x": [1] * (a + b) + [0] * (c + d),
                             "y": [1] * a + [0] * b + [1] * c + [0] * d})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = logistic(data, "y ~ x", firth=True)
        assert res.coef["x"] == pytest.approx(np.log((a + .5) * (d + .5) / ((b + .5) * (c + .5))), abs=1e-8)
        assert res.coef["Intercept"] == pytest.approx(np.log((c + .5) / (d + .5)), abs=1e-8)
        assert np.isfinite(res.table().ci_upper).all()
    with pytest.raises(EstimationError, match="separation: x"):
        logistic(data, "y ~ x")


# --------------------------------------------------------------------------------------------------
# separation and degenerate data
# --------------------------------------------------------------------------------------------------
def test_multivariable_complete_separation_found_by_linear_program():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    d["y"] = (d.a + d.b > 0).astype(int)  # neither a nor b separates on its own
    with pytest.raises(EstimationError, match=r"^complete separation: a, b"):
        logistic(d, "y ~ a + b")
    res = logistic(d, "y ~ a + b", firth=True, ci="wald")
    assert np.isfinite(res.coef).all() and res.coef["a"] > 0 and res.coef["b"] > 0
    assert any(w.startswith("complete separation: a, b") for w in res.warnings)
    assert "Wald" in res.method


@pytest.mark.parametrize("outcome,message", [
    ([0] * 10, "no events"),
    ([1] * 10, "every analysed row is an event"),
])
def test_no_events_and_all_events(outcome, message):
    d = pd.DataFrame({"y": outcome, "x": np.arange(10.0)})
    with pytest.raises(EstimationError, match=message):
        logistic(d, "y ~ x")


def test_constant_and_collinear_terms_are_named():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"y": rng.integers(0, 2, 50), "x": rng.normal(size=50), "k": 3.0})
    with pytest.raises(EstimationError, match="term 'k' is constant"):
        logistic(d, "y ~ x + k")
    d["x2"] = 2 * d.x + 1
    with pytest.raises(EstimationError, match="term 'x2' is collinear"):
        logistic(d, "y ~ x + x2")


def test_missing_values_dropped_with_count_and_warning(admissions):
    d = admissions.copy()
    d.loc[[3, 10], "gpa"] = np.nan
    d.loc[20, "admit"] = np.nan
    with pytest.warns(UserWarning, match="3 of 400 rows dropped"):
        res = logistic(d, "admit ~ gre + gpa")
    assert res.n_missing == 3 and res.n == 397
    assert any("3 of 400" in w for w in res.warnings)
    full = logistic(d.dropna(), "admit ~ gre + gpa")
    assert np.allclose(res.coef, full.coef)


def test_bad_inputs_give_clear_errors(admissions):
    with pytest.raises(ValueError, match="outcome column 'gre' must be binary"):
        logistic(admissions, "gre ~ gpa")
    with pytest.raises(DataError, match=r"column 'nope' \(in the formula 'admit ~ gpa \+ nope'\) is not in"):
        logistic(admissions, "admit ~ gpa + nope")
    with pytest.raises(ValueError, match="outcome column 'zz'"):
        logistic(admissions, "zz ~ gpa")
    with pytest.raises(ValueError, match="weights column 'w' must be finite"):
        logistic(admissions.assign(w=-1.0), "admit ~ gpa", weights="w")
    with pytest.raises(ValueError, match="frequency weights in 'w' must be whole numbers"):
        logistic(admissions.assign(w=1.5), "admit ~ gpa", weights="w", weight_type="frequency")
    with pytest.raises(ValueError, match="firth=True with cluster"):
        logistic(admissions, "admit ~ gpa", firth=True, cluster="rank")
    d = admissions.assign(grp=np.where(admissions.gpa > 3, "hi", "lo"))
    res = logistic(d, "admit ~ grp")
    with pytest.raises(ValueError, match="'mid' was not seen"):
        res.predict(pd.DataFrame({"grp": ["mid"]}))


def test_bool_outcome_and_bool_covariate(admissions):
    d = admissions.assign(admit=admissions.admit.astype(bool), top=admissions["rank"] == 1)
    res = logistic(d, "admit ~ gpa + top")
    assert "top[T.True]" in res.coef.index
    # a single binary covariate with intercept reproduces the 2x2 odds ratio exactly
    res = logistic(d, "admit ~ top")
    tab = pd.crosstab(d.top, d.admit)
    or_ = tab.loc[True, True] * tab.loc[False, False] / (tab.loc[True, False] * tab.loc[False, True])
    assert res.table().set_index("term").loc["top[T.True]", "estimate"] == pytest.approx(or_, rel=1e-9)


# --------------------------------------------------------------------------------------------------
# prediction, discrimination, calibration
# --------------------------------------------------------------------------------------------------
def test_predict_matches_statsmodels_fitted(admissions):
    res = logistic(admissions, "admit ~ gre + gpa + C(rank)")
    assert np.allclose(res.predict(admissions), res.fitted.predict(), atol=1e-12)


def test_c_statistic_matches_sklearn_and_brute_force():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 120)
    s = np.round(rng.normal(size=120) + y, 1)  # rounding makes ties
    w = rng.integers(1, 4, 120).astype(float)
    c = c_statistic(y, s)
    assert c["estimate"] == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert c_statistic(y, s, w)["estimate"] == pytest.approx(roc_auc_score(y, s, sample_weight=w), rel=1e-12)
    # DeLong et al. 1988 variance from placement values, written out pair by pair
    s1, s0 = s[y == 1], s[y == 0]
    psi = (s1[:, None] > s0[None, :]) + 0.5 * (s1[:, None] == s0[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / len(s1) + v01.var(ddof=1) / len(s0)
    assert c["std_error"] == pytest.approx(np.sqrt(var), rel=1e-10)
    assert c["ci_lower"] == pytest.approx(c["estimate"] - 1.959964 * c["std_error"], rel=1e-6)


def test_c_statistic_hanley_mcneil_1982_example():
    # Hanley JA, McNeil BJ. Radiology 1982;143:29-36, Table 1: ratings of 109 CT images
    # (58 normal, 51 abnormal) on a 5-point scale; area 0.893, SE 0.032.
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    scores = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]
    y = np.r_[np.zeros(58), np.ones(51)]
    c = c_statistic(y, scores, method="hanley-mcneil")
    assert c["estimate"] == pytest.approx(0.893, abs=5e-4)
    assert c["std_error"] == pytest.approx(0.032, abs=5e-4)


def test_model_c_statistic_and_performance_table(admissions):
    from sklearn.metrics import roc_auc_score

    res = logistic(admissions, "admit ~ gre + gpa + C(rank)")
    perf = res.performance().set_index("measure")
    assert perf.loc["c_statistic", "estimate"] == pytest.approx(
        roc_auc_score(admissions.admit, res.predict(admissions)), rel=1e-12)
    assert perf.loc["c_statistic", "ci_method"] == "DeLong"
    assert res.concordance() == perf.loc["c_statistic", "estimate"]
    # on its own fitting data an ML fit is calibrated by construction: intercept 0, slope 1
    assert perf.loc["calibration_intercept", "estimate"] == pytest.approx(0, abs=1e-7)
    assert perf.loc["calibration_slope", "estimate"] == pytest.approx(1, abs=1e-7)


def test_calibration_recovers_known_miscalibration_by_simulation():
    rng = np.random.default_rng(2026)
    n = 4000
    x = rng.normal(size=n)
    train = pd.DataFrame({"x": x, "y": rng.random(n) < expit(-0.5 + 1.0 * x)})
    res = logistic(train, "y ~ x")
    lp = res.linear_predictor(train).to_numpy()
    # validation data whose true log-odds are 0.7 + 0.5 * lp: slope 0.5, and with slope 1 imposed
    # the intercept is the calibration-in-the-large of an offset model
    valid = pd.DataFrame({"x": x, "y": (rng.random(n) < expit(0.7 + 0.5 * lp)).astype(int)})
    cal = res.calibration(valid).set_index("measure")
    assert cal.loc["calibration_slope", "ci_lower"] < 0.5 < cal.loc["calibration_slope", "ci_upper"]
    # truth for the offset model: the a solving sum(expit(a + lp)) = sum(expit(0.7 + 0.5 lp))
    from scipy.optimize import brentq

    target = expit(0.7 + 0.5 * lp).sum()
    a_true = brentq(lambda a: expit(a + lp).sum() - target, -5, 5)
    lo, hi = cal.loc["calibration_intercept", ["ci_lower", "ci_upper"]]
    assert lo < a_true < hi
    assert logit(valid.y.mean()) > logit(train.y.mean())  # sanity of the simulated shift


@pytest.mark.parametrize("cluster", [None, "site"])
def test_fitted_is_the_statsmodels_logit_result(admissions, cluster):
    import statsmodels.api as sm

    d = admissions.assign(site=np.arange(len(admissions)) % 5)
    res = logistic(d, "admit ~ gre + gpa", cluster=cluster)
    X = sm.add_constant(d[["gre", "gpa"]])
    kw = {"cov_type": "cluster", "cov_kwds": {"groups": d.site}} if cluster else {}
    ref = sm.Logit(d.admit, X).fit(disp=0, **kw)
    assert np.allclose(res.fitted.params, ref.params, rtol=1e-9)
    assert np.allclose(res.fitted.bse, ref.bse, rtol=1e-7)
    assert res.fitted.llf == pytest.approx(ref.llf, rel=1e-12)
    assert res.fitted.mle_retvals["converged"]
    assert "gpa" in res.fitted.summary().as_text()


def test_single_level_term_is_an_error_not_a_silent_drop():
    rng = np.random.default_rng(4)
    d = pd.DataFrame({"y": rng.integers(0, 2, 40), "x": rng.normal(size=40), "sex": "male"})
    with pytest.raises(EstimationError, match="term 'sex' has a single level \\('male'\\)"):
        logistic(d, "y ~ x + sex")
    with pytest.raises(EstimationError, match=r"term 'C\(sex\)' has a single level"):
        logistic(d, "y ~ x + C(sex)")


def test_firth_profile_falls_back_to_wald_with_a_named_warning():
    # Complete separation in two dimensions leaves a flat ridge in the penalised profile for some terms.
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    d["y"] = (d.a + d.b > 0).astype(int)
    with pytest.warns(UserWarning, match="profile likelihood could not be maximised for .*a"):
        res = logistic(d, "y ~ a + b", firth=True)
    prof = res.profile_ci().set_index("term")
    fell_back = prof.ci_method == "wald"
    assert fell_back.any() and np.isnan(prof.lr_chisq[fell_back]).all()
    t = res.table().set_index("term")
    se = t.loc["a", "std_error"]
    if fell_back["a"]:
        assert t.loc["a", "ci_lower"] == pytest.approx(np.exp(res.coef["a"] - 1.959964 * se), rel=1e-5)
    assert np.isfinite(t[["ci_lower", "ci_upper"]].to_numpy()).all()


def test_separation_missed_before_fitting_is_caught_after(monkeypatch):
    # On large data the linear program is skipped; the ML iterations then diverge and say so.
    import hostats.stats.regression.logit as reg

    monkeypatch.setattr(reg, "_LP_MAX_CELLS", 0)
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    d["y"] = (d.a + d.b > 0).astype(int)
    with pytest.raises(EstimationError, match="did not converge.*firth=True"):
        logistic(d, "y ~ a + b")


def test_near_separation_warns_about_extreme_fitted_probabilities():
    x = np.r_[np.linspace(-30, -0.1, 40), np.linspace(0.1, 30, 40), [0.05, -0.05]]
    y = np.r_[np.zeros(40), np.ones(40), [0, 1]]  # one overlap near 0 keeps the MLE finite
    with pytest.warns(UserWarning, match="fitted probabilities numerically 0 or 1"):
        res = logistic(pd.DataFrame({"x": x, "y": y}), "y ~ x")
    assert np.isfinite(res.coef["x"]) and any("firth=True" in w for w in res.warnings)
