"""Errors that hostats raises for bad data, bad specs and estimation problems.

Every message is written for an epidemiologist: it names the file, the column and the row (or the spec
line) and says what to do. The command line prints them without a traceback.
"""
from __future__ import annotations


class HostatsError(Exception):
    """Base class: an expected, explainable failure (never a bug)."""


class DataError(HostatsError, ValueError):
    """The input data cannot be used as given (unreadable file, required column missing, no rows left)."""

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None,
                 row: int | None = None) -> None:
        self.file, self.column, self.row = file, column, row
        where = ", ".join(f"{k} {v}" for k, v in (("file", file), ("column", column), ("row", row))
                          if v is not None)
        super().__init__(f"{message} ({where})" if where else message)


class SpecError(HostatsError, ValueError):
    """An analysis spec (analysis.toml) is wrong: names the spec file and the key."""


class EstimationError(HostatsError, ValueError):
    """An estimator cannot give a trustworthy answer on these data (no events, separation, ...)."""
