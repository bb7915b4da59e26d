"""The run manifest (``manifest.json``): what went in, with which settings, and how long it took.

A report is reproducible when a reader can check that the inputs are the same bytes (SHA-256 of every
input file), rerun the same spec with the same seed, and install the same package versions. The manifest
records exactly these, plus the step timings. It never holds data values, identifiers or record dates.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from hostats.errors import HostatsError

PACKAGES = ("hostats", "numpy", "pandas", "scipy", "statsmodels", "lifelines", "scikit-learn", "matplotlib",
            "seaborn", "jinja2", "pandera", "pyarrow", "typer", "rich", "joblib")

FIXED_TIME = datetime(1980, 1, 1, tzinfo=timezone.utc)   # the earliest time a zip entry can carry


def source_date() -> datetime:
    """The time an output states as its own (the dates inside tables.docx and tables.xlsx):
    ``SOURCE_DATE_EPOCH`` (seconds since 1970, the reproducible-builds.org convention) when set, else
    :data:`FIXED_TIME`; never the time of the run, so the same analysis gives the same bytes."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return FIXED_TIME
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise HostatsError(f"environment variable SOURCE_DATE_EPOCH={value!r}: not a time; give a whole "
                           "number of seconds since 1970-01-01 UTC (e.g. git log -1 --format=%ct), or unset "
                           "it for the fixed time 1980-01-01") from None


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (streamed, so large exports need little memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages a result depends on ("not installed" when absent)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def hash_inputs(paths: Iterable[Path | str], root: Path | str | None = None) -> list[dict[str, Any]]:
    """One entry per input file: path (relative to ``root`` when given), size in bytes and SHA-256."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(hash_inputs(sorted(q for q in p.rglob("*") if q.is_file()), root))
            continue
        shown = str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else str(p)
        out.append({"path": shown, "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    return out


class Timer:
    """Named wall-clock timings of the steps of a run, in seconds."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @contextmanager
    def step(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t, 4)

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self._t0, 4)


def build_manifest(*, analysis: str, spec: dict[str, Any], spec_path: Path | str | None, inputs: list[dict],
                   seed: int | None, timings: dict[str, float], outputs: list[str],
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest as a JSON-serialisable dict."""
    manifest = {
        "hostats_manifest": 1,
        "analysis": analysis,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "spec_file": str(spec_path) if spec_path else None,
        "spec_sha256": sha256_file(spec_path) if spec_path and Path(spec_path).is_file() else None,
        "spec": spec,
        "seed": seed,
        "inputs": inputs,
        "outputs": outputs,
        "packages": package_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "python_implementation": platform.python_implementation()},
        "timings_seconds": timings,
    }
    if extra:
        manifest.update(extra)
    return manifest


def write_manifest(manifest: dict[str, Any], path: Path | str) -> Path:
    path = Path(path)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=_json_default) + "\n",
                    encoding="utf-8")
    return path


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)
