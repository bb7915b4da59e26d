"""hostats: retrospective cohort statistics for heterotopic ossification (HO).

The public API (see DESIGN.md) is exported lazily, so that ``import hostats`` and the command line start
fast and a user of the ingest never pays for importing lifelines or statsmodels.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "read_cohort": "hostats.cohort",
    "Cohort": "hostats.cohort",
    "proportion": "hostats.stats.incidence",
    "rate": "hostats.stats.incidence",
    "logistic": "hostats.stats.regression",
    "kaplan_meier": "hostats.stats.survival",
    "cox": "hostats.stats.survival",
    "cumulative_incidence": "hostats.stats.competing",
    "fine_gray": "hostats.stats.competing",
    "interval_censored": "hostats.stats.interval",
    "iptw": "hostats.stats.causal",
    "ate": "hostats.stats.ate",
    "binreg": "hostats.stats.binreg",
    "rmst": "hostats.stats.rmst",
    "e_value": "hostats.stats.causal",
    "meta_effects": "hostats.stats.meta",
    "meta_proportions": "hostats.stats.meta",
    "site_summary": "hostats.stats.meta",
    "HostatsError": "hostats.errors",
    "DataError": "hostats.errors",
    "SpecError": "hostats.errors",
    "EstimationError": "hostats.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hostats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
