"""Smoke runs of the real simulation studies (analyses/simulation_study/study.py) on synthetic cohorts,
with bounds that a planted bug breaks, and the ``hostats simulate`` command end to end.

Truth comes from synthetic's potential outcomes (truth["population"]); the bounds are loose enough for
30-40 replicates (fixed seeds, so deterministic) and tight enough that a CI level flipped to 0.5, or a
method that ignores confounding or competing death, fails them.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import hostats
from hostats import simstudy as ss
from hostats.analysis import discover, is_simulation_spec
from hostats.cli import app

ROOT = Path(__file__).resolve().parent.parent
STUDY = ss.load_module(ROOT / "analyses" / "simulation_study" / "study.py")


def _perf(result) -> pd.DataFrame:
    return result.performance().set_index(["method", "estimand", "measure"])


def aalen_johansen_level_bug(d: pd.DataFrame) -> ss.Estimate:
    """Planted bug: Aalen-Johansen with its CI level flipped to 0.5."""
    a = hostats.cumulative_incidence(d, "time_days", "status", cause=1, level=0.5).at([365]).iloc[0]
    return ss.Estimate(float(a["estimate"]), float(a["std_error"]), float(a["ci_lower"]), float(a["ci_upper"]))


def test_competing_death_study_and_planted_bug():
    base = STUDY.build("neurogenic", 1500)
    study = ss.Study(base.name, base.generate, {**base.methods, "aj_level_bug": aalen_johansen_level_bug},
                     base.truth, null=None, config=base.config)
    p = _perf(ss.run_study(study, reps=40, seed=7))
    key = "cif_365"
    aj_bias, aj_mc = p.loc[("aalen_johansen", key, "bias"), ["value", "mcse"]]
    assert abs(aj_bias) < 3 * aj_mc + 0.003
    assert p.loc[("aalen_johansen", key, "coverage"), "value"] >= 0.85
    km_bias, km_mc = p.loc[("one_minus_km", key, "bias"), ["value", "mcse"]]
    assert km_bias > 5 * km_mc and km_bias > 0.01  # 1 - KM overestimates with 30% mortality
    assert p.loc[("one_minus_km", key, "coverage"), "value"] < 0.8
    assert p.loc[("aj_level_bug", key, "coverage"), "value"] <= 0.75  # the flipped level is caught
    assert p.loc[("aalen_johansen", key, "n_failed"), "value"] == 0


def test_prophylaxis_study_adjusts_for_confounding():
    study = STUDY.build("tha_prophylaxis", 2000)
    truth = study.truth
    assert truth["log_rr_rt"] == pytest.approx(math.log(0.4453), abs=0.01)  # RATES.md R5 via the generator
    assert truth["log_rr_bis"] == 0 and truth["rd_bis"] == 0
    res = ss.run_study(study, reps=24, seed=3, n_jobs=1)
    p = _perf(res)
    for m in ("iptw", "regression"):
        for e in ("log_rr_rt", "rd_rt"):
            b, mc = p.loc[(m, e, "bias"), ["value", "mcse"]]
            assert abs(b) < 3 * mc + 0.01, (m, e, b, mc)
            assert p.loc[(m, e, "coverage"), "value"] >= 0.8
    b, mc = p.loc[("aipw", "rd_rt", "bias"), ["value", "mcse"]]
    assert abs(b) < 3 * mc + 0.005
    # the crude comparison is confounded by indication: radiotherapy looks less protective than it is
    cb, cmc = p.loc[("crude", "log_rr_rt", "bias"), ["value", "mcse"]]
    assert cb > 0.15 and cb > 4 * cmc
    # no method fails silently: every replicate is accounted for
    assert (res.replicates.groupby(["method", "estimand"]).size() == 24).all()
    assert p.xs("n_failed", level="measure")["value"].eq(0).all()


def test_reproduce_skips_the_simulation_folder(tmp_path):
    spec = ROOT / "analyses" / "simulation_study" / "analysis.toml"
    assert is_simulation_spec(spec)
    assert not is_simulation_spec(ROOT / "analyses" / "prophylaxis" / "analysis.toml")
    assert spec not in discover(ROOT / "analyses")
    root = tmp_path / "analyses" / "simulation_study"
    root.mkdir(parents=True)
    shutil.copy(spec, root / "analysis.toml")
    r = CliRunner().invoke(app, ["reproduce", "--analyses", str(tmp_path / "analyses"), "--out",
                                 str(tmp_path / "out"), "--quiet"])
    assert r.exit_code == 1 and "no analyses found" in r.output  # not run (and failed) as an analysis
    assert not list(tmp_path.rglob("*.error.txt"))


def test_run_on_the_simulation_folder_points_to_simulate(tmp_path):
    r = CliRunner().invoke(app, ["run", str(ROOT / "analyses" / "simulation_study"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "hostats simulate SCENARIO" in r.output and "tha_prophylaxis" in r.output
    assert "unknown table" not in r.output and not (tmp_path / "o").exists()


def test_simulate_command_writes_report_and_resumes(tmp_path):
    out = tmp_path / "sim"
    runner = CliRunner()
    r = runner.invoke(app, ["simulate", "neurogenic", "--reps", "6", "--n", "300", "--seed", "5", "--out", str(out),
                            "--quiet"])
    assert r.exit_code == 0, r.output
    for f in ("report.html", "results.parquet", "estimates.csv", "estimates.json", "manifest.json", "replicates.jsonl",
              "figures/estimates.png", "figures/coverage.svg"):
        assert (out / f).exists(), f
    res = pd.read_parquet(out / "results.parquet")
    assert len(res) == 6 * 3 and set(res["method"]) == {"one_minus_km", "aalen_johansen",
                                                        "aalen_johansen_censored_at_last_image"}
    html = (out / "report.html").read_text()
    for text in ('id="estimates"', 'id="figures"', 'id="methods"', "Morris", "coverage", "Monte-Carlo"):
        assert text in html
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["reps"] == 6 and manifest["computed"] == 6
    # resume: two more replicates computed, the first six read back unchanged
    r = runner.invoke(app, ["simulate", "neurogenic", "--reps", "8", "--n", "300", "--seed", "5", "--out", str(out),
                            "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "manifest.json").read_text())["computed"] == 2
    res8 = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(res8[res8["rep"] < 6].reset_index(drop=True), res, check_exact=True)
    # a different n in the same folder is refused with a clear message, not mixed in
    r = runner.invoke(app, ["simulate", "neurogenic", "--reps", "8", "--n", "400", "--seed", "5", "--out", str(out)])
    assert r.exit_code == 1 and "different study" in r.output
    r = runner.invoke(app, ["simulate", "no_such_study", "--reps", "2", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "unknown simulation study" in r.output
