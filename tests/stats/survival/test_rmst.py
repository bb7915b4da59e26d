"""hostats.rmst: restricted mean survival time / time lost, against R survival 3.5-3 and closed forms.

Reference values: tests/reference/rmst.json, written by tests/reference/rmst.R (run by hand; the tests never
need R). Data: tests/data/lung.csv (survival's ``lung``) and tests/data/bmtcrr.csv (see tests/data/README.md).
What is matched (the R script says how each figure was made):
* Kaplan-Meier, unweighted: estimate and SE of ``print(survfit(...), rmean = tau)`` (Greenwood-type variance,
  as survRM2) -- to 1e-9 relative: the same arithmetic.
* Aalen-Johansen (``cause``), unweighted: rmean and se(rmean) of the multi-state survfit with
  ``influence = TRUE`` (infinitesimal jackknife) -- to 1e-9 relative.
* Weighted (given weights): survfit(..., weights, id, robust = TRUE) influence, weighted as survfit's own
  std.err -- to 1e-9 relative. IPTW path: weights re-estimated in Python (they agree with R's glm to ~1e-8),
  so 1e-6 relative.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import hostats
from hostats.errors import DataError, EstimationError
from hostats.stats.causal.weighting import iptw
from hostats.stats.survival.restricted_mean import RMSTResult, rmst
from tests.paths import TESTS

HERE = TESTS
REF = json.loads((HERE / "reference" / "rmst.json").read_text())


def _lung() -> pd.DataFrame:
    d = pd.read_csv(HERE / "data" / "lung.csv")
    d["event"] = (d["status"] == 2).astype(int)
    d["w"] = d["age"] / 60.0              # the arbitrary weights of rmst.R
    return d


def _bmt() -> pd.DataFrame:
    d = pd.read_csv(HERE / "data" / "bmtcrr.csv")
    d["relapse"] = (d["Status"] == 1).astype(int)
    d["iptw"] = REF["iptw_weights_bmtcrr"]   # rmst.R's stabilised ATE weights
    return d


def _group_rows(table: pd.DataFrame) -> pd.DataFrame:
    out = table[table["contrast"].isna()].copy()
    out["key"] = out["group"].map(lambda g: str(int(g)) if isinstance(g, float) else str(g))
    return out.set_index(["key", "measure"])


@pytest.mark.parametrize("name", sorted(REF["cases"]))
def test_matches_r_survival(name):
    case = REF["cases"][name]
    data = _lung() if case["data"] == "lung" else _bmt()
    res = rmst(data, case["time"], case["status"], case["tau"], cause=case["cause"], group=case["group"],
               weights=case["weights"])
    rows = _group_rows(res.table())
    assert len(rows) == len(case["rows"])
    for ref in case["rows"]:
        got = rows.loc[(str(ref["group"]), ref["measure"])]
        assert got["estimate"] == pytest.approx(ref["estimate"], rel=1e-9, abs=1e-9), ref
        assert got["std_error"] == pytest.approx(ref["std_error"], rel=1e-9), ref
        assert got["tau"] == case["tau"]
        if case["weights"] is None and "print_se" in ref:   # multi-state fits: the printed se(rmean) itself
            assert got["std_error"] == pytest.approx(ref["print_se"], rel=1e-9)
            assert got["estimate"] == pytest.approx(ref["print_rmean"], rel=1e-9)


def test_weighted_se_is_survfits_robust_not_prints():
    """survival 3.5-3's print(rmean) drops the weights from the IJ sum for weighted fits; we match survfit's
    robust std.err instead, and the two differ on these data (so the reference is the weighted one)."""
    case = REF["cases"]["lung_km_sex_weighted_365"]
    ratios = [r["std_error"] / r["print_se"] for r in case["rows"]]
    assert min(abs(r - 1) for r in ratios) > 0.02


def test_contrasts_combine_independent_groups():
    res = rmst(_bmt(), "ftime", "Status", 24, cause=1, group="D")
    tab = res.table()
    g = tab[tab["contrast"].isna()].set_index(["group", "measure"])
    c = tab[tab["contrast"].notna()].set_index("measure")
    assert set(c["contrast"]) == {"AML vs ALL"} and res.reference_group == "ALL"
    z = norm.ppf(0.975)
    for m in ("rmst", "rmtl"):
        a, r = g.loc[("AML", m)], g.loc[("ALL", m)]
        diff = c.loc[f"{m}_difference"]
        se = np.hypot(a["std_error"], r["std_error"])
        assert diff["estimate"] == pytest.approx(a["estimate"] - r["estimate"], rel=1e-12)
        assert diff["std_error"] == pytest.approx(se, rel=1e-12)
        assert diff["ci_lower"] == pytest.approx(diff["estimate"] - z * se, rel=1e-12)
        assert diff["p_value"] == pytest.approx(2 * norm.sf(abs(diff["estimate"]) / se), rel=1e-10)
        ratio = c.loc[f"{m}_ratio"]
        log_se = np.hypot(a["std_error"] / a["estimate"], r["std_error"] / r["estimate"])
        assert ratio["estimate"] == pytest.approx(a["estimate"] / r["estimate"], rel=1e-12)
        assert ratio["std_error"] == pytest.approx(log_se, rel=1e-12)
        assert ratio["ci_upper"] == pytest.approx(ratio["estimate"] * np.exp(z * log_se), rel=1e-12)
        assert diff["n"] == 177
    # the ALL-vs-AML RMTL p-value of the cause-specific measure, by hand from the R figures
    rows = {(r["group"], r["measure"]): r for r in REF["cases"]["bmtcrr_aj_D_24"]["rows"]}
    d = rows[("AML", "rmtl")]["estimate"] - rows[("ALL", "rmtl")]["estimate"]
    se = np.hypot(rows[("AML", "rmtl")]["std_error"], rows[("ALL", "rmtl")]["std_error"])
    assert c.loc["rmtl_difference", "p_value"] == pytest.approx(2 * norm.sf(abs(d) / se), rel=1e-8)


def test_table_contract():
    res = rmst(_lung(), "time", "event", 365, group="sex", level=0.9)
    tab = res.table()
    assert list(tab.columns) == ["group", "contrast", "measure", "estimate", "ci_lower", "ci_upper", "p_value",
                                 "std_error", "n", "events", "ci_level", "tau"]
    assert isinstance(res, RMSTResult) and res.n == 228 and res.n_missing == 0 and res.tau == 365.0
    assert (tab["ci_level"] == 0.9).all()
    assert list(tab["measure"]) == ["rmst", "rmtl"] * 2 + ["rmst_difference", "rmst_ratio", "rmtl_difference",
                                                           "rmtl_ratio"]
    assert tab.loc[tab["contrast"].isna(), "p_value"].isna().all()
    assert list(tab["group"].iloc[:4]) == [1, 1, 2, 2] and tab["group"].iloc[4] is None
    # events counted up to tau: deaths at or before day 365 in each sex
    lung = _lung()
    for sex in (1, 2):
        x = lung[lung["sex"] == sex]
        row = tab[(tab["group"] == sex) & (tab["measure"] == "rmst")].iloc[0]
        assert row["events"] == int(((x["time"] <= 365) & (x["event"] == 1)).sum())
        assert row["n"] == len(x)
    assert hostats.rmst is rmst


# --------------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------------

def _uncensored(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(10.0, n), 1)           # rounding makes ties
    return pd.DataFrame({"t": t, "e": 1, "cause": rng.choice([1, 2], n, p=[0.4, 0.6]),
                         "w": rng.uniform(0.2, 3.0, n)})


def test_no_censoring_is_the_mean_of_min_t_tau():
    """Without censoring the KM is the empirical distribution: RMST = mean(min(T, tau)); the IJ (= Greenwood)
    SE is the plug-in SD / sqrt(n), i.e. s / sqrt(n) * sqrt((n - 1) / n) with the sample SD s."""
    d, tau = _uncensored(400, 1), 12.0
    x = np.minimum(d["t"].to_numpy(), tau)
    res = rmst(d, "t", "e", tau).table().set_index("measure")
    n = x.size
    assert res.loc["rmst", "estimate"] == pytest.approx(x.mean(), rel=1e-12)
    assert res.loc["rmst", "std_error"] == pytest.approx(x.std(ddof=1) / np.sqrt(n) * np.sqrt((n - 1) / n),
                                                         rel=1e-10)
    assert res.loc["rmtl", "estimate"] == pytest.approx(tau - x.mean(), rel=1e-12)


def test_no_censoring_weighted_is_the_weighted_mean():
    d, tau = _uncensored(300, 2), 9.0
    x, w = np.minimum(d["t"].to_numpy(), tau), d["w"].to_numpy()
    m = np.sum(w * x) / w.sum()
    res = rmst(d, "t", "e", tau, weights="w").table().set_index("measure")
    assert res.loc["rmst", "estimate"] == pytest.approx(m, rel=1e-12)
    # IJ of a ratio estimator: sum_i (w_i (x_i - m) / sum w)^2
    assert res.loc["rmst", "std_error"] == pytest.approx(np.sqrt(np.sum((w * (x - m)) ** 2)) / w.sum(), rel=1e-10)


def test_no_censoring_competing_rmtl_is_the_mean_time_lost_to_the_cause():
    """RMTL_k = E[(tau - min(T, tau)) 1(cause = k)]: without censoring a plain (weighted) mean."""
    d, tau = _uncensored(350, 3), 15.0
    lost = tau - np.minimum(d["t"].to_numpy(), tau)
    w = d["w"].to_numpy()
    for weights, ww in ((None, np.ones_like(w)), ("w", w)):
        res = rmst(d, "t", "cause", tau, cause=2, weights=weights).table().set_index("measure")
        for measure, k in (("rmtl", 2), ("rmtl_competing", 1)):
            y = lost * (d["cause"].to_numpy() == k)
            m = np.sum(ww * y) / ww.sum()
            assert res.loc[measure, "estimate"] == pytest.approx(m, rel=1e-12)
            assert res.loc[measure, "std_error"] == pytest.approx(np.sqrt(np.sum((ww * (y - m)) ** 2)) / ww.sum(),
                                                                  rel=1e-10)


def test_measures_add_up_to_tau_and_single_cause_equals_km():
    bmt = _bmt()
    tab = rmst(bmt, "ftime", "Status", 30, cause=1, group="Source").table()
    parts = tab[tab["contrast"].isna()].pivot(index="group", columns="measure", values="estimate")
    assert np.allclose(parts.sum(axis=1), 30.0, rtol=0, atol=1e-10)
    # with no competing events the Aalen-Johansen IJ variance equals the Greenwood one of the KM
    km = rmst(bmt, "ftime", "relapse", 30, group="Source").table()
    aj = rmst(bmt, "ftime", "relapse", 30, cause=1, group="Source").table()
    aj = aj[aj["measure"] != "rmtl_competing"].reset_index(drop=True)
    pd.testing.assert_frame_equal(km[["estimate", "std_error"]], aj[["estimate", "std_error"]], rtol=1e-10)


def test_weights_are_scale_invariant_and_unit_weights_are_unweighted():
    lung = _lung()
    a = rmst(lung, "time", "event", 400, group="sex", weights="w").table()
    b = rmst(lung.assign(w=lung["w"] * 7.3), "time", "event", 400, group="sex", weights="w").table()
    pd.testing.assert_frame_equal(a, b, rtol=1e-10)
    ones = rmst(lung.assign(one=1.0), "time", "event", 400, group="sex", weights="one").table()
    plain = rmst(lung, "time", "event", 400, group="sex").table()
    pd.testing.assert_frame_equal(ones, plain, rtol=1e-10)


def test_exponential_rmst_and_its_standard_error_by_simulation():
    """T ~ Exp(rate 0.1), independent Exp(0.05) censoring: RMST(10) = (1 - e^-1) / 0.1. One large sample is
    within 4 SE of the truth; over 300 samples of 200 the mean SE is within 12% of the SD of the estimates
    (Monte Carlo error of an SD from 300 draws is about 4%)."""
    lam, tau = 0.1, 10.0
    truth = (1 - np.exp(-lam * tau)) / lam
    rng = np.random.default_rng(20261203)

    def sample(n):
        t, c = rng.exponential(1 / lam, n), rng.exponential(1 / 0.05, n)
        return pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int)})

    big = rmst(sample(20000), "t", "e", tau).table().set_index("measure").loc["rmst"]
    assert abs(big["estimate"] - truth) < 4 * big["std_error"]
    est, se = [], []
    for _ in range(300):
        row = rmst(sample(200), "t", "e", tau).table().iloc[0]
        est.append(row["estimate"])
        se.append(row["std_error"])
    assert np.mean(se) == pytest.approx(np.std(est, ddof=1), rel=0.12)
    assert abs(np.mean(est) - truth) < 4 * np.std(est) / np.sqrt(300)


def test_competing_exponential_rmtl_by_simulation():
    """Cause-specific hazards 0.06 (cause 1) and 0.04 (cause 2): F_1(t) = 0.6 (1 - e^{-0.1 t}), so
    RMTL_1(tau) = 0.6 (tau - (1 - e^{-0.1 tau}) / 0.1)."""
    rng = np.random.default_rng(7)
    n, tau = 20000, 12.0
    t = rng.exponential(10.0, n)
    cause = np.where(rng.uniform(size=n) < 0.6, 1, 2)
    c = rng.uniform(0, 30, n)
    d = pd.DataFrame({"t": np.minimum(t, c), "s": np.where(t <= c, cause, 0)})
    res = rmst(d, "t", "s", tau, cause=1).table().set_index("measure")
    truth1 = 0.6 * (tau - (1 - np.exp(-0.1 * tau)) / 0.1)
    truth2 = truth1 / 0.6 * 0.4
    assert abs(res.loc["rmtl", "estimate"] - truth1) < 4 * res.loc["rmtl", "std_error"]
    assert abs(res.loc["rmtl_competing", "estimate"] - truth2) < 4 * res.loc["rmtl_competing", "std_error"]


# --------------------------------------------------------------------------------------------------
# IPTW path
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bmt_iptw():
    return iptw(_bmt(), "D", ["Age", "Sex"], None, time="ftime", status="Status", horizon=200)


@pytest.mark.parametrize("name,cause", [("bmtcrr_iptw_aj_D_24", 1), ("bmtcrr_iptw_km_D_24", None)])
def test_iptw_rmst_matches_r(bmt_iptw, name, cause):
    case = REF["cases"][name]
    assert np.allclose(bmt_iptw.weights.to_numpy(), REF["iptw_weights_bmtcrr"], rtol=1e-6)
    res = bmt_iptw.rmst(case["tau"], cause=cause)
    tab = res.table()
    rows = _group_rows(tab)
    for ref in case["rows"]:
        got = rows.loc[(ref["group"], ref["measure"])]
        assert got["estimate"] == pytest.approx(ref["estimate"], rel=1e-6)
        assert got["std_error"] == pytest.approx(ref["std_error"], rel=1e-6)
    assert set(tab["contrast"].dropna()) == {"AML vs ALL"}
    assert res.method.startswith("IPTW (ATE)") and "weights treated as known" in res.method


def test_iptw_rmst_needs_time_and_status():
    lung = _lung().dropna(subset=["ph.ecog"])
    res = iptw(lung, "sex", ["age", "ph.ecog"], "event")
    with pytest.raises(ValueError, match="time= and status="):
        res.rmst(365)


# --------------------------------------------------------------------------------------------------
# errors, missing data, edge cases
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tau", [0, -5, float("nan"), float("inf"), "a year"])
def test_tau_must_be_positive(tau):
    with pytest.raises(ValueError, match="tau must be a positive"):
        rmst(_lung(), "time", "event", tau)


def test_tau_beyond_follow_up_names_the_group():
    with pytest.raises(EstimationError, match=r"group 2 \(last follow-up 965\)") as err:
        rmst(_lung(), "time", "event", 1000, group="sex")
    assert "group 1" not in str(err.value)
    rmst(_lung(), "time", "event", 965, group="sex")   # up to the last follow-up itself is allowed


def test_input_errors():
    lung, bmt = _lung(), _bmt()
    with pytest.raises(DataError, match="cause="):
        rmst(bmt, "ftime", "Status", 24)                  # competing codes without cause
    with pytest.raises(ValueError, match="reference 'XYZ' is not a level"):
        rmst(bmt, "ftime", "Status", 24, cause=1, group="D", reference="XYZ")
    with pytest.raises(ValueError, match="reference= needs group="):
        rmst(bmt, "ftime", "Status", 24, cause=1, reference="ALL")
    with pytest.raises(ValueError, match="cause must be a positive integer"):
        rmst(bmt, "ftime", "Status", 24, cause=0)
    with pytest.raises(DataError, match="must be positive"):
        rmst(lung.assign(w=lung["w"] - 1.0), "time", "event", 365, weights="w")
    with pytest.raises(DataError, match="negative times"):
        rmst(lung.assign(time=lung["time"] - 100), "time", "event", 365)
    with pytest.raises(ValueError, match="level"):
        rmst(lung, "time", "event", 365, level=95)


def test_complete_cases_with_counted_warning():
    lung = _lung()
    n_na = int(lung["meal.cal"].isna().sum())
    with pytest.warns(UserWarning, match="complete-case"):
        res = rmst(lung, "time", "event", 365, group="sex", weights="meal.cal")
    assert res.n_missing == n_na and res.n == len(lung) - n_na
    assert any("dropped" in w for w in res.warnings)
    sub = rmst(lung.dropna(subset=["meal.cal"]), "time", "event", 365, group="sex", weights="meal.cal")
    pd.testing.assert_frame_equal(res.table(), sub.table())


def test_reference_defaults_to_none_and_no_event_groups():
    rng = np.random.default_rng(5)
    n = 300
    arm = rng.choice(["radiotherapy", "none", "nsaid"], n)
    t = rng.exponential(20, n)
    e = (rng.uniform(size=n) < 0.5) & (arm != "nsaid")   # no events in the nsaid arm
    d = pd.DataFrame({"t": t, "e": e, "arm": arm})
    tau = float(d.groupby("arm")["t"].max().min()) / 2
    res = rmst(d, "t", "e", tau, group="arm")
    tab = res.table()
    assert res.reference_group == "none"
    assert set(tab["contrast"].dropna()) == {"nsaid vs none", "radiotherapy vs none"}
    nsaid = tab[(tab["group"] == "nsaid")].set_index("measure")
    assert nsaid.loc["rmst", "estimate"] == pytest.approx(tau, rel=1e-14) and nsaid.loc["rmst", "std_error"] == 0
    ratio = tab[(tab["contrast"] == "nsaid vs none") & (tab["measure"] == "rmtl_ratio")].iloc[0]
    assert np.isnan(ratio["estimate"])
    assert any("no events by tau" in w for w in res.warnings)
    assert any("rmtl ratio is not estimable" in w for w in res.warnings)


def test_tau_before_the_first_time():
    d = pd.DataFrame({"t": [5.0, 6.0, 7.0, 9.0], "e": [1, 0, 1, 1]})
    tab = rmst(d, "t", "e", 2.5).table().set_index("measure")
    assert tab.loc["rmst", "estimate"] == 2.5 and tab.loc["rmst", "std_error"] == 0
    assert tab.loc["rmtl", "estimate"] == 0


def test_small_example_by_hand():
    """Times 2, 3+, 5, 8 (event, censored, event, event), tau = 6: S = 1 on [0,2), 3/4 on [2,5), 3/8 on
    [5,6]; RMST = 2 + 3 * 0.75 + 1 * 0.375 = 4.625. Greenwood-type variance: A(2) = 2.625, A(5) = 0.375,
    var = 2.625^2 * 1/(4*3) + 0.375^2 * 1/(2*1)."""
    d = pd.DataFrame({"t": [2.0, 3.0, 5.0, 8.0], "e": [1, 0, 1, 1]})
    tab = rmst(d, "t", "e", 6.0).table().set_index("measure")
    assert tab.loc["rmst", "estimate"] == pytest.approx(4.625, rel=1e-14)
    assert tab.loc["rmst", "std_error"] == pytest.approx(np.sqrt(2.625 ** 2 / 12 + 0.375 ** 2 / 2), rel=1e-12)
    assert tab.loc["rmst", "events"] == 2
