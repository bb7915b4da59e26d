"""Estimators: pure functions over DataFrames and column names (no I/O, no plotting, no cohort).

Each returns a result object with ``.table()`` (tidy DataFrame) and the fitted underlying object.

Layout: ``core/`` (result contract, input checks and the missing-data rule, the formula engine, Cox risk
sets, censoring weights) and the families ``incidence``, ``regression/``, ``survival/``, ``competing/``,
``causal/``, ``meta/``, which import the core and, where they build on one, another family (causal: survival
and competing; meta: incidence); the core imports no family. ``interval``, ``rmst``, ``ate``, ``binreg`` and
``balance`` are the old module paths, plain re-exports of their new place, kept for one release.
"""
