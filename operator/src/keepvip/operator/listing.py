"""One fresh listing shared by every admission review that was waiting for it.

The webhook checks a new VirtualIP against every other one, from a list (not kopf's
index: a replica paused by peering serves the webhook but does not watch, so its index
would be empty and admit conflicts, issue 5). With the API server sending 16 reviews at
once during a burst of creates, one list per review was 16 lists of every VirtualIP per
round (O(N²) over a burst of N), each decoded under the GIL while the reconcile handlers
of the same burst wanted it too (issue 15).

The rule kept: a review is answered from a listing that *started after the review
arrived*, so it sees everything stored before it, exactly as its own list would. Those
that arrive while a listing runs wait for the next one, which starts when the running
one ends and serves all of them: at most one listing in flight and one gathering.

A listing that fails (the API server slow to answer under load: the fetch has a timeout)
fails the round; :meth:`SharedListing.get_retrying` joins the next one, so a review is
answered late rather than refused for the API server's trouble (late past the API
server's own timeout is the chart's ``webhook.failurePolicy`` to decide, as before).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class _Round(Generic[T]):
    """One listing and the reviews waiting for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SharedListing(Generic[T]):
    """``get()``: the result of a ``fetch`` that started after the call; calls share fetches."""

    def __init__(self, fetch: Callable[[], T]) -> None:
        self._fetch = fetch
        self._guard = threading.Lock()
        self._running = threading.Lock()
        """Held by the caller whose fetch is in flight: one at a time."""
        self._gathering: _Round[T] | None = None
        """The round that has not started yet: later callers join it."""
        self.calls = 0
        self.fetches = 0
        """How many of the :attr:`calls` fetched (the others shared a fetch)."""

    def get(self) -> T:
        """A result fetched after this call began (shared with the calls that joined it)."""
        with self._guard:
            self.calls += 1
            leader = self._gathering is None
            if leader:
                self._gathering = _Round()
            current = self._gathering
        assert current is not None
        if leader:
            with self._running:
                with self._guard:
                    self._gathering = None  # from now on, arrivals wait for the next round
                    self.fetches += 1
                try:
                    current.result = self._fetch()
                except BaseException as error:
                    current.error = error
                finally:
                    current.done.set()
        else:
            current.done.wait()
        if current.error is not None:
            raise current.error
        return cast(T, current.result)

    def get_retrying(self, seconds: float, errors: tuple[type[BaseException], ...]) -> T:
        """:meth:`get`, joining the next round after a fetch failed with one of ``errors``,
        until ``seconds`` have passed (then the last error is raised)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return self.get()
            except errors:
                if time.monotonic() >= deadline:
                    raise
