"""OMOP CDM: build the HO cohort from a common-data-model database, read-only.

Where the CDM can be:

* a DuckDB file (``cdm.duckdb`` or ``duckdb:///cdm.duckdb``): opened with ``read_only=True``. DuckDB is
  embedded (no server) and the default: ``pip install "hostats[omop]"``.
* a folder holding the CDM tables as CSV or parquet files (``person.csv``, ``concept.parquet``, ...), the
  usual shape of a CDM extract: DuckDB reads the files in place (an in-memory database holds only views).
* PostgreSQL (``postgresql://user@host/db`` with ``schema="cdm"``): ``pip install "hostats[postgres]"``;
  every query runs in a read-only transaction that is rolled back.

Tables used: person, observation_period, condition_occurrence, procedure_occurrence, drug_exposure, death,
measurement, and the vocabulary tables concept, concept_relationship and concept_ancestor.

The SQL (``omop_cohort.sql``, written once for both engines) and the concept sets (``concept_sets.toml``:
THA, hip revision, long-bone fractures, SCI, TBI, stroke, burns, HO, radiotherapy, NSAIDs, bisphosphonates,
ALP) ship with hostats; ``concept_sets=`` takes another file of the same shape. The result is a canonical
episodes table (patient_id = person_id, index_event, index_date, age_years, sex, prior_ho, prophylaxis,
nsaid_agent, ho, ho_date, death_date, last_followup_date) and an assessments table (ALP measurements during
follow-up), which then go through the same cleaning and ledger as any export. How many persons the CDM
holds, how many have an index event and how many episodes result is written in the ledger's notes.

Reference: OHDSI, The Book of OHDSI (2021), chapters 4 (the CDM), 5 (vocabularies: "Maps to",
concept_ancestor) and 10 (cohort definitions: entry event, observation period, first event per person);
OMOP CDM v5.4 specification.
"""
from __future__ import annotations

import hashlib
import re
import sys
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from hostats.errors import DataError, SpecError
from hostats.ingest import Mapping, RawSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CDM_TABLES = ("person", "observation_period", "condition_occurrence", "procedure_occurrence", "drug_exposure",
              "death", "measurement", "concept", "concept_relationship", "concept_ancestor")
SECTIONS = ("index", "outcome", "exposure", "measurement")
REQUIRED_SETS = {"outcome": ("ho",), "exposure": ("radiotherapy", "nsaid", "indomethacin", "ibuprofen",
                                                  "bisphosphonate"), "measurement": ("alp",)}
WINDOWS = ("radiotherapy", "nsaid", "bisphosphonate")
DOMAINS = ("condition", "procedure", "drug", "measurement")
_CODE = re.compile(r"[A-Za-z0-9.\-]+\*?")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def default_concept_sets() -> Path:
    """The concept sets that ship with hostats (``hostats/sources/concept_sets.toml``)."""
    return Path(str(resources.files("hostats.sources") / "concept_sets.toml"))


def _concept_set(path: Path, section: str, name: str, spec: Any, seen: set[str]) -> tuple:
    """One ``[section.name]`` table of a concept-set file, checked: ``(section, name, domain, [(vocabulary,
    code)])``; ``seen`` (the names so far) gains ``name``."""
    where = f"{path}: [{section}.{name}]"
    if not _NAME.fullmatch(name):
        raise SpecError(f"{where}: a set name is lower-case letters, digits and _")
    if name in seen:
        raise SpecError(f"{where}: the name {name!r} is used twice")
    seen.add(name)
    if section == "index":
        from hostats.schema import INDEX_EVENTS

        if name not in INDEX_EVENTS:
            raise SpecError(f"{where}: an index set is named after an index_event code {list(INDEX_EVENTS)}")
    if not isinstance(spec, dict) or set(spec) - {"label", "domain", "codes"}:
        raise SpecError(f"{where}: keys are label, domain and codes")
    if spec.get("domain") not in DOMAINS:
        raise SpecError(f"{where}: domain must be one of {list(DOMAINS)}, not {spec.get('domain')!r}")
    codes = spec.get("codes")
    if not isinstance(codes, list) or not codes:
        raise SpecError(f"{where}: codes must be a list of {{ vocabulary = \"...\", code = \"...\" }}")
    parsed = []
    for i, c in enumerate(codes, 1):
        if not isinstance(c, dict) or set(c) != {"vocabulary", "code"} or \
                not isinstance(c["vocabulary"], str) or not isinstance(c["code"], str):
            raise SpecError(f"{where}: code {i} must be {{ vocabulary = \"...\", code = \"...\" }}, not {c!r}")
        if not _IDENT.fullmatch(c["vocabulary"]) or not _CODE.fullmatch(c["code"]):
            raise SpecError(f"{where}: code {i} ({c['vocabulary']!r}, {c['code']!r}): a vocabulary is letters "
                            "and digits; a code is letters, digits, '.' and '-', with an optional final '*'")
        parsed.append((c["vocabulary"], c["code"]))
    return (section, name, spec["domain"], parsed)


def _windows(path: Path, windows: Any) -> dict[str, tuple[int, int]]:
    """The ``[windows]`` table of a concept-set file, checked: ``{name: (from_day, to_day)}``."""
    out_windows = {}
    for name in WINDOWS:
        w = windows.get(name)
        if not (isinstance(w, list) and len(w) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in w)
                and w[0] <= w[1]):
            raise SpecError(f"{path}: [windows] {name} must be [from_day, to_day] (integers, from <= to), not {w!r}")
        out_windows[name] = (int(w[0]), int(w[1]))
    if set(windows) - set(WINDOWS):
        raise SpecError(f"{path}: [windows] unknown key(s) {sorted(set(windows) - set(WINDOWS))}")
    return out_windows


def load_concept_sets(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a concept-set file: ``{"sets": [(section, name, domain, [(vocabulary, code)])],
    "windows": {name: (from_day, to_day)}}``. A mistake is a SpecError naming the file and the key."""
    path = Path(path) if path is not None else default_concept_sets()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("concept-set file not found", file=str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - set(SECTIONS) - {"windows"}
    if unknown:
        raise SpecError(f"{path}: unknown section(s) {sorted(unknown)}; expected {list(SECTIONS) + ['windows']}")
    sets, seen = [], set()
    for section in SECTIONS:
        body = raw.get(section, {})
        if not isinstance(body, dict):
            raise SpecError(f"{path}: [{section}] must hold tables [{section}.<name>]")
        for name, spec in body.items():
            sets.append(_concept_set(path, section, name, spec, seen))
    for section, names in REQUIRED_SETS.items():
        have = {n for s, n, _, _ in sets if s == section}
        if set(names) - have:
            raise SpecError(f"{path}: [{section}] needs the set(s) {sorted(set(names) - have)}")
    if not any(s == "index" for s, _, _, _ in sets):
        raise SpecError(f"{path}: at least one [index.<index_event>] set is needed")
    out_windows = _windows(path, raw.get("windows", {}))
    return {"sets": sets, "windows": out_windows, "path": str(path)}


def _sql_text() -> str:
    return (resources.files("hostats.sources") / "omop_cohort.sql").read_text(encoding="utf-8")


def cohort_queries(concept_sets: dict[str, Any], schema: str | None = None) -> dict[str, str]:
    """The read-only queries (``cohort``, ``assessments``, ``attrition``) with the concept sets, windows and
    schema filled in. Only validated names, codes and integers are ever put into the text."""
    if schema is not None and not _IDENT.fullmatch(schema):
        raise SpecError(f"schema {schema!r} is not a plain SQL identifier (letters, digits and _)")
    rows = [f"('{name}', '{domain}', '{vocab}', '{code[:-1] + '%' if code.endswith('*') else code}')"
            for _, name, domain, codes in concept_sets["sets"] for vocab, code in codes]
    index = [name for section, name, _, _ in concept_sets["sets"] if section == "index"]
    fields = {"codes": ",\n           ".join(rows),
              "priorities": ", ".join(f"('{n}', {i})" for i, n in enumerate(index, 1)),
              "cdm": f'"{schema}".' if schema else ""}
    for name, (lo, hi) in concept_sets["windows"].items():
        fields[f"{name}_from"], fields[f"{name}_to"] = str(lo), str(hi)
    text = _sql_text()
    parts = re.split(r"(?m)^-- @(ctes|query \w+)\s*$", text)
    blocks = dict(zip(parts[1::2], parts[2::2], strict=True))
    ctes = blocks.pop("ctes")
    return {key.split()[1]: Template("WITH " + ctes.strip() + "\n" + body.strip()).substitute(fields)
            for key, body in blocks.items()}


class _FrameSource:
    """A frame already in canonical shape, as a source for read_cohort (the OMOP assessments)."""

    def __init__(self, raw: RawSource) -> None:
        self._raw, self.mapping, self.site, self.assessments = raw, Mapping(), None, None

    def read_raw(self) -> RawSource:
        return self._raw


def _frame_hash(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()


class OmopCdm:
    """An OMOP CDM as a source for :func:`hostats.read_cohort` (see the module docstring).

    ``source``: a DuckDB file or ``duckdb:///`` URL, a folder of CDM tables (CSV/parquet), or a
    ``postgresql://`` URL. ``schema``: the schema holding the CDM tables (PostgreSQL default: the search
    path; DuckDB default: main). ``concept_sets``: a concept-set file (default: the one shipped).
    """

    source_kind = "omop"   # read_cohort's kind="omop" (``kind`` is the engine: duckdb, folder or postgres)

    def __init__(self, source: str | Path, *, schema: str | None = None, concept_sets: str | Path | None = None,
                 site: str | None = None) -> None:
        self.source = source
        self.schema = schema
        self.site = site
        self.concept_sets = load_concept_sets(concept_sets)
        self.queries = cohort_queries(self.concept_sets, schema)
        self.mapping = Mapping(columns={}, path=self.concept_sets["path"])
        self.kind, self.location = self._locate(source)
        self._results: dict[str, pd.DataFrame] | None = None

    # --- where the CDM is -------------------------------------------------------------------------------
    @staticmethod
    def _locate(source: Any) -> tuple[str, str]:
        text = str(source)
        if re.match(r"(?i)^postgres(ql)?(\+\w+)?://", text):
            return "postgres", re.sub(r"(?i)^postgres(ql)?(\+\w+)?://", "postgresql://", text)
        if text.lower().startswith("duckdb:///"):
            return "duckdb", text[len("duckdb:///"):]
        if "://" in text:
            raise DataError(f"an OMOP CDM is a DuckDB file, a folder of CDM tables or a postgresql:// URL, not "
                            f"{text.split('://')[0]}://...")
        path = Path(text)
        if path.is_dir():
            return "folder", text
        if not path.exists():
            raise DataError("the OMOP CDM does not exist (a DuckDB file, a folder of CDM tables or a "
                            "postgresql:// URL)", file=text)
        with open(path, "rb") as f:
            head = f.read(12)
        if head[8:12] != b"DUCK":  # a DuckDB database file carries "DUCK" at byte 8
            raise DataError("not a DuckDB database file: an OMOP CDM is a DuckDB file, a folder holding the CDM "
                            "tables as CSV or parquet files (person.csv, ...), or a postgresql:// URL", file=text)
        return "duckdb", text

    @property
    def name(self) -> str:
        """The CDM's name for the ledger and provenance (a URL without its password)."""
        if self.kind == "postgres":
            return "omop:" + re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", self.location) + \
                (f"#{self.schema}" if self.schema else "")
        return f"omop:{self.location}"

    # --- running the queries ----------------------------------------------------------------------------
    def _run_duckdb(self) -> dict[str, pd.DataFrame]:
        try:
            import duckdb
        except ImportError:
            raise DataError('reading an OMOP CDM with DuckDB needs duckdb: pip install "hostats[omop]"') from None
        try:
            if self.kind == "folder":
                con = duckdb.connect(":memory:")
                folder = Path(self.location)
                missing = []
                for t in CDM_TABLES:
                    files = [p for p in (folder / f"{t}.parquet", folder / f"{t}.csv", folder / f"{t}.csv.gz")
                             if p.exists()]
                    if not files:
                        missing.append(t)
                        continue
                    f = str(files[0]).replace("'", "''")
                    reader = f"read_parquet('{f}')" if files[0].suffix == ".parquet" else \
                        f"read_csv('{f}', header = true, auto_detect = true)"
                    con.execute(f'CREATE VIEW "{t}" AS SELECT * FROM {reader}')
                if missing:
                    raise DataError(f"the CDM folder lacks table(s) {missing} (as <table>.csv or <table>.parquet)",
                                    file=self.location)
            else:
                if not Path(self.location).exists():
                    raise DataError("the DuckDB file does not exist", file=self.location)
                con = duckdb.connect(self.location, read_only=True)
            try:
                schema = self.schema or "main"
                have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE "
                                                  "table_schema = ?", [schema]).fetchall()}
                self._check_tables(have)
                return {k: con.execute(q).fetchdf() for k, q in self.queries.items()}
            finally:
                con.close()
        except DataError:
            raise
        except duckdb.Error as exc:
            raise DataError(f"cannot read the OMOP CDM with DuckDB: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300]}", file=self.location) from None

    def _run_postgres(self) -> dict[str, pd.DataFrame]:
        try:
            import psycopg
        except ImportError:
            raise DataError('reading an OMOP CDM from PostgreSQL needs psycopg: pip install "hostats[postgres]"') \
                from None
        try:
            with psycopg.connect(self.location, autocommit=False) as con:
                con.read_only = True  # every transaction of this connection: BEGIN READ ONLY
                try:
                    have = {r[0] for r in con.execute(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                        "COALESCE(%s, current_schema())", [self.schema]).fetchall()}
                    self._check_tables(have)
                    out = {}
                    for k, q in self.queries.items():
                        cur = con.execute(q)
                        out[k] = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
                    return out
                finally:
                    con.rollback()  # never commit anything
        except DataError:
            raise
        except psycopg.Error as exc:
            msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise DataError(f"cannot read the OMOP CDM from {self.name}: {type(exc).__name__}: "
                            f"{msg.replace(self.location, self.name)}") from None

    def _check_tables(self, have: set[str]) -> None:
        missing = [t for t in CDM_TABLES if t not in {h.lower() for h in have}]
        if missing:
            raise DataError(f"the OMOP CDM {self.name} lacks table(s) {missing}"
                            + (f" in schema {self.schema!r}" if self.schema else ""))

    def results(self) -> dict[str, pd.DataFrame]:
        """The three query results (cohort, assessments, attrition), computed once."""
        if self._results is None:
            res = self._run_postgres() if self.kind == "postgres" else self._run_duckdb()
            for k in ("cohort", "assessments"):
                f = res[k]
                for c in f.columns:  # both engines: dates as datetime64, numbers as numbers
                    if c.endswith("date"):
                        f[c] = pd.to_datetime(f[c])
                    elif c in ("age_years", "value"):
                        f[c] = pd.to_numeric(f[c]).astype("float64")
                    elif c in ("prior_ho", "ho"):
                        f[c] = f[c].astype("int64")
            self._results = res
        return self._results

    # --- the source protocol ----------------------------------------------------------------------------
    def read_raw(self) -> RawSource:
        """The cohort query's rows (numbered 2, 3, ... in person_id order) with the attrition in a note."""
        res = self.results()
        frame = res["cohort"].reset_index(drop=True)
        att = res["attrition"].iloc[0]
        note = (f"OMOP CDM ({self.kind}): {int(att['persons'])} person(s); {int(att['persons_with_index_event'])} "
                f"with an index event; {int(att['episodes'])} with one inside an observation period (the first "
                f"per person is the episode); concept sets {self.concept_sets['path']}")
        return RawSource(frame, self.name + "#cohort", _frame_hash(frame), notes=[note])

    @property
    def assessments(self) -> _FrameSource:
        """ALP measurements of the cohort during follow-up, as an assessments source."""
        frame = self.results()["assessments"].reset_index(drop=True)
        return _FrameSource(RawSource(frame, self.name + "#measurement", _frame_hash(frame)))


__all__ = ["OmopCdm", "load_concept_sets", "cohort_queries", "default_concept_sets", "CDM_TABLES"]
