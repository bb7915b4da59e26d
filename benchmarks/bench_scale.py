"""Benchmark: episodes beyond one machine's memory (issue 15, part 3).

Run by hand, one size at a time (it is heavy: do not run it beside other heavy jobs)::

    python benchmarks/bench_scale.py --n 10000000            # 10M episodes
    python benchmarks/bench_scale.py --n 50000000 --workers 2

Stages, each in a fresh process so its peak memory is its own:

1. generate: ``synthetic.generate("tha_prophylaxis")`` in chunks of ``--chunk`` episodes with seeds
   ``seed + i`` (patient ids prefixed by the chunk), each chunk's canonical episodes written to
   ``part-<i>.parquet`` and dropped: never more than one chunk in pandas.
2. duckdb: ``hostats.summarise(folder, by=[prophylaxis, sex, prior_ho, age_years], bins={age_years: 10})``,
   then Kaplan-Meier, Aalen-Johansen and logistic regression from the counts.
3. pandas (``--pandas``): the same summary by pandas batches of 1M rows.
   (``--in-memory``: for comparison, ``read_cohort`` and the row-level estimators on the first part only.)
4. dask: the same summary on a local ``dask.distributed`` cluster of ``--workers`` worker processes
   (1 thread each); the counts and the ledger must be identical to DuckDB's, and so the estimates.

Printed per stage: wall time, peak memory (the process tree's resident set, sampled every 0.2 s, workers
included; and the stage process's own ru_maxrss), and ``uptime``'s load average, because the machine is
shared. The files stay in ``--out`` (default: a temporary folder removed at the end) unless ``--keep``;
parts already there (same chunk, same seed) are reused, so a 10M run's parts are the first 10 of a 50M run.

Figures (2 cores, 2026-12-04 01:30-01:37 UTC, load 0.6-2.0; by prophylaxis x sex x prior HO x age band):

    episodes                      10M                          50M
    generate (chunks of 1M)       46 s, 1.89 GB peak           +40 chunks 170 s, 1.89 GB (0.61 GB parquet)
    duckdb summary                4.0 s, 0.33 GB               17.5 s, 0.35 GB
    pandas batches                15.8 s, 2.00 GB              75.1 s, 3.54 GB (2.52 GB with less read-ahead)
    dask.distributed, 2 workers   11.2 s, 2.45 GB (all procs)  45.9 s, 2.47 GB
    KM + AJ + logistic, counts    1.0-1.2 s                    1.0-1.2 s (92,144 / 119,833 count cells)

Counts, ledgers and every estimate identical across the three engines at both sizes. In memory, for
comparison (``--in-memory``): read_cohort + the same three estimators on 1M rows 5.2 s, 1.06 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BY = ["prophylaxis", "sex", "prior_ho", "age_years"]
BINS = {"age_years": 10}
TODAY = "2026-12-01"
FORMULA = "ho ~ age_years + C(sex) + prior_ho + C(prophylaxis, Treatment('none'))"


class TreePeak:
    """Peak resident memory of this process and all its children (Dask workers), sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._proc, self._interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # a worker that just ended
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def stage_generate(args) -> dict:
    import pyarrow.parquet as pq

    import synthetic

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_chunks = -(-args.n // args.chunk)
    written = 0
    for i in range(n_chunks):
        size = min(args.chunk, args.n - written)
        part = out / f"part-{i:04d}.parquet"
        if part.exists() and pq.read_metadata(part).num_rows == size:  # made by an earlier run (same seed)
            written += size
            continue
        ep = synthetic.generate("tha_prophylaxis", n=size, seed=args.seed + i, fault_rate=0).episodes
        ep["patient_id"] = f"c{i}-" + ep["patient_id"].astype(str)
        ep.to_parquet(part, index=False)
        written += size
        del ep
        print(f"  chunk {i + 1}/{n_chunks}: {written:,} episodes", file=sys.stderr, flush=True)
    size = sum(f.stat().st_size for f in out.glob("*.parquet"))
    return {"episodes": written, "files": n_chunks, "bytes": size}


def _estimates(summary) -> dict:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        km = summary.kaplan_meier(group="prophylaxis").at([365])
        aj = summary.cumulative_incidence(group="prophylaxis")
        lr = summary.logistic(FORMULA)
        seconds = time.perf_counter() - t0
    return {"seconds_estimators": seconds,
            "km_ho_free_365": dict(zip(km["group"].astype(str), km["estimate"].round(6), strict=True)),
            "aj_ho_365": {r.group: round(r.estimate, 6) for r in aj.at([365]).itertuples()},
            "gray_chisq": round(aj.gray_test.statistic, 4),
            "odds_ratios": {t: round(v, 6) for t, v in zip(lr.table()["term"], lr.table()["estimate"], strict=True)},
            "logistic_n": lr.n, "logistic_events": lr.events}


def stage_summarise(args) -> dict:
    import hostats

    kw = {}
    client = cluster = None
    if args.engine == "duckdb":
        kw = {"threads": args.threads, "memory_limit": args.memory_limit}
    if args.engine == "dask":
        import distributed

        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           memory_limit=args.worker_memory, dashboard_address=None)
        client = distributed.Client(cluster)
        kw = {"client": client}
    try:
        t0 = time.perf_counter()
        s = hostats.summarise(args.out, by=BY, bins=BINS, engine=args.engine, today=TODAY, **kw)
        seconds = time.perf_counter() - t0
    finally:
        if client is not None:
            client.close()
            cluster.close()
    s.counts.to_parquet(Path(args.out).parent / f"counts-{args.engine}.parquet")
    s.ledger.drop(columns="reason").to_parquet(Path(args.out).parent / f"ledger-{args.engine}.parquet")
    return {"seconds_summary": seconds, "rows_read": s.rows_read, "rows_kept": s.rows_kept,
            "rows_excluded": s.rows_excluded, "count_cells": len(s.counts), **_estimates(s)}


def stage_in_memory(args) -> dict:
    """The in-memory road on the first part only (for scale): read_cohort, then the row-level estimators."""
    import warnings

    import numpy as np

    import hostats

    first = sorted(Path(args.out).glob("*.parquet"))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ep = hostats.read_cohort(first, today=TODAY).episodes
        ep["age_years"] = np.floor(ep["age_years"] / 10) * 10
        ep["ho"] = ep["status"].eq(1).astype(float).where(ep["status"].notna())
        hostats.kaplan_meier(ep.assign(event=ep["ho"]), "time_days", "event", group="prophylaxis")
        hostats.cumulative_incidence(ep, "time_days", "status", group="prophylaxis")
        hostats.logistic(ep, FORMULA)
    return {"episodes": len(ep), "seconds": time.perf_counter() - t0}


def run_stage(args, stage: str, engine: str = "") -> dict:
    """Run one stage in a fresh Python process; its figures come back as JSON on stdout."""
    cmd = [sys.executable, __file__, "--stage", stage, "--engine", engine or "duckdb", "--n", str(args.n),
           "--chunk", str(args.chunk), "--out", str(args.out), "--seed", str(args.seed),
           "--workers", str(args.workers), "--threads", str(args.threads), "--memory-limit", args.memory_limit,
           "--worker-memory", args.worker_memory]
    before = load()
    with TreePeak() as peak:
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"stage {stage} {engine} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(wall_seconds=round(wall, 1), peak_tree_gb=round(peak.peak / 1e9, 2), load_before=before,
               load_after=load())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--out", default=None, help="folder for the parquet parts (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    ap.add_argument("--reuse", action="store_true", help="use the parts already in --out (skip generation)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    ap.add_argument("--memory-limit", default="8GB", help="DuckDB memory limit")
    ap.add_argument("--worker-memory", default="6GB", help="memory limit of each Dask worker")
    ap.add_argument("--pandas", action="store_true", help="also time the pandas batch engine")
    ap.add_argument("--in-memory", action="store_true",
                    help="also time read_cohort + the row-level estimators on the first part (for comparison)")
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="duckdb", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.stage:  # inside a stage process: do the work, print JSON with its own peak
        stages = {"generate": stage_generate, "summarise": stage_summarise, "in_memory": stage_in_memory}
        out = stages[args.stage](args)
        out["ru_maxrss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
        print(json.dumps(out, default=float))
        return

    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="hostats-scale-")
        args.out = str(Path(tmp) / "episodes")
    args.out = str(Path(args.out).resolve())
    print(f"hostats scale benchmark: {args.n:,} episodes of tha_prophylaxis in {args.out}; {os.cpu_count()} cores")
    results = {}
    try:
        if not args.reuse:
            results["generate"] = run_stage(args, "generate")
            g = results["generate"]
            print(f"generate  {g['wall_seconds']:8.1f} s  peak {g['peak_tree_gb']:5.2f} GB  "
                  f"({g['files']} parquet parts, {g['bytes'] / 1e9:.2f} GB on disk; load {g['load_before']})")
        if args.in_memory:
            m = run_stage(args, "in_memory")
            print(f"in memory {m['wall_seconds']:8.1f} s  peak {m['peak_tree_gb']:5.2f} GB  read_cohort + KM, AJ, "
                  f"logistic on the rows of the first part only ({m['episodes']:,} episodes; load {m['load_before']})")
            results["in_memory"] = m
        engines = ["duckdb"] + (["pandas"] if args.pandas else []) + ["dask"]
        for engine in engines:
            r = run_stage(args, "summarise", engine)
            results[engine] = r
            label = f"dask x{args.workers}" if engine == "dask" else engine
            print(f"{label:9s} {r['wall_seconds']:8.1f} s  peak {r['peak_tree_gb']:5.2f} GB  summary "
                  f"{r['seconds_summary']:.1f} s + estimators {r['seconds_estimators']:.2f} s; "
                  f"{r['rows_read']:,} read, {r['rows_kept']:,} kept, {r['count_cells']:,} count cells "
                  f"(load before {r['load_before']}, after {r['load_after']})")
        import pandas as pd

        base = Path(args.out).parent
        ref_c = pd.read_parquet(base / "counts-duckdb.parquet")
        ref_l = pd.read_parquet(base / "ledger-duckdb.parquet")
        for engine in engines[1:]:
            pd.testing.assert_frame_equal(pd.read_parquet(base / f"counts-{engine}.parquet"), ref_c)
            pd.testing.assert_frame_equal(pd.read_parquet(base / f"ledger-{engine}.parquet"), ref_l)
            same = {k: results[engine][k] == results["duckdb"][k]
                    for k in ("km_ho_free_365", "aj_ho_365", "gray_chisq", "odds_ratios")}
            print(f"{engine}: counts and ledger identical to duckdb's; estimates identical: {same}")
        d = results["duckdb"]
        print("HO-free survival at 365 days (KM, death censored):", d["km_ho_free_365"])
        print("cumulative incidence of HO at 365 days (Aalen-Johansen, death competing):", d["aj_ho_365"])
        print(f"Gray's test chi-square: {d['gray_chisq']}")
        print(f"odds ratios ({d['logistic_n']:,} analysed, {d['logistic_events']:,} HO):", d["odds_ratios"])
        print(json.dumps(results, default=float))
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
