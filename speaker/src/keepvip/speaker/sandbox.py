"""Running other people's programs (exec checks, ``--notify``): who may, as whom, how bounded.

The speaker holds NET_ADMIN and NET_RAW in the node's network namespace. A program it
starts on behalf of a VirtualIP's author must not inherit that: whoever may write a
VirtualIP would otherwise be root on every node. keepalived solves the same problem with
``script_user`` and ``enable_script_security``; this module is that, plus what a kernel
offers since (``no_new_privs``, the capability bounding set):

* :func:`insecure_reason` is keepalived's ``check_script_secure`` rule: the program and
  every directory above it must be owned by root and writable by nobody else (a group
  write bit is tolerated for group root, a sticky directory like /tmp is tolerated),
  else a non-root user could swap the program that root will run.
* :class:`ScriptPolicy` decides before anything runs: exec checks off (the cluster
  default), a relative path where an absolute one is required, a path outside the
  allowlist, a missing or insecure program. Each refusal has a :class:`Refusal` name.
* :func:`spawn` runs what was admitted: no shell, in a new session (so a timeout kills
  the whole process group), with a minimal environment, a bounded output read, and —
  unless the operator named root explicitly — as an unprivileged user with the
  capability bounding set cleared, no supplementary groups and ``no_new_privs``, so
  neither the program nor anything it executes (setuid binaries, file capabilities)
  gets a capability back.

The privilege drop runs in ``preexec_fn`` (between fork and exec), because the bounding
set can only be cleared while the child still holds CAP_SETPCAP, i.e. before setuid;
Popen's own ``user=``/``group=`` run before ``preexec_fn`` and would be too early. The
function only makes system calls (no allocation-heavy Python, no locks), which keeps
the documented fork-with-threads hazard of ``preexec_fn`` out of reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import fnmatch
import grp
import os
import pwd
import shutil
import signal
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The only environment a program gets (keepalived also starts scripts with a bare PATH)."""
OUTPUT_LIMIT = 4096
"""Bytes of a program's output kept for the log; the rest is read and discarded."""
OUTPUT_GRACE = 0.1
"""Seconds to collect output already written when the program exits (its children may
keep the pipe open forever; we do not wait for them)."""
DEFAULT_SCRIPT_USERS = ("keepalived_script", "nobody")
"""keepalived's choice of default script user, in order."""

_PR_CAPBSET_DROP = 24  # linux/prctl.h
_PR_SET_NO_NEW_PRIVS = 38  # linux/prctl.h


class Refusal(enum.Enum):
    """Why a program was not run (log field ``reason``)."""

    EXEC_DISABLED = "exec_disabled"
    NOT_ABSOLUTE = "not_absolute"
    NOT_ALLOWED = "not_allowed"
    NOT_FOUND = "not_found"
    INSECURE = "insecure"


@dataclass(frozen=True)
class Refused:
    """A program the policy will not run, and why (the detail names the path)."""

    reason: Refusal
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class RunAs:
    """The identity programs run as. ``privileged``: root named explicitly, nothing dropped."""

    uid: int
    gid: int
    name: str

    @property
    def privileged(self) -> bool:
        """Root named explicitly: the program keeps the speaker's privileges (keepalived's root)."""
        return self.uid == 0


def resolve_script_user(spec: str | None) -> RunAs:
    """``--script-user``: ``USER``, ``USER:GROUP``, ``UID`` or ``UID:GID``; None: keepalived's default.

    The default is ``keepalived_script`` when that user exists, else ``nobody``; root is
    never a default. Raise ValueError naming what is unknown.
    """
    if spec is None:
        for candidate in DEFAULT_SCRIPT_USERS:
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(candidate)
                return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
        return RunAs(65534, 65534, "65534")
    user, _, group = spec.partition(":")
    uid, default_gid, name = _user(user)
    gid = _group(group) if group else default_gid
    return RunAs(uid, gid, name)


def _user(text: str) -> tuple[int, int, str]:
    if text.isdigit():
        uid = int(text)
        try:
            return uid, pwd.getpwuid(uid).pw_gid, text
        except KeyError:
            return uid, uid, text  # a numeric user needs no passwd entry (containers)
    try:
        entry = pwd.getpwnam(text)
    except KeyError:
        raise ValueError(f"--script-user: no user named {text!r}") from None
    return entry.pw_uid, entry.pw_gid, entry.pw_name


def _group(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValueError(f"--script-user: no group named {text!r}") from None


def insecure_reason(path: Path) -> str | None:
    """Why ``path`` is unsafe for root to run (or to read configuration from); None: safe.

    keepalived's rule (notify.c, ``check_script_secure``), applied to the file and each
    directory up to ``/``: owned by root; not writable by others; not writable by its
    group unless the group is root; a directory with the sticky bit (``/tmp``) may be
    world-writable, since nobody else can rename or remove root's entry in it.
    Symlinks are resolved first: the file that runs is the one that counts.
    """
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as error:
        return f"{path}: cannot resolve: {error}"
    for current in (target, *target.parents):
        try:
            info = current.stat()
        except OSError as error:
            return f"{current}: cannot stat: {error.strerror or error}"
        where = "" if current == target else f" (a directory above {target})"
        if info.st_uid != 0:
            return f"{current}{where} is owned by uid {info.st_uid}, not root"
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if sticky_dir:
            continue
        if info.st_mode & stat.S_IWOTH:
            return f"{current}{where} is writable by others"
        if info.st_gid != 0 and info.st_mode & stat.S_IWGRP:
            return f"{current}{where} is writable by group {info.st_gid}"
    return None


@dataclass(frozen=True)
class ScriptPolicy:
    """What the speaker may run, as whom (built once from the command line).

    ``exec_checks``: whether exec health checks run at all (off by default in a cluster;
    notify is the host operator's own and is not affected). ``allowed``: glob patterns
    over the program's absolute path; None: no allowlist (standalone's default).
    ``require_absolute``: the program must be written as an absolute path (cluster).
    ``script_security``: keepalived's ownership rule (:func:`insecure_reason`).
    """

    run_as: RunAs
    exec_checks: bool = True
    allowed: tuple[str, ...] | None = None
    require_absolute: bool = False
    script_security: bool = True
    disabled_hint: str = "exec checks are disabled on this speaker"
    notify_timeout: float = 30.0
    path: str = field(default=SAFE_PATH)

    @classmethod
    def refuse_all(cls) -> ScriptPolicy:
        """The safe default for code that was not told otherwise: nothing runs."""
        return cls(RunAs(65534, 65534, "nobody"), exec_checks=False, allowed=())

    def vet_check(self, argv: Sequence[str]) -> tuple[str, ...] | Refused:
        """An exec check's command line, with the program resolved, or why it may not run."""
        if not self.exec_checks:
            return Refused(Refusal.EXEC_DISABLED, f"{argv[0]}: {self.disabled_hint}")
        return self.vet(argv)

    def vet(self, argv: Sequence[str]) -> tuple[str, ...] | Refused:
        """A program's command line, with the program resolved, or why it may not run."""
        program = argv[0]
        if self.require_absolute and not program.startswith("/"):
            return Refused(Refusal.NOT_ABSOLUTE, f"{program}: the program must be an absolute path")
        resolved = program if "/" in program else shutil.which(program, path=self.path)
        if resolved is None or not os.path.isfile(resolved):
            return Refused(Refusal.NOT_FOUND, f"{program}: no such program")
        resolved = os.path.abspath(resolved)
        if self.allowed is not None and not any(fnmatch.fnmatchcase(resolved, p) for p in self.allowed):
            allowed = ", ".join(self.allowed) or "nothing"
            return Refused(Refusal.NOT_ALLOWED, f"{resolved}: not in the allowed commands ({allowed})")
        if self.script_security:
            reason = insecure_reason(Path(resolved))
            if reason is not None:
                return Refused(Refusal.INSECURE, f"SECURITY VIOLATION: {resolved} refused: {reason}")
        return (resolved, *argv[1:])


@dataclass(frozen=True)
class SpawnResult:
    """How a run ended: ``code`` None means killed on timeout."""

    pid: int
    code: int | None
    output: str

    def describe(self) -> str:
        """``exit status 3: first line of output`` (for logs and check details)."""
        if self.code is None:
            text = f"killed after timeout (pid {self.pid})"
        elif self.code < 0:
            text = f"killed by {signal.Signals(-self.code).name}"
        else:
            text = f"exit status {self.code}"
        first = self.output.strip().splitlines()[0][:200] if self.output.strip() else ""
        return f"{text}: {first}" if first else text


def _cap_last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


_LIBC = ctypes.CDLL(None, use_errno=True)
_PRCTL = _LIBC.prctl
_PRCTL.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_PRCTL.restype = ctypes.c_int
_LAST_CAP = _cap_last_cap()


def privilege_drop(run_as: RunAs) -> Callable[[], None] | None:
    """The ``preexec_fn`` that makes the child ``run_as`` with no way back to a capability."""
    if run_as.privileged:
        return None
    uid, gid, last = run_as.uid, run_as.gid, _LAST_CAP

    def drop() -> None:  # runs in the child between fork and exec: system calls only
        for cap in range(last + 1):
            if _PRCTL(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # leaving uid 0 clears the permitted and effective sets
        if _PRCTL(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")

    return drop


async def spawn(
    argv: Sequence[str],
    run_as: RunAs,
    timeout: float,
    *,
    path: str = SAFE_PATH,
    on_start: Callable[[int], None] | None = None,
) -> SpawnResult:
    """Run ``argv`` as ``run_as``; kill its process group on timeout or cancellation.

    Raises OSError (or SubprocessError when the privilege drop fails) when it cannot start:
    a program that cannot be made unprivileged does not run at all.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        env={"PATH": path},
        cwd="/",
        preexec_fn=privilege_drop(run_as),
    )
    if on_start is not None:
        on_start(process.pid)
    assert process.stdout is not None
    output = bytearray()
    reader = asyncio.get_running_loop().create_task(_read_bounded(process.stdout, output))
    try:
        try:
            async with asyncio.timeout(timeout):
                code: int | None = await process.wait()
        except TimeoutError:
            code = None
            await kill_group(process)
        await asyncio.wait({reader}, timeout=OUTPUT_GRACE)
    except asyncio.CancelledError:
        await kill_group(process)
        raise
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return SpawnResult(process.pid, code, output.decode("utf-8", "replace"))


async def _read_bounded(stream: asyncio.StreamReader, into: bytearray) -> None:
    """Keep the first :data:`OUTPUT_LIMIT` bytes; read and drop the rest (never block the child)."""
    while chunk := await stream.read(65536):
        room = OUTPUT_LIMIT - len(into)
        if room > 0:
            into += chunk[:room]


async def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group we created (its pgid is the child's pid), then reap the child."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()
