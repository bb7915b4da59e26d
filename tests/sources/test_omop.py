"""The HO cohort built from an OMOP CDM (hostats.sources.omop) against the synthetic CDM's known truth.

The synthetic CDM (synthetic/omop.py, independent of hostats) records for every person what a correct
cohort definition must find; the same SQL runs on DuckDB (a folder of CSV tables, a DuckDB file) and, when
HOSTATS_TEST_POSTGRES_URL is set (.ci/run sets it), on PostgreSQL, and must give identical cohorts."""
from __future__ import annotations

import json
import math
import os
import shutil
import uuid

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hostats
from hostats.errors import DataError, SpecError
from hostats.sources.omop import OmopCdm, cohort_queries, default_concept_sets, load_concept_sets
from synthetic import omop as synthetic_omop

duckdb = pytest.importorskip("duckdb")
PG_URL = os.environ.get("HOSTATS_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(not PG_URL, reason="HOSTATS_TEST_POSTGRES_URL is not set (.ci/run sets it)")
N, SEED = 1500, 20261204


@pytest.fixture(scope="module")
def cdm():
    return synthetic_omop.generate(n=N, seed=SEED)


@pytest.fixture(scope="module")
def cdm_folder(cdm, tmp_path_factory):
    return cdm.write(tmp_path_factory.mktemp("cdm") / "cdm")


@pytest.fixture(scope="module")
def cohort(cdm_folder):
    return hostats.read_cohort(cdm_folder, kind="omop")


@pytest.fixture(scope="module")
def duckdb_file(cdm, tmp_path_factory):
    path = tmp_path_factory.mktemp("duck") / "cdm.duckdb"
    con = duckdb.connect(str(path))
    for name, table in cdm.tables.items():
        con.register("t", table)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM t')
        con.unregister("t")
    con.close()
    return path


def _canonical(c) -> pd.DataFrame:
    cols = ["patient_id", "index_event", "index_date", "sex", "prophylaxis", "nsaid_agent", "prior_ho", "ho",
            "ho_date", "death_date", "last_followup_date", "age_years"]
    return c.episodes[cols].sort_values("patient_id").reset_index(drop=True)


def test_cohort_recovers_every_person_of_the_truth(cdm, cohort):
    truth = cdm.truth[cdm.truth["in_cohort"].astype(bool)].copy()
    truth["patient_id"] = truth["person_id"].astype(str)
    truth = truth.set_index("patient_id").sort_index()
    ep = cohort.episodes.assign(patient_id=lambda d: d["patient_id"].astype(str)).set_index("patient_id")
    assert sorted(ep.index) == sorted(truth.index)  # exactly the persons with an index event in observation
    ep = ep.loc[truth.index]
    assert len(cohort.excluded) == 0 and len(cohort.problems) == 0
    for col in ("index_event", "prophylaxis", "nsaid_agent", "sex"):
        assert (ep[col].astype(str) == truth[col].astype(str)).all(), col
    for col in ("prior_ho", "ho"):
        assert (ep[col].astype(bool) == truth[col].astype(bool)).all(), col
    for col in ("index_date", "ho_date", "death_date", "last_followup_date"):
        pd.testing.assert_series_equal(ep[col], truth[col], check_names=False, check_dtype=False)
    # age at index from year and month of birth (day 15): within a year of index year - year of birth
    approx = ep["index_date"].dt.year - truth["year_of_birth"]
    assert ((ep["age_years"] - approx).abs() <= 1).all()
    # assessments: the ALP measurements during follow-up (not the one before the index)
    n_alp = cohort.assessments.groupby("patient_id", observed=True).size()
    assert n_alp.reindex(truth.index, fill_value=0).tolist() == truth["n_alp"].tolist()
    assert set(cohort.assessments["test"]) == {"alp"}


def test_counts_and_attrition_match_the_generators_summary(cdm, cohort):
    s = cdm.summary
    ep = cohort.episodes
    assert len(ep) == s["episodes"]
    assert ep["index_event"].value_counts()[lambda x: x > 0].sort_index().to_dict() == s["by_index_event"]
    assert ep["prophylaxis"].value_counts()[lambda x: x > 0].sort_index().to_dict() == s["by_prophylaxis"]
    assert int(ep["ho"].sum()) == s["ho"] and int(ep["prior_ho"].sum()) == s["prior_ho"]
    assert len(cohort.assessments) == s["alp_measurements"]
    note = next(n for n in cohort.ledger.notes if "OMOP CDM" in n)
    assert f"{N} person(s)" in note and f"{s['episodes']} with one inside an observation period" in note


def test_ho_risk_by_arm_recovers_the_generators_probabilities(cdm, cohort):
    """1 - Kaplan-Meier at 180 days (death and loss censored) estimates the generator's HO probability per
    arm: HO days are drawn from 20-180 independently of follow-up and death."""
    ep = cohort.episodes.assign(
        t=lambda d: (d["ho_date"].fillna(d["last_followup_date"]) - d["index_date"]).dt.days.astype(float),
        e=lambda d: d["ho"].astype(bool))
    km = hostats.kaplan_meier(ep, "t", "e", group="prophylaxis").at([180])
    for arm, p in synthetic_omop.PARAMETERS["ho_probability"].items():
        row = km[km["group"].astype(str) == arm].iloc[0]
        n = int((ep["prophylaxis"] == arm).sum())
        assert abs((1 - row["estimate"]) - p) < 4 * math.sqrt(p * (1 - p) / n), (arm, row["estimate"], p, n)


def test_duckdb_file_is_opened_read_only_and_gives_the_same_cohort(duckdb_file, cohort, monkeypatch):
    before = duckdb_file.read_bytes()
    calls = []
    real = duckdb.connect

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", spy)
    c = hostats.read_cohort(f"duckdb:///{duckdb_file}", kind="omop")
    assert calls and all(k.get("read_only") is True for k in calls)
    pd.testing.assert_frame_equal(_canonical(c), _canonical(cohort))
    assert duckdb_file.read_bytes() == before
    # a statement that writes is refused by the connection itself, not only by hostats' own SQL
    monkeypatch.setattr(duckdb, "connect", real)
    src = OmopCdm(duckdb_file)
    src.queries = dict(src.queries, attrition='CREATE TABLE "hostats_was_here" AS SELECT 1 AS x')
    with pytest.raises(DataError, match="(?i)read.only"):
        src.results()


def _load_postgres(cdm, schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
        for name, t in cdm.tables.items():
            cols = []
            for c in t.columns:
                if c.endswith("_date"):
                    typ = "DATE"
                elif pd.api.types.is_integer_dtype(t[c]):
                    typ = "BIGINT"
                elif pd.api.types.is_float_dtype(t[c]):
                    typ = "DOUBLE PRECISION"
                else:
                    typ = "TEXT"
                cols.append(f'"{c}" {typ}')
            con.execute(f'CREATE TABLE "{schema}"."{name}" ({", ".join(cols)})')
            with con.cursor().copy(f'COPY "{schema}"."{name}" FROM STDIN WITH (FORMAT csv, HEADER true)') as cp:
                cp.write(t.to_csv(index=False, date_format="%Y-%m-%d"))


@pytest.fixture(scope="module")
def pg_schema(cdm):
    import psycopg

    schema = f"cdm_{uuid.uuid4().hex[:10]}"
    _load_postgres(cdm, schema)
    yield schema
    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f'DROP SCHEMA "{schema}" CASCADE')


@needs_postgres
def test_postgres_gives_the_same_cohort_as_duckdb(pg_schema, cohort):
    c = hostats.read_cohort(OmopCdm(PG_URL, schema=pg_schema))
    pd.testing.assert_frame_equal(_canonical(c), _canonical(cohort))
    a = c.assessments.sort_values(["patient_id", "date", "value"]).reset_index(drop=True)
    b = cohort.assessments.sort_values(["patient_id", "date", "value"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[["patient_id", "date", "test", "value"]], b[["patient_id", "date", "test", "value"]])
    assert c.provenance["sources"][0]["name"].startswith("omop:postgresql://")


@needs_postgres
def test_postgres_session_is_read_only(pg_schema):
    src = OmopCdm(PG_URL, schema=pg_schema)
    src.queries = dict(src.queries, attrition=f'CREATE TABLE "{pg_schema}"."hostats_was_here" (x int)')
    with pytest.raises(DataError, match="read-only transaction"):
        src.results()


@needs_postgres
def test_postgres_schema_without_a_cdm(pg_schema):
    with pytest.raises(DataError, match=r"lacks table\(s\) \['person'"):
        hostats.read_cohort(OmopCdm(PG_URL, schema="public"))


# --- concept sets, errors, study folders, the command line ---------------------------------------------------

def test_shipped_concept_sets_are_readable_and_complete():
    sets = load_concept_sets()
    names = {(s, n) for s, n, _, _ in sets["sets"]}
    for want in [("index", "tha"), ("index", "long_bone_fracture"), ("index", "sci"), ("index", "tbi"),
                 ("index", "stroke"), ("index", "burn"), ("outcome", "ho"), ("exposure", "radiotherapy"),
                 ("exposure", "nsaid"), ("exposure", "bisphosphonate"), ("measurement", "alp")]:
        assert want in names
    ho = next(c for s, n, _, c in sets["sets"] if n == "ho")
    assert ("ICD10CM", "M61.5*") in ho and not any(code.startswith(("M61.1", "M61.4")) for _, code in ho)
    q = cohort_queries(sets, schema="cdm")
    assert set(q) == {"cohort", "assessments", "attrition"}
    assert all(t.startswith("WITH ") and "${" not in t for t in q.values())
    assert '"cdm".person' in q["cohort"] and "'M61.5%'" in q["cohort"]


@pytest.mark.parametrize("edit,match", [
    (lambda t: t.replace('code = "27130"', 'code = "27130\'; DROP TABLE person; --"'), r"\[index.tha\]: code 1"),
    (lambda t: t.replace("radiotherapy = [-1, 3]", "radiotherapy = [3, -1]"), r"\[windows\] radiotherapy"),
    (lambda t: t.replace("[index.burn]", "[index.burns]"), r"\[index.burns\]: an index set is named after"),
    (lambda t: t.replace('domain = "drug"', 'domain = "drugs"', 1), r"\[exposure.nsaid\]: domain must be"),
    (lambda t: t.replace("[outcome.ho]", "[outcome.heterotopic]"), r"\[outcome\] needs the set\(s\) \['ho'\]"),
])
def test_bad_concept_set_file_is_a_clear_error(tmp_path, edit, match):
    p = tmp_path / "sets.toml"
    p.write_text(edit(default_concept_sets().read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(SpecError, match=match) as err:
        load_concept_sets(p)
    assert str(p) in str(err.value)


def test_bad_schema_name_is_refused(cdm_folder):
    with pytest.raises(SpecError, match="not a plain SQL identifier"):
        OmopCdm(cdm_folder, schema='cdm"; DROP SCHEMA cdm; --')


def test_missing_cdm_and_missing_tables(tmp_path, cdm_folder):
    with pytest.raises(DataError, match="does not exist"):
        hostats.read_cohort(tmp_path / "nowhere.duckdb", kind="omop")
    with pytest.raises(DataError, match="not a DuckDB database file") as err:
        hostats.read_cohort(cdm_folder / "person.csv", kind="omop")
    assert err.value.file == str(cdm_folder / "person.csv")
    partial = tmp_path / "partial"
    shutil.copytree(cdm_folder, partial)
    (partial / "concept_ancestor.csv").unlink()
    (partial / "death.csv").unlink()
    with pytest.raises(DataError, match=r"lacks table\(s\) \['death', 'concept_ancestor'\]"):
        hostats.read_cohort(partial, kind="omop")
    with pytest.raises(SpecError, match="mapping file does not apply"):
        hostats.read_cohort(cdm_folder, mapping="x.toml", kind="omop")


def test_study_folder_with_an_omop_cdm(tmp_path, cdm_folder, cohort):
    study = tmp_path / "study"
    shutil.copytree(cdm_folder, study / "cdm")
    (study / "export.toml").write_text('[[episodes]]\npath = "cdm"\nkind = "omop"\nsite = "network A"\n')
    c = hostats.read_cohort(study)
    assert len(c.episodes) == len(cohort.episodes) and set(c.episodes["site"]) == {"network A"}
    assert c.assessments is not None and len(c.assessments) == len(cohort.assessments)


def test_validate_command_on_a_cdm(cdm_folder, cdm):
    from hostats.cli import app

    res = CliRunner().invoke(app, ["validate", str(cdm_folder), "--kind", "omop", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["rows_read"] == cdm.summary["episodes"] and out["rows_excluded"] == 0


def test_generator_is_seeded():
    a, b = synthetic_omop.generate(n=50, seed=7), synthetic_omop.generate(n=50, seed=7)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    assert not np.array_equal(synthetic_omop.generate(n=50, seed=8).tables["person"]["year_of_birth"],
                              a.tables["person"]["year_of_birth"])


def test_postgres_password_never_shown():
    pytest.importorskip("psycopg")
    src = OmopCdm("postgresql://reader:s3cret-pw@127.0.0.1:1/cdm")  # nothing listens on port 1
    assert "s3cret-pw" not in src.name and "reader:***@" in src.name
    with pytest.raises(DataError) as err:
        src.results()
    assert "s3cret-pw" not in str(err.value) and "cannot read the OMOP CDM" in str(err.value)
