"""Old path of :mod:`hostats.stats.causal.balance`, kept for one release (a plain re-export, no warning)."""
from hostats.stats.causal.balance import (
    SMD_THRESHOLD,
    Covariate,
    effective_sample_size,
    love_plot_data,
    smd_table,
    weighted_mean,
    weighted_table1,
    weighted_var,
)

__all__ = ['SMD_THRESHOLD', 'Covariate', 'effective_sample_size', 'love_plot_data', 'smd_table', 'weighted_mean', 'weighted_table1', 'weighted_var']
