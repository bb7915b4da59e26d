"""Regression sections: logistic (binomial regression with censoring weights for HO by the horizon), Cox
and Fine-Gray."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hostats.analysis.context import (
    Context,
    EValueRequest,
    PublishedFigure,
    SectionOutput,
    _number,
    _truth_of,
)
from hostats.analysis.expressions import _names_in
from hostats.analysis.sections import register
from hostats.analysis.sections._common import _complete, _need_columns, _ph_table, _rows, _section_frame
from hostats.analysis.sections.incidence import (
    _as_sensitivity,
    _horizon_outcome,
    _known_status,
    _warn_known_subset,
)
from hostats.errors import DataError
from hostats.report.html import TableBlock
from hostats.stats.core.formula import formula_columns


@register("logistic")
def sec_logistic(ctx: Context, sec: dict) -> SectionOutput:
    """Logistic regression: adjusted odds ratios, c-statistic, calibration; separation is reported."""
    from hostats.stats.regression.binomial import binreg
    from hostats.stats.regression.logit import logistic

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    formula = sec.get("formula")
    if not formula or "~" not in formula:
        raise ctx.spec.error("needs formula = \"outcome ~ term + term\"", "section", "formula", sec["_index"])
    lhs, rhs = formula.split("~", 1)
    try:  # the formula engine's own parse: transforms and splines (bs, poly, ...) are not columns
        names = formula_columns(formula, outcome=True)
    except DataError as exc:
        raise ctx.spec.error(str(exc), "section", "formula", sec["_index"]) from None
    unknown = [n for n in names if n not in d.columns]
    if unknown:
        raise ctx.spec.error(f"unknown column(s) {unknown} in formula {formula!r}; the data have: "
                             f"{', '.join(sorted(d.columns))}", "section", "formula", sec["_index"])
    cluster = sec.get("cluster")
    y = lhs.strip()
    horizon = _horizon_outcome(d, y)
    if horizon:
        _warn_known_subset(ctx, sec, out)
        for key in ("cluster", "firth"):
            if sec.get(key):
                raise ctx.spec.error(f"{key} is not available for HO by the horizon, which is modelled by the "
                                     "censoring-aware binomial regression (IPCW); remove it", "section", key,
                                     sec["_index"])
        names = [n for n in names if n != y] + ["time_days", "status"]
    d = _complete(ctx, d, names + ([cluster] if cluster else []), sec, out)
    if y in d.columns and d[y].astype(float).sum() == 0:
        raise ctx.spec.error(f"the outcome {y!r} has no events in these episodes", "section", "formula",
                             sec["_index"])
    kwargs: dict[str, Any] = {}
    if cluster:
        kwargs["cluster"] = cluster
    if sec.get("firth"):
        kwargs["firth"] = True
    if horizon:
        # odds ratios of the risk by the horizon from everyone's follow-up (Scheike, Zhang & Gerds 2008);
        # logistic regression among the episodes with known status is the sensitivity analysis
        res = binreg(d, rhs.strip(), "time_days", "status", ctx.horizon, cause=1, level=ctx.level)
        cc = logistic(_known_status(d), formula, **kwargs)
    else:
        res = cc = logistic(d, formula, **kwargs)
    t = out.result_table(res, "odds_ratio")
    t = t[t["term"].astype(str) != "Intercept"] if "term" in t.columns else t
    tmap = sec.get("truth") or {}

    def truth(r):
        if "term" not in r or not tmap:
            return None
        term = str(r["term"])
        for key, path in tmap.items():
            if term == key or term.startswith(key + "[") or term.startswith(f"C({key})"):
                return _number(_truth_of(ctx, path))
        return None

    rows = _rows(ctx, sec, t, unit="odds ratio", truth=truth, method=res.method)
    rows.loc[rows["measure"] != "odds_ratio", "unit"] = ""
    out.estimates.append(rows)
    out.warn(sec, *res.warnings)
    if cc is not res:
        ct = cc.table()
        ct = ct[ct["term"].astype(str) != "Intercept"].assign(measure="odds_ratio")
        out.estimates.append(_as_sensitivity(ctx, sec, out, _rows(ctx, sec, ct, unit="odds ratio", truth=truth,
                                                                  method=cc.method), "Logistic regression"))
        out.methods.append((cc.method, cc.reference))
    _logistic_e_values(ctx, sec, out, rows, res, d, y, horizon)
    _logistic_figures(ctx, sec, out, rows, res, horizon)
    return out


def _logistic_e_values(ctx: Context, sec: dict, out: SectionOutput, rows: pd.DataFrame, res: Any,
                       d: pd.DataFrame, y: str, horizon: bool) -> None:
    """Ask for the E-values of the odds ratios the spec names (``e_values``: true or a list of terms), a
    sensitivity table the writer builds from the published odds ratios; odds ratios are converted to risk
    ratios by the outcome risk (rare or common)."""
    ev_terms = sec.get("e_values")
    if ev_terms:
        risk = (float(np.mean(res.predict(d))) if horizon else
                float(d[y].astype(float).mean()) if y in d.columns else 1.0)
        out.e_values.append(EValueRequest(
            sec["id"], f"E-values: {sec.get('title', '')}",
            "odds ratios converted to risk ratios "
            f"{'directly (rare outcome)' if risk < 0.15 else 'by the square root (common outcome)'} "
            "before the E-value (VanderWeele & Ding 2017).", by="term",
            terms=None if ev_terms is True else tuple(str(k) for k in ev_terms), outcome_risk=risk))


def _logistic_figures(ctx: Context, sec: dict, out: SectionOutput, rows: pd.DataFrame, res: Any,
                      horizon: bool) -> None:
    """Forest plot of the odds ratios (drawn by the writer from the published rows, so that an odds ratio
    estimates.csv withholds is not drawn) and, for a binary outcome, the calibration plot."""
    if sec.get("forest", True) and len(rows[rows["measure"] == "odds_ratio"]):
        def forest(shown: pd.DataFrame) -> tuple[Any, str] | None:
            from hostats.report.figures import forest_plot
            from hostats.report.publication import term_labels

            f = shown[(shown["measure"] == "odds_ratio") & shown["estimate"].notna()].copy()
            if f.empty:
                return None
            for c in ("estimate", "ci_lower", "ci_upper"):
                f[c] = f[c].astype(float)
            # the model table's words for the terms (its labeller, its data for the reference levels)
            named = term_labels(f["term"].astype(str), _section_frame(ctx, sec),
                                labels=ctx.spec.report.get("labels"))
            f["label"] = [named[t] for t in f["term"].astype(str)]
            fig = forest_plot(f, label="label", null=1.0, xlabel="odds ratio (log scale)",
                              title=sec.get("title", ""))
            return fig, f"Odds ratios with {int(ctx.level * 100)}% CIs ({res.method})."

        out.figures.append(PublishedFigure(sec["id"] + "_forest", sec.get("title", "Odds ratios"), sec["id"], forest))
    if sec.get("calibration", True) and not horizon and res.fitted is not None:
        from hostats.report.figures import calibration_plot, calibration_table

        try:
            p = np.asarray(res.fitted.predict(), dtype=float)
            yv = np.asarray(res.fitted.model.endog, dtype=float)
        except (AttributeError, TypeError, ValueError):
            p = None
        if p is not None and len(p) == len(yv):
            ct = calibration_table(p, yv, bins=10)
            fig = calibration_plot(ct, threshold=ctx.threshold, title=f"Calibration: {sec.get('title', '')}")
            out.figures.append((sec["id"] + "_calibration", f"Calibration: {sec.get('title', '')}",
                                "Observed against mean predicted risk in tenths of predicted risk (Wilson CIs); "
                                "the dashed line is perfect calibration.", fig))


def _hazard_formula(ctx: Context, d: pd.DataFrame, sec: dict) -> tuple[str, list[str]]:
    """A hazard model's right-hand-side formula and the data columns it names (each checked to exist)."""
    formula = sec.get("formula")
    if not formula:
        raise ctx.spec.error("needs formula = \"term + term\"", "section", "formula", sec["_index"])
    names = sorted(_names_in(formula) - {"C"})
    _need_columns(ctx, d, names, sec, "formula")
    return formula, names


@register("cox")
def sec_cox(ctx: Context, sec: dict) -> SectionOutput:
    """Cox proportional-hazards model: hazard ratios with the PH check in the diagnostics."""
    from hostats.stats.survival.km_cox import cox

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    formula, names = _hazard_formula(ctx, d, sec)
    time, event = sec.get("time", "time_days"), sec.get("event", "ho_event")
    d = d.assign(ho_event=(d["status"] == 1).astype(int))
    d = _complete(ctx, d, names + [time], sec, out)
    kwargs = {k: sec[k] for k in ("weights", "cluster", "strata") if sec.get(k)}
    res = cox(d, formula, time, event, **kwargs)
    t = out.result_table(res, "hazard_ratio")
    out.estimates.append(_rows(ctx, sec, t, unit="hazard ratio", method=res.method))
    ph = _ph_table(res)
    if ph is not None:
        out.diagnostics.append(TableBlock(f"Proportional hazards: {sec.get('title', '')}", ph, section=sec["id"]))
    out.warn(sec, *res.warnings)
    return out


@register("fine_gray")
def sec_fine_gray(ctx: Context, sec: dict) -> SectionOutput:
    """Fine-Gray subdistribution hazard ratios for HO with death competing."""
    from hostats.stats.competing.cif_fine_gray import fine_gray

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    formula, names = _hazard_formula(ctx, d, sec)
    time, status = sec.get("time", "time_days"), sec.get("status", "status")
    d = _complete(ctx, d, names + [time, status], sec, out)
    d[status] = d[status].astype(int)
    res = fine_gray(d, formula, time, status, cause=1)
    t = out.result_table(res, "subdistribution_hazard_ratio")
    out.estimates.append(_rows(ctx, sec, t, unit="hazard ratio", method=res.method))
    out.warn(sec, *res.warnings)
    return out
