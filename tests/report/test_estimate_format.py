"""One rule for an estimate with its CI, wherever a report writes one (the HTML's estimate tables and
E-value tables, the summary and the index page, the tables for a manuscript): the three numbers with the
same decimals, chosen from the estimate's scale (two significant figures of the estimate at least, never
fewer decimals than the table's own), as journals print "0.43 (0.36 to 0.52)". A contrast table printed a
risk difference as "-0.042 (-0.9 to 0.8)"."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hostats.report.publication import contrast_table_from_estimates, estimate_parts, format_estimate
from hostats.report.tables import estimates_display


@pytest.mark.parametrize("args, text", [
    ((0.43, 0.361, 0.524), "0.43 (0.36 to 0.52)"),
    ((-0.042, -0.9, 0.8, 1), "-0.042 (-0.900 to 0.800)"),      # the estimate's scale decides, for all three
    ((0.0042, 0.0011, 0.016), "0.0042 (0.0011 to 0.0160)"),
    ((0.0386, 0.0221, 0.0689), "0.039 (0.022 to 0.069)"),
    ((12.345, 10.1, 15.0, 1), "12.3 (10.1 to 15.0)"),
    ((1.2, 0.8, np.inf), "1.20 (0.80 to ∞)"),
    ((0.0, -0.3, 0.2), "0.00 (-0.30 to 0.20)"),
    ((-0.001, -0.0004, 0.0002, 2), "-0.0010 (-0.0004 to 0.0002)"),   # no "-0.0000"
    ((0.5, np.nan, np.nan), "0.50"),
    ((np.nan, 0.1, 0.2), "—"),
])
def test_an_estimate_and_its_ci_have_the_same_decimals(args, text):
    assert format_estimate(*args) == text


@pytest.mark.parametrize("args, text", [
    # 0.00000032 with 6 decimals is "0.000000", a zero it is not: two significant figures in e-notation
    ((3.2e-07, 1.1e-07, 9.0e-07), "3.2e-07 (1.1e-07 to 9.0e-07)"),
    ((-4.56e-08, -2.0e-07, 1.1e-07), "-4.6e-08 (-2.0e-07 to 1.1e-07)"),
    ((2.5e-07, -0.0031, 0.0036), "2.5e-07 (-3.1e-03 to 3.6e-03)"),   # all three in e-notation
    ((3.0e-07, 0.0, 1.2e-06), "3.0e-07 (0 to 1.2e-06)"),
    ((3.2e-07, 1.0e-07, np.inf), "3.2e-07 (1.0e-07 to ∞)"),
    ((3.2e-07, np.nan, np.nan), "3.2e-07"),
    ((4.2e-06, 1.0e-06, 1.0e-05), "4.2e-06 (1.0e-06 to 1.0e-05)"),   # was "0.000004", one figure
])
def test_an_estimate_nearer_zero_than_six_decimals_show_is_in_e_notation(args, text):
    assert format_estimate(*args) == text


def test_e_notation_begins_where_six_decimals_show_fewer_than_two_figures():
    assert format_estimate(9.9e-06, 2.0e-06, 5.0e-05) == "9.9e-06 (2.0e-06 to 5.0e-05)"
    assert format_estimate(1.0e-05, 2.0e-06, 5.0e-05) == "0.000010 (0.000002 to 0.000050)"
    # a table that asks for 8 decimals has them
    assert format_estimate(1.0e-07, 1.0e-08, 1.0e-06, 8) == "0.00000010 (0.00000001 to 0.00000100)"


def test_the_html_estimate_table_writes_a_tiny_estimate_in_e_notation():
    rows = pd.DataFrame({"section": "s", "measure": "rate", "group": ["a"], "term": "", "estimate": [3.2e-07],
                         "ci_lower": [1.1e-07], "ci_upper": [9.0e-07], "ci_level": 0.95})
    shown = estimates_display(rows)
    assert (shown["estimate"].iloc[0], shown["CI"].iloc[0]) == ("3.2e-07", "1.1e-07 to 9.0e-07")


def test_p_values_below_one_in_a_thousand_are_written_as_journals_do():
    """The heterogeneity table of a pooling printed Q's p-value with format_number: 2e-26 as "2e-26", 0.0004
    as "0.0004"; journals write "<0.001", as every other p-value of the report and the tables does."""
    from types import SimpleNamespace

    from hostats.analysis.sections.meta import heterogeneity_table
    from hostats.report.publication import format_p_value
    from hostats.report.tables import format_p

    def het(p):
        return heterogeneity_table(SimpleNamespace(tau2=0.3132, i2=92.22, q=152.23, q_pvalue=p, pred_lower=0.1,
                                                   pred_upper=0.9))["Q p-value"].iloc[0]

    for p, text in [(1.99676459084597e-26, "<0.001"), (0.0004, "<0.001"), (0.000999, "<0.001"),
                    (0.001, "0.001"), (0.0123, "0.012"), (0.5, "0.500")]:
        assert (het(p), format_p(p), format_p_value(p)) == (text, text, text)


def test_the_html_estimate_table_uses_the_rule():
    rows = pd.DataFrame({"section": "s", "measure": ["risk", "risk", "rate"], "group": ["a", "b", "c"],
                         "term": "", "estimate": [0.00042, 0.386, 4.0], "ci_lower": [0.0001, 0.218, np.nan],
                         "ci_upper": [0.002, 0.685, np.nan], "ci_level": 0.95})
    shown = estimates_display(rows)
    assert list(shown["estimate"]) == ["0.00042", "0.386", "4.000"]
    assert list(shown["CI"]) == ["0.00010 to 0.00200", "0.218 to 0.685", ""]
    assert estimate_parts(0.00042, 0.0001, 0.002, 3) == ("0.00042", "0.00010 to 0.00200")


def test_the_contrast_table_uses_the_rule():
    """A risk difference of -0.042 percentage points with its CI from -0.9 to 0.8: three decimals each."""
    rows = pd.DataFrame({"section": "effect", "group": "nsaid vs none", "term": "",
                         "measure": ["risk_treated", "risk_control", "risk_difference", "risk_ratio"],
                         "estimate": [0.10058, 0.101, -0.00042, 0.996], "ci_lower": [0.08, 0.081, -0.009, 0.71],
                         "ci_upper": [0.12, 0.121, 0.008, 1.4], "n": [200, 300, np.nan, np.nan], "ci_level": 0.95})
    cells = {r[0]: r[1] for r in contrast_table_from_estimates(rows).cells}
    assert cells["Risk difference (percentage points)"] == "-0.042 (-0.900 to 0.800)"
    assert cells["Risk, NSAID (%)"] == "10.1 (8.0 to 12.0)"
    assert cells["Risk ratio"] == "1.00 (0.71 to 1.40)"


def test_the_e_value_table_uses_the_rule():
    from hostats.analysis.context import SectionOutput
    from hostats.analysis.sections.causal import _e_value_cells

    cells = _e_value_cells(SectionOutput(), pd.Series({"estimate": 0.0042, "ci_lower": 0.0011, "ci_upper": 0.016}),
                           "RR")
    assert (cells["estimate"], cells["CI"]) == ("0.0042", "0.0011 to 0.0160")
