"""The command line's manners: --version, -h on every command, bundled analyses found by name and shipped in
the wheel, --only with an unknown name an error, warnings one line each, simulate's --n and --reps bounded."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from typer.testing import CliRunner

import hostats
from hostats.analysis.bundled import bundled_analyses, bundled_names, find_analysis
from hostats.analysis.spec import MAX_SYNTHETIC_N
from hostats.cli import app, one_line_warnings
from tests.paths import ROOT

runner = CliRunner()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0
    assert r.output.strip() == f"hostats {hostats.__version__}"


@pytest.mark.parametrize("command", [[], ["run"], ["reproduce"], ["validate"], ["synth"], ["simulate"], ["init"]])
def test_short_help_everywhere(command):
    r = runner.invoke(app, [*command, "-h"])
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output


def test_bundled_analyses_are_the_checkouts_in_a_checkout():
    assert bundled_analyses() == ROOT / "analyses"
    assert set(bundled_names()) == {"tha_incidence", "prophylaxis", "neurogenic", "resection_recurrence"}
    assert find_analysis("prophylaxis") == ROOT / "analyses" / "prophylaxis" / "analysis.toml"
    for bad in ("../analyses/prophylaxis", "", "..", "nope"):
        assert find_analysis(bad) is None


def test_reproduce_only_unknown_is_an_error_naming_the_analyses(tmp_path):
    r = runner.invoke(app, ["reproduce", "--only", "prophylaxsis", "--out", str(tmp_path / "rep"), "-q"])
    assert r.exit_code == 1
    assert "did you mean 'prophylaxis'" in r.output
    for name in ("tha_incidence", "prophylaxis", "neurogenic", "resection_recurrence"):
        assert name in r.output
    assert not (tmp_path / "rep").exists()  # nothing ran


@pytest.mark.parametrize("error", [hostats.HostatsError, RuntimeError])
def test_reproduce_failure_lines_are_terminal_safe(tmp_path, monkeypatch, error):
    """A failing analysis's message (an error, or an internal error) is printed with its control characters
    made visible: text from data or from someone else's spec cannot move the cursor or retitle the terminal
    through reproduce's failure line."""
    import shutil

    import hostats.cli

    def failing(*args, **kwargs):
        raise error("cell \x1b]0;pwned\x07 here")

    monkeypatch.setattr(hostats.cli, "_run_one", failing)
    shutil.copytree(find_analysis("tha_incidence").parent, tmp_path / "a" / "tha_incidence")
    r = runner.invoke(app, ["reproduce", "--analyses", str(tmp_path / "a"), "--out", str(tmp_path / "rep"),
                            "-q"])
    assert r.exit_code == 1 and "failed:" in r.output and "pwned" in r.output
    assert "\x1b" not in r.output and "\x07" not in r.output
    assert "\\x1b]0;pwned\\x07" in r.output


def test_a_bad_source_date_epoch_is_one_line_before_anything_runs(tmp_path):
    """SOURCE_DATE_EPOCH dates the Word and Excel tables; "x" broke numpy's f2py (imported by scipy) with a
    traceback, so the command line says what is wrong before it starts."""
    r = runner.invoke(app, ["reproduce", "--only", "tha_incidence", "--out", str(tmp_path / "rep"), "-q"],
                      env={"SOURCE_DATE_EPOCH": "x"})
    assert r.exit_code == 1
    assert "environment variable SOURCE_DATE_EPOCH='x': not a time" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "rep").exists()  # nothing ran


def test_run_unknown_name_suggests(tmp_path):
    r = runner.invoke(app, ["run", "tha_incidense", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1
    assert "did you mean 'tha_incidence'" in r.output
    assert "Traceback" not in r.output


def test_warnings_one_line_each(capsys):
    with one_line_warnings():
        for _ in range(3):
            warnings.warn("positivity: 4 patient(s) have a propensity\n   below 0.01", UserWarning, stacklevel=1)
        warnings.warn("a second one", RuntimeWarning, stacklevel=1)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == ["warning: positivity: 4 patient(s) have a propensity below 0.01", "warning: a second one"]
    assert "test_cli.py" not in err  # no file name, line number or source line


def test_wheel_build_ships_the_analyses(tmp_path):
    """setup.py's build step copies every analyses/*/analysis.toml (and study.py) into the package."""
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    shipped = tmp_path / "hostats" / "bundled_analyses"
    for spec in (ROOT / "analyses").glob("*/analysis.toml"):
        copy = shipped / spec.parent.name / "analysis.toml"
        assert copy.read_bytes() == spec.read_bytes()
    assert (shipped / "simulation_study" / "study.py").is_file()
    assert find_analysis("prophylaxis", shipped) == shipped / "prophylaxis" / "analysis.toml"


def test_spec_typo_is_found_before_any_data_are_generated(tmp_path, monkeypatch):
    """A wrong column in a bundled spec (5,000 synthetic patients) is an error at its line before any cohort
    is drawn (it used to come after drawing and cleaning, 19 s in)."""
    import synthetic

    def no_draw(*args, **kwargs):
        raise AssertionError("a cohort was drawn before the spec was checked")

    monkeypatch.setattr(synthetic, "generate", no_draw)
    text = (ROOT / "analyses" / "prophylaxis" / "analysis.toml").read_text(encoding="utf-8")
    bad = text.replace('subset = "prophylaxis == \'radiotherapy\'"\nby = "rt_timing"',
                       'subset = "prophylaxis == \'radiotherapy\'"\nby = "rt_timimg"')
    assert bad != text
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "analysis.toml").write_text(bad, encoding="utf-8")
    r = runner.invoke(app, ["run", str(tmp_path / "p"), "--out", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 1
    line = next(i for i, ln in enumerate(bad.splitlines(), 1) if ln == 'by = "rt_timimg"')
    assert f"analysis.toml, line {line}" in r.output
    assert "did you mean 'rt_timing'?" in r.output
    assert not (tmp_path / "out").exists()


def test_error_line_skips_multiline_strings(tmp_path):
    from hostats.analysis.spec import _locate

    text = '[analysis]\ntitle = "x"\nquestion = """why\n[data]\npath = 1\n"""\n[data]\npath = "a.csv"\n'
    assert _locate(text, "data", "path") == 8
    assert _locate(text, "data") == 7


# --- issue 12: simulate --n and --reps bounded (the spec's synthetic n bound; simstudy.MAX_REPS) ----------

SIMULATE_BAD = [
    (["--n", "1000000000000"], "--n 1000000000000: the number of episodes must be from 1 to 50,000,000"),
    (["--n", str(MAX_SYNTHETIC_N + 1)], "must be from 1 to 50,000,000"),
    (["--n", "-5"], "--n -5: the number of episodes must be from 1"),
    (["--n", "0"], "--n 0: the number of episodes must be from 1"),
    (["--reps", "1000000000000"], "reps must be an integer from 1 to 100,000, got 1000000000000"),
    (["--reps", "0"], "reps must be an integer from 1 to 100,000, got 0"),
    (["--reps", "-3"], "reps must be an integer from 1 to 100,000, got -3"),
]


@pytest.mark.parametrize("args, says", SIMULATE_BAD)
def test_simulate_absurd_n_or_reps_is_a_one_line_error(tmp_path, args, says):
    """Checked before the study is built or its folder made (--n 10**12 ran out of memory; --reps 10**12 did)."""
    base = {"--reps": "2"} | dict(zip(args[::2], args[1::2], strict=True))
    argv = ["simulate", "tha_prophylaxis", *(x for kv in base.items() for x in kv), "-q", "-o", str(tmp_path / "s")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert result.output.strip().startswith("error:") and says in " ".join(result.output.split())
    assert "Traceback" not in result.output and not isinstance(result.exception, MemoryError)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("n, says", [
    (1_666_667, "--n 1666667: study 'resection_recurrence' takes from 50 to 1,666,666 patients per site (its "
                "largest replicate draws 30 sites of n patients, and a synthetic cohort has at most 50,000,000)"),
    (50_000_000, "--n 50000000: study 'resection_recurrence' takes from 50 to 1,666,666 patients per site"),
    (10, "--n 10: study 'resection_recurrence' takes from 50 to 1,666,666 patients per site"),
])
def test_simulate_resection_per_site_n_is_bounded_up_front(tmp_path, monkeypatch, n, says):
    """resection_recurrence's --n is per site and a replicate draws 30 sites of it: --n 2,000,000 passed the
    synthetic bound and failed inside synthetic.generate (n = 60,000,000) after the 5- and 10-site draws of the
    first replicate and after study.json was written (--n 1,666,667: the draws ran out of memory)."""
    import synthetic

    # nothing may be drawn before the check (were the check lost, the test must not draw 50 million episodes)
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("synthetic.generate ran"))
    argv = ["simulate", "resection_recurrence", "--reps", "1", "--n", str(n), "-q", "-o", str(tmp_path / "s")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert result.output.strip().startswith("error:") and says in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "s").exists()


def test_simulation_studies_take_n_within_the_synthetic_bound():
    from hostats import simstudy
    from synthetic.cohort import MAX_N

    module = simstudy.load_module(ROOT / "analyses" / "simulation_study" / "study.py")
    assert module.n_problem("resection_recurrence", MAX_N // 30) is None
    assert module.n_problem("tha_prophylaxis", MAX_N) is None and module.n_problem("tha_prophylaxis", MAX_N + 1)
    with pytest.raises(ValueError, match="n = 1,666,667: study 'resection_recurrence' takes from 50 to 1,666,666"):
        module.build("resection_recurrence", MAX_N // 30 + 1)
    with pytest.raises(ValueError, match="n = 49: study 'neurogenic' takes from 50 to 50,000,000 patients per "
                                         "replicate"):
        module.build("neurogenic", 49)


def test_synth_small_n_leaves_sites_without_an_export_and_a_readable_folder(tmp_path):
    """resection_recurrence has 12 sites (the smallest 4%): at -n 10 seven drew no episodes, their header-only
    files made the folder unreadable ('the source has a header but no data rows'); now they have no file."""
    import json

    folder = tmp_path / "study"
    result = runner.invoke(app, ["synth", "resection_recurrence", "-n", "10", "--seed", "1", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert "no episodes, so no export, at site(s) S05, S06, S07, S09, S10, S11, S12" in " ".join(result.output.split())
    assert {p.name.split(".")[0] for p in folder.glob("site_*")} == {f"site_S0{i}" for i in (1, 2, 3, 4, 8)}
    result = runner.invoke(app, ["validate", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["usable"] is True and summary["rows_read"] == summary["rows_kept"] == 10
    result = runner.invoke(app, ["synth", "resection_recurrence", "-n", "10", "--seed", "1", "--excel-site", "S12",
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "excel_site 'S12' drew no episodes (n = 10)" in result.output
    assert not (tmp_path / "x").exists()


def test_simstudy_refuses_reps_beyond_the_bound():
    from hostats import simstudy

    study = simstudy.load_module(ROOT / "analyses" / "simulation_study" / "study.py").build("tha_prophylaxis", 50)
    for reps in (0, simstudy.MAX_REPS + 1, True):
        with pytest.raises(ValueError, match="reps must be an integer from 1 to 100,000"):
            simstudy.run_study(study, reps, 1)


# --- help texts are rich markup: a literal [word] must be escaped or rich eats it ('point its  at') --------


def _help_texts():
    import inspect

    import typer.main

    group = typer.main.get_command(app)
    yield "hostats", None, group.help
    for name, command in group.commands.items():
        yield name, None, inspect.cleandoc(command.help or "")
        for p in command.params:
            if getattr(p, "help", None):
                yield name, p.name, p.help


HELP_TEXTS = list(_help_texts())


def test_every_help_text_survives_rich_markup():
    from rich.text import Text

    assert len(HELP_TEXTS) > 40
    eaten = [(name, param, text) for name, param, text in HELP_TEXTS
             if Text.from_markup(text).plain != text.replace("\\[", "[")]
    assert eaten == [], "write a literal [word] as \\[word] in a help text"


@pytest.mark.parametrize("name", sorted({n for n, _, _ in HELP_TEXTS if n != "hostats"}))
def test_help_output_shows_every_word_of_the_help_texts(name):
    r = runner.invoke(app, [name, "--help"], env={"COLUMNS": "100"}, terminal_width=100)
    assert r.exit_code == 0, r.output
    shown = " ".join(r.output.replace("│", " ").split())
    for command, _, text in HELP_TEXTS:
        if command == name:
            assert " ".join(text.replace("\\[", "[").split()) in shown, text
    if name in ("init", "run"):
        assert "[data]" in shown
