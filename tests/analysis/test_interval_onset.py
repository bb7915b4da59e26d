"""Interval-censored onset: detection-lag correction, day-0 (prevalent) bounds, bound modalities, speed paths.

References
----------
- Detection lag: x-ray positive 21-28 days after onset (docs/rates.md R19), bone scan 7-10 days earlier (R20);
  the synthetic generator draws onset, then x-ray/bone-scan visibility with exactly these lags, so its
  latent onset is the truth the lag-corrected estimate must recover.
- Weibull on distinct intervals with frequency weights: lifelines ``WeibullFitter.fit_interval_censoring``
  on the raw rows is the oracle (same likelihood).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError, EstimationError
from hostats.stats.survival.interval_censoring import (
    DETECTION_LAG_DAYS,
    _shift_by_lag,
    _Turnbull,
    interval_censored,
)


@pytest.fixture(scope="module")
def neuro():
    """A synthetic neurogenic draw (no faults): analysed episodes with HO, bounds and their modalities,
    and the latent true onset of the same patients."""
    import synthetic
    from hostats.clean import interval_bounds

    c = synthetic.generate("neurogenic", 20000, 11, fault_rate=0.0)
    e = interval_bounds(c.episodes, c.assessments)
    d = e[e["ho"] & ((e["ho_date"] - e["index_date"]).dt.days <= 365)].copy()
    # the cleaning records which test set each bound; the first positive is the recorded detection modality
    assert (d["ho_interval_hi_test"] == d["detection_modality"]).all()
    assert d.loc[d["ho_interval_lo_days"] > 0, "ho_interval_lo_test"].notna().all()
    onset = c.latent.set_index("patient_id").loc[d["patient_id"], "onset_day"].to_numpy()
    return d, onset


def test_lag_correction_recovers_true_onset(neuro):
    d, onset = neuro
    raw = interval_censored(d)
    lag = interval_censored(d, detection_lag_days=DETECTION_LAG_DAYS)
    assert raw.estimand == "first positive imaging" and "radiological visibility" in raw.method
    assert lag.estimand.startswith("onset") and "R19" in lag.reference
    # the NPMLE is identified at the imaging days: shifted x-ray visits (42 and 91 days minus 24.5); there the
    # lag-corrected curve is the true onset CDF (SE ~0.007 at ~2,800 patients), the raw curve far below it
    for t in (17.5, 66.5):
        truth = np.mean(onset <= t)
        assert lag.at([t])["estimate"].iloc[0] == pytest.approx(truth, abs=0.03), t
        assert raw.at([t])["estimate"].iloc[0] < truth - 0.1, t
    med = {r.estimand: r.table().set_index("measure").loc["median_onset_weibull", "estimate"] for r in (raw, lag)}
    true_med = float(np.median(onset))
    # Weibull on a truncated log-normal: about 3 days high at this size; swapped lags put it ~10 days off
    assert abs(med[lag.estimand] - true_med) < 5.0
    # without correction the median is later by about the lag (bone scan 16 ... x-ray 24.5 days + schedule)
    assert 16.0 < med[raw.estimand] - true_med < 35.0
    assert 16.0 < med[raw.estimand] - med[lag.estimand] < 28.0


def test_shift_by_lag_hand_examples():
    d = pd.DataFrame({"lo": [42.0, 0.0, 0.0, 50.0, 91.0, 30.0],
                      "hi": [91.0, 50.0, 10.0, 56.0, np.inf, 30.0],
                      "lm": ["xray", None, None, "bone_scan", "xray", "xray"],
                      "um": ["xray", "bone_scan", "bone_scan", "xray", None, "xray"]})
    lo, hi, notes = _shift_by_lag(d, d["lo"].to_numpy(), d["hi"].to_numpy(), DETECTION_LAG_DAYS, "lm", "um", 1.0)
    np.testing.assert_allclose(lo, [17.5, 0.0, 0.0, 31.5, 66.5, 5.5])
    np.testing.assert_allclose(hi, [66.5, 34.0, 1.0, 34.0, np.inf, 5.5])
    # row 2: positive bone scan on day 10 is sooner than the 16-day lag -> onset in (0, 1];
    # row 3: negative bone scan (onset > 34) 6 days before a positive x-ray (onset <= 31.5) -> swapped
    assert notes == {"early": 1, "inverted": 1}


@pytest.mark.filterwarnings("ignore::lifelines.exceptions.ApproximationWarning")  # three rows: lifelines' Weibull SEs are not the point
def test_lag_errors_name_rows_and_modality():
    d = pd.DataFrame({"lo": [42.0, 0.0, 30.0], "hi": [91.0, 50.0, 60.0],
                      "ho_interval_lo_test": ["xray", None, "xray"], "ho_interval_hi_test": ["xray", "ct", "xray"]})
    with pytest.raises(DataError, match=r"no detection lag for modality 'ct'.*rows 1.*detection_lag_days"):
        interval_censored(d, "lo", "hi", detection_lag_days=DETECTION_LAG_DAYS)
    with pytest.raises(DataError, match=r"'ho_interval_hi_test' is missing for rows 1"):
        interval_censored(d.assign(ho_interval_hi_test=["xray", None, "xray"]), "lo", "hi",
                          detection_lag_days=DETECTION_LAG_DAYS)
    with pytest.raises(ValueError, match="finite and >= 0"):
        interval_censored(d, "lo", "hi", detection_lag_days={"xray": -1.0, "ct": 5.0})
    res = interval_censored(d, "lo", "hi", detection_lag_days={**DETECTION_LAG_DAYS, "ct": 20.0})
    assert res.lag_adjustments == {"early": 0, "inverted": 0}


def test_day_zero_positive_image_is_a_specific_error():
    d = pd.DataFrame({"lo": [0.0, 14.0, 0.0, 28.0], "hi": [0.0, 28.0, 14.0, np.inf]})
    with pytest.raises(EstimationError, match=r"rows 0 have a positive image on day 0.*prevalent"):
        interval_censored(d, "lo", "hi")
    # exact onsets at positive times are fine (zero-width interval = exactly known)
    res = interval_censored(pd.DataFrame({"lo": [5.0, 14.0, 0.0, 28.0], "hi": [5.0, 28.0, 14.0, np.inf]}),
                            "lo", "hi")
    assert res.turnbull["exact"].any()


def test_weibull_on_distinct_intervals_equals_lifelines_on_rows():
    from lifelines import WeibullFitter

    rng = np.random.default_rng(4)
    onset = 50.0 * rng.weibull(1.7, 2000)
    grid = np.array([0.0, 14, 42, 91, 182, 365])
    k = np.searchsorted(grid, onset)
    seen = k < grid.size
    lo = np.where(seen, grid[np.maximum(k - 1, 0)], grid[-1])
    hi = np.where(seen, grid[np.minimum(k, grid.size - 1)], np.inf)
    res = interval_censored(pd.DataFrame({"lo": lo, "hi": hi}), "lo", "hi")
    wf = WeibullFitter().fit_interval_censoring(lo, hi)
    assert res.fitted.lambda_ == pytest.approx(wf.lambda_, rel=1e-5)
    assert res.fitted.rho_ == pytest.approx(wf.rho_, rel=1e-5)
    np.testing.assert_allclose(res.fitted.variance_matrix_.to_numpy(), wf.variance_matrix_.to_numpy(), rtol=1e-3)


def test_newton_reaches_kuhn_tucker_on_many_distinct_intervals():
    # bootstrap-like counts with zeros and hundreds of intervals: the NPMLE satisfies max_j d_j <= 1 + tol
    rng = np.random.default_rng(2)
    onset = 40 * rng.weibull(1.4, 5000)
    a = np.floor(rng.uniform(0, 120, 5000))
    lo = np.where(onset > a, a, np.maximum(a - 30, 0))
    hi = np.where(onset > a, np.inf, a)
    hi = np.where(np.isfinite(hi) & (hi <= lo), lo + 1, hi)
    hi = np.where(hi == 0, 1.0, hi)
    tb = _Turnbull(lo, hi)
    assert tb.m > 50
    counts = rng.multinomial(int(tb.counts.sum()), tb.counts / tb.counts.sum()).astype(float)
    p, _ = tb.fit(counts, tol=1e-9)
    assert tb.kkt_gap(p, counts) <= 1e-9
    assert p.min() >= 0 and p.sum() == pytest.approx(1.0)
    pe, _ = tb.em(counts, tol=1e-9, max_iter=50000)
    assert tb.kkt_gap(pe[0], counts) <= 1e-9
    # the log-likelihood (not the non-unique masses) is the same
    def ll(q):
        cum = np.r_[0.0, np.cumsum(q)]
        big = cum[tb.last] - cum[tb.first]
        return np.sum(counts[counts > 0] * np.log(big[counts > 0]))
    assert ll(p) == pytest.approx(ll(pe[0]), abs=1e-6)


def test_bound_tests_same_day_ties_go_to_the_tighter_onset_bound():
    from hostats.clean import interval_bounds

    ep = pd.DataFrame({"patient_id": ["a", "b", "c"], "index_date": pd.to_datetime(["2020-01-01"] * 3)})
    day = pd.to_datetime("2020-01-01") + pd.to_timedelta([40, 40, 60, 60, 30, 10, 20, 20], unit="D")
    a = pd.DataFrame({"patient_id": ["a", "a", "a", "a", "b", "c", "c", "c"], "date": day,
                      "test": ["xray", "bone_scan", "xray", "bone_scan", "bone_scan", "xray", "ct", "bone_scan"],
                      "result": ["negative", "negative", "positive", "positive", "positive", "negative",
                                 "positive", "positive"], "value": np.nan})
    m = interval_bounds(ep, a)
    assert m["ho_interval_lo_days"].tolist() == [40.0, 0.0, 10.0]
    assert m["ho_interval_hi_days"].tolist() == [60.0, 30.0, 20.0]
    # a: same-day negatives -> the shorter lag (tighter lower bound), same-day positives -> the longer lag
    assert m.loc[0, "ho_interval_lo_test"] == "bone_scan" and m.loc[0, "ho_interval_hi_test"] == "xray"
    # b: no negative image, so no test set the lower bound (0)
    assert pd.isna(m.loc[1, "ho_interval_lo_test"]) and m.loc[1, "ho_interval_hi_test"] == "bone_scan"
    # c: CT (no published lag) and bone scan positive the same day -> the bone scan bounds onset tighter
    assert m.loc[2, "ho_interval_lo_test"] == "xray" and m.loc[2, "ho_interval_hi_test"] == "bone_scan"
