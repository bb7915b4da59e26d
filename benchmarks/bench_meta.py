"""Speed of the meta-analysis functions (run by hand: python benchmarks/bench_meta.py).

Prints wall-clock seconds (median of a few repeats) for: meta_effects REML on k = 13, 100 and 1000 studies;
leave-one-out on k = 100; meta_proportions by logit, Freeman-Tukey and the binomial-normal GLMM on k = 20
and 200 studies; site_summary on 100 000 rows from 10 sites. Data are simulated with a fixed seed.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from hostats.stats.meta import meta_effects, meta_proportions, site_summary


def clock(func, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(20261124)
    for k in (13, 100, 1000):
        v = rng.uniform(0.01, 0.5, k)
        y = rng.normal(-0.5, np.sqrt(v + 0.2))
        print(f"meta_effects REML k={k:5d}: {clock(lambda y=y, v=v: meta_effects(y, v)):.4f} s")
    v = rng.uniform(0.01, 0.5, 100)
    y = rng.normal(-0.5, np.sqrt(v + 0.2))
    fit = meta_effects(y, v)
    print(f"leave_one_out k=  100: {clock(fit.leave_one_out, 3):.4f} s")
    for k in (20, 200):
        n = rng.integers(20, 400, k)
        x = rng.binomial(n, 1 / (1 + np.exp(-rng.normal(-2.0, 0.7, k))))
        for transform in ("logit", "ft", "glmm"):
            sec = clock(lambda x=x, n=n, t=transform: meta_proportions(x, n, transform=t), 3)
            print(f"meta_proportions {transform:5s} k={k:4d}: {sec:.4f} s")
    rows = 100_000
    data = pd.DataFrame({"site": rng.integers(0, 10, rows).astype(str), "ho": rng.random(rows) < 0.2,
                         "rt": rng.random(rows) < 0.4, "days": rng.uniform(1, 400, rows)})
    sec = clock(lambda: site_summary(data, "site", "ho", exposure="rt", time="days"), 3)
    print(f"site_summary 100000 rows, 10 sites: {sec:.4f} s")


if __name__ == "__main__":
    main()
