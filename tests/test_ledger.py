"""The ledger (hostats.ledger): flow table, excluded rows, problems, invariant."""
from __future__ import annotations

import pandas as pd

import hostats
from hostats.ledger import FLOW_COLUMNS, Ledger

TODAY = "2026-01-01"


def test_flow_sums_steps_with_the_same_name_and_starts_with_read():
    led = Ledger()
    led.read(3, "rows read from a")
    led.read(2, "rows read from b")
    src = pd.DataFrame({"source_file": ["a", "b"], "source_row": [4, 2]})
    led.record("required values", 3, excluded=src.iloc[[0]], reason="no usable patient_id")
    led.record("required values", 2, excluded=src.iloc[[1]], reason="no usable patient_id")
    led.record("dates", 3, rows_changed=1)
    flow = led.flow()
    assert list(flow.columns) == FLOW_COLUMNS
    assert flow.iloc[0].tolist() == ["read", 5, 0, 5, 0, "rows read from a; rows read from b"]
    assert flow.iloc[1].tolist() == ["required values", 5, 2, 3, 0, "no usable patient_id"]
    assert led.rows_read == 5 and led.rows_excluded == 2
    ex = led.excluded
    assert ex.values.tolist() == [["a", 4, "required values", "no usable patient_id"],
                                  ["b", 2, "required values", "no usable patient_id"]]


def test_per_row_reasons_and_problems():
    led = Ledger()
    frame = pd.DataFrame({"source_file": ["f"] * 3, "source_row": [2, 3, 4], "age_years": [1.0, None, 300.0]})
    led.record("x", 3, excluded=frame.iloc[[0, 2]], row_reasons=pd.Series(["r1", "r2"]))
    assert led.excluded["reason"].tolist() == ["r1", "r2"]
    n = led.problems_from_mask(frame, frame["age_years"] > 100, "age_years", frame["age_years"], "too old",
                               "set missing")
    assert n == 1
    assert led.problems.values.tolist() == [["f", 4, "age_years", "300.0", "too old", "set missing"]]


def test_empty_ledger_tables_have_their_columns():
    led = Ledger()
    assert list(led.flow().columns) == FLOW_COLUMNS
    assert list(led.excluded.columns) == ["source_file", "source_row", "step", "reason"]
    assert list(led.problems.columns) == ["source_file", "source_row", "column", "value", "problem", "action"]


def test_copy_is_independent_and_to_dict():
    led = Ledger()
    led.read(2, "r")
    other = led.copy()
    other.record("y", 2, rows_changed=1)
    assert len(led.steps) == 1 and len(other.steps) == 2
    d = other.to_dict()
    assert d["rows_read"] == 2 and d["flow"][1]["step"] == "y"


def test_invariant_on_a_messy_cohort():
    df = pd.DataFrame({"patient_id": ["A", "A", "B", "", "C", "C"],
                       "index_event": ["tha", "tha", "zzz", "tha", "tha", "tha"],
                       "index_date": ["2021-01-01", "2021-01-01", "2021-01-01", "2021-01-01", "2021-02-30", "2021-01-05"]})
    c = hostats.read_cohort(df, today=TODAY)
    flow = c.flow()
    assert flow["rows_out"].iloc[-1] == len(c.episodes) == 2
    assert c.ledger.rows_read == len(c.episodes) + len(c.excluded) == 6
    # each step: out = in - excluded, and the next step starts where this one ended
    assert (flow["rows_out"] == flow["rows_in"] - flow["rows_excluded"]).all()
    assert (flow["rows_in"].iloc[1:].to_numpy() == flow["rows_out"].iloc[:-1].to_numpy()).all()
    assert set(c.excluded["step"]) == {"required values", "exact duplicates"}
