"""hostats.binreg, the direct binomial regression (IPCW; Scheike, Zhang & Gerds 2008), against R's
mets::binreg (tests/reference/binreg.R -> binreg.json; R 4.2, mets 1.3.2), a simulation with known truth,
and its input errors.

Tolerances. Where no censoring shares an event's time before the horizon (bmtcrr at 24 months, the mets
bmt data with censoring times moved 1e-6 later, and the fits given G(T-) from survfit) hostats and mets
solve the same equations: coefficients, robust and naive SEs and influence functions agree to rounding
(1e-8 absolute on coefficients, 1e-6 relative on SEs; mets' Newton stops at its own tolerance). On data
with such ties mets 1.3.2 weights events by G(T) and hostats by G(T-) (events first); there the fits
differ by up to ~1.5e-3 in coefficients and ~7e-4 relative in SEs, so those cases are compared at
3e-3 / 2e-3, which still catches any error in the model, the design or the censoring term.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from hostats.errors import DataError, EstimationError
from hostats.stats.competing.cif_fine_gray import _aalen_johansen
from hostats.stats.regression.binomial import binreg
from hostats.stats.regression.logit import logistic
from tests.paths import TESTS

HERE = TESTS
REF = json.loads((HERE / "reference" / "binreg.json").read_text())
BMTCRR = pd.read_csv(HERE / "data" / "bmtcrr.csv")
METS_BMT = pd.read_csv(HERE / "data" / "mets_bmt.csv")
SHIFTED = METS_BMT.assign(time=np.where(METS_BMT.cause == 0, METS_BMT.time + 1e-6, METS_BMT.time))
BMT_RHS = "tcell + platelet + age"

CASES = {  # R key: (data, formula, time, status, horizon, cause, censoring strata)
    "bmtcrr_24": (BMTCRR, "Age + Sex + D + Phase", "ftime", "Status", 24, 1, None),
    "bmtcrr_24_strataD": (BMTCRR, "Age + Sex + D + Phase", "ftime", "Status", 24, 1, "D"),
    "bmtcrr_12_cause2": (BMTCRR, "Age + D", "ftime", "Status", 12, 2, None),
    "mets_bmt_50": (METS_BMT, BMT_RHS, "time", "cause", 50, 1, None),
    "mets_bmt_50_strata": (METS_BMT, BMT_RHS, "time", "cause", 50, 1, ["tcell", "platelet"]),
    "mets_bmt_30_cause2": (METS_BMT, BMT_RHS, "time", "cause", 30, 2, None),
    "mets_bmt_50_tminus": (METS_BMT, BMT_RHS, "time", "cause", 50, 1, None),
    "mets_bmt_50_strata_tminus": (METS_BMT, BMT_RHS, "time", "cause", 50, 1, ["tcell", "platelet"]),
    "mets_bmt_50_shifted": (SHIFTED, BMT_RHS, "time", "cause", 50, 1, None),
    "mets_bmt_50_strata_shifted": (SHIFTED, BMT_RHS, "time", "cause", 50, 1, ["tcell", "platelet"]),
}
EXACT = {"bmtcrr_24", "bmtcrr_24_strataD", "mets_bmt_50_tminus", "mets_bmt_50_strata_tminus",
         "mets_bmt_50_shifted", "mets_bmt_50_strata_shifted"}


def _fit(key):
    d, f, t, s, h, c, cens = CASES[key]
    return binreg(d, f, t, s, h, cause=c, censoring=cens)


@pytest.mark.parametrize("key", sorted(CASES))
def test_against_mets(key):
    res, ref = _fit(key), REF[key]
    se = np.sqrt(np.diag(res.vcov))
    naive = np.sqrt(np.diag(res.naive_vcov))
    # R names (Intercept), SexM, PhaseCR2 where hostats (as logistic) has Intercept, Sex[T.M], Phase[T.CR2]
    r_names = [n.replace("(Intercept)", "Intercept") for n in ref["terms"]]
    ours = [n.replace("[T.", "").replace("]", "") for n in res.coef.index]
    assert ours == r_names
    exact = key in EXACT
    np.testing.assert_allclose(res.coef.to_numpy(), ref["coef"], atol=1e-8 if exact else 3e-3, rtol=0)
    np.testing.assert_allclose(naive, ref["naive_se"], rtol=1e-6 if exact else 2e-3)
    if "se" in ref:  # the cens.weights fits (G(T-) from survfit) have no robust SE in mets
        np.testing.assert_allclose(se, ref["se"], rtol=1e-5 if exact else 2e-3)
        if exact:  # the censoring term is there and matters (SE and naive SE differ by far more than 1e-5)
            assert np.max(np.abs(se / naive - 1)) > 2e-4


def test_influence_functions_match_mets():
    for key in ("bmtcrr_24", "bmtcrr_24_strataD", "mets_bmt_50_strata_shifted"):
        res = _fit(key)
        np.testing.assert_allclose(res.influence.to_numpy(), np.array(REF[key]["iid"]), atol=1e-8)
        np.testing.assert_allclose(res.influence.to_numpy().T @ res.influence.to_numpy(), res.vcov, atol=1e-14)


def test_table_matches_logistic_conventions():
    res = _fit("bmtcrr_24")
    d = BMTCRR.assign(relapse_24=((BMTCRR.Status == 1) & (BMTCRR.ftime <= 24)).astype(int))
    lg = logistic(d, "relapse_24 ~ Age + Sex + D + Phase")
    tab, ltab = res.table(), lg.table()
    assert list(tab.columns) == list(ltab.columns)
    assert list(tab.term) == list(ltab.term) == list(res.coef.index)
    assert res.n == 177 and res.events == 53 == int(d.relapse_24.sum()) and res.horizon == 24.0
    assert (tab.n == 177).all() and (tab.events == 53).all() and (tab.ci_level == 0.95).all()
    se = np.sqrt(np.diag(res.vcov))
    np.testing.assert_allclose(tab.estimate, np.exp(res.coef))
    np.testing.assert_allclose(tab.std_error, se)
    np.testing.assert_allclose(tab.ci_lower, np.exp(res.coef - 1.959963984540054 * se))
    assert res.influence.shape == (177, 7) and list(res.influence.columns) == list(res.coef.index)
    # Phase relapse, the one clear effect in this cohort (mets: log OR 1.256, SE 0.459)
    row = tab.set_index("term").loc["Phase[T.Relapse]"]
    assert row.estimate == pytest.approx(np.exp(1.25612382), rel=1e-7) and row.p_value < 0.01
    narrow = binreg(BMTCRR, "Age + Sex + D + Phase", "ftime", "Status", 24, level=0.5).table()
    assert (narrow.ci_lower > tab.ci_lower).all() and (narrow.ci_level == 0.5).all()


def test_predict_and_formula_forms():
    res = _fit("bmtcrr_24")
    new = BMTCRR.head(6).copy()
    X = np.column_stack([np.ones(6), new.Age, new.Sex == "M", new.D == "AML", new.Phase == "CR2",
                         new.Phase == "CR3", new.Phase == "Relapse"]).astype(float)
    np.testing.assert_allclose(res.predict(new), expit(X @ res.coef.to_numpy()))
    new.loc[new.index[0], "Age"] = np.nan
    assert np.isnan(res.predict(new).iloc[0])
    tilde = binreg(BMTCRR, "~ Age + C(Sex) + D + Phase", "ftime", "Status", 24)
    np.testing.assert_allclose(tilde.coef.to_numpy(), res.coef.to_numpy())
    assert tilde.coef.index[2] == "C(Sex)[T.M]"


def test_intercept_only_is_aalen_johansen():
    """Without covariates expit(intercept) is the IPCW mean, i.e. the Aalen-Johansen estimate (exact
    without event/censoring ties)."""
    rng = np.random.default_rng(11)
    n = 500
    T, C = rng.exponential(10, n), rng.uniform(0, 30, n)
    d = pd.DataFrame({"t": np.minimum(T, C), "s": np.where(T <= C, rng.choice([1, 2], n), 0)})
    res = binreg(d, "1", "t", "s", 8.0)
    aj = _aalen_johansen(d.t.to_numpy(), d.s.to_numpy(), None, 1)
    k = np.searchsorted(aj["time"], 8.0, side="right") - 1
    assert expit(res.coef["Intercept"]) == pytest.approx(aj["estimate"][k], rel=1e-10)
    # delta method: SE of the risk from the log-odds SE; close to cmprsk's Aalen-type SE
    f = aj["estimate"][k]
    se_risk = f * (1 - f) * np.sqrt(res.vcov.iloc[0, 0])
    assert se_risk == pytest.approx(np.sqrt(aj["variance"][k]), rel=0.02)


def test_missing_values_complete_case():
    d = BMTCRR.copy()
    d.loc[[3, 10], "Age"] = np.nan
    d.loc[20, "Sex"] = None
    with pytest.warns(UserWarning, match="3 of 177 rows dropped"):
        res = binreg(d, "Age + Sex + D + Phase", "ftime", "Status", 24)
    full = binreg(d.drop(index=[3, 10, 20]), "Age + Sex + D + Phase", "ftime", "Status", 24)
    assert res.n == 174 and res.n_missing == 3 and "3 of 177" in res.warnings[0]
    np.testing.assert_allclose(res.coef, full.coef)
    assert list(res.influence.index) == list(full.influence.index)
    d.loc[0, "D"] = None                                 # a missing censoring-stratum value is dropped too
    with pytest.warns(UserWarning, match="3 of 177"):            # rows 3, 10 (Age) and 0 (D); Sex unused
        assert binreg(d, "Age", "ftime", "Status", 24, censoring="D").n_missing == 3


@pytest.mark.parametrize(("change", "kwargs", "error", "match"), [
    (None, {"formula": "relapse ~ Age"}, DataError, "right-hand side.*'Age'"),
    (None, {"formula": "Age + nope"}, DataError, "'nope'"),
    (None, {"formula": ""}, DataError, "no terms"),
    (None, {"time": "days"}, DataError, "'days'"),
    (None, {"censoring": "centre"}, DataError, "'centre'"),
    (("ftime", 5, -1.0), {}, DataError, "time column 'ftime' has negative times in rows 5"),
    (("Status", 7, 9.5), {}, DataError, "status column 'Status' has unknown codes"),
    (None, {"horizon": 0}, ValueError, "horizon must be a positive number"),
    (None, {"horizon": "a year"}, ValueError, "horizon must be a number"),
    (None, {"horizon": 500}, ValueError, "horizon 500 is beyond the last follow-up time in 'ftime'"),
    (None, {"horizon": 0.1}, EstimationError, "no events of cause 1 .*by the horizon 0.1"),
    (None, {"cause": 3}, EstimationError, "no events of cause 3"),
    (None, {"cause": 0}, ValueError, "cause must be a positive integer"),
    (None, {"level": 95}, ValueError, "level must be between 0 and 1"),
    (None, {"formula": "Age + I(Age * 2)"}, EstimationError, "collinear"),
])
def test_errors(change, kwargs, error, match):
    d = BMTCRR.copy()
    if change is not None:
        col, row, value = change
        d[col] = d[col].astype(float)
        d.loc[row, col] = value
    args = {"formula": "Age + D", "time": "ftime", "status": "Status", "horizon": 24} | kwargs
    with pytest.raises(error, match=match):
        binreg(d, args.pop("formula"), args.pop("time"), args.pop("status"), args.pop("horizon"), **args)


def test_constant_term_and_level_without_events():
    d = BMTCRR.assign(one=1.0)
    with pytest.raises(EstimationError, match="term 'one' is constant"):
        binreg(d, "Age + one", "ftime", "Status", 24)
    d = BMTCRR.assign(grp=np.where(BMTCRR.Status == 1, "a", "b"))  # level b: no events of cause 1
    with pytest.raises(EstimationError, match="grp"):
        binreg(d, "Age + grp", "ftime", "Status", 24)


def test_censoring_survival_zero_before_horizon():
    d = pd.DataFrame({"t": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10], "s": [1, 0, 1, 2, 0, 1, 1, 0, 1, 1],
                      "g": ["a"] * 5 + ["b"] * 5})
    with pytest.raises(EstimationError, match="censoring stratum 'a'"):
        binreg(d, "1", "t", "s", 8.0, censoring="g")


# --------------------------------------------------------------------------------------------------
# simulation with known truth: logit P(T <= 1, cause 1 | x) = -1 + 0.7 x1 + 0.5 x2, independent censoring
# --------------------------------------------------------------------------------------------------
TRUE_BETA = np.array([-1.0, 0.7, 0.5])


def _simulate(n, rng):
    x1 = rng.integers(0, 2, n)
    x2 = rng.normal(size=n)
    risk = expit(TRUE_BETA[0] + TRUE_BETA[1] * x1 + TRUE_BETA[2] * x2)
    u = rng.uniform(size=n)
    cause1 = u < risk                                    # cause 1 by t = 1, with probability `risk`
    comp_early = ~cause1 & (u < risk + 0.25 * (1 - risk))  # death before 1
    T = np.where(cause1 | comp_early, rng.uniform(0, 1, n), 1 + rng.exponential(1, n))
    cause = np.where(cause1, 1, 2)
    C = rng.uniform(0, 1.6, n)                           # independent loss to follow-up
    return pd.DataFrame({"x1": x1, "x2": x2, "time": np.minimum(T, C), "status": np.where(T <= C, cause, 0)})


def test_simulation_binreg_unbiased_complete_case_biased():
    rng = np.random.default_rng(20261203)
    d = _simulate(15_000, rng)
    res = binreg(d, "x1 + x2", "time", "status", 1.0)
    se = np.sqrt(np.diag(res.vcov))
    z = (res.coef.to_numpy() - TRUE_BETA) / se
    assert np.all(np.abs(z) < 4), z
    known = (d.time > 1) | (d.status > 0)                # status at t = 1 known
    cc = d[known].assign(y=((d.status == 1) & (d.time <= 1)).astype(int))
    lg = logistic(cc, "y ~ x1 + x2")
    z_cc = (lg.coef.to_numpy() - TRUE_BETA) / np.sqrt(np.diag(lg.vcov))
    assert z_cc[0] > 6, z_cc                             # events are over-represented among the known (z = 12)


def test_simulation_standard_errors_and_coverage():
    """Robust SEs against the Monte-Carlo SD of the estimates (200 samples of 400); the SE including
    the censoring term, not the naive one, is the one to match."""
    rng = np.random.default_rng(7)
    est, se, naive, cover = [], [], [], []
    for _ in range(200):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = binreg(_simulate(400, rng), "x1 + x2", "time", "status", 1.0)
        b, s = r.coef.to_numpy(), np.sqrt(np.diag(r.vcov))
        est.append(b)
        se.append(s)
        naive.append(np.sqrt(np.diag(r.naive_vcov)))
        cover.append(np.abs(b - TRUE_BETA) < 1.96 * s)
    sd = np.std(est, axis=0, ddof=1)
    np.testing.assert_allclose(np.mean(se, axis=0), sd, rtol=0.15)
    assert np.all(np.mean(cover, axis=0) > 0.88)
    assert np.all(np.abs(np.mean(est, axis=0) - TRUE_BETA) < 3 * sd / np.sqrt(200) + 0.03)
    assert not np.allclose(np.mean(se, axis=0), np.mean(naive, axis=0), rtol=1e-3)
