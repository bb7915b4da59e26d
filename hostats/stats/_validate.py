"""Checks of aggregate inputs (counts, totals, person-time, effect sizes) shared by incidence and meta.

Each check raises ``ValueError`` naming the offending groups or studies by their labels, so a caller never
gets a silent NaN. ``where`` is the phrase before the labels ("in group(s)", "for study").
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def as_vector(values: Any, name: str) -> tuple[np.ndarray, pd.Index | None]:
    """Flatten a scalar / array-like / Series to a float array, keeping a Series index for labels."""
    index = values.index if isinstance(values, pd.Series) else None
    if isinstance(values, pd.Series):
        values = values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers, got {values!r}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a scalar or one-dimensional, got shape {arr.shape}")
    return arr, index


def name_items(mask: np.ndarray, labels: Sequence | pd.Index, quote: bool = True, limit: int = 5) -> str:
    """The labels where ``mask`` is true, the first ``limit`` of them, then "and N more"."""
    hits = np.flatnonzero(np.asarray(mask))
    shown = [repr(labels[i]) if quote else str(labels[i]) for i in hits[:limit]]
    more = hits.size - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def require_finite(values: np.ndarray, labels: Sequence, name: str, where: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{name} is missing or not finite {where} {name_items(bad, labels)}")


def check_counts(values: np.ndarray, labels: Sequence, name: str, where: str) -> None:
    """Counts: present, finite, non-negative whole numbers."""
    require_finite(values, labels, name, where)
    bad = values < 0
    if bad.any():
        raise ValueError(f"{name} must be non-negative; it is negative {where} {name_items(bad, labels)}")
    bad = values != np.round(values)
    if bad.any():
        raise ValueError(f"{name} must be whole numbers; not so {where} {name_items(bad, labels)}")


def check_binomial(events: np.ndarray, totals: np.ndarray, labels: Sequence, where: str,
                   totals_name: str = "n") -> None:
    """Binomial data: both counts valid, every total at least 1 and events <= total."""
    check_counts(events, labels, "events", where)
    check_counts(totals, labels, totals_name, where)
    bad = totals == 0
    if bad.any():
        raise ValueError(f"{totals_name} is 0 {where} {name_items(bad, labels)}: a proportion needs at least "
                         "one unit")
    bad = events > totals
    if bad.any():
        raise ValueError(f"events exceed {totals_name} {where} {name_items(bad, labels)}")
