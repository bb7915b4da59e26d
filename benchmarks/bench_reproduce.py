"""Benchmark the main job: ``hostats reproduce`` at the default sizes, and one analysis at 1,000,000 episodes.

Run by hand from the project root (slow; run it on a quiet machine):

    python benchmarks/bench_reproduce.py                 # both parts
    python benchmarks/bench_reproduce.py --skip-large    # reproduce only
    python benchmarks/bench_reproduce.py --large-only --analysis prophylaxis --n 1000000
    python benchmarks/bench_reproduce.py --large-only --busy --step-memory   # peak RSS of each step (Linux)

Targets (issue 6): reproduce under 2 minutes on 2 cores; one analysis on 1,000,000 episodes under 60 s and
4 GB; issue 16: the 1,000,000-episode run under 60 s with another process busy on the second core
(``--busy``: this script starts ``python -c "while 1: pass"`` for the large run and stops it after), and peak
memory per million episodes down by a third (2,975 MB before). Prints wall time, peak resident memory of the
child process, the load average, and the per-step timings from each manifest.json (synthetic generation and
writing are counted: they are part of the run).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# --step-memory: the run in this wrapper, which resets the process's peak RSS (VmHWM, via
# /proc/self/clear_refs) at the start of each timed step and prints the step's peak to stderr. The reset
# also resets the peak the parent reads (ru_maxrss), so the wrapper prints the largest peak of the whole
# run last ("overall peak"), and that is the figure reported.
STEP_MEMORY = """
import sys
from contextlib import contextmanager
import hostats.provenance as pv

def _kb(name):
    return int(next(ln for ln in open("/proc/self/status") if ln.startswith(name)).split()[1])

_step = pv.Timer.step
_top = [0]

@contextmanager
def step(self, name):
    _top[0] = max(_top[0], _kb("VmHWM:"))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = _kb("VmRSS:")
    with _step(self, name):
        yield
    peak = _kb("VmHWM:")
    _top[0] = max(_top[0], peak)
    print(f"    step memory: {name:26s} RSS {start / 1024:6.0f} MB at start, peak {peak / 1024:6.0f} MB",
          file=sys.stderr)

pv.Timer.step = step
from hostats.cli import app
try:
    app()
finally:
    print(f"overall peak {max(_top[0], _kb('VmHWM:')) / 1024:.0f} MB", file=sys.stderr)
"""


def run(cmd: list[str]) -> tuple[float, float, int]:
    """Run ``cmd``; return wall seconds, peak RSS of the child in MB, exit status."""
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT)
    wall = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kb / 1024.0, p.returncode


def print_timings(manifest: Path) -> None:
    m = json.loads(manifest.read_text())
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in m.get("timings_seconds", {}).items())
    print(f"    {m.get('analysis')}: {steps}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--large-only", action="store_true")
    ap.add_argument("--analysis", default="prophylaxis")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--busy", action="store_true", help="keep a second process busy during the large run")
    ap.add_argument("--step-memory", action="store_true",
                    help="print the peak RSS of each step of the large run (Linux: resets VmHWM per step)")
    args = ap.parse_args()
    exe = [sys.executable, "-m", "hostats.cli"]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="hostats-bench-") as tmp:
        tmp = Path(tmp)
        if not args.large_only:
            out = tmp / "reports"
            wall, peak, rc = run(exe + ["reproduce", "--out", str(out), "--quiet"])
            print(f"hostats reproduce (default sizes): {wall:.1f} s wall, peak RSS {peak:.0f} MB, exit {rc} "
                  f"(target < 120 s)")
            for m in sorted(out.glob("*/manifest.json")):
                print_timings(m)
            failures += rc != 0 or wall > 120
        if not args.skip_large:
            spec_dir = tmp / "analyses" / args.analysis
            spec_dir.mkdir(parents=True)
            text = (ROOT / "analyses" / args.analysis / "analysis.toml").read_text()
            (spec_dir / "analysis.toml").write_text(re.sub(r"\bn = \d+", f"n = {args.n}", text))
            out = tmp / "large" / args.analysis
            # a fresh interpreter so that the peak RSS is this run's alone
            run_exe = [sys.executable, "-c", STEP_MEMORY] if args.step_memory else exe
            code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                    f"p = subprocess.run({run_exe!r} + ['run', {str(spec_dir)!r}, '--out', {str(out)!r}, '--quiet']); "
                    "print(f'{time.perf_counter() - t:.1f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} "
                    "{p.returncode}')")
            busy = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if args.busy else None
            try:
                r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            try:
                wall, peak, rc = r.stdout.split()[-3:]
            except ValueError:
                print(r.stdout, r.stderr)
                return 1
            top = re.findall(r"^overall peak (\d+) MB$", r.stderr, flags=re.M)
            if args.step_memory and top:
                peak = top[-1]
                r.stderr = re.sub(r"^overall peak \d+ MB\n?", "", r.stderr, flags=re.M)
            print(f"hostats run {args.analysis} on {args.n:,} episodes: {float(wall):.1f} s wall, peak RSS "
                  f"{float(peak):.0f} MB, exit {rc} (target < 60 s, < 4096 MB); "
                  f"{'with' if args.busy else 'without'} a busy process, load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} cores")
            if r.stderr.strip():
                print(r.stderr[-2000:])
            if (out / "manifest.json").is_file():
                print_timings(out / "manifest.json")
            failures += rc != "0" or float(wall) > 60 or float(peak) > 4096
    return int(failures)


if __name__ == "__main__":
    sys.exit(main())
