"""CPU time and memory of a daemon and its children, read from /proc.

keepalived speaks VRRP from a child of its parent process (and may start a checker
child); so does keepvip since its speaker forks a supervising parent
(``keepvip.speaker.supervisor``; before that it was one process). Both are measured the
same way: the process and every descendant, CPU as user + system ticks, memory as the sum
of ``VmRSS``. A forked child shares pages with its parent, so the RSS sum overstates what
either daemon uses: keepvip's parent shows about 14 MiB of RSS, of which about 6.5 MiB
proportional (PSS), measured with one VIP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (gone processes count 0)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / _TICK


def rss_bytes(pids: list[int]) -> int:
    """Sum of ``VmRSS`` of ``pids``."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass(frozen=True)
class Usage:
    """CPU as a percentage of one core over a window, and RSS at its end."""

    cpu_percent: float
    rss_mib: float


class CpuWindow:
    """Start a window now; :meth:`end` gives the CPU share of the tree since then."""

    def __init__(self, pid: int, now: float) -> None:
        self.pids = descendants(pid)
        self.started = now
        self.cpu = cpu_seconds(self.pids)

    def end(self, now: float) -> Usage:
        used = cpu_seconds(self.pids) - self.cpu
        return Usage(100 * used / max(now - self.started, 1e-9), rss_bytes(self.pids) / 2**20)
