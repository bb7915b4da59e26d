"""`hostats validate`: readable summary, JSON, exit status, never a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hostats
from hostats.cli import app

DATA = Path(hostats.__file__).parent / "data"
runner = CliRunner()


def run(*args: str):
    r = runner.invoke(app, ["validate", *map(str, args)])
    out = r.output
    assert "Traceback" not in out, out
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, out


def test_bundled_example_is_usable():
    code, out = run(DATA / "example_cohort.csv", "--mapping", DATA / "example_cohort.mapping.toml",
                    "--assessments", DATA / "example_assessments.csv")
    assert code == 0
    assert "Ledger" in out and "Problems" in out and "completeness" in out
    assert "usable: 57 of 62 row(s) kept" in out
    assert "RTX" in out  # the code typo, with its row


def test_issue_bad_file_exits_non_zero_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,index_event,index_date,age_years,sex\nA1,tha,2021-13-45,abc,M\nA1,tha,,200,\n")
    code, out = run(bad)
    assert code == 1
    assert "no usable rows left" in out and "2021-13-45" in out


@pytest.mark.parametrize("content,message", [
    ("", "the file is empty"),
    ("patient_id,index_event,index_date\n", "no data rows"),
    ("id,date\n1,2021-01-01\n", "required column(s)"),
])
def test_unusable_files(tmp_path, content, message):
    p = tmp_path / "x.csv"
    p.write_text(content)
    code, out = run(p)
    assert code == 1 and message in out


def test_missing_file_and_bad_mapping(tmp_path):
    code, out = run(tmp_path / "none.csv")
    assert code == 1 and "not found" in out
    p = tmp_path / "x.csv"
    p.write_text("patient_id,index_event,index_date\nA,tha,2021-01-01\n")
    m = tmp_path / "m.toml"
    m.write_text("[columns\n")
    code, out = run(p, "--mapping", m)
    assert code == 1 and "not a valid TOML" in out


def test_json_output(tmp_path):
    code, out = run(DATA / "example_cohort.csv", "--mapping", DATA / "example_cohort.mapping.toml", "--json")
    d = json.loads(out)
    assert code == 0 and d["usable"] is True
    assert d["rows_read"] == d["rows_kept"] + d["rows_excluded"] == 62
    assert {"flow", "problems", "excluded", "completeness", "notes"} <= set(d)
    assert d["problems"][0]["source_row"] >= 2
    p = tmp_path / "x.csv"
    p.write_text("")
    code, out = run(p, "--json")
    assert code == 1 and json.loads(out) == {"usable": False, "error": f"the file is empty (file {p})"}


def test_sql_url(tmp_path):
    import sqlite3

    import pandas as pd
    db = tmp_path / "c.db"
    with sqlite3.connect(db) as con:
        pd.DataFrame({"patient_id": ["A"], "index_event": ["tha"], "index_date": ["2021-01-01"]}).to_sql(
            "ep", con, index=False)
    code, out = run(f"sqlite:///{db}", "--table", "ep")
    assert code == 0 and "usable: 1 of 1" in out
    code, out = run("postgresql://u:topsecret@127.0.0.1:1/x", "--table", "ep")
    assert code == 1 and "topsecret" not in out
