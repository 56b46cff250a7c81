"""Import only the parts of pyroute2 the speaker uses (issue 15, memory).

``pyroute2/__init__.py`` imports the whole library eagerly (IPDB, NDB with sqlite3,
conntrack, the IPSet, WireGuard and devlink sockets, multiprocessing...): +12.5 MiB
of RSS in a speaker that uses one rtnetlink socket class and one exception type.
Python runs a package's ``__init__`` before any of its submodules, so the only way to
import ``pyroute2.iproute.linux`` without the rest is to register the package module
first without running its ``__init__``. That is what `lean` does
(with :func:`keepvip.speaker.lean_imports.without_init`); with it the
speaker's pyroute2 costs 6.6 MiB.

Nothing else changes: submodules import as usual, and the first access to any other
name of the package (``from pyroute2 import IPRoute`` in a test, say) runs the real
``__init__`` in place, so the package ends up exactly as a normal import leaves it.
"""

from __future__ import annotations

from keepvip.speaker.lean_imports import without_init


def lean() -> None:
    """Register ``pyroute2`` without its eager ``__init__`` (no-op if already imported)."""
    without_init("pyroute2")
