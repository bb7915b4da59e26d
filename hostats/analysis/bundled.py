"""The analyses that come with hostats: the checkout's ``analyses/`` (the one source), shipped in the wheel as
``hostats/bundled_analyses/`` (setup.py copies it), so that ``hostats reproduce`` and ``hostats run NAME`` work
in any installation."""
from __future__ import annotations

from pathlib import Path

from hostats.analysis.runner import discover


def bundled_analyses() -> Path:
    """The folder of the bundled analyses: ``analyses/`` of the checkout when hostats runs from one (an
    editable install or the source tree), else the copy inside the installed package."""
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent / "analyses"
    if (package.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return package / "bundled_analyses"


def bundled_names() -> list[str]:
    """Names of the bundled analyses (simulation studies left out), sorted."""
    return [p.parent.name for p in discover(bundled_analyses())]


def find_analysis(name: str, root: Path | str | None = None) -> Path | None:
    """The ``analysis.toml`` of the analysis called ``name`` (its folder's name) under ``root`` (default:
    the bundled analyses), or None when there is none."""
    if not name or any(c in name for c in "/\\") or name in (".", ".."):
        return None
    toml = (Path(root) if root is not None else bundled_analyses()) / name / "analysis.toml"
    return toml if toml.is_file() else None
