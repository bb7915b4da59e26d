"""Ingest: read an export in any common format and map its columns and values to the canonical schema.

Readers: CSV/TSV/TXT (delimiter sniffed; UTF-8, UTF-8 with BOM, Latin-1), Excel (sheet selectable),
Parquet, Stata .dta, SAS .sas7bdat/.xpt, SPSS .sav (pyreadstat; SAS falls back to pandas' own reader),
a SQL table or query through a SQLAlchemy URL (SQLite needs no extra install), a pandas DataFrame, or a
study folder holding ``export.toml``.

The mapping file (TOML, see README "The mapping file") renames source columns, maps values, declares date
formats and units. Without a mapping, canonical names and a fixed list of common synonyms (``gender`` ->
``sex``, ``dob`` -> date of birth, ...) are recognised after normalising case, spaces and punctuation;
anything else is reported as unrecognised and left out, never guessed.

Row numbers (``source_row``) are those a spreadsheet shows: the header is row 1, the first data row is 2.
Every record counts as a row read: a blank line is a row too (excluded later as an empty row), so the
numbers stay those of the file (for CSV without line breaks inside quoted fields). Sources without a header line (DataFrame, SQL, Parquet, Stata, SAS,
SPSS) are numbered the same way, as if written to CSV: their first row is 2.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import DataError, SpecError
from hostats.schema import CODE_LISTS, COLUMNS, DERIVED_COLUMNS, EPISODE_COLUMNS, REQUIRED

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ".tab", ".dat"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
STAT_SUFFIXES = {".parquet", ".pq", ".dta", ".sas7bdat", ".xpt", ".sav", ".zsav"}   # binary files, read whole
DATE_FORMATS = {"auto", "iso", "dayfirst", "monthfirst", "excel"}
UNITS = {"rt_dose_gy": {"gy": 1.0, "cgy": 0.01, "mgy": 0.001}}
SOURCE_COLUMNS = ("source_file", "source_row")
AUX_COLUMNS = ("date_of_birth",)  # recognised, used for a derivation (age), then dropped

# normalised source name -> canonical name. Only names that cannot mean anything else.
_SYNONYM_LISTS: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient", "patientid", "pat_id", "patid", "patient_no", "patient_number", "subject_id",
                   "subject", "subjid", "record_id", "pseudonym", "pid"),
    "site": ("centre", "center", "centre_id", "center_id", "hospital", "site_id", "study_site", "clinic"),
    "index_event": ("index_procedure", "procedure", "event_type", "index_event_type", "injury_type"),
    "index_date": ("surgery_date", "date_of_surgery", "operation_date", "op_date", "injury_date",
                   "date_of_injury", "index_dt", "date_index", "resection_date"),
    "age_years": ("age", "age_at_index", "age_at_surgery", "age_yrs", "age_y", "age_year"),
    "sex": ("gender", "sex_at_birth"),
    "prior_ho": ("previous_ho", "history_of_ho", "ho_history", "prior_heterotopic_ossification"),
    "gram_negative_infection": ("gram_negative", "gn_infection", "gram_neg_infection"),
    "early_intensive_therapy": ("early_therapy", "intensive_therapy", "early_intensive_physio"),
    "prophylaxis": ("ho_prophylaxis", "prophylaxis_type"),
    "rt_dose_gy": ("rt_dose", "radiotherapy_dose", "rt_dose_in_gy", "dose_gy"),
    "rt_hours_from_index": ("rt_hours", "rt_timing_hours", "rt_hours_from_surgery"),
    "nsaid_agent": ("nsaid", "nsaid_drug"),
    "adjuvant": ("adjuvant_therapy", "adjuvant_treatment"),
    "ho": ("heterotopic_ossification", "ho_present", "ho_detected", "ho_yn", "outcome_ho"),
    "ho_date": ("ho_detection_date", "date_ho", "ho_dx_date", "date_of_ho", "ho_diagnosis_date"),
    "ho_site": ("ho_location",),
    "brooker_grade": ("brooker", "brooker_class", "brooker_classification"),
    "symptomatic": ("symptomatic_ho",),
    "detection_modality": ("imaging_modality", "ho_modality"),
    "wound_complication": ("wound_complications",),
    "tbsa_burned_percent": ("tbsa", "tbsa_percent", "tbsa_burned", "burn_tbsa", "tbsa_pct"),
    "gcs_score": ("gcs", "glasgow_coma_scale", "gcs_admission"),
    "death_date": ("date_of_death", "dod", "died_date", "deathdate"),
    "last_followup_date": ("last_follow_up", "last_followup", "last_contact", "last_contact_date",
                           "date_last_followup", "last_follow_up_date", "lfu_date"),
    "date_of_birth": ("dob", "birth_date", "birthdate", "date_birth"),
}
SYNONYMS: dict[str, str] = {s: canon for canon, names in _SYNONYM_LISTS.items() for s in names}
CANONICAL_INPUT = tuple(c.name for c in EPISODE_COLUMNS) + AUX_COLUMNS


_NAMED_COLUMNS = 100  # a message names at most this many columns (a 5,000-column export is one line, not 40 kB)


def release_freed_memory() -> None:
    """Give the heap memory freed so far back to the operating system: pyarrow's pool, then glibc's
    ``malloc_trim`` (Linux only; a no-op elsewhere). Reading a million-row export frees most of what it
    allocated, but glibc keeps those pages mapped (0.5 GB after the 1M prophylaxis study's read), and every
    later step's peak RSS sits on top of them. Results are unaffected."""
    try:
        import pyarrow as pa
        pa.default_memory_pool().release_unused()
    except ImportError:  # pragma: no cover - pyarrow is a dependency, but this must never fail a read
        pass
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass


def describe_columns(found: list[str], read_as: str = "text") -> str:
    """The columns found, for an error message, without quoting a file's content: a header read as one
    column (a key file, a password line, a text that is not a table) is described, not shown. ``read_as``
    (RawSource.read_as): only a delimited text's one column can be a wrong delimiter; a query's columns are
    what it selected."""
    if len(found) < 2 and read_as == "text":
        text = found[0] if found else ""
        for d in ",;\t|":
            parts = [normalise_name(x) for x in text.split(d)]
            if len(parts) > 1 and sum(x in CANONICAL_INPUT or x in SYNONYMS for x in parts) * 2 >= len(parts):
                return (f"the header was read as a single column {text[:200]!r}: the delimiter looks wrong "
                        f"(it seems to be {d!r}; set [source] delimiter in the mapping)")
        return (f"the header was read as a single column ({len(text)} characters, not shown): this does not "
                "look like a table of column names, or the delimiter is wrong ([source] delimiter)")
    shown = [c if len(c) <= 60 else c[:57] + "..." for c in found[:_NAMED_COLUMNS]]
    more = f" and {len(found) - _NAMED_COLUMNS} more" if len(found) > _NAMED_COLUMNS else ""
    if read_as == "query":
        return f"the query returned {len(found)} column{'' if len(found) == 1 else 's'} ({shown}{more})"
    return f"columns found: {shown}{more}"


def normalise_name(name: Any) -> str:
    """Lower case, non-alphanumerics to single underscores (``"Patient ID"`` -> ``"patient_id"``)."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


# --- the mapping file ------------------------------------------------------------------------------

@dataclass
class Mapping:
    """A parsed mapping file (TOML); see the module docstring and README for the format."""

    columns: dict[str, str] = field(default_factory=dict)          # canonical -> source column
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # canonical -> {source value: code}
    date_format: str = "auto"
    date_columns: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    true_tokens: tuple[str, ...] = ()
    false_tokens: tuple[str, ...] = ()
    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | int | None = None
    missing: tuple[str, ...] = ()
    path: str | None = None

    def date_format_of(self, column: str) -> str:
        return self.date_columns.get(column, self.date_format)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in ({}, (), None)}


def _check_date_format(fmt: Any, where: str) -> str:
    if not isinstance(fmt, str) or (fmt not in DATE_FORMATS and "%" not in fmt):
        raise SpecError(f"{where}: date format {fmt!r} is not one of {sorted(DATE_FORMATS)} "
                        "or a strftime format such as '%d.%m.%Y'")
    return fmt


ASSESSMENT_INPUT = ("patient_id", "date", "test", "result", "value")

# the mapping file's shape, checked in one place: section -> allowed keys (None: any key) and value kind
_MAPPING_SHAPE: dict[str, tuple[set[str] | None, str]] = {
    "source": ({"delimiter", "encoding", "sheet", "missing"}, "mixed"),
    "columns": (None, "name"),
    "values": (None, "table of values"),
    "dates": ({"format", "columns"}, "mixed"),
    "units": (None, "text"),
    "booleans": ({"true", "false"}, "list of text"),
}


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _check_value(section: str, kind: str, k: str, v: Any, where: str) -> None:
    """One key of a mapping section: its value has the kind the section takes ([columns] names, [values]
    tables of codes, [units] text, [booleans] lists of text), or a SpecError naming the file and key."""
    key = f"[{section}] {k}"
    if kind == "text" and not isinstance(v, str):
        raise SpecError(f"{where}: {key} must be text, not {_kind(v)} ({v!r:.40})")
    if kind == "name" and (isinstance(v, bool) or not isinstance(v, (str, int))):
        raise SpecError(f"{where}: {key} must be a source column name (text), not {_kind(v)} ({v!r:.40})")
    if kind == "table of values":
        if not isinstance(v, dict):
            raise SpecError(f"{where}: [{section}.{k}] must be a table (source value = code), not "
                            f"{_kind(v)} ({v!r:.40})")
        for vk, vv in v.items():
            if k in CODE_LISTS and not isinstance(vv, str):
                raise SpecError(f"{where}: [{section}.{k}] {vk} must be text (a code, or \"\" for "
                                f"missing), not {_kind(vv)} ({vv!r:.40})")
            if not isinstance(vv, (str, bool, int, float)):
                raise SpecError(f"{where}: [{section}.{k}] {vk} must be a value, not {_kind(vv)}")
    if kind == "list of text":
        items = v if isinstance(v, list) else [v]
        if not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in items):
            raise SpecError(f"{where}: {key} must be a list of text, not {v!r:.60}")


def _check_source(src: dict, where: str) -> None:
    """The [source] values: one-character delimiter, a known encoding, a sheet name or number, missing tokens."""
    import codecs

    if "delimiter" in src:
        d = src["delimiter"]
        if not isinstance(d, str) or len(d) != 1 or d in "\"\r\n":
            raise SpecError(f"{where}: [source] delimiter must be one character such as \",\", \";\", \"|\" "
                            f"or \"\\t\" (tab), not {d!r:.40}")
    if "encoding" in src:
        e = src["encoding"]
        try:
            if not isinstance(e, str):
                raise LookupError
            codecs.lookup(e)
        except LookupError:
            raise SpecError(f"{where}: [source] encoding {e!r:.40} is not a known encoding; e.g. \"utf-8\", "
                            "\"cp1252\", \"latin-1\", \"utf-16\"") from None
    if "sheet" in src and (isinstance(src["sheet"], bool) or not isinstance(src["sheet"], (str, int))):
        raise SpecError(f"{where}: [source] sheet must be a sheet name (text) or number, not {src['sheet']!r:.40}")
    if "missing" in src:
        m = src["missing"]
        items = m if isinstance(m, list) else [m]
        if not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in items):
            raise SpecError(f"{where}: [source] missing must be a list of text, not {m!r:.60}")


def _check_mapping_types(raw: dict, where: str) -> None:
    """Every section, key and value of a mapping has the type and an allowed value, or a SpecError naming
    the file, the section and the key (never a traceback further down)."""
    unknown = set(raw) - set(_MAPPING_SHAPE)
    if unknown:
        raise SpecError(f"{where}: unknown section(s) {sorted(unknown)}; expected {sorted(_MAPPING_SHAPE)}")
    for section, (keys, kind) in _MAPPING_SHAPE.items():
        body = raw.get(section)
        if body is None:
            continue
        if not isinstance(body, dict):
            raise SpecError(f"{where}: [{section}] must be a table (key = value lines), not {_kind(body)} "
                            f"({body!r:.40})")
        if keys is not None and set(body) - keys:
            raise SpecError(f"{where}: [{section}] unknown key(s) {sorted(set(body) - keys)}; allowed: "
                            f"{sorted(keys)}")
        for k, v in body.items():
            _check_value(section, kind, k, v, where)
    _check_source(raw.get("source", {}), where)
    dates = raw.get("dates", {})
    if "columns" in dates and not isinstance(dates["columns"], dict):
        raise SpecError(f"{where}: [dates.columns] must be a table (column = format), not {_kind(dates['columns'])}")


def load_mapping(mapping: Mapping | dict | str | Path | None, *, assessments: bool = False) -> Mapping:
    """Parse a mapping: a TOML path, an already-parsed dict, a Mapping, or None (no mapping).
    ``assessments=True`` checks [columns] against the assessments table's names instead."""
    if mapping is None:
        return Mapping()
    if isinstance(mapping, Mapping):
        return mapping
    where = "mapping"
    if isinstance(mapping, (str, Path)):
        path = Path(mapping)
        where = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("mapping file not found", file=str(path)) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path}: not a valid TOML mapping file: {exc}") from None
    elif isinstance(mapping, dict):
        raw = mapping
    else:
        raise SpecError(f"mapping must be a TOML path, a dict or None, not {type(mapping).__name__}")
    _check_mapping_types(raw, where)
    src = raw.get("source", {})
    cols = {str(k): str(v) for k, v in raw.get("columns", {}).items()}
    allowed = ASSESSMENT_INPUT if assessments else CANONICAL_INPUT
    bad = [k for k in cols if k not in allowed]
    if bad:
        raise SpecError(f"{where}: [columns] names {bad} are not canonical columns; canonical names are "
                        f"{list(allowed)}")
    twice = sorted({v for v in cols.values() if list(cols.values()).count(v) > 1})
    if twice:
        raise SpecError(f"{where}: [columns] maps source column(s) {twice} to more than one canonical column")
    values = {}
    for col, table in raw.get("values", {}).items():
        if col not in COLUMNS and col not in ASSESSMENT_INPUT:
            raise SpecError(f"{where}: [values.{col}] must be a table for a canonical column")
        codes = CODE_LISTS.get(col) if not assessments else None
        wrong = {k: v for k, v in table.items() if codes is not None and v != "" and v not in codes}
        if wrong:  # a typo here would otherwise silently turn every such cell missing
            raise SpecError(f"{where}: [values.{col}] maps {wrong} to value(s) that are not {col} codes; "
                            f"codes are {list(codes)} (or \"\" for missing)")
        values[col] = {str(k).strip().casefold(): v for k, v in table.items()}
    dates = raw.get("dates", {})
    date_format = _check_date_format(dates.get("format", "auto"), f"{where} [dates] format")
    date_columns = {c: _check_date_format(f, f"{where} [dates.columns] {c}")
                    for c, f in dates.get("columns", {}).items()}
    units = dict(raw.get("units", {}))
    for c, u in units.items():
        if c not in UNITS or u.casefold() not in UNITS[c]:
            allowed = {k: sorted(v) for k, v in UNITS.items()}
            raise SpecError(f"{where}: [units] {c} = {u!r} is not supported; supported: {allowed}")
    booleans = {k: (v if isinstance(v, list) else [v]) for k, v in raw.get("booleans", {}).items()}
    missing = src.get("missing", [])
    if isinstance(missing, (str, int, float)):
        missing = [missing]
    return Mapping(columns=cols, values=values, date_format=date_format, date_columns=date_columns,
                   units=units, true_tokens=tuple(str(t) for t in booleans.get("true", [])),
                   false_tokens=tuple(str(t) for t in booleans.get("false", [])),
                   delimiter=src.get("delimiter"), encoding=src.get("encoding"), sheet=src.get("sheet"),
                   missing=tuple(str(m) for m in missing),
                   path=str(mapping) if isinstance(mapping, (str, Path)) else None)


# --- readers -----------------------------------------------------------------------------------------

@dataclass
class RawSource:
    """One source as read: all columns as they are in the file, plus where it came from."""

    frame: pd.DataFrame
    name: str
    sha256: str | None
    first_row: int = 2      # source row number of the first data row
    rows: np.ndarray | None = None  # explicit source row numbers (a cohort read back), else consecutive
    notes: list[str] = field(default_factory=list)  # what reading noticed (encoding, formulas, ...)
    encoding: str | None = None     # the text encoding used (text files)
    read_as: str = "table"          # what named the columns: "text" (a header line), "query", "table" (others)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _sha256_frame(frame: pd.DataFrame) -> str:
    h = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    try:
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    except TypeError:  # unhashable cells (lists...): hash their text
        h.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()


_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _decode_head(path: Path, encoding: str | None) -> tuple[str, str | None]:
    """The first 64 KiB as text (for sniffing) and the encoding: the mapping's, a BOM's (UTF-8, UTF-16,
    UTF-32), "utf-8" when the head is UTF-8, else None (decided on the whole file, :func:`_decode_bytes`)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if encoding:
        return head.decode(encoding, errors="replace"), encoding
    for bom, name in _BOMS:
        if head.startswith(bom):
            return head.decode(name, errors="replace").lstrip("\ufeff"), name
    try:
        return head.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a multi-byte character cut by the 64 KiB window
            return head[: exc.start].decode("utf-8"), "utf-8"
        return head.decode("cp1252", errors="replace"), None


def _decode_bytes(data: bytes) -> tuple[str, str, list[str]]:
    """Text of a file that is not valid UTF-8 as a whole: (text, encoding, notes).

    A file with valid multi-byte UTF-8 lines is UTF-8: its few other lines (typed in by another program)
    are decoded as cp1252 (Latin-1 for the five bytes cp1252 leaves undefined) and named by row number.
    Otherwise the file is cp1252 if it decodes as such (Windows exports: en dash, curly quotes), else
    Latin-1. What was chosen is always said."""
    lines = data.splitlines(keepends=True)
    bad, utf8_evidence = [], False
    out = []
    for i, line in enumerate(lines):
        try:
            text = line.decode("utf-8")
            utf8_evidence = utf8_evidence or not line.isascii()
        except UnicodeDecodeError:
            bad.append(i)
            try:
                text = line.decode("cp1252")
            except UnicodeDecodeError:
                text = line.decode("latin-1")
        out.append(text)
    if utf8_evidence:
        rows = [i + 1 for i in bad]
        shown = ", ".join(map(str, rows[:20])) + (f" and {len(rows) - 20} more" if len(rows) > 20 else "")
        return "".join(out), "utf-8", [
            f"the file is UTF-8 but {len(rows)} line(s) are not (row(s) {shown}); those lines were decoded as "
            "Windows-1252: check their text, or fix the encoding at the source"]
    try:
        return data.decode("cp1252"), "cp1252", [
            "the file is not UTF-8; it was decoded as Windows-1252 (cp1252). If text looks wrong, set "
            "[source] encoding in the mapping"]
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1", [
            "the file is not UTF-8 or Windows-1252; it was decoded as Latin-1. If text looks wrong, set "
            "[source] encoding in the mapping"]


def sniff_delimiter(text: str) -> str:
    """The delimiter of a delimited text: csv.Sniffer among , ; tab |, else the most frequent in line 1."""
    lines = [ln for ln in text.splitlines() if ln.strip()][:50]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in ",;\t|"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def _read_csv_strict(path: Path, encoding: str, kwargs: dict, text: str | None = None) -> pd.DataFrame:
    """pd.read_csv (of ``text`` when given, else of the file), but a line with more fields than the header
    is an error naming the line (pandas would silently drop the extra fields)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            if text is not None:
                return pd.read_csv(io.StringIO(text, newline=""), **kwargs)
            return pd.read_csv(path, encoding=encoding, **kwargs)
        except pd.errors.ParserWarning:
            pass
    with (io.StringIO(text, newline="") if text is not None
          else path.open(encoding=encoding, newline="")) as fh:  # error path only: find the line
        reader = csv.reader(fh, delimiter=kwargs["sep"])
        width = len(next(reader))
        for fields in reader:
            if len(fields) > width:
                raise DataError(f"line has {len(fields)} fields but the header has {width}: check the "
                                "delimiter and quoting", file=str(path), row=reader.line_num) from None
    raise DataError("lines with more fields than the header", file=str(path))


def _read_csv_arrow(path: Path, delimiter: str, width: int) -> pd.DataFrame | None:
    """Fast path for a regular UTF-8 file: pyarrow's multithreaded reader, every column a Categorical of the
    text exactly as written (no missing-value tokens). None whenever the file is not regular (a blank line, a
    line with more or fewer fields than the header, bytes that are not UTF-8, an unusual quote): the pandas
    reader then reads it and reports what is wrong, as it always did."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pv
    except ImportError:  # pragma: no cover - pyarrow is a core dependency
        return None
    names = [f"c{i}" for i in range(width)]
    try:
        table = pv.read_csv(
            path,
            read_options=pv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pv.ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True,
                                          escape_char=False, newlines_in_values=True,
                                          ignore_empty_lines=False),
            convert_options=pv.ConvertOptions(column_types={c: pa.string() for c in names},
                                              strings_can_be_null=False, quoted_strings_can_be_null=False,
                                              null_values=[], check_utf8=True))
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.num_rows == 0:
        return None
    # Each column is dictionary-encoded once, over the whole column, and handed over as a Categorical
    # (categories in order of first appearance). Reading the columns as dictionaries instead gives one
    # dictionary per block of the file, and unifying those in to_pandas took most of the read (2M rows: ~4 s).
    # The columns are taken off the table one by one, so that the text of each is freed once encoded.
    columns = {}
    pool = pa.default_memory_pool()
    for name in names:
        col = table.column(0)
        table = table.remove_column(0)
        try:
            whole = col.combine_chunks()
        except pa.ArrowInvalid:  # more than 2 GiB of text in the column: 64-bit offsets
            whole = col.cast(pa.large_string()).combine_chunks()
        del col
        enc = whole.dictionary_encode()
        del whole
        pool.release_unused()  # the encoder's hash table: give it back before the text becomes Python objects
        columns[name] = pd.Categorical.from_codes(enc.indices.to_numpy(zero_copy_only=False),
                                                  enc.dictionary.to_numpy(zero_copy_only=False), validate=False)
        del enc
    del table
    pool.release_unused()
    return pd.DataFrame(columns, copy=False)


def _read_text(path: Path, mapping: Mapping) -> RawSource:
    if path.stat().st_size == 0:
        raise DataError("the file is empty", file=str(path))
    head, encoding = _decode_head(path, mapping.encoding)
    if not head.strip():
        raise DataError("the file holds only blank lines", file=str(path))
    if "\x00" in head:  # text exports never hold NUL bytes; binary formats (xlsx, sav, dta, ...) do
        raise DataError("the file is binary, not delimited text: is it a spreadsheet or a statistics-package "
                        "file saved under a text name? Give it its real extension (.xlsx, .sav, .dta, "
                        ".sas7bdat, .parquet)", file=str(path))
    delimiter = mapping.delimiter or ("\t" if path.suffix.lower() in {".tsv", ".tab"} else sniff_delimiter(head))
    try:
        # newline=None: classic Mac exports end lines with a bare CR, which pandas and pyarrow also accept
        header = next(csv.reader(io.StringIO(head.lstrip("\ufeff"), newline=None), delimiter=delimiter), [])
    except csv.Error as exc:
        raise DataError(f"cannot read the header line as {delimiter!r}-delimited text ({exc}); check that "
                        "this is a text export", file=str(path), row=1) from None
    # read as Categorical: the parser factorises each column once (less memory, and every cleaning rule
    # then works on the distinct values); missing-value tokens are handled by the cleaning, not pandas
    kwargs = dict(sep=delimiter, dtype="category", keep_default_na=False, na_filter=False, header=0,
                  skip_blank_lines=False, index_col=False)
    frame, text, notes = None, None, []
    if encoding in ("utf-8", "utf-8-sig") and len(header) >= 2 and len(delimiter) == 1:
        frame = _read_csv_arrow(path, delimiter, len(header))
    try:
        if frame is None and encoding in ("utf-16", "utf-32"):
            text = path.read_bytes().decode(encoding, errors="strict").lstrip("\ufeff")
        elif frame is None and encoding is None:
            text, encoding, notes = _decode_bytes(path.read_bytes())
        try:
            if frame is None:
                frame = _read_csv_strict(path, encoding, kwargs, text)
        except UnicodeDecodeError:
            if mapping.encoding:
                raise DataError(f"the file is not encoded as {mapping.encoding} (set [source] encoding "
                                "in the mapping)", file=str(path), row=_line_of(path, mapping.encoding)) from None
            text, encoding, notes = _decode_bytes(path.read_bytes())
            frame = _read_csv_strict(path, encoding, kwargs, text)
    except UnicodeDecodeError as exc:  # a BOM that lies
        raise DataError(f"the file starts with a {encoding} byte-order mark but is not {encoding} text "
                        f"({exc.reason}); set [source] encoding in the mapping", file=str(path)) from None
    except pd.errors.ParserError as exc:
        msg = str(exc).replace("Error tokenizing data. C error: ", "")
        line = re.search(r"line (\d+)", msg)
        raise DataError(f"cannot parse the file as {delimiter!r}-delimited text: {msg}. Check the delimiter "
                        "([source] delimiter in the mapping) and quoting", file=str(path),
                        row=int(line.group(1)) if line else None) from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=range(len(header)))
    if len(header) == frame.shape[1]:  # pandas renames duplicated names ('sex.1'): keep the file's own
        frame.columns = [h.strip() for h in header]
    else:
        frame.columns = [str(c).strip() for c in frame.columns]
    # every record counts as a row read (a blank line too: it is excluded later as an empty row)
    return RawSource(frame, str(path), _sha256_file(path), notes=notes, encoding=encoding, read_as="text")


def _line_of(path: Path, encoding: str) -> int | None:
    """The first line (row number) that does not decode as ``encoding`` (error path only)."""
    try:
        for i, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return i
    except (OSError, LookupError):
        pass
    return None


def _read_excel(path: Path, sheet: str | int | None) -> RawSource:
    try:
        book = pd.ExcelFile(path)
    except Exception as exc:  # openpyxl/xlrd raise many kinds for a broken or mislabelled file
        raise DataError(_not_a_workbook(path, exc), file=str(path)) from None
    notes = []
    with book:
        names = book.sheet_names
        if sheet is None:
            sheet = names[0]
            if len(names) > 1:  # say which one was read: a wrong first sheet would be read silently
                notes.append(f"the workbook has {len(names)} sheets {names}; read the first, {sheet!r} "
                             "(choose another with --sheet or [source] sheet in the mapping)")
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise DataError(f"sheet number {sheet} does not exist; sheets: {names}", file=str(path))
            sheet = names[sheet]
        elif sheet not in names:
            raise DataError(f"sheet {sheet!r} does not exist; sheets: {names}", file=str(path))
        try:
            raw = book.parse(sheet, header=None, dtype=object, keep_default_na=False, na_values=[])
        except Exception as exc:  # noqa: BLE001 - a truncated or corrupt worksheet: many kinds
            raise DataError(f"cannot read sheet {sheet!r}: the worksheet is damaged or truncated "
                            f"({type(exc).__name__}: {str(exc)[:200]}); save the workbook again from Excel",
                            file=str(path)) from None
    if raw.empty:
        raise DataError(f"sheet {sheet!r} is empty", file=str(path))
    header = [str(h).strip() if pd.notna(h) else f"unnamed_{i + 1}" for i, h in enumerate(raw.iloc[0])]
    frame = raw.iloc[1:].reset_index(drop=True)
    frame.columns = header
    notes += _uncalculated_formulas(path, sheet, raw, header)
    return RawSource(frame, f"{path}[{sheet}]", _sha256_file(path), notes=notes)


def _looks_like_text(path: Path) -> bool:
    """Whether a file that should be binary (a workbook, a Stata/SPSS/parquet file) is plain text instead:
    its head decodes as the text reader would decode it (BOM or UTF-8) and holds no NUL byte."""
    text, encoding = _decode_head(path, None)
    return encoding is not None and bool(text.strip()) and "\x00" not in text


def _not_a_workbook(path: Path, exc: Exception) -> str:
    """Why an .xlsx/.xls cannot be opened, in the user's terms rather than the reader library's."""
    with open(path, "rb") as f:
        zipped = f.read(2) == b"PK"
    if zipped:
        try:
            with zipfile.ZipFile(path) as z:
                if "xl/workbook.xml" not in z.namelist():
                    return ("the file is a zip archive but not an Excel workbook (no xl/workbook.xml inside); "
                            "give it its real extension")
        except zipfile.BadZipFile:
            return "the workbook is damaged or truncated (not a complete zip archive); save it again from Excel"
    elif _looks_like_text(path):
        return ("the file is text, not an Excel workbook: is it a CSV saved under an Excel name? Give it its "
                "real extension (.csv)")
    return f"cannot open as an Excel workbook: {type(exc).__name__}: {str(exc)[:200]}"


def _has_formulas(path: Path) -> bool:
    """Whether any worksheet of an .xlsx/.xlsm holds a formula (``<f>`` element); streamed, cheap."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                    continue
                with z.open(name) as fh:
                    tail = b""
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        chunk = tail + block
                        if b"<f>" in chunk or b"<f " in chunk or b":f>" in chunk or b":f " in chunk:
                            return True
                        tail = chunk[-8:]
    except (zipfile.BadZipFile, OSError, KeyError):
        return False
    return False


def _uncalculated_formulas(path: Path, sheet: str, raw: pd.DataFrame, header: list[str]) -> list[str]:
    """Notes for formula cells saved without a calculated value (a workbook written by a script and never
    opened in Excel): they are read as empty, so say where. Only .xlsx/.xlsm with formulas are re-read."""
    if path.suffix.lower() not in {".xlsx", ".xlsm"} or not _has_formulas(path):
        return []
    try:
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True, data_only=False)
        try:
            ws = book[sheet]
            hits: dict[str, list[int]] = {}
            for r, row in enumerate(ws.iter_rows(values_only=True)):
                for c, v in enumerate(row):
                    if isinstance(v, str) and v.startswith("=") and r < len(raw) and c < raw.shape[1]:
                        cached = raw.iat[r, c]
                        if cached is None or (isinstance(cached, float) and np.isnan(cached)) or cached == "":
                            col = header[c] if r > 0 else f"header cell {c + 1}"
                            hits.setdefault(col, []).append(r + 1)
        finally:
            book.close()
    except Exception:  # noqa: BLE001 - the note is extra; the sheet itself was read
        return []
    notes = []
    for col, rows in hits.items():
        shown = ", ".join(map(str, rows[:10])) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        notes.append(f"sheet {sheet!r}, column {col!r}: {len(rows)} formula cell(s) have no calculated value "
                     f"(row(s) {shown}) and are read as empty; open and save the workbook in Excel or "
                     "LibreOffice to calculate them")
    return notes


def _read_stat(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        import pyreadstat
    except ImportError:
        pyreadstat = None
    if pyreadstat is not None:
        reader = {".sas7bdat": pyreadstat.read_sas7bdat, ".xpt": pyreadstat.read_xport,
                  ".sav": pyreadstat.read_sav, ".zsav": pyreadstat.read_sav}[suffix]
        kwargs = {"apply_value_formats": True} if suffix in {".sav", ".zsav"} else {}
        frame, _meta = reader(str(path), **kwargs)
        return frame
    if suffix in {".sas7bdat", ".xpt"}:  # pandas reads SAS itself, without value labels
        return pd.read_sas(path, format="xport" if suffix == ".xpt" else "sas7bdat", encoding="latin-1")
    raise DataError("reading SPSS .sav files needs pyreadstat: pip install 'hostats[spss]'", file=str(path))


def _read_dta(path: Path) -> pd.DataFrame:
    """Stata .dta: pandas' reader, else pyreadstat's (it reads variants pandas refuses, e.g. the format 110
    files that R's foreign::write.dta writes). An error names both readers' complaints."""
    try:
        return pd.read_stata(path, convert_categoricals=True)
    except Exception as first:  # noqa: BLE001 - each reader raises its own kinds
        try:
            import pyreadstat
        except ImportError:
            raise DataError(f"cannot read the .dta file: {type(first).__name__}: {first}; pyreadstat "
                            "(pip install 'hostats[sas]') reads more Stata variants", file=str(path)) from None
        try:
            frame, _meta = pyreadstat.read_dta(str(path), apply_value_formats=True)
        except Exception as second:  # noqa: BLE001
            raise DataError(f"cannot read the .dta file: pandas: {type(first).__name__}: {first}; pyreadstat: "
                            f"{type(second).__name__}: {second}", file=str(path)) from None
        return frame


def _read_file(path: Path, mapping: Mapping, sheet: str | int | None) -> RawSource:
    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError("file not found", file=str(path))
    if suffix in TEXT_SUFFIXES or suffix == "":
        return _read_text(path, mapping)
    if suffix in EXCEL_SUFFIXES:
        return _read_excel(path, sheet if sheet is not None else mapping.sheet)
    # not .xpt: a SAS transport file opens with text header records
    if suffix in STAT_SUFFIXES - {".xpt"} and _looks_like_text(path):
        raise DataError(f"the file is text, not a {suffix} file: is it a CSV saved under another name? Give it "
                        "its real extension (.csv)", file=str(path))
    try:
        if suffix in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        elif suffix == ".dta":
            frame = _read_dta(path)
        elif suffix in {".sas7bdat", ".xpt", ".sav", ".zsav"}:
            frame = _read_stat(path)
        else:
            raise DataError(f"unknown file type {suffix!r}; hostats reads csv, tsv, txt, xlsx, xls, parquet, "
                            "dta, sas7bdat, xpt and sav", file=str(path))
    except DataError:
        raise
    except Exception as exc:  # each library raises its own errors for a corrupt file
        raise DataError(f"cannot read the {suffix} file: {type(exc).__name__}: {exc}", file=str(path)) from None
    return RawSource(frame.reset_index(drop=True), str(path), _sha256_file(path))


def is_database_url(source: Any) -> bool:
    return isinstance(source, str) and re.match(r"^[a-z][a-z0-9+]*://", source, re.I) is not None


_SQL_WRITES = re.compile(r"\b(insert|update|delete|upsert|merge|drop|create|alter|truncate|attach|detach|"
                        r"pragma|vacuum|reindex|analyze|grant|revoke|copy|call|exec|execute|do|set|begin|commit|"
                        r"rollback|savepoint|release|lock|load_extension|into)\b", re.I)


def check_select(query: str) -> str:
    """The query if it is one read-only statement (SELECT, or WITH ... SELECT), else a DataError.

    Comments, string literals and quoted identifiers are set aside first; then there must be no ``;``
    between statements and no keyword that writes, attaches, copies or changes settings (``INTO`` too:
    ``SELECT ... INTO`` creates a table). The connection is read-only as well: this check only makes the
    refusal clear."""
    if not isinstance(query, str) or not query.strip():
        raise DataError("the SQL query is empty")
    bare = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S)
    bare = re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]", " ? ", bare)
    if re.search(r"/\*|--|'|\"", bare):
        raise DataError("the SQL query has an unterminated string or comment")
    body = bare.strip().rstrip(";").strip()
    if ";" in body:
        raise DataError("the SQL query holds more than one statement; give a single SELECT")
    if not re.match(r"(?is)^\(*\s*(select|with)\b", body):
        first = (body.split() or ["?"])[0][:20]
        raise DataError(f"only a SELECT query (or WITH ... SELECT) is allowed, not {first.upper()!r}: hostats "
                        "reads a database, it never changes one")
    bad = _SQL_WRITES.search(body)
    if bad:
        raise DataError(f"the SQL query uses {bad.group(1).upper()!r}: only a plain SELECT is allowed (hostats "
                        "reads a database, it never changes one)")
    return query


def _read_only_url(parsed):
    """SQLite: open the file read-only (``mode=ro`` URI), so nothing can write to it or create it."""
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return parsed
    db = str(parsed.database)
    if db.startswith("file:"):
        base, _, q = db.partition("?")
        params = [x for x in q.split("&") if x and not x.startswith("mode=")]
        return parsed.set(database=base + "?" + "&".join(params + ["mode=ro"]),
                          query=dict(parsed.query, uri="true"))
    from urllib.parse import quote

    return parsed.set(database=f"file:{quote(str(Path(db).resolve()))}?mode=ro", query=dict(parsed.query, uri="true"))


# Safety bounds of a SQL read (issue 12): a query that never ends (WITH RECURSIVE without a stop) would
# otherwise run until memory is exhausted. The rows' bound is far above a cohort (ten times the 1M-episode
# analysis the project is measured on), so that it stops a runaway query, not a large registry; both are
# module settings (``hostats.ingest.SQL_MAX_ROWS = 50_000_000`` from Python) that the environment variables
# HOSTATS_SQL_MAX_ROWS and HOSTATS_SQL_MAX_SECONDS override (for the command line). A file export (CSV,
# parquet) has no such bound.
SQL_MAX_ROWS = 10_000_000   # rows a table or query may return
SQL_MAX_SECONDS = 1800      # a statement's time: SQLite (a progress handler), PostgreSQL (statement_timeout),
                            # MySQL (max_execution_time), MariaDB (max_statement_time); other dialects: no bound
_SQL_CHUNK_ROWS = 100_000   # rows fetched at a time, so the row bound is met before memory runs out
_SQLITE_CHECK_STEPS = 10_000  # SQLite VM steps between two looks at the clock
# how PostgreSQL, MySQL and MariaDB say that the statement's time bound stopped it
_SQL_TIMEOUT_TEXTS = ("statement timeout", "maximum statement execution time", "max_statement_time")


def sql_bound(name: str) -> float:
    """The bound ``SQL_MAX_ROWS`` or ``SQL_MAX_SECONDS`` in force: the environment variable ``HOSTATS_<name>``
    where set (a positive number; "5,000,000" and "5_000_000" are read too), else the module setting."""
    import os

    text = os.environ.get(f"HOSTATS_{name}")
    if text is None or not text.strip():
        return globals()[name]
    try:
        value = float(text.strip().replace(",", "").replace("_", ""))
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")) or (name == "SQL_MAX_ROWS" and value != int(value)):
        kind = "a whole number of rows" if name == "SQL_MAX_ROWS" else "a number of seconds"
        raise DataError(f"the environment variable HOSTATS_{name} must be {kind} above 0, not {text!r}")
    return int(value) if name == "SQL_MAX_ROWS" else value


def _sql_time_bound(con, backend: str) -> list[bool]:
    """Bound the statement's time on this connection (see SQL_MAX_SECONDS); returns a flag set when SQLite's
    progress handler stopped the statement, so that its "interrupted" error can be told apart."""
    import time

    stopped = [False]
    seconds = max(float(sql_bound("SQL_MAX_SECONDS")), 0.0)
    if backend == "sqlite":
        deadline = time.monotonic() + seconds

        def handler() -> int:
            if time.monotonic() > deadline:
                stopped[0] = True
                return 1  # non-zero: SQLite interrupts the statement
            return 0

        con.connection.dbapi_connection.set_progress_handler(handler, _SQLITE_CHECK_STEPS)
    elif backend == "postgresql":
        con.exec_driver_sql(f"SET LOCAL statement_timeout = {max(int(seconds * 1000), 1)}")  # 0: none
    elif backend == "mysql":
        con.exec_driver_sql(f"SET SESSION max_execution_time = {max(int(seconds * 1000), 1)}")
    elif backend == "mariadb":
        con.exec_driver_sql(f"SET SESSION max_statement_time = {max(seconds, 0.001):g}")
    return stopped


def _fetch_bounded(chunks, what: str) -> pd.DataFrame:
    """The frames of a chunked pandas read, refused past SQL_MAX_ROWS rows (chunk by chunk, so a query that
    never ends stops at the bound, not when memory is exhausted)."""
    parts, total, bound = [], 0, sql_bound("SQL_MAX_ROWS")
    for chunk in chunks:
        total += len(chunk)
        if total > bound:
            raise DataError(f"{what} returned more than {bound:,} rows, the bound of a SQL read "
                            "(hostats.ingest.SQL_MAX_ROWS, against a query that never ends, e.g. WITH RECURSIVE "
                            "without a stop): select fewer rows (WHERE, LIMIT), export the rows to a file (CSV "
                            "and parquet have no such bound), or raise the bound: the environment variable "
                            "HOSTATS_SQL_MAX_ROWS (e.g. HOSTATS_SQL_MAX_ROWS=50000000 hostats run ...) or "
                            "hostats.ingest.SQL_MAX_ROWS from Python")
        parts.append(chunk)
    if len(parts) == 1:
        return parts[0]
    # each chunk's types are inferred alone: a column NULL throughout the first chunk and numbers later
    # would be object (text); inferred again over all rows, the frame (and its fingerprint) is the one an
    # unchunked read gives
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas on concatenating all-NA columns
        return pd.concat(parts, ignore_index=True).infer_objects()


def _read_sql(url: str, table: str | None, query: str | None) -> RawSource:
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DataError("not a valid database URL (expected e.g. sqlite:///cohort.db or "
                        "postgresql://user@host/db)") from None
    safe = parsed.render_as_string(hide_password=True)
    secret = parsed.password

    def scrub(msg: str) -> str:
        msg = msg.replace(url, safe)
        return msg.replace(str(secret), "***") if secret else msg

    if (table is None) == (query is None):
        raise DataError(f"give exactly one of table= or query= to read from {safe}")
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:") and \
            not str(parsed.database).startswith("file:") and not Path(parsed.database).exists():
        raise DataError(f"cannot connect to {safe}: the database file does not exist")
    if query is not None:
        check_select(query)
    engine = None
    stopped = [False]
    what = f"table {table!r} of {safe}" if table is not None else f"the query on {safe}"
    try:
        engine = create_engine(_read_only_url(parsed))
        with engine.connect() as con:
            if backend == "sqlite":
                con.exec_driver_sql("PRAGMA query_only = ON")
            elif backend in ("postgresql", "mysql", "mariadb", "oracle"):
                try:  # the first statement of the transaction (MySQL: for the session's transactions)
                    con.exec_driver_sql("SET SESSION TRANSACTION READ ONLY" if backend in ("mysql", "mariadb")
                                        else "SET TRANSACTION READ ONLY")
                except SQLAlchemyError:  # not every server takes it; the statement check still holds
                    con.rollback()
            try:
                stopped = _sql_time_bound(con, backend)
            except SQLAlchemyError:  # a server without the setting: the row bound still holds
                con.rollback()
            # rows come a chunk at a time (server-side cursor where the driver has one: psycopg), so the
            # row bound stops a query that never ends
            con = con.execution_options(stream_results=True)
            if table is not None:
                tables = inspect(con).get_table_names()
                if table not in tables:
                    raise DataError(f"table {table!r} not found in {safe}; tables: {tables}")
                frame = _fetch_bounded(pd.read_sql_table(table, con, chunksize=_SQL_CHUNK_ROWS), what)
            else:
                frame = _fetch_bounded(pd.read_sql_query(text(query), con, chunksize=_SQL_CHUNK_ROWS), what)
            con.rollback()  # never commit anything
    except DataError:
        raise
    except (ModuleNotFoundError, NoSuchModuleError) as exc:
        raise DataError(f"cannot connect to {safe}: the database driver for {backend!r} is not installed "
                        f"({scrub(str(exc))})") from None
    except Exception as exc:  # drivers raise their own errors (network, auth, ...)
        if stopped[0] or any(s in str(exc).lower() for s in _SQL_TIMEOUT_TEXTS):
            raise DataError(f"{what} ran for more than {sql_bound('SQL_MAX_SECONDS'):,g} s, the time bound of a "
                            "SQL read (hostats.ingest.SQL_MAX_SECONDS, against a query that never ends, e.g. WITH "
                            "RECURSIVE without a stop): check the query, export its rows to a file, or raise the "
                            "bound: the environment variable HOSTATS_SQL_MAX_SECONDS or "
                            "hostats.ingest.SQL_MAX_SECONDS from Python") from None
        if isinstance(exc, SQLAlchemyError):
            detail = scrub(str(getattr(exc, "orig", None) or exc).splitlines()[0])
            raise DataError(f"cannot read from {safe}: {type(exc).__name__}: {detail}") from None
        raise DataError(f"cannot connect to {safe}: {type(exc).__name__}: {scrub(str(exc))}") from None
    finally:
        if engine is not None:
            engine.dispose()
    name = f"{safe}#{table}" if table is not None else f"{safe}#query"
    return RawSource(frame, name, _sha256_frame(frame), read_as="table" if table is not None else "query")


def read_source(source: Any, mapping: Mapping, *, sheet: str | int | None = None, table: str | None = None,
                query: str | None = None, name: str | None = None) -> RawSource:
    """Read one source (path, SQLAlchemy URL or DataFrame) as it is, without any mapping."""
    if callable(getattr(source, "read_raw", None)):  # a structured source (hostats.sources: REDCap, OMOP)
        return source.read_raw()
    if isinstance(source, pd.DataFrame):
        frame = source.copy()  # never mutate the caller's frame
        frame.columns = [str(c) for c in frame.columns]
        raw = RawSource(frame.reset_index(drop=True), name or "<DataFrame>", _sha256_frame(source))
        if "source_row" in frame.columns:  # a cohort read back: keep its row numbers
            rows = pd.to_numeric(frame["source_row"], errors="coerce")
            if rows.notna().all():
                raw.rows = rows.to_numpy(dtype=np.int64)
        return raw
    if is_database_url(source):
        return _read_sql(source, table, query)
    if isinstance(source, (str, Path)):
        return _read_file(Path(source), mapping, sheet)
    raise DataError(f"cannot read a {type(source).__name__}: give a file path, a database URL, a DataFrame, "
                    "a study folder or a list of these")


# --- column mapping -----------------------------------------------------------------------------------

@dataclass
class Mapped:
    """A source with canonical column names (values still as read), plus what was not recognised."""

    frame: pd.DataFrame
    name: str
    sha256: str | None
    rows_read: int
    mapping: Mapping
    unrecognised: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    encoding: str | None = None


def _dedupe_columns(frame: pd.DataFrame, name: str, notes: list[str]) -> pd.DataFrame:
    """Resolve duplicated column names: identical copies are dropped; differing copies are an error
    when the column is used (canonical or a synonym), otherwise the later copies are ignored."""
    cols = pd.Index(frame.columns)
    if cols.is_unique:
        return frame
    keep = np.ones(len(cols), dtype=bool)
    for dup in cols[cols.duplicated()].unique():
        pos = np.flatnonzero(cols == dup)
        first = frame.iloc[:, pos[0]]
        same = all(first.astype(object).equals(frame.iloc[:, p].astype(object)) for p in pos[1:])
        norm = normalise_name(dup)
        used = norm in CANONICAL_INPUT or norm in SYNONYMS
        if not same and used:
            raise DataError(f"column {dup!r} appears {len(pos)} times (positions {[int(p) + 1 for p in pos]}) with "
                            "different values; rename or remove the copies", file=name, column=str(dup))
        keep[pos[1:]] = False
        notes.append(f"column {dup!r} appears {len(pos)} times; "
                     + ("the copies are identical and one is kept" if same else "only the first is used"))
    return frame.loc[:, keep]


def map_columns(raw: RawSource, mapping: Mapping) -> Mapped:
    """Rename source columns to canonical names ([columns], then canonical names, then synonyms),
    add ``source_file``/``source_row``, and report columns that were not recognised."""
    notes: list[str] = list(raw.notes)
    frame = _dedupe_columns(raw.frame, raw.name, notes)
    found = [str(c) for c in frame.columns]
    rename: dict[str, str] = {}
    for canon, src in mapping.columns.items():
        if src in found:
            rename[src] = canon
            continue
        loose = [c for c in found if c.strip().casefold() == src.strip().casefold()]
        if len(loose) != 1:
            raise DataError(f"the mapping names source column {src!r} for {canon!r}, but the file has no such "
                            f"column; {describe_columns(found, raw.read_as)}", file=raw.name, column=src)
        rename[loose[0]] = canon
    claimed = set(rename.values())
    candidates: dict[str, list[str]] = {}
    derived = {c.name for c in DERIVED_COLUMNS}
    unrecognised = []
    for col in found:
        if col in rename or col in SOURCE_COLUMNS:
            continue
        norm = normalise_name(col)
        canon = norm if norm in CANONICAL_INPUT else SYNONYMS.get(norm)
        if canon is None:
            if norm not in derived:
                unrecognised.append(col)
            continue
        if canon not in claimed:
            candidates.setdefault(canon, []).append(col)
        else:
            notes.append(f"column {col!r} also looks like {canon!r} but is not used: the mapping names "
                         f"{next(k for k, v in rename.items() if v == canon)!r} for it")
    for canon, cols in candidates.items():
        seen: dict[str, str] = {}
        for col in cols:  # 'Sex' and ' sex ': the same name typed twice, not two spellings to choose from
            key = col.strip().casefold()
            if key in seen:
                raise DataError(f"columns {seen[key]!r} and {col!r} differ only in case or spaces and both "
                                f"would be {canon!r}: rename or remove one, or say which one in the mapping "
                                f"([columns] {canon} = \"...\")", file=raw.name, column=col)
            seen[key] = col
        if len(cols) > 1:
            exact = [c for c in cols if c == canon]
            if len(exact) != 1:
                raise DataError(f"columns {cols} could all be {canon!r}; say which one in the mapping "
                                f"([columns] {canon} = \"...\")", file=raw.name, column=canon)
            cols = exact
        rename[cols[0]] = canon
    if unrecognised:
        shown = unrecognised[:_NAMED_COLUMNS]
        more = f" and {len(unrecognised) - len(shown):,} more" if len(unrecognised) > len(shown) else ""
        notes.append(f"columns not recognised and left out: {shown}{more} (map them in [columns] if "
                     "they are canonical)")
    missing = [c for c in REQUIRED if c not in rename.values()]
    if missing:
        advice = (f": a cohort export needs at least {', '.join(REQUIRED)}. Name them in the query (e.g. SELECT "
                  "surgery_day AS index_date) or in the mapping file ([columns])." if raw.read_as == "query"
                  else ". Name them in the mapping file ([columns]).")   # a query chose its columns: it can name them
        raise DataError(f"required column(s) {missing} missing; {describe_columns(found, raw.read_as)}{advice}",
                        file=raw.name, column=missing[0])
    # the kept columns in one step, without copying their data (deleting the others one at a time took
    # time quadratic in the number of columns: minutes for a 5,000-column export)
    out = pd.DataFrame({rename[c]: frame[c] for c in frame.columns if c in rename}, index=frame.index, copy=False)
    out.insert(0, "source_row", raw.rows if raw.rows is not None
               else np.arange(raw.first_row, raw.first_row + len(out), dtype=np.int64))
    if "source_file" in frame.columns and raw.name == "<DataFrame>":
        files = frame["source_file"].astype(str).to_numpy()
    else:
        files = raw.name
    if isinstance(files, str):
        out.insert(0, "source_file", pd.Categorical.from_codes(np.zeros(len(out), dtype=np.int8), [files]))
    else:
        out.insert(0, "source_file", pd.Categorical(files))
    return Mapped(out, raw.name, raw.sha256, len(out), mapping, unrecognised, notes, raw.encoding)


# --- study folders -------------------------------------------------------------------------------------

@dataclass
class StudyFolder:
    """A folder with ``export.toml``: episode exports (each with its mapping and site) and assessments."""

    episodes: list[dict]
    assessments: dict | None
    path: Path


# what the key naming a file of a study (export.toml, a spec's [data]) expects to find there
EXPECTED_FILE = {
    "path": "a data file (csv, tsv, txt, xlsx, xls, parquet, dta, sas7bdat, xpt or sav)",
    "assessments": "an assessments table (a data file such as a CSV)",
    "mapping": "a mapping file (TOML)",
    "dictionary": "a REDCap data dictionary (a CSV file)",
}


def not_a_file(path: Path, folder_ok: bool = False) -> str | None:
    """What ``path`` is when it cannot be read as a file, or None: a folder (reading it gave a bare "Is a
    directory") unless ``folder_ok``, or a device, pipe or socket (reading one may never end). The caller
    adds what it expected (:data:`EXPECTED_FILE`)."""
    if path.is_dir():
        return None if folder_ok else "is a folder, not a file"
    if path.exists() and not path.is_file():
        return "is not a regular file (a device, pipe or socket)"
    return None


def _confined(folder: Path, value: Any, key: str, spec_path: Path, allow_outside: bool, expect: str,
              folder_ok: bool = False) -> Path:
    """``folder / value``, refused when it leaves the study folder (``..``, an absolute path, a symlink
    pointing elsewhere) unless ``allow_outside``, or when it is not a file (a folder, unless ``folder_ok``)
    of the kind ``expect`` (a key of :data:`EXPECTED_FILE`). The file is never opened here."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{spec_path}: {key} must be a file name (text), not {value!r}")
    path = folder / value
    if not allow_outside:
        root = folder.resolve()
        target = path.resolve()  # follows symlinks
        if target != root and root not in target.parents:
            raise SpecError(f"{spec_path}: {key} = {value!r} leaves the study folder {folder}; files of a "
                            "study must lie inside its folder (pass allow_outside=True to read_cohort, or "
                            "--allow-outside-paths on the command line, if this is intended)")
    problem = not_a_file(path, folder_ok)
    if problem is not None:
        raise SpecError(f"{spec_path}: {key} = {value!r} {problem}; expected {EXPECTED_FILE[expect]}")
    return path


def read_export_toml(folder: Path, *, allow_outside: bool = False) -> StudyFolder:
    """Parse ``folder/export.toml`` ([[episodes]] path/mapping/site, [assessments] path/mapping).

    Every path must stay inside ``folder`` (after resolving ``..`` and symlinks) unless ``allow_outside``."""
    spec_path = folder / "export.toml"
    if not spec_path.exists():
        raise DataError("a folder source must hold export.toml (see README: study folders)", file=str(folder))
    try:
        spec = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{spec_path}: not valid TOML: {exc}") from None
    unknown = set(spec) - {"episodes", "assessments"}
    if unknown:
        raise SpecError(f"{spec_path}: unknown table(s) {sorted(unknown)}; expected [[episodes]] and [assessments]")
    episodes = spec.get("episodes")
    if isinstance(episodes, dict):
        episodes = [episodes]
    if not episodes or not isinstance(episodes, list) or not all(isinstance(e, dict) and "path" in e
                                                                 for e in episodes):
        raise SpecError(f"{spec_path}: needs at least one [[episodes]] table with a path")
    resolved = []
    for i, e in enumerate(episodes, 1):
        where = f"[[episodes]] {i}"
        bad = set(e) - {"path", "mapping", "site", "kind", "dictionary"}
        if bad:
            raise SpecError(f"{spec_path}: {where}: unknown key(s) {sorted(bad)}; allowed: dictionary, kind, "
                            "mapping, path, site")
        item = dict(e)
        item["path"] = _confined(folder, e["path"], f"{where} path", spec_path, allow_outside, "path",
                                 folder_ok=e.get("kind") == "omop")  # a folder of CDM tables
        if e.get("dictionary") is not None:  # a REDCap export's data dictionary (hostats.sources.redcap)
            item["dictionary"] = _confined(folder, e["dictionary"], f"{where} dictionary", spec_path, allow_outside,
                                           "dictionary")
        if e.get("kind") is not None and e["kind"] not in ("redcap", "omop"):
            raise SpecError(f"{spec_path}: {where} kind must be \"redcap\" or \"omop\", not {e['kind']!r}")
        if e.get("mapping") is not None:
            item["mapping"] = _confined(folder, e["mapping"], f"{where} mapping", spec_path, allow_outside, "mapping")
        if e.get("site") is not None and not isinstance(e["site"], (str, int)):
            raise SpecError(f"{spec_path}: {where} site must be text, not {e['site']!r}")
        resolved.append(item)
    assess = spec.get("assessments")
    if assess is not None:
        if not isinstance(assess, dict) or "path" not in assess:
            raise SpecError(f"{spec_path}: [assessments] needs a path")
        bad = set(assess) - {"path", "mapping"}
        if bad:
            raise SpecError(f"{spec_path}: [assessments]: unknown key(s) {sorted(bad)}; allowed: mapping, path")
        assess = dict(assess, path=_confined(folder, assess["path"], "[assessments] path", spec_path,
                                             allow_outside, "assessments"))
        if assess.get("mapping") is not None:
            assess["mapping"] = _confined(folder, assess["mapping"], "[assessments] mapping", spec_path,
                                          allow_outside, "mapping")
    return StudyFolder(resolved, assess, folder)
