"""The common data-generating machinery: onset, imaging schedule, detection, death, loss to follow-up.

Every patient gets a full latent timeline whether or not HO occurs (common random numbers): the onset
time, when x-ray and bone scan would turn positive, which visits are attended, symptom-driven scans.
HO itself is decided afterwards by one uniform per patient compared with the risk under each arm, so
the potential outcomes of one patient under all arms share every random number.

Design choice that makes the truth exact: onsets are truncated at ``onset_max_days`` and the 12-month
x-ray (always attended while the patient is alive and followed) falls in the two weeks before day 365,
after every x-ray has turned positive. Hence, with no death and no loss to follow-up, HO is detected
within 365 days if and only if it occurred, and the probability of detection within the horizon with
death competing is ``E[p_i * exp(-lambda_i * D_i)]`` (``D_i`` the detection day).

Follow-up does not end at the 12-month x-ray but at a later contact (its review, no imaging), drawn
``final_contact_after_visit_days`` after it and so after day 365. Were the 12-month x-ray also the end of
follow-up, censoring would coincide with the last chance of detection: a patient censored HO-free on day
v in 351-365 has no HO left to find, while everyone still at risk carries the undetected HO of the
cohort, so the censoring is informative and Aalen-Johansen / Kaplan-Meier read at 365 overstate the
detections of the final window about H_15 = 3.3-fold (+6-7% relative on the 1-year cumulative incidence).
With the later contact, only loss to follow-up (independent of everything else) censors before the
horizon and a standard analysis at 365 estimates the truth without bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

HORIZON_DAYS = 365


def uniform(rng: np.random.Generator, n: int, bounds) -> np.ndarray:
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo + (hi - lo) * rng.random(n)


def hazard_per_day(p_within_year) -> np.ndarray:
    """Constant hazard giving probability ``p`` of the event within 365 days (0 -> no event)."""
    p = np.asarray(p_within_year, dtype=float)
    with np.errstate(divide="ignore"):
        return -np.log1p(-np.minimum(p, 1 - 1e-12)) / HORIZON_DAYS


def event_day(rng: np.random.Generator, n: int, p_within_year) -> np.ndarray:
    """Integer day (>= 1) of an exponential event; ``inf`` where the probability is 0."""
    e = rng.standard_exponential(n)
    lam = hazard_per_day(p_within_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(lam > 0, e / np.where(lam > 0, lam, 1.0), np.inf)
    return np.maximum(np.ceil(t), 1.0)


def truncated_lognormal(rng: np.random.Generator, n: int, median: float, sigma: float, upper: float) -> np.ndarray:
    """Inverse-CDF draw from a log-normal truncated above at ``upper`` (R22)."""
    zmax = (np.log(upper) - np.log(median)) / sigma
    u = rng.random(n) * ndtr(zmax)
    return median * np.exp(sigma * ndtri(np.maximum(u, 1e-300)))


@dataclass
class Timeline:
    """Latent imaging timeline of every patient, in days from the index event."""

    onset: np.ndarray           # true onset if HO occurs (float days)
    xray_visible: np.ndarray    # first day an x-ray can show the HO (R19)
    scan_visible: np.ndarray    # first day a bone scan can show it (R20)
    visit_day: np.ndarray       # (n, K) int scheduled x-ray days
    attend: np.ndarray          # (n, K) bool, the last visit always True
    symptomatic: np.ndarray     # latent: symptomatic if HO occurs (R2)
    symptom_scan_day: np.ndarray
    false_alarm: np.ndarray     # bone scan for symptoms without HO
    false_alarm_day: np.ndarray
    lab_day: np.ndarray         # early ALP sample
    detect_day: np.ndarray      # first positive imaging if HO occurs, no death / loss (<= 365 by design)
    detect_scan: np.ndarray     # True when that first positive is a bone scan
    end_day: np.ndarray         # last contact: after the 12-month x-ray and after the horizon (no imaging)


def timeline(P: dict, rng: np.random.Generator, n: int) -> Timeline:
    onset = truncated_lognormal(rng, n, P["onset_median_days"], P["onset_sigma_log"], P["onset_max_days"])
    xray_visible = onset + uniform(rng, n, P["xray_delay_days"])
    scan_visible = xray_visible - uniform(rng, n, P["bone_scan_lead_days"])
    nominal = np.asarray(P["visit_days"], dtype=np.int64)
    jitter = np.asarray(P["visit_jitter_days"], dtype=np.int64)
    k = nominal.size
    u = rng.random((n, k))
    visit = nominal + np.floor(u * (2 * jitter + 1)).astype(np.int64) - jitter
    # The 12-month visit falls in the `jitter` days before the anniversary (see module docstring).
    visit[:, -1] = nominal[-1] - np.floor(u[:, -1] * (jitter[-1] + 1)).astype(np.int64)
    attend = rng.random((n, k)) < P["visit_attendance"]
    attend[:, -1] = True
    symptomatic = rng.random(n) < P["symptomatic_share"]
    symptom_scan_day = np.ceil(onset + uniform(rng, n, P["symptom_scan_delay_days"]))
    false_alarm = rng.random(n) < P["false_alarm_scan_share"]
    false_alarm_day = rng.integers(7, 181, n).astype(float)
    lab_day = P["alp_lab_day"] + rng.integers(-3, 4, n)

    xray_pos = attend & (visit >= xray_visible[:, None])
    first_xray = np.where(xray_pos, visit, np.iinfo(np.int64).max).min(axis=1).astype(float)
    scan_pos_sym = symptomatic & (symptom_scan_day >= scan_visible)
    scan_pos_fa = false_alarm & (false_alarm_day >= scan_visible)
    first_scan = np.minimum(np.where(scan_pos_sym, symptom_scan_day, np.inf),
                            np.where(scan_pos_fa, false_alarm_day, np.inf))
    detect_scan = first_scan < first_xray
    detect_day = np.where(detect_scan, first_scan, first_xray)
    lo, hi = (int(b) for b in P["final_contact_after_visit_days"])
    if not 0 <= lo <= hi:
        raise ValueError(f"final_contact_after_visit_days must be [lo, hi] with 0 <= lo <= hi, got {[lo, hi]}")
    end_day = visit[:, -1] + rng.integers(lo, hi + 1, n)
    return Timeline(onset, xray_visible, scan_visible, visit, attend, symptomatic, symptom_scan_day,
                    false_alarm, false_alarm_day, lab_day.astype(float), detect_day, detect_scan, end_day)


def alp_values(P: dict, rng: np.random.Generator, day: np.ndarray, patient: np.ndarray, onset: np.ndarray,
               ho: np.ndarray, base: np.ndarray, peak: np.ndarray, extra_rise: np.ndarray) -> np.ndarray:
    """Alkaline phosphatase (U/L) on ``day`` for ``patient`` (R21).

    Baseline, plus (if HO) a slight early rise and a short high peak about a month after onset, plus a
    rise from a recent fracture or spine fusion decaying after the index event, times measurement noise.
    """
    s = day - onset[patient]
    after = s >= 0
    plateau = P["alp_ho_plateau_fraction"] * (1 - np.exp(-np.maximum(s, 0) / 7.0)) \
        * np.exp(-np.maximum(s - P["alp_ho_peak_day_after_onset"], 0) / 60.0)
    spike = np.exp(-0.5 * ((s - P["alp_ho_peak_day_after_onset"]) / P["alp_ho_peak_width_days"]) ** 2)
    ho_part = np.where(ho[patient] & after, peak[patient] * (plateau + spike), 0.0)
    index_part = extra_rise[patient] * np.exp(-day / P["alp_index_decay_days"])
    noise = np.exp(P["alp_noise_sigma_log"] * rng.standard_normal(day.size))
    return np.rint((base[patient] + ho_part + index_part) * noise)
