"""Build hook: ship the repository's ``analyses/`` inside the wheel as ``hostats/bundled_analyses/``.

``analyses/`` stays the one source (the layout, the checks and the README name it); the wheel copies it so
that ``hostats reproduce`` and ``hostats run NAME`` work in any installation, not only in a git checkout.
Everything else about the build is declared in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("analysis.toml", "*.py")  # the spec and an optional script (simulation_study/study.py)


class build_py_with_analyses(build_py):  # noqa: N801 - setuptools' command naming
    """build_py, then copy analyses/*/{analysis.toml,*.py} into the built package."""

    def run(self) -> None:
        super().run()
        source = HERE / "analyses"
        if not source.is_dir():  # building from an sdist made without analyses/: nothing to add
            return
        target = Path(self.build_lib) / "hostats" / "bundled_analyses"
        for folder in sorted(p for p in source.iterdir() if (p / "analysis.toml").is_file()):
            for pattern in SHIPPED:
                for f in folder.glob(pattern):
                    dest = target / folder.name / f.name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dest)


setup(cmdclass={"build_py": build_py_with_analyses})
