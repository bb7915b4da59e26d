"""Cause-specific Cox models for absolute-risk prediction, with the influence functions of the
standardised risk (the g-formula of :func:`hostats.stats.causal.absolute_risk.ate`).

One Cox model per cause j (Efron ties, fitted by :mod:`hostats.stats.core.cox_efron`, as ``survival::coxph`` and
riskRegression's ``CSC``), baseline cumulative hazards Lambda_0j as ``survival::basehaz`` (Efron form at
tied times, as riskRegression's ``predictCox``), and the absolute risk of cause 1 by tau for covariates x
by the product limit (riskRegression's default for CSC in ``ate``):

    F_1(tau | x) = sum_{t_k <= tau} S(t_k- | x) exp(x b_1) dLambda_01(t_k),
    S(t- | x) = prod_{s < t} (1 - sum_j exp(x b_j) dLambda_0j(s)).

Influence functions (sum scale: estimate - truth ~ sum_i psi_i) of the Cox pieces, as in Ozenne et al.
(2017, 2020): psi_beta_i = U_i I^-1 (score residuals times the inverse information) and, for the
baseline hazard increment at t_m, psi_i(t_m) = dM_i(t_m) / S0(t_m) - E(t_m)' dLambda_0(t_m) psi_beta_i
with E = S1 / S0 (Breslow-type linearisation). Everything is computed on a time grid (the event times
of any cause up to the horizon) with cumulative sums; the only matrices are (rows of a chunk) x (grid).
Patients with the same covariates have the same predicted curve: the curves are computed once per distinct
covariate row (:func:`distinct_rows`; a few thousand in a cohort whatever its size, when the covariates are
age to a tenth of a year and a few categories) and the sums over patients become sums weighted by the
number of patients per row.

References: Ozenne B, Sorensen AL, Scheike T, Torp-Pedersen C, Gerds TA. riskRegression: predicting the
risk of an event using Cox regression models. R Journal 2017;9:440-460; Ozenne BMH, Scheike TH, Staerk L,
Gerds TA. On the estimation of average treatment effects with right-censored time to event outcome and
competing risks. Biometrical Journal 2020;62:751-763.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from hostats.errors import EstimationError
from hostats.stats.core import cox_efron as _efron

# rows per chunk x grid points: small enough that the (grid x rows) temporaries of a chunk stay in the
# CPU cache (two to three times faster than large chunks), large enough that Python overhead is small
CHUNK_CELLS = 1 << 15


@dataclass
class CauseModel:
    """A fitted cause-specific Cox model, its baseline hazard on the grid and its influence pieces."""

    cause: int
    beta: np.ndarray        # (p,) log hazard ratios
    vcov: np.ndarray        # (p, p) model-based variance
    center: np.ndarray      # (p,) covariate means (the baseline hazard is for x = center)
    shift: float            # linear predictors are exp((x - center) b - shift): no overflow
    dhaz: np.ndarray        # (M,) baseline hazard increments on the grid (shifted scale)
    S0: np.ndarray          # (M,) risk-set sums of exp(eta - shift) at the grid times
    E: np.ndarray           # (M, p) S1 / S0 (centred covariates)
    expeta: np.ndarray      # (n,) exp(eta_i - shift), data order
    psi_beta: np.ndarray    # (n, p) influence of beta, data order
    fit: _efron.Fit
    grid: np.ndarray        # (M,) the time grid (event times of any cause up to the horizon)

    def release(self) -> None:
        """Drop the per-subject arrays (influence of beta, linear predictors, the fit's pieces: about
        n x (p + 3) numbers) once the influence functions are computed; the curves (:func:`paths`) need
        only beta, center, shift and dhaz."""
        self.expeta = self.psi_beta = None
        self.fit.pieces = None

    def risk_score(self, X: np.ndarray) -> np.ndarray:
        return np.exp((X - self.center) @ self.beta - self.shift)

    def hazard_influence(self, A: np.ndarray, time: np.ndarray, status: np.ndarray,
                         grid: np.ndarray, positions: GridPositions | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """sum_m A(t_m) psi_i(t_m) per subject (n,), and the beta-part coefficient, separately:
        returns (the dM part, c) with c = sum_m A(t_m) E(t_m) dLambda_0(t_m), so that the total is
        dM part - psi_beta @ c. ``positions``: :func:`grid_positions` of ``time`` (computed if None)."""
        M = grid.size
        w = np.zeros(M)
        ok = self.S0 > 0
        w[ok] = A[ok] / self.S0[ok]
        pz = grid_positions(time, grid) if positions is None else positions
        # jump of subject i's counting process at its own time (if it is a grid time of this cause)
        jump = np.zeros(time.size)
        hit = pz.on_grid & (status == self.cause)
        jump[hit] = w[pz.pos[hit]]
        # compensator: exp(eta_i) sum_{t_m <= T_i} A(t_m) dLambda_0(t_m) / S0(t_m)
        cum = np.r_[0.0, np.cumsum(w * self.dhaz)]
        part = jump - self.expeta * cum[pz.upto]
        c = (A * self.dhaz) @ self.E
        return part, c


@dataclass
class GridPositions:
    """Where each subject's time falls on the grid, shared by every model and arm."""

    pos: np.ndarray       # (n,) first grid index with t_m >= T_i
    upto: np.ndarray      # (n,) number of grid times <= T_i
    on_grid: np.ndarray   # (n,) bool: T_i is a grid time


def grid_positions(time: np.ndarray, grid: np.ndarray) -> GridPositions:
    pos = np.searchsorted(grid, time)
    on_grid = pos < grid.size
    on_grid[on_grid] = grid[pos[on_grid]] == time[on_grid]
    upto = pos + on_grid                  # grid times are distinct: <= T_i adds T_i itself when on the grid
    return GridPositions(pos=pos, upto=upto, on_grid=on_grid)


def fit_cause(X: np.ndarray, time: np.ndarray, status: np.ndarray, cause: int, grid: np.ndarray,
              label: str) -> CauseModel:
    """Cox model for the hazard of ``cause`` (other codes censor), Efron ties; hazard on ``grid``."""
    n = time.size
    event = status == cause
    if not event.any():
        raise EstimationError(f"no events of status {cause} ({label}): its cause-specific Cox model cannot be "
                              "fitted")
    dat = _efron.prepare(np.asarray(X, dtype=float), time, event, np.ones(n), None)   # prepare copies (sorts) X
    try:
        fit = _efron.newton(dat)
    except EstimationError as exc:
        raise EstimationError(f"cause-specific Cox model for status {cause} ({label}): {exc}") from exc
    pc = fit.pieces
    shift = float((dat.X @ fit.beta).max())
    # Efron baseline hazard per event group (survival::basehaz): sum of the per-term increments
    dh_group = np.add.reduceat(pc.h, dat.evstart)
    t_group = dat.time[dat.egstart]
    dhaz = np.zeros(grid.size)
    idx = np.searchsorted(grid, t_group)
    keep = (idx < grid.size)
    keep[keep] = grid[idx[keep]] == t_group[keep]
    dhaz[idx[keep]] = dh_group[keep]
    # risk-set sums at the grid times (rows sorted by time in dat): S1 as sums of r x over the blocks of
    # rows between consecutive grid times (a sparse product, no n x p temporary), reverse-cumulated
    r = pc.expeta
    S0c = np.r_[np.cumsum(r[::-1])[::-1], 0.0]
    first = np.searchsorted(dat.time, grid, side="left")
    S0 = S0c[first]
    E = np.zeros((grid.size, X.shape[1]))
    if grid.size:
        f0 = int(first[0])
        blocks = sparse.csr_matrix((r[f0:], np.arange(n - f0), np.r_[first - f0, n - f0]),
                                   shape=(grid.size, n - f0))
        S1 = np.cumsum((blocks @ dat.X[f0:])[::-1], axis=0)[::-1]
        ok = S0 > 0
        E[ok] = S1[ok] / S0[ok, None]
    resid = _efron.score_residuals(dat, pc)
    psi = np.empty_like(resid)
    step = 1 << 16  # by blocks of rows: no third n x p array (the product) beside resid and psi
    for lo in range(0, n, step):
        psi[dat.order[lo:lo + step]] = resid[lo:lo + step] @ fit.vcov
    del resid
    expeta = np.empty(n)
    expeta[dat.order] = r
    return CauseModel(cause=cause, beta=fit.beta, vcov=fit.vcov, center=dat.center, shift=shift, dhaz=dhaz,
                      S0=S0, E=E, expeta=expeta, psi_beta=psi, fit=fit, grid=grid)


@dataclass
class Paths:
    """Predicted curves of a chunk of rows on the grid, time-major (grid x rows) so that the cumulative
    products and sums over time run along contiguous rows of memory."""

    rows: slice
    e: list[np.ndarray]      # per cause model, exp(x b_j - shift) (rows,)
    S_minus: np.ndarray      # (M, rows) S(t_m- | x)
    dL: np.ndarray           # (M, rows) all-cause hazard increment at t_m
    F: np.ndarray            # (M, rows) F_1(t_m | x)


def paths(models: list[CauseModel], k_cause: int, X: np.ndarray) -> Iterator[Paths]:
    """Product-limit absolute-risk curves of the cause ``models[k_cause]`` for the rows of ``X``, in
    chunks of rows (so memory stays bounded for any n)."""
    M = models[0].dhaz.size
    step = max(64, CHUNK_CELLS // max(M, 1))
    for lo in range(0, X.shape[0], step):
        sl = slice(lo, min(lo + step, X.shape[0]))
        e = [m.risk_score(X[sl]) for m in models]
        dL = np.multiply.outer(models[0].dhaz, e[0])
        for ej, m in zip(e[1:], models[1:], strict=True):
            dL += np.multiply.outer(m.dhaz, ej)
        S_minus = np.empty_like(dL)
        S_minus[0] = 1.0
        if M > 1:
            np.cumprod(np.clip(1.0 - dL[:-1], 0.0, None), axis=0, out=S_minus[1:])
        F = S_minus * np.multiply.outer(models[k_cause].dhaz, e[k_cause])
        np.cumsum(F, axis=0, out=F)
        yield Paths(rows=sl, e=e, S_minus=S_minus, dL=dL, F=F)


def distinct_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``X`` (U x p, in lexicographic order of the columns' values) and each row's
    index among them (n,): ``X == U[inverse]``. One sort per column and one of the combined integer key
    (a structured-array ``np.unique(X, axis=0)`` sorts the rows as bytes, several times slower)."""
    n, p = X.shape
    key = np.zeros(n, dtype=np.int64)
    size = 1
    for j in range(p):
        vals, code = np.unique(X[:, j], return_inverse=True)
        if size > (2 ** 62) // max(vals.size, 1):        # the mixed-radix key would overflow: renumber it
            _, key = np.unique(key, return_inverse=True)
            size = int(key.max()) + 1 if n else 1
        key = key * vals.size + code.reshape(n)
        size *= vals.size
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return X[first], inverse.reshape(n)


def standardised_risk(models: list[CauseModel], k_cause: int, X: np.ndarray, time: np.ndarray,
                      status: np.ndarray, grid: np.ndarray, inverse: np.ndarray | None = None,
                      positions: GridPositions | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean over the patients of F_1(tau | x) (tau = the last grid time), its influence function (n,)
    including the Cox models' estimation, and the per-row predictions F_1(tau | x_l) (one per row of
    ``X``).

    Without ``inverse`` the rows of ``X`` are the patients (those of ``time`` and ``status``). With it,
    the rows of ``X`` are distinct covariate rows and patient i has row ``inverse[i]`` (as from
    :func:`distinct_rows`): each curve is computed once and weighted by its number of patients, the same
    result up to the order of summation. ``positions``: :func:`grid_positions` of ``time`` (computed if
    None; pass it to share it between calls).

    The derivative of the mean prediction with respect to each model's baseline increments and
    coefficients (the product-limit chain rule below) is accumulated chunk by chunk, then combined with
    the models' influence functions.
    """
    p = X.shape[1]
    n = time.size
    if inverse is None:
        if X.shape[0] != n:
            raise ValueError("X needs one row per patient (or pass inverse)")
        count = None
    else:
        count = np.bincount(inverse, minlength=X.shape[0]).astype(float)
    M = grid.size
    J = len(models)
    a_direct = np.zeros(M)                  # d mean F / d dLambda_0,cause: mean S(t-) e_cause
    c = [np.zeros(M) for _ in range(J)]     # minus d mean F / d dLambda_0j (through S)
    B = [np.zeros(p) for _ in range(J)]     # d mean F / d beta_j
    Ftau = np.zeros(X.shape[0])
    for pt in paths(models, k_cause, X):
        if M == 0:
            break
        Xc = X[pt.rows]
        ft = pt.F[-1].copy()
        Ftau[pt.rows] = ft
        e = pt.e if count is None else [ej * count[pt.rows] for ej in pt.e]   # weighted by patients per row
        a_direct += pt.S_minus @ e[k_cause]
        B[k_cause] += (Xc - models[k_cause].center).T @ (ft if count is None else ft * count[pt.rows])
        # d S(t_k-) / d dLambda(t_m) for m < k: R = (F(tau) - F(t_m)) / (1 - dLambda(t_m)), in place
        R = np.subtract(ft[None, :], pt.F, out=pt.F)
        one_minus = np.subtract(1.0, pt.dL, out=pt.dL)
        np.divide(R, one_minus, out=R, where=one_minus > 0)
        R[one_minus <= 0] = 0.0
        for j, m in enumerate(models):
            c[j] += R @ e[j]
            B[j] -= (Xc - m.center).T @ (e[j] * (m.dhaz @ R))
    Fi = Ftau if inverse is None else Ftau[inverse]
    mu = float(Fi.mean())
    phi = (Fi - mu) / n
    if positions is None:
        positions = grid_positions(time, grid)
    for j, m in enumerate(models):
        A = (-c[j] + (a_direct if j == k_cause else 0.0)) / n
        part, coef = m.hazard_influence(A, time, status, grid, positions)
        phi += part - m.psi_beta @ coef + m.psi_beta @ (B[j] / n)
    return mu, phi, Ftau
