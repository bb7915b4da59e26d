"""Readers, the mapping file and synonyms (hostats.ingest via read_cohort). Every bad input of issue 2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hostats
from hostats.errors import DataError, SpecError
from hostats.ingest import load_mapping, sniff_delimiter

TODAY = "2026-01-01"
HEADER = "patient_id,index_event,index_date,age_years,sex\n"
ROWS = "P1,tha,2021-03-04,61,male\nP2,tha,2021-05-06,70,female\n"
DATA = Path(hostats.__file__).parent / "data"


def write(tmp_path: Path, text: str | bytes, name: str = "x.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def small_frame() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "index_event": ["tha", "sci", "burn"],
                         "index_date": pd.to_datetime(["2021-03-04", "2020-01-02", "2019-07-08"]),
                         "age_years": [61.0, 30.5, 44.0], "sex": ["male", "female", "male"]})


# --- CSV / text ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path, sep):
    p = write(tmp_path, (HEADER + ROWS).replace(",", sep))
    c = hostats.read_cohort(p, today=TODAY)
    assert list(c.episodes["patient_id"]) == ["P1", "P2"]
    assert c.episodes["age_years"].tolist() == [61.0, 70.0]


def test_sniff_delimiter_falls_back_to_counts():
    assert sniff_delimiter("a;b;c\n") == ";"
    assert sniff_delimiter("") == ","


def test_bom_is_removed(tmp_path):
    p = write(tmp_path, b"\xef\xbb\xbf" + (HEADER + ROWS).encode())
    c = hostats.read_cohort(p, today=TODAY)
    assert "patient_id" in c.episodes.columns and len(c.episodes) == 2


@pytest.mark.parametrize("eol", ["\r", "\r\n"])
def test_classic_mac_and_windows_line_endings(tmp_path, eol):
    # Excel for Mac 2011 "CSV (Macintosh)" ends lines with a bare CR
    p = write(tmp_path, (HEADER + ROWS).replace("\n", eol))
    c = hostats.read_cohort(p, today=TODAY)
    assert list(c.episodes["patient_id"]) == ["P1", "P2"] and c.episodes["sex"].tolist() == ["male", "female"]


def test_binary_file_with_a_text_name_is_named_as_such(tmp_path):
    xlsx = tmp_path / "real.xlsx"
    small_frame().to_excel(xlsx, index=False)
    p = write(tmp_path, xlsx.read_bytes(), name="export.csv")
    with pytest.raises(DataError, match="binary, not delimited text") as err:
        hostats.read_cohort(p, today=TODAY)
    assert "export.csv" in str(err.value)


def test_latin1_accents(tmp_path):
    text = "patient_id;index_event;index_date;site\nP1;tha;2021-03-04;Zürich\nP2;tha;2021-03-05;Besançon\n"
    p = write(tmp_path, text.encode("latin-1"))
    c = hostats.read_cohort(p, today=TODAY)
    assert c.episodes["site"].tolist() == ["Zürich", "Besançon"]


def test_utf8_accents_kept(tmp_path):
    p = write(tmp_path, "patient_id,index_event,index_date,site\nP1,tha,2021-03-04,Zürich\n")
    assert hostats.read_cohort(p, today=TODAY).episodes["site"].tolist() == ["Zürich"]


def test_declared_encoding_that_does_not_fit(tmp_path):
    p = write(tmp_path, "patient_id,index_event,index_date,site\nP1,tha,2021-03-04,Zürich\n".encode("latin-1"))
    with pytest.raises(DataError, match="not encoded as utf-8"):
        hostats.read_cohort(p, {"source": {"encoding": "utf-8"}}, today=TODAY)


def test_tsv_extension(tmp_path):
    p = write(tmp_path, (HEADER + ROWS).replace(",", "\t"), "x.tsv")
    assert len(hostats.read_cohort(p, today=TODAY).episodes) == 2


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="empty") as e:
        hostats.read_cohort(write(tmp_path, ""), today=TODAY)
    assert e.value.file.endswith("x.csv")


def test_blank_lines_only(tmp_path):
    with pytest.raises(DataError, match="blank"):
        hostats.read_cohort(write(tmp_path, "\n\n  \n"), today=TODAY)


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="no data rows"):
        hostats.read_cohort(write(tmp_path, HEADER), today=TODAY)


def test_wrong_delimiter_names_the_problem(tmp_path):
    p = write(tmp_path, (HEADER + ROWS).replace(",", ";"))
    with pytest.raises(DataError) as e:
        hostats.read_cohort(p, {"source": {"delimiter": ","}}, today=TODAY)
    msg = str(e.value)
    assert "required column(s)" in msg and "delimiter looks wrong" in msg and "patient_id;index_event" in msg


def test_required_column_missing_names_it_and_lists_found(tmp_path):
    p = write(tmp_path, "patient_id,index_date,age\nP1,2021-01-01,50\n")
    with pytest.raises(DataError) as e:
        hostats.read_cohort(p, today=TODAY)
    msg = str(e.value)
    assert "['index_event']" in msg and "columns found: ['patient_id', 'index_date', 'age']" in msg
    assert e.value.column == "index_event"


def test_blank_lines_keep_row_numbers(tmp_path):
    p = write(tmp_path, HEADER + "P1,tha,2021-03-04,61,male\n\nP2,tha,2021-13-01,70,female\n")
    c = hostats.read_cohort(p, today=TODAY)
    # line 4 of the file (header 1, blank line 3); the blank line is a row read and excluded
    assert c.excluded[["source_row", "reason"]].values.tolist() == [[3, "empty row"], [4, "no usable index_date"]]
    assert c.ledger.rows_read == 3


def test_ragged_line_is_a_clear_error(tmp_path):
    p = write(tmp_path, HEADER + "P1,tha,2021-03-04,61,male,extra,more\n")
    with pytest.raises(DataError, match="7 fields but the header has 5.*row 2"):
        hostats.read_cohort(p, today=TODAY)


def test_duplicated_column_names_identical_copies(tmp_path):
    p = write(tmp_path, "patient_id,index_event,index_date,sex,sex\nP1,tha,2021-01-01,male,male\n")
    c = hostats.read_cohort(p, today=TODAY)
    assert c.episodes["sex"].tolist() == ["male"]
    assert any("appears 2 times" in n for n in c.ledger.notes)


def test_duplicated_column_names_that_differ(tmp_path):
    p = write(tmp_path, "patient_id,index_event,index_date,sex,sex\nP1,tha,2021-01-01,male,female\n")
    with pytest.raises(DataError, match="'sex' appears 2 times"):
        hostats.read_cohort(p, today=TODAY)


def test_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="unknown file type"):
        hostats.read_cohort(write(tmp_path, "x", "x.json"), today=TODAY)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        hostats.read_cohort(tmp_path / "nope.csv", today=TODAY)


# --- other formats ---------------------------------------------------------------------------------------

def test_excel_sheet_selectable_and_missing_sheet(tmp_path):
    p = tmp_path / "x.xlsx"
    with pd.ExcelWriter(p) as w:
        pd.DataFrame({"a": [1]}).to_excel(w, sheet_name="notes", index=False)
        small_frame().to_excel(w, sheet_name="episodes", index=False)
    c = hostats.read_cohort(p, sheet="episodes", today=TODAY)
    assert c.episodes["index_date"].tolist() == list(small_frame()["index_date"])
    assert c.episodes["source_row"].tolist() == [2, 3, 4]
    c2 = hostats.read_cohort(p, {"source": {"sheet": "episodes"}}, today=TODAY)
    assert len(c2.episodes) == 3
    with pytest.raises(DataError, match=r"sheet 'cohort' does not exist; sheets: \['notes', 'episodes'\]"):
        hostats.read_cohort(p, sheet="cohort", today=TODAY)


def test_excel_serial_numbers_and_text_in_excel(tmp_path):
    p = tmp_path / "x.xlsx"
    df = pd.DataFrame({"patient_id": [101, 102], "index_event": ["THA", "tha"], "index_date": [44197, "2021-02-30"]})
    df.to_excel(p, index=False)
    c = hostats.read_cohort(p, today=TODAY)
    assert c.episodes["patient_id"].tolist() == ["101"]  # whole numbers are ids, not "101.0"
    assert c.episodes["index_date"].tolist() == [pd.Timestamp("2021-01-01")]
    assert c.excluded["source_row"].tolist() == [3]


def test_not_an_excel_file(tmp_path):
    with pytest.raises(DataError, match="Excel"):
        hostats.read_cohort(write(tmp_path, "hello", "x.xlsx"), today=TODAY)


def test_parquet(tmp_path):
    p = tmp_path / "x.parquet"
    small_frame().to_parquet(p)
    c = hostats.read_cohort(p, today=TODAY)
    assert c.episodes["age_years"].tolist() == [61.0, 30.5, 44.0]
    assert c.provenance["sources"][0]["sha256"]


def test_stata(tmp_path):
    p = tmp_path / "x.dta"
    small_frame().to_stata(p, write_index=False)
    c = hostats.read_cohort(p, today=TODAY)
    assert c.episodes["index_event"].tolist() == ["tha", "sci", "burn"]
    assert c.episodes["index_date"].tolist() == list(small_frame()["index_date"])


def test_spss_and_sas_transport(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    df = small_frame().assign(index_date=small_frame()["index_date"].dt.date)
    sav, xpt = tmp_path / "x.sav", tmp_path / "x.xpt"
    pyreadstat.write_sav(df, str(sav))
    pyreadstat.write_xport(df.rename(columns={"index_event": "indexevt", "patient_id": "patid",
                                              "index_date": "op_date", "age_years": "age"}), str(xpt))
    for p, m in ((sav, None), (xpt, {"columns": {"index_event": "indexevt"}})):  # SAS names: 8 characters
        c = hostats.read_cohort(p, m, today=TODAY)
        assert c.episodes["patient_id"].tolist() == ["P1", "P2", "P3"], p
        assert c.episodes["index_date"].tolist() == list(small_frame()["index_date"]), p


def test_sas7bdat_reader(tmp_path, monkeypatch):
    # no library writes sas7bdat: check the dispatch with a stand-in, and a corrupt file for real
    pyreadstat = pytest.importorskip("pyreadstat")
    p = write(tmp_path, b"not a SAS file", "x.sas7bdat")
    with pytest.raises(DataError, match=r"not a .sas7bdat file|cannot read the .sas7bdat file"):
        hostats.read_cohort(p, today=TODAY)
    p = write(tmp_path, b"\x00\x00SAS binary stand-in", "x.sas7bdat")  # binary, so it reaches the reader
    calls = []
    monkeypatch.setattr(pyreadstat, "read_sas7bdat", lambda path, **kw: (calls.append(path), (small_frame(), None))[1])
    assert len(hostats.read_cohort(p, today=TODAY).episodes) == 3 and calls == [str(p)]


def test_corrupt_parquet(tmp_path):
    with pytest.raises(DataError, match=r"not a .parquet file|cannot read the .parquet file"):
        hostats.read_cohort(write(tmp_path, "not parquet", "x.parquet"), today=TODAY)


# --- SQL --------------------------------------------------------------------------------------------------

def make_db(tmp_path: Path) -> str:
    import sqlite3
    db = tmp_path / "c.db"
    with sqlite3.connect(db) as con:
        small_frame().assign(index_date=lambda d: d["index_date"].dt.strftime("%Y-%m-%d")).to_sql(
            "episodes", con, index=False)
    return f"sqlite:///{db}"


def test_sqlite_table_and_query(tmp_path):
    url = make_db(tmp_path)
    assert len(hostats.read_cohort(url, table="episodes", today=TODAY).episodes) == 3
    c = hostats.read_cohort(url, query="select * from episodes where index_event = 'tha'", today=TODAY)
    assert c.episodes["patient_id"].tolist() == ["P1"]


def test_sql_missing_table_lists_tables(tmp_path):
    url = make_db(tmp_path)
    with pytest.raises(DataError, match=r"table 'cohort' not found .*tables: \['episodes'\]"):
        hostats.read_cohort(url, table="cohort", today=TODAY)
    with pytest.raises(DataError, match="exactly one of table= or query="):
        hostats.read_cohort(url, today=TODAY)
    with pytest.raises(DataError, match="cannot read from"):
        hostats.read_cohort(url, query="select * from nowhere", today=TODAY)


def test_sql_cannot_connect_without_echoing_credentials(tmp_path):
    with pytest.raises(DataError, match="does not exist") as e:
        hostats.read_cohort(f"sqlite:///{tmp_path}/missing.db", table="x", today=TODAY)
    url = "postgresql://alice:s3cr3tpw@127.0.0.1:1/cohort"
    with pytest.raises(DataError) as e:
        hostats.read_cohort(url, table="episodes", today=TODAY)
    msg = str(e.value)
    assert "s3cr3tpw" not in msg and "cannot" in msg and "alice" in msg
    with pytest.raises(DataError, match="not a valid database URL"):
        hostats.read_cohort("sqlite://:bad:url/x?", table="t", today=TODAY)


# --- DataFrame, lists, folders ------------------------------------------------------------------------------

def test_dataframe_is_not_modified_and_rows_numbered_from_2():
    df = small_frame()
    before = df.copy()
    c = hostats.read_cohort(df, today=TODAY)
    pd.testing.assert_frame_equal(df, before)
    assert c.episodes["source_row"].tolist() == [2, 3, 4]
    assert c.episodes["source_file"].astype(str).unique().tolist() == ["<DataFrame>"]


def test_unsupported_source_type():
    with pytest.raises(DataError, match="cannot read a int"):
        hostats.read_cohort(42)


def test_list_of_sources_with_one_mapping_each(tmp_path):
    a = write(tmp_path, HEADER.replace("sex", "prior_ho") + ROWS.replace("female", "no").replace("male", "yes"),
              "a.csv")
    b = write(tmp_path, "PatID;Gender;procedure;surgery_date\nQ1;M;THA;04.03.2021\n", "b.csv")
    c = hostats.read_cohort([a, b], [None, {"dates": {"format": "dayfirst"}}], today=TODAY)
    assert c.episodes["patient_id"].tolist() == ["P1", "P2", "Q1"]
    assert c.episodes["index_date"].iloc[2] == pd.Timestamp("2021-03-04")
    assert c.flow().iloc[0]["rows_out"] == 3
    assert c.episodes["prior_ho"].tolist()[:2] == [True, False]
    for col, dtype in (("sex", "category"), ("prior_ho", "boolean"), ("index_date", "datetime64[ns]")):
        assert str(c.episodes[col].dtype) == dtype  # a column absent from one source keeps its type
    assert c.episodes["sex"].tolist()[2] == "male" and pd.isna(c.episodes["age_years"].iloc[2])
    with pytest.raises(DataError, match="2 sources but 3 mappings"):
        hostats.read_cohort([a, b], [None, None, None])
    with pytest.raises(DataError, match="empty list"):
        hostats.read_cohort([])


def test_study_folder(tmp_path):
    write(tmp_path, HEADER + ROWS, "site_A.csv")
    write(tmp_path, "PatID;Proc;Datum\nB1;HTEP;04.03.2021\n", "site_B.csv")
    (tmp_path / "site_B.mapping.toml").write_text(
        '[columns]\npatient_id = "PatID"\nindex_event = "Proc"\nindex_date = "Datum"\n'
        '[values.index_event]\n"HTEP" = "tha"\n[dates]\nformat = "dayfirst"\n')
    write(tmp_path, "patient_id,date,test,result,value\nP1,2021-04-01,xray,negative,\nP1,2021-06-01,xray,positive,\n"
          "B1,2021-05-01,alp,,180\n", "assessments.csv")
    (tmp_path / "export.toml").write_text(
        '[[episodes]]\npath = "site_A.csv"\nsite = "A"\n\n[[episodes]]\npath = "site_B.csv"\n'
        'mapping = "site_B.mapping.toml"\nsite = "B"\n\n[assessments]\npath = "assessments.csv"\n')
    c = hostats.read_cohort(tmp_path, today=TODAY)
    ep = c.episodes.set_index("patient_id")
    assert ep["site"].to_dict() == {"P1": "A", "P2": "A", "B1": "B"}
    assert ep.loc["B1", "index_event"] == "tha"
    assert ep.loc["P1", "ho_interval_lo_days"] == (pd.Timestamp("2021-04-01") - pd.Timestamp("2021-03-04")).days
    assert ep.loc["P1", "ho_interval_hi_days"] == (pd.Timestamp("2021-06-01") - pd.Timestamp("2021-03-04")).days
    assert len(c.assessments) == 3 and len(c.provenance["sources"]) == 3


def test_folder_without_export_toml(tmp_path):
    with pytest.raises(DataError, match="export.toml"):
        hostats.read_cohort(tmp_path)
    (tmp_path / "export.toml").write_text("[assessments]\npath='a.csv'\n")
    with pytest.raises(SpecError, match="episodes"):
        hostats.read_cohort(tmp_path)


# --- mapping ------------------------------------------------------------------------------------------------

def test_bundled_example_with_mapping():
    c = hostats.read_cohort(DATA / "example_cohort.csv", DATA / "example_cohort.mapping.toml",
                            DATA / "example_assessments.csv", today=TODAY)
    ep = c.episodes
    assert set(ep["index_event"].dropna()) <= {"tha", "hip_revision"}
    assert set(ep["sex"].dropna()) == {"male", "female"}
    assert set(ep["rt_dose_gy"].dropna()) == {7.0}  # 700 cGy
    assert ep["site"].str.contains("ü").any()
    assert c.ledger.rows_read == len(ep) + len(c.excluded) == 62
    assert ep["ho_interval_hi_days"].notna().all()


def test_mapping_rename_values_units_booleans_missing(tmp_path):
    p = write(tmp_path, "PID;Proc;OP;Dose;HOyn;Sex\nA;HTEP;03/04/21;750;ja;1\nB;HTEP;03/04/21;-99;nein;2\n")
    m = {"source": {"delimiter": ";", "missing": ["-99"]},
         "columns": {"patient_id": "PID", "index_event": "proc", "index_date": "OP", "rt_dose_gy": "Dose",
                     "ho": "HOyn", "sex": "Sex"},
         "values": {"index_event": {"htep": "tha"}, "sex": {"1": "male", "2": "female"}},
         "dates": {"format": "monthfirst"}, "units": {"rt_dose_gy": "cGy"},
         "booleans": {"true": ["ja"], "false": ["nein"]}}
    c = hostats.read_cohort(p, m, today=TODAY)
    ep = c.episodes
    assert ep["index_date"].tolist() == [pd.Timestamp("2021-03-04")] * 2
    assert ep["rt_dose_gy"].iloc[0] == pytest.approx(7.5) and np.isnan(ep["rt_dose_gy"].iloc[1])
    assert ep["ho"].tolist() == [True, False]
    assert ep["sex"].tolist() == ["male", "female"]


def test_mapping_a_value_to_empty_text_makes_it_missing_without_a_problem(tmp_path):
    p = write(tmp_path, HEADER + "P1,tha,2021-03-04,61,M\nP2,tha,2021-05-06,70,X\n")
    c = hostats.read_cohort(p, {"values": {"sex": {"M": "male", "X": ""}}}, today=TODAY)
    assert c.episodes["sex"].iloc[0] == "male" and pd.isna(c.episodes["sex"].iloc[1])
    assert c.problems.empty  # declared by the user, so not reported as an unknown code
    assert c.flow().set_index("step").loc["value mapping", "rows_changed"] == 2


def test_mapping_excel_serial_per_column(tmp_path):
    p = write(tmp_path, "patient_id,index_event,index_date,ho,ho_date\nA,tha,2021-01-01,yes,44256\n")
    c = hostats.read_cohort(p, {"dates": {"columns": {"ho_date": "excel"}}}, today=TODAY)
    assert c.episodes["ho_date"].iloc[0] == pd.Timestamp("2021-03-01")


def test_mapping_strftime_format(tmp_path):
    p = write(tmp_path, "patient_id,index_event,index_date\nA,tha,2021|03|04\n")
    c = hostats.read_cohort(p, {"dates": {"format": "%Y|%m|%d"}}, today=TODAY)
    assert c.episodes["index_date"].iloc[0] == pd.Timestamp("2021-03-04")


def test_mapping_toml_file_and_errors(tmp_path):
    good = tmp_path / "m.toml"
    good.write_text('[columns]\npatient_id = "PID"\n[units]\nrt_dose_gy = "cGy"\n')
    assert load_mapping(good).columns == {"patient_id": "PID"}
    bad = tmp_path / "bad.toml"
    for text, match in [("[columns\n", "not a valid TOML"), ('[columns]\npatientid = "x"\n', "not canonical"),
                        ('[units]\nrt_dose_gy = "rad"\n', "not supported"),
                        ('[dates]\nformat = "weird"\n', "date format"), ("[colums]\n", "unknown section"),
                        ('[columns]\nsex = "X"\nsite = "X"\n', "more than one canonical"),
                        ('[values.sex]\nM = "mle"\n', "not sex codes")]:
        bad.write_text(text)
        with pytest.raises(SpecError, match=match):
            load_mapping(bad)
    with pytest.raises(DataError, match="mapping file not found"):
        load_mapping(tmp_path / "none.toml")


def test_mapping_names_a_column_the_file_lacks(tmp_path):
    p = write(tmp_path, HEADER + ROWS)
    with pytest.raises(DataError, match="no such column; columns found"):
        hostats.read_cohort(p, {"columns": {"sex": "Gender"}}, today=TODAY)


# --- synonyms -------------------------------------------------------------------------------------------------

def test_synonyms_and_unrecognised_columns(tmp_path):
    p = write(tmp_path, "Patient ID,Procedure,Surgery Date,Gender,Age,Favourite colour\nA,THA,2021-01-01,F,50,red\n")
    c = hostats.read_cohort(p, today=TODAY)
    ep = c.episodes
    assert ep[["patient_id", "index_event", "sex", "age_years"]].iloc[0].tolist() == ["A", "tha", "female", 50.0]
    assert "Favourite colour" not in ep.columns
    assert any("Favourite colour" in n for n in c.ledger.notes)
    assert c.provenance["sources"][0]["unrecognised_columns"] == ["Favourite colour"]


def test_synonyms_do_not_guess(tmp_path):
    # "op" or "date" alone could be anything: not recognised, so index_date is missing
    p = write(tmp_path, "patient_id,index_event,date\nA,tha,2021-01-01\n")
    with pytest.raises(DataError, match="index_date"):
        hostats.read_cohort(p, today=TODAY)


def test_two_columns_claim_the_same_canonical(tmp_path):
    p = write(tmp_path, "patient_id,index_event,index_date,gender,sex_at_birth\nA,tha,2021-01-01,F,F\n")
    with pytest.raises(DataError, match="could all be 'sex'"):
        hostats.read_cohort(p, today=TODAY)


def test_date_of_birth_gives_age_and_is_dropped(tmp_path):
    p = write(tmp_path, "patient_id,index_event,index_date,DOB\nA,tha,2021-01-01,1951-01-01\n")
    c = hostats.read_cohort(p, today=TODAY)
    assert c.episodes["age_years"].iloc[0] == pytest.approx(70.0, abs=0.01)
    assert "date_of_birth" not in c.episodes.columns


def test_study_folder_assessments_with_their_own_mapping(tmp_path):
    write(tmp_path, HEADER + ROWS, "ep.csv")
    write(tmp_path, "PatNr;Datum;Test;Befund\nP1;01.05.2021;Roentgen;pos\n", "a.csv")
    (tmp_path / "a.toml").write_text('[columns]\npatient_id = "PatNr"\ndate = "Datum"\ntest = "Test"\n'
                                     'result = "Befund"\n[values.test]\n"Roentgen" = "xray"\n'
                                     '[dates]\nformat = "dayfirst"\n')
    (tmp_path / "export.toml").write_text('[[episodes]]\npath = "ep.csv"\n[assessments]\npath = "a.csv"\n'
                                          'mapping = "a.toml"\n')
    c = hostats.read_cohort(tmp_path, today=TODAY)
    assert c.assessments[["test", "result"]].values.tolist() == [["xray", "positive"]]
    assert c.episodes["ho_interval_hi_days"].iloc[0] == 58.0  # 2021-03-04 -> 2021-05-01


def test_unrecognised_columns_are_named_up_to_a_hundred(tmp_path):
    """A 5,000-column export gets a one-line note naming the first 100 columns and how many more, not a
    40 kB list."""
    extra = [f"x{i}" for i in range(5000)]
    text = HEADER.rstrip("\n") + "," + ",".join(extra) + "\n" + \
        "".join(r + "," + ",".join("1" * 5000) + "\n" for r in ROWS.splitlines())
    c = hostats.read_cohort(write(tmp_path, text), today=TODAY)
    note = next(n for n in c.ledger.notes if "not recognised" in n)
    assert "'x99'" in note and "'x100'" not in note and "and 4,900 more" in note and len(note) < 1500
    few = hostats.read_cohort(write(tmp_path, HEADER.rstrip("\n") + ",zz\n" + ROWS.replace("\n", ",1\n")),
                              today=TODAY)
    assert any("['zz'] (map them" in n for n in few.ledger.notes)
