"""An analysis run on a REDCap export (``hostats run --kind redcap --dictionary``, ``hostats init
--dictionary``, a spec's ``[data] kind = "redcap"``): the report is written, and its estimates are those of
the same cohort read with ``read_cohort`` and estimated directly, and those of the equivalent flat export.
A dictionary that is missing or outside the study folder, or a kind that does not exist, is a one-line
error naming the file or the key."""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hostats
from hostats.cli import app
from hostats.schema import EPISODE_COLUMNS
from tests.paths import DATA, ROOT

RC = DATA / "redcap"
EXPORT, DICTIONARY, MAPPING = RC / "ho_registry_export.csv", RC / "ho_registry_dictionary.csv", RC / "ho_registry.mapping.toml"
THA_INCIDENCE_KEEP = ["tha", "long_bone_fracture"]  # analyses/tha_incidence: its one criterion

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(res) -> str:
    """The output of a failed command: exit status 1, one line 'error: ...', no traceback."""
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return lines[0]


@pytest.fixture(scope="module")
def direct():
    """The REDCap cohort read with read_cohort, independently of any analysis, and tha_incidence's criterion."""
    c = hostats.read_cohort(EXPORT, MAPPING, dictionary=DICTIONARY)
    ep = c.episodes[c.episodes["index_event"].astype(str).isin(THA_INCIDENCE_KEEP)]
    assert 0 < len(ep) < len(c.episodes) and int(ep["ho"].astype(bool).sum()) > 0  # the criterion does something
    return c, ep


@pytest.fixture(scope="module")
def flat_export(tmp_path_factory, direct):
    """The equivalent flat export: the cohort's episodes (schema columns) and assessments as CSV files."""
    c, _ = direct
    folder = tmp_path_factory.mktemp("flat")
    names = [getattr(col, "name", col) for col in EPISODE_COLUMNS]
    ep = c.episodes[[n for n in names if n in c.episodes.columns]].copy()
    for col in ep.columns:
        if str(ep[col].dtype).startswith("datetime64"):
            ep[col] = ep[col].dt.strftime("%Y-%m-%d")
    ep.to_csv(folder / "episodes.csv", index=False)
    a = c.assessments[["patient_id", "date", "test", "result"]].copy()
    a["date"] = a["date"].dt.strftime("%Y-%m-%d")
    a.to_csv(folder / "assessments.csv", index=False)
    return folder / "episodes.csv", folder / "assessments.csv"


def _estimates(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "estimates.csv").drop(columns="analysis")


@pytest.mark.filterwarnings("ignore")
def test_hostats_run_on_a_redcap_export(tmp_path, direct, flat_export):
    out = tmp_path / "registry"
    res = _invoke("run", "tha_incidence", "--data", EXPORT, "--kind", "redcap", "--dictionary", DICTIONARY,
                  "--mapping", MAPPING, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert (out / "report.html").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    _, ep = direct
    assert manifest["episodes_analysed"] == len(ep)
    export_hash = hashlib.sha256(EXPORT.read_bytes()).hexdigest()
    assert export_hash in {i["sha256"] for i in manifest["inputs"]}
    # the same cohort as a flat export (canonical columns, the imaging as an assessments table) gives the
    # same published estimates, row for row
    flat_out = tmp_path / "flat"
    res = _invoke("run", "tha_incidence", "--data", flat_export[0], "--assessments", flat_export[1],
                  "--out", flat_out, "--quiet")
    assert res.exit_code == 0, res.output
    got, flat = _estimates(out), _estimates(flat_out)
    assert got["estimate"].notna().any()
    pd.testing.assert_frame_equal(got, flat)
    # without --kind, --dictionary says it: the same estimates
    again = tmp_path / "again"
    res = _invoke("run", "tha_incidence", "--data", EXPORT, "--dictionary", DICTIONARY, "--mapping", MAPPING,
                  "--out", again, "--quiet")
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(_estimates(again), got)


@pytest.mark.filterwarnings("ignore")
def test_the_manifest_hashes_every_file_that_decided_the_read_and_the_report_names_them(tmp_path):
    from hostats.analysis import run_analysis

    res = run_analysis(ROOT / "analyses/tha_incidence", tmp_path / "r", data=EXPORT, mapping=MAPPING,
                       kind="redcap", dictionary=DICTIONARY)
    inputs = json.loads((res.out_dir / "manifest.json").read_text())["inputs"]
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in (EXPORT, DICTIONARY, MAPPING)} == \
        {i["sha256"] for i in inputs}
    html = (res.out_dir / "report.html").read_text(encoding="utf-8")
    assert f"REDCap export {EXPORT.name}, read with its data dictionary {DICTIONARY.name}, mapping " \
           f"{MAPPING.name}" in html
    assert str(EXPORT.parent) not in html  # file names, never the analyst's paths


@pytest.fixture
def study(tmp_path) -> Path:
    """``hostats init`` of tha_incidence on the REDCap export, published without rounding or small-count
    suppression so that every estimate can be compared with its direct computation."""
    folder = tmp_path / "registry_study"
    res = _invoke("init", folder, "--from", "tha_incidence", "--data", EXPORT, "--dictionary", DICTIONARY,
                  "--mapping", MAPPING)
    assert res.exit_code == 0, res.output
    spec = folder / "analysis.toml"
    text = spec.read_text(encoding="utf-8")
    assert text.count("small_cell_threshold = 5\n") == 1
    spec.write_text(text.replace("small_cell_threshold = 5\n", "small_cell_threshold = 1\nrounding = 0\n"),
                    encoding="utf-8")
    return folder


def test_init_copies_the_dictionary_and_declares_the_kind(study):
    for f in (EXPORT, DICTIONARY, MAPPING):
        assert (study / f.name).read_bytes() == f.read_bytes(), f.name
    data = hostats.analysis.load_spec(study).data
    assert data == {"path": EXPORT.name, "kind": "redcap", "dictionary": DICTIONARY.name, "mapping": MAPPING.name}


@pytest.mark.filterwarnings("ignore")
def test_a_spec_with_kind_redcap_estimates_what_read_cohort_gives(tmp_path, study, direct):
    out = tmp_path / "report"
    res = _invoke("run", study, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert (out / "report.html").is_file()
    est = pd.read_csv(out / "estimates.csv")
    _, ep = direct
    d = ep.assign(index_event=ep["index_event"].astype(str))
    # cumulative incidence by index event (Aalen-Johansen, death competing), read at the section's times
    ref = hostats.cumulative_incidence(d, "time_days", "status", cause=1, group="index_event").at([91, 182, 365])
    inc = est[(est["section"] == "incidence") & (est["measure"] == "cumulative_incidence")]
    assert len(inc) == len(ref) == 6
    for r in ref.itertuples(index=False):
        row = inc[(inc["group"] == r.group) & (inc["time_days"] == r.time)]
        assert len(row) == 1, (r.group, r.time)
        np.testing.assert_allclose(row[["estimate", "ci_lower", "ci_upper"]].to_numpy(float)[0],
                                   [r.estimate, r.ci_lower, r.ci_upper], rtol=1e-9, atol=1e-12)
    assert inc["estimate"].gt(0).any()
    # the rate of HO per 100 person-years by index event: events over follow-up time, counted here
    rate = est[(est["section"] == "rate") & (est["measure"] == "rate")].set_index("group")
    for g, part in d.groupby("index_event"):
        events, years = int(part["ho"].astype(bool).sum()), float(part["time_days"].sum()) / 365.25
        assert int(rate.loc[g, "events"]) == events and int(rate.loc[g, "n"]) == len(part)
        assert rate.loc[g, "estimate"] == pytest.approx(100 * events / years, rel=1e-9)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["episodes_analysed"] == len(ep)
    assert hashlib.sha256(EXPORT.read_bytes()).hexdigest() in {i["sha256"] for i in manifest["inputs"]}


@pytest.mark.parametrize("edit, key, needle", [
    (lambda t: t.replace('kind = "redcap"', 'kind = "redcapp"'), "kind",
     "unknown source kind 'redcapp'; did you mean 'redcap'?"),
    (lambda t: t.replace('dictionary = "ho_registry_dictionary.csv"', 'dictionary = "../dictionary.csv"'),
     "dictionary", "'../dictionary.csv' leaves the spec's folder"),
    (lambda t: t.replace('dictionary = "ho_registry_dictionary.csv"', 'dictionary = "no_such_dictionary.csv"'),
     "dictionary", "file not found: "),
])
def test_a_bad_kind_or_dictionary_in_the_spec_is_a_one_line_error_at_its_line(tmp_path, study, edit, key, needle):
    shutil.copy(DICTIONARY, study.parent / "dictionary.csv")  # exists, but outside the study folder
    spec = study / "analysis.toml"
    text = edit(spec.read_text(encoding="utf-8"))
    spec.write_text(text, encoding="utf-8")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(f"{key} ="))
    out = tmp_path / "report"
    msg = _one_line_error(_invoke("run", study, "--out", out, "--quiet"))
    assert f"analysis.toml, line {line}: [data] {key}: {needle}" in msg, msg
    assert not out.exists()


@pytest.mark.parametrize("args, says", [
    (["--kind", "redcap", "--dictionary", "no_such_dictionary.csv"], "error: --dictionary not found: "
     "no_such_dictionary.csv"),
    (["--kind", "redcapp", "--dictionary", str(DICTIONARY)], "error: --kind: unknown source kind 'redcapp'; did you "
     "mean 'redcap'?"),
    (["--kind", "redcap"], "error: --kind: a REDCap export is read with the project's data dictionary"),
    (["--kind", "omop", "--dictionary", str(DICTIONARY)], "error: --dictionary: a data dictionary goes with a REDCap "
     "export"),
])
@pytest.mark.parametrize("command", ["run", "init"])
def test_bad_source_options_are_one_line_errors(tmp_path, monkeypatch, command, args, says):
    monkeypatch.chdir(tmp_path)
    head = (["run", "tha_incidence", "--out", "report", "--quiet"] if command == "run"
            else ["init", "study", "--from", "tha_incidence"])
    msg = _one_line_error(_invoke(*head, "--data", EXPORT, "--mapping", MAPPING, *args))
    assert msg.startswith(says), msg
    assert not (tmp_path / "report").exists() and not (tmp_path / "study").exists()


def test_kind_and_dictionary_describe_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    msg = _one_line_error(_invoke("run", "tha_incidence", "--dictionary", DICTIONARY, "--quiet"))
    assert msg == "error: --kind/--dictionary describe --data: give --data (the export) too"
    msg = _one_line_error(_invoke("validate", EXPORT, "--kind", "redcapp", "--dictionary", DICTIONARY))
    assert msg.startswith("error: --kind: unknown source kind 'redcapp'; did you mean 'redcap'?")


def test_the_three_commands_share_one_definition_of_the_source_options():
    import inspect
    import typing

    from hostats import cli

    for name, shared in (("kind", cli.KindOption), ("dictionary", cli.DictionaryOption)):
        for command in (cli.validate, cli.run, cli.init):
            annotation = inspect.signature(command, eval_str=True).parameters[name].annotation
            assert typing.get_args(annotation)[1] is typing.get_args(shared)[1], (command.__name__, name)


@pytest.mark.filterwarnings("ignore")
def test_readme_runs_an_analysis_on_the_redcap_export(tmp_path, monkeypatch):
    """README, 'REDCap projects': the command runs as written from a clone's root."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### REDCap projects", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = [shlex.split(c) for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    assert commands and all(c[:2] == ["hostats", "run"] and "--dictionary" in c for c in commands)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "data").symlink_to(DATA, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        res = _invoke(*argv[1:])
        assert res.exit_code == 0, (argv, res.output)
        out = Path(argv[argv.index("--out") + 1])
        assert (out / "report.html").is_file()


@pytest.mark.filterwarnings("ignore")
def test_run_analysis_arguments_describe_data_not_the_specs_file(tmp_path, study, flat_export):
    """run_analysis(data=...): the spec's kind and dictionary describe its own path and are not applied to
    another export; a kind given by the caller is checked as the spec's is."""
    from hostats.analysis import run_analysis
    from hostats.errors import SpecError

    res = run_analysis(study, tmp_path / "flat", data=flat_export[0], assessments=flat_export[1])
    assert res.estimates["estimate"].notna().any()
    with pytest.raises(SpecError, match=r"^kind='redcapp': unknown source kind 'redcapp'; did you mean 'redcap'\?"):
        run_analysis(study, tmp_path / "bad", data=EXPORT, kind="redcapp", dictionary=DICTIONARY)
    assert not (tmp_path / "bad").exists()
