"""Old path of :mod:`hostats.stats.survival.interval_censoring`, kept for one release (a plain re-export, no warning)."""
from hostats.stats.survival.interval_censoring import (
    DETECTION_LAG_DAYS,
    DETECTION_LAG_REFERENCE,
    TURNBULL_REFERENCE,
    IntervalCensoredResult,
    interval_censored,
)

__all__ = ['DETECTION_LAG_DAYS', 'DETECTION_LAG_REFERENCE', 'TURNBULL_REFERENCE', 'interval_censored', 'IntervalCensoredResult']
