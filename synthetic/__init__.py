"""Synthetic HO cohorts with known truth, for validating hostats end to end.

Independent of ``hostats`` by design (numpy, pandas, scipy and the standard library only), so a bug in
a shared helper cannot cancel out between the generator and the estimators.

    import synthetic
    synthetic.scenarios()                       # bundled scenarios (synthetic/scenarios/*.toml)
    c = synthetic.generate("tha_prophylaxis", n=5000, seed=1)
    c.episodes, c.assessments, c.truth, c.faults
    c.write("out/")                             # per-site exports + mappings + export.toml + truth.json
"""
from __future__ import annotations

from .cohort import SyntheticCohort, generate
from .params import scenario_names as _scenario_names

__all__ = ["SyntheticCohort", "generate", "scenarios"]


def scenarios() -> list[str]:
    """Names of the bundled scenarios."""
    return _scenario_names()
