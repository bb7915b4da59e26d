"""Kaplan-Meier against R's survival package and lifelines.

Reference: the ``aml`` data (acute myelogenous leukaemia, maintenance chemotherapy; Miller RG, Survival
Analysis, Wiley 1981; shipped as ``survival::aml``). R values (R 4.2.2, survival 3.5-3) are in
tests/reference/km.json, written by tests/reference/km.R:
``survfit(Surv(time, status) ~ x, data = aml, conf.type = "log-log")`` whose printed medians are
31 (13, NA) for Maintained and 23 (5, 33) for Nonmaintained, and ``survdiff(Surv(time, status) ~ x,
data = aml)``: Chisq = 3.396 on 1 df, p = 0.0653.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError, EstimationError
from hostats.stats.survival.km_cox import kaplan_meier
from tests.paths import REFERENCE

R = json.loads((REFERENCE / "km.json").read_text())

AML = pd.DataFrame({
    "time": [9, 13, 13, 18, 23, 28, 31, 34, 45, 48, 161, 5, 5, 8, 8, 12, 16, 23, 27, 30, 33, 43, 45],
    "status": [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1],
    "x": ["Maintained"] * 11 + ["Nonmaintained"] * 12,
})

# summary(survfit(...)): time, n.risk, surv, lower, upper (log-log), R survival 3.5-3 (km.json)
R_AML = pd.DataFrame(R["aml"]["curve"])[["group", "time", "n_at_risk", "estimate", "ci_lower", "ci_upper"]]


def test_aml_curve_matches_r_survfit_loglog():
    res = kaplan_meier(AML, "time", "status", group="x")
    got = res.curve[res.curve["time"] > 0].reset_index(drop=True)
    got = got[got["estimate"] > 0].reset_index(drop=True)  # R's limits are NA at S = 0
    assert list(got["group"].astype(str)) == list(R_AML["group"])
    np.testing.assert_array_equal(got["time"], R_AML["time"])
    np.testing.assert_array_equal(got["n_at_risk"], R_AML["n_at_risk"])
    for col in ("estimate", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(got[col], R_AML[col], rtol=1e-8, atol=1e-10)


def test_aml_medians_and_logrank_match_r():
    res = kaplan_meier(AML, "time", "status", group="x")
    tab = res.table().set_index("group")
    med = pd.DataFrame(R["aml"]["median"]).set_index("group")  # print(survfit(...)): median and limits
    assert tab.loc["Maintained", "estimate"] == med.loc["Maintained", "estimate"]
    assert tab.loc["Maintained", "ci_lower"] == med.loc["Maintained", "ci_lower"]
    assert np.isnan(tab.loc["Maintained", "ci_upper"])  # R prints NA: upper limit not reached
    assert tuple(tab.loc["Nonmaintained", ["estimate", "ci_lower", "ci_upper"]]) == tuple(
        med.loc["Nonmaintained", ["estimate", "ci_lower", "ci_upper"]])
    assert tuple(tab["n"]) == tuple(med["n"]) and tuple(tab["events"]) == tuple(med["events"])
    lr = res.logrank.table().iloc[0]
    assert lr["estimate"] == pytest.approx(R["aml"]["logrank"]["chisq"], rel=1e-9)
    assert lr["p_value"] == pytest.approx(R["aml"]["logrank"]["p_value"], rel=1e-8)
    assert lr["df"] == 1


def test_at_times_number_at_risk_and_cumulative_incidence():
    res = kaplan_meier(AML, "time", "status", group="x")
    at = res.at([10, 20, 30]).set_index(["group", "time"])
    # summary(fit, times = c(10, 20, 30)) in R: n.risk 10, 7, 5 and 8, 6, 4
    assert list(at["n_at_risk"]) == R["aml"]["at_10_20_30"]["n_at_risk"]
    r_at = pd.DataFrame(R["aml"]["at_10_20_30"]).set_index(["group", "time"]).loc[("Maintained", 20)]
    assert at.loc[("Maintained", 20.0), "estimate"] == pytest.approx(r_at["estimate"])
    ci = res.at([20], kind="cumulative_incidence").set_index("group")
    assert ci.loc["Maintained", "estimate"] == pytest.approx(1 - r_at["estimate"])
    assert ci.loc["Maintained", "ci_lower"] == pytest.approx(1 - r_at["ci_upper"])
    assert ci.loc["Maintained", "ci_upper"] == pytest.approx(1 - r_at["ci_lower"])
    before = res.at([0, 4.9]).set_index("group")
    assert (before["estimate"] == 1).all()
    with pytest.raises(ValueError, match="kind"):
        res.at([1], kind="hazard")
    full = res.cumulative_incidence()
    assert full["estimate"].between(0, 1).all()


def test_matches_lifelines_with_many_ties():
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(7)
    n = 400
    df = pd.DataFrame({"t": rng.integers(1, 40, n).astype(float), "e": rng.random(n) < 0.6})
    res = kaplan_meier(df, "t", "e")
    kmf = KaplanMeierFitter().fit(df["t"], df["e"])
    times = np.arange(0, 41, 0.5)
    ours = res.at(times)
    np.testing.assert_allclose(ours["estimate"], kmf.survival_function_at_times(times).to_numpy(),
                               rtol=1e-12)
    ci = kmf.confidence_interval_survival_function_
    idx = np.searchsorted(ci.index.to_numpy(), times, side="right") - 1
    np.testing.assert_allclose(ours["ci_lower"], ci.iloc[idx, 0].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours["ci_upper"], ci.iloc[idx, 1].to_numpy(), rtol=1e-9)
    assert res.table()["estimate"].iloc[0] == pytest.approx(kmf.median_survival_time_)


def test_weighted_point_estimate_matches_r_and_equal_weights_give_greenwood():
    # R: survfit(Surv(time, status) ~ x, data = aml, weights = w); w from set.seed(1);
    # round(runif(23, 0.5, 3), 3); the curve at the event times (km.json)
    w = R["aml_weighted"]["weights"]
    r_surv = R["aml_weighted"]["estimate"]
    df = AML.assign(w=w)
    res = kaplan_meier(df, "time", "status", group="x", weights="w")
    got = res.curve[res.curve["time"] > 0]
    np.testing.assert_allclose(got["estimate"], r_surv, rtol=1e-8, atol=1e-12)
    assert "IPTW" in res.method
    with pytest.raises(EstimationError, match="weighted"):
        _ = res.logrank
    # constant weights: the effective risk-set size is the count, so the limits are Greenwood's
    const = kaplan_meier(AML.assign(w=2.5), "time", "status", group="x", weights="w")
    plain = kaplan_meier(AML, "time", "status", group="x")
    np.testing.assert_allclose(const.curve["ci_lower"], plain.curve["ci_lower"], rtol=1e-12)
    np.testing.assert_allclose(const.curve["ci_upper"], plain.curve["ci_upper"], rtol=1e-12)
    # first jump by hand (Xie & Liu 2005, as coded in R's adjustedCurves::surv_iptw_km):
    # var(log S) = d_w / (M (n_w - d_w)), M = (sum w)^2 / sum w^2 over the risk set
    wm = np.array(w[:11])
    d_w, n_w, m = wm[0], wm.sum(), wm.sum() ** 2 / (wm ** 2).sum()
    s = 1 - d_w / n_w
    se = np.sqrt(d_w / (m * (n_w - d_w))) / abs(np.log(s))
    first = got.iloc[0]
    assert first["ci_lower"] == pytest.approx(np.exp(-np.exp(np.log(-np.log(s)) + 1.959963984540054 * se)))
    assert first["ci_upper"] == pytest.approx(np.exp(-np.exp(np.log(-np.log(s)) - 1.959963984540054 * se)))


def test_degenerate_inputs():
    none = AML.assign(status=0)
    res = kaplan_meier(none, "time", "status", group="x")
    assert (res.curve["estimate"] == 1).all()
    assert not res.table()["median_reached"].any()
    assert res.warnings and "no events" in res.warnings[0]
    with pytest.raises(EstimationError, match="at least one event"):
        _ = res.logrank
    with pytest.raises(EstimationError, match="two groups"):
        _ = kaplan_meier(AML, "time", "status").logrank
    with pytest.raises(EstimationError, match="two groups"):
        _ = kaplan_meier(AML.assign(x="a"), "time", "status", group="x").logrank
    # a group with every patient censored keeps its row: S = 1 throughout
    mixed = AML.assign(status=np.where(AML["x"] == "Maintained", 0, AML["status"]))
    tab = kaplan_meier(mixed, "time", "status", group="x").table().set_index("group")
    assert tab.loc["Maintained", "events"] == 0 and not tab.loc["Maintained", "median_reached"]

    bad = AML.copy()
    bad.loc[3, "time"] = -1
    with pytest.raises(DataError, match="negative.*rows 3"):
        kaplan_meier(bad, "time", "status")
    bad.loc[3, "time"] = np.nan  # complete-case analysis (tests/test_regression_api.py has the policy)
    with pytest.warns(UserWarning, match="1 of 23 rows dropped"):
        assert kaplan_meier(bad, "time", "status").n == 22
    with pytest.raises(DataError, match="1 \\(event\\) or 0"):
        kaplan_meier(AML.assign(status=2), "time", "status")
    with pytest.raises(DataError, match="not in the data"):
        kaplan_meier(AML, "days", "status")
    with pytest.warns(UserWarning, match="'x' \\(1\\)"):
        kaplan_meier(AML.assign(x=AML["x"].where(AML.index != 5)), "time", "status", group="x")
    with pytest.raises(DataError, match="positive"):
        kaplan_meier(AML.assign(w=0.0), "time", "status", weights="w")
    with pytest.raises(ValueError, match="level"):
        kaplan_meier(AML, "time", "status", level=95)


def test_four_group_logrank_and_medians_on_bmtcrr(data_dir):
    """bmtcrr (tests/data/README.md; Scrucca et al. 2007). R 4.2.2, survival 3.5-3 (km.json):
    survdiff(Surv(ftime, Status == 1) ~ Phase): Chisq = 25.98 on 3 df, and its expected counts;
    survfit(Surv(ftime, Status > 0) ~ Phase, conf.type = "log-log") medians (LCL, UCL):
    CR1 8.63 (6.00, NA), CR2 9.50 (7.00, 28.53), CR3 5.75 (2.83, NA), Relapse 3.93 (3.03, 6.07)."""
    r = R["bmtcrr"]
    d = pd.read_csv(data_dir / "bmtcrr.csv")
    d["relapse"] = (d["Status"] == 1).astype(int)
    d["any"] = (d["Status"] > 0).astype(int)
    lr = kaplan_meier(d, "ftime", "relapse", group="Phase").logrank
    row = lr.table().iloc[0]
    assert row["estimate"] == pytest.approx(r["logrank_chisq"], rel=1e-9) and row["df"] == r["logrank_df"]
    np.testing.assert_allclose(lr.fitted["expected"], r["logrank_expected"], rtol=1e-10)
    tab = kaplan_meier(d, "ftime", "any", group="Phase").table()
    np.testing.assert_allclose(tab["estimate"], r["median"], atol=0.005)
    np.testing.assert_allclose(tab["ci_lower"], r["median_ci_lower"], atol=0.005)
    np.testing.assert_allclose(tab["ci_upper"], np.array(r["median_ci_upper"], dtype=float), atol=0.005)
    assert list(tab["events"]) == r["events"]
