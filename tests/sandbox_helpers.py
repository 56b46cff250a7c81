"""Helpers shared by the unit and netns tests of the script sandbox (imported by path).

* :func:`secure_directory`: a fresh root-owned 0755 directory under /tmp, which
  keepalived's script-security rule accepts as a parent (``/tmp`` is root-owned and
  sticky), removed afterwards;
* :func:`gone`: whether a process no longer runs (reaped, or a zombie).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def secure_directory(prefix: str) -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp for the block."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def gone(pid: int) -> bool:
    """The process no longer runs: reaped, or a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
