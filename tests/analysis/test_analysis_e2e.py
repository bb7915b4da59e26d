"""Every bundled analysis end to end on a small synthetic draw, through ``hostats reproduce``: the index
page links each report, each report has every section, estimates.json holds the expected rows (with the
true values beside them), and the main estimates land near the truth the generator used."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hostats.analysis import load_spec
from hostats.cli import app
from hostats.report.html import SECTION_IDS
from tests.paths import ROOT

NAMES = ("tha_incidence", "prophylaxis", "resection_recurrence", "neurogenic")
SMALL_N = {"tha_incidence": 1200, "prophylaxis": 2000, "resection_recurrence": 2000, "neurogenic": 2000}

# (section, measure, group or term) rows each analysis must report; True = a true value must be beside it
EXPECTED = {
    "tha_incidence": [("incidence", "cumulative_incidence", "tha", True),
                      ("incidence", "cumulative_incidence", "long_bone_fracture", True),
                      ("incidence", "gray_test", "between groups", False),
                      ("rate", "rate", "tha", False),
                      ("brooker", "share", "I", True), ("brooker", "share", "IV", True),
                      ("symptomatic", "proportion", "tha", True),
                      ("prior_ho", "cumulative_incidence", "prior HO", True),
                      ("risk_factors", "odds_ratio", "prior_ho[T.True]", False),
                      ("risk_factors", "odds_ratio", "C(sex)[T.male]", True)],
    "prophylaxis": [("effect", "risk_ratio", "radiotherapy vs none", True),
                    ("effect", "risk_difference", "nsaid vs none", True),
                    ("effect", "risk_control", "bisphosphonate vs none", True),
                    ("effect", "risk_ratio_regression", "radiotherapy vs none", True),
                    ("effect", "risk_difference_aipw", "nsaid vs none", True),
                    ("effect", "risk_treated_ipcw", "radiotherapy vs none", True),
                    ("effect", "hazard_ratio", "radiotherapy vs none", False),
                    ("effect", "crude_risk_ratio", "radiotherapy vs none", True),
                    ("effect_complete_case", "risk_ratio", "radiotherapy vs none", True),
                    ("rt_dose_complete_case", "odds_ratio", "rt_dose_gy", False),
                    ("curves", "cumulative_incidence", "radiotherapy", False),
                    ("rt_timing", "cumulative_incidence", "within 48 h", False),
                    ("rt_dose", "odds_ratio", "rt_dose_gy", False),
                    ("safety", "risk_ratio", "radiotherapy vs none", True)],
    "resection_recurrence": [("pooled", "pooled_risk", "pooled", True),
                             ("pooled_complete_case", "pooled_proportion", "pooled", True),
                             ("pooled", "prediction_interval", "new site", True),
                             ("pooled", "tau2", "between sites", True),
                             ("site_incidence", "risk", None, True),
                             ("site_incidence_complete_case", "proportion", None, True),
                             ("cumulative", "cumulative_incidence", "none", False),
                             ("adjuvant", "risk_ratio", "etidronate vs none", True)],
    "neurogenic": [("incidence", "cumulative_incidence", "sci", True),
                   ("incidence", "cumulative_incidence", "anoxia", True),
                   ("joints", "share", "hip", True),
                   ("risk_factors", "odds_ratio", "gram_negative_infection[T.True]", True),
                   ("risk_factors", "odds_ratio", "early_intensive_therapy[T.True]", True),
                   ("risk_factors_complete_case", "odds_ratio", "gram_negative_infection[T.True]", True),
                   ("onset", "median_onset_weibull", None, False),
                   ("diagnosis", "days_first_positive_bone_scan_to_xray", "mean", False),
                   ("diagnosis", "alp_rise_at_detection", "mean", False)],
}

# estimates that must land within 4 standard errors of the truth (SE from the CI width)
CLOSE = {
    "tha_incidence": [("incidence", "cumulative_incidence", "tha")],
    "prophylaxis": [("effect", "risk_ratio", "radiotherapy vs none"), ("effect", "risk_ratio", "nsaid vs none"),
                    ("effect", "risk_control", "radiotherapy vs none"),
                    ("effect", "risk_control_aipw", "radiotherapy vs none"),
                    ("effect", "risk_treated_regression", "nsaid vs none"),
                    ("safety", "risk_ratio", "radiotherapy vs none")],
    "resection_recurrence": [("pooled", "pooled_risk", "pooled")],
    "neurogenic": [("incidence", "cumulative_incidence", "sci"),
                   ("risk_factors", "odds_ratio", "gram_negative_infection[T.True]")],
}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    """``hostats reproduce`` over copies of the bundled specs with smaller n (same seeds)."""
    work = tmp_path_factory.mktemp("e2e")
    for name in NAMES:
        text = (ROOT / "analyses" / name / "analysis.toml").read_text()
        (work / "analyses" / name).mkdir(parents=True)
        (work / "analyses" / name / "analysis.toml").write_text(re.sub(r"\bn = \d+", f"n = {SMALL_N[name]}", text))
    out = work / "reports"
    r = CliRunner().invoke(app, ["reproduce", "--analyses", str(work / "analyses"), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output + "".join(p.read_text() for p in out.glob("*.error.txt"))
    return out


def _row(est: pd.DataFrame, section: str, measure: str, label: str | None) -> pd.DataFrame:
    rows = est[(est["section"] == section) & (est["measure"] == measure)]
    if label is not None:
        rows = rows[(rows["group"].astype(str) == label) | (rows["term"].astype(str) == label)]
    if "time_days" in rows.columns and rows["time_days"].notna().any():
        rows = rows[rows["time_days"].isna() | (rows["time_days"] == 365)]
    return rows


def test_index_links_every_report(reproduced):
    html = (reproduced / "index.html").read_text()
    for name in NAMES:
        assert f'href="{name}/report.html"' in html
        assert (reproduced / name / "report.html").is_file()
    assert 'class="card failed"' not in html
    m = json.loads((reproduced / "manifest.json").read_text())
    assert m["failed"] == [] and set(m["spec"]["analyses"]) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_report_has_every_section_and_files(reproduced, name):
    folder = reproduced / name
    html = (folder / "report.html").read_text()
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in html, sid
    assert "patient_id" not in html.lower()
    assert "synthetic data" in html and "<script" not in html
    # yes/no outcomes by the horizon: censoring-aware rows first, complete case only as a labelled sensitivity
    assert "Sensitivity analysis (complete case): " in html
    assert "biased upward" in html
    figs = sorted((folder / "figures").glob("*.png"))
    assert figs and all((f.with_suffix(".svg")).is_file() for f in figs)
    assert html.count("data:image/png;base64,") == len(figs)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == load_spec(ROOT / "analyses" / name).seed
    assert manifest["inputs"] and all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert manifest["packages"]["numpy"] and manifest["timings_seconds"]["total"] > 0
    assert manifest["synthetic"]["faults"] is not None
    # the row-level synthetic export stays out of the report folder; the manifest says how to regenerate it
    assert not (folder / "data").exists()
    assert not any(p.suffix in {".tsv", ".xlsx"} and p.name != "tables.xlsx" or p.name.startswith("site_")
                   for p in folder.rglob("*"))   # tables.xlsx: the tables for a manuscript, not row-level data
    assert all(not i["path"].startswith("/") for i in manifest["inputs"])
    assert manifest["synthetic"]["regenerate"][0].startswith("hostats synth ")


@pytest.mark.parametrize("name", NAMES)
def test_estimates_hold_expected_rows(reproduced, name):
    data = json.loads((reproduced / name / "estimates.json").read_text())
    assert data["ci_level"] == 0.95 and data["small_cell_threshold"] == 5
    est = pd.DataFrame(data["estimates"])
    csv = pd.read_csv(reproduced / name / "estimates.csv")
    assert len(csv) == len(est) and list(csv.columns) == list(est.columns)
    for col in ("analysis", "section", "measure", "group", "term", "estimate", "ci_lower", "ci_upper",
                "ci_level", "p_value", "n", "events", "unit", "truth"):
        assert col in est.columns, col
    for section, measure, label, with_truth in EXPECTED[name]:
        rows = _row(est, section, measure, label)
        assert len(rows), f"{name}: no row {section}/{measure}/{label}"
        r = rows.iloc[0]
        assert r["estimate"] is not None and np.isfinite(float(r["estimate"])), (section, measure, label)
        if with_truth:
            assert r["truth"] is not None and np.isfinite(float(r["truth"])), f"no truth for {section}/{measure}/{label}"


@pytest.mark.parametrize("name", NAMES)
def test_main_estimates_near_truth(reproduced, name):
    est = pd.DataFrame(json.loads((reproduced / name / "estimates.json").read_text())["estimates"])
    for section, measure, label in CLOSE[name]:
        r = _row(est, section, measure, label).iloc[0]
        e, lo, hi, t = (float(r[k]) for k in ("estimate", "ci_lower", "ci_upper", "truth"))
        ratio = measure.endswith("ratio")
        f = np.log if ratio else (lambda x: x)
        se = (f(hi) - f(lo)) / (2 * 1.959964)
        z = (f(e) - f(t)) / se
        assert abs(z) < 4, f"{name} {section}/{measure}/{label}: estimate {e:.3f} ({lo:.3f}-{hi:.3f}), truth {t:.3f}"
