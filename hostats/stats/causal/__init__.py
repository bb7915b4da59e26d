"""Causal family: propensity-score weighting (``weighting``), E-values (``sensitivity``), average treatment
effects on the absolute risk with competing risks (``absolute_risk``) and covariate balance (``balance``).
The public names are re-exported here (lazily: a submodule is imported on first use of one of its names);
``hostats.stats.causal`` was one module.
"""
from hostats._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "absolute_risk": ("ATE_REFERENCE", "ATEResult", "ate"),
    "sensitivity": ("EVALUE_REFERENCE", "e_value"),
    "weighting": ("EXTREME_SHARE", "EXTREME_WEIGHT", "IPTW_REFERENCE", "LOW_ESS", "POSITIVITY_BOUND",
                  "POSITIVITY_SHARE", "WARM_START_N", "IPTWResult", "confounder_columns", "iptw",
                  "treatment_arms"),
})
