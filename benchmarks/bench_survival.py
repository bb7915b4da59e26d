"""Speed and memory of hostats' Cox and Kaplan-Meier fits beside lifelines, statsmodels and R (run by hand).

    python benchmarks/bench_survival.py [--n 100000 1000000] [--p 10] [--times days|continuous]
                                        [--lifelines-max 1000000] [--repeat 3] [--no-r]

Data: n rows x p standard-normal covariates, exponential event times with log hazard ratios
linspace(-0.5, 0.5, p), independent exponential censoring (about half censored), seed 20261124. With
``--times days`` (default) times are whole days (ceil(365.25 t): ~2,000 distinct times, hundreds of events
per time, as in a cohort export); ``continuous`` keeps them untied. Times are fit times only (data already
in memory; R's CSV read is not timed), best of ``--repeat`` runs in one process (R: best of 2), every peer
in the same run on the same data, results compared first. Peers: Cox: lifelines CoxPHFitter (Efron ties;
skipped above ``--lifelines-max`` rows) and R survival::coxph(ties = "efron"); Kaplan-Meier (two groups,
curve only, the split by group timed): lifelines KaplanMeierFitter, statsmodels SurvfuncRight and R
survfit (log-log CI). hostats' KM also gives log-log CIs and the median table; its log-rank test is
computed on first access and timed separately. Peak memory: tracemalloc peak of
Python/numpy allocations during the fit (a separate untimed run). Before/after figures: run this script on
the old checkout (``PYTHONPATH=<old checkout>``) and on the new one; the ratios to the peers are the
comparable figures on a shared machine (the load is printed).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import best_time_and_peak

import hostats
from hostats.stats.survival.km_cox import cox, kaplan_meier

R_SCRIPT = r"""
suppressMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
covs <- setdiff(names(d), c("time", "event", "arm"))
f <- as.formula(paste("Surv(time, event) ~", paste(covs, collapse = " + ")))
best <- function(expr_fun, k) {  # best elapsed of k runs, and its CPU (user + system) time
  runs <- lapply(seq_len(k), function(i) system.time(expr_fun()))
  el <- sapply(runs, function(r) r[["elapsed"]])
  i <- which.min(el)
  c(el[i], runs[[i]][["user.self"]] + runs[[i]][["sys.self"]])
}
fit <- coxph(f, data = d, ties = "efron")
k <- as.integer(args[2])
t1 <- best(function() coxph(f, data = d, ties = "efron"), k)
t2 <- best(function() survfit(Surv(time, event) ~ arm, data = d, conf.type = "log-log"), k)
cat("R_COXPH", t1[1], t1[2], "\n")
cat("R_SURVFIT", t2[1], "\n")
cat("R_COEF", format(coef(fit), digits = 15), "\n")
cat("R_VERSION", R.version.string, "survival", format(packageVersion("survival")), "\n")
"""


def simulate(n: int, p: int, seed: int = 20261124, days: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = np.linspace(-0.5, 0.5, p)
    t = rng.exponential(np.exp(-(X @ beta)))
    c = rng.exponential(1.0, n)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(p)])
    df["time"] = np.minimum(t, c)
    if days:
        df["time"] = np.ceil(df["time"] * 365.25)
    df["event"] = (t <= c).astype(int)
    df["arm"] = rng.integers(0, 2, n)
    return df


def run_r(df: pd.DataFrame, k: int) -> dict[str, list[str]] | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        print("R: not run (Rscript not found; apt-get install r-base-core r-cran-survival)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bench.csv"
        df.to_csv(csv, index=False, float_format="%.17g")
        script = Path(tmp) / "bench.R"
        script.write_text(R_SCRIPT)
        out = subprocess.run([rscript, str(script), str(csv), str(k)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print("R failed:", out.stderr.strip()[-500:])
        return None
    return {ln.split()[0]: ln.split()[1:] for ln in out.stdout.splitlines() if ln.strip()}


def bench(n: int, args: argparse.Namespace) -> list[tuple[str, str, float, float]]:
    p, k = args.p, args.repeat
    df = simulate(n, p, days=args.times == "days")
    formula = " + ".join(f"x{i}" for i in range(p))
    print(f"\nn={n:,} p={p} events={int(df['event'].sum()):,} distinct times={df['time'].nunique():,} "
          f"(load average {os.getloadavg()[0]:.1f})")
    rows = []
    # warm-up on a small slice (imports) so the timing is the fit itself
    cox(df.iloc[:2000], formula, "time", "event")
    kaplan_meier(df.iloc[:2000], "time", "event", group="arm")
    res, t_cox, m_cox = best_time_and_peak(lambda: cox(df, formula, "time", "event"), repeat=k)
    print(f"  hostats cox (Efron, model SE)    {t_cox:7.2f} s  peak {m_cox:6.0f} MiB  iterations "
          f"{res._fit.iterations}")
    km, t_km, m_km = best_time_and_peak(lambda: kaplan_meier(df, "time", "event", group="arm"), repeat=k)
    _, t_lr, _ = best_time_and_peak(lambda: kaplan_meier(df, "time", "event", group="arm").logrank, repeat=k,
                                    memory=False)
    print(f"  hostats kaplan_meier             {t_km:7.3f} s  peak {m_km:6.0f} MiB  (curves, CIs, medians; "
          f"with the log-rank test {t_lr:.3f} s)")

    from lifelines import CoxPHFitter, KaplanMeierFitter
    from statsmodels.duration.survfunc import SurvfuncRight

    # the peers fit one group at a time: splitting the data by group is part of their time
    _, t_llkm, _ = best_time_and_peak(lambda: [KaplanMeierFitter().fit(g["time"], g["event"])
                                               for _, g in df.groupby("arm")], repeat=k, memory=False)
    sm = [None]
    _, t_smkm, _ = best_time_and_peak(lambda: sm.__setitem__(0, [SurvfuncRight(g["time"].to_numpy(), g["event"].to_numpy())
                                               for _, g in df.groupby("arm")]), repeat=k, memory=False)
    ours = km.curve[km.curve["group"] == 1]["estimate"].to_numpy()[1:]
    print(f"  max |S(t) diff| vs statsmodels   {np.max(np.abs(ours - sm[0][1].surv_prob)):.1e}")
    print(f"  lifelines KaplanMeierFitter      {t_llkm:7.3f} s   statsmodels SurvfuncRight {t_smkm:7.3f} s")
    rows += [("kaplan_meier", "lifelines", t_km, t_llkm), ("kaplan_meier", "statsmodels", t_km, t_smkm)]
    if n <= args.lifelines_max:
        cols = [f"x{i}" for i in range(p)] + ["time", "event"]
        cph, t_ll, _ = best_time_and_peak(lambda: CoxPHFitter().fit(df[cols], "time", "event"),
                                          repeat=min(k, 2), memory=False)
        diff = np.max(np.abs(res.coef.to_numpy() - cph.params_.to_numpy()))
        print(f"  lifelines CoxPHFitter            {t_ll:7.2f} s  max |coef diff| {diff:.1e}")
        rows.append(("cox", "lifelines", t_cox, t_ll))
    if not args.no_r:
        r = run_r(df, min(k, 2))
        if r is not None:
            t_r, t_rkm = float(r["R_COXPH"][0]), float(r["R_SURVFIT"][0])
            diff = np.max(np.abs(res.coef.to_numpy() - np.array([float(v) for v in r["R_COEF"]])))
            print(f"  R coxph {t_r:7.2f} s  survfit {t_rkm:7.3f} s  max |coef diff| {diff:.1e}  "
                  f"({' '.join(r['R_VERSION'])})")
            rows += [("cox", "R coxph", t_cox, t_r), ("kaplan_meier", "R survfit", t_km, t_rkm)]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--p", type=int, default=10)
    ap.add_argument("--times", choices=["days", "continuous"], default="days")
    ap.add_argument("--lifelines-max", type=int, default=1_000_000, help="largest n given to lifelines' Cox")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs (R: of 2)")
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    print(f"hostats from {Path(hostats.__file__).parent}; {os.cpu_count()} cores; times = {args.times}")
    started = time.time()
    table = []
    for n in args.n:
        table += [(n, *row) for row in bench(n, args)]
    print(f"\nratios hostats / peer (<= 1: hostats as fast or faster; one run, {time.time() - started:.0f} s, "
          f"load average now {os.getloadavg()[0]:.1f}):")
    for n, what, peer, ours, theirs in table:
        print(f"  {what:13s} n={n:>9,}  vs {peer:12s} {ours / theirs:5.2f}  ({ours:.3f} s vs {theirs:.3f} s)")


if __name__ == "__main__":
    main()
