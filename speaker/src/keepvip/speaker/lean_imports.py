"""Import less: packages without their eager ``__init__``, ``ssl`` only when used (issue 15).

A standalone speaker's RSS is mostly the code it imports. Two kinds of waste:

* Packages whose ``__init__`` imports the whole library: pyroute2 (IPDB, NDB with
  sqlite3, conntrack…, +12.5 MiB) and prometheus_client (its HTTP, WSGI, ASGI and
  push-gateway exposition, which imports ``ssl`` and ``urllib.request``). Python runs a
  package's ``__init__`` before any of its submodules, so `without_init` registers the
  package module first without running it: submodules then import as usual. The first
  access to any other name of the package (``from prometheus_client import Counter`` in
  a test, say) runs the real ``__init__`` in place, so the package ends up exactly as a
  normal import leaves it.
* OpenSSL: ``ssl`` (4 MiB) and ``_hashlib`` (libcrypto, 3.7 MiB). asyncio imports
  ``ssl`` unconditionally for TLS streams, pyroute2 for a probe feature, ``http.client``
  for HTTPS; pydantic imports ``secrets``, hence ``hmac``, hence ``_hashlib``. A
  standalone speaker talks TLS only for an HTTPS health check, which does its own TLS
  on memory buffers (:mod:`keepvip.speaker.checks.tls`), and hashes only with SHA-256
  (the config file's fingerprint). `openssl_when_used` therefore imports asyncio with
  ``ssl`` hidden (asyncio then has no TLS of its own in this process, as on a Python
  built without OpenSSL), leaves a stand-in for everyone else that imports the real
  ``ssl`` on the first attribute anyone reads, and hides ``_hashlib``: ``hashlib`` and
  ``hmac`` then use CPython's built-in MD5, SHA-1, SHA-2, SHA-3 and BLAKE2, as they do
  on a Python without OpenSSL.

* Package metadata: pydantic's plugin loader imports ``importlib.metadata`` when its
  module loads (which imports ``email``, ``zipfile``, ``csv``…: 1.4 MiB) and, at the
  first model, reads every installed distribution's entry points looking for pydantic
  plugins. A speaker has none; `pydantic_plugins_off` turns the lookup off the
  documented way (``PYDANTIC_DISABLE_PLUGINS``) and gives the loader an
  ``entry_points`` that imports ``importlib.metadata`` only if it is ever called.

`openssl_when_used` is for the standalone entry only (:mod:`keepvip.speaker.entry`),
before anything has imported asyncio; in any other process (tests, the cluster mode)
it is not called, and each part does nothing once its module is loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importlib.abc loads importlib.resources, pathlib, tempfile… (3 MiB)
    from importlib.abc import Loader


def without_init(package: str) -> None:
    """Register ``package`` without running its ``__init__`` (no-op if already imported)."""
    if package in sys.modules:
        return
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None:  # pragma: no cover - a dependency
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def attribute(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")  # a submodule: only that
        _load_everything(module, loader)
        return getattr(module, name)

    module.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules[package] = module


def _load_everything(module: ModuleType, loader: Loader) -> None:
    """Run the real ``__init__`` now (someone asked for a name it defines)."""
    vars(module).pop("__getattr__", None)
    loader.exec_module(module)


class _ImportOnUse(ModuleType):
    """Stands in ``sys.modules`` for a module not imported yet; the first attribute read
    imports the real one (which replaces the stand-in there) and answers from it.

    Dunder names are answered without importing: the import system reads ``__spec__``
    and ``inspect`` scans every module's ``__file__``, neither of which is a use.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def openssl_when_used() -> None:
    """Import asyncio without TLS, ``ssl`` only when something reads from it, and hash
    without OpenSSL."""
    if "_hashlib" not in sys.modules and "hashlib" not in sys.modules:
        sys.modules["_hashlib"] = None  # type: ignore[assignment] # hashlib falls back to built-ins
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment] # `import ssl` raises ImportError
    try:
        importlib.import_module("asyncio")
    finally:
        sys.modules["ssl"] = _ImportOnUse("ssl")


PYDANTIC_LOADER = "pydantic.plugin._loader"
"""pydantic's plugin loader (pydantic 2.x), the one module of the speaker's imports
that imports ``importlib.metadata``."""


def pydantic_plugins_off() -> None:
    """No pydantic plugins in this process, and ``importlib.metadata`` only on use.

    pydantic reads ``PYDANTIC_DISABLE_PLUGINS`` each time it builds a validator;
    ``__all__`` returns no plugins before any entry point is read, so validation is
    exactly pydantic's own (there are no plugins installed either). A value already set
    is kept: if it names only some plugins, pydantic reads the entry points, and
    `_entry_points_on_use` imports the real module for it. Scripts do not inherit the
    variable (:mod:`keepvip.speaker.sandbox` starts them with ``PATH`` only).
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if PYDANTIC_LOADER in sys.modules or "importlib.metadata" in sys.modules:
        return
    stand_in = _ImportOnUse("importlib.metadata")
    stand_in.entry_points = _entry_points_on_use  # type: ignore[attr-defined]
    sys.modules["importlib.metadata"] = stand_in  # only while the loader imports
    try:
        importlib.import_module(PYDANTIC_LOADER)
    except ModuleNotFoundError:  # pragma: no cover - a pydantic without this module
        pass
    finally:
        if sys.modules.get("importlib.metadata") is stand_in:
            del sys.modules["importlib.metadata"]


def _entry_points_on_use(**selection: Any) -> object:
    """:func:`importlib.metadata.entry_points`, imported when first called (what it
    returns depends on the Python version and the arguments, as the original's)."""
    from importlib.metadata import entry_points  # noqa: PLC0415 - the point of this function

    return entry_points(**selection)
