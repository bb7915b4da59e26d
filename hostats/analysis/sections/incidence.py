"""Sections on how often: cumulative incidence, proportions and rates; and the helpers of risks by the
horizon (censoring-aware primary rows, complete case as a labelled sensitivity analysis) that the other
families share."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hostats.analysis.context import Context, PublishedFigure, SectionOutput, _group_truth
from hostats.analysis.derive import FOLLOWUP_TOLERANCE_DAYS, KNOWN_FLAG, OUTCOME_FLAG
from hostats.analysis.sections import register
from hostats.analysis.sections._common import (
    _complete,
    _default_risk_times,
    _event_series,
    _need_columns,
    _rows,
    _section_frame,
)
from hostats.errors import HostatsError
from hostats.report.tables import format_count

DAYS_PER_YEAR = 365.25


def _horizon_outcome(d: pd.DataFrame, outcome: str | None) -> bool:
    """True when ``outcome`` is HO by the horizon derived from follow-up (``ho_within_horizon``).

    Such an outcome is unknown for patients lost before the horizon. Analysing only the episodes whose status
    is known keeps the events of those lost later but drops the event-free patients lost early, so the
    risk is biased upward (about +5% relative at 10% loss a year, +20% at 30%). Sections then estimate it
    from the follow-up of everyone (time_days, status) with censoring-aware methods instead.
    """
    return outcome == OUTCOME_FLAG and {"time_days", "status"} <= set(d.columns)


def _warn_known_subset(ctx: Context, sec: dict, out: SectionOutput) -> None:
    if KNOWN_FLAG in str(sec.get("subset", "")):
        out.warn(sec, f"the subset keeps only episodes whose status at {int(ctx.horizon)} days is known "
                      f"({KNOWN_FLAG}); the censoring-aware estimates need everyone's follow-up, and this "
                      "restriction biases them upward when patients are lost to follow-up. Drop it from the "
                      "subset: the complete-case analysis is reported as a sensitivity analysis.")


def _known_status(d: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The complete cases of a horizon outcome: episodes whose HO status at the horizon is known (only
    ``columns`` of them when given: one copy of the columns a model uses, not of every column)."""
    if KNOWN_FLAG not in d.columns:
        return d if columns is None else d[list(dict.fromkeys(columns))]
    known = d[KNOWN_FLAG].fillna(False).astype(bool)
    return d[known] if columns is None else d.loc[known, list(dict.fromkeys(columns))]


def _as_sensitivity(ctx: Context, sec: dict, out: SectionOutput, rows: pd.DataFrame, what: str) -> pd.DataFrame:
    """Label complete-case rows as a sensitivity analysis: their own estimate group in the report and in
    estimates.csv (section ``<id>_complete_case``), with a note saying why they are not the answer."""
    sid = f"{sec['id']}_complete_case"
    out.subsections[sid] = (
        f"Sensitivity analysis (complete case): {sec.get('title', sec['id'])}",
        f"{what} among the episodes whose HO status at {int(ctx.horizon)} days is known (HO or death within "
        f"it, or follow-up reaching to within {FOLLOWUP_TOLERANCE_DAYS} days of it). Patients lost to follow-up "
        "before the horizon without HO are left out while those with HO before their loss are kept, so these "
        "risks are biased upward unless nobody is lost; compare with the censoring-aware estimates above.")
    rows = rows.copy()
    rows["section"] = sid
    rows["method"] = [f"complete case: {m}" if m else "complete case" for m in rows["method"]]
    return rows


def _risk_by_horizon(ctx: Context, d: pd.DataFrame, by: str | None) -> tuple[pd.DataFrame, Any]:
    """Aalen-Johansen risk of HO by the horizon (death competing) per group of ``by``: the censoring-aware
    counterpart of a proportion of ``ho_within_horizon``; rows group, estimate, CIs, std_error, n, events."""
    from hostats.stats.competing.cif_fine_gray import cumulative_incidence

    g = d[by].astype(str) if by else pd.Series("all", index=d.index)
    frame = pd.DataFrame({"t": d["time_days"].astype(float), "s": d["status"].astype(int), "g": g})
    res = cumulative_incidence(frame, "t", "s", cause=1, group="g", level=ctx.level)
    at = res.at([ctx.horizon]).copy()
    ev = (frame["s"] == 1) & (frame["t"] <= ctx.horizon)
    at["n"] = at["group"].map(frame["g"].value_counts()).astype(int)
    at["events"] = at["group"].map(ev.groupby(frame["g"]).sum()).astype(int)
    return at.drop(columns=["time"]), res


@register("cumulative_incidence")
def sec_cumulative_incidence(ctx: Context, sec: dict) -> SectionOutput:
    """Aalen-Johansen cumulative incidence of HO with death competing (or Kaplan-Meier 1 - S)."""
    from hostats.stats.competing.cif_fine_gray import cumulative_incidence
    from hostats.stats.survival.km_cox import kaplan_meier

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    by = sec.get("by")
    _need_columns(ctx, d, [by], sec, "by")
    times = [float(t) for t in sec.get("times", [ctx.horizon])]
    cols = ["time_days", "status"] + ([by] if by else [])
    d = _complete(ctx, d, cols, sec, out)
    order = _level_order(d[by]) if by else None  # ordered categories (derived bins) keep their order
    if by:
        d = d.assign(**{by: d[by].astype(str)})
    competing = ctx.spec.outcome.get("competing", "death") == "death"
    if competing:
        res = cumulative_incidence(d, "time_days", "status", cause=1, group=by, level=ctx.level)
        at = res.at(times)
    else:
        d = d.assign(_event=(d["status"] == 1).astype(int))
        res = kaplan_meier(d, "time_days", "_event", group=by)
        at = res.at(times, kind="cumulative_incidence")
    out.methods.append((res.method, res.reference))
    at = at.copy()
    gcol = d[by] if by else pd.Series("all", index=d.index)
    n_by = gcol.value_counts()
    ev = d["status"].to_numpy() == 1
    t_arr = d["time_days"].to_numpy(float)
    at["n"] = [int(n_by.get(g, len(d)) if by else len(d)) for g in at["group"]]
    at["events"] = [int(np.sum(ev & (t_arr <= t) & ((gcol.to_numpy() == g) if by else True)))
                    for g, t in zip(at["group"], at["time"], strict=True)]
    at["measure"] = "cumulative_incidence"
    at["unit"] = "proportion"
    tpath = sec.get("truth")
    horizon = ctx.horizon

    def truth(r):
        if not tpath or not np.isclose(float(r["time"]), horizon):
            return None
        return _group_truth(ctx, tpath, str(r["group"]), single=not by)

    if not by:
        at["group"] = "all"
    at = _in_order(at, order)
    out.estimates.append(_rows(ctx, sec, at, truth=truth, method=res.method))
    # Gray's test / log-rank between groups where the estimator provides it
    test = _group_test(res, competing) if by else None
    if test is not None:
        out.estimates.append(_rows(ctx, sec, test, method=test.attrs.get("method", "")))
        if test.attrs.get("reference"):
            out.methods.append((test.attrs.get("method", ""), test.attrs["reference"]))
    out.warn(sec, *res.warnings)
    if sec.get("figure", True):
        from hostats.report.figures import curve_plot

        risk_times = ctx.spec.report.get("risk_times") or _default_risk_times(ctx.horizon)
        groups = [str(g) for g in res.curve["group"].unique()] if by else ["all"]
        tv = {g: _group_truth(ctx, tpath, g, single=not by) for g in groups} if tpath and ctx.truth else None
        if tv and all(v is None for v in tv.values()):
            tv = None
        curve = _in_order(res.curve.copy(), order)
        if not competing and curve["estimate"].iloc[0] > 0.5:
            curve[["estimate", "ci_lower", "ci_upper"]] = 1 - curve[["estimate", "ci_upper", "ci_lower"]].to_numpy()
        if not by:
            curve["group"] = "all"
        fig = curve_plot(curve, risk_times=risk_times, at_risk=_at_risk(res, risk_times, by, competing),
                         threshold=ctx.threshold, title=sec.get("title", ""),
                         ylabel="Cumulative incidence of HO", horizon=ctx.horizon,
                         truth=tv)
        out.figures.append((sec["id"], sec.get("title", "Cumulative incidence"),
                            "Aalen-Johansen cumulative incidence with pointwise CIs (death before HO competing); "
                            "number at risk under the axis; curves end where fewer than "
                            f"{ctx.threshold} remain at risk." + (" Diamonds: true values." if tv else ""), fig))
    return out


def _level_order(s: pd.Series) -> list[str] | None:
    """The levels of a categorical column in their declared order (``within 48 h, 48-72 h, after 72 h``),
    as text; None for other columns (the estimator's order stands)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [str(c) for c in s.cat.categories]
    return None


def _in_order(frame: pd.DataFrame, order: list[str] | None) -> pd.DataFrame:
    """Rows sorted by their group's place in ``order`` (stable within a group; unknown groups last)."""
    if not order or "group" not in frame.columns:
        return frame
    rank = {g: i for i, g in enumerate(order)}
    key = frame["group"].astype(str).map(lambda g: rank.get(g, len(rank)))
    return frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def _at_risk(res, times, by, competing) -> pd.DataFrame:
    a = res.at(times) if competing else res.at(times, kind="cumulative_incidence")
    a = a.copy()
    if not by:
        a["group"] = "all"
    return a


def _group_test(res: Any, competing: bool) -> pd.DataFrame | None:
    """The between-group test of the curves as one estimate row: Gray's test of the cumulative incidence
    functions (competing) or the log-rank test (Kaplan-Meier); None where it cannot be computed (the
    estimator's error says why: one group, no events)."""
    try:
        r = res.gray_test if competing else res.logrank
    except (HostatsError, ValueError):
        return None
    row = pd.DataFrame({"measure": ["gray_test" if competing else "logrank_test"], "group": ["between groups"],
                        "estimate": [float(r.statistic)], "p_value": [float(r.p_value)], "unit": ["chi2"]})
    row.attrs["method"], row.attrs["reference"] = r.method, r.reference
    return row


@register("proportion")
def sec_proportion(ctx: Context, sec: dict) -> SectionOutput:
    """Proportions with binomial CIs: of a yes/no event by group, or the distribution of a category."""
    from hostats.stats.incidence import proportion

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    by = sec.get("by")
    column = sec.get("column")
    method = sec.get("method", "wilson")
    _need_columns(ctx, d, [by, column], sec, "by" if by and by not in d.columns else "column")
    tpath = sec.get("truth")
    if column:
        s = d[column]
        k = int(s.isna().sum())
        if k:
            out.warn(sec, f"{format_count(k, ctx.threshold)} episode(s) with missing {column} not counted.")
        s = s.dropna()
        if by:
            raise ctx.spec.error("give either column (a distribution) or by (groups), not both", "section",
                                 "by", sec["_index"])
        levels = list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else sorted(s.unique(), key=str)
        counts = s.value_counts()
        ev = np.array([int(counts.get(lv, 0)) for lv in levels])
        if len(s) == 0:
            raise ctx.spec.error(f"no episodes with a value of {column!r}", "section", "column", sec["_index"])
        res = proportion(ev, np.full(len(levels), len(s)), method=method, level=ctx.level,
                         groups=[str(v) for v in levels])
        measure = sec.get("measure", "share")
    else:
        event = sec.get("event", OUTCOME_FLAG)
        if _horizon_outcome(d, event):
            return _horizon_proportion(ctx, sec, d, by, method, out)
        res = _event_proportion(ctx, sec, d, event, by, method, out)
        measure = sec.get("measure", "proportion")
    t = out.result_table(res)
    t["measure"] = measure

    def truth(r):
        return _group_truth(ctx, tpath, str(r["group"]), single=len(t) == 1) if tpath else None

    rows = _rows(ctx, sec, t, unit="proportion", truth=truth, method=res.method)
    out.estimates.append(rows)
    if sec.get("figure", False):
        def bars(shown: pd.DataFrame) -> tuple[Any, str] | None:
            """The bar chart from the published rows: a group estimates.csv withholds is not drawn."""
            from hostats.report.figures import bar_plot

            fig_rows = shown[shown["estimate"].notna()].copy()
            if fig_rows.empty:
                return None
            for c in ("estimate", "ci_lower", "ci_upper"):
                fig_rows[c] = fig_rows[c].astype(float)
            tv = (fig_rows["truth"].to_numpy(float) if "truth" in fig_rows.columns and fig_rows["truth"].notna().any()
                  else None)
            fig = bar_plot(fig_rows, x="group", title=sec.get("title", ""), ylabel=measure, truth=tv)
            return fig, f"{measure} with {res.method} CIs" + ("; diamonds: true values" if tv is not None else "") + "."

        out.figures.append(PublishedFigure(sec["id"], sec.get("title", measure), sec["id"], bars))
    return out


def _event_proportion(ctx: Context, sec: dict, d: pd.DataFrame, event: str, by: str | None, method: str,
                      out: SectionOutput) -> Any:
    """Binomial proportion of a yes/no event per group of ``by`` (missing values counted and left out)."""
    from hostats.stats.incidence import proportion

    e = _event_series(ctx, d, event, sec)
    g = d[by].astype(object).where(d[by].notna(), None) if by else pd.Series("all", index=d.index)
    ok = e.notna().to_numpy() & (g.notna().to_numpy() if by else True)
    k = int((~ok).sum())
    if k:
        out.warn(sec, f"{format_count(k, ctx.threshold)} episode(s) with missing "
                      f"{event}{' or ' + by if by else ''} not counted.")
    frame = pd.DataFrame({"g": g[ok].astype(str), "e": e[ok].astype(bool)})
    if isinstance(d[by].dtype if by else None, pd.CategoricalDtype):
        order = [str(c) for c in d[by].cat.categories if str(c) in set(frame["g"])]
    else:
        order = sorted(frame["g"].unique(), key=str)
    agg = frame.groupby("g")["e"].agg(["sum", "size"]).reindex(order)
    if agg.empty:
        raise ctx.spec.error("no episodes to count", "section", "event", sec["_index"])
    return proportion(agg["sum"].to_numpy(int), agg["size"].to_numpy(int), method=method,
                      level=ctx.level, groups=order)


def _horizon_proportion(ctx: Context, sec: dict, d: pd.DataFrame, by: str | None, method: str,
                        out: SectionOutput) -> SectionOutput:
    """Risk of HO by the horizon per group: Aalen-Johansen on everyone's follow-up (primary), and the
    binomial proportion among episodes with known status as a labelled sensitivity analysis."""
    _warn_known_subset(ctx, sec, out)
    tpath = sec.get("truth")
    measure = sec.get("measure", "risk")
    dd = _complete(ctx, d, ["time_days", "status"] + ([by] if by else []), sec, out)
    at, res = _risk_by_horizon(ctx, dd, by)
    out.methods.append((res.method, res.reference))
    at["measure"] = measure

    def truth(r):
        return _group_truth(ctx, tpath, str(r["group"]), single=len(at) == 1) if tpath else None

    out.estimates.append(_rows(ctx, sec, at, unit="proportion", truth=truth, method=res.method))
    cc = _event_proportion(ctx, sec, _known_status(dd), OUTCOME_FLAG, by, method, out)
    ct = cc.table()
    ct["measure"] = "proportion"
    out.estimates.append(_as_sensitivity(ctx, sec, out, _rows(ctx, sec, ct, unit="proportion", truth=truth,
                                                              method=cc.method),
                                         f"Proportion with HO by {int(ctx.horizon)} days ({cc.method} CIs)"))
    return out


@register("rate")
def sec_rate(ctx: Context, sec: dict) -> SectionOutput:
    """Incidence rate per 100 person-years with exact Poisson CIs (and rate ratios between groups)."""
    from hostats.stats.incidence import rate

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    by = sec.get("by")
    tcol = sec.get("time", "time_days")
    _need_columns(ctx, d, [by, tcol], sec, "by" if by and by not in d.columns else "time")
    event = sec.get("event", "ho")
    cols = [tcol] + ([by] if by else [])
    d = _complete(ctx, d, cols, sec, out)
    e = _event_series(ctx, d, event, sec).fillna(False).astype(bool)
    py = d[tcol].astype(float) / DAYS_PER_YEAR
    g = d[by].astype(str) if by else pd.Series("all", index=d.index)
    agg = pd.DataFrame({"g": g, "e": e, "py": py}).groupby("g", sort=False).agg(e=("e", "sum"), py=("py", "sum"),
                                                                               n=("e", "size"))
    per = float(sec.get("per", 100))
    res = rate(agg["e"].to_numpy(int), agg["py"].to_numpy(float), per=per, level=ctx.level,
               groups=list(agg.index))
    t = out.result_table(res)
    if "n" not in t.columns or t["n"].isna().all():
        t["n"] = t["group"].map(agg["n"]) if "group" in t.columns else np.nan
    t["unit"] = np.where(t.get("measure", "rate") == "rate", f"per {per:g} person-years", "ratio")
    out.estimates.append(_rows(ctx, sec, t, method=res.method))
    return out
