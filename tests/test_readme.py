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
