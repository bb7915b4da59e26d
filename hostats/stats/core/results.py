"""The result-object contract shared by every estimator (docs/design.md, "The public API").

``.table()`` is a tidy DataFrame: a label column (``term`` for model coefficients, ``group`` and/or
``measure`` otherwise), then ``estimate, ci_lower, ci_upper, p_value, std_error, n, events`` where they
apply, and ``ci_level`` so the level travels with the numbers. Ratio measures (OR, HR, RR, SHR) are
exponentiated in ``estimate`` with ``std_error`` on the log scale. Curves add ``.at(times)``.

Every result also has ``summary()`` (a short text: method, n, events, missing, the table, warnings),
``_repr_html_()`` (notebooks: the method line, the table and the warnings; never design matrices), a
compact ``repr``, ``n`` and ``warnings``. Model results (logistic, cox, fine_gray, binreg) expose ``coef``
(log-scale coefficients, a Series indexed by term), ``vcov`` (their covariance, a DataFrame) and ``loglik``
as :class:`LogLik` ``(null, fitted)``. Names replaced by the contract keep working for one release with a
``DeprecationWarning`` (:func:`deprecated_alias`).

Results are read-only once made (:class:`_Sealed`): setting an attribute raises, and nothing a result
holds can be changed in place. ``warnings`` and every other list become tuples, dicts :class:`ReadOnlyDict`,
numpy arrays read-only views, and a Series or DataFrame is handed out as a new object over read-only
views of the result's data, so a caller's ``res.coef[0] = 5`` or ``res.vcov.iloc[0, 0] = 0`` raises and
a column added or relabelled stays in the caller's object. No data are copied (:func:`read_only`).
"""
from __future__ import annotations

import html
import warnings as _warnings
from collections.abc import Callable, ItemsView, Iterator, ValuesView
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


class LogLik(NamedTuple):
    """Log-likelihood of the null model (no covariates; intercept only where the model has one) and of the
    fitted model, in this order for every model result. NaN where the method has no likelihood."""

    null: float
    fitted: float


class deprecated_alias:  # noqa: N801 (a descriptor, used like a decorator-made attribute)
    """A read-only attribute kept for one release under its old name: warns (DeprecationWarning naming the
    new name) and returns ``convert(getattr(obj, new))`` (``convert`` restores the old type if it differs)."""

    def __init__(self, new: str, convert: Callable[[Any], Any] | None = None, hint: str = "") -> None:
        self.new, self.convert, self.hint, self.old = new, convert, hint, ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        _warnings.warn(f"{type(obj).__name__}.{self.old} is deprecated and will be removed in the next release; "
                       f"use .{self.new}{self.hint}", DeprecationWarning, stacklevel=2)
        value = getattr(obj, self.new.removesuffix("()"))
        if self.new.endswith("()"):
            value = value()
        return self.convert(value) if self.convert is not None else value


_MAX_ROWS = 30  # rows shown by summary(), repr and _repr_html_ (the table itself is never cut)


def _fmt(value: Any) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)


def _handed_out(value: Any) -> Any:
    """What a result gives a caller for a value it holds: a Series or DataFrame as a new object over the
    same read-only data (no data are copied), so a column added or labels changed stay with the caller."""
    return value.copy(deep=False) if isinstance(value, pd.Series | pd.DataFrame) else value


class ReadOnlyDict(dict):
    """A dict held by a result: read as any dict (equal to one, JSON-serialisable, picklable); changing it
    raises (``dict(d)`` makes a changed copy), and a table read from it is handed out as the result's own
    attributes are."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this dict belongs to a result and is read-only (dict(...) makes a changed copy)")

    def __getitem__(self, key: Any) -> Any:
        return _handed_out(dict.__getitem__(self, key))

    def get(self, key: Any, default: Any = None) -> Any:
        return _handed_out(dict.get(self, key, default))

    def __iter__(self) -> Iterator:
        # defined here so that dict(d) and {**d} take the items through __getitem__, not dict's fast path
        return dict.__iter__(self)

    def values(self) -> ValuesView:  # type: ignore[override]  # these views read through __getitem__
        return ValuesView(self)

    def items(self) -> ItemsView:  # type: ignore[override]
        return ItemsView(self)

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple:
        return type(self), (dict(self),)


def _read_only_array(values: np.ndarray) -> np.ndarray:
    """A read-only view of ``values`` (no copy; the array itself, which may be the caller's, stays as it is)."""
    if not values.flags.writeable:
        return values
    view = values.view()
    view.flags.writeable = False
    return view


def _read_only_pandas(obj: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """A new Series/DataFrame over read-only views of ``obj``'s data (no copy). pandas (< 3, as pinned) has
    no public read-only flag: a shallow copy gets blocks of its own over the same arrays, and each block's
    numpy array (or the codes of a Categorical, the values of a datetime column) is swapped for a read-only
    view, so writes through ``[]``, ``loc``, ``iloc``, ``at``, ``values`` or in-place arithmetic raise."""
    out = obj.copy(deep=False)
    blocks = getattr(getattr(out, "_mgr", None), "blocks", None)
    if blocks is None:  # pandas internals changed: a copy of its own protects the result all the same
        return obj.copy(deep=True)
    for block in blocks:
        values = block.values
        if isinstance(values, np.ndarray):
            block.values = _read_only_array(values)
        elif hasattr(values, "_ndarray") and hasattr(values, "_from_backing_data"):  # NDArray-backed
            block.values = values._from_backing_data(_read_only_array(values._ndarray))
    return out


def read_only(value: Any) -> Any:
    """``value`` as a sealed result holds it, without copying data: a list becomes a tuple, a dict a
    :class:`ReadOnlyDict` (their items in turn), a numpy array a read-only view, a Series or DataFrame a new
    object over read-only views of its data. Anything else (numbers, text, results, which are sealed on
    their own, and fitted third-party objects) is kept as it is."""
    if isinstance(value, np.ndarray):
        return _read_only_array(value)
    if isinstance(value, pd.Series | pd.DataFrame):
        return _read_only_pandas(value)
    if isinstance(value, list):
        return tuple(read_only(item) for item in value)
    if isinstance(value, tuple):
        items = [read_only(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, dict):  # a ReadOnlyDict too: unpickled or deep-copied, its items are writeable again
        return ReadOnlyDict((key, read_only(item)) for key, item in value.items())
    return value


class _Sealed(type):
    """Results are read-only once made: after the constructor (and ``__post_init__``) returns, the public
    attributes are made read-only (:func:`read_only`) and assigning one raises. Private names stay the
    result's own (caches filled on first use); a property that hands one out makes it read-only itself."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        obj._seal()
        return obj


@dataclass(repr=False)
class Result(metaclass=_Sealed):
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
    warnings: tuple[str, ...] = ()  # given as any sequence of text, held as a tuple

    def _seal(self) -> None:
        for name, value in list(self.__dict__.items()):
            if not name.startswith("_"):
                object.__setattr__(self, name, read_only(value))
        object.__setattr__(self, "_sealed", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and self.__dict__.get("_sealed", False):
            raise AttributeError(f"{type(self).__name__} is read-only: {name!r} cannot be set after the result "
                                 "is made (dataclasses.replace(result, ...) makes a changed copy)")
        object.__setattr__(self, name, value)

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        return _handed_out(value) if name[0] != "_" else value

    def __setstate__(self, state: dict) -> None:
        """Unpickled or copied (copy.deepcopy makes writeable arrays): read-only again."""
        self.__dict__.update(state)
        if state.get("_sealed", False):
            self._seal()

    def _amend(self, **changes: Any) -> None:
        """For the estimator that made this result, while it finishes it (a profile CI, a method note,
        a warning found after the fit), and for the result's own methods that add a warning when they first
        compute something; nobody else. The new values are made read-only as the fields were."""
        for name, value in changes.items():
            object.__setattr__(self, name, read_only(value))

    def table(self) -> pd.DataFrame:
        out = self._table.copy()
        if "ci_level" not in out.columns and {"ci_lower", "ci_upper"} & set(out.columns):
            out["ci_level"] = self.level
        return tidy(out)

    # --- the display contract: summary(), _repr_html_(), repr ------------------------------------------
    @property
    def n(self) -> int | None:
        """Rows (patients, episodes) analysed; None where the result has no such count. Subclasses with a
        count store it as a field of the same name."""
        return None

    def _count_items(self) -> list[tuple[str, Any]]:
        """(label, value) pairs for the summary line: n, events, missing where the result has them."""
        out = [("n", self.n)]
        events = getattr(self, "events", None)
        if isinstance(events, int | float | np.integer | np.floating):
            out.append(("events", events))
        missing = getattr(self, "n_missing", None)
        if missing is not None:
            out.append(("missing", missing))
        return [(k, v) for k, v in out if v is not None]

    def _headline(self) -> str:
        counts = ", ".join(f"{k} = {_fmt(v)}" for k, v in self._count_items())
        return f"{type(self).__name__}: {self.method or 'result'}" + (f" ({counts})" if counts else "")

    def summary(self) -> str:
        """A short text: the method with n, events and missing rows, the table (at most 30 rows), the
        confidence level and the warnings."""
        tab = self.table()
        lines = [self._headline()]
        if tab.empty:
            lines.append("(empty table)")
        else:
            lines.append(tab.to_string(index=False, max_rows=_MAX_ROWS, float_format=_fmt))
        lines.append(f"confidence level: {self.level:g}")
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Notebook display: the method line, the tidy table (at most 30 rows) and the warnings."""
        tab = self.table()
        parts = [f"<div class=\"hostats-result\"><p><strong>{html.escape(self._headline())}</strong></p>",
                 tab.to_html(index=False, max_rows=_MAX_ROWS, float_format=_fmt, border=0)]
        if self.warnings:
            items = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
            parts.append(f"<p>Warnings:</p><ul>{items}</ul>")
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:  # compact: the headline and the table, never the stored arrays
        tab = self.table()
        body = tab.to_string(index=False, max_rows=_MAX_ROWS) if not tab.empty else "(empty table)"
        more = f"\n[{len(self.warnings)} warning(s): see .warnings]" if self.warnings else ""
        return f"{self._headline()}\n{body}{more}"


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


@dataclass(repr=False)
class GroupTest(Result):
    """A between-group test of curves (log-rank for Kaplan-Meier, Gray's test for cumulative incidence):
    ``statistic`` (chi-square), ``df``, ``p_value``; ``table()`` one row: measure, estimate (the
    statistic), p_value, df (and what the test adds, e.g. the groups)."""

    statistic: float = float("nan")
    df: int = 0
    p_value: float = float("nan")
