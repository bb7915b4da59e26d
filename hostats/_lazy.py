"""Lazy re-exports for packages whose public names live in submodules (``hostats.stats`` families).

``__getattr__, __dir__, __all__ = lazy_exports(__name__, {"submodule": ("name", ...), ...})`` in a
package's ``__init__`` imports a submodule on the first use of one of its names, so importing one module of
a family (or the family for one name) never loads the rest of it.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__, sorted(exports)
