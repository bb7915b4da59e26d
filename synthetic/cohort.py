"""Draw a synthetic cohort: the clean canonical episodes, the assessments and the truth."""
from __future__ import annotations

import copy
import os
import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from . import dgp, export, params
from .models import MODELS, Coefficients, Scenario, _choice

N_POPULATION = 1_000_000
CANONICAL_ORDER = (
    "patient_id", "site", "index_event", "index_date", "age_years", "sex", "prior_ho",
    "gram_negative_infection", "early_intensive_therapy", "prophylaxis", "rt_dose_gy", "rt_hours_from_index",
    "nsaid_agent", "adjuvant", "ho", "ho_date", "ho_site", "brooker_grade", "symptomatic",
    "detection_modality", "wound_complication", "tbsa_burned_percent", "gcs_score", "death_date",
    "last_followup_date",
)
ASSESSMENT_TESTS = ("xray", "bone_scan", "ct", "alp")


def _derived_seed(name: str, purpose: str) -> int:
    return zlib.crc32(f"{name}/{purpose}".encode())


@dataclass
class Draw:
    site: np.ndarray
    cov: dict
    trt: dict
    tl: dgp.Timeline
    u_ho: np.ndarray
    death_day: np.ndarray
    ltfu_day: np.ndarray
    eta0: np.ndarray
    p: np.ndarray  # (n, arms) risk of true HO under each arm
    scale: np.ndarray  # 1 / P(detected before death | HO) of the patient's stratum

    @property
    def arm(self) -> np.ndarray:
        return self.trt["arm"]

    def detected_under_arms(self) -> np.ndarray:
        """(n, arms): HO detected within the horizon before death, no loss to follow-up."""
        return (self.u_ho[:, None] < self.p) & (self.tl.detect_day < self.death_day)[:, None]

    def alive_at_detection(self) -> np.ndarray:
        """P(death day > detection day D | D) = exp(-lambda D): exact, as the death day is ceil(E / lambda)
        (at least 1) and D is a whole day >= 1; 1 when death is switched off."""
        return np.exp(-dgp.hazard_per_day(self.cov["death_p"]) * self.tl.detect_day)

    def detection_probability_under_arms(self) -> np.ndarray:
        """(n, arms): E[detected_under_arms | covariates, arms, timeline] = p * exp(-lambda D)."""
        return self.p * self.alive_at_detection()[:, None]


def _draw(model: Scenario, P: dict, coefs: Coefficients, rng: np.random.Generator, n: int,
          site_logits: np.ndarray | None = None) -> Draw:
    site = _choice(rng, n, P["site_shares"])
    cov = model.covariates(P, rng, n)
    if site_logits is not None:
        cov["site_logit"] = site_logits[site]
    trt = model.assign(P, rng, cov)
    tl = dgp.timeline(P, rng, n)
    u_ho = rng.random(n)
    death = dgp.event_day(rng, n, cov["death_p"])
    ltfu = dgp.event_day(rng, n, P["loss_to_followup_per_year"])
    eta0 = model.base_logit(P, coefs, cov)
    scale = _true_ho_scale(coefs, cov)
    p = _true_ho_risk(eta0[:, None] + model.arm_logit(P, coefs, cov, trt), scale[:, None])
    return Draw(site, cov, trt, tl, u_ho, death, ltfu, eta0, p, scale)


def _true_ho_scale(coefs: Coefficients, cov: dict) -> np.ndarray:
    """1 / c_s: the logit model is for HO detected before death; true HO is more frequent by 1 / c_s."""
    if coefs.detect_factor is None:
        return np.ones(cov["stratum"].size)
    return 1.0 / coefs.detect_factor[cov["stratum"]]


def _true_ho_risk(eta: np.ndarray, scale: np.ndarray) -> np.ndarray:
    # expit(eta) <= c_s for every plausible covariate pattern (c_s >= 0.85); clip guards the extreme tail
    return np.minimum(expit(eta) * scale, 1.0)


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if x.size else float("nan")


def _summary(x: np.ndarray) -> dict[str, float]:
    a, b = (float(v) for v in np.quantile(x, [0.05, 0.95])) if x.size else (float("nan"),) * 2
    return {"mean": float(x.mean()) if x.size else float("nan"), "p05": a, "p95": b}


def _truth_block(model: Scenario, P: dict, coefs: Coefficients, d: Draw, expected: bool = False) -> dict[str, Any]:
    """Estimands of one draw (the population draw or the sample), from potential outcomes.

    ``expected`` (the population): risks are means of each patient's probability of detection before death
    given covariates, arm and imaging timeline (``p * exp(-lambda D)``) rather than of the 0/1 outcomes. Same
    expectation, but without the HO and death coin flips, which made the Monte-Carlo error of a
    300,000-patient truth (about 0.0008 on a risk of 0.23) as large as the standard error of a
    200,000-patient analysis (Rao-Blackwellisation; Casella & Robert, Biometrika 1996;83:81-94). What is
    left (covariate mix) is about 0.0001 with the 1,000,000-patient population draw.

    In a tiny sample a ratio can be undefined (no events in a group): it is NaN (null in truth.json).
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an empty group -> NaN, documented
        return _truth_block_unguarded(model, P, coefs, d, expected)


def _truth_block_unguarded(model: Scenario, P: dict, coefs: Coefficients, d: Draw, expected: bool) -> dict[str, Any]:
    arms = model.arms(P)
    hit = d.detected_under_arms()
    det = d.detection_probability_under_arms() if expected else hit
    risk = det.mean(axis=0)
    out: dict[str, Any] = {"risk": {a: float(r) for a, r in zip(arms, risk, strict=True)}}
    ref = arms.index(model.reference)
    contrasts = {}
    for j, a in enumerate(arms):
        if j == ref:
            continue
        r1, r0 = risk[j], risk[ref]
        contrasts[f"{a}_vs_{model.reference}"] = {
            "risk_ratio": float(r1 / r0), "risk_difference": float(r1 - r0),
            "odds_ratio": float(r1 / (1 - r1) / (r0 / (1 - r0))),
            "conditional_log_odds": _conditional_log_odds(model, coefs, a)}
    out["contrasts"] = contrasts
    n = d.u_ho.size
    assigned = det[np.arange(n), d.arm]
    out["cumulative_incidence"] = float(assigned.mean())
    true_ho = d.u_ho < d.p[np.arange(n), d.arm]
    on = d.tl.onset[true_ho]
    out["onset"] = {"median_days": _median(on),
                    "share_14_to_84_days": float(np.mean((on >= 14) & (on <= 84))) if on.size else float("nan"),
                    "max_days": float(P["onset_max_days"]),
                    "distribution": "log-normal truncated at max_days",
                    "median_parameter_days": P["onset_median_days"], "sigma_log": P["onset_sigma_log"],
                    # imaging intervals bracket when imaging turns positive, not onset itself (R19, R20)
                    "xray_positive_median_days": _median(d.tl.xray_visible[true_ho]),
                    "bone_scan_positive_median_days": _median(d.tl.scan_visible[true_ho]),
                    "note": "onset = true biological onset among patients with HO under the assigned arms; "
                            "imaging intervals (ho_interval_lo/hi_days) bracket the day imaging turns positive "
                            "(x-ray 21-28 days after onset, bone scan 7-10 days earlier)"}
    # symptomatic (R2) among HO detected under the assigned arms: symptoms are recorded when the
    # symptom-driven bone scan happens before death; detection is likelier when symptomatic
    sym = true_ho & d.tl.symptomatic & (d.tl.symptom_scan_day < d.death_day)
    out["symptomatic_share_among_detected"] = float(sym[hit[np.arange(n), d.arm]].mean())
    out["death_within_1y"] = float(np.mean(d.death_day <= dgp.HORIZON_DAYS))
    out["loss_to_followup_within_1y"] = float(np.mean(d.ltfu_day <= dgp.HORIZON_DAYS))
    out.update(_extras(model, P, coefs, d, det, expected))
    return out


def _conditional_log_odds(model: Scenario, coefs: Coefficients, arm: str) -> float:
    if model.name == "tha_prophylaxis" and arm == "radiotherapy_nsaid":
        return coefs.arm_log_odds["radiotherapy"] + coefs.arm_log_odds["nsaid"]
    return float(coefs.arm_log_odds.get(arm, 0.0))


def _rr(det: np.ndarray, mask: np.ndarray, j: int, ref: int = 0) -> float:
    return float(det[mask, j].mean() / det[mask, ref].mean())


def _extras(model: Scenario, P: dict, coefs: Coefficients, d: Draw, det: np.ndarray,
            expected: bool) -> dict[str, Any]:
    alive = d.alive_at_detection() if expected else (d.tl.detect_day < d.death_day)

    def detected(risk: np.ndarray) -> np.ndarray:  # detection before death given the true-HO risk
        return risk * alive if expected else (d.u_ho < risk) & alive
    if model.name == "tha_prophylaxis":
        late = d.trt["rt_hours"] > 72
        prior = d.cov["prior_ho"]
        return {
            "risk_untreated_prior_ho": float(det[prior, 0].mean()),
            "risk_untreated_no_prior_ho": float(det[~prior, 0].mean()),
            # the same among patients actually given no prophylaxis (who are younger and more often female, R10):
            # what a crude comparison within the untreated estimates
            "risk_prior_ho_among_untreated": float(det[prior & (d.arm == 0), 0].mean()),
            "risk_no_prior_ho_among_untreated": float(det[~prior & (d.arm == 0), 0].mean()),
            "risk_ratio_radiotherapy_within_72h": _rr(det, ~late, 1),
            "risk_ratio_radiotherapy_after_72h": _rr(det, late, 1),
            "conditional_log_odds_radiotherapy_after_72h": coefs.arm_log_odds["radiotherapy"]
            * P["rt_late_effect_fraction"],
            "wound_complication_risk": {a: P["wound_complication_risk"] for a in model.arms(P)},
            "brooker_shares": dict(zip(["I", "II", "III", "IV"], P["brooker_shares"], strict=True)),
            "symptomatic_share_parameter": P["symptomatic_share"],
        }
    if model.name == "neurogenic":
        ev = d.cov["event"]
        out: dict[str, Any] = {"risk_by_index_event": {e: float(det[ev == k, 0].mean())
                                                       for k, e in enumerate(model.EVENTS)}}
        ors = {}
        for col, key in (("gram_negative_infection", "odds_ratio_gram_negative_infection"),
                         ("early_intensive_therapy", "odds_ratio_early_intensive_therapy")):
            b = np.log(P[key])
            x = d.cov[col].astype(float)
            r = [np.mean(detected(_true_ho_risk(d.eta0 + b * (v - x), d.scale))) for v in (1.0, 0.0)]
            ors[col] = {"conditional_log_odds": float(b), "conditional_odds_ratio": float(P[key]),
                        "marginal_odds_ratio": float(r[0] / (1 - r[0]) / (r[1] / (1 - r[1]))),
                        "risk_ratio": float(r[0] / r[1]), "risk_difference": float(r[0] - r[1]),
                        "risk_exposed": float(r[0]), "risk_unexposed": float(r[1])}
        out["odds_ratios"] = ors
        out["joint_shares"] = dict(P["ho_site_shares"])
        return out
    if model.name == "burn":
        hi = d.cov["stratum"] == 1
        r1, r0 = det[hi, 0].mean(), det[~hi, 0].mean()
        return {"odds_ratio_tbsa_gt_30": float(r1 / (1 - r1) / (r0 / (1 - r0))),
                "risk_tbsa_gt_30": float(r1), "risk_tbsa_le_30": float(r0),
                "share_tbsa_gt_30": float(hi.mean()), "joint_shares": dict(P["ho_site_shares"])}
    if model.name == "resection_recurrence":
        return {"pooled": {"logit_mean": P["recurrence_logit_mean"], "tau2_logit": P["recurrence_tau2_logit"],
                           "risk_at_mean": float(expit(P["recurrence_logit_mean"]))},
                "site_recurrence_risk_spread": _summary(expit(d.cov["site_logit"]))}
    return {}


@lru_cache(maxsize=32)
def _calibrated(name: str, key: str) -> Coefficients:
    P = params.resolve(name, _OVERRIDES_BY_KEY[key])
    return MODELS[name].calibrate(P, _derived_seed(name, "calibration"))


@lru_cache(maxsize=32)
def _population(name: str, key: str) -> dict[str, Any]:
    P = params.resolve(name, _OVERRIDES_BY_KEY[key])
    model = MODELS[name]
    coefs = _calibrated(name, key)
    d = _draw(model, P, coefs, np.random.default_rng(_derived_seed(name, "population")), N_POPULATION)
    return _truth_block(model, P, coefs, d, expected=True)


_OVERRIDES_BY_KEY: dict[str, dict] = {}


def _days_to_dates(start: np.datetime64, days: np.ndarray) -> np.ndarray:
    out = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = np.isfinite(days)
    out[ok] = (start + days[ok].astype(np.int64).astype("timedelta64[D]"))
    return out


def _episodes(model: Scenario, P: dict, d: Draw, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    n = d.u_ho.size
    tl = d.tl
    true_ho = d.u_ho < d.p[np.arange(n), d.arm]
    end = tl.end_day.astype(float)  # after the horizon: the schedule never censors before day 365 (dgp)
    # ltfu_day is the last day seen: what happens on it is recorded, so censoring there is independent
    ho = true_ho & (tl.detect_day < d.death_day) & (tl.detect_day <= d.ltfu_day)
    died = (d.death_day <= end) & (d.death_day <= d.ltfu_day)
    lost = ~died & (d.ltfu_day <= end)
    last = np.where(died, d.death_day, np.where(lost, d.ltfu_day, end))
    symptomatic = true_ho & tl.symptomatic & (tl.symptom_scan_day < d.death_day) & (tl.symptom_scan_day <= d.ltfu_day)

    start = np.datetime64(P["index_date_start"], "D")
    span = int((np.datetime64(P["index_date_end"], "D") - start).astype(int)) + 1
    index_day = rng.integers(0, span, n).astype(float)
    sites = np.asarray(P["sites"], dtype=object)
    width = max(6, len(str(n)))
    number = np.strings.zfill(np.arange(1, n + 1).astype(np.dtypes.StringDType()), width)
    prefix = np.asarray([f"{s}-" for s in P["sites"]], dtype=np.dtypes.StringDType())[d.site]
    pid = np.strings.add(prefix, number).astype(object)

    joints = list(P["ho_site_shares"])
    joint = np.asarray(joints, dtype=object)[_choice(rng, n, [P["ho_site_shares"][j] for j in joints])]
    if model.name == "resection_recurrence":
        joint = d.cov["joint"]  # recurrence at the resected joint
    cols: dict[str, Any] = {"patient_id": pid, "site": sites[d.site],
                            "index_event": np.full(n, P.get("index_event", ""), dtype=object),
                            "index_date": _days_to_dates(start, index_day)}
    spec = model.columns(P, d.cov, d.trt)
    male = spec.pop("male")
    cols.update(spec)
    cols["sex"] = np.where(male, "male", "female").astype(object)
    cols["ho"] = ho
    cols["ho_date"] = _days_to_dates(start, np.where(ho, index_day + tl.detect_day, np.nan))
    cols["ho_site"] = np.where(ho, joint, None).astype(object)
    if "brooker_shares" in P:
        grade = 1 + _choice(rng, n, P["brooker_shares"])
        cols["brooker_grade"] = np.where(ho, grade, 0).astype(np.int64)
    cols["symptomatic"] = symptomatic
    cols["detection_modality"] = np.where(ho, np.where(tl.detect_scan, "bone_scan", "xray"), None).astype(object)
    if "wound_complication_risk" in P:
        cols["wound_complication"] = rng.random(n) < P["wound_complication_risk"]
    if "gcs_score" in cols:
        cols["gcs_score"] = pd.array(np.where(cols["gcs_score"] > 0, cols["gcs_score"], 0), dtype="Int64")
        cols["gcs_score"][~d.cov["is_tbi"]] = pd.NA
    cols["death_date"] = _days_to_dates(start, np.where(died, index_day + d.death_day, np.nan))
    cols["last_followup_date"] = _days_to_dates(start, index_day + last)
    ep = pd.DataFrame({k: cols[k] for k in CANONICAL_ORDER if k in cols})
    latent = {"index_day": index_day, "true_ho": true_ho, "last_day": last, "ho_observed": ho}
    return ep, latent


def _assessments(P: dict, model: Scenario, d: Draw, ep: pd.DataFrame, lat: dict,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Long table: patient_id, date, test, result, value; patient-major, by date within patient."""
    n = d.u_ho.size
    tl = d.tl
    k = tl.visit_day.shape[1]
    n_alp_visits = min(3, k - 1)
    true_ho = lat["true_ho"]
    limit = np.minimum(d.death_day, d.ltfu_day + 1)  # imaging and labs while alive, up to the last day seen
    # slots: lab alp | x-ray per visit | alp at the first visits | symptom scan | its alp | false-alarm scan
    day = np.column_stack([tl.lab_day, tl.visit_day, tl.visit_day[:, :n_alp_visits], tl.symptom_scan_day,
                           tl.symptom_scan_day, tl.false_alarm_day]).astype(float)
    valid = np.column_stack([np.ones(n, bool), tl.attend, tl.attend[:, :n_alp_visits], true_ho & tl.symptomatic,
                             true_ho & tl.symptomatic,
                             tl.false_alarm & ~(true_ho & tl.symptomatic & (tl.false_alarm_day == tl.symptom_scan_day))]
                            ) & (day < limit[:, None])  # one bone scan a day
    test = np.array([3] + [0] * k + [3] * n_alp_visits + [1, 3, 1], dtype=np.int8)  # codes into ASSESSMENT_TESTS
    visible = np.where(test == 0, 0, 1)  # 0: x-ray visibility, 1: bone-scan visibility
    positive = true_ho[:, None] & (day >= np.where(visible[None, :] == 0, tl.xray_visible[:, None],
                                                   tl.scan_visible[:, None]))
    # order within patient by day, x-ray/scan before the lab on the same day (the key summed in place: the
    # same sums as day * 8 + lab + invalid, without a slots-wide temporary per term)
    key = day * 8
    key += np.where(test == 3, 1, 0)[None, :]
    key += np.where(valid, 0, 1e7)
    order = np.argsort(key, axis=1)
    del key
    rows = np.arange(n)[:, None]
    day, valid, positive = day[rows, order], valid[rows, order], positive[rows, order]
    test_o = test[order]
    del order
    pat = np.broadcast_to(rows, day.shape)[valid]
    day_v, test_v, pos_v = day[valid], test_o[valid], positive[valid]
    del day, valid, positive, test_o   # the (patients x slots) tables: only the valid slots are used below
    # one ALP sample a day (the symptom-driven lab can fall on a visit day)
    same = np.zeros(pat.size, bool)
    same[1:] = (pat[1:] == pat[:-1]) & (day_v[1:] == day_v[:-1]) & (test_v[1:] == 3) & (test_v[:-1] == 3)
    pat, day_v, test_v, pos_v = pat[~same], day_v[~same], test_v[~same], pos_v[~same]
    base = P["alp_baseline_median_u_l"] * np.exp(P["alp_baseline_sigma_log"] * rng.standard_normal(n))
    peak = P["alp_ho_peak_u_l"] * np.exp(0.3 * rng.standard_normal(n))
    alp = test_v == 3
    value = np.full(day_v.size, np.nan)
    value[alp] = dgp.alp_values(P, rng, day_v[alp], pat[alp], tl.onset, true_ho, base, peak,
                                model.index_alp_rise(P, d.cov))
    result = np.where(alp, -1, pos_v.astype(np.int8))
    start = np.datetime64(P["index_date_start"], "D")
    dates = start + (lat["index_day"][pat] + day_v).astype(np.int64).astype("timedelta64[D]")
    return pd.DataFrame({
        "patient_id": pd.Categorical.from_codes(pat, categories=pd.Index(ep["patient_id"].to_numpy())),
        "date": dates.astype("datetime64[ns]"),
        "test": pd.Categorical.from_codes(test_v, categories=list(ASSESSMENT_TESTS)),
        "result": pd.Categorical.from_codes(result, categories=["negative", "positive"]),
        "value": value})


class SyntheticCohort:
    """A synthetic HO cohort: clean canonical ``episodes``, ``assessments``, ``truth`` and export faults.

    ``episodes`` holds canonical columns with canonical codes (plain strings), dates as datetime64,
    booleans as bool, plus ``site``: the clean truth BEFORE faults. ``faults`` lists every injected
    export fault (site, row in the site's file, kind, column); ``latent`` holds the unobservable
    timeline (true onset, when imaging could first see HO, death and loss-to-follow-up days) and the
    potential outcomes ``detected_<arm>`` (HO detected within 365 days before death under each arm, no
    loss to follow-up; their means are ``truth["sample"]["risk"]``).
    """

    def __init__(self, scenario: str, n: int, seed: int, parameters: dict, episodes: pd.DataFrame,
                 assessments: pd.DataFrame, truth: dict, plan: export.FaultPlan, latent: pd.DataFrame):
        self.scenario, self.n, self.seed, self.parameters = scenario, n, seed, parameters
        self.episodes, self.assessments, self.truth, self.latent = episodes, assessments, truth, latent
        self._plan = plan

    @property
    def faults(self) -> pd.DataFrame:
        return self._plan.table

    def write(self, folder: str | Path, *, excel_site: str | None = None) -> Path:
        """Write per-site exports, mappings, assessments.csv, export.toml, truth.json and faults.csv."""
        return export.write(self, Path(folder), excel_site=excel_site)

    def __repr__(self) -> str:
        return f"SyntheticCohort({self.scenario!r}, n={self.n}, seed={self.seed}, faults={len(self.faults)})"


# the largest n: ten times the population truth's 1,000,000-patient draw and about what a workstation's memory
# holds (n = 10**12 would need ~7 TiB); hostats.analysis.spec.MAX_SYNTHETIC_N is the same bound
MAX_N = 50_000_000

# Memory a draw and its export take at their peak: about 0.6 GB whatever n (the imports and the population
# truth's 1,000,000-patient draw) plus 1.1 KiB per episode (peak RSS of hostats synth tha_prophylaxis at
# 0.1M / 0.4M / 2M episodes: 0.66 / 0.93 / 2.68 GB; neurogenic and resection_recurrence take less); 1,200
# bytes leaves a margin. Near MAX_N that is ~60 GB, and a draw that does not fit dies by an OOM kill.
MEMORY_BASE_BYTES = 600_000_000
MEMORY_BYTES_PER_EPISODE = 1_200


def _read_number(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" when there is no limit


def available_memory() -> int | None:
    """Bytes of memory available to this process now, or None where unknown (then nothing is checked).

    Linux: /proc/meminfo's MemAvailable (free memory plus the page cache that can be reclaimed; the free
    pages alone, os.sysconf's SC_AVPHYS_PAGES, are the fallback and would refuse after a large file read),
    and within a container no more than its cgroup's limit less what it uses."""
    found = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):  # not on this platform (macOS, Windows)
            return None
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2, v1
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, used = _read_number(limit), _read_number(usage)
        if cap is not None and used is not None and cap < found + used:  # v1 writes a huge number for none
            found = min(found, max(cap - used, 0))
    return found


def memory_problem(n: int) -> str | None:
    """Why drawing ``n`` episodes would not fit in the memory available now (the estimate and the memory
    available, in one sentence), or None: it fits, or the available memory is unknown."""
    have = available_memory()
    need = MEMORY_BASE_BYTES + MEMORY_BYTES_PER_EPISODE * int(n)
    if have is None or need <= have:
        return None
    most = max((have - MEMORY_BASE_BYTES) // MEMORY_BYTES_PER_EPISODE, 0)
    most -= most % 10 ** max(len(str(most)) - 2, 0)  # two significant figures, rounded down
    fix = f"choose at most about {most:,} episodes here, or free memory" if most else "free memory first"
    return (f"{int(n):,} episodes need about {need / 1e9:.1f} GB of memory to draw and write ({MEMORY_BASE_BYTES / 1e9:.1f} "
            f"GB and {MEMORY_BYTES_PER_EPISODE:,} bytes per episode), but {have / 1e9:.1f} GB is available now: "
            f"{fix} (the draw would end in an out-of-memory kill)")


def generate(name: str, n: int, seed: int, overrides: dict | None = None, fault_rate: float = 0.03) -> SyntheticCohort:
    """Draw ``n`` episodes of scenario ``name`` with ``seed`` (numpy Generator; same seed, same bytes).

    Estimand in ``truth``: ``risk[arm]`` = P(HO detected by imaging within 365 days of the index event,
    before death, with no loss to follow-up) if every patient received ``arm``; a study with complete
    follow-up measuring ``ho and ho_date - index_date <= 365`` estimates it exactly. Method: each
    patient's outcome under every arm is simulated with the same random numbers (potential outcomes with
    common random numbers); ``sample`` averages this draw's outcomes, ``population`` each patient's
    probability of that outcome over a fixed 1,000,000-patient draw (``_truth_block``). Follow-up runs past
    the 12-month x-ray and day 365 (``dgp``), so censoring before the horizon is only the independent loss
    to follow-up and Aalen-Johansen at 365 days estimates ``cumulative_incidence``.
    Intercepts and treatment log-odds are solved so the docs/rates.md targets hold (``models.calibrate``).
    Reference: Morris, White & Crowther, "Using simulation studies to evaluate statistical methods",
    Stat Med 2019;38:2074-2102 (data-generating mechanism and estimand defined before simulating).

    ``overrides`` replace scenario parameters by name (unknown names are an error naming the key; a
    number given for a table, e.g. ``death_within_1y`` in neurogenic, sets every entry). ``fault_rate`` is
    the share of export rows given a fault (0 turns faults off); faults never touch ``episodes``.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if n > MAX_N:
        raise ValueError(f"n = {n} is more than the at most {MAX_N:,} episodes a synthetic cohort may have "
                         "(beyond it the draw runs out of memory)")
    problem = memory_problem(n)  # before any array is drawn
    if problem is not None:
        raise ValueError(problem)
    if not 0 <= fault_rate < 1:
        raise ValueError(f"fault_rate must lie in [0, 1), got {fault_rate!r}")
    P = params.resolve(name, overrides)
    key = params.cache_key(name, P)
    _OVERRIDES_BY_KEY[key] = dict(overrides or {})
    model = MODELS[name]
    coefs = _calibrated(name, key)
    rng = np.random.default_rng(seed)
    site_logits = None
    if name == "resection_recurrence":
        site_logits = P["recurrence_logit_mean"] + np.sqrt(P["recurrence_tau2_logit"]) * rng.standard_normal(
            len(P["sites"]))
    d = _draw(model, P, coefs, rng, int(n), site_logits)
    ep, lat = _episodes(model, P, d, rng)
    asm = _assessments(P, model, d, ep, lat, rng)
    sample = _truth_block(model, P, coefs, d)
    truth: dict[str, Any] = {"scenario": name, "n": int(n), "seed": int(seed), "fault_rate": float(fault_rate),
                             "horizon_days": dgp.HORIZON_DAYS, "parameters": P,
                             "generating": {"intercepts_logit": [float(x) for x in coefs.intercepts],
                                            "arm_log_odds": coefs.arm_log_odds,
                                            "detected_before_death_given_ho":
                                                None if coefs.detect_factor is None
                                                else [float(x) for x in coefs.detect_factor]},
                             "population": copy.deepcopy(_population(name, key)), "sample": sample}
    if name == "resection_recurrence":
        sites = {}
        counts = np.bincount(d.site, minlength=len(P["sites"]))
        for j, s in enumerate(P["sites"]):
            sites[s] = {"recurrence_risk": float(expit(site_logits[j])), "logit": float(site_logits[j]),
                        "n": int(counts[j])}
        truth["sites"] = sites
        truth["sample"]["sites"] = truth["population"]["sites"] = copy.deepcopy(sites)
        truth["sample"]["pooled"] = {"logit_mean": float(site_logits.mean()),
                                     "tau2_logit": float(site_logits.var(ddof=1)),
                                     "risk_at_mean": float(expit(site_logits.mean()))}
        truth["pooled"] = truth["population"]["pooled"]
        truth["note"] = ("sites[s].recurrence_risk is the probability of recurrence detected within 365 days "
                         "with no death and no loss to follow-up: detection is certain within the horizon, "
                         "so a site's observed 1-year recurrence proportion then has expectation exactly "
                         "recurrence_risk (the meta-analysis estimand). risk{arm} has death competing.")
    plan = export.plan_faults(ep, P, np.random.default_rng([int(seed), 1, _derived_seed(name, "faults")]), fault_rate)
    truth["faults"] = plan.counts()
    latent = pd.DataFrame({"patient_id": ep["patient_id"], "true_ho": lat["true_ho"], "onset_day": d.tl.onset,
                           "xray_visible_day": d.tl.xray_visible, "scan_visible_day": d.tl.scan_visible,
                           "death_day": d.death_day, "ltfu_day": d.ltfu_day, "arm": d.arm})
    det = d.detected_under_arms()
    for j, arm in enumerate(model.arms(P)):  # potential outcomes: HO detected within 365 days under each arm
        latent[f"detected_{arm}"] = det[:, j]
    if "rt_hours" in d.trt:
        latent["rt_hours_latent"] = d.trt["rt_hours"]
    return SyntheticCohort(name, int(n), int(seed), P, ep, asm, truth, plan, latent)
