"""Cox model against published R output, R's survival package and lifelines (the test oracle).

Published reference: Fox J, Weisberg S. Cox Proportional-Hazards Regression for Survival Data in R. An
Appendix to An R Companion to Applied Regression (2011; 3rd ed. 2018), Rossi recidivism data,
``coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio)`` (Efron ties):
fin -0.37942 (SE 0.19138), age -0.05744 (0.02200), race 0.31390 (0.30799), wexp -0.14980 (0.21222),
mar -0.43370 (0.38187), paro -0.08487 (0.19576), prio 0.09150 (0.02865); likelihood ratio test 33.27
on 7 df.

Full-precision references (agreement to 1e-6: coxph stops at a relative log-likelihood change of 1e-9):
R 4.2.2, survival 3.5-3 on the same data (lifelines.datasets.load_rossi,
written to CSV with the columns ``w`` and ``cl`` built as in ``_rossi()`` below), stored in
tests/reference/cox.json by tests/reference/cox.R, in short:

    r  <- read.csv("rossi.csv")
    f0 <- coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = r)
    coef(f0); sqrt(diag(vcov(f0))); f0$loglik; f0$score; f0$wald.test; f0$concordance
    cox.zph(f0)$table; cox.zph(f0, transform = "identity")$table
    sqrt(diag(vcov(update(f0, robust = TRUE))))
    f2 <- coxph(Surv(week, arrest) ~ fin + age + prio, data = r, cluster = cl)
    f3 <- coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = r); cox.zph(f3)$table
    f4 <- coxph(Surv(week, arrest) ~ fin + age + prio, data = r, weights = w)   # robust by default
    f5 <- coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = r, weights = w, cluster = cl)
    cox.zph(f4)$table
    f6 <- coxph(Surv(week, arrest) ~ fin + age + prio + factor(cl %% 3), data = r); cox.zph(f6)$table
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError, EstimationError
from hostats.stats.survival.km_cox import cox
from tests.paths import DATA, REFERENCE

R = json.loads((REFERENCE / "cox.json").read_text())
ROSSI_TERMS = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
FULL = " + ".join(ROSSI_TERMS)


def _rossi() -> pd.DataFrame:
    from lifelines.datasets import load_rossi

    df = load_rossi()
    rng = np.random.default_rng(3)
    df["w"] = np.round(rng.uniform(0.3, 3, len(df)), 3)
    df["cl"] = np.arange(len(df)) % 60
    return df


@pytest.fixture(scope="module")
def rossi() -> pd.DataFrame:
    return _rossi()


@pytest.fixture(scope="module")
def rossi_fit(rossi):
    return cox(rossi, FULL, "week", "arrest")


def test_rossi_matches_published_fox_weisberg(rossi_fit):
    tab = rossi_fit.table().set_index("term")
    published = {"fin": (-0.37942, 0.19138), "age": (-0.05744, 0.02200), "race": (0.31390, 0.30799),
                 "wexp": (-0.14980, 0.21222), "mar": (-0.43370, 0.38187), "paro": (-0.08487, 0.19576),
                 "prio": (0.09150, 0.02865)}
    for term, (b, se) in published.items():
        assert tab.loc[term, "log_hr"] == pytest.approx(b, abs=5e-6)
        assert tab.loc[term, "std_error"] == pytest.approx(se, abs=5e-6)
        assert tab.loc[term, "estimate"] == pytest.approx(np.exp(b), rel=1e-4)
    lr = rossi_fit.tests().set_index("measure").loc["likelihood_ratio"]
    assert lr["estimate"] == pytest.approx(33.27, abs=0.005) and lr["df"] == 7
    assert (tab["n"] == 432).all() and (tab["events"] == 114).all()


def test_rossi_full_precision_against_r(rossi_fit):
    r_coef = R["full"]["coef"]
    r_se = R["full"]["std_error"]
    np.testing.assert_allclose(rossi_fit.coef, r_coef, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(rossi_fit.vcov)), r_se, rtol=1e-6)
    np.testing.assert_allclose(rossi_fit.loglik, R["full"]["loglik"], rtol=1e-11)
    tests = rossi_fit.tests().set_index("measure")["estimate"]
    assert tests["score"] == pytest.approx(R["full"]["score"], rel=1e-9)
    assert tests["wald"] == pytest.approx(R["full"]["wald"], rel=1e-6)
    # concordance: (27242 + 49 / 2) / (27242 + 15291 + 49) = 0.6403292471
    assert rossi_fit.concordance() == pytest.approx(R["full"]["concordance"], rel=1e-10)
    assert not rossi_fit.robust and rossi_fit.warnings == ()


def test_check_ph_matches_r_cox_zph(rossi_fit):
    km = rossi_fit.check_ph().set_index("term")
    r_km = R["full"]["zph_km"]["chisq"]
    np.testing.assert_allclose(km["chisq"], r_km, rtol=1e-7)
    assert km.loc["GLOBAL", "df"] == 7
    assert km.loc["GLOBAL", "p_value"] == pytest.approx(R["full"]["zph_km"]["p"][-1], rel=1e-6)
    ident = rossi_fit.check_ph("identity")
    r_id = R["full"]["zph_identity"]["chisq"]
    np.testing.assert_allclose(ident["chisq"], r_id, rtol=1e-7)
    with pytest.raises(ValueError, match="transform"):
        rossi_fit.check_ph("sqrt")


def test_scaled_schoenfeld_residuals_match_r(rossi_fit):
    # head(cox.zph(f0)$y, 3) and head(cox.zph(f0)$x, 3)
    ph = rossi_fit.ph_residuals()
    assert len(ph) == 114
    np.testing.assert_allclose(ph["g"].iloc[:3], R["full"]["zph_x_head"], atol=1e-12)
    np.testing.assert_allclose(ph.loc[0, ROSSI_TERMS], R["full"]["zph_y_row1"], rtol=1e-6)
    np.testing.assert_allclose(ph.loc[1, ["fin", "age", "prio"]], R["full"]["zph_y_row2_fin_age_prio"],
                               rtol=1e-5)


def test_robust_cluster_strata_weights_against_r(rossi):
    robust = cox(rossi, FULL, "week", "arrest", robust=True)
    np.testing.assert_allclose(robust.table()["std_error"], R["full"]["robust_std_error"], rtol=1e-6)
    f2 = cox(rossi, "fin + age + prio", "week", "arrest", cluster="cl")
    assert f2.robust
    np.testing.assert_allclose(f2.coef, R["cluster"]["coef"], rtol=1e-6)
    np.testing.assert_allclose(f2.table()["std_error"], R["cluster"]["std_error"], rtol=1e-6)
    f3 = cox(rossi, "fin + age + prio", "week", "arrest", strata="wexp")
    np.testing.assert_allclose(f3.coef, R["strata"]["coef"], rtol=1e-6)
    np.testing.assert_allclose(f3.table()["std_error"], R["strata"]["std_error"], rtol=1e-6)
    np.testing.assert_allclose(f3.loglik, R["strata"]["loglik"], rtol=1e-11)
    np.testing.assert_allclose(f3.check_ph()["chisq"], R["strata"]["zph_km"]["chisq"], rtol=1e-7)
    f4 = cox(rossi, "fin + age + prio", "week", "arrest", weights="w")
    assert f4.robust  # non-integer weights: robust by default, as coxph
    np.testing.assert_allclose(f4.coef, R["weights"]["coef"], rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(f4.naive_vcov)), R["weights"]["naive_std_error"], rtol=1e-6)
    np.testing.assert_allclose(f4.table()["std_error"], R["weights"]["std_error"], rtol=1e-6)
    np.testing.assert_allclose(f4.loglik, R["weights"]["loglik"], rtol=1e-10)
    np.testing.assert_allclose(f4.check_ph()["chisq"], R["weights"]["zph_km"]["chisq"], rtol=1e-6)
    f5 = cox(rossi, "fin + age + prio", "week", "arrest", weights="w", cluster="cl", strata="wexp")
    np.testing.assert_allclose(f5.coef, R["weights_cluster_strata"]["coef"], rtol=1e-6)
    np.testing.assert_allclose(f5.table()["std_error"], R["weights_cluster_strata"]["std_error"], rtol=1e-6)


def test_factor_term_check_ph_against_r(rossi):
    f6 = cox(rossi.assign(c3=rossi["cl"] % 3), "fin + age + prio + C(c3)", "week", "arrest")
    np.testing.assert_allclose(f6.coef, R["factor"]["coef"], rtol=1e-6)
    zph = f6.check_ph()
    assert list(zph["df"]) == R["factor"]["zph_km"]["df"]
    np.testing.assert_allclose(zph["chisq"], R["factor"]["zph_km"]["chisq"], rtol=1e-6)


def _simulate(seed: int, n: int, ties: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    grp = rng.choice(["a", "b", "c"], n)
    lp = x @ np.array([0.5, -0.3, 0.0]) + np.where(grp == "b", 0.4, 0.0)
    t = rng.exponential(np.exp(-lp))
    c = rng.exponential(1.2, n)
    time = np.minimum(t, c)
    if ties:
        time = np.ceil(time * 8) / 8  # heavy ties
    return pd.DataFrame({"time": time, "event": (t <= c).astype(int), "x1": x[:, 0], "x2": x[:, 1],
                         "x3": x[:, 2], "grp": grp, "site": rng.integers(0, 3, n),
                         "fw": rng.integers(1, 4, n).astype(float)})


@pytest.mark.parametrize("case", ["ties", "strata", "freq_weights", "untied_robust", "all"])
def test_matches_lifelines_oracle(case):
    from lifelines import CoxPHFitter

    df = _simulate({"ties": 1, "strata": 2, "freq_weights": 3, "untied_robust": 4, "all": 5}[case], 600,
                   ties=case != "untied_robust")
    kw: dict = {}
    lkw: dict = {}
    if case == "strata":
        kw, lkw = {"strata": "site"}, {"strata": ["site"]}
    if case == "freq_weights":
        kw, lkw = {"weights": "fw"}, {"weights_col": "fw"}
    if case == "untied_robust":  # lifelines' score residuals ignore ties: compare without ties
        kw, lkw = {"robust": True}, {"robust": True}
    if case == "all":  # ties + strata + frequency weights
        kw, lkw = {"strata": "site", "weights": "fw"}, {"strata": ["site"], "weights_col": "fw"}
    res = cox(df, "x1 + x2 + x3", "time", "event", **kw)
    cols = ["time", "event", "x1", "x2", "x3"] + [c for c in ("site", "fw") if c in str(lkw)]
    cph = CoxPHFitter().fit(df[cols], "time", "event", fit_options={"precision": 1e-12}, **lkw)
    np.testing.assert_allclose(res.coef, cph.params_.to_numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(res.table()["std_error"], cph.standard_errors_.to_numpy(), rtol=1e-6)
    assert res.loglik[1] == pytest.approx(cph.log_likelihood_, rel=1e-9)


def test_factor_terms_and_simulated_truth():
    df = _simulate(11, 20000, ties=False)
    res = cox(df, "x1 + x2 + x3 + C(grp)", "time", "event")
    tab = res.table().set_index("term")
    truth = {"x1": 0.5, "x2": -0.3, "x3": 0.0, "C(grp)[T.b]": 0.4, "C(grp)[T.c]": 0.0}
    for term, b in truth.items():
        assert abs(tab.loc[term, "log_hr"] - b) < 4 * tab.loc[term, "std_error"], term
    zph = res.check_ph()
    assert list(zph["term"]) == ["x1", "x2", "x3", "C(grp)", "GLOBAL"]
    assert zph.set_index("term").loc["C(grp)", "df"] == 2  # one test per term, as cox.zph(terms=TRUE)
    assert "~" not in res.method


def test_to_lifelines_reproduces_the_fit(rossi, rossi_fit):
    cph = rossi_fit.to_lifelines()
    np.testing.assert_allclose(cph.params_.to_numpy(), rossi_fit.coef.to_numpy(), rtol=1e-6)


def test_degenerate_inputs(rossi):
    with pytest.raises(EstimationError, match="no events"):
        cox(rossi.assign(arrest=0), "fin + age", "week", "arrest")
    with pytest.raises(EstimationError, match="'const' is constant"):
        cox(rossi.assign(const=1.0), "fin + const", "week", "arrest")
    bad = rossi.copy()
    bad.loc[7, "week"] = -3
    with pytest.raises(DataError, match="negative times in rows 7"):
        cox(bad, "fin", "week", "arrest")
    bad = rossi.astype({"age": float})
    bad.loc[[2, 9], "age"] = np.nan
    with pytest.warns(UserWarning, match="2 of 432 rows dropped.*'age' \\(2\\)"):
        assert cox(bad, "fin + age", "week", "arrest").n == 430
    with pytest.raises(DataError, match="1 \\(event\\) or 0"):
        cox(rossi.assign(arrest=rossi["arrest"] * 2), "fin", "week", "arrest")
    with pytest.raises(DataError, match="weights column 'w' must be positive"):
        cox(rossi.assign(w=-rossi["w"]), "fin", "week", "arrest", weights="w")
    with pytest.warns(UserWarning, match="'week' \\(1\\)"):
        cox(rossi.assign(week=rossi["week"].where(rossi.index != 4)), "fin", "week", "arrest")
    with pytest.raises(DataError, match=r"column 'height' \(in the formula 'fin \+ height'\) is not in the data"):
        cox(rossi, "fin + height", "week", "arrest")
    with pytest.warns(UserWarning, match="'wexp' \\(1\\)"):
        cox(rossi.assign(wexp=rossi["wexp"].where(rossi.index > 0)), "fin", "week", "arrest", strata="wexp")
    with pytest.raises(EstimationError, match="collinear|singular"):
        cox(rossi.assign(fin2=2 * rossi["fin"]), "fin + fin2", "week", "arrest")
    # monotone likelihood: every event in one level of a binary covariate
    mono = rossi.assign(z=rossi["arrest"])
    res = cox(mono, "fin + z", "week", "arrest")
    assert any("'z' may be infinite" in w for w in res.warnings)


def test_profile_likelihood_limits_against_r(rossi):
    """R 4.2.2 / survival 3.5-3: the profile log-likelihood of fin (prio) from
    coxph(Surv(week, arrest) ~ age + prio + offset(v * fin)), and the limits where it falls by
    qchisq(0.95, 1) / 2 below the maximum, found with uniroot(tol = 1e-12) (cox.json)."""
    res = cox(rossi, "fin + age + prio", "week", "arrest", ci="profile")
    tab = res.table().set_index("term")
    np.testing.assert_allclose(np.log(tab.loc["fin", ["ci_lower", "ci_upper"]].to_numpy(float)),
                               R["profile"]["fin"], rtol=1e-6)
    np.testing.assert_allclose(np.log(tab.loc["prio", ["ci_lower", "ci_upper"]].to_numpy(float)),
                               R["profile"]["prio"], rtol=1e-6)
    one = cox(rossi, "fin", "week", "arrest", ci="profile").table()
    np.testing.assert_allclose(np.log(one[["ci_lower", "ci_upper"]].to_numpy(float))[0],
                               R["profile"]["fin_alone"], rtol=1e-5)
    assert "profile" in res.method
    with pytest.raises(ValueError, match="model-based"):
        cox(rossi, "fin", "week", "arrest", cluster="cl", ci="profile")
    with pytest.raises(ValueError, match="ci must be"):
        cox(rossi, "fin", "week", "arrest", ci="exact")


# --- cox.zph with every transform, stored from R (tests/reference/cox_zph.R -> cox_zph.json) ---
def _zph_reference() -> dict:
    import json

    return json.loads((REFERENCE / "cox_zph.json").read_text())


def _zph_fits(rossi) -> dict:

    lung = pd.read_csv(DATA / "lung.csv")
    lung = lung.assign(dead=(lung["status"] == 2).astype(int)).rename(columns={"ph.ecog": "ecog"})
    with pytest.warns(UserWarning, match="1 of 228 rows dropped"):
        lung_fit = cox(lung, "age + sex + ecog", "time", "dead")
    return {"lung": lung_fit, "rossi": cox(rossi, FULL, "week", "arrest"),
            "rossi_strata": cox(rossi, "fin + age + prio", "week", "arrest", strata="wexp")}


@pytest.mark.parametrize("transform", ["km", "identity", "log", "rank"])
def test_check_ph_every_transform_matches_r(rossi, transform):
    ref = _zph_reference()
    for name, fit in _zph_fits(rossi).items():
        r = ref[name][transform]
        np.testing.assert_allclose(fit.coef, ref[name]["coef"], rtol=1e-6)
        got = fit.check_ph(transform)
        assert list(got["term"].iloc[:-1]) == list(fit.coef.index) and got["term"].iloc[-1] == "GLOBAL"
        np.testing.assert_allclose(got["chisq"], r["chisq"], rtol=1e-6, err_msg=f"{name} {transform}")
        np.testing.assert_allclose(got["df"], r["df"])
        np.testing.assert_allclose(got["p_value"], r["p"], rtol=1e-5, atol=1e-12)
        res = fit.ph_residuals(transform)
        np.testing.assert_allclose(res["g"].iloc[:5], r["x_head"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res["g"].iloc[-5:], r["x_tail"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res.iloc[:3, 2:], r["y_head"], rtol=1e-6, atol=1e-7)


def test_rank_transform_ranks_all_follow_up_times(rossi):
    """R ranks every subject's time, censored ones included (cox.zph: rank(times)); ranking only the
    event times gave 0.364 for age on lung where R gives 0.117."""
    fit = _zph_fits(rossi)["lung"]
    age = fit.check_ph("rank").set_index("term").loc["age", "chisq"]
    ref = _zph_reference()["lung"]["rank"]
    assert age == pytest.approx(ref["chisq"][ref["term"].index("age")], rel=1e-6)
    g = fit.ph_residuals("rank")["g"]
    assert g.max() > fit.events  # ranks among all 227 rows, not among the 164 events


def test_term_coefficients_name_each_check_ph_row_by_its_coefficients():
    """check_ph tests a term as a whole (as cox.zph); term_coefficients says which coefficients it holds."""
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"age": rng.normal(60, 10, 300), "g": rng.choice(["a", "b", "c"], 300),
                      "time": rng.exponential(100, 300), "event": rng.integers(0, 2, 300)})
    fit = cox(d, "age + C(g)", "time", "event")
    assert dict(fit.term_coefficients) == {"age": ("age",), "C(g)": ("C(g)[T.b]", "C(g)[T.c]")}
    assert list(fit.check_ph()["term"]) == [*fit.term_coefficients, "GLOBAL"]
    with pytest.raises(TypeError):
        fit.term_coefficients["age"] = ("x",)
