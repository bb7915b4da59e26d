"""Regression family: logistic regression (``logit``) and censoring-aware direct binomial regression
(``binomial``). The public names are re-exported here (lazily: a submodule is imported on first use of one
of its names); ``hostats.stats.regression`` was one module.
"""
from hostats._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "binomial": ("BINREG_REFERENCE", "BinregResult", "binreg"),
    "logit": ("LogisticResult", "c_statistic", "check_terms", "logistic"),
})
