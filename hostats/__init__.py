"""hostats: retrospective cohort statistics for heterotopic ossification (HO).

The public API (see docs/design.md) is exported lazily, so that ``import hostats`` and the command line start
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
    "logistic": "hostats.stats.regression.logit",
    "kaplan_meier": "hostats.stats.survival.km_cox",
    "cox": "hostats.stats.survival.km_cox",
    "cumulative_incidence": "hostats.stats.competing.cif_fine_gray",
    "fine_gray": "hostats.stats.competing.cif_fine_gray",
    "interval_censored": "hostats.stats.survival.interval_censoring",
    "iptw": "hostats.stats.causal.weighting",
    "ate": "hostats.stats.causal.absolute_risk",
    "binreg": "hostats.stats.regression.binomial",
    "rmst": "hostats.stats.survival.restricted_mean",
    "e_value": "hostats.stats.causal.sensitivity",
    "meta_effects": "hostats.stats.meta.effects",
    "meta_proportions": "hostats.stats.meta.proportions",
    "site_summary": "hostats.stats.meta.sites",
    "summarise": "hostats.scale",
    "kaplan_meier_counts": "hostats.stats.survival.grouped",
    "cumulative_incidence_counts": "hostats.stats.competing.grouped",
    "logistic_counts": "hostats.stats.regression.grouped",
    "poisson_counts": "hostats.stats.regression.grouped",
    "table1": "hostats.report.publication",
    "model_table": "hostats.report.publication",
    "save_tables": "hostats.report.publication",
    "PublicationTable": "hostats.report.publication",
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
