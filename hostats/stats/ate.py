"""Old path of :mod:`hostats.stats.causal.absolute_risk`, kept for one release (a plain re-export, no warning)."""
from hostats.stats.causal.absolute_risk import (
    ATE_REFERENCE,
    MEASURES,
    METHODS,
    ATEResult,
    ate,
)

__all__ = ['ATE_REFERENCE', 'MEASURES', 'METHODS', 'ate', 'ATEResult']
