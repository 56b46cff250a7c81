"""Import only the parts of pyroute2 the speaker uses (issue 15, memory).

``pyroute2/__init__.py`` imports the whole library eagerly (IPDB, NDB with sqlite3,
conntrack, the IPSet, WireGuard and devlink sockets, multiprocessing...): +12.5 MiB
of RSS in a speaker that uses one rtnetlink socket class and one exception type.
Python runs a package's ``__init__`` before any of its submodules, so the only way to
import ``pyroute2.iproute.linux`` without the rest is to register the package module
first without running its ``__init__``. That is what `lean` does; with it the
speaker's pyroute2 costs 6.6 MiB.

Nothing else changes: submodules import as usual, and the first access to any other
name of the package (``from pyroute2 import IPRoute`` in a test, say) runs the real
``__init__`` in place, so the package ends up exactly as a normal import leaves it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.abc import Loader
from types import ModuleType
from typing import Any


def lean() -> None:
    """Register ``pyroute2`` without its eager ``__init__`` (no-op if already imported)."""
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:  # pragma: no cover - a dependency
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def attribute(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")  # a submodule: only that
        _load_everything(module, loader)
        return getattr(module, name)

    module.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules["pyroute2"] = module


def _load_everything(module: ModuleType, loader: Loader) -> None:
    """Run the real ``__init__`` now (someone asked for a name it defines)."""
    vars(module).pop("__getattr__", None)
    loader.exec_module(module)
