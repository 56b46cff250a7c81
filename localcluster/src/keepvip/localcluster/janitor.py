"""Clean-up of runs that could not clean up after themselves.

A harness killed with SIGKILL (or a crashed interpreter) leaves its processes and
network namespaces behind. Every run therefore records what it created in
``/run/keepvip-localcluster/<prefix>.json`` together with its owner's pid and start
time; the next run removes the leftovers of runs whose owner is gone. Processes are
ended by the pids recorded (checked against their recorded start time, so a reused pid
is never hit) and by the pids still inside the run's own network namespaces
(``ip netns pids``), never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

STATE_DIR = Path("/run/keepvip-localcluster")


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks), ``None`` if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_identity(pid: int) -> list[int] | None:
    """``[pid, start_time]`` of a live process."""
    start = process_start_time(pid)
    return None if start is None else [pid, start]


def is_same_process(identity: list[int]) -> bool:
    """True when the process recorded as ``identity`` still runs."""
    return process_start_time(identity[0]) == identity[1]


class RunRecord:
    """The state file of one run; rewritten whenever the run creates something."""

    def __init__(self, prefix: str) -> None:
        self.path = STATE_DIR / f"{prefix}.json"
        self.data: dict[str, Any] = {
            "prefix": prefix, "owner": process_identity(os.getpid()),
            "processes": [], "namespaces": [], "host_device": None,
        }

    def save(self) -> None:
        """Write the record atomically."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)

    def remove(self) -> None:
        """Forget the run (it cleaned up)."""
        self.path.unlink(missing_ok=True)


def _kill_netns_pids(netns: str) -> None:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                         check=False).stdout
    for word in out.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(word), signal.SIGKILL)


def kill_namespace_processes(namespaces: list[str]) -> None:
    """SIGKILL every process still inside these network namespaces (ours only)."""
    for netns in namespaces:
        _kill_netns_pids(netns)


def clean_stale_runs() -> list[str]:
    """Remove what dead runs left behind; returns their prefixes."""
    cleaned: list[str] = []
    if not STATE_DIR.is_dir():
        return cleaned
    for path in STATE_DIR.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        owner = data.get("owner")
        if owner and is_same_process(owner):
            continue
        for identity in data.get("processes", []):
            if is_same_process(identity):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(identity[0], signal.SIGKILL)
        kill_namespace_processes(data.get("namespaces", []))
        for netns in data.get("namespaces", []):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        if data.get("host_device"):
            subprocess.run(["ip", "link", "del", data["host_device"]], capture_output=True,
                           check=False)
        path.unlink(missing_ok=True)
        cleaned.append(str(data.get("prefix")))
    return cleaned
