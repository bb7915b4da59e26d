"""Estimators: pure functions over DataFrames and column names (no I/O, no plotting, no cohort).

Each returns a result object with ``.table()`` (tidy DataFrame) and the fitted underlying object.
"""
