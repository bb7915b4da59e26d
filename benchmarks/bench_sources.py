"""Benchmark: the structured sources of issue 15 (REDCap export + dictionary; OMOP CDM on DuckDB).

Run by hand: ``python benchmarks/bench_sources.py [--redcap-copies K] [--omop-persons N]``. Prints seconds
for each road from file to Cohort.

* REDCap: the example project (tests/data/redcap, 53 rows of 12 records) copied K times under new record
  IDs (default 2,000: 106,000 rows, 24,000 records, 32,000 imaging rows), read with ``read_cohort(...,
  dictionary=...)``. Figures (2 cores, shared): first version 24 s (checkbox ticks combined over events by
  pandas' Python fallback for text max, every cell stripped one by one); now 2.2-3.5 s (machine load).
* OMOP: a synthetic CDM (synthetic/omop.py) of N persons (default 20,000) written as CSV, and the cohort
  built by DuckDB from the folder and from a DuckDB file. Figures (20,000 persons, 17,881 episodes, 52,697
  ALP rows): CSV folder 2.9 s, DuckDB file 0.8 s; writing the synthetic CDM 6.8 s (a per-person loop).
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hostats  # noqa: E402
from synthetic import omop  # noqa: E402

RC = ROOT / "tests" / "data" / "redcap"


def bench_redcap(copies: int, folder: Path) -> None:
    with open(RC / "ho_registry_export.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    path = folder / "big_export.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for k in range(copies):
            for r in rows:
                w.writerow(dict(r, record_id=f"{k}-{r['record_id']}"))
    t = time.perf_counter()
    c = hostats.read_cohort(path, RC / "ho_registry.mapping.toml", dictionary=RC / "ho_registry_dictionary.csv")
    print(f"REDCap {copies * len(rows):,} rows: {time.perf_counter() - t:.2f} s -> {c}")


def bench_omop(n: int, folder: Path) -> None:
    import duckdb

    t = time.perf_counter()
    cdm = omop.generate(n=n, seed=1)
    cdm_dir = cdm.write(folder / "cdm")
    print(f"synthetic CDM of {n:,} persons written in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    c = hostats.read_cohort(cdm_dir, kind="omop")
    print(f"OMOP (DuckDB over CSV files): {time.perf_counter() - t:.2f} s -> {c}")
    db = folder / "cdm.duckdb"
    con = duckdb.connect(str(db))
    for name, table in cdm.tables.items():
        con.register("t", table)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM t')
        con.unregister("t")
    con.close()
    t = time.perf_counter()
    c = hostats.read_cohort(db, kind="omop")
    print(f"OMOP (DuckDB file, read-only): {time.perf_counter() - t:.2f} s -> {c}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redcap-copies", type=int, default=2000)
    ap.add_argument("--omop-persons", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_redcap(args.redcap_copies, Path(tmp))
        bench_omop(args.omop_persons, Path(tmp))


if __name__ == "__main__":
    main()
