"""The README's Python examples run as written (from a clone's root), so a user's first steps never fail."""
from __future__ import annotations

import re

import pytest

from tests.paths import ROOT


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples():
    assert len(readme_python_blocks()) >= 4


@pytest.mark.filterwarnings("ignore")
def test_readme_python_examples_run(tmp_path, monkeypatch):
    # the examples use paths relative to the repository root and write a study folder: run them in a
    # scratch folder that sees the repository's data read-only
    for rel in ("hostats/data", "tests/data"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).symlink_to(ROOT / rel, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(readme_python_blocks(), start=1):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # noqa: S102
    # the tour's objects are what the comments say they are
    assert namespace["c"].episodes.shape[0] == 57
    assert {"estimate", "ci_lower", "ci_upper"} <= set(namespace["res"].table().columns)
    assert (tmp_path / "study" / "export.toml").is_file()
    # the Firth example's claim: none of the patients with prior HO has HO in this export (separation)
    ep = namespace["c"].episodes
    prior = ep["prior_ho"].astype("boolean").fillna(False).to_numpy(bool)
    assert prior.sum() >= 3 and int(ep.loc[prior, "ho"].astype(bool).sum()) == 0


def test_readme_own_export_walkthrough_runs(tmp_path, monkeypatch):
    """'Run an analysis on your own export': the commands run as written (from a clone's root) and give a
    report in which only the parts the example export cannot feed are 'not run'."""
    import shlex

    from typer.testing import CliRunner

    from hostats.cli import app

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("#### Run an analysis on your own export", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = [shlex.split(c) for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    assert [c[:2] for c in commands] == [["hostats", "init"], ["hostats", "run"]]
    (tmp_path / "hostats").mkdir()
    (tmp_path / "hostats" / "data").symlink_to(ROOT / "hostats" / "data", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        r = CliRunner().invoke(app, argv[1:])
        assert r.exit_code == 0, (argv, r.output)
    html = (tmp_path / "reports" / "my_study" / "report.html").read_text(encoding="utf-8")
    assert html.count("not run (the data have no column &#39;rt_timing&#39;)") == 2
    assert "Effect of prophylaxis on 1-year HO risk" in html
    spec = (tmp_path / "my_study" / "analysis.toml").read_text(encoding="utf-8")
    assert 'path = "example_cohort.csv"' in spec and "synthetic" not in spec.split("[data]")[1].split("[[")[0]
