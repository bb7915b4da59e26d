"""Structured sources that are more than one table: a REDCap project export and an OMOP CDM database.

Each is read into the same shape as any other export, so the cleaning, the ledger and the estimators are
the ones every cohort goes through:

* :class:`hostats.sources.redcap.RedcapExport`: a REDCap CSV export with its data dictionary. Choice codes
  are translated through the dictionary, checkbox fields become one category, event rows of a record
  become one episode, and the rows of the repeating imaging instrument become the assessments table.
* :class:`hostats.sources.omop.OmopCdm`: an OMOP CDM (DuckDB file, folder of CSV/parquet tables, or a
  PostgreSQL URL). One SQL file builds the HO cohort from the concept sets in ``concept_sets.toml``;
  every query runs read-only.

``read_cohort(path, dictionary=...)`` or ``read_cohort(source, kind="omop")`` open them; a source object can
also be passed to ``read_cohort`` as it is. The protocol ``read_cohort`` relies on: ``read_raw()`` returns a
:class:`hostats.ingest.RawSource`, ``mapping`` the :class:`hostats.ingest.Mapping` to clean it with,
``site`` a site name or None, and ``assessments`` another such source (or None); ``source_kind`` (its
``kind``, "redcap" or "omop") tells ``read_cohort`` to refuse a ``sheet``, ``table`` or ``query`` with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hostats.errors import SpecError

KINDS = ("redcap", "omop")
# what read_cohort reads of a file or a database besides the path: an Excel sheet, a SQL table or query. A
# structured source reads what it needs itself, so none of them applies to one: they are refused, not ignored
READ_OPTIONS = ("sheet", "table", "query")
_READS_ITSELF = {
    "redcap": "a REDCap export is the project's CSV export, read whole with its data dictionary",
    "omop": "an OMOP CDM (a DuckDB file, a folder of CDM tables or a postgresql:// URL) is read by hostats' own "
            "read-only cohort query over its standard tables, with the concept sets deciding the cohort "
            "(hostats/sources/omop_cohort.sql and concept_sets.toml)",
}


_APPLIES = "sheet is for an Excel workbook, table and query for a database URL"


def _what_is_read(source: Any) -> tuple[str, set[str]] | None:
    """What kind of file ``source`` is and which read options apply to it: a database URL (table, query), an
    Excel workbook (sheet), a CSV or statistics-package file (none); None when not known from the name (a
    study folder, a file without a suffix, a list of sources, a data frame)."""
    from hostats.ingest import EXCEL_SUFFIXES, STAT_SUFFIXES, TEXT_SUFFIXES, is_database_url

    if not isinstance(source, (str, Path)):
        return None
    if is_database_url(source):
        return "a database", {"table", "query"}
    suffix = Path(str(source)).suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return "an Excel workbook", {"sheet"}
    if suffix in TEXT_SUFFIXES:
        return f"a plain {suffix[1:].upper()} file, read whole,", set()
    if suffix in STAT_SUFFIXES:
        return f"a {suffix} file, read whole,", set()
    return None


def read_option_problem(kind: str | None, options: dict[str, Any], source: Any = None) -> tuple[str, str] | None:
    """The first of ``options`` (``{"sheet": ..., "table": ..., "query": ...}``, None for not given) that does
    not apply to what is read, with why, as (option, message); None when they all apply: the one check of
    the read options, for a spec's ``[data]``, ``read_cohort`` and the command line. None of them applies
    to a REDCap export or an OMOP CDM (``kind``); ``table`` and ``query`` are one or the other; and, where
    ``source``'s name says what it is, a sheet applies only to an Excel workbook and a table or query only
    to a database URL (a CSV file is read whole)."""
    given = [k for k in READ_OPTIONS if options.get(k) is not None]
    if not given:
        return None
    if kind in _READS_ITSELF:
        return given[0], f"{_READS_ITSELF[kind]}: a {given[0]} does not apply to it (remove {given[0]})"
    if "table" in given and "query" in given:
        return "query", "give one of table or query, not both (a query selects what is read, a table is read whole)"
    what = _what_is_read(source)
    if what is not None:
        for key in given:
            if key not in what[1]:
                return key, (f"{what[0]} ({Path(str(source)).name if '://' not in str(source) else 'URL'}): a "
                             f"{key} does not apply to it ({_APPLIES}; remove {key})")
    return None


def open_source(source: Any, *, kind: str | None = None, dictionary: Any = None, mapping: Any = None,
                site: str | None = None) -> Any:
    """A source object for ``read_cohort``: ``kind="redcap"`` (implied by ``dictionary=``) or ``"omop"``.

    ``source``: the REDCap CSV export, or the OMOP CDM (a ``.duckdb`` file, a ``duckdb:///`` or
    ``postgresql://`` URL, or a folder of CDM tables as CSV/parquet). ``mapping``: for REDCap, the mapping
    file (TOML, with an optional ``[redcap]`` section); for OMOP, not used (the concept sets decide).
    """
    if kind is None:
        kind = "redcap" if dictionary is not None else None
    if kind not in KINDS:
        raise SpecError(f"source kind {kind!r} is not one of {list(KINDS)}")
    if not isinstance(source, (str, Path)):
        raise SpecError(f"a {kind} source is a path or URL, not a {type(source).__name__}; several sites go into a "
                        "study folder's export.toml, one [[episodes]] table each (kind = ...)")
    if kind == "redcap":
        if dictionary is None:
            raise SpecError(f"a REDCap export needs its data dictionary (dictionary=...): {source}")
        from hostats.sources.redcap import RedcapExport

        return RedcapExport(source, dictionary, mapping, site=site)
    if dictionary is not None:
        raise SpecError("dictionary= is for REDCap exports, not for an OMOP CDM")
    if mapping is not None:
        raise SpecError("an OMOP CDM is read through its concept sets; a mapping file does not apply")
    from hostats.sources.omop import OmopCdm

    return OmopCdm(str(source) if isinstance(source, Path) else source, site=site)


def is_source_object(source: Any) -> bool:
    """Whether ``source`` follows the protocol above (a REDCap export, an OMOP CDM)."""
    return callable(getattr(source, "read_raw", None)) and hasattr(source, "mapping")


__all__ = ["open_source", "is_source_object", "read_option_problem", "KINDS", "READ_OPTIONS"]
