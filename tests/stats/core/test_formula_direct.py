"""The direct numeric design path of hostats.stats.core.formula (issue 16): a right-hand side of plain
numeric columns skips formulaic, and must give exactly the matrix, names and terms formulaic gives, and
the same fits (logistic, cox) as the formula path, which is forced here by disabling the direct path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError
from hostats.stats.core import formula as fm
from hostats.stats.regression.logit import logistic
from hostats.stats.survival.km_cox import cox
from tests.paths import DATA


@pytest.fixture(scope="module")
def lung() -> pd.DataFrame:
    d = pd.read_csv(DATA / "lung.csv").dropna(subset=["age", "ph.karno", "wt.loss", "meal.cal"])
    return d.assign(dead=(d["status"] == 2).astype(int), age_int=d["age"].astype(np.int64))


def _formulaic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fm, "_direct_design", lambda *a, **k: None)


@pytest.mark.parametrize("intercept", [True, False])
def test_direct_matrix_equals_formulaic(lung, monkeypatch, intercept):
    rhs = "age_int + sex + age"
    design, X = fm.build_design(lung, rhs, rhs, intercept=intercept)
    assert design.spec is None  # the direct path was taken
    _formulaic(monkeypatch)
    ref_design, ref = fm.build_design(lung, rhs, rhs, intercept=intercept)
    assert ref_design.spec is not None
    assert design.names == ref_design.names
    assert design.terms == ref_design.terms
    assert X.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(X, ref)
    # new data: the same coding, NaN rows where a column is missing
    new = lung.head(6).copy()
    new.loc[new.index[2], "age"] = np.nan
    np.testing.assert_array_equal(design.matrix(new), ref_design.matrix(new))


def test_direct_path_only_for_plain_numeric_terms(lung):
    for rhs in ("age + C(sex)", "age + I(age / 10)", "age + age", "age:sex", "age + `ph.karno`"):
        assert fm._direct_design(lung, rhs, rhs, True) is None, rhs
    flagged = lung.assign(flag=lung["sex"] == 2, cat=pd.Categorical(lung["sex"]), nullable=lung["age_int"].astype("Int64"))
    for col in ("flag", "cat", "nullable"):  # booleans and categoricals are factors; extension types via formulaic
        assert fm._direct_design(flagged, f"age + {col}", "f", True) is None, col
    assert fm._direct_design(lung, "age + sex", "f", True) is not None


def test_direct_path_errors(lung):
    bad = lung.assign(x=np.where(np.arange(len(lung)) == 3, np.inf, 1.0 * np.arange(len(lung))))
    with pytest.raises(DataError, match=r"term 'x' .* not finite in rows " + str(bad.index[3])):
        fm.build_design(bad, "age + x", "age + x", intercept=True)
    design, _ = fm.build_design(lung, "age + sex", "age + sex", intercept=True)
    with pytest.raises(DataError, match="column 'sex' was numeric"):
        design.matrix(lung.assign(sex=lung["sex"].map({1: "m", 2: "f"})))


def test_logistic_same_fit_on_both_paths(lung, monkeypatch):
    f = "dead ~ age + sex + ph.karno".replace("ph.karno", "meal_cal")
    data = lung.assign(meal_cal=lung["meal.cal"] / 100)
    direct = logistic(data, f)
    assert direct._design.spec is None
    _formulaic(monkeypatch)
    ref = logistic(data, f)
    assert ref._design.spec is not None
    pd.testing.assert_frame_equal(direct.table(), ref.table())
    pd.testing.assert_series_equal(direct.predict(data.head(5)), ref.predict(data.head(5)))


def test_cox_same_fit_on_both_paths(lung, monkeypatch):
    data = lung.assign(wt_loss=lung["wt.loss"])
    direct = cox(data, "age + sex + wt_loss", "time", "dead")
    _formulaic(monkeypatch)
    ref = cox(data, "age + sex + wt_loss", "time", "dead")
    pd.testing.assert_frame_equal(direct.table(), ref.table())
    assert direct._terms == ref._terms
