"""Property-based tests (hypothesis): on messy generated exports, the ledger invariant holds, cleaning never
modifies its input, and cleaning a cleaned cohort changes nothing."""
from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostats
from hostats.cohort import validate_schema

TODAY = "2026-01-01"

# messy values per column: good codes, other spellings, typos, missing tokens, wrong types
POOLS = {
    "patient_id": ["A", "B", "C", "D", " A ", "", "NA", "unknown", "12", "12.0"],
    "site": ["X", "Y", "", "-"],
    "index_event": ["tha", "THA", "Total hip arthroplasty", "sci", "burn", "thx", "", "N/A", "resection"],
    "index_date": ["2021-01-01", "01.01.2021", "2021-02-30", "13/02/2021", "44197", "05.03.21", "",
                   "3021-01-01", "1800-01-01", "garbage", "2021-01-01 00:00:00"],
    "age_years": ["55", "61,5", "abc", "-3", "200", "", "70.25", "0"],
    "sex": ["male", "F", "m", "Female", "x", "", "unknown"],
    "prior_ho": ["yes", "no", "1", "0", "maybe", ""],
    "prophylaxis": ["none", "radiotherapy", "RT", "nsaid", "radiotherapy_nsaid", "radiotheraphy", ""],
    "rt_dose_gy": ["7", "8", "700", "", "x", "-1"],
    "nsaid_agent": ["none", "indomethacin", "ibuprofen", "aspirin", ""],
    "ho": ["yes", "no", "", "2", "TRUE"],
    "ho_date": ["2021-03-01", "2020-12-01", "", "2021-02-30", "2022-06-01", "2027-01-01"],
    "brooker_grade": ["0", "1", "4", "5", "1.5", ""],
    "death_date": ["", "", "2021-06-01", "2020-06-01"],
    "last_followup_date": ["2021-12-31", "2021-02-01", "", "2020-01-01", "2022-01-01"],
}


@st.composite
def messy_frames(draw) -> pd.DataFrame:
    optional = [c for c in POOLS if c not in ("patient_id", "index_event", "index_date")]
    cols = ["patient_id", "index_event", "index_date"] + draw(
        st.lists(st.sampled_from(optional), unique=True, max_size=len(optional)))
    n = draw(st.integers(1, 12))
    data = {c: draw(st.lists(st.sampled_from(POOLS[c]), min_size=n, max_size=n)) for c in cols}
    frame = pd.DataFrame(data)
    if n > 1 and draw(st.booleans()):  # an exact duplicate row
        frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    return frame


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(messy_frames())
def test_ledger_invariant_and_input_unmodified(frame):
    before = frame.copy()
    c = hostats.read_cohort(frame, today=TODAY)
    pd.testing.assert_frame_equal(frame, before)
    read, kept, excluded = c.ledger.rows_read, len(c.episodes), c.excluded
    assert read == len(frame) == kept + len(excluded)
    # every source row is either kept or excluded, never both
    rows = sorted(c.episodes["source_row"].tolist() + excluded["source_row"].tolist())
    assert rows == list(range(2, len(frame) + 2))
    assert excluded["reason"].str.len().gt(0).all()
    flow = c.flow()
    assert (flow["rows_out"] == flow["rows_in"] - flow["rows_excluded"]).all()
    assert flow["rows_out"].iloc[-1] == kept
    # required values are usable in every kept row, and the table conforms to the pandera model
    assert c.episodes[["patient_id", "index_event", "index_date"]].notna().all().all()
    validate_schema(c.episodes)


@SETTINGS
@given(messy_frames())
def test_cleaning_is_idempotent(frame):
    first = hostats.read_cohort(frame, today=TODAY)
    if first.episodes.empty:
        return
    snapshot = first.episodes.copy()
    second = hostats.read_cohort(first.episodes, today=TODAY)
    pd.testing.assert_frame_equal(first.episodes, snapshot)  # the cohort given back is not modified
    pd.testing.assert_frame_equal(second.episodes, first.episodes)
    flow = second.flow()
    assert (flow["rows_excluded"] == 0).all()
    assert (flow["rows_changed"] == 0).all(), flow[flow["rows_changed"] > 0]
    assert (second.problems["action"] == "flagged").all()  # only reminders of what cannot be fixed


@SETTINGS
@given(messy_frames(), st.sampled_from([",", ";", "\t"]), st.sampled_from(["utf-8", "latin-1", "utf-8-sig"]))
def test_csv_round_trip_keeps_the_invariant(tmp_path_factory, frame, sep, encoding):
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    frame.to_csv(path, sep=sep, index=False, encoding=encoding)
    c = hostats.read_cohort(path, today=TODAY)
    assert c.ledger.rows_read == len(frame) == len(c.episodes) + len(c.excluded)
    direct = hostats.read_cohort(frame, today=TODAY)
    assert c.episodes["source_row"].tolist() == direct.episodes["source_row"].tolist()
