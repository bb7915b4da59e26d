"""Interval-censored onset: Turnbull NPMLE and Weibull.

References
----------
- NPMLE: R survival 3.5.3 ``survfit(Surv(left, right, type = "interval2") ~ 1)`` (Turnbull/EM) on the
  interval-censored diabetes data shipped with lifelines (``lifelines.datasets.load_diabetes``, 731 rows),
  run for this test with R 4.2.2; values of 1 - surv in tests/reference/interval.json (interval.R).
- Closed form: with exact and right-censored observations only, the NPMLE is the Kaplan-Meier estimate
  (Turnbull 1976, J R Stat Soc B 38:290); lifelines KaplanMeierFitter as the oracle.
- Weibull: simulation with known scale and shape, imaging every 14 days.
- Missing bounds (R's ``Surv(lower, upper, type = "interval2")``: NA upper = right-censored, NA lower =
  left-censored, both NA = missing): tests/reference/interval_na.R -> interval_na.json, survfit and
  survreg on the breast cosmesis data (KMsurv::bcdeter, tests/data/bcdeter.csv, 37 of 95 upper bounds NA).
- Parametric fits: R survival 3.5.3 ``survreg(Surv(left, right, type = "interval2") ~ 1, dist = d)`` on
  the same diabetes data (left = 0 coded NA, i.e. left-censored: the same likelihood), R 4.2.2, for
  d = "lognormal" and "weibull" (intercept, scale, SE of the intercept, AIC), also in interval.json.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError, EstimationError
from hostats.stats.survival.interval_censoring import interval_censored
from tests.paths import REFERENCE, TESTS

R = json.loads((REFERENCE / "interval.json").read_text())

R_DIABETES = dict(zip(map(float, R["npmle"]["time"]), R["npmle"]["cdf"], strict=True))  # time: 1 - S(time)


def test_npmle_matches_r_survival_on_diabetes():
    from lifelines.datasets import load_diabetes

    res = interval_censored(load_diabetes(), "left", "right", n_boot=0)
    times = np.array(list(R_DIABETES))
    np.testing.assert_allclose(res.at(times)["estimate"], list(R_DIABETES.values()), atol=1e-6)
    assert res.turnbull["mass"].sum() == pytest.approx(1.0, abs=1e-12)
    npmle_median = res.table().set_index("measure").loc["median_onset_npmle", "estimate"]
    assert npmle_median == 16.0                     # first time with F >= 0.5 (R: 0.5209 at 16)


def test_exact_and_right_censored_equals_kaplan_meier():
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(3)
    t = np.ceil(rng.exponential(30, 400))
    c = np.ceil(rng.exponential(45, 400))
    x, e = np.minimum(t, c), t <= c
    df = pd.DataFrame({"lo": x, "hi": np.where(e, x, np.inf)})
    res = interval_censored(df, "lo", "hi", n_boot=0)
    km = KaplanMeierFitter().fit(x, e)
    grid = np.arange(0, 120, 3.0)
    np.testing.assert_allclose(res.at(grid)["estimate"],
                               1 - km.survival_function_at_times(grid).to_numpy(), atol=1e-8)


def test_hand_example_and_turnbull_intervals():
    # (0,2], (1,3], (2,4]: innermost intervals (1,2] and (2,3]; by symmetry each gets mass 1/2
    df = pd.DataFrame({"lo": [0.0, 1.0, 2.0], "hi": [2.0, 3.0, 4.0]})
    res = interval_censored(df, "lo", "hi", n_boot=0)
    tb = res.turnbull
    np.testing.assert_array_equal(tb["lower"], [1.0, 2.0])
    np.testing.assert_array_equal(tb["upper"], [2.0, 3.0])
    np.testing.assert_allclose(tb["mass"], [0.5, 0.5], atol=1e-9)
    # three overlapping intervals cannot pin down a log-normal's spread: said in the result, not on stderr
    assert any(w.startswith("log-normal fit: lifelines reports") for w in res.warnings)


R_SURVREG = {  # dist: (intercept, scale, se(intercept), AIC) from R survival (interval.json)
    dist: tuple(R["survreg"][dist][k] for k in ("intercept", "scale", "se_intercept", "aic"))
    for dist in ("lognormal", "weibull")
}


def test_parametric_fits_match_r_survreg_on_diabetes():
    from lifelines.datasets import load_diabetes

    tab = interval_censored(load_diabetes(), "left", "right").table().set_index("measure")
    b, scale, se_b, aic = R_SURVREG["lognormal"]
    assert tab.loc["lognormal_mu_log_days", "estimate"] == pytest.approx(b, abs=1e-5)
    assert tab.loc["lognormal_mu_log_days", "std_error"] == pytest.approx(se_b, rel=1e-3)
    assert tab.loc["lognormal_sigma", "estimate"] == pytest.approx(scale, abs=1e-5)
    assert tab.loc["median_onset_lognormal", "estimate"] == pytest.approx(np.exp(b), rel=1e-5)
    assert tab.loc["aic_lognormal", "estimate"] == pytest.approx(aic, abs=1e-3)
    b, scale, _, aic = R_SURVREG["weibull"]           # survreg: lambda = exp(intercept), rho = 1 / scale
    assert tab.loc["weibull_scale_lambda", "estimate"] == pytest.approx(np.exp(b), rel=1e-5)
    assert tab.loc["weibull_shape_rho", "estimate"] == pytest.approx(1 / scale, rel=1e-5)
    assert tab.loc["aic_weibull", "estimate"] == pytest.approx(aic, abs=1e-3)


def test_weibull_recovers_known_parameters_from_imaging_schedule():
    rng = np.random.default_rng(20261124)
    n, lam, rho = 3000, 60.0, 1.5
    onset = lam * rng.weibull(rho, n)
    grid = np.arange(0.0, 365.0, 14.0)                              # imaging every 14 days, one year
    k = np.searchsorted(grid, onset)
    seen = k < grid.size
    lo = np.where(seen, grid[np.maximum(k - 1, 0)], grid[-1])
    hi = np.where(seen, grid[np.minimum(k, grid.size - 1)], np.inf)
    res = interval_censored(pd.DataFrame({"lo": lo, "hi": hi}), "lo", "hi", n_boot=50, seed=1)
    tab = res.table().set_index("measure")
    for measure, truth in (("weibull_scale_lambda", lam), ("weibull_shape_rho", rho),
                           ("median_onset_weibull", lam * np.log(2) ** (1 / rho))):
        row = tab.loc[measure]
        assert row["ci_lower"] < truth < row["ci_upper"], measure
    # the NPMLE at the imaging days agrees with the true CDF (no parametric assumption)
    f_true = 1 - np.exp(-((grid[1:8] / lam) ** rho))
    np.testing.assert_allclose(res.at(grid[1:8])["estimate"], f_true, atol=0.03)
    c = res.curve
    assert ((c["ci_lower"] <= c["estimate"] + 1e-12) & (c["estimate"] <= c["ci_upper"] + 1e-12)).all()


def test_bootstrap_is_seeded():
    from lifelines.datasets import load_diabetes

    d = load_diabetes()
    a = interval_censored(d, "left", "right", n_boot=20, seed=5).curve
    b = interval_censored(d, "left", "right", n_boot=20, seed=5).curve
    pd.testing.assert_frame_equal(a, b)


def test_degenerate_inputs():
    ok = pd.DataFrame({"lo": [0.0, 10.0, 20.0], "hi": [14.0, np.inf, 28.0]})
    with pytest.raises(DataError, match="no row has a lower or an upper bound"):
        interval_censored(ok.assign(lo=np.nan, hi=np.nan), "lo", "hi")
    with pytest.raises(DataError, match="lower bound column 'lo' must be finite"):
        interval_censored(ok.assign(lo=[0.0, np.inf, 20.0]), "lo", "hi")
    with pytest.raises(DataError, match="below lower bound"):
        interval_censored(ok.assign(hi=[14.0, 5.0, 28.0]), "lo", "hi")
    with pytest.raises(DataError, match="negative"):
        interval_censored(ok.assign(lo=[-1.0, 10.0, 20.0]), "lo", "hi")
    with pytest.raises(EstimationError, match="no onset was observed"):
        interval_censored(ok.assign(hi=np.inf), "lo", "hi")
    with pytest.raises(DataError, match="not in the data"):
        interval_censored(ok, "lo", "upper")
    res = interval_censored(ok, "lo", "hi", n_boot=0)
    assert any("n_boot=0" in w for w in res.warnings)


def test_accelerated_em_agrees_with_constrained_newton():
    # the EM path (used for very large problems) and the constrained Newton path reach the same NPMLE
    from hostats.stats.survival.interval_censoring import _Turnbull

    rng = np.random.default_rng(8)
    onset = 40 * rng.weibull(1.3, 600)
    visits = np.sort(rng.integers(1, 200, (600, 4)), axis=1).astype(float)
    pos = visits >= onset[:, None]
    first = np.argmax(pos, axis=1)
    has = pos.any(1)
    prev = np.where(first > 0, visits[np.arange(600), np.maximum(first - 1, 0)], 0.0)
    lo = np.where(has, prev, visits[:, -1])
    hi = np.where(has, visits[np.arange(600), first], np.inf)
    tb = _Turnbull(lo, hi)
    p_cnm, _ = tb.cnm(tb.counts, tol=1e-10)
    p_em, _ = tb.em(tb.counts, tol=1e-8, max_iter=20000)
    np.testing.assert_allclose(np.cumsum(p_em[0]), np.cumsum(p_cnm), atol=1e-4)


# --- missing bounds as R's interval2 reads them (tests/reference/interval_na.R) -------------------------
def _bcdeter():
    import json

    here = TESTS
    ref = json.loads((here / "reference" / "interval_na.json").read_text())
    return pd.read_csv(here / "data" / "bcdeter.csv"), ref


def _check_parametric(res, ref, n):
    tab = res.table().set_index("measure")
    w, ln = ref["weibull"], ref["lognormal"]
    # survreg: log T = intercept + scale * e; lifelines: lambda = exp(intercept), rho = 1 / scale
    assert tab.loc["weibull_scale_lambda", "estimate"] == pytest.approx(np.exp(w["intercept"]), rel=1e-5)
    assert tab.loc["weibull_shape_rho", "estimate"] == pytest.approx(1 / w["scale"], rel=1e-5)
    assert tab.loc["median_onset_weibull", "estimate"] == pytest.approx(w["median"], rel=1e-5)
    assert tab.loc["aic_weibull", "estimate"] == pytest.approx(w["aic"], rel=1e-7)
    assert tab.loc["lognormal_mu_log_days", "estimate"] == pytest.approx(ln["intercept"], rel=1e-5)
    assert tab.loc["lognormal_mu_log_days", "std_error"] == pytest.approx(ln["se_intercept"], rel=1e-3)
    assert tab.loc["lognormal_sigma", "estimate"] == pytest.approx(ln["scale"], rel=1e-4)
    assert tab.loc["aic_lognormal", "estimate"] == pytest.approx(ln["aic"], rel=1e-7)
    assert (tab["n"] == n).all()


def test_na_upper_bound_is_right_censoring_as_r_interval2():
    d, ref = _bcdeter()
    assert d["upper"].isna().sum() == ref["n_upper_na"] == 37
    res = interval_censored(d, "lower", "upper", n_boot=0)  # used to be a DataError: "exclude them"
    assert res.n_missing == 0 and res.censoring == {"missing": 0, "left_censored": 0, "right_censored": 37}
    _check_parametric(res, ref, 95)
    assert res.table()["events"].iloc[0] == 58
    # NPMLE against survfit(Surv(lower, upper, type = "interval2") ~ 1): R puts each jump at the middle of
    # its Turnbull interval (hostats: the right end) and stops its EM at a change of 5e-5 per iteration,
    # so its F is within about 1.5e-3 of the converged NPMLE; R's F at hostats' right ends
    rt, rc = np.array(ref["npmle"]["time"]), np.array(ref["npmle"]["cdf"])
    r_at = rc[np.searchsorted(rt, res.curve["time"].to_numpy(), side="right") - 1]
    np.testing.assert_allclose(res.curve["estimate"], r_at, atol=2e-3)
    # an infinite upper bound is the same statement as NA
    inf = interval_censored(d.assign(upper=d["upper"].fillna(np.inf)), "lower", "upper", n_boot=0)
    pd.testing.assert_frame_equal(inf.table(), res.table())


def test_dropping_right_censored_rows_biases_onset_early():
    """What the old error message told users to do: the Weibull median falls from 29.0 to 18.9 days
    (R survreg on the same rows: 29.0 and 18.9)."""
    d, ref = _bcdeter()
    full = interval_censored(d, "lower", "upper", n_boot=0).table().set_index("measure")
    dropped = interval_censored(d.dropna(subset=["upper"]), "lower", "upper", n_boot=0)
    dtab = dropped.table().set_index("measure")
    assert full.loc["median_onset_weibull", "estimate"] == pytest.approx(ref["weibull"]["median"], rel=1e-5)
    assert dtab.loc["median_onset_weibull", "estimate"] == pytest.approx(ref["weibull_dropped"]["median"],
                                                                         rel=1e-5)
    assert ref["weibull"]["median"] > 28.9 and ref["weibull_dropped"]["median"] < 19.0


def test_na_lower_bound_is_left_censoring_and_both_na_is_missing():
    d, ref = _bcdeter()
    base = interval_censored(d, "lower", "upper", n_boot=0)
    # R survreg needs lower 0 coded NA (left-censored): the same likelihood, the same estimates
    na_lower = d.assign(lower=d["lower"].where(d["lower"] > 0))
    assert na_lower["lower"].isna().sum() == ref["n_lower_zero"] == 5
    left = interval_censored(na_lower, "lower", "upper", n_boot=0)
    pd.testing.assert_frame_equal(left.table(), base.table())
    assert left.censoring["left_censored"] == 5 and left.n_missing == 0
    assert any("5 row(s) with a missing lower bound" in w for w in left.warnings)
    _check_parametric(left, ref, 95)
    # a row with neither bound says nothing about onset: the only truly missing row, dropped and counted
    extra = pd.concat([d, pd.DataFrame({"lower": [np.nan, np.nan], "upper": [np.nan, np.inf], "treat": 1})],
                      ignore_index=True)
    with pytest.warns(UserWarning, match="2 of 97 rows dropped with neither bound known"):
        both = interval_censored(extra, "lower", "upper", n_boot=0)
    assert both.n_missing == 2 and both.censoring["right_censored"] == 37
    pd.testing.assert_frame_equal(both.table(), base.table())
