"""Polling until a condition holds, with a failure message that says what was awaited.

Cluster tests wait for controllers (seconds), never sleep a fixed time: a fixed sleep is
either too long (slow tests) or too short (flaky tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1,
               what: str = "condition") -> T:
    """Call ``check`` until it returns a truthy value and return that value.

    Exceptions from ``check`` count as "not yet" (the API server may be restarting);
    after ``timeout`` seconds a :class:`TimeoutError` names ``what`` and the last error.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as e:
            last_error = e
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(interval)


def holds_for(check: Callable[[], object], duration: float, interval: float = 0.1) -> bool:
    """Whether ``check`` stays truthy for the whole of ``duration`` seconds.

    The counterpart of :func:`wait_until` for "nothing happens": instead of sleeping a
    fixed time and looking once, it looks all along, so a change that comes and goes
    within the period is caught too. Returns False at the first falsy result.
    """
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(interval)
    return bool(check())
