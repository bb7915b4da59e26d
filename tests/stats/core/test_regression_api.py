"""One API across the regression-type estimators (logistic, cox, fine_gray, iptw; kaplan_meier and
cumulative_incidence for the missing-data rule): the same formula string builds the same design columns,
missing values get the same complete-case treatment, and formula errors are plain text naming the term.

Truth here is structural: design columns checked against dummies built by hand from the data, a
reparametrisation identity for the reference level, and fits on the explicitly complete data.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError, EstimationError
from hostats.stats.causal.weighting import iptw
from hostats.stats.competing.cif_fine_gray import cumulative_incidence, fine_gray
from hostats.stats.core import cox_efron as _efron
from hostats.stats.core.formula import clean_message
from hostats.stats.regression.logit import logistic
from hostats.stats.survival.km_cox import cox, kaplan_meier

RHS = "age + C(site, Treatment('b')) + sex + flag + age:flag"
COLUMNS = ["age", "C(site, Treatment('b'))[T.a]", "C(site, Treatment('b'))[T.c]", "sex[T.m]", "flag[T.True]",
           "age:flag[T.True]"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(20260101)
    n = 400
    age = rng.normal(0, 1, n)
    site = rng.choice(["a", "b", "c"], n)
    sex = pd.Categorical(rng.choice(["f", "m"], n), categories=["f", "m", "unused"])
    flag = rng.random(n) < 0.4
    lp = -0.5 + 0.5 * age + 0.3 * (site == "c") - 0.4 * flag
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    t1 = rng.exponential(1 / np.exp(lp))
    t2 = rng.exponential(2.0, n)
    c = rng.exponential(3.0, n)
    time = np.minimum(np.minimum(t1, t2), c)
    status = np.select([time == t1, time == t2], [1, 2], 0)
    treated = rng.random(n) < 1 / (1 + np.exp(-(0.4 * age - 0.3 * flag)))
    return pd.DataFrame({"age": age, "site": site, "sex": sex, "flag": flag, "y": y, "time": time,
                         "event": (status == 1).astype(int), "status": status, "treated": treated,
                         "unused_col": np.where(np.arange(n) % 7 == 0, np.nan, 1.0)})


def by_hand(d: pd.DataFrame) -> np.ndarray:
    """The columns COLUMNS should hold: reference site 'b', sex 'f', flag False."""
    f = d["flag"].to_numpy(float)
    return np.column_stack([d["age"], d["site"] == "a", d["site"] == "c", d["sex"] == "m", f,
                            d["age"] * f]).astype(float)


def test_same_formula_same_design_columns_in_every_estimator(data):
    lo = logistic(data, "y ~ " + RHS)
    cx = cox(data, RHS, "time", "event")
    fg = fine_gray(data, RHS, "time", "status")
    ip = iptw(data, "treated", RHS, "y")
    assert list(lo.coef.index) == ["Intercept"] + COLUMNS
    assert list(cx.coef.index) == COLUMNS
    assert list(fg.coef.index) == COLUMNS
    assert ip.ps_terms == ("Intercept", *COLUMNS)
    # the matrices themselves: logistic's and cox's columns are the dummies built by hand
    np.testing.assert_allclose(lo._X[:, 1:], by_hand(data), atol=0)
    np.testing.assert_allclose(_efron.unsorted_design(cx._dat), by_hand(data), atol=1e-12)
    # a leading "~" means the same right-hand side
    assert list(cox(data, "~ " + RHS, "time", "event").coef.index) == COLUMNS


def test_iptw_propensity_is_the_logistic_model_of_the_same_formula(data):
    ip = iptw(data, "treated", RHS, "y")
    lo = logistic(data, "treated ~ " + RHS)
    np.testing.assert_allclose(ip.propensity["True"], lo.predict(data), rtol=1e-6)
    # a confounder list is the formula "a + b": the same propensities
    a = iptw(data, "treated", ["age", "site", "flag"], "y")
    b = iptw(data, "treated", "age + site + flag", "y")
    np.testing.assert_allclose(a.propensity, b.propensity, rtol=1e-10)
    assert a.ps_terms == b.ps_terms == ("Intercept", "age", "site[T.b]", "site[T.c]", "flag[T.True]")


def test_reference_level_is_a_reparametrisation(data):
    default = logistic(data, "y ~ age + C(site)").coef
    ref_b = logistic(data, "y ~ age + C(site, Treatment('b'))").coef
    contr = logistic(data, "y ~ age + C(site, contr.treatment('b'))").coef
    assert ref_b["C(site, Treatment('b'))[T.a]"] == pytest.approx(-default["C(site)[T.b]"], rel=1e-8)
    assert ref_b["C(site, Treatment('b'))[T.c]"] == pytest.approx(
        default["C(site)[T.c]"] - default["C(site)[T.b]"], rel=1e-8)
    np.testing.assert_allclose(contr.to_numpy(), ref_b.to_numpy(), rtol=1e-12)
    hr = cox(data, "age + C(site, Treatment('b'))", "time", "event").coef
    hr_default = cox(data, "age + C(site)", "time", "event").coef
    assert hr["C(site, Treatment('b'))[T.a]"] == pytest.approx(-hr_default["C(site)[T.b]"], rel=1e-7)


# --------------------------------------------------------------------------------------------------
# missing data: complete-case analysis on the model's columns, counted
# --------------------------------------------------------------------------------------------------
FITS = {
    "logistic": (lambda d: logistic(d, "y ~ age + site"), ["y", "age", "site"],
                 lambda r: r.coef.to_numpy()),
    "cox": (lambda d: cox(d, "age + site", "time", "event"), ["time", "event", "age", "site"],
            lambda r: r.coef.to_numpy()),
    "fine_gray": (lambda d: fine_gray(d, "age + site", "time", "status"), ["time", "status", "age", "site"],
                  lambda r: r.coef.to_numpy()),
    "iptw": (lambda d: iptw(d, "treated", ["age", "site"], "y"), ["treated", "y", "age", "site"],
             lambda r: r.table()["estimate"].to_numpy()),
    "kaplan_meier": (lambda d: kaplan_meier(d, "time", "event", group="site"), ["time", "event", "site"],
                     lambda r: r.curve["estimate"].to_numpy()),
    "cumulative_incidence": (lambda d: cumulative_incidence(d, "time", "status", group="site"),
                             ["time", "status", "site"], lambda r: r.curve["estimate"].to_numpy()),
}


@pytest.mark.parametrize("name", list(FITS))
def test_missing_values_are_dropped_counted_and_named(data, name):
    fit, cols, values = FITS[name]
    d = data.copy()
    d["site"] = d["site"].astype(object)
    d.loc[[3, 11], "site"] = None
    if d[cols[0]].dtype == bool:          # a yes/no column with gaps is nullable ("boolean")
        d[cols[0]] = d[cols[0]].astype("boolean")
    d.loc[[11, 40], cols[0]] = pd.NA      # row 11 misses two columns: three rows dropped in all
    with pytest.warns(UserWarning, match=f"{name}: complete-case analysis: 3 of 400 rows dropped"):
        res = fit(d)
    msg = [w for w in res.warnings if "complete-case" in w]
    assert len(msg) == 1
    assert f"'{cols[0]}' (2)" in msg[0] and "'site' (2)" in msg[0]
    assert res.n == 397 and res.n_missing == 3
    # the same estimates as on the explicitly complete rows (which give no warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ref = fit(d.dropna(subset=cols))
    np.testing.assert_allclose(values(res), values(ref), rtol=1e-10, equal_nan=True)
    assert ref.n_missing == 0


@pytest.mark.parametrize("name", list(FITS))
def test_missing_values_outside_the_model_columns_are_ignored(data, name):
    fit = FITS[name][0]
    assert data["unused_col"].isna().any()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        res = fit(data)
    assert res.n == 400 and res.n_missing == 0


@pytest.mark.parametrize("name", ["logistic", "cox", "kaplan_meier"])
def test_no_complete_row_is_an_error(data, name):
    fit, cols, _ = FITS[name]
    with pytest.raises(DataError, match=f"{name}: no complete rows"):
        fit(data.assign(**{cols[0]: np.nan}))


# --------------------------------------------------------------------------------------------------
# formula errors: plain text, naming the term or column
# --------------------------------------------------------------------------------------------------
ESTIMATORS = {
    "logistic": lambda d, rhs: logistic(d, "y ~ " + rhs),
    "cox": lambda d, rhs: cox(d, rhs, "time", "event"),
    "fine_gray": lambda d, rhs: fine_gray(d, rhs, "time", "status"),
    "iptw": lambda d, rhs: iptw(d, "treated", rhs, "y"),
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize(("rhs", "pattern"), [
    ("age + agee", r"column 'agee' \(in the formula '(y ~ )?age \+ agee'\) is not in the data"),
    ("age + ", r"cannot parse the formula .*insufficient arguments.*\(at '\+'\)"),
    ("age +* site", r"cannot parse the formula .*Operator `\+\*` is incorrectly used\. \(at '\+\*'\)"),
    ("age + foo(age)", r"'foo' in the formula '(y ~ )?age \+ foo\(age\)' is neither a column of the data nor "
                       "a known function"),
    ("age + np.nosuch(age)", r"cannot build the model matrix .*`np.nosuch\(age\)`.*nosuch"),
])
def test_formula_errors_are_plain_and_name_the_term(data, name, rhs, pattern):
    with pytest.raises(DataError, match=pattern) as err:
        ESTIMATORS[name](data, rhs)
    assert "\x1b" not in str(err.value) and "⧛" not in str(err.value)


@pytest.mark.parametrize("name", ["logistic", "cox", "fine_gray"])
def test_single_level_factor_is_the_same_error_everywhere(data, name):
    with pytest.raises(EstimationError, match=r"term 'C\(one\)' has a single level \('x'\)"):
        ESTIMATORS[name](data.assign(one="x"), "age + C(one)")


def test_clean_message_strips_colour_codes_and_quotes_the_marked_part():
    raw = "Operator `+` has insuffient arguments and/or is misplaced.\n\nage ⧛\x1b[1;31m+\x1b[0m⧚ "
    assert clean_message(raw) == "Operator `+` has insufficient arguments and/or is misplaced. (at '+')"
    assert clean_message(ValueError("\x1b[31mplain\x1b[0m")) == "plain"


def test_unseen_level_at_prediction_names_the_column(data):
    res = logistic(data, "y ~ age + C(site)")
    with pytest.raises(DataError, match=r"column 'site': value 'z' was not seen .*levels \['a', 'b', 'c'\]"):
        res.predict(data.head(3).assign(site="z"))
    pred = res.predict(data.head(3).assign(site=[None, "a", "b"]))
    assert np.isnan(pred.iloc[0]) and np.isfinite(pred.iloc[1:]).all()


def test_pandas_nullable_dtypes_are_coded_as_their_numpy_counterparts(data):
    plain = data.assign(site=data["site"].astype(object))
    nullable = plain.assign(site=plain["site"].astype("string"), flag=plain["flag"].astype("boolean"),
                            y=plain["y"].astype("Int64"), age=plain["age"].astype("Float64"))
    for fit in (lambda d: logistic(d, "y ~ age + site + flag").coef,
                lambda d: cox(d, "age + site + flag", "time", "event").coef,
                lambda d: pd.Series(iptw(d, "treated", ["age", "site", "flag"], "y").ps_terms)):
        a, b = fit(plain), fit(nullable)
        assert list(a.index) == list(b.index)
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12)
        else:
            assert a.tolist() == b.tolist()
