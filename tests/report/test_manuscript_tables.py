"""The tables for a manuscript that ``hostats run`` writes beside report.html (tables.docx, tables.xlsx,
tables.tex): opened with python-docx, openpyxl and as text, their Table 1 agrees cell for cell with the
HTML's Table 1, their model tables with estimates.csv (withheld estimates withheld, shown ones in journal
format), and the HTML links them and manifest.json lists them. The prophylaxis analysis at n = 400 has
small cells and an arm with fewer than 5 events (its risks and contrasts withheld); tha_incidence gives a
logistic model table."""
from __future__ import annotations

import json
import re
from html import unescape

import docx
import numpy as np
import openpyxl
import pandas as pd
import pytest

from hostats.report.labels import measure_label
from hostats.report.publication import format_estimate, format_p_value
from tests.report.test_disclosure_attack import _run_small, html_table1

FILES = ("tables.docx", "tables.xlsx", "tables.tex")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("manuscript")
    return {name: _run_small(name, 400, folder) for name in ("prophylaxis", "tha_incidence")}


def _docx_tables(path) -> list[tuple[str, list[list[str]]]]:
    """(title, rows of cell texts) of each table of a Word file, the title the bold paragraph before it."""
    d = docx.Document(str(path))
    titles = [p.text for p in d.paragraphs if p.runs and p.runs[0].bold]
    return [(title, [[c.text for c in r.cells] for r in t.rows]) for title, t in zip(titles, d.tables, strict=True)]


def _xlsx_tables(path) -> dict[str, list[list[str]]]:
    wb = openpyxl.load_workbook(str(path))
    return {ws.title: [["" if v is None else str(v) for v in row] for row in ws.iter_rows(values_only=True)]
            for ws in wb.worksheets}


def _html(folder) -> str:
    return (folder / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["prophylaxis", "tha_incidence"])
def test_tables_written_linked_and_listed(reports, name):
    folder = reports[name]
    html = _html(folder)
    outputs = json.loads((folder / "manifest.json").read_text())["outputs"]
    for f in FILES:
        assert (folder / f).is_file() and (folder / f).stat().st_size > 0, f
        assert f'<a href="{f}">' in html, f
        assert f in outputs, f
    # the disclosure policy is said in words, made from the spec (rounding to 5 by default)
    text = unescape(re.search(r'id="disclosure">(.*?)</p>', html, re.S).group(1))
    assert "rounded to the nearest 5" in text and '"<5"' in text and "tables.docx" in text


def _table1_rows(html: str) -> tuple[list[str], list[list[str]]]:
    header, rows = html_table1(html)
    counts = [i for i, h in enumerate(header) if "(n=" in h]
    # the manuscript leaves out a variable's "missing" row when nothing is missing
    rows = [r for r in rows if not (r[1] == "missing" and all(r[i] in ("0", "0 (0.0%)") for i in counts))]
    return header, rows


def test_table1_in_word_excel_and_latex_agrees_with_the_html(reports):
    folder = reports["prophylaxis"]
    header, rows = _table1_rows(_html(folder))
    value_cols = [i for i, h in enumerate(header) if "(n=" in h]
    html_cells = [[r[i] for i in value_cols] for r in rows]
    assert any(c == "<5" for r in html_cells for c in r), "the test needs small cells"
    title, word = _docx_tables(folder / "tables.docx")[0]
    assert title.startswith("Table 1.")
    # two header rows (unweighted / IPTW-weighted spanners), then a row per variable and per level
    assert word[0][1] == "Unweighted" and any(c.startswith("IPTW-weighted") for c in word[0])
    heads = word[1]
    assert [re.search(r"\(n=[^)]*\)", heads[k + 1]).group(0) for k in range(len(value_cols))] == \
        [re.search(r"\(n=[^)]*\)", header[i]).group(0) for i in value_cols]
    body = word[2:]
    levels = [r for r in body if any(r[1:])]           # variable rows are empty but for their label
    assert len(levels) == len(rows)
    assert [r[1:1 + len(value_cols)] for r in levels] == html_cells
    # every count cell of the HTML is shown the same way in Excel and LaTeX
    sheet = _xlsx_tables(folder / "tables.xlsx")["Table 1"]
    xl_levels = [r for r in sheet[4:4 + len(body)] if any(r[1:])]
    assert [r[1:1 + len(value_cols)] for r in xl_levels] == html_cells
    tex = (folder / "tables.tex").read_text(encoding="utf-8")
    tex_rows = [[c.strip().replace(r"\textless{}", "<").replace(r"\%", "%") for c in line.split(" & ")]
                for line in tex.split("\\end{table}")[0].splitlines() if line.startswith("\\quad ")]
    assert [r[1:1 + len(value_cols)] for r in tex_rows] == html_cells
    # weighted columns: a weighted value beside every shown unweighted count, withheld beside "<5"
    w0 = 1 + len(value_cols) + 1   # after the SMD column
    for r in levels:
        for k in range(len(value_cols) - 1):   # groups (the Overall column has no weighted twin)
            if r[1 + k] == "<5":
                assert r[w0 + k] in ("—", ""), r


@pytest.mark.parametrize("name, groups", [
    ("prophylaxis", ["none", "radiotherapy", "NSAID", "bisphosphonate", "radiotherapy + NSAID"]),
    ("tha_incidence", ["THA", "long-bone fracture"])])
def test_table1_reads_as_a_journal_table_in_every_format(reports, name, groups):
    """Table 1 of the report and of tables.docx/xlsx/tex is one table: its groups headed by their level
    labels as the summary writes them ("radiotherapy + NSAID (n=...)", not "radiotherapy_nsaid (n=...)"; the
    IPTW-weighted ones too), a heading row per variable ("Sex, n (%)") with its levels indented beneath it,
    not "Sex | female", "Sex | male" on every row."""
    folder = reports[name]
    part = _html(folder)[_html(folder).index('id="table1"'):]
    table = re.search(r"<table.*?</table>", part, re.S).group(0)
    spanned = name == "prophylaxis"   # Unweighted / IPTW-weighted spanners above the header
    rows = re.findall(r"<tr.*?>(.*?)</tr>", table, re.S)
    head = [unescape(re.sub(r"<.*?>", "", h)).strip()
            for h in re.findall(r"<th[^>]*>(.*?)</th>", rows[1 if spanned else 0], re.S)]
    n = [re.search(r"\(n=[^)]*\)", h).group(0) for h in head if "(n=" in h]
    weighted = [*groups, "SMD"] if spanned else []   # the arms of the IPTW section
    assert head == ["Characteristic", *[f"{g} {k}" for g, k in zip([*groups, "Overall"], n, strict=True)],
                    "SMD", *weighted]
    first = [(unescape(label), bool(ind)) for ind, label in
             re.findall(r'<td [^>]*class="data row\d+ col0( indent)?" >(.*?)</td>', table)]
    headings = [label for label, ind in first if not ind]
    assert headings == ["Age (years)", "Sex, n (%)", "Prior HO, n (%)",
                        *([] if spanned else ["Prophylaxis, n (%)"]), "Site, n (%)"]
    levels = [label for label, ind in first if ind and label != "Missing"]
    assert levels[:5] == ["mean (SD)", "median [IQR]", "female", "male", "yes"]
    # the same header and first column in Word, Excel and LaTeX
    word = _docx_tables(folder / "tables.docx")[0][1]
    assert word[1 if spanned else 0] == head
    assert [r[0] for r in word[2 if spanned else 1:]] == [label for label, _ in first]
    sheet = _xlsx_tables(folder / "tables.xlsx")["Table 1"]
    assert sheet[3 if spanned else 2] == head
    tex = (folder / "tables.tex").read_text(encoding="utf-8").split("\\end{table}")[0]
    assert " & ".join(h.replace("%", "\\%") for h in head) + " \\\\" in tex
    assert "\n\\quad female & " in tex and "\nSex, n (\\%) & " in tex


def _contrast_cells(word_rows: list[list[str]]) -> dict[tuple[str, str, str], str]:
    """{(contrast, row label, column header): cell} of a contrast table."""
    heads, out, contrast = word_rows[0], {}, ""
    for r in word_rows[1:]:
        if not any(r[1:]):
            contrast = r[0]
            continue
        for h, c in zip(heads[1:], r[1:], strict=True):
            out[(contrast, r[0], h)] = c
    return out


def test_contrast_table_agrees_with_estimates_csv(reports):
    folder = reports["prophylaxis"]
    est = pd.read_csv(folder / "estimates.csv")
    title, rows = next(t for t in _docx_tables(folder / "tables.docx") if "Effect of prophylaxis" in t[0])
    cells = _contrast_cells(rows)
    method_col = {"": "IPTW (95% CI)", "_regression": "Regression (g-formula) (95% CI)", "_aipw": "AIPW (95% CI)",
                  "_ipcw": "IPTW-IPCW (95% CI)"}
    checked = withheld = 0
    for _, r in est[est["section"] == "effect"].iterrows():
        m = re.fullmatch(r"(crude_)?(risk_treated|risk_control|risk_difference|risk_ratio|odds_ratio|hazard_ratio)"
                         r"(_[a-z]+)?", str(r["measure"]))
        if m is None:
            continue
        arm, _, ref = str(r["group"]).partition(" vs ")
        contrast = " vs ".join({"radiotherapy_nsaid": "radiotherapy + NSAID", "nsaid": "NSAID"}.get(x, x)
                               for x in (arm, ref))
        t_text, c_text = contrast.split(" vs ")
        label = {"risk_treated": f"Risk, {t_text} (%)", "risk_control": f"Risk, {c_text} (%)",
                 "risk_difference": "Risk difference (percentage points)", "risk_ratio": "Risk ratio",
                 "odds_ratio": "Odds ratio", "hazard_ratio": "Hazard ratio"}[m.group(2)]
        column = "Crude (95% CI)" if m.group(1) else method_col[m.group(3) or ""]
        cell = cells[(contrast, label, column)]
        if pd.isna(r["estimate"]):
            assert cell == "—", (r["measure"], r["group"], cell)
            withheld += 1
        else:
            scale, digits = (100, 1) if m.group(2).startswith("risk_") and "ratio" not in m.group(2) else (1, 2)
            assert cell == format_estimate(scale * r["estimate"], scale * r["ci_lower"], scale * r["ci_upper"],
                                           digits), (r["measure"], r["group"], cell)
        checked += 1
    assert checked >= 60 and withheld >= 5   # the arm with fewer than 5 events: its risks and contrasts


def test_model_table_agrees_with_estimates_csv(reports):
    folder = reports["tha_incidence"]
    est = pd.read_csv(folder / "estimates.csv")
    rows = est[(est["section"] == "risk_factors") & (est["measure"] == "odds_ratio")]
    title, word = next(t for t in _docx_tables(folder / "tables.docx") if t[1][0][1].startswith("OR"))
    assert title.startswith("Table ") and word[0] == ["Characteristic", "OR (95% CI)", "p"]
    shown = {(r[1], r[2]) for r in word[1:] if r[1] not in ("", "1")}
    expected = {(format_estimate(r["estimate"], r["ci_lower"], r["ci_upper"]), format_p_value(r["p_value"]))
                for _, r in rows.iterrows()}
    assert shown == expected and len(shown) == len(rows)
    assert any(r[0].endswith("(ref.)") and r[1] == "1" for r in word)   # a reference row per factor
    sheet = next(v for k, v in _xlsx_tables(folder / "tables.xlsx").items() if k == title.split(".")[0])
    assert {(r[1], r[2]) for r in sheet if r[1] not in ("", "1") and " to " in r[1]} == expected


def test_withheld_estimates_stay_withheld_in_every_table_of_the_report(reports):
    """A contrast withheld in estimates.csv (it would give back an arm's withheld risk) is withheld in the
    E-value tables of the HTML too, and the Word tables show no number that estimates.csv withholds."""
    folder = reports["prophylaxis"]
    est = pd.read_csv(folder / "estimates.csv")
    gone = est[est["estimate"].isna() & est["measure"].isin(["risk_ratio", "odds_ratio", "hazard_ratio"])]
    assert len(gone)
    html = unescape(_html(folder))
    titles = {s["id"]: s.get("title", s["id"]) for s in json.loads((folder / "manifest.json").read_text())["spec"]["section"]}
    seen = 0
    for _, r in gone.iterrows():
        if f"E-values: {titles.get(r['section'])}" not in html:
            continue
        table = re.search(r"<table.*?</table>", html[html.index(f"E-values: {titles[r['section']]}"):], re.S).group(0)
        contrast = re.escape(str(r["group"]).replace("radiotherapy_nsaid", "radiotherapy + NSAID"))
        measure = re.escape(measure_label(r["measure"]))   # read as words: "Risk ratio"
        for row in re.findall(rf"<tr>\s*<td>{contrast}</td>\s*<td>{measure}</td>(.*?)</tr>", table, re.S):
            assert not re.search(r"\d", re.sub(r"<.*?>", "", row)), (r["section"], r["group"], row)
            seen += 1
    assert seen   # the safety section's withheld ratios have E-value rows, shown as withheld
    words = " ".join(c for _, t in _docx_tables(folder / "tables.docx") for row in t for c in row)
    assert "—" in words
    assert np.isfinite(est["estimate"]).sum() > 0


def test_identifier_scan_reads_the_text_of_word_and_excel_tables(tmp_path):
    """The last check before publishing reads what the Word and Excel tables say (not their XML layout):
    a patient ID or record date in a cell stops the run; numbers in the layout (widths, sizes) do not."""
    from hostats.analysis.writer import _scan_outputs
    from hostats.errors import HostatsError
    from hostats.report.publication import PublicationTable, save_tables

    clean = PublicationTable("Table 1. x", [["a", "12 (4.0%)"]], [("", "Characteristic"), ("", "n")], [0])
    for name in ("tables.docx", "tables.xlsx"):
        save_tables(tmp_path / name, [clean])
    layout = {"12240", "11906", "5486400", "914400", "1440"}   # page and cell sizes of the files
    saved = {"2013-12-23", pd.Timestamp.now("UTC").strftime("%Y-%m-%d")}   # the template's and the save's date
    _scan_outputs(tmp_path, layout | {"HO-PAT-77"}, saved | {"2021-03-04"})   # nothing to find: passes
    for name in ("tables.docx", "tables.xlsx"):
        leaky = PublicationTable("Table 1. x", [["HO-PAT-77", "2021-03-04"]], [("", "Characteristic"), ("", "n")], [0])
        save_tables(tmp_path / name, [leaky])
        with pytest.raises(HostatsError, match=name):
            _scan_outputs(tmp_path, {"HO-PAT-77"}, set())
        with pytest.raises(HostatsError, match=name):
            _scan_outputs(tmp_path, set(), {"2021-03-04"})
        save_tables(tmp_path / name, [clean])


def test_weighted_table1_uses_the_sections_fitted_weighting(tmp_path, monkeypatch):
    """The weighted columns of the manuscript's Table 1 come from the weighting the effect section fitted
    (handed on in SectionOutput.weighting), not from a second fit: with iptw refusing to run while the
    tables are written, Table 1 still has its IPTW-weighted columns; the handed-on weighting is the
    section's fit (the same weights and the same weighted Table 1 as hostats.iptw on its episodes)."""
    import hostats.analysis.writer as writer
    import hostats.stats.causal.weighting as weighting
    from hostats.report.publication import table1

    real_table1, real_iptw, seen = writer._manuscript_table1, weighting.iptw, {}

    def refuse(*args, **kwargs):
        raise AssertionError("the writer fitted the weighting again")

    def table1_without_iptw(spec, ctx, outputs, policy):
        seen.update(spec=spec, ctx=ctx, outputs=outputs)
        weighting.iptw = refuse
        try:
            return real_table1(spec, ctx, outputs, policy)
        finally:
            weighting.iptw = real_iptw

    monkeypatch.setattr(writer, "_manuscript_table1", table1_without_iptw)
    folder = _run_small("prophylaxis", 400, tmp_path)
    title, word = _docx_tables(folder / "tables.docx")[0]
    assert any(c == "IPTW-weighted (ATE)" for c in word[0]), word[0]
    assert not any("IPTW-weighted columns not shown" in c for r in _xlsx_tables(folder / "tables.xlsx")["Table 1"]
                   for c in r)
    spec, ctx, outputs = seen["spec"], seen["ctx"], seen["outputs"]
    effect = outputs[[s["id"] for s in spec.sections].index("effect")]
    w = effect.weighting
    assert w is not None and w.treatment == "prophylaxis" and w.estimand == "ATE" and w.levels[0] == "none"
    assert w.n == len(w.weights) and set(w.weights.index) <= set(ctx.data.index)
    rows = ctx.data.loc[w.weights.index]
    direct = real_iptw(rows, "prophylaxis", list(spec.adjustment["confounders"]), None, estimand="ATE",
                       reference="none", time="time_days", status="status", horizon=ctx.horizon)
    np.testing.assert_allclose(w.weights.to_numpy(), np.asarray(direct.weights, float), rtol=1e-9)
    pd.testing.assert_frame_equal(w.weighted_table1(), direct.weighted_table1())
    variables = list(spec.report["table1"])
    assert table1(ctx.data, variables, by="prophylaxis", iptw=w).cells == \
        table1(ctx.data, variables, by="prophylaxis", iptw=direct).cells
    # the safety section (a subset: radiotherapy vs none) weights another population: not Table 1's
    safety = outputs[[s["id"] for s in spec.sections].index("safety")].weighting
    assert safety is not None and writer._table1_weighting(spec, outputs, "prophylaxis")[0] is w


@pytest.mark.parametrize("name", ["prophylaxis", "tha_incidence"])
def test_manifest_is_the_analysts_record_and_says_so(reports, name):
    """manifest.json keeps the exact number analysed (and the exact injected faults of synthetic data): it
    is the analyst's record, not published. It says so itself, the report's list of files marks it, and the
    disclosure paragraph names it; the report shows the number analysed rounded as every other count."""
    folder = reports[name]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["publication"].startswith("not for publication")
    n = manifest["episodes_analysed"]
    assert isinstance(n, int) and n > 0
    assert all(isinstance(v, int) for v in manifest["synthetic"]["faults"].values())   # exact, not "<5"
    html = _html(folder)
    files = unescape(re.sub(r"<[^>]+>", "", re.search(r'id="files">(.*?)</p>', html, re.S).group(1)))
    assert "manifest.json (exact counts, for the analyst; do not publish)" in files
    assert files.count("do not publish") == 1   # the other files are the published ones
    text = unescape(re.search(r'id="disclosure">(.*?)</p>', html, re.S).group(1))
    assert "manifest.json is the analyst's record of the run" in text and "do not publish it" in text
    shown = re.search(r"<th>episodes analysed</th><td>([^<]*)</td>", html).group(1)
    assert shown == f"{5 * round(n / 5):,}", (shown, n)   # rounded to 5 in the report, exact in the manifest
    assert "episodes_analysed" not in (folder / "estimates.json").read_text()
