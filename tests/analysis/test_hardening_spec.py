"""Issue 12, spec and report hardening: spec values with their declared types and ranges (booleans are not
integers, horizons finite, synthetic n bounded), a spec that is not UTF-8, ``hostats synth`` with an absurd
n, and figures that draw data text literally (a site named ``Site $\\evil$`` is not TeX)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from typer.testing import CliRunner

import synthetic
from hostats.analysis import load_spec, run_analysis
from hostats.analysis.spec import MAX_SYNTHETIC_N, TABLES, Range
from hostats.cli import app
from hostats.errors import SpecError

EVIL = "Site $\\evil$"

SPEC = """\
[analysis]
title = "Hardening"

[data]
{data}

[outcome]
horizon_days = {horizon}

[[section]]
type = "cumulative_incidence"
by = "site"
"""


def write(folder: Path, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "analysis.toml").write_bytes(text.encode(encoding))
    return folder / "analysis.toml"


def spec_text(data: str = 'synthetic = { scenario = "tha_prophylaxis", n = 100, seed = 1 }',
              horizon: str = "365") -> str:
    return SPEC.format(data=data, horizon=horizon)


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith(needle))


# --- 1. spec values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", ["true", "false"])
def test_boolean_n_is_not_an_integer(tmp_path, n):
    text = spec_text(f'synthetic = {{ scenario = "tha_prophylaxis", n = {n}, seed = 1 }}')
    with pytest.raises(SpecError, match=rf"analysis.toml, line {line_of(text, 'synthetic')}: \[data\] synthetic: "
                       r"n must be a positive integer, got (True|False)"):
        load_spec(write(tmp_path, text))


def test_boolean_seed_and_threshold_are_not_integers(tmp_path):
    text = spec_text('synthetic = { scenario = "tha_prophylaxis", n = 10, seed = true }')
    with pytest.raises(SpecError, match="seed must be an integer"):
        load_spec(write(tmp_path / "a", text))
    text = spec_text() + "\n[report]\nsmall_cell_threshold = true\n"
    with pytest.raises(SpecError, match=r"\[report\] small_cell_threshold: must be a positive integer"):
        load_spec(write(tmp_path / "b", text))
    text = spec_text().replace('title = "Hardening"', 'title = "Hardening"\nseed = false')
    with pytest.raises(SpecError, match=r"\[analysis\] seed: must be an integer"):
        load_spec(write(tmp_path / "c", text))


@pytest.mark.parametrize("n", ["1_000_000_000_000", "100_000_000_000_000_000_000_000_000_000",
                               str(MAX_SYNTHETIC_N + 1)])
def test_absurd_synthetic_n_is_a_clear_error(tmp_path, n):
    text = spec_text(f'synthetic = {{ scenario = "tha_prophylaxis", n = {n}, seed = 1 }}')
    with pytest.raises(SpecError, match=rf"line {line_of(text, 'synthetic')}: \[data\] synthetic: n = \d+ is more "
                       r"than the at most 50,000,000 patients .*runs out of memory"):
        load_spec(write(tmp_path, text))


def test_largest_synthetic_n_is_accepted(tmp_path):
    text = spec_text(f'synthetic = {{ scenario = "tha_prophylaxis", n = {MAX_SYNTHETIC_N}, seed = 1 }}')
    assert load_spec(write(tmp_path, text)).synthetic[0]["n"] == MAX_SYNTHETIC_N


@pytest.mark.parametrize("horizon", ["inf", "+inf", "-inf", "nan", "0", "-3", "true", '"365"'])
def test_horizon_must_be_finite_positive(tmp_path, horizon):
    text = spec_text(horizon=horizon)
    with pytest.raises(SpecError, match=rf"analysis.toml, line {line_of(text, 'horizon_days')}: \[outcome\] "
                       r"horizon_days: must be a finite positive number of days"):
        load_spec(write(tmp_path, text))


def _declared_ranges() -> list[tuple[str, str, bool, Range]]:
    return [(table, k.name, k.type.startswith("integer"), k.range) for table, t in TABLES.items() for k in t.keys
            if k.range is not None]


def _edges(integer: bool, r: Range) -> tuple[list, list]:
    """Values just inside and just outside the declared range."""
    step = 1 if integer else 0.01
    inside, outside = [], []
    if r.low is not None:
        inside.append(r.low + step if r.low_open else r.low)
        outside.append(r.low if r.low_open else r.low - step)
    if r.high is not None:
        inside.append(r.high - step if r.high_open else r.high)
        outside.append(r.high if r.high_open else r.high + step)
    return ([float(v) for v in inside], [float(v) for v in outside]) if not integer else (inside, outside)


def _spec_with(table: str, key: str, value) -> str:
    if table == "synthetic":
        fields = {"scenario": '"tha_prophylaxis"', "n": "100", "seed": "1"} | {key: repr(value)}
        return spec_text("synthetic = { " + ", ".join(f"{k} = {v}" for k, v in fields.items()) + " }")
    if table == "outcome":
        return spec_text(horizon=repr(value)).replace("horizon_days = ", f"{key} = ")
    if table == "analysis":
        return spec_text().replace('title = "Hardening"', f'title = "Hardening"\n{key} = {value!r}')
    return spec_text() + f"\n[{table}]\n{key} = {value!r}\n"


def test_ranges_are_declared_for_the_bounded_keys():
    assert {(t, k) for t, k, _, _ in _declared_ranges()} >= {
        ("synthetic", "n"), ("synthetic", "seed"), ("synthetic", "fault_rate"), ("analysis", "seed"),
        ("outcome", "horizon_days"), ("report", "small_cell_threshold"), ("report", "rounding"),
        ("report", "ci_level")}
    assert TABLES["synthetic"].keys[1].range == Range(1, MAX_SYNTHETIC_N)


@pytest.mark.parametrize("table, key, integer, declared", _declared_ranges(),
                         ids=[f"{t}.{k}" for t, k, _, _ in _declared_ranges()])
def test_every_declared_range_is_what_load_spec_enforces(tmp_path, table, key, integer, declared):
    """The range the reference states is the range the parser checks, at both edges."""
    inside, outside = _edges(integer, declared)
    assert inside and outside
    for i, v in enumerate(inside):
        load_spec(write(tmp_path / f"in{i}", _spec_with(table, key, v)))
    for i, v in enumerate(outside):
        text = _spec_with(table, key, v)
        with pytest.raises(SpecError, match=rf"line \d+: \[{'data' if table == 'synthetic' else table}\] "):
            load_spec(write(tmp_path / f"out{i}", text))


def test_negative_seed_and_bad_fault_rate_are_spec_errors_not_tracebacks(tmp_path):
    text = spec_text('synthetic = { scenario = "tha_prophylaxis", n = 100, seed = -4 }')
    with pytest.raises(SpecError, match=r"\[data\] synthetic: seed must be an integer >= 0, got -4"):
        load_spec(write(tmp_path / "a", text))
    text = spec_text('synthetic = { scenario = "tha_prophylaxis", n = 100, seed = 1, fault_rate = 1.5 }')
    with pytest.raises(SpecError, match=r"fault_rate must be a number 0 to < 1, got 1.5"):
        load_spec(write(tmp_path / "b", text))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "b"), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1 and "fault_rate" in result.output and "Traceback" not in result.output


def test_derive_otherwise_must_be_finite(tmp_path):
    text = spec_text() + '\n[[derive]]\nname = "x"\nexpr = "age_years"\nwhere = "age_years > 1"\notherwise = nan\n'
    with pytest.raises(SpecError, match=r"\[\[derive\]\] #1 otherwise: must be a finite number"):
        load_spec(write(tmp_path, text))


def test_latin1_spec_is_a_clear_error(tmp_path):
    text = spec_text().replace('title = "Hardening"', 'title = "Hardening"\nquestion = "Zürich?"')
    path = write(tmp_path, text, encoding="latin-1")
    with pytest.raises(SpecError, match=rf"analysis.toml, line {line_of(text, 'question')}: not UTF-8 .*save the "
                       "spec as UTF-8"):
        load_spec(path)
    result = CliRunner().invoke(app, ["run", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1 and "not UTF-8" in result.output and "Traceback" not in result.output


# --- 3. synth and synthetic.generate with an absurd n ---------------------------------------------------


@pytest.mark.parametrize("n", ["1000000000000", "0", str(MAX_SYNTHETIC_N + 1)])
def test_synth_absurd_n_is_a_clear_error(tmp_path, n):
    result = CliRunner().invoke(app, ["synth", "tha_prophylaxis", "-n", n, "--seed", "1",
                                      "--out", str(tmp_path / "study")])
    assert result.exit_code == 1, result.output
    assert "50,000,000" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("n", [10**12, 10**29, True])
def test_generate_refuses_absurd_n(n):
    with pytest.raises(ValueError, match="n "):
        synthetic.generate("tha_prophylaxis", n, 1)


def test_spec_with_a_small_n_and_sites_without_episodes_runs(tmp_path):
    """resection_recurrence at n = 12 (seed 1) leaves 6 of its 12 sites without episodes: the run failed after
    generating, on a temporary file the user never saw ('the source has a header but no data rows (file
    /tmp/hostats-...-data-.../site_S02.csv)'); those sites now have no export and the run reads the rest."""
    text = spec_text('synthetic = { scenario = "resection_recurrence", n = 12, seed = 1 }')
    write(tmp_path, text)
    result = CliRunner().invoke(app, ["run", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "estimates.csv").exists()


FITS_83 = 600_100_000  # the memory said to be available: the fixed 0.6 GB and 83 episodes of 1,200 bytes
TOO_BIG = r"1,000 episodes need about 0.6 GB of memory to draw and write \(0.6 GB and 1,200 bytes per episode\), " \
          r"but 0.6 GB is available now: choose at most about 83 episodes here, or free memory"


def test_a_draw_beyond_the_available_memory_is_refused_before_drawing(tmp_path, monkeypatch):
    """Near MAX_N a draw needs ~60 GB and died by an out-of-memory kill, without a message. generate, hostats
    synth and a spec's [data] synthetic refuse it up front with the estimate and the memory available (here
    made small by replacing synthetic.cohort.available_memory)."""
    import synthetic.cohort

    monkeypatch.setattr(synthetic.cohort, "available_memory", lambda: FITS_83)
    with pytest.raises(ValueError, match=TOO_BIG):
        synthetic.generate("tha_prophylaxis", 1000, 1)
    result = CliRunner().invoke(app, ["synth", "tha_prophylaxis", "-n", "1000", "--seed", "1",
                                      "--out", str(tmp_path / "study")])
    assert result.exit_code == 1 and re.search(TOO_BIG, " ".join(result.output.split())), result.output
    assert "Traceback" not in result.output and not (tmp_path / "study").exists()
    text = spec_text('synthetic = { scenario = "tha_prophylaxis", n = 1000, seed = 1 }')
    write(tmp_path / "a", text)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "a"), "--out", str(tmp_path / "out"), "--quiet"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and f"line {line_of(text, 'synthetic')}: [data] synthetic: n = 1000: " in said
    assert re.search(TOO_BIG, said) and not (tmp_path / "out").exists()
    assert synthetic.generate("tha_prophylaxis", 83, 1).n == 83  # what fits is drawn


def test_memory_is_not_checked_where_the_available_memory_is_unknown(monkeypatch):
    import synthetic.cohort

    if sys.platform.startswith("linux"):
        assert synthetic.cohort.available_memory() > 0
    monkeypatch.setattr(synthetic.cohort, "available_memory", lambda: None)
    assert synthetic.cohort.memory_problem(synthetic.cohort.MAX_N) is None


def test_synthetic_bound_is_the_spec_bound():
    from synthetic.cohort import MAX_N

    assert MAX_N == MAX_SYNTHETIC_N


# --- 4. figures draw data text literally ------------------------------------------------------------------


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(plt.Text)]


def test_figures_draw_dollar_signs_literally(tmp_path):
    from hostats.report.figures import bar_plot, curve_plot, forest_plot, love_plot, save_figure

    curve = pd.DataFrame({"group": [EVIL] * 3 + ["B"] * 3, "time": [10.0, 50, 100] * 2,
                          "estimate": [0.1, 0.2, 0.3, 0.05, 0.1, 0.15], "ci_lower": [0.0] * 6,
                          "ci_upper": [0.5] * 6, "n_at_risk": [50, 40, 30] * 2})
    frame = pd.DataFrame({"label": [EVIL, "B"], "estimate": [0.2, 0.3], "ci_lower": [0.1, 0.2],
                          "ci_upper": [0.3, 0.4]})
    figs = {
        "curve": curve_plot(curve, risk_times=[0, 50, 100], title=EVIL, ylabel=EVIL),
        "forest": forest_plot(frame, log=False, title=EVIL, xlabel=EVIL),
        "love": love_plot(pd.DataFrame({"variable": [EVIL], "smd_before": [0.3], "smd_after": [0.05]}), title=EVIL),
        "bar": bar_plot(pd.DataFrame({"group": [EVIL, "B"], "estimate": [0.2, 0.3]}), x="group", title=EVIL),
    }
    for name, fig in figs.items():
        assert EVIL in _texts(fig), name
        out = save_figure(fig, tmp_path, name)  # matplotlib would raise ParseFatalException on \evil as TeX
        assert EVIL in (tmp_path / out["svg"]).read_text(encoding="utf-8"), name


def test_report_section_with_a_dollar_site(tmp_path):
    c = synthetic.generate("tha_prophylaxis", 400, 11, fault_rate=0.0)
    ep = c.episodes.copy()
    ep["site"] = ep["site"].replace({"A": EVIL})
    for col in ep.columns:
        if str(ep[col].dtype).startswith("datetime64"):
            ep[col] = ep[col].dt.strftime("%Y-%m-%d")
    folder = tmp_path / "spec"
    folder.mkdir()
    ep.to_csv(folder / "export.csv", index=False)
    text = spec_text('path = "export.csv"') + '\n[[section]]\ntype = "meta_proportions"\nby = "site"\n'
    result = run_analysis(write(folder, text), tmp_path / "out")
    html = result.report.read_text(encoding="utf-8")
    assert "cannot be estimated" not in html
    svgs = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "out" / "figures").glob("*.svg"))
    assert "Site $\\evil$" in svgs or "Site $\\\\evil$" in svgs


# --- 2. [data] paths of a spec stay inside the spec's folder unless allowed ---------------------------------


@pytest.mark.parametrize("key", ["path", "mapping", "assessments"])
def test_spec_data_paths_leaving_the_folder_are_refused(tmp_path, key):
    (tmp_path / "secret.csv").write_text("token\nhunter2\n")
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / "export.csv").write_text("patient_id\n1\n")
    data = {"path": '"export.csv"', key: '"../secret.csv"'}
    text = spec_text("\n".join(f"{k} = {v}" for k, v in data.items()))
    with pytest.raises(SpecError, match=rf"line {line_of(text, key + ' =')}: \[data\] {key}: '../secret.csv' leaves "
                       r"the spec's folder .*--allow-outside-paths"):
        run_analysis(write(folder, text), tmp_path / "out")
    result = CliRunner().invoke(app, ["run", str(folder), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1 and "leaves the spec's folder" in result.output
    assert "hunter2" not in result.output and not (tmp_path / "out").exists()


def test_spec_data_path_outside_with_the_option(tmp_path):
    c = synthetic.generate("tha_prophylaxis", 300, 11, fault_rate=0.0)
    ep = c.episodes.copy()
    for col in ep.columns:
        if str(ep[col].dtype).startswith("datetime64"):
            ep[col] = ep[col].dt.strftime("%Y-%m-%d")
    ep.to_csv(tmp_path / "export.csv", index=False)
    spec = write(tmp_path / "spec", spec_text(f'path = "{tmp_path / "export.csv"}"'))
    with pytest.raises(SpecError, match="leaves the spec's folder"):
        run_analysis(spec, tmp_path / "out")
    assert run_analysis(spec, tmp_path / "out", allow_outside=True).report.is_file()
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "out2"), "--quiet",
                                      "--allow-outside-paths"])
    assert result.exit_code == 0, result.output
