"""Benchmark: hostats.logistic vs statsmodels Logit on 1,000,000 rows x 10 covariates.

Run by hand (not a test):  python benchmarks/bench_logistic.py [--n 1000000] [--repeat 2]
Prints fit times (best of --repeat) and the peak memory allocated during each fit (tracemalloc, in a
separate untimed run). Data: seeded numpy Generator, 10 standard-normal covariates (two of them
dichotomised to 0/1), true log-odds -1.5 + x'b.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from _timing import best_time_and_peak


def make_data(n: int, seed: int = 20261124) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 10))
    X[:, 8] = X[:, 8] > 0.5
    X[:, 9] = X[:, 9] > 1.0
    beta = np.linspace(-0.4, 0.4, 10)
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-(-1.5 + X @ beta)))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(10)])
    df["y"] = y.astype(np.int8)
    return df


FORMULA = "y ~ " + " + ".join(f"x{i}" for i in range(10))


def fit_hostats(df):
    import hostats

    return hostats.logistic(df, FORMULA)


def fit_sm_arrays(df):
    import statsmodels.api as sm

    X = sm.add_constant(df[[f"x{i}" for i in range(10)]].to_numpy())
    return sm.Logit(df["y"].to_numpy(float), X).fit(disp=0)


def fit_sm_formula(df):
    import statsmodels.formula.api as smf

    return smf.logit(FORMULA, df).fit(disp=0)


METHODS = {"hostats.logistic": fit_hostats, "statsmodels Logit (arrays)": fit_sm_arrays,
           "statsmodels logit (formula)": fit_sm_formula}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    df = make_data(args.n)
    print(f"n = {args.n:,} rows x 10 covariates, events = {int(df.y.sum()):,}")
    warnings.simplefilter("ignore")
    results = {}
    for name, fit in METHODS.items():
        fit(df.head(2000))  # import and warm up outside the timing
        res, best, peak = best_time_and_peak(lambda fit=fit: fit(df), repeat=args.repeat)
        results[name] = res
        print(f"{name:30s} fit {best:6.2f} s (best of {args.repeat})   peak allocated {peak:7.0f} MiB")
    ours = results["hostats.logistic"].coef.to_numpy()
    ref = np.asarray(results["statsmodels Logit (arrays)"].params)
    print(f"max |coef difference| hostats vs statsmodels: {np.max(np.abs(ours - ref)):.2e}")
    c = results["hostats.logistic"].performance().set_index("measure").loc["c_statistic"]
    print(f"c-statistic {c['estimate']:.4f} (DeLong SE {c['std_error']:.5f})")


if __name__ == "__main__":
    main()
