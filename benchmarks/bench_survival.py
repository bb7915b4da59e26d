"""Speed and memory of hostats' Cox and Kaplan-Meier fits beside lifelines and R (run by hand).

    python benchmarks/bench_survival.py [--n 1000000] [--p 10] [--lifelines-n 100000] [--no-r]

Data: n rows x p standard-normal covariates, exponential event times with log hazard ratios
linspace(-0.5, 0.5, p), independent exponential censoring (about half censored), continuous (untied)
times; seed 20261124. Times are fit times only (data already in memory; R's CSV read is not timed).
lifelines' CoxPHFitter is run on ``--lifelines-n`` rows and scaled linearly to n (its cost is ~linear);
R's robust (sandwich) variance is compared on ``--robust-n`` rows because it grows faster than linearly.
R (``Rscript`` with the survival package) gets the same data through a CSV file in a temporary folder.
Peak memory is the tracemalloc peak of Python/numpy allocations during the fit.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import best_time_and_peak

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
t1 <- best(function() coxph(f, data = d, ties = "efron"), as.integer(args[3]))
nr <- as.integer(args[2])  # R's robust variance is slow (superlinear): time it on the first nr rows
t3 <- system.time(fitr <- coxph(f, data = d[seq_len(nr), ], ties = "efron", robust = TRUE))[["elapsed"]]
t2 <- system.time(km <- survfit(Surv(time, event) ~ arm, data = d, conf.type = "log-log"))[["elapsed"]]
cat("R_COXPH", t1[1], t1[2], "\n")
cat("R_SURVFIT", t2, "\n")
cat("R_COXPH_ROBUST", t3, "\n")
cat("R_COEF", format(coef(fit), digits = 15), "\n")
cat("R_VERSION", R.version.string, "survival", format(packageVersion("survival")), "\n")
"""


def simulate(n: int, p: int, seed: int = 20261124) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = np.linspace(-0.5, 0.5, p)
    t = rng.exponential(np.exp(-(X @ beta)))
    c = rng.exponential(1.0, n)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(p)])
    df["time"] = np.minimum(t, c)
    df["event"] = (t <= c).astype(int)
    df["arm"] = rng.integers(0, 2, n)
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--p", type=int, default=10)
    ap.add_argument("--lifelines-n", type=int, default=100_000)
    ap.add_argument("--robust-n", type=int, default=20_000, help="rows for the robust-SE comparison with R")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs (R: of 2)")
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    n, p = args.n, args.p
    df = simulate(n, p)
    formula = " + ".join(f"x{i}" for i in range(p))
    print(f"data: n={n:,} p={p} events={int(df['event'].sum()):,} unique times={df['time'].nunique():,}")

    # warm-up on a small slice (imports, formulaic) so the timing is the fit itself
    cox(df.iloc[:2000], formula, "time", "event")
    kaplan_meier(df.iloc[:2000], "time", "event", group="arm")

    k = args.repeat
    cpu0 = time.process_time()
    res, t_cox, m_cox = best_time_and_peak(lambda: cox(df, formula, "time", "event"), repeat=k)
    cpu_cox = (time.process_time() - cpu0) / (k + 1)  # mean CPU per fit (all threads)
    print(f"hostats cox (Efron, model SE):  {t_cox:7.2f} s  peak {m_cox:7.0f} MiB  "
          f"iterations {res._fit.iterations}  (CPU {cpu_cox:.2f} s per fit)")
    _, t_rob, m_rob = best_time_and_peak(lambda: cox(df, formula, "time", "event", robust=True), repeat=k)
    print(f"hostats cox (robust SE):        {t_rob:7.2f} s  peak {m_rob:7.0f} MiB")
    _, t_zph, _ = best_time_and_peak(lambda: res.check_ph(), memory=False)
    print(f"hostats check_ph (km):          {t_zph:7.2f} s")
    _, t_km, m_km = best_time_and_peak(lambda: kaplan_meier(df, "time", "event", group="arm"), repeat=k)
    print(f"hostats kaplan_meier (2 groups, log-rank): {t_km:5.2f} s  peak {m_km:7.0f} MiB")

    from lifelines import CoxPHFitter, KaplanMeierFitter

    ln = min(args.lifelines_n, n)
    sub = df.iloc[:ln][[f"x{i}" for i in range(p)] + ["time", "event"]]
    cph, t_ll, _ = best_time_and_peak(lambda: CoxPHFitter().fit(sub, "time", "event"), memory=False)
    ours_sub = cox(sub, formula, "time", "event")
    diff = np.max(np.abs(ours_sub.coef.to_numpy() - cph.params_.to_numpy()))
    print(f"lifelines CoxPHFitter on {ln:,}: {t_ll:7.2f} s (scaled to n: {t_ll * n / ln:7.1f} s); "
          f"max |coef diff| vs hostats {diff:.1e}")
    _, t_llkm, _ = best_time_and_peak(lambda: [KaplanMeierFitter().fit(g["time"], g["event"])
                                  for _, g in df.groupby("arm")], memory=False)
    print(f"lifelines KaplanMeierFitter (2 groups, no test): {t_llkm:5.2f} s")

    rscript = shutil.which("Rscript")
    if args.no_r or rscript is None:
        print("R: not run" + ("" if args.no_r else " (Rscript not found; apt-get install r-base-core "
                                                   "r-cran-survival)"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bench.csv"
        df.to_csv(csv, index=False, float_format="%.17g")
        script = Path(tmp) / "bench.R"
        script.write_text(R_SCRIPT)
        rn = min(args.robust_n, n)
        out = subprocess.run([rscript, str(script), str(csv), str(rn), str(min(k, 2))], capture_output=True, text=True,
                             check=False)
    if out.returncode != 0:
        print("R failed:", out.stderr.strip()[-500:])
        return
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.stdout.splitlines() if ln.strip()}
    t_r, cpu_r = float(lines["R_COXPH"][0]), float(lines["R_COXPH"][1])
    t_rkm = float(lines["R_SURVFIT"][0])
    t_rrob = float(lines["R_COXPH_ROBUST"][0])
    r_coef = np.array([float(v) for v in lines["R_COEF"]])
    print(" ".join(lines["R_VERSION"]))
    print(f"R coxph:   {t_r:7.2f} s (CPU {cpu_r:.2f} s)   hostats/R = {t_cox / t_r:.2f} wall, "
          f"{cpu_cox / cpu_r:.2f} CPU (target <= 1.5)")
    _, t_rob_sub, _ = best_time_and_peak(lambda: cox(df.iloc[:rn], formula, "time", "event", robust=True), memory=False)
    print(f"robust SE on the first {rn:,} rows: R coxph {t_rrob:.2f} s, hostats {t_rob_sub:.2f} s")
    print(f"R survfit: {t_rkm:7.2f} s   hostats/R = {t_km / t_rkm:.2f} (hostats includes the log-rank test)")
    print(f"max |coef diff| hostats vs R: {np.max(np.abs(res.coef.to_numpy() - r_coef)):.1e}")


if __name__ == "__main__":
    main()
