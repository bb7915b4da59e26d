"""Declarative analyses: the ``analysis.toml`` spec, its validation, and the runner that turns a cohort
into a report folder (report.html, estimates.csv/json, figures/, manifest.json).

A spec says, in the user's terms, which data, which episodes (criteria: each a named ledger step and a
box in the flow diagram), which outcome and horizon, which exposure and confounders, which estimators
(``[[section]]`` entries) and how the report is made. Every mistake in a spec is a ``SpecError`` naming
the spec file, the line and the key. A run writes into a temporary folder and moves it into place only
when everything succeeded, so a failed run never leaves a report that looks complete.

Modules: ``spec`` (the keys, declared once; the parser; the generated reference docs/spec-reference.md),
``expressions`` (conditions over the episodes), ``derive`` (derived columns), ``context`` (the run context,
section outputs, truth lookup), ``sections/`` (one module per estimator family, a registry by spec
``type``), ``writer`` (report, estimates, manifest, disclosure scan) and ``runner`` (``run_analysis``).

This package never imports ``synthetic``: for synthetic data the command line generates the study folder
(through the ``prepare`` callback of ``run_analysis``) and passes the truth in.
"""
from __future__ import annotations

from hostats.analysis.context import Context, SectionOutput
from hostats.analysis.derive import FOLLOWUP_TOLERANCE_DAYS, KNOWN_FLAG, OUTCOME_FLAG
from hostats.analysis.runner import RunResult, discover, is_simulation_spec, run_analysis
from hostats.analysis.sections import SECTIONS, register
from hostats.analysis.sections.incidence import DAYS_PER_YEAR
from hostats.analysis.spec import ADJUSTMENT_METHODS, Spec, load_spec, spec_reference

__all__ = [
    "ADJUSTMENT_METHODS",
    "DAYS_PER_YEAR",
    "FOLLOWUP_TOLERANCE_DAYS",
    "KNOWN_FLAG",
    "OUTCOME_FLAG",
    "SECTIONS",
    "Context",
    "RunResult",
    "SectionOutput",
    "Spec",
    "discover",
    "is_simulation_spec",
    "load_spec",
    "register",
    "run_analysis",
    "spec_reference",
]
