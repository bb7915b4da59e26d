"""Old path of :mod:`hostats.stats.survival.restricted_mean`, kept for one release (a plain re-export, no warning)."""
from hostats.stats.survival.restricted_mean import (
    RMST_REFERENCE,
    TABLE_COLUMNS,
    RMSTResult,
    rmst,
)

__all__ = ['RMST_REFERENCE', 'TABLE_COLUMNS', 'rmst', 'RMSTResult']
