"""Benchmark: ``hostats validate`` of a 2,000,000-row export, wall time and peak RSS of a fresh process.

Run by hand: ``python benchmarks/bench_validate.py [--rows N] [--repeat R] [--folder DIR] [--keep]
[--pythonpath OLD_CHECKOUT ...]``.

The export is drawn by the synthetic generator (``synthetic.generate("tha_prophylaxis", ...)`` with one
site, so one file: the en_iso dialect, 19 columns, faults at the default 3 %); ``--source ingest`` uses
bench_ingest's 25-column export with mixed spellings instead. The export is written once by a child
process (``--folder DIR`` keeps it there and reuses it on the next run). Each measurement is a fresh
``python -m hostats.cli validate FILE --mapping MAPPING`` (its output discarded); its peak RSS comes from
``os.wait4`` on that child alone. ``--pythonpath`` runs the same command against other checkouts (e.g. a
``git archive`` of the commit before a change) alternately with this one, so before/after are measured side
by side at the same load.

Target (issue 12): 2,000,000 rows within 1.6 GB and 12 s.

Figures at load 2.3-2.9 (2 cores; "before" = the checkout before this script, run alternately with the new
code in one invocation, ``--repeat 2``):

- synthetic export, 2,019,117 rows: before 14.5-14.6 s wall (14.2-14.5 s CPU), peak RSS 1.52 GB; now
  9.3-9.7 s wall (9.1-9.3 s CPU), 0.98-0.99 GB.
- ``--source ingest``, 2,000,000 rows: before 13.6-14.1 s wall, 1.90 GB; now 8.1-8.3 s wall, 0.96 GB.

The same at load 5.3-6.2 (wall times there about twice the CPU times):

- synthetic export, 2,019,117 rows (168 MB; 1,987,214 kept, 31,903 excluded, 48,200 cell problems):
  before 22.9-29.6 s wall, 12.8-14.5 s CPU, peak RSS 1.42-1.51 GB; now 12.2-19.5 s wall, 7.9-9.7 s CPU,
  0.98-0.99 GB (``--repeat 3``). ``validate --json --show 200`` gives the same output from both.
- ``--source ingest``, 2,000,000 rows (240 MB, 25 columns): before 27.0-28.1 s wall, 13.4-13.8 s CPU,
  1.75-1.77 GB; now 17.7-18.1 s wall, 8.9-9.1 s CPU, 0.96 GB (``--repeat 2``).

What changed: the CSV reader encodes each text column once over the whole file (it used to unify one
dictionary per block of the file in to_pandas), patient_id stays coded through the row rules, the row rules
copy the frame only when they exclude rows, and a few per-cell conversions work on distinct values.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_synthetic(folder: Path, rows: int, seed: int = 20261204) -> tuple[Path, Path]:
    """One site's export of about ``rows`` rows (episodes plus the injected duplicate rows)."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import synthetic\n"
            f"c = synthetic.generate('tha_prophylaxis', n={rows}, seed={seed}, "
            "overrides={'sites': ['A'], 'site_shares': [1.0]})\n"
            f"c.write({str(folder)!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    (folder / "assessments.csv").unlink(missing_ok=True)  # not read: validate is given the episode export
    return folder / "site_A.csv", folder / "site_A.mapping.toml"


def write_ingest(folder: Path, rows: int) -> tuple[Path, None]:
    path = folder / "episodes.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_ingest.py"), "--rows", str(rows),
                    "--write-only", str(path)], check=True, cwd=ROOT)
    return path, None


def measure(path: Path, mapping: Path | None, pythonpath: str | None) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS GB, exit status) of one fresh ``hostats validate`` process."""
    cmd = [sys.executable, "-m", "hostats.cli", "validate", str(path)] + (["--mapping", str(mapping)] if mapping else [])
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath or str(ROOT)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1) or "Traceback" in err:
        print(err[-2000:], file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--source", choices=("synthetic", "ingest"), default="synthetic")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--folder", help="write the export here (reused when it is already there)")
    ap.add_argument("--keep", action="store_true", help="keep the generated export")
    ap.add_argument("--pythonpath", action="append", default=[],
                    help="also measure this checkout (its folder), alternating with this one")
    args = ap.parse_args()
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="hostats-bench-validate-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        target = folder / ("site_A.csv" if args.source == "synthetic" else "episodes.csv")
        if target.is_file():
            path, mapping = target, (folder / "site_A.mapping.toml" if args.source == "synthetic" else None)
        elif args.source == "synthetic":
            path, mapping = write_synthetic(folder, args.rows)
        else:
            path, mapping = write_ingest(folder, args.rows)
        with path.open("rb") as fh:
            lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b"")) - 1
        print(f"export: {path} ({lines:,} rows, {path.stat().st_size / 1e6:.0f} MB; ready in "
              f"{time.perf_counter() - t0:.1f} s)")
        checkouts = [("this checkout", str(ROOT))] + [(p, p) for p in args.pythonpath]
        for r in range(args.repeat):
            for label, pp in checkouts:
                load = os.getloadavg()[0]
                wall, cpu, peak, rc = measure(path, mapping, pp)
                print(f"[{r + 1}] {label}: hostats validate {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS "
                      f"{peak:.2f} GB, exit {rc} (load average {load:.1f} before the run, on {os.cpu_count()} cores; "
                      f"target < 12 s, < 1.6 GB)", flush=True)
    finally:
        if not (args.keep or args.folder):
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
