"""Tests for hostats.stats.incidence against published tables and closed forms."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hostats.stats.incidence import proportion, rate
from tests.paths import REFERENCE

# Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven methods.
# Stat Med 1998;17:857-872, Table II (methods 1 = simple asymptotic/Wald, 3 = Wilson score,
# 5 = Clopper-Pearson exact), four printed to 4 decimals.
NEWCOMBE = {
    (81, 263): {"wald": (0.2522, 0.3638), "wilson": (0.2553, 0.3662), "clopper-pearson": (0.2527, 0.3676)},
    (15, 148): {"wald": (0.0527, 0.1500), "wilson": (0.0624, 0.1605), "clopper-pearson": (0.0578, 0.1617)},
    (0, 20): {"wilson": (0.0000, 0.1611), "clopper-pearson": (0.0000, 0.1684)},
    (1, 29): {"wilson": (0.0061, 0.1718), "clopper-pearson": (0.0009, 0.1776)},
}


@pytest.mark.parametrize("method", ["wald", "wilson", "clopper-pearson"])
def test_proportion_matches_newcombe_1998_table(method):
    cases = [k for k, v in NEWCOMBE.items() if method in v]
    res = proportion([e for e, _ in cases], [n for _, n in cases], method=method).table()
    for row, case in zip(res.itertuples(), cases, strict=True):
        lo, hi = NEWCOMBE[case][method]
        assert row.ci_lower == pytest.approx(lo, abs=6e-5), case
        assert row.ci_upper == pytest.approx(hi, abs=6e-5), case
        assert row.estimate == pytest.approx(case[0] / case[1])


def test_wilson_closed_form_and_exact_edges():
    # Wilson (1927) closed form, written out independently of statsmodels.
    x, n, z = 7, 40, stats.norm.ppf(0.95)
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    row = proportion(x, n, level=0.90).table().iloc[0]
    assert row.ci_lower == pytest.approx(centre - half, rel=1e-12)
    assert row.ci_upper == pytest.approx(centre + half, rel=1e-12)
    assert row.ci_level == 0.90


@pytest.mark.parametrize("method", ["wilson", "clopper-pearson", "agresti-coull", "jeffreys"])
def test_zero_and_all_events_have_exact_bounds(method):
    t = proportion([0, 12], [12, 12], method=method).table()
    assert t.ci_lower.iloc[0] == 0.0 and t.ci_upper.iloc[0] > 0
    assert t.ci_upper.iloc[1] == 1.0 and t.ci_lower.iloc[1] < 1


def test_clopper_pearson_zero_events_rule_of_three_closed_form():
    # With 0/n the exact upper bound solves (1 - p)^n = alpha/2: p = 1 - 0.025^(1/n).
    t = proportion(0, 50, method="exact").table()
    assert t.ci_upper.iloc[0] == pytest.approx(1 - 0.025 ** (1 / 50), rel=1e-10)


def test_jeffreys_and_agresti_coull_closed_forms():
    x, n = 9, 31
    t = proportion(x, n, method="jeffreys").table().iloc[0]
    assert t.ci_lower == pytest.approx(stats.beta.ppf(0.025, x + 0.5, n - x + 0.5), rel=1e-10)
    assert t.ci_upper == pytest.approx(stats.beta.ppf(0.975, x + 0.5, n - x + 0.5), rel=1e-10)
    z = stats.norm.ppf(0.975)
    nt = n + z**2
    pt = (x + z**2 / 2) / nt
    t = proportion(x, n, method="agresti-coull").table().iloc[0]
    assert t.ci_lower == pytest.approx(pt - z * np.sqrt(pt * (1 - pt) / nt), rel=1e-10)


def test_series_index_and_groups_label_rows():
    events = pd.Series([3, 5], index=["site A", "site B"])
    totals = pd.Series([30, 50], index=["site A", "site B"])
    t = proportion(events, totals).table()
    assert list(t.group) == ["site A", "site B"]
    assert list(t.columns[:4]) == ["group", "estimate", "ci_lower", "ci_upper"]
    t = proportion([1, 2], [10, 10], groups=["x", "y"]).table()
    assert list(t.group) == ["x", "y"] and list(t.n) == [10, 10] and list(t.events) == [1, 2]


@pytest.mark.parametrize("events,n,message", [
    ([3, 11], [10, 10], "events exceed n in group.*'b'"),
    ([3, -1], [10, 10], "negative.*'b'"),
    ([3, 1.5], [10, 10], "whole numbers.*'b'"),
    ([3, 1], [10, 0], "n is 0.*'b'"),
    ([3, np.nan], [10, 10], "missing.*'b'"),
])
def test_proportion_bad_input_names_the_group(events, n, message):
    with pytest.raises(ValueError, match=message):
        proportion(events, n, groups=["a", "b"])


def test_proportion_rejects_unknown_method_and_bad_level():
    with pytest.raises(ValueError, match="unknown proportion method"):
        proportion(1, 10, method="bayes")
    with pytest.raises(ValueError, match="level"):
        proportion(1, 10, level=95)


def test_exact_poisson_zero_events_in_one_unit_upper_bound_is_3_689():
    t = rate(0, 1, per=1).table().iloc[0]
    assert t.estimate == 0 and t.ci_lower == 0
    assert t.ci_upper == pytest.approx(3.689, abs=5e-4)  # -log(0.025) = 3.6889
    assert t.ci_upper == pytest.approx(-np.log(0.025), rel=1e-10)


def test_exact_poisson_matches_garwood_tables():
    # Exact Poisson limits (Garwood 1936; tabulated e.g. in Ulm K, Am J Epidemiol 1990;131:373-5 and
    # Breslow & Day 1987 Appendix), 95%, for x = 1, 2, 3, 5, 10.
    table = {1: (0.0253, 5.5716), 2: (0.2422, 7.2247), 3: (0.6187, 8.7673), 5: (1.6235, 11.6683),
             10: (4.7954, 18.3904)}
    t = rate(list(table), [1] * len(table), per=1, groups=list(table)).table()
    t = t[t.measure == "rate"]
    for row in t.itertuples():
        lo, hi = table[row.group]
        assert row.ci_lower == pytest.approx(lo, abs=6e-5)
        assert row.ci_upper == pytest.approx(hi, abs=6e-5)


def test_rate_scaling_and_unit_columns():
    t = rate(12, 2400.0, per=1000, time_unit="person-days").table().iloc[0]
    assert t.estimate == pytest.approx(5.0)
    assert t.ci_upper == pytest.approx(stats.chi2.ppf(0.975, 26) / 2 / 2400 * 1000)
    assert t.per == 1000 and t.time_unit == "person-days" and t.person_time == 2400


def test_rate_ratio_matches_r_poisson_test():
    # R documentation example, ?poisson.test (breast cancer rates, Rothman & Greenland 1998):
    # poisson.test(c(11, 6+8+7), c(800, 1083+1050+878)) -> rate ratio 1.971488,
    # 95% CI 0.8584264 4.2772659, p-value 0.07967 (full precision: tests/reference/incidence.R).
    ref = json.loads((REFERENCE / "incidence.json").read_text())["poisson_test"]
    t = rate([11, 21], [800, 3011], groups=["exposed", "unexposed"], reference="unexposed").table()
    rr = t[t.measure == "rate_ratio"].iloc[0]
    assert rr.group == "exposed" and rr.reference == "unexposed"
    assert rr.estimate == pytest.approx(ref["estimate"], abs=1e-6)
    assert rr.ci_lower == pytest.approx(ref["ci_lower"], abs=1e-6)
    assert rr.ci_upper == pytest.approx(ref["ci_upper"], abs=1e-6)
    assert rr.p_value == pytest.approx(ref["p_value"], abs=5e-6)
    assert rr.std_error == pytest.approx(np.sqrt(1 / 11 + 1 / 21))


def test_rate_ratio_degenerate_counts():
    t = rate([0, 4, 0], [10.0, 10.0, 5.0], groups=["ref", "b", "c"], reference="b").table()
    rr = t[t.measure == "rate_ratio"].set_index("group")
    assert rr.loc["ref", "estimate"] == 0 and rr.loc["ref", "ci_lower"] == 0
    assert np.isfinite(rr.loc["ref", "ci_upper"])
    res = rate([0, 0], [10.0, 5.0], groups=["a", "b"])
    rr = res.table().query("measure == 'rate_ratio'").iloc[0]
    assert np.isnan(rr.estimate) and rr.ci_upper == np.inf and rr.p_value == 1
    assert any("not estimable" in w for w in res.warnings)


@pytest.mark.parametrize("events,pt,message", [
    ([1, 2], [10, 0], "person_time.*'b'"),
    ([1, 2], [10, -3], "person_time.*'b'"),
    ([1, -2], [10, 3], "negative.*'b'"),
    ([1, 0.5], [10, 3], "whole numbers.*'b'"),
])
def test_rate_bad_input_names_the_group(events, pt, message):
    with pytest.raises(ValueError, match=message):
        rate(events, pt, groups=["a", "b"])


def test_rate_unknown_reference():
    with pytest.raises(ValueError, match="reference group 'z'"):
        rate([1, 2], [3, 4], groups=["a", "b"], reference="z")


@pytest.mark.parametrize("n", [10, 37, 100])
def test_clopper_pearson_exact_coverage_is_never_below_nominal(n):
    # Exact coverage, not simulation: sum of binomial probabilities of the x whose interval covers p.
    # Clopper-Pearson is guaranteed conservative (Clopper & Pearson 1934; Brown, Cai & DasGupta 2001).
    x = np.arange(n + 1)
    t = proportion(x, np.full(n + 1, n), method="clopper-pearson").table()
    for p in np.linspace(0.01, 0.99, 49):
        covered = (t.ci_lower.to_numpy() <= p) & (p <= t.ci_upper.to_numpy())
        assert stats.binom.pmf(x, n, p)[covered].sum() >= 0.95 - 1e-9, p


def test_garwood_exact_coverage_is_never_below_nominal():
    x = np.arange(200)
    t = rate(x, np.ones(x.size), per=1, groups=list(x)).table()
    t = t[t.measure == "rate"]
    for mu in np.linspace(0.05, 60, 80):
        covered = (t.ci_lower.to_numpy() <= mu) & (mu <= t.ci_upper.to_numpy())
        assert stats.poisson.pmf(x, mu)[covered].sum() >= 0.95 - 1e-9, mu
