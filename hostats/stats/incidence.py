"""Crude incidence: proportions (risks) with binomial CIs, and incidence rates with exact Poisson CIs.

Both functions are vectorised over groups: pass scalars for one group, or array-likes / pandas Series for
several (a Series index, or ``groups=``, labels the rows in the ``group`` column).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hostats.stats.core.results import Result, check_level
from hostats.stats.core.validate import as_vector, check_binomial, check_counts, item_labels, name_items

# user-facing name -> statsmodels.stats.proportion.proportion_confint method
_PROPORTION_METHODS = {
    "wilson": "wilson",
    "clopper-pearson": "beta",
    "exact": "beta",
    "agresti-coull": "agresti_coull",
    "jeffreys": "jeffreys",
    "wald": "normal",
}

_PROPORTION_REFERENCES = {
    "wilson": "Wilson EB. J Am Stat Assoc 1927;22:209-12 (score interval); Newcombe RG. Stat Med 1998;17:857-72",
    "beta": "Clopper CJ, Pearson ES. Biometrika 1934;26:404-13 (exact binomial interval)",
    "agresti_coull": "Agresti A, Coull BA. Am Stat 1998;52:119-26",
    "jeffreys": "Brown LD, Cai TT, DasGupta A. Stat Sci 2001;16:101-33 (Jeffreys interval)",
    "normal": "Wald (normal approximation) interval; see Newcombe RG. Stat Med 1998;17:857-72",
}

_METHOD_NAMES = {
    "wilson": "Wilson score interval",
    "beta": "Clopper-Pearson exact interval",
    "agresti_coull": "Agresti-Coull interval",
    "jeffreys": "Jeffreys interval",
    "normal": "Wald interval",
}


def _labels(k: int, groups: Any, *indexes: pd.Index | None) -> list:
    return item_labels(k, groups, indexes, list(range(k)) if k > 1 else ["all"], "groups", "rows")


def binomial_ci(events: np.ndarray, n: np.ndarray, level: float,
                method: str = "wilson") -> tuple[np.ndarray, np.ndarray]:
    """Binomial confidence limits for ``events / n`` (validated counts), truncated to [0, 1].

    ``method`` is a statsmodels ``proportion_confint`` name. Except for Wald ("normal"), the lower limit is
    exactly 0 with no events and the upper limit exactly 1 with all events (see :func:`proportion`).
    """
    from statsmodels.stats.proportion import proportion_confint

    events, n = np.asarray(events, dtype=float), np.asarray(n, dtype=float)
    lower, upper = proportion_confint(events, n, alpha=1.0 - level, method=method)
    lower = np.clip(np.asarray(lower, dtype=float), 0.0, 1.0)
    upper = np.clip(np.asarray(upper, dtype=float), 0.0, 1.0)
    if method != "normal":  # exact edges for every interval that should have them
        lower = np.where(events == 0, 0.0, lower)
        upper = np.where(events == n, 1.0, upper)
    return lower, upper


@dataclass(repr=False)
class ProportionResult(Result):
    """Proportions with CIs; ``table()`` has group, estimate, ci_lower, ci_upper, std_error, n, events.
    ``n`` and ``events``: totals over the groups."""

    @property
    def n(self) -> int:
        return int(self._table["n"].sum())

    @property
    def events(self) -> int:
        return int(self._table["events"].sum())


def proportion(events: Any, n: Any, method: str = "wilson", level: float = 0.95,
               groups: Sequence | None = None) -> ProportionResult:
    """Proportion (risk) ``events / n`` with a binomial confidence interval, per group.

    Estimand: the probability of the event in the population the ``n`` units were drawn from.

    Methods (``method=``): ``"wilson"`` (score interval, the default), ``"clopper-pearson"`` (alias
    ``"exact"``; exact binomial, conservative), ``"agresti-coull"``, ``"jeffreys"`` and ``"wald"``.
    Bounds come from ``statsmodels.stats.proportion.proportion_confint``. Conventions at the edges:
    with 0 events the lower bound is exactly 0 and with ``n`` events the upper bound is exactly 1 for every
    method (for Jeffreys this is the Brown-Cai-DasGupta 2001 boundary modification, which statsmodels
    lacks); Wald and Agresti-Coull bounds are truncated to [0, 1], and the Wald interval is (0, 0) or (1, 1)
    at the edges (it is shown for completeness; Newcombe 1998 advises against it).

    ``std_error`` is the binomial standard error ``sqrt(p (1 - p) / n)`` on the proportion scale.

    Raises ``ValueError`` naming the group for events > n, negative or non-integer counts, missing counts,
    or n = 0.
    """
    level = check_level(level)
    key = str(method).lower().replace("_", "-").replace(" ", "-")
    if key not in _PROPORTION_METHODS:
        raise ValueError(f"unknown proportion method {method!r}; choose one of {sorted(_PROPORTION_METHODS)}")
    sm_method = _PROPORTION_METHODS[key]

    ev, ev_index = as_vector(events, "events")
    nn, n_index = as_vector(n, "n")
    if ev.size != nn.size:
        if ev.size == 1:
            ev = np.repeat(ev, nn.size)
        elif nn.size == 1:
            nn = np.repeat(nn, ev.size)
        else:
            raise ValueError(f"events has {ev.size} values but n has {nn.size}")
    labels = _labels(ev.size, groups, ev_index, n_index)
    check_binomial(ev, nn, labels, "in group(s)")

    lower, upper = binomial_ci(ev, nn, level, sm_method)
    p = ev / nn
    table = pd.DataFrame({
        "group": labels,
        "estimate": p,
        "ci_lower": lower,
        "ci_upper": upper,
        "std_error": np.sqrt(p * (1.0 - p) / nn),
        "n": nn.astype(np.int64),
        "events": ev.astype(np.int64),
    })
    return ProportionResult(table, level=level, method=_METHOD_NAMES[sm_method],
                            reference=_PROPORTION_REFERENCES[sm_method])


def poisson_exact_ci(events: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Garwood (1936) exact CI for a Poisson mean: chi-square quantiles with 2x and 2x + 2 df."""
    alpha = 1.0 - level
    events = np.asarray(events, dtype=float)
    with np.errstate(invalid="ignore"):
        lower = np.where(events > 0, stats.chi2.ppf(alpha / 2, 2 * events) / 2, 0.0)
    upper = stats.chi2.ppf(1 - alpha / 2, 2 * events + 2) / 2
    return lower, upper


@dataclass(repr=False)
class RateResult(Result):
    """Incidence rates (``measure == "rate"``) and rate ratios (``measure == "rate_ratio"``). ``n`` is None
    (rates count person-time, not people); ``events``: the total over the groups."""

    @property
    def events(self) -> int:
        rates = self._table[self._table["measure"] == "rate"]
        return int(rates["events"].sum())


def rate(events: Any, person_time: Any, per: float = 100, level: float = 0.95,
         groups: Sequence | None = None, reference: Any = None,
         time_unit: str = "person-years") -> RateResult:
    """Incidence rate ``events / person_time * per`` with an exact Poisson CI, and rate ratios.

    Estimand: the rate of a Poisson process (events per ``per`` units of person-time; the unit is
    ``time_unit``, person-years by default: pass ``time_unit="person-days"`` if ``person_time`` is in days).

    Method: the exact (Garwood 1936) interval from chi-square quantiles; with 0 events in 1 unit the upper
    95% bound is 3.689. With two or more groups, each group's rate ratio versus ``reference`` (default: the
    first group) is added with the exact conditional interval: given the total count ``x1 + x0``, ``x1`` is
    binomial with ``pi = RR T1 / (RR T1 + T0)``; the Clopper-Pearson bounds on ``pi`` are mapped to the
    rate ratio, and the p-value is the exact two-sided binomial test of RR = 1 (as R's
    ``poisson.test(c(x1, x0), c(T1, T0))``; Breslow & Day 1987, vol II, section 2.3; Ulm 1990).

    Table columns: ``group``, ``measure``, ``estimate``, ``ci_lower``, ``ci_upper``, ``p_value`` (ratios
    only), ``std_error`` (of the log rate or log rate ratio: ``1/sqrt(x)``; NaN where a count is 0, where
    the log scale is undefined; the exact CI does not use it), ``events``, ``person_time``, ``per``,
    ``time_unit`` and, for ratios, ``reference``. A ratio whose two groups have no events at all has
    estimate NaN, interval (0, inf) and p-value 1, and a message in ``warnings``.
    """
    level = check_level(level)
    per = float(per)
    if not np.isfinite(per) or per <= 0:
        raise ValueError(f"per must be a positive number, got {per!r}")
    ev, ev_index = as_vector(events, "events")
    pt, pt_index = as_vector(person_time, "person_time")
    if ev.size != pt.size:
        raise ValueError(f"events has {ev.size} values but person_time has {pt.size}")
    labels = _labels(ev.size, groups, ev_index, pt_index)
    check_counts(ev, labels, "events", "in group(s)")
    bad = ~np.isfinite(pt) | (pt <= 0)
    if bad.any():
        raise ValueError(f"person_time must be positive and finite; not so in group(s) {name_items(bad, labels)}")

    lo, hi = poisson_exact_ci(ev, level)
    with np.errstate(divide="ignore"):
        se_log = np.where(ev > 0, 1.0 / np.sqrt(np.maximum(ev, 1.0)), np.nan)
    rates = pd.DataFrame({
        "group": labels,
        "measure": "rate",
        "estimate": ev / pt * per,
        "ci_lower": lo / pt * per,
        "ci_upper": hi / pt * per,
        "p_value": np.nan,
        "std_error": se_log,
        "events": ev.astype(np.int64),
        "person_time": pt,
    })
    warns: list[str] = []
    frames = [rates]
    if ev.size > 1:
        ref_pos = 0
        if reference is not None:
            matches = [i for i, g in enumerate(labels) if g == reference]
            if not matches:
                raise ValueError(f"reference group {reference!r} is not among the groups {labels}")
            ref_pos = matches[0]
        frames.append(_rate_ratios(ev, pt, labels, ref_pos, level, warns))
    table = pd.concat(frames, ignore_index=True)
    table["per"] = per
    table["time_unit"] = time_unit
    return RateResult(table, level=level, method="exact Poisson (Garwood) interval",
                      reference="Garwood F. Biometrika 1936;28:437-42; rate ratios: exact conditional "
                                "binomial interval (Breslow NE, Day NE. IARC 1987, vol II)",
                      warnings=warns)


def _rate_ratios(ev: np.ndarray, pt: np.ndarray, labels: list, ref: int, level: float,
                 warns: list[str]) -> pd.DataFrame:
    """Exact conditional rate ratios of every group versus group ``ref`` (vectorised over groups)."""
    others = np.array([i for i in range(ev.size) if i != ref])
    x1, t1 = ev[others], pt[others]
    x0, t0 = ev[ref], pt[ref]
    total = x1 + x0
    alpha = 1.0 - level
    with np.errstate(divide="ignore", invalid="ignore"):
        # Clopper-Pearson bounds on pi = P(an event is in the compared group | total)
        pi_lo = np.where(x1 > 0, stats.beta.ppf(alpha / 2, x1, total - x1 + 1), 0.0)
        pi_hi = np.where(x1 < total, stats.beta.isf(alpha / 2, x1 + 1, total - x1), 1.0)
        odds = t0 / t1
        est = np.where(total > 0, (x1 / t1) / (x0 / t0), np.nan)
        lower = np.where(total > 0, pi_lo / (1 - pi_lo) * odds, 0.0)
        upper = np.where((total > 0) & (pi_hi < 1), pi_hi / (1 - pi_hi) * odds, np.inf)
        se = np.where((x1 > 0) & (x0 > 0), np.sqrt(1 / np.maximum(x1, 1) + 1 / max(x0, 1)), np.nan)
    p0 = t1 / (t1 + t0)
    pvals = np.array([stats.binomtest(int(a), int(n), p).pvalue if n > 0 else 1.0
                      for a, n, p in zip(x1, total, p0, strict=True)])  # one test per group, not per row
    for i in np.flatnonzero(total == 0):
        warns.append(f"rate ratio {labels[others[i]]!r} vs {labels[ref]!r}: no events in either group, "
                     "the ratio is not estimable (estimate NaN, interval 0 to inf)")
    return pd.DataFrame({
        "group": [labels[i] for i in others],
        "measure": "rate_ratio",
        "estimate": est,
        "ci_lower": lower,
        "ci_upper": upper,
        "p_value": pvals,
        "std_error": se,
        "events": x1.astype(np.int64),
        "person_time": t1,
        "reference": labels[ref],
    })
