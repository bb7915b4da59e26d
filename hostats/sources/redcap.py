"""REDCap: a project's CSV export read together with its data dictionary.

What the dictionary decides (REDCap's own file, "Variable / Field Name, Form Name, ..., Field Type,
Field Label, Choices, Calculations, OR Slider Labels, ..., Text Validation Type ..." or the API's
``field_name, form_name, field_type, select_choices_or_calculations, ...``):

* **choices**: a radio, dropdown or checkbox field's ``"1, THA | 2, Fracture"``. A raw export's codes become
  the canonical codes named in the mapping's ``[values.<column>]`` table, whose keys may be the REDCap code
  (``"1"``) or its label (``"THA"``); a field without such a table gets its labels, which the cleaning
  then matches to the code lists as for any export. A "labels" export (labels instead of codes, "Checked"
  for checkboxes) is read the same way.
* **checkbox fields** (``prophylaxis___1``, ``prophylaxis___2``, ...): one column ``prophylaxis`` with the
  checked choices joined by ``+`` in the dictionary's order (``"2+3"``), so that ``[values.prophylaxis]``
  can say ``"2+3" = "radiotherapy_nsaid"`` (labels work too: ``"Radiotherapy+NSAID"``); nothing checked is
  missing. A single box (``[columns] wound_complication = "complications___2"``) is a yes/no column.
* **dates**: fields validated as ``date_ymd``/``date_dmy``/``date_mdy`` are exported as YYYY-MM-DD and read
  as ISO dates.
* **the record ID** is the dictionary's first field; it is the patient_id unless the mapping says otherwise,
  and ``redcap_data_access_group`` is the site unless the mapping names one.

What the export's REDCap columns decide:

* ``redcap_event_name`` (a longitudinal project): the rows of a record's events are one episode (per arm);
  a field filled in several events takes the value of the last event that has it (listed in a note).
* ``redcap_repeat_instrument``/``redcap_repeat_instance``: rows of the repeating instrument named in the
  mapping's ``[redcap.assessments]`` are the assessments table (patient_id, date, test, result, value);
  rows of other repeating instruments are counted in a note as not used. Nothing is excluded for being a
  repeating row, and every row of the export is accounted for (:attr:`RedcapExport.accounting`).

The mapping file is a normal hostats mapping (``[columns]`` canonical = REDCap field, ``[values.*]``,
``[dates]``, ...) plus an optional ``[redcap]`` section::

    [redcap.assessments]
    instrument = "imaging"          # or event = "imaging_arm_1" for a repeating event
    date = "img_date"
    test = "img_type"
    result = "img_result"
    value = "alp_u_l"               # optional
    [redcap.assessments.values.test]
    "1" = "xray"

Every name and code in it is checked against the dictionary: a mistake is an error naming the mapping
file, the key and the dictionary's choices. A bad dictionary (a choice without a label, a duplicated code or
field, an unknown field type) is an error naming the dictionary file, the field and its row.

Reference: REDCap data dictionary and export formats (Harris et al., J Biomed Inform 2009;42:377-81;
REDCap "Data Dictionary" and "Data Export" help pages).
"""
from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hostats.errors import DataError, SpecError
from hostats.ingest import Mapping, RawSource, load_mapping, read_source
from hostats.schema import ASSESSMENT_CODE_LISTS, COLUMNS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FIELD_TYPES = ("text", "notes", "dropdown", "radio", "checkbox", "yesno", "truefalse", "calc", "file",
               "slider", "descriptive", "sql")
CHOICE_TYPES = ("dropdown", "radio", "checkbox")
DATE_VALIDATIONS = ("date_ymd", "date_dmy", "date_mdy")
SYSTEM_COLUMNS = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
                  "redcap_data_access_group", "redcap_survey_identifier", "redcap_arm")
CHECKED = {"1", "checked"}
UNCHECKED = {"0", "unchecked", ""}

# dictionary header (REDCap's download and the API's metadata) -> the API's name
_DICT_HEADERS = {
    "variable / field name": "field_name", "field_name": "field_name",
    "form name": "form_name", "form_name": "form_name",
    "field type": "field_type", "field_type": "field_type",
    "field label": "field_label", "field_label": "field_label",
    "choices, calculations, or slider labels": "select_choices_or_calculations",
    "select_choices_or_calculations": "select_choices_or_calculations",
    "text validation type or show slider number": "text_validation_type_or_show_slider_number",
    "text_validation_type_or_show_slider_number": "text_validation_type_or_show_slider_number",
}
_ASSESS_KEYS = {"instrument", "event", "date", "test", "result", "value", "values"}


@dataclass(frozen=True)
class Field:
    """One field of the data dictionary (``row``: its line in the dictionary file, header = 1)."""

    name: str
    form: str
    type: str
    label: str
    choices: dict[str, str]          # code -> label, in the dictionary's order
    validation: str
    row: int

    def checkbox_column(self, code: str) -> str:
        """The export column of one checkbox choice (REDCap: ``field___code``, code lower case)."""
        return f"{self.name}___{re.sub(r'[^0-9a-z]', '_', code.lower())}"


def _read_table(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"the REDCap {what} does not exist", file=str(path))
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"cannot read the REDCap {what} as CSV: {str(exc).splitlines()[0]}",
                            file=str(path)) from None
    raise DataError(f"the REDCap {what} is neither UTF-8 nor Windows-1252 text", file=str(path))


def parse_choices(text: str, *, file: str, field_name: str, row: int) -> dict[str, str]:
    """``"1, THA | 2, Fracture"`` -> ``{"1": "THA", "2": "Fracture"}``; a malformed choice is a DataError
    naming the dictionary file, the field and the row."""
    out: dict[str, str] = {}
    if not text.strip():
        raise DataError(f"field {field_name!r} has no choices (expected e.g. \"1, THA | 2, Fracture\")",
                        file=file, column=field_name, row=row)
    for part in text.split("|"):
        code, sep, label = part.partition(",")
        code, label = code.strip(), label.strip()
        if not sep or not code or not label:
            raise DataError(f"field {field_name!r}: choice {part.strip()!r} is not \"code, label\" (choices are "
                            "separated by |)", file=file, column=field_name, row=row)
        if code in out:
            raise DataError(f"field {field_name!r}: choice code {code!r} appears twice", file=file,
                            column=field_name, row=row)
        out[code] = label
    return out


def read_dictionary(path: str | Path) -> dict[str, Field]:
    """Parse a REDCap data dictionary (CSV) into ``{field name: Field}`` in the dictionary's order."""
    path = Path(path)
    raw = _read_table(path, "data dictionary")
    cols = {c: _DICT_HEADERS.get(re.sub(r"\s+", " ", c.strip().lower())) for c in raw.columns}
    raw = raw.rename(columns={c: n for c, n in cols.items() if n})
    missing = [n for n in ("field_name", "form_name", "field_type") if n not in raw.columns]
    if missing:
        raise DataError(f"not a REDCap data dictionary: column(s) {missing} missing (expected REDCap's "
                        "\"Variable / Field Name\", \"Form Name\", \"Field Type\", ...); columns found: "
                        f"{list(cols)[:20]}", file=str(path))
    for opt in ("field_label", "select_choices_or_calculations", "text_validation_type_or_show_slider_number"):
        if opt not in raw.columns:
            raw[opt] = ""
    fields: dict[str, Field] = {}
    for i, r in enumerate(raw.itertuples(index=False), start=2):
        name = str(r.field_name).strip()
        if not name:
            raise DataError("a dictionary line without a field name", file=str(path), row=i)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise DataError(f"field name {name!r} is not a REDCap variable name (lower-case letters, digits and "
                            "_, starting with a letter)", file=str(path), column=name, row=i)
        if name in fields:
            raise DataError(f"field {name!r} is defined twice (rows {fields[name].row} and {i})",
                            file=str(path), column=name, row=i)
        ftype = str(r.field_type).strip().lower()
        if ftype not in FIELD_TYPES:
            raise DataError(f"field {name!r} has field type {ftype!r}, not one of {list(FIELD_TYPES)}",
                            file=str(path), column=name, row=i)
        choices = (parse_choices(str(r.select_choices_or_calculations), file=str(path), field_name=name, row=i)
                   if ftype in CHOICE_TYPES else {})
        fields[name] = Field(name, str(r.form_name).strip(), ftype, str(r.field_label).strip(), choices,
                             str(r.text_validation_type_or_show_slider_number).strip().lower(), i)
    if not fields:
        raise DataError("the data dictionary has no fields", file=str(path))
    return fields


def _stripped(s: pd.Series) -> pd.Series:
    """A column as stripped text (object), blank cells missing; worked out once per distinct value."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    text = pd.Index(uniques).astype(str).str.strip().to_numpy(dtype=object)
    text = np.append(np.where(text == "", None, text), None)  # position -1: missing
    return pd.Series(text[codes], index=s.index, dtype=object, name=s.name)


def _key(text: Any) -> str:
    return str(text).strip().casefold()


def _choice_lookup(f: Field) -> dict[str, str]:
    """code or label (case-insensitive) -> code."""
    out = {_key(lab): code for code, lab in f.choices.items()}
    out.update({_key(code): code for code in f.choices})
    return out


def _combination(f: Field, key: str) -> str | None:
    """A mapping key for a checkbox field (``"2+3"``, ``"Radiotherapy + NSAID"``) as the canonical combination
    of codes in the dictionary's order, or None when a part is not a choice."""
    lookup = _choice_lookup(f)
    parts = [lookup.get(_key(p)) for p in str(key).split("+")]
    if any(p is None for p in parts):
        return None
    order = list(f.choices)
    return "+".join(sorted(set(parts), key=order.index))


def _translator(f: Field, table: dict[str, Any] | None, where: str, dictionary: str) -> dict[str, Any]:
    """REDCap code -> value written into the mapped frame: the mapping's target for the code (the key is a
    code or a label) or else the label. Keys that are not choices are a SpecError."""
    out: dict[str, Any] = dict(f.choices)  # default: the label
    lookup = _choice_lookup(f)
    for k, v in (table or {}).items():
        code = _combination(f, k) if f.type == "checkbox" else lookup.get(_key(k))
        if code is None:
            raise SpecError(f"{where} {k!r} is not a choice of REDCap field {f.name!r} (dictionary {dictionary}, "
                            f"row {f.row}); its choices are "
                            + ", ".join(f"{c} = {lab!r}" for c, lab in f.choices.items()))
        out[code] = v
    return out


@dataclass
class _AssessmentSpec:
    instrument: str | None
    event: str | None
    columns: dict[str, str]                      # canonical (date, test, result, value) -> field
    values: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Assessments:
    """The repeating imaging instrument of a REDCap export as an assessments source (protocol of
    :mod:`hostats.sources`)."""

    def __init__(self, raw: RawSource) -> None:
        self._raw = raw
        self.mapping = Mapping()
        self.site = None
        self.assessments = None

    def read_raw(self) -> RawSource:
        return self._raw


class RedcapExport:
    """A REDCap CSV export with its data dictionary, as a source for :func:`hostats.read_cohort`.

    ``export``: the CSV export (raw codes or labels). ``dictionary``: the project's data dictionary (CSV).
    ``mapping``: a mapping TOML file or dict (``[columns]`` canonical = REDCap field, ``[values.*]`` REDCap
    code or label = canonical code, an optional ``[redcap.assessments]``); None maps by names alone.
    After :meth:`read_raw`, :attr:`accounting` holds where every row of the export went.
    """

    source_kind = "redcap"   # read_cohort's kind="redcap"

    def __init__(self, export: str | Path, dictionary: str | Path, mapping: Any = None, *,
                 site: str | None = None) -> None:
        self.export = Path(export)
        self.dictionary_path = Path(dictionary)
        self.fields = read_dictionary(self.dictionary_path)
        self.site = site
        self._mapping_where = str(mapping) if isinstance(mapping, (str, Path)) else "mapping"
        raw = self._load_mapping_dict(mapping)
        redcap = raw.pop("redcap", None) or {}
        self._assess_spec = self._check_redcap_section(redcap)
        self._user_values = {k: dict(v) for k, v in (raw.get("values") or {}).items() if isinstance(v, dict)}
        base = self._rebase_error(lambda: load_mapping(raw))
        base.path = str(mapping) if isinstance(mapping, (str, Path)) else None
        self._check_columns(base)
        self.mapping = self._downstream_mapping(base)
        self.accounting: dict[str, Any] = {}
        self._episodes: RawSource | None = None
        self._assessments_raw: RawSource | None = None

    # --- the mapping -----------------------------------------------------------------------------------
    def _load_mapping_dict(self, mapping: Any) -> dict:
        if mapping is None:
            return {}
        if isinstance(mapping, dict):
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in mapping.items()}
        if isinstance(mapping, (str, Path)):
            path = Path(mapping)
            try:
                return tomllib.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise DataError("mapping file not found", file=str(path)) from None
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise SpecError(f"{path}: not a valid TOML mapping file: {exc}") from None
        raise SpecError(f"a REDCap mapping must be a TOML path, a dict or None, not {type(mapping).__name__}")

    def _rebase_error(self, func):
        try:
            return func()
        except SpecError as exc:  # load_mapping of a dict says "mapping:"; name the file instead
            msg = str(exc)
            if msg.startswith("mapping:"):
                msg = self._mapping_where + msg[len("mapping"):]
            raise SpecError(msg) from None

    def _field(self, name: Any, key: str) -> Field:
        f = self.fields.get(str(name))
        if f is None:
            raise SpecError(f"{self._mapping_where}: {key} = {name!r} is not a field of the REDCap data dictionary "
                            f"{self.dictionary_path}; fields: {list(self.fields)[:40]}")
        return f

    def _check_redcap_section(self, redcap: Any) -> _AssessmentSpec | None:
        where = self._mapping_where
        if not isinstance(redcap, dict) or set(redcap) - {"assessments"}:
            raise SpecError(f"{where}: [redcap] may only hold [redcap.assessments], not "
                            f"{sorted(set(redcap) - {'assessments'}) if isinstance(redcap, dict) else redcap!r}")
        a = redcap.get("assessments")
        if a is None:
            return None
        if not isinstance(a, dict) or set(a) - _ASSESS_KEYS:
            raise SpecError(f"{where}: [redcap.assessments] unknown key(s) "
                            f"{sorted(set(a) - _ASSESS_KEYS) if isinstance(a, dict) else a!r}; allowed: "
                            f"{sorted(_ASSESS_KEYS)}")
        if (a.get("instrument") is None) == (a.get("event") is None):
            raise SpecError(f"{where}: [redcap.assessments] needs exactly one of instrument = \"...\" (a repeating "
                            "instrument) or event = \"...\" (a repeating event)")
        for k in ("instrument", "event"):
            if a.get(k) is not None and not isinstance(a[k], str):
                raise SpecError(f"{where}: [redcap.assessments] {k} must be text, not {a[k]!r}")
        if a.get("instrument") is not None and a["instrument"] not in {f.form for f in self.fields.values()}:
            raise SpecError(f"{where}: [redcap.assessments] instrument = {a['instrument']!r} is not a form of the "
                            f"data dictionary {self.dictionary_path}; forms: "
                            f"{list(dict.fromkeys(f.form for f in self.fields.values()))}")
        cols = {}
        for k in ("date", "test", "result", "value"):
            if a.get(k) is not None:
                cols[k] = self._field(a[k], f"[redcap.assessments] {k}").name
        for k in ("date", "test"):
            if k not in cols:
                raise SpecError(f"{where}: [redcap.assessments] needs {k} = \"<field>\"")
        values = a.get("values") or {}
        if not isinstance(values, dict) or set(values) - {"test", "result"} or \
                not all(isinstance(v, dict) for v in values.values()):
            raise SpecError(f"{where}: [redcap.assessments.values] may hold tables test and result only")
        for col, table in values.items():
            codes = ASSESSMENT_CODE_LISTS[col]
            wrong = {k: v for k, v in table.items() if v != "" and v not in codes}
            if wrong:
                raise SpecError(f"{where}: [redcap.assessments.values.{col}] maps {wrong} to value(s) that are not "
                                f"{col} codes; codes are {list(codes)} (or \"\" for missing)")
            if col not in cols:
                raise SpecError(f"{where}: [redcap.assessments.values.{col}] but no {col} field is named")
            f = self.fields[cols[col]]
            if f.type in CHOICE_TYPES:
                _translator(f, table, f"{where}: [redcap.assessments.values.{col}]", str(self.dictionary_path))
        if "result" not in cols:  # the cleaning reads every imaging row's result (was a KeyError there)
            raise SpecError(f"{where}: [redcap.assessments] needs result = \"<field>\" (the field holding each "
                            "image's HO finding, positive or negative)")
        return _AssessmentSpec(a.get("instrument"), a.get("event"), cols, values)

    def _checkbox_owner(self, column: str) -> tuple[Field, str] | None:
        name, sep, suffix = column.rpartition("___")
        f = self.fields.get(name) if sep else None
        if f is None or f.type != "checkbox":
            return None
        for code in f.choices:
            if f.checkbox_column(code) == column:
                return f, code
        return None

    def _check_columns(self, m: Mapping) -> None:
        for canon, src in m.columns.items():
            if src in self.fields or src in SYSTEM_COLUMNS or self._checkbox_owner(src):
                continue
            self._field(src, f"[columns] {canon}")  # raises with the dictionary's fields
        for canon, table in self._user_values.items():
            src = m.columns.get(canon, canon)
            f = self.fields.get(src)
            if f is not None and f.type in CHOICE_TYPES:
                _translator(f, table, f"{self._mapping_where}: [values.{canon}]", str(self.dictionary_path))

    def _downstream_mapping(self, m: Mapping) -> Mapping:
        """The mapping the cleaning gets: [values] of choice fields are applied here, not again; the record ID
        and data access group are named; REDCap's ISO date fields are read as ISO."""
        columns = dict(m.columns)
        record_id = next(iter(self.fields))
        if "patient_id" not in columns:
            columns["patient_id"] = record_id
        if "site" not in columns and self.site is None:
            columns["site"] = "redcap_data_access_group"  # dropped below when the export has no such column
        values = {c: t for c, t in m.values.items()
                  if not (self.fields.get(columns.get(c, c)) and self.fields[columns.get(c, c)].type in CHOICE_TYPES)}
        date_columns = dict(m.date_columns)
        for canon, src in columns.items():
            f = self.fields.get(src)
            if f is not None and f.validation in DATE_VALIDATIONS and canon in COLUMNS and canon not in date_columns:
                date_columns[canon] = "iso"
        return Mapping(columns=columns, values=values, date_format=m.date_format, date_columns=date_columns,
                       units=m.units, true_tokens=m.true_tokens, false_tokens=m.false_tokens, missing=m.missing,
                       path=m.path)

    # --- reading ---------------------------------------------------------------------------------------
    def read_raw(self) -> RawSource:
        """The episode rows (one per record, or per record and arm in a longitudinal project), with codes
        translated and checkboxes combined; their source rows are the export's."""
        if self._episodes is None:
            self._read()
        return self._episodes

    @property
    def assessments(self) -> _Assessments | None:
        """The repeating imaging instrument's rows as an assessments source (None without
        ``[redcap.assessments]``)."""
        if self._assess_spec is None:
            return None
        if self._episodes is None:
            self._read()
        return _Assessments(self._assessments_raw)

    def _translate(self, frame: pd.DataFrame, notes: list[str], rows: np.ndarray) -> pd.DataFrame:
        out = {}
        canon_of = {src: canon for canon, src in self.mapping.columns.items()}
        for col in frame.columns:
            f = self.fields.get(col)
            if f is None or f.type not in ("dropdown", "radio"):
                if self._checkbox_owner(col) is None:
                    out[col] = frame[col]
                continue
            canon = canon_of.get(col, col)
            trans = _translator(f, self._user_values.get(canon), "", "")
            if canon in COLUMNS and COLUMNS[canon].kind in ("int", "float", "bool") and canon not in self._user_values:
                trans = {c: c for c in f.choices}  # a number or yes/no column keeps the codes (Brooker 0-4)
            out[col] = self._map_choices(frame[col], f, trans, notes, rows)
        for f in self.fields.values():  # checkboxes: one column each, plus the single boxes
            if f.type != "checkbox":
                continue
            boxes = {code: f.checkbox_column(code) for code in f.choices if f.checkbox_column(code) in frame}
            if not boxes:
                continue
            for col in boxes.values():
                s = frame[col].fillna("").astype(str).str.strip().str.casefold()
                bad = ~s.isin(CHECKED | UNCHECKED)
                if bad.any():
                    notes.append(f"checkbox column {col!r}: value(s) {sorted(set(frame[col][bad]))[:5]} in row(s) "
                                 f"{rows[bad.to_numpy()][:10].tolist()} are neither checked (1) nor unchecked (0)")
                out[col] = s.map(lambda v: "1" if v in CHECKED else ("0" if v in UNCHECKED else None))
            # the ticked boxes of a row as a bit mask; the combinations are spelt out once per distinct mask
            codes = list(boxes)
            mask = np.zeros(len(frame), dtype=np.int64)
            for k, col in enumerate(boxes.values()):
                mask |= out[col].eq("1").to_numpy(dtype=bool).astype(np.int64) << k
            spelt = {m: "+".join(c for k, c in enumerate(codes) if m >> k & 1) or None for m in np.unique(mask)}
            combo = pd.Series(pd.Series(mask).map(spelt).to_numpy(dtype=object), index=frame.index, dtype=object)
            table = self._user_values.get(canon_of.get(f.name, f.name))
            trans = _translator(f, table, "", "")
            labels = {code: lab for code, lab in f.choices.items()}

            def name_of(c: Any, trans=trans, labels=labels) -> Any:
                if c is None or (isinstance(c, float) and np.isnan(c)):
                    return None
                if c in trans:
                    return trans[c]
                return " + ".join(labels[p] for p in c.split("+"))  # unmapped combination: the labels

            out[f.name] = combo.map(name_of)
        return pd.DataFrame(out, index=frame.index)

    def _map_choices(self, s: pd.Series, f: Field, trans: dict[str, Any], notes: list[str],
                     rows: np.ndarray) -> pd.Series:
        lookup = _choice_lookup(f)  # a labels export writes the label; a raw one the code
        key = s.where(s.isna(), s.astype(str).str.strip().str.casefold())
        code = key.map(lookup)
        bad = key.notna() & code.isna()
        if bad.any():
            notes.append(f"field {f.name!r}: value(s) {sorted(set(s[bad].astype(str)))[:5]} in row(s) "
                         f"{rows[bad.to_numpy()][:10].tolist()} are not choices of the data dictionary "
                         f"({', '.join(f'{c} = {lab}' for c, lab in f.choices.items())}); kept as written")
        return code.map(trans).where(~bad, s)

    def _read(self) -> None:
        raw = read_source(self.export, Mapping())
        name = raw.name
        frame = pd.DataFrame({c: _stripped(raw.frame[c]) for c in raw.frame.columns}, index=raw.frame.index)
        rows = raw.rows if raw.rows is not None else np.arange(raw.first_row, raw.first_row + len(frame),
                                                                 dtype=np.int64)
        notes = list(raw.notes)
        record_id = next(iter(self.fields))
        if record_id not in frame.columns:
            labels = {_key(f.label) for f in self.fields.values() if f.label}
            if sum(_key(c) in labels for c in frame.columns) * 2 >= len(frame.columns):
                raise DataError("the export's column headers are the fields' labels, not their variable names: "
                                "export again with the variable names as column headers (REDCap's raw-data CSV "
                                "export); the values may be codes or labels",
                                file=name, column=record_id)
            raise DataError(f"the export has no column {record_id!r}, the record ID (first field) of the data "
                            f"dictionary {self.dictionary_path}: is this the project's export?", file=name,
                            column=record_id)
        known = set(self.fields) | set(SYSTEM_COLUMNS) | {f"{form}_complete" for form in
                                                          {f.form for f in self.fields.values()}}
        unknown = [c for c in frame.columns if c not in known and self._checkbox_owner(c) is None
                   and not c.endswith("_timestamp")]
        if unknown:
            notes.append(f"columns not in the data dictionary {self.dictionary_path.name}: {unknown[:20]}")
        mapped = set(self.mapping.columns.values())
        repeating_forms = set(frame["redcap_repeat_instrument"].dropna()) if "redcap_repeat_instrument" in frame \
            else set()
        frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_complete") or c.endswith("_timestamp")
                                    or c in ("redcap_survey_identifier",)
                                    # the fields of repeating instruments other than the assessments'
                                    or (c in self.fields and self.fields[c].form in repeating_forms
                                        and c not in mapped and c != record_id
                                        and (self._assess_spec is None or self.fields[c].form
                                             != self._assess_spec.instrument))])
        n_all = len(frame)
        instr = frame["redcap_repeat_instrument"] if "redcap_repeat_instrument" in frame else \
            pd.Series(None, index=frame.index, dtype=object)
        event = frame["redcap_event_name"] if "redcap_event_name" in frame else \
            pd.Series(None, index=frame.index, dtype=object)
        instance = frame["redcap_repeat_instance"] if "redcap_repeat_instance" in frame else \
            pd.Series(None, index=frame.index, dtype=object)
        spec = self._assess_spec
        if spec is not None and spec.instrument is not None:
            is_assess = instr.eq(spec.instrument).to_numpy()
        elif spec is not None:
            is_assess = (event.eq(spec.event) & instance.notna()).to_numpy()
            if not is_assess.any() and not event.eq(spec.event).any():
                raise SpecError(f"{self._mapping_where}: [redcap.assessments] event = {spec.event!r} does not occur "
                                f"in {name}; events: {sorted(set(event.dropna()))}")
        else:
            is_assess = np.zeros(n_all, dtype=bool)
        other_repeat = instr.notna().to_numpy() & ~is_assess
        is_episode = ~is_assess & ~other_repeat
        self.accounting = {"rows": n_all, "assessment_rows": int(is_assess.sum()),
                           "unused_repeating_rows": {str(k): int(v) for k, v in
                                                     instr[other_repeat].value_counts(sort=False).items()}}
        if other_repeat.any():
            notes.append("rows of repeating instrument(s) without a canonical use, not read: "
                         + ", ".join(f"{k!r} {v} row(s)" for k, v in self.accounting["unused_repeating_rows"].items()))
        ep = frame[is_episode]
        ep_rows = rows[is_episode]
        if spec is not None and spec.instrument is not None:  # the instrument's fields are empty here
            ep = ep.drop(columns=[f.name for f in self.fields.values()
                                  if f.form == spec.instrument and f.name in ep.columns and f.name != record_id])
        ep = self._translate(ep, notes, ep_rows)
        ep = ep.drop(columns=[c for c in ("redcap_repeat_instrument", "redcap_repeat_instance") if c in ep])
        n_event_rows = len(ep)
        if "redcap_event_name" in ep.columns and len(ep):
            ep, ep_rows = self._combine_events(ep, ep_rows, record_id, notes)
        self.accounting.update(episode_rows=n_event_rows, episodes=len(ep))
        if "site" in self.mapping.columns and self.mapping.columns["site"] not in ep.columns:
            self.mapping.columns.pop("site")
        ep = ep.drop(columns=[c for c in ("redcap_event_name", "redcap_arm") if c in ep]
                     # single boxes are read as their field's one column unless mapped themselves
                     + [c for c in ep.columns if self._checkbox_owner(c) is not None and c not in mapped])
        parts = [f"REDCap export of {n_all} row(s) (data dictionary {self.dictionary_path}, sha256 "
                 f"{hashlib.sha256(self.dictionary_path.read_bytes()).hexdigest()[:16]})"]
        if n_event_rows != len(ep):
            parts.append(f"{n_event_rows} event row(s) of {len(ep)} record(s) combined into {len(ep)} episode "
                         "row(s) (one per record and arm)")
        else:
            parts.append(f"{len(ep)} episode row(s)")
        if is_assess.any() or spec is not None:
            parts.append(f"{int(is_assess.sum())} row(s) of the repeating "
                         + (f"instrument {spec.instrument!r}" if spec.instrument else f"event {spec.event!r}")
                         + " read as assessments")
        if other_repeat.any():
            parts.append(f"{int(other_repeat.sum())} row(s) of other repeating instruments not read")
        notes.insert(0, "; ".join(parts))
        self._episodes = RawSource(ep.reset_index(drop=True), name, raw.sha256, rows=np.asarray(ep_rows, np.int64),
                                   notes=notes, encoding=raw.encoding)
        if spec is not None:
            self._assessments_raw = self._assessment_frame(frame[is_assess], rows[is_assess], record_id,
                                                           f"{name}[{spec.instrument or spec.event}]", raw.sha256)

    def _combine_events(self, ep: pd.DataFrame, rows: np.ndarray, record_id: str,
                        notes: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """One row per record and arm: the last non-missing value of each field over the record's events."""
        arm = ep["redcap_event_name"].astype(str).str.extract(r"_arm_(\d+)$", expand=False).fillna("1")
        keys = pd.DataFrame({"record": ep[record_id].astype(str), "arm": arm}, index=ep.index)
        group = keys.groupby(["record", "arm"], sort=False).ngroup().to_numpy()
        data = ep.drop(columns=["redcap_event_name"])
        data.insert(0, "_group", group)
        g = data.groupby("_group", sort=True)
        combined = g.last()
        boxes = [c for c in data.columns if self._checkbox_owner(c) is not None]
        if boxes:  # a box ticked in any event is ticked (other events export it as 0)
            ticked = pd.DataFrame({c: pd.to_numeric(data[c]) for c in boxes}).groupby(group, sort=True).max()
            combined[boxes] = ticked.apply(lambda c: c.map({1.0: "1", 0.0: "0"})).to_numpy(dtype=object)
        distinct = g.nunique(dropna=True)
        differ = [c for c in distinct.columns if (distinct[c] > 1).any() and c not in boxes]
        if differ:
            notes.append("field(s) filled with different values in several events of a record; the last event's "
                         "value is used: " + ", ".join(f"{c} ({int((distinct[c] > 1).sum())} record(s))"
                                                         for c in differ[:20]))
        first_row = pd.Series(rows).groupby(group, sort=True).min().to_numpy()
        combined = combined.reset_index(drop=True)
        if arm.nunique() > 1:
            combined["redcap_arm"] = arm.groupby(group, sort=True).first().to_numpy()
        return combined, first_row

    def _assessment_frame(self, rows_frame: pd.DataFrame, rows: np.ndarray, record_id: str, name: str,
                          sha256: str | None) -> RawSource:
        spec = self._assess_spec
        out = pd.DataFrame({"patient_id": rows_frame[record_id].to_numpy()})
        notes: list[str] = []
        for canon in ("date", "test", "result", "value"):
            src = spec.columns.get(canon)
            if src is None:
                continue
            s = rows_frame[src].reset_index(drop=True)
            f = self.fields[src]
            if f.type in ("dropdown", "radio"):
                s = self._map_choices(s, f, _translator(f, spec.values.get(canon), "", ""), notes, rows)
            out[canon] = s.to_numpy()
        return RawSource(out, name, sha256, rows=np.asarray(rows, dtype=np.int64), notes=notes)


__all__ = ["RedcapExport", "Field", "read_dictionary", "parse_choices"]
