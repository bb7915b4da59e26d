"""Write ate_sim.csv and ate_sim_truth.json: a three-arm cohort with competing death, independent
censoring and a known marginal risk of HO by day 365 under each arm (the truth for tests/test_ate.py).

Data-generating process (numpy only, seed fixed; run from the repository root):
  age ~ N(60, 10), male ~ Bernoulli(0.5);
  arm (none, nsaid, radiotherapy) ~ multinomial logit: log(P(nsaid)/P(none)) = -0.3 + 0.03 (age - 60)
  + 0.4 male, log(P(radiotherapy)/P(none)) = -0.6 + 0.05 (age - 60) - 0.3 male;
  cause-specific hazards per day, constant in time (so the cause-specific Cox models are correct):
  HO   lambda1 = 0.0012 exp(b_arm + 0.03 (age - 60) + 0.4 male), b = (0, -0.5, -0.9);
  death lambda2 = 0.0002 exp(0.06 (age - 60) + 0.2 * (arm == radiotherapy));
  censoring independent, exponential with 30% lost per year (rate -log(0.7)/365 per day), and
  administrative censoring at day 730. Times rounded to 1e-6 day and free of ties
  before day 730 (so that R's
  riskRegression, which counts tied censoring times twice in the AIPCW integral, gives the same numbers).
Truth: F_a(365) = E_X[lambda1 / (lambda1 + lambda2) (1 - exp(-(lambda1 + lambda2) 365))] with everyone
set to arm a, averaged over 2 million draws of (age, male) (Monte Carlo error < 1e-4).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

ARMS = ["none", "nsaid", "radiotherapy"]
B_HO = np.array([0.0, -0.5, -0.9])
B_DEATH = np.array([0.0, 0.0, 0.2])
HORIZON = 365.0


def hazards(age, male, arm):
    l1 = 0.0012 * np.exp(B_HO[arm] + 0.03 * (age - 60) + 0.4 * male)
    l2 = 0.0002 * np.exp(0.06 * (age - 60) + B_DEATH[arm])
    return l1, l2


def risk(age, male, arm, t=HORIZON):
    l1, l2 = hazards(age, male, arm)
    return l1 / (l1 + l2) * (1 - np.exp(-(l1 + l2) * t))


def simulate(n: int, seed: int) -> pd.DataFrame:
    """One draw of the cohort (columns age, male, arm, time, status)."""
    rng = np.random.default_rng(seed)
    age = np.round(rng.normal(60, 10, n), 1)
    male = rng.binomial(1, 0.5, n)
    lin = np.column_stack([np.zeros(n), -0.3 + 0.03 * (age - 60) + 0.4 * male,
                           -0.6 + 0.05 * (age - 60) - 0.3 * male])
    p = np.exp(lin) / np.exp(lin).sum(axis=1, keepdims=True)
    arm = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    l1, l2 = hazards(age, male, arm)
    t_event = rng.exponential(1 / (l1 + l2))
    cause = np.where(rng.random(n) < l1 / (l1 + l2), 1, 2)
    t_cens = np.minimum(rng.exponential(365 / -np.log(0.7), n), 730.0)
    time = np.round(np.minimum(t_event, t_cens), 6)
    status = np.where(t_event <= t_cens, cause, 0)
    early = time[time < 730.0]  # the administrative censorings at day 730 tie, after the horizon
    if np.unique(early).size < early.size or time.min() <= 0:
        raise RuntimeError("tied or zero times: change the seed")
    return pd.DataFrame({"age": age, "male": male, "arm": [ARMS[k] for k in arm], "time": time,
                         "status": status})


def main(n: int = 3000, seed: int = 20261203) -> None:
    simulate(n, seed).to_csv("tests/data/ate_sim.csv", index=False)
    big = np.random.default_rng(seed + 1)
    age_b, male_b = big.normal(60, 10, 2_000_000), big.binomial(1, 0.5, 2_000_000)
    truth = {"horizon": HORIZON, "seed": seed, "n": n,
             "risk": {ARMS[k]: float(risk(age_b, male_b, np.full(age_b.size, k)).mean()) for k in range(3)}}
    with open("tests/data/ate_sim_truth.json", "w") as fh:
        json.dump(truth, fh, indent=1)


if __name__ == "__main__":
    main()
