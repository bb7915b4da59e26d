"""The documents in docs/ stay true to the code: every rate row the generator cites exists in docs/rates.md,
and every module docs/design.md names exists."""
from __future__ import annotations

import re

import pytest

from tests.paths import ROOT

RATES = ROOT / "docs" / "rates.md"
DESIGN = ROOT / "docs" / "design.md"


def rate_rows() -> set[str]:
    return set(re.findall(r"^\| (R\d+) \|", RATES.read_text(encoding="utf-8"), flags=re.M))


def test_rates_table_is_complete_and_numbered_in_order():
    rows = sorted(rate_rows(), key=lambda r: int(r[1:]))
    assert rows == [f"R{i}" for i in range(1, len(rows) + 1)] and len(rows) >= 20


@pytest.mark.parametrize("path", sorted((ROOT / "synthetic" / "scenarios").glob("*.toml")), ids=lambda p: p.name)
def test_every_rate_a_scenario_cites_is_a_row_of_rates_md(path):
    cited = set(re.findall(r"\bR\d{1,2}\b", path.read_text(encoding="utf-8")))
    assert cited, f"{path.name} cites no rate row"
    assert cited <= rate_rows(), sorted(cited - rate_rows())


def test_design_names_only_modules_that_exist():
    text = DESIGN.read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:hostats|synthetic|tests|docs)/[\w/.-]+)`", text))
    assert paths, "design.md names no module"
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
    for name in re.findall(r"`hostats\.(\w+)`", text):
        assert (ROOT / "hostats" / f"{name}.py").exists() or (ROOT / "hostats" / name).is_dir() \
            or name == "__all__", name


def test_design_lists_the_whole_public_api():
    import hostats

    text = DESIGN.read_text(encoding="utf-8")
    assert sorted(n for n in hostats.__all__ if f"`{n}`" not in text) == []
