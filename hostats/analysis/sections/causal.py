"""The ``iptw`` section: propensity-score weighting, the adjusted risks of ``hostats.ate`` for HO by the
horizon, crude and complete-case rows, balance, curves, E-values."""
from __future__ import annotations

import dataclasses
import importlib
import re
from typing import Any

import numpy as np
import pandas as pd

from hostats.analysis.context import (
    Context,
    EValueRequest,
    FittedWeighting,
    SectionOutput,
    _number,
    _truth_of,
)
from hostats.analysis.derive import KNOWN_FLAG, OUTCOME_FLAG
from hostats.analysis.sections import register
from hostats.analysis.sections._common import (
    _complete,
    _default_risk_times,
    _fmt_frame,
    _need_columns,
    _ph_table,
    _rows,
    _section_frame,
)
from hostats.analysis.sections.incidence import (
    _as_sensitivity,
    _horizon_outcome,
    _known_status,
    _warn_known_subset,
)
from hostats.analysis.spec import ADJUSTMENT_METHODS
from hostats.errors import EstimationError, HostatsError
from hostats.report.html import TableBlock
from hostats.report.publication import estimate_parts
from hostats.report.tables import format_number


def _e_value_cells(out: SectionOutput, r: pd.Series, measure: str, **kw: Any) -> dict[str, str]:
    """E-value of one estimate row as report cells (estimate, CI, E-values); cites the method once."""
    from hostats.stats.causal.sensitivity import e_value

    ev = e_value(float(r["estimate"]), float(r["ci_lower"]), float(r["ci_upper"]), measure, **kw)
    et = ev.table().set_index("measure")["estimate"]
    if not any(x[0] == ev.method for x in out.methods):
        out.methods.append((ev.method, ev.reference))
    est, ci = estimate_parts(r["estimate"], r["ci_lower"], r["ci_upper"], 3)   # the report's one rule
    return {"estimate": est, "CI": ci,
            "E-value (estimate)": format_number(et.get("e_value_point")),
            "E-value (CI limit)": format_number(et.get("e_value_ci"))}


# the suffix of an iptw-section measure names its adjustment method (no suffix: IPTW)
_METHOD_SUFFIX = re.compile(r"_(aipw|regression|ipcw)$")


def _adjustment_method(measure: str) -> str:
    """Which adjustment method an iptw-section row comes from (its measure's suffix)."""
    m = _METHOD_SUFFIX.search(measure)
    return m.group(1) if m else "iptw"


def _truth_contrast(ctx: Context, spec_truth: Any, contrast: str, measure: str) -> float | None:
    """Truth for an iptw row. ``spec_truth`` is a path to a block with ``risk{arm}`` and
    ``contrasts{"<arm>_vs_<ref>": {...}}`` (the synthetic truth's layout), or a table with a ``risk`` path
    and constants or paths per contrast measure (e.g. risk_ratio = 1.0 for a null effect)."""
    if spec_truth is None or ctx.truth is None or " vs " not in contrast:
        return None
    arm, ref = contrast.split(" vs ", 1)
    measure = _METHOD_SUFFIX.sub("", measure)
    if isinstance(spec_truth, dict):
        if measure in ("risk_treated", "risk_control"):
            v = _truth_of(ctx, spec_truth.get("risk"))
            v = v.get(arm if measure == "risk_treated" else ref) if isinstance(v, dict) else v
            return _number(v)
        return _number(_truth_of(ctx, spec_truth.get(measure)))
    if measure == "risk_treated":
        return _number(ctx.truth_value(spec_truth, "risk", arm))
    if measure == "risk_control":
        return _number(ctx.truth_value(spec_truth, "risk", ref))
    return _number(ctx.truth_value(spec_truth, "contrasts", f"{arm}_vs_{ref}", measure))


_RISK_UNITS = {"risk_treated": "proportion", "risk_control": "proportion", "risk_difference": "difference",
               "risk_ratio": "ratio", "odds_ratio": "ratio", "hazard_ratio": "ratio"}


# [adjustment] methods -> hostats.ate's methods, and the suffix of their measures in estimates.csv
_ATE_METHODS = {"iptw": ("iptw", ""), "regression": ("gformula", "_regression"), "aipw": ("aipw", "_aipw"),
                "ipcw": ("ipcw", "_ipcw")}


def _with_units(t: pd.DataFrame) -> pd.DataFrame:
    base = t["measure"].astype(str).str.removeprefix("crude_").str.replace(_METHOD_SUFFIX, "", regex=True)
    return t.assign(group=t["contrast"], unit=base.map(_RISK_UNITS).fillna(""))


def _horizon_effects(ctx: Context, sec: dict, d: pd.DataFrame, treatment: str, reference: Any,
                     confounders: list[str], methods: set[str], out: SectionOutput) -> pd.DataFrame:
    """Adjusted risks of HO by the horizon per arm and their contrasts from everyone's follow-up: the
    methods of hostats.ate (IPTW-weighted Aalen-Johansen; g-formula with cause-specific Cox models; IPTW with
    IPCW; doubly robust AIPTW), suffixed as the binary-outcome rows were."""
    from hostats.stats.causal.absolute_risk import ate

    chosen = [m for m in _ATE_METHODS if m in methods]

    def fit(names: list[str]) -> Any:
        return ate(d, treatment, confounders, "time_days", "status", ctx.horizon, cause=1,
                   reference=reference, methods=tuple(_ATE_METHODS[m][0] for m in names), level=ctx.level)

    try:
        fits = [fit(chosen)]
    except EstimationError:
        # one model failing (e.g. the Cox model of death with a site that has no deaths) costs only the
        # methods that need it: fit each method on its own and say which could not be estimated
        fits = []
        for m in chosen:
            try:
                fits.append(fit([m]))
            except EstimationError as exc:
                out.warn(sec, f"{_ATE_METHODS[m][0]} risks not available: {exc}")
        if not fits:
            raise
    for res in fits:
        out.methods.append((res.method, res.reference))
        out.warn(sec, *res.warnings)
    t = pd.concat([r.table() for r in fits], ignore_index=True)
    # per contrast, the primary (unsuffixed, IPTW) rows first, then the other methods in the spec's order
    rank = {_ATE_METHODS[m][0]: i for i, m in enumerate(chosen)}
    order = {c: i for i, c in enumerate(dict.fromkeys(t["contrast"]))}
    t = t.iloc[np.lexsort((t["method"].map(rank).to_numpy(), t["contrast"].map(order).to_numpy()))]
    suffix = {_ATE_METHODS[m][0]: _ATE_METHODS[m][1] for m in chosen}
    t = t.assign(measure=t["measure"].astype(str) + t["method"].map(suffix))
    return _with_units(t)


def _rmtl_rows(ctx: Context, sec: dict, res: Any, out: SectionOutput) -> None:
    """IPTW-adjusted restricted mean time lost to HO by the horizon per arm and its differences (days)."""
    try:
        r = res.rmst(ctx.horizon, cause=1)
    except (HostatsError, ValueError) as exc:
        out.warn(sec, f"restricted mean time lost not available: {exc}")
        return
    out.methods.append((r.method, r.reference))
    t = r.table()
    t = t[t["measure"].isin(["rmtl", "rmtl_difference"])]
    t = t.assign(group=t["group"].where(t["group"].notna(), t["contrast"]), unit="days")
    rows = _rows(ctx, sec, t, method=r.method)
    sid = f"{sec['id']}_rmtl"
    rows["section"] = sid
    out.subsections[sid] = (
        f"Restricted mean time lost to HO by {int(ctx.horizon)} days (IPTW): {sec.get('title', sec['id'])}",
        f"Days of the first {int(ctx.horizon)} lived with HO (the area under the weighted cumulative incidence "
        "curve, death competing), per arm and as differences against the reference; standard errors treat "
        "the weights as known (conservative for the ATE).")
    out.estimates.append(rows)


@register("iptw")
def sec_iptw(ctx: Context, sec: dict) -> SectionOutput:
    """Propensity-score weighting: balance, marginal risks and contrasts, weighted Cox, curves, E-values.

    For HO by the horizon (``outcome = "ho_within_horizon"``) the risks come from everyone's follow-up with
    loss to follow-up as censoring (:func:`_horizon_effects`; crude rows from the unweighted Aalen-Johansen
    estimator) and the binary-outcome analysis of the episodes with known status is a labelled sensitivity
    analysis. Other yes/no outcomes (known for everyone, e.g. a wound complication during the stay) are
    weighted means.
    """
    from hostats.stats.causal.weighting import iptw

    out = SectionOutput()
    d = _section_frame(ctx, sec)
    treatment = sec.get("treatment", ctx.spec.exposure.get("column"))
    reference = sec.get("reference", ctx.spec.exposure.get("reference"))
    confounders = list(sec.get("confounders", ctx.spec.adjustment.get("confounders", [])))
    outcome = sec.get("outcome", OUTCOME_FLAG)
    estimand = sec.get("estimand", ctx.spec.adjustment.get("estimand", "ATE"))
    methods = set(sec.get("methods", ctx.spec.adjustment.get("methods", ADJUSTMENT_METHODS)))
    if not treatment:
        raise ctx.spec.error("needs a treatment (or [exposure] column)", "section", "treatment", sec["_index"])
    for key, cols in (("treatment", [treatment]), ("confounders", confounders), ("outcome", [outcome])):
        _need_columns(ctx, d, cols, sec, key)
    time, status = sec.get("time", "time_days"), sec.get("status", "status")
    horizon = _horizon_outcome(d, outcome) and (time, status) == ("time_days", "status")
    use_surv = horizon or (bool(sec.get("curves", True)) and time in d.columns and status in d.columns)
    cols = [treatment, *confounders] + ([] if horizon else [outcome]) + ([time, status] if use_surv else [])
    # the section's own frame of the columns it uses: a copy of those only when rows are left out, none
    # when nothing is missing (assign would copy every column of the episodes)
    d = _complete(ctx, d, cols, sec, out, keep=[*cols, outcome, KNOWN_FLAG])
    if isinstance(d[treatment].dtype, pd.CategoricalDtype):
        d[treatment] = d[treatment].cat.remove_unused_categories()
    if d[outcome].astype(float).sum() == 0:
        raise ctx.spec.error(f"the outcome {outcome!r} has no events in these episodes", "section", "outcome",
                             sec["_index"])
    kwargs: dict[str, Any] = {"estimand": estimand, "reference": reference, "level": ctx.level}
    if use_surv:
        kwargs.update(time=time, status=status, horizon=ctx.horizon)
    if sec.get("truncate") is not None:
        kwargs["truncate"] = sec["truncate"]
    if sec.get("bootstrap"):
        kwargs.update(bootstrap=int(sec["bootstrap"]), seed=ctx.spec.seed or 0)
    prefix = sec.get("truth")

    def truth(r: pd.Series) -> float | None:
        return _truth_contrast(ctx, prefix, str(r.get("group", "")), str(r["measure"]).removeprefix("crude_"))

    # the figures' first import (matplotlib) leaves cyclic garbage holding the frames it was imported from,
    # with their locals, until the next full collection: imported before any fit, not under a helper given one
    importlib.import_module("hostats.report.figures")
    # The fits run one at a time, each freed before the next (at 1M episodes each holds hundreds of MB of
    # per-episode arrays); what each adds to the output is put in the output's usual order. With a horizon
    # outcome and the ATE, the risks of hostats.ate come first; an error of the weighting fit is still the
    # one raised when both fail.
    effects, effects_out, effects_error = None, SectionOutput(), None
    if horizon and str(estimand).upper() == "ATE":
        try:
            effects = _horizon_effects(ctx, sec, d, treatment, reference, confounders, methods, effects_out)
        except Exception as exc:   # raised after the weighting fit, which may fail first
            effects_error = exc
    # one weighting fit for balance, weights, curves and the weighted Cox model; with a horizon outcome
    # its risks are the weighted Aalen-Johansen ones
    res = iptw(d, treatment, confounders, None if horizon else outcome, **kwargs)
    out.methods.append((res.method, res.reference))
    out.warn(sec, *res.warnings)
    if horizon:
        _warn_known_subset(ctx, sec, out)
        if str(estimand).upper() == "ATE":
            if effects_error is not None:
                raise effects_error
            _add(out, effects_out)
            hr = _with_units(res.table())   # not .query(): its scope keeps this frame's locals (the fit) alive
            t = pd.concat([effects, hr[hr["measure"] == "hazard_ratio"]], ignore_index=True)
        else:  # ATT / overlap: the weighted Aalen-Johansen risks of the iptw fit
            t = _with_units(res.table())
    else:
        t = _with_units(res.table())
        t = t[t["measure"].map(lambda m: _adjustment_method(str(m)) in methods)]
    out.estimates.append(_rows(ctx, sec, t, truth=truth, method=res.method))
    # what needs the weighting fit's episodes (time lost, balance, weights, curves, the weighted Cox model)
    # is made now, so that the fit is freed before the crude and complete-case fits
    rmtl, diagnostics = SectionOutput(), SectionOutput()
    if horizon and sec.get("rmtl", True):
        _rmtl_rows(ctx, sec, res, rmtl)
    _iptw_diagnostics(ctx, sec, res, diagnostics, estimand)
    diagnostics.weighting = FittedWeighting.of(res, treatment, d.index, diagnostics.balance)
    if use_surv and sec.get("curves", True):
        _iptw_curves(ctx, sec, res, diagnostics, prefix, reference)
    if res.cox_result is not None:
        _iptw_weighted_cox(sec, res.cox_result, diagnostics, list(res.levels))
    del res
    if sec.get("crude", True) and "crude" in methods:
        _crude_rows(ctx, sec, d, treatment, reference, None if horizon else outcome,
                    {"time": time, "status": status, "horizon": ctx.horizon} if horizon else {}, truth, out)
    _add(out, rmtl)
    if horizon:
        _complete_case_rows(ctx, sec, d, treatment, confounders, outcome, estimand, reference, truth, out)
    _add(out, diagnostics)
    if sec.get("e_values", True):
        out.e_values.append(EValueRequest(
            sec["id"], f"E-values: {sec.get('title', '')}",
            "Minimum strength of association (risk-ratio scale) an unmeasured confounder would need with both "
            "treatment and outcome to explain the estimate away (VanderWeele & Ding 2017).", by="contrast"))
    return out


def _add(out: SectionOutput, part: SectionOutput) -> None:
    """Put ``part``, made out of turn, in its place: after what ``out`` has so far."""
    for f in dataclasses.fields(part):
        value = getattr(part, f.name)
        if isinstance(value, list):
            getattr(out, f.name).extend(value)
        elif isinstance(value, dict):
            getattr(out, f.name).update(value)
        elif value is not None:
            setattr(out, f.name, value)


def _crude_rows(ctx: Context, sec: dict, d: pd.DataFrame, treatment: str, reference: Any, outcome: str | None,
                surv: dict[str, Any], truth: Any, out: SectionOutput) -> None:
    """The crude (unadjusted) comparison on the same episodes, for contrast with the weighted one: an iptw
    fit without confounders (``outcome`` None: the horizon outcome from everyone's follow-up, ``surv`` its
    time, status and horizon)."""
    from hostats.stats.causal.weighting import iptw

    horizon = outcome is None
    try:
        crude = iptw(d, treatment, [], outcome, estimand="ATE", reference=reference, level=ctx.level, **surv)
        ct = crude.table()
        del crude   # its weights, propensities and influence functions (n x arms): freed before the next fit
    except (HostatsError, ValueError) as exc:
        out.warn(sec, f"crude comparison not available: {exc}")
        return
    ct = ct[ct["measure"].isin(["risk_treated", "risk_control", "risk_difference", "risk_ratio", "odds_ratio"])]
    ct = _with_units(ct.assign(measure="crude_" + ct["measure"].astype(str)))
    out.estimates.append(_rows(ctx, sec, ct, truth=truth, method=(
        "crude (unweighted Aalen-Johansen)" if horizon else "crude (unweighted)")))


def _complete_case_rows(ctx: Context, sec: dict, d: pd.DataFrame, treatment: str, confounders: list[str],
                        outcome: str, estimand: str, reference: Any, truth: Any, out: SectionOutput) -> None:
    """The binary-outcome IPTW among the episodes with known status at the horizon, as a sensitivity
    analysis (a copy of the columns it uses only)."""
    from hostats.stats.causal.weighting import iptw

    try:
        cc = iptw(_known_status(d, [treatment, *confounders, outcome]), treatment, confounders, outcome,
                  estimand=estimand, reference=reference, level=ctx.level)
        ct = _with_units(cc.table())
        ct = ct[ct["measure"].isin(list(_RISK_UNITS))]
        out.estimates.append(_as_sensitivity(ctx, sec, out, _rows(ctx, sec, ct, truth=truth, method=cc.method),
                                             f"IPTW ({estimand}) risks of HO by {int(ctx.horizon)} days"))
    except (HostatsError, ValueError) as exc:
        out.warn(sec, f"complete-case sensitivity analysis not available: {exc}")


def _iptw_diagnostics(ctx: Context, sec: dict, res: Any, out: SectionOutput, estimand: str) -> None:
    """Balance (SMDs), effective sample sizes, the weights and the Love plot."""
    bal = res.balance()
    out.balance = bal
    out.diagnostics.append(TableBlock(f"Balance: {sec.get('title', '')}", _fmt_frame(bal),
                                      "Standardised mean differences (SMD) before and after weighting; "
                                      "|SMD| > 0.1 is flagged."))
    ess = res.ess
    if not ess.empty:
        out.diagnostics.append(TableBlock(f"Effective sample size by arm: {sec.get('title', '')}",
                                          _fmt_frame(ess, counts=("n",), threshold=ctx.threshold)))
    w = np.asarray(res.weights, dtype=float)
    out.diagnostics.append(TableBlock(
        f"Weights: {sec.get('title', '')}",
        pd.DataFrame({"min": [f"{w.min():.3f}"], "median": [f"{np.median(w):.3f}"],
                      "max": [f"{w.max():.3f}"], "99th percentile": [f"{np.percentile(w, 99):.3f}"]}),
        f"{estimand} weights (stabilised). Propensity scores near 0 or 1 signal positivity problems."))
    if sec.get("love_plot", True):
        from hostats.report.figures import love_plot

        lp = res.love_plot_data()
        wide = _love_wide(lp)
        if not wide.empty:
            fig = love_plot(wide, title=f"Covariate balance: {sec.get('title', '')}")
            out.figures.append((sec["id"] + "_love", f"Love plot: {sec.get('title', '')}",
                                "Largest absolute SMD over the contrasts, before and after weighting; "
                                "dashed line at 0.1.", fig))


def _iptw_curves(ctx: Context, sec: dict, res: Any, out: SectionOutput, prefix: Any, reference: Any) -> None:
    """Weighted Aalen-Johansen curves by arm, with the true risks where the spec gives them."""
    from hostats.report.figures import curve_plot

    try:
        cr = res.curves("cumulative_incidence")
        risk_times = ctx.spec.report.get("risk_times") or _default_risk_times(ctx.horizon)
        at = cr.at(risk_times)
        tv = ({arm: _truth_contrast(ctx, prefix, f"{arm} vs {reference}", "risk_treated")
               for arm in cr.curve["group"].unique()} if prefix and ctx.truth else None)
        if tv and res.reference_level is not None:
            tv[str(res.reference_level)] = _truth_contrast(ctx, prefix, f"x vs {res.reference_level}",
                                                           "risk_control")
        fig = curve_plot(cr.curve, risk_times=risk_times, at_risk=at, threshold=ctx.threshold,
                         title=f"IPTW-adjusted cumulative incidence: {sec.get('title', '')}",
                         ylabel="Cumulative incidence of HO", horizon=ctx.horizon, truth=tv)
        out.figures.append((sec["id"] + "_curves", f"Adjusted cumulative incidence: {sec.get('title', '')}",
                            "Weighted Aalen-Johansen curves by arm (death competing); numbers at risk "
                            "unweighted." + (" Diamonds: true risks under each arm." if tv else ""), fig))
        out.methods.append((cr.method, cr.reference))
    except (HostatsError, ValueError) as exc:
        out.warn(sec, f"adjusted curves not available: {exc}")


def _iptw_weighted_cox(sec: dict, cox: Any, out: SectionOutput, levels: list | None = None) -> None:
    """Cite the weighted Cox model and add its proportional-hazards test to the diagnostics (its terms
    ``_trt1``, ``_trt2``, ... named as the contrasts they are: "radiotherapy vs none")."""
    out.methods.append((cox.method, cox.reference))
    ph = _ph_table(cox)
    if ph is not None and levels and "term" in ph.columns:
        names = {f"_trt{k}": f"{levels[k]} vs {levels[0]}" for k in range(1, len(levels))}
        ph = ph.assign(term=ph["term"].astype(str).map(lambda t: names.get(t, t)))
    if ph is not None:
        out.diagnostics.append(TableBlock(f"Proportional hazards (weighted Cox): {sec.get('title', '')}", ph,
                                          "Scaled Schoenfeld residual test; small p suggests non-proportional "
                                          "hazards."))


_RATIO_CODES = {"risk_ratio": "RR", "odds_ratio": "OR", "hazard_ratio": "HR"}
_E_VALUE_CELLS = ("CI", "E-value (estimate)", "E-value (CI limit)")


def e_value_table(req: EValueRequest, shown: pd.DataFrame, out: SectionOutput) -> TableBlock | None:
    """A section's E-value table from its *published* estimate rows (``shown``: the estimates after the
    disclosure decision, as in estimates.csv): a row estimates.csv withholds is "withheld" here, a shown one
    gets the E-values of its published estimate and CI. Rows with no finite estimate are left out."""
    rows = shown[shown["section"] == req.section]
    if rows.empty:
        return None
    withheld = (rows["note"].fillna("").astype(str).str.startswith("withheld") if "note" in rows.columns
                else pd.Series(False, index=rows.index))
    estimate = pd.to_numeric(rows["estimate"], errors="coerce")
    ev_rows = []
    for i, r in rows.iterrows():
        m = str(r["measure"])
        if req.by == "contrast":
            if m not in _RATIO_CODES:
                continue
            key: dict[str, Any] = {"contrast": r["group"], "measure": m}
            first = "estimate"
        else:
            term = str(r["term"])
            if m != "odds_ratio" or (req.terms is not None
                                     and not any(term == k or term.startswith(k + "[") for k in req.terms)):
                continue
            key, first = {"term": term}, "odds ratio"
        if withheld[i]:
            ev_rows.append({**key, first: "withheld", **dict.fromkeys(_E_VALUE_CELLS, "withheld")})
            continue
        if not np.isfinite(estimate[i]) or (req.by == "term" and not np.isfinite(float(r["ci_lower"]))):
            continue
        if req.by == "contrast":
            risk = estimate[(rows["group"] == r["group"]) & (rows["measure"] == "risk_control")]
            rare = bool(len(risk) and float(risk.iloc[0]) < 0.15)
            kw = {} if m == "risk_ratio" else {"outcome_rare": rare}
        else:
            kw = {"outcome_rare": bool(req.outcome_rare)}
        cells = _e_value_cells(out, r, _RATIO_CODES[m], **kw)
        ev_rows.append({**key, first: cells.pop("estimate"), **cells})
    if not ev_rows:
        return None
    note = req.note
    if req.outcome_risk is not None:   # the section's risk rests on its event count: withheld with its estimates
        small = rows["note"].fillna("").astype(str).str.startswith("withheld: based on fewer than").any() \
            if "note" in rows.columns else False
        note = (f"Outcome risk {'withheld (small numbers)' if small else format(req.outcome_risk, '.2f')}: "
                + note)
    return TableBlock(req.title, pd.DataFrame(ev_rows), note, section=req.section)


def _love_wide(lp: pd.DataFrame) -> pd.DataFrame:
    """Love-plot data (term, contrast, sample, abs_smd) -> one row per term: max |SMD| before and after."""
    if lp is None or lp.empty:
        return pd.DataFrame()
    term = "term" if "term" in lp.columns else lp.columns[0]
    val = "abs_smd" if "abs_smd" in lp.columns else "smd"
    s = lp.assign(_v=lp[val].abs()).pivot_table(index=term, columns="sample", values="_v", aggfunc="max")
    cols = {c: ("smd_before" if str(c).lower().startswith(("un", "before", "crude")) else "smd_after")
            for c in s.columns}
    s = s.rename(columns=cols).reset_index().rename(columns={term: "variable"})
    if "smd_before" not in s.columns:
        return pd.DataFrame()
    return s
