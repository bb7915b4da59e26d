"""Cohort: derived time-to-event columns, interval bounds, filter, provenance, schema (hostats.cohort)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hostats
from hostats.cohort import validate_schema
from hostats.errors import DataError
from hostats.schema import CODE_LISTS, episode_schema

TODAY = "2026-01-01"


def frame() -> pd.DataFrame:
    """Five episodes with known outcomes (days from index 2021-01-01)."""
    return pd.DataFrame({
        "patient_id": ["A", "B", "C", "D", "E"],
        "index_event": ["tha", "tha", "sci", "tha", "burn"],
        "index_date": ["2021-01-01"] * 5,
        "age_years": [60, 70, 30, 80, 45],
        "sex": ["male", "female", "male", "female", "male"],
        "ho": ["yes", "no", "no", "yes", ""],
        "ho_date": ["2021-03-02", "", "", "2021-02-01", ""],    # A: day 60, D: day 31
        "death_date": ["", "2021-07-20", "", "2021-06-01", ""],  # B: day 200 (death without HO)
        "last_followup_date": ["2021-12-27", "", "2021-04-11", "", "2021-05-01"],  # A: 360, C: 100
    })


def test_derived_status_time_followup():
    ep = hostats.read_cohort(frame(), today=TODAY).episodes.set_index("patient_id")
    assert ep["status"].tolist()[:4] == [1, 2, 0, 1]
    assert pd.isna(ep.loc["E", "status"])  # HO unknown and alive: the outcome is unknown
    assert ep["time_days"].tolist()[:4] == [60.0, 200.0, 100.0, 31.0]
    assert np.isnan(ep.loc["E", "time_days"])
    assert ep["followup_days"].tolist() == [360.0, 200.0, 100.0, 151.0, 120.0]
    assert str(ep["status"].dtype) == "Int64" and ep["time_days"].dtype == "float64"
    # HO unknown and died: HO may have come first, so the outcome is unknown too
    died = hostats.read_cohort(frame().assign(death_date=["", "2021-07-20", "", "2021-06-01", "2021-03-01"]),
                               today=TODAY).episodes
    assert pd.isna(died["status"].iloc[4]) and np.isnan(died["time_days"].iloc[4])
    assert died["followup_days"].iloc[4] == 59.0


def test_hand_computed_days_match_pandas_date_arithmetic():
    ep = hostats.read_cohort(frame(), today=TODAY).episodes
    a = ep[ep["patient_id"] == "A"].iloc[0]
    assert a["time_days"] == (pd.Timestamp("2021-03-02") - pd.Timestamp("2021-01-01")).days == 31 + 28 + 1


def test_interval_bounds_from_assessments():
    ass = pd.DataFrame({
        "patient_id": ["A", "A", "A", "A", "B", "B", "C", "A"],
        "date": ["2021-01-15", "2021-02-10", "2021-03-02", "2021-04-01", "2021-02-01", "2021-05-01",
                 "2021-02-01", "2020-06-01"],
        "test": ["xray", "bone_scan", "xray", "xray", "xray", "ct", "alp", "xray"],
        "result": ["negative", "negative", "positive", "negative", "negative", "negative", "", "positive"],
        "value": ["", "", "", "", "", "", "150", ""],
    })
    c = hostats.read_cohort(frame(), assessments=ass, today=TODAY)
    ep = c.episodes.set_index("patient_id")
    # A: negatives at day 14 and 40, first positive at day 60 (the later negative and the pre-index
    #    positive do not count)
    assert (ep.loc["A", "ho_interval_lo_days"], ep.loc["A", "ho_interval_hi_days"]) == (40.0, 60.0)
    # B: only negatives -> right-censored at the last one (day 120), hi = inf
    assert ep.loc["B", "ho_interval_lo_days"] == 120.0 and np.isinf(ep.loc["B", "ho_interval_hi_days"])
    # C: only ALP, D/E: nothing -> not applicable
    assert ep.loc[["C", "D", "E"], ["ho_interval_lo_days", "ho_interval_hi_days"]].isna().all().all()
    assert len(c.assessments) == 8 and str(c.assessments["test"].dtype) == "category"


def test_positive_at_first_imaging_gives_lo_zero():
    ass = pd.DataFrame({"patient_id": ["A"], "date": ["2021-02-01"], "test": ["xray"], "result": ["positive"]})
    ep = hostats.read_cohort(frame(), assessments=ass, today=TODAY).episodes.set_index("patient_id")
    assert (ep.loc["A", "ho_interval_lo_days"], ep.loc["A", "ho_interval_hi_days"]) == (0.0, 31.0)


def test_assessments_go_to_the_latest_episode_before_them():
    f = pd.DataFrame({"patient_id": ["A", "A"], "index_event": ["tha", "tha"],
                      "index_date": ["2020-01-01", "2021-01-01"]})
    ass = pd.DataFrame({"patient_id": ["A", "A"], "date": ["2020-03-01", "2021-02-01"], "test": ["xray", "xray"],
                        "result": ["positive", "positive"]})
    ep = hostats.read_cohort(f, assessments=ass, today=TODAY).episodes
    assert ep["ho_interval_hi_days"].tolist() == [60.0, 31.0]


def test_bad_assessments():
    ass = pd.DataFrame({"patient_id": ["A", "", "A"], "date": ["2021-02-01", "2021-02-01", "2021-02-30"],
                        "test": ["mri", "xray", "xray"], "result": ["positive", "positive", "maybe"]})
    c = hostats.read_cohort(frame(), assessments=ass, today=TODAY)
    assert len(c.assessments) == 0 and c.assessment_ledger.rows_excluded == 3
    assert c.assessment_ledger.rows_read == 3
    with pytest.raises(DataError, match=r"assessments: required column\(s\) \['test'\]"):
        hostats.read_cohort(frame(), assessments=ass.drop(columns="test"), today=TODAY)


def test_filter_query_mask_callable():
    c = hostats.read_cohort(frame(), today=TODAY)
    f1 = c.filter("primary THA", "index_event == 'tha'")
    assert f1.episodes["patient_id"].tolist() == ["A", "B", "D"]
    assert f1.flow().iloc[-1][["step", "rows_in", "rows_excluded", "rows_out"]].tolist() == ["primary THA", 5, 2, 3]
    assert f1.excluded["reason"].tolist() == ["primary THA (index_event == 'tha')"] * 2
    assert len(c.episodes) == 5 and len(c.flow()) == len(f1.flow()) - 1  # the original is untouched
    f2 = f1.filter("known outcome", lambda d: d["ho"].notna())
    assert f2.episodes["patient_id"].tolist() == ["A", "B", "D"]
    f3 = f2.filter("age over 65", (f2.episodes["age_years"] > 65).to_numpy())
    assert f3.episodes["patient_id"].tolist() == ["B", "D"]
    assert f3.ledger.rows_read == len(f3.episodes) + len(f3.excluded)
    # NA counts as not kept
    f4 = c.filter("had HO", "ho == True")
    assert f4.episodes["patient_id"].tolist() == ["A", "D"]


def test_filter_errors():
    c = hostats.read_cohort(frame(), today=TODAY)
    with pytest.raises(DataError, match="criterion 'x': cannot evaluate"):
        c.filter("x", "no_such_column > 3")
    with pytest.raises(DataError, match="must give true/false"):
        c.filter("x", "age_years + 1")
    with pytest.raises(DataError, match="mask has 2 values for 5 episodes"):
        c.filter("x", [True, False])


def test_provenance_and_types():
    c = hostats.read_cohort(frame(), today=TODAY)
    src = c.provenance["sources"][0]
    assert src["rows_read"] == 5 and len(src["sha256"]) == 64
    ep = c.episodes
    assert str(ep["index_date"].dtype) == "datetime64[ns]"
    assert list(ep["index_event"].cat.categories) == list(CODE_LISTS["index_event"])
    assert str(ep["ho"].dtype) == "boolean" and str(ep["patient_id"].dtype) == "string"
    validate_schema(ep)


def test_sha256_differs_when_data_differ():
    a = hostats.read_cohort(frame(), today=TODAY).provenance["sources"][0]["sha256"]
    b = hostats.read_cohort(frame().assign(age_years=[60, 70, 30, 80, 46]), today=TODAY).provenance["sources"][0]
    assert a != b["sha256"]


def test_pandera_schema_rejects_a_bad_table():
    import pandera.errors

    ep = hostats.read_cohort(frame(), today=TODAY).episodes.copy()
    ep["age_years"] = ep["age_years"] + 100
    with pytest.raises(pandera.errors.SchemaErrors):
        episode_schema().validate(ep, lazy=True)


def test_summary_and_completeness():
    c = hostats.read_cohort(frame(), today=TODAY)
    s = c.summary()
    assert s["rows_read"] == 5 and s["rows_kept"] == 5 and s["flow"][0]["step"] == "read"
    assert repr(c) == "Cohort(5 episodes kept of 5 rows read, 0 excluded, 0 cell problems)"
    comp = c.completeness().set_index("column")
    assert comp.loc["ho", "present"] == 4 and comp.loc["ho", "percent_present"] == 80.0
    assert not comp.loc["gcs_score", "in_source"]


def test_assessments_without_result_or_value_column():
    """A table of one kind needs no column of the other kind; a missing column that rows need is one error
    naming the file, the column and the first row (was: "unexpected KeyError" from the cleaning)."""
    imaging = pd.DataFrame({"patient_id": ["A", "B"], "date": ["2021-02-01", "2021-03-01"],
                            "test": ["xray", "xray"], "result": ["positive", "negative"]})
    alp = pd.DataFrame({"patient_id": ["A", "B"], "date": ["2021-02-01", "2021-03-01"], "test": ["alp", "alp"],
                        "value": ["150", "90"]})
    c = hostats.read_cohort(frame(), assessments=imaging, today=TODAY)
    assert len(c.assessments) == 2 and c.assessments["value"].isna().all()
    c = hostats.read_cohort(frame(), assessments=alp, today=TODAY)
    assert c.assessments["value"].tolist() == [150.0, 90.0] and c.assessments["result"].isna().all()
    mixed = pd.concat([alp, imaging.drop(columns="result")], ignore_index=True)
    with pytest.raises(DataError, match=r"no 'result' column, but 2 imaging row\(s\) .* \(first at row 4\)") as e:
        hostats.read_cohort(frame(), assessments=mixed, today=TODAY)
    assert (e.value.column, e.value.row) == ("result", 4)
    with pytest.raises(DataError, match=r"no 'value' column, but 2 alp row\(s\)") as e:
        hostats.read_cohort(frame(), assessments=pd.concat([alp.drop(columns="value"), imaging]), today=TODAY)
    assert e.value.column == "value"
