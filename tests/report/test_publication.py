"""Publication tables (hostats.report.publication): the Word, Excel, LaTeX and HTML renderings read back
with python-docx, openpyxl, a structural LaTeX check and pandas' HTML reader, against the result objects'
own numbers and against counts, means and SMDs computed here from the data."""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

import hostats
from hostats.errors import DataError
from hostats.report.publication import (
    PublicationTable,
    _parse_term,
    default_label,
    format_estimate,
    format_p_value,
    model_table,
    save_tables,
    table1,
)
from hostats.report.tables import format_count
from tests.paths import DATA

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROPHYLAXIS = ["none", "radiotherapy", "nsaid"]   # categorical order; alphabetical would be none, nsaid, rt


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    rng = np.random.default_rng(20261204)
    n = 900
    sex = rng.choice(["female", "male"], n)
    arm = rng.choice(PROPHYLAXIS, n, p=[0.4, 0.3, 0.3])
    prior = rng.random(n) < 0.15
    age = rng.normal(66, 10, n)
    lp = -1.2 + 0.4 * (sex == "male") + 1.5 * prior - 0.9 * (arm != "none") + 0.02 * (age - 66)
    ho = rng.random(n) < 1 / (1 + np.exp(-lp))
    time = rng.exponential(300, n)
    status = np.where(time < 365, np.where(ho, 1, rng.choice([0, 2], n, p=[0.7, 0.3])), 0)
    df = pd.DataFrame({
        "age_years": age, "sex": pd.Categorical(sex, categories=["female", "male"]),
        "prophylaxis": pd.Categorical(arm, categories=PROPHYLAXIS), "prior_ho": pd.array(prior, dtype="boolean"),
        "ho": pd.array(ho, dtype="boolean"), "time_days": np.minimum(time, 365.0), "status": status,
        "treated": pd.Categorical(np.where(arm == "none", "no", "yes"), categories=["no", "yes"]),
    })
    df.loc[[3, 17], "sex"] = np.nan            # two missing: a small cell for Table 1
    return df


@pytest.fixture(scope="module")
def fit(cohort):
    return hostats.logistic(cohort, "ho ~ age_years + C(sex) + prior_ho + prophylaxis")


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", cell)]


def _row(tab: dict, label: str) -> list[str]:
    return tab[label]


# --------------------------------------------------------------------------------------------------
# formats and labels
# --------------------------------------------------------------------------------------------------

def test_journal_formats():
    assert format_estimate(0.4312, 0.3571, 0.5249) == "0.43 (0.36 to 0.52)"
    assert format_estimate(1.5, 0.9, float("inf")) == "1.50 (0.90 to ∞)"
    assert format_estimate(None, 1, 2) == "—"
    assert format_estimate(0.0012, 0.0004, 0.003, 2) == "0.0012 (0.0004 to 0.0030)"   # the same decimals
    assert format_p_value(0.0004) == "<0.001" and format_p_value(0.0491) == "0.049"
    assert format_p_value(float("nan")) == ""


def test_default_labels_from_column_names():
    assert default_label("age_years") == "Age (years)"
    assert default_label("rt_dose_gy") == "RT dose (Gy)"
    assert default_label("prior_ho") == "Prior HO"
    assert default_label("tbsa_burned_percent") == "TBSA burned (%)"
    assert default_label("time_days") == "Follow-up time (days)"   # not "Time (days)": the cohort's time


def test_a_label_inside_a_sentence_keeps_its_acronyms():
    """The Table 1 title ("..., by prophylaxis") lower-cased the whole label: "by gcs score", "by prior ho"."""
    from hostats.report.labels import in_sentence

    assert [in_sentence(x) for x in ("Prophylaxis", "Prior HO", "GCS score", "RT timing", "Age (years)", "A", "")] \
        == ["prophylaxis", "prior HO", "GCS score", "RT timing", "age (years)", "a", ""]


@pytest.mark.parametrize("term, variable, level, reference", [
    ("C(sex)[T.male]", "sex", "male", None),
    ("sex[T.male]", "sex", "male", None),
    ("prior_ho[T.True]", "prior_ho", "True", None),
    ("C(prophylaxis, Treatment('none'))[T.nsaid]", "prophylaxis", "nsaid", "none"),
    ('C(prophylaxis, Treatment(reference="nsaid"))[T.none]', "prophylaxis", "none", "nsaid"),
    ("C(`ph.ecog`)[T.1]", "ph.ecog", "1", None),
    ("age_years", "age_years", None, None),
])
def test_model_terms_are_read_as_variable_and_level(term, variable, level, reference):
    t = _parse_term(term, {})
    assert (t.variable, t.level, t.reference) == (variable, level, reference)


def test_scaled_and_interaction_terms_get_readable_labels():
    assert _parse_term("I(age_years / 10)", {}).label == "Age (years), per 10"
    assert _parse_term("C(sex)[T.male]:age_years", {"sex": "Sex"}).label == "Sex: male × Age (years)"
    assert _parse_term("C(grade)[10]:age_years", {}).label == "Grade: 10 × Age (years)"   # full-rank coding
    assert _parse_term("bs(age_years, df=4)[1]", {}).variable == "bs(age_years, df=4)[1]"
    assert default_label("bs(age_years, df=4)[1]") == "bs(age_years, df=4)[1]"


def test_numeric_levels_in_numeric_order():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"grade": rng.choice([1, 2, 10], 300), "y": rng.random(300) < 0.4})
    fit = hostats.logistic(df, "y ~ C(grade)")
    tab = model_table(fit, df)
    assert [r[0] for r in tab.cells] == ["Grade", "1 (ref.)", "2", "10"]
    t = fit.table().set_index("term").loc["C(grade)[T.10]"]
    assert _numbers(tab.cells[3][1])[0] == pytest.approx(t.estimate, abs=0.005)


# --------------------------------------------------------------------------------------------------
# model tables in Word and Excel
# --------------------------------------------------------------------------------------------------

def test_logistic_table_in_word_has_reference_rows_labels_and_the_result_numbers(cohort, fit, tmp_path):
    import docx

    tab = model_table(fit, cohort, labels={"prior_ho": "Previous HO"})
    path = tmp_path / "or.docx"
    tab.to_docx(path)
    doc = docx.Document(str(path))
    assert doc.paragraphs[0].text == "Odds ratios"
    table = doc.tables[0]
    rows = [[c.text for c in r.cells] for r in table.rows]
    assert rows[0] == ["Characteristic", "OR (95% CI)", "p"]
    labels = [r[0] for r in rows[1:]]
    assert labels == ["Age (years)", "Sex", "female (ref.)", "male", "Previous HO", "no (ref.)", "yes",
                      "Prophylaxis", "none (ref.)", "radiotherapy", "NSAID"]      # categorical order
    by_label = {r[0]: r[1:] for r in rows[1:]}
    assert by_label["female (ref.)"] == ["1", ""] and by_label["Sex"] == ["", ""]
    t = fit.table().set_index("term")
    for label, term in [("male", "C(sex)[T.male]"), ("yes", "prior_ho[T.True]"),
                        ("radiotherapy", "prophylaxis[T.radiotherapy]"), ("NSAID", "prophylaxis[T.nsaid]"),
                        ("Age (years)", "age_years")]:
        est, lo, hi = _numbers(by_label[label][0])
        assert est == pytest.approx(t.loc[term, "estimate"], abs=0.005)
        assert lo == pytest.approx(t.loc[term, "ci_lower"], abs=0.005)
        assert hi == pytest.approx(t.loc[term, "ci_upper"], abs=0.005)
        assert re.fullmatch(r"\d+\.\d\d \(\d+\.\d\d to \d+\.\d\d\)", by_label[label][0])
        p = t.loc[term, "p_value"]
        assert by_label[label][1] == ("<0.001" if p < 0.001 else f"{p:.3f}")
    # the level rows are indented, the variable rows are not
    first_col = [r.cells[0].paragraphs[0].paragraph_format.left_indent for r in table.rows[1:]]
    assert first_col[labels.index("male")] is not None and first_col[labels.index("Sex")] is None
    notes = [p.text for p in doc.paragraphs[1:]]
    assert any("OR, odds ratio" in n for n in notes)
    assert any(f"{format_count(fit.n)} analysed" in n for n in notes)


def test_an_explicit_reference_level_comes_first_then_the_categorical_order(cohort):
    fit = hostats.logistic(cohort, "ho ~ C(prophylaxis, Treatment('nsaid'))")
    tab = model_table(fit, cohort)
    labels = [r[0] for r in tab.cells]
    assert labels == ["Prophylaxis", "NSAID (ref.)", "none", "radiotherapy"]


def test_levels_come_from_the_schema_without_data(cohort, fit):
    tab = model_table(fit)   # sex and prophylaxis are canonical columns with code lists
    labels = [r[0] for r in tab.cells]
    assert labels[labels.index("Sex") + 1] == "female (ref.)"
    assert labels[labels.index("Prophylaxis") + 1] == "none (ref.)"


def test_models_side_by_side_in_excel(cohort, fit, tmp_path):
    import openpyxl

    crude = hostats.logistic(cohort, "ho ~ C(sex)")
    tab = model_table({"Crude": crude, "Adjusted": fit}, cohort, labels={"age_years": "=1+1"})
    path = tmp_path / "or.xlsx"
    tab.to_excel(path, sheet_name="Table 2")
    ws = openpyxl.load_workbook(path)["Table 2"]
    values = [[c.value for c in row] for row in ws.iter_rows(min_row=1, max_row=ws.max_row)]
    assert values[0][0] == "Odds ratios"
    assert values[2][1] == "Crude" and values[2][3] == "Adjusted"
    assert any(str(m) == "B3:C3" for m in ws.merged_cells.ranges)
    assert values[3] == ["Characteristic", "OR (95% CI)", "p", "OR (95% CI)", "p"]
    body = {r[0]: r[1:] for r in values[4:] if r[0]}
    # a label that looks like a formula stays text
    assert "=1+1" in body and ws.cell(row=5, column=1).data_type == "s"
    # the reference row shows 1 only in the models that have the variable
    assert body["female (ref.)"][0] == "1" and body["female (ref.)"][2] == "1"
    assert body["no (ref.)"][0] in (None, "") and body["no (ref.)"][2] == "1"
    c = crude.table().set_index("term").loc["C(sex)[T.male]"]
    assert _numbers(body["male"][0]) == pytest.approx([c.estimate, c.ci_lower, c.ci_upper], abs=0.005)
    a = fit.table().set_index("term").loc["C(sex)[T.male]"]
    assert _numbers(body["male"][2]) == pytest.approx([a.estimate, a.ci_lower, a.ci_upper], abs=0.005)
    level_row = next(r for r in ws.iter_rows() if r[0].value == "male")
    assert level_row[0].alignment.indent > 0


def test_cox_and_fine_gray_tables():
    bmt = pd.read_csv(DATA / "bmtcrr.csv")
    fg = hostats.fine_gray(bmt, "Age + Sex + D + Phase", "ftime", "Status", cause=1)
    tab = model_table(fg, bmt, labels={"D": "Disease", "Age": "Age (years)"})
    assert tab.columns[1] == ("", "SHR (95% CI)")
    labels = [r[0] for r in tab.cells]
    assert labels == ["Age (years)", "Sex", "F (ref.)", "M", "Disease", "ALL (ref.)", "AML", "Phase",
                      "CR1 (ref.)", "CR2", "CR3", "Relapse"]
    t = fg.table().set_index("term").loc["Phase[T.Relapse]"]
    cell = tab.cells[labels.index("Relapse")][1]
    assert _numbers(cell) == pytest.approx([t.estimate, t.ci_lower, t.ci_upper], abs=0.005)
    assert "SHR, subdistribution hazard ratio" in tab.footnotes[0]

    from lifelines.datasets import load_rossi
    cox = hostats.cox(load_rossi(), "fin + age + prio", "week", "arrest")
    ct = model_table(cox)
    assert ct.columns[1] == ("", "HR (95% CI)")
    t = cox.table().set_index("term").loc["prio"]
    assert _numbers(ct.cells[2][1]) == pytest.approx([t.estimate, t.ci_lower, t.ci_upper], abs=0.005)


def test_models_of_different_measures_keep_their_own_headers(cohort, fit):
    cox = hostats.cox(cohort.assign(event=cohort["status"] == 1), "age_years + C(sex)", "time_days", "event")
    tab = model_table({"Logistic": fit, "Cox": cox}, cohort)
    assert tab.columns[1] == ("Logistic", "OR (95% CI)") and tab.columns[3] == ("Cox", "HR (95% CI)")
    assert tab.footnotes[0] == "OR, odds ratio; HR, hazard ratio; CI, confidence interval."
    assert tab.title == "Model estimates"


def test_estimates_on_few_events_are_withheld(cohort):
    small = cohort.head(60).assign(rare=[True, False, True] + [False] * 57)
    fit = hostats.logistic(small, "rare ~ age_years")
    tab = model_table(fit)
    cells = [c for r in tab.cells for c in r[1:]]
    assert "—" in cells and not any(re.search(r"\d\.\d\d", c) for c in cells)
    assert any("withheld" in n for n in tab.footnotes)
    assert any("<5 events" in n for n in tab.footnotes)


# --------------------------------------------------------------------------------------------------
# LaTeX and HTML
# --------------------------------------------------------------------------------------------------

def test_latex_is_structurally_valid_with_booktabs(cohort, fit):
    tex = model_table({"Crude": hostats.logistic(cohort, "ho ~ C(sex)"), "Adjusted": fit}, cohort).to_latex()
    for env in ("table", "tabular"):
        assert tex.count(f"\\begin{{{env}}}") == tex.count(f"\\end{{{env}}}") == 1
    assert tex.index("\\begin{table}") < tex.index("\\begin{tabular}") < tex.index("\\end{tabular}") \
        < tex.index("\\end{table}")
    top, mid, bottom = tex.index("\\toprule"), tex.index("\\midrule"), tex.index("\\bottomrule")
    assert top < mid < bottom
    assert tex.count("{") == tex.count("}")
    body = tex[tex.index("\\begin{tabular}"):tex.index("\\end{tabular}")]
    ncol = len(re.search(r"\\begin\{tabular\}\{([lcr]+)\}", body).group(1))
    rows = [r for r in body[body.index("\\midrule") + 8:body.index("\\bottomrule")].split("\\\\") if r.strip()]
    assert rows and all(len(re.findall(r"(?<!\\)&", r)) == ncol - 1 for r in rows)
    assert "OR (95\\% CI)" in tex and "\\textless{}0.001" in tex and "\\quad male" in tex
    assert not re.search(r"(?<!\\)%", tex.replace("\\%", ""))   # no bare % (a LaTeX comment)


def test_html_reads_back_to_the_same_cells(cohort, fit, tmp_path):
    tab = model_table(fit, cohort)
    text = tab.to_html(tmp_path / "t.html")
    assert (tmp_path / "t.html").read_text(encoding="utf-8") == text
    back = pd.read_html(io.StringIO(text))[0].fillna("")
    assert back.shape == (len(tab.cells), len(tab.columns))
    assert [str(x) for x in back.iloc[:, 0]] == [r[0] for r in tab.cells]
    assert [str(x) for x in back.iloc[:, 1]] == [r[1] for r in tab.cells]
    assert text == tab.to_html()   # deterministic (no random ids)
    other = model_table(fit, cohort, title="Another").to_html()
    ids = set(re.findall(r'id="([^"]+)"', text))
    assert ids and not ids & set(re.findall(r'id="([^"]+)"', other))   # two tables on one page


# --------------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------------

def test_table1_counts_order_and_smd_against_the_data(cohort, tmp_path):
    import docx

    tab = table1(cohort, ["age_years", "sex", "prior_ho"], by="treated")
    path = tmp_path / "t1.docx"
    tab.to_docx(path)
    rows = [[c.text for c in r.cells] for r in docx.Document(str(path)).tables[0].rows]
    head = rows[0]
    n_no, n_yes = (cohort["treated"] == "no").sum(), (cohort["treated"] == "yes").sum()
    assert head == ["Characteristic", f"no (n={format_count(n_no)})", f"yes (n={format_count(n_yes)})",
                    f"Overall (n={format_count(len(cohort))})", "SMD"]
    body = {}
    current = ""
    for r in rows[1:]:
        if all(c == "" for c in r[1:]):
            current = r[0]
        body[(current, r[0])] = r[1:]
    assert list(dict.fromkeys(k[0] for k in body)) == ["Age (years)", "Sex, n (%)", "Prior HO, n (%)"]
    for grp_i, grp in enumerate(["no", "yes"]):
        sub = cohort[cohort["treated"] == grp]
        female = int((sub["sex"] == "female").sum())
        assert body[("Sex, n (%)", "female")][grp_i].split(" (")[0] == format_count(female)
        a = sub["age_years"]
        assert body[("Age (years)", "mean (SD)")][grp_i] == f"{a.mean():.1f} ({a.std():.1f})"
    # two patients with missing sex: a small cell, shown as <5 and never as a number
    assert "<5" in body[("Sex, n (%)", "Missing")][:3]
    assert not any(re.fullmatch(r"[1-4] \(.*", c) for c in body[("Sex, n (%)", "Missing")])
    # SMDs computed here
    t, c = cohort[cohort["treated"] == "yes"], cohort[cohort["treated"] == "no"]
    smd_age = abs(t["age_years"].mean() - c["age_years"].mean()) / np.sqrt(
        (t["age_years"].var() + c["age_years"].var()) / 2)
    assert float(body[("Age (years)", "mean (SD)")][3]) == pytest.approx(smd_age, abs=0.005)
    pt, pc = t["prior_ho"].astype(float).mean(), c["prior_ho"].astype(float).mean()
    smd_prior = abs(pt - pc) / np.sqrt((pt * (1 - pt) + pc * (1 - pc)) / 2)
    assert float(body[("Prior HO, n (%)", "yes")][3]) == pytest.approx(smd_prior, abs=0.005)
    # no missing ages, no "Missing" row for age
    assert ("Age (years)", "Missing") not in body


def test_table1_groups_in_categorical_order_with_level_labels(cohort):
    tab = table1(cohort, ["sex"], by="prophylaxis", level_labels={"sex": {"female": "women", "male": "men"}})
    heads = [h for _, h in tab.columns]
    assert [h.split(" (")[0] for h in heads[1:4]] == ["none", "radiotherapy", "NSAID"]
    assert [r[0] for r in tab.cells][:3] == ["Sex, n (%)", "women", "men"]
    assert heads[-1] == "SMD" and any("largest" in n for n in tab.footnotes)


def test_table1_has_a_heading_row_per_variable_and_level_labels_over_its_groups():
    """A journal's Table 1: one heading row per variable ("Sex, n (%)"; a number's "Age (years)") with its
    levels or statistics indented beneath it, never the variable repeated on each level row, and the groups
    headed by their level labels ("radiotherapy + NSAID"), in every format; in HTML the indent shows."""
    rng = np.random.default_rng(7)
    n = 200
    d = pd.DataFrame({"arm": pd.Categorical(np.repeat(["none", "radiotherapy_nsaid"], n // 2),
                                            categories=["none", "radiotherapy_nsaid"]),
                      "age_years": rng.normal(60, 9, n), "sex": rng.choice(["female", "male"], n),
                      "prior_ho": pd.array(rng.random(n) < 0.3, dtype="boolean")})
    tab = table1(d, ["age_years", "sex", "prior_ho"], by="arm")
    assert [h for _, h in tab.columns] == ["Characteristic", "none (n=100)", "radiotherapy + NSAID (n=100)",
                                           "Overall (n=200)", "SMD"]
    assert [(r[0], k) for r, k in zip(tab.cells, tab.indent, strict=True)] == [
        ("Age (years)", 0), ("mean (SD)", 1), ("median [IQR]", 1), ("Sex, n (%)", 0), ("female", 1), ("male", 1),
        ("Prior HO, n (%)", 0), ("yes", 1)]
    page = tab.to_html()
    first = re.findall(r'<td [^>]*class="data row\d+ col0( indent)?" >(.*?)</td>', page)
    assert [(label, bool(ind)) for ind, label in first] == [(r[0], bool(k)) for r, k in
                                                           zip(tab.cells, tab.indent, strict=True)]
    assert re.search(r"td\.indent \{\s*padding-left: 1\.5em;\s*\}", page)   # a class rule beats the td rule
    tex = tab.to_latex()
    assert "\\quad female" in tex and "\nSex, n (\\%)" in tex and "radiotherapy + NSAID (n=100)" in tex


def test_weighted_table1_in_excel_against_the_weights(cohort, tmp_path):
    import openpyxl

    res = hostats.iptw(cohort, treatment="treated", confounders=["age_years", "prior_ho"], outcome="ho",
                       reference="no")
    tab = table1(cohort, ["age_years", "prior_ho", "sex"], by="treated", iptw=res)
    path = tmp_path / "t1.xlsx"
    save_tables(path, [tab])
    ws = openpyxl.load_workbook(path).worksheets[0]
    values = [[c.value or "" for c in row] for row in ws.iter_rows()]
    spanners = values[2]
    assert spanners[1] == "Unweighted" and spanners[5] == "IPTW-weighted (ATE)"
    head = values[3]
    assert head[5:] == ["no", "yes", "SMD"]
    rows = {r[0]: r for r in values[4:] if r[0]}
    w = res.weights.to_numpy()
    x = cohort["prior_ho"].astype(float).to_numpy()
    arm = cohort["treated"].to_numpy() == "yes"
    pw = [np.sum(w[m] * x[m]) / np.sum(w[m]) for m in (~arm, arm)]
    assert [float(v.rstrip("%")) for v in rows["yes"][5:7]] == pytest.approx([100 * p for p in pw], abs=0.05)
    p0 = [x[~arm].mean(), x[arm].mean()]
    smd_w = abs(pw[1] - pw[0]) / np.sqrt((p0[1] * (1 - p0[1]) + p0[0] * (1 - p0[0])) / 2)
    assert float(rows["yes"][7]) == pytest.approx(smd_w, abs=0.005)
    # sex is not a confounder: no weighted values
    assert rows["female"][5:8] == ["", "", ""]


def test_weighted_values_are_withheld_with_their_small_count():
    rng = np.random.default_rng(5)
    n = 400
    arm = rng.choice(["a", "b"], n)
    site = np.where(rng.random(n) < 0.5, "x", "y").astype(object)
    site[np.flatnonzero(arm == "b")[:3]] = "z"            # 3 patients of arm b at site z, none of arm a
    df = pd.DataFrame({"arm": arm, "site": site, "age": rng.normal(60, 8, n), "y": rng.random(n) < 0.3})
    res = hostats.iptw(df, treatment="arm", confounders=["age", "site"], outcome="y", reference="a")
    tab = table1(df, ["site"], by="arm", iptw=res)
    z = next(r for r in tab.cells if r[0] == "z")
    heads = [h for _, h in tab.columns]
    assert heads[2].startswith("b (n=") and heads[6] == "b"
    assert z[2] == "<5" and z[6] == "—"          # arm b: 3 patients at site z
    assert z[1] == "0 (0.0%)" and z[5] == "0.0%"
    # the SMDs of site, with the shown percentages, would give the 3 back: withheld for every level
    assert heads[4] == heads[7] == "SMD"
    assert all(r[4] == r[7] == "—" for r in tab.cells if r[0] in ("x", "y", "z"))
    assert any("withheld, with the shown cells" in n for n in tab.footnotes)


def test_contrast_table_of_iptw(cohort):
    res = hostats.iptw(cohort, treatment="prophylaxis", confounders=["age_years", "prior_ho"], outcome="ho",
                       reference="none")
    tab = model_table(res)
    labels = [r[0] for r in tab.cells]
    assert labels[0] == "radiotherapy vs none" and "NSAID vs none" in labels
    assert [h for _, h in tab.columns][1] == "IPTW (95% CI)"
    t = res.table()
    rd = t[(t["contrast"] == "radiotherapy vs none") & (t["measure"] == "risk_difference")].iloc[0]
    cell = tab.cells[labels.index("Risk difference (percentage points)")][1]
    assert _numbers(cell) == pytest.approx([100 * rd.estimate, 100 * rd.ci_lower, 100 * rd.ci_upper], abs=0.05)


def test_a_contrast_is_withheld_with_a_small_arm_risk():
    rng = np.random.default_rng(11)
    arm = np.array(["a"] * 200 + ["b"] * 30)
    y = np.zeros(230, dtype=bool)
    y[rng.choice(200, 60, replace=False)] = True
    y[[200, 201]] = True                                   # 2 events in arm b
    df = pd.DataFrame({"arm": arm, "age": rng.normal(60, 8, 230), "y": y})
    res = hostats.iptw(df, treatment="arm", confounders=["age"], outcome="y", reference="a")
    tab = model_table(res)
    rows = {r[0]: r[1:] for r in tab.cells}
    assert rows["Risk, b (%)"][0] == "—"
    assert rows["Risk, a (%)"][0] != "—"                  # the other arm's risk alone reveals nothing
    # with the arm a risk, a difference or ratio would give the withheld risk back
    for measure in ("Risk difference (percentage points)", "Risk ratio", "Odds ratio"):
        assert set(rows[measure]) <= {"—", ""}, measure
    assert any("withheld" in n for n in tab.footnotes)


# --------------------------------------------------------------------------------------------------
# several tables in one file; bad input
# --------------------------------------------------------------------------------------------------

def test_save_tables_writes_every_table(cohort, fit, tmp_path):
    import docx
    import openpyxl

    tables = [table1(cohort, ["sex"], by="treated"), model_table(fit, cohort)]
    save_tables(tmp_path / "all.docx", tables)
    assert len(docx.Document(str(tmp_path / "all.docx")).tables) == 2
    save_tables(tmp_path / "all.xlsx", tables)
    assert openpyxl.load_workbook(tmp_path / "all.xlsx").sheetnames == ["Table 1", "Table 2"]
    tex = save_tables(tmp_path / "all.tex", tables).read_text(encoding="utf-8")
    assert tex.count("\\begin{table}") == 2
    with pytest.raises(ValueError, match="unknown format"):
        save_tables(tmp_path / "all.pdf", tables)


def _package_bytes(path, save, at: float) -> tuple[bytes, dict[str, tuple], bytes]:
    """The file ``save`` writes to ``path`` while the clock reads ``at`` (seconds since 1970; the zip module's
    clock, which stamps each entry): its bytes, each entry's date and docProps/core.xml."""
    import types
    import zipfile

    clock = types.SimpleNamespace(time=lambda: at, localtime=__import__("time").localtime)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zipfile, "time", clock)
        save(path)
    with zipfile.ZipFile(path) as z:
        return path.read_bytes(), {i.filename: i.date_time for i in z.infolist()}, z.read("docProps/core.xml")


@pytest.mark.parametrize("suffix", [".docx", ".xlsx"])
def test_word_and_excel_files_are_the_same_bytes_on_every_run(tmp_path, monkeypatch, suffix):
    """Two runs of one analysis wrote two different tables.xlsx and tables.docx: each zip entry carried the
    time of the save, and openpyxl wrote it into the workbook's created and modified properties. Saved at
    two clock readings a year apart (2001-09-09 and 2002-09-09), the files are now the same bytes, dated
    1980-01-01 00:00 UTC, or SOURCE_DATE_EPOCH when set."""
    from hostats.errors import HostatsError

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tab = PublicationTable("Table 2. Odds ratios", [["Age (years)", "1.02 (1.00 to 1.04)"], ["Male", "1.5 (1.1 to 2.0)"]],
                           [("", "Variable"), ("", "OR (95% CI)")], [0, 0], ["OR: odds ratio."])
    savers = [lambda p: save_tables(p, [tab, tab]),
              lambda p: tab.to_docx(p) if suffix == ".docx" else tab.to_excel(p)]
    for k, save in enumerate(savers):
        first, dates, core = _package_bytes(tmp_path / f"a{k}{suffix}", save, 1_000_000_000)
        second, _, _ = _package_bytes(tmp_path / f"b{k}{suffix}", save, 1_031_536_000)
        assert first == second
        assert set(dates.values()) == {(1980, 1, 1, 0, 0, 0)}
        assert re.findall(rb"<dcterms:(created|modified)[^>]*>([^<]*)<", core) == [
            (b"created", b"1980-01-01T00:00:00Z"), (b"modified", b"1980-01-01T00:00:00Z")]
    # 1,700,000,000 s = 19,675 days (1970-01-01 + 19,675 days = 2023-11-14) and 80,000 s (22:13:20)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    _, dates, core = _package_bytes(tmp_path / f"c{suffix}", savers[0], 1_000_000_000)
    assert set(dates.values()) == {(2023, 11, 14, 22, 13, 20)}
    assert core.count(b">2023-11-14T22:13:20Z<") == 2
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(HostatsError, match="SOURCE_DATE_EPOCH='yesterday': not a time"):
        save_tables(tmp_path / f"d{suffix}", tab)


def test_bad_input_is_a_clear_error(cohort):
    with pytest.raises(DataError, match="not in the data"):
        table1(cohort, ["age_years", "bmi"], by="treated")
    with pytest.raises(DataError, match="must never show"):
        table1(cohort.assign(patient_id=[f"P{i}" for i in range(len(cohort))]), ["patient_id"], by="treated")
    with pytest.raises(DataError, match="no variables"):
        table1(cohort, [], by="treated")
    with pytest.raises(DataError, match="not a hostats result"):
        model_table("ho ~ age")
    with pytest.raises(DataError, match="no model terms"):
        model_table(hostats.proportion([3, 5], [10, 12]))
    with pytest.raises(DataError, match="give by="):
        res = hostats.iptw(cohort, treatment="treated", confounders=["age_years"], outcome="ho", reference="no")
        table1(cohort, ["age_years"], iptw=res)
    with pytest.raises(ValueError):
        PublicationTable("t", [["a", "b"]], [("", "x")], [0])


def test_exported_from_hostats():
    assert hostats.table1 is table1 and hostats.model_table is model_table
    assert hostats.PublicationTable is PublicationTable
