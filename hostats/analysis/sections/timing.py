"""Sections on when HO starts: interval-censored onset from the imaging schedule, and the timing of
diagnosis (bone scan to x-ray lead, alkaline phosphatase)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hostats.analysis.context import Context, SectionOutput, _number, _truth_of
from hostats.analysis.sections import register
from hostats.analysis.sections._common import _need_columns, _rows, _section_frame
from hostats.report.html import TableBlock
from hostats.report.tables import (
    format_count,
    format_counts,
)


@register("interval_censored")
def sec_interval_censored(ctx: Context, sec: dict) -> SectionOutput:
    """Interval-censored timing of HO from the imaging schedule: Turnbull NPMLE and a Weibull fit.

    The bounds (last negative, first positive image) bracket when HO became VISIBLE on imaging, so the
    plain fit estimates the time to radiological visibility (group "first positive imaging"). With
    ``detection_lag_days = {xray = 24.5, bone_scan = 16}`` (mean lags, docs/rates.md R19/R20) the section also
    estimates biological onset by shifting each bound by the lag of the modality that produced it (group
    "onset (lag-corrected)"); the modalities come from the columns ``lower_modality``/``upper_modality``
    (default: the cohort's ``ho_interval_lo_test``/``ho_interval_hi_test``). ``truth`` ({measure = path}) applies to the onset rows when
    the lag is given, else to the visibility rows. Episodes whose first positive image is on day 0 (HO
    already visible at the index date: prevalent, no onset after it) are excluded and counted.
    """
    from hostats.stats.survival.interval_censoring import interval_censored

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    lo, hi = sec.get("lower", "ho_interval_lo_days"), sec.get("upper", "ho_interval_hi_days")
    _need_columns(ctx, d, [lo, hi], sec, "lower" if lo not in d.columns else "upper")
    # as R's interval2: a missing upper bound is right-censored and a missing lower bound left-censored
    # (interval_censored reads both); only an episode without either bound is missing
    neither = (d[lo].isna() & d[hi].isna()).to_numpy()
    if neither.any():
        out.warn(sec, f"{format_count(int(neither.sum()), ctx.threshold)} episode(s) without either interval "
                      "bound left out.")
        d = d.loc[~neither]
    hiv = d[hi].to_numpy(dtype=float)
    if not np.isfinite(hiv).any():
        raise ctx.spec.error("no episode has a positive imaging result (all upper bounds infinite)", "section",
                             "upper", sec["_index"])
    thr = ctx.threshold
    flow = [("episodes with an interval bound", len(d))]
    prevalent = hiv == 0
    if prevalent.any():
        k = int(prevalent.sum())
        out.warn(sec, f"{format_count(k, thr)} episode(s) with a positive image on day 0 (HO already visible at "
                      "the index date: prevalent, no onset after it) excluded from the onset analysis.")
        d = d.loc[~prevalent]
        flow.append(("excluded: positive image on day 0 (prevalent HO)", k))
    kw: dict[str, Any] = {"n_boot": int(sec["n_boot"])} if "n_boot" in sec else {}
    if ctx.spec.seed is not None:
        kw["seed"] = int(ctx.spec.seed)
    lags = sec.get("detection_lag_days")
    if lags is not None and (not isinstance(lags, dict) or not lags
                             or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                        for v in lags.values())):
        raise ctx.spec.error("detection_lag_days must be a table of modality = days >= 0, e.g. "
                             "{ xray = 24.5, bone_scan = 16 }", "section", "detection_lag_days", sec["_index"])
    tpath = sec.get("truth")
    results = [(interval_censored(d, lo, hi, level=ctx.level, **kw), "first positive imaging",
                lags is None)]
    if lags is not None:
        lcol = sec.get("lower_modality", "ho_interval_lo_test")
        ucol = sec.get("upper_modality", "ho_interval_hi_test")
        res = interval_censored(d, lo, hi, level=ctx.level, detection_lag_days=lags,
                                lower_modality=lcol, upper_modality=ucol,
                                **({"min_onset_days": float(sec["min_onset_days"])}
                                   if "min_onset_days" in sec else {}), **kw)
        results.append((res, "onset (lag-corrected)", True))
        for key, label in (("early", "lag-corrected upper bound set to the minimum onset day"),
                           ("inverted", "lag-corrected interval inverted (bounds swapped)")):
            if res.lag_adjustments.get(key):
                flow.append((label, res.lag_adjustments[key]))
    for res, group, with_truth in results:
        t = out.result_table(res, "onset")
        units = {"weibull_shape_rho": "shape", "lognormal_mu_log_days": "log days", "lognormal_sigma": "log days",
                 "aic_weibull": "AIC", "aic_lognormal": "AIC"}
        t["unit"] = t["measure"].map(lambda m, u=units: u.get(str(m), "days"))
        t["group"] = group

        def truth(r, with_truth=with_truth):  # a table {measure = path}, e.g. median_onset_npmle = "onset.median_days"
            if not with_truth or not isinstance(tpath, dict):
                return None
            return _number(_truth_of(ctx, tpath.get(str(r.get("measure", "")))))

        out.estimates.append(_rows(ctx, sec, t, truth=truth, method=res.method))
        out.warn(sec, *[f"{group}: {w}" for w in res.warnings])
    out.tables.append(TableBlock(
        f"Episodes in the analysis: {sec.get('title', '')}",
        pd.DataFrame({"step": [f[0] for f in flow], "episodes": format_counts([f[1] for f in flow], thr)}),
        "The interval bounds bracket the day HO became visible on imaging (first positive imaging); "
        + ("the lag-corrected rows shift each bound back by the mean detection lag of its modality ("
           + ", ".join(f"{k} {float(v):g} days" for k, v in lags.items()) + ") to estimate biological onset."
           if lags is not None else "no detection-lag correction: the estimand is the time to radiological "
           "visibility, not biological onset (x-rays turn positive 21-28 days after onset).")))
    if sec.get("figure", True):
        _interval_figure(out, sec, [(r, g) for r, g, _ in results])
    return out


def _interval_figure(out: SectionOutput, sec: dict, results: list) -> None:
    import matplotlib.pyplot as plt

    from hostats.report.figures import _style

    _style()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    tmax = 0.0
    for i, (res, group) in enumerate(results):
        g = res.curve.sort_values("time")
        if g.empty:
            continue
        color = f"C{i}"
        tt = np.concatenate([[0.0], g["time"].to_numpy(float)])
        ax.step(tt, np.concatenate([[0.0], g["estimate"].to_numpy(float)]), where="post", color=color,
                label=f"{group}: Turnbull NPMLE")
        if g["ci_lower"].notna().any():
            ax.fill_between(tt, np.concatenate([[0.0], g["ci_lower"].to_numpy(float)]),
                            np.concatenate([[0.0], g["ci_upper"].to_numpy(float)]), step="post", alpha=0.2,
                            lw=0, color=color)
        tmax = max(tmax, float(g["time"].max()))
    if tmax == 0.0:
        plt.close(fig)
        return
    grid = np.linspace(0.0, tmax * 1.05, 200)
    for i, (res, group) in enumerate(results):
        wc = res.weibull_cdf(grid)
        ax.plot(wc["time"], wc["estimate"], ls="--", color=f"C{i}", label=f"{group}: Weibull")
    ax.set_xlabel("days from index event")
    ax.set_ylabel("cumulative proportion")
    ax.set_title(sec.get("title", "Time to onset"), loc="left", fontsize=12)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.tight_layout()
    caption = ("Cumulative distribution of the day HO became visible on imaging (first positive imaging)"
               + ("; the lag-corrected curve shifts each imaging bound back by its modality's detection lag to "
                  "estimate biological onset" if len(results) > 1 else "") + ". Shaded: bootstrap limits.")
    out.figures.append((sec["id"], sec.get("title", "Time to onset"), caption, fig))


@register("diagnosis_timing")
def sec_diagnosis_timing(ctx: Context, sec: dict) -> SectionOutput:
    """Time from the first positive bone scan to the first positive x-ray, and alkaline phosphatase (ALP)
    at and before detection.

    From the assessments table: for each analysed episode with HO, the first positive bone scan and the
    first positive x-ray after the index date; the observed lag is the difference in days (paired, among
    episodes with both). It is an upper bound of the biological lead (R20: 7-10 days): x-rays are taken
    at scheduled visits, so an x-ray turns positive only at the next visit after HO becomes visible. ALP at detection is the measurement closest to the first positive imaging (within 7
    days); ALP before is the last one 14-60 days before it. Summaries: mean with t-interval and median.
    """
    out = SectionOutput()
    a = ctx.assessments
    if a is None or a.empty:
        raise ctx.spec.error("needs an assessments table (imaging and ALP results); the data have none",
                             "section", "type", sec["_index"])
    d = _section_frame(ctx, sec)
    ep = d.loc[d["ho"].fillna(False).astype(bool), ["patient_id", "index_date"]].copy() if "ho" in d.columns else None
    if ep is None or ep.empty:
        raise ctx.spec.error("no episode with HO to time", "section", "subset", sec["_index"])
    ep["_ep"] = np.arange(len(ep))
    m = a.merge(ep, on="patient_id", how="inner")
    m = m[m["date"] >= m["index_date"]]
    m["day"] = (m["date"] - m["index_date"]).dt.days.astype(float)
    pos = m[m["result"].astype(str) == "positive"]
    first = pos.groupby(["_ep", pos["test"].astype(str)])["day"].min().unstack()
    rows, ref = [], "Student t interval for a mean (scipy.stats.t); medians with quartiles"
    from scipy import stats as st

    def summarise(x: np.ndarray, measure: str, unit: str, truth_key: str | None = None):
        x = x[np.isfinite(x)]
        n = len(x)
        if n >= 2:
            mean, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(n))
            q = st.t.ppf(0.5 + ctx.level / 2, n - 1)
            lo, hi = mean - q * se, mean + q * se
        else:
            mean, lo, hi = (float(x.mean()) if n else np.nan), np.nan, np.nan
        tmap = sec.get("truth") if isinstance(sec.get("truth"), dict) else {}
        tv = _number(_truth_of(ctx, tmap.get(measure))) if measure in tmap else None
        rows.append({"measure": measure, "group": "mean", "estimate": mean, "ci_lower": lo, "ci_upper": hi,
                     "ci_level": ctx.level, "n": n, "events": np.nan, "unit": unit, "truth": tv})
        if n:
            q1, q2, q3 = np.percentile(x, [25, 50, 75])
            rows.append({"measure": measure, "group": "median [quartiles]", "estimate": q2, "ci_lower": q1,
                         "ci_upper": q3, "ci_level": np.nan, "n": n, "events": np.nan,
                         "unit": unit + " (quartiles, not a CI)", "truth": None})

    if {"bone_scan", "xray"} <= set(first.columns):
        both = first[["bone_scan", "xray"]].dropna()
        summarise((both["xray"] - both["bone_scan"]).to_numpy(float), "days_first_positive_bone_scan_to_xray",
                  "days")
    else:
        out.warn(sec, "no episode has both a positive bone scan and a positive x-ray; the lead cannot be "
                      "estimated.")
    img = pos[pos["test"].astype(str).isin(["xray", "bone_scan", "ct"])]
    detect = img.groupby("_ep")["day"].min()
    alp = m[m["test"].astype(str) == "alp"][["_ep", "day", "value"]].dropna()
    if len(alp) and len(detect):
        alp = alp.assign(det=alp["_ep"].map(detect)).dropna(subset=["det"])
        alp["rel"] = alp["day"] - alp["det"]
        at = alp[alp["rel"].abs() <= 7].assign(ab=lambda f: f["rel"].abs()).sort_values(["_ep", "ab"])
        at = at.groupby("_ep")["value"].first()
        before = alp[(alp["rel"] <= -14) & (alp["rel"] >= -60)].sort_values(["_ep", "rel"])
        before = before.groupby("_ep")["value"].last()
        summarise(at.to_numpy(float), "alp_at_detection", "U/L")
        summarise(before.to_numpy(float), "alp_before_detection", "U/L")
        paired = pd.concat([at.rename("at"), before.rename("before")], axis=1).dropna()
        summarise((paired["at"] - paired["before"]).to_numpy(float), "alp_rise_at_detection", "U/L")
    else:
        out.warn(sec, "no ALP measurements around detection.")
    out.methods.append(("mean with t interval, median with quartiles", ref))
    if rows:
        out.estimates.append(_rows(ctx, sec, pd.DataFrame(rows), truth=lambda r: r["truth"],
                                   method="descriptive"))
    return out
