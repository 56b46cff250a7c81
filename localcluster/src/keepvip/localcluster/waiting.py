"""Polling until a condition holds, or that it keeps holding: the one copy of each.

Tests of every tier (netns, cluster), the demo and bench/ wait for something to happen
(a takeover, a controller) with :func:`wait_until` and check that nothing happens with
:func:`holds_for`; neither sleeps a fixed time: a fixed sleep is either too long (slow
tests) or too short (flaky tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError, AssertionError):
    """The awaited condition did not come true in time.

    A ``TimeoutError`` for callers that wait on machinery, an ``AssertionError`` so that
    pytest reports it as the test's failed expectation.
    """


def wait_until(
    check: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "",
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until it returns a truthy value and return that value.

    Exceptions from ``check`` count as "not yet" (the API server may be restarting, a
    log file may not exist yet). After ``timeout`` seconds :class:`WaitTimeout` names
    ``what``, the last value and the last error, and ``describe()`` (the situation at
    the deadline) when given.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    last_error: Exception | None = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as e:
            last_error = e
        if time.monotonic() >= deadline:
            error = f"; last error: {last_error!r}" if last_error else ""
            situation = f"; {describe()}" if describe is not None else ""
            raise WaitTimeout(
                f"not true within {timeout:.1f} s: {what or check} (last: {last!r}){error}{situation}"
            ) from last_error
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
