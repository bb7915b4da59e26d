"""Readable labels for what a report shows: estimate measures (``risk_ratio_regression`` -> "Risk ratio
(g-formula)"), model terms (``C(sex)[T.male]`` -> "Sex: male", ``I(age_years / 10)`` -> "Age (years), per
10") and estimates in journal format ("0.43 (0.36 to 0.52)"). estimates.csv/json keep the machine names;
only the HTML reads them this way."""
from __future__ import annotations

import re

from hostats.report.publication import _level_text, default_label, format_estimate, term_labels

__all__ = ["covariate_label", "format_estimate", "group_label", "measure_label", "readable_text",
           "term_label", "variable_label"]

_MEASURES = {
    "risk_treated": "Risk, treated arm", "risk_control": "Risk, reference arm",
    "risk_difference": "Risk difference", "risk_ratio": "Risk ratio", "odds_ratio": "Odds ratio",
    "hazard_ratio": "Hazard ratio", "subdistribution_hazard_ratio": "Subdistribution hazard ratio",
    "cumulative_incidence": "Cumulative incidence", "gray_test": "Gray's test (chi-square)",
    "logrank_test": "Log-rank test (chi-square)", "rmtl": "Restricted mean time lost (days)",
    "rmtl_difference": "Difference in restricted mean time lost (days)", "rate": "Rate",
    "rate_ratio": "Rate ratio", "proportion": "Proportion", "share": "Share", "risk": "Risk",
    "pooled_risk": "Pooled risk", "pooled": "Pooled estimate", "prediction_interval": "Prediction interval",
    "tau2": "Between-site variance (tau²)", "i2": "I²", "e_value": "E-value",
}
_SUFFIXES = {"regression": "g-formula", "aipw": "AIPW", "ipcw": "IPTW-IPCW", "gformula": "g-formula",
             "iptw": "IPTW", "complete_case": "complete case"}


def measure_label(measure: str) -> str:
    """``risk_ratio`` -> "Risk ratio"; ``risk_ratio_regression`` -> "Risk ratio (g-formula)";
    ``crude_odds_ratio`` -> "Odds ratio (crude)"; unknown names with their underscores as spaces."""
    m = str(measure)
    notes = []
    if m.startswith("crude_"):
        m, notes = m[len("crude_"):], ["crude"]
    for suffix, text in _SUFFIXES.items():
        if m.endswith("_" + suffix) and m[: -len(suffix) - 1] in _MEASURES:
            m, notes = m[: -len(suffix) - 1], [*notes, text]
            break
    base = _MEASURES.get(m)
    if base is None:
        base = m.replace("_", " ")
        base = base[:1].upper() + base[1:]
    return base + (f" ({', '.join(notes)})" if notes else "")


def variable_label(name: str, labels: dict[str, str] | None = None) -> str:
    """A column's label: the spec's ``[report] labels`` entry, else one made from its name."""
    if labels and name in labels:
        return str(labels[name])
    return default_label(name)


def in_sentence(label: str) -> str:
    """A label inside a sentence: its first letter lower-cased ("Prophylaxis" -> "prophylaxis", "Prior HO"
    -> "prior HO"), unless the first word is an acronym ("GCS score", "RT timing" stay as they are)."""
    first = label.split(" ", 1)[0]
    if len(first) > 1 and sum(c.isupper() for c in first) > 1:
        return label
    return label[:1].lower() + label[1:]


def term_label(term: str, labels: dict[str, str] | None = None) -> str:
    """A model term as a reader says it, in the words of the model tables
    (:func:`hostats.report.publication.term_labels`, without the data that would name the reference level):
    ``C(sex)[T.male]`` -> "Sex: male", ``prior_ho[T.True]`` -> "Prior HO: yes", ``I(age_years / 10)`` ->
    "Age (years), per 10", ``age_years`` -> "Age (years)"; splines as they are."""
    t = str(term).strip()
    return term_labels([t], labels=labels, reference=False)[t] if t else t


# a model term quoted in a message of the estimators ("the coefficient of 'C(sex)[T.male]' is probably
# infinite"): a factor's level, a scaled term or an arm's indicator, in single quotes
_QUOTED_TERM = re.compile(r"'(?P<term>[^'\s][^']*?\[T\.[^']*\]|I\([^']*\)|_trt\d+)'")


def readable_text(text: str, labels: dict[str, str] | None = None) -> str:
    """A message (a warning, a section's note) with the model terms it quotes read as words: "the
    coefficient of 'prophylaxis[T.nsaid]' ..." -> "the coefficient of 'Prophylaxis: NSAID' ..."."""
    return _QUOTED_TERM.sub(lambda m: f"'{term_label(m.group('term'), labels)}'", str(text))


def covariate_label(covariate: str, labels: dict[str, str] | None = None) -> str:
    """A covariate of a balance table as a reader says it: ``sex: male`` (a variable and its level, as
    :func:`hostats.stats.causal.balance.love_plot_data` names them) -> "Sex: male", ``age_years`` -> "Age
    (years)", ``prior_ho: True`` -> "Prior HO: yes"."""
    var, sep, level = str(covariate).partition(": ")
    if not sep:
        return variable_label(var, labels)
    return f"{variable_label(var, labels)}: {_level_text(level, var)}"


def group_label(group: str) -> str:
    """A group or contrast of groups as a reader says it: ``radiotherapy_nsaid vs none`` -> "radiotherapy +
    NSAID vs none", ``tha`` -> "THA", ``long_bone_fracture`` -> "long-bone fracture"."""
    return " vs ".join(_level_text(p.strip()) for p in str(group).split(" vs "))
