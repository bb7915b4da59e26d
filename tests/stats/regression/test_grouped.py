"""Logistic and Poisson regression from covariate-pattern counts.

Truth: the row-level ``logistic`` (checked against R glm/logistf in test_regression.py) on the rows the
patterns stand for, to 1e-10; for Poisson, the closed form (one categorical covariate: the rate ratio is
the ratio of crude rates with log-scale SE sqrt(1/x1 + 1/x0), as ``hostats.rate``) and the row-level
Poisson likelihood, whose maximiser does not depend on grouping.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from hostats.errors import DataError
from hostats.stats.incidence import rate
from hostats.stats.regression.grouped import logistic_counts, poisson_counts
from hostats.stats.regression.logit import logistic

TOL = 1e-10


def _rows(seed: int = 11, n: int = 6000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(4, 9, n) * 10.0            # age bands (lower bounds), so patterns repeat
    sex = rng.choice(["female", "male"], n)
    prior = rng.random(n) < 0.1
    arm = rng.choice(["none", "nsaid", "radiotherapy"], n, p=[0.5, 0.3, 0.2])
    eta = -2 + 0.02 * (age - 60) + 0.4 * (sex == "male") + 1.5 * prior - 0.8 * (arm == "radiotherapy")
    ho = rng.random(n) < 1 / (1 + np.exp(-eta))
    days = rng.integers(30, 800, n).astype(float)
    return pd.DataFrame({"age_years": age, "sex": sex, "prior_ho": prior, "prophylaxis": arm,
                         "ho": ho, "days": days})


FORMULA = "ho ~ age_years + C(sex) + prior_ho + C(prophylaxis, Treatment('none'))"


def test_logistic_from_patterns_equals_rows():
    rows = _rows()
    ref = logistic(rows, FORMULA)
    keys = ["age_years", "sex", "prior_ho", "prophylaxis", "ho"]
    tab = rows.groupby(keys).size().rename("n").reset_index()
    assert len(tab) < len(rows) / 10
    fit = logistic_counts(tab, FORMULA, "n")
    np.testing.assert_allclose(fit.coef, ref.coef, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(fit.vcov, ref.vcov, rtol=1e-9, atol=TOL)
    num = ["estimate", "ci_lower", "ci_upper", "p_value", "std_error"]
    np.testing.assert_allclose(fit.table()[num], ref.table()[num], rtol=1e-9)
    assert list(fit.table()["term"]) == list(ref.table()["term"])
    assert (fit.n, fit.events) == (ref.n, ref.events) == (len(rows), int(rows["ho"].sum()))
    assert abs(fit.concordance() - ref.concordance()) < TOL
    np.testing.assert_allclose(fit.loglik, ref.loglik, rtol=TOL)


def test_logistic_counts_missing_counted_in_people():
    rows = _rows(n=2000)
    rows["sex"] = rows["sex"].astype(object)
    rows.loc[:6, "sex"] = None
    tab = rows.groupby(["age_years", "sex", "prior_ho", "prophylaxis", "ho"], dropna=False).size() \
        .rename("n").reset_index()
    with pytest.warns(UserWarning, match="7 of 2000 rows"):
        fit = logistic_counts(tab, FORMULA, "n")
    assert fit.n_missing == 7 and fit.n == 1993


def test_poisson_one_factor_is_the_crude_rate_ratio():
    rows = _rows()
    tab = rows.groupby("prophylaxis").agg(events=("ho", "sum"), pt=("days", "sum"), n=("ho", "size")).reset_index()
    fit = poisson_counts(tab, "events ~ C(prophylaxis, Treatment('none'))", "pt", count="n", per=365.25)
    crude = rate(tab["events"], tab["pt"] / 365.25, per=1, groups=list(tab["prophylaxis"]), reference="none")
    rr = crude.table().query("measure == 'rate_ratio'").set_index("group")
    got = fit.table().set_index("term")
    for arm in ("nsaid", "radiotherapy"):
        term = f"C(prophylaxis, Treatment('none'))[T.{arm}]"
        assert abs(got.loc[term, "estimate"] - rr.loc[arm, "estimate"]) < TOL
        assert abs(got.loc[term, "std_error"] - rr.loc[arm, "std_error"]) < 1e-8
    base = crude.table().query("measure == 'rate' and group == 'none'")["estimate"].iloc[0]
    assert abs(got.loc["Intercept", "estimate"] - base) < TOL
    assert fit.n == len(rows) and fit.events == rows["ho"].sum()


def test_poisson_patterns_equal_the_row_level_likelihood():
    rows = _rows(n=3000).assign(events=lambda d: d["ho"].astype(int))
    formula = "events ~ age_years + C(sex) + prior_ho"
    tab = rows.groupby(["age_years", "sex", "prior_ho"]).agg(events=("events", "sum"), pt=("days", "sum"),
                                                             n=("events", "size")).reset_index()
    fit = poisson_counts(tab, formula, "pt", count="n", per=1)
    X = pd.get_dummies(rows[["age_years", "sex", "prior_ho"]], columns=["sex"], drop_first=True).astype(float)
    X = sm.add_constant(X[["age_years", "sex_male", "prior_ho"]])
    ref = sm.GLM(rows["events"], X, family=sm.families.Poisson(), exposure=rows["days"]).fit(tol=1e-12)
    names = {"Intercept": "const", "C(sex)[T.male]": "sex_male", "prior_ho[T.True]": "prior_ho",
             "age_years": "age_years"}
    assert set(fit.coef.index) == set(names)
    for term, col in names.items():
        assert abs(fit.coef[term] - ref.params[col]) < 1e-8
        assert abs(fit.vcov.loc[term, term] - ref.cov_params().loc[col, col]) < 1e-8 * ref.cov_params().loc[col, col]


def test_poisson_bad_input():
    tab = pd.DataFrame({"events": [1, 2], "pt": [10.0, -1.0], "g": ["a", "b"]})
    with pytest.raises(DataError, match="person-time"):
        poisson_counts(tab, "events ~ g", "pt")
    with pytest.raises(DataError, match="outcome ~"):
        poisson_counts(tab, "events", "pt")
