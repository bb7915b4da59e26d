"""Speed of hostats.iptw (run by hand: python benchmarks/bench_causal.py). Prints seconds per call."""
from __future__ import annotations

import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

from hostats.stats.causal.weighting import iptw

LEVELS = ["none", "radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid"]


def cohort(n: int, seed: int = 1, levels: list[str] = LEVELS) -> pd.DataFrame:
    """Arms (``levels``, the first the reference) whose propensities depend on age and prior HO; an HO
    outcome whose risk depends on age, prior HO and any treatment."""
    rng = np.random.default_rng(seed)
    age = rng.normal(65, 10, n)
    sex = rng.choice(["female", "male"], n)
    prior = rng.binomial(1, 0.1, n).astype(bool)
    site = rng.choice(list("ABCDEF"), n)
    lin = np.column_stack([np.zeros(n)] + [0.02 * (age - 65) * k + 0.8 * prior * (k % 2) - 0.2 * k
                                            for k in range(1, len(levels))])
    p = np.exp(lin)
    p /= p.sum(1, keepdims=True)
    arm = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1)
    risk = 1 / (1 + np.exp(-(-1.5 + 0.03 * (age - 65) + 1.0 * prior - 0.5 * (arm > 0))))
    return pd.DataFrame({"age_years": age, "sex": pd.Categorical(sex), "prior_ho": prior, "site": site,
                         "prophylaxis": pd.Categorical(np.array(levels)[arm], categories=levels),
                         "ho": rng.binomial(1, risk).astype(bool),
                         "rt": arm == 1})


def timed(label: str, f, reps: int = 1) -> None:
    t = time.perf_counter()
    for _ in range(reps):
        f()
    print(f"{label:<62s} {(time.perf_counter() - t) / reps:8.2f} s")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    conf = ["age_years", "sex", "prior_ho", "site"]
    for n in (10_000, 100_000):
        df = cohort(n)
        timed(f"binary ATE, logistic, n={n:,}", lambda df=df: iptw(df, "rt", conf, "ho"))
        timed(f"5-level ATE, multinomial, n={n:,}", lambda df=df: iptw(df, "prophylaxis", conf, "ho"))
        timed(f"5-level balance() + weighted_table1(), n={n:,}",
              lambda df=df, r=iptw(df, "prophylaxis", conf, "ho"): (r.balance(), r.weighted_table1()))
        timed(f"binary ATE, gbm, n={n:,}", lambda df=df: iptw(df, "rt", conf, "ho", ps_model="gbm"))
    df = cohort(20_000)
    for jobs in (1, 2):
        timed(f"5-level, 200 bootstrap replicates, n=20,000, n_jobs={jobs}",
              lambda jobs=jobs: iptw(df, "prophylaxis", conf, "ho", bootstrap=200, seed=1, n_jobs=jobs))
    df = cohort(100_000)
    tracemalloc.start()
    iptw(df, "prophylaxis", conf, "ho")
    peak = tracemalloc.get_traced_memory()[1]
    print(f"{'peak traced memory, 5-level, n=100,000':<62s} {peak / 2**20:8.1f} MiB")
