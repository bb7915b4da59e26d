"""Exports that look real: per-site dialects, mapping files, injected faults, a fast byte-level writer.

Each site exports its episodes in its own dialect (column names, codes, date format, dose unit, missing
token, delimiter, encoding) with a mapping TOML in the format ``hostats.read_cohort`` reads. Faults are
planned at generation time (from a random stream separate from the cohort's, so the clean cohort does
not depend on ``fault_rate``) and applied while writing.

Writing 1e6 episodes plus ~7e6 assessment rows through ``DataFrame.to_csv`` takes far too long, so
each column is rendered as a NUL-padded byte matrix with numpy and the NULs are dropped on output.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from .cohort import SyntheticCohort

FAULT_KINDS = ("duplicate", "conflicting_duplicate", "impossible_date", "swapped_dates", "code_typo",
               "age_out_of_range", "dose_wrong_unit")
CATEGORY_COLUMNS = ("index_event", "sex", "prophylaxis", "nsaid_agent", "adjuvant", "ho_site", "detection_modality")
BOOL_COLUMNS = ("prior_ho", "gram_negative_infection", "early_intensive_therapy", "ho", "symptomatic",
                "wound_complication")
DATE_COLUMNS = ("index_date", "ho_date", "death_date", "last_followup_date")
FLOAT_DECIMALS = {"age_years": 1, "rt_dose_gy": 1, "rt_hours_from_index": 1, "tbsa_burned_percent": 1}
INT_COLUMNS = ("brooker_grade", "gcs_score")


@dataclass(frozen=True)
class Dialect:
    key: str
    delimiter: str
    encoding: str
    missing: str
    date_format: str  # "iso" | "dayfirst" | "excel" | "%d.%m.%Y"
    dose_unit: str    # "Gy" | "cGy"
    true: str
    false: str
    extension: str
    names: dict[str, str]
    values: dict[str, dict[str, str]] = field(default_factory=dict)


_CANON = ("patient_id", "index_event", "index_date", "age_years", "sex", "prior_ho", "gram_negative_infection",
          "early_intensive_therapy", "prophylaxis", "rt_dose_gy", "rt_hours_from_index", "nsaid_agent", "adjuvant",
          "ho", "ho_date", "ho_site", "brooker_grade", "symptomatic", "detection_modality", "wound_complication",
          "tbsa_burned_percent", "gcs_score", "death_date", "last_followup_date")


def _names(*names: str) -> dict[str, str]:
    return dict(zip(_CANON, names, strict=True))


DIALECTS = (
    Dialect("en_iso", ",", "utf-8", "", "iso", "Gy", "yes", "no", ".csv",
            _names("PatientID", "IndexEvent", "IndexDate", "AgeYears", "Sex", "PriorHO", "GramNegInfection",
                   "EarlyTherapy", "Prophylaxis", "RTDoseGy", "RTHoursPostOp", "NSAID", "Adjuvant", "HO", "HODate",
                   "HOSite", "Brooker", "Symptomatic", "DetectedBy", "WoundComplication", "TBSA", "GCS",
                   "DeathDate", "LastFollowUp"),
            {"sex": {"female": "F", "male": "M"},
             "index_event": {"tha": "THA", "long_bone_fracture": "Tibia fracture", "sci": "SCI", "tbi": "TBI",
                             "stroke": "Stroke", "anoxia": "Anoxia", "burn": "Burn", "resection": "HO resection"},
             "prophylaxis": {"none": "None", "radiotherapy": "RT", "nsaid": "NSAID", "bisphosphonate": "Bisphosphonate",
                             "radiotherapy_nsaid": "RT+NSAID"},
             "nsaid_agent": {"none": "None", "indomethacin": "Indomethacin", "ibuprofen": "Ibuprofen"},
             "adjuvant": {"none": "None", "etidronate": "Etidronate", "indomethacin": "Indomethacin"},
             "ho_site": {"hip": "Hip", "elbow": "Elbow", "knee": "Knee", "shoulder": "Shoulder", "jaw": "Jaw",
                         "other": "Other"},
             "detection_modality": {"xray": "X-ray", "bone_scan": "Bone scan", "ct": "CT"}}),
    Dialect("de_latin1", ";", "latin-1", ".", "%d.%m.%Y", "cGy", "ja", "nein", ".csv",
            _names("Pat_Nr", "Ereignis", "Datum_Index", "Alter", "Geschlecht", "HO_Vorgeschichte",
                   "Gramneg_Infektion", "Fruehe_Therapie", "Prophylaxe", "RT_Dosis_cGy", "RT_Stunden", "NSAR",
                   "Adjuvans", "HO", "HO_Datum", "HO_Lokalisation", "Brooker", "Symptomatisch", "Nachweis",
                   "Wundkomplikation", "VKOF_Prozent", "GCS", "Todesdatum", "Letzte_Kontrolle"),
            {"sex": {"female": "weiblich", "male": "männlich"},
             "index_event": {"tha": "Hüft-TEP", "long_bone_fracture": "Unterschenkelfraktur", "sci": "Querschnitt",
                             "tbi": "SHT", "stroke": "Schlaganfall", "anoxia": "Anoxie", "burn": "Verbrennung",
                             "resection": "HO-Resektion"},
             "prophylaxis": {"none": "keine", "radiotherapy": "Bestrahlung", "nsaid": "NSAR",
                             "bisphosphonate": "Bisphosphonat", "radiotherapy_nsaid": "Bestrahlung+NSAR"},
             "nsaid_agent": {"none": "keins", "indomethacin": "Indometacin", "ibuprofen": "Ibuprofen"},
             "adjuvant": {"none": "keine", "etidronate": "Etidronat", "indomethacin": "Indometacin"},
             "ho_site": {"hip": "Hüfte", "elbow": "Ellenbogen", "knee": "Knie", "shoulder": "Schulter",
                         "jaw": "Kiefer", "other": "andere"},
             "detection_modality": {"xray": "Röntgen", "bone_scan": "Szintigraphie", "ct": "CT"}}),
    Dialect("coded_excel", ",", "utf-8", "NA", "excel", "Gy", "1", "0", ".csv",
            _names("pid", "event_code", "index_dt", "age", "sex_code", "prior_ho_yn", "gn_inf", "early_pt",
                   "proph_code", "rt_gy", "rt_hrs", "nsaid_code", "adj_code", "ho_yn", "ho_dt", "ho_loc", "brooker",
                   "sympt_yn", "dx_mod", "wound_yn", "tbsa", "gcs", "death_dt", "lfu_dt"),
            {"sex": {"male": "1", "female": "2"},
             "index_event": {"tha": "1", "long_bone_fracture": "2", "sci": "3", "tbi": "4", "stroke": "5",
                             "anoxia": "6", "burn": "7", "resection": "8"},
             "prophylaxis": {"none": "0", "radiotherapy": "1", "nsaid": "2", "bisphosphonate": "3",
                             "radiotherapy_nsaid": "4"},
             "nsaid_agent": {"none": "0", "indomethacin": "1", "ibuprofen": "2"},
             "adjuvant": {"none": "0", "etidronate": "1", "indomethacin": "2"},
             "ho_site": {"hip": "1", "elbow": "2", "knee": "3", "shoulder": "4", "jaw": "5", "other": "9"},
             "detection_modality": {"xray": "1", "bone_scan": "2", "ct": "3"}}),
    Dialect("uk_words_tab", "\t", "utf-8", "NA", "dayfirst", "Gy", "TRUE", "FALSE", ".tsv",
            _names("Patient ID", "Index event", "Index date", "Age (years)", "Gender", "Previous HO",
                   "Gram-negative infection", "Early intensive therapy", "Prophylaxis given", "RT dose (Gy)",
                   "RT timing (h)", "NSAID agent", "Adjuvant therapy", "Heterotopic ossification", "HO date",
                   "HO site", "Brooker class", "Symptomatic HO", "Detection", "Wound complication",
                   "Burned TBSA (%)", "Glasgow Coma Scale", "Date of death", "Last follow-up"),
            {"sex": {"female": "Female", "male": "Male"},
             "index_event": {"tha": "total hip arthroplasty", "long_bone_fracture": "lower leg fracture",
                             "sci": "spinal cord injury", "tbi": "traumatic brain injury", "stroke": "stroke",
                             "anoxia": "anoxic brain injury", "burn": "burn", "resection": "HO resection"},
             "prophylaxis": {"none": "no prophylaxis", "radiotherapy": "radiotherapy", "nsaid": "NSAID",
                             "bisphosphonate": "bisphosphonate", "radiotherapy_nsaid": "radiotherapy + NSAID"},
             "nsaid_agent": {"none": "none", "indomethacin": "indomethacin", "ibuprofen": "ibuprofen"},
             "adjuvant": {"none": "none", "etidronate": "etidronate", "indomethacin": "indomethacin"},
             "ho_site": {"hip": "hip", "elbow": "elbow", "knee": "knee", "shoulder": "shoulder", "jaw": "jaw",
                         "other": "other"},
             "detection_modality": {"xray": "plain radiograph", "bone_scan": "bone scintigraphy", "ct": "CT"}}),
)


def dialect_of(site_index: int) -> Dialect:
    return DIALECTS[site_index % len(DIALECTS)]


# --- byte-matrix rendering ---------------------------------------------------------------------------
def _token(text: str, encoding: str) -> np.ndarray:
    return np.frombuffer(text.encode(encoding), dtype=np.uint8)


def _widen(mat: np.ndarray, width: int) -> np.ndarray:
    if mat.shape[1] >= width:
        return mat
    return np.hstack([mat, np.zeros((mat.shape[0], width - mat.shape[1]), np.uint8)])


def _fill_missing(mat: np.ndarray, missing: np.ndarray, token: np.ndarray) -> np.ndarray:
    if missing.any():
        mat = _widen(mat, token.size)
        mat[missing] = 0
        mat[np.ix_(missing, np.arange(token.size))] = token
    return mat


def _strings_matrix(strings, encoding: str) -> np.ndarray:
    enc = np.array([s.encode(encoding) for s in strings], dtype=bytes)  # a vocabulary, not rows
    width = max(enc.dtype.itemsize, 1)
    return np.frombuffer(enc.astype(f"S{width}").tobytes(), np.uint8).reshape(len(strings), width).copy()


def _int_digits(v: np.ndarray) -> np.ndarray:
    a = np.abs(v)
    width = max(1, len(str(int(a.max())))) if a.size else 1
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (a[:, None] // powers) % 10
    lead = a[:, None] < powers
    lead[:, -1] = False
    mat = np.where(lead, 0, digits + 48).astype(np.uint8)
    sign = np.where(v < 0, ord("-"), 0).astype(np.uint8)[:, None]
    return np.hstack([sign, mat])


def _via_table(keys: np.ndarray, render) -> np.ndarray:
    """Render each distinct key once when the keys span a narrow range (dates, ages, lab values)."""
    if keys.size == 0:
        return render(keys)
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo + 1 > max(4096, keys.size // 4):
        return render(keys)
    return render(np.arange(lo, hi + 1, dtype=np.int64))[keys - lo]


def _int_matrix(values: np.ndarray, missing: np.ndarray, token: np.ndarray) -> np.ndarray:
    v = np.where(missing, 0, values).astype(np.int64)
    return _fill_missing(_via_table(v, _int_digits), missing, token)


def _fixed_digits(scaled: np.ndarray, decimals: int) -> np.ndarray:
    whole = _int_digits(np.abs(scaled) // 10 ** decimals)
    whole[:, 0] = np.where(scaled < 0, ord("-"), 0)
    frac = np.abs(scaled) % 10 ** decimals
    powers = 10 ** np.arange(decimals - 1, -1, -1, dtype=np.int64)
    frac_m = ((frac[:, None] // powers) % 10 + 48).astype(np.uint8)
    dot = np.full((scaled.size, 1), ord("."), np.uint8)
    return np.hstack([whole, dot, frac_m])


def _fixed_matrix(values: np.ndarray, decimals: int, missing: np.ndarray, token: np.ndarray) -> np.ndarray:
    if decimals == 0:
        return _int_matrix(np.rint(np.where(missing, 0, values)), missing, token)
    scaled = np.rint(np.where(missing, 0, values) * 10 ** decimals).astype(np.int64)
    return _fill_missing(_via_table(scaled, lambda k: _fixed_digits(k, decimals)), missing, token)


def _two(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x // 10 + 48, x % 10 + 48]).astype(np.uint8)


def _four(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x // 1000 + 48, x // 100 % 10 + 48, x // 10 % 10 + 48, x % 10 + 48]).astype(np.uint8)


_EXCEL_EPOCH = np.datetime64("1899-12-30", "D")


def _date_matrix(dates: np.ndarray, fmt: str, token: np.ndarray) -> np.ndarray:
    d = dates.astype("datetime64[D]")
    missing = np.isnat(d)
    days = np.where(missing, np.datetime64("2000-01-01", "D"), d).astype(np.int64)  # days since 1970
    if fmt == "excel":
        return _int_matrix(days - _EXCEL_EPOCH.astype(np.int64), missing, token)

    def render(k: np.ndarray) -> np.ndarray:
        dd = k.astype("datetime64[D]")
        y = dd.astype("datetime64[Y]").astype(np.int64) + 1970
        m = dd.astype("datetime64[M]").astype(np.int64) % 12 + 1
        day = (dd - dd.astype("datetime64[M]")).astype(np.int64) + 1
        return _date_parts(y, m, day, fmt)

    return _fill_missing(_via_table(days, render), missing, token)


def _date_parts(y, m, day, fmt: str) -> np.ndarray:
    def sep(c):
        return np.full((np.size(y), 1), ord(c), np.uint8)
    if fmt == "iso":
        return np.hstack([_four(y), sep("-"), _two(m), sep("-"), _two(day)])
    if fmt == "dayfirst":
        return np.hstack([_two(day), sep("/"), _two(m), sep("/"), _four(y)])
    if fmt == "%d.%m.%Y":
        return np.hstack([_two(day), sep("."), _two(m), sep("."), _four(y)])
    raise ValueError(f"unsupported date format {fmt!r}")  # pragma: no cover


def _category_matrix(values: np.ndarray, vocab: dict[str, str], encoding: str, token: np.ndarray) -> np.ndarray:
    codes = list(vocab)
    idx = pd.Categorical(values, categories=codes).codes
    unknown = values[idx < 0]
    unknown = unknown[pd.notna(unknown)]
    if unknown.size:  # pragma: no cover - the generator only emits codes of the schema
        raise ValueError(f"value {unknown[0]!r} has no code in the export dialect")
    mat = _strings_matrix([vocab[c] for c in codes], encoding)[np.maximum(idx, 0)]
    return _fill_missing(mat, idx < 0, token)


def render_lines(columns: list[np.ndarray], delimiter: bytes) -> bytes:
    """Join NUL-padded byte matrices into delimited lines; NUL bytes are dropped."""
    n = columns[0].shape[0]
    delim = np.full((n, 1), delimiter[0], np.uint8)
    parts = []
    for j, c in enumerate(columns):
        parts.append(c)
        parts.append(delim if j < len(columns) - 1 else np.full((n, 1), ord("\n"), np.uint8))
    flat = np.hstack(parts).ravel()
    return flat[flat != 0].tobytes()


def _put(mat: np.ndarray, rows: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """Overwrite the cells of ``rows`` with the byte matrix ``sub`` (widening the column if needed)."""
    if len(rows) == 0:
        return mat
    mat = _widen(mat, sub.shape[1])
    mat[rows] = 0
    mat[rows, : sub.shape[1]] = sub
    return mat


def _doubled_last(cells: np.ndarray) -> np.ndarray:
    """Typo: the last character of each (NUL-padded, left-aligned) cell doubled."""
    length = (cells != 0).sum(axis=1)
    out = np.hstack([cells, np.zeros((cells.shape[0], 1), np.uint8)])
    out[np.arange(cells.shape[0]), length] = cells[np.arange(cells.shape[0]), length - 1]
    return out


# --- faults -------------------------------------------------------------------------------------------
@dataclass
class FaultPlan:
    """Which (site, file row) gets which fault; ``table`` is the public record."""

    table: pd.DataFrame

    def counts(self) -> dict[str, int]:
        vc = self.table["kind"].value_counts()
        return {k: int(vc.get(k, 0)) for k in FAULT_KINDS}


def plan_faults(ep: pd.DataFrame, P: dict, rng: np.random.Generator, fault_rate: float) -> FaultPlan:
    """Draw faults for every export row: each row gets at most one, with probability ``fault_rate``."""
    n = len(ep)
    site_codes = pd.Categorical(ep["site"], categories=P["sites"]).codes
    eligible = np.ones((n, len(FAULT_KINDS)), bool)
    has_dose = ep["rt_dose_gy"].notna().to_numpy() if "rt_dose_gy" in ep else np.zeros(n, bool)
    eligible[:, FAULT_KINDS.index("dose_wrong_unit")] = has_dose
    u = rng.random(n)
    kind = np.argmax(rng.random((n, len(FAULT_KINDS))) * eligible, axis=1)
    pick = rng.random(n)  # column / variant choice
    shift = rng.integers(1, 10, n) * np.where(rng.random(n) < 0.5, -1, 1)
    hit = np.flatnonzero(u < fault_rate)
    kind = kind[hit]
    names = np.asarray(FAULT_KINDS, dtype=object)[kind]
    column = np.empty(hit.size, dtype=object)
    detail = np.empty(hit.size, dtype=object)
    value = np.full(hit.size, np.nan)
    age = ep["age_years"].to_numpy()[hit]
    dup = np.isin(names, ["duplicate", "conflicting_duplicate"])
    column[names == "duplicate"] = ""
    detail[names == "duplicate"] = "exact copy of the previous row"
    m = names == "conflicting_duplicate"
    column[m] = "age_years"
    value[m] = np.round(np.maximum(age[m] + shift[hit][m], 1.0), 1)
    detail[m] = "copy of the previous row with a different age"
    ho = ep["ho"].to_numpy()[hit]
    m = names == "impossible_date"
    column[m] = np.where(ho[m] & (pick[hit][m] < 0.5), "ho_date", "last_followup_date")
    detail[m] = "30 or 31 February (Excel: serial 999999)"
    value[m] = np.where(pick[hit][m] < 0.25, 31, 30)
    m = names == "swapped_dates"
    column[m] = "index_date,last_followup_date"
    detail[m] = "index date and last follow-up exchanged"
    m = names == "code_typo"
    typo_cols = [c for c in ("sex", "index_event", "prophylaxis", "adjuvant") if c in ep]
    column[m] = np.asarray(typo_cols, dtype=object)[np.minimum((pick[hit][m] * len(typo_cols)).astype(int),
                                                               len(typo_cols) - 1)]
    detail[m] = "last character of the site code doubled"
    m = names == "age_out_of_range"
    value[m] = np.where(pick[hit][m] < 0.5, age[m] + 100, -age[m])
    column[m] = "age_years"
    detail[m] = "age plus 100 or negated"
    m = names == "dose_wrong_unit"
    column[m] = "rt_dose_gy"
    detail[m] = "dose written in the other unit (Gy <-> cGy)"
    value[m] = ep["rt_dose_gy"].to_numpy()[hit][m] if m.any() else value[m]

    # File rows: each site's episodes in order, a duplicate right after its source row.
    site_of = site_codes[hit]
    table = pd.DataFrame({"site": np.asarray(P["sites"], dtype=object)[site_of], "site_index": site_of,
                          "episode": hit, "patient_id": ep["patient_id"].to_numpy()[hit], "kind": names,
                          "column": column, "detail": detail, "value": value, "inserted": dup})
    ranks = np.empty(n, dtype=np.int64)  # position of each episode within its site
    order = np.argsort(site_codes, kind="stable")
    counts = np.bincount(site_codes, minlength=len(P["sites"]))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranks[order] = np.arange(n) - np.repeat(starts, counts)
    # inserted rows before (or at) a position shift it down
    ins_before = np.zeros(hit.size, dtype=np.int64)
    for s in range(len(P["sites"])):  # loop over a handful of sites
        ms = site_of == s
        ins_ranks = np.sort(ranks[hit[ms & dup]])
        r = ranks[hit[ms]]
        ins_before[ms] = np.searchsorted(ins_ranks, r, side="left")
    rows = ranks[hit] + ins_before + dup.astype(np.int64)  # the inserted copy sits after its source
    table["row"] = rows
    table["line"] = rows + 2  # 1-based line in the file, the header being line 1
    table["file"] = ""
    return FaultPlan(table)


# --- writing ------------------------------------------------------------------------------------------
def _render_column(col: str, values: pd.Series, dia: Dialect, token: np.ndarray) -> np.ndarray:
    v = values.to_numpy()
    if col in DATE_COLUMNS:
        return _date_matrix(v.astype("datetime64[ns]"), dia.date_format, token)
    if col in CATEGORY_COLUMNS:
        return _category_matrix(v, dia.values[col], dia.encoding, token)
    if col in BOOL_COLUMNS:
        voc = _strings_matrix([dia.false, dia.true], dia.encoding)
        return voc[v.astype(bool).astype(np.int64)]
    if col in INT_COLUMNS:
        miss = pd.isna(values).to_numpy()
        return _int_matrix(values.fillna(0).to_numpy(dtype=np.int64), miss, token)
    if col in FLOAT_DECIMALS:
        x = v.astype(float)
        dec = FLOAT_DECIMALS[col]
        if col == "rt_dose_gy" and dia.dose_unit == "cGy":
            x, dec = x * 100, 0
        return _fixed_matrix(x, dec, np.isnan(x), token)
    if col == "patient_id":
        s = v.astype(str).astype("S")
        return np.frombuffer(s.tobytes(), np.uint8).reshape(len(v), s.dtype.itemsize).copy()
    raise ValueError(f"no renderer for column {col!r}")  # pragma: no cover


def _fault_cells(kind_rows: pd.DataFrame, col: str, dia: Dialect, ep: pd.DataFrame) -> np.ndarray:
    """Byte cells written for the value faults of one column (vectorised over the faults)."""
    vals = kind_rows["value"].to_numpy(dtype=float)
    none = np.zeros(vals.size, bool)
    if col == "age_years":
        return _fixed_matrix(vals, 1, none, np.zeros(0, np.uint8))
    if col == "rt_dose_gy":  # the other unit
        if dia.dose_unit == "Gy":
            return _int_matrix(np.rint(vals * 100), none, np.zeros(0, np.uint8))
        return _fixed_matrix(vals, 1, none, np.zeros(0, np.uint8))
    if col in DATE_COLUMNS and (kind_rows["kind"] == "impossible_date").all():
        if dia.date_format == "excel":
            return _int_matrix(np.full(vals.size, 999_999), none, np.zeros(0, np.uint8))
        dates = ep[col].to_numpy()[kind_rows["episode"].to_numpy()].astype("datetime64[Y]")
        return _date_parts(dates.astype(np.int64) + 1970, np.full(vals.size, 2), vals.astype(np.int64),
                           dia.date_format)
    raise ValueError(f"no fault text for {col!r}")  # pragma: no cover


def _site_bytes(ep_site: pd.DataFrame, faults: pd.DataFrame, dia: Dialect, ep: pd.DataFrame,
                columns: list[str]) -> bytes:
    token = _token(dia.missing, dia.encoding)
    n = len(ep_site)
    # file row -> position in ep_site: source rows with inserted copies right after their source
    ins = faults[faults["inserted"]]
    ranks = pd.Series(np.arange(n), index=ep_site.index)
    pos = np.concatenate([np.arange(n, dtype=float), ranks.loc[ins["episode"]].to_numpy() + 0.5])
    src = np.concatenate([np.arange(n), ranks.loc[ins["episode"]].to_numpy()])[np.argsort(pos, kind="stable")]
    mats = {}
    for col in columns:
        mats[col] = _render_column(col, ep_site[col], dia, token)[src]
    for col in columns:  # value faults
        f = faults[(faults["column"] == col) & faults["kind"].isin(
            ["conflicting_duplicate", "age_out_of_range", "dose_wrong_unit", "impossible_date"])]
        if len(f):
            mats[col] = _put(mats[col], f["row"].to_numpy(), _fault_cells(f, col, dia, ep))
        f = faults[(faults["column"] == col) & (faults["kind"] == "code_typo")]
        if len(f):
            rows = f["row"].to_numpy()
            mats[col] = _put(mats[col], rows, _doubled_last(mats[col][rows]))
    f = faults[faults["kind"] == "swapped_dates"]
    if len(f):
        rows = f["row"].to_numpy()
        a, b = mats["index_date"], mats["last_followup_date"]
        w = max(a.shape[1], b.shape[1])
        a, b = _widen(a, w), _widen(b, w)
        a_rows = a[rows].copy()
        a[rows], b[rows] = b[rows], a_rows
        mats["index_date"], mats["last_followup_date"] = a, b
    header = dia.delimiter.join(dia.names[c] for c in columns) + "\n"
    body = b"".join(render_lines([mats[c][i:i + 200_000] for c in columns], dia.delimiter.encode(dia.encoding))
                    for i in range(0, len(src), 200_000))
    return header.encode(dia.encoding) + body


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def mapping_toml(dia: Dialect, columns: list[str], missing_extra: bool = True, sheet: str | None = None) -> str:
    lines = [f"# Mapping for a site exporting in the {dia.key!r} dialect (written by synthetic).", "[source]"]
    if sheet is None:
        lines += [f"delimiter = {_toml_str(dia.delimiter)}", f"encoding = {_toml_str(dia.encoding)}"]
    else:
        lines += [f"sheet = {_toml_str(sheet)}"]
    if dia.missing:
        lines.append(f"missing = [{_toml_str(dia.missing)}]")
    lines += ["", "[columns]"]
    lines += [f"{c} = {_toml_str(dia.names[c])}" for c in columns]
    for col in columns:
        if col in CATEGORY_COLUMNS:
            lines += ["", f"[values.{col}]"]
            lines += [f"{_toml_str(src)} = {_toml_str(code)}" for code, src in dia.values[col].items()]
    lines += ["", "[dates]", f"format = {_toml_str(dia.date_format)}"]
    if dia.dose_unit != "Gy" and "rt_dose_gy" in columns:
        lines += ["", "[units]", 'rt_dose_gy = "cGy"']
    lines += ["", "[booleans]", f"true = [{_toml_str(dia.true)}]", f"false = [{_toml_str(dia.false)}]", ""]
    return "\n".join(lines)


def _write_assessments(asm: pd.DataFrame, path: Path) -> None:
    """assessments.csv, a million rows at a time: the file is never whole in memory (at 1M patients it is
    about 7M rows, and its chunks joined into one bytes object doubled the generation's memory peak)."""
    token = np.zeros(0, np.uint8)
    ids = asm["patient_id"].cat.categories.to_numpy().astype(str).astype("S")
    id_mat = np.frombuffer(ids.tobytes(), np.uint8).reshape(len(ids), ids.dtype.itemsize)
    codes = asm["patient_id"].cat.codes.to_numpy()
    tests = _strings_matrix(list(asm["test"].cat.categories), "ascii")
    res = _strings_matrix(["", *asm["result"].cat.categories], "ascii")
    step = 1_000_000
    dates = asm["date"].to_numpy()
    tcodes = asm["test"].cat.codes.to_numpy()
    rcodes = asm["result"].cat.codes.to_numpy() + 1
    values = asm["value"].to_numpy()
    with open(path, "wb") as f:
        f.write(b"patient_id,date,test,result,value\n")
        for i in range(0, len(asm), step):
            sl = slice(i, i + step)
            v = values[sl]
            f.write(render_lines([id_mat[codes[sl]], _date_matrix(dates[sl], "iso", token), tests[tcodes[sl]],
                                  res[rcodes[sl]], _int_matrix(np.nan_to_num(v), np.isnan(v), token)], b","))


EXCEL_MAX_ROWS = 1_048_576  # rows of an Excel worksheet, the header's included


def _write_excel(path: Path, data: bytes, dia: Dialect) -> None:
    """An xlsx with the same cells (text as written, numbers as numbers), with fixed zip timestamps."""
    import io

    df = pd.read_csv(io.BytesIO(data), sep=dia.delimiter, dtype=str, keep_default_na=False, encoding=dia.encoding)
    for c in df.columns:
        num = pd.to_numeric(df[c].replace({dia.missing: None}) if dia.missing else df[c], errors="coerce")
        if num.notna().sum() == (df[c] != dia.missing).sum():
            df[c] = num.astype(object).where(num.notna(), dia.missing if dia.missing else None)
    tmp = path.with_suffix(".tmp.xlsx")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
        df.to_excel(xw, sheet_name="episodes", index=False)
    with zipfile.ZipFile(tmp) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in sorted(zin.infolist(), key=lambda i: i.filename):
            data_i = zin.read(item.filename)
            if item.filename == "docProps/core.xml":  # creation/modification times: fix them
                import re

                data_i = re.sub(rb"<dcterms:(created|modified)([^>]*)>[^<]*<",
                                rb"<dcterms:\1\2>2020-01-01T00:00:00Z<", data_i)
            zout.writestr(zipfile.ZipInfo(item.filename, date_time=(2020, 1, 1, 0, 0, 0)), data_i,
                          compress_type=zipfile.ZIP_DEFLATED)
    tmp.unlink()


def write(cohort: SyntheticCohort, folder: Path, *, excel_site: str | None = None) -> Path:
    """Write the study folder. A site that drew no episodes (a small ``n``, or a small share) has no export
    and no entry in export.toml (a file with a header and no rows is not an export hostats reads); truth.json
    still lists it. Everything is checked before the first file is written."""
    P, ep = cohort.parameters, cohort.episodes
    columns = [c for c in _CANON if c in ep.columns]
    faults = cohort.faults
    site_codes = pd.Categorical(ep["site"], categories=P["sites"]).codes
    k = len(P["sites"])
    file_rows = (np.bincount(site_codes, minlength=k)
                 + np.bincount(faults.loc[faults["inserted"], "site_index"].to_numpy(int), minlength=k))
    if excel_site is not None:
        if excel_site not in P["sites"]:
            raise ValueError(f"excel_site {excel_site!r} is not one of the sites {P['sites']}")
        rows = int(file_rows[P["sites"].index(excel_site)])
        if rows == 0:
            raise ValueError(f"excel_site {excel_site!r} drew no episodes (n = {cohort.n:,}), so it has no export "
                             "to write as .xlsx; choose another site or a larger n")
        if rows > EXCEL_MAX_ROWS - 1:
            raise ValueError(f"excel_site {excel_site!r}: its export would have {rows:,} rows, more than the "
                             f"{EXCEL_MAX_ROWS - 1:,} an Excel sheet holds under its header; write it as text "
                             "(no excel_site) or draw fewer episodes")
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    files = {}
    empty = [site for j, site in enumerate(P["sites"]) if file_rows[j] == 0]
    for j, site in enumerate(P["sites"]):  # loop over sites
        if file_rows[j] == 0:
            continue
        dia = dialect_of(j)
        ep_site = ep[site_codes == j]
        data = _site_bytes(ep_site, faults[faults["site_index"] == j], dia, ep, columns)
        stem = f"site_{site}"
        if site == excel_site:
            name = f"{stem}.xlsx"
            _write_excel(folder / name, data, dia)
            mapping = mapping_toml(dia, columns, sheet="episodes")
        else:
            name = stem + dia.extension
            (folder / name).write_bytes(data)
            mapping = mapping_toml(dia, columns)
        files[site] = name
        (folder / f"{stem}.mapping.toml").write_text(mapping, encoding="utf-8")
        entries.append(f'[[episodes]]\npath = "{name}"\nmapping = "{stem}.mapping.toml"\nsite = "{site}"\n')
    _write_assessments(cohort.assessments, folder / "assessments.csv")
    (folder / "export.toml").write_text(
        f"# Study folder written by synthetic ({cohort.scenario}, n={cohort.n}, seed={cohort.seed}).\n"
        + (f"# No episodes, so no export: site(s) {', '.join(empty)}.\n" if empty else "")
        + "\n".join(entries) + '\n[assessments]\npath = "assessments.csv"\n', encoding="utf-8")
    (folder / "truth.json").write_text(json.dumps(_jsonable(cohort.truth), indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    ft = faults.assign(file=faults["site"].map(files))
    ft[["site", "file", "row", "line", "patient_id", "kind", "column", "detail"]].to_csv(
        folder / "faults.csv", index=False, lineterminator="\n")
    return folder


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None  # strict JSON has no NaN/inf
    return x
