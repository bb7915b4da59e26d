"""Aalen-Johansen cumulative incidence and Gray's test, against R cmprsk::cuminc on the bmtcrr data.

References
----------
- Data: tests/data/bmtcrr.csv, 177 bone-marrow transplant patients (Status 0 censored, 1 relapse, 2 death
  without relapse; ftime months). Scrucca L, Santucci A, Aversa F. Competing risk analysis using R: an
  easy guide for clinicians. Bone Marrow Transplant 2007;40:381-387.
- ``cuminc(ftime, Status, D)`` output as published with that analysis and reproduced in the R teaching
  material of ayueme/R_medical_stat (chapter "Fine-Gray"): Tests ``1 2.8623325 0.09067592 1`` and
  ``2 0.4481279 0.50322531 1``; ``$est`` at 20/40/60 months (7 digits). Re-run here with R 4.2.2 and
  cmprsk 2.2-11 (Debian r-cran-cmprsk), which also printed the ``$var`` values
  (``timepoints(cuminc(...), c(20, 40, 60))``): the full-precision R values used below are in
  tests/reference/competing.json, written by tests/reference/competing.R.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError, EstimationError
from hostats.stats.competing.cif_fine_gray import cumulative_incidence
from tests.paths import DATA, REFERENCE

R = json.loads((REFERENCE / "competing.json").read_text())


@pytest.fixture(scope="module")
def bmt() -> pd.DataFrame:
    return pd.read_csv(DATA / "bmtcrr.csv")


def _timepoints(key: str, what: str) -> dict:
    """{(group, cause): values at the reference times} of one cuminc run in competing.json."""
    return {(c["group"], c["cause"]): c[what] for c in R[key]["curves"]}


def _gray(key: str, cause: int) -> dict:
    return next(g for g in R[key]["gray"] if g["cause"] == cause)


# cmprsk cuminc(ftime, Status, D): timepoints at 20, 40, 60 months
EST = _timepoints("cuminc_bmtcrr_D", "est")  # (group, cause): estimates
VAR = _timepoints("cuminc_bmtcrr_D", "var")


def assert_timepoints(res, times, cause, est, var, est_tol: dict, var_tol: dict) -> None:
    """Estimates and variances (std_error squared) per group at ``times``, as cmprsk's timepoints()."""
    at = res.at(times)
    for grp in sorted({g for g, c in est if c == cause}):
        g = at[at["group"] == grp]
        np.testing.assert_allclose(g["estimate"], est[(grp, cause)], **est_tol)
        np.testing.assert_allclose(g["std_error"] ** 2, var[(grp, cause)], **var_tol)


@pytest.mark.parametrize("cause", [1, 2])
def test_estimates_and_variances_match_cmprsk(bmt, cause):
    res = cumulative_incidence(bmt, "ftime", "Status", cause=cause, group="D")
    assert_timepoints(res, [20, 40, 60], cause, EST, VAR, {"atol": 5e-8}, {"rtol": 2e-6})


# Gray's test: (group, cause, df, statistic, p-value, tolerances). Two groups (D): the published cuminc
# Tests above. Four groups (Phase): R 4.2.2, cmprsk 2.2-11, cuminc(d$ftime, d$Status, d$Phase)$Tests
# (run for this test): 1 14.3585 on 3 df; 2 0.5894 on 3 df. Full precision from competing.json.
@pytest.mark.parametrize("group, cause, df, statistic, p_value, stat_tol, p_tol", [
    (grp, cause, g["df"], g["statistic"], g["p_value"], tol, p_tol)
    for grp, cause, tol, p_tol in (("D", 1, 5e-8, 5e-9), ("D", 2, 5e-8, 5e-9),
                                   ("Phase", 1, 1e-8, 1e-11), ("Phase", 2, 1e-8, 1e-11))
    for g in [_gray(f"cuminc_bmtcrr_{grp}", cause)]
])
def test_gray_test_matches_cmprsk(bmt, group, cause, df, statistic, p_value, stat_tol, p_tol):
    g = cumulative_incidence(bmt, "ftime", "Status", cause=cause, group=group).gray_test
    assert g.df == df
    assert g.statistic == pytest.approx(statistic, abs=stat_tol)
    assert g.p_value == pytest.approx(p_value, abs=p_tol)


def test_table_counts(bmt):
    tab = cumulative_incidence(bmt, "ftime", "Status", cause=1, group="D").table()
    # Scrucca et al. 2007: 56 relapses, 75 competing deaths, 46 censored among 177 patients
    assert tab["n"].sum() == 177
    assert tab["events"].sum() == 56
    assert tab["competing_events"].sum() == 75
    assert tab["censored"].sum() == 46
    assert list(tab.columns[:2]) == ["group", "measure"]
    # estimate at the last follow-up time equals the plateau of the curve
    all_last = tab.loc[tab["group"] == "ALL", "estimate"].item()
    assert all_last == pytest.approx(EST[("ALL", 1)][-1], abs=5e-8)


def test_hand_computed_ties():
    # n=6; t=1: Y=6, one cause-1 and one cause-2 -> F1 = 1/6, S = 4/6
    # t=2: Y=4, one cause-1, one censored -> F1 += (4/6)(1/4) = 1/3, S = 1/2
    # t=3: Y=2, cause 2 -> S = 1/4 ; t=4: Y=1, cause 1 -> F1 += 1/4 -> 7/12 ; F2 = 1/6 + 1/4 = 5/12
    df = pd.DataFrame({"t": [1, 1, 2, 2, 3, 4], "s": [1, 2, 1, 0, 2, 1]})
    r1 = cumulative_incidence(df, "t", "s", cause=1)
    np.testing.assert_allclose(r1.curve["estimate"], [1 / 6, 1 / 3, 7 / 12])
    np.testing.assert_array_equal(r1.curve["time"], [1, 2, 4])
    np.testing.assert_array_equal(r1.curve["n_at_risk"], [6, 4, 1])
    r2 = cumulative_incidence(df, "t", "s", cause=2)
    assert r2.at([10])["estimate"].item() == pytest.approx(5 / 12)
    at = r1.at([0.5, 1, 1.5, 2])
    np.testing.assert_allclose(at["estimate"], [0, 1 / 6, 1 / 6, 1 / 3])
    np.testing.assert_array_equal(at["n_at_risk"], [6, 6, 4, 4])


def test_equals_one_minus_kaplan_meier_without_competing_events(bmt):
    from lifelines import KaplanMeierFitter

    df = bmt.assign(Status=np.where(bmt["Status"] == 2, 0, bmt["Status"]))
    res = cumulative_incidence(df, "ftime", "Status", cause=1)
    km = KaplanMeierFitter().fit(df["ftime"], df["Status"] == 1)
    times = np.linspace(0, 130, 27)
    np.testing.assert_allclose(res.at(times)["estimate"],
                               1 - km.survival_function_at_times(times).to_numpy(), atol=1e-12)


def test_deterministic_and_order_free(bmt):
    a = cumulative_incidence(bmt, "ftime", "Status", cause=1, group="D")
    shuffled = bmt.sample(frac=1.0, random_state=3)
    b = cumulative_incidence(shuffled, "ftime", "Status", cause=1, group="D")
    pd.testing.assert_frame_equal(a.curve, b.curve)
    assert a.gray_test.statistic == pytest.approx(b.gray_test.statistic, rel=1e-12)


def test_integer_weights_equal_replicated_rows(bmt):
    rng = np.random.default_rng(7)
    w = rng.integers(1, 4, len(bmt))
    weighted = cumulative_incidence(bmt.assign(w=w.astype(float)), "ftime", "Status", cause=1, weights="w")
    replicated = cumulative_incidence(bmt.loc[bmt.index.repeat(w)], "ftime", "Status", cause=1)
    times = [5, 20, 60]
    np.testing.assert_allclose(weighted.at(times)["estimate"], replicated.at(times)["estimate"], rtol=1e-12)
    with pytest.raises(EstimationError, match="weighted"):
        _ = cumulative_incidence(bmt.assign(w=1.0), "ftime", "Status", group="D", weights="w").gray_test


def test_confidence_limits_bracket_and_loglog(bmt):
    res = cumulative_incidence(bmt, "ftime", "Status", cause=1, group="D", level=0.9)
    c = res.curve
    assert ((c["ci_lower"] <= c["estimate"]) & (c["estimate"] <= c["ci_upper"])).all()
    assert ((c["ci_lower"] >= 0) & (c["ci_upper"] <= 1)).all()
    # log-log: F ** exp(z se / (F log F)) gives the upper limit
    row = res.at([20]).iloc[0]
    z = 1.6448536269514722
    f, se = row["estimate"], row["std_error"]
    assert row["ci_upper"] == pytest.approx(f ** np.exp(z * se / (f * np.log(f))), rel=1e-12)


def test_degenerate_inputs(bmt):
    with pytest.raises(EstimationError, match="no events of cause 3"):
        cumulative_incidence(bmt, "ftime", "Status", cause=3)
    one = bmt.assign(g="x")
    res = cumulative_incidence(one, "ftime", "Status", cause=1, group="g")
    with pytest.raises(EstimationError, match="at least two groups"):
        _ = res.gray_test
    with pytest.raises(EstimationError, match="group column"):
        _ = cumulative_incidence(bmt, "ftime", "Status").gray_test
    bad = bmt.copy()
    bad.loc[5, "ftime"] = -1.0
    with pytest.raises(DataError, match="negative"):
        cumulative_incidence(bad, "ftime", "Status")
    bad = bmt.copy()
    bad.loc[7, "ftime"] = np.nan  # complete-case analysis (tests/test_regression_api.py has the policy)
    with pytest.warns(UserWarning, match="'ftime' \\(1\\)"):
        assert cumulative_incidence(bad, "ftime", "Status").n == len(bmt) - 1
    for code in (-1, 1.5):
        bad = bmt.copy()
        bad["Status"] = bad["Status"].astype(float)
        bad.loc[9, "Status"] = code
        with pytest.raises(DataError, match="unknown codes.*rows 9"):
            cumulative_incidence(bad, "ftime", "Status")
    bad = bmt.copy()
    bad["Status"] = bad["Status"].astype(float)
    bad.loc[11, "Status"] = np.nan
    with pytest.warns(UserWarning, match="'Status' \\(1\\)"):
        cumulative_incidence(bad, "ftime", "Status")
    bad = bmt.copy()
    bad.loc[3, "D"] = None
    with pytest.warns(UserWarning, match="'D' \\(1\\)"):
        cumulative_incidence(bad, "ftime", "Status", group="D")
    with pytest.raises(DataError, match="not in the data"):
        cumulative_incidence(bmt, "time", "Status")


def test_group_without_events_is_flat_zero_with_warning(bmt):
    df = bmt.copy()
    df["g"] = np.where(df["Status"] == 1, "a", np.where(df.index % 2 == 0, "a", "b"))
    res = cumulative_incidence(df, "ftime", "Status", cause=1, group="g")
    b = res.at([10, 50])
    b = b[b["group"] == "b"]
    assert (b["estimate"] == 0).all() and (b["ci_upper"] == 0).all()
    assert any("no events of cause 1" in w for w in res.warnings)


def tied_data() -> pd.DataFrame:
    """90 rows, 13 distinct times (heavy ties), built by arithmetic (no RNG) so R sees the same data."""
    i = np.arange(90)
    return pd.DataFrame({"t": (i * 7 % 13) + 1, "s": (i * 5 % 7) % 3, "x1": (i * 5 % 11) / 10,
                         "x2": i % 2, "g": np.where(i % 3 == 0, "a", "b")})


def test_heavy_ties_match_cmprsk():
    # R 4.2.2, cmprsk 2.2-11 on tied_data(): cuminc(d$t, d$s, d$g); timepoints(f, c(3, 7, 12)) (competing.json)
    est = _timepoints("cuminc_tied", "est")
    var = _timepoints("cuminc_tied", "var")
    tests = {c: (_gray("cuminc_tied", c)["statistic"], _gray("cuminc_tied", c)["p_value"]) for c in (1, 2)}
    d = tied_data()
    for cause in (1, 2):
        res = cumulative_incidence(d, "t", "s", cause=cause, group="g")
        assert_timepoints(res, [3, 7, 12], cause, est, var, {"rtol": 1e-10}, {"rtol": 1e-10})
        assert res.gray_test.statistic == pytest.approx(tests[cause][0], rel=1e-9)
        assert res.gray_test.p_value == pytest.approx(tests[cause][1], rel=1e-9)


def test_cohort_dtypes_nullable_status_and_categorical_group(bmt):
    # a hostats cohort has status as pandas Int64 and categories as Categorical (unused levels dropped)
    df = bmt.assign(Status=bmt["Status"].astype("Int64"),
                    D=pd.Categorical(bmt["D"], categories=["ALL", "AML", "CML"]))
    res = cumulative_incidence(df, "ftime", "Status", cause=1, group="D")
    assert set(res.curve["group"]) == {"ALL", "AML"}
    assert res.gray_test.statistic == pytest.approx(_gray("cuminc_bmtcrr_D", 1)["statistic"], abs=5e-8)
