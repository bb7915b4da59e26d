"""The ``meta_proportions`` section: per-site proportions or censoring-aware risks, pooled by random
effects."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hostats.analysis.context import Context, PublishedFigure, SectionOutput, _number, _truth_of
from hostats.analysis.derive import OUTCOME_FLAG
from hostats.analysis.sections import register
from hostats.analysis.sections._common import _complete, _event_series, _need_columns, _rows, _section_frame
from hostats.analysis.sections.incidence import (
    _as_sensitivity,
    _horizon_outcome,
    _known_status,
    _risk_by_horizon,
    _warn_known_subset,
)
from hostats.report.html import TableBlock
from hostats.report.tables import format_number, format_p


def _site_counts(ctx: Context, sec: dict, d: pd.DataFrame, by: str, event: str, out: SectionOutput) -> pd.DataFrame:
    """Events (``sum``) and episodes (``size``) per site, sites below ``min_size`` left out with a warning."""
    e = _event_series(ctx, d, event, sec)
    ok = e.notna().to_numpy() & d[by].notna().to_numpy()
    frame = pd.DataFrame({"g": d.loc[ok, by].astype(str), "e": e[ok].astype(bool)})
    agg = frame.groupby("g", sort=True)["e"].agg(["sum", "size"])
    min_size = int(sec.get("min_size", 1))
    small = agg[agg["size"] < min_size]
    if len(small):
        out.warn(sec, f"{len(small)} site(s) with fewer than {min_size} episodes left out of the pooling.")
        agg = agg[agg["size"] >= min_size]
    if len(agg) < 2:
        raise ctx.spec.error(f"pooling needs at least two values of {by!r}; found {len(agg)}", "section", "by",
                             sec["_index"])
    if agg["sum"].sum() == 0:
        raise ctx.spec.error(f"the outcome {event!r} has no events in these episodes", "section", "event",
                             sec["_index"])
    return agg


@dataclass
class _Pooled:
    """A pooled proportion or risk on the proportion scale (back-transformed), whatever pooled it."""

    estimate: float
    ci_lower: float
    ci_upper: float
    pred_lower: float
    pred_upper: float
    tau2: float
    i2: float
    q: float
    q_pvalue: float
    method: str
    reference: str
    warnings: list[str]


def _pool_site_risks(ctx: Context, sec: dict, d: pd.DataFrame, by: str, method: str,
                     out: SectionOutput) -> tuple[pd.DataFrame, _Pooled]:
    """Per-site Aalen-Johansen risks by the horizon pooled on the logit scale by inverse variance.

    Each site's logit risk has the delta-method variance se^2 / (F (1 - F))^2 of its Aalen-Johansen SE, so
    sites with more loss to follow-up weigh less. A site without events gets the usual 0.5 correction on its
    episodes (logit (0.5 / (n + 0.5)), variance 1/0.5 + 1/(n + 0.5)), as a logit meta-analysis of counts does.
    """
    from scipy.special import expit

    from hostats.stats.meta.effects import meta_effects

    at, res = _risk_by_horizon(ctx, d, by)
    out.methods.append((res.method, res.reference))
    min_size = int(sec.get("min_size", 1))
    small = at["n"] < min_size
    if small.any():
        out.warn(sec, f"{int(small.sum())} site(s) with fewer than {min_size} episodes left out of the pooling.")
        at = at[~small]
    if len(at) < 2:
        raise ctx.spec.error(f"pooling needs at least two values of {by!r}; found {len(at)}", "section", "by",
                             sec["_index"])
    if at["events"].sum() == 0:
        raise ctx.spec.error("HO by the horizon has no events in these episodes", "section", "event", sec["_index"])
    f = at["estimate"].to_numpy(float)
    se = at["std_error"].to_numpy(float)
    n = at["n"].to_numpy(float)
    inner = (f > 0) & (f < 1) & (se > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.where(inner, np.log(f / (1 - f)), np.log(0.5 / (n + 0.5)))
        vi = np.where(inner, (se / (f * (1 - f))) ** 2, 1 / 0.5 + 1 / (n + 0.5))
    corrected = [g for g, ok in zip(at["group"], inner, strict=True) if not ok]
    m = meta_effects(yi, vi, method=method, level=ctx.level, labels=list(at["group"]))
    out.methods.append((m.method, m.reference))
    warns = list(m.warnings) + ([f"{len(corrected)} site(s) without events by the horizon: logit risk with a 0.5 "
                                 "correction on the episodes"] if corrected else [])
    pooled = _Pooled(float(expit(m.estimate)), float(expit(m.ci_lower)), float(expit(m.ci_upper)),
                     float(expit(m.pred_lower)), float(expit(m.pred_upper)), m.tau2, m.i2, m.q, m.q_pvalue,
                     m.method, m.reference, warns)
    return at, pooled


def _meta_rows(ctx: Context, sec: dict, st: pd.DataFrame, res: Any, transform: str, measure: str,
               site_method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Estimate rows of a pooling: per site (``site_<measure>``) and pooled (``pooled_<measure>``, the
    prediction interval for a new site, tau2, I2), each with its truth where the spec gives one."""
    tpath = sec.get("truth")
    tsites = tpath.get("sites") if isinstance(tpath, dict) else None
    tpooled = tpath.get("pooled") if isinstance(tpath, dict) else None

    def site_truth(r):
        return _number(_truth_of(ctx, tsites, str(r["group"]))) if tsites else None

    st = st.assign(measure=f"site_{measure}")
    site_rows = _rows(ctx, sec, st, unit="proportion", truth=site_truth, method=site_method)
    pooled = pd.DataFrame({
        "measure": [f"pooled_{measure}", "prediction_interval", "tau2", "i2"],
        "group": ["pooled", "new site", "between sites", "between sites"],
        "estimate": [res.estimate, res.estimate, res.tau2, res.i2],
        "ci_lower": [res.ci_lower, res.pred_lower, np.nan, np.nan],
        "ci_upper": [res.ci_upper, res.pred_upper, np.nan, np.nan],
        "p_value": [np.nan, np.nan, res.q_pvalue, np.nan],
        "n": [int(st["n"].sum())] * 2 + [np.nan, np.nan],
        "events": [int(st["events"].sum())] * 2 + [np.nan, np.nan],
        "unit": ["proportion", "proportion", f"{transform} scale", "percent" if res.i2 > 1 else "fraction"],
    })
    pooled_truth = _truth_of(ctx, tpooled) if tpooled else None

    def ptruth(r):
        if not isinstance(pooled_truth, dict):
            return None
        if r["measure"] in (f"pooled_{measure}", "prediction_interval"):
            return pooled_truth.get("risk_at_mean")
        if r["measure"] == "tau2" and transform == "logit":
            return pooled_truth.get("tau2_logit")
        return None

    return site_rows, _rows(ctx, sec, pooled, truth=ptruth, method=res.method)


def heterogeneity_table(res: Any) -> pd.DataFrame:
    """The heterogeneity of a pooling as the report shows it: tau², I², Q with its p-value (as journals
    print one: "<0.001", not format_number's "2e-26") and the prediction interval."""
    return pd.DataFrame({"tau2": [format_number(res.tau2)], "I2": [format_number(res.i2)],
                         "Q": [format_number(res.q)], "Q p-value": [format_p(res.q_pvalue)],
                         "prediction interval": [f"{format_number(res.pred_lower)} to "
                                                 f"{format_number(res.pred_upper)}"]})


@register("meta_proportions")
def sec_meta_proportions(ctx: Context, sec: dict) -> SectionOutput:
    """Per-site proportions (or, for HO by the horizon, censoring-aware risks) and their random-effects
    pooling with a prediction interval and forest plot."""
    from hostats.stats.incidence import proportion
    from hostats.stats.meta.proportions import meta_proportions

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    by = sec.get("by", "site")
    _need_columns(ctx, d, [by], sec, "by")
    event = sec.get("event", OUTCOME_FLAG)
    method = sec.get("method", "REML")
    transform = sec.get("transform", "logit")

    def counts_pooling(frame: pd.DataFrame) -> tuple[pd.DataFrame, Any]:
        agg = _site_counts(ctx, sec, frame, by, event, out)
        res = meta_proportions(agg["sum"].to_numpy(int), agg["size"].to_numpy(int), method=method,
                               transform=transform)
        per_site = proportion(agg["sum"].to_numpy(int), agg["size"].to_numpy(int),
                              method="clopper-pearson", level=ctx.level, groups=list(agg.index))
        out.methods += [(res.method, res.reference), (per_site.method, per_site.reference)]
        return per_site.table(), res

    if _horizon_outcome(d, event):
        _warn_known_subset(ctx, sec, out)
        if transform != "logit":
            raise ctx.spec.error(f"risks by the horizon are pooled on the logit scale (got transform = "
                                 f"{transform!r})", "section", "transform", sec["_index"])
        d = _complete(ctx, d, ["time_days", "status", by], sec, out)
        st, res = _pool_site_risks(ctx, sec, d, by, method, out)
        measure, site_method, ci_label = "risk", "Aalen-Johansen", "Aalen-Johansen CIs"
        cc_st, cc_res = counts_pooling(_known_status(d))
        cc_rows = pd.concat(_meta_rows(ctx, sec, cc_st, cc_res, transform, "proportion", "Clopper-Pearson"),
                            ignore_index=True)
        out.estimates.append(_as_sensitivity(ctx, sec, out, cc_rows[cc_rows["measure"] != "i2"],
                                             f"Per-site proportions and their {method} pooling ({transform})"))
    else:
        st, res = counts_pooling(d)
        measure, site_method, ci_label = "proportion", "Clopper-Pearson", "Clopper-Pearson CIs"
    site_rows, pooled_rows = _meta_rows(ctx, sec, st, res, transform, measure, site_method)
    out.estimates[:0] = [site_rows, pooled_rows]

    def forest(shown: pd.DataFrame) -> tuple[Any, str] | None:
        """The forest plot from the published rows: a site (or the pooled row) estimates.csv withholds is not
        drawn."""
        from hostats.report.figures import forest_plot

        sites = shown[shown["measure"] == f"site_{measure}"]
        drawn = sites[sites["estimate"].notna()].copy()
        for c in ("estimate", "ci_lower", "ci_upper"):
            drawn[c] = drawn[c].astype(float)
        drawn["label"] = drawn["group"]
        n_hidden = len(sites) - len(drawn)
        pooled = shown[(shown["measure"] == f"pooled_{measure}") & shown["estimate"].notna()]
        new_site = shown[(shown["measure"] == "prediction_interval") & shown["estimate"].notna()]
        if drawn.empty and pooled.empty:
            return None
        summary = pooled.head(1)[["estimate", "ci_lower", "ci_upper"]].astype(float).assign(
            label=f"pooled ({method}, {transform})") if len(pooled) else None
        prediction = (float(new_site["ci_lower"].iloc[0]), float(new_site["ci_upper"].iloc[0])) \
            if len(pooled) and len(new_site) else None
        truth = pooled["truth"].iloc[0] if len(pooled) and "truth" in pooled.columns else None
        fig = forest_plot(drawn, label="label", log=False, xlabel=f"{measure} of HO" if measure == "risk" else
                          "proportion with the event", title=sec.get("title", ""), summary=summary,
                          prediction=prediction, truth=None if truth is None or pd.isna(truth) else truth)
        return fig, (f"Per-site {measure} ({ci_label})"
                     + (f", the random-effects pooled {measure} (diamond) and the {int(ctx.level * 100)}% "
                        "prediction interval for a new site (bar)." if summary is not None else ".")
                     + (f" {n_hidden} site(s) with fewer than {ctx.threshold} events or episodes are pooled "
                        "but not drawn." if n_hidden else ""))

    out.figures.append(PublishedFigure(sec["id"] + "_forest", sec.get("title", "Forest plot"), sec["id"], forest))
    out.diagnostics.append(TableBlock(f"Heterogeneity: {sec.get('title', '')}", heterogeneity_table(res)))
    out.warn(sec, *res.warnings)
    return out
