"""REDCap exports read with their data dictionary (hostats.sources.redcap).

The expected counts come from the CSV files themselves, read here with the csv module (not with hostats):
which rows are repeating-instrument rows, which records there are, what each field holds."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import hostats
from hostats.errors import DataError, SpecError
from hostats.sources.redcap import RedcapExport, parse_choices, read_dictionary
from tests.paths import DATA

RC = DATA / "redcap"
MIN_EXPORT, MIN_DICT, MIN_MAP = RC / "minimal_export.csv", RC / "minimal_dictionary.csv", RC / "minimal.mapping.toml"
EXPORT, DICTIONARY, MAPPING = RC / "ho_registry_export.csv", RC / "ho_registry_dictionary.csv", RC / "ho_registry.mapping.toml"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(r, _row=i) for i, r in enumerate(csv.DictReader(f), start=2)]


# --- the reproduction: a 6-row export with repeating instruments ----------------------------------

def test_minimal_export_repeating_rows_are_assessments_not_exclusions():
    rows = _rows(MIN_EXPORT)
    repeating = [r["_row"] for r in rows if r["redcap_repeat_instrument"]]
    assert len(rows) == 6 and len(repeating) == 3
    c = hostats.read_cohort(MIN_EXPORT, MIN_MAP, dictionary=MIN_DICT)
    assert len(c.excluded) == 0 and "required values" not in set(c.excluded["step"])
    assert c.ledger.rows_read == 3 and len(c.episodes) == 3
    assert sorted(c.assessments["source_row"]) == repeating
    # the flow's first line counts episode rows; the note accounts for all six
    assert c.flow().iloc[0]["rows_out"] == 3
    assert any("REDCap export of 6 row(s)" in n and "3 row(s) of the repeating instrument 'imaging'" in n
               for n in c.ledger.notes)
    ep = c.episodes.set_index("patient_id")
    assert ep.loc["1", "index_event"] == "tha" and ep.loc["3", "index_event"] == "long_bone_fracture"
    assert ep.loc["1", "sex"] == "female" and ep.loc["2", "sex"] == "male"  # labels from the dictionary
    # imaging: patient 1 negative on 2023-06-01, positive on 2023-12-01 -> interval bounds from those dates
    assert ep.loc["1", "ho_interval_lo_days"] == (pd.Timestamp("2023-06-01") - pd.Timestamp("2023-03-01")).days
    assert ep.loc["1", "ho_interval_hi_days"] == (pd.Timestamp("2023-12-01") - pd.Timestamp("2023-03-01")).days
    assert set(c.assessments["test"]) == {"xray"}


def test_without_the_dictionary_the_same_file_still_loses_rows():
    """What the issue reported, kept as a contrast: read as a plain CSV, the repeating rows are excluded."""
    c = hostats.read_cohort(MIN_EXPORT, {"columns": {"patient_id": "record_id", "index_event": "index_type",
                                                     "index_date": "surg_date"},
                                         "values": {"index_event": {"1": "tha", "2": "long_bone_fracture"}}})
    assert len(c.excluded) == 3


# --- the realistic example project ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry():
    return hostats.read_cohort(RC)  # the study folder: export.toml names kind, dictionary and mapping


def test_every_row_of_the_export_is_accounted_for(registry):
    rows = _rows(EXPORT)
    imaging = [r["_row"] for r in rows if r["redcap_repeat_instrument"] == "imaging"]
    other = [r["_row"] for r in rows if r["redcap_repeat_instrument"] not in ("", "imaging")]
    event_rows = [r for r in rows if not r["redcap_repeat_instrument"]]
    records = list(dict.fromkeys(r["record_id"] for r in event_rows))
    assert len(rows) == len(imaging) + len(other) + len(event_rows)
    c = registry
    assert c.ledger.rows_read == len(records)
    assert c.ledger.rows_read == len(c.episodes) + len(c.excluded)
    assert sorted(c.assessments["source_row"]) == imaging
    assert c.assessment_ledger.rows_read == len(imaging)
    src = RedcapExport(EXPORT, DICTIONARY, MAPPING)
    src.read_raw()
    acc = src.accounting
    assert acc["rows"] == len(rows)
    assert acc["rows"] == acc["episode_rows"] + acc["assessment_rows"] + sum(acc["unused_repeating_rows"].values())
    assert acc["unused_repeating_rows"] == {"adverse_event": len(other)}
    assert acc["episodes"] == len(records)
    note = next(n for n in c.ledger.notes if "REDCap export of" in n)
    assert f"REDCap export of {len(rows)} row(s)" in note and f"{len(other)} row(s) of other repeating" in note
    # the one exclusion: record 107 has no index event; it is named by its first row
    first_107 = min(r["_row"] for r in event_rows if r["record_id"] == "107")
    assert c.excluded[["source_row", "reason"]].values.tolist() == [[first_107, "no usable index_event"]]


def test_choices_checkboxes_and_events(registry):
    ep = registry.episodes.set_index("patient_id")
    rows = _rows(EXPORT)
    # checkboxes -> one category; "Radiotherapy + NSAID" (labels) names the combination 2+3
    assert ep.loc["104", "prophylaxis"] == "radiotherapy_nsaid"
    assert ep.loc["101", "prophylaxis"] == "radiotherapy" and ep.loc["102", "prophylaxis"] == "none"
    # an unmapped combination (radiotherapy + bisphosphonate) is a problem naming the record's row
    prob = registry.problems
    p111 = prob[(prob["column"] == "prophylaxis")]
    assert p111["value"].tolist() == ["Radiotherapy + Bisphosphonate"]
    assert pd.isna(ep.loc["111", "prophylaxis"])
    # a single box as a yes/no column: complications___2 (wound infection), ticked at week 6 only
    ticked = {r["record_id"] for r in rows if r["complications___2"] == "1"}
    assert set(ep.index[ep["wound_complication"].fillna(False).astype(bool)]) == ticked
    # codes -> canonical through [values] (code keys) ...
    assert ep.loc["109", "nsaid_agent"] == "other" and ep.loc["103", "nsaid_agent"] == "indomethacin"
    assert ep.loc["108", "index_event"] == "sci" and ep.loc["105", "index_event"] == "hip_revision"
    # ... number columns keep the codes (Brooker 0-4) ...
    assert ep.loc["102", "brooker_grade"] == 3
    # ... and labels where no table is given (sex: 1 = Male)
    assert ep.loc["101", "sex"] == "male"
    # events: fields filled in several events take the last event's value
    for rid in ("101", "102", "110"):
        last = [r["fu_date"] for r in rows if r["record_id"] == rid and r["fu_date"]][-1]
        assert ep.loc[rid, "last_followup_date"] == pd.Timestamp(last)
    assert bool(ep.loc["102", "ho"]) and ep.loc["102", "ho_date"] == pd.Timestamp("2022-09-14")
    assert ep.loc["105", "death_date"] == pd.Timestamp("2023-01-30")  # from the year-1 event row
    assert set(ep["site"]) == {"munich", "zurich"}  # data access group -> site
    # assessments: modalities by label, findings by code
    a = registry.assessments
    assert set(a["test"]) == {"xray", "bone_scan", "ct"} and set(a["result"]) == {"positive", "negative"}
    n_pos = sum(r["img_ho"] == "1" for r in rows if r["redcap_repeat_instrument"] == "imaging")
    assert int((a["result"] == "positive").sum()) == n_pos


def test_a_labels_export_reads_the_same(tmp_path):
    """REDCap's "labels" export writes choice labels and Checked/Unchecked instead of codes."""
    fields = read_dictionary(DICTIONARY)
    rows = _rows(EXPORT)
    for r in rows:
        for name, f in fields.items():
            if f.type in ("radio", "dropdown") and r.get(name) in f.choices:
                r[name] = f.choices[r[name]]
            if f.type == "checkbox":
                for code in f.choices:
                    col = f.checkbox_column(code)
                    if r.get(col) in ("0", "1"):
                        r[col] = {"1": "Checked", "0": "Unchecked"}[r[col]]
    out = tmp_path / "labels.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "_row"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    a = hostats.read_cohort(out, MAPPING, dictionary=DICTIONARY)
    b = hostats.read_cohort(EXPORT, MAPPING, dictionary=DICTIONARY)
    cols = ["patient_id", "index_event", "sex", "prophylaxis", "nsaid_agent", "brooker_grade", "wound_complication"]
    pd.testing.assert_frame_equal(a.episodes[cols], b.episodes[cols])
    assert a.assessments[["test", "result"]].equals(b.assessments[["test", "result"]])


# --- clear errors ---------------------------------------------------------------------------------------

def _dictionary_with(tmp_path: Path, old: str, new: str) -> Path:
    text = MIN_DICT.read_text(encoding="utf-8")
    assert old in text
    p = tmp_path / "dictionary.csv"
    p.write_text(text.replace(old, new), encoding="utf-8")
    return p


@pytest.mark.parametrize("old,new,match,field,row", [
    ('"1, Total hip arthroplasty | 2, Long bone fracture"', '"1, Total hip arthroplasty | 2 Long bone fracture"',
     r"choice '2 Long bone fracture' is not \"code, label\"", "index_type", 3),
    ('"1, Male | 2, Female"', '"1, Male | 1, Female"', "choice code '1' appears twice", "sex", 5),
    ("sex,baseline,,radio", "sex,baseline,,radiobutton", "field type 'radiobutton'", "sex", 5),
    ("img_type,imaging,,radio,\"Modality\",\"1, Plain radiograph | 2, Bone scan | 3, CT\"",
     "img_type,imaging,,radio,\"Modality\",", "has no choices", "img_type", 8),
    ("last_fu,baseline", "sex,baseline", "defined twice", "sex", 6),
])
def test_bad_dictionary_names_file_field_and_row(tmp_path, old, new, match, field, row):
    bad = _dictionary_with(tmp_path, old, new)
    with pytest.raises(DataError, match=match) as err:
        hostats.read_cohort(MIN_EXPORT, MIN_MAP, dictionary=bad)
    assert err.value.file == str(bad) and err.value.column == field and err.value.row == row


def test_parse_choices():
    assert parse_choices("1, THA | 2, Fracture, open | 99, Other", file="d", field_name="f", row=2) == \
        {"1": "THA", "2": "Fracture, open", "99": "Other"}


def test_not_a_dictionary(tmp_path):
    with pytest.raises(DataError, match="not a REDCap data dictionary") as err:
        hostats.read_cohort(MIN_EXPORT, MIN_MAP, dictionary=MIN_EXPORT)
    assert err.value.file == str(MIN_EXPORT)


def test_mapping_key_that_is_not_a_choice():
    bad = {"columns": {"index_event": "index_type", "index_date": "surg_date"},
           "values": {"index_event": {"1": "tha", "3": "burn"}}}
    with pytest.raises(SpecError, match=r"\[values.index_event\] '3' is not a choice of REDCap field 'index_type'"
                       r".*row 3.*1 = 'Total hip arthroplasty', 2 = 'Long bone fracture'"):
        hostats.read_cohort(MIN_EXPORT, bad, dictionary=MIN_DICT)


def test_mapping_names_a_field_the_dictionary_lacks(tmp_path):
    text = MIN_MAP.read_text(encoding="utf-8").replace('index_date = "surg_date"', 'index_date = "surgery_dt"')
    m = tmp_path / "m.toml"
    m.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=rf"{m}: \[columns\] index_date = 'surgery_dt' is not a field"):
        hostats.read_cohort(MIN_EXPORT, m, dictionary=MIN_DICT)


def test_bad_assessment_section(tmp_path):
    base = {"columns": {"index_event": "index_type", "index_date": "surg_date"}}
    with pytest.raises(SpecError, match="instrument = 'xray' is not a form"):
        hostats.read_cohort(MIN_EXPORT, dict(base, redcap={"assessments": {"instrument": "xray", "date": "img_date",
                                                                           "test": "img_type"}}),
                            dictionary=MIN_DICT)
    with pytest.raises(SpecError, match=r"values.test\] maps \{'1': 'mri'\}"):
        hostats.read_cohort(MIN_EXPORT, dict(base, redcap={"assessments": {
            "instrument": "imaging", "date": "img_date", "test": "img_type", "values": {"test": {"1": "mri"}}}}),
            dictionary=MIN_DICT)
    with pytest.raises(SpecError, match="'7' is not a choice of REDCap field 'img_type'"):
        hostats.read_cohort(MIN_EXPORT, dict(base, redcap={"assessments": {
            "instrument": "imaging", "date": "img_date", "test": "img_type", "values": {"test": {"7": "ct"}}}}),
            dictionary=MIN_DICT)


def test_assessment_section_without_result_names_the_mapping_and_key(tmp_path):
    """Issue 15: without a result field the cleaning of the assessments raised KeyError: 'result'."""
    text = MIN_MAP.read_text(encoding="utf-8").replace('result = "img_result"\n', "")
    text = text.replace('[redcap.assessments.values.result]\n"Yes" = "positive"\n"No" = "negative"\n', "")
    assert "result" not in text
    m = tmp_path / "m.toml"
    m.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=rf"{m}: \[redcap.assessments\] needs result = \"<field>\""):
        hostats.read_cohort(MIN_EXPORT, m, dictionary=MIN_DICT)
    from hostats.cli import app

    r = CliRunner().invoke(app, ["validate", str(MIN_EXPORT), "-m", str(m), "--dictionary", str(MIN_DICT)])
    assert r.exit_code == 1 and "needs result" in r.output and "KeyError" not in r.output, r.output


def test_export_of_another_project(tmp_path):
    with pytest.raises(DataError, match="no column 'record_id', the record ID") as err:
        hostats.read_cohort(DATA / "bmtcrr.csv", dictionary=MIN_DICT)
    assert err.value.column == "record_id"


def test_unknown_choice_in_the_data_is_named_with_its_row(tmp_path):
    text = MIN_EXPORT.read_text(encoding="utf-8").replace("3,,,2,2023-05-20,2", "3,,,2,2023-05-20,7")
    p = tmp_path / "export.csv"
    p.write_text(text, encoding="utf-8")
    c = hostats.read_cohort(p, MIN_MAP, dictionary=MIN_DICT)
    assert any("field 'sex': value(s) ['7'] in row(s) [7] are not choices" in n for n in c.ledger.notes)
    assert c.problems[["source_row", "column", "value"]].values.tolist() == [[7, "sex", "7"]]


def test_study_folder_paths_stay_inside(tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(RC, folder)
    spec = (folder / "export.toml").read_text().replace('dictionary = "ho_registry_dictionary.csv"',
                                                        'dictionary = "../dictionary.csv"')
    (folder / "export.toml").write_text(spec)
    shutil.copy(DICTIONARY, tmp_path / "dictionary.csv")
    with pytest.raises(SpecError, match="dictionary = '../dictionary.csv' leaves the study folder"):
        hostats.read_cohort(folder)


def test_validate_command():
    from hostats.cli import app

    res = CliRunner().invoke(app, ["validate", str(MIN_EXPORT), "--dictionary", str(MIN_DICT), "-m", str(MIN_MAP),
                                   "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["rows_read"] == 3 and out["rows_excluded"] == 0 and out["assessments"]["rows_read"] == 3
    res = CliRunner().invoke(app, ["validate", str(MIN_EXPORT), "--dictionary", str(MIN_EXPORT)])
    assert res.exit_code == 1 and "not a REDCap data dictionary" in res.output and "Traceback" not in res.output


def test_api_metadata_headers_read_the_same(tmp_path):
    """The API's metadata export names the dictionary's columns field_name, form_name, field_type, ..."""
    api = {"Variable / Field Name": "field_name", "Form Name": "form_name", "Field Type": "field_type",
           "Field Label": "field_label", "Choices, Calculations, OR Slider Labels": "select_choices_or_calculations",
           "Text Validation Type OR Show Slider Number": "text_validation_type_or_show_slider_number"}
    d = pd.read_csv(DICTIONARY, dtype=str, keep_default_na=False).rename(columns=api)
    p = tmp_path / "metadata.csv"
    d.to_csv(p, index=False)
    assert read_dictionary(p) == {k: v for k, v in read_dictionary(DICTIONARY).items()}
    a = hostats.read_cohort(EXPORT, MAPPING, dictionary=p)
    b = hostats.read_cohort(EXPORT, MAPPING, dictionary=DICTIONARY)
    pd.testing.assert_frame_equal(a.episodes.drop(columns="source_file"), b.episodes.drop(columns="source_file"))


def test_repeating_event_as_assessments_and_two_arms(tmp_path):
    """Imaging as a repeating event (instrument column empty, instance set) and a record in two arms."""
    export = tmp_path / "export.csv"
    export.write_text(
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,index_type,surg_date,sex,"
        "last_fu,img_date,img_type,img_result\n"
        "1,surgery_arm_1,,,1,2023-03-01,2,2024-03-05,,,\n"
        "1,imaging_arm_1,,1,,,,,2023-06-01,1,0\n"
        "1,imaging_arm_1,,2,,,,,2023-12-01,1,1\n"
        "1,surgery_arm_2,,,2,2024-05-01,2,2024-09-30,,,\n"
        "2,surgery_arm_1,,,1,2023-04-11,1,2024-04-20,,,\n"
        "2,imaging_arm_1,,1,,,,,2023-10-15,3,0\n", encoding="utf-8")
    text = MIN_MAP.read_text(encoding="utf-8").replace('instrument = "imaging"', 'event = "imaging_arm_1"')
    m = tmp_path / "m.toml"
    m.write_text(text, encoding="utf-8")
    c = hostats.read_cohort(export, m, dictionary=MIN_DICT)
    assert c.ledger.rows_read == 3 and len(c.excluded) == 0      # record 1 in arm 1 and arm 2, record 2
    assert sorted(c.assessments["source_row"]) == [3, 4, 7]
    ep = c.episodes.sort_values("source_row")
    assert ep["source_row"].tolist() == [2, 5, 6]
    assert ep["index_event"].astype(str).tolist() == ["tha", "long_bone_fracture", "tha"]
    with pytest.raises(SpecError, match="event = 'imaging_arm_9' does not occur"):
        m.write_text(text.replace("imaging_arm_1", "imaging_arm_9"), encoding="utf-8")
        hostats.read_cohort(export, m, dictionary=MIN_DICT)


def test_an_export_with_label_headers_is_told_so(tmp_path):
    fields = read_dictionary(MIN_DICT)
    with open(MIN_EXPORT, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[0] = [fields[h].label if h in fields else h for h in rows[0]]
    p = tmp_path / "labels_headers.csv"
    with open(p, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DataError, match="headers are the fields' labels") as err:
        hostats.read_cohort(p, MIN_MAP, dictionary=MIN_DICT)
    assert err.value.file == str(p)


@pytest.mark.parametrize("source", [[MIN_EXPORT, MIN_EXPORT], pd.DataFrame({"record_id": [1]})])
def test_kind_needs_one_path(source):
    with pytest.raises(SpecError, match="is a path or URL"):
        hostats.read_cohort(source, dictionary=MIN_DICT)


def test_unknown_kind():
    with pytest.raises(SpecError, match="source kind 'redcapp' is not one of"):
        hostats.read_cohort(MIN_EXPORT, kind="redcapp")
