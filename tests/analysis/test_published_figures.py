"""The figures of a section's own estimates (a logistic section's forest plot of odds ratios, the sites'
forest plot of a pooling, a proportion's bar chart) are drawn from the published estimates, the one
decision of what is withheld: a figure shows no estimate that estimates.csv withholds, and what it shows is
the value estimates.csv publishes (a proportion recomputed from rounded counts is drawn as recomputed).

Read from the figures as drawn (matplotlib's artists, captured when the report saves them) against
estimates.csv as written, for reports at n = 400 where estimates are withheld: tha_incidence with a
logistic section on a few patients (fewer than 5 events: every odds ratio withheld), one on many, and a
bar chart of proportions in small groups; resection_recurrence, whose small sites are withheld."""
from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle

from tests.paths import ROOT

EXTRA_SECTIONS = '''
[[section]]
id = "fracture_factors"
type = "logistic"
title = "Risk factors after a fracture"
subset = "index_event == 'long_bone_fracture'"
formula = "ho_within_horizon ~ age_years + C(sex)"
e_values = true

[[section]]
id = "few_events"
type = "logistic"
title = "Radiotherapy with an NSAID"
subset = "index_event == 'tha' and prophylaxis == 'radiotherapy_nsaid'"
formula = "ho_within_horizon ~ age_years"

[[section]]
id = "prior_by_arm"
type = "proportion"
title = "HO after prior HO, by prophylaxis"
subset = "index_event == 'tha' and prior_ho == True"
event = "ho"
by = "prophylaxis"
figure = true

[[section]]
id = "hazards"
type = "cox"
title = "Hazard of HO after THA"
subset = "index_event == 'tha'"
formula = "I(age_years / 10) + C(sex) + C(prophylaxis)"
'''


def _run(name: str, folder: Path, extra: str) -> tuple[Path, dict]:
    """Run a bundled analysis at n = 400 (with ``extra`` sections); returns the report folder and the figures
    as saved ({name: matplotlib Figure})."""
    import hostats.report.figures as figures
    from hostats.analysis import load_spec, run_analysis
    from hostats.cli import _synthetic_prepare

    saved: dict = {}
    original = figures.save_figure

    def keep(fig, directory, fig_name):
        saved[fig_name] = fig
        return original(fig, directory, fig_name)

    spec_dir = folder / "specs" / name
    spec_dir.mkdir(parents=True)
    text = (ROOT / "analyses" / name / "analysis.toml").read_text(encoding="utf-8")
    (spec_dir / "analysis.toml").write_text(re.sub(r"\bn = \d+", "n = 400", text) + extra, encoding="utf-8")
    spec = load_spec(spec_dir)
    prepare = _synthetic_prepare(spec)
    try:
        with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
            warnings.simplefilter("ignore")
            mp.setattr(figures, "save_figure", keep)
            run_analysis(spec, folder / name, prepare=prepare)
    finally:
        shutil.rmtree(prepare.workdir, ignore_errors=True)
    return folder / name, saved


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("figures")
    return {name: _run(name, folder, extra)
            for name, extra in (("tha_incidence", EXTRA_SECTIONS), ("resection_recurrence", ""),
                                ("prophylaxis", ""))}


def _forest_points(fig) -> dict[str, float]:
    """{row label: estimate} of the squares of a forest plot (pooled rows are diamonds, not squares)."""
    ax = fig.axes[0]
    squares = next(c for c in ax.collections if isinstance(c, PathCollection))
    label_at = {round(float(y), 6): t.get_text().replace("\n", " ")   # a long label wraps at a space
                for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}
    return {label_at[round(float(y), 6)]: float(x) for x, y in squares.get_offsets()}


def _bars(fig) -> dict[str, float]:
    """{group: height} of a bar chart."""
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    return {lab: float(b.get_height()) for lab, b in zip(labels, bars, strict=True)}


def _published(folder: Path, section: str, measure: str, by: str) -> tuple[dict[str, float], set[str]]:
    """estimates.csv's rows of a section and measure: {label: estimate} of those shown, and those withheld."""
    est = pd.read_csv(folder / "estimates.csv", dtype={"group": str, "term": str})
    rows = est[(est["section"] == section) & (est["measure"] == measure)]
    value = pd.to_numeric(rows["estimate"], errors="coerce")
    labels = rows[by].astype(str)
    return dict(zip(labels[value.notna()], value[value.notna()], strict=True)), set(labels[value.isna()])


def drawn_but_not_published(drawn: dict[str, float], shown: dict[str, float], withheld: set[str]) -> dict:
    """What a figure shows that estimates.csv does not: a withheld estimate drawn, a value that is not the
    published one, or a label estimates.csv does not have."""
    return {k: v for k, v in drawn.items()
            if k in withheld or k not in shown or not np.isclose(v, shown[k], rtol=1e-9, atol=0)}


def test_the_check_finds_a_withheld_estimate_drawn(reports):
    """The check has teeth: a forest plot drawn from the rows with the withheld values put back is caught."""
    from hostats.report.figures import forest_plot

    folder, _ = reports["resection_recurrence"]
    shown, withheld = _published(folder, "pooled", "site_risk", "group")
    assert withheld, "the test needs withheld sites"
    naive = pd.DataFrame([{"label": g, "estimate": shown.get(g, 0.02), "ci_lower": 0.001, "ci_upper": 0.3}
                          for g in sorted(set(shown) | withheld)])
    leaks = drawn_but_not_published(_forest_points(forest_plot(naive, label="label", log=False)), shown, withheld)
    assert set(leaks) == withheld
    wrong = {**shown, next(iter(shown)): shown[next(iter(shown))] * 1.5}   # not the published value
    assert list(drawn_but_not_published(wrong, shown, withheld)) == [next(iter(shown))]


def _as_labelled(shown: dict[str, float], withheld: set[str]) -> tuple[dict[str, float], set[str]]:
    """Published estimates by model term, keyed by the model tables' label of the term (the cohort schema's
    reference levels are the data's here: female, none)."""
    from hostats.report.publication import term_labels

    named = term_labels([*shown, *withheld])
    return {named[t]: v for t, v in shown.items()}, {named[t] for t in withheld}


def test_logistic_forest_plots_show_only_published_odds_ratios(reports):
    folder, figs = reports["tha_incidence"]
    for section in ("risk_factors", "fracture_factors"):
        shown, withheld = _as_labelled(*_published(folder, section, "odds_ratio", "term"))
        assert len(shown) >= 2 and not withheld
        drawn = _forest_points(figs[f"{section}_forest"])
        assert drawn_but_not_published(drawn, shown, withheld) == {}
        assert set(drawn) == set(shown)
    # fewer than 5 events: every odds ratio withheld in estimates.csv, and no forest plot drawn of them
    shown, withheld = _published(folder, "few_events", "odds_ratio", "term")
    assert withheld and not shown
    assert "few_events_forest" not in figs and not (folder / "figures" / "few_events_forest.svg").exists()
    assert "few_events_forest" not in (folder / "report.html").read_text(encoding="utf-8")


def test_sites_forest_plot_shows_only_published_sites(reports):
    folder, figs = reports["resection_recurrence"]
    shown, withheld = _published(folder, "pooled", "site_risk", "group")
    assert withheld and len(shown) >= 3
    drawn = _forest_points(figs["pooled_forest"])
    assert drawn_but_not_published(drawn, shown, withheld) == {}
    assert set(drawn) == set(shown)


def test_bar_chart_shows_only_published_proportions(reports):
    folder, figs = reports["tha_incidence"]
    shown, withheld = _published(folder, "prior_by_arm", "proportion", "group")
    assert withheld and shown
    est = pd.read_csv(folder / "estimates.csv")
    note = est.loc[est["section"] == "prior_by_arm", "note"].fillna("")
    assert note.str.contains("from the published").any(), "the test needs proportions recomputed from counts"
    drawn = _bars(figs["prior_by_arm"])
    assert drawn_but_not_published(drawn, shown, withheld) == {}
    assert set(drawn) == set(shown)


def test_forest_plot_rows_read_as_the_model_table(reports):
    """A logistic section's forest plot labels its rows in the model table's words (its labeller, with the
    reference level): the table's "Sex" / "female (ref.)" / "male" is the plot's "Sex: male (ref. female)"."""
    import openpyxl

    folder, figs = reports["tha_incidence"]
    ax = figs["risk_factors_forest"].axes[0]
    drawn = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    assert {"Age (years), per 10", "Sex: male (ref. female)", "Prior HO: yes", "Prophylaxis: NSAID (ref. none)",
            "Prophylaxis: radiotherapy + NSAID (ref. none)"} <= set(drawn), drawn
    cells = [[str(c.value or "") for c in row] for ws in openpyxl.load_workbook(folder / "tables.xlsx")
             for row in ws.iter_rows()]
    first = [r[0] for r in cells]
    assert any(first[k: k + 3] == ["Sex", "female (ref.)", "male"] for k in range(len(first)))   # model table
    assert "Age (years), per 10" in first


# what a reader must not meet: the formula engine's names of model terms and iptw's arm indicators
_PATSY = re.compile(r"C\(|\[T\.|\bI\(|\b_trt\d")


def _reader_text(folder: Path) -> dict[str, str]:
    """The text a reader sees: report.html without its markup, style sheet and embedded images, and the
    text of every SVG figure."""
    from html import unescape

    page = (folder / "report.html").read_text(encoding="utf-8")
    page = re.sub(r"<style.*?</style>|src=\"data:[^\"]*\"", "", page, flags=re.S)
    out = {"report.html": unescape(re.sub(r"<[^>]+>", " ", page))}
    for svg in sorted((folder / "figures").glob("*.svg")):
        out[svg.name] = " ".join(unescape(re.sub(r"<[^>]+>", "", t))
                                 for t in re.findall(r"<text[^>]*>(.*?)</text>", svg.read_text(encoding="utf-8"), re.S))
    return out


def test_no_machine_names_in_a_report(reports):
    """Neither the HTML nor a figure shows a raw model term (C(sex)[T.male], I(age_years / 10), _trt1) or a
    measure's machine name (risk_ratio, risk_treated_regression: the names estimates.csv keeps); figures
    show no column name of a covariate (a forest plot's or a Love plot's rows)."""
    for name in ("prophylaxis", "tha_incidence"):
        folder, _ = reports[name]
        est = pd.read_csv(folder / "estimates.csv")
        measures = sorted({m for m in est["measure"].dropna().astype(str) if "_" in m})
        assert "risk_ratio" in measures or "odds_ratio" in measures
        machine = re.compile("|".join([_PATSY.pattern] + [rf"\b{re.escape(m)}\b" for m in measures]))
        columns = re.compile(r"\b(age_years|prior_ho|rt_dose_gy|index_event|prophylaxis\[)\b")
        texts = _reader_text(folder)
        assert any(k.endswith("_forest.svg") or k.endswith("_love.svg") for k in texts)
        found = {k: sorted({m.group(0) for m in machine.finditer(t)}
                           | ({m.group(0) for m in columns.finditer(t)} if k.endswith(".svg") else set()))
                 for k, t in texts.items()}
        assert {k: v for k, v in found.items() if v} == {}, name



def test_methods_and_warnings_name_variables_by_their_labels(reports):
    """The methods paragraph and the complete-case warnings name the exposure and the columns as the tables
    do: they read "exposure was prophylaxis (reference: none); confounders: age_years, sex, prior_ho" and
    "missing by column: age_years: 30, sex: 10, time_days: 40"."""
    folder, _ = reports["prophylaxis"]
    text = " ".join(_reader_text(folder)["report.html"].split())
    assert "Exposure: Prophylaxis (reference: none); confounders: Age (years), Sex, Prior HO." in text
    missing = re.findall(r"missing by column: (.*?)\)\.", text)
    assert any(re.fullmatch(r"Age \(years\): \S+(, Sex: \S+)?, Follow-up time \(days\): \S+", m) for m in missing), missing
    assert not [m for m in missing if re.search(r"\b(age_years|sex|prior_ho|time_days|rt_dose_gy):", m)], missing


def test_estimate_tables_summary_and_index_name_the_reference_level(reports):
    """Where a model term is a contrast against a reference level, the HTML's estimate tables, the summary
    (its rows and forest plot) and the index page's headline say so, in the words of the model table and the
    section's forest plot (term_labels with the section's data): "Sex: male (ref. female)", not "Sex: male"."""
    import json

    folder, figs = reports["tha_incidence"]
    page = (folder / "report.html").read_text(encoding="utf-8")
    cells = set(re.findall(r"<td>([^<]*)</td>", page))
    assert {c for c in cells if "(ref. " in c} == {
        "Sex: male (ref. female)", "Prophylaxis: radiotherapy (ref. none)", "Prophylaxis: NSAID (ref. none)",
        "Prophylaxis: bisphosphonate (ref. none)", "Prophylaxis: radiotherapy + NSAID (ref. none)"}
    assert not cells & {"Sex: male", "Prophylaxis: NSAID"}
    section = {f"Odds ratio, {label}" for label in _forest_points(figs["risk_factors_forest"])}
    summary = {label for label in _forest_points(figs["summary_forest"]) if label.startswith("Odds ratio, ")}
    assert "Odds ratio, Sex: male (ref. female)" in summary and summary <= section, (summary, section)
    headline = [h["label"] for h in json.loads((folder / "manifest.json").read_text())["headline"]]
    assert "Odds ratio, Prophylaxis: NSAID (ref. none)" in headline
    assert {h for h in headline if h.startswith("Odds ratio, ")} <= section


def _html_table(page: str, title: str) -> list[list[str]]:
    """The rows (header first) of the report's table headed ``title``."""
    from html import unescape

    block = re.search(rf"<h3>{re.escape(title)}</h3>.*?(<table.*?</table>)", page, re.S)
    assert block, title
    return [[unescape(c) for c in re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", r)]
            for r in re.findall(r"<tr.*?>(.*?)</tr>", block.group(1), re.S)]


def test_e_value_and_ph_tables_name_the_reference_level(reports):
    """The E-value table of a logistic section and the proportional-hazards test of a Cox section name a
    model term as the section's estimates do ("Sex: male (ref. female)", not "Sex: male" or "C(sex)"); a
    factor tested as a whole (4 df) is its variable ("Prophylaxis")."""
    folder, _ = reports["tha_incidence"]
    page = (folder / "report.html").read_text(encoding="utf-8")
    ev = _html_table(page, "E-values: Risk factors after a fracture")
    assert ev[0][0] == "term" and [r[0] for r in ev[1:]] == ["Age (years)", "Sex: male (ref. female)"]
    ph = _html_table(page, "Proportional hazards: Hazard of HO after THA")
    assert [(r[0], r[2]) for r in ph] == [("term", "df"), ("Age (years), per 10", "1"),
                                           ("Sex: male (ref. female)", "1"), ("Prophylaxis", "4"),
                                           ("Global (all terms)", "6")]
    assert ph[0][-1] == "time scale" and {r[-1] for r in ph[1:]} == {"1 - Kaplan-Meier"}  # not "transform", "km"
    assert "Sex: male" not in set(re.findall(r"<td>([^<]*)</td>", page))
