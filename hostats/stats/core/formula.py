"""The one formula engine of hostats: design matrices for ``logistic``, ``cox``, ``fine_gray`` and ``iptw``.

Every regression-type estimator builds its model matrix here, with formulaic (Wilkinson-Rogers syntax, as R
and patsy), so the same formula string means the same columns everywhere:

* ``outcome ~ a + b`` for ``logistic``; the right-hand side alone (a leading ``~`` allowed) for ``cox``,
  ``fine_gray`` and the confounders of ``iptw``.
* Numeric columns enter as they are. Text, Categorical and boolean columns, and ``C(x)``, are factors with
  treatment (dummy) coding: the first level is the reference (a Categorical's category order, otherwise
  the sorted values, so False before True), columns are named ``x[T.level]`` / ``C(x)[T.level]`` (as
  patsy and statsmodels name them). Another reference: ``C(x, Treatment('level'))`` (or
  ``C(x, contr.treatment('level'))``). Categories absent from the analysed rows are dropped; a factor
  with a single level left is an error naming it.
* Interactions ``a:b`` and ``a*b``; transforms ``I(age / 10)``, ``np.log(x)``.
* Stateful transforms (formulaic's): ``center(x)``, ``scale(x)`` (standard deviation with n - 1, as R's
  ``scale``), ``poly(x, degree)`` (orthonormal, R's ``poly``; ``raw=True`` for x, x^2, ...),
  ``bs(x, df=4)`` (cubic B-spline without intercept column, R's ``splines::bs``: df - 3 interior knots at
  quantiles of x, boundary knots at its range; ``knots=[...]``, ``degree=``), ``cr(x, df=4)`` (natural
  cubic regression spline, mgcv's ``s(x, bs = "cr", k = df + 1)`` basis with its sum-to-zero constraint
  absorbed: df + 1 knots evenly through the sorted unique values of x, as mgcv's ``place.knots``; it
  spans the same curves as R's ``ns(x, knots = <those inner knots>)``). hostats' ``cr`` centres by
  default (``constraints="center"``; formulaic's own default leaves the constant in the basis, which a
  model with an intercept or a baseline hazard cannot estimate). Knots, bounds, polynomial coefficients,
  means and standard deviations are computed on the analysed rows (after the complete-case step) and
  stored in the fitted design, so ``.predict(new_data)`` uses the same basis. ``bs`` refuses new values
  outside the fitted range (``extrapolation="clip"``/``"extend"`` to allow them); ``cr`` extends its
  cubic pieces.
* Column names that are not Python names, such as R's ``ph.ecog`` or ``wt.loss``, work as they are or
  in backticks (``ph.ecog``, ```ph.ecog```, ``C(ph.ecog)``, ``bs(wt.loss, df=3)``); the model's column
  names show them without backticks.
* ``logistic`` and the propensity model of ``iptw`` keep the intercept; hazard models drop it (the
  baseline hazard absorbs it) and keep the same treatment-coded columns.

Missing values are handled before the matrix is built, by complete-case analysis on the model's columns
(:func:`hostats.stats.core.validate.complete_cases`). Formula errors are :class:`hostats.errors.DataError`
naming the formula and the wrong term or column, without formulaic's terminal colour codes.
"""
from __future__ import annotations

import builtins
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import DataError, EstimationError
from hostats.stats.core.validate import row_labels

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MARK = re.compile(r"⧛(.*?)⧚", re.S)


def clean_message(exc: BaseException | str) -> str:
    """A formula-library error as one plain line: no ANSI colour codes; the highlighted part of the
    formula (formulaic marks it with ⧛...⧚) is quoted after the message."""
    text = _ANSI.sub("", str(exc))
    marked = [m.strip() for m in _MARK.findall(text)]
    text = _MARK.sub(lambda m: m.group(1), text)
    first = " ".join(line.strip() for line in text.strip().splitlines()[:1])
    first = first.replace("insuffient", "insufficient")  # formulaic's typo
    if marked and marked[0]:
        first += f" (at {marked[0]!r})"
    return first


def split_formula(formula: Any, outcome: bool) -> tuple[str | None, str]:
    """(outcome, right-hand side) of ``"y ~ a + b"`` (``outcome=True``) or of ``"a + b"`` / ``"~ a + b"``."""
    if not isinstance(formula, str):
        raise DataError(f"the formula must be a string such as {'outcome ~ a + C(b)' if outcome else 'a + C(b)'!r}, "
                        f"got {formula!r}")
    if outcome:
        if formula.count("~") != 1:
            raise DataError(f"the formula must look like 'outcome ~ term1 + term2', got {formula!r}")
        lhs, rhs = (part.strip() for part in formula.split("~"))
        if not lhs:
            raise DataError(f"the formula {formula!r} names no outcome before '~'")
        return lhs, rhs
    if formula.count("~") > 1 or (formula.count("~") == 1 and formula.split("~")[0].strip()):
        raise DataError(f"give only the right-hand side of the formula (covariates such as 'age + C(sex)'), "
                        f"got {formula!r}")
    return None, formula.split("~")[-1].strip()


def _hostats_cr(x, df=None, knots=None, lower_bound=None, upper_bound=None, constraints="center",
                extrapolation="extend", _state={}):  # noqa: B006  (formulaic replaces _state)
    """formulaic's natural cubic regression spline with hostats' default ``constraints="center"``."""
    from formulaic.transforms.cubic_spline import cubic_spline

    return cubic_spline(x, df=df, knots=knots, lower_bound=lower_bound, upper_bound=upper_bound,
                        constraints=constraints, cyclic=False, extrapolation=extrapolation, _state=_state)


def _context() -> dict[str, Any]:
    """Names a formula may call besides formulaic's own (C, I, bs, poly, center, scale, ...)."""
    from formulaic.utils.stateful_transforms import stateful_transform

    return {"np": np, "cr": stateful_transform(_hostats_cr)}


_ASIS = re.compile(r"`([^`]*)`")
_QUOTED = re.compile(r"""(?<![\w.])Q\(\s*(['"])(.+?)\1\s*\)""")


def _factor_variables(rhs: str, formula: str) -> list[str]:
    """Every data name used by the factors of a right-hand side: a looked-up factor is a column name as
    written (``ph.ecog``: formulaic's own required_variables reads it as ``ph``); in Python factors
    (``bs(age, df=4)``, ``C(ph.ecog)``, ``np.log(`wt.loss`)``) the names used as values, not the
    callables, the namespaces (np) or formulaic's transforms."""
    import formulaic
    from formulaic.transforms import TRANSFORMS
    from formulaic.utils.code import sanitize_variable_names
    from formulaic.utils.variables import get_expression_variables

    try:
        parsed = formulaic.Formula(rhs)
    except Exception as exc:  # formulaic's parse errors carry terminal colour codes
        raise DataError(f"cannot parse the formula {formula!r}: {clean_message(exc)}") from exc
    known = set(TRANSFORMS) | set(_context())
    found: list[str] = []
    for term in parsed:
        for factor in term.factors:
            method = getattr(factor.eval_method, "value", factor.eval_method)
            expr = str(factor.expr)
            if method == "literal":
                continue
            if method == "lookup":
                names = [_ASIS.sub(r"\1", expr)]
            else:
                aliases: dict[str, str] = {}
                try:
                    code = sanitize_variable_names(expr, {}, aliases)
                    used = get_expression_variables(code, {}, aliases)
                except SyntaxError as exc:
                    raise DataError(f"cannot parse the term {expr!r} of the formula {formula!r}: "
                                    f"{exc.msg}") from exc
                # values are columns; an unknown callable (foo(age)) is kept so that require_variables
                # can name it as neither a column nor a known function
                names = [str(v) for v in used
                         if str(v).split(".")[0] not in known
                         and ("value" in {getattr(r, "value", r) for r in v.roles}
                              or str(v) not in vars(builtins))]
                names += [m.group(2) for m in _QUOTED.finditer(expr)]  # patsy's Q("ph.ecog")
            found += [n for n in names if n not in found]
    return found


def formula_variables(rhs: str, formula: str) -> list[str]:
    """The data columns a right-hand side uses, in the order they appear in it (parse errors named).
    Includes the arguments of transforms (``age`` of ``bs(age, df=4)``) and dotted names (``ph.ecog``).
    A right-hand side of plain names only (``a + b``) is read without formulaic's parser (its factors are
    those names)."""
    plain = _plain_terms(rhs)
    needed = plain if plain is not None else _factor_variables(rhs, formula)
    return sorted(needed, key=lambda v: (rhs.find(v) if v in rhs else len(rhs), v))


def formula_columns(formula: Any, outcome: bool) -> list[str]:
    """Every data column a formula uses (the outcome first when ``outcome``): the model's columns for the
    complete-case rule. Parse errors are DataErrors; absent columns are checked when the matrix is built."""
    lhs, rhs = split_formula(formula, outcome)
    return ([lhs] if lhs is not None else []) + [v for v in formula_variables(rhs, formula) if v != lhs]


def require_variables(data: pd.DataFrame, variables: list[str], formula: str) -> None:
    """Every formula variable is a column; a name used as a function (``foo(age)``) that is neither a
    column nor a known transform is named as such."""
    absent = [v for v in variables if v not in data.columns]
    if not absent:
        return
    calls = [v for v in absent if re.search(rf"(?<![\w.]){re.escape(v)}\s*\(", formula)]
    if calls:
        raise DataError(f"{calls[0]!r} in the formula {formula!r} is neither a column of the data nor a known "
                        "function (C, I, np.log, np.exp, center, scale, poly, bs, cr, ...)", column=calls[0])
    raise DataError(f"column {', '.join(map(repr, absent))} (in the formula {formula!r}) "
                    f"{'is' if len(absent) == 1 else 'are'} not in the data; columns are "
                    f"{list(data.columns)}", column=absent[0])


def model_frame(data: pd.DataFrame, variables: list[str], fitting: bool) -> pd.DataFrame:
    """The formula's columns with one coding for every estimator: booleans (numpy or pandas "boolean") as
    a two-level factor (False, True), nullable numbers as floats, pandas "string" columns as text, and
    (when fitting) Categoricals without the categories absent from these rows."""
    frame = {}
    for v in variables:
        s = data[v]
        if pd.api.types.is_bool_dtype(s):
            s = pd.Series(pd.Categorical(s.astype(object), categories=[False, True]), index=s.index)
        elif isinstance(s.dtype, pd.CategoricalDtype):
            s = s.cat.remove_unused_categories() if fitting else s
        elif pd.api.types.is_extension_array_dtype(s) and pd.api.types.is_numeric_dtype(s):
            s = s.astype("float64")  # Int64 / Float64: pd.NA as NaN
        elif pd.api.types.is_string_dtype(s) and s.dtype != object:
            s = s.astype(object).where(s.notna(), None)  # pandas "string": a factor like text columns
        frame[v] = s
    return pd.DataFrame(frame, index=data.index)


@dataclass
class Design:
    """A fitted formula: column names, the columns of each term, and the coding for new data."""

    formula: str
    rhs: str
    variables: list[str]
    names: list[str]
    terms: dict[str, list[int]] = field(default_factory=dict)
    intercept: bool = True
    spec: Any = None

    def matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The same coding applied to ``data`` (e.g. for prediction): NaN rows where a formula column is
        missing; a factor level not seen when fitting is a DataError naming the column."""
        require_variables(data, self.variables, self.formula)
        if self.spec is None:  # the direct numeric path: plain numeric columns as they are
            for v in self.variables:
                if not _plain_numeric(data[v]):
                    raise DataError(f"column {v!r} was numeric when the model was fitted and is "
                                    f"{data[v].dtype} here", column=v)
            X = _numeric_matrix(data, self.variables, self.intercept)
            X[np.isnan(X).any(axis=1)] = np.nan  # as the formula path: the whole row missing
            return X
        frame = model_frame(data, self.variables, fitting=False)
        missing = frame.isna().any(axis=1).to_numpy()
        self._check_levels(frame)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing rows are set to NaN below; unseen levels checked above
            try:
                mm = self.spec.get_model_matrix(frame, context=_context(), output="numpy", na_action="ignore")
            except Exception as exc:
                raise DataError(f"cannot apply the formula {self.formula!r} to these data: "
                                f"{clean_message(exc)}") from exc
        X = np.asarray(mm, dtype=float)
        if not self.intercept:
            X = X[:, self._keep]
        if missing.any():
            X[missing] = np.nan
        return X

    @property
    def _keep(self) -> list[int]:
        if self.spec is None:
            return list(range(len(self.names)))
        return [i for i, c in enumerate(self.spec.column_names) if c != "Intercept"]

    def _check_levels(self, frame: pd.DataFrame) -> None:
        """Unseen levels of plain factors (``x``, ``C(x)``, ``C(x, ...)``) named by column; formulaic's
        own check covers transformed factors."""
        if self.spec is None:
            return
        for factor, (kind, state) in self.spec.encoder_state.items():
            if getattr(kind, "value", kind) != "categorical" or "categories" not in state:
                continue
            col = next((v for v in self.variables
                        if re.fullmatch(rf"(?:C\(\s*)?`?{re.escape(v)}`?(?:\s*[,)].*)?", str(factor), re.S)),
                       None)
            if col is None:
                continue
            values = frame[col].dropna()
            bad = ~values.isin(set(state["categories"]))
            if bad.any():
                raise DataError(f"column {col!r}: value {values[bad].iloc[0]!r} was not seen when the model was "
                                f"fitted (levels {list(state['categories'])})", column=col)


def _quote_names(rhs: str, variables: list[str]) -> str:
    """The right-hand side with every column name that is not a Python name (R's ``ph.ecog``) put in
    backticks where it is not already (nor in quotes: ``Q("ph.ecog")``), so formulaic reads it as one
    column inside calls too."""
    for v in sorted((v for v in variables if not v.isidentifier()), key=len, reverse=True):
        rhs = re.sub(rf"(?<![\w.`'\"]){re.escape(v)}(?![\w.`'\"])", lambda _m, v=v: f"`{v}`", rhs)
    return rhs


def _unquote(name: str) -> str:
    """A model column or term name without formulaic's backticks (``C(`ph.ecog`)[T.1]`` -> ``C(ph.ecog)[T.1]``)."""
    return name.replace("`", "")


_PLAIN_TERM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _plain_numeric(s: pd.Series) -> bool:
    """A numpy integer or float column (not boolean, not a pandas extension type): formulaic would use it
    as it is."""
    return isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf"


def _plain_terms(rhs: str) -> list[str] | None:
    """The column names of a right-hand side that is only ``a + b + c`` (distinct Python names), else None."""
    import keyword

    terms = [t.strip() for t in rhs.split("+")]
    if not terms or any(not _PLAIN_TERM.fullmatch(t) or keyword.iskeyword(t) for t in terms):
        return None
    if "Intercept" in terms or len(set(terms)) != len(terms):
        return None
    return terms


def _numeric_matrix(data: pd.DataFrame, columns: list[str], intercept: bool, order: str = "C") -> np.ndarray:
    """Columns as a float matrix (NaN for missing), with a leading column of ones if ``intercept``;
    ``order="F"``: column-major, filled column by column from the frame (one copy of each column)."""
    if order == "F":
        X = np.empty((len(data), len(columns) + int(intercept)), order="F")
        if intercept:
            X[:, 0] = 1.0
        for j, c in enumerate(columns, start=int(intercept)):
            X[:, j] = data[c].to_numpy()
        return X
    values = data[columns].to_numpy(dtype=float)
    if not intercept:
        return np.ascontiguousarray(values)
    X = np.empty((len(data), len(columns) + 1))
    X[:, 0] = 1.0
    X[:, 1:] = values
    return X


def _direct_design(data: pd.DataFrame, rhs: str, formula: str,
                   intercept: bool, order: str = "C") -> tuple[Design, np.ndarray] | None:
    """The direct numeric path: when every term is a plain numeric column (``age + dose + bmi``), the model
    matrix is those columns as they are, which is what formulaic builds, without its parsing and
    materialising machinery (a fifth of a Cox fit on a million rows). None when the formula needs more."""
    cols = _plain_terms(rhs)
    if cols is None or any(c not in data.columns or not _plain_numeric(data[c]) for c in cols):
        return None
    if len(set(data.columns)) != len(data.columns):
        return None  # duplicated column names: let the formula engine report them
    X = _numeric_matrix(data, cols, intercept, order)
    k = int(intercept)
    names = (["Intercept"] if intercept else []) + cols
    return Design(formula=formula, rhs=rhs, variables=cols, names=names,
                  terms={c: [j + k] for j, c in enumerate(cols)}, intercept=intercept, spec=None), X


def complete_direct_design(data: pd.DataFrame, rhs: str, formula: str, intercept: bool,
                           order: str = "C") -> tuple[Design, np.ndarray] | None:
    """The direct numeric path's design (:func:`build_design`) on the data as they are, when that path
    applies and every value is finite; None otherwise. An estimator whose other columns are complete can
    then skip the complete-case step, whose missing-value scan copies the formula's columns a second time
    (:func:`hostats.stats.core.validate.complete_cases`): a finite column sum means a column without NaN."""
    if len(data) == 0:
        return None
    direct = _direct_design(data, rhs, formula, intercept, order)
    if direct is None or not np.all(np.isfinite(direct[1].sum(axis=0))):
        return None
    return direct


def build_design(data: pd.DataFrame, rhs: str, formula: str, intercept: bool,
                 order: str = "C") -> tuple[Design, np.ndarray]:
    """Model matrix of a right-hand side on complete data, treatment-coded as the module docstring says.

    ``intercept=False`` drops the intercept column but keeps the full-rank coding (hazard models). A
    factor with a single level in these rows is an EstimationError naming the term; a value that is not
    finite after a transformation (``np.log(0)``) a DataError naming the term and the rows. A right-hand
    side of plain numeric columns only (``a + b``) takes a direct path (the columns as they are, the same
    matrix and names as formulaic gives; ``Design.spec`` is then None). ``order="F"``: the matrix
    column-major (same values).
    """
    import formulaic

    direct = _direct_design(data, rhs, formula, intercept, order)
    if direct is not None:
        design, X = direct
        _check_finite(X, design.names, formula, data.index)
        return design, X
    variables = formula_variables(rhs, formula)
    require_variables(data, variables, formula)
    frame = model_frame(data, variables, fitting=True)
    try:
        mm = formulaic.model_matrix(_quote_names(rhs, variables), frame, output="numpy", na_action="raise",
                                    context=_context())
    except Exception as exc:  # formulaic's errors carry colour codes and internal class names
        raise DataError(f"cannot build the model matrix for {formula!r}: {clean_message(exc)}") from exc
    spec = mm.model_spec
    names_all = list(spec.column_names)
    if "Intercept" not in names_all:
        why = ("odds ratios are relative to it" if intercept else
               "hazard models drop it themselves and keep the reference-level coding")
        raise DataError(f"the formula {formula!r} removes the intercept ('0 +' or '- 1'); leave it in: {why}")
    keep = [i for i, c in enumerate(names_all) if c != "Intercept" or intercept]
    terms: dict[str, list[int]] = {}
    for term, idx in spec.term_indices.items():
        name = _unquote(str(term))
        if name == "1":
            continue
        if not idx:
            used = [v for v in variables if v in formulaic.Formula(name).required_variables]
            seen = [frame[v].dropna().unique().tolist() for v in used]
            only = f" ({', '.join(repr(x[0]) for x in seen if len(x) == 1)})" if seen else ""
            raise EstimationError(f"term {name!r} has a single level{only} in the analysed rows: there is "
                                  "nothing to compare; drop it")
        terms[name] = [keep.index(i) for i in idx if i in keep]
    X = np.asarray(mm, dtype=float)
    if len(keep) < X.shape[1]:
        X = X[:, keep]
    names = [_unquote(names_all[i]) for i in keep]
    if order == "F":
        X = np.asfortranarray(X)
    _check_finite(X, names, formula, data.index)
    return Design(formula=formula, rhs=rhs, variables=variables, names=names, terms=terms,
                  intercept=intercept, spec=spec), X


def _check_finite(X: np.ndarray, names: list[str], formula: str, index: pd.Index) -> None:
    """A value that is not finite is a DataError naming the term and the rows (a finite column sum means
    every value is finite: one pass, no n x p temporary)."""
    sums = X.sum(axis=0)
    for j in np.flatnonzero(~np.isfinite(sums)):
        name, col = names[j], X[:, j]
        if not np.isfinite(col).all():
            raise DataError(f"term {name!r} of the formula {formula!r} is not finite in rows "
                            f"{row_labels(~np.isfinite(col), index)} (a transformation of an out-of-range value?)")
