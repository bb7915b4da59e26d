"""Benchmark of the simulation-study engine on the prophylaxis study (run by hand; prints figures).

    python benchmarks/bench_simstudy.py                 # 1,000 replicates at n = 2,000 on 2 workers,
                                                        # plus 1 vs 2 workers and a 2-worker Dask cluster
    python benchmarks/bench_simstudy.py --reps 200 --subset 50
    python benchmarks/bench_simstudy.py --study tha_prophylaxis_loss30 --reps 500 --subset 0
                                                        # one loss-to-follow-up level, full run only

Target (issue 7): 1,000 replicates of the prophylaxis study at n = 2,000 in under 5 minutes on 2 cores
(``--study`` picks another study, e.g. a loss-to-follow-up level of it; ``--subset 0`` skips the comparison).
The 1-worker, 2-worker and Dask timings use the same ``--subset`` replicates (nothing read back from disk),
after a warm-up that starts the workers (imports and the generator's calibration, a few seconds each), and
the three must give identical numbers. The full run includes its own start-up.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from hostats import simstudy as ss

ROOT = Path(__file__).resolve().parent.parent


def _timed(label: str, study: ss.Study, reps: int, seed: int, **kw) -> tuple[float, pd.DataFrame]:
    t = time.perf_counter()
    res = ss.run_study(study, reps, seed, quiet=True, **kw)
    dt = time.perf_counter() - t
    print(f"{label:<34} {reps:>5} replicates  {dt:7.1f} s  ({dt / reps * 1000:6.0f} ms per replicate)", flush=True)
    return dt, res.replicates


def _compare_backends(study: ss.Study, subset: int, seed: int) -> None:
    """1 vs 2 joblib workers vs a 2-worker Dask cluster on the same replicates (identical numbers expected)."""
    # warm-up: start the worker processes (imports, the generator's calibration) before timing
    ss.run_study(study, 4, seed + 99, n_jobs=1)
    ss.run_study(study, 4, seed + 99, n_jobs=2)
    one, r1 = _timed("joblib, 1 worker", study, subset, seed + 1, n_jobs=1)
    two, r2 = _timed("joblib, 2 workers (warm)", study, subset, seed + 1, n_jobs=2)
    print(f"speed-up 1 -> 2 workers: {one / two:.2f}x")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed not installed: Dask comparison skipped")
    else:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            ss.run_study(study, 4, seed + 99, dask=client)  # warm-up
            dk, rd = _timed("dask LocalCluster, 2 workers", study, subset, seed + 1, dask=client)
        print(f"dask vs joblib (2 workers): {dk / two:.2f}x the time; identical results: {r2.equals(rd)}")
    print(f"1 vs 2 workers identical results: {r1.equals(r2)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--study", default="tha_prophylaxis",
                    help="study of analyses/simulation_study/study.py (tha_prophylaxis, tha_prophylaxis_loss10, ...)")
    ap.add_argument("--subset", type=int, default=200,
                    help="replicates for the 1 vs 2 workers vs Dask comparison (0: skip it)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--out", type=Path, default=None, help="keep the full run's replicates and report here")
    args = ap.parse_args()
    study_mod = ss.load_module(ROOT / "analyses" / "simulation_study" / "study.py")
    study = study_mod.build(args.study, args.n)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")

    if args.subset > 0:
        _compare_backends(study, args.subset, args.seed)

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_simstudy_"))
    full, _ = _timed("full run, joblib, 2 workers", study, args.reps, args.seed, n_jobs=2, out=out)
    print(f"{args.reps} replicates at n = {args.n}: {full:.1f} s ({'meets' if full < 300 else 'misses'} "
          f"the 5-minute target); replicates in {out}")
    res = ss.run_study(study, args.reps, args.seed, out=out, quiet=True)  # read back, nothing computed
    ss.write_outputs(res, out, study_file=ROOT / "analyses" / "simulation_study" / "study.py",
                     backend="joblib, 2 workers")
    wide = ss.performance_wide(res.performance())
    cols = ["estimand", "method", "n", "n_failed", "bias", "bias_mcse", "empirical_se", "model_se", "coverage",
            "coverage_mcse", "rejection"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 4):
        print(wide[cols].to_string(index=False))


if __name__ == "__main__":
    main()
