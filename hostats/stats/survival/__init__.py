"""Survival family: Kaplan-Meier and Cox (``km_cox``), restricted mean survival time (``restricted_mean``) and
interval-censored onset (``interval_censoring``). The public names are re-exported here (lazily: a submodule
is imported on first use of one of its names); ``hostats.stats.survival`` was one module.
"""
from hostats._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "interval_censoring": ("DETECTION_LAG_DAYS", "DETECTION_LAG_REFERENCE", "TURNBULL_REFERENCE",
                           "IntervalCensoredResult", "interval_censored"),
    "km_cox": ("COX_REFERENCE", "KM_REFERENCE", "LOGRANK_REFERENCE", "ZPH_REFERENCE", "CoxResult",
               "KaplanMeierResult", "cox", "kaplan_meier"),
    "restricted_mean": ("RMST_REFERENCE", "RMSTResult", "rmst"),
})
