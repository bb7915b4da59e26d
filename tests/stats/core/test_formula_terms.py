"""Formula terms of the one formula engine (hostats.stats.core.formula) against R.

Reference values: tests/reference/formula_terms.R (R 4.2.2, survival 3.5-3, splines, mgcv 1.8-41,
cmprsk) -> formula_terms.json, on survival's lung data (tests/data/lung.csv, R's dotted column names and
missing values) and bmtcrr (tests/data/bmtcrr.csv):

- ``bs(age, df=4)``: R ``splines::bs(age, df = 4)`` (knot at the median, boundary knots at the range);
- ``poly(age, 3)``: R ``poly(age, 3)`` (orthonormal);
- ``cr(age, df=4)``: mgcv ``smoothCon(s(age, bs = "cr", k = 5), absorb.cons = TRUE)`` (mgcv's knots
  through the unique values, sum-to-zero constraint), the same curves as ``ns(age, knots = ...)`` with
  those knots;
- ``scale(age) + center(wt.loss)``: R ``scale(age) + I(wt.loss - mean(wt.loss))``;
- ``ph.ecog``, ``ph.karno``, ``pat.karno``, ``meal.cal``, ``wt.loss`` as R writes them.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError
from hostats.stats.causal.weighting import iptw
from hostats.stats.competing.cif_fine_gray import fine_gray
from hostats.stats.core.formula import build_design, formula_columns, formula_variables
from hostats.stats.regression.logit import logistic
from hostats.stats.survival.km_cox import cox
from tests.paths import TESTS

HERE = TESTS
REF = json.loads((HERE / "reference" / "formula_terms.json").read_text())
DOTTED = ["ph.ecog", "ph.karno", "pat.karno", "meal.cal", "wt.loss"]


@pytest.fixture(scope="module")
def lung() -> pd.DataFrame:
    d = pd.read_csv(HERE / "data" / "lung.csv")
    return d.assign(dead=(d["status"] == 2).astype(int))


def _quiet(fn, *args, **kwargs):
    """Fit with the complete-case UserWarning (rows with missing values) silenced; other warnings fail."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*complete-case analysis.*", category=UserWarning)
        return fn(*args, **kwargs)


def _check_glm(res, key, se_rtol=1e-5):
    ref = REF[key]
    tab = res.table()
    np.testing.assert_allclose(tab["log_odds"], ref["coef"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tab["std_error"], ref["se"], rtol=se_rtol)
    assert res.fitted.llf == pytest.approx(ref["loglik"], rel=1e-10)
    assert res.n == ref["n"]


def _check_cox(res, key):
    ref = REF[key]
    np.testing.assert_allclose(res.coef, ref["coef"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.sqrt(np.diag(res.vcov)), ref["se"], rtol=1e-6)
    np.testing.assert_allclose(res.loglik, ref["loglik"], rtol=1e-10)
    assert res.n == ref["n"]


# --- the bases themselves ------------------------------------------------------------------------------
@pytest.mark.parametrize("term,key", [("bs(age, df=4)", "bs_age_df4"), ("poly(age, 3)", "poly_age_3"),
                                      ("cr(age, df=4)", "cr_age_df4")])
def test_basis_equals_r(lung, term, key):
    design, X = build_design(lung, term, term, intercept=False)
    np.testing.assert_allclose(X[:6], REF[key]["head"], atol=1e-12)
    assert design.names == [f"{term}[{j}]" for j in range(1, X.shape[1] + 1)]
    assert list(design.terms) == [term] and design.terms[term] == list(range(X.shape[1]))


def test_knots_are_stored_and_reused_for_new_data(lung):
    design, _ = build_design(lung, "bs(age, df=4) + poly(age, 3)", "bs(age, df=4) + poly(age, 3)",
                             intercept=False)
    state = design.spec.transform_state
    assert state["bs(age, df=4)"]["knots"][4] == 63.0  # the median age of the analysed rows, R's knot
    new = pd.DataFrame({"age": [45.0, 60.0, 75.0]})
    X = design.matrix(new)
    np.testing.assert_allclose(X[:, :4], REF["bs_predict"], atol=1e-12)  # R predict(bs(...), newx)
    np.testing.assert_allclose(X[:, 4:], REF["poly_predict"], atol=1e-12)
    with pytest.raises(DataError, match="bounds"):  # bs does not extrapolate silently
        design.matrix(pd.DataFrame({"age": [30.0]}))


def test_knots_come_from_the_analysed_rows(lung):
    """Rows dropped for missing values do not place knots: the basis is that of the complete cases."""
    d = lung.assign(age=lung["age"].where(lung["age"] < 70))  # ages >= 70 missing
    design, X = build_design(d.dropna(subset=["age"]), "bs(age, df=4)", "bs(age, df=4)", intercept=False)
    kept = d["age"].dropna()
    assert design.spec.transform_state["bs(age, df=4)"]["knots"][4] == pytest.approx(kept.median())
    assert design.spec.transform_state["bs(age, df=4)"]["upper_bound"] == kept.max()


# --- models against R -----------------------------------------------------------------------------------
def test_logistic_bs_matches_r_glm_and_predicts_with_the_fitted_knots(lung):
    res = _quiet(logistic, lung, "dead ~ bs(age, df=4)")
    _check_glm(res, "glm_bs")
    assert list(res.table()["term"]) == ["Intercept"] + [f"bs(age, df=4)[{j}]" for j in range(1, 5)]
    pred = res.predict(pd.DataFrame({"age": [45, 60, 75]}))
    np.testing.assert_allclose(pred, REF["glm_bs"]["predict"], rtol=1e-8)
    _check_glm(_quiet(logistic, lung, "dead ~ bs(age, df=4) + sex"), "glm_bs_sex")


def test_logistic_poly_cr_center_scale_match_r(lung):
    _check_glm(_quiet(logistic, lung, "dead ~ poly(age, 3)"), "glm_poly", se_rtol=2e-5)
    _check_glm(_quiet(logistic, lung, "dead ~ cr(age, df=4)"), "glm_cr")
    # cr spans the natural cubic splines with its knots: R's ns with the same knots, same likelihood
    assert REF["glm_ns_cr_knots"]["loglik"] == pytest.approx(REF["glm_cr"]["loglik"], rel=1e-12)
    _check_glm(_quiet(logistic, lung, "dead ~ scale(age) + center(wt.loss)"), "glm_scale_center")


def test_cox_splines_and_poly_match_r_coxph(lung):
    res = _quiet(cox, lung, "bs(age, df=4) + sex", "time", "dead")
    _check_cox(res, "cox_bs_sex")
    ph = res.check_ph().set_index("term")
    assert ph.loc["bs(age, df=4)", "df"] == 4  # one test for the spline term, as cox.zph
    _check_cox(_quiet(cox, lung, "cr(age, df=4) + sex", "time", "dead"), "cox_cr_sex")
    _check_cox(_quiet(cox, lung, "poly(age, 2) + sex", "time", "dead"), "cox_poly_sex")


def test_fine_gray_spline_matches_cmprsk_crr():
    bmt = pd.read_csv(HERE / "data" / "bmtcrr.csv")
    res = fine_gray(bmt, "bs(Age, df=4) + Sex", "ftime", "Status", cause=1)
    tab = res.table()
    ref = REF["crr_bs_sex"]
    assert list(tab["term"]) == [f"bs(Age, df=4)[{j}]" for j in range(1, 5)] + ["Sex[T.M]"]
    # crr stops early on this ill-conditioned basis: coefficients to 2e-4, the maximised likelihood closer
    np.testing.assert_allclose(tab["coef"], ref["coef"], atol=2e-4)
    np.testing.assert_allclose(tab["std_error"], ref["se"], rtol=1e-4)
    assert res.loglik.fitted == pytest.approx(ref["loglik"], abs=1e-6)  # crr's $loglik is the fitted one


def test_iptw_spline_confounder_matches_r(lung):
    d = lung.assign(female=(lung["sex"] == 2).astype(int))
    res = _quiet(iptw, d, "female", "bs(age, df=4) + ph.ecog", "dead", weights="unstabilized")
    ref = REF["iptw_bs"]
    np.testing.assert_allclose(res.propensity.iloc[:6, 1], ref["ps_head"], rtol=1e-6)
    tab = res.table().set_index("measure")
    assert tab.loc["risk_treated", "estimate"] == pytest.approx(ref["risk_treated"], rel=1e-7)
    assert tab.loc["risk_control", "estimate"] == pytest.approx(ref["risk_control"], rel=1e-7)


# --- R's dotted column names ----------------------------------------------------------------------------
def test_dotted_names_are_columns_not_attributes():
    assert formula_variables("ph.ecog + sex", "ph.ecog + sex") == ["ph.ecog", "sex"]
    assert formula_variables("`ph.ecog` + sex", "`ph.ecog` + sex") == ["ph.ecog", "sex"]
    assert formula_columns("y ~ C(ph.ecog) + np.log(wt.loss + 1) + bs(`ph.karno`, df=3)", outcome=True) == \
        ["y", "ph.ecog", "wt.loss", "ph.karno"]
    assert formula_variables("bs(age, df=4) + cr(dose, df=3) + center(x) + scale(z) + poly(w, 2)", "f") == \
        ["age", "dose", "x", "z", "w"]


@pytest.mark.parametrize("quoted", [False, True])
def test_cox_and_logistic_with_dotted_names_match_r(lung, quoted):
    rhs = " + ".join(f"`{c}`" if quoted else c for c in DOTTED)
    res = _quiet(cox, lung, rhs + " + sex", "time", "dead")
    _check_cox(res, "cox_dotted")
    assert list(res.coef.index) == DOTTED + ["sex"]
    lres = _quiet(logistic, lung, "dead ~ " + rhs)
    _check_glm(lres, "glm_dotted")
    assert list(lres.table()["term"]) == ["Intercept"] + DOTTED
    # prediction on new data finds the dotted columns again
    complete = lung.dropna(subset=DOTTED)
    np.testing.assert_allclose(lres.predict(complete.iloc[:5]), lres.fitted.predict()[:5], rtol=1e-12)
    assert np.isnan(lres.predict(lung.iloc[:1])).all()  # wt.loss missing in the first row


def test_dotted_names_inside_calls(lung):
    res = _quiet(cox, lung, "C(ph.ecog) + sex", "time", "dead")
    _check_cox(res, "cox_dotted_factor")
    assert list(res.coef.index) == ["C(ph.ecog)[T.1.0]", "C(ph.ecog)[T.2.0]", "C(ph.ecog)[T.3.0]", "sex"]
    _check_glm(_quiet(logistic, lung, "dead ~ np.log(meal.cal) + wt.loss"), "glm_dotted_log")
    _check_glm(_quiet(logistic, lung, "dead ~ np.log(`meal.cal`) + `wt.loss`"), "glm_dotted_log")
    q = _quiet(cox, lung, "Q('ph.ecog') + Q(\"ph.karno\") + pat.karno + meal.cal + wt.loss + sex", "time", "dead")
    _check_cox(q, "cox_dotted")  # patsy's Q("name") reads the column too


def test_missing_dotted_column_is_named_whole(lung):
    with pytest.raises(DataError, match=r"column 'ph.ecgo'"):
        cox(lung, "ph.ecgo + sex", "time", "dead")
    with pytest.raises(DataError, match=r"column 'wt.los'"):
        logistic(lung, "dead ~ bs(wt.los, df=4)")
