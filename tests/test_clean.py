"""Every cleaning rule (hostats.clean): what it changes, what it reports, what it excludes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hostats
from hostats import clean
from hostats.ingest import Mapping
from hostats.ledger import Ledger

TODAY = "2026-01-01"
BASE = {"patient_id": "P1", "index_event": "tha", "index_date": "2021-03-04"}


def read(rows: list[dict], mapping=None, **kw) -> hostats.Cohort:
    """A cohort from rows (dicts); patient ids P1, P2, ... unless given."""
    recs = [{**BASE, "patient_id": f"P{i + 1}", **r} for i, r in enumerate(rows)]
    return hostats.read_cohort(pd.DataFrame(recs), mapping, today=TODAY, **kw)


def problems(c, column=None) -> pd.DataFrame:
    p = c.problems
    return p[p["column"] == column] if column else p


def step(c, name) -> pd.Series:
    f = c.flow().set_index("step")
    return f.loc[name]


# --- missing-value tokens ---------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["", "NA", "N/A", ".", "-", "unknown", "Unknown ", " null", "?"])
def test_missing_tokens_become_missing_without_a_problem(token):
    c = read([{"sex": token, "age_years": token}])
    assert c.episodes["sex"].isna().all() and c.episodes["age_years"].isna().all()
    assert problems(c).empty


def test_none_is_a_code_not_a_missing_token_for_prophylaxis():
    c = read([{"prophylaxis": "none", "sex": "none"}])
    assert c.episodes["prophylaxis"].tolist() == ["none"]
    assert c.episodes["sex"].isna().all()


def test_source_missing_tokens_in_text_and_numeric_columns():
    c = read([{"age_years": -99.0}, {"age_years": 50.0}], {"source": {"missing": ["-99"]}})
    assert c.episodes["age_years"].isna().tolist() == [True, False]
    assert problems(c).empty  # a declared missing code is not a range problem
    assert step(c, "missing-value tokens")["rows_changed"] == 1


# --- type coercion per cell --------------------------------------------------------------------------------

def test_text_in_a_numeric_column_is_reported_with_row_and_set_missing(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("patient_id,index_event,index_date,age_years\nA,tha,2021-01-01,55\nB,tha,2021-01-01,abc\n")
    c = hostats.read_cohort(p, today=TODAY)
    pr = problems(c, "age_years")
    assert pr[["source_row", "value", "problem", "action"]].values.tolist() == \
        [[3, "abc", "not a number", "set missing"]]
    assert c.episodes["age_years"].isna().tolist() == [False, True]
    assert len(c.episodes) == 2  # a bad optional cell never excludes the row


def test_decimal_comma_and_fraction_in_whole_number_column():
    c = read([{"age_years": "61,5", "brooker_grade": "1.5"}, {"age_years": "70", "brooker_grade": "2"}])
    assert c.episodes["age_years"].tolist() == [61.5, 70.0]
    assert c.episodes["brooker_grade"].isna().tolist() == [True, False]
    assert problems(c, "brooker_grade")["problem"].tolist() == ["not a whole number"]
    assert str(c.episodes["brooker_grade"].dtype) == "Int64"


def test_booleans_tokens_and_bad_value():
    vals = ["yes", "No", "1", "0", "TRUE", "f", "ja", "maybe"]
    c = read([{"prior_ho": v} for v in vals])
    assert c.episodes["prior_ho"].tolist()[:7] == [True, False, True, False, True, False, True]
    assert c.episodes["prior_ho"].isna().tolist()[7]
    assert problems(c, "prior_ho")["value"].tolist() == ["maybe"]
    assert str(c.episodes["prior_ho"].dtype) == "boolean"


def test_boolean_extra_tokens_from_mapping():
    c = read([{"ho": "si claro"}, {"ho": "nope"}], {"booleans": {"true": ["si claro"], "false": ["nope"]}})
    assert c.episodes["ho"].tolist() == [True, False]


def test_category_synonyms_case_and_spaces():
    c = read([{"sex": " M ", "prophylaxis": "RT + NSAID", "detection_modality": "X-ray"},
              {"sex": "Female", "prophylaxis": "Radiotherapy", "detection_modality": "bone scan"}])
    assert c.episodes["sex"].tolist() == ["male", "female"]
    assert c.episodes["prophylaxis"].tolist() == ["radiotherapy_nsaid", "radiotherapy"]
    assert c.episodes["detection_modality"].tolist() == ["xray", "bone_scan"]
    assert list(c.episodes["prophylaxis"].cat.categories) == list(hostats.schema.PROPHYLAXES)


def test_code_typo_optional_is_set_missing_with_a_hint():
    c = read([{"prophylaxis": "radiotheraphy"}])
    pr = problems(c, "prophylaxis")
    assert pr["action"].tolist() == ["set missing"]
    assert "did you mean 'radiotherapy'" in pr["problem"].iloc[0]
    assert c.episodes["prophylaxis"].isna().all()


def test_code_typo_required_excludes_the_row():
    c = read([{"index_event": "thx"}, {}])
    assert c.excluded["source_row"].tolist() == [2]
    assert c.excluded["reason"].tolist() == ["no usable index_event"]
    assert problems(c, "index_event")["action"].tolist() == ["excluded row (required column)"]


def test_values_mapping_applies_before_code_check():
    c = read([{"sex": "1"}, {"sex": "2"}], {"values": {"sex": {"1": "male", "2": "female"}}})
    assert c.episodes["sex"].tolist() == ["male", "female"]
    assert step(c, "value mapping")["rows_changed"] == 2


# --- dates ----------------------------------------------------------------------------------------------------

def test_mixed_date_formats_in_one_column():
    c = read([{"index_date": v} for v in ["2021-03-04", "04.03.2021", "2021-03-04 00:00:00", "20210304"]])
    assert c.episodes["index_date"].tolist() == [pd.Timestamp("2021-03-04")] * 4


def test_impossible_date_is_reported_and_required_excludes():
    c = read([{"index_date": "2021-02-30"}, {"index_date": "2021-02-28", "death_date": "2021-02-31"}])
    pr = problems(c)
    assert pr["column"].tolist() == ["index_date", "death_date"]
    assert pr["problem"].str.startswith("impossible date").all()
    assert c.excluded["source_row"].tolist() == [2]
    assert c.episodes["death_date"].isna().all()


def test_not_a_date():
    c = read([{"ho_date": "soon", "ho": "yes"}])
    assert problems(c, "ho_date")["problem"].iloc[0] == "not a date"


def test_two_digit_years_pivot_on_today():
    c = read([{"index_date": "05.03.21"}, {"index_date": "05.03.85"}])
    assert c.episodes["index_date"].tolist() == [pd.Timestamp("2021-03-05"), pd.Timestamp("1985-03-05")]
    assert any("two-digit years" in n for n in c.ledger.notes)


def test_excel_serials_auto_and_declared():
    c = read([{"index_date": "44197"}, {"index_date": 44198}])
    assert c.episodes["index_date"].tolist() == [pd.Timestamp("2021-01-01"), pd.Timestamp("2021-01-02")]
    c = read([{"index_date": "44197.0", "last_followup_date": "44561"}, {"index_date": "1"}],
             {"dates": {"columns": {"index_date": "excel", "last_followup_date": "excel"}}})
    assert c.episodes["index_date"].tolist() == [pd.Timestamp("2021-01-01")]
    assert c.episodes["last_followup_date"].tolist() == [pd.Timestamp("2021-12-31")]
    assert problems(c, "index_date")["problem"].tolist() == ["date before 1900"]  # serial 1 = 1899-12-31
    c = read([{"ho": "yes", "ho_date": "999999"}], {"dates": {"format": "excel"}})
    assert problems(c, "ho_date")["problem"].tolist()[0] == "date in the future"


def test_excel_serial_note_holds_no_date_for_the_report_to_redact():
    from hostats.report.tables import redact_text

    notes = read([{"index_date": "44197"}]).ledger.notes
    assert notes == ["<DataFrame>: index_date: Excel serial day numbers converted (Excel's 1900 date system)"]
    assert redact_text(notes[0]) == notes[0]   # was "... (origin [date])" in the report


def test_slash_dates_day_or_month_first_decided_by_the_column():
    day = read([{"index_date": "13/02/2021"}, {"index_date": "03/02/2021"}]).episodes["index_date"]
    assert day.tolist() == [pd.Timestamp("2021-02-13"), pd.Timestamp("2021-02-03")]
    month = read([{"index_date": "02/13/2021"}, {"index_date": "03/02/2021"}]).episodes["index_date"]
    assert month.tolist() == [pd.Timestamp("2021-02-13"), pd.Timestamp("2021-03-02")]
    c = read([{"index_date": "03/02/2021"}])
    assert any("day-first" in n for n in c.ledger.notes)
    c = read([{"index_date": "03/02/2021"}], {"dates": {"format": "monthfirst"}})
    assert c.episodes["index_date"].iloc[0] == pd.Timestamp("2021-03-02")


def test_future_dates():
    c = read([{"index_date": "2030-01-01"}, {"ho": "yes", "ho_date": "2027-05-05"}, {"index_date": "3021-01-01"}])
    assert c.excluded["source_row"].tolist() == [2, 4]
    assert problems(c, "ho_date")["problem"].tolist()[0] == "date in the future"
    assert (problems(c, "index_date")["problem"] == "date in the future").all()
    assert c.episodes["ho_date"].isna().all()


def test_datetime_input_with_timezone_and_time():
    ts = pd.to_datetime(["2021-03-04 13:45"]).tz_localize("Europe/Zurich")
    c = read([{"index_date": ts[0]}])
    assert c.episodes["index_date"].iloc[0] == pd.Timestamp("2021-03-04")


# --- plausibility -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("column,value", [("age_years", -1), ("age_years", 111), ("rt_dose_gy", 700),
                                          ("brooker_grade", 5), ("gcs_score", 2), ("tbsa_burned_percent", 101)])
def test_out_of_range_is_set_missing(column, value):
    row = {column: value}
    if column == "rt_dose_gy":
        row["prophylaxis"] = "radiotherapy"
    c = read([row])
    assert c.episodes[column].isna().all()
    assert problems(c, column)["problem"].iloc[0].startswith("outside the plausible range")


def test_negative_age_row_is_kept():
    c = read([{"age_years": -40}])
    assert len(c.episodes) == 1 and c.episodes["age_years"].isna().all()


# --- required values, duplicates ---------------------------------------------------------------------------------

def test_missing_required_values_exclude_with_named_reason():
    c = read([{"patient_id": ""}, {"index_date": ""}, {"index_event": "", "index_date": ""}, {}])
    assert c.excluded["reason"].tolist() == ["no usable patient_id", "no usable index_date",
                                             "no usable index_event, index_date"]
    assert len(c.episodes) == 1


def test_exact_duplicates_removed_first_kept():
    c = read([{"patient_id": "A", "age_years": 50}, {"patient_id": "A", "age_years": 50},
              {"patient_id": "A", "age_years": "50.0"}])
    assert c.episodes["source_row"].tolist() == [2]
    assert c.excluded["step"].tolist() == ["exact duplicates"] * 2
    assert c.excluded["reason"].str.contains("exact duplicate of row 2").all()


def test_conflicting_duplicates_all_excluded():
    c = read([{"patient_id": "A", "age_years": 50}, {"patient_id": "A", "age_years": 51},
              {"patient_id": "B"}, {"patient_id": "A", "index_date": "2022-01-01"}])
    ex = c.excluded
    assert ex["source_row"].tolist() == [2, 3]
    assert (ex["reason"] == "conflicting records for the same patient and index date (rows 2, 3)").all()
    assert c.episodes["source_row"].tolist() == [4, 5]


def test_duplicates_compared_after_cleaning():
    c = read([{"patient_id": "A", "sex": "M"}, {"patient_id": "A", "sex": "male"}])
    assert step(c, "exact duplicates")["rows_excluded"] == 1
    assert step(c, "conflicting duplicates")["rows_excluded"] == 0


# --- logical consistency ----------------------------------------------------------------------------------------

def test_dates_before_index_are_set_missing():
    c = read([{"ho": "yes", "ho_date": "2021-01-01", "death_date": "2021-01-02",
               "last_followup_date": "2021-02-01"}])
    pr = problems(c)
    assert set(pr["problem"]) >= {"ho_date before index_date", "death_date before index_date",
                                  "last_followup_date before index_date"}
    ep = c.episodes
    assert ep[["ho_date", "death_date", "last_followup_date"]].isna().all().all()
    assert len(ep) == 1


def test_ho_after_death_and_followup_after_death():
    c = read([{"ho": "yes", "ho_date": "2021-06-01", "death_date": "2021-05-01", "last_followup_date": "2021-07-01"}])
    assert set(problems(c)["problem"]) >= {"ho_date after death_date", "last_followup_date after death_date"}
    ep = c.episodes.iloc[0]
    assert pd.isna(ep["ho_date"]) and pd.isna(ep["last_followup_date"]) and ep["death_date"] == pd.Timestamp("2021-05-01")


def test_ho_date_after_last_contact():
    c = read([{"ho": "yes", "ho_date": "2021-09-01", "last_followup_date": "2021-06-01"}])
    pr = problems(c, "last_followup_date")
    assert pr["problem"].str.startswith("ho_date after last_followup_date").all()
    assert pd.isna(c.episodes["last_followup_date"].iloc[0])


def test_brooker_grade_implies_ho():
    c = read([{"ho": "no", "brooker_grade": 3}, {"ho": "no", "brooker_grade": 0},
              {"ho": "yes", "ho_date": "2021-05-01", "brooker_grade": 2}])
    assert c.episodes["brooker_grade"].tolist()[1:] == [0, 2]
    assert pd.isna(c.episodes["brooker_grade"].iloc[0])
    assert problems(c, "brooker_grade")["source_row"].tolist() == [2]


def test_ho_and_ho_date():
    c = read([{"ho": "", "ho_date": "2021-05-01"}, {"ho": "no", "ho_date": "2021-05-01"}, {"ho": "yes"}])
    ep = c.episodes
    assert ep["ho"].tolist() == [True, False, True]
    assert ep["ho_date"].isna().tolist() == [False, True, True]
    pr = problems(c)
    assert pr["action"].tolist() == ["ho set true", "ho_date set missing", "flagged"]


def test_radiotherapy_implies_a_dose_and_dose_implies_radiotherapy():
    c = read([{"prophylaxis": "radiotherapy"}, {"prophylaxis": "nsaid", "rt_dose_gy": 7},
              {"prophylaxis": "radiotherapy_nsaid", "rt_dose_gy": 7}])
    assert c.episodes["rt_dose_gy"].isna().tolist() == [True, True, False]
    pr = problems(c, "rt_dose_gy")
    assert pr["problem"].tolist() == ["rt_dose_gy given but prophylaxis is not radiotherapy",
                                      "radiotherapy without a dose"]
    assert pr["action"].tolist() == ["rt_dose_gy set missing", "flagged"]


def test_nsaid_prophylaxis_with_agent_none():
    c = read([{"prophylaxis": "nsaid", "nsaid_agent": "none"}, {"prophylaxis": "nsaid", "nsaid_agent": "ibuprofen"}])
    assert c.episodes["nsaid_agent"].isna().tolist() == [True, False]


def test_unit_conversion_cgy():
    c = read([{"prophylaxis": "radiotherapy", "rt_dose_gy": "700"}], {"units": {"rt_dose_gy": "cGy"}})
    assert c.episodes["rt_dose_gy"].tolist() == [7.0]
    assert "converted from cGy" in step(c, "numbers")["reason"]


# --- each rule records itself and never mutates ---------------------------------------------------------------

def test_every_cell_rule_records_a_step_and_keeps_its_input():
    raw = pd.DataFrame({"source_file": pd.Categorical(["f"] * 3), "source_row": np.array([2, 3, 4]),
                        "patient_id": ["A", "B", "C"], "index_event": ["tha", "x", "tha"],
                        "index_date": ["2021-01-01", "2021-02-30", "2021-01-03"], "age_years": ["1", "abc", "-5"]})
    before = raw.copy()
    ctx = clean.Context(Ledger(), Mapping(), pd.Timestamp(TODAY))
    frame = raw
    for rule in clean.CELL_RULES:
        n_steps = len(ctx.ledger.steps)
        frame = rule(frame, ctx)
        assert len(ctx.ledger.steps) >= n_steps + (rule is not clean.age_from_birth_date), rule.__name__
    pd.testing.assert_frame_equal(raw, before)
    flow = ctx.ledger.flow().set_index("step")
    assert flow.loc["numbers", "rows_changed"] == 1
    assert flow.loc["plausible ranges", "rows_changed"] == 1
    assert flow.loc["dates", "rows_changed"] == 1
