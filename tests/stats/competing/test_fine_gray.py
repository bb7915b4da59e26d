"""Fine-Gray subdistribution hazards regression, against R cmprsk::crr on the bmtcrr data.

References
----------
- Data: tests/data/bmtcrr.csv (Scrucca L, Santucci A, Aversa F. Regression modeling of competing risk
  using R: an in depth guide for clinicians. Bone Marrow Transplant 2010;45:1388-1395).
- Published crr output (cmprsk, failcode 1) for covariates coded as integers (Sex F=1/M=2, D ALL=1/AML=2,
  Phase CR1..Relapse = 1..4, Age, Source BM+PB=1/PB=2), reproduced in ayueme/R_medical_stat, chapter
  "Fine-Gray": coef Sex 0.0494, D -0.4860, Phase 0.4144, Age -0.0174, Source 0.9526; se 0.2867, 0.3040,
  0.1194, 0.0118, 0.5469; Pseudo Log-likelihood = -267, LR test 23.6 on 5 df.
- Full precision, and the factor-coded model of Scrucca et al. 2010
  (``model.matrix(~ Age + Sex + D + Phase + Source)[, -1]``), re-run for this test with R 4.2.2 and
  cmprsk 2.2-11 (Debian r-cran-cmprsk): coefficients, ``sqrt(diag(m$var))`` and the pseudo
  log-likelihood -266.5244 (LR test 24.37 on 7 df), stored in tests/reference/competing.json by
  tests/reference/competing.R.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError, EstimationError
from hostats.stats.competing.cif_fine_gray import fine_gray
from tests.paths import DATA, REFERENCE

R = json.loads((REFERENCE / "competing.json").read_text())


@pytest.fixture(scope="module")
def bmt() -> pd.DataFrame:
    return pd.read_csv(DATA / "bmtcrr.csv")


def test_integer_coded_model_matches_published_crr(bmt):
    df = bmt.assign(Sex=(bmt["Sex"] == "M") + 1, D=(bmt["D"] == "AML") + 1,
                    Phase=bmt["Phase"].map({"CR1": 1, "CR2": 2, "CR3": 3, "Relapse": 4}),
                    Source=(bmt["Source"] == "PB") + 1)
    res = fine_gray(df, "Sex + D + Phase + Age + Source", "ftime", "Status", cause=1)
    tab = res.table().set_index("term")
    published_coef = {"Sex": 0.0494, "D": -0.4860, "Phase": 0.4144, "Age": -0.0174, "Source": 0.9526}
    published_se = {"Sex": 0.2867, "D": 0.3040, "Phase": 0.1194, "Age": 0.0118, "Source": 0.5469}
    for term, coef in published_coef.items():
        assert tab.loc[term, "coef"] == pytest.approx(coef, abs=5e-5)
        assert tab.loc[term, "std_error"] == pytest.approx(published_se[term], abs=5e-5)
    # cmprsk 2.2-11 full precision (re-run, competing.json)
    r_coef = R["crr_bmtcrr_integer"]["coef"]
    r_se = R["crr_bmtcrr_integer"]["std_error"]
    np.testing.assert_allclose(tab["coef"], r_coef, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tab["std_error"], r_se, rtol=1e-6)
    # published 95% limits of exp(coef) for Phase: 1.198 to 1.91; p = 0.00052
    assert tab.loc["Phase", "estimate"] == pytest.approx(1.514, abs=5e-4)
    assert tab.loc["Phase", "ci_lower"] == pytest.approx(1.198, abs=5e-4)
    assert tab.loc["Phase", "ci_upper"] == pytest.approx(1.91, abs=5e-3)
    assert tab.loc["Phase", "p_value"] == pytest.approx(0.00052, abs=5e-6)
    assert round(res.loglik.fitted) == -267
    assert 2 * (res.loglik.fitted - res.loglik.null) == pytest.approx(23.6, abs=0.05)


def test_factor_model_matches_crr(bmt):
    res = fine_gray(bmt, "Age + Sex + D + Phase + Source", "ftime", "Status", cause=1)
    tab = res.table()
    assert list(tab["term"]) == ["Age", "Sex[T.M]", "D[T.AML]", "Phase[T.CR2]", "Phase[T.CR3]",
                                 "Phase[T.Relapse]", "Source[T.PB]"]
    r = R["crr_bmtcrr_factor"]
    r_coef, r_se = r["coef"], r["std_error"]
    np.testing.assert_allclose(tab["coef"], r_coef, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tab["std_error"], r_se, rtol=1e-6)
    np.testing.assert_allclose(tab["estimate"], np.exp(r_coef), rtol=1e-6)
    # crr summary: PhaseRelapse 2.5% 1.4390736, 97.5% 6.293495
    rel = tab.set_index("term").loc["Phase[T.Relapse]"]
    k = r["term"].index("PhaseRelapse")
    assert rel["ci_lower"] == pytest.approx(r["ci_lower"][k], rel=1e-6)
    assert rel["ci_upper"] == pytest.approx(r["ci_upper"][k], rel=1e-6)
    assert res.loglik.fitted == pytest.approx(r["loglik"], abs=5e-5)
    assert 2 * (res.loglik.fitted - res.loglik.null) == pytest.approx(2 * (r["loglik"] - r["loglik_null"]), abs=5e-3)
    assert (tab["n"] == 177).all() and (tab["events"] == 56).all()
    assert res.competing_events == 75


def test_cause_two(bmt):
    # death without relapse as the cause of interest: relapse becomes the competing event
    res = fine_gray(bmt, "Age + D", "ftime", "Status", cause=2)
    assert res.events == 75 and res.competing_events == 56
    assert np.all(np.isfinite(res.table()["std_error"]))


def test_without_competing_events_equals_cox_with_robust_se():
    # closed form: with no competing events the Fine-Gray likelihood is Cox's partial likelihood and the
    # censoring term vanishes, so the sandwich is the Lin-Wei robust variance (lifelines robust=True).
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(11)
    n = 400
    x1, x2 = rng.normal(size=n), rng.integers(0, 2, n).astype(float)
    t = rng.exponential(1.0 / np.exp(0.5 * x1 - 0.7 * x2))
    c = rng.exponential(1.5, n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "time": np.minimum(t, c), "status": (t <= c).astype(int)})
    fg = fine_gray(df, "x1 + x2", "time", "status").table().set_index("term")
    cph = CoxPHFitter().fit(df, "time", "status", robust=True)
    np.testing.assert_allclose(fg["coef"], cph.params_[["x1", "x2"]], rtol=1e-6)
    np.testing.assert_allclose(fg["std_error"], cph.standard_errors_[["x1", "x2"]], rtol=1e-4)


def test_simulation_recovers_known_shr():
    # Fine & Gray (1999) section 5 design: F1(t | x) = 1 - (1 - p (1 - exp(-t))) ** exp(beta x)
    rng = np.random.default_rng(2026)
    n, p, beta = 4000, 0.4, np.log(2.0)
    x = rng.integers(0, 2, n).astype(float)
    ex = np.exp(beta * x)
    p1 = 1 - (1 - p) ** ex                                         # P(cause 1 | x)
    is1 = rng.random(n) < p1
    u = rng.random(n)
    t1 = -np.log(1 - (1 - (1 - u * p1) ** (1 / ex)) / p)          # inverse of F1(t | x) / p1
    t2 = rng.exponential(1.0, n)                                   # cause 2 given cause 2
    t = np.where(is1, t1, t2)
    c = rng.uniform(0, 3, n)
    df = pd.DataFrame({"x": x, "time": np.minimum(t, c),
                       "status": np.where(t <= c, np.where(is1, 1, 2), 0)})
    row = fine_gray(df, "x", "time", "status").table().iloc[0]
    assert abs(row["coef"] - beta) < 3 * row["std_error"]
    assert row["ci_lower"] < 2.0 < row["ci_upper"]


def test_order_of_rows_does_not_matter(bmt):
    a = fine_gray(bmt, "Age + D", "ftime", "Status").table()
    b = fine_gray(bmt.sample(frac=1, random_state=5), "Age + D", "ftime", "Status").table()
    np.testing.assert_allclose(a["coef"], b["coef"], rtol=1e-9)
    np.testing.assert_allclose(a["std_error"], b["std_error"], rtol=1e-9)


def test_degenerate_inputs(bmt):
    with pytest.raises(EstimationError, match="no events of cause 4"):
        fine_gray(bmt, "Age", "ftime", "Status", cause=4)
    with pytest.raises(EstimationError, match="constant"):
        fine_gray(bmt.assign(k=1.0), "Age + k", "ftime", "Status")
    bad = bmt.copy()
    bad.loc[4, "Age"] = np.nan
    with pytest.warns(UserWarning, match="'Age' \\(1\\)"):
        assert fine_gray(bad, "Age + D", "ftime", "Status").n == len(bmt) - 1
    with pytest.raises(DataError, match="not in the data"):
        fine_gray(bmt, "Age + nope", "ftime", "Status")
    bad = bmt.copy()
    bad.loc[2, "ftime"] = -3
    with pytest.raises(DataError, match="negative"):
        fine_gray(bad, "Age", "ftime", "Status")
    # a level with no events of the cause: the SHR diverges -> clear error, not a silent 1e-12
    sep = bmt.assign(z=(bmt["Status"] != 1).astype(float) * (np.arange(len(bmt)) % 2))
    with pytest.raises(EstimationError, match="diverge|converge"):
        fine_gray(sep, "Age + z", "ftime", "Status")


def test_heavy_ties_match_crr():
    # 90 rows, 13 distinct times, built by arithmetic (no RNG). R 4.2.2, cmprsk 2.2-11 (competing.json):
    # crr(d$t, d$s, as.matrix(d[, c("x1", "x2")])) -> coef and sqrt(diag(var))
    i = np.arange(90)
    d = pd.DataFrame({"t": (i * 7 % 13) + 1, "s": (i * 5 % 7) % 3, "x1": (i * 5 % 11) / 10, "x2": i % 2})
    tab = fine_gray(d, "x1 + x2", "t", "s").table()
    np.testing.assert_allclose(tab["coef"], R["crr_tied"]["coef"], rtol=1e-7)
    np.testing.assert_allclose(tab["std_error"], R["crr_tied"]["std_error"], rtol=1e-7)
