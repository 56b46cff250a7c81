"""``--notify CMD``: keepalived's notify script for plain-host users.

On every transition the speaker runs ``CMD INSTANCE NAME STATE PRIORITY`` (keepalived's
arguments: the literal ``INSTANCE``, the VirtualIP name, the new state, the effective
priority) without a shell and without waiting: a slow script never delays VRRP.
Notifications for one VirtualIP run in order; a script still running when the next
transition arrives is not killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex

log = logging.getLogger("keepvip.speaker.notify")


class Notifier:
    """Runs the notify command asynchronously, in order per VirtualIP."""

    def __init__(self, command: str | None) -> None:
        self._argv = shlex.split(command) if command else []
        self._queues: dict[str, asyncio.Queue[tuple[str, int]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def notify(self, virtualip: str, state: str, priority: int) -> None:
        """Queue one notification; returns at once."""
        if not self._argv:
            return
        queue = self._queues.get(virtualip)
        if queue is None:
            queue = self._queues[virtualip] = asyncio.Queue()
            self._workers[virtualip] = asyncio.get_running_loop().create_task(self._drain(queue))
        queue.put_nowait((state, priority))

    async def _drain(self, queue: asyncio.Queue[tuple[str, int]]) -> None:
        while True:
            state, priority = await queue.get()
            name = next(k for k, q in self._queues.items() if q is queue)
            argv = [*self._argv, "INSTANCE", name, state, str(priority)]
            try:
                process = await asyncio.create_subprocess_exec(*argv)
                await process.wait()
                if process.returncode:
                    log.warning("notify command exited %s", process.returncode, extra={"virtualip": name})
            except OSError as error:
                log.warning("notify command failed: %s", error, extra={"virtualip": name})

    async def close(self) -> None:
        """Stop the workers (queued notifications are dropped)."""
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()
