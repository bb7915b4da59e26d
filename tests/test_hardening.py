"""Issue 12 (ingest side): hostile or broken input gets a clear error or a ledger entry; nothing escapes
the study folder, nothing writes to a database, nothing reaches the terminal raw. Files built in tmp_path."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import hostats
from hostats.cli import app, safe
from hostats.errors import DataError, SpecError

TODAY = "2026-01-01"
CSV = "patient_id,index_event,index_date,age_years,sex\nP1,tha,2021-03-04,61,male\nP2,tha,2021-05-06,70,female\n"
runner = CliRunner()


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def cli(*args: str):
    r = runner.invoke(app, [*map(str, args)])
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.output


# --- 1. security: paths confined to the study folder ------------------------------------------------

def study(tmp_path: Path, episodes_path: str, **extra: str) -> Path:
    folder = tmp_path / "study"
    lines = f'[[episodes]]\npath = "{episodes_path}"\n' + "".join(f'{k} = "{v}"\n' for k, v in extra.items())
    write(folder / "export.toml", lines)
    return folder


@pytest.mark.parametrize("target", ["../outside.csv", "{abs}", "link.csv"])
def test_export_toml_paths_leaving_the_folder_are_refused(tmp_path, target):
    secret = write(tmp_path / "outside.csv", "TOKEN-ghp_0123456789abcdef\n")
    folder = study(tmp_path, target.format(abs=secret))
    if target == "link.csv":
        os.symlink(secret, folder / "link.csv")
    with pytest.raises(SpecError, match="leaves the study folder") as e:
        hostats.read_cohort(folder, today=TODAY)
    assert "export.toml" in str(e.value) and "path" in str(e.value) and "ghp_" not in str(e.value)
    code, out = cli("validate", folder)
    assert code == 1 and "leaves the study folder" in out and "ghp_" not in out


def test_export_toml_mapping_and_assessments_are_confined_too(tmp_path):
    folder = study(tmp_path, "a.csv", mapping="/etc/passwd")
    write(folder / "a.csv", CSV)
    with pytest.raises(SpecError, match=r"\[\[episodes\]\] 1 mapping = '/etc/passwd' leaves"):
        hostats.read_cohort(folder, today=TODAY)
    write(folder / "export.toml", '[[episodes]]\npath = "a.csv"\n[assessments]\npath = "../../x.csv"\n')
    with pytest.raises(SpecError, match=r"\[assessments\] path"):
        hostats.read_cohort(folder, today=TODAY)


def test_outside_paths_allowed_when_asked(tmp_path):
    write(tmp_path / "shared" / "a.csv", CSV)
    folder = study(tmp_path, "../shared/a.csv")
    assert len(hostats.read_cohort(folder, today=TODAY, allow_outside=True)) == 2
    with hostats.cohort.allow_outside_paths():
        assert len(hostats.read_cohort(folder, today=TODAY)) == 2
    code, out = cli("validate", folder, "--allow-outside-paths")
    assert code == 0, out
    code, out = cli("validate", folder)
    assert code == 1 and "--allow-outside-paths" in out


def test_a_non_table_file_is_never_quoted(tmp_path):
    token = write(tmp_path / "token.txt", "ghp_SECRETSECRETSECRET\n")
    with pytest.raises(DataError) as e:
        hostats.read_cohort(token, today=TODAY)
    assert "SECRET" not in str(e.value) and "not shown" in str(e.value)
    code, out = cli("validate", token)
    assert code == 1 and "SECRET" not in out
    with pytest.raises(DataError) as e:  # the mapping names a column: the message lists none of the file
        hostats.read_cohort(token, {"columns": {"patient_id": "id"}}, today=TODAY)
    assert "SECRET" not in str(e.value)


# --- 1. security: SQL is read-only -------------------------------------------------------------------

@pytest.fixture
def db(tmp_path):
    path = tmp_path / "cohort.db"
    con = sqlite3.connect(path)
    pd.read_csv(pd.io.common.StringIO(CSV)).to_sql("episodes", con, index=False)
    con.close()
    return path


@pytest.mark.parametrize("query,message", [
    ("DROP TABLE episodes", "only a SELECT"),
    ("select * from episodes; drop table episodes", "more than one statement"),
    ("VACUUM INTO '{dir}/copy.db'", "only a SELECT"),
    ("ATTACH DATABASE '{dir}/new.db' AS x", "only a SELECT"),
    ("PRAGMA user_version = 7", "only a SELECT"),
    ("WITH a AS (SELECT 1) DELETE FROM episodes", "DELETE"),
    ("SELECT * INTO copy FROM episodes", "INTO"),
    ("select * from episodes /* unterminated", "unterminated"),
])
def test_sql_other_than_one_select_is_refused(db, query, message):
    before = db.read_bytes()
    q = query.format(dir=db.parent)
    with pytest.raises(DataError, match=message):
        hostats.read_cohort(f"sqlite:///{db}", query=q, today=TODAY)
    code, out = cli("validate", f"sqlite:///{db}", "--query", q)
    assert code == 1 and message in out
    assert db.read_bytes() == before and sorted(p.name for p in db.parent.iterdir()) == ["cohort.db"]


def test_sql_select_and_table_still_work(db):
    assert len(hostats.read_cohort(f"sqlite:///{db}", table="episodes", today=TODAY)) == 2
    q = "-- the cohort\nWITH e AS (SELECT * FROM episodes WHERE note_col IS NULL OR 1) SELECT * FROM episodes;"
    assert len(hostats.read_cohort(f"sqlite:///{db}", query=q.replace("note_col IS NULL OR ", ""),
                                   today=TODAY)) == 2
    # words that write are fine inside strings and quoted names
    q = "SELECT *, 'drop table x; delete' AS \"update\" FROM episodes"
    assert len(hostats.read_cohort(f"sqlite:///{db}", query=q, today=TODAY)) == 2


def test_sqlite_connection_itself_is_read_only(db, monkeypatch):
    """Even a write that slipped past the statement check cannot change the file."""
    import hostats.ingest as ingest

    monkeypatch.setattr(ingest, "check_select", lambda q: q)
    before = db.read_bytes()
    with pytest.raises(DataError, match="cannot read from"):
        hostats.read_cohort(f"sqlite:///{db}", query="DELETE FROM episodes RETURNING *", today=TODAY)
    assert db.read_bytes() == before


def test_missing_sqlite_file_is_not_created(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        hostats.read_cohort(f"sqlite:///{tmp_path / 'none.db'}", table="x", today=TODAY)
    assert not (tmp_path / "none.db").exists()


# --- 1. security: terminal escapes from data cells ----------------------------------------------------

def test_safe_escapes_control_characters():
    assert safe("a\x1b[31mb\x07\u202ec") == "a\\x1b[31mb\\x07\\u202ec"
    assert safe("Zürich\tx") == "Zürich\tx"


def test_validate_never_prints_raw_escape_sequences(tmp_path):
    evil = "\x1b]0;pwned\x07\x1b[2J"
    p = write(tmp_path / "x.csv", CSV + f"P3,tha,2021-05-06,{evil},{evil}\nP4,{evil},2021-01-01,50,male\n")
    code, out = cli("validate", p)
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned" in out  # shown, escaped
    code, out = cli("validate", p, "--json")
    assert "\x1b" not in out
