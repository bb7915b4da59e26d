"""The spec reference (docs/spec-reference.md) is generated from the one declaration of the spec's keys in
hostats/analysis/spec.py, and that declaration matches the section registry: neither can drift."""
from __future__ import annotations

from hostats.analysis import SECTIONS
from hostats.analysis.spec import (
    _COMMON_SECTION_KEYS,
    _KEYS,
    _SECTION_KEYS,
    COMMON_SECTION_KEYS,
    MAX_SYNTHETIC_N,
    SECTION_TYPES,
    TABLES,
    spec_reference,
)
from tests.paths import ROOT


def test_committed_reference_is_what_the_declaration_generates():
    committed = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    assert committed == spec_reference(), "regenerate it: python -m hostats.analysis"


def test_every_declared_section_type_is_registered_and_back():
    assert set(SECTION_TYPES) == set(SECTIONS)


def test_every_key_is_declared_once_with_a_description():
    for table in [*TABLES.values(), *SECTION_TYPES.values()]:
        names = [k.name for k in table.keys]
        assert len(names) == len(set(names)), table.header
        assert all(k.type and k.default and k.description for k in table.keys), table.header
    for table in SECTION_TYPES.values():  # the common keys are declared once, for every section
        assert not {k.name for k in table.keys} & _COMMON_SECTION_KEYS, table.header
    assert {k.name for k in COMMON_SECTION_KEYS} == _COMMON_SECTION_KEYS


def test_reference_lists_every_allowed_key():
    text = spec_reference()
    for allowed in [*_KEYS.values(), *_SECTION_KEYS.values(), _COMMON_SECTION_KEYS]:
        for key in allowed:
            assert f"| `{key}` |" in text, key
    for t in SECTION_TYPES:
        assert f'type = "{t}"' in text


def test_reference_states_every_enforced_range_on_its_key_row():
    text = spec_reference()
    ranged = [(t, k) for t in [*TABLES.values(), *SECTION_TYPES.values()] for k in t.keys if k.range is not None]
    assert len(ranged) >= 8
    for table, key in ranged:
        section = text.split(f"`{table.header}`", 1)[1]
        row = next(line for line in section.splitlines() if line.startswith(f"| `{key.name}` |"))
        assert row.endswith(f"Allowed: {key.range.text()}. |"), (table.header, row)
    committed = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    assert f"Allowed: 1 to {MAX_SYNTHETIC_N:,}." in committed and "Allowed: 0.5 to < 1." in committed


def test_reference_states_every_declared_choice_and_example_on_its_key_row():
    from hostats.sources import KINDS

    text = spec_reference()
    keyed = [(t, k) for t in [*TABLES.values(), *SECTION_TYPES.values()] for k in t.keys
             if k.choices is not None or k.example is not None]
    assert {k.name for _, k in keyed} >= {"kind", "dictionary"}
    for table, key in keyed:
        section = text.split(f"`{table.header}`", 1)[1]
        row = next(line for line in section.splitlines() if line.startswith(f"| `{key.name}` |"))
        if key.choices is not None:
            assert "Allowed: " + ", ".join(f'"{c}"' for c in key.choices) + "." in row, row
        if key.example is not None:
            assert row.endswith(f"Example: `{key.example}`. |"), row
    # [data] kind allows what read_cohort reads, no more and no less
    assert next(k for k in TABLES["data"].keys if k.name == "kind").choices == KINDS


def test_reference_states_which_keys_a_structured_source_refuses():
    """[data] sheet, table and query are refused with a REDCap export or an OMOP CDM: the keys the parser
    refuses are read_cohort's read options (hostats.sources.READ_OPTIONS, refused by read_cohort too), for
    every kind, and the committed reference says so on each key's row."""
    from hostats.sources import KINDS, READ_OPTIONS

    refused = {k.name: k.refused_with for t in [*TABLES.values(), *SECTION_TYPES.values()] for k in t.keys
               if k.refused_with}
    assert refused == dict.fromkeys(READ_OPTIONS, KINDS)
    data = spec_reference().split("`[data]`", 1)[1].split("## ", 1)[0]
    committed = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    for key in READ_OPTIONS:
        row = next(line for line in data.splitlines() if line.startswith(f"| `{key}` |"))
        assert 'Refused with `kind` "redcap" or "omop"' in row and row in committed, row


def test_the_module_prints_its_usage_for_help_and_writes_no_file(tmp_path):
    """``python -m hostats.analysis --help`` wrote a file named "--help" (its first argument was the path)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "200"}     # argparse wraps the help to the terminal's width
    run = subprocess.run([sys.executable, "-m", "hostats.analysis", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, check=False, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: python -m hostats.analysis [-h] [path]")
    assert "default: docs/spec-reference.md" in run.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_module_refuses_an_unknown_option_and_writes_the_path_given(tmp_path, monkeypatch, capsys):
    import pytest

    from hostats.analysis.__main__ import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["--frobnicate"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main([]) == 0          # the default path, under the working directory
    assert (tmp_path / "docs" / "spec-reference.md").read_text(encoding="utf-8") == spec_reference()
    assert main(["out/ref.md"]) == 0
    assert (tmp_path / "out" / "ref.md").read_text(encoding="utf-8") == spec_reference()
    with pytest.raises(SystemExit) as exit_:   # a folder is not a file: said, not a traceback
        main(["out"])
    assert exit_.value.code == 2
    assert "cannot write out: Is a directory" in capsys.readouterr().err
