"""Report layer on hand-made frames: suppression (checked by exact linear algebra), Table 1, estimates,
CSV formula neutralising, figures, HTML rendering and the manifest."""
from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostats.provenance import build_manifest, hash_inputs, sha256_file, write_manifest
from hostats.report.disclosure import DisclosurePolicy
from hostats.report.html import ReportContent, flow_boxes, render_index, render_report
from hostats.report.publication import PublicationTable
from hostats.report.tables import (
    estimates_display,
    neutralise_formulas,
    secondary_suppression,
    suppress_estimates,
    table_one,
    write_csv,
)


# ---------------------------------------------------------------------------------------------------
# An independent oracle for suppression: a reader who sees the shown cells and the margins can solve the
# linear system "each row/column sums to its total". A suppressed cell is disclosed iff its unit vector
# lies in the row space of the constraint matrix restricted to the unknown cells (exact, rank-based).
# ---------------------------------------------------------------------------------------------------
def with_margins(counts: np.ndarray) -> np.ndarray:
    """The table with its row totals as a last column and column totals (and grand total) as a last row."""
    r, c = counts.shape
    ext = np.zeros((r + 1, c + 1))
    ext[:r, :c] = counts
    ext[:r, c] = counts.sum(1)
    ext[r, :c] = counts.sum(0)
    ext[r, c] = counts.sum()
    return ext


def disclosed_cells(counts: np.ndarray, state: np.ndarray) -> list[tuple[int, int]]:
    r, c = counts.shape
    unknown = [(i, j) for i in range(r + 1) for j in range(c + 1) if state[i, j] != 0]
    pos = {p: k for k, p in enumerate(unknown)}
    rows = []
    for i in range(r + 1):       # row i: sum of its inner entries minus its total = 0
        v = np.zeros(len(unknown))
        for j in range(c + 1):
            if (i, j) in pos:
                v[pos[(i, j)]] = -1.0 if j == c else 1.0
        rows.append(v)
    for j in range(c + 1):
        v = np.zeros(len(unknown))
        for i in range(r + 1):
            if (i, j) in pos:
                v[pos[(i, j)]] = -1.0 if i == r else 1.0
        rows.append(v)
    a = np.array(rows) if unknown else np.zeros((0, 0))
    out = []
    if not unknown:
        return out
    rank = np.linalg.matrix_rank(a)
    for p, k in pos.items():
        e = np.zeros(len(unknown))
        e[k] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, e])) == rank:
            out.append(p)
    return out


def test_two_by_two_with_one_small_cell_suppresses_all_four_inner_cells():
    # classic result: in a 2x2 table with all margins shown, protecting one cell needs all four
    counts = np.array([[3, 10], [20, 30]])
    state = secondary_suppression(counts, 5)
    assert state[0, 0] == 1
    assert (state[:2, :2] > 0).all()
    assert (state[2, :] == 0).all() and (state[:, 2] == 0).all()  # margins still shown
    assert disclosed_cells(counts, state) == []


def test_no_small_cells_nothing_suppressed():
    counts = np.array([[30, 10], [20, 30], [0, 7]])
    assert (secondary_suppression(counts, 5) == 0).all()


def test_zero_is_not_suppressed_but_protects_nothing():
    counts = np.array([[0, 3], [12, 40]])
    state = secondary_suppression(counts, 5)
    assert state[0, 1] == 1
    small = [(i, j) for (i, j) in disclosed_cells(counts, state) if 1 <= with_margins(counts)[i, j] < 5]
    assert small == []


def _sensitive(counts: np.ndarray) -> np.ndarray:
    ext = with_margins(counts)
    return (ext >= 1) & (ext < 5)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.data())
def test_no_suppressed_small_cell_is_recoverable(r, c, data):
    counts = np.array(data.draw(st.lists(st.lists(st.integers(0, 40), min_size=c, max_size=c),
                                         min_size=r, max_size=r)))
    # some tables hide a whole level (a yes/no variable shows only "yes")
    hide_row = data.draw(st.one_of(st.none(), st.integers(0, r - 1)))
    hidden = np.zeros((r, c), dtype=bool)
    if hide_row is not None:
        hidden[hide_row, :] = True
    state = secondary_suppression(counts, 5, hidden=hidden)
    sensitive = _sensitive(counts)
    assert (state[sensitive] != 0).all(), "every small count is suppressed or hidden"
    leaked = [p for p in disclosed_cells(counts, state) if sensitive[p]]
    assert leaked == [], f"small cells recoverable by subtraction: {leaked}\n{counts}\n{state}"


def test_combination_of_lines_is_caught():
    # found by the property test above: column totals 1 and 4 sum to the shown row total 5, which with
    # the grand total reveals the column total 2 -- no single row or column shows it
    counts = np.array([[0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 4, 0]])
    state = secondary_suppression(counts, 5)
    assert [p for p in disclosed_cells(counts, state) if _sensitive(counts)[p]] == []


def test_hidden_small_complement_is_protected():
    # a yes/no variable shown as its "yes" row only: 'no' = n - yes - missing is small and derivable
    counts = np.array([[98, 50], [2, 0], [0, 0]])  # yes, no (hidden), missing by two groups
    hidden = np.array([[False, False], [True, True], [False, False]])
    state = secondary_suppression(counts, 5, hidden=hidden)
    assert state[1, 0] == 1
    assert [p for p in disclosed_cells(counts, state) if _sensitive(counts)[p]] == []
    assert (state[0, :] != 0).any(), "a shown cell of the 'yes' row had to go"


def test_suppression_rejects_negative_counts():
    with pytest.raises(ValueError, match="non-negative"):
        secondary_suppression(np.array([[1, -2]]), 5)


# ---------------------------------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------------------------------
def _counts_in(text: str) -> list[int]:
    """Integers shown as counts in a Table 1 cell or header ("12 (3.4%)", "(n=300)")."""
    out = [int(m) for m in re.findall(r"(?:^|n=)(\d+)(?= \(|\)|$)", text)]
    return out


@pytest.fixture
def cohort_frame():
    rng = np.random.default_rng(7)
    n = 400
    arm = np.array(["none"] * 250 + ["radiotherapy"] * 147 + ["bisphosphonate"] * 3)
    age = rng.normal(65, 10, n)
    age[rng.choice(n, 12, replace=False)] = np.nan
    sex = rng.choice(["female", "male"], n).astype(object)
    sex[:2] = None
    prior = pd.array(rng.random(n) < 0.2, dtype="boolean")
    return pd.DataFrame({
        "prophylaxis": pd.Categorical(arm, categories=["none", "radiotherapy", "nsaid", "bisphosphonate"]),
        "age_years": age, "sex": pd.Categorical(sex, categories=["female", "male"]), "prior_ho": prior})


def _r5(x: float) -> int:
    """Nearest multiple of 5 (halves up), written out independently of the policy."""
    return int(np.floor(x / 5 + 0.5) * 5)


def test_table_one_values_and_missingness(cohort_frame):
    # default policy: counts rounded to 5, percentages from the rounded counts, "<5" for 1-4
    t = table_one(cohort_frame, ["age_years", "sex", "prior_ho"], by="prophylaxis")
    assert list(t.columns[:2]) == ["variable", "level"]
    assert t.columns[2] == "none (n=250)" and t.columns[-1] == "Overall (n=400)"
    assert "nsaid" not in " ".join(t.columns)  # empty arm dropped
    d = cohort_frame
    none = d[d.prophylaxis == "none"]
    row = t[(t.variable == "age_years") & (t.level == "mean (SD)")].iloc[0]
    x = none.age_years.dropna()
    assert row["none (n=250)"] == f"{x.mean():.1f} ({x.std(ddof=1):.1f})"
    miss = t[(t.variable == "age_years") & (t.level == "missing")].iloc[0]
    assert miss["Overall (n=400)"] == f"10 ({100 * 10 / 400:.1f}%)"  # 12 rounded to 10
    female = t[(t.variable == "sex") & (t.level == "female")].iloc[0]
    k, den = int((none.sex == "female").sum()), int(none.sex.notna().sum())
    assert female["none (n=250)"] == f"{_r5(k)} ({100 * _r5(k) / _r5(den):.1f}%)"
    # the 3-person arm: header and every count protected; its numeric summaries withheld
    bis = [c for c in t.columns if c.startswith("bisphosphonate")][0]
    assert bis == "bisphosphonate (n=<5)"
    # 147 is shown rounded (145): 400 - 250 - 145 = 5 does not give the 3 away, so nothing is hidden
    assert "radiotherapy (n=145)" in t.columns
    assert set(t[bis]) <= {"<5", "s", "—", "0 (0.0%)", ""}
    assert "s" not in set(t.to_numpy().ravel())


def test_table_one_exact_counts_without_small_cells():
    from hostats.report.disclosure import DisclosurePolicy

    rng = np.random.default_rng(1)
    d = pd.DataFrame({"arm": rng.choice(["a", "b"], 300), "sex": rng.choice(["female", "male"], 300)})
    d.loc[:9, "sex"] = None
    t = table_one(d, ["sex"], by="arm", policy=DisclosurePolicy(5, rounding=0))
    na = int((d.arm == "a").sum())
    a = d[d.arm == "a"]
    k = int((a.sex == "female").sum())
    assert t.columns[2] == f"a (n={na})"
    f = t[t.level == "female"].iloc[0]
    assert f[f"a (n={na})"] == f"{k} ({100 * k / a.sex.notna().sum():.1f}%)"


def test_table_one_column_without_a_known_value_shows_its_zero_counts_without_a_percentage():
    """An arm in which a variable is never recorded (tha_incidence: prior HO after long-bone fractures) has
    no percentage base: its level cells are "0", not "0 ()"; its missing row is all of the arm."""
    from hostats.report.disclosure import DisclosurePolicy
    from hostats.report.publication import _is_shown_count

    d = pd.DataFrame({"arm": np.repeat(["a", "b"], [60, 40]),
                      "prior": ["yes"] * 20 + ["no"] * 40 + [None] * 40})
    t = table_one(d, ["prior"], by="arm", policy=DisclosurePolicy(5, rounding=0))
    b = t.set_index("level")["b (n=40)"]
    assert (b["no"], b["yes"], b["missing"]) == ("0", "0", "40 (100.0%)")
    assert t.set_index("level")["a (n=60)"]["yes"] == "20 (33.3%)"
    assert _is_shown_count("0") and _is_shown_count("1,234 (5.0%)") and not _is_shown_count("<5")


def test_table_one_small_missing_does_not_hide_large_cells():
    """Issue 13: 1-4 patients per arm with a missing sex hid hundreds of patients ("s")."""
    from hostats.report.disclosure import DisclosurePolicy

    rng = np.random.default_rng(2)
    d = pd.DataFrame({"arm": np.repeat(["a", "b", "c"], [400, 300, 200]),
                      "sex": rng.choice(["female", "male"], 900).astype(object)})
    d.loc[[0, 1, 450, 800, 801, 802], "sex"] = None   # 2, 1 and 3 missing per arm
    for policy in (DisclosurePolicy(5), DisclosurePolicy(5, rounding=0)):
        t = table_one(d, ["sex"], by="arm", policy=policy)
        cells = t.iloc[:, 2:].to_numpy().ravel().tolist()
        assert "s" not in cells, (policy, t)
        assert cells.count("<5") == 3 and all(c.endswith("%)") for c in t[t.level != "missing"].iloc[:, 2:].values.ravel())


def test_table_one_shows_no_count_between_1_and_4(cohort_frame):
    t = table_one(cohort_frame, ["age_years", "sex", "prior_ho"], by="prophylaxis")
    cells = list(t.columns) + [str(v) for v in t.to_numpy().ravel()]
    shown = [k for cell in cells for k in _counts_in(cell)]
    assert shown, "the helper finds counts"
    assert not [k for k in shown if 1 <= k <= 4]


def test_table_one_rejects_unknown_column(cohort_frame):
    with pytest.raises(ValueError, match="not_there"):
        table_one(cohort_frame, ["not_there"], by="prophylaxis")


def test_table_one_smd_column(cohort_frame):
    t = table_one(cohort_frame, ["age_years", "prior_ho"], by="prophylaxis",
                  smd={"age_years": 0.1234, ("prior_ho", True): -0.2})
    assert t.loc[t.level == "mean (SD)", "SMD"].iloc[0] == "0.123"
    assert t.loc[(t.variable == "prior_ho") & (t.level == "yes"), "SMD"].iloc[0] == "-0.200"


# ---------------------------------------------------------------------------------------------------
# Estimates and CSV
# ---------------------------------------------------------------------------------------------------
def _estimates():
    return pd.DataFrame({
        "analysis": "a", "section": ["s1", "s1", "s2"], "measure": ["risk", "risk", "odds_ratio"],
        "group": ["none", "rare", ""], "term": ["", "", "age_years"],
        "estimate": [0.3, 0.02, 1.5], "ci_lower": [0.25, 0.005, 1.1], "ci_upper": [0.35, 0.06, 2.0],
        "ci_level": 0.95, "p_value": [np.nan, np.nan, 0.0004], "n": [200, 150, 350], "events": [60, 3, 63],
        "unit": ["proportion", "proportion", "ratio"], "truth": [0.31, 0.03, np.nan], "method": "x"})


def test_suppress_estimates_withholds_small_counts_and_their_estimates():
    s = suppress_estimates(_estimates(), 5)
    rare = s.iloc[1]
    assert rare["events"] == "<5" and rare["estimate"] is None and rare["ci_lower"] is None
    assert "fewer than 5" in rare["note"]
    assert s.iloc[0]["estimate"] == 0.3 and s.iloc[0]["events"] == 60
    d = estimates_display(s, show_truth=True)   # the published rows, formatted
    assert d.loc[2, "p"] == "<0.001" and d.loc[2, "group / term"] == "age_years"
    assert d.loc[0, "truth"] == "0.310" and d.loc[1, "events"] == "<5" and d.loc[1, "estimate"] == ""


def test_csv_formula_injection_neutralised(tmp_path):
    f = pd.DataFrame({"label": ["=HYPERLINK(\"http://x\")", "+1", "-cmd", "@SUM(A1)", "ok", "\tTAB"],
                      "value": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0]})
    g = neutralise_formulas(f)
    assert list(g["label"]) == ["'=HYPERLINK(\"http://x\")", "'+1", "'-cmd", "'@SUM(A1)", "ok", "'\tTAB"]
    assert g["value"].tolist() == f["value"].tolist()  # numbers are left alone
    write_csv(f, tmp_path / "x.csv")
    back = pd.read_csv(tmp_path / "x.csv")
    assert not back["label"].astype(str).str.match(r"^[=+\-@]").any()
    assert back["value"].iloc[0] == -1.5


# ---------------------------------------------------------------------------------------------------
# Flow diagram
# ---------------------------------------------------------------------------------------------------
def _flow(excluded):
    rows_in, rows = 1000, []
    rows.append({"step": "read", "rows_in": 1000, "rows_excluded": 0, "rows_out": 1000, "rows_changed": 0,
                 "reason": "rows read"})
    for k, e in enumerate(excluded):
        rows.append({"step": f"step{k}", "rows_in": rows_in, "rows_excluded": e, "rows_out": rows_in - e,
                     "rows_changed": 0, "reason": f"reason {k}"})
        rows_in -= e
    return pd.DataFrame(rows)


def _numbers(boxes):
    return [b["count"] for b in boxes]


def test_flow_without_small_counts_shows_every_count():
    boxes = flow_boxes(_flow([20, 30]), 5)
    assert _numbers(boxes) == ["1000", "20", "980", "30", "950"]


def test_flow_rounded_counts_protect_a_small_exclusion_without_hiding():
    counts = _numbers(flow_boxes(_flow([3, 31, 12]), 5))
    assert counts == ["1000", "<5", "995", "30", "965", "10", "955"]


def test_flow_single_small_exclusion_cannot_be_recovered():
    from hostats.report.disclosure import DisclosurePolicy, use_policy

    with use_policy(DisclosurePolicy(5, rounding=0)):  # exact counts: the classic suppression
        counts = _numbers(flow_boxes(_flow([3, 30, 12]), 5))
    assert "3" not in counts and "<5" in counts and "s" in counts  # 12 (smallest other) suppressed too
    assert counts[0] == "1000" and counts[-1] == "955"
    assert "997" not in counts and "967" not in counts  # the remaining counts would reveal it


def test_flow_only_exclusion_small_hides_rows_read():
    from hostats.report.disclosure import DisclosurePolicy, use_policy

    with use_policy(DisclosurePolicy(5, rounding=0)):
        assert _numbers(flow_boxes(_flow([2]), 5)) == ["s", "<5", "998"]
    # rounded: 1000 - 998 = 2 is only known to lie between -4 and 4: nothing withheld
    assert _numbers(flow_boxes(_flow([2]), 5)) == ["1000", "<5", "1000"]


# ---------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------
def test_curve_plot_number_at_risk_suppressed_and_tail_cut(tmp_path):
    from hostats.report.figures import curve_plot, save_figure

    t = np.arange(1, 11, dtype=float) * 40
    curve = pd.DataFrame({"group": ["a"] * 10, "time": t, "estimate": np.linspace(0.02, 0.3, 10),
                          "ci_lower": np.linspace(0.01, 0.25, 10), "ci_upper": np.linspace(0.03, 0.35, 10),
                          "n_at_risk": [100, 90, 80, 70, 60, 40, 20, 4, 3, 2]})
    fig = curve_plot(curve, risk_times=[0, 100, 200, 300, 400], threshold=5, horizon=365, truth=0.3)
    tab = fig.axes[1]
    texts = [x.get_text() for x in tab.texts]
    # at risk at t = the risk set of the first jump at or after t (times 40, 80, ..., 400)
    assert texts == ["100", "80", "60", "<5", "<5"]
    line = fig.axes[0].lines[0]
    assert line.get_xdata().max() <= 280 + 1e-9  # not drawn beyond the last time with >= 5 at risk
    out = save_figure(fig, tmp_path, "ci")
    assert (tmp_path / "ci.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "ci.svg").read_text().lstrip().startswith("<?xml")
    assert len(out["base64"]) > 1000


def test_figures_are_byte_identical_across_runs(tmp_path):
    from hostats.report.figures import forest_plot, save_figure

    f = pd.DataFrame({"label": ["A", "B", "C"], "estimate": [0.1, 0.2, 0.05], "ci_lower": [0.05, 0.1, 0.01],
                      "ci_upper": [0.2, 0.3, 0.15]})
    s = pd.DataFrame({"label": ["pooled"], "estimate": [0.11], "ci_lower": [0.06], "ci_upper": [0.2]})
    a = save_figure(forest_plot(f, summary=s, prediction=(0.02, 0.4), log=False), tmp_path / "a", "f")
    b = save_figure(forest_plot(f, summary=s, prediction=(0.02, 0.4), log=False), tmp_path / "b", "f")
    assert a["base64"] == b["base64"]
    assert (tmp_path / "a/f.svg").read_bytes() == (tmp_path / "b/f.svg").read_bytes()


def test_calibration_table_matches_hand_computation():
    from hostats.report.figures import calibration_table

    p = np.array([0.1, 0.1, 0.2, 0.2, 0.8, 0.8])
    y = np.array([0, 1, 0, 0, 1, 1])
    t = calibration_table(p, y, bins=3)
    assert t["predicted"].tolist() == pytest.approx([0.1, 0.2, 0.8])
    assert t["observed"].tolist() == pytest.approx([0.5, 0.0, 1.0])
    assert t["n"].tolist() == [2, 2, 2]


# ---------------------------------------------------------------------------------------------------
# HTML and manifest
# ---------------------------------------------------------------------------------------------------
def test_render_report_is_self_contained_with_every_section(tmp_path):
    from hostats.report.figures import bar_plot, save_figure

    fig = save_figure(bar_plot(pd.DataFrame({"g": ["a", "b"], "estimate": [0.2, 0.4]}), x="g"), tmp_path, "bar")
    from hostats.report.html import SECTION_IDS, FigureBlock

    content = ReportContent(
        name="demo", title="Demo <report>", question="Is 1 < 2?", data_source=["file x.csv"],
        synthetic=True, flow=_flow([3, 40]),
        table1=PublicationTable("Table 1", [["Sex, n (%)", ""], ["female", "12 (40.0%)"]],
                                [("", "Characteristic"), ("", "a (n=30)")], [0, 1]),
        estimates=suppress_estimates(_estimates(), 5), figures=[FigureBlock("bar", "Bars", "cap", **fig)],
        warnings=["separation in term x"], methods=["We estimated things."], provenance={"seed": 1},
        files=["estimates.csv"])
    path = render_report(content, tmp_path / "report.html")
    html = path.read_text()
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in html
    assert "Demo &lt;report&gt;" in html  # escaped
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "data:image/png;base64," in html
    assert ">3<" not in html and "&lt;5" in html
    assert "patient_id" not in html
    idx = render_index([{"name": "demo", "title": "Demo", "question": "q", "href": "demo/report.html",
                         "status": "ok", "message": "", "seconds": 1.0, "files": "x", "synthetic": True,
                         "headline": [{"label": "risk", "value": "0.3", "truth": "0.31"}]}],
                       tmp_path / "index.html")
    assert 'href="demo/report.html"' in idx.read_text()


def test_manifest_hashes_and_versions(tmp_path):
    (tmp_path / "in.csv").write_bytes(b"abc")
    assert sha256_file(tmp_path / "in.csv") == hashlib.sha256(b"abc").hexdigest() == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    inputs = hash_inputs([tmp_path / "in.csv"], root=tmp_path)
    assert inputs == [{"path": "in.csv", "bytes": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}]
    m = build_manifest(analysis="a", spec={"x": 1}, spec_path=None, inputs=inputs, seed=5,
                       timings={"fit": 0.1}, outputs=["report.html"])
    write_manifest(m, tmp_path / "manifest.json")
    back = json.loads((tmp_path / "manifest.json").read_text())
    assert back["seed"] == 5 and back["packages"]["pandas"] == pd.__version__
    assert back["inputs"][0]["sha256"].startswith("ba7816bf")


@pytest.mark.parametrize("policy, says, not_says", [
    (DisclosurePolicy(5), ["rounded to the nearest 5", 'from 1 to 4 are shown as "<5"'], ["exactly", "midpoint"]),
    (DisclosurePolicy(10, 0), ['from 1 to 9 are shown as "<10"', "shown exactly", "rounded to the nearest 10"],
     ["nearest 5", "midpoint"]),
    (DisclosurePolicy(5, "midpoint6"), ["midpoint-6 rounding"], ['"<5"', "nearest 5"]),
    (DisclosurePolicy(5, 10), ["rounded to the nearest 10", 'from 1 to 4 are shown as "<5"'], ["nearest 5"]),
])
def test_report_states_its_disclosure_policy_in_words(tmp_path, policy, says, not_says):
    """The data section says the policy of this report, made from its settings, and where it applies."""
    content = ReportContent(name="demo", title="Demo", threshold=policy.threshold, policy=policy,
                            downloads=[("tables.docx", "Word")])
    html = render_report(content, tmp_path / "report.html").read_text()
    text = re.sub(r"\s+", " ", re.search(r'<p class="muted" id="disclosure">(.*?)</p>', html, re.S).group(1))
    text = text.replace("&#34;", '"').replace("&quot;", '"').replace("&lt;", "<")
    for words in says + ["withheld", "flow diagram", "tables.docx", "No identifiers or exact dates"]:
        assert words in text, (words, text)
    for words in not_says:
        assert words not in text, (words, text)


def test_free_text_redaction_of_dates_and_small_counts():
    from hostats.report.tables import redact_text

    t = redact_text("3 unreadable date(s) set missing; 3 unreadable date(s) set missing; 12 rows; "
                    "origin 1899-12-30; 0.5 Gy; site_C.csv; n=2; 2,302 rows")
    # counts of people as the tables publish them: rounded to 5 (the default), small ones as "<5"
    assert t == "<5 unreadable date(s) set missing; 10 rows; origin [date]; 0.5 Gy; site_C.csv; n=<5; 2,300 rows"


@pytest.mark.parametrize("text", ["HO of Brooker grade 1 or 2", "Brooker 1", "1 year after surgery",
                                  "follow-up of 2 years", "within 48 h of surgery", "hostats 0.4.1",
                                  "version 1", "a dose of 7 Gy", "header = row 1", "3 sites", "fitted in 7 iterations",
                                  "a date before 1899", "bs(age_years, df=3)", "8.5% of 1.5"])
def test_free_text_keeps_numbers_that_are_not_counts(text):
    from hostats.report.tables import redact_text

    assert redact_text(text) == text
    assert redact_text(text, policy=DisclosurePolicy(5, 0)) == text


@pytest.mark.parametrize("text, rounded, exact", [
    ("1 episode excluded", "<5 episode excluded", "<5 episode excluded"),
    ("grade 1 HO in 3 patients", "grade 1 HO in <5 patients", "grade 1 HO in <5 patients"),
    ("2 unreadable or impossible date(s) set missing", "<5 unreadable or impossible date(s) set missing",
     "<5 unreadable or impossible date(s) set missing"),
    ("site_B.csv: 1123 cell(s) holding a missing-value token", "site_B.csv: 1125 cell(s) holding a missing-value token",
     "site_B.csv: 1123 cell(s) holding a missing-value token"),
    ("37 row(s) with a value outside its plausible range; 1 year",
     "35 row(s) with a value outside its plausible range; 1 year",
     "37 row(s) with a value outside its plausible range; 1 year"),
    ("3 excluded", "<5 excluded", "<5 excluded"),          # a bare number is taken as a count
    ("age out of range 7", "age out of range 5", "age out of range 7"),
])
def test_free_text_publishes_counts_of_people_by_the_policy(text, rounded, exact):
    from hostats.report.disclosure import use_policy
    from hostats.report.tables import redact_text

    assert redact_text(text) == rounded
    assert redact_text(text, policy=DisclosurePolicy(5, 0)) == exact
    with use_policy(DisclosurePolicy(5, 0)):   # the report's policy, as the writer sets it
        assert redact_text(text, 5) == exact
    assert "<" not in redact_text(text, policy=DisclosurePolicy(5, "midpoint6"))


def test_flow_reasons_are_redacted():
    f = _flow([20])
    f.loc[1, "reason"] = "2 impossible dates, e.g. 2019-03-04 in /tmp/x/site_A.csv"
    box = [b for b in flow_boxes(f, 5) if b["kind"] == "side"][0]
    assert box["reason"] == "<5 impossible dates, e.g. [date] in site_A.csv"
