"""Report figures (matplotlib + seaborn): cumulative incidence / Kaplan-Meier curves with a number-at-risk
table under the axis, forest plots, love plots and calibration plots.

Every function takes tidy DataFrames (the ``curve``/``.at()`` frames and ``.table()`` of the estimators)
and returns a matplotlib ``Figure``; ``save_figure`` writes PNG and SVG and returns the PNG as base64 for
embedding in the self-contained HTML report. Disclosure control (the report's policy,
:mod:`hostats.report.disclosure`): numbers at risk are rounded and those from 1 to threshold-1 print as
"<5"; a curve is drawn only from the time its group has ``threshold`` events (before, its steps would show
a count of events that the estimates withhold) and only while at least ``threshold`` people remain at risk
(the tail of a curve over fewer people would show individual events).
"""
from __future__ import annotations

import base64
import io
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are rendered to files, never to a screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from hostats.report.disclosure import SHOWN, policy_for, suppress_table  # noqa: E402
from hostats.report.labels import covariate_label, group_label  # noqa: E402

PALETTE = "colorblind"
# SVG text stays text; text.parse_math off: every text drawn (labels, tick labels, legends, titles, from data
# such as a site named "Site $\evil$") is literal, never read as mathtext (TeX), which a '$' would break
_RC = {"svg.hashsalt": "hostats", "svg.fonttype": "none", "figure.dpi": 100, "text.parse_math": False}


# one colour per group across every figure of every report: "none" (the usual reference arm) is always grey,
# the arms and events of the schema keep their place in the palette, other levels (sites, derived bins) take
# a palette slot from a hash of their name; colours within one figure stay distinct
_REFERENCE_LEVELS = {"none", "all", "control", "no", "false", "no prior ho"}
_STABLE_LEVELS = ("radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid", "etidronate", "indomethacin",
                  "tha", "long_bone_fracture", "sci", "tbi", "stroke", "anoxia", "burn", "resection",
                  "hip_revision", "female", "male", "prior ho", "yes", "true")
_GREY = 7  # the colorblind palette's grey


def group_colours(groups: Sequence[object]) -> list[tuple[float, float, float]]:
    """A colour for each group, the same for the same group name in every figure (``none`` always grey);
    when two groups of one figure would share a colour the later one takes the next free slot."""
    pal = sns.color_palette(PALETTE, 10)
    slots = [i for i in range(10) if i != _GREY]
    used: set[int] = set()
    out = []
    for g in groups:
        key = str(g).strip().lower()
        if key in _REFERENCE_LEVELS and _GREY not in used:
            idx = _GREY
        else:
            if key in _STABLE_LEVELS:
                start = _STABLE_LEVELS.index(key) % len(slots)
            else:
                start = zlib.crc32(key.encode("utf-8")) % len(slots)
            free = [slots[(start + k) % len(slots)] for k in range(len(slots))]
            idx = next((i for i in free if i not in used), free[0])
        used.add(idx)
        out.append(pal[idx])
    return out


def _style() -> None:
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE)
    plt.rcParams.update(_RC)


def curve_plot(curve: pd.DataFrame, *, risk_times: Sequence[float], at_risk: pd.DataFrame | None = None,
               threshold: int = 5, title: str = "", ylabel: str = "Cumulative incidence",
               xlabel: str = "Days since index", horizon: float | None = None,
               truth: float | dict | None = None, ci: bool = True) -> plt.Figure:
    """Step curves by group with pointwise CI bands and a number-at-risk table under the axis.

    ``curve``: group, time, estimate, ci_lower, ci_upper, n_at_risk (every jump; ``CurveResult.curve``).
    ``at_risk``: group, time, n_at_risk at ``risk_times`` (``CurveResult.at(risk_times)``); when absent it
    is computed from ``curve``. Each group's curve starts where it has ``threshold`` events (when ``curve``
    has ``n_events``) and stops where fewer than ``threshold`` remain at risk.
    ``truth``: a true value at ``horizon`` (one number, or one per group) drawn as a marker.
    """
    _style()
    if curve.empty:
        raise ValueError("curve_plot: the curve has no rows")
    groups = list(pd.unique(curve["group"]))  # in the order given (ordered categories stay in their order)
    colours = group_colours(groups)
    nrows = len(groups)
    fig = plt.figure(figsize=(8, 4.8 + 0.28 * nrows))
    gs = fig.add_gridspec(2, 1, height_ratios=[4.5, 0.35 + 0.28 * nrows], hspace=0.32)
    ax = fig.add_subplot(gs[0])
    tab = fig.add_subplot(gs[1], sharex=ax)
    xmax = float(max(risk_times)) if len(risk_times) else float(curve["time"].max())
    if horizon is not None:
        xmax = max(xmax, float(horizon))
    for colour, grp in zip(colours, groups, strict=False):
        label = group_label(str(grp)) if len(groups) > 1 or str(grp) not in ("", "all", "None") else "all"
        _draw_curve(ax, curve[curve["group"] == grp].sort_values("time"), colour, label, xmax=xmax,
                    threshold=threshold, at_risk=None if at_risk is None else at_risk[at_risk["group"] == grp],
                    ci=ci)
        if truth is not None and horizon is not None:
            tv = truth.get(grp) if isinstance(truth, dict) else truth
            if tv is not None and np.isfinite(tv):
                ax.plot([horizon], [tv], marker="D", ms=7, mfc="white", mec=colour, mew=2, ls="none",
                        label="true value" if colour == colours[0] else None)
    ax.set_xlim(-xmax * 0.03, xmax * 1.03)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left", fontsize=12)
    if horizon is not None:
        ax.axvline(horizon, color="0.5", lw=0.8, ls=":")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    plt.setp(ax.get_xticklabels(), visible=True)
    ax.set_xticks(list(risk_times))
    ax.set_xlabel(xlabel)
    _at_risk_table(tab, groups, colours, _at_risk_from_curve(curve, risk_times) if at_risk is None else at_risk,
                   risk_times, threshold)
    return fig


def _draw_curve(ax: Any, g: pd.DataFrame, colour: Any, label: str, *, xmax: float, threshold: int,
                at_risk: pd.DataFrame | None, ci: bool) -> None:
    """One group's step curve (and CI band), drawn from its ``threshold``-th event (when ``g`` has
    ``n_events``) to the last time with ``threshold`` people at risk."""
    enough = g["n_at_risk"].to_numpy(float) >= threshold
    # keep the curve up to the last time with enough people at risk
    last = np.flatnonzero(enough)
    g = g.iloc[: last[-1] + 1] if len(last) else g.iloc[:0]
    start = float(_start(g))
    t0, band0 = 0.0, None
    if "n_events" in g.columns:  # and from the time the group has threshold events
        first = np.flatnonzero(np.cumsum(g["n_events"].fillna(0).to_numpy(float)) >= threshold)
        if len(first) and first[0] > 0:
            row = g.iloc[first[0]]
            t0, start = float(row["time"]), float(row["estimate"])
            if {"ci_lower", "ci_upper"} <= set(g.columns):
                band0 = (float(row["ci_lower"]), float(row["ci_upper"]))
            g = g.iloc[first[0] + 1:]
        elif not len(first):
            t0, start, g = xmax, start, g.iloc[:0]
    g = _thin(g, xmax)
    t = np.concatenate([[t0], g["time"].to_numpy(float)])
    y = np.concatenate([[start], g["estimate"].to_numpy(float)])
    end = min(xmax, float(t[-1]) if len(g) else 0.0)
    if at_risk is not None:  # flat after the last jump while enough people are still followed
        a = at_risk[at_risk["n_at_risk"] >= threshold]
        if len(a):
            end = max(end, min(xmax, float(a["time"].max())))
    t_end = np.append(t, max(end, t[-1]))
    y_end = np.append(y, y[-1])
    ax.step(t_end, y_end, where="post", color=colour, lw=1.8, label=label)
    if ci and {"ci_lower", "ci_upper"} <= set(g.columns) and len(g):
        lo0, hi0 = band0 if band0 is not None else (y[0], y[0])
        lo = np.concatenate([[lo0], g["ci_lower"].to_numpy(float)])
        hi = np.concatenate([[hi0], g["ci_upper"].to_numpy(float)])
        ax.fill_between(t_end, np.append(lo, lo[-1]), np.append(hi, hi[-1]), step="post",
                        color=colour, alpha=0.15, lw=0)


def _at_risk_table(tab: Any, groups: list, colours: list, at_risk: pd.DataFrame, risk_times: Sequence[float],
                   threshold: int) -> None:
    """The number-at-risk table under the curves: one text row per group at the tick positions, counts
    published by the report's policy."""
    nrows = len(groups)
    tab.set_ylim(-0.5, nrows - 0.5)
    tab.invert_yaxis()
    tab.set_yticks(range(nrows))
    tab.set_yticklabels([group_label(str(g)) for g in groups], fontsize=8)
    for lbl, colour in zip(tab.get_yticklabels(), colours, strict=False):
        lbl.set_color(colour)
    tab.tick_params(axis="x", bottom=False, labelbottom=False)
    tab.tick_params(axis="y", left=False, pad=12)
    tab.grid(False)
    for side in ("top", "right", "bottom", "left"):
        tab.spines[side].set_visible(False)
    tab.set_title("Number at risk", loc="left", fontsize=9)
    counts = np.full((len(groups), len(risk_times)), np.nan)
    for i, grp in enumerate(groups):
        a = at_risk[at_risk["group"] == grp]
        for k, t in enumerate(risk_times):
            row = a[np.isclose(a["time"].to_numpy(float), float(t))]
            counts[i, k] = row["n_at_risk"].iloc[0] if len(row) else np.nan
    # at time 0 the groups add up to the number analysed (shown elsewhere): protect a small group the way
    # the estimates do (exact counts: the same group withheld; rounded counts: a check that nothing is pinned)
    policy = policy_for(threshold)
    states = np.full(counts.shape, SHOWN, dtype=int)
    small = policy.is_small(counts) & policy.shows_small()
    states[small] = 1
    if len(groups) > 1 and len(risk_times) and float(risk_times[0]) == 0 and np.isfinite(counts[:, 0]).all():
        if policy.base == 1:
            states[:, 0] = suppress_table(counts[:, :1].T, threshold)[0, :-1]
        else:
            states[:, 0] = policy.protect_table(counts[:, :1].T, col_totals_shown=False)[0][0, :-1]
    for i in range(len(groups)):
        for k, t in enumerate(risk_times):
            text = "" if not np.isfinite(counts[i, k]) else policy.render(counts[i, k], states[i, k])
            tab.text(float(t), i, text, ha="center", va="center", fontsize=8)


def _thin(g: pd.DataFrame, xmax: float, bins: int = 1500) -> pd.DataFrame:
    """At most one step per 1/1500 of the time axis (the last in each bin): a curve over a million
    episodes has more jumps than a figure has pixels, and SVG size and drawing time grow with them."""
    if len(g) <= bins:
        return g
    b = np.floor(g["time"].to_numpy(float) / (max(xmax, 1e-9) / bins)).astype(np.int64)
    keep = np.r_[b[1:] != b[:-1], True]
    return g[keep]


def _start(g: pd.DataFrame) -> float:
    """Value of a curve before its first jump: 1 for a survival curve, 0 for cumulative incidence."""
    if len(g) and g["estimate"].iloc[0] > 0.5:
        return 1.0
    return 0.0


def _at_risk_from_curve(curve: pd.DataFrame, times: Sequence[float]) -> pd.DataFrame:
    rows = []
    for grp, g in curve.groupby("group", sort=False):
        g = g.sort_values("time")
        t = g["time"].to_numpy(float)
        idx = np.searchsorted(t, np.asarray(times, float), side="left")
        n = np.where(idx < len(g), g["n_at_risk"].to_numpy(float)[np.minimum(idx, len(g) - 1)], 0)
        rows.append(pd.DataFrame({"group": grp, "time": times, "n_at_risk": n}))
    return pd.concat(rows, ignore_index=True)


def forest_plot(frame: pd.DataFrame, *, label: str = "label", log: bool = True, null: float | None = None,
                xlabel: str = "", title: str = "", summary: pd.DataFrame | None = None,
                prediction: tuple[float, float] | None = None, truth: float | None = None,
                weight: str | None = None, group: str | None = None) -> plt.Figure:
    """A forest plot: one row per study/site/term (estimate with CI), optional pooled rows below.

    ``frame``: label, estimate, ci_lower, ci_upper (+ ``weight`` for marker size). ``summary``: pooled
    rows drawn as diamonds (label, estimate, ci_lower, ci_upper). ``prediction``: the prediction
    interval drawn as a bar under the first pooled diamond. ``null``: the no-effect line (1 for ratios).
    ``group``: a column naming what each row belongs to (the outcome or analysis); where it takes more
    than one value, each run of rows gets a bold heading row, so that equal labels of different outcomes
    ("Risk ratio, radiotherapy vs none" for HO and for wound complications) cannot be mistaken for each
    other.
    """
    _style()
    f = frame.reset_index(drop=True)
    n_sum = 0 if summary is None else len(summary)
    headings: list[tuple[int, str]] = []  # (row before which it stands, heading)
    if group is not None and f[group].nunique() > 1:
        g = f[group].astype(str).tolist()
        headings = [(i, g[i]) for i in range(len(g)) if i == 0 or g[i] != g[i - 1]]
    gap = 0.5  # extra space above every heading but the first, so a group ends visibly before the next

    def slot(i: int, k: int) -> float:  # row i with k headings above it
        return i + k + gap * max(k - 1, 0)

    slots = slot(len(f), len(headings))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * (slots + n_sum + (1 if prediction else 0))))
    top = slots - 1 + n_sum + (1.2 if n_sum else 0)
    above = np.searchsorted([i for i, _ in headings], np.arange(len(f)), side="right")
    y = top - np.array([slot(i, int(k)) for i, k in enumerate(above)], dtype=float)
    est = f["estimate"].to_numpy(float)
    lo = f["ci_lower"].to_numpy(float)
    hi = f["ci_upper"].to_numpy(float)
    if weight and weight in f.columns:
        w = f[weight].to_numpy(float)
        sizes = 20 + 180 * w / np.nanmax(w)
    else:
        sizes = np.full(len(f), 40.0)
    colour = sns.color_palette(PALETTE)[0]
    ax.hlines(y, lo, hi, color=colour, lw=1.4)
    ax.scatter(est, y, s=sizes, marker="s", color=colour, zorder=3)
    labels = [_wrap(v) for v in f[label].astype(str)]
    ticks = list(y)
    if summary is not None and n_sum:
        sy = np.arange(n_sum)[::-1] + 0.0
        for yy, (_, r) in zip(sy, summary.iterrows(), strict=True):
            e, lo_, hi_ = float(r["estimate"]), float(r["ci_lower"]), float(r["ci_upper"])
            ax.fill([lo_, e, hi_, e], [yy, yy + 0.25, yy, yy - 0.25], color="0.2", zorder=3)
            labels.append(_wrap(str(r[label])))
            ticks.append(yy)
        if prediction is not None:
            pl, ph = prediction
            ax.hlines(sy[0] - 0.45, pl, ph, color="0.2", lw=3, alpha=0.5)
            ax.text(ph, sy[0] - 0.45, "  prediction interval", va="center", fontsize=8, color="0.3")
    if null is not None:
        ax.axvline(null, color="0.4", lw=0.9, ls="--")
    if truth is not None and np.isfinite(truth):
        ax.axvline(truth, color=sns.color_palette(PALETTE)[3], lw=1.2, ls=":", label="true value")
        ax.legend(loc="lower right", frameon=False, fontsize=8)
    if log:
        _log_ticks(ax, np.concatenate([lo, hi, est]))
    for k, (i, heading) in enumerate(headings):
        ticks.append(top - (slot(i, k + 1) - 1))  # the slot just above its first row
        labels.append(_wrap(heading, 46))
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=9)
    for tick in ax.get_yticklabels()[len(ticks) - len(headings):]:
        tick.set_fontweight("bold")
    ax.set_ylim(min(ticks) - 1.0, max(ticks) + 0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontsize=12)
    ax.grid(axis="y", visible=False)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 38) -> str:
    """A long axis label on at most two lines (the rest shortened), so labels do not run into each other."""
    lines = textwrap.wrap(text, width) or [""]
    return "\n".join(lines[:1] + ([textwrap.shorten(" ".join(lines[1:]), width, placeholder="...")]
                                   if len(lines) > 1 else []))


def _log_ticks(ax, values: np.ndarray) -> None:
    """A log x-axis with a few plain tick labels (0.2, 0.5, 1, 2, 5) and no minor labels, which matplotlib
    otherwise prints on a narrow range, one over another."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    v = values[np.isfinite(values) & (values > 0)]
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.1, 10.0)
    decades = range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 2)
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        cands = sorted({round(m * 10.0 ** d, 12) for d in decades for m in mantissas})
        inside = [c for c in cands if lo / 1.2 <= c <= hi * 1.2] or [1.0]
        if len(inside) >= 3:  # a narrow range (0.8 to 1.3) needs finer steps to show a scale at all
            break
    step = max(1, int(np.ceil(len(inside) / 7)))  # at most about 7 labels
    ticks = inside[::step] + ([1.0] if 1.0 not in inside[::step] and lo <= 1 <= hi else [])
    ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def love_plot(balance: pd.DataFrame, *, variable: str = "variable", before: str = "smd_before",
              after: str = "smd_after", threshold: float = 0.1, title: str = "Covariate balance",
              labels: dict[str, str] | None = None) -> plt.Figure:
    """Absolute standardised mean differences before and after weighting, with the 0.1 line. Rows are the
    balance table's covariates ("age_years", "sex: male"), read as words ("Age (years)", "Sex: male";
    ``labels``: the spec's ``[report] labels``)."""
    _style()
    b = balance.copy()
    b["_before"] = b[before].abs()
    b["_after"] = b[after].abs() if after in b.columns else np.nan
    b = b.sort_values("_before")
    y = np.arange(len(b))
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * len(b)))
    pal = sns.color_palette(PALETTE)
    ax.scatter(b["_before"], y, marker="o", facecolor="white", edgecolor=pal[3], s=40, label="unweighted",
               zorder=3)
    if b["_after"].notna().any():
        ax.scatter(b["_after"], y, marker="o", color=pal[0], s=40, label="weighted", zorder=3)
        ax.hlines(y, b["_after"], b["_before"], color="0.75", lw=0.8)
    ax.axvline(threshold, color="0.4", ls="--", lw=0.9)
    ax.set_yticks(y)
    ax.set_yticklabels([covariate_label(v, labels) for v in b[variable].astype(str)], fontsize=9)
    ax.set_xlabel("|standardised mean difference|")
    ax.set_title(title, loc="left", fontsize=12)
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    ax.set_xlim(left=0)
    fig.tight_layout()
    return fig


def calibration_table(predicted, observed, bins: int = 10) -> pd.DataFrame:
    """Observed vs predicted risk by quantile group of the prediction (vectorised)."""
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(observed, dtype=float)
    ok = np.isfinite(p) & np.isfinite(y)
    p, y = p[ok], y[ok]
    if len(p) == 0:
        raise ValueError("calibration: no finite predictions")
    q = pd.qcut(p, q=min(bins, len(np.unique(p))), labels=False, duplicates="drop")
    d = pd.DataFrame({"bin": q, "p": p, "y": y})
    return (d.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size"),
                                 events=("y", "sum")).reset_index(drop=True))


def calibration_plot(table: pd.DataFrame, *, threshold: int = 5, title: str = "Calibration") -> plt.Figure:
    """Observed against mean predicted risk per group with binomial Wilson bars; the 45-degree line.

    Groups with fewer than ``threshold`` people or with 1..threshold-1 events are not drawn (their
    observed share would reveal a small count).
    """
    from hostats.stats.incidence import binomial_ci

    _style()
    t = table.copy()
    keep = (t["n"] >= threshold) & ~((t["events"] >= 1) & (t["events"] < threshold))
    t = t[keep]
    lo, hi = binomial_ci(t["events"].to_numpy(), t["n"].to_numpy(), 0.95)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    top = float(max(t["predicted"].max(), t["observed"].max(), 0.05)) * 1.1 if len(t) else 1.0
    ax.plot([0, top], [0, top], color="0.5", ls="--", lw=0.9)
    pal = sns.color_palette(PALETTE)
    ax.errorbar(t["predicted"], t["observed"], yerr=[t["observed"] - lo, hi - t["observed"]], fmt="o",
                color=pal[0], capsize=3)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted risk")
    ax.set_ylabel("observed risk")
    ax.set_title(title, loc="left", fontsize=12)
    fig.tight_layout()
    return fig


def bar_plot(frame: pd.DataFrame, *, x: str, y: str = "estimate", title: str = "", ylabel: str = "",
             truth: Sequence[float] | None = None) -> plt.Figure:
    """Proportions with CIs as bars (e.g. share of joints affected), true values as markers."""
    _style()
    f = frame.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    pal = sns.color_palette(PALETTE)
    pos = np.arange(len(f))
    est = f[y].to_numpy(float)
    ax.bar(pos, est, color=pal[0], alpha=0.8)
    if {"ci_lower", "ci_upper"} <= set(f.columns):
        ax.errorbar(pos, est, yerr=[est - f["ci_lower"].to_numpy(float), f["ci_upper"].to_numpy(float) - est],
                    fmt="none", color="0.2", capsize=3)
    if truth is not None:
        tv = np.asarray(truth, dtype=float)
        ax.scatter(pos, tv, marker="D", color=pal[3], zorder=3, label="true value")
        ax.legend(frameon=False, fontsize=9)
    ax.set_xticks(pos)
    ax.set_xticklabels(f[x].astype(str))
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left", fontsize=12)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, directory: Path | str, name: str) -> dict[str, str]:
    """Write ``name.png`` and ``name.svg`` into ``directory``; return their file names and the PNG in base64.

    Metadata that would change between runs (creation date, software version) is left out, so the same
    inputs give the same bytes.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with plt.rc_context(_RC):  # text made while drawing (tick labels) is literal too
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    png = buf.getvalue()
    (directory / f"{name}.png").write_bytes(png)
    with plt.rc_context(_RC):
        fig.savefig(directory / f"{name}.svg", format="svg", bbox_inches="tight",
                    metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return {"png": f"{name}.png", "svg": f"{name}.svg", "base64": base64.b64encode(png).decode("ascii")}
