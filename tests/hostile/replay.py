"""Replay one case of the hostile-input corpus through the command line, as a user would meet it.

Shared by tests/test_hostile_corpus.py and the fuzz target: copies the case's files to a scratch folder,
runs ``hostats validate --json`` (a file, a study folder or a database), ``hostats run`` (a spec) or the
arguments in ``command.txt`` (cli_* cases), and returns what came out.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from hostats.cli import app

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = Path(__file__).resolve().parent / "cases.toml"


@dataclass
class Outcome:
    code: int
    output: str
    exception: BaseException | None
    summary: dict | None  # the parsed --json summary of validate, when there is one


def command(case: str, folder: Path, query: str | None = None) -> list[str]:
    files = sorted(p.name for p in folder.iterdir())
    if case.startswith("cli_"):  # the arguments themselves are the hostile input
        text = (folder / "command.txt").read_text(encoding="utf-8")
        return [a.replace("{folder}", str(folder)) for a in text.splitlines()]
    if case.startswith("spec_"):
        return ["run", str(folder), "-o", str(folder.parent / f"{case}-report"), "-q"]
    if case.startswith("sql_"):
        return ["validate", f"sqlite:///{folder / 'cohort.db'}", "--query", query or "", "--json"]
    if "export.toml" in files:
        return ["validate", str(folder), "--json"]
    return ["validate", str(folder / files[0]), "--json"]


def replay(case: str, scratch: Path, query: str | None = None, env: dict[str, str] | None = None) -> Outcome:
    """``env``: environment variables the case sets for its command (e.g. a lower bound of a SQL read)."""
    folder = scratch / case
    shutil.copytree(CORPUS / case, folder)
    args = command(case, folder, query)
    result = CliRunner().invoke(app, args, env=env)
    summary = None
    if "--json" in args:
        try:
            summary = json.loads(result.output)
        except ValueError:
            summary = None
    return Outcome(result.exit_code, result.output, result.exception, summary)
