"""meta_effects against published reference values.

Data: the 13 BCG vaccine trials (Colditz et al. 1994), R metafor's ``dat.bcg`` (tests/data/dat_bcg.csv, see
tests/data/README.md), log risk ratios as metafor's ``escalc(measure="RR", ...)``.

References (the numbers are re-computed with metafor in tests/reference/meta.R -> meta.json, and agree with
the cited files to the tolerances of the tests; metafor's own tolerances are ~1e-4):
- [metan] metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r (metafor results checked against
  Stata's metan): FE and DL estimates, CIs, z, Q, tau2, I2.
- [confint] metafor tests/testthat/test_misc_confint.r: Q-profile CI of tau2, I2 and H2 for the DL model.
- [influence] metafor tests/testthat/test_misc_influence.r: REML tau2 and Q (full precision), leave1out()
  for trial 1, weight of trial 1.
- [rma_uni] metafor tests/testthat/test_misc_rma_uni.r: method="DLIT" and "SJIT" give tau2 = 0.3181; both
  iterations converge to the Paule-Mandel estimator (DerSimonian & Kacker 2007).
- [issue 5] the project issue (issues show 5), values from metafor's rma(yi, vi) on dat.bcg: REML -0.7145
  (SE 0.1798), REML + Knapp-Hartung (test="knha") CI -1.1084 to -0.3206.
- [statsmodels] statsmodels/stats/tests/results/results_meta.py: Kacker (2004) example fitted with R metafor
  (rma(y, v, method="PM"/"DL", test="knha"), control tol 1e-9), full precision.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hostats.errors import EstimationError
from hostats.stats.meta import meta_effects
from tests.paths import DATA, REFERENCE

DATA = DATA / "dat_bcg.csv"
R = json.loads((REFERENCE / "meta.json").read_text())
BCG, KACKER = R["bcg"], R["kacker"]


@pytest.fixture(scope="module")
def bcg() -> tuple[pd.Series, pd.Series, pd.Series]:
    d = pd.read_csv(DATA)
    n1, n2 = d.tpos + d.tneg, d.cpos + d.cneg
    yi = np.log((d.tpos / n1) / (d.cpos / n2))
    vi = 1 / d.tpos - 1 / n1 + 1 / d.cpos - 1 / n2
    return yi, vi, d.author_year


def test_fixed_effect_matches_metafor_and_stata(bcg):
    yi, vi, _ = bcg
    r = meta_effects(yi, vi, method="FE")
    # [metan]
    ref = BCG["fe"]
    assert r.estimate == pytest.approx(ref["estimate"], abs=5e-5)
    assert r.ci_lower == pytest.approx(ref["ci_lower"], abs=5e-5)
    assert r.ci_upper == pytest.approx(ref["ci_upper"], abs=5e-5)
    assert r.estimate / r.std_error == pytest.approx(ref["z"], abs=5e-4)
    assert r.q == pytest.approx(ref["q"], abs=5e-4)
    assert np.exp([r.estimate, r.ci_lower, r.ci_upper]) == pytest.approx(
        np.exp([ref["estimate"], ref["ci_lower"], ref["ci_upper"]]), abs=5e-5)
    assert r.tau2 == 0.0
    # FE prediction interval is the CI (tau2 = 0)
    assert (r.pred_lower, r.pred_upper) == pytest.approx((r.ci_lower, r.ci_upper))


def test_dersimonian_laird_matches_metafor_and_stata(bcg):
    yi, vi, _ = bcg
    r = meta_effects(yi, vi, method="DL")
    # [metan]
    ref = BCG["dl"]
    assert r.estimate == pytest.approx(ref["estimate"], abs=5e-5)
    assert r.ci_lower == pytest.approx(ref["ci_lower"], abs=5e-5)
    assert r.ci_upper == pytest.approx(ref["ci_upper"], abs=5e-5)
    assert r.estimate / r.std_error == pytest.approx(ref["z"], abs=5e-4)
    assert r.tau2 == pytest.approx(ref["tau2"], abs=5e-5)
    assert r.i2 == pytest.approx(ref["i2"], abs=5e-4)
    assert np.exp([r.estimate, r.ci_lower, r.ci_upper]) == pytest.approx(
        np.exp([ref["estimate"], ref["ci_lower"], ref["ci_upper"]]), abs=5e-5)


def test_q_profile_intervals_match_metafor_confint(bcg):
    yi, vi, _ = bcg
    r = meta_effects(yi, vi, method="DL")
    # [confint]: tau2 (0.3088, 0.1197, 1.1115), I2 (92.1173, 81.9177, 97.6781), H2 (12.6861, 5.5303, 43.0680).
    # metafor finds the bounds with uniroot(tol ~1.2e-4), so its I2/H2 bounds are good to ~1e-3 only.
    ci = BCG["dl_confint"]  # (estimate, lower, upper)
    assert r.tau2_ci == pytest.approx(tuple(ci["tau2"][1:]), abs=5e-5)
    assert r.i2_ci == pytest.approx(tuple(ci["i2"][1:]), abs=5e-3)
    assert r.h2_ci == pytest.approx(tuple(ci["h2"][1:]), abs=2e-3)
    assert r.h2 == pytest.approx(ci["h2"][0], abs=5e-4)
    # the Q-profile CI does not depend on the tau2 estimator
    assert meta_effects(yi, vi, method="REML").tau2_ci == pytest.approx(r.tau2_ci)


def test_reml_matches_metafor(bcg):
    yi, vi, _ = bcg
    r = meta_effects(yi, vi)  # REML is the default, as in metafor
    ref = BCG["reml"]
    assert r.estimate == pytest.approx(ref["estimate"], abs=5e-5)      # [issue 5]
    assert r.std_error == pytest.approx(ref["std_error"], abs=5e-5)    # [issue 5]
    assert r.tau2 == pytest.approx(ref["tau2"], abs=1e-7)  # [influence]
    assert r.q == pytest.approx(ref["q"], rel=1e-9)   # [influence]
    assert r.q_pvalue < 1e-20
    assert r.k == 13


def test_reml_knapp_hartung_matches_metafor(bcg):
    yi, vi, _ = bcg
    r = meta_effects(yi, vi, method="REML", knapp_hartung=True)
    ref = BCG["reml_knha"]
    assert (r.ci_lower, r.ci_upper) == pytest.approx((ref["ci_lower"], ref["ci_upper"]), abs=5e-5)  # [issue 5]
    assert r.estimate == pytest.approx(ref["estimate"], abs=5e-5)
    assert "Knapp-Hartung" in r.method


def test_paule_mandel_matches_iterated_dl_of_metafor(bcg):
    yi, vi, _ = bcg
    r = meta_effects(yi, vi, method="PM")
    assert r.tau2 == pytest.approx(BCG["pm"]["tau2"], abs=5e-5)  # [rma_uni]; metafor method="PM"
    # defining property: the generalised Q statistic equals k - 1 at the PM estimate
    w = 1 / (vi + r.tau2)
    assert np.sum(w * (yi - r.estimate) ** 2) == pytest.approx(12.0, abs=1e-8)


def test_leave_one_out_matches_metafor_leave1out(bcg):
    yi, vi, _ = bcg
    loo = meta_effects(yi, vi).leave_one_out()
    assert len(loo) == 13
    first = loo.iloc[0]
    # [influence]: leave1out(rma(yi, vi, data=dat))[1]
    expected = {k: v for k, v in BCG["reml_leave1out_first"].items() if k != "q_pvalue"}
    for key, value in expected.items():
        assert first[key] == pytest.approx(value, rel=2e-6), key
    assert first["q_pvalue"] == pytest.approx(BCG["reml_leave1out_first"]["q_pvalue"], rel=1e-5)


def test_forest_data_weights_and_pooled_row(bcg):
    yi, vi, labels = bcg
    r = meta_effects(yi, vi, labels=labels)
    fd = r.forest_data()
    studies = fd[fd.row_type == "study"]
    assert list(studies.label) == list(labels)
    assert studies.weight_percent.sum() == pytest.approx(100.0)
    assert studies.weight_percent.iloc[0] == pytest.approx(BCG["reml_weight_percent_first"], rel=1e-6)  # [influence]
    assert studies.ci_lower.iloc[0] == pytest.approx(yi.iloc[0] - 1.959964 * np.sqrt(vi.iloc[0]), abs=1e-6)
    pooled = fd[fd.row_type == "pooled"].iloc[0]
    assert pooled.estimate == r.estimate
    assert (pooled.pred_lower, pooled.pred_upper) == (r.pred_lower, r.pred_upper)


def test_prediction_interval_formula(bcg):
    """metafor's predict(): mu +/- z sqrt(SE^2 + tau2); t_{k-1} under Knapp-Hartung (W. Viechtbauer,
    R-sig-meta-analysis, 2018-06-05). Checked with the published REML mu, SE and tau2 (-0.7145, 0.1798,
    0.3132), i.e. exp: 0.15 to 1.55."""
    yi, vi, _ = bcg
    r = meta_effects(yi, vi)
    mu, se, tau2 = (BCG["reml"][k] for k in ("estimate", "std_error", "tau2"))
    half = 1.959964 * np.sqrt(se**2 + tau2)
    assert (r.pred_lower, r.pred_upper) == pytest.approx((mu - half, mu + half), abs=2e-4)
    assert np.exp([r.pred_lower, r.pred_upper]) == pytest.approx([0.15, 1.55], abs=5e-3)
    kh = meta_effects(yi, vi, knapp_hartung=True)
    t12 = 2.178813  # qt(0.975, 12)
    assert kh.pred_upper - kh.estimate == pytest.approx(t12 * np.sqrt(kh.std_error**2 + kh.tau2), rel=1e-6)


def test_kacker_example_paule_mandel_and_dl_knapp_hartung_full_precision():
    y = np.array(KACKER["y"])
    v = np.array(KACKER["v"])
    pm, ref = meta_effects(y, v, method="PM"), KACKER["pm"]  # [statsmodels] exk1_metafor
    assert pm.tau2 == pytest.approx(ref["tau2"], rel=1e-8)
    assert pm.estimate == pytest.approx(ref["estimate"], rel=1e-10)
    assert pm.std_error == pytest.approx(ref["std_error"], rel=1e-8)
    assert (pm.ci_lower, pm.ci_upper) == pytest.approx((ref["ci_lower"], ref["ci_upper"]), rel=1e-9)
    assert pm.q == pytest.approx(ref["q"], rel=1e-9)
    assert pm.q_pvalue == pytest.approx(ref["q_pvalue"], rel=1e-8)
    assert pm.i2 == pytest.approx(ref["i2"], rel=1e-8)
    assert pm.h2 == pytest.approx(ref["h2"], rel=1e-8)

    dl, ref = meta_effects(y, v, method="DL"), KACKER["dl"]  # exk1_dl
    assert dl.tau2 == pytest.approx(ref["tau2"], rel=1e-10)
    assert dl.estimate == pytest.approx(ref["estimate"], rel=1e-12)
    assert dl.std_error == pytest.approx(ref["std_error"], rel=1e-10)
    assert dl.i2 == pytest.approx(ref["i2"], rel=1e-10)
    assert dl.h2 == pytest.approx(ref["h2"], rel=1e-10)

    kh, ref = meta_effects(y, v, method="DL", knapp_hartung=True), KACKER["dl_knha"]  # exk1_dl_hksj
    assert kh.std_error == pytest.approx(ref["std_error"], rel=1e-10)
    assert (kh.ci_lower, kh.ci_upper) == pytest.approx((ref["ci_lower"], ref["ci_upper"]), rel=1e-12)
    assert kh.p_value == pytest.approx(ref["p_value"], rel=1e-6)

    fe, ref = meta_effects(y, v, method="FE"), KACKER["fe"]  # exk1_fe
    assert fe.estimate == pytest.approx(ref["estimate"], rel=1e-12)
    assert fe.std_error == pytest.approx(ref["std_error"], rel=1e-10)
    assert fe.i2 == pytest.approx(ref["i2"], rel=1e-10)


def test_homogeneous_studies_give_tau2_zero_and_fe_answer():
    # closed form: identical estimates -> Q = 0, every tau2 estimator 0, RE = FE = the common value
    for method in ("DL", "REML", "PM"):
        r = meta_effects([0.3, 0.3, 0.3], [0.1, 0.2, 0.05], method=method)
        assert r.tau2 == 0.0 and r.q == pytest.approx(0.0) and r.i2 == 0.0
        assert r.estimate == pytest.approx(0.3)
        assert r.std_error == pytest.approx(np.sqrt(1 / (10 + 5 + 20)))
        assert r.tau2_ci == (0.0, 0.0)


def test_table_layout(bcg):
    yi, vi, _ = bcg
    t = meta_effects(yi, vi).table()
    assert list(t.columns[:4]) == ["measure", "estimate", "ci_lower", "ci_upper"]
    assert list(t.measure) == ["pooled", "prediction_interval", "tau2", "i2_percent", "h2", "q"]
    assert (t.ci_level == 0.95).all()
    assert t.loc[t.measure == "q", "p_value"].iloc[0] < 1e-20


def test_level_changes_interval_width(bcg):
    yi, vi, _ = bcg
    r90, r95 = meta_effects(yi, vi, level=0.90), meta_effects(yi, vi)
    assert r90.ci_upper - r90.ci_lower == pytest.approx((r95.ci_upper - r95.ci_lower) * 1.644854 / 1.959964)


@pytest.mark.parametrize("yi, vi, message", [
    ([0.1], [0.1], "at least 2 studies"),
    ([0.1, 0.2], [0.1, 0.0], "vi .* must be > 0"),
    ([0.1, 0.2], [0.1, -1.0], "vi .* must be > 0"),
    ([0.1, np.nan], [0.1, 0.1], "missing or not finite for study 2"),
    ([0.1, 0.2], [0.1, np.inf], "missing or not finite"),
    ([0.1, 0.2, 0.3], [0.1, 0.1], "yi has 3 values but vi has 2"),
    (["a", "b"], [0.1, 0.1], "must be numbers"),
])
def test_bad_input_gives_clear_errors(yi, vi, message):
    with pytest.raises(ValueError, match=message):
        meta_effects(yi, vi)


def test_bad_method_and_level():
    with pytest.raises(ValueError, match="unknown meta-analysis method"):
        meta_effects([0.1, 0.2], [0.1, 0.1], method="HS")
    with pytest.raises(ValueError, match="level"):
        meta_effects([0.1, 0.2], [0.1, 0.1], level=95)


def test_leave_one_out_needs_three_studies():
    with pytest.raises(EstimationError, match="at least 3"):
        meta_effects([0.1, 0.5], [0.1, 0.1]).leave_one_out()


def test_labels_from_series_index_and_knapp_hartung_fe_warning():
    yi = pd.Series([0.1, 0.5, 0.2], index=["A", "B", "C"])
    r = meta_effects(yi, [0.1, 0.1, 0.2], method="FE", knapp_hartung=True)
    assert r.labels == ("A", "B", "C")
    assert any("Knapp-Hartung" in w for w in r.warnings)
    with pytest.raises(ValueError, match="labels has 2 entries"):
        meta_effects(yi, [0.1, 0.1, 0.2], labels=["x", "y"])


def _reml_loglik_grid(tau2: np.ndarray, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    w = 1 / (v[None, :] + tau2[:, None])
    mu = (w * y).sum(1) / w.sum(1)
    return -0.5 * (np.log(1 / w).sum(1) + np.log(w.sum(1)) + (w * (y - mu[:, None]) ** 2).sum(1))


def test_reml_is_the_global_maximum_of_the_restricted_likelihood():
    """Property check on 81 random data sets (seeded), against a dense grid: draw 80 has a restricted
    likelihood that falls from tau2 = 0 and then rises to its maximum at 0.326, where scoring started at
    0 would stop."""
    rng = np.random.default_rng(0)
    for _ in range(81):
        k = rng.integers(2, 30)
        v = rng.uniform(0.001, 2, k) ** rng.uniform(0.5, 3)
        y = rng.normal(0, np.sqrt(v + rng.choice([0, 0.1, 1, 10])))
        r = meta_effects(y, v)
        grid = np.concatenate([[0.0], np.geomspace(1e-8, 100 * (np.var(y) + v.max()), 5000)])
        best = _reml_loglik_grid(grid, y, v).max()
        assert _reml_loglik_grid(np.array([r.tau2]), y, v)[0] >= best - 1e-7
        assert np.isfinite([r.ci_lower, r.ci_upper, r.pred_lower, r.pred_upper, *r.tau2_ci]).all()
    assert r.tau2 == pytest.approx(0.3258, abs=1e-3)
