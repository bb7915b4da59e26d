"""kaplan_meier's counting step (issue 16: distinct times by hashing, counts per (group, time) cell,
the time-0 row inserted per group) on the awkward cases, against lifelines' KaplanMeierFitter (an
independent implementation) and against counting by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from hostats.stats.survival.km_cox import _cells, kaplan_meier


def _awkward() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 300
    d = pd.DataFrame({"time": np.ceil(rng.exponential(20, n)), "event": rng.random(n) < 0.6,
                      "g": rng.choice(["a", "b", "c", "d"], n)})
    d.loc[d["g"] == "a", "event"] = False           # a group without events (a curve at 1)
    b = d.index[d["g"] == "b"][:3]
    d.loc[b, ["time", "event"]] = [0.0, True]       # the next group jumps at time 0
    d.loc[d["g"] == "c", "time"] = 5.0               # every time tied in one group
    return d


@pytest.mark.parametrize("continuous", [False, True])
def test_curves_match_lifelines(continuous):
    d = _awkward()
    if continuous:
        d["time"] = d["time"] + np.random.default_rng(1).random(len(d))
    res = kaplan_meier(d, "time", "event", group="g")
    for label, grp in d.groupby("g"):
        kmf = KaplanMeierFitter().fit(grp["time"], grp["event"])
        curve = res.curve[res.curve["group"] == label]
        expected = kmf.survival_function_.iloc[:, 0]
        event_times = np.r_[0.0, np.sort(grp.loc[grp["event"], "time"].unique())]
        np.testing.assert_allclose(curve["estimate"], expected.loc[np.unique(event_times)].to_numpy(), rtol=1e-12)
        assert curve["time"].iloc[0] == 0.0 and curve["time"].is_monotonic_increasing
        row = res.table().set_index("group").loc[label]
        assert row["n"] == len(grp) and row["events"] == int(grp["event"].sum())
        asked = np.array([0.0, 3.0, 5.0, 17.5, 1000.0])
        at = res.at(asked)
        at = at[at["group"] == label]
        np.testing.assert_array_equal(at["n_at_risk"], [(grp["time"] >= x).sum() for x in asked])
        np.testing.assert_allclose(at["estimate"], kmf.survival_function_at_times(asked).to_numpy(), rtol=1e-12)
    assert list(res.curve["group"].cat.categories) == ["a", "b", "c", "d"]
    assert (res.curve.loc[res.curve["group"] == "a", "estimate"] == 1.0).all()


def test_weighted_counts_equal_replicated_rows():
    """Whole-number weights act as replicated rows for the estimate and the weighted number at risk."""
    d = _awkward()
    d["w"] = np.random.default_rng(3).integers(1, 4, len(d)).astype(float)
    res = kaplan_meier(d, "time", "event", group="g", weights="w")
    rep = d.loc[d.index.repeat(d["w"].astype(int))]
    ref = kaplan_meier(rep, "time", "event", group="g")
    pd.testing.assert_series_equal(res.curve["estimate"], ref.curve["estimate"], rtol=1e-12)
    np.testing.assert_allclose(res.curve["n_at_risk_weighted"], ref.curve["n_at_risk"])


@pytest.mark.parametrize("n,size", [(10, 50), (10, 10_000_000)])
def test_cells_dense_and_sparse(n, size):
    cell = np.random.default_rng(n).integers(0, size, n)
    present, index = _cells(cell, size, n)
    np.testing.assert_array_equal(present, np.unique(cell))
    np.testing.assert_array_equal(present[index], cell)


@pytest.mark.parametrize("continuous", [False, True])
def test_logrank_from_cells_matches_lifelines(continuous):
    from lifelines.statistics import multivariate_logrank_test

    from hostats.stats.survival.km_cox import _logrank

    d = _awkward()
    if continuous:
        d["time"] = d["time"] + np.random.default_rng(2).random(len(d))
    res = kaplan_meier(d, "time", "event", group="g")
    ref = multivariate_logrank_test(d["time"], d["g"], d["event"])
    assert res.logrank.statistic == pytest.approx(ref.test_statistic, rel=1e-10)
    codes = pd.Categorical(d["g"]).codes.astype(np.int64)
    rows = _logrank(d["time"].to_numpy(float), d["event"].to_numpy(bool), codes, ["a", "b", "c", "d"], 0.95)
    assert rows.statistic == pytest.approx(ref.test_statistic, rel=1e-10)  # counted from the rows
