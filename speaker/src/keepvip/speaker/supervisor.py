"""The speaker's parent process: when the VRRP process dies, its VIPs go with it.

A speaker killed by a signal (the OOM killer's SIGKILL, a segfault in a C extension, an
operator's ``kill -9``) cannot release its VIPs. Until the next speaker removes them at its
start (:mod:`.net.early_sweep`), the node keeps them and answers ARP for them beside the
backup that took over: a split brain as long as the restart takes. Under a process manager
that is seconds (a kubelet's first restart) to minutes (CrashLoopBackOff's 5-minute back-off,
systemd's ``RestartSec``), against the standard that a crash never leaves a VIP on two nodes
for longer than VRRP's own timers.

So ``keepvip speaker`` forks before its heavy imports, as keepalived's parent process
supervises its VRRP child. The parent stays this small module: it forwards the signals a
process manager or a user sends (SIGTERM and SIGINT hand over with priority 0 in the child,
SIGHUP re-reads the configuration), waits for the child, and if the child was killed by a
signal, deletes every address carrying keepvip's ``IFA_PROTO`` mark at once, the early
sweep's own code, before anything else. Then it sends the priority-0 advertisements the
child kept ready for each router it was master of (:mod:`.net.handover`), so the backups
take over after Skew_Time, as after a SIGTERM, instead of Master_Down_Interval (RFC 9568
§6.4.2), and the VIP is on one node again. The parent then
exits with the child's status, 128 + the signal's number as a shell reports it, and the
process manager restarts the speaker as before: the parent does not respawn it, so restart
counts and back-off stay visible where users look for them.

A child that exits by itself (SIGTERM's hand-over, a refused configuration, an exception
unwinding through the speaker's ``finally``) has released what it held; the parent sweeps
nothing then, so a speaker started beside a stopping one never loses its VIPs to its
predecessor's parent.

As a container's PID 1 the parent also reaps the orphans that end up with it.

The child does not outlive the parent (``PR_SET_PDEATHSIG``): when the parent dies, the
kernel sends the child SIGTERM, as keepalived's VRRP child asks for (``start_vrrp_child``),
and the child stops as after any SIGTERM: priority 0, VIPs released, exit. A parent killed
alone (``kill -9`` of the pid a user or a process manager knows) therefore leaves no VIP
behind and makes no backup wait out Master_Down_Interval. Both killed at once (a
container's cgroup killed) is a crash, and the next start sweeps.

What the parent removes is its caller's (``remove``): :mod:`keepvip.speaker.entry` sweeps the
marked addresses first, then those the state file names on kernels without ``IFA_PROTO``, if
they are present with their prefix and, for IPv4, keepvip's label.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from typing import Final

from keepvip.speaker.net.early_sweep import Leftover, sweep

FORWARDED: Final = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
)  # fmt: skip
"""Signals the parent passes on to the speaker instead of acting on them itself."""

PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h


class Exited:
    """How the supervised speaker ended, and what the parent removed after it."""

    def __init__(self, status: int, swept: list[tuple[str, Leftover]]) -> None:
        self.status = status  # as os.waitstatus_to_exitcode: negative for a signal
        self.swept = swept

    @property
    def signal(self) -> signal.Signals | None:
        """The signal that killed the speaker, if one did."""
        return signal.Signals(-self.status) if self.status < 0 else None

    @property
    def exit_code(self) -> int:
        """The parent's own exit status: the child's, or 128 + the signal's number."""
        return 128 - self.status if self.status < 0 else self.status


def supervise(*, remove: Callable[[], list[tuple[str, Leftover]]] = sweep) -> Exited | None:
    """Fork the speaker. In the child: ``None``, go on and run it. In the parent: how it ended.

    Signals are blocked across the fork, so none is lost or acted on by the wrong process:
    the parent installs its forwarders before it unblocks them, the child restores the
    default dispositions (the speaker installs its own) before it does.
    """
    parent = os.getpid()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    child = os.fork()
    if child == 0:
        for signum in FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        _die_with(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return None
    for signum in FORWARDED:
        signal.signal(signum, _forwarder(child))
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    code = os.waitstatus_to_exitcode(_reap_until(child))
    return Exited(code, remove() if code < 0 else [])


def _reap_until(child: int) -> int:
    """Reap every process that ends until ``child`` does; its wait status.

    As a container's PID 1 the parent inherits the orphans of the speaker's own children
    (a check script that forked and left): reaping them keeps them from staying zombies.
    """
    while True:
        pid, status = os.waitpid(-1, 0)  # PEP 475: resumed after every forwarded signal
        if pid == child:
            return status


def _forwarder(child: int) -> Callable[[int, object], None]:
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone: waitpid returns next
            os.kill(child, signum)

    return forward


def _die_with(parent: int) -> None:
    """Have the kernel SIGTERM this process when ``parent`` dies (the speaker then hands over
    and exits); exit now if it already has (nothing is bound yet)."""
    import ctypes  # noqa: PLC0415 - in the child only: the parent stays small

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_PDEATHSIG")
    if os.getppid() != parent:
        os._exit(128 + signal.SIGTERM)  # the parent died before the line above: so do we
