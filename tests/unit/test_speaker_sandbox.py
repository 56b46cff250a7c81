"""Script security and the unprivileged spawn (keepvip.speaker.sandbox), on real files and processes.

These tests run as root (the unit tier runs as root here): they create files with
chown/chmod in temporary directories to exercise keepalived's ownership rules, and they
start real programs as ``nobody`` to read back what the kernel says about them.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keepvip.speaker.checks.exec_probe import ExecProbe
from keepvip.speaker.notify import Notifier
from keepvip.speaker.sandbox import (
    OUTPUT_LIMIT,
    Refusal,
    Refused,
    RunAs,
    ScriptPolicy,
    insecure_reason,
    resolve_script_user,
    spawn,
)
from tests.sandbox_helpers import gone, secure_directory

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown files and change user")

NOBODY = RunAs(65534, 65534, "nobody")
OTHER_UID = 4242


@pytest.fixture
def secure_dir() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp (sticky, root-owned: acceptable as a parent)."""
    with secure_directory("keepvip-sandbox-") as path:
        yield path


def script(directory: Path, name: str = "check", body: str = "exit 0", mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    return path


# -- keepalived's path rules ----------------------------------------------------------


def test_a_root_owned_program_in_root_owned_directories_is_secure(secure_dir: Path) -> None:
    assert insecure_reason(script(secure_dir)) is None
    assert insecure_reason(Path("/bin/sh")) is None


def test_a_program_owned_by_another_user_is_refused(secure_dir: Path) -> None:
    program = script(secure_dir)
    os.chown(program, OTHER_UID, 0)
    assert insecure_reason(program) == f"{program} is owned by uid {OTHER_UID}, not root"


def test_a_program_writable_by_others_is_refused(secure_dir: Path) -> None:
    program = script(secure_dir, mode=0o757)
    assert insecure_reason(program) == f"{program} is writable by others"


def test_group_write_is_refused_for_a_non_root_group_and_tolerated_for_root(secure_dir: Path) -> None:
    program = script(secure_dir, mode=0o775)
    assert insecure_reason(program) is None  # group root
    os.chown(program, 0, OTHER_UID)
    assert insecure_reason(program) == f"{program} is writable by group {OTHER_UID}"


def test_a_writable_directory_above_the_program_is_refused(secure_dir: Path) -> None:
    inner = secure_dir / "a" / "b"
    inner.mkdir(parents=True)
    program = script(inner)
    (secure_dir / "a").chmod(0o777)
    reason = insecure_reason(program)
    assert reason == f"{secure_dir / 'a'} (a directory above {program}) is writable by others"
    (secure_dir / "a").chmod(0o1777)  # sticky: others cannot rename root's entry
    assert insecure_reason(program) is None
    os.chown(secure_dir / "a", OTHER_UID, 0)
    assert (
        insecure_reason(program)
        == f"{secure_dir / 'a'} (a directory above {program}) is owned by uid {OTHER_UID}, not root"
    )


def test_a_symlink_is_judged_by_the_file_it_points_to(secure_dir: Path) -> None:
    unsafe = secure_dir / "unsafe"
    unsafe.mkdir(mode=0o755)
    os.chown(unsafe, OTHER_UID, OTHER_UID)
    target = script(unsafe)
    link = secure_dir / "link"
    link.symlink_to(target)
    assert (
        insecure_reason(link)
        == f"{unsafe} (a directory above {target}) is owned by uid {OTHER_UID}, not root"
    )


def test_a_missing_program_is_reported_not_crashed(secure_dir: Path) -> None:
    reason = insecure_reason(secure_dir / "missing")
    assert reason is not None
    assert "cannot resolve" in reason


# -- the policy --------------------------------------------------------------------------


def test_the_policy_names_every_refusal(secure_dir: Path) -> None:
    program = script(secure_dir)
    cluster = ScriptPolicy(NOBODY, exec_checks=True, allowed=(f"{secure_dir}/*",), require_absolute=True)
    assert cluster.vet_check([str(program), "arg"]) == (str(program), "arg")
    refused = cluster.vet_check(["true"])
    assert isinstance(refused, Refused)
    assert refused.reason is Refusal.NOT_ABSOLUTE
    refused = cluster.vet_check(["/bin/true"])
    assert isinstance(refused, Refused)
    assert refused.reason is Refusal.NOT_ALLOWED
    assert refused.detail == f"/bin/true: not in the allowed commands ({secure_dir}/*)"
    off = ScriptPolicy(NOBODY, exec_checks=False, disabled_hint="exec checks are off (x)")
    refused = off.vet_check([str(program)])
    assert refused == Refused(Refusal.EXEC_DISABLED, f"{program}: exec checks are off (x)")
    program.chmod(0o777)
    refused = cluster.vet_check([str(program)])
    assert isinstance(refused, Refused)
    assert refused.reason is Refusal.INSECURE
    assert str(refused) == f"SECURITY VIOLATION: {program} refused: {program} is writable by others"
    relaxed = ScriptPolicy(NOBODY, script_security=False)
    assert relaxed.vet([str(program)]) == (str(program),)


def test_standalone_resolves_a_bare_name_on_the_safe_path() -> None:
    policy = ScriptPolicy(NOBODY)
    vetted = policy.vet(["true"])
    assert isinstance(vetted, tuple)
    assert vetted[0].endswith("/true")
    assert vetted[0].startswith("/")


def test_the_default_script_user_is_never_root() -> None:
    default = resolve_script_user(None)
    assert default.uid != 0
    assert default.name in {"keepalived_script", "nobody"}
    assert resolve_script_user("root").privileged
    assert resolve_script_user("65534:65534") == RunAs(65534, 65534, "65534")
    with pytest.raises(ValueError, match="no user named 'no-such-user'"):
        resolve_script_user("no-such-user")


# -- spawning ------------------------------------------------------------------------------


def _status_field(status: str, key: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith(key + ":"))


def test_a_program_runs_unprivileged_with_no_capabilities_and_a_bare_environment() -> None:
    status = asyncio.run(spawn(["/bin/cat", "/proc/self/status"], NOBODY, 5)).output
    assert _status_field(status, "Uid").split() == ["65534"] * 4
    assert _status_field(status, "Gid").split() == ["65534"] * 4
    assert _status_field(status, "Groups") == ""
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(_status_field(status, caps), 16) == 0, caps
    assert _status_field(status, "NoNewPrivs") == "1"
    environment = asyncio.run(spawn(["/usr/bin/env"], NOBODY, 5)).output
    assert environment.strip().splitlines() == [f"PATH={ScriptPolicy(NOBODY).path}"]


def test_root_named_explicitly_keeps_the_speakers_privileges() -> None:
    status = asyncio.run(spawn(["/bin/cat", "/proc/self/status"], resolve_script_user("root"), 5)).output
    assert _status_field(status, "Uid").split()[0] == "0"


def test_output_is_read_up_to_a_bound_and_the_rest_is_drained() -> None:
    result = asyncio.run(
        spawn(["/bin/sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; exit 4"], NOBODY, 5)
    )
    assert result.code == 4  # the program was not blocked on a full pipe
    assert len(result.output) == OUTPUT_LIMIT
    assert result.describe() == "exit status 4: " + "x" * 200


def test_a_timeout_kills_the_whole_process_group() -> None:
    started = time.monotonic()
    result = asyncio.run(
        spawn(["/bin/sh", "-c", "sleep 30 & echo $!; sleep 30 & echo $!; wait"], NOBODY, 0.5)
    )
    assert result.code is None
    assert time.monotonic() - started < 5
    children = [int(line) for line in result.output.split()]
    assert len(children) == 2
    deadline = time.monotonic() + 2
    while not all(gone(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(gone(pid) for pid in children)
    assert gone(result.pid)


def test_an_exec_check_that_cannot_be_vetted_never_starts(secure_dir: Path) -> None:
    marker = secure_dir / "ran"
    program = script(secure_dir, body=f"touch {marker}", mode=0o777)
    policy = ScriptPolicy(resolve_script_user("root"))
    result = asyncio.run(ExecProbe([str(program)], 1, policy).run())
    assert not result.ok
    assert result.detail.startswith(f"refused (insecure): SECURITY VIOLATION: {program} refused")
    assert not marker.exists()


def test_notify_runs_as_the_script_user_and_is_killed_after_its_timeout(secure_dir: Path) -> None:
    out = secure_dir / "out"
    out.mkdir()
    os.chown(out, 65534, 65534)
    program = script(secure_dir, body=f'id -u > {out}/uid-$3; echo "$@" > {out}/args-$3; exec sleep 30')
    policy = ScriptPolicy(NOBODY, notify_timeout=0.5)
    notifier = Notifier(str(program), policy)
    assert notifier.refusal() is None

    async def scenario() -> float:
        started = time.monotonic()
        notifier.notify("web", "MASTER", 150)
        notifier.notify("web", "BACKUP", 100)  # waits for the first one's timeout
        while not (out / "uid-BACKUP").exists() and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        await notifier.close()
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert 0.5 <= elapsed < 5
    assert (out / "uid-MASTER").read_text().strip() == "65534"
    assert (out / "args-MASTER").read_text().strip() == "INSTANCE web MASTER 150"


def test_an_insecure_notify_program_is_refused_by_name(secure_dir: Path) -> None:
    program = script(secure_dir)
    os.chown(program, OTHER_UID, 0)
    refusal = Notifier(str(program), ScriptPolicy(NOBODY)).refusal()
    assert refusal is not None
    assert refusal.reason is Refusal.INSECURE
    assert (
        str(refusal)
        == f"SECURITY VIOLATION: {program} refused: {program} is owned by uid {OTHER_UID}, not root"
    )
    assert stat.S_IMODE(program.stat().st_mode) == 0o755
