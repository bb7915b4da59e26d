"""Aalen-Johansen cumulative incidence and Gray's test from a frequency table (counts per group, time and
status).

The Aalen-Johansen estimator, its cmprsk variance and Gray's test use the data only through the number of
people whose follow-up ends at each distinct time with each status (censored, the cause, a competing
cause): ``cumulative_incidence_counts`` computes from such a table what
:func:`hostats.stats.competing.cif_fine_gray.cumulative_incidence` computes from the rows (the same
counts-per-time cores), so a cohort summarised out of core (:mod:`hostats.scale`) gets the same curves.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import EstimationError
from hostats.stats.competing.cif_fine_gray import (
    AJ_REFERENCE,
    CumulativeIncidenceResult,
    _aalen_johansen_counts,
    _curve_frame,
    _gray_or_problem,
    _gray_test_counts,
    _group_counts,
)
from hostats.stats.core.frequency import complete_counts, count_array
from hostats.stats.core.results import check_level, z_value
from hostats.stats.core.survival_data import group_codes, status_array, time_array

__all__ = ["cumulative_incidence_counts"]


def cumulative_incidence_counts(data: pd.DataFrame, time: str, status: str, count: str, cause: int = 1,
                                group: str | None = None, level: float = 0.95) -> CumulativeIncidenceResult:
    """Cumulative incidence of ``cause`` with competing events (Aalen-Johansen), by group, from a
    frequency table.

    Estimand: F_c(t) = P(T <= t, cause = c). Method: that of
    :func:`hostats.stats.competing.cif_fine_gray.cumulative_incidence` (exact Aalen-Johansen, variance as R
    ``cmprsk::cuminc``, log-log limits, Gray's 1988 test; Aalen & Johansen 1978). Input: one row per
    (group, time, status) with ``count`` people (status 0 censored, 1..k causes; repeated rows are added);
    the result equals ``cumulative_incidence`` on the rows the table stands for. Rows with a missing
    time, status or group are left out, counted in people (``n_missing``). No events of ``cause`` is an
    EstimationError.
    """
    level = check_level(level)
    cols = [time, status] + ([group] if group else [])
    data, warns, n_missing = complete_counts(data, cols, count, "cumulative_incidence_counts")
    t = time_array(data, time)
    s = status_array(data, status, cause)
    cause = int(cause)
    c = count_array(data, count).astype(float)
    codes, labels = group_codes(data, group)
    if not np.any((s == cause) & (c > 0)):
        raise EstimationError(f"no events of cause {cause} in column {status!r} "
                              f"(codes present: {sorted(set(s.tolist()))}); the cumulative incidence is 0 "
                              "and has no confidence interval")
    k = len(labels)
    ut, tinv = np.unique(t, return_inverse=True)
    m = ut.size
    cell = tinv * k + codes
    is1, other = s == cause, (s > 0) & (s != cause)
    cnt = np.bincount(cell, weights=c, minlength=m * k).reshape(m, k)
    d1 = np.bincount(cell, weights=c * is1, minlength=m * k).reshape(m, k)
    d2 = np.bincount(cell, weights=c * other, minlength=m * k).reshape(m, k)

    z = z_value(level)
    steps: dict[Any, dict] = {}
    curves, count_rows = [], []
    for g, label in enumerate(labels):
        present = cnt[:, g] > 0
        st = _aalen_johansen_counts(ut[present], cnt[present, g], cnt[present, g], d1[present, g], d2[present, g])
        steps[label] = st
        curves.append(_curve_frame(label, st, z))
        count_rows.append(_group_counts(label, int(cnt[:, g].sum()), int(d1[:, g].sum()), int(d2[:, g].sum()),
                                        float(ut[present].max()), cause, warns))
    curve = pd.concat(curves, ignore_index=True)
    counts = pd.DataFrame(count_rows)
    gray, problem = _gray_or_problem(group, labels, False, lambda: _gray_test_counts(cnt, d1, d2, cause), warns)
    result = CumulativeIncidenceResult(
        _table=pd.DataFrame(), level=level, method="Aalen-Johansen cumulative incidence, from counts",
        reference=AJ_REFERENCE, fitted=None, warnings=warns, curve=curve, cause=cause, n=int(c.sum()),
        n_missing=n_missing, _steps=steps, _counts=counts, _gray=gray, _gray_problem=problem)
    result._table = result.table()
    return result
