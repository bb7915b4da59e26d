"""Competing-risks speed and memory: hostats vs lifelines AalenJohansenFitter vs R cmprsk (cuminc, crr).

Run by hand:  python3 benchmarks/bench_competing.py [--sizes 100000 1000000] [--untied] [--no-lifelines]
              [--fine-gray]
Data: two groups, three states (0 censored, 1 HO, 2 death), times rounded to whole days (many ties, as
in a cohort; ``--untied``: continuous times), seeded. ``--fine-gray`` also times fine_gray with five
covariates (R's crr is quadratic in n, so it is timed on 5,000 rows only). Times are fit only (data generation excluded); peak memory by tracemalloc.
R is timed only when ``Rscript`` and cmprsk are installed (``apt-get install r-cran-cmprsk``).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import best_time_and_peak

from hostats.stats.competing.cif_fine_gray import cumulative_incidence, fine_gray


def make(n: int, seed: int = 1, untied: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    t_ho = rng.exponential(np.where(g == 1, 400.0, 600.0))
    t_death = rng.exponential(1500.0, n)
    cens = rng.uniform(30, 730, n)
    t = np.minimum.reduce([t_ho, t_death, cens])
    status = np.select([t == t_ho, t == t_death], [1, 2], 0)
    x = rng.normal(size=(n, 5))
    out = pd.DataFrame({"time": t if untied else np.ceil(t), "status": status,
                        "group": np.where(g == 1, "b", "a")})
    return pd.concat([out, pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])], axis=1)


def r_time(df: pd.DataFrame, call: str, repeat: int = 3) -> float | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.csv"
        df.to_csv(path, index=False)
        code = (f'suppressMessages(library(cmprsk)); d <- read.csv("{path}"); '
                f"best <- Inf; for (i in 1:{repeat}) {{ t0 <- proc.time()[['elapsed']]; "
                f"f <- {call}; "
                "best <- min(best, proc.time()[['elapsed']] - t0) }; cat(best)")
        out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True)
        if out.returncode != 0:
            return None
        return float(out.stdout.strip().split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--no-lifelines", action="store_true")
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--fine-gray", action="store_true")
    args = ap.parse_args()
    for n in args.sizes:
        df = make(n, untied=args.untied)
        _, sec, mb = best_time_and_peak(lambda df=df: cumulative_incidence(df, "time", "status", cause=1, group="group"), 3)
        print(f"n={n:>9,}  hostats AJ + Gray's test (2 groups): {sec:7.3f} s  peak {mb:7.1f} MiB")
        _, sec, mb = best_time_and_peak(lambda df=df: cumulative_incidence(df, "time", "status", cause=1), 3)
        print(f"n={n:>9,}  hostats AJ, one group:                {sec:7.3f} s  peak {mb:7.1f} MiB")
        if not args.no_lifelines and n <= 100_000:
            from lifelines import AalenJohansenFitter

            def lif(df=df):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    AalenJohansenFitter(seed=1).fit(df["time"], df["status"], event_of_interest=1)
            _, sec, mb = best_time_and_peak(lif)
            print(f"n={n:>9,}  lifelines AalenJohansenFitter (jitters ties): {sec:7.3f} s  peak {mb:7.1f} MiB")
        r = r_time(df, "cuminc(d$time, d$status, d$group)")
        if r is not None:
            print(f"n={n:>9,}  R cmprsk::cuminc (2 groups, incl. Gray's test): {r:7.3f} s")
        else:
            print(f"n={n:>9,}  R cmprsk not available")
        if args.fine_gray:
            formula = "x0 + x1 + x2 + x3 + x4"
            _, sec, mb = best_time_and_peak(lambda df=df, f=formula: fine_gray(df, f, "time", "status"))
            print(f"n={n:>9,}  hostats fine_gray, 5 covariates: {sec:7.3f} s  peak {mb:7.1f} MiB")
    if args.fine_gray:
        small = make(5000, untied=args.untied)
        _, sec, _ = best_time_and_peak(lambda: fine_gray(small, "x0 + x1 + x2 + x3 + x4", "time", "status"), 3, memory=False)
        print(f"n=    5,000  hostats fine_gray, 5 covariates: {sec:7.3f} s")
        r = r_time(small, "crr(d$time, d$status, as.matrix(d[, paste0('x', 0:4)]))", repeat=1)
        if r is not None:
            print(f"n=    5,000  R cmprsk::crr, 5 covariates: {r:7.3f} s")


if __name__ == "__main__":
    main()
