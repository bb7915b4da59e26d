"""The Cohort: canonical episodes + assessments + ledger + provenance, and ``read_cohort`` to make one.

``read_cohort`` reads one or more exports (or a study folder), maps them to the canonical schema
(:mod:`hostats.ingest`), cleans them (:mod:`hostats.clean`, every change in the ledger) and derives the
time-to-event columns. ``Cohort.filter`` applies an analysis criterion as a further, named ledger step.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hostats import clean
from hostats.errors import DataError, SpecError
from hostats.ingest import (
    Mapping,
    describe_columns,
    is_database_url,
    load_mapping,
    map_columns,
    read_export_toml,
    read_source,
    release_freed_memory,
)
from hostats.ledger import Ledger
from hostats.sources import is_source_object, open_source, read_option_problem

Source = Any  # path, URL, DataFrame, folder, or a list of these


@dataclass
class Cohort:
    """A cleaned cohort.

    Attributes: ``episodes`` (canonical typed columns, derived ``followup_days``, ``status``,
    ``time_days``, ``ho_interval_lo_days``, ``ho_interval_hi_days``, plus ``source_file``/``source_row``),
    ``assessments`` (long format, or None), ``ledger`` (:class:`hostats.ledger.Ledger`), ``provenance``
    (sources with sha256 and rows read, the mappings used).
    """

    episodes: pd.DataFrame
    assessments: pd.DataFrame | None
    ledger: Ledger
    provenance: dict = field(default_factory=dict)
    assessment_ledger: Ledger | None = None

    def __repr__(self) -> str:
        extra = f", {len(self.assessments)} assessments" if self.assessments is not None else ""
        return (f"Cohort({len(self.episodes)} episodes kept of {self.ledger.rows_read} rows read, "
                f"{self.ledger.rows_excluded} excluded, {len(self.ledger.problems)} cell problems{extra})")

    def flow(self) -> pd.DataFrame:
        """Flow table: step, rows_in, rows_excluded, rows_out, rows_changed, reason (first row = read)."""
        return self.ledger.flow()

    @property
    def excluded(self) -> pd.DataFrame:
        """Excluded rows with source_file, source_row, step and reason."""
        return self.ledger.excluded

    @property
    def problems(self) -> pd.DataFrame:
        """Cell-level problems: source_file, source_row, column, value, problem, action."""
        return self.ledger.problems

    @property
    def usable(self) -> bool:
        """True when at least one episode is left."""
        return len(self.episodes) > 0

    def __len__(self) -> int:
        return len(self.episodes)

    def filter(self, name: str, keep: str | pd.Series | np.ndarray | Callable[[pd.DataFrame], Any]) -> Cohort:
        """A new Cohort with the episodes where ``keep`` is true, recorded as the ledger step ``name``.

        ``keep`` is a pandas query string (``"index_event == 'tha'"``), a boolean mask aligned with
        ``episodes``, or a callable taking the episodes and returning such a mask. Missing (NA) counts as
        false. The excluded rows get the reason ``name`` (and the query) in ``excluded``.
        """
        ep = self.episodes
        if callable(keep):
            keep = keep(ep)
        if isinstance(keep, str):
            try:
                mask = ep.eval(keep, engine="python")
            except Exception as exc:  # pandas raises many kinds for a bad expression
                raise DataError(f"criterion {name!r}: cannot evaluate {keep!r}: {type(exc).__name__}: {exc}. "
                                f"Columns: {list(ep.columns)}") from None
            reason = f"{name} ({keep})"
        else:
            mask, reason = keep, name
        if len(mask) != len(ep):
            raise DataError(f"criterion {name!r}: the mask has {len(mask)} values for {len(ep)} episodes")
        mask = pd.Series(mask, index=ep.index) if not isinstance(mask, pd.Series) else mask
        if not (pd.api.types.is_bool_dtype(mask) or mask.dropna().isin([True, False]).all()):
            raise DataError(f"criterion {name!r} must give true/false for each episode, not {mask.dtype} values")
        mask = mask.astype("boolean").fillna(False).to_numpy(dtype=bool)
        ledger = self.ledger.copy()
        ledger.record(name, len(ep), excluded=ep[~mask], reason=reason)
        kept = ep[mask]  # a copy; renumbered in place (reset_index would copy the frame a second time)
        kept.index = pd.RangeIndex(len(kept))
        return Cohort(kept, self.assessments, ledger, dict(self.provenance), self.assessment_ledger)

    def completeness(self) -> pd.DataFrame:
        """Per canonical column of the kept episodes: present (non-missing) count and percent."""
        from hostats.schema import EPISODE_COLUMNS

        ep = self.episodes
        rows = [(c.name, int(ep[c.name].notna().sum()) if c.name in ep else 0, c.name in ep)
                for c in EPISODE_COLUMNS]
        out = pd.DataFrame(rows, columns=["column", "present", "in_source"])
        out["percent_present"] = (100.0 * out["present"] / len(ep)).round(1) if len(ep) else 0.0
        return out

    def summary(self) -> dict:
        """JSON-ready summary: rows read/kept/excluded, flow, problem counts by column."""
        prob = self.problems
        return {"rows_read": self.ledger.rows_read, "rows_kept": len(self.episodes),
                "rows_excluded": self.ledger.rows_excluded, "flow": self.flow().to_dict(orient="records"),
                "problems_by_column": prob.groupby("column").size().to_dict() if len(prob) else {},
                "notes": list(self.ledger.notes)}


_ALLOW_OUTSIDE: ContextVar[bool] = ContextVar("hostats_allow_outside_paths", default=False)


@contextmanager
def allow_outside_paths(allow: bool = True):
    """Within this block, ``read_cohort`` calls that do not say ``allow_outside=`` follow study-folder paths
    that leave the folder (the command line's ``--allow-outside-paths`` for ``hostats run``)."""
    token = _ALLOW_OUTSIDE.set(bool(allow))
    try:
        yield
    finally:
        _ALLOW_OUTSIDE.reset(token)


def _expand(source: Source, mapping: Any, allow_outside: bool = False
            ) -> tuple[list[tuple[Any, Mapping, str | None]], Any]:
    """(source, mapping, site) triples and the study folder's assessments (if any)."""
    if isinstance(source, (list, tuple)):
        if not source:
            raise DataError("an empty list of sources")
        if isinstance(mapping, (list, tuple)):
            if len(mapping) != len(source):
                raise DataError(f"{len(source)} sources but {len(mapping)} mappings: give one mapping per "
                                "source, or one for all")
            maps = [load_mapping(m) for m in mapping]
        else:
            maps = [load_mapping(mapping)] * len(source)
        out, assess = [], None
        for s, m in zip(source, maps, strict=True):
            items, a = _expand(s, m, allow_outside)
            out += items
            assess = assess or a
        return out, assess
    if is_source_object(source):  # REDCap export, OMOP CDM (hostats.sources)
        return [(source, source.mapping, source.site)], source.assessments
    if isinstance(source, (str, Path)) and not is_database_url(source) and Path(source).is_dir():
        folder = read_export_toml(Path(source), allow_outside=allow_outside)
        items, assess = [], folder.assessments
        for e in folder.episodes:
            if e.get("kind") or e.get("dictionary"):
                src = open_source(e["path"], kind=e.get("kind"), dictionary=e.get("dictionary"),
                                  mapping=e.get("mapping"), site=e.get("site"))
                items.append((src, src.mapping, src.site))
                assess = assess or src.assessments
            else:
                items.append((e["path"], load_mapping(e.get("mapping")) if e.get("mapping")
                              else load_mapping(mapping), e.get("site")))
        return items, assess
    return [(source, load_mapping(mapping), None)], None


def read_cohort(source: Source, mapping: Any = None, assessments: Any = None, *, sheet: str | int | None = None,
                table: str | None = None, query: str | None = None,
                today: str | pd.Timestamp | None = None, allow_outside: bool | None = None,
                kind: str | None = None, dictionary: Any = None) -> Cohort:
    """Read, map and clean a cohort export into a :class:`Cohort`.

    ``source``: a file path (csv/tsv/txt, xlsx/xls, parquet, dta, sas7bdat, xpt, sav), a SQLAlchemy URL
    (with ``table=`` or ``query=``), a DataFrame, a study folder holding ``export.toml``, or a list of
    these (multi-site; ``mapping`` is then a list of the same length, or one for all). ``mapping``: a TOML
    path, a dict of the same shape, or None (canonical names and common synonyms only). ``assessments``:
    the long-format imaging/ALP table (path or DataFrame) used for the HO interval bounds. ``today``: the
    date after which dates count as in the future (default: the day of reading). ``allow_outside``: follow
    paths in a study folder's ``export.toml`` that leave the folder (``..``, absolute paths, symlinks);
    refused by default (default: False, or True inside :func:`allow_outside_paths`). A SQL ``query`` must
    be a single SELECT; database connections are read-only. ``kind="redcap"`` with ``dictionary=`` (the data
    dictionary; ``kind`` may then be left out) reads a REDCap export, ``kind="omop"`` builds the cohort from an
    OMOP CDM (see :mod:`hostats.sources`; a source object from there can also be passed as ``source``); these
    read what they need themselves, so ``sheet``, ``table`` and ``query`` are refused with them (a SpecError);
    so are a ``sheet`` of anything but an Excel workbook, a ``table`` or ``query`` of a file, and ``table`` with
    ``query`` (:func:`hostats.sources.read_option_problem`).

    Raises :class:`hostats.errors.DataError` when a source cannot be read, lacks a required column or has
    no data rows; problems in rows and cells go to the ledger instead.
    """
    today_ts = pd.Timestamp(today).normalize() if today is not None else pd.Timestamp.today().normalize()
    if allow_outside is None:
        allow_outside = _ALLOW_OUTSIDE.get()
    options = {"sheet": sheet, "table": table, "query": query}
    source_kind = kind or ("redcap" if dictionary is not None else getattr(source, "source_kind", None))
    problem = read_option_problem(source_kind, options, source)
    if problem is not None:   # refused, not ignored: a structured source reads what it needs itself
        raise SpecError(f"{problem[0]}={options[problem[0]]!r}: {problem[1]}")
    if kind is not None or dictionary is not None:
        source, mapping = open_source(source, kind=kind, dictionary=dictionary, mapping=mapping), None
    items, folder_assess = _expand(source, mapping, allow_outside)
    ledger = Ledger()
    parts, prov_sources = [], []
    for src, m, site in items:
        raw = read_source(src, m, sheet=sheet, table=table, query=query)
        mapped = map_columns(raw, m)
        del raw  # the mapped frame shares its columns; nothing else needs the frame as read
        clean.require_rows(mapped.frame, mapped.name)
        frame, mapped.frame = mapped.frame, None  # only `frame` holds the data: cleaning can free what it replaces
        if site is not None:
            if "site" not in frame.columns:
                frame.insert(2, "site", str(site))
            else:
                frame["site"] = frame["site"].where(frame["site"].notna() & (frame["site"].astype(str) != ""),
                                                    str(site))
        ledger.read(len(frame), f"rows read from {mapped.name}")
        for n in mapped.notes:
            ledger.note(f"{mapped.name}: {n}")
        # patient_id stays coded (Categorical) through the row rules: duplicates on millions of rows then
        # compare integer codes; it becomes the canonical 'string' below
        ctx = clean.Context(ledger, m, today_ts, keep_categorical=("patient_id",))
        parts.append(clean.clean_cells(frame, ctx))
        del frame
        prov_sources.append({"name": mapped.name, "sha256": mapped.sha256, "rows_read": mapped.rows_read,
                             "mapping": m.path, "site": site, "unrecognised_columns": mapped.unrecognised,
                             **({"encoding": mapped.encoding} if mapped.encoding else {})})
    several = len(parts) > 1
    episodes = pd.concat(parts, ignore_index=True) if several else parts[0]
    parts.clear()  # the cleaned parts are not needed beside the episodes (one part: the same frame)
    episodes["source_file"] = episodes["source_file"].astype("category")
    row_ctx = clean.Context(ledger, Mapping(), today_ts, keep_categorical=("patient_id",))
    if several:  # a column absent from one source turns object on concat: restore the dtypes
        episodes = clean.conform(episodes, row_ctx)
    episodes = clean.clean_rows(episodes, row_ctx)
    episodes["patient_id"] = clean.as_string(episodes["patient_id"])

    assess_df, assess_ledger = None, None
    assess_src = assessments if assessments is not None else folder_assess
    if assess_src is not None:
        amap = Mapping()
        if isinstance(assess_src, dict):  # from export.toml
            amap = load_mapping(assess_src.get("mapping"), assessments=True)
            assess_src = assess_src["path"]
        assess_df, assess_ledger, aprov = read_assessments(assess_src, amap, today_ts, ids_as_category=True)
        prov_sources.append(aprov)
    episodes = clean.interval_bounds(clean.derive_outcomes(episodes), assess_df)
    if assess_df is not None:  # the join above used the ids' integer codes; canonical dtype from here on
        assess_df["patient_id"] = clean.as_string(assess_df["patient_id"])
        orphan = ~assess_df["patient_id"].isin(episodes["patient_id"])
        if orphan.any():  # kept (they are data), but they inform no episode: say so rather than drop them
            assess_ledger.note(f"{int(orphan.sum())} assessment row(s) belong to no kept episode (patient_id not "
                               f"among the episodes, or its episodes excluded); they inform no HO interval")
    provenance = {"sources": prov_sources, "today": str(today_ts.date()),
                  "mappings": [m.to_dict() for _, m, _ in items]}
    cohort = Cohort(episodes, assess_df, ledger, provenance, assess_ledger)
    _check_invariant(cohort)
    release_freed_memory()  # the raw and intermediate frames are gone: give their pages back
    return cohort


def read_assessments(source: Any, mapping: Mapping | None = None, today: pd.Timestamp | None = None, *,
                     ids_as_category: bool = False) -> tuple[pd.DataFrame, Ledger, dict]:
    """Read and clean an assessments table (patient_id, date, test, result, value); own ledger.
    ``ids_as_category``: leave patient_id Categorical (see :func:`hostats.clean.clean_assessments`)."""
    from hostats.schema import ASSESSMENT_REQUIRED

    mapping = mapping or Mapping()
    today = today if today is not None else pd.Timestamp.today().normalize()
    raw = read_source(source, mapping)
    frame = raw.frame.copy(deep=False)  # only the column names change here
    frame.columns = [str(c).strip() for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    rename = {lower[k]: k for k in ("patient_id", "date", "test", "result", "value") if k in lower}
    rename.update({frame.columns[frame.columns.get_loc(src)]: canon for canon, src in mapping.columns.items()
                   if src in frame.columns})
    missing = [c for c in ASSESSMENT_REQUIRED if c not in rename.values()]
    if missing:
        raise DataError(f"assessments: required column(s) {missing} missing; "
                        f"{describe_columns([str(c) for c in frame.columns], raw.read_as)}",
                        file=raw.name, column=missing[0])
    frame = frame[list(rename)].rename(columns=rename)
    # result is needed by imaging rows only, value by alp rows only: a table of one kind may lack the other
    absent = [c for c in ("result", "value") if c not in frame.columns]
    for c in absent:
        frame[c] = pd.Series(pd.NA, index=frame.index, dtype="object")
    rows = raw.rows if raw.rows is not None else np.arange(2, len(frame) + 2, dtype=np.int64)
    frame.insert(0, "source_row", rows)
    frame.insert(0, "source_file", pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), [raw.name]))
    ledger = Ledger()
    ledger.read(len(frame), f"assessment rows read from {raw.name}")
    cleaned = clean.clean_assessments(frame, clean.Context(ledger, mapping, today), ids_as_category=ids_as_category)
    _check_absent_assessment_columns(cleaned, absent, raw.name, list(raw.frame.columns))
    return cleaned, ledger, {"name": raw.name, "sha256": raw.sha256, "rows_read": len(frame),
                             "kind": "assessments"}


def _check_absent_assessment_columns(cleaned: pd.DataFrame, absent: list[str], name: str, found) -> None:
    """An assessments table without ``result`` holding imaging rows (or without ``value`` holding alp rows)
    is a mapping problem, not a row-by-row one: one error naming the file and the column."""
    from hostats.schema import IMAGING_TESTS

    need = {"result": cleaned["test"].isin(IMAGING_TESTS), "value": cleaned["test"] == "alp"}
    for c in absent:
        rows = cleaned.loc[need[c].to_numpy(dtype=bool), "source_row"] if "source_row" in cleaned else []
        if len(rows):
            what = "imaging row(s) (xray, bone_scan, ct) need a positive/negative result" if c == "result" \
                else "alp row(s) need a value in U/L"
            raise DataError(f"assessments: no {c!r} column, but {len(rows)} {what} (first at row "
                            f"{int(rows.iloc[0])}); {describe_columns([str(x) for x in found if x != c])}. "
                            f"Name it in the mapping ([columns] {c} = \"...\")", file=name, column=c,
                            row=int(rows.iloc[0]))


def _check_invariant(cohort: Cohort) -> None:
    """rows read = rows kept + rows excluded: a failure here is a bug in hostats, not in the data."""
    read, kept, excl = cohort.ledger.rows_read, len(cohort.episodes), cohort.ledger.rows_excluded
    if read != kept + excl or len(cohort.excluded) != excl:
        raise AssertionError(f"ledger invariant broken: read {read} != kept {kept} + excluded {excl}")


def validate_schema(episodes: pd.DataFrame) -> None:
    """Check a cleaned episodes table against the pandera model (raises pandera's SchemaErrors)."""
    from hostats.schema import episode_schema

    episode_schema().validate(episodes, lazy=True)


__all__ = ["Cohort", "read_cohort", "read_assessments", "validate_schema", "allow_outside_paths"]

