"""Competing-risks family: Aalen-Johansen cumulative incidence with Gray's test and Fine-Gray regression
(``cif_fine_gray``), and the cause-specific Cox models of absolute risk (``cause_specific``, used by
:func:`hostats.stats.causal.ate`). The public names are re-exported here (lazily: a submodule is imported on
first use of one of its names); ``hostats.stats.competing`` was one module.
"""
from hostats._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cif_fine_gray": ("AJ_REFERENCE", "FG_REFERENCE", "GRAY_REFERENCE", "CumulativeIncidenceResult",
                      "FineGrayResult", "GrayTest", "cumulative_incidence", "fine_gray"),
})
