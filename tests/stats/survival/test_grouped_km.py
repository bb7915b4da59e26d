"""Kaplan-Meier from a frequency table (counts per group, time and event) equals Kaplan-Meier on the rows.

Independent truth: ``kaplan_meier`` on the row-level data, itself checked against R's survfit/survdiff
(test_survival_km.py). The frequency tables are made here with a pandas groupby, so nothing is shared
with the estimator but the data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError
from hostats.stats.survival.grouped import kaplan_meier_counts
from hostats.stats.survival.km_cox import kaplan_meier
from tests.paths import DATA

TOL = 1e-10


def _counts(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return rows.groupby(keys, dropna=False, observed=True).size().rename("n").reset_index()


def _cohort(seed: int = 7, n: int = 4000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.minimum(rng.exponential(300, n), rng.uniform(0, 700, n)).round()  # whole days: many ties
    ev = rng.random(n) < 0.6
    arm = rng.choice(["none", "nsaid", "radiotherapy"], n, p=[0.5, 0.3, 0.2])
    return pd.DataFrame({"time": t, "event": ev.astype(int), "arm": arm})


def _same_curves(a, b) -> None:
    ca, cb = a.curve.reset_index(drop=True), b.curve.reset_index(drop=True)
    assert list(ca["group"].astype(str)) == list(cb["group"].astype(str))
    for col in ("time", "estimate", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(ca[col], cb[col], rtol=TOL, atol=TOL)
    for col in ("n_at_risk", "n_events"):
        np.testing.assert_array_equal(ca[col], cb[col])


@pytest.mark.parametrize("group", [None, "arm"])
def test_counts_equal_rows_on_a_tied_three_arm_cohort(group):
    rows = _cohort()
    keys = ["time", "event"] + ([group] if group else [])
    row_fit = kaplan_meier(rows, "time", "event", group=group)
    fit = kaplan_meier_counts(_counts(rows, keys), "time", "event", "n", group=group)
    _same_curves(fit, row_fit)
    ta, tb = fit.table(), row_fit.table()
    pd.testing.assert_frame_equal(ta.drop(columns=["ci_lower", "ci_upper", "estimate"]),
                                  tb.drop(columns=["ci_lower", "ci_upper", "estimate"]))
    np.testing.assert_allclose(ta[["estimate", "ci_lower", "ci_upper"]], tb[["estimate", "ci_lower", "ci_upper"]],
                               rtol=TOL)
    times = [0, 30, 90, 364.5, 365, 800]
    pa, pb = fit.at(times), row_fit.at(times)
    np.testing.assert_array_equal(pa["n_at_risk"], pb["n_at_risk"])
    np.testing.assert_allclose(pa[["estimate", "ci_lower", "ci_upper"]], pb[["estimate", "ci_lower", "ci_upper"]],
                               rtol=TOL, atol=TOL)
    inc_a = fit.at(times, kind="cumulative_incidence")
    np.testing.assert_allclose(inc_a["estimate"], 1 - pa["estimate"], rtol=TOL)
    assert fit.n == row_fit.n == len(rows)
    if group:
        assert abs(fit.logrank.statistic - row_fit.logrank.statistic) < TOL * max(1, row_fit.logrank.statistic)
        assert fit.logrank.df == row_fit.logrank.df == 2
        assert abs(fit.logrank.p_value - row_fit.logrank.p_value) < TOL


def test_bmtcrr_death_censored_and_split_duplicate_cells():
    """Real data (bmtcrr): relapse with death censored; a cell split over two table rows adds up."""
    bmt = pd.read_csv(DATA / "bmtcrr.csv").assign(relapse=lambda d: (d["Status"] == 1).astype(int))
    row_fit = kaplan_meier(bmt, "ftime", "relapse", group="D")
    tab = _counts(bmt, ["ftime", "relapse", "D"])
    big = tab["n"].idxmax()
    split = pd.concat([tab, tab.loc[[big]].assign(n=1)], ignore_index=True)
    split.loc[big, "n"] -= 1
    fit = kaplan_meier_counts(split, "ftime", "relapse", "n", group="D")
    _same_curves(fit, row_fit)
    assert abs(fit.logrank.statistic - row_fit.logrank.statistic) < 1e-8


def test_missing_values_count_people_and_bad_counts_are_errors():
    rows = _cohort(n=500)
    rows.loc[:9, "arm"] = np.nan
    tab = _counts(rows, ["time", "event", "arm"])
    with pytest.warns(UserWarning, match="10 of 500 rows"):
        fit = kaplan_meier_counts(tab, "time", "event", "n", group="arm")
    assert fit.n_missing == 10 and fit.n == 490
    with pytest.raises(DataError, match="whole non-negative"):
        kaplan_meier_counts(tab.assign(n=tab["n"] - 0.5), "time", "event", "n")
    with pytest.raises(DataError, match="negative times"):
        kaplan_meier_counts(tab.assign(time=-tab["time"] - 1), "time", "event", "n")


@pytest.mark.parametrize("seed", range(6))
def test_small_random_tables_with_events_at_time_zero(seed):
    """Tiny cohorts (ties, events at time 0, a group without events, curves reaching 0)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    rows = pd.DataFrame({"time": rng.integers(0, 6, n).astype(float), "event": rng.integers(0, 2, n),
                         "g": rng.choice(["a", "b", "c"], n)})
    rows.loc[rows["g"] == "c", "event"] = 0
    if rows["event"].sum() == 0:
        rows.loc[0, "event"] = 1
    ref = kaplan_meier(rows, "time", "event", group="g")
    fit = kaplan_meier_counts(_counts(rows, ["time", "event", "g"]), "time", "event", "n", group="g")
    _same_curves(fit, ref)
    pd.testing.assert_frame_equal(fit.table(), ref.table(), rtol=TOL)
    pd.testing.assert_frame_equal(fit.at([0, 1, 2.5, 5, 9]), ref.at([0, 1, 2.5, 5, 9]), rtol=TOL)
    try:
        expected = ref.logrank.statistic
    except Exception as exc:  # noqa: BLE001 - the same problem must be reported by both
        with pytest.raises(type(exc)):
            fit.logrank  # noqa: B018
    else:
        assert abs(fit.logrank.statistic - expected) < 1e-9 * max(1.0, expected)
