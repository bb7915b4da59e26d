"""Check by hand: Aalen-Johansen cumulative incidence of HO at day 365 against the synthetic truth.

Run: ``python benchmarks/bench_synthetic_horizon.py [N] [SEEDS]`` (default 200,000 episodes, 4 seeds; about
5 s a draw). Each draw goes through the whole pipeline: ``cohort.write(folder)`` (with export faults),
``hostats.read_cohort(folder)``, ``hostats.cumulative_incidence`` read at 365 days. Prints the estimate, the
population truth ``truth["population"]["cumulative_incidence"]``, z = (AJ - truth) / SE and the relative
difference; with the 12-month x-ray ending follow-up (the generator before follow-up ran past it) z was
+8 to +14 and the relative bias +6-8%.
"""
from __future__ import annotations

import sys
import tempfile
import warnings

import numpy as np

import hostats
import synthetic


def main(n: int = 200_000, seeds: int = 4) -> None:
    warnings.simplefilter("ignore")  # complete-case warnings for rows the export faults left without a date
    for scenario in ("tha_prophylaxis", "neurogenic"):
        z = []
        for seed in range(2026, 2026 + seeds):
            c = synthetic.generate(scenario, n, seed)
            with tempfile.TemporaryDirectory() as tmp:
                e = hostats.read_cohort(c.write(f"{tmp}/export")).episodes
            a = hostats.cumulative_incidence(e, "time_days", "status", cause=1).at([365]).iloc[0]
            est, se = float(a["estimate"]), float(a["std_error"])
            truth = c.truth["population"]["cumulative_incidence"]
            z.append((est - truth) / se)
            print(f"{scenario:16s} seed {seed}  AJ(365) {est:.4f} (SE {se:.4f})  truth {truth:.4f}  "
                  f"z {z[-1]:+.2f}  relative {est / truth - 1:+.2%}")
        print(f"{scenario:16s} mean z {np.mean(z):+.2f} over {seeds} draws of {n:,}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
