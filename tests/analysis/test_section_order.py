"""Ordered categories keep their order in the estimates, the tables and the curves (the radiotherapy timing
bins were sorted alphabetically: "48-72 h, after 72 h, within 48 h")."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.paths import ROOT


@pytest.mark.filterwarnings("ignore")
def test_derived_bins_keep_their_order(tmp_path):
    from typer.testing import CliRunner

    from hostats.cli import app

    src = (ROOT / "analyses" / "prophylaxis" / "analysis.toml").read_text(encoding="utf-8")
    labels = re.search(r'labels = (\[.*\])', src).group(1)
    order = [x.strip().strip('"') for x in labels.strip("[]").split(",")]
    assert order == sorted(order, key=["within 48 h", "48-72 h", "after 72 h"].index)  # the spec's own order
    assert order != sorted(order)  # alphabetical order would differ: the test can fail
    spec = tmp_path / "p"
    spec.mkdir()
    (spec / "analysis.toml").write_text(re.sub(r"\bn = \d+", "n = 1500", src), encoding="utf-8")
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    est = pd.read_csv(out / "estimates.csv")
    rows = est[(est["section"] == "rt_timing") & (est["measure"] == "cumulative_incidence")]
    assert list(dict.fromkeys(rows["group"])) == order
    html = (out / "report.html").read_text(encoding="utf-8")
    part = html[html.index("Radiotherapy: cumulative incidence of HO by time from surgery"):]
    assert [part.index(f"<td>{g}</td>") for g in order] == sorted(part.index(f"<td>{g}</td>") for g in order)
