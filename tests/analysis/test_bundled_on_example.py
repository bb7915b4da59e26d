"""The bundled specs run on the bundled example export (a THA registry without symptoms or the time of
irradiation): optional sections the export cannot feed are reported as not run; a required one is an error
at its line before any section is computed."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from hostats.analysis import run_analysis
from hostats.errors import SpecError
from tests.paths import ROOT

EXAMPLE = {"data": ROOT / "hostats/data/example_cohort.csv",
           "mapping": ROOT / "hostats/data/example_cohort.mapping.toml",
           "assessments": ROOT / "hostats/data/example_assessments.csv"}


@pytest.mark.filterwarnings("ignore")
def test_tha_incidence_runs_on_the_example_export(tmp_path):
    res = run_analysis(ROOT / "analyses/tha_incidence", tmp_path / "rep", **EXAMPLE)
    html = (res.out_dir / "report.html").read_text(encoding="utf-8")
    # the export has no 'symptomatic' column: that section says so instead of failing the run
    assert "Symptomatic HO among patients with HO within a year: not run (the data have no column" in html
    assert [n.split(":")[0] for n in res.not_run] == ["Symptomatic HO among patients with HO within a year",
                                                      "Risk factors for HO within a year after THA (odds ratios "
                                                      "of the 1-year risk)"]
    est = pd.read_csv(res.out_dir / "estimates.csv")
    assert "symptomatic" not in set(est["section"])
    # the sections the export can feed are there
    inc = est[(est["section"] == "incidence") & (est["group"] == "tha") & (est["time_days"] == 365)]
    assert len(inc) == 1 and 0 < inc["estimate"].iloc[0] < 1
    # every THA or fracture episode of the export is analysed (the cohort read independently of the run)
    import hostats

    c = hostats.read_cohort(EXAMPLE["data"], mapping=EXAMPLE["mapping"], assessments=EXAMPLE["assessments"])
    expected = int(c.episodes["index_event"].isin(["tha", "long_bone_fracture"]).sum())
    assert json.loads((res.out_dir / "manifest.json").read_text())["episodes_analysed"] == expected


def test_a_required_section_without_its_column_is_an_error_at_its_line(tmp_path):
    text = (ROOT / "analyses/tha_incidence/analysis.toml").read_text(encoding="utf-8")
    text = text.replace('optional = true   # not every export records symptoms: then the report says "not run"\n', "")
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / "analysis.toml").write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        run_analysis(folder, tmp_path / "rep", **EXAMPLE)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln == 'event = "symptomatic"')
    assert f"analysis.toml, line {line}: [[section]] #4 event: the data have no column 'symptomatic'" in str(err.value)
    assert "optional = true" in str(err.value)
    assert not (tmp_path / "rep").exists()
