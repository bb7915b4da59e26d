"""The run manifest (``manifest.json``): what went in, with which settings, and how long it took.

A report is reproducible when a reader can check that the inputs are the same bytes (SHA-256 of every
input file), rerun the same spec with the same seed, and install the same package versions. The manifest
records exactly these, plus the step timings. It never holds data values, identifiers or record dates.
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("hostats", "numpy", "pandas", "scipy", "statsmodels", "lifelines", "scikit-learn", "matplotlib",
            "seaborn", "jinja2", "pandera", "pyarrow", "typer", "rich", "joblib")


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
