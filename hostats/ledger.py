"""The ledger: what every cleaning step did, so that no row and no cell is lost silently.

For each step it keeps rows in, rows excluded, rows out and rows changed, plus a reason. Every excluded row
is kept with its source file, its source row number and the step and reason that excluded it; every cell
that was changed or blanked is kept as a *problem* (source file, source row, column, original value, what
was wrong, what was done). The flow table (``Ledger.flow``) is the data a STROBE/CONSORT-style flow
diagram is drawn from. Invariant (tested on every input): rows read = rows kept + rows excluded.

Row numbers follow the source file as a spreadsheet shows it: the header is row 1, so the first data row
is row 2. For a DataFrame source the first row is also numbered 2 (as if it had been written to CSV).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FLOW_COLUMNS = ["step", "rows_in", "rows_excluded", "rows_out", "rows_changed", "reason"]
EXCLUDED_COLUMNS = ["source_file", "source_row", "step", "reason"]
PROBLEM_COLUMNS = ["source_file", "source_row", "column", "value", "problem", "action"]


@dataclass
class Step:
    """One ledger line: a named step with its row counts and a reason for a person."""

    step: str
    rows_in: int
    rows_excluded: int
    rows_out: int
    rows_changed: int
    reason: str = ""


@dataclass
class Ledger:
    """An append-only record of cleaning steps, excluded rows and cell-level problems.

    Steps with the same name (e.g. the same rule run on each file of a multi-site cohort) are summed in
    :meth:`flow`, keeping the order in which they first appeared.
    """

    steps: list[Step] = field(default_factory=list)
    _excluded: list[pd.DataFrame] = field(default_factory=list, repr=False)
    _problems: list[pd.DataFrame] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)

    # --- recording -----------------------------------------------------------------------------------
    def read(self, rows: int, reason: str) -> None:
        """Record the rows read from one source (the first line of the flow)."""
        self.steps.append(Step("read", 0, 0, int(rows), 0, reason))

    def record(self, step: str, rows_in: int, *, excluded: pd.DataFrame | None = None,
               reason: str = "", rows_changed: int = 0,
               row_reasons: pd.Series | str | None = None) -> None:
        """Record a step. ``excluded`` holds the excluded rows (with source_file, source_row);
        ``row_reasons`` gives each its own reason (a Series aligned with ``excluded`` or one string)."""
        n_excl = 0 if excluded is None else len(excluded)
        if n_excl:
            why = reason if row_reasons is None else row_reasons
            frame = pd.DataFrame({
                "source_file": excluded["source_file"].astype(str).to_numpy(),
                "source_row": excluded["source_row"].to_numpy(dtype=np.int64),
                "step": step,
                "reason": why.to_numpy(dtype=object) if isinstance(why, pd.Series) else why,
            })
            self._excluded.append(frame)
        self.steps.append(Step(step, int(rows_in), n_excl, int(rows_in) - n_excl, int(rows_changed), reason))

    def problems_from_mask(self, frame: pd.DataFrame, mask: pd.Series | np.ndarray, column: str,
                           values: pd.Series, problem: str | pd.Series, action: str) -> int:
        """Record one problem per row where ``mask`` is true (vectorised). Returns the count."""
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n:
            vals = pd.Series(values)[mask]  # format only the cells with a problem
            if pd.api.types.is_datetime64_any_dtype(vals):
                text = vals.dt.strftime("%Y-%m-%d")
            else:
                text = vals.astype(object)
            text = text.where(vals.notna(), "").astype(str)
            self._problems.append(pd.DataFrame({
                "source_file": frame["source_file"].to_numpy()[mask].astype(str),
                "source_row": frame["source_row"].to_numpy(dtype=np.int64)[mask],
                "column": column,
                "value": text.to_numpy(),
                "problem": problem.to_numpy(dtype=object)[mask] if isinstance(problem, pd.Series) else problem,
                "action": action,
            }))
        return n

    def note(self, text: str) -> None:
        """A remark that is not about one row (a column ignored, a date convention chosen...)."""
        if text not in self.notes:
            self.notes.append(text)

    # --- reading -------------------------------------------------------------------------------------
    def flow(self) -> pd.DataFrame:
        """The flow table: one line per step (first = rows read), counts summed over sources."""
        if not self.steps:
            return pd.DataFrame(columns=FLOW_COLUMNS)
        raw = pd.DataFrame([s.__dict__ for s in self.steps], columns=FLOW_COLUMNS)
        agg = raw.groupby("step", sort=False).agg(
            rows_in=("rows_in", "sum"), rows_excluded=("rows_excluded", "sum"),
            rows_out=("rows_out", "sum"), rows_changed=("rows_changed", "sum"),
            reason=("reason", lambda r: "; ".join(dict.fromkeys(x for x in r if x))))
        agg = agg.reset_index()
        agg.loc[agg["step"] == "read", "rows_in"] = agg.loc[agg["step"] == "read", "rows_out"]
        return agg[FLOW_COLUMNS].astype({c: "int64" for c in FLOW_COLUMNS[1:5]})

    @property
    def excluded(self) -> pd.DataFrame:
        """Every excluded row: source_file, source_row, step, reason."""
        if not self._excluded:
            return pd.DataFrame({"source_file": pd.Series(dtype=object), "source_row": pd.Series(dtype="int64"),
                                 "step": pd.Series(dtype=object), "reason": pd.Series(dtype=object)})
        return pd.concat(self._excluded, ignore_index=True)

    @property
    def problems(self) -> pd.DataFrame:
        """Every cell-level problem: source_file, source_row, column, value, problem, action."""
        if not self._problems:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "source_row" else object)
                                 for c in PROBLEM_COLUMNS})
        return pd.concat(self._problems, ignore_index=True)

    @property
    def rows_read(self) -> int:
        return int(sum(s.rows_out for s in self.steps if s.step == "read"))

    @property
    def rows_excluded(self) -> int:
        return int(sum(s.rows_excluded for s in self.steps))

    def copy(self) -> Ledger:
        """A shallow copy that can be extended without changing this ledger."""
        return Ledger(list(self.steps), list(self._excluded), list(self._problems), list(self.notes))

    def to_dict(self) -> dict:
        """JSON-ready summary (flow, counts, notes); the full tables are ``excluded`` and ``problems``."""
        return {"rows_read": self.rows_read, "rows_excluded": self.rows_excluded,
                "flow": self.flow().to_dict(orient="records"), "notes": list(self.notes)}
