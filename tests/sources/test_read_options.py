"""``sheet``, ``table`` and ``query`` choose what is read of an Excel file or a SQL database. A REDCap export
(the project's CSV export, read whole with its data dictionary) and an OMOP CDM (read by hostats' own cohort
query over the CDM tables, the concept sets deciding the cohort) read what they need themselves, so with
them the three are refused, not silently ignored: in a spec's ``[data]`` (a SpecError at the key's line), by
``read_cohort``, by ``run_analysis`` when the caller's kind meets the spec's sheet, and on the command line.
Without a kind they are taken where they apply: a sheet of an Excel workbook, a table or a query (not both)
of a database; of any other file they are refused too (a CSV file is read whole). A spec's three belong to
its own data: a run given other data does not use them."""
from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import hostats
from hostats.analysis import load_spec, run_analysis
from hostats.cli import app
from hostats.errors import SpecError
from tests.paths import DATA

RC = DATA / "redcap"
EXPORT, DICTIONARY, MAPPING = RC / "ho_registry_export.csv", RC / "ho_registry_dictionary.csv", RC / "ho_registry.mapping.toml"
SAYS = {"redcap": "a REDCap export is the project's CSV export, read whole with its data dictionary",
        "omop": "an OMOP CDM (a DuckDB file, a folder of CDM tables or a postgresql:// URL) is read by hostats' "
                "own read-only cohort query"}
VALUES = {"sheet": '"Cohort"', "table": '"episodes"', "query": '"SELECT * FROM episodes"'}


def _spec(folder, data_lines: list[str]) -> str:
    text = "\n".join(["# a spec", "[analysis]", 'title = "t"', "", "[data]", *data_lines, "",
                      "[[section]]", 'type = "proportion"', ""])
    (folder / "analysis.toml").write_text(text, encoding="utf-8")
    return text


@pytest.mark.parametrize("key", list(VALUES))
@pytest.mark.parametrize("kind, source", [
    ("redcap", ['path = "export.csv"', 'kind = "redcap"', 'dictionary = "dictionary.csv"']),
    ("redcap", ['path = "export.csv"', 'dictionary = "dictionary.csv"']),      # the dictionary says REDCap
    ("omop", ['path = "cdm.duckdb"', 'kind = "omop"']),
])
def test_a_spec_refuses_them_with_a_structured_source_at_the_keys_line(tmp_path, kind, source, key):
    text = _spec(tmp_path, [source[0], f"{key} = {VALUES[key]}", *source[1:]])
    line = text.splitlines().index(f"{key} = {VALUES[key]}") + 1
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'analysis.toml'}, line {line}: [data] {key}: {SAYS[kind]}"), msg
    assert msg.endswith(f"a {key} does not apply to it (remove {key})"), msg


@pytest.mark.parametrize("key", list(VALUES))
def test_a_spec_without_a_kind_keeps_them(tmp_path, key):
    path = "cohort.xlsx" if key == "sheet" else "sqlite:///cohort.db"
    _spec(tmp_path, [f'path = "{path}"', f"{key} = {VALUES[key]}"])
    assert load_spec(tmp_path).data[key] == VALUES[key].strip('"')


@pytest.mark.parametrize("kwargs, kind", [({"kind": "omop"}, "omop"), ({"dictionary": DICTIONARY}, "redcap"),
                                          ({"kind": "redcap", "dictionary": DICTIONARY}, "redcap")])
@pytest.mark.parametrize("key", list(VALUES))
def test_read_cohort_refuses_them_before_reading(tmp_path, kwargs, kind, key):
    value = VALUES[key].strip('"')
    with pytest.raises(SpecError, match="^" + re.escape(f"{key}={value!r}: {SAYS[kind]}")):
        hostats.read_cohort(tmp_path / "not_read.csv", **kwargs, **{key: value})


def test_read_cohort_refuses_them_with_a_source_object():
    from hostats.sources.redcap import RedcapExport

    with pytest.raises(SpecError, match="^" + re.escape(f"table='x': {SAYS['redcap']}")):
        hostats.read_cohort(RedcapExport(EXPORT, DICTIONARY, MAPPING), table="x")
    assert len(hostats.read_cohort(RedcapExport(EXPORT, DICTIONARY, MAPPING)).episodes) > 0   # without: read


def test_run_analysis_refuses_the_specs_sheet_for_its_own_path_read_as_a_structured_source(tmp_path):
    """The spec's sheet goes to the read of its own path: with a kind given to the run for that path, the run
    refuses it at the spec's line before reading anything."""
    text = _spec(tmp_path, ['path = "cohort.xlsx"', "sheet = 2"])
    with pytest.raises(SpecError) as err:
        run_analysis(tmp_path, tmp_path / "out", kind="omop")
    line = text.splitlines().index("sheet = 2") + 1
    assert str(err.value).startswith(f"{tmp_path / 'analysis.toml'}, line {line}: [data] sheet: {SAYS['omop']}")
    assert not (tmp_path / "out").exists()


class _Read(Exception):
    pass


def _capture_read(monkeypatch) -> dict:
    """Stop a run at its read of the data, keeping the read's keyword arguments."""
    import hostats.cohort

    seen: dict = {}

    def read(source, *args, **kwargs):
        seen.update(kwargs, source=source)
        raise _Read

    monkeypatch.setattr(hostats.cohort, "read_cohort", read)
    return seen


@pytest.mark.parametrize("key", list(VALUES))
def test_run_analysis_with_other_data_does_not_use_the_specs_read_options(tmp_path, monkeypatch, key):
    """A spec's sheet, table and query belong to the spec's own data (its path): a run given other data reads
    it with the read options given to the run, never with the spec's."""
    path = "cohort.xlsx" if key == "sheet" else "sqlite:///cohort.db"
    _spec(tmp_path, [f'path = "{path}"', f"{key} = {VALUES[key]}"])
    seen = _capture_read(monkeypatch)
    with pytest.raises(_Read):
        run_analysis(tmp_path, tmp_path / "out", data=EXPORT, kind="redcap", dictionary=DICTIONARY)
    assert seen["source"] == EXPORT and not {"sheet", "table", "query"} & set(seen)
    other = tmp_path / "other.xlsx"
    other.write_bytes(b"")
    with pytest.raises(_Read):
        run_analysis(tmp_path, tmp_path / "out", data=other, read_options={"sheet": "Cohort"})
    assert seen["source"] == other and seen["sheet"] == "Cohort" and "table" not in seen and "query" not in seen


@pytest.mark.parametrize("path, key, what", [
    ("cohort.csv", "sheet", "a plain CSV file, read whole, (cohort.csv)"),
    ("cohort.csv", "table", "a plain CSV file, read whole, (cohort.csv)"),
    ("cohort.csv", "query", "a plain CSV file, read whole, (cohort.csv)"),
    ("cohort.parquet", "sheet", "a .parquet file, read whole, (cohort.parquet)"),
    ("cohort.xlsx", "table", "an Excel workbook (cohort.xlsx)"),
    ("sqlite:///cohort.db", "sheet", "a database (URL)"),
])
def test_a_spec_refuses_a_read_option_its_file_has_not_at_the_keys_line(tmp_path, path, key, what):
    text = _spec(tmp_path, [f'path = "{path}"', f"{key} = {VALUES[key]}"])
    line = text.splitlines().index(f"{key} = {VALUES[key]}") + 1
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'analysis.toml'}, line {line}: [data] {key}: {what}: a {key} does not "
                              f"apply to it (sheet is for an Excel workbook, table and query for a database URL; "
                              f"remove {key})")


def test_a_spec_refuses_table_and_query_together_at_the_querys_line(tmp_path):
    text = _spec(tmp_path, ['path = "sqlite:///cohort.db"', f"query = {VALUES['query']}", 'table = "episodes"'])
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path)
    line = text.splitlines().index(f"query = {VALUES['query']}") + 1
    assert str(err.value).startswith(f"{tmp_path / 'analysis.toml'}, line {line}: [data] query: give one of table "
                                     "or query, not both")


def test_read_cohort_refuses_a_sheet_of_a_csv_file_before_reading(tmp_path):
    with pytest.raises(SpecError, match="^" + re.escape("sheet='Cohort': a plain CSV file, read whole, "
                                                        "(not_read.csv): a sheet does not apply to it")):
        hostats.read_cohort(tmp_path / "not_read.csv", sheet="Cohort")
    with pytest.raises(SpecError, match="^" + re.escape("query='SELECT 1': give one of table or query")):
        hostats.read_cohort("sqlite:///not_read.db", table="t", query="SELECT 1")


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("options, says", [
    (["--sheet", "Cohort"], "a plain CSV file, read whole, (ho_registry_export.csv): a sheet does not apply"),
    (["--table", "t", "--query", "SELECT 1"], "give one of table or query, not both"),
])
def test_the_command_line_refuses_a_read_option_of_a_csv_file_in_one_line(tmp_path, monkeypatch, command,
                                                                         options, says):
    monkeypatch.chdir(tmp_path)
    head = (["run", "tha_incidence", "--out", "report", "--quiet", "--data"] if command == "run"
            else ["validate"])
    res = CliRunner().invoke(app, [*head, str(EXPORT), "--mapping", str(MAPPING), *options])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    key = "query" if "--query" in options else "sheet"
    prefix = f"--{key}: " if command == "run" else f"{key}={options[options.index('--' + key) + 1]!r}: "
    assert lines[0].startswith(f"error: {prefix}{says}"), lines[0]
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("command", ["run", "validate"])
def test_the_command_line_refuses_them_in_one_line(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    head = (["run", "tha_incidence", "--out", "report", "--quiet", "--data"] if command == "run"
            else ["validate"])
    res = CliRunner().invoke(app, [*head, str(EXPORT), "--dictionary", str(DICTIONARY), "--mapping", str(MAPPING),
                                   "--sheet", "Cohort"])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    says = "--sheet: " if command == "run" else "sheet='Cohort': "
    assert lines[0].startswith(f"error: {says}{SAYS['redcap']}"), lines[0]
    assert not (tmp_path / "report").exists()
