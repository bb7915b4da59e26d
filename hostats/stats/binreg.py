"""Old path of :mod:`hostats.stats.regression.binomial`, kept for one release (a plain re-export, no warning)."""
from hostats.stats.regression.binomial import (
    BINREG_REFERENCE,
    BinregResult,
    binreg,
)

__all__ = ['BINREG_REFERENCE', 'binreg', 'BinregResult']
