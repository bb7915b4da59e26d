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

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hostats
import synthetic
from hostats import simstudy as ss
from hostats.analysis import discover, is_simulation_spec
from hostats.cli import app
from tests.paths import ROOT

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
    assert truth["log_rr_rt"] == pytest.approx(math.log(0.4453), abs=0.01)  # docs/rates.md R5 via the generator
    assert truth["log_rr_bis"] == 0 and truth["rd_bis"] == 0
    assert truth["risk_bis"] == truth["risk_none"] and truth["rd_rt"] == pytest.approx(
        truth["risk_rt"] - truth["risk_none"], abs=1e-12)
    res = ss.run_study(study, reps=24, seed=3, n_jobs=1)
    p = _perf(res)
    # no loss to follow-up: the complete cases are everyone, and the adjusted methods are unbiased
    for m in ("cc_iptw", "cc_regression", "iptw_aj"):
        for e in ("log_rr_rt", "rd_rt", "risk_none", "risk_rt"):
            b, mc = p.loc[(m, e, "bias"), ["value", "mcse"]]
            assert abs(b) < 3 * mc + 0.01, (m, e, b, mc)
            assert p.loc[(m, e, "coverage"), "value"] >= 0.8
    b, mc = p.loc[("cc_aipw", "rd_rt", "bias"), ["value", "mcse"]]
    assert abs(b) < 3 * mc + 0.005
    # the crude comparison is confounded by indication: radiotherapy looks less protective than it is
    cb, cmc = p.loc[("cc_crude", "log_rr_rt", "bias"), ["value", "mcse"]]
    assert cb > 0.15 and cb > 4 * cmc
    # no method fails silently: every replicate is accounted for
    assert (res.replicates.groupby(["method", "estimand"]).size() == 24).all()
    failed = p.xs("n_failed", level="measure")["value"]
    cox = failed.index.get_level_values("method").isin(["gformula", "aiptw"])
    assert failed[~cox].eq(0).all() and failed[cox].le(3).all()  # hostats.ate's Cox model of death: rare arms


PROPHYLAXIS_ESTIMANDS = {"risk_none", "risk_rt", "risk_bis", "rd_rt", "log_rr_rt", "rd_bis", "log_rr_bis"}


def test_loss_to_followup_studies_share_estimands_truth_and_methods():
    assert STUDY.LOSS_PER_YEAR == {"tha_prophylaxis": 0.0, "tha_prophylaxis_loss10": 0.1,
                                   "tha_prophylaxis_loss30": 0.3}
    studies = {name: STUDY.build(name, 2000) for name in STUDY.LOSS_PER_YEAR}
    assert set(studies) <= set(STUDY.names())
    truth0 = studies["tha_prophylaxis"].truth
    assert set(truth0) == PROPHYLAXIS_ESTIMANDS
    pop = synthetic.generate("tha_prophylaxis", 10, 0, overrides={"loss_to_followup_per_year": 0.0},
                             fault_rate=0.0).truth["population"]
    assert truth0["risk_rt"] == pop["risk"]["radiotherapy"] and truth0["risk_none"] == pop["risk"]["none"]
    for name, study in studies.items():
        assert study.truth == truth0, name  # the same estimand at every loss level: risk with no loss
        assert study.config["overrides"] == {"loss_to_followup_per_year": STUDY.LOSS_PER_YEAR[name]}
        res = ss.run_study(study, reps=2, seed=11)
        got = res.replicates.groupby("method")["estimand"].agg(set).to_dict()
        assert got["cc_aipw"] == {"rd_rt", "rd_bis"}, name
        for m in ("cc_crude", "cc_regression", "cc_iptw", "iptw_aj", *STUDY.ATE_METHODS):
            assert got[m] == PROPHYLAXIS_ESTIMANDS, (name, m)
        assert set(got) == set(study.methods)
        # only the models of death can fail (an arm with no or few deaths: infinite Cox coefficient)
        f = res.failures
        assert set(f["method"]) <= {"gformula", "aiptw"} and f["error"].str.contains("Cox").all(), f
        assert all(study.method_labels[m].startswith("complete case") for m in study.methods if m.startswith("cc_"))
    # with loss the complete cases are fewer than the patients; without it they are everyone
    d0 = studies["tha_prophylaxis"].generate(np.random.default_rng(1))
    d30 = studies["tha_prophylaxis_loss30"].generate(np.random.default_rng(1))
    assert d0.complete_case.shape[0] == 2000
    assert 0.7 * 2000 < d30.complete_case.shape[0] < 0.85 * 2000


def test_complete_case_is_biased_at_30_percent_loss_and_censoring_aware_methods_are_not():
    res = ss.run_study(STUDY.build("tha_prophylaxis_loss30", 2000), reps=24, seed=5)
    p = _perf(res)
    for e in ("risk_none", "risk_bis"):  # complete-case risk ~ 1.15 x the truth (patients lost HO-free dropped)
        b, mc = p.loc[("cc_iptw", e, "bias"), ["value", "mcse"]]
        assert b > 0.025 and b > 4 * mc, (e, b, mc)
        for m in ("iptw_aj", "ipcw", "aiptw"):  # censoring-aware: unbiased
            b, mc = p.loc[(m, e, "bias"), ["value", "mcse"]]
            assert abs(b) < 3 * mc + 0.005, (m, e, b, mc)
            assert p.loc[(m, e, "coverage"), "value"] >= 0.85
    assert p.loc[("cc_iptw", "risk_none", "coverage"), "value"] < 0.7
    for m in ("iptw_aj", "ipcw", "aiptw"):
        b, mc = p.loc[(m, "rd_rt", "bias"), ["value", "mcse"]]
        assert abs(b) < 3 * mc + 0.005, (m, b, mc)


def test_hostats_ate_methods_are_read_from_its_table(monkeypatch):
    """The wiring of hostats.ate (method, contrast, measure rows) checked against a stand-in table built from
    hostats.iptw's weighted Aalen-Johansen rows: each method reads its own rows, ratios on the log scale."""
    calls = []

    class FakeATE:
        def __init__(self, table):
            self._table = table

        def table(self):
            return self._table

    def fake_ate(data, treatment, confounders, time, status, horizon, *, cause=1, reference=None,
                 methods=("gformula", "iptw", "ipcw", "aipw"), censoring=None, level=0.95):
        calls.append((treatment, tuple(confounders), time, status, horizon, cause, reference, tuple(methods)))
        t = hostats.iptw(data, treatment, confounders, None, reference=reference, time=time, status=status,
                         horizon=horizon).table()
        t = t[t["measure"].isin(["risk_treated", "risk_control", "risk_difference", "risk_ratio"])]
        # each method its own estimates; a method's rows that were not asked for must be ignored
        shift = {k: i for i, k in enumerate(STUDY.ATE_METHODS.values())}
        return FakeATE(pd.concat([t.assign(method=m, estimate=t["estimate"] * (1 + 0.01 * shift.get(m, 9)))
                                  for m in (*methods, "not_asked")], ignore_index=True))

    monkeypatch.setattr(hostats, "ate", fake_ate, raising=False)
    study = STUDY.build("tha_prophylaxis_loss10", 600)
    assert set(STUDY.ATE_METHODS) <= set(study.methods)
    d = study.generate(np.random.default_rng(2))
    aj = study.methods["iptw_aj"](d)
    keys = tuple(STUDY.ATE_METHODS.values())
    for i, key in enumerate(keys):
        name = next(n for n, k in STUDY.ATE_METHODS.items() if k == key)
        got = study.methods[name](d)
        assert set(got) == PROPHYLAXIS_ESTIMANDS
        assert got["risk_rt"].estimate == pytest.approx(aj["risk_rt"].estimate * (1 + 0.01 * i))
        assert got["rd_rt"].std_error == pytest.approx(aj["rd_rt"].std_error)
        assert got["log_rr_rt"].ci_lower == pytest.approx(aj["log_rr_rt"].ci_lower)  # log of the ratio's limit
    assert calls == [("prophylaxis", tuple(STUDY.CONFOUNDERS), "time_days", "status", 365, 1, "none", (k,))
                     for k in keys]  # one call per method: a model one method needs fails that method only


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


def test_simulate_command_runs_a_loss_level(tmp_path):
    name = "tha_prophylaxis_loss30"  # every level runs through build(name), exercised above
    out = tmp_path / name
    r = CliRunner().invoke(app, ["simulate", name, "--reps", "2", "--n", "600", "--seed", "3", "--out", str(out),
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    res = pd.read_parquet(out / "results.parquet")
    assert {"cc_iptw", "iptw_aj"} <= set(res["method"]) and set(res["estimand"]) == PROPHYLAXIS_ESTIMANDS
    assert json.loads((out / "study.json").read_text())["config"]["overrides"] == {
        "loss_to_followup_per_year": STUDY.LOSS_PER_YEAR[name]}
    assert "complete case" in (out / "report.html").read_text()
