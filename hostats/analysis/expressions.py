"""Expressions over the episodes (pandas query/eval): the names they use, and boolean masks whose errors
name the spec line."""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from hostats.analysis.spec import Spec



def _names_in(expr: str) -> set[str]:
    """Identifiers an expression refers to (minus Python keywords and string literals)."""
    stripped = re.sub(r"'[^']*'|\"[^\"]*\"", "", expr)
    words = set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", stripped))
    return words - {"and", "or", "not", "in", "True", "False", "None", "true", "false", "isna", "notna",
                    "abs", "log", "exp", "sqrt", "C", "Q", "np", "I", "str", "contains", "between"}


def _check_expr_columns(spec: Spec, expr: str, columns: Iterable[str], table: str, key: str,
                        index: int | None) -> None:
    cols = set(columns)
    unknown = sorted(n for n in _names_in(expr) if n not in cols)
    if unknown:
        raise spec.error(f"unknown column(s) {unknown} in {expr!r}; the data have: {', '.join(sorted(cols))}",
                         table, key, index)


def _mask(spec: Spec, frame: pd.DataFrame, expr: str, table: str, key: str, index: int | None) -> np.ndarray:
    """Evaluate a boolean pandas expression over the episodes; missing counts as False."""
    _check_expr_columns(spec, expr, frame.columns, table, key, index)
    try:
        out = frame.eval(expr, engine="python")
    except Exception as exc:  # pandas raises many kinds; all mean "this expression is wrong here"
        raise spec.error(f"cannot evaluate {expr!r}: {exc}", table, key, index) from None
    if np.isscalar(out) or not hasattr(out, "__len__") or len(out) != len(frame):
        raise spec.error(f"{expr!r} must give one true/false value per episode", table, key, index)
    s = pd.Series(out, index=frame.index)
    if not (pd.api.types.is_bool_dtype(s) or str(s.dtype) == "boolean"):
        raise spec.error(f"{expr!r} must be a condition (true/false), got values of type {s.dtype}",
                         table, key, index)
    return s.fillna(False).to_numpy(bool)
