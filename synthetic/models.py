"""Scenario models: patients, treatment choice and the HO risk model of each scenario.

A model supplies covariates (with a calibration ``stratum`` and a 1-year death probability per
patient), the treatment choice, the covariate part of the logit of true HO and the logit shift of each
arm. Intercepts (one per stratum) and treatment log-odds are SOLVED on a fixed calibration draw so that
the scenario's targets (docs/rates.md) hold for the detected 1-year risk with death competing; see
``calibrate``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit
from scipy.stats import beta as beta_dist

from . import dgp

N_CALIBRATION = 400_000


@dataclass
class Coefficients:
    """Solved generating coefficients (on the logit scale of true HO)."""

    intercepts: np.ndarray
    arm_log_odds: dict[str, float] = field(default_factory=dict)
    detect_factor: np.ndarray | None = None  # c_s = P(detected before death | HO) per stratum


def _choice(rng: np.random.Generator, n: int, shares) -> np.ndarray:
    """Index draws from ``shares`` (vectorised inverse CDF)."""
    cdf = np.cumsum(np.asarray(shares, dtype=float))
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), len(cdf) - 1)


def _clipped_normal(rng, n, mean, sd, lo, hi) -> np.ndarray:
    return np.round(np.clip(mean + sd * rng.standard_normal(n), lo, hi), 1)


class Scenario:
    """Base class: one stratum, no treatment arms (natural course), no covariate effects."""

    name = ""
    arm_column: str | None = None

    def arms(self, P: dict) -> list[str]:
        return ["none"]

    reference = "none"

    # -- patients ------------------------------------------------------------------------------------
    def covariates(self, P: dict, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def stratum_targets(self, P: dict) -> np.ndarray:
        raise NotImplementedError

    def linpred(self, P: dict, cov: dict) -> np.ndarray:
        return np.zeros(cov["stratum"].size)

    def assign(self, P: dict, rng: np.random.Generator, cov: dict) -> dict[str, np.ndarray]:
        return {"arm": np.zeros(cov["stratum"].size, dtype=np.int64)}

    def arm_logit(self, P: dict, coefs: Coefficients, cov: dict, trt: dict) -> np.ndarray:
        return np.zeros((cov["stratum"].size, len(self.arms(P))))

    def rr_targets(self, P: dict) -> dict[str, float]:
        return {}

    def base_logit(self, P: dict, coefs: Coefficients, cov: dict) -> np.ndarray:
        return coefs.intercepts[cov["stratum"]] + self.linpred(P, cov)

    def index_alp_rise(self, P: dict, cov: dict) -> np.ndarray:
        return np.full(cov["stratum"].size, float(P["alp_index_rise_u_l"]))

    def columns(self, P: dict, cov: dict, trt: dict) -> dict[str, np.ndarray]:
        """Observed episode columns specific to the scenario (besides the common ones)."""
        return {}

    # -- calibration ---------------------------------------------------------------------------------
    def calibrate(self, P: dict, seed: int) -> Coefficients:
        """Solve stratum intercepts and arm log-odds on a fixed calibration draw.

        The model is logistic on the scale of what a study measures: P(HO detected within 365 days
        before death | x, arm) = expit(a_s + x b + arm effect). The true-HO probability is that divided
        by c_s = P(detected before death | HO, stratum s) = E[exp(-lambda_s D)] (dgp docstring), so the
        conditional log-odds in the truth are exactly those of a logistic regression of the detected
        outcome under complete follow-up. Intercept a_s solves mean_s(expit(a_s + x b)) = target_s; an
        arm's log-odds solves mean(expit(eta + b)) / mean(expit(eta)) = its target marginal risk ratio.
        """
        rng = np.random.default_rng(seed)
        cov = self.covariates(P, rng, N_CALIBRATION)
        tl = dgp.timeline(P, rng, N_CALIBRATION)
        w = np.exp(-dgp.hazard_per_day(cov["death_p"]) * tl.detect_day)
        lin = self.linpred(P, cov)
        targets = np.asarray(self.stratum_targets(P), dtype=float)
        intercepts = np.empty(targets.size)
        factor = np.empty(targets.size)
        for s, r in enumerate(targets):  # loop over a handful of strata, not patients
            m = cov["stratum"] == s
            factor[s] = w[m].mean()
            if r <= 0:
                intercepts[s] = -np.inf
                continue
            if r >= factor[s]:
                raise ValueError(f"{self.name}: target risk {r:g} in stratum {s} is not reachable when "
                                 f"only {factor[s]:.3f} of HO is detected before death")
            intercepts[s] = brentq(lambda a, m=m, r=r: np.mean(expit(a + lin[m])) - r, -30, 30)
        eta = intercepts[cov["stratum"]] + lin
        ref = np.mean(expit(eta))
        arm_lo = {}
        for arm, rr in self.rr_targets(P).items():
            if rr == 1:
                arm_lo[arm] = 0.0
            elif rr <= 0 or rr * ref >= 1:
                raise ValueError(f"{self.name}: risk ratio {rr:g} for {arm} is not reachable")
            else:
                arm_lo[arm] = brentq(lambda b, rr=rr: np.mean(expit(eta + b)) / ref - rr, -30, 30)
        return Coefficients(intercepts, arm_lo, factor)


# ---------------------------------------------------------------------------------------------------
class ThaProphylaxis(Scenario):
    """THA with confounded prophylaxis choice (R1, R2, R4-R11)."""

    name = "tha_prophylaxis"
    arm_column = "prophylaxis"
    ARMS = ["none", "radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid"]
    RT_ARMS = ("radiotherapy", "radiotherapy_nsaid")
    NSAID_ARMS = ("nsaid", "radiotherapy_nsaid")

    def arms(self, P):
        return list(self.ARMS)

    def covariates(self, P, rng, n):
        age = _clipped_normal(rng, n, P["age_mean_years"], P["age_sd_years"], P["age_min_years"],
                              P["age_max_years"])
        male = rng.random(n) < P["male_share"]
        prior = rng.random(n) < P["prior_ho_share"]
        return {"age_years": age, "male": male, "prior_ho": prior, "stratum": prior.astype(np.int64),
                "death_p": np.full(n, float(P["death_within_1y"]))}

    def stratum_targets(self, P):
        pi, r1, r = P["prior_ho_share"], P["risk_untreated_prior_ho_1y"], P["risk_untreated_1y"]
        r0 = (r - pi * r1) / (1 - pi)
        if not 0 < r0 < 1:
            raise ValueError("risk_untreated_1y, risk_untreated_prior_ho_1y and prior_ho_share are inconsistent")
        return np.array([r0, r1])

    def linpred(self, P, cov):
        return (P["ho_log_odds_male"] * cov["male"]
                + P["ho_log_odds_age_per_10y"] * (cov["age_years"] - P["age_mean_years"]) / 10)

    def assign(self, P, rng, cov):
        n = cov["stratum"].size
        shares = P["treatment_base_shares"]
        z_age = (cov["age_years"] - P["age_mean_years"]) / 10
        risk_score = (P["treatment_log_odds_prior_ho"] * cov["prior_ho"] + P["treatment_log_odds_male"] * cov["male"]
                      + P["treatment_log_odds_age_per_10y"] * z_age)
        scores = np.empty((n, len(self.ARMS)))
        for j, arm in enumerate(self.ARMS):  # loop over 5 arms
            scores[:, j] = np.log(shares[arm]) if shares[arm] > 0 else -np.inf
            if arm != "none":
                scores[:, j] += risk_score
            if arm in self.RT_ARMS:
                scores[:, j] += P["treatment_log_odds_prior_ho_rt"] * cov["prior_ho"]
        arm = np.argmax(scores + rng.gumbel(size=scores.shape), axis=1)  # multinomial logit (Gumbel-max)
        # Latent RT and NSAID details for everyone (common random numbers across arms).
        timing_names = list(P["rt_timing_shares"])
        timing = _choice(rng, n, [P["rt_timing_shares"][k] for k in timing_names])
        bounds = np.array([P["rt_timing_hours"][k] for k in timing_names], dtype=float)
        hours = np.round(bounds[timing, 0] + (bounds[timing, 1] - bounds[timing, 0]) * rng.random(n), 1)
        weight = np.where(hours <= 72, 1.0, P["rt_late_effect_fraction"])
        dose = np.asarray(P["rt_dose_gy_values"], dtype=float)[_choice(rng, n, P["rt_dose_gy_shares"])]
        agents = list(P["nsaid_agent_shares"])
        agent = np.asarray(agents, dtype=object)[_choice(rng, n, [P["nsaid_agent_shares"][a] for a in agents])]
        return {"arm": arm, "rt_hours": hours, "rt_weight": weight, "rt_dose": dose, "nsaid_agent": agent}

    def rr_targets(self, P):
        return {"radiotherapy": P["rr_radiotherapy"], "nsaid": P["rr_nsaid"],
                "bisphosphonate": P["rr_bisphosphonate"]}

    def arm_logit(self, P, coefs, cov, trt):
        b = coefs.arm_log_odds
        rt = b["radiotherapy"] * trt["rt_weight"]
        zero = np.zeros_like(rt)
        return np.column_stack([zero, rt, zero + b["nsaid"], zero + b["bisphosphonate"], rt + b["nsaid"]])

    def columns(self, P, cov, trt):
        arm_names = np.asarray(self.ARMS, dtype=object)[trt["arm"]]
        is_rt = np.isin(trt["arm"], [self.ARMS.index(a) for a in self.RT_ARMS])
        is_nsaid = np.isin(trt["arm"], [self.ARMS.index(a) for a in self.NSAID_ARMS])
        return {"age_years": cov["age_years"], "male": cov["male"], "prior_ho": cov["prior_ho"],
                "prophylaxis": arm_names,
                "rt_dose_gy": np.where(is_rt, trt["rt_dose"], np.nan),
                "rt_hours_from_index": np.where(is_rt, trt["rt_hours"], np.nan),
                "nsaid_agent": np.where(is_nsaid, trt["nsaid_agent"], "none").astype(object)}


class Fracture(Scenario):
    """Severe long-bone fracture of the lower leg (R3, R21)."""

    name = "fracture"

    def covariates(self, P, rng, n):
        age = _clipped_normal(rng, n, P["age_mean_years"], P["age_sd_years"], P["age_min_years"],
                              P["age_max_years"])
        male = rng.random(n) < P["male_share"]
        return {"age_years": age, "male": male, "stratum": np.zeros(n, dtype=np.int64),
                "death_p": np.full(n, float(P["death_within_1y"]))}

    def stratum_targets(self, P):
        return np.array([P["risk_1y"]])

    def linpred(self, P, cov):
        return (P["ho_log_odds_male"] * cov["male"]
                + P["ho_log_odds_age_per_10y"] * (cov["age_years"] - P["age_mean_years"]) / 10)

    def columns(self, P, cov, trt):
        return {"age_years": cov["age_years"], "male": cov["male"]}


class Neurogenic(Scenario):
    """Neurogenic HO after SCI, TBI, stroke or anoxia (R12-R15)."""

    name = "neurogenic"
    EVENTS = ["sci", "tbi", "stroke", "anoxia"]

    def covariates(self, P, rng, n):
        event = _choice(rng, n, [P["index_event_shares"][e] for e in self.EVENTS])
        age = _clipped_normal(rng, n, P["age_mean_years"], P["age_sd_years"], P["age_min_years"],
                              P["age_max_years"])
        male = rng.random(n) < P["male_share"]
        gn = rng.random(n) < P["gram_negative_infection_share"]
        is_tbi = event == self.EVENTS.index("tbi")
        gcs = rng.integers(3, 16, n)
        # Less severe TBI (higher GCS) is mobilised early more often: confounds the therapy effect (R15).
        eit_logit = logit(P["early_intensive_therapy_share"]) + np.where(
            is_tbi, P["therapy_log_odds_per_gcs_point"] * (gcs - 9), 0.0)
        eit = rng.random(n) < expit(eit_logit)
        fusion = (event == self.EVENTS.index("sci")) & (rng.random(n) < P["spine_fusion_share_sci"])
        death = np.asarray([P["death_within_1y"][e] for e in self.EVENTS], dtype=float)[event]
        return {"event": event, "age_years": age, "male": male, "gram_negative_infection": gn,
                "early_intensive_therapy": eit, "gcs": np.where(is_tbi, gcs, -1), "is_tbi": is_tbi,
                "spine_fusion": fusion, "stratum": event, "death_p": death}

    def stratum_targets(self, P):
        return np.array([P["risk_1y_by_index_event"][e] for e in self.EVENTS])

    def linpred(self, P, cov):
        return (np.log(P["odds_ratio_gram_negative_infection"]) * cov["gram_negative_infection"]
                + np.log(P["odds_ratio_early_intensive_therapy"]) * cov["early_intensive_therapy"]
                + np.where(cov["is_tbi"], P["ho_log_odds_per_gcs_point_below_9"] * (9 - cov["gcs"]), 0.0))

    def index_alp_rise(self, P, cov):
        return P["alp_index_rise_u_l"] + np.where(cov["spine_fusion"], P["alp_spine_fusion_rise_u_l"], 0.0)

    def columns(self, P, cov, trt):
        return {"index_event": np.asarray(self.EVENTS, dtype=object)[cov["event"]],
                "age_years": cov["age_years"], "male": cov["male"],
                "gram_negative_infection": cov["gram_negative_infection"],
                "early_intensive_therapy": cov["early_intensive_therapy"],
                "gcs_score": np.where(cov["is_tbi"], cov["gcs"], -1)}


class Burn(Scenario):
    """Burns; body-surface area burned drives risk (R16)."""

    name = "burn"

    def _share_high(self, P):
        a, b = P["tbsa_beta_shape"]
        return float(beta_dist.sf((P["tbsa_threshold_percent"] + 0.05) / 100, a, b))

    def covariates(self, P, rng, n):
        age = _clipped_normal(rng, n, P["age_mean_years"], P["age_sd_years"], P["age_min_years"],
                              P["age_max_years"])
        male = rng.random(n) < P["male_share"]
        a, b = P["tbsa_beta_shape"]
        tbsa = np.round(np.maximum(100 * rng.beta(a, b, n), 0.5), 1)
        return {"age_years": age, "male": male, "tbsa": tbsa,
                "stratum": (tbsa > P["tbsa_threshold_percent"]).astype(np.int64),
                "death_p": np.full(n, float(P["death_within_1y"]))}

    def stratum_targets(self, P):
        pi, r, odds_ratio = self._share_high(P), P["risk_1y"], P["odds_ratio_tbsa_gt_30"]

        def overall(r_low):  # solve r_low so the mixture hits r with the target odds ratio
            o = odds_ratio * r_low / (1 - r_low)
            return pi * o / (1 + o) + (1 - pi) * r_low - r

        r_low = brentq(overall, 1e-9, r)
        o = odds_ratio * r_low / (1 - r_low)
        return np.array([r_low, o / (1 + o)])

    def columns(self, P, cov, trt):
        return {"age_years": cov["age_years"], "male": cov["male"], "tbsa_burned_percent": cov["tbsa"]}


class ResectionRecurrence(Scenario):
    """Recurrence after HO resection at many sites (R17, R18).

    Site recurrence logits ~ N(mu, tau2). No patient-level risk factor, and detection is certain within
    the horizon without death (dgp docstring), so a site's expected observed 1-year recurrence
    proportion with no death and no loss to follow-up is exactly its ``recurrence_risk``.
    """

    name = "resection_recurrence"
    arm_column = "adjuvant"
    ARMS = ["none", "etidronate", "indomethacin"]

    def arms(self, P):
        return list(self.ARMS)

    def covariates(self, P, rng, n):
        age = _clipped_normal(rng, n, P["age_mean_years"], P["age_sd_years"], P["age_min_years"],
                              P["age_max_years"])
        male = rng.random(n) < P["male_share"]
        joints = list(P["resected_joint_shares"])
        joint = np.asarray(joints, dtype=object)[_choice(rng, n, [P["resected_joint_shares"][j] for j in joints])]
        z = rng.standard_normal(n)  # population: every patient its own site (infinitely many sites)
        logit_risk = P["recurrence_logit_mean"] + np.sqrt(P["recurrence_tau2_logit"]) * z
        return {"age_years": age, "male": male, "joint": joint, "site_logit": logit_risk,
                "stratum": np.zeros(n, dtype=np.int64), "death_p": np.full(n, float(P["death_within_1y"]))}

    def calibrate(self, P, seed):
        return Coefficients(np.zeros(1), {a: P["adjuvant_log_odds"][a] for a in self.ARMS[1:]}, None)

    def base_logit(self, P, coefs, cov):
        return cov["site_logit"]

    def assign(self, P, rng, cov):
        n = cov["site_logit"].size
        # Adjuvants are given more at sites with more recurrence: a confounded null (R18, R10).
        z = (cov["site_logit"] - P["recurrence_logit_mean"]) / max(np.sqrt(P["recurrence_tau2_logit"]), 1e-9)
        any_adj = rng.random(n) < expit(logit(P["adjuvant_share"]) + P["adjuvant_log_odds_per_site_sd"] * z)
        which = 1 + (rng.random(n) < P["adjuvant_indomethacin_fraction"]).astype(np.int64)
        return {"arm": np.where(any_adj, which, 0)}

    def arm_logit(self, P, coefs, cov, trt):
        zero = np.zeros(cov["site_logit"].size)
        return np.column_stack([zero] + [zero + coefs.arm_log_odds[a] for a in self.ARMS[1:]])

    def columns(self, P, cov, trt):
        return {"age_years": cov["age_years"], "male": cov["male"],
                "adjuvant": np.asarray(self.ARMS, dtype=object)[trt["arm"]]}


MODELS: dict[str, Scenario] = {m.name: m for m in (ThaProphylaxis(), Fracture(), Neurogenic(), Burn(),
                                                   ResectionRecurrence())}
