"""synthetic: API, overrides, independence from hostats, determinism, faults in the files, round trip."""
from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomllib

import synthetic
from synthetic import export
from tests.paths import ROOT

SCENARIOS = ["burn", "fracture", "neurogenic", "resection_recurrence", "tha_prophylaxis"]


def test_scenarios_listed():
    assert synthetic.scenarios() == SCENARIOS


def test_no_hostats_import():
    """synthetic/ must not import hostats (an error in a shared helper would cancel out)."""
    allowed = {"numpy", "pandas", "scipy", "tomli", "__future__"}
    for path in sorted((ROOT / "synthetic").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside synthetic
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top != "hostats", f"{path.name} imports {name}"
                import sys
                assert top in allowed or top in sys.stdlib_module_names, f"{path.name} imports {name}"


def test_every_toml_number_cites_a_rates_row():
    """Each parameter line cites a docs/rates.md row (R1-R23); only the study layout is exempt, and says so."""
    import re

    layout = {"sites", "site_shares", "index_date_start", "index_date_end"}
    for path in (ROOT / "synthetic" / "scenarios").glob("*.toml"):
        text = path.read_text(encoding="utf-8")
        params = tomllib.loads(text)["parameters"]
        for key in params:
            line = next(ln for ln in text.splitlines() if ln.startswith(f"{key} ="))
            comment = line.split("#", 1)[1] if "#" in line else ""
            if key in layout and "study layout" in comment:
                continue
            rows = [int(r) for r in re.findall(r"\bR(\d+)\b", comment)]
            assert rows and all(1 <= r <= 23 for r in rows), f"{path.name}: {key} cites no docs/rates.md row"


def test_overrides_validated():
    with pytest.raises(ValueError, match="'no_such_parameter'"):
        synthetic.generate("tha_prophylaxis", 100, 1, overrides={"no_such_parameter": 1})
    with pytest.raises(ValueError, match="'death_within_1y'"):
        synthetic.generate("tha_prophylaxis", 100, 1, overrides={"death_within_1y": 1.5})
    with pytest.raises(ValueError, match="'rr_nsaid'"):
        synthetic.generate("tha_prophylaxis", 100, 1, overrides={"rr_nsaid": "half"})
    with pytest.raises(ValueError, match="'risk_1y_by_index_event'.*'whiplash'"):
        synthetic.generate("neurogenic", 100, 1, overrides={"risk_1y_by_index_event": {"whiplash": 0.1}})
    with pytest.raises(ValueError, match="unknown scenario"):
        synthetic.generate("nope", 100, 1)
    with pytest.raises(ValueError, match="n must be"):
        synthetic.generate("burn", 0, 1)


def test_death_and_loss_switch_off():
    c = synthetic.generate("neurogenic", 5000, 2, overrides={"death_within_1y": 0, "loss_to_followup_per_year": 0})
    assert c.parameters["death_within_1y"] == {"sci": 0, "tbi": 0, "stroke": 0, "anoxia": 0}
    assert c.episodes["death_date"].isna().all()
    assert (c.episodes["last_followup_date"] - c.episodes["index_date"]).dt.days.min() >= 351
    assert c.truth["sample"]["death_within_1y"] == 0
    # without death, HO detected within the horizon is true HO
    assert (c.episodes["ho"].to_numpy() == c.latent["true_ho"].to_numpy()).all()


def test_truth_keys_and_overrides_move_the_truth():
    c = synthetic.generate("tha_prophylaxis", 2000, 3)
    t = c.truth
    for key in ("scenario", "n", "seed", "fault_rate", "horizon_days", "parameters", "population", "sample", "faults"):
        assert key in t
    for block in (t["population"], t["sample"]):
        assert set(block["risk"]) == {"none", "radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid"}
        assert set(block["contrasts"]) == {f"{a}_vs_none" for a in block["risk"] if a != "none"}
        assert {"risk_ratio", "risk_difference", "odds_ratio", "conditional_log_odds"} <= set(
            block["contrasts"]["nsaid_vs_none"])
        assert "cumulative_incidence" in block and "onset" in block
    assert t["horizon_days"] == 365
    json.dumps(t)  # serialisable
    c2 = synthetic.generate("tha_prophylaxis", 2000, 3, overrides={"rr_nsaid": 0.7})
    assert c2.truth["population"]["contrasts"]["nsaid_vs_none"]["risk_ratio"] == pytest.approx(0.7, abs=0.01)
    # the clean cohort does not depend on the fault rate
    c0 = synthetic.generate("tha_prophylaxis", 2000, 3, fault_rate=0)
    pd.testing.assert_frame_equal(c.episodes, c0.episodes)
    assert sum(c0.truth["faults"].values()) == 0 and len(c0.faults) == 0


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes(tmp_path):
    a = synthetic.generate("tha_prophylaxis", 3000, 7).write(tmp_path / "a", excel_site="C")
    b = synthetic.generate("tha_prophylaxis", 3000, 7).write(tmp_path / "b", excel_site="C")
    c = synthetic.generate("tha_prophylaxis", 3000, 8).write(tmp_path / "c", excel_site="C")
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert "site_C.xlsx" in ha and "truth.json" in ha and "export.toml" in ha
    assert ha == hb
    assert ha["site_A.csv"] != hc["site_A.csv"]


# --- faults: what truth.json counts is what the files hold ----------------------------------------------
def _rows(path: Path, dia: export.Dialect) -> tuple[list[str], list[list[str]]]:
    lines = path.read_bytes().decode(dia.encoding).split("\n")
    assert lines[-1] == ""
    header = lines[0].split(dia.delimiter)
    return header, [ln.split(dia.delimiter) for ln in lines[1:-1]]


@pytest.mark.parametrize("scenario", ["tha_prophylaxis", "resection_recurrence"])
def test_fault_counts_match_files(tmp_path, scenario):
    """Compare the faulty export with the clean export of the same seed, row by row."""
    faulty = synthetic.generate(scenario, 6000, 21, fault_rate=0.08)
    clean = synthetic.generate(scenario, 6000, 21, fault_rate=0)
    fdir, cdir = faulty.write(tmp_path / "f"), clean.write(tmp_path / "c")
    truth = json.loads((fdir / "truth.json").read_text())
    table = pd.read_csv(fdir / "faults.csv", keep_default_na=False)
    assert truth["faults"] == {k: int((table["kind"] == k).sum()) for k in export.FAULT_KINDS}
    assert all(v > 0 for k, v in truth["faults"].items() if k != "dose_wrong_unit" or scenario == "tha_prophylaxis")
    found = dict.fromkeys(export.FAULT_KINDS, 0)
    for j, site in enumerate(faulty.parameters["sites"]):
        dia = export.dialect_of(j)
        name = f"site_{site}{dia.extension}"
        header, frows = _rows(fdir / name, dia)
        _, crows = _rows(cdir / name, dia)
        col = {c: header.index(dia.names[c]) for c in dia.names if dia.names[c] in header}
        f = table[table["file"] == name].set_index("row")
        inserted = f.index[f["kind"].isin(["duplicate", "conflicting_duplicate"])]
        assert len(frows) == len(crows) + len(inserted)
        k = -1
        for r, row in enumerate(frows):  # small files; a test may loop
            if r not in f.index:
                k += 1
                assert row == crows[k], f"{name} row {r} changed without a recorded fault"
                continue
            kind, column = f.loc[r, "kind"], f.loc[r, "column"]
            if kind in ("duplicate", "conflicting_duplicate"):
                src = crows[k]
            else:
                k += 1
                src = crows[k]
            diff = [header[i] for i in range(len(row)) if row[i] != src[i]]
            if kind == "duplicate":
                assert row == frows[r - 1] == src
            elif kind == "swapped_dates":
                assert sorted(diff) == sorted([dia.names["index_date"], dia.names["last_followup_date"]])
                assert row[col["index_date"]] == src[col["last_followup_date"]]
            else:
                assert diff == [dia.names[column]], (name, r, kind, diff)
                cell = row[col[column]]
                if kind == "code_typo":
                    assert cell == src[col[column]] + src[col[column]][-1]
                elif kind == "impossible_date":
                    assert cell == "999999" or "02" in cell and cell[:2] in ("30", "31") or cell.endswith(("-30", "-31"))
                elif kind == "age_out_of_range":
                    assert not 0 <= float(cell) <= 110
                elif kind == "dose_wrong_unit":
                    ratio = float(cell) / float(src[col[column]])
                    assert ratio == pytest.approx(100 if dia.dose_unit == "Gy" else 0.01)
                elif kind == "conflicting_duplicate":
                    assert row[col["patient_id"]] == frows[r - 1][col["patient_id"]]
            found[kind] += 1
    assert found == truth["faults"]


# --- round trip through hostats.read_cohort --------------------------------------------------------------
def _compare(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    for col in expected.columns:
        a, b = expected[col], got[col]
        if a.dtype.kind == "f":
            ok = np.isclose(a.to_numpy(float), b.to_numpy(float), equal_nan=True)
        elif a.dtype.kind == "M":
            ok = (a.to_numpy() == b.to_numpy()) | (a.isna().to_numpy() & b.isna().to_numpy())
        else:
            aa = a.astype(object).where(a.notna(), None).to_numpy()
            bb = b.astype(object).where(b.notna(), None).to_numpy()
            ok = np.array([x == y for x, y in zip(aa, bb, strict=True)])
        assert ok.all(), f"{col}: {a[~ok].head(3).tolist()} != {b[~ok].head(3).tolist()}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_round_trip_clean(tmp_path, scenario):
    hostats = pytest.importorskip("hostats")
    c = synthetic.generate(scenario, 3000, 5, fault_rate=0)
    cohort = hostats.read_cohort(c.write(tmp_path))
    got = cohort.episodes.set_index("patient_id")
    exp = c.episodes.set_index("patient_id")
    assert len(got) == len(exp) and set(got.index) == set(exp.index)
    _compare(exp, got.loc[exp.index])
    assert len(cohort.assessments) == len(c.assessments)


@pytest.mark.parametrize("scenario", ["tha_prophylaxis", "neurogenic"])
def test_round_trip_with_faults(tmp_path, scenario):
    """Every row without a fault comes back exactly; read_cohort must not crash on the faults."""
    hostats = pytest.importorskip("hostats")
    c = synthetic.generate(scenario, 4000, 6, fault_rate=0.05)
    cohort = hostats.read_cohort(c.write(tmp_path, excel_site=c.parameters["sites"][2]))
    got = cohort.episodes.set_index("patient_id")
    exp = c.episodes[~c.episodes["patient_id"].isin(c.faults["patient_id"])].set_index("patient_id")
    assert set(exp.index) <= set(got.index)
    _compare(exp, got.loc[exp.index])


def test_round_trip_excel_text_codes(tmp_path):
    # A text cell 'None' (site A's code for no prophylaxis) must survive Excel like it survives CSV.
    hostats = pytest.importorskip("hostats")
    c = synthetic.generate("tha_prophylaxis", 2000, 9, fault_rate=0)
    cohort = hostats.read_cohort(c.write(tmp_path, excel_site="A"))
    _compare(c.episodes.set_index("patient_id"), cohort.episodes.set_index("patient_id").loc[c.episodes["patient_id"]])


def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from hostats.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["synth", "burn", "-n", "300", "--seed", "4", "--out", str(tmp_path / "o"),
                              "--fault-rate", "0"])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "o" / "truth.json").read_text())
    assert truth["scenario"] == "burn" and truth["n"] == 300 and truth["seed"] == 4
    assert sum(truth["faults"].values()) == 0
    assert (tmp_path / "o" / "export.toml").exists()
    res = runner.invoke(app, ["synth", "nope", "--seed", "1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "unknown scenario" in res.output


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_tiny_draws_write_strict_json(tmp_path, scenario):
    """n = 3: undefined sample ratios are NaN in memory and null in truth.json, never a crash or NaN text."""
    c = synthetic.generate(scenario, 3, 1)
    folder = c.write(tmp_path)
    json.loads((folder / "truth.json").read_text(), parse_constant=lambda tok: pytest.fail(f"{tok} in truth.json"))
    assert len(c.episodes) == 3


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sites_without_episodes_have_no_export(tmp_path, scenario):
    """A small n leaves sites without episodes (resection_recurrence: 12 sites, the smallest 4%): they get no
    file and no export.toml entry (a header-only file was an export hostats refuses, so the folder of
    ``hostats synth -n 10`` or of a spec's small n could not be read); truth.json still has every site."""
    hostats = pytest.importorskip("hostats")
    c = synthetic.generate(scenario, 2, 1)
    drawn = set(c.episodes["site"])
    empty = [s for s in c.parameters["sites"] if s not in drawn]
    assert empty  # 2 episodes, at least 3 sites
    folder = c.write(tmp_path)
    listed = tomllib.loads((folder / "export.toml").read_text(encoding="utf-8"))["episodes"]
    assert sorted(e["site"] for e in listed) == sorted(drawn)
    assert not [p.name for p in folder.glob("site_*") if p.name.split(".")[0][5:] in empty]
    assert f"no export: site(s) {', '.join(empty)}" in (folder / "export.toml").read_text(encoding="utf-8")
    assert len(hostats.read_cohort(folder).episodes) == 2
    if "sites" in c.truth:
        assert {s: c.truth["sites"][s]["n"] for s in empty} == dict.fromkeys(empty, 0)
    with pytest.raises(ValueError, match=f"excel_site '{empty[0]}' drew no episodes"):
        c.write(tmp_path / "x", excel_site=empty[0])
    assert not (tmp_path / "x").exists()


def test_an_excel_site_beyond_the_sheet_rows_is_refused_before_writing(tmp_path, monkeypatch):
    """openpyxl failed on row 1,048,577 after pandas had spent half a minute on the sheet, leaving the other
    sites written and a .tmp.xlsx behind; the site's file rows (inserted duplicates included) are counted first."""
    c = synthetic.generate("tha_prophylaxis", 200, 1)
    rows = int((c.episodes["site"] == "A").sum() + (c.faults["inserted"] & (c.faults["site"] == "A")).sum())
    monkeypatch.setattr(export, "EXCEL_MAX_ROWS", rows + 1)  # the header and the rows fit
    assert (c.write(tmp_path / "fits", excel_site="A") / "site_A.xlsx").exists()
    monkeypatch.setattr(export, "EXCEL_MAX_ROWS", rows)
    with pytest.raises(ValueError, match=rf"excel_site 'A': its export would have {rows} rows, more than the "
                                         rf"{rows - 1} an Excel sheet holds"):
        c.write(tmp_path / "over", excel_site="A")
    assert not (tmp_path / "over").exists()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_complete_follow_up_measures_the_truth_exactly(scenario):
    """With no loss to follow-up, (ho and ho_date - index_date <= 365) in the data IS the sample truth."""
    c = synthetic.generate(scenario, 20_000, 8, fault_rate=0, overrides={"loss_to_followup_per_year": 0})
    ep = c.episodes
    y = (ep["ho"] & ((ep["ho_date"] - ep["index_date"]).dt.days <= 365)).to_numpy()
    s = c.truth["sample"]
    assert y.mean() == pytest.approx(s["cumulative_incidence"], abs=1e-12)
    assert ep.loc[y, "symptomatic"].mean() == pytest.approx(s["symptomatic_share_among_detected"], abs=1e-12)
    if "prophylaxis" in ep or "adjuvant" in ep:
        arm = ep["prophylaxis" if "prophylaxis" in ep else "adjuvant"].to_numpy()
        for a in s["risk"]:  # the potential outcome under the arm actually received is the observed one
            m = arm == a
            assert (c.latent.loc[m, f"detected_{a}"].to_numpy() == y[m]).all()
    # deaths recorded as such, and never after an HO date
    died = ep["death_date"].notna()
    assert (ep.loc[died & ep["ho"], "ho_date"] < ep.loc[died & ep["ho"], "death_date"]).all()


def _aj_at_365(ep: pd.DataFrame) -> tuple[float, float]:
    """Aalen-Johansen CIF of HO at day 365, death competing (statsmodels CumIncidenceRight, independent of
    hostats), on time/status derived as docs/design.md says: HO date, else death date, else last follow-up."""
    from statsmodels.duration.survfunc import CumIncidenceRight

    end = ep["ho_date"].where(ep["ho"], ep["death_date"].fillna(ep["last_followup_date"]))
    time = (end - ep["index_date"]).dt.days.to_numpy(float)
    status = np.where(ep["ho"], 1, np.where(ep["death_date"].notna(), 2, 0))
    cif = CumIncidenceRight(time, status)
    j = np.searchsorted(cif.times, 365, side="right") - 1
    return float(cif.cinc[0][j]), float(cif.cinc_se[0][j])


@pytest.mark.parametrize("scenario", ["tha_prophylaxis", "neurogenic"])
def test_aalen_johansen_at_the_horizon_is_unbiased(scenario):
    """A standard competing-risks analysis read at 365 days estimates truth['cumulative_incidence'].

    Follow-up runs past the 12-month x-ray (dgp docstring), so only independent loss to follow-up censors
    before the horizon. The sample truth is this draw's own potential outcome, so AJ - truth varies only
    through censoring: its SD was 0.17 AJ SE over 12 seeds (10% loss a year), so 1 SE is about 6 SDs.
    When the 12-month x-ray also ends follow-up (final_contact_after_visit_days = [0, 0], the earlier
    generator) the censoring in days 351-365 is informative and AJ overstates the truth by 6-8% relative
    (3.4 SE for neurogenic and 5.4 SE for tha_prophylaxis at this n, mean of 12 seeds): the check fails.
    """
    c = synthetic.generate(scenario, 30_000, 17, fault_rate=0)
    ep = c.episodes
    censored = ep["death_date"].isna() & ~ep["ho"]
    fu = (ep["last_followup_date"] - ep["index_date"]).dt.days
    lost = c.latent["ltfu_day"].to_numpy() <= fu.to_numpy()
    assert fu[censored & ~lost].min() > 365  # the schedule never censors before the horizon
    truth = c.truth["sample"]["cumulative_incidence"]
    est, se = _aj_at_365(ep)
    assert abs(est - truth) < se, (est, truth, se)

    old = synthetic.generate(scenario, 30_000, 17, fault_rate=0,
                             overrides={"final_contact_after_visit_days": [0, 0]})
    est_old, se_old = _aj_at_365(old.episodes)
    truth_old = old.truth["sample"]["cumulative_incidence"]
    assert est_old - truth_old > 2 * se_old  # the artefact the follow-up after the 12-month x-ray removes
    assert est_old / truth_old - 1 > 0.03


def test_population_truth_is_the_expected_detection():
    """The population truth averages p * exp(-lambda D) (each patient's probability of HO detected before
    death) instead of the 0/1 outcome: same expectation, far smaller Monte-Carlo error. On a draw with
    high mortality (where dropping the survival factor moves the risk by about 10 SE) both agree
    within 3 binomial SE, for every arm's risk and the cumulative incidence; the expected version
    is the same number on two draws (within 0.001, about 1 binomial SE of their difference)."""
    from synthetic import cohort as C
    from synthetic.models import MODELS

    name, over = "neurogenic", {"death_within_1y": 0.30}
    P = C.params.resolve(name, over)
    key = C.params.cache_key(name, P)
    C._OVERRIDES_BY_KEY[key] = over
    model, coefs = MODELS[name], C._calibrated(name, key)
    values = []
    for seed in (1, 2):
        d = C._draw(model, P, coefs, np.random.default_rng(seed), 300_000)
        rb = C._truth_block(model, P, coefs, d, expected=True)
        ind = C._truth_block(model, P, coefs, d)
        for a, r in rb["risk"].items():
            assert abs(r - ind["risk"][a]) < 3 * np.sqrt(r * (1 - r) / 300_000), (a, r, ind["risk"][a])
        ci = rb["cumulative_incidence"]
        assert abs(ci - ind["cumulative_incidence"]) < 3 * np.sqrt(ci * (1 - ci) / 300_000)
        values.append(ci)
    assert abs(values[0] - values[1]) < 0.001


def test_untreated_stratum_truth_is_what_a_crude_look_at_the_untreated_estimates():
    """risk_(no_)prior_ho_among_untreated: the risk among patients actually given no prophylaxis, whom
    clinicians pick as lower-risk (R10), so it sits below the all-patient untreated risk. Checked against
    the empirical 1-year proportion among the untreated of a draw without loss to follow-up (3 SE)."""
    s = synthetic.generate("tha_prophylaxis", 60_000, 3, fault_rate=0.0,
                           overrides={"loss_to_followup_per_year": 0})
    e, p = s.episodes, s.truth["population"]
    y = e["ho"].astype(bool) & ((e["ho_date"] - e["index_date"]).dt.days <= 365)
    none = e["prophylaxis"] == "none"
    for flag, key in ((True, "risk_prior_ho_among_untreated"), (False, "risk_no_prior_ho_among_untreated")):
        sel = none & (e["prior_ho"] == flag)
        obs, truth = y[sel].mean(), p[key]
        assert abs(obs - truth) < 3 * np.sqrt(truth * (1 - truth) / sel.sum()), (key, obs, truth)
    assert p["risk_no_prior_ho_among_untreated"] < p["risk_untreated_no_prior_ho"]
