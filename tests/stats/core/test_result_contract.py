"""The result contract shared by every public estimator (docs/design.md, "The public API"; issue 14).

Each public estimator is called once on tiny data (tests/data and a seeded synthetic draw), and the same
checks run on every result: the tidy ``.table()`` (label column, the value columns in order and with
numeric dtypes, ``ci_level`` equal to the level asked), ratio measures exponentiated with log-scale SEs,
curves' ``.at()``, ``summary()``, ``_repr_html_()`` and ``repr`` short, ``n`` and ``warnings`` present,
``.table()`` a copy, results read-only (no attribute set, nothing they hold changed in place: warnings a
tuple, coef/vcov and every other array, table, list or dict refusing or keeping changes to the caller's
copy), the model results' ``coef``/``vcov``/``loglik``, and the deprecated names (warning, same values).
A new public estimator that is not listed here fails ``test_every_public_estimator_is_covered``.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
import pytest

import hostats
from hostats.stats.core.results import (
    CURVE_COLUMNS,
    LABEL_COLUMNS,
    VALUE_COLUMNS,
    CurveResult,
    GroupTest,
    LogLik,
    Result,
)
from tests.paths import DATA, REFERENCE

LEVEL = 0.90  # not the default, so a level that is dropped on the way shows


def _bmt() -> pd.DataFrame:
    return pd.read_csv(DATA / "bmtcrr.csv")


def _lung() -> pd.DataFrame:
    d = pd.read_csv(DATA / "lung.csv")
    return d.assign(event=(d["status"] == 2).astype(int), female=(d["sex"] == 2).astype(int))


def _ucla() -> pd.DataFrame:
    return pd.read_csv(DATA / "ucla_admissions.csv")


def _ate_sim() -> pd.DataFrame:
    return pd.read_csv(DATA / "ate_sim.csv").iloc[:600]


def _intervals() -> pd.DataFrame:
    rng = np.random.default_rng(14)
    onset = rng.weibull(1.5, 120) * 60.0
    visits = np.sort(rng.uniform(1.0, 150.0, size=(120, 4)), axis=1)
    lo = np.array([v[v < t].max(initial=0.0) for v, t in zip(visits, onset, strict=True)])
    hi = np.array([v[v >= t].min(initial=np.inf) for v, t in zip(visits, onset, strict=True)])
    return pd.DataFrame({"lo": lo, "hi": hi})


# public name -> (call with a level, the measure family of the table: "ratio" when estimate is exp(coef))
CASES = {
    "proportion": lambda lv: hostats.proportion([12, 3], [150, 40], groups=["rt", "nsaid"], level=lv),
    "rate": lambda lv: hostats.rate([12, 30], [410.5, 380.0], groups=["rt", "none"], reference="none", level=lv),
    "logistic": lambda lv: hostats.logistic(_ucla(), "admit ~ gre + gpa + C(rank)", level=lv),
    "kaplan_meier": lambda lv: hostats.kaplan_meier(_lung(), "time", "event", group="sex", level=lv),
    "cox": lambda lv: hostats.cox(_lung(), "age + female", "time", "event", level=lv),
    "kaplan_meier_counts": lambda lv: hostats.kaplan_meier_counts(
        _lung().groupby(["sex", "time", "event"], as_index=False).size(), "time", "event", "size", group="sex",
        level=lv),
    "cumulative_incidence_counts": lambda lv: hostats.cumulative_incidence_counts(
        _bmt().groupby(["D", "ftime", "Status"], as_index=False).size(), "ftime", "Status", "size", group="D",
        level=lv),
    "logistic_counts": lambda lv: hostats.logistic_counts(
        _ucla().groupby(["admit", "rank"], as_index=False).size(), "admit ~ C(rank)", "size", level=lv),
    "poisson_counts": lambda lv: hostats.poisson_counts(
        pd.DataFrame({"arm": ["rt", "none"], "events": [12, 30], "py": [410.5, 380.0]}), "events ~ C(arm)", "py",
        level=lv),
    "cumulative_incidence": lambda lv: hostats.cumulative_incidence(_bmt(), "ftime", "Status", group="D",
                                                                    level=lv),
    "fine_gray": lambda lv: hostats.fine_gray(_bmt(), "Age + C(D)", "ftime", "Status", level=lv),
    "interval_censored": lambda lv: hostats.interval_censored(_intervals(), "lo", "hi", level=lv),
    "iptw": lambda lv: hostats.iptw(_ate_sim(), "arm", ["age", "male"], None, time="time", status="status",
                                    horizon=365.0, level=lv),
    "ate": lambda lv: hostats.ate(_ate_sim(), "arm", ["age", "male"], "time", "status", 365.0,
                                  methods=["iptw", "ipcw"], level=lv),
    "binreg": lambda lv: hostats.binreg(_bmt(), "Age + C(D)", "ftime", "Status", 12.0, level=lv),
    "rmst": lambda lv: hostats.rmst(_bmt(), "ftime", "Status", 24.0, cause=1, group="D", level=lv),
    "e_value": lambda lv: hostats.e_value(2.0, 1.4, 2.9),
    "meta_effects": lambda lv: hostats.meta_effects([-0.9, -1.6, -0.2, -0.5], [0.2, 0.4, 0.05, 0.1], level=lv),
    "meta_proportions": lambda lv: hostats.meta_proportions([4, 9, 2, 15], [40, 60, 35, 90], level=lv),
}
# public functions that do not return a Result, with the reason
NOT_RESULTS = {
    "read_cohort": "returns a Cohort",
    "site_summary": "returns the plain DataFrame of counts a site shares for pooling (no estimates)",
    "table1": "returns a PublicationTable (a manuscript table, hostats.report.publication)",
    "model_table": "returns a PublicationTable made from results",
    "save_tables": "writes PublicationTables to a file",
    "summarise": "returns the counts and ledger of an out-of-core read (hostats.scale); its estimators are the "
                 "*_counts functions, tested here",
}
MODELS = ("logistic", "cox", "fine_gray", "binreg")
CURVES = ("kaplan_meier", "cumulative_incidence", "interval_censored")
# rows whose estimate is a ratio (exp of a log-scale coefficient) and how to find them
RATIO_ROWS = {
    "logistic": lambda t: t["term"] != "Intercept",
    "cox": lambda t: t["term"].notna(),
    "fine_gray": lambda t: t["term"].notna(),
    "binreg": lambda t: t["term"] != "Intercept",
}
_RESULTS: dict[str, Result] = {}


def result(name: str) -> Result:
    if name not in _RESULTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # data warnings (small cells) are not the subject here
            _RESULTS[name] = CASES[name](LEVEL)
    return _RESULTS[name]


def test_every_public_estimator_is_covered():
    """Every public function of hostats is either in CASES (and returns a Result) or in NOT_RESULTS."""
    missing = []
    for name in hostats.__all__:
        obj = getattr(hostats, name)
        if inspect.isclass(obj):
            continue
        if name not in CASES and name not in NOT_RESULTS:
            missing.append(name)
    assert not missing, f"public function(s) {missing} are not in the common result tests (CASES)"
    for name in CASES:
        assert name in hostats.__all__
        assert isinstance(result(name), Result), name


@pytest.mark.parametrize("name", sorted(CASES))
def test_table_columns_in_contract_order_with_dtypes(name):
    t = result(name).table()
    assert not t.empty
    labels = [c for c in t.columns if c in LABEL_COLUMNS]
    assert labels, f"{name}: no label column among {LABEL_COLUMNS}"
    standard = [c for c in t.columns if c in LABEL_COLUMNS + VALUE_COLUMNS]
    expected = [c for c in LABEL_COLUMNS + VALUE_COLUMNS if c in t.columns]
    assert standard == expected, f"{name}: contract columns out of order: {standard}"
    assert "estimate" in t.columns
    for col in ("estimate", "ci_lower", "ci_upper", "p_value", "std_error", "ci_level"):
        if col in t.columns:
            assert pd.api.types.is_float_dtype(t[col]), f"{name}.{col} is {t[col].dtype}"
    for col in ("n", "events"):
        if col in t.columns:
            assert pd.api.types.is_numeric_dtype(t[col]), f"{name}.{col} is {t[col].dtype}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_ci_level_is_the_level_asked(name):
    t = result(name).table()
    if {"ci_lower", "ci_upper"} & set(t.columns):
        assert "ci_level" in t.columns
        assert (t["ci_level"] == LEVEL).all(), name
        assert result(name).level == LEVEL


@pytest.mark.parametrize("name", sorted(RATIO_ROWS))
def test_ratios_exponentiated_with_log_scale_se(name):
    res = result(name)
    t = res.table()
    rows = RATIO_ROWS[name](t).to_numpy()
    coef = res.coef.to_numpy()[rows]
    se = np.sqrt(np.diag(res.vcov.to_numpy()))[rows]
    np.testing.assert_allclose(t["estimate"].to_numpy()[rows], np.exp(coef), rtol=1e-12)
    np.testing.assert_allclose(t["std_error"].to_numpy()[rows], se, rtol=1e-12)
    z = 1.6448536269514722  # 90%
    np.testing.assert_allclose(t["ci_lower"].to_numpy()[rows], np.exp(coef - z * se), rtol=1e-9)
    np.testing.assert_allclose(t["ci_upper"].to_numpy()[rows], np.exp(coef + z * se), rtol=1e-9)


def test_one_ratio_by_hand():
    """Cox on survival::lung: HR of age and its log-scale SE from R's coxph (age + sex, Efron), stored in
    tests/reference/incidence.json by tests/reference/incidence.R."""
    import json

    ref = json.loads((REFERENCE / "incidence.json").read_text())["lung_cox_age_sex"]
    b, se = ref["coef"][ref["term"].index("age")], ref["std_error"][ref["term"].index("age")]
    row = result("cox").table().set_index("term").loc["age"]
    assert row["estimate"] == pytest.approx(np.exp(b), rel=1e-4)
    assert row["std_error"] == pytest.approx(se, rel=1e-3)
    assert row["ci_lower"] == pytest.approx(np.exp(b - 1.644854 * se), rel=1e-4)


@pytest.mark.parametrize("name", CURVES)
def test_curves_at_columns(name):
    res = result(name)
    assert isinstance(res, CurveResult)
    out = res.at([10.0, 50.0])
    assert list(out.columns[: len(CURVE_COLUMNS)]) == list(CURVE_COLUMNS)
    assert (out["ci_level"] == LEVEL).all()
    assert pd.api.types.is_integer_dtype(out["n_at_risk"])


def test_iptw_curves_at_columns():
    out = result("iptw").curves("cumulative_incidence").at([100.0])
    assert list(out.columns[: len(CURVE_COLUMNS)]) == list(CURVE_COLUMNS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_summary_html_and_repr_are_short(name):
    res = result(name)
    text = res.summary()
    assert isinstance(text, str) and res.method in text
    assert len(text.splitlines()) <= 45 + len(res.warnings)
    page = res._repr_html_()
    assert isinstance(page, str) and page.startswith("<div") and "<table" in page
    assert len(page) < 40_000
    r = repr(res)
    assert len(r.splitlines()) <= 40 and "array(" not in r and "_table=" not in r


@pytest.mark.parametrize("name", sorted(CASES))
def test_n_and_warnings_exist(name):
    res = result(name)
    assert isinstance(res.warnings, tuple) and all(isinstance(w, str) for w in res.warnings), name
    assert res.n is None or (isinstance(res.n, int | np.integer) and res.n > 0)
    if name not in ("rate", "e_value", "meta_effects"):  # person-time; a conversion; study estimates
        assert res.n is not None, name
    t = res.table()
    if res.n is not None and "n" in t.columns and name not in ("proportion", "kaplan_meier",
                                                                "cumulative_incidence", "rmst", "iptw", "ate",
                                                                "kaplan_meier_counts",
                                                                "cumulative_incidence_counts"):  # n per group
        assert t["n"].max() == res.n, name  # one analysis sample: the table's n is the result's


@pytest.mark.parametrize("name", sorted(CASES))
def test_table_is_a_copy(name):
    res = result(name)
    before = res.table()
    t = res.table()
    t["estimate"] = -1.0
    t.drop(columns=[c for c in t.columns if c != "estimate"], inplace=True)
    pd.testing.assert_frame_equal(res.table(), before)


@pytest.mark.parametrize("name", sorted(CASES))
def test_results_are_read_only(name):
    """No caller can change a result after it is made (issue 14: results were mutated after construction);
    dataclasses.replace still makes a changed copy."""
    import dataclasses

    res = result(name)
    for attr in ("method", "level", "warnings", "n"):
        with pytest.raises(AttributeError, match="read-only"):
            setattr(res, attr, getattr(res, attr))
    if dataclasses.is_dataclass(res):
        copy = dataclasses.replace(res, method="changed")
        assert copy.method == "changed" and res.method != "changed"


# In-place changes a caller might try on a Series or DataFrame handed out by a result (``obj``): values by
# position, label and through the array, a column or row added or replaced, the labels, in-place methods
# and arithmetic. Each may raise; none may reach the result.
SERIES_CHANGES = (
    "obj.iloc[0] = -5.0", "obj[obj.index[0]] = -5.0", "obj.loc[obj.index[0]] = -5.0", "obj.iat[0] = -5.0",
    "obj.to_numpy()[0] = -5.0", "obj.values[...] = 0.0", "np.asarray(obj)[0] = -5.0", "obj *= 2.0",
    "obj['added'] = 1.0", "obj.index = [f'x{i}' for i in range(len(obj))]", "obj.drop(obj.index[0], inplace=True)",
    "obj.clip(upper=-5.0, inplace=True)", "obj.name = 'renamed'", "obj[...] = 0.0",
)
FRAME_CHANGES = (
    "obj.iloc[0, 0] = -5.0", "obj.loc[obj.index[0], obj.columns[0]] = -5.0", "obj.iat[0, 0] = -5.0",
    "obj[obj.columns[0]] = -5.0", "obj[obj.columns[0]].iloc[0] = -5.0", "obj.to_numpy()[0, 0] = -5.0",
    "obj.values[...] = 0.0", "np.asarray(obj)[...] = 0.0", "obj *= 2.0", "obj['added'] = 1.0",
    "obj.columns = [f'x{i}' for i in range(obj.shape[1])]", "obj.drop(columns=obj.columns[0], inplace=True)",
    "obj.clip(upper=-5.0, inplace=True)", "obj.sort_index(ascending=False, inplace=True)", "obj[...] = 0.0",
)


def _try_to_change(obj, change: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pandas on chained assignment: the attempt is the point
            exec(change, {"obj": obj, "np": np})
    except (ValueError, TypeError, AttributeError, KeyError):
        pass  # refused: what a read-only result should do


@pytest.mark.parametrize("name", sorted(CASES))
def test_warnings_coef_and_vcov_cannot_be_changed_in_place(name):
    """Issue 14: setting an attribute raised, but ``res.warnings.append(...)``, ``res.coef[0] = 5`` or
    ``res.vcov.iloc[...] = ...`` changed a result in place. Warnings are a tuple; coef and vcov (and the
    model's other covariance) refuse or keep every change to themselves."""
    res = result(name)
    before = tuple(res.warnings)
    with pytest.raises(AttributeError):
        res.warnings.append("x")
    assert isinstance(res.warnings, tuple) and res.warnings == before
    for attr in ("coef", "vcov", "naive_vcov"):
        if not hasattr(res, attr):
            continue
        snapshot = getattr(res, attr).copy(deep=True)
        changes = SERIES_CHANGES if isinstance(snapshot, pd.Series) else FRAME_CHANGES
        for change in changes:
            _try_to_change(getattr(res, attr), change)
            now = getattr(res, attr)
            assert type(now) is type(snapshot), f"{name}.{attr} after {change!r}"
            if isinstance(snapshot, pd.Series):
                pd.testing.assert_series_equal(now, snapshot, obj=f"{name}.{attr} after {change!r}")
            else:
                pd.testing.assert_frame_equal(now, snapshot, obj=f"{name}.{attr} after {change!r}")
    if name in MODELS or name in ("logistic_counts", "poisson_counts"):
        assert hasattr(res, "coef") and hasattr(res, "vcov"), name


def _changeable_parts(value, where: str) -> list[str]:
    """Where ``value`` (an attribute of a result, or something inside one) can still be changed in place:
    lists and sets, dicts that take a new key, writeable arrays, pandas objects whose values take a write."""
    if isinstance(value, Result):
        return []  # a result inside a result is sealed on its own (and tested here through its estimator)
    if isinstance(value, list | set | bytearray):
        return [f"{where} is a {type(value).__name__}"]
    if isinstance(value, np.ndarray):
        return [f"{where} is a writeable array"] if value.flags.writeable else []
    if isinstance(value, pd.Series | pd.DataFrame):
        out = []
        columns = list(value.columns) if isinstance(value, pd.DataFrame) else [value.name]
        for j, column in enumerate(columns if len(value) else []):
            try:  # writes the value that is there: a result that takes it is left as it was
                if isinstance(value, pd.DataFrame):
                    value.iloc[0, j] = value.iloc[0, j]
                else:
                    value.iloc[0] = value.iloc[0]
            except (ValueError, TypeError):
                continue
            out.append(f"{where}[{column!r}] takes a write")
        return out
    if isinstance(value, dict):
        try:
            value["__probe__"] = None
        except TypeError:
            pass
        else:
            del value["__probe__"]
            return [f"{where} is a dict that takes a new key"]
        return [part for key, item in value.items() for part in _changeable_parts(item, f"{where}[{key!r}]")]
    if isinstance(value, tuple):
        return [part for i, item in enumerate(value) for part in _changeable_parts(item, f"{where}[{i}]")]
    return []  # numbers, text, the fitted third-party objects (statsmodels, lifelines)


def _tables_read(read, where: str) -> list:
    """(where, read) for each Series/DataFrame reached by ``read()``: itself, or inside its dicts (a result's
    dict of tables, e.g. ``ate``'s ``influence``; read with ``[]``, ``get``, ``values()``, ``items()``
    and ``dict(...)``)."""
    value = read()
    if isinstance(value, pd.Series | pd.DataFrame):
        return [(where, read)]
    if not isinstance(value, dict):
        return []
    out = []
    for key in value:
        ways = (lambda k=key: read()[k], lambda k=key: read().get(k), lambda k=key: dict(read())[k],
                lambda k=key: dict(read().items())[k], lambda k=key: list(read().values())[list(read()).index(k)])
        for i, way in enumerate(ways):
            out += [(f"{w} (read {i})", r) for w, r in _tables_read(way, f"{where}[{key!r}]")]
    return out


def test_a_dict_of_tables_hands_out_new_objects():
    """The finder above reaches tables inside a result's dicts (else the contract test would pass
    vacuously for them)."""
    res = result("ate")
    found = [w for w, _ in _tables_read(lambda: res.influence, "influence")]
    assert found and all(w.startswith("influence[") for w in found)


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_public_attribute_can_be_changed_in_place(name):
    """Every public attribute of every result, and what its tuples and dicts hold: no list, no dict that
    takes a key, no writeable array, no pandas values that take a write; a pandas object read from a result
    is a new object each time (over the same data), so adding a column or relabelling stays with the caller."""
    import copy
    import pickle

    res = result(name)
    problems = []
    for attr in vars(res):
        if attr.startswith("_"):
            continue
        value = getattr(res, attr)
        problems += _changeable_parts(value, attr)
        for where, read in _tables_read(lambda attr=attr: getattr(res, attr), attr):
            assert read() is not read(), f"{name}.{where}"
            table = read()
            table["__probe__"] = 0
            assert "__probe__" not in read(), f"{name}.{where}"
    assert not problems, f"{name}: {problems}"
    for how, again in (("unpickled", pickle.loads(pickle.dumps(res))), ("deep copy", copy.deepcopy(res))):
        problems = [part for attr in vars(again) if not attr.startswith("_")
                    for part in _changeable_parts(getattr(again, attr), attr)]
        assert not problems, f"{name}, {how}: {problems}"
        pd.testing.assert_frame_equal(again.table(), res.table())


def test_read_only_results_leave_the_callers_data_writeable():
    """Results make their arrays read-only without copying them, never the caller's arrays or frames."""
    effects, variances = np.array([-0.9, -1.6, -0.2, -0.5]), np.array([0.2, 0.4, 0.05, 0.1])
    res = hostats.meta_effects(effects, variances)
    assert not res.yi.flags.writeable and effects.flags.writeable and variances.flags.writeable
    effects[0] = 0.0  # the caller's own array: still theirs to change
    lung = _lung()
    hostats.cox(lung, "age + female", "time", "event")
    lung.iloc[0, lung.columns.get_loc("age")] = 50
    sim = _ate_sim()
    res = hostats.iptw(sim, "arm", ["age", "male"], None, time="time", status="status", horizon=365.0)
    sim.iloc[0, sim.columns.get_loc("age")] = 50.0
    sim.loc[:, "time"] *= 2.0
    # each read is a new object over the same data, not a copy of it
    assert np.shares_memory(res.weights.to_numpy(), res.weights.to_numpy())
    assert np.shares_memory(res.propensity.to_numpy(), res.propensity.to_numpy())


@pytest.mark.parametrize("name", MODELS)
def test_model_coef_vcov_loglik(name):
    res = result(name)
    assert isinstance(res.coef, pd.Series) and isinstance(res.vcov, pd.DataFrame)
    assert list(res.vcov.index) == list(res.vcov.columns) == list(res.coef.index)
    assert isinstance(res.loglik, LogLik) and res.loglik._fields == ("null", "fitted")
    if name != "binreg":  # an estimating equation: no likelihood (NaN)
        assert res.loglik.fitted >= res.loglik.null


def test_logistic_loglik_is_statsmodels():
    res = result("logistic")
    assert res.loglik.fitted == pytest.approx(res.fitted.llf, rel=1e-10)
    assert res.loglik.null == pytest.approx(res.fitted.llnull, rel=1e-8)


DEPRECATED = [  # (estimator, old name, new name); the old one returns the new value (old type)
    ("logistic", "params", "coef"),
    ("logistic", "cov", "vcov"),
    ("binreg", "params", "coef"),
    ("binreg", "cov", "vcov"),
    ("binreg", "naive_cov", "naive_vcov"),
    ("fine_gray", "cov", "vcov"),
    ("fine_gray", "naive_cov", "naive_vcov"),
]


@pytest.mark.parametrize("name,old,new", DEPRECATED)
def test_deprecated_names_warn_and_agree(name, old, new):
    res = result(name)
    with pytest.warns(DeprecationWarning, match=rf"\.{old} is deprecated.*use \.{new}"):
        value = getattr(res, old)
    np.testing.assert_array_equal(np.asarray(value), np.asarray(getattr(res, new)))


def test_deprecated_c_statistic_is_concordance():
    res = result("logistic")
    with pytest.warns(DeprecationWarning, match="c_statistic is deprecated"):
        c = res.c_statistic
    assert c["estimate"] == res.concordance()
    assert res.performance().set_index("measure").loc["c_statistic", "estimate"] == res.concordance()


def test_group_tests_are_one_type():
    """Log-rank (Kaplan-Meier) and Gray's test (cumulative incidence) are both GroupTest results."""
    for test, measure in ((result("kaplan_meier").logrank, "logrank_chisq"),
                          (result("cumulative_incidence").gray_test, "gray_chisq")):
        assert isinstance(test, GroupTest)
        row = test.table().iloc[0]
        assert list(test.table().columns[:4]) == ["measure", "estimate", "p_value", "df"]
        assert row["measure"] == measure
        assert row["estimate"] == test.statistic and row["p_value"] == test.p_value and row["df"] == test.df
        assert test.method in test.summary() and "<table" in test._repr_html_()
    assert result("cumulative_incidence").gray_test.as_dict()["statistic"] == result(
        "cumulative_incidence").gray_test.statistic
