"""Inverse probability of censoring weighting (IPCW): the censoring distribution and the influence-function
term from estimating it, shared by the censoring-aware estimators (``binreg``, ``ate``, ...).

API
---
``km = censoring_km(time, status, strata=None)``
    Kaplan-Meier estimate of the censoring distribution G(u) = P(C > u), optionally stratified (``strata``:
    integer codes per subject, e.g. from :func:`strata_codes`). ``status`` 0 is a censoring, any other
    value an event. The curve is R's ``survfit(Surv(time, status == 0) ~ strata)`` (risk set: T~ >= s);
    evaluated at u- it puts events before censorings at tied times (an event at u is not censored at
    u). mets 1.3.2's ``binreg`` evaluates G(T) instead; the two differ only where a censoring shares an
    event's time.
``km.g_minus``
    G(T_i-) for every subject (left limit at its own observed time, in its own stratum): the IPCW weight
    of an observed event is ``1 / km.g_minus``.
``km.at(u, left=True)``
    G(u_i-) (or G(u_i) with ``left=False``) at one time per subject (e.g. ``min(T_i, t)``), each in the
    subject's own stratum.
``km.correction(v, u)``
    The per-subject influence-function term from estimating G by Kaplan-Meier, for an IPCW mean
    theta = (1/n) sum_j v_j with v_j = phi_j / G(u_j-) (``v`` length n or n x p; ``u`` the time at
    which each v_j uses G). Add it to ``v_i - theta`` to get the influence function of theta-hat.
``strata_codes(data, columns)``
    Combined integer codes (and labels) of one or more stratification columns.

The correction (derivation)
---------------------------
With one stratum, G-hat(u-)/G(u-) - 1 = -int_[0,u) dMbar_C(s) / ybar(s) + o_p(n^-1/2) (the martingale
representation of the Kaplan-Meier estimator; Gill 1980), where
Mbar_C = (1/n) sum_i M_C,i, dM_C,i(s) = dN_C,i(s) - I(T~_i >= s) dLambda_C(s) and ybar(s) = Y(s)/n. Since
1/G-hat - 1/G = -(G-hat - G)/G^2 + o_p, for theta-hat = (1/n) sum_j phi_j / G-hat(u_j-):

    theta-hat - theta~ = (1/n) sum_j v_j int_[0,u_j) dMbar_C(s) / ybar(s)
                       = (1/n) sum_i int [ (1/n) sum_j v_j I(u_j > s) ] / ybar(s) dM_C,i(s),

theta~ the same mean with the true G. So subject i's influence function gains

    c_i = sum_s [ (1/n) sum_j v_j I(u_j > s) / (Y(s)/n) ] dM-hat_C,i(s)
        = I(i censored) A(T~_i) / Y(T~_i) - sum_{s <= T~_i} A(s) / Y(s) * dN_C(s) / Y(s),

A(s) = sum_j v_j I(u_j > s), with every sum, Y, N_C and Lambda_C taken within i's stratum (the
strata's Kaplan-Meier estimates are independent). Asymptotically c_i is minus the projection of v_i on
the censoring martingales, so estimating G (even when it is known) does not increase the variance of an
IPCW mean (Tsiatis 2006, Semiparametric Theory and Missing Data, ch. 9); in finite samples the naive and
corrected SEs of a regression may differ a little either way. This is the censoring term of Scheike, Zhang & Gerds (2008, Biometrika 95:205-220, the direct binomial
regression; R ``mets::binreg``), of Gerds & Schumacher (2006, Biometrical J 48:1029-1040) for IPCW
prediction-error estimates, and of Ozenne, Scheike, Staerk & Gerds (2020, Biometrical J 62:751-763) for
the IPCW/AIPTW average treatment effect (R ``riskRegression::ate``). Without covariates,
(1/n) sum_j Delta_j I(T_j <= t, cause) / G-hat(T_j-) is the Aalen-Johansen estimate at t and
v_i - theta + c_i its influence function (checked in tests/stats/core/test_ipcw.py).

Computation: one sort per stratum, distinct times, cumulative sums; O(n log n) time and O(n p) memory.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hostats.stats.core.survival_data import label_array

IPCW_REFERENCE = (
    "Scheike TH, Zhang MJ, Gerds TA. Predicting cumulative incidence probability by direct binomial "
    "regression. Biometrika 2008;95:205-220; Gerds TA, Schumacher M. Biometrical J 2006;48:1029-1040; "
    "Ozenne BMH, Scheike TH, Staerk L, Gerds TA. Biometrical J 2020;62:751-763"
)


def strata_codes(data: pd.DataFrame, columns: str | Sequence[str] | None,
                 role: str = "censoring stratum") -> tuple[np.ndarray, list]:
    """Integer codes 0..k-1 of the combined levels of ``columns`` (one stratum when None or empty) and the
    labels (tuples of the columns' values; the value itself for one column). Missing values are a
    DataError naming the column."""
    if columns is None:
        return np.zeros(len(data), dtype=np.int64), ["all"]
    cols = [columns] if isinstance(columns, str) else list(columns)
    if not cols:
        return np.zeros(len(data), dtype=np.int64), ["all"]
    for c in cols:
        label_array(data, c, role)
    if len(cols) == 1:
        codes, labels = pd.factorize(data[cols[0]], sort=True)
        return codes.astype(np.int64), list(labels)
    keys = pd.MultiIndex.from_frame(data[cols].astype(object))
    codes, labels = pd.factorize(keys, sort=True)
    return codes.astype(np.int64), list(labels)


@dataclass
class _Stratum:
    rows: np.ndarray      # subject indices in this stratum
    times: np.ndarray     # distinct observed times (ascending)
    y: np.ndarray         # number at risk Y(s) = #{T~ >= s}
    dc: np.ndarray        # censorings at s
    g: np.ndarray         # G(s) (right-continuous)
    pos: np.ndarray       # per subject (in ``rows`` order): index of its own time in ``times``


@dataclass
class CensoringKM:
    """Kaplan-Meier of the censoring times, per stratum (see the module docstring)."""

    n: int
    strata: np.ndarray
    cens: np.ndarray
    g_minus: np.ndarray
    _parts: list[_Stratum] = field(default_factory=list, repr=False)

    def at(self, u: np.ndarray, left: bool = True) -> np.ndarray:
        """G(u_i-) (``left``) or G(u_i) at one time per subject, in the subject's stratum (1 before the
        first time; beyond the last observed time the last value, possibly 0)."""
        u = np.broadcast_to(np.asarray(u, dtype=float), (self.n,))
        out = np.empty(self.n)
        for p in self._parts:
            k = np.searchsorted(p.times, u[p.rows], side="left" if left else "right") - 1
            out[p.rows] = np.where(k >= 0, p.g[np.maximum(k, 0)], 1.0)
        return out

    def correction(self, v: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """Influence-function term c_i of estimating G for theta = (1/n) sum_j v_j, v_j = phi_j / G(u_j-).

        ``v``: n values or an n x p matrix (already divided by G-hat); ``u``: the time at which each v_j
        evaluates G (default: each subject's own observed time). Returns an array of the shape of ``v``.
        The influence function of theta-hat is ``v - theta + correction`` (variance: sum(IF^2) / n^2).
        """
        v = np.asarray(v, dtype=float)
        vec = v.ndim == 1
        v2 = v[:, None] if vec else v
        if v2.shape[0] != self.n:
            raise ValueError(f"v has {v2.shape[0]} rows for {self.n} subjects")
        out = np.zeros_like(v2)
        u_all = None if u is None else np.broadcast_to(np.asarray(u, dtype=float), (self.n,))
        for p in self._parts:
            vr = v2[p.rows]
            if u_all is None:  # sums over u_j <= s at distinct times: bincount on own-time positions
                le = np.cumsum(_bin_rows(p.pos, vr, p.times.size), axis=0)
            else:
                ur = u_all[p.rows]
                order = np.argsort(ur, kind="stable")
                cum = np.vstack([np.zeros((1, vr.shape[1])), np.cumsum(vr[order], axis=0)])
                le = cum[np.searchsorted(ur[order], p.times, side="right")]
            a = vr.sum(0) - le                                 # A(s) = sum_j v_j I(u_j > s)
            h = a / p.y[:, None]
            dlam = p.dc / p.y
            big_h = np.cumsum(h * dlam[:, None], axis=0)       # sum_{s <= t} h(s) dLambda_C(s)
            c = -big_h[p.pos]
            cr = self.cens[p.rows]
            c[cr] += h[p.pos[cr]]
            out[p.rows] = c
        return out[:, 0] if vec else out


def _bin_rows(pos: np.ndarray, v: np.ndarray, m: int) -> np.ndarray:
    return np.column_stack([np.bincount(pos, weights=v[:, j], minlength=m) for j in range(v.shape[1])])


def censoring_km(time: np.ndarray, status: np.ndarray, strata: np.ndarray | None = None) -> CensoringKM:
    """Kaplan-Meier estimate of the censoring survival G(u) = P(C > u), by stratum.

    ``time``: observed times T~_i = min(T_i, C_i); ``status``: 0 censored, anything else an event;
    ``strata``: integer codes (None: one stratum). Risk set Y(s) = #{T~ >= s} in the stratum; an event
    and a censoring at the same time count the event first, so G(T_i-) of an event at T_i does not
    include the censorings at T_i (R's convention). Inputs are assumed checked (finite, non-negative).
    """
    t = np.asarray(time, dtype=float)
    cens = np.asarray(status) == 0
    n = t.size
    codes = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata, dtype=np.int64)
    g_minus = np.empty(n)
    parts = []
    order_all = np.lexsort((t, codes))                         # one sort: by stratum, then time
    bounds = np.flatnonzero(np.diff(codes[order_all])) + 1
    for rows in np.split(order_all, bounds):
        if rows.size == 0:
            continue
        tr = t[rows]
        times, first, pos = np.unique(tr, return_index=True, return_inverse=True)
        y = (rows.size - first).astype(float)
        dc = np.bincount(pos, weights=cens[rows].astype(float), minlength=times.size)
        g = np.cumprod(1.0 - dc / y)
        g_minus[rows] = np.r_[1.0, g[:-1]][pos]
        parts.append(_Stratum(rows=rows, times=times, y=y, dc=dc, g=g, pos=pos))
    return CensoringKM(n=n, strata=codes, cens=cens, g_minus=g_minus, _parts=parts)


__all__ = ["CensoringKM", "censoring_km", "strata_codes", "IPCW_REFERENCE"]
