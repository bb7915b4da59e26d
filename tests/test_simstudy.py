"""Tests of the simulation-study engine (hostats.simstudy) on numpy data-generating mechanisms with known truth.

Performance measures and their Monte-Carlo SEs follow Morris, White & Crowther (2019), Stat Med
38:2074-2102, Table 6; the hand computations below apply those formulas to small made-up numbers.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hostats import simstudy as ss

MU, SD, N = 1.0, 2.0, 40


def normal_sample(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(MU, SD, N)


def t_interval(x: np.ndarray, level: float = 0.95) -> ss.Estimate:
    """Exact t interval for a normal mean: coverage is exactly ``level`` in theory."""
    m, se = x.mean(), x.std(ddof=1) / math.sqrt(x.size)
    q = stats.t.ppf(0.5 + level / 2, x.size - 1)
    return ss.Estimate(m, se, m - q * se, m + q * se)


def t_interval_bug(x: np.ndarray) -> ss.Estimate:
    """Planted bug: the CI level flipped to 0.5."""
    return t_interval(x, 0.5)


def sometimes_fails(x: np.ndarray) -> ss.Estimate:
    if x[0] > MU + SD:  # P = 0.159 per replicate
        raise RuntimeError("diverged (planted failure)")
    return t_interval(x)


def two_estimands(x: np.ndarray) -> dict:
    e = t_interval(x)
    v = x.var(ddof=1)
    se_v = v * math.sqrt(2 / (x.size - 1))
    return {"mean": e, "variance": (v, se_v, v - 1.96 * se_v, v + 1.96 * se_v)}


def study(methods=None, **kw) -> ss.Study:
    return ss.Study("normal_mean", normal_sample, methods or {"t": t_interval}, {"mean": MU}, **kw)


def test_known_truth_coverage_bias_and_planted_bug():
    res = ss.run_study(study({"t": t_interval, "bug": t_interval_bug}), reps=400, seed=11)
    perf = res.performance().set_index(["method", "measure"])
    for m in ("t", "bug"):  # both unbiased: the bug is in the interval only
        b, mc = perf.loc[(m, "bias"), ["value", "mcse"]]
        assert abs(b) < 3 * mc
        assert perf.loc[(m, "n"), "value"] == 400 and perf.loc[(m, "n_failed"), "value"] == 0
    cov, cov_mc = perf.loc[("t", "coverage"), ["value", "mcse"]]
    assert abs(cov - 0.95) < 3 * math.sqrt(0.95 * 0.05 / 400)
    assert cov_mc == pytest.approx(math.sqrt(cov * (1 - cov) / 400))
    bug = perf.loc[("bug", "coverage"), "value"]
    assert 0.40 < bug < 0.60  # a 50% interval: far outside the 0.93-0.97 acceptance band
    # empirical SE near the true SD/sqrt(N), model SE consistent with it
    emp, emp_mc = perf.loc[("t", "empirical_se"), ["value", "mcse"]]
    assert abs(emp - SD / math.sqrt(N)) < 3 * emp_mc
    rel, rel_mc = perf.loc[("t", "relative_error_model_se"), ["value", "mcse"]]
    assert abs(rel) < 3 * rel_mc
    # H0: mean = 0 is false (mu = 1, SE 0.32): power of the t test, ~0.87 by the noncentral t
    power = 1 - stats.nct.cdf(stats.t.ppf(0.975, N - 1), N - 1, MU / (SD / math.sqrt(N))) \
        + stats.nct.cdf(-stats.t.ppf(0.975, N - 1), N - 1, MU / (SD / math.sqrt(N)))
    rej, rej_mc = perf.loc[("t", "rejection"), ["value", "mcse"]]
    assert abs(rej - power) < 3 * rej_mc
    assert res.performance().query("measure == 'rejection'")["kind"].eq("power").all()


def test_type_one_error_under_true_null():
    res = ss.run_study(study(null=MU), reps=300, seed=3)
    row = res.performance().query("method == 't' and measure == 'rejection'").iloc[0]
    assert row["kind"] == "type_i_error"
    assert abs(row["value"] - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 300)


def test_measures_match_hand_computation():
    """Four replicates with made-up numbers; every measure worked out by hand from Morris et al. Table 6."""
    est = np.array([1.0, 2.0, 3.0, 6.0])
    se = np.array([1.0, 1.0, 2.0, 2.0])
    lo = np.array([0.0, 1.5, 2.5, 1.0])
    hi = np.array([2.5, 3.0, 4.0, 7.0])
    frame = pd.DataFrame({"rep": range(4), "method": "m", "estimand": "e", "estimate": est, "std_error": se,
                          "ci_lower": lo, "ci_upper": hi, "truth": 2.0, "error": None})
    p = ss.performance(frame, null=0.5).set_index("measure")
    n = 4
    # mean 3, bias 1; sum of squared deviations 4 + 1 + 0 + 9 = 14
    assert p.loc["bias", "value"] == pytest.approx(1.0)
    assert p.loc["bias", "mcse"] == pytest.approx(math.sqrt(14 / (n * (n - 1))))
    assert p.loc["relative_bias", "value"] == pytest.approx(0.5)
    assert p.loc["relative_bias", "mcse"] == pytest.approx(math.sqrt(14 / 12) / 2)
    emp = math.sqrt(14 / 3)
    assert p.loc["empirical_se", "value"] == pytest.approx(emp)
    assert p.loc["empirical_se", "mcse"] == pytest.approx(emp / math.sqrt(2 * 3))
    # errors -1, 0, 1, 4: squared 1, 0, 1, 16; MSE 4.5
    assert p.loc["mse", "value"] == pytest.approx(4.5)
    assert p.loc["mse", "mcse"] == pytest.approx(math.sqrt((3.5**2 + 4.5**2 + 3.5**2 + 11.5**2) / 12))
    # SE^2: 1, 1, 4, 4: mean 2.5, ModSE sqrt(2.5), sample variance of SE^2 = 4 * 2.25 / 3 = 3
    mod = math.sqrt(2.5)
    assert p.loc["model_se", "value"] == pytest.approx(mod)
    assert p.loc["model_se", "mcse"] == pytest.approx(math.sqrt(3 / (4 * n * 2.5)))
    assert p.loc["relative_error_model_se", "value"] == pytest.approx(100 * (mod / emp - 1))
    assert p.loc["relative_error_model_se", "mcse"] == pytest.approx(
        100 * (mod / emp) * math.sqrt(3 / (4 * n * 2.5**2) + 1 / (2 * 3)))
    # truth 2 inside [0,2.5], [1.5,3], [1,7], not [2.5,4]: 3/4; mean 3 inside all but [0, 2.5]: 3/4
    assert p.loc["coverage", "value"] == pytest.approx(0.75)
    assert p.loc["coverage", "mcse"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert p.loc["bias_eliminated_coverage", "value"] == pytest.approx(0.75)
    # null 0.5 outside [1.5,3], [2.5,4], [1,7]: rejection 3/4
    assert p.loc["rejection", "value"] == pytest.approx(0.75)
    assert p.loc["rejection", "kind"] == "power"
    assert p.loc["n_failed", "value"] == 0


def test_worker_count_invariance_and_independent_seeds():
    s = study({"t": t_interval, "fails": sometimes_fails})
    one = ss.run_study(s, reps=24, seed=5, n_jobs=1).replicates
    two = ss.run_study(s, reps=24, seed=5, n_jobs=2).replicates
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    # replicate i is the i-th SeedSequence child, whatever the number of replicates
    first = ss.run_study(s, reps=5, seed=5).replicates
    pd.testing.assert_frame_equal(first, one[one["rep"] < 5].reset_index(drop=True), check_exact=True)
    assert one.query("method == 't'")["estimate"].nunique() == 24  # distinct draws per replicate
    other = ss.run_study(s, reps=5, seed=6).replicates
    assert not np.allclose(other.query("method == 't'")["estimate"], first.query("method == 't'")["estimate"])


def test_resume_after_interruption(tmp_path):
    s = study({"t": t_interval, "fails": sometimes_fails})
    full = ss.run_study(s, reps=20, seed=9, out=tmp_path / "full")
    part = tmp_path / "part"
    first = ss.run_study(s, reps=10, seed=9, out=part)
    assert first.computed == 10
    # an interruption in the middle of writing a line leaves a torn record: it is dropped, not misread
    with (part / ss.REPLICATES_FILE).open("a") as fh:
        fh.write('{"rep": 10, "rows": [["t", "mean", 0.9')
    resumed = ss.run_study(s, reps=20, seed=9, out=part)
    assert resumed.computed == 10
    pd.testing.assert_frame_equal(resumed.replicates, full.replicates, check_exact=True)
    lines = (part / ss.REPLICATES_FILE).read_text().splitlines()
    assert sorted(json.loads(x)["rep"] for x in lines) == list(range(20))
    again = ss.run_study(s, reps=20, seed=9, out=part)
    assert again.computed == 0
    # a different study (seed, truth, methods) in the same folder is refused, never mixed
    with pytest.raises(ValueError, match="different study"):
        ss.run_study(s, reps=20, seed=10, out=part)
    with pytest.raises(ValueError, match="truth"):
        ss.run_study(ss.Study("normal_mean", normal_sample, {"t": t_interval, "fails": sometimes_fails},
                              {"mean": 2.0}), reps=20, seed=9, out=part)


def test_failures_are_recorded_and_counted(tmp_path):
    s = study({"t": t_interval, "fails": sometimes_fails,
               "nan": lambda x: (float("nan"), 1.0, 0.0, 1.0)})
    res = ss.run_study(s, reps=60, seed=2)
    rep = res.replicates
    expected = int(sum(ss.replicate_rng(2, i).normal(MU, SD, N)[0] > MU + SD for i in range(60)))
    assert 0 < expected < 60
    fails = rep.query("method == 'fails'")
    assert fails["error"].notna().sum() == expected
    assert fails["error"].dropna().str.contains("RuntimeError: diverged").all()
    perf = res.performance().set_index(["method", "measure"])["value"]
    assert perf[("fails", "n_failed")] == expected and perf[("fails", "n")] == 60 - expected
    assert perf[("nan", "n_failed")] == 60 and perf[("nan", "n")] == 0
    assert rep.query("method == 'nan'")["error"].eq("non-finite estimate").all()
    assert len(res.failures) == expected + 60
    wide = ss.performance_wide(res.performance()).set_index("method")
    assert wide.loc["fails", "n_failed"] == expected
    # a method that failed in every replicate is reported (no measures), not a crash of the report
    shown = ss.performance_display(s, res.performance())["mean"].set_index("method")
    assert shown.loc["nan", ["n", "failed", "with CI"]].tolist() == [0, 60, 0]
    assert shown.loc["fails", ["n", "failed"]].tolist() == [60 - expected, expected]
    assert ss.write_outputs(res, tmp_path).exists()


def test_several_estimands_per_method_and_replicate_truth():
    def gen(rng):
        x = rng.normal(MU, SD, N)
        return ss.Replicate(x, {"new_obs": float(rng.normal(MU, SD))})

    def prediction(x):
        m, s = x.mean(), x.std(ddof=1)
        half = stats.t.ppf(0.975, x.size - 1) * s * math.sqrt(1 + 1 / x.size)
        return {"new_obs": (m, float("nan"), m - half, m + half)}

    s = ss.Study("pi", gen, {"both": two_estimands, "pi": prediction},
                 {"mean": MU, "variance": SD**2, "new_obs": None},
                 targets={"both": ["mean", "variance"], "pi": ["new_obs"]}, null=None)
    res = ss.run_study(s, reps=300, seed=4)
    perf = res.performance().set_index(["method", "estimand", "measure"])
    assert abs(perf.loc[("both", "variance", "bias"), "value"]) < 3 * perf.loc[("both", "variance", "bias"), "mcse"]
    # prediction interval of a new observation: exact coverage 0.95
    assert abs(perf.loc[("pi", "new_obs", "coverage"), "value"] - 0.95) < 3 * math.sqrt(0.95 * 0.05 / 300)
    assert "rejection" not in perf.index.get_level_values("measure")
    truths = res.replicates.query("estimand == 'new_obs'")["truth"]
    assert truths.nunique() == 300


def test_bad_study_definitions():
    with pytest.raises(ValueError, match="not in truth"):
        ss.Study("x", normal_sample, {"t": t_interval}, {"mean": 1.0}, targets={"t": ["median"]})
    with pytest.raises(ValueError, match="reps"):
        ss.run_study(study(), reps=0, seed=1)
    with pytest.raises(ValueError, match="no finite truth"):
        ss.run_study(ss.Study("x", normal_sample, {"t": t_interval}, {"mean": None}), reps=2, seed=1)
    # a method returning a tuple for several estimands is a recorded failure, not a crash
    s = ss.Study("x", normal_sample, {"t": t_interval}, {"mean": 1.0, "variance": 4.0})
    rep = ss.run_study(s, reps=2, seed=1).replicates
    assert rep["error"].str.contains("must return a mapping").all()


def test_dask_backend_gives_identical_results():
    distributed = pytest.importorskip("distributed")
    s = study({"t": t_interval, "fails": sometimes_fails})
    serial = ss.run_study(s, reps=12, seed=21).replicates
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        on_dask = ss.run_study(s, reps=12, seed=21, dask=client).replicates
    pd.testing.assert_frame_equal(serial, on_dask, check_exact=True)


def warns(x: np.ndarray) -> ss.Estimate:
    import warnings

    warnings.warn("weights look extreme", UserWarning, stacklevel=1)
    warnings.warn("second", UserWarning, stacklevel=1)
    return t_interval(x)


def test_method_warnings_are_recorded_not_lost():
    rep = ss.run_study(study({"t": t_interval, "warns": warns}), reps=3, seed=1).replicates
    w = rep.query("method == 'warns'")["warning"]
    assert w.eq("UserWarning: weights look extreme (+1 more)").all()
    assert rep.query("method == 't'")["warning"].isna().all()
    assert rep.query("method == 'warns'")["error"].isna().all()  # a warning is not a failure
