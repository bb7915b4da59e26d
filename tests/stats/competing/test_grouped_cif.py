"""Aalen-Johansen cumulative incidence and Gray's test from a frequency table equal the row-level
``cumulative_incidence`` (itself checked against R cmprsk::cuminc in test_competing.py) to 1e-10."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hostats.errors import EstimationError
from hostats.stats.competing.cif_fine_gray import cumulative_incidence
from hostats.stats.competing.grouped import cumulative_incidence_counts
from tests.paths import DATA

TOL = 1e-10


def _counts(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return rows.groupby(keys, dropna=False, observed=True).size().rename("n").reset_index()


def _cohort(seed: int = 3, n: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 500, n).astype(float)
    status = rng.choice([0, 1, 2], n, p=[0.6, 0.3, 0.1])
    arm = rng.choice(["none", "nsaid", "radiotherapy"], n)
    return pd.DataFrame({"time": t, "status": status, "arm": arm})


def _same(a, b) -> None:
    ca, cb = a.curve.reset_index(drop=True), b.curve.reset_index(drop=True)
    assert list(ca["group"].astype(str)) == list(cb["group"].astype(str))
    for col in ("time", "estimate", "ci_lower", "ci_upper", "std_error", "n_events", "n_competing"):
        np.testing.assert_allclose(ca[col], cb[col], rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(ca["n_at_risk"], cb["n_at_risk"])
    ta, tb = a.table(times=[0, 100, 365, 1000]), b.table(times=[0, 100, 365, 1000])
    num = ["estimate", "ci_lower", "ci_upper", "std_error"]
    np.testing.assert_allclose(ta[num], tb[num], rtol=TOL, atol=TOL)
    pd.testing.assert_frame_equal(ta.drop(columns=num), tb.drop(columns=num))
    pd.testing.assert_frame_equal(a.table().drop(columns=num), b.table().drop(columns=num))


@pytest.mark.parametrize("cause", [1, 2])
def test_counts_equal_rows_with_groups_and_gray(cause):
    rows = _cohort()
    fit = cumulative_incidence_counts(_counts(rows, ["time", "status", "arm"]), "time", "status", "n",
                                      cause=cause, group="arm")
    ref = cumulative_incidence(rows, "time", "status", cause=cause, group="arm")
    _same(fit, ref)
    assert fit.n == ref.n == len(rows)
    assert abs(fit.gray_test.statistic - ref.gray_test.statistic) < TOL * max(1.0, ref.gray_test.statistic)
    assert abs(fit.gray_test.p_value - ref.gray_test.p_value) < TOL


def test_bmtcrr_as_cmprsk_data():
    bmt = pd.read_csv(DATA / "bmtcrr.csv")
    ref = cumulative_incidence(bmt, "ftime", "Status", cause=1, group="D")
    fit = cumulative_incidence_counts(_counts(bmt, ["ftime", "Status", "D"]), "ftime", "Status", "n",
                                      cause=1, group="D")
    _same(fit, ref)
    np.testing.assert_allclose(fit.gray_test.statistic, ref.gray_test.statistic, rtol=TOL)
    one = cumulative_incidence_counts(_counts(bmt, ["ftime", "Status"]), "ftime", "Status", "n")
    _same(one, cumulative_incidence(bmt, "ftime", "Status"))


def test_missing_and_no_events():
    rows = _cohort(n=400)
    rows.loc[:4, "status"] = np.nan
    with pytest.warns(UserWarning, match="5 of 400 rows"):
        fit = cumulative_incidence_counts(_counts(rows, ["time", "status"]), "time", "status", "n")
    assert fit.n_missing == 5
    rows = rows.dropna().assign(status=lambda d: d["status"].where(d["status"] != 1, 0))
    with pytest.raises(EstimationError, match="no events of cause 1"):
        cumulative_incidence_counts(_counts(rows, ["time", "status"]), "time", "status", "n")


@pytest.mark.parametrize("seed", range(6))
def test_small_random_tables(seed):
    """Tiny cohorts: ties between causes, events at time 0, a group without the cause."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 40))
    rows = pd.DataFrame({"time": rng.integers(0, 6, n).astype(float), "status": rng.integers(0, 3, n),
                         "g": rng.choice(["a", "b"], n)})
    rows.loc[0, "status"] = 1
    ref = cumulative_incidence(rows, "time", "status", group="g")
    fit = cumulative_incidence_counts(_counts(rows, ["time", "status", "g"]), "time", "status", "n", group="g")
    _same(fit, ref)
    assert fit.warnings == ref.warnings
    try:
        expected = ref.gray_test.statistic
    except EstimationError:
        with pytest.raises(EstimationError):
            fit.gray_test  # noqa: B018
    else:
        assert abs(fit.gray_test.statistic - expected) < 1e-9 * max(1.0, expected)
