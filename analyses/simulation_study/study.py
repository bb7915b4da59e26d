"""Validation of hostats' estimators by simulation (ADEMP; Morris, White & Crowther 2019, Stat Med 38:2074).

Each study below is a ``hostats.simstudy.Study``: a data-generating mechanism drawn from ``synthetic``
(whose truth is known, computed from potential outcomes on a large population draw), the hostats
estimators compared, and the true estimands read from ``cohort.truth["population"]``. Run with
``hostats simulate NAME --reps R``; ``build(NAME, n)`` returns the Study.

Aims, data-generating mechanisms, estimands and methods of each study are in its ``description``.
All ratio estimands are on the log scale (bias, SE and coverage of log RR), so that the delta-method and
sandwich SEs the methods report are compared on the scale they were derived on.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
from scipy import special, stats  # special.logit, not logit: a ufunc imported by name pickles as ours

import hostats
import synthetic
from hostats.clean import derive_outcomes, interval_bounds
from hostats.simstudy import Estimate, Replicate, Study
from hostats.stats.interval import DETECTION_LAG_DAYS

HORIZON = 365
Z = float(stats.norm.ppf(0.975))
DEFAULT_N = {"tha_prophylaxis": 2000, "neurogenic": 2000, "detection": 2000, "resection_recurrence": 150}


def _seed(rng: np.random.Generator) -> int:
    """synthetic.generate takes an integer seed: draw it from the replicate's Generator."""
    return int(rng.integers(0, 2**63 - 1))


# --- 1. prophylaxis under confounding by indication ---------------------------------------------------

PROPHYLAXIS_OVERRIDES = {"loss_to_followup_per_year": 0.0}  # 1-year outcome fully observed
CONFOUNDERS = ["age_years", "sex", "prior_ho"]
CONTRASTS = {"rt": "radiotherapy", "bis": "bisphosphonate"}


def _prophylaxis_data(n: int) -> Callable:
    def generate(rng: np.random.Generator) -> pd.DataFrame:
        c = synthetic.generate("tha_prophylaxis", n, _seed(rng), overrides=PROPHYLAXIS_OVERRIDES, fault_rate=0.0)
        e = c.episodes[["prophylaxis", *CONFOUNDERS, "ho", "ho_date", "index_date"]].copy()
        # HO detected within 1 year (death competing: a patient who died first has no HO): the truth's outcome
        e["ho_1y"] = (e["ho"] & ((e["ho_date"] - e["index_date"]).dt.days <= HORIZON)).astype(int)
        return e
    return generate


def _log_rr(r1: float, r0: float, se_log: float) -> Estimate:
    lr = math.log(r1 / r0)
    return Estimate(lr, se_log, lr - Z * se_log, lr + Z * se_log)


def _rd(d: float, se: float) -> Estimate:
    return Estimate(d, se, d - Z * se, d + Z * se)


def crude(e: pd.DataFrame) -> dict[str, Estimate]:
    """Unadjusted risks per arm; Katz log-RR and Wald RD intervals (the confounded comparison)."""
    g = e.groupby("prophylaxis", observed=True)["ho_1y"].agg(["sum", "count"])
    x0, n0 = g.loc["none"]
    out = {}
    for key, arm in CONTRASTS.items():
        x1, n1 = g.loc[arm]
        r1, r0 = x1 / n1, x0 / n0
        out[f"log_rr_{key}"] = _log_rr(r1, r0, math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0))
        out[f"rd_{key}"] = _rd(r1 - r0, math.sqrt(r1 * (1 - r1) / n1 + r0 * (1 - r0) / n0))
    return out


def _iptw_table(e: pd.DataFrame) -> pd.DataFrame:
    """One IPTW fit per replicate, shared by the IPTW and AIPW methods (kept on the replicate's frame)."""
    if "iptw_table" not in e.attrs:
        res = hostats.iptw(e, "prophylaxis", CONFOUNDERS, "ho_1y", estimand="ATE", reference="none")
        e.attrs["iptw_table"] = res.table().set_index(["contrast", "measure"])
    return e.attrs["iptw_table"]


def iptw(e: pd.DataFrame) -> dict[str, Estimate]:
    """hostats.iptw: multinomial propensity over all five arms, stabilised ATE weights, sandwich SEs."""
    return _contrast_estimates(e, "")


def _contrast_estimates(e: pd.DataFrame, suffix: str) -> dict[str, Estimate]:
    """log RR and RD per contrast from the iptw table rows ``risk_ratio{suffix}``/``risk_difference{suffix}``."""
    t = _iptw_table(e)
    out = {}
    for key, arm in CONTRASTS.items():
        rr = t.loc[(f"{arm} vs none", f"risk_ratio{suffix}")]
        out[f"log_rr_{key}"] = Estimate(math.log(rr["estimate"]), rr["std_error"], math.log(rr["ci_lower"]),
                                        math.log(rr["ci_upper"]))
        rd = t.loc[(f"{arm} vs none", f"risk_difference{suffix}")]
        out[f"rd_{key}"] = Estimate(rd["estimate"], rd["std_error"], rd["ci_lower"], rd["ci_upper"])
    return out


def regression(e: pd.DataFrame) -> dict[str, Estimate]:
    """hostats.iptw's outcome-regression rows: a logistic outcome model per arm on the confounders,
    standardised to the whole cohort (g-formula), influence-function SEs."""
    return _contrast_estimates(e, "_regression")


def aipw(e: pd.DataFrame) -> dict[str, Estimate]:
    """hostats.iptw's doubly robust AIPW risk difference (outcome model per arm, influence-function SE)."""
    t = _iptw_table(e)
    out = {}
    for key, arm in CONTRASTS.items():
        rd = t.loc[(f"{arm} vs none", "risk_difference_aipw")]
        out[f"rd_{key}"] = Estimate(rd["estimate"], rd["std_error"], rd["ci_lower"], rd["ci_upper"])
    return out


def prophylaxis_study(n: int) -> Study:
    truth = synthetic.generate("tha_prophylaxis", 10, 0, overrides=PROPHYLAXIS_OVERRIDES, fault_rate=0.0
                               ).truth["population"]["contrasts"]
    est = {}
    for key, arm in CONTRASTS.items():
        c = truth[f"{arm}_vs_none"]
        est[f"log_rr_{key}"] = math.log(c["risk_ratio"])
        est[f"rd_{key}"] = c["risk_difference"]
    rr_targets = [k for k in est]
    return Study(
        name="tha_prophylaxis", generate=_prophylaxis_data(n),
        methods={"crude": crude, "regression": regression, "iptw": iptw, "aipw": aipw},
        truth=est, targets={"aipw": ["rd_rt", "rd_bis"], "crude": rr_targets,
                            "regression": rr_targets, "iptw": rr_targets},
        null=0.0, config={"scenario": "tha_prophylaxis", "n": n, "overrides": PROPHYLAXIS_OVERRIDES},
        estimand_labels={"log_rr_rt": "log risk ratio, radiotherapy vs none",
                         "rd_rt": "risk difference, radiotherapy vs none",
                         "log_rr_bis": "log risk ratio, bisphosphonate vs none (true null)",
                         "rd_bis": "risk difference, bisphosphonate vs none (true null)"},
        description=(
            "Aim: does adjustment for confounding by indication recover the marginal effect of prophylaxis on "
            "1-year HO after total hip arthroplasty, with valid 95% CIs, and does a true null keep its 5% "
            "type-I error? "
            f"Data: synthetic 'tha_prophylaxis' (n = {n} per replicate; prophylaxis chosen more often for prior "
            "HO, male and older patients, who are at higher risk; loss to follow-up switched off so the 1-year "
            "outcome is observed for everyone; death competing). "
            "Estimands: the population marginal risk ratio (log scale) and risk difference of HO detected within "
            "365 days, radiotherapy vs none and bisphosphonate vs none (true RR 1), from the generator's "
            "potential outcomes (truth['population']['contrasts']). "
            "Methods: crude comparison of arm proportions; outcome regression (a logistic model of HO on age, "
            "sex and prior HO in each arm) standardised to the whole cohort (g-formula; a conditional odds "
            "ratio would not be compared with the marginal truth: odds ratios are non-collapsible); "
            "IPTW with a multinomial propensity model over all five arms (ATE, stabilised weights, sandwich SE); "
            "AIPW risk difference. Performance: bias, empirical and model SE, coverage, power (radiotherapy) "
            "and type-I error (bisphosphonate), with Monte-Carlo SEs."))


# --- 2. competing death: 1 - KM vs Aalen-Johansen ----------------------------------------------------

NEURO_OVERRIDES = {"death_within_1y": 0.30}  # high mortality (every injury type)
IMAGING_TESTS = ["xray", "bone_scan", "ct"]


def _neuro_data(n: int) -> Callable:
    def generate(rng: np.random.Generator) -> pd.DataFrame:
        c = synthetic.generate("neurogenic", n, _seed(rng), overrides=NEURO_OVERRIDES, fault_rate=0.0)
        e = derive_outcomes(c.episodes)  # hostats' own time_days / status (0 censored, 1 HO, 2 death first)
        t, st = e["time_days"].to_numpy(float), e["status"].to_numpy(dtype=np.int64)
        # Follow-up runs past the 12-month x-ray (synthetic.dgp), so the recorded times censor independently
        # before day 365. "time_last_image" ends the follow-up of censored patients at their last image
        # instead, as an analysis counting follow-up only to the last imaging would.
        a = c.assessments
        img = a[a["test"].isin(IMAGING_TESTS)]
        last = img.groupby("patient_id", observed=False)["date"].max().reindex(c.episodes["patient_id"])
        last_day = (last.to_numpy() - c.episodes["index_date"].to_numpy()) / np.timedelta64(1, "D")
        cut = (st == 0) & np.isfinite(last_day) & (last_day < t)
        return pd.DataFrame({"time_days": t, "status": st, "time_last_image": np.where(cut, last_day, t)})
    return generate


def _km_at_horizon(d: pd.DataFrame, time: str) -> Estimate:
    km = hostats.kaplan_meier(d.assign(ho_event=(d["status"] == 1).astype(int)), time, "ho_event")
    a = km.at([HORIZON]).iloc[0]
    s, lo, hi = float(a["estimate"]), float(a["ci_lower"]), float(a["ci_upper"])
    # Greenwood SE recovered from the log(-log) limits: se(S) = S |log S| se(log(-log S))
    se_ll = (math.log(-math.log(lo)) - math.log(-math.log(s))) / Z
    return Estimate(1 - s, s * abs(math.log(s)) * se_ll, 1 - hi, 1 - lo)


def _aj_at_horizon(d: pd.DataFrame, time: str) -> Estimate:
    a = hostats.cumulative_incidence(d, time, "status", cause=1).at([HORIZON]).iloc[0]
    return Estimate(float(a["estimate"]), float(a["std_error"]), float(a["ci_lower"]), float(a["ci_upper"]))


def one_minus_km(d: pd.DataFrame) -> Estimate:
    """1 - Kaplan-Meier at 365 days with death censored (the competing event treated as censoring)."""
    return _km_at_horizon(d, "time_days")


def aalen_johansen(d: pd.DataFrame) -> Estimate:
    """hostats.cumulative_incidence (Aalen-Johansen, death competing) at 365 days on the recorded times."""
    return _aj_at_horizon(d, "time_days")


def aalen_johansen_censored_at_last_image(d: pd.DataFrame) -> Estimate:
    """Aalen-Johansen at 365 days with censored follow-up ended at the last recorded image (informative)."""
    return _aj_at_horizon(d, "time_last_image")


def neurogenic_study(n: int) -> Study:
    truth = synthetic.generate("neurogenic", 10, 0, overrides=NEURO_OVERRIDES, fault_rate=0.0).truth["population"]
    return Study(
        name="neurogenic", generate=_neuro_data(n),
        methods={"one_minus_km": one_minus_km, "aalen_johansen": aalen_johansen,
                 "aalen_johansen_censored_at_last_image": aalen_johansen_censored_at_last_image},
        truth={"cif_365": truth["cumulative_incidence"]}, null=None,
        config={"scenario": "neurogenic", "n": n, "overrides": NEURO_OVERRIDES},
        estimand_labels={"cif_365": "cumulative incidence of HO at 365 days, death competing"},
        description=(
            "Aim: show the bias of 1 - Kaplan-Meier when death competes with HO, and check the Aalen-Johansen "
            "estimator. "
            f"Data: synthetic 'neurogenic' (n = {n}; 1-year mortality raised to 30% for every injury; loss to "
            "follow-up 10% a year as in the scenario). "
            "Estimand: P(HO detected within 365 days, before death) (truth['population']['cumulative_incidence'])"
            ". Methods: 1 - Kaplan-Meier with deaths censored; Aalen-Johansen cumulative incidence (hostats); "
            "both read at 365 days on the recorded times (follow-up runs past the 12-month x-ray, so only "
            "independent loss to follow-up censors before day 365). Third method "
            "('aalen_johansen_censored_at_last_image'): Aalen-Johansen with censored follow-up ended at the imaging "
            "times recorded, i.e. the last image; censoring then coincides with the last chance to detect HO "
            "(a negative 12-month x-ray, days 351-365, leaves no HO to find), is not independent of detection, "
            "and the curve's last steps are inflated. Performance: bias, coverage with Monte-Carlo SEs; 1 - KM "
            "is expected to be "
            "biased upward because it estimates the risk in a world where nobody dies."))


# --- 3. detection by imaging: onset timing ----------------------------------------------------------


def _detection_data(n: int) -> Callable:
    def generate(rng: np.random.Generator) -> pd.DataFrame:
        c = synthetic.generate("tha_prophylaxis", n, _seed(rng), fault_rate=0.0)
        e = interval_bounds(c.episodes, c.assessments)  # hostats' derivation from the assessments table
        keep = e["ho"].to_numpy(dtype=bool) & (e["ho_interval_hi_days"] > 0).to_numpy()  # day 0: prevalent
        cols = ["ho_interval_lo_days", "ho_interval_hi_days", "ho_interval_lo_test", "ho_interval_hi_test"]
        return e.loc[keep, cols].reset_index(drop=True)
    return generate


def first_positive(d: pd.DataFrame) -> Estimate:
    """Median day of the first positive image (Kaplan-Meier median with its Brookmeyer-Crowley CI)."""
    t = hostats.kaplan_meier(d.assign(ev=1), "ho_interval_hi_days", "ev").table()
    m = t[t["measure"] == "median_survival"].iloc[0]
    return Estimate(float(m["estimate"]), math.nan, float(m["ci_lower"]), float(m["ci_upper"]))


def _ic(d: pd.DataFrame, which: str, **kw) -> Estimate:
    t = hostats.interval_censored(d, **kw).table().set_index("measure")
    r = t.loc[which]
    if which in ("median_onset_weibull", "median_onset_lognormal"):
        # std_error is on the log scale: delta method back to days
        return Estimate(float(r["estimate"]), float(r["estimate"] * r["std_error"]), float(r["ci_lower"]),
                        float(r["ci_upper"]))
    return Estimate(float(r["estimate"]), math.nan, math.nan, math.nan)  # NPMLE: no bootstrap CI here


def turnbull(d):
    return _ic(d, "median_onset_npmle")


def weibull(d):
    return _ic(d, "median_onset_weibull")


def turnbull_lag(d):
    """hostats.interval_censored with each bound shifted by the mean lag of the test that set it."""
    return _ic(d, "median_onset_npmle", detection_lag_days=DETECTION_LAG_DAYS)


def weibull_lag(d):
    return _ic(d, "median_onset_weibull", detection_lag_days=DETECTION_LAG_DAYS)


def lognormal_lag(d):
    return _ic(d, "median_onset_lognormal", detection_lag_days=DETECTION_LAG_DAYS)


def detection_study(n: int) -> Study:
    truth = synthetic.generate("tha_prophylaxis", 10, 0, fault_rate=0.0).truth["population"]["onset"]
    return Study(
        name="detection", generate=_detection_data(n),
        methods={"first_positive_image": first_positive, "turnbull": turnbull, "weibull": weibull,
                 "turnbull_lag_corrected": turnbull_lag, "weibull_lag_corrected": weibull_lag,
                 "lognormal_lag_corrected": lognormal_lag},
        truth={"median_onset_days": truth["median_days"]}, null=None,
        config={"scenario": "tha_prophylaxis", "n": n, "detection_lag_days": DETECTION_LAG_DAYS},
        estimand_labels={"median_onset_days": "median time from surgery to true HO onset (days)"},
        description=(
            "Aim: how far is the day HO is first seen on imaging from the day it starts, and does "
            "interval-censored analysis close the gap? "
            f"Data: synthetic 'tha_prophylaxis' (n = {n}), scheduled x-rays at 6 weeks, 3, 6, 12 months and "
            "symptom-driven bone scans; episodes with HO detected. "
            "Estimand: median true onset among patients who develop HO (truth['population']['onset']). "
            "Methods: median day of the first positive image; Turnbull NPMLE median and Weibull median of the "
            "interval (last negative, first positive] (hostats.interval_censored); the same two, and the "
            "log-normal median (the true onset is log-normal, so this model is correctly specified), with the "
            "detection lag corrected by hostats (each bound shifted back by the mean lag of the test that set "
            "it: x-ray 24.5 days, bone scan 16 days; RATES.md R19, R20). The NPMLE median is run without bootstrap (its CI "
            "costs ~200 refits), so it has bias and empirical SE only. The imaging intervals bracket when HO "
            "becomes VISIBLE, not when it starts: without the lag correction both are expected to be biased "
            "upward."))


# --- 4. random-effects meta-analysis of recurrence ---------------------------------------------------

SITE_COUNTS = (5, 10, 30)
META_METHODS = {"DL": ("DL", False), "REML": ("REML", False), "REML_KH": ("REML", True)}


def _resection_overrides(k: int) -> dict:
    return {"sites": [f"S{i:02d}" for i in range(1, k + 1)], "site_shares": [1.0 / k] * k,
            "death_within_1y": 0.0, "loss_to_followup_per_year": 0.0}


def _meta_data(per_site: int, pooled: dict) -> Callable:
    mu, tau = pooled["logit_mean"], math.sqrt(pooled["tau2_logit"])

    def generate(rng: np.random.Generator) -> Replicate:
        data, truth = {}, {}
        for k in SITE_COUNTS:
            c = synthetic.generate("resection_recurrence", per_site * k, _seed(rng), overrides=_resection_overrides(k),
                                   fault_rate=0.0)
            g = c.episodes.groupby("site")["ho"].agg(["sum", "count"])
            data[k] = (g["sum"].to_numpy(float), g["count"].to_numpy(float))
            truth[f"new_site_logit_k{k}"] = float(mu + tau * rng.standard_normal())  # a new site's true rate
        return Replicate(data, truth)
    return generate


def _logit_yi_vi(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logit proportions and variances; 0.5 added to events and non-events only at sites with 0 or n events
    (metafor escalc(measure="PLO", to="only0"))."""
    cc = np.where((x == 0) | (x == n), 0.5, 0.0)
    xa, na = x + cc, n + 2 * cc
    return special.logit(xa / na), 1 / xa + 1 / (na - xa)


def meta_logit(data: dict, tau2: str, kh: bool) -> dict[str, Estimate]:
    """hostats.meta_effects on the logit proportions of each site count: pooled mean and prediction interval."""
    out = {}
    for k, (x, n) in data.items():
        yi, vi = _logit_yi_vi(x, n)
        r = hostats.meta_effects(yi, vi, method=tau2, knapp_hartung=kh)
        out[f"logit_mean_k{k}"] = Estimate(r.estimate, r.std_error, r.ci_lower, r.ci_upper)
        out[f"new_site_logit_k{k}"] = Estimate(r.estimate, math.nan, r.pred_lower, r.pred_upper)
    return out


def meta_glmm(data: dict) -> dict[str, Estimate]:
    """hostats.meta_proportions(transform="glmm"): the exact binomial-normal model (no continuity correction,
    no correlation between a site's estimate and its weight), Wald CI for mu, prediction interval for a site."""
    out = {}
    for k, (x, n) in data.items():
        r = hostats.meta_proportions(x, n, method="ML", transform="glmm")
        lo, hi, plo, phi = special.logit([r.ci_lower, r.ci_upper, r.pred_lower, r.pred_upper])
        out[f"logit_mean_k{k}"] = Estimate(r.estimate_transformed, r.std_error, lo, hi)
        out[f"new_site_logit_k{k}"] = Estimate(r.estimate_transformed, math.nan, plo, phi)
    return out


def resection_study(per_site: int) -> Study:
    pooled = synthetic.generate("resection_recurrence", 10, 0, overrides=_resection_overrides(5),
                                fault_rate=0.0).truth["population"]["pooled"]
    truth: dict[str, float | None] = {}
    labels = {}
    for k in SITE_COUNTS:
        truth[f"logit_mean_k{k}"] = pooled["logit_mean"]
        truth[f"new_site_logit_k{k}"] = None  # drawn with each replicate
        labels[f"logit_mean_k{k}"] = f"mean logit risk, {k} sites"
        labels[f"new_site_logit_k{k}"] = f"new site's logit risk (PI), {k} sites"
    return Study(
        name="resection_recurrence", generate=_meta_data(per_site, pooled),
        methods={**{m: partial(meta_logit, tau2=t, kh=kh) for m, (t, kh) in META_METHODS.items()},
                 "GLMM": meta_glmm}, truth=truth, null=None,
        config={"scenario": "resection_recurrence", "patients_per_site": per_site, "site_counts": SITE_COUNTS},
        estimand_labels=labels,
        description=(
            "Aim: coverage of the pooled recurrence rate and of the prediction interval for a new site when "
            "recurrence varies between sites (2-31%, RATES.md R17), with few or many sites. "
            f"Data: synthetic 'resection_recurrence' with 5, 10 and 30 sites of about {per_site} patients each "
            "(site logits ~ N(mu, tau2), death and loss to follow-up switched off so each site's 1-year "
            "recurrence proportion estimates its true risk). "
            "Estimands: mu, the mean logit recurrence risk (truth['population']['pooled']['logit_mean']); a new "
            "site's true logit risk, drawn from N(mu, tau2) with each replicate (prediction-interval coverage). "
            "Methods: hostats.meta_effects on logit proportions (0.5 added only at sites with 0 or all events) "
            "with tau2 by DerSimonian-Laird, by REML, and REML with the Knapp-Hartung CI; and the exact "
            "binomial-normal model (GLMM, hostats.meta_proportions transform='glmm'; Stijnen, Hamza & Ozdemir "
            "2010). Performance: bias and coverage with Monte-Carlo SEs; DL and REML with normal CIs are "
            "expected to under-cover with 5 sites, Knapp-Hartung to be close to 95%. With about 10% recurrence "
            "the inverse-variance methods on logit proportions are biased upward (a site with few events has a "
            "low logit AND a large variance, so it is down-weighted; zero-event sites get 0.5 added); the GLMM "
            "is not."))


STUDIES: dict[str, Callable[[int], Study]] = {
    "tha_prophylaxis": prophylaxis_study, "neurogenic": neurogenic_study, "detection": detection_study,
    "resection_recurrence": resection_study,
}


def names() -> list[str]:
    return list(STUDIES)


def build(name: str, n: int | None = None) -> Study:
    """The Study called ``name`` with ``n`` patients per replicate (per site for resection_recurrence)."""
    if name not in STUDIES:
        raise ValueError(f"unknown simulation study {name!r}; choose one of {', '.join(STUDIES)}")
    n = DEFAULT_N[name] if n is None else int(n)
    if n < 50:
        raise ValueError(f"n = {n} is too small for study {name!r} (at least 50)")
    return STUDIES[name](n)
