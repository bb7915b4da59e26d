"""site_summary: the aggregates a site shares give the same pooled answer as the sites' individual rows.

Truth here is computed independently from the individual rows: counts by pandas, and each site's log odds
ratio and its variance by a maximum-likelihood logistic regression (statsmodels Logit) of the outcome on
the exposure; Woolf's 1/a + 1/b + 1/c + 1/d is exactly the inverse information of that model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from hostats.errors import DataError
from hostats.stats.meta import meta_effects, meta_proportions, site_summary


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    sizes = {"A": 400, "B": 250, "C": 600, "D": 150}
    base = {"A": -1.2, "B": -0.6, "C": -1.8, "D": -1.0}   # site-specific baseline log odds
    rows = []
    for s, n in sizes.items():
        rt = rng.random(n) < 0.4
        p = 1 / (1 + np.exp(-(base[s] - 0.7 * rt)))
        rows.append(pd.DataFrame({"patient_id": [f"{s}{i}" for i in range(n)], "site": s,
                                  "radiotherapy": rt, "ho": rng.random(n) < p,
                                  "followup_days": rng.uniform(30, 400, n)}))
    return pd.concat(rows, ignore_index=True)


def test_counts_and_person_time_match_the_rows(cohort):
    s = site_summary(cohort, "site", "ho", exposure="radiotherapy", time="followup_days")
    assert list(s.site) == ["A", "B", "C", "D"]
    g = cohort.groupby("site")
    assert list(s.n) == list(g.size())
    assert list(s.events) == list(g.ho.sum())
    assert s.person_time.to_numpy() == pytest.approx(g.followup_days.sum().to_numpy())
    assert list(s.n_exposed) == list(g.radiotherapy.sum())
    assert list(s.events_exposed) == list(cohort[cohort.radiotherapy].groupby("site").ho.sum())
    assert (s.n_exposed + s.n_reference == s.n).all()
    assert "patient_id" not in s.columns and not s.continuity_corrected.any()


def test_log_or_and_variance_equal_each_sites_logistic_regression(cohort):
    s = site_summary(cohort, "site", "ho", exposure="radiotherapy")
    for _, row in s.iterrows():
        rows = cohort[cohort.site == row.site]
        fit = sm.Logit(rows.ho.astype(float), sm.add_constant(rows.radiotherapy.astype(float))).fit(disp=0)
        assert row.log_or == pytest.approx(fit.params["radiotherapy"], rel=1e-6)
        assert row.var_log_or == pytest.approx(fit.cov_params().loc["radiotherapy", "radiotherapy"], rel=1e-6)


def test_pooling_aggregates_equals_pooling_individual_level_estimates(cohort):
    s = site_summary(cohort, "site", "ho", exposure="radiotherapy")
    ipd_y, ipd_v = [], []
    for site in ["A", "B", "C", "D"]:
        rows = cohort[cohort.site == site]
        fit = sm.Logit(rows.ho.astype(float), sm.add_constant(rows.radiotherapy.astype(float))).fit(disp=0)
        ipd_y.append(fit.params["radiotherapy"])
        ipd_v.append(fit.cov_params().loc["radiotherapy", "radiotherapy"])
    for method in ("FE", "DL", "REML"):
        agg = meta_effects(s.log_or, s.var_log_or, method=method, labels=s.site)
        ipd = meta_effects(ipd_y, ipd_v, method=method)
        assert agg.estimate == pytest.approx(ipd.estimate, rel=1e-6)
        assert agg.std_error == pytest.approx(ipd.std_error, rel=1e-6)
        assert agg.tau2 == pytest.approx(ipd.tau2, abs=1e-8)
    # proportions: the shared counts are the rows' counts, so every transform pools identically
    counts = cohort.groupby("site").ho.agg(["sum", "size"])
    for transform in ("logit", "ft", "glmm"):
        agg = meta_proportions(s.events, s.n, transform=transform, labels=s.site)
        ipd = meta_proportions(counts["sum"], counts["size"], transform=transform)
        assert agg.estimate == pytest.approx(ipd.estimate, rel=1e-10)
    # the pooled OR estimates the simulated common conditional OR exp(-0.7) (4 sites: a wide CI)
    fe = meta_effects(s.log_or, s.var_log_or, method="FE")
    assert fe.ci_lower < -0.7 < fe.ci_upper


def test_zero_cell_site_is_corrected_and_flagged():
    df = pd.DataFrame({"site": ["X"] * 6 + ["Y"] * 6, "ho": [0, 0, 0, 1, 1, 0] + [1, 0, 1, 0, 1, 0],
                       "rt": [1, 1, 1, 0, 0, 0] * 2})
    s = site_summary(df, "site", "ho", exposure="rt")
    x = s.set_index("site").loc["X"]
    assert bool(x.continuity_corrected) and "zero cell" in x.log_or_note
    # a = 0, b = 3, c = 2, d = 1, each + 0.5
    assert x.log_or == pytest.approx(np.log(0.5 * 1.5 / (3.5 * 2.5)))
    assert x.var_log_or == pytest.approx(1 / 0.5 + 1 / 3.5 + 1 / 2.5 + 1 / 1.5)
    assert not s.set_index("site").loc["Y"].continuity_corrected


def test_categorical_exposure_with_reference_counts_other_levels():
    df = pd.DataFrame({"site": ["A"] * 6, "ho": [1, 0, 1, 0, 0, 1],
                       "prophylaxis": ["radiotherapy", "radiotherapy", "none", "none", "nsaid", "nsaid"]})
    s = site_summary(df, "site", "ho", exposure="prophylaxis", exposed="radiotherapy", reference="none")
    row = s.iloc[0]
    assert (row.n_exposed, row.n_reference, row.n_other_exposure) == (2, 2, 2)
    assert (row.events_exposed, row.events_reference) == (1, 1)


@pytest.mark.parametrize("frame, kwargs, message", [
    (pd.DataFrame({"site": ["A"], "ho": [1]}), {"outcome": "recurrence"}, "column 'recurrence'"),
    (pd.DataFrame({"site": ["A", "A"], "ho": [1, None]}), {}, "ho is missing in row"),
    (pd.DataFrame({"site": ["A", "A"], "ho": [1, 2]}), {}, "must be 0/1"),
    (pd.DataFrame({"site": ["A", None], "ho": [1, 0]}), {}, "site is missing"),
    (pd.DataFrame({"site": ["A", "A"], "ho": [1, 0], "t": [3.0, -1.0]}), {"time": "t"}, "non-negative"),
    (pd.DataFrame({"site": [], "ho": []}), {}, "no rows"),
])
def test_bad_data_name_the_column(frame, kwargs, message):
    args = {"site": "site", "outcome": "ho", **kwargs}
    with pytest.raises(DataError, match=message) as err:
        site_summary(frame, **args)
    assert err.value.column is not None
