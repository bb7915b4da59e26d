"""Benchmark: hostats.logistic vs statsmodels Logit and scikit-learn at 10,000 to 1,000,000 rows x 10 covariates.

Run by hand (not a test):  python benchmarks/bench_logistic.py [--n 10000 100000 1000000] [--repeat 3]
Prints fit times (best of --repeat, all in one process and one run, on the same data) and the peak memory
allocated during each fit (tracemalloc, in a separate untimed run), then the ratios hostats / peer (target
<= 0.7 x statsmodels Logit). Data: seeded numpy Generator, 10 standard-normal covariates (two of them
dichotomised to 0/1), true log-odds -1.5 + x'b. hostats also checks the design (constant and collinear
terms; separation where the fit does not converge on a full Newton step) and computes the standard errors
(the c-statistic with its DeLong SE and statsmodels' results object are computed when first read);
scikit-learn fits only, so it is also timed with the SEs added the way statsmodels computes them, and
with its defaults (lbfgs, tol 1e-4, penalty=None), which stop short of the ML optimum. hostats runs its
thin products on one BLAS thread; the peers use the default threads, and statsmodels is also timed with
BLAS pinned to one thread from outside (on a busy 2-core machine the default threads contend). Before/after:
run the script with ``PYTHONPATH=<old checkout>`` and without.
"""
from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

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


def fit_sklearn(df):
    from sklearn.linear_model import LogisticRegression

    X = df[[f"x{i}" for i in range(10)]].to_numpy()
    return LogisticRegression(penalty=None, solver="newton-cholesky", tol=1e-8).fit(X, df["y"].to_numpy())


def fit_sklearn_lbfgs(df):
    """scikit-learn's defaults (lbfgs, tol 1e-4) without the penalty: stops before the ML optimum (the
    coefficient gap is printed)."""
    from sklearn.linear_model import LogisticRegression

    X = df[[f"x{i}" for i in range(10)]].to_numpy()
    return LogisticRegression(penalty=None).fit(X, df["y"].to_numpy())


def fit_sklearn_with_se(df):
    """scikit-learn's fit plus the standard errors hostats reports, computed as statsmodels computes them
    (the inverse of Logit's Hessian at the estimate)."""
    import statsmodels.api as sm

    res = fit_sklearn(df)
    X = sm.add_constant(df[[f"x{i}" for i in range(10)]].to_numpy())
    params = np.r_[res.intercept_, res.coef_.ravel()]
    res.bse_ = np.sqrt(np.diag(np.linalg.inv(-sm.Logit(df["y"].to_numpy(float), X).hessian(params))))
    return res


def fit_sm_one_thread(df):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return fit_sm_arrays(df)


METHODS = {"hostats.logistic": fit_hostats, "statsmodels Logit (arrays)": fit_sm_arrays,
           "statsmodels Logit, 1 BLAS thread": fit_sm_one_thread,
           "statsmodels logit (formula)": fit_sm_formula, "scikit-learn (newton-cholesky)": fit_sklearn,
           "scikit-learn (lbfgs, defaults)": fit_sklearn_lbfgs,
           "scikit-learn newton-chol. + SEs": fit_sklearn_with_se}


def main() -> None:
    import hostats

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"hostats from {Path(hostats.__file__).parent}; {os.cpu_count()} cores")
    warnings.simplefilter("ignore")
    ratios = []
    for n in args.n:
        df = make_data(n)
        print(f"\nn = {n:,} rows x 10 covariates, events = {int(df.y.sum()):,} (load average {os.getloadavg()[0]:.1f})")
        results, times = {}, {}
        for name, fit in METHODS.items():
            fit(df.head(2000))  # import and warm up outside the timing
            res, best, peak = best_time_and_peak(lambda fit=fit, df=df: fit(df), repeat=args.repeat)
            results[name], times[name] = res, best
            print(f"  {name:32s} fit {best:7.3f} s (best of {args.repeat})   peak allocated {peak:7.0f} MiB")
        ours = results["hostats.logistic"].coef.to_numpy()
        ref = np.asarray(results["statsmodels Logit (arrays)"].params)
        skl = np.r_[results["scikit-learn (newton-cholesky)"].intercept_, results["scikit-learn (newton-cholesky)"].coef_.ravel()]
        lbfgs = results["scikit-learn (lbfgs, defaults)"]
        se_gap = np.max(np.abs(results["hostats.logistic"].table().std_error.to_numpy()
                               - results["statsmodels Logit (arrays)"].bse))
        print(f"  max |coef difference| hostats vs statsmodels {np.max(np.abs(ours - ref)):.1e}, "
              f"vs scikit-learn {np.max(np.abs(ours - skl)):.1e}, vs scikit-learn lbfgs "
              f"{np.max(np.abs(ours - np.r_[lbfgs.intercept_, lbfgs.coef_.ravel()])):.1e}; "
              f"max |SE difference| vs statsmodels {se_gap:.1e}")
        ratios += [(n, peer, times["hostats.logistic"] / times[peer]) for peer in METHODS if peer != "hostats.logistic"]
    print(f"\nratios hostats / peer (one run; load average now {os.getloadavg()[0]:.1f}; target <= 0.7 x statsmodels Logit):")
    for n, peer, r in ratios:
        print(f"  n={n:>9,}  vs {peer:32s} {r:5.2f}")


if __name__ == "__main__":
    main()
