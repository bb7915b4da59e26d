"""E-values against VanderWeele & Ding (2017) Ann Intern Med 167:268-274 and R's EValue package
(Mathur MB, Ding P, Riddell CA, VanderWeele TJ. Epidemiology 2018;29:e45-e47): printed outputs of its
README/vignette and the closed forms its own test suite (tests/testthat) checks."""
from __future__ import annotations

import numpy as np
import pytest

from hostats.stats.causal.sensitivity import e_value


def ev(*args, **kwargs):
    t = e_value(*args, **kwargs).table().set_index("measure")
    return t.loc["e_value_point", "estimate"], (t.loc["e_value_ci", "estimate"] if "e_value_ci" in t.index
                                                 else None)


def threshold(rr):
    return rr + np.sqrt(rr * (rr - 1))


def test_annals_case_1_breastfeeding():
    # Paper's first example: RR 3.9 (95% CI 1.8 to 8.7) -> E-value 7.26 for the estimate and
    # 1.8 + sqrt(1.8 * 0.8) = 3.00 for the lower limit (EValue test "Annals case #1").
    point, ci = ev(3.9, 1.8, 8.7)
    assert point == pytest.approx(7.263034, abs=1e-6)
    assert ci == pytest.approx(3.0, abs=1e-12)
    # protective version: 1/3.9 (1/8.7, 1/1.8) has the same E-values, from the upper limit
    point, ci = ev(1 / 3.9, 1 / 8.7, 1 / 1.8)
    assert point == pytest.approx(7.263034, abs=1e-6) and ci == pytest.approx(3.0)


def test_annals_further_example_leukemia_protective():
    # EValue: evalues.RR(0.80, 0.71, 0.91); closed forms from its test "Annals, Further Examples #1"
    point, ci = ev(0.80, 0.71, 0.91)
    assert point == pytest.approx(threshold(1 / 0.8))
    assert point == pytest.approx(1.809017, abs=1e-6)
    assert ci == pytest.approx(threshold(1 / 0.91))


def test_smoking_lung_cancer_printed_output():
    # EValue README: evalues.RR(est = 10.73, lo = 8.02, hi = 14.36) -> 20.94777, 15.52336
    point, ci = ev(10.73, 8.02, 14.36)
    assert point == pytest.approx(20.94777, abs=1e-5)
    assert ci == pytest.approx(15.52336, abs=1e-5)


def test_ci_crossing_null_gives_one():
    assert ev(1.3, 0.9, 1.8)[1] == 1.0
    assert ev(0.7, 0.45, 1.05)[1] == 1.0
    assert ev(1.0)[0] == 1.0


def test_odds_ratio_rare_and_common():
    # rare: OR taken as RR (EValue test "Rare OR": 5 + sqrt(5 * 4))
    assert ev(5, measure="OR", outcome_rare=True)[0] == pytest.approx(5 + np.sqrt(20))
    # common: RR ~ sqrt(OR); EValue docs evalue(OR(3, rare = FALSE)) prints RR 1.732051, E-value 2.85...
    t = e_value(3, measure="OR", outcome_rare=False).table().set_index("measure")
    assert t.loc["e_value_point", "rr"] == pytest.approx(1.732051, abs=1e-6)
    assert t.loc["e_value_point", "estimate"] == pytest.approx(threshold(np.sqrt(3)))
    assert 2.85 <= t.loc["e_value_point", "estimate"] < 2.86
    # EValue test "Common OR" (shifting to true = 2): (sqrt5 + sqrt(sqrt5 (sqrt5 - sqrt2))) / sqrt2
    point, ci = ev(5, 3, 7, measure="OR", outcome_rare=False, true=2)
    s5, s3, s2 = np.sqrt(5), np.sqrt(3), np.sqrt(2)
    assert point == pytest.approx((s5 + np.sqrt(s5 * (s5 - s2))) / s2)
    assert ci == pytest.approx((s3 + np.sqrt(s3 * (s3 - s2))) / s2)


def test_hazard_ratio_common_outcome_conversion():
    # Paper Table 2 / EValue test "Common HR": RR ~ (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))
    def conv(h):
        return (1 - 0.5 ** np.sqrt(h)) / (1 - 0.5 ** np.sqrt(1 / h))

    rr, rr_lo, rr_true = conv(1.3), conv(1.2), conv(1.1)
    point, ci = ev(1.3, 1.2, 1.4, measure="HR", outcome_rare=False, true=1.1)
    assert point == pytest.approx((rr + np.sqrt(rr * (rr - rr_true))) / rr_true)
    assert ci == pytest.approx((rr_lo + np.sqrt(rr_lo * (rr_lo - rr_true))) / rr_true)
    # EValue help example evalues.HR(0.56, 0.46, 0.69, rare = FALSE): protective, CI limit = upper
    point, ci = ev(0.56, 0.46, 0.69, measure="HR", outcome_rare=False)
    assert point == pytest.approx(threshold(1 / conv(0.56)))
    assert ci == pytest.approx(threshold(1 / conv(0.69)))
    # rare HR is taken as RR (EValue test "Rare HR", true = 0.4)
    assert ev(0.3, measure="HR", outcome_rare=True, true=0.4)[0] == pytest.approx(
        (1 / 0.3 + np.sqrt(1 / 0.3 * (1 / 0.3 - 1 / 0.4))) / (1 / 0.4))


def test_standardised_mean_difference():
    # EValue test "SMD, causative": d = 0.5, se = 0.2, true = 0.1; RR = exp(0.91 d), lower exp(0.91 d - 1.78 se)
    d, se, true = 0.5, 0.2, 0.1
    rr, rr_true, rr_lo = np.exp(0.91 * d), np.exp(0.91 * true), np.exp(0.91 * d - 1.78 * se)
    lower = d - 1.78 / 0.91 * se
    point, ci = ev(d, lower, d + 1.78 / 0.91 * se, measure="MD", sd=1.0, true=true)
    assert point == pytest.approx((rr + np.sqrt(rr * (rr - rr_true))) / rr_true)
    assert ci == pytest.approx((rr_lo + np.sqrt(rr_lo * (rr_lo - rr_true))) / rr_true)
    # an unstandardised mean difference is divided by the outcome SD
    assert ev(5.0, measure="MD", sd=10.0)[0] == pytest.approx(threshold(np.exp(0.91 * 0.5)))


def test_true_value_beyond_the_estimate():
    # EValue tests "Point estimate < True value < Upper CI limit, causative" and "Upper CI limit < True value"
    point, ci = ev(1.3, 1.1, 1.4, true=1.35)
    assert point == pytest.approx(threshold(1.35 / 1.3)) and ci == 1.0
    point, ci = ev(1.3, 1.1, 1.4, true=1.5)
    assert ci == pytest.approx(threshold(1.5 / 1.4))


def test_invalid_input():
    with pytest.raises(ValueError, match="rare"):
        e_value(2.0, measure="OR")
    with pytest.raises(ValueError, match="inside"):
        e_value(1.2, 1.3, 1.4)
    with pytest.raises(ValueError, match="positive"):
        e_value(-0.1)
    with pytest.raises(ValueError, match="sd"):
        e_value(0.4, measure="MD")
    with pytest.raises(ValueError, match="measure"):
        e_value(2.0, measure="RD")


def test_result_contract():
    res = e_value(3.9, 1.8, 8.7)
    assert list(res.table()["measure"]) == ["e_value_point", "e_value_ci"]
    assert "VanderWeele" in res.reference and res.method
