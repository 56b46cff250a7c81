"""``--notify CMD``: keepalived's notify script for plain-host users.

On every transition the speaker runs ``CMD INSTANCE NAME STATE PRIORITY`` (keepalived's
arguments: the literal ``INSTANCE``, the VirtualIP name, the new state, the effective
priority) without a shell and without waiting: a slow script never delays VRRP.
Notifications for one VirtualIP run in order. The program obeys the same
:class:`~keepvip.speaker.sandbox.ScriptPolicy` as exec checks (script security, script
user, no capabilities) and is killed with its process group after the policy's
``notify_timeout``, so a hung script cannot hold back the next notification forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import subprocess

from keepvip.speaker.sandbox import Refused, ScriptPolicy, spawn

log = logging.getLogger("keepvip.speaker.notify")


class Notifier:
    """Runs the notify command asynchronously, in order per VirtualIP."""

    def __init__(self, command: str | None, policy: ScriptPolicy | None = None) -> None:
        self._argv = shlex.split(command) if command else []
        self._policy = policy or ScriptPolicy.refuse_all()
        self._queues: dict[str, asyncio.Queue[tuple[str, int]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def refusal(self) -> Refused | None:
        """Why the configured command may not run (checked at start, and before every run)."""
        if not self._argv:
            return None
        vetted = self._policy.vet(self._argv)
        return vetted if isinstance(vetted, Refused) else None

    def notify(self, virtualip: str, state: str, priority: int) -> None:
        """Queue one notification; returns at once."""
        if not self._argv:
            return
        queue = self._queues.get(virtualip)
        if queue is None:
            queue = self._queues[virtualip] = asyncio.Queue()
            self._workers[virtualip] = asyncio.get_running_loop().create_task(self._drain(virtualip, queue))
        queue.put_nowait((state, priority))

    async def _drain(self, name: str, queue: asyncio.Queue[tuple[str, int]]) -> None:
        while True:
            state, priority = await queue.get()
            await self._run_one(name, state, priority)

    async def _run_one(self, name: str, state: str, priority: int) -> None:
        vetted = self._policy.vet(self._argv)
        if isinstance(vetted, Refused):
            fields = {"virtualip": name, "reason": vetted.reason.value}
            log.error("notify command refused: %s", vetted, extra=fields)
            return
        argv = [*vetted, "INSTANCE", name, state, str(priority)]
        try:
            policy = self._policy
            outcome = await spawn(argv, policy.run_as, policy.notify_timeout, path=policy.path)
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("notify command failed: %s", error, extra={"virtualip": name})
            return
        if outcome.code != 0:
            log.warning("notify command: %s", outcome.describe(), extra={"virtualip": name})

    async def close(self) -> None:
        """Stop the workers (queued notifications are dropped, a running one is killed)."""
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()
