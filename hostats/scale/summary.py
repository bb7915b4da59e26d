"""``summarise``: an episode export too large for memory, reduced to sufficient statistics (counts per group,
day and status) and a ledger, and the estimators that run from them."""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import DataError
from hostats.ingest import load_mapping
from hostats.ledger import FLOW_COLUMNS
from hostats.scale import engines
from hostats.scale.rules import CELL_STEPS, N_FLAGS, ROW_STEPS, Plan, make_plan
from hostats.schema import CODE_LISTS, COLUMNS

ENGINES = ("duckdb", "pandas", "dask")
NOT_APPLIED = ("not applied out of core: exact and conflicting duplicates, code synonyms and misspellings, "
               "export dialects (decimal commas, day-first dates, units), the Brooker/dose/NSAID consistency "
               "rules and the imaging interval bounds (see hostats.scale.rules)")
DAYS_PER_YEAR = 365.25


@dataclass(repr=False)
class Summary:
    """Counts of episodes per (``by`` values, time_days, status) after cleaning, with the ledger.

    ``counts``: one row per combination with ``n`` episodes (kept episodes only; ``time_days`` and
    ``status`` missing where the cleaned row has no outcome, so the estimators count them as missing).
    ``ledger``: step, rows_in, rows_excluded, rows_out, rows_changed, reason (as ``Cohort.flow()``); rows
    read = rows kept + rows excluded. ``notes``: what the out-of-core road does not do, and outcomes
    unknown. ``engine``, ``files``, ``seconds``.
    """

    counts: pd.DataFrame
    ledger: pd.DataFrame
    by: tuple[str, ...]
    bins: dict = field(default_factory=dict)
    engine: str = ""
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return int(self.ledger.loc[self.ledger["step"] == "read", "rows_out"].sum())

    @property
    def rows_excluded(self) -> int:
        return int(self.ledger["rows_excluded"].sum())

    @property
    def rows_kept(self) -> int:
        return int(self.counts["n"].sum())

    def __repr__(self) -> str:
        return (f"Summary({self.rows_kept:,} episodes kept of {self.rows_read:,} rows read, "
                f"{self.rows_excluded:,} excluded; {len(self.counts):,} count cells by {list(self.by)} x day x "
                f"status; engine {self.engine!r}, {len(self.files)} file(s), {self.seconds:.1f} s)")

    def flow(self) -> pd.DataFrame:
        """The ledger as ``Cohort.flow()`` shows it: step, rows_in, rows_excluded, rows_out, rows_changed,
        reason."""
        return self.ledger.copy()

    def filter(self, name: str, **equals: Any) -> Summary:
        """A new Summary with the episodes whose ``by`` columns take the given value(s) (a value or a list
        of values per column; missing never matches), recorded as the ledger step ``name`` with the
        episodes it leaves out, as ``Cohort.filter``: ``big.filter("primary THA", index_event="tha")``."""
        if not equals:
            raise DataError(f"criterion {name!r}: give at least one column=value")
        keep = np.ones(len(self.counts), dtype=bool)
        for column, wanted in equals.items():
            if column not in self.by:
                raise DataError(f"criterion {name!r}: {column!r} was not summarised; summarise(..., by=[...]) "
                                f"had {list(self.by)}")
            wanted = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
            keep &= self.counts[column].isin(wanted).fillna(False).to_numpy(dtype=bool)
        kept, rows_in = int(self.counts.loc[keep, "n"].sum()), self.rows_kept
        reason = name + " (" + ", ".join(f"{c} in {v!r}" if isinstance(v, (list, tuple, set, frozenset))
                                         else f"{c} == {v!r}" for c, v in equals.items()) + ")"
        step = pd.DataFrame([(name, rows_in, rows_in - kept, kept, 0, reason)], columns=FLOW_COLUMNS)
        return Summary(self.counts.loc[keep].reset_index(drop=True), pd.concat([self.ledger, step], ignore_index=True),
                       self.by, dict(self.bins), self.engine, list(self.files), list(self.notes), self.seconds)

    # --- tables the estimators take ----------------------------------------------------------------
    def _group(self, group: str | None) -> list[str]:
        if group is None:
            return []
        if group not in self.by:
            raise DataError(f"group {group!r} was not summarised; summarise(..., by=[...]) had {list(self.by)}")
        return [group]

    def survival_table(self, group: str | None = None) -> pd.DataFrame:
        """Counts per (group, time_days, status): the input of the curve estimators."""
        keys = [*self._group(group), "time_days", "status"]
        return self.counts.groupby(keys, dropna=False, observed=True, sort=True)["n"].sum().reset_index()

    def patterns(self) -> pd.DataFrame:
        """Per combination of ``by`` values: ``n`` episodes, ``outcome_known`` (a status), ``time_known`` (a
        status and a time to it), and among the latter ``events`` (HO, status 1), ``deaths`` (status 2) and
        ``person_years`` (time_days summed, / 365.25): the input of rates and Poisson models."""
        c = self.counts
        st, t, n = c["status"], c["time_days"], c["n"]
        known_t = (st.notna() & t.notna()).to_numpy(dtype=bool)
        frame = c[list(self.by)].assign(
            n=n, events=n.where(known_t & (st == 1).to_numpy(dtype=bool, na_value=False), 0),
            deaths=n.where(known_t & (st == 2).to_numpy(dtype=bool, na_value=False), 0),
            outcome_known=n.where(st.notna(), 0),
            person_years=(t * n).where(known_t, 0.0) / DAYS_PER_YEAR, time_known=n.where(known_t, 0))
        whole = {k: np.int64 for k in ("n", "events", "deaths", "outcome_known", "time_known")}
        if not self.by:
            return frame.sum().to_frame().T.astype(whole)
        return frame.groupby(list(self.by), dropna=False, observed=True, sort=True).sum().reset_index().astype(whole)

    def outcome_table(self) -> pd.DataFrame:
        """Per (``by`` values, ``ho``): ``n`` episodes, ``ho`` 1 for HO (status 1), 0 for none (status 0 or
        2), missing when the status is: the input of ``logistic``."""
        c = self.counts
        ho = np.where(c["status"].isna(), np.nan, (c["status"] == 1).astype(float))
        frame = c[list(self.by)].assign(ho=ho, n=c["n"])
        return frame.groupby([*self.by, "ho"], dropna=False, observed=True, sort=True)["n"].sum().reset_index()

    # --- estimators ------------------------------------------------------------------------------------
    def kaplan_meier(self, group: str | None = None, cause: int = 1, level: float = 0.95):
        """Kaplan-Meier of time to ``cause`` (other statuses censored), by ``group``: the result of
        :func:`hostats.kaplan_meier` on the cleaned rows (from counts: ``kaplan_meier_counts``)."""
        from hostats.stats.survival.grouped import kaplan_meier_counts

        tab = self.survival_table(group)
        tab["event"] = np.where(tab["status"].isna(), np.nan, (tab["status"] == cause).astype(float))
        return kaplan_meier_counts(tab, "time_days", "event", "n", group=group, level=level)

    def cumulative_incidence(self, cause: int = 1, group: str | None = None, level: float = 0.95):
        """Aalen-Johansen cumulative incidence of ``cause`` (1 HO) with death (2) competing, by ``group``:
        the result of :func:`hostats.cumulative_incidence` on the cleaned rows."""
        from hostats.stats.competing.grouped import cumulative_incidence_counts

        return cumulative_incidence_counts(self.survival_table(group), "time_days", "status", "n", cause=cause,
                                           group=group, level=level)

    def logistic(self, formula: str, level: float = 0.95, firth: bool = False):
        """Odds ratios of ``ho ~ terms`` (terms among the ``by`` columns): :func:`hostats.logistic` on the
        cleaned rows, from covariate-pattern counts (``logistic_counts``)."""
        from hostats.stats.regression.grouped import logistic_counts

        return logistic_counts(self.outcome_table(), formula, "n", level=level, firth=firth)

    def rate(self, group: str | None = None, per: float = 100, level: float = 0.95, reference: Any = None):
        """Incidence rate of HO per ``per`` person-years (exact Poisson CI, rate ratios vs ``reference``):
        :func:`hostats.rate` on events and person-time summed from the counts."""
        from hostats.stats.incidence import rate

        p = self.patterns()
        if group is not None:
            self._group(group)
            p = p.dropna(subset=[group]).groupby(group, observed=True, sort=True)[["events", "person_years"]].sum()
            return rate(p["events"], p["person_years"], per=per, level=level, groups=list(p.index),
                        reference=reference)
        return rate([int(p["events"].sum())], [float(p["person_years"].sum())], per=per, level=level,
                    groups=["all"])

    def poisson(self, formula: str, per: float = 100, level: float = 0.95):
        """Rate ratios of ``events ~ terms`` (Poisson regression, person-years offset) from the patterns."""
        from hostats.stats.regression.grouped import poisson_counts

        return poisson_counts(self.patterns(), formula, "person_years", count="time_known", per=per,
                              level=level)


def summarise(source: Any, by: Any = (), *, engine: str = "duckdb", bins: dict | None = None,
              today: Any = None, mapping: Any = None, client: Any = None, threads: int | None = None,
              memory_limit: str | None = None, batch_rows: int = engines.BATCH_ROWS) -> Summary:
    """Summarise episode files that need not fit in memory into counts per (``by``, day, status) + a ledger.

    ``source``: a .parquet or .csv file of episodes in the canonical schema (e.g. the synthetic generator's
    ``episodes``), a folder of them, a glob pattern or a list. ``by``: canonical columns to keep apart
    (prophylaxis, sex, prior_ho, site, index_event, ...); a numeric one needs a band width in ``bins``
    (``{"age_years": 10}``). ``engine``: ``"duckdb"`` (default; ``threads``, ``memory_limit`` such as
    ``"4GB"``), ``"pandas"`` (batches of ``batch_rows``) or ``"dask"`` (partitions on ``client``, a
    ``dask.distributed.Client``, or the active one). All three give identical counts and ledgers.
    ``today``: dates after it are errors (default: the day of reading). ``mapping``: a mapping file (or
    dict) whose [columns] names, [values] tables, [source] missing tokens and [booleans] apply (its date
    formats must be ISO and it may not convert units: a clear error otherwise).

    Cleaning: the subset of :mod:`hostats.clean` listed in :mod:`hostats.scale.rules` (required values,
    code lists, unreadable values, dates, plausible ranges, the date-consistency rules, and the derived
    status and time_days of :func:`hostats.clean.derive_outcomes`); every row read is kept or excluded in
    the ledger. The estimators on the result (``kaplan_meier``, ``cumulative_incidence``, ``logistic``,
    ``rate``, ``poisson``) give what the row-level estimators give on the cleaned rows.
    """
    if engine not in ENGINES:
        raise DataError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    start = _time.perf_counter()
    files, fmt = engines.list_files(source)
    columns = set(engines.columns_of(files, fmt))
    today_ts = pd.Timestamp(today) if today is not None else pd.Timestamp.today()
    plan = make_plan(by, bins, today_ts, columns, str(files[0]),
                     mapping=load_mapping(mapping) if mapping is not None else None)
    if engine == "duckdb":
        raw = engines.run_duckdb(files, fmt, plan, threads=threads, memory_limit=memory_limit)
    elif engine == "pandas":
        raw = engines.run_pandas(files, fmt, plan, batch_rows=batch_rows)
    else:
        raw = engines.run_dask(files, fmt, plan, client=client)
    if raw.empty or int(raw["n"].sum()) == 0:
        raise DataError(f"{files[0]}: no data rows")
    counts, ledger, notes = _finish(raw, plan, [str(f) for f in files])
    return Summary(counts, ledger, plan.by, dict(plan.bins), engine, [str(f) for f in files], notes,
                   _time.perf_counter() - start)


def _finish(raw: pd.DataFrame, plan: Plan, files: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Counts of the kept rows (canonical dtypes, sorted) and the ledger from the raw groups."""
    read = int(raw["n"].sum())
    excluded = int(raw.loc[raw["excluded"], "n"].sum())
    kept = read - excluded
    bits, n = raw["flags"].to_numpy(np.int64), raw["n"].to_numpy(np.int64)
    flags = [int(n[(bits >> i) & 1 == 1].sum()) for i in range(N_FLAGS)]
    rows = [("read", 0, 0, read, 0, f"rows read from {len(files)} file(s): {files[0]}"
             + (" ..." if len(files) > 1 else ""))]
    for (step, why), k in zip(CELL_STEPS, flags[: len(CELL_STEPS)], strict=True):
        rows.append((step, read, 0, read, k, f"{k} row(s) with {why}" if k else ""))
    rows.append(("required values", read, excluded, kept, 0, "no usable patient_id / index_event / index_date"))
    for (step, why), k in zip(ROW_STEPS, flags[len(CELL_STEPS):], strict=True):
        rows.append((step, kept, 0, kept, k, why if k else ""))
    ledger = pd.DataFrame(rows, columns=FLOW_COLUMNS)
    ledger.loc[0, "rows_in"] = read

    counts = raw.loc[~raw["excluded"], [*plan.by, "time_days", "status", "n"]]
    counts = counts.groupby([*plan.by, "time_days", "status"], dropna=False, sort=True)["n"].sum().reset_index()
    for name in plan.by:
        kind = COLUMNS[name].kind
        if kind == "category":
            counts[name] = pd.Categorical(counts[name], categories=list(CODE_LISTS[name]))
        elif kind == "bool":
            counts[name] = counts[name].astype("boolean")
        elif kind == "string":
            counts[name] = counts[name].astype("string")
    counts["status"] = counts["status"].astype("Int64")
    counts = counts.sort_values([*plan.by, "time_days", "status"], kind="stable").reset_index(drop=True)
    no_status = int(counts.loc[counts["status"].isna(), "n"].sum())
    no_time = int(counts.loc[counts["status"].notna() & counts["time_days"].isna(), "n"].sum())
    notes = [NOT_APPLIED]
    if no_status or no_time:
        notes.append(f"{no_status} kept episode(s) without a status (ho missing) and {no_time} with a status but "
                     "no time to it: kept, and counted as missing by the estimators that need them")
    return counts, ledger, notes
