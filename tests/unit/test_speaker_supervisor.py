"""The speaker's parent process (keepvip.speaker.supervisor), on real processes without a LAN.

Each scenario runs a small script in a fresh interpreter: it calls ``supervise`` with a
recording stand-in for the sweep (the netns tier runs the real one), and the child plays
the speaker. The parent prints how the child ended and whether it swept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from keepvip.localcluster.procs import children_of
from keepvip.speaker.supervisor import Exited

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from keepvip.speaker.supervisor import supervise

    swept = []
    ended = supervise(remove=lambda: swept.append(1) or [])
    if ended is None:  # the child: the speaker's part
        {child}
        sys.exit(0)
    print(f"status={{ended.status}} code={{ended.exit_code}} swept={{len(swept)}}", flush=True)
    sys.exit(ended.exit_code)
    """
)


def _supervised(child: str, tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "supervised.py"
    script.write_text(SCRIPT.format(child=textwrap.indent(textwrap.dedent(child), " " * 4).strip()))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)


def _child_of(parent: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = children_of(parent)
        if children:
            return children[0]
        time.sleep(0.01)
    raise AssertionError("the supervisor never forked")


def test_a_child_killed_by_a_signal_is_swept_after_and_the_parent_exits_128_plus_the_signal(
    tmp_path: Path,
) -> None:
    process = _supervised("os.kill(os.getpid(), signal.SIGKILL)", tmp_path)
    out, _ = process.communicate(timeout=20)
    assert out.strip() == "status=-9 code=137 swept=1"
    assert process.returncode == 137


def test_a_child_that_exits_by_itself_released_its_vips_and_nothing_is_swept(tmp_path: Path) -> None:
    process = _supervised("sys.exit(3)", tmp_path)
    out, _ = process.communicate(timeout=20)
    assert out.strip() == "status=3 code=3 swept=0"
    assert process.returncode == 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_the_parent_reaches_the_child_and_the_parent_stays(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # The child exits 40 + the signal it got, as the speaker hands over and exits on SIGTERM.
    process = _supervised(
        f"""
        got = []
        signal.signal({int(signum)}, lambda s, f: got.append(s))
        print("ready", flush=True)
        while not got:
            time.sleep(0.01)
        sys.exit(40 + got[0])
        """,
        tmp_path,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    os.kill(process.pid, signum)
    out, _ = process.communicate(timeout=20)
    assert out.strip() == f"status={40 + signum} code={40 + signum} swept=0"


def test_a_child_whose_parent_is_killed_is_told_sigterm_and_stops_as_after_any_sigterm(
    tmp_path: Path,
) -> None:
    # As keepalived's VRRP child (PR_SET_PDEATHSIG, SIGTERM): the speaker hands over and exits.
    told = tmp_path / "told"
    process = _supervised(
        f"""
        signal.signal(signal.SIGTERM, lambda *_: (open({str(told)!r}, "w").write("SIGTERM"), os._exit(0)))
        print("ready", flush=True)
        time.sleep(60)
        """,
        tmp_path,
    )
    child = _child_of(process.pid)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    process.kill()
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and _state(child) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not Path(f"/proc/{child}").exists() or _state(child) == "Z"
    assert told.read_text() == "SIGTERM"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_the_parent_imports_nothing_heavy_before_it_forks() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c",
         "import sys, keepvip.cli, keepvip.speaker.entry, keepvip.speaker.net.handover; print(*sys.modules)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    heavy = {"asyncio", "pydantic", "yaml", "logging", "kubernetes", "ssl", "keepvip.speaker.main"}
    assert heavy.isdisjoint(loaded), heavy & set(loaded)


def test_how_an_ending_is_told() -> None:
    assert (Exited(-9, []).signal, Exited(-9, []).exit_code) == (signal.SIGKILL, 137)
    assert (Exited(0, []).signal, Exited(0, []).exit_code) == (None, 0)
    assert (Exited(2, []).signal, Exited(2, []).exit_code) == (None, 2)
