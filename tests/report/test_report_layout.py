"""The report answers first and reads like a paper: readable labels, the headline estimates in journal
format (every requested one), one colour per arm in every figure, forest-plot labels that do not overlap,
and a flow diagram whose exclusions are apart from the cleaning notes, each reason naming its source."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from hostats.report.figures import forest_plot, group_colours
from hostats.report.html import _flow_layout, source_reasons, summary_rows
from hostats.report.labels import group_label, measure_label, term_label


@pytest.mark.parametrize("term, label", [
    ("C(sex)[T.male]", "Sex: male"),
    ("prior_ho[T.True]", "Prior HO: yes"),
    ("I(age_years / 10)", "Age (years), per 10"),   # the model tables' words
    ("C(prophylaxis, Treatment('none'))[T.radiotherapy_nsaid]", "Prophylaxis: radiotherapy + NSAID"),
    ("C(rt_timing)[T.48-72 h]", "RT timing: 48-72 h"),
    ("rt_dose_gy", "RT dose (Gy)"),
    ("_trt1", "treatment arm 1 vs reference"),
    ("C(prophylaxis)", "Prophylaxis"),   # a factor as a whole (a proportional-hazards test's row)
    ("C(prophylaxis, Treatment('none'))", "Prophylaxis"),
])
def test_term_labels(term, label):
    assert term_label(term) == label


@pytest.mark.parametrize("measure, label", [
    ("risk_treated_regression", "Risk, treated arm (g-formula)"),
    ("risk_ratio", "Risk ratio"),
    ("crude_odds_ratio", "Odds ratio (crude)"),
    ("risk_difference_aipw", "Risk difference (AIPW)"),
    ("some_new_measure", "Some new measure"),
])
def test_measure_labels(measure, label):
    assert measure_label(measure) == label


def test_group_label_reads_codes():
    assert group_label("radiotherapy_nsaid vs none") == "radiotherapy + NSAID vs none"


def _estimates() -> pd.DataFrame:
    rows = []
    for k, arm in enumerate(["radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid"]):
        for m in ("risk_ratio", "risk_difference", "risk_ratio_regression"):
            rows.append({"section": "effect", "measure": m, "group": f"{arm} vs none", "term": "",
                         "estimate": 0.43 + k / 100, "ci_lower": 0.36, "ci_upper": 0.52, "time_days": np.nan})
    rows.append({"section": "safety", "measure": "risk_ratio", "group": "radiotherapy vs none", "term": "",
                 "estimate": 1.104, "ci_lower": 0.8, "ci_upper": 1.52, "time_days": np.nan})
    for t in (91, 365):  # a curve: read at the horizon only
        rows.append({"section": "curves", "measure": "cumulative_incidence", "group": "none", "term": "",
                     "estimate": t / 1000 + 0.007, "ci_lower": np.nan, "ci_upper": np.nan, "time_days": float(t)})
    return pd.DataFrame(rows)


def test_summary_keeps_every_requested_headline_in_journal_format():
    rows = summary_rows(_estimates(), ["effect/risk_ratio", "effect/risk_difference", "safety/risk_ratio",
                                       "curves/cumulative_incidence", "nothing/risk_ratio"], horizon=365)
    labels = [r["label"] for r in rows]
    assert labels[:4] == ["Risk ratio, radiotherapy vs none", "Risk ratio, NSAID vs none",
                          "Risk ratio, bisphosphonate vs none", "Risk ratio, radiotherapy + NSAID vs none"]
    assert rows[0]["value"] == "0.43 (0.36 to 0.52)"
    # the safety ratio, requested last among many rows, is there (the index page used to drop it)
    safety = [r for r in rows if r["section"] == "safety"]
    assert len(safety) == 1 and safety[0]["value"] == "1.10 (0.80 to 1.52)"
    curve = [r for r in rows if r["section"] == "curves"]
    assert [r["value"] for r in curve] == ["0.37"]
    assert rows[-1]["value"] == "not estimated"
    assert sum(r["ratio"] for r in rows) == 5


def test_arm_colours_are_the_same_in_every_figure():
    two = dict(zip(["none", "radiotherapy"], group_colours(["none", "radiotherapy"]), strict=True))
    five_levels = ["none", "radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid"]
    five = dict(zip(five_levels, group_colours(five_levels), strict=True))
    assert two["radiotherapy"] == five["radiotherapy"] and two["none"] == five["none"]
    assert len(set(five.values())) == 5
    # other levels (derived bins, sites) too, whatever else is in the figure
    a = dict(zip(["within 48 h", "48-72 h"], group_colours(["within 48 h", "48-72 h"]), strict=True))
    b = dict(zip(["after 72 h", "within 48 h"], group_colours(["after 72 h", "within 48 h"]), strict=True))
    assert a["within 48 h"] == b["within 48 h"]
    many = group_colours([f"site {i}" for i in range(9)])
    assert len(set(many)) == 9


def _overlaps(boxes) -> bool:
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.parametrize("lo, hi", [(0.8, 1.3), (0.04, 5.2), (0.3, 0.9)])
def test_forest_plot_tick_and_row_labels_do_not_overlap(lo, hi):
    f = pd.DataFrame({"label": ["Risk ratio, radiotherapy + NSAID vs none (a long label that goes on)",
                                "Risk ratio, NSAID vs none", "Risk ratio, bisphosphonate vs none"],
                      "estimate": [np.sqrt(lo * hi), lo * 1.1, hi / 1.1], "ci_lower": [lo, lo, lo],
                      "ci_upper": [hi, hi, hi]})
    fig = forest_plot(f, null=1.0)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    xt = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    yt = [t.get_window_extent(renderer) for t in ax.get_yticklabels() if t.get_text()]
    assert 2 <= len(xt) <= 8
    assert not _overlaps(xt) and not _overlaps(yt)
    assert all(t.get_text() == "" for t in ax.get_xminorticklabels())


@dataclass
class _Step:
    step: str
    reason: str


def test_flow_separates_cleaning_from_exclusions_and_labels_sources():
    steps = [_Step("read", "rows read from /tmp/x/site_A.csv"), _Step("dates", "10 date(s) set missing"),
             _Step("required values", "no usable patient ID"),
             _Step("read", "rows read from /tmp/x/site_B.csv"), _Step("dates", "8 date(s) set missing"),
             _Step("required values", "no usable patient ID"), _Step("total hip arthroplasty", "THA only")]
    reasons = source_reasons(steps)
    assert reasons["dates"] == ["site_A.csv: 10 date(s) set missing", "site_B.csv: 8 date(s) set missing"]
    assert reasons["read"] == ["site_A.csv", "site_B.csv"]
    assert reasons["total hip arthroplasty"] == ["THA only"]  # recorded once: no source to name
    boxes = [{"kind": "main", "label": "Rows read", "count": "100", "reason": ""},
             {"kind": "note", "label": "dates", "count": "15", "reason": "values corrected (rows kept): x"},
             {"kind": "side", "label": "required values", "count": "<5", "reason": "no usable patient ID"},
             {"kind": "side", "label": "total hip arthroplasty", "count": "10", "reason": "THA only"},
             {"kind": "main final", "label": "Analysed", "count": "85", "reason": ""}]
    main, cleaning = _flow_layout(boxes, reasons, 5, ["total hip arthroplasty"])
    assert [b["label"] for b in cleaning] == ["dates"]
    assert all(b["kind"] != "note" for b in main)
    # the published lines round their counts as the tables do (8 -> 10 at the default rounding to 5)
    assert cleaning[0]["lines"] == ["site_A.csv: 10 date(s) set missing", "site_B.csv: 10 date(s) set missing"]
    assert [b.get("title") for b in main if b["kind"] == "side"] == [
        "Excluded: required values", "Excluded by the criterion \u201ctotal hip arthroplasty\u201d"]


def test_diagnostic_and_sensitivity_tables_read_their_terms():
    from hostats.report.html import _readable_terms

    f = pd.DataFrame({"term": ["gram_negative_infection[T.True]", "radiotherapy_nsaid vs none", "C(sex)[T.male]"],
                      "E-value": [3.9, 2.0, 1.5]})
    assert list(_readable_terms(f, {})["term"]) == ["Gram negative infection: yes", "radiotherapy + NSAID vs none",
                                                    "Sex: male"]
    assert list(_readable_terms(f, {"gram_negative_infection": "Gram-negative infection"})["term"])[0] == \
        "Gram-negative infection: yes"


def test_forest_plot_heads_each_outcome_so_equal_labels_are_told_apart():
    """The summary forest plot drew "Risk ratio, radiotherapy vs none" twice (HO and wound complications)
    with nothing to tell them apart: with ``group`` each run of rows stands under a bold heading."""
    f = pd.DataFrame({"label": ["Risk ratio, radiotherapy vs none", "Risk ratio, NSAID vs none",
                                "Risk ratio, radiotherapy vs none"],
                      "section": ["HO by 1 year", "HO by 1 year", "Wound complications"],
                      "estimate": [0.42, 0.55, 1.11], "ci_lower": [0.35, 0.48, 0.76], "ci_upper": [0.5, 0.63, 1.62]})
    ax = forest_plot(f, null=1.0, group="section").axes[0]
    ticks = sorted(zip(ax.get_yticks(), ax.get_yticklabels(), strict=True), key=lambda t: -t[0])
    assert [label.get_text() for _, label in ticks] == [
        "HO by 1 year", "Risk ratio, radiotherapy vs none", "Risk ratio, NSAID vs none", "Wound complications",
        "Risk ratio, radiotherapy vs none"]
    assert [label.get_fontweight() for _, label in ticks] == ["bold", "normal", "normal", "bold", "normal"]
    y = [t for t, _ in ticks]
    assert y[2] - y[3] > y[3] - y[4] == y[0] - y[1] == 1.0  # a group ends with more space than between its rows
    drawn = sorted(ax.collections[1].get_offsets()[:, 1], reverse=True)  # the markers sit on the row ticks
    assert drawn == [ticks[1][0], ticks[2][0], ticks[4][0]]
    one = forest_plot(f[f["section"] == "HO by 1 year"], null=1.0, group="section").axes[0]
    assert [t.get_text() for t in one.get_yticklabels()] == list(f["label"][:2])  # one outcome: no heading
