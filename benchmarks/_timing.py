"""Shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``, so this folder is importable)."""
from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def best_time_and_peak(fn: Callable[[], Any], repeat: int = 1, memory: bool = True) -> tuple[Any, float, float]:
    """``fn()``'s result, its best wall time over ``repeat`` runs (the machine may be shared) and the
    tracemalloc peak in MiB of a separate run (tracing slows allocation, so that run is not timed; 0.0 when
    ``memory`` is False)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    peak = 0
    if memory:
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out, best, peak / 2**20
