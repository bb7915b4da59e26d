"""Benchmark: generate and write 1,000,000 episodes of tha_prophylaxis (target < 20 s on 2 cores).

Run by hand: ``python benchmarks/bench_synthetic.py [N]``. Prints the time of each stage, the sizes
written and the peak resident memory.
"""
from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import synthetic
from synthetic import cohort as _cohort


def main(n: int = 1_000_000) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    _cohort._calibrated.cache_clear()
    _cohort._population.cache_clear()
    c = synthetic.generate("tha_prophylaxis", n, seed=2026)
    t1, c1 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = c.write(Path(tmp) / "export")
        t2, c2 = time.perf_counter(), time.process_time()
        size = sum(p.stat().st_size for p in folder.iterdir())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"episodes            {len(c.episodes):>12,}")
    print(f"assessment rows     {len(c.assessments):>12,}")
    print(f"faults injected     {len(c.faults):>12,}")
    print("                                                      wall     cpu")
    print(f"generate (incl. calibration + 1M population draw) {t1 - t0:6.2f} s {c1 - c0:6.2f} s")
    print(f"write (4 site exports, assessments, truth)          {t2 - t1:6.2f} s {c2 - c1:6.2f} s")
    print(f"total                                               {t2 - t0:6.2f} s {c2 - c0:6.2f} s  (target < 20 s)")
    print(f"bytes written {size / 1e6:,.0f} MB; peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
