"""Validation of hostats' estimators by simulation (ADEMP; Morris, White & Crowther 2019, Stat Med 38:2074).

Each study below is a ``hostats.simstudy.Study``: a data-generating mechanism drawn from ``synthetic``
(whose truth is known, computed from potential outcomes on a large population draw), the hostats
estimators compared, and the true estimands read from ``cohort.truth["population"]``. Run with
``hostats simulate NAME --reps R``; ``build(NAME, n)`` returns the Study.

Loss to follow-up is a factor of the prophylaxis study, given as one Study per level (the engine runs one
study at a time, each with its own output folder): ``tha_prophylaxis`` (no loss), ``tha_prophylaxis_loss10``
and ``tha_prophylaxis_loss30`` (10% and 30% a year), with the same estimands, truth and methods.

Aims, data-generating mechanisms, estimands and methods of each study are in its ``description``.
All ratio estimands are on the log scale (bias, SE and coverage of log RR), so that the delta-method and
sandwich SEs the methods report are compared on the scale they were derived on.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats  # special.logit, not logit: a ufunc imported by name pickles as ours

import hostats
import synthetic
from hostats.analysis import FOLLOWUP_TOLERANCE_DAYS  # horizon_status_known as the analyses derive it
from hostats.clean import derive_outcomes, interval_bounds
from hostats.simstudy import Estimate, Replicate, Study
from hostats.stats.survival.interval_censoring import DETECTION_LAG_DAYS

HORIZON = 365
Z = float(stats.norm.ppf(0.975))
DEFAULT_N = {"tha_prophylaxis": 2000, "tha_prophylaxis_loss10": 2000, "tha_prophylaxis_loss30": 2000,
             "neurogenic": 2000, "detection": 2000, "resection_recurrence": 150}


def _seed(rng: np.random.Generator) -> int:
    """synthetic.generate takes an integer seed: draw it from the replicate's Generator."""
    return int(rng.integers(0, 2**63 - 1))


# --- 1. prophylaxis under confounding by indication, with loss to follow-up as a factor ---------------
#
# One Study per level of loss to follow-up (the engine has no factors: a level is a study of its own, with
# its own output folder and fingerprint). Every level has the same estimands and the same truth (risk of
# HO detected within 365 days with death competing and no loss to follow-up) and the same methods, so the
# three performance tables line up row by row.

CONFOUNDERS = ["age_years", "sex", "prior_ho"]
ARMS = {"none": "none", "rt": "radiotherapy", "bis": "bisphosphonate"}  # estimand key -> prophylaxis arm
CONTRASTS = {"rt": "radiotherapy", "bis": "bisphosphonate"}  # each vs "none"
LOSS_PER_YEAR = {"tha_prophylaxis": 0.0, "tha_prophylaxis_loss10": 0.10, "tha_prophylaxis_loss30": 0.30}
# hostats.ate methods compared (study method name -> ``methods=`` key of hostats.ate; its table is read by
# ate_method). "ate_iptw" is hostats.ate's IPTW Aalen-Johansen, whose SE includes the propensity model's
# estimation (iptw_aj's treats the weights as known).
ATE_METHODS: dict[str, str] = {"ate_iptw": "iptw", "ipcw": "ipcw", "gformula": "gformula", "aiptw": "aipw"}
METHOD_LABELS = {
    "cc_crude": "complete case: crude proportions",
    "cc_regression": "complete case: outcome regression (g-formula of binary HO by 365 d)",
    "cc_iptw": "complete case: IPTW (binary HO by 365 d)",
    "cc_aipw": "complete case: AIPW (binary HO by 365 d)",
    "iptw_aj": "IPTW Aalen-Johansen, hostats.iptw (censoring-aware)",
    "ate_iptw": "IPTW Aalen-Johansen, hostats.ate (censoring-aware)",
    "ipcw": "IPTW-IPCW, hostats.ate (censoring-aware)",
    "gformula": "g-formula (cause-specific Cox), hostats.ate (censoring-aware)",
    "aiptw": "AIPTW-AIPCW, hostats.ate (censoring-aware)",
}


@dataclass
class ProphylaxisReplicate:
    """One replicate: every episode with hostats' own ``time_days``/``status``, the binary ``ho_1y`` (HO
    detected within 365 days) and ``horizon_status_known``; ``fits`` keeps one fit per replicate that several
    methods read (e.g. the complete-case iptw table serves cc_iptw, cc_regression and cc_aipw)."""

    episodes: pd.DataFrame
    fits: dict = field(default_factory=dict)

    @property
    def complete_case(self) -> pd.DataFrame:
        """Episodes whose HO status at 365 days is known (the complete cases of the binary outcome)."""
        return self.cached("complete_case", lambda: self.episodes[self.episodes["horizon_status_known"]])

    def cached(self, key: str, fit: Callable[[], Any]) -> Any:
        if key not in self.fits:
            self.fits[key] = fit()
        return self.fits[key]


def _prophylaxis_data(n: int, loss: float) -> Callable:
    overrides = {"loss_to_followup_per_year": loss}

    def generate(rng: np.random.Generator) -> ProphylaxisReplicate:
        c = synthetic.generate("tha_prophylaxis", n, _seed(rng), overrides=overrides, fault_rate=0.0)
        e = derive_outcomes(c.episodes[["prophylaxis", *CONFOUNDERS, "index_date", "ho", "ho_date", "death_date",
                                        "last_followup_date"]])
        t = e["time_days"].to_numpy(float)
        st = e["status"].to_numpy(dtype=np.int64)  # 0 censored, 1 HO, 2 death first (never missing here)
        fu = e["followup_days"].to_numpy(float)
        out = e[["prophylaxis", *CONFOUNDERS]].assign(time_days=t, status=st)
        # HO detected within 1 year (death competing: a patient who died first has no HO): the truth's outcome
        out["ho_1y"] = ((st == 1) & (t <= HORIZON)).astype(int)
        # as the analyses derive it (hostats.analysis): event or death by the horizon, or follow-up reaching it
        out["horizon_status_known"] = ((st > 0) & (t <= HORIZON)) | (fu >= HORIZON - FOLLOWUP_TOLERANCE_DAYS)
        return ProphylaxisReplicate(out)
    return generate


def _log_rr(r1: float, r0: float, se_log: float) -> Estimate:
    lr = math.log(r1 / r0)
    return Estimate(lr, se_log, lr - Z * se_log, lr + Z * se_log)


def _rd(d: float, se: float) -> Estimate:
    return Estimate(d, se, d - Z * se, d + Z * se)


def _row(t: pd.DataFrame, contrast: str, measure: str, log: bool = False) -> Estimate:
    """One row of a hostats effect table indexed by (contrast, measure); ``log``: a ratio, returned as log
    ratio (its std_error is already on the log scale)."""
    r = t.loc[(contrast, measure)]
    f = math.log if log else float
    return Estimate(f(r["estimate"]), float(r["std_error"]), f(r["ci_lower"]), f(r["ci_upper"]))


def _effect_estimates(t: pd.DataFrame, suffix: str = "", risks: bool = True) -> dict[str, Estimate]:
    """Per-arm risks, RD and log RR of each contrast from an iptw/ate table indexed by (contrast, measure),
    reading rows ``risk_treated{suffix}``, ``risk_control{suffix}``, ``risk_difference{suffix}``, ``risk_ratio{suffix}``."""
    out = {}
    for key, arm in CONTRASTS.items():
        c = f"{arm} vs none"
        if risks:
            out[f"risk_{key}"] = _row(t, c, f"risk_treated{suffix}")
            out.setdefault("risk_none", _row(t, c, f"risk_control{suffix}"))
        out[f"rd_{key}"] = _row(t, c, f"risk_difference{suffix}")
        out[f"log_rr_{key}"] = _row(t, c, f"risk_ratio{suffix}", log=True)
    return out


def cc_crude(d: ProphylaxisReplicate) -> dict[str, Estimate]:
    """Complete case, unadjusted: arm proportions of HO by 365 among patients with known 1-year status
    (Wald risks and RD, Katz log RR): confounded by indication, and biased by loss to follow-up."""
    g = d.complete_case.groupby("prophylaxis", observed=True)["ho_1y"].agg(["sum", "count"])
    out = {}
    for key, arm in ARMS.items():
        x, m = g.loc[arm]
        r = x / m
        out[f"risk_{key}"] = _rd(r, math.sqrt(r * (1 - r) / m))
    x0, n0 = g.loc["none"]
    for key, arm in CONTRASTS.items():
        x1, n1 = g.loc[arm]
        r1, r0 = x1 / n1, x0 / n0
        out[f"log_rr_{key}"] = _log_rr(r1, r0, math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0))
        out[f"rd_{key}"] = _rd(r1 - r0, math.sqrt(r1 * (1 - r1) / n1 + r0 * (1 - r0) / n0))
    return out


def _cc_iptw_table(d: ProphylaxisReplicate) -> pd.DataFrame:
    """hostats.iptw of the binary outcome on the complete cases: one fit shared by cc_iptw/regression/aipw."""
    return d.cached("cc_iptw", lambda: hostats.iptw(d.complete_case, "prophylaxis", CONFOUNDERS, "ho_1y",
                                                    estimand="ATE", reference="none"
                                                    ).table().set_index(["contrast", "measure"]))


def cc_iptw(d: ProphylaxisReplicate) -> dict[str, Estimate]:
    """Complete case: hostats.iptw of HO by 365 (multinomial propensity over all five arms, stabilised ATE
    weights, sandwich SEs) among patients with known 1-year status (what the bundled analyses did)."""
    return _effect_estimates(_cc_iptw_table(d))


def cc_regression(d: ProphylaxisReplicate) -> dict[str, Estimate]:
    """Complete case: hostats.iptw's outcome-regression rows (a logistic model of HO by 365 on the
    confounders in each arm, standardised to the complete cases; influence-function SEs)."""
    return _effect_estimates(_cc_iptw_table(d), "_regression")


def cc_aipw(d: ProphylaxisReplicate) -> dict[str, Estimate]:
    """Complete case: hostats.iptw's doubly robust AIPW risk difference of HO by 365."""
    t = _cc_iptw_table(d)
    return {f"rd_{key}": _row(t, f"{arm} vs none", "risk_difference_aipw") for key, arm in CONTRASTS.items()}


def iptw_aj(d: ProphylaxisReplicate) -> dict[str, Estimate]:
    """hostats.iptw with outcome=None: weighted Aalen-Johansen cumulative incidence of HO at 365 days (death
    competing, loss to follow-up censored) on every patient; SEs treat the weights as known."""
    t = d.cached("iptw_aj", lambda: hostats.iptw(d.episodes, "prophylaxis", CONFOUNDERS, None, estimand="ATE",
                                                 reference="none", time="time_days", status="status",
                                                 horizon=HORIZON).table().set_index(["contrast", "measure"]))
    return _effect_estimates(t)


def _ate_table(d: ProphylaxisReplicate, method: str) -> pd.DataFrame:
    """hostats.ate with the one ``method``, indexed by (contrast, measure). One call per method, so that a
    model one method needs (e.g. the cause-specific Cox model of death in a small arm for the g-formula)
    failing in a replicate fails that method only, and each method's cost is its own."""
    def fit() -> pd.DataFrame:
        res = hostats.ate(d.episodes, "prophylaxis", CONFOUNDERS, "time_days", "status", HORIZON, cause=1,
                          reference="none", methods=(method,))
        t = res.table()
        return t[t["method"] == method].set_index(["contrast", "measure"])
    return d.cached(f"ate_{method}", fit)


def ate_method(d: ProphylaxisReplicate, method: str) -> dict[str, Estimate]:
    """hostats.ate's ``method`` (g-formula, IPCW or AIPTW of the cumulative incidence at 365, death competing,
    loss to follow-up censored, on every patient): per-arm risks, RD and log RR."""
    return _effect_estimates(_ate_table(d, method))


def _prophylaxis_truth(loss: float) -> dict[str, float]:
    pop = synthetic.generate("tha_prophylaxis", 10, 0, overrides={"loss_to_followup_per_year": loss},
                             fault_rate=0.0).truth["population"]
    est = {f"risk_{key}": float(pop["risk"][arm]) for key, arm in ARMS.items()}
    for key, arm in CONTRASTS.items():
        c = pop["contrasts"][f"{arm}_vs_none"]
        est[f"rd_{key}"] = float(c["risk_difference"])
        est[f"log_rr_{key}"] = math.log(c["risk_ratio"])
    return est


def _prophylaxis_methods() -> dict[str, Callable]:
    return {"cc_crude": cc_crude, "cc_regression": cc_regression, "cc_iptw": cc_iptw, "cc_aipw": cc_aipw,
            "iptw_aj": iptw_aj, **{name: partial(ate_method, method=key) for name, key in ATE_METHODS.items()}}


def prophylaxis_study(n: int, name: str = "tha_prophylaxis") -> Study:
    loss = LOSS_PER_YEAR[name]
    truth = _prophylaxis_truth(loss)
    methods = _prophylaxis_methods()
    contrasts = [k for k in truth if not k.startswith("risk_")]
    labels = {"risk_none": "risk of HO by 365 days, no prophylaxis",
              "risk_rt": "risk of HO by 365 days, radiotherapy", "risk_bis": "risk of HO by 365 days, bisphosphonate",
              "rd_rt": "risk difference, radiotherapy vs none", "log_rr_rt": "log risk ratio, radiotherapy vs none",
              "rd_bis": "risk difference, bisphosphonate vs none (true null)",
              "log_rr_bis": "log risk ratio, bisphosphonate vs none (true null)"}
    lost = (f"loss to follow-up {loss:.0%} a year (exponential, independent of everything else: "
            f"{loss:.0%} of the patients alive would be lost before day 365)" if loss else
            "loss to follow-up switched off, so the 1-year outcome is observed for everyone and the complete-case "
            "methods analyse the whole cohort")
    return Study(
        name=name, generate=_prophylaxis_data(n, loss), methods=methods, truth=truth,
        targets={"cc_aipw": ["rd_rt", "rd_bis"]},
        null={e: (0.0 if e in contrasts else None) for e in truth},
        config={"scenario": "tha_prophylaxis", "n": n, "overrides": {"loss_to_followup_per_year": loss},
                "horizon_days": HORIZON, "followup_tolerance_days": FOLLOWUP_TOLERANCE_DAYS},
        estimand_labels={k: labels[k] for k in truth}, method_labels={m: METHOD_LABELS[m] for m in methods},
        description=(
            "Aim: does adjustment for confounding by indication recover the marginal risk of HO within 365 days "
            "under each prophylaxis and its effect, with valid 95% CIs, under loss to follow-up; is the "
            "complete-case analysis of the binary 1-year outcome biased by loss to follow-up while the "
            "censoring-aware methods are not; and does a true null keep its 5% type-I error? "
            f"Data: synthetic 'tha_prophylaxis' (n = {n} per replicate; prophylaxis chosen more often for prior "
            f"HO, male and older patients, who are at higher risk; death competing; {lost}). The study is one "
            "level of a factor: tha_prophylaxis (no loss), tha_prophylaxis_loss10 (10% a year), "
            "tha_prophylaxis_loss30 (30% a year), with the same estimands, truth and methods. "
            "Estimands: the population risk of HO detected within 365 days (death competing, no loss to "
            "follow-up) had everyone received no prophylaxis, radiotherapy or a bisphosphonate "
            "(truth['population']['risk']), and the risk difference and risk ratio (log scale) of radiotherapy vs "
            "none and bisphosphonate vs none (true RR 1), from the generator's potential outcomes "
            "(truth['population']['contrasts']); the same truth for every loss level and method. "
            "Methods, complete case (cc_: patients whose status at 365 days is known, i.e. HO or death by day "
            f"365 or follow-up reaching day {HORIZON - FOLLOWUP_TOLERANCE_DAYS}, as the bundled analyses define "
            "horizon_status_known; with loss to follow-up they drop patients lost event-free and are expected to "
            "be biased upward): crude arm proportions; outcome regression (a logistic model of HO on age, sex and "
            "prior HO in each arm standardised to the complete cases: g-formula; a conditional odds ratio would "
            "not be compared with the marginal truth, odds ratios being non-collapsible); IPTW with a multinomial "
            "propensity model over all five arms (ATE, stabilised weights, sandwich SE); AIPW risk difference. "
            "Censoring-aware, on every patient: IPTW Aalen-Johansen (hostats.iptw with outcome=None: the same "
            "weights, the weighted cumulative incidence at 365 days; SEs treat the weights as known); and "
            "hostats.ate (one call per method, so a model one method needs failing fails that method only): "
            "its IPTW Aalen-Johansen (ate_iptw: influence-function SE including the propensity model), "
            "IPTW-IPCW (Kaplan-Meier censoring weights by arm), g-formula (cause-specific Cox models of HO and "
            "death on arm and confounders: misspecified here, as HO is generated by a logistic model) and "
            "AIPTW-AIPCW (doubly robust). Performance: bias, empirical and model SE, coverage, power "
            "(radiotherapy) and type-I error "
            "(bisphosphonate), with Monte-Carlo SEs."))


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
            "it: x-ray 24.5 days, bone scan 16 days; docs/rates.md R19, R20). The NPMLE median is run without bootstrap (its CI "
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
            "recurrence varies between sites (2-31%, docs/rates.md R17), with few or many sites. "
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
    **{name: partial(prophylaxis_study, name=name) for name in LOSS_PER_YEAR},
    "neurogenic": neurogenic_study, "detection": detection_study,
    "resection_recurrence": resection_study,
}


def names() -> list[str]:
    return list(STUDIES)


MIN_N = 50


def n_problem(name: str, n: int) -> str | None:
    """Why study ``name`` cannot take ``n`` patients per replicate (per site for resection_recurrence), or None.

    At least MIN_N; at most what keeps every synthetic draw of a replicate within synthetic's bound
    (synthetic.cohort.MAX_N): resection_recurrence draws max(SITE_COUNTS) sites of n patients each, so its
    bound is MAX_N // 30 per site. Checked before the study is built (``hostats simulate --n`` passed the
    synthetic bound and failed in the middle of the first replicate, after study.json was written)."""
    from synthetic.cohort import MAX_N

    sites = max(SITE_COUNTS) if name == "resection_recurrence" else 1
    high = MAX_N // sites
    if MIN_N <= n <= high:
        return None
    what = "patients per site" if sites > 1 else "patients per replicate"
    why = (f" (its largest replicate draws {sites} sites of n patients, and a synthetic cohort has at most "
           f"{MAX_N:,})" if sites > 1 and n > high else "")
    return f"study {name!r} takes from {MIN_N} to {high:,} {what}{why}"


def build(name: str, n: int | None = None) -> Study:
    """The Study called ``name`` with ``n`` patients per replicate (per site for resection_recurrence)."""
    if name not in STUDIES:
        raise ValueError(f"unknown simulation study {name!r}; choose one of {', '.join(STUDIES)}")
    n = DEFAULT_N[name] if n is None else int(n)
    problem = n_problem(name, n)
    if problem is not None:
        raise ValueError(f"n = {n:,}: {problem}")
    return STUDIES[name](n)
