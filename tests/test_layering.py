"""The import directions of DESIGN.md, checked on the source: schema <- ingest/clean/ledger <- cohort <- stats
<- report <- analysis <- cli; ``synthetic`` and ``hostats`` independent (only cli.py may import both).

Every module under hostats/ and synthetic/ is parsed with ``ast``; imports anywhere in a module count
(lazy imports inside functions too), relative imports are resolved against the module's package.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: str | None = None) -> set[str]:
    """Every module a file imports (``from a import b`` gives ``a`` and ``a.b``); ``package``: the one
    relative imports resolve against (default: the file's own, from its place under the root)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _files(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{f.relative_to(ROOT)} imports {i}" for f in files for i in sorted(imports_of(f))
            if any(_within(i, p) for p in forbidden)]


def _layer(package: str) -> list[Path]:
    path = ROOT / Path(*package.split("."))
    return _files(str(path.relative_to(ROOT))) if path.is_dir() else [path.with_suffix(".py")]


@pytest.mark.parametrize("layer, forbidden", [
    ("hostats.stats", ("hostats.report", "hostats.cli", "hostats.cohort", "hostats.analysis")),
    ("hostats.report", ("hostats.analysis", "hostats.cli")),
    ("hostats.analysis", ("hostats.cli",)),
])
def test_layers_import_only_downwards(layer, forbidden):
    files = _layer(layer)
    assert files and all(f.exists() for f in files)
    assert _violations(files, forbidden) == []


def test_synthetic_never_imports_hostats():
    assert _violations(_files("synthetic"), ("hostats",)) == []


def test_hostats_never_imports_synthetic_except_the_cli():
    files = [f for f in _files("hostats") if f != ROOT / "hostats" / "cli.py"]
    assert _violations(files, ("synthetic",)) == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself: an import inside a function and a relative import are both seen."""
    probe = tmp_path / "probe.py"
    probe.write_text("from ..report import tables\n\n\ndef f():\n    import hostats.cli\n")
    assert {"hostats.report", "hostats.report.tables", "hostats.cli"} <= imports_of(probe, "hostats.stats")
    assert any(_within(i, "hostats.analysis.spec") for i in imports_of(ROOT / "hostats" / "analysis" / "runner.py"))
