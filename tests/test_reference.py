"""The R reference values in tests/reference/ stay traceable: no orphan JSON, no orphan script.

Every ``X.json`` is printed by its ``X.R`` (the script names the file it writes), records the R version it
was made with, is listed in tests/reference/README.md, and is read by at least one test module; every
``X.R`` has its ``X.json``. A reference value that no test reads, or a test value whose script is gone,
fails here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.paths import REFERENCE, TESTS

JSONS = sorted(REFERENCE.glob("*.json"))
SCRIPTS = sorted(REFERENCE.glob("*.R"))


def _test_sources() -> dict[Path, str]:
    """Every test module's text except this one (which names no reference file)."""
    here = Path(__file__).resolve()
    return {p: p.read_text(encoding="utf-8") for p in TESTS.rglob("*.py") if p.resolve() != here}


def _r_versions(value: object, depth: int = 0) -> list[str]:
    """Strings that record an R version ("R version 4.2.2 ..."), at the top level or one level down."""
    if isinstance(value, str):
        return [value] if value.startswith("R version ") else []
    if isinstance(value, dict) and depth < 2:
        return [v for item in value.values() for v in _r_versions(item, depth + 1)]
    return []


def test_the_folder_holds_references():
    assert JSONS and SCRIPTS


@pytest.mark.parametrize("path", JSONS, ids=lambda p: p.name)
def test_every_json_has_its_r_script_which_writes_it(path):
    script = path.with_suffix(".R")
    assert script.is_file(), f"{path.name} has no {script.name}: which R code made these values?"
    assert f"tests/reference/{path.name}" in script.read_text(encoding="utf-8"), (
        f"{script.name} does not write tests/reference/{path.name}")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_r_script_has_its_json_and_a_readme_line(path):
    assert path.with_suffix(".json").is_file(), f"{path.name} has no stored output {path.stem}.json"
    readme = (REFERENCE / "README.md").read_text(encoding="utf-8")
    assert f"`{path.name}`" in readme, f"tests/reference/README.md does not describe {path.name}"


@pytest.mark.parametrize("path", JSONS, ids=lambda p: p.name)
def test_every_json_records_the_r_version(path):
    versions = _r_versions(json.loads(path.read_text(encoding="utf-8")))
    assert versions, f"{path.name} records no R version (R.version.string)"


@pytest.mark.parametrize("path", JSONS, ids=lambda p: p.name)
def test_every_json_is_read_by_a_test(path):
    readers = [p for p, text in _test_sources().items() if path.name in text]
    assert readers, f"no test module reads tests/reference/{path.name}: an orphan reference"
