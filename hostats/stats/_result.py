"""The result-object contract shared by every estimator (DESIGN.md, "The public API").

``.table()`` is a tidy DataFrame: a label column (``term`` for model coefficients, ``group`` and/or
``measure`` otherwise), then ``estimate, ci_lower, ci_upper, p_value, std_error, n, events`` where they
apply, and ``ci_level`` so the level travels with the numbers. Ratio measures (OR, HR, RR, SHR) are
exponentiated in ``estimate`` with ``std_error`` on the log scale. Curves add ``.at(times)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

LABEL_COLUMNS = ("term", "group", "measure")
VALUE_COLUMNS = ("estimate", "ci_lower", "ci_upper", "p_value", "std_error", "n", "events", "ci_level")
CURVE_COLUMNS = ("group", "time", "estimate", "ci_lower", "ci_upper", "n_at_risk")


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Order columns as the contract says: labels, standard values, then anything else."""
    first = [c for c in LABEL_COLUMNS + VALUE_COLUMNS if c in frame.columns]
    rest = [c for c in frame.columns if c not in first]
    return frame[first + rest].reset_index(drop=True)


def check_level(level: float) -> float:
    """Validate a confidence level given as a fraction (0.95), not a percentage."""
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level!r}")
    return level


def z_value(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + check_level(level) / 2.0))


def ratio_columns(beta: np.ndarray, se: np.ndarray, level: float, lower: np.ndarray | None = None,
                  upper: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Contract columns of a ratio measure (OR, HR, SHR) from log-scale coefficients ``beta`` and SEs.

    ``estimate`` exp(beta); limits exp(beta -/+ z se) (Wald) unless log-scale ``lower``/``upper`` (e.g.
    profile-likelihood) are given; two-sided Wald ``p_value``; ``std_error`` on the log scale. An infinite
    coefficient gives an infinite limit, without an overflow warning.
    """
    from scipy.stats import norm

    z = z_value(level)
    lower = beta - z * se if lower is None else lower
    upper = beta + z * se if upper is None else upper
    with np.errstate(over="ignore"):
        return {"estimate": np.exp(beta), "ci_lower": np.exp(lower), "ci_upper": np.exp(upper),
                "p_value": 2.0 * norm.sf(np.abs(beta / se)), "std_error": se}


@dataclass(repr=False)
class Result:
    """Base result: a tidy table plus the fitted object and what produced it.

    Attributes
    ----------
    method : short name of the method (used in generated methods paragraphs).
    reference : citation of the method.
    fitted : the underlying lifelines/statsmodels object (or None when the method is hand-written).
    warnings : diagnostics a report should show (separation, positivity, non-proportional hazards, ...).
    """

    _table: pd.DataFrame
    level: float = 0.95
    method: str = ""
    reference: str = ""
    fitted: Any = None
    warnings: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        out = self._table.copy()
        if "ci_level" not in out.columns and {"ci_lower", "ci_upper"} & set(out.columns):
            out["ci_level"] = self.level
        return tidy(out)

    def __repr__(self) -> str:  # a fitted result prints as its table, like lifelines' summaries
        return f"{type(self).__name__}({self.method})\n{self.table().to_string(index=False)}"


@dataclass(repr=False)
class CurveResult(Result):
    """A step-function estimate (Kaplan-Meier, Aalen-Johansen) by group.

    ``curve`` holds every jump: group, time, estimate, ci_lower, ci_upper, n_at_risk (at the start of
    ``time``, i.e. the risk set just before it).
    """

    curve: pd.DataFrame = field(default_factory=pd.DataFrame)

    def at(self, times) -> pd.DataFrame:
        """Values of the step function at ``times`` (right-continuous), with the number still at risk."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if np.any(~np.isfinite(times)) or np.any(times < 0):
            raise ValueError("times must be finite and non-negative")
        rows = []
        for group, g in self.curve.groupby("group", sort=False, dropna=False):
            g = g.sort_values("time")
            t = g["time"].to_numpy(float)
            idx = np.searchsorted(t, times, side="right") - 1
            for value, i in zip(times, idx, strict=True):
                if i < 0:
                    start = self._start_value()
                    row = {"estimate": start, "ci_lower": start, "ci_upper": start}
                else:
                    row = {k: g[k].iloc[i] for k in ("estimate", "ci_lower", "ci_upper")}
                risk_idx = np.searchsorted(t, value, side="left")
                at_risk = (g["n_at_risk"].iloc[risk_idx] if risk_idx < len(g)
                           else 0)
                rows.append({"group": group, "time": value, **row, "n_at_risk": int(at_risk)})
        out = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
        out["ci_level"] = self.level
        return out

    def _start_value(self) -> float:
        """Value before the first jump: 1 for survival, 0 for cumulative incidence."""
        return 0.0
