"""Command check: passes when the command exits 0 within the timeout (keepalived vrrp_script).

What may run, and as whom, is the :class:`~keepvip.speaker.sandbox.ScriptPolicy`'s
decision, taken before every run (a program swapped for an insecure one after start is
refused at its next run). A refused check never starts a process: it fails, with the
refusal as its detail, so the VirtualIP's priority reflects a check that cannot vouch
for the service. An admitted one runs through :func:`~keepvip.speaker.sandbox.spawn`:
no shell, unprivileged, in a new session whose whole process group a timeout (or a
cancelled runner) kills, with its output read up to a bound for the detail.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from keepvip.speaker.checks.probe import ProbeResult, Stopwatch, format_seconds
from keepvip.speaker.sandbox import Refused, ScriptPolicy, spawn


class ExecProbe:
    """Run ``command`` under ``policy``; pass on exit status 0."""

    def __init__(self, command: Sequence[str], timeout: float, policy: ScriptPolicy) -> None:
        if not command:
            raise ValueError("an exec check needs a command")
        self.command = tuple(command)
        self.timeout = timeout
        self.policy = policy
        self.last_pid: int | None = None  # the pid of the most recent run, for logs and tests

    @property
    def target(self) -> str:
        return "exec " + " ".join(self.command)

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        argv = self.policy.vet_check(self.command)
        if isinstance(argv, Refused):
            return watch.result(False, f"refused ({argv.reason.value}): {argv.detail}")
        try:
            outcome = await spawn(argv, self.policy.run_as, self.timeout, path=self.policy.path,
                                  on_start=self._started)  # fmt: skip
        except OSError as error:
            return watch.result(False, f"cannot start {argv[0]}: {error.strerror or error}")
        except subprocess.SubprocessError as error:  # the privilege drop failed: nothing ran
            return watch.result(False, f"cannot start {argv[0]}: {error}")
        if outcome.code is None:
            return watch.result(False, f"killed after {format_seconds(self.timeout)} (pid {outcome.pid})")
        return watch.result(outcome.code == 0, outcome.describe())

    def _started(self, pid: int) -> None:
        self.last_pid = pid
