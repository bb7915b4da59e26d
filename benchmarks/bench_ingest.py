"""Benchmark: read_cohort + cleaning of a 1,000,000-episode CSV with every canonical column.

Run by hand: ``python benchmarks/bench_ingest.py [--rows N] [--keep]``. Prints seconds (writing excluded)
and peak RSS of the process. Target (2 cores): < 15 s and < 3 GB. The file has realistic text (mixed
booleans, codes in several spellings, a few faults) so every cleaning rule does real work.

``--study N``: instead, a synthetic study folder of N episodes (``hostats synth tha_prophylaxis``: four site
exports and the long assessments table, about 7 rows per episode), read as ``hostats run`` reads it; prints
the whole read_cohort and, separately, the assessments alone (issue 16: 1M episodes, 7.2M assessment rows).
read_cohort of that 1M study folder (seed 20261124) in a fresh process, before/after the issue 12 changes to
reading and cleaning (CSV columns encoded once, patient_id coded through the row rules, no whole-frame copies
where nothing changes), back to back at load 2.2-2.4: 19.5 s, peak RSS 2.02 GB -> 14.5 s, 1.46 GB (at load
6.2-6.8: 1.90-1.99 -> 1.45-1.46 GB). In the whole 1M ``hostats run`` (bench_reproduce.py --large-only, load
4.3-4.8) these changes alone move the peak from 2,263-2,282 MB to 2,017-2,054 MB; the peak is then in the
effect section, reading and cleaning reaching ~1.4 GB.

``--wide C``: instead, an export with C columns (3 canonical, the rest unrecognised) and ``--rows`` rows
(default 200 with --wide), read as ``hostats validate`` reads it. Issue 12: 5,000 columns took minutes
because the unrecognised columns were dropped one at a time (quadratic); now linear. Figures (2 cores,
200 rows): before 1,000 columns 3.2 s, 2,000 columns 18.2 s, 5,000 columns 205 s; after 0.20 s, 0.32 s
and 0.74 s (``hostats validate`` of the 5,000-column file: 1.4 s).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def write_export(path: Path, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    idx = pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 3500, n), unit="D")
    ho = rng.random(n) < 0.25
    died = rng.random(n) < 0.05
    proph = rng.choice(["none", "radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid"], n)
    rt = np.isin(proph, ["radiotherapy", "radiotherapy_nsaid"])
    iso = lambda d: d.strftime("%Y-%m-%d")  # noqa: E731
    df = pd.DataFrame({
        "patient_id": np.char.add("P", np.arange(n).astype(str)),
        "site": rng.choice(["A", "B", "C", "D"], n),
        "index_event": rng.choice(["tha", "THA", "hip_revision", "sci", "tbi", "burn", "resection"], n),
        "index_date": iso(idx),
        "age_years": rng.normal(65, 12, n).round(1).astype(str),
        "sex": rng.choice(["male", "female", "M", "F"], n),
        "prior_ho": rng.choice(["yes", "no", "1", "0"], n),
        "gram_negative_infection": rng.choice(["true", "false"], n),
        "early_intensive_therapy": rng.choice(["true", "false", ""], n),
        "prophylaxis": proph,
        "rt_dose_gy": np.where(rt, rng.choice(["7", "8", "7,5"], n), ""),
        "rt_hours_from_index": rng.normal(12, 6, n).round(1).astype(str),
        "nsaid_agent": np.where(np.isin(proph, ["nsaid", "radiotherapy_nsaid"]), "indomethacin", "none"),
        "adjuvant": rng.choice(["none", "etidronate", "indomethacin", "NA"], n),
        "ho": np.where(ho, "yes", "no"),
        "ho_date": np.where(ho, iso(idx + pd.to_timedelta(rng.integers(14, 360, n), unit="D")), ""),
        "ho_site": np.where(ho, rng.choice(["hip", "elbow", "knee"], n), ""),
        "brooker_grade": np.where(ho, rng.integers(1, 5, n), 0).astype(str),
        "symptomatic": np.where(ho, rng.choice(["yes", "no"], n), ""),
        "detection_modality": np.where(ho, rng.choice(["xray", "X-ray", "ct", "bone scan"], n), ""),
        "wound_complication": rng.choice(["0", "1"], n, p=[0.93, 0.07]),
        "tbsa_burned_percent": rng.uniform(0, 80, n).round(1).astype(str),
        "gcs_score": rng.integers(3, 16, n).astype(str),
        "death_date": np.where(died, iso(idx + pd.to_timedelta(rng.integers(370, 700, n), unit="D")), ""),
        "last_followup_date": iso(idx + pd.to_timedelta(rng.integers(365, 720, n), unit="D")),
    })
    faults = rng.choice(n, n // 100, replace=False)  # 1 % faulty cells in a few columns
    df.loc[faults[0::4], "age_years"] = "abc"
    df.loc[faults[1::4], "index_date"] = "2021-02-30"
    df.loc[faults[2::4], "sex"] = "unknown"
    df.loc[faults[3::4], "brooker_grade"] = "7"
    df.to_csv(path, index=False)


def write_wide(path: Path, columns: int, rows: int, seed: int = 1) -> None:
    """A wide export: the three required columns and ``columns - 3`` unrecognised ones."""
    rng = np.random.default_rng(seed)
    base = pd.DataFrame({"patient_id": [f"P{i}" for i in range(rows)], "index_event": "tha",
                         "index_date": "2021-01-01"})
    extra = pd.DataFrame(rng.integers(0, 9, (rows, columns - 3)), columns=[f"var_{i}" for i in range(columns - 3)])
    pd.concat([base, extra], axis=1).to_csv(path, index=False)


def bench_wide(columns: int, rows: int) -> None:
    import hostats

    with tempfile.TemporaryDirectory(prefix="hostats-bench-") as folder:
        path = Path(folder) / "wide.csv"
        write_wide(path, columns, rows)
        t0 = time.perf_counter()
        cohort = hostats.read_cohort(path, today="2026-01-01")
        print(f"{columns:,} columns x {rows:,} rows: read_cohort + cleaning {time.perf_counter() - t0:.2f} s "
              f"({len(cohort):,} kept)")


def bench_study(n: int) -> None:
    import hostats
    from hostats.cohort import read_assessments

    with tempfile.TemporaryDirectory(prefix="hostats-bench-") as folder:
        subprocess.run([sys.executable, "-m", "hostats.cli", "synth", "tha_prophylaxis", "-n", str(n), "--seed",
                        "20261124", "--out", folder], check=True, capture_output=True)
        t0, c0 = time.perf_counter(), time.process_time()
        cohort = hostats.read_cohort(folder, today="2026-12-01")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        assessments, _, _ = read_assessments(Path(folder) / "assessments.csv")
        awall, acpu = time.perf_counter() - t0, time.process_time() - c0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"study of {n:,} episodes: read_cohort {wall:.1f} s wall, {cpu:.1f} s CPU ({len(cohort):,} episodes "
              f"kept); assessments alone ({len(assessments):,} rows) {awall:.1f} s wall, {acpu:.1f} s CPU; "
              f"peak RSS {peak:.2f} GB (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--study", type=int, metavar="N", help="time a synthetic study folder of N episodes instead")
    ap.add_argument("--wide", type=int, metavar="C", help="time an export with C columns instead")
    ap.add_argument("--keep", action="store_true", help="keep the generated CSV")
    ap.add_argument("--write-only", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.wide:
        bench_wide(args.wide, args.rows or 200)
        return
    if args.study:
        bench_study(args.study)
        return
    args.rows = args.rows or 1_000_000
    if args.write_only:
        write_export(Path(args.write_only), args.rows)
        return
    folder = Path(tempfile.mkdtemp(prefix="hostats-bench-"))
    path = folder / "episodes.csv"
    t0 = time.perf_counter()
    # written by a child process, so that the peak RSS below is that of reading and cleaning only
    subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--write-only", str(path)], check=True)
    print(f"wrote {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    import hostats

    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    cohort = hostats.read_cohort(path, today="2026-01-01")
    seconds, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)  # less sensitive to a busy machine
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    load = os.getloadavg()[0]
    print(f"read_cohort + cleaning: {seconds:.1f} s wall, {cpu:.1f} s CPU; peak RSS {peak_gb:.2f} GB "
          f"(load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"kept {len(cohort.episodes):,}, excluded {cohort.ledger.rows_excluded:,}, "
          f"problems {len(cohort.problems):,}")
    if not args.keep:
        path.unlink()
        folder.rmdir()
    sys.exit(0)


if __name__ == "__main__":
    main()
