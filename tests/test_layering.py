"""The import directions of docs/design.md, checked on the source: schema <- ingest/clean/ledger <- cohort <- stats
<- report <- analysis <- cli; ``synthetic`` and ``hostats`` independent (only cli.py may import both).

Every module under hostats/ and synthetic/ is parsed with ``ast``; imports anywhere in a module count
(lazy imports inside functions too), relative imports are resolved against the module's package.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import ROOT


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


ABOVE_COHORT = ("hostats.stats", "hostats.report", "hostats.analysis", "hostats.cli", "hostats.simstudy",
                "hostats.scale")


@pytest.mark.parametrize("layer, forbidden", [
    ("hostats.schema", ("hostats.ingest", "hostats.clean", "hostats.ledger", "hostats.cohort", "hostats.sources",
                        *ABOVE_COHORT)),
    ("hostats.ledger", ("hostats.ingest", "hostats.clean", "hostats.cohort", "hostats.sources", *ABOVE_COHORT)),
    ("hostats.ingest", ("hostats.clean", "hostats.cohort", "hostats.sources", *ABOVE_COHORT)),
    ("hostats.clean", ("hostats.cohort", "hostats.sources", *ABOVE_COHORT)),
    # structured sources feed read_cohort: they read and map, never clean, estimate or report
    ("hostats.sources", ("hostats.clean", "hostats.cohort", *ABOVE_COHORT)),
    ("hostats.cohort", ABOVE_COHORT),
    # out-of-core summaries reuse the cleaning rules and feed the estimators from counts; nothing above them
    ("hostats.scale", ("hostats.cohort", "hostats.report", "hostats.analysis", "hostats.cli")),
    ("hostats.stats", ("hostats.report", "hostats.cli", "hostats.cohort", "hostats.analysis", "hostats.scale",
                       "hostats.sources", "hostats.ingest", "hostats.clean")),
    ("hostats.simstudy", ("hostats.analysis", "hostats.cli")),
    ("hostats.report", ("hostats.analysis", "hostats.cli")),
    ("hostats.analysis", ("hostats.cli",)),
])
def test_layers_import_only_downwards(layer, forbidden):
    files = _layer(layer)
    assert files and all(f.exists() for f in files)
    assert _violations(files, forbidden) == []


# hostats/stats/ by family around one shared core (issue 14): core imports no family; a family imports
# core and only the families it needs (causal: curves and hazards of survival, cause-specific models and
# curves of competing; meta: binomial CIs of incidence). The old flat modules are thin re-exports.
STATS = ROOT / "hostats" / "stats"
FAMILIES = {"incidence": set(), "regression": set(), "survival": set(), "competing": set(),
            "causal": {"regression", "survival", "competing"}, "meta": {"incidence"}}
OLD_PATHS = {"interval": "survival.interval_censoring", "rmst": "survival.restricted_mean",
             "ate": "causal.absolute_risk", "binreg": "regression.binomial", "balance": "causal.balance"}


def _stats_parts(f: Path) -> set[str]:
    """The parts of hostats.stats (core, a family, an old path) that file ``f`` imports."""
    return {i.split(".")[2] for i in imports_of(f) if _within(i, "hostats.stats") and i.count(".") >= 2}


def test_stats_is_core_families_and_old_paths_only():
    found = {p.stem if p.is_file() else p.name for p in STATS.iterdir()
             if p.name != "__pycache__" and p.name != "__init__.py"}
    assert found == {"core", *FAMILIES, *OLD_PATHS}


def test_stats_core_imports_no_family():
    files = _files("hostats/stats/core")
    assert files and all(_stats_parts(f) <= {"core"} for f in files), \
        {str(f.relative_to(ROOT)): _stats_parts(f) for f in files if _stats_parts(f) - {"core"}}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_stats_family_imports_core_and_only_the_families_it_needs(family):
    path = STATS / family
    files = _files(str(path.relative_to(ROOT))) if path.is_dir() else [path.with_suffix(".py")]
    allowed = {"core", family} | FAMILIES[family]
    assert files and {str(f.relative_to(ROOT)): _stats_parts(f) - allowed for f in files
                      if _stats_parts(f) - allowed} == {}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_stats_family_exports_resolve(family):
    import importlib
    mod = importlib.import_module(f"hostats.stats.{family}")
    names = getattr(mod, "__all__", [n for n in vars(mod) if not n.startswith("_")])
    assert names and all(getattr(mod, n) is not None for n in names)


@pytest.mark.parametrize("old, new", sorted(OLD_PATHS.items()))
def test_old_stats_paths_re_export_the_new_location(old, new):
    import importlib
    old_mod = importlib.import_module(f"hostats.stats.{old}")
    new_mod = importlib.import_module(f"hostats.stats.{new}")
    assert _stats_parts(STATS / f"{old}.py") == {new.split(".")[0]}
    assert old_mod.__all__ and all(getattr(old_mod, n) is getattr(new_mod, n) for n in old_mod.__all__)


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


def _probes(path: Path) -> list[str]:
    """``hasattr(x, "name")``, ``getattr(x, "name", default)`` and ``callable(...)`` in a file: guesses
    about what an object has."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            literal = len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
            if node.func.id == "callable" or (node.func.id in ("hasattr", "getattr") and literal):
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                out.append(f"{where}:{node.lineno} {ast.unparse(node)}")
    return out


def test_sections_read_results_through_the_contract():
    """The sections know what each estimator returns (the result contract: ``warnings``, ``method``,
    ``reference``, ``fitted`` on every result; the fields of each result class); a probe such as
    ``getattr(res, "warnings", [])`` would hide a broken contract behind a silent default."""
    probes = [p for f in sorted((ROOT / "hostats" / "analysis" / "sections").glob("*.py")) for p in _probes(f)]
    assert not probes, "\n".join(probes)


def test_the_probe_finder_sees_probes(tmp_path):
    f = tmp_path / "section.py"
    f.write_text('a = getattr(res, "warnings", [])\nb = hasattr(res, "table")\nc = callable(obj)\n'
                 "d = getattr(part, name)\n", encoding="utf-8")
    assert [p.split(" ", 1)[1] for p in _probes(f)] == [
        "getattr(res, 'warnings', [])", "hasattr(res, 'table')", "callable(obj)"]
