"""Command check: passes when the command exits 0 within the timeout (keepalived vrrp_script).

The command runs without a shell, with stdin, stdout and stderr on /dev/null: a check
that forks a daemon holding our pipes open could otherwise keep a run alive forever.
It runs in a new session, so on timeout (or when the runner is cancelled) the whole
process group we created is killed with SIGKILL — ``sh -c 'sleep 60'`` leaves no
orphaned ``sleep`` — and the child we started is reaped before the probe returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence

from keepvip.speaker.checks.probe import ProbeResult, Stopwatch, format_seconds


class ExecProbe:
    """Run ``command``; pass on exit status 0."""

    def __init__(self, command: Sequence[str], timeout: float) -> None:
        if not command:
            raise ValueError("an exec check needs a command")
        self.command = tuple(command)
        self.timeout = timeout
        self.last_pid: int | None = None  # the pid of the most recent run, for logs and tests

    @property
    def target(self) -> str:
        return "exec " + " ".join(self.command)

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            return watch.result(False, f"cannot start {self.command[0]}: {error.strerror or error}")
        self.last_pid = process.pid
        try:
            async with asyncio.timeout(self.timeout):
                code = await process.wait()
        except TimeoutError:
            await _kill_and_reap(process)
            return watch.result(False, f"killed after {format_seconds(self.timeout)} (pid {process.pid})")
        except asyncio.CancelledError:
            await _kill_and_reap(process)
            raise
        if code == 0:
            return watch.result(True, "exit status 0")
        if code < 0:
            return watch.result(False, f"killed by {signal.Signals(-code).name}")
        return watch.result(False, f"exit status {code}")


async def _kill_and_reap(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group we created (its pgid is the child's pid), then reap the child."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()
