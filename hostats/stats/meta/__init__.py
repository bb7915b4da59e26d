"""Meta-analysis: inverse-variance pooling of effects and proportions, and multi-site pooling from aggregates.

Three public functions:

- :func:`meta_effects` pools study estimates ``yi`` with sampling variances ``vi`` (log risk ratios, log
  odds ratios, mean differences ...) by a fixed-effect (equal-effects) model or a random-effects model with
  tau2 estimated by DerSimonian-Laird, REML or Paule-Mandel, optionally with the Knapp-Hartung adjustment.
- :func:`meta_proportions` pools proportions (e.g. HO recurrence after resection, one proportion per report)
  on the logit scale, by the Freeman-Tukey double arcsine, or by the exact binomial-normal model (GLMM).
- :func:`site_summary` gives the non-identifying numbers a hospital may share (counts, person-time, log-OR
  and its variance) so that several sites can run one study without moving patient rows.

Modules: ``effects`` (the pooling core and ``meta_effects``), ``proportions`` (``meta_proportions``,
including the GLMM) and ``sites`` (``site_summary``). The public names are re-exported here (lazily: a
submodule is imported on first use of one of its names); ``hostats.stats.meta`` was one module.

The formulas follow R's metafor (Viechtbauer W. J Stat Softw 2010;36(3)), which the tests reproduce.
"""
from hostats._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "effects": ("MetaResult", "meta_effects"),
    "proportions": ("MetaProportionResult", "ft_back", "meta_proportions"),
    "sites": ("site_summary",),
})
