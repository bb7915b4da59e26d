"""Disclosure control end to end: a cohort whose groups have 1-4 members produces no such count in any
output (report tables, flow boxes, number-at-risk rows, estimates.csv/json), and no patient identifier or
record date of the input appears in any output file."""
from __future__ import annotations

import json
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest

from hostats.analysis import run_analysis
from hostats.analysis.writer import _scan_outputs
from hostats.errors import HostatsError

SPEC = """\
[analysis]
title = "Disclosure test"
question = "Are small cells protected?"

[data]
path = "{data}"

[[criteria]]
name = "hip arthroplasty"
keep = "index_event == 'tha'"

[[criteria]]
name = "adults"
keep = "age_years >= {min_age}"

[outcome]
event = "ho"
horizon_days = 365

[report]
small_cell_threshold = 5
table1 = ["age_years", "sex", "prior_ho", "site", "wound_complication"]
table1_by = "prophylaxis"
risk_times = [0, 91, 182, 273, 365]

[[section]]
id = "ci"
type = "cumulative_incidence"
title = "Cumulative incidence by prophylaxis"
by = "prophylaxis"
times = [91, 182, 365]

[[section]]
id = "by_site"
type = "proportion"
title = "HO within a year by site"
event = "ho_within_horizon"
by = "site"

[[section]]
id = "rate"
type = "rate"
title = "Rate by prophylaxis"
by = "prophylaxis"
"""


@pytest.fixture(scope="module")
def small_cells(tmp_path_factory):
    """A cohort with a 3-member arm, a 2-member site, and ages such that exactly 2 rows are excluded."""
    import synthetic

    c = synthetic.generate("tha_prophylaxis", 300, 5, fault_rate=0.0)
    ep = c.episodes.copy().reset_index(drop=True)
    rng = np.random.default_rng(3)
    arm = np.where(rng.random(len(ep)) < 0.5, "none", "radiotherapy").astype(object)
    arm[:3] = "bisphosphonate"
    ep["prophylaxis"] = arm
    ep["nsaid_agent"] = "none"
    ep["rt_dose_gy"] = np.where(arm == "radiotherapy", 7.0, np.nan)
    ep["rt_hours_from_index"] = np.where(arm == "radiotherapy", 30.0, np.nan)
    ep["site"] = np.where(np.arange(len(ep)) < 2, "Z", ep["site"])
    ep.loc[10:11, "age_years"] = 17.0  # two excluded by the 'adults' criterion
    ep["age_years"] = ep["age_years"].clip(lower=17.0)
    min_age = 18
    folder = tmp_path_factory.mktemp("small")
    spec_dir = folder / "spec"
    spec_dir.mkdir()
    data = spec_dir / "export.csv"  # the data of an analysis lie in its folder (issue 12)
    out = ep.copy()
    for col in out.columns:
        if str(out[col].dtype).startswith("datetime64"):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    out.to_csv(data, index=False)
    (spec_dir / "analysis.toml").write_text(SPEC.format(data=data, min_age=min_age))
    report = folder / "report"
    run_analysis(spec_dir, report)
    dates = set()
    for col in ("index_date", "ho_date", "death_date", "last_followup_date"):
        dates |= set(out[col].dropna().astype(str))
    return {"report": report, "ids": set(ep["patient_id"].astype(str)), "dates": dates, "episodes": ep}


def _small(text: str) -> bool:
    m = re.match(r"^\s*(\d+)(?:\s*\(|\s*$)", text)
    return bool(m) and 1 <= int(m.group(1)) <= 4


def _tables(html: str) -> list[tuple[list[str], list[list[str]]]]:
    out = []
    for t in re.findall(r"<table.*?</table>", html, flags=re.S):
        head = [re.sub(r"<.*?>", "", h).strip() for h in re.findall(r"<th.*?>(.*?)</th>", t, flags=re.S)]
        rows = []
        for tr in re.findall(r"<tr.*?>(.*?)</tr>", t, flags=re.S):
            cells = [re.sub(r"<.*?>", "", c).strip() for c in re.findall(r"<td.*?>(.*?)</td>", tr, flags=re.S)]
            if cells:
                rows.append(cells)
        out.append((head, rows))
    return out


def test_groups_really_are_small(small_cells):
    ep = small_cells["episodes"]
    assert (ep["prophylaxis"] == "bisphosphonate").sum() == 3
    assert (ep["site"] == "Z").sum() == 2


def test_report_tables_show_no_count_from_1_to_4(small_cells):
    html = (small_cells["report"] / "report.html").read_text()
    checked = 0
    for head, rows in _tables(html):
        count_cols = [i for i, h in enumerate(head) if h in ("n", "events") or "(n=" in h]
        for h in head:
            m = re.search(r"\(n=(\d+)\)", h)
            assert not (m and 1 <= int(m.group(1)) <= 4), f"small group size in header {h!r}"
        for r in rows:
            for i in count_cols:
                if i < len(r):
                    checked += 1
                    assert not _small(r[i]), f"small count {r[i]!r} in column {head[i]!r}"
    assert checked > 50, "the check looked at the count cells"
    # Table 1 header: Overall minus the shown group sizes must not give the small group's size
    head = _tables(html[html.index('id="table1"'):])[0][0]
    sizes = [unescape(re.search(r"\(n=([^)]*)\)", h).group(1)) for h in head if "(n=" in h]
    groups, overall = sizes[:-1], sizes[-1]
    # rounded to 5 (the default policy): the difference only says the small group has 1 to 11 members
    assert "<5" in groups and all(int(g) % 5 == 0 for g in groups + [overall] if g.isdigit()), sizes
    assert overall.isdigit()
    assert "bisphosphonate (n=&lt;5)" in html or "bisphosphonate (n=<5)" in html
    assert "&lt;5" in html


def test_flow_boxes_show_no_small_count(small_cells):
    html = (small_cells["report"] / "report.html").read_text()
    counts = re.findall(r'<span class="count">(.*?)</span>', html)
    assert counts, "the flow diagram has boxes"
    assert not [c for c in counts if _small(c)]
    assert "&lt;5" in counts  # the 2 excluded adults
    # the exclusion cannot be recovered by subtraction: the 'remaining' boxes are not shown
    nums = [int(c) for c in counts if c.isdigit()]
    assert not any(a - b in range(1, 5) for a in nums for b in nums), counts


def test_number_at_risk_rows_suppressed(small_cells):
    svg = (small_cells["report"] / "figures" / "ci.svg").read_text()
    texts = [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert "Number at risk" in texts
    assert "&lt;5" in texts or "<5" in texts
    assert not [t for t in texts if t in {"1", "2", "3", "4"}], texts
    placed = [(float(y), t.strip()) for y, t in re.findall(r'<text[^>]*\by="([-\d.]+)"[^>]*>([^<]*)</text>', svg)]
    title_y = next(y for y, t in placed if t == "Number at risk")
    numbers = [int(t) for y, t in placed if y > title_y and t.isdigit()]  # the table under the title
    assert numbers and all(v % 5 == 0 for v in numbers), "numbers at risk rounded to 5"


def test_estimate_exports_show_no_small_count(small_cells):
    rep = small_cells["report"]
    est = pd.read_csv(rep / "estimates.csv", dtype=str)
    for col in ("n", "events"):
        vals = est[col].dropna()
        assert not vals.isin(["1", "2", "3", "4", "1.0", "2.0", "3.0", "4.0"]).any(), vals.tolist()
    withheld = est[est["events"] == "<5"]
    assert len(withheld) and withheld["estimate"].isna().all()
    # the 3-member arm's n is "<5"; the other arms' n are rounded, so their total does not reveal it
    block = est[(est["section"] == "ci") & (est["measure"] == "cumulative_incidence") & (est["time_days"] == "365.0")]
    assert sorted(block["n"])[-1] == "<5" and all(int(v) % 5 == 0 for v in block["n"] if v != "<5")
    shown = pd.to_numeric(pd.concat([est["n"], est["events"]]), errors="coerce").dropna()
    assert len(shown) and (shown % 5 == 0).all(), "every published count is rounded to 5"
    data = json.loads((rep / "estimates.json").read_text())
    for row in data["estimates"]:
        for col in ("n", "events"):
            v = row.get(col)
            assert not (isinstance(v, (int, float)) and 1 <= v <= 4), row


def test_no_identifier_or_record_date_in_any_output(small_cells):
    rep = small_cells["report"]
    ids, dates = small_cells["ids"], small_cells["dates"]
    files = [p for p in rep.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for p in files:
        raw = p.read_bytes()
        text = raw.decode("utf-8", errors="replace")
        tokens = set(re.findall(r"[A-Za-z0-9_\-]+", text))
        assert not (tokens & ids), f"{p.name} holds a patient id"
        assert not (set(re.findall(r"\d{4}-\d{2}-\d{2}", text)) & dates), f"{p.name} holds a record date"
        if p.suffix == ".html":
            assert "patient_id" not in text.lower()


def test_output_scan_refuses_to_publish_a_leak(tmp_path):
    (tmp_path / "report.html").write_text("<p>patient A-000123 seen</p>")
    with pytest.raises(HostatsError, match="disclosure check failed"):
        _scan_outputs(tmp_path, {"A-000123"}, set())
    (tmp_path / "report.html").write_text("<p>operated on 2019-03-04</p>")
    with pytest.raises(HostatsError, match="disclosure check failed"):
        _scan_outputs(tmp_path, set(), {"2019-03-04"})
    (tmp_path / "report.html").write_text("<p>nothing to see, n = 1234</p>")
    _scan_outputs(tmp_path, {"A-000123"}, {"2019-03-04"})


def test_policy_rounding_rules_written_out():
    from hostats.report.disclosure import DisclosurePolicy

    five = DisclosurePolicy(5)
    assert [five.format_count(v) for v in (0, 1, 4, 5, 7, 8, 12, 13, 1872, None)] == \
        ["0", "<5", "<5", "5", "5", "10", "10", "15", "1870", ""]
    assert five.percent(1147, 1872) == f"{100 * 1145 / 1870:.1f}%"   # from the rounded counts
    ten = DisclosurePolicy(10, rounding=10)
    assert [ten.format_count(v) for v in (9, 10, 14, 15, 24)] == ["<10", "10", "10", "20", "20"]
    mid = DisclosurePolicy(5, rounding="midpoint6")   # OpenSAFELY: 0 stays 0, 1-6 -> 3, 7-12 -> 9
    assert [mid.format_count(v) for v in (0, 1, 4, 6, 7, 12, 13)] == ["0", "3", "3", "3", "9", "9", "15"]
    exact = DisclosurePolicy(5, rounding=0)
    assert [exact.format_count(v) for v in (3, 7, 1872)] == ["<5", "7", "1872"]
    for bad in ({"rounding": -5}, {"rounding": "nearest"}, {"rounding": True}, {"threshold": 0}):
        with pytest.raises(ValueError, match="rounding|threshold"):
            DisclosurePolicy(**bad)


def test_spec_rounding_key_checked(tmp_path):
    from hostats.analysis import load_spec
    from hostats.errors import SpecError

    spec = ('[analysis]\ntitle = "t"\n[data]\nsynthetic = { scenario = "tha_prophylaxis", n = 10, seed = 1 }\n'
            '[report]\nrounding = {value}\n[[section]]\ntype = "proportion"\n')
    (tmp_path / "analysis.toml").write_text(spec.replace("{value}", "\"nearest\""))
    with pytest.raises(SpecError, match=r"line 6: \[report\] rounding: must be 0"):
        load_spec(tmp_path)
    for value, policy_rounding in (("0", 0), ("10", 10), ("\"midpoint6\"", "midpoint6")):
        (tmp_path / "analysis.toml").write_text(spec.replace("{value}", value))
        assert load_spec(tmp_path).report["rounding"] == policy_rounding


def test_section_tables_withhold_what_the_estimates_withhold():
    """A section's E-value table repeats its ratios: the writer builds it from the published estimates, so a
    ratio withheld there (it would give back an arm's withheld risk) is withheld in the table by the same
    decision, and a shown one gets the E-values of its published estimate and CI; the other rows and
    sections are left as they are, and a logistic section's table holds only the terms it asked for."""
    from hostats.analysis.context import EValueRequest, SectionOutput
    from hostats.analysis.writer import _section_tables_from_published
    from hostats.stats.causal.sensitivity import e_value

    safety, model, other = SectionOutput(), SectionOutput(), SectionOutput()
    safety.e_values.append(EValueRequest("safety", "E-values: safety", "", by="contrast"))
    model.e_values.append(EValueRequest("model", "E-values: model", "odds ratios converted", by="term",
                                        terms=("C(sex)", "age_years"), outcome_risk=0.3))
    other.e_values.append(EValueRequest("other", "E-values: other", "", by="contrast"))
    why = "withheld: with the other arm's estimate it would reveal an estimate withheld for small numbers"
    shown = pd.DataFrame({
        "section": ["safety"] * 4 + ["model"] * 3 + ["other"],
        "group": ["rt vs none", "rt vs none", "nsaid vs none", "nsaid vs none", "", "", "", "rt vs none"],
        "term": ["", "", "", "", "age_years", "C(sex)[T.male]", "prior_ho", ""],
        "measure": ["risk_ratio", "odds_ratio", "risk_ratio", "risk_control", "odds_ratio", "odds_ratio", "odds_ratio",
                    "risk_ratio"],
        "estimate": [None, 0.99, 0.61, 0.10, 1.02, None, 3.0, 0.99],
        "ci_lower": [None, 0.18, 0.4, 0.05, 0.98, None, 1.5, 0.5], "ci_upper": [None, 5.4, 0.9, 0.2, 1.07, None, 6.0, 1.9],
        "note": [why, "", "", "", "", "withheld: based on fewer than 5 people or events", "", ""]})
    _section_tables_from_published([safety, model, other], shown)
    f = safety.sensitivity[0].frame
    assert f.iloc[0].tolist() == ["rt vs none", "risk_ratio"] + ["withheld"] * 4
    ev = e_value(0.61, 0.4, 0.9, "RR").table().set_index("measure")["estimate"]
    assert f.iloc[2].tolist() == ["nsaid vs none", "risk_ratio", "0.610", "0.400 to 0.900",
                                  f"{ev['e_value_point']:.3f}", f"{ev['e_value_ci']:.3f}"]
    assert f.iloc[1, 2] == "0.990" and len(f) == 3      # the odds ratio (of a contrast without a control risk)
    g = model.sensitivity[0].frame
    assert g["term"].tolist() == ["age_years", "C(sex)[T.male]"]    # prior_ho was not asked for
    assert g.iloc[1].tolist() == ["C(sex)[T.male]"] + ["withheld"] * 4 and g.iloc[0, 1] == "1.020"
    assert other.sensitivity[0].frame.iloc[0, 2] == "0.990"   # shown in its own section's estimates
    # the outcome risk rests on the section's event count: withheld when its estimates are, else stated
    assert model.sensitivity[0].note == "Outcome risk withheld (small numbers): odds ratios converted"
    shown_model = shown[shown["section"].eq("model")].assign(note="", estimate=[1.02, 2.6, 3.0],
                                                             ci_lower=[0.98, 1.1, 1.5], ci_upper=[1.07, 6.0, 6.0])
    again = SectionOutput(e_values=list(model.e_values))
    _section_tables_from_published([again], shown_model)
    assert again.sensitivity[0].note == "Outcome risk 0.30: odds ratios converted"
    assert again.sensitivity[0].frame["odds ratio"].tolist() == ["1.020", "2.600"]
