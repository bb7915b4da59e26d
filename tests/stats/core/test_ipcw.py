"""The IPCW core (hostats.stats.core.censoring_weights): the censoring Kaplan-Meier and the influence-function term from
estimating it.

Checks: G(u-) by hand on tied data; the IPCW mean of Delta I(T <= t, cause 1) / G(T-) is the
Aalen-Johansen estimate (exactly without event/censoring ties), and its influence-function variance is
close to the cmprsk::cuminc variance; jackknife pseudo-values (which re-estimate G) match the influence
functions subject by subject, stratified and with a matrix v.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hostats.errors import DataError
from hostats.stats.competing.cif_fine_gray import _aalen_johansen
from hostats.stats.core.censoring_weights import censoring_km, strata_codes
from tests.paths import DATA, REFERENCE


def _ipcw_cif(t, s, h, strata=None):
    km = censoring_km(t, s, strata)
    v = ((s == 1) & (t <= h)) / km.g_minus
    theta = v.mean()
    return theta, v - theta + km.correction(v)


def test_g_minus_by_hand_with_ties():
    # times 1 (censored), 2 (event), 2 (censored), 3 (censored), 4 (event)
    t = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    s = np.array([0, 1, 0, 0, 2])
    km = censoring_km(t, s)
    g1, g2, g3 = 4 / 5, 4 / 5 * (1 - 1 / 4), 4 / 5 * 3 / 4 * (1 - 1 / 2)
    # the event at 2 keeps G(2-) = G(1): the censoring at 2 comes after it
    np.testing.assert_allclose(km.g_minus, [1.0, g1, g1, g2, g3])
    np.testing.assert_allclose(km.at(np.array([0.5, 2.0, 2.0, 3.5, 9.0]), left=False), [1.0, g2, g2, g3, g3])


def test_strata_codes_and_missing():
    d = pd.DataFrame({"a": ["x", "y", "x", "y"], "b": [1, 1, 2, 1]})
    codes, labels = strata_codes(d, ["a", "b"])
    assert len(labels) == 3 and codes[1] == codes[3] and len(set(codes)) == 3
    assert (strata_codes(d, None)[0] == 0).all()
    with pytest.raises(DataError, match="'a'"):
        strata_codes(d.assign(a=[None, "y", "x", "y"]), "a")


def test_ipcw_mean_is_aalen_johansen_without_ties():
    rng = np.random.default_rng(7)
    n = 400
    T = rng.exponential(10, n)
    C = rng.uniform(0, 30, n)
    s = np.where(T <= C, rng.choice([1, 2], n, p=[0.4, 0.6]), 0)
    t = np.minimum(T, C)
    aj = _aalen_johansen(t, s, None, 1)
    for h in (2.0, 5.0, 12.0):
        theta, inf = _ipcw_cif(t, s, h)
        k = np.searchsorted(aj["time"], h, side="right") - 1
        assert theta == pytest.approx(aj["estimate"][k], rel=1e-12)
        # IF variance and cmprsk's Aalen-type variance are different estimators of one quantity
        se_if = np.sqrt(np.sum(inf ** 2)) / n
        assert se_if == pytest.approx(np.sqrt(aj["variance"][k]), rel=0.02)


def test_ipcw_mean_on_bmtcrr():
    d = pd.read_csv(DATA / "bmtcrr.csv")
    t, s = d.ftime.to_numpy(float), d.Status.to_numpy()
    aj = _aalen_johansen(t, s, None, 1)
    for h in (6.0, 24.0):
        theta, inf = _ipcw_cif(t, s, h)
        k = np.searchsorted(aj["time"], h, side="right") - 1
        # bmtcrr has events and censorings at the same times, where the reverse KM (risk set T >= s,
        # as R) and the all-cause KM do not factor exactly: agreement to ~1e-5, not to rounding
        assert theta == pytest.approx(aj["estimate"][k], abs=1e-4)
        assert np.sqrt(np.sum(inf ** 2)) / len(t) == pytest.approx(np.sqrt(aj["variance"][k]), rel=0.01)


def _jackknife_check(t, s, strata, h):
    n = t.size

    def est(t, s, st):
        km = censoring_km(t, s, st)
        u = np.minimum(t, h)
        g = km.at(u)
        v = np.column_stack([((s == 1) & (t <= h)) / g, (t > h) / g])  # risk of cause 1; survival
        return v.mean(0), v, km, u

    theta, v, km, u = est(t, s, strata)
    inf = v - theta + km.correction(v, u)
    keep = np.ones(n, dtype=bool)
    pseudo = np.empty_like(inf)
    for i in range(n):
        keep[i] = False
        pseudo[i] = (n - 1) * (theta - est(t[keep], s[keep], None if strata is None else strata[keep])[0])
        keep[i] = True
    return inf, pseudo


@pytest.mark.parametrize("stratified", [False, True])
def test_correction_matches_jackknife(stratified):
    rng = np.random.default_rng(3)
    n = 80
    T = rng.exponential(10, n)
    C = rng.uniform(0, 25, n)
    t = np.round(np.minimum(T, C)) + 0.5                 # tied times, events and censorings together
    s = np.where(T <= C, rng.choice([1, 2], n), 0)
    strata = rng.integers(0, 2, n) if stratified else None
    inf, pseudo = _jackknife_check(t, s, strata, 8.0)
    km = censoring_km(t, s, strata)
    u = np.minimum(t, 8.0)
    g = km.at(u)
    v = np.column_stack([((s == 1) & (t <= 8.0)) / g, (t > 8.0) / g])
    uncorrected = v - v.mean(0)
    rms = np.sqrt(np.mean((pseudo - inf) ** 2, axis=0))
    rms_unc = np.sqrt(np.mean((pseudo - uncorrected) ** 2, axis=0))
    # pseudo-values re-estimate G: with the correction they match the IF to O(1/n) (rms 0.002 / 0.02
    # here), without it they are off by 0.03 / 0.36 (the censored subjects' terms)
    assert np.all(rms < 0.03) and np.all(rms < rms_unc / 8)
    for j in range(2):
        assert np.corrcoef(pseudo[:, j], inf[:, j])[0, 1] > 0.999
        assert np.sum(inf[:, j] ** 2) == pytest.approx(np.sum(pseudo[:, j] ** 2), rel=0.02)


def test_correction_default_u_and_vector():
    rng = np.random.default_rng(5)
    t = rng.exponential(1, 50)
    s = rng.integers(0, 3, 50)
    km = censoring_km(t, s)
    v = (s == 1) / km.g_minus
    np.testing.assert_allclose(km.correction(v), km.correction(v, t), atol=1e-14)
    np.testing.assert_allclose(km.correction(v), km.correction(v[:, None])[:, 0], atol=1e-14)
    with pytest.raises(ValueError, match="rows"):
        km.correction(v[:10])


def test_censoring_weights_match_r():
    """G per subject against R (tests/reference/binreg.json): survfit's Kaplan-Meier of the censoring
    times evaluated at min(T, t)- with stepfun (exact G(u-), tied data, overall and within 4 strata), and
    mets::binreg's weights at the events by 24 months in bmtcrr (no censoring shares an event time there,
    so mets' G(T) is G(T-))."""
    import json

    ref = json.loads((REFERENCE / "binreg.json").read_text())
    bmt = pd.read_csv(DATA / "mets_bmt.csv")
    t, s = bmt.time.to_numpy(float), bmt.cause.to_numpy()
    for key, strata in (("mets_bmt_50_tminus", None),
                        ("mets_bmt_50_strata_tminus", strata_codes(bmt, ["tcell", "platelet"])[0])):
        g = censoring_km(t, s, strata).at(np.minimum(t, 50.0))
        np.testing.assert_allclose(g, ref[key]["cens_weights"], rtol=1e-12)
    d = pd.read_csv(DATA / "bmtcrr.csv")
    t, s = d.ftime.to_numpy(float), d.Status.to_numpy()
    event = (s == 1) & (t <= 24)
    for key, strata in (("bmtcrr_24", None), ("bmtcrr_24_strataD", strata_codes(d, "D")[0])):
        km = censoring_km(t, s, strata)
        np.testing.assert_allclose(km.g_minus[event], np.asarray(ref[key]["cens_weights"])[event], rtol=1e-12)
