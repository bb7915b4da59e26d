"""Readable labels for what a report shows: estimate measures (``risk_ratio_regression`` -> "Risk ratio
(g-formula)"), model terms (``C(sex)[T.male]`` -> "Sex: male", ``I(age_years / 10)`` -> "Age (per 10
years)") and estimates in journal format ("0.43 (0.36 to 0.52)"). estimates.csv/json keep the machine names;
only the HTML reads them this way."""
from __future__ import annotations

import re

from hostats.report.publication import _level_text, default_label, format_estimate

__all__ = ["format_estimate", "group_label", "measure_label", "term_label", "variable_label"]

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


_CAT = re.compile(r"^C\(\s*`?(?P<var>[\w.]+)`?\s*(?:,\s*Treatment\(\s*(?:reference\s*=\s*)?['\"](?P<ref>[^'\"]*)['\"]"
                  r"\s*\)\s*)?\)\[T\.(?P<level>.*)\]$")
_BOOL = re.compile(r"^`?(?P<var>[\w.]+)`?\[T\.(?P<level>.*)\]$")
_PER = re.compile(r"^I\(\s*`?(?P<var>[\w.]+)`?\s*/\s*(?P<k>[0-9.]+)\s*\)$")
_TRT = re.compile(r"^_trt(?P<k>\d+)$")


def term_label(term: str, labels: dict[str, str] | None = None) -> str:
    """A model term as a reader says it: ``C(sex)[T.male]`` -> "Sex: male", ``prior_ho[T.True]`` ->
    "Prior HO: yes", ``I(age_years / 10)`` -> "Age (per 10 years)", ``age_years`` -> "Age (years)";
    anything else (splines, interactions, contrasts "a vs b") as it is, level codes made readable."""
    t = str(term).strip()
    if not t:
        return t
    m = _CAT.match(t) or _BOOL.match(t)
    if m:
        var = m.group("var")
        return f"{variable_label(var, labels)}: {_level_text(m.group('level'), var)}"
    m = _PER.match(t)
    if m:
        var, k = m.group("var"), m.group("k")
        base = variable_label(var, labels)
        unit = re.search(r"\((.*)\)$", base)
        name = re.sub(r"\s*\(.*\)$", "", base)
        return f"{name} (per {k} {unit.group(1)})" if unit else f"{name} (per {k})"
    m = _TRT.match(t)
    if m:
        return f"treatment arm {m.group('k')} vs reference"
    if re.fullmatch(r"[\w.]+", t):
        return variable_label(t, labels)
    return t


def group_label(group: str) -> str:
    """A group or contrast of groups as a reader says it: ``radiotherapy_nsaid vs none`` -> "radiotherapy +
    NSAID vs none", ``tha`` -> "THA", ``long_bone_fracture`` -> "long-bone fracture"."""
    return " vs ".join(_level_text(p.strip()) for p in str(group).split(" vs "))
