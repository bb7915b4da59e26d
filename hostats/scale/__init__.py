"""Beyond one machine's memory: episode exports summarised out of core into sufficient statistics.

``hostats.summarise(path, by=[...], engine="duckdb" | "pandas" | "dask")`` reads parquet or CSV files of
episodes in the canonical schema without loading the rows into pandas, applies the cleaning rules that
work row by row (:mod:`hostats.scale.rules`), and returns a :class:`Summary`: counts per (by values, day,
status) and a ledger accounting for every row. ``Summary.kaplan_meier()``, ``.cumulative_incidence()``,
``.logistic()``, ``.rate()`` and ``.poisson()`` run the estimators of :mod:`hostats.stats` from those counts
and equal the row-level estimators on the cleaned rows.
"""
from __future__ import annotations

from hostats.scale.summary import ENGINES, Summary, summarise

__all__ = ["ENGINES", "Summary", "summarise"]
