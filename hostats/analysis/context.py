"""The run context a section sees (spec, analysed episodes, assessments, truth, threshold, level,
horizon), what a section returns (:class:`SectionOutput`), and the lookup of synthetic truth values."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hostats.analysis.spec import Spec
from hostats.report.html import TableBlock


@dataclass(frozen=True)
class FittedWeighting:
    """An ``iptw`` section's weighting as it was fitted, handed to the writer for the weighted columns of the
    manuscript's Table 1 (no second fit): the stabilised weights per analysed episode (indexed as the
    episodes), the estimand, the arms (reference first), and the balance and weighted Table 1 of the fit.

    It answers what :func:`hostats.report.publication.table1` asks of an ``iptw`` result (``levels``, ``n``,
    ``estimand``, ``balance()``, ``weighted_table1()``) and holds no per-episode fit beyond the weights."""

    treatment: str
    estimand: str
    levels: list
    weights: pd.Series
    balance_table: pd.DataFrame = field(repr=False)
    table1_long: pd.DataFrame = field(repr=False)

    @classmethod
    def of(cls, res: Any, treatment: str, episodes: pd.Index, balance: pd.DataFrame | None = None) -> FittedWeighting:
        """From a :func:`hostats.iptw` result fitted on the episodes ``episodes`` (in its row order);
        ``balance``: its ``balance()`` when already computed."""
        w = np.asarray(res.weights, dtype=float)
        index = episodes if len(episodes) == len(w) else res.weights.index
        w = pd.Series(w, index=index, name="weight")
        return cls(treatment, str(res.estimand), list(res.levels), w,
                   res.balance() if balance is None else balance, res.weighted_table1())

    @property
    def n(self) -> int:
        return len(self.weights)

    def balance(self) -> pd.DataFrame:
        return self.balance_table

    def weighted_table1(self) -> pd.DataFrame:
        return self.table1_long


@dataclass(frozen=True)
class EValueRequest:
    """An E-value table a section asks for. The writer builds it from the published estimates (after the
    disclosure decision, :func:`hostats.analysis.sections.causal.e_value_table`), so a row whose estimate
    estimates.csv withholds is withheld here too, by the same decision.

    ``by``: "contrast" (the risk, odds and hazard ratios of an ``iptw`` section, by contrast; a ratio counts
    as a rare outcome when its contrast's published control risk is below 0.15) or "term" (the odds ratios
    of a ``logistic`` section, by model term; ``terms`` those asked for, None for all; ``outcome_risk`` the
    section's outcome risk, which decides rare or common and is stated before ``note`` unless the section's
    estimates are withheld for small numbers: it rests on the same event count)."""

    section: str
    title: str
    note: str
    by: str
    terms: tuple[str, ...] | None = None
    outcome_risk: float | None = None

    @property
    def outcome_rare(self) -> bool:
        return self.outcome_risk is not None and self.outcome_risk < 0.15


@dataclass(frozen=True)
class PublishedFigure:
    """A figure of a section's own estimates (a forest plot of its odds ratios or sites, a bar chart of its
    proportions), asked for by the section and drawn by the writer from the published estimates (after the
    disclosure decision, as in estimates.csv): an estimate estimates.csv withholds is not drawn, by that same
    decision, and a drawn one is the published value.

    ``draw`` takes the published rows of ``section`` (estimates.csv's rows, its counts as published text)
    and returns the figure and its caption, or None when nothing is left to draw."""

    name: str
    title: str
    section: str
    draw: Callable[[pd.DataFrame], tuple[Any, str] | None]

    def drawn(self, shown: pd.DataFrame) -> tuple[str, str, str, Any] | None:
        """``(name, title, caption, figure)`` from ``shown`` (every published row), or None."""
        made = self.draw(shown[shown["section"] == self.section])
        return None if made is None else (self.name, self.title, made[1], made[0])


@dataclass
class SectionOutput:
    estimates: list[pd.DataFrame] = field(default_factory=list)
    # name, title, caption, Figure; or a figure of the section's estimates drawn from the published rows
    figures: list[tuple[str, str, str, Any] | PublishedFigure] = field(default_factory=list)
    tables: list[TableBlock] = field(default_factory=list)
    diagnostics: list[TableBlock] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sensitivity: list[TableBlock] = field(default_factory=list)
    methods: list[tuple[str, str]] = field(default_factory=list)  # (method, reference)
    balance: pd.DataFrame | None = None
    subsections: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (title, note)
    weighting: FittedWeighting | None = None   # an iptw section's fitted weighting (the weighted Table 1)
    e_values: list[EValueRequest] = field(default_factory=list)   # built by the writer from published rows

    def result_table(self, res: Any, measure: str | None = None) -> pd.DataFrame:
        """Cite the estimator (method, reference) and return its tidy table, ``measure`` filled in if absent."""
        self.methods.append((res.method, res.reference))
        t = res.table()
        if measure is not None and "measure" not in t.columns:
            t["measure"] = measure
        return t

    def warn(self, sec: dict, *messages: str) -> None:
        """Add warnings, each prefixed with the section's title (its id when untitled)."""
        self.warnings += [f"{sec.get('title', sec['id'])}: {m}" for m in messages]


@dataclass
class Context:
    spec: Spec
    data: pd.DataFrame                 # analysed episodes (after criteria), with derived columns
    assessments: pd.DataFrame | None
    truth: dict[str, Any] | None
    threshold: int
    level: float
    horizon: float

    def truth_value(self, path: str | None, *keys: str) -> Any:
        """Look up a dotted ``path`` (plus ``keys``) in the synthetic truth; None when absent.

        The path is tried inside the chosen block (``[report] truth``: "population" or "sample") first and
        then from the top of the truth dict (e.g. ``sites``). With several scenarios the path starts with
        the scenario name.
        """
        if not self.truth or not path:
            return None
        node: Any = self.truth
        if all(isinstance(v, dict) and "scenario" in v for v in self.truth.values()):
            head, _, path = path.partition(".")
            node = self.truth.get(head)
        if not isinstance(node, dict):
            return None
        parts = [p for p in path.split(".") if p] + [str(k) for k in keys]
        source = self.spec.report.get("truth", "population")
        for start in ([node.get(source)] if parts and parts[0] not in ("population", "sample") else []) + [node]:
            found = _walk(start, parts)
            if found is not None:
                return found
        return None


def _walk(node: Any, parts: list[str]) -> Any:
    for p in parts:
        if not isinstance(node, dict):
            return None
        if p in node:
            node = node[p]
            continue
        lower = {str(k).lower(): k for k in node}
        if p.lower() not in lower:
            return None
        node = node[lower[p.lower()]]
    return node


def _number(v: Any) -> float | None:
    """A truth value as a number: dicts give their risk-like entry, a [low, high] range its midpoint."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, dict):
        for k in ("recurrence_risk", "risk", "estimate", "value", "median_days", "conditional_odds_ratio"):
            if k in v and isinstance(v[k], (int, float)):
                return float(v[k])
        return None
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return (float(v[0]) + float(v[1])) / 2.0  # the mean of a uniform range used to generate
    return None


def _truth_of(ctx: Context, spec_value: Any, *keys: str) -> Any:
    """Resolve a spec's truth entry: a number (a constant from the generating model), a dotted path into
    the truth (``"exp:"`` in front exponentiates a log-odds), or None."""
    if spec_value is None or ctx.truth is None:
        return None
    if isinstance(spec_value, (int, float)) and not isinstance(spec_value, bool):
        return float(spec_value)
    if isinstance(spec_value, str):
        exp = spec_value.startswith("exp:")
        v = ctx.truth_value(spec_value.removeprefix("exp:"), *keys)
        if exp:
            n = _number(v)
            return math.exp(n) if n is not None else None
        return v
    return None


def _group_truth(ctx: Context, spec_value: Any, group: str, single: bool) -> float | None:
    """Truth for one group: a table {group = path}, a path to a dict keyed by group, or (one group) a scalar."""
    if spec_value is None or ctx.truth is None:
        return None
    if isinstance(spec_value, dict):
        lower = {str(k).lower(): v for k, v in spec_value.items()}
        return _number(_truth_of(ctx, lower.get(str(group).lower())))
    v = _truth_of(ctx, spec_value)
    if isinstance(v, dict):
        lower = {str(k).lower(): x for k, x in v.items()}
        if str(group).lower() in lower:
            return _number(lower[str(group).lower()])
        return _number(v) if single else None
    return _number(v) if single else None
