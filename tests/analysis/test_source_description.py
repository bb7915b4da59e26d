"""The report's data line names what was read, by file name only: never a folder path and never the
credentials of a database URL."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from hostats.analysis.writer import _describe_source


def test_one_export_with_its_mapping():
    assert _describe_source(Path("/home/ana/private/site_a.csv"), {"mapping": "/home/ana/private/site_a.toml"}) \
        == "site_a.csv, read with its mapping site_a.toml"


def test_several_exports_are_named_not_called_a_data_frame():
    got = _describe_source([Path("/x/site_a.csv"), "/x/site_b.xlsx"], {})
    assert got == "2 exports: site_a.csv, site_b.xlsx"


def test_a_data_frame_is_a_data_frame():
    assert _describe_source(pd.DataFrame({"a": [1]}), {"kind": None}) == "a data frame"


def test_a_database_url_keeps_no_credentials():
    got = _describe_source("postgresql://ana:s3cret@db.example.org:5432/cdm?sslmode=require", {"kind": "omop"})
    assert got == "OMOP CDM database cdm (postgresql)"
    assert "s3cret" not in got and "ana" not in got


def test_redcap_export_with_dictionary_and_assessments():
    got = _describe_source("/d/export.csv", {"kind": "redcap", "dictionary": "/d/dict.csv", "mapping": None,
                                             "assessments": "/d/imaging.csv"})
    assert got == "REDCap export export.csv, read with its data dictionary dict.csv, assessments imaging.csv"
