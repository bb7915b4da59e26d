"""Issue 12: the hostile-input corpus (tests/hostile/corpus, 140+ cases), replayed through the command line.

Each case is what a user might bring (a broken CSV, a mislabelled workbook, a spec with a wrong key, a SQL
query that writes); tests/hostile/cases.toml says what each must give: a clear error naming the file, a
ledger entry, or a clean read. Whatever the case, nothing raises a traceback, the input files are left
byte for byte as they were, every row read is kept or excluded, and no raw terminal escape is printed.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.hostile.replay import CASES, CORPUS, replay

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXPECTED = tomllib.loads(CASES.read_text(encoding="utf-8"))


def test_every_stored_case_has_an_expectation_and_the_corpus_is_large():
    stored = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert stored == set(EXPECTED), f"cases without expectation: {stored - set(EXPECTED)}; " \
                                    f"expectations without case: {set(EXPECTED) - stored}"
    assert len(stored) >= 100


def test_the_stored_corpus_is_what_make_corpus_writes(tmp_path):
    """The generator is deterministic: writing the corpus again (in a process of its own, see make_corpus.py)
    gives the stored files byte for byte, so `git diff` after regenerating shows only what was changed."""
    out = tmp_path / "corpus"
    done = subprocess.run([sys.executable, str(CORPUS.parent / "make_corpus.py"), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    def files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    made, stored = files(out), files(CORPUS)
    assert made.keys() == stored.keys(), (sorted(made.keys() - stored.keys()), sorted(stored.keys() - made.keys()))
    differ = sorted(name for name in made if made[name] != stored[name])
    assert not differ, f"regenerated files differ from the stored corpus (python tests/hostile/make_corpus.py " \
                       f"re-makes it; then check cases.toml): {differ}"


@pytest.mark.parametrize("case", ["dta_ok", "dta_v110", "dta_v114", "dta_v117", "dta_v118"])
def test_stata_versions_read_with_their_values(case):
    """Each Stata format (110: R's foreign::write.dta; 114; 117: Stata 13; 118: Stata 14-16) gives back the
    rows it was written from (make_corpus.frame), dates and value labels included."""
    import hostats
    from tests.hostile.make_corpus import frame

    path = CORPUS / case / "export.dta"
    head = {"dta_ok": bytes([114]), "dta_v110": bytes([110]), "dta_v114": bytes([114]),
            "dta_v117": b"<stata_dta><header><release>117<", "dta_v118": b"<stata_dta><header><release>118<"}
    assert path.read_bytes().startswith(head[case])  # the format the case is named for
    ep = hostats.read_cohort(path, today="2026-01-01").episodes
    want = frame()
    assert ep["patient_id"].tolist() == want["patient_id"].tolist()
    assert ep["index_date"].dt.strftime("%Y-%m-%d").tolist() == want["index_date"].tolist()
    assert ep["age_years"].tolist() == want["age_years"].tolist()
    assert ep["sex"].astype(str).tolist() == want["sex"].tolist()


def _has(rows: list[dict], *, column: str | None = None, row: int, says: str, key: str) -> bool:
    return any(r.get("source_row") == row and (column is None or r.get("column") == column) and says in str(r[key])
               for r in rows)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_case(case, tmp_path):
    want = EXPECTED[case]
    before = {p.name: p.read_bytes() for p in (CORPUS / case).iterdir()}
    got = replay(case, tmp_path, want.get("query"), want.get("env"))

    assert "Traceback" not in got.output, got.output
    assert got.exception is None or isinstance(got.exception, SystemExit), repr(got.exception)
    assert "\x1b" not in got.output, "raw terminal escape printed"
    after = {p.name: p.read_bytes() for p in (tmp_path / case).iterdir() if p.name in before}
    assert after == before, "an input file was modified"

    summary = got.summary or {}
    if "rows_read" in summary:
        assert summary["rows_read"] == summary["rows_kept"] + summary["rows_excluded"]
    if "rows" in want:
        assert [summary["rows_read"], summary["rows_kept"]] == want["rows"]

    if want["expect"] == "error":
        assert got.code == 1, got.output
        message = summary.get("error", got.output) if summary else got.output
        message = " ".join(message.split())  # a long message is wrapped on the console
        message = message.replace(f"{tmp_path / case}/", "").replace(str(tmp_path / case), "")
        for text in want["says"]:
            assert " ".join(text.split()) in message, message
        if "error" in summary or not summary:  # the message names a file of the case (not a SELECT refusal)
            if not case.startswith("sql_"):
                names = [want["names"]] if "names" in want else list(before)
                assert any(name in message for name in names), message
        return

    assert got.code == 0 and summary.get("usable") is True, got.output
    problems, excluded, notes = summary["problems"], summary["excluded"], summary["notes"]
    if want["expect"] == "ok":
        assert not problems and not excluded and not notes, (problems, excluded, notes)
    if "problem" in want:
        assert _has(problems, key="problem", **want["problem"]), problems
    if "excluded" in want:
        assert _has(excluded, key="reason", **want["excluded"]), excluded
    if "note" in want:
        assert any(want["note"] in n for n in notes), notes
    if "assessment_problem" in want:
        assert _has(summary["assessments"]["problems"], key="problem", **want["assessment_problem"])
    if "assessment_note" in want:
        assert any(want["assessment_note"] in n for n in summary["assessments"]["notes"])
