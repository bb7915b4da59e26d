"""The canonical cohort schema: the one place a column and its code list are defined (docs/design.md).

One row per episode: a patient's index event (surgery, injury or HO resection) and the follow-up after it.
Code lists below are reused by ingest (value mapping), cleaning (typo detection), the pandera models and
the report. The pandera models are built from ``EPISODE_COLUMNS`` / ``ASSESSMENT_COLUMNS``.
"""
from __future__ import annotations

from dataclasses import dataclass

INDEX_EVENTS = ("tha", "hip_revision", "long_bone_fracture", "sci", "tbi", "stroke", "anoxia", "burn",
                "resection", "other")
NEUROGENIC_EVENTS = ("sci", "tbi", "stroke", "anoxia")
SEXES = ("female", "male")
PROPHYLAXES = ("none", "radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid")
NSAID_AGENTS = ("none", "indomethacin", "ibuprofen", "other")
ADJUVANTS = ("none", "etidronate", "indomethacin")
HO_SITES = ("hip", "elbow", "knee", "shoulder", "jaw", "other")
DETECTION_MODALITIES = ("xray", "bone_scan", "ct")
ASSESSMENT_TESTS = ("xray", "bone_scan", "ct", "alp")

CODE_LISTS: dict[str, tuple[str, ...]] = {
    "index_event": INDEX_EVENTS,
    "sex": SEXES,
    "prophylaxis": PROPHYLAXES,
    "nsaid_agent": NSAID_AGENTS,
    "adjuvant": ADJUVANTS,
    "ho_site": HO_SITES,
    "detection_modality": DETECTION_MODALITIES,
}


@dataclass(frozen=True)
class Column:
    """A canonical column: its kind, whether every cohort must have it, and its plausible range."""

    name: str
    kind: str  # string | category | date | float | int | bool
    required: bool = False
    low: float | None = None
    high: float | None = None
    description: str = ""
    identifying: bool = False  # never shown in a report (patient_id, exact dates)


EPISODE_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", "string", True, description="pseudonymous; never appears in a report", identifying=True),
    Column("site", "string", description="contributing centre or report"),
    Column("index_event", "category", True, description="surgery, injury or resection"),
    Column("index_date", "date", True, description="date of surgery, injury or resection", identifying=True),
    Column("age_years", "float", low=0, high=110, description="age at index"),
    Column("sex", "category"),
    Column("prior_ho", "bool", description="HO after a previous hip arthroplasty (or before the resection)"),
    Column("gram_negative_infection", "bool", description="gram-negative infection during the stay"),
    Column("early_intensive_therapy", "bool", description="early intensive physical/occupational therapy"),
    Column("prophylaxis", "category"),
    Column("rt_dose_gy", "float", low=0, high=30, description="single-fraction dose in Gy"),
    Column("rt_hours_from_index", "float", low=-72, high=24 * 30,
           description="hours from surgery to irradiation (negative: before surgery)"),
    Column("nsaid_agent", "category"),
    Column("adjuvant", "category", description="after resection"),
    Column("ho", "bool", description="HO detected in follow-up"),
    Column("ho_date", "date", description="first detection", identifying=True),
    Column("ho_site", "category"),
    Column("brooker_grade", "int", low=0, high=4, description="Brooker class at last imaging (0 = none)"),
    Column("symptomatic", "bool", description="pain, swelling or lost range of motion"),
    Column("detection_modality", "category"),
    Column("wound_complication", "bool", description="bleeding, infection or wound-healing disturbance"),
    Column("tbsa_burned_percent", "float", low=0, high=100, description="total body surface area burned"),
    Column("gcs_score", "int", low=3, high=15, description="Glasgow Coma Scale at admission"),
    Column("death_date", "date", identifying=True),
    Column("last_followup_date", "date", identifying=True),
)

# Derived by the cohort, never typed by a user.
DERIVED_COLUMNS: tuple[Column, ...] = (
    Column("followup_days", "float", description="index to last contact (death or last follow-up)"),
    Column("status", "int", low=0, high=2, description="0 censored, 1 HO, 2 death before HO"),
    Column("time_days", "float", description="index to HO, death or censoring"),
    Column("ho_interval_lo_days", "float", description="last negative imaging before HO (days from index)"),
    Column("ho_interval_hi_days", "float", description="first positive imaging (days from index; inf if none)"),
    Column("ho_interval_lo_test", "string", description="imaging test (xray, bone_scan, ct) that set the lower bound"),
    Column("ho_interval_hi_test", "string", description="imaging test (xray, bone_scan, ct) that set the upper bound"),
)

ASSESSMENT_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", "string", True, identifying=True),
    Column("date", "date", True, identifying=True),
    Column("test", "category", True),
    Column("result", "category", description="positive / negative for imaging; empty for alp"),
    Column("value", "float", low=0, description="ALP in U/L; empty for imaging"),
)
ASSESSMENT_RESULTS = ("positive", "negative")

COLUMNS: dict[str, Column] = {c.name: c for c in EPISODE_COLUMNS + DERIVED_COLUMNS}
REQUIRED = tuple(c.name for c in EPISODE_COLUMNS if c.required)
IDENTIFYING = tuple(c.name for c in EPISODE_COLUMNS + ASSESSMENT_COLUMNS if c.identifying)
ASSESSMENT_CODE_LISTS: dict[str, tuple[str, ...]] = {"test": ASSESSMENT_TESTS, "result": ASSESSMENT_RESULTS}
ASSESSMENT_REQUIRED = tuple(c.name for c in ASSESSMENT_COLUMNS if c.required)
IMAGING_TESTS = ("xray", "bone_scan", "ct")
# Same-day images of different kinds: the one that turns positive LATEST after onset bounds onset most
# tightly from above, the one that turns positive SOONEST from below (x-ray 21-28 days after onset, bone scan
# 7-10 days earlier: docs/rates.md R19, R20; CT, with no published lag, counts as the soonest).
IMAGING_BY_DETECTION_LAG = ("ct", "bone_scan", "xray")

# pandas dtype of each kind in a cleaned cohort (categories get their code list as categories)
DTYPES = {"string": "string", "date": "datetime64[ns]", "float": "float64", "int": "Int64", "bool": "boolean"}


def dtype_of(column: Column, code_lists: dict[str, tuple[str, ...]] = CODE_LISTS):
    """The pandas dtype of a canonical column once cleaned."""
    import pandas as pd

    if column.kind == "category":
        return pd.CategoricalDtype(list(code_lists.get(column.name, ())), ordered=False)
    return DTYPES[column.kind]


def _pandera_schema(columns: tuple[Column, ...], code_lists: dict[str, tuple[str, ...]], name: str,
                    extra: dict | None = None):
    """A pandera DataFrameSchema built from Column specs: dtype, required (non-null), range, code list.

    Columns are optional (``required=False`` in pandera) unless the spec says every cohort must have
    them; unknown columns are allowed (source_file, source_row, derived columns are checked by ``extra``).
    """
    import pandera.pandas as pa

    cols = {}
    for c in columns:
        checks = []
        if c.low is not None and c.high is not None:
            checks.append(pa.Check.in_range(c.low, c.high))
        elif c.low is not None:
            checks.append(pa.Check.ge(c.low))
        if c.kind == "category":
            checks.append(pa.Check.isin(list(code_lists[c.name])))
        cols[c.name] = pa.Column(dtype_of(c, code_lists), checks=checks or None, nullable=not c.required,
                                 required=c.required, description=c.description or None)
    cols.update(extra or {})
    return pa.DataFrameSchema(cols, name=name, strict=False, coerce=False)


def episode_schema():
    """The pandera model of a cleaned episodes table (canonical + derived + source columns)."""
    import numpy as np
    import pandera.pandas as pa

    extra = {
        "source_file": pa.Column(nullable=False, required=True),
        "source_row": pa.Column("int64", pa.Check.ge(1), required=True),
        "status": pa.Column("Int64", pa.Check.isin([0, 1, 2]), nullable=True, required=True),
        "followup_days": pa.Column("float64", nullable=True, required=True),
        "time_days": pa.Column("float64", pa.Check.ge(0), nullable=True, required=True),
        "ho_interval_lo_days": pa.Column("float64", nullable=True, required=True),
        "ho_interval_hi_days": pa.Column("float64", pa.Check(lambda s: (s >= 0) | s.isna() | np.isinf(s)),
                                         nullable=True, required=True),
        "ho_interval_lo_test": pa.Column("string", pa.Check.isin(IMAGING_TESTS), nullable=True, required=True),
        "ho_interval_hi_test": pa.Column("string", pa.Check.isin(IMAGING_TESTS), nullable=True, required=True),
    }
    return _pandera_schema(EPISODE_COLUMNS, CODE_LISTS, "episodes", extra)


def assessment_schema():
    """The pandera model of a cleaned assessments table (long format)."""
    return _pandera_schema(ASSESSMENT_COLUMNS, ASSESSMENT_CODE_LISTS, "assessments")
