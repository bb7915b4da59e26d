"""Fuzz target for the readers and the spec loader (issue 12): atheris mutates the hostile-input corpus.

Run before a release, for a few minutes (see the README's development section):

    pip install -e ".[fuzz]"
    python tests/hostile/fuzz_readers.py --make-seeds /tmp/hostats-seeds      # the corpus, as fuzz inputs
    python tests/hostile/fuzz_readers.py -max_total_time=300 -rss_limit_mb=4096 /tmp/hostats-seeds

The first byte of each input picks what it is fed to (a CSV, TSV, Excel, Stata, SPSS or parquet reader
through ``read_cohort``, a mapping file, or an ``analysis.toml`` through ``load_spec``); the rest is the
file's content. A clear ``HostatsError`` (DataError, SpecError) is the right answer to bad input; any other
exception is a bug, and atheris stops and saves the input that caused it (crash-<hash>) for a new corpus case.
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

TARGETS = (".csv", ".tsv", ".xlsx", ".dta", ".sav", ".parquet", "mapping.toml", "analysis.toml")


def one_input(data: bytes) -> None:
    from hostats import read_cohort
    from hostats.analysis import load_spec
    from hostats.errors import HostatsError

    if not data:
        return
    target, content = TARGETS[data[0] % len(TARGETS)], data[1:]
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(d)
        try:
            if target == "analysis.toml":
                (folder / "analysis.toml").write_bytes(content)
                load_spec(folder / "analysis.toml")
            elif target == "mapping.toml":
                (folder / "m.toml").write_bytes(content)
                (folder / "e.csv").write_text("patient_id,index_event,index_date\nP1,tha,2021-01-01\n")
                read_cohort(folder / "e.csv", folder / "m.toml", today="2026-01-01")
            else:
                (folder / f"export{target}").write_bytes(content)
                read_cohort(folder / f"export{target}", today="2026-01-01")
        except HostatsError:
            pass


def make_seeds(out: Path) -> int:
    """Write every file of the corpus as a fuzz input: its target byte, then its content."""
    corpus = Path(__file__).resolve().parent / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(corpus.glob("*/*")):
        name = {"m.toml": "mapping.toml"}.get(f.name, f.name)
        target = next((i for i, t in enumerate(TARGETS) if name.endswith(t)), None)
        if target is not None:
            (out / f"{f.parent.name}_{f.name}").write_bytes(bytes([target]) + f.read_bytes())
            n += 1
    return n


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-seeds":
        print(f"{make_seeds(Path(sys.argv[2]))} seed inputs written to {sys.argv[2]}")
        return
    import atheris

    with atheris.instrument_imports(include=["hostats"]):
        import hostats.analysis  # noqa: F401
        import hostats.cohort  # noqa: F401
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
