"""Child processes that are always stopped by their own pid, whatever happens: the one
process manager of the development tools.

Every long-lived program the harness starts (etcd, the control plane, each container
of each pod, the operator of the cluster tests) runs in its own session, so its process
group holds it and everything it forks. Stopping means SIGTERM to that group, a grace
period, then SIGKILL: never a search by name, which could hit another run's processes
on a shared machine. :func:`stop_process` is that sequence; the netns tier's
``Lan.stop`` uses it too, by pid, for the daemons it signals one by one.

A module-level registry remembers every live child so that an interpreter exit
(normal, exception, SIGTERM turned into ``SystemExit``) still stops them: see
:func:`install_exit_safety`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

_live: dict[int, subprocess.Popen[bytes]] = {}
_live_lock = threading.Lock()


def kill_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group led by ``pid``; a vanished group is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def children_of(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (none if it is gone), from /proc.

    A ``keepvip speaker`` runs VRRP in the child of the process that was started (its
    supervisor), as keepalived does in its VRRP child: whoever must freeze, starve or kill
    exactly that process asks here, by pid.
    """
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def kill_pid(pid: int, sig: int) -> None:
    """Send ``sig`` to the process ``pid`` only; a vanished process is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def crash_together(parent: int, children: Sequence[int]) -> None:
    """SIGKILL a daemon's parent and children so that none of them acts on another's death.

    keepalived's VRRP child and keepvip's speaker ask the kernel for SIGTERM when their parent
    dies (``PR_SET_PDEATHSIG``), and a child killed first is noticed by its parent (keepvip's
    removes the VIPs and sends priority 0; keepalived's starts a new child). Killed one after
    the other, a process sometimes wins that race (issue 14, fifteenth pass: 2 of 10 `kill`
    faults on keepalived were graceful stops, its VIPs gone in 0.1 s). Every process is
    stopped first (SIGSTOP), then killed: a stopped process runs no handler, and SIGKILL
    ends it all the same; the children before the parent, so none is told of its death.
    """
    pids = [*children, parent]
    for pid in pids:
        kill_pid(pid, signal.SIGSTOP)
    for pid in pids:
        kill_pid(pid, signal.SIGKILL)


def stop_process(proc: subprocess.Popen[Any], grace: float, sig: int = signal.SIGTERM, *,
                 group: bool = True) -> int | None:  # fmt: skip
    """Send ``sig`` (SIGTERM), wait up to ``grace`` seconds, then SIGKILL and reap.

    ``group``: to the process group the child leads (it was started in a session of its
    own), and SIGKILL always follows, since the leader may be gone while children of its
    group live on. Otherwise to the pid only, SIGKILL only if it lingers. Returns the exit
    code (``None`` only if even SIGKILL did not reap it in 5 s).
    """
    send = kill_group if group else kill_pid
    if proc.poll() is None:
        send(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(grace, 0.0))
    if group or proc.poll() is None:
        send(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    _forget(proc)
    return proc.returncode


def _forget(proc: subprocess.Popen[Any]) -> None:
    with _live_lock:
        _live.pop(proc.pid, None)


class ChildProcess:
    """One program run in its own session with stdout and stderr appended to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the program; its log file is appended to, never truncated."""
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        with _live_lock:
            _live[self._proc.pid] = self._proc

    @property
    def pid(self) -> int | None:
        """The process id while started (also its process-group id)."""
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> int | None:
        """The exit code once the program has exited, else ``None``."""
        if self._proc is None:
            return None
        code = self._proc.poll()
        if code is not None:
            _forget(self._proc)
        return code

    def alive(self) -> bool:
        """True while the program runs."""
        return self._proc is not None and self._proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the program's whole process group."""
        if self._proc is not None and self._proc.poll() is None:
            kill_group(self._proc.pid, sig)

    def stop(self, grace: float = 5.0) -> int | None:
        """Stop the process group (SIGTERM, ``grace`` seconds, SIGKILL); returns the exit code."""
        if self._proc is None:
            return None
        return stop_process(self._proc, grace)

    @staticmethod
    def kill_popen(proc: subprocess.Popen[bytes]) -> None:
        """Kill a helper process's whole group at once (timeouts of hooks and probes)."""
        kill_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def stop_all_children(grace: float = 2.0) -> None:
    """Stop every child still registered (the exit path of last resort)."""
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        if proc.poll() is None:
            kill_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        stop_process(proc, 0)


_installed = False


def install_exit_safety() -> None:
    """Make interpreter exit and SIGTERM stop every registered child.

    SIGINT already raises ``KeyboardInterrupt`` and unwinds context managers. SIGTERM's
    default action would end the interpreter without running any cleanup, so when no
    other handler is set it is turned into ``SystemExit``. Idempotent.
    """
    global _installed  # noqa: PLW0603 — one process-wide installation
    if _installed:
        return
    _installed = True
    atexit.register(stop_all_children)
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
    ):
        signal.signal(signal.SIGTERM, _sigterm_to_exit)


def _sigterm_to_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
