"""Analysis specs: the bundled ones parse; bad specs give a clear error naming the spec file, line and key,
exit status 1 from the command line, and never leave a report behind that looks complete."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hostats.analysis import discover, load_spec, run_analysis
from hostats.analysis.spec import _locate
from hostats.cli import app
from hostats.errors import SpecError
from tests.paths import ROOT

ANALYSES = ROOT / "analyses"

GOOD = """\
[analysis]
title = "Test analysis"
question = "Does it work?"

[data]
path = "{data}"

[[criteria]]
name = "hip arthroplasty"
keep = "index_event == 'tha'"

[outcome]
event = "ho"
horizon_days = 365

[report]
small_cell_threshold = 5
table1 = ["age_years", "sex"]
table1_by = "prophylaxis"

[[section]]
id = "ci"
type = "cumulative_incidence"
title = "Cumulative incidence"
by = "prophylaxis"
times = [182, 365]
"""


@pytest.fixture(autouse=True)
def _data_outside_the_spec_folder():
    """These specs point at exports in a separate temporary folder (absolute paths), which the runner
    refuses by default (issue 12: data stay in the spec's folder); tests/test_hardening_spec.py tests that
    refusal, here it is allowed as a user would with --allow-outside-paths."""
    from hostats.cohort import allow_outside_paths

    with allow_outside_paths():
        yield


@pytest.fixture(scope="module")
def export_csv(tmp_path_factory) -> Path:
    """A small, clean export with canonical column names (a synthetic draw without faults)."""
    import synthetic

    c = synthetic.generate("tha_prophylaxis", 400, 11, fault_rate=0.0)
    path = tmp_path_factory.mktemp("export") / "export.csv"
    ep = c.episodes.copy()
    for col in ep.columns:
        if str(ep[col].dtype).startswith("datetime64"):
            ep[col] = ep[col].dt.strftime("%Y-%m-%d")
    ep.to_csv(path, index=False)
    return path


def write_spec(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "analysis.toml").write_text(text)
    return folder


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith(needle))


def test_bundled_specs_parse():
    # simulation studies (a [simulation] table, run by hostats simulate) are not analyses
    specs = [p for p in discover(ANALYSES) if "\n[simulation]" not in "\n" + p.read_text()]
    names = {p.parent.name for p in specs}
    assert {"tha_incidence", "prophylaxis", "resection_recurrence", "neurogenic"} <= names
    for p in specs:
        spec = load_spec(p)
        assert spec.title and spec.synthetic and spec.sections
        assert spec.seed is not None


def test_locate_finds_keys_in_array_tables():
    text = GOOD.format(data="x.csv") + '\n[[section]]\ntype = "rate"\ntitle = "r"\n'
    assert _locate(text, "criteria", "keep", 0) == line_of(text, "keep =")
    assert _locate(text, "section", "type", 1) == len(text.splitlines()) - 1
    assert _locate(text, "outcome", "horizon_days") == line_of(text, "horizon_days")


def test_good_spec_runs_and_writes_complete_report(tmp_path, export_csv):
    spec = write_spec(tmp_path / "ok", GOOD.format(data=export_csv))
    out = tmp_path / "out" / "ok"
    result = run_analysis(spec, out)
    for f in ("report.html", "estimates.csv", "estimates.json", "manifest.json", "figures/ci.png", "figures/ci.svg"):
        assert (out / f).is_file(), f
    assert not list((tmp_path / "out").glob(".*partial*"))
    est = result.estimates
    assert set(est["measure"]) >= {"cumulative_incidence", "gray_test"}
    assert set(est["analysis"]) == {"ok"}


@pytest.mark.parametrize("case, edit, table, key, needle, message", [
    ("unknown key", lambda t: t.replace("horizon_days = 365", "horizon_dayz = 365"),
     "outcome", "horizon_dayz", "horizon_dayz", "unknown key"),
    ("unknown table", lambda t: t + "\n[outcomes]\nevent = 'ho'\n", "outcomes", None, "[outcomes]", "unknown table"),
    ("unknown section type", lambda t: t.replace('type = "cumulative_incidence"', 'type = "kaplan"'),
     "section", "type", 'type = "kaplan"', "unknown section type"),
    ("bad threshold", lambda t: t.replace("small_cell_threshold = 5", "small_cell_threshold = 0"),
     "report", "small_cell_threshold", "small_cell_threshold", "positive integer"),
])
def test_structural_errors_name_line_and_key(tmp_path, export_csv, case, edit, table, key, needle, message):
    text = edit(GOOD.format(data=export_csv))
    folder = write_spec(tmp_path / "bad", text)
    with pytest.raises(SpecError) as err:
        load_spec(folder)
    msg = str(err.value)
    assert str(folder / "analysis.toml") in msg
    assert f"line {line_of(text, needle)}" in msg, msg
    assert message in msg
    if key:
        assert key in msg


def test_invalid_toml_names_file(tmp_path):
    folder = write_spec(tmp_path / "bad", "[analysis\ntitle = 1\n")
    with pytest.raises(SpecError, match=r"analysis.toml: not valid TOML.*line 1"):
        load_spec(folder)


@pytest.mark.parametrize("case, edit, needle, message", [
    ("criterion", lambda t: t.replace("keep = \"index_event == 'tha'\"", "keep = \"index_evnt == 'tha'\""),
     "keep =", "unknown column 'index_evnt'; did you mean 'index_event'?"),
    ("section", lambda t: t.replace('\nby = "prophylaxis"', '\nby = "prophylaxes"'),
     'by = "prophylaxes"', "unknown column 'prophylaxes'; did you mean 'prophylaxis'?"),
    ("table1_by", lambda t: t.replace('table1_by = "prophylaxis"', 'table1_by = "prophylaxsis"'),
     'table1_by = "prophylaxsis"', "unknown column 'prophylaxsis'; did you mean 'prophylaxis'?"),
    ("formula", lambda t: t + '\n[[section]]\ntype = "logistic"\nformula = "ho ~ age_yeras + C(sex)"\n',
     'formula = "ho ~ age_yeras', "unknown column 'age_yeras'; did you mean 'age_years'?"),
    ("key", lambda t: t.replace("horizon_days = 365", "horizon_day = 365"),
     "horizon_day =", "unknown key; did you mean 'horizon_days'?"),
])
def test_spec_errors_before_any_computation_with_suggestions(tmp_path, export_csv, case, edit, needle, message):
    """Names the spec gets wrong are found when it is read (before any data are generated or read), at
    their line, with the closest name."""
    text = edit(GOOD.format(data=export_csv))
    folder = write_spec(tmp_path / "bad", text)
    with pytest.raises(SpecError) as err:
        load_spec(folder)
    msg = str(err.value)
    assert f"analysis.toml, line {line_of(text, needle)}" in msg, msg
    assert message in msg, msg


@pytest.mark.parametrize("case, edit, needle, message", [
    ("kind typo", lambda t: t.replace("[data]\n", '[data]\nkind = "omopp"\n'), "kind =",
     "[data] kind: unknown source kind 'omopp'; did you mean 'omop'? (the kinds are \"redcap\", \"omop\")"),
    ("kind not text", lambda t: t.replace("[data]\n", "[data]\nkind = 1\n"), "kind =",
     "[data] kind: unknown source kind 1"),
    ("redcap without dictionary", lambda t: t.replace("[data]\n", '[data]\nkind = "redcap"\n'), "kind =",
     "[data] kind: a REDCap export is read with the project's data dictionary"),
    ("dictionary of an omop cdm", lambda t: t.replace("[data]\n", '[data]\nkind = "omop"\ndictionary = "d.csv"\n'),
     "dictionary =", "[data] dictionary: a data dictionary goes with a REDCap export"),
    ("dictionary not text", lambda t: t.replace("[data]\n", "[data]\ndictionary = 3\n"), "dictionary =",
     "[data] dictionary: must be the file name of the data dictionary"),
    ("mapping of an omop cdm", lambda t: t.replace("[data]\n", '[data]\nkind = "omop"\nmapping = "m.toml"\n'),
     "mapping =", "[data] mapping: an OMOP CDM is read through its concept sets"),
    ("dictionary without path", lambda t: re.sub(r'path = ".*"', 'synthetic = { scenario = "tha_prophylaxis", '
                                                 'n = 10, seed = 1 }\ndictionary = "d.csv"', t),
     "dictionary =", "[data] dictionary: dictionary describes the file at path"),
    ("key typo", lambda t: t.replace("[data]\n", '[data]\ndictionnary = "d.csv"\n'), "dictionnary =",
     "unknown key; did you mean 'dictionary'?"),
])
def test_data_source_keys_are_checked_when_the_spec_is_read(tmp_path, case, edit, needle, message):
    """[data] kind and dictionary: a mistake is a SpecError at its line before any data are read."""
    text = edit(GOOD.format(data="export.csv"))
    folder = write_spec(tmp_path / "bad", text)
    with pytest.raises(SpecError) as err:
        load_spec(folder)
    msg = str(err.value)
    assert f"analysis.toml, line {line_of(text, needle)}: " in msg, msg
    assert message in msg, msg


@pytest.mark.parametrize("data", ['kind = "redcap"\ndictionary = "d.csv"', 'dictionary = "d.csv"', 'kind = "omop"'])
def test_data_source_keys_that_go_together_are_read(tmp_path, data):
    text = GOOD.format(data="export.csv").replace("[data]\n", f"[data]\n{data}\n")
    spec = load_spec(write_spec(tmp_path / "ok", text))
    assert {k: spec.data[k] for k in ("kind", "dictionary") if k in spec.data} == dict(
        ln.replace('"', "").split(" = ") for ln in data.splitlines())


@pytest.mark.parametrize("case, edit, needle, message", [
    ("criterion excludes everyone", lambda t: t.replace("keep = \"index_event == 'tha'\"",
                                                        "keep = \"index_event == 'burn'\""),
     "keep =", "excludes every episode"),
    ("outcome without events", lambda t: t.replace('event = "ho"', 'event = "symptomatic"').replace(
        "keep = \"index_event == 'tha'\"", "keep = \"symptomatic != True\""),
     'event = "symptomatic"', "has no events"),
    ("missing data file", lambda t: re.sub(r'path = ".*"', 'path = "no/such/file.csv"', t),
     'path = "no/such', "file not found"),
])
def test_data_dependent_errors_name_the_spec_line(tmp_path, export_csv, case, edit, needle, message):
    text = edit(GOOD.format(data=export_csv))
    folder = write_spec(tmp_path / "bad", text)
    out = tmp_path / "reports" / "bad"
    with pytest.raises(SpecError) as err:
        run_analysis(folder, out)
    msg = str(err.value)
    assert f"analysis.toml, line {line_of(text, needle)}" in msg, msg
    assert re.search(message, msg), msg
    assert not out.exists(), "no report left behind"
    assert not list((tmp_path / "reports").glob(".*")), "no staging folder left behind"


def test_cli_bad_spec_exit_1_no_traceback_keeps_previous_report(tmp_path, export_csv):
    good = write_spec(tmp_path / "a", GOOD.format(data=export_csv))
    out = tmp_path / "reports" / "a"
    runner = CliRunner()
    r = runner.invoke(app, ["run", str(good), "--out", str(out), "--quiet", "--allow-outside-paths"])
    assert r.exit_code == 0, r.output
    before = (out / "report.html").read_bytes()
    write_spec(good, GOOD.format(data=export_csv).replace("keep = \"index_event == 'tha'\"",
                                                          "keep = \"index_event == 'burn'\""))
    r = runner.invoke(app, ["run", str(good), "--out", str(out), "--quiet", "--allow-outside-paths"])
    assert r.exit_code == 1
    assert "Traceback" not in r.output and "excludes every episode" in r.output
    assert "line 10" in r.output
    assert (out / "report.html").read_bytes() == before, "a failed run leaves the last good report untouched"
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["a"]


def test_cli_missing_data_option_file(tmp_path, export_csv):
    good = write_spec(tmp_path / "a", GOOD.format(data=export_csv))
    r = CliRunner().invoke(app, ["run", str(good), "--data", str(tmp_path / "nope.csv"), "--out",
                                 str(tmp_path / "o"), "--quiet"])
    assert r.exit_code == 1 and "nope.csv" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_cli_missing_spec(tmp_path):
    r = CliRunner().invoke(app, ["run", str(tmp_path / "nothing"), "--quiet"])
    assert r.exit_code == 1 and "analysis spec not found" in r.output


def test_cli_run_with_data_option_overrides_synthetic_spec(tmp_path, export_csv):
    """A spec written for synthetic data runs on a user's file with --data: no truth, no data folder."""
    text = GOOD.format(data=export_csv).replace(f'path = "{export_csv}"',
                                                 'synthetic = { scenario = "tha_prophylaxis", n = 300, seed = 1 }')
    spec = write_spec(tmp_path / "s", text)
    out = tmp_path / "o"
    r = CliRunner().invoke(app, ["run", str(spec), "--data", str(export_csv), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    est = json.loads((out / "estimates.json").read_text())["estimates"]
    assert est and "truth" not in est[0]
    assert not (out / "data").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"][0]["path"].endswith("export.csv")
    assert manifest["synthetic"] is None
    assert "synthetic data" not in (out / "report.html").read_text()


def test_derive_where_otherwise_keeps_other_episodes_in_the_model():
    """A measure defined for some episodes only (GCS after TBI) enters a model as 'expr where cond, else
    a constant'; a missing value where the condition holds stays missing (and is then counted out)."""
    import pandas as pd

    from hostats.analysis.derive import _derive

    ep = pd.DataFrame({"index_event": ["tbi", "tbi", "sci", "stroke"],
                       "gcs_score": pd.array([5, pd.NA, pd.NA, 14], dtype="Int64")})
    text = GOOD.format(data="x.csv") + (
        '\n[[derive]]\nname = "sev"\nexpr = "9 - gcs_score"\nwhere = "index_event == \'tbi\'"\notherwise = 0\n')
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(write_spec(Path(tmp) / "d", text))
        out = _derive(spec, ep.copy(), 365.0)
    assert out["sev"].iloc[0] == 4.0 and pd.isna(out["sev"].iloc[1])
    assert out["sev"].iloc[2:].tolist() == [0.0, 0.0]   # stroke's GCS of 14 is not used


def test_derive_where_needs_otherwise(tmp_path):
    text = GOOD.format(data="x.csv") + '\n[[derive]]\nname = "sev"\nexpr = "9 - gcs_score"\nwhere = "age_years > 1"\n'
    with pytest.raises(SpecError, match="'where' and 'otherwise' go together"):
        load_spec(write_spec(tmp_path / "d", text))


IPTW_SECTION = """
[[section]]
id = "effect"
type = "iptw"
title = "Effect"
treatment = "prophylaxis"
reference = "none"
confounders = ["age_years", "sex", "prior_ho"]
subset = "horizon_status_known == True"
outcome = "ho_within_horizon"
curves = false
"""


def test_adjustment_methods_choose_the_rows(tmp_path, export_csv):
    text = GOOD.format(data=export_csv) + '\n[adjustment]\nmethods = ["iptw", "regression"]\n' + IPTW_SECTION
    est = run_analysis(write_spec(tmp_path / "m", text), tmp_path / "out").estimates
    m = set(est.loc[est["section"] == "effect", "measure"])
    assert {"risk_ratio", "risk_ratio_regression", "risk_difference_regression"} <= m
    assert not any(x.startswith("crude_") or x.endswith(("_aipw", "_ipcw")) for x in m)
    # HO by the horizon restricted to episodes with known status: the censoring-aware estimates are
    # computed on that subset, which the report says biases them
    html = (tmp_path / "out" / "report.html").read_text()
    assert "this restriction biases them upward" in html
    assert "effect_complete_case" in set(est["section"])


def test_adjustment_methods_unknown_name_is_a_spec_error(tmp_path):
    text = GOOD.format(data="x.csv") + '\n[adjustment]\nmethods = ["iptw", "matching"]\n'
    with pytest.raises(SpecError, match="methods must be a list drawn from") as err:
        load_spec(write_spec(tmp_path / "m", text))
    assert "matching" in str(err.value) and f"line {line_of(text, 'methods =')}" in str(err.value)


def test_site_risks_pooled_from_follow_up_agree_with_count_pooling_without_loss(tmp_path):
    """With nobody lost before the horizon the Aalen-Johansen risk per site is the proportion, so the
    logit pooling of the site risks (inverse-variance, REML) must reproduce hostats.meta_proportions on the
    counts (matched to metafor), the 0.5-corrected site without events included; the only difference is
    the Aalen-Johansen variance against the binomial one (about 0.3% here)."""
    import hostats
    import synthetic

    c = synthetic.generate("resection_recurrence", 1500, 5, overrides={"loss_to_followup_per_year": 0.0},
                           fault_rate=0.0)
    ep = c.episodes.copy()
    quiet = ep["site"] == sorted(ep["site"].unique())[1]
    ep.loc[quiet, "ho"] = False  # a site without recurrences: the logit needs the 0.5 correction
    for col in [k for k in ep.columns if k.startswith("ho_") or k in ("brooker_grade", "symptomatic",
                                                                     "detection_modality")]:
        ep[col] = ep[col].astype(object)
        ep.loc[quiet, col] = None if col != "brooker_grade" else 0
    for col in ep.columns:
        if str(ep[col].dtype).startswith("datetime64"):
            ep[col] = ep[col].dt.strftime("%Y-%m-%d")
    path = tmp_path / "export.csv"
    ep.to_csv(path, index=False)
    text = GOOD.format(data=path).replace("keep = \"index_event == 'tha'\"", "keep = \"index_event == 'resection'\"")
    text = text.replace('table1_by = "prophylaxis"', 'table1_by = "adjuvant"')
    text = text.split("[[section]]")[0] + """
[[section]]
id = "pooled"
type = "meta_proportions"
title = "Recurrence by site"
by = "site"
event = "ho_within_horizon"
"""
    res = run_analysis(write_spec(tmp_path / "spec", text), tmp_path / "out")
    est = res.estimates.set_index(["section", "measure"]).sort_index()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "site(s) without events by the horizon: logit risk with a 0.5 correction" in html
    e = hostats.read_cohort(path).episodes
    e = e[e["index_event"] == "resection"]
    y = (e["status"] == 1) & (e["time_days"] <= 365)
    agg = y.groupby(e["site"]).agg(["sum", "size"])
    assert (agg["sum"] == 0).sum() >= 1
    ref = hostats.meta_proportions(agg["sum"].to_numpy(int), agg["size"].to_numpy(int), method="REML",
                                   transform="logit")
    pooled = est.loc[("pooled", "pooled_risk")].iloc[0]
    assert pooled["estimate"] == pytest.approx(ref.estimate, rel=2e-3)
    assert pooled["ci_lower"] == pytest.approx(ref.ci_lower, rel=5e-3)
    assert pooled["ci_upper"] == pytest.approx(ref.ci_upper, rel=5e-3)
    assert est.loc[("pooled", "tau2"), "estimate"].iloc[0] == pytest.approx(ref.tau2, rel=1e-2)
    cc = est.loc[("pooled_complete_case", "pooled_proportion")].iloc[0]
    assert cc["estimate"] == pytest.approx(ref.estimate, rel=1e-9)  # nobody lost: complete case = everyone
    assert len(est.loc[("pooled", "site_risk")]) == len(agg)  # every site, small ones suppressed


def test_logrank_statistic_is_reported(tmp_path, export_csv):
    """With deaths censored (competing = "none") a curve section compares groups by the log-rank test; its
    chi-square was read from a table column the test never had and was reported as missing. Reference:
    lifelines' logrank_test on the same times and events."""
    from lifelines.statistics import multivariate_logrank_test

    import hostats

    text = GOOD.format(data=export_csv).replace('horizon_days = 365', 'horizon_days = 365\ncompeting = "none"')
    est = run_analysis(write_spec(tmp_path / "lr", text), tmp_path / "out").estimates
    row = est[(est["section"] == "ci") & (est["measure"] == "logrank_test")].iloc[0]
    e = hostats.read_cohort(export_csv).episodes
    e = e[e["index_event"] == "tha"].dropna(subset=["time_days", "status", "prophylaxis"])
    ref = multivariate_logrank_test(e["time_days"], e["prophylaxis"].astype(str), e["status"] == 1)
    assert float(row["estimate"]) == pytest.approx(ref.test_statistic, rel=1e-6)
    assert float(row["p_value"]) == pytest.approx(ref.p_value, rel=1e-4)
