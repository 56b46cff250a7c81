"""Where a chaos block's run-queue wait accrued (bench/chaos_waits.py): a restarted process's
first seconds are startup, then a fault on its own node, then everything else; the split sums
to the report's total (chaos_invariants.cpu_wait) over the same span."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "netns")]

from chaos_invariants import FaultWindow, cpu_wait  # noqa: E402
from chaos_observe import SchedSample  # noqa: E402
from chaos_schedule import FaultKind  # noqa: E402
from chaos_waits import split  # noqa: E402

OBSERVED = (10.0, 40.0)
# node1's speaker is killed at 20 s and restarted as pid 200 at 21 s; node2 has a cut at 30-32 s.
WINDOWS = [
    FaultWindow("#1 kill@node1", FaultKind.KILL, ("node1",), 20.0, 21.0, 30.0),
    FaultWindow("#2 cut@node2", FaultKind.CUT, ("node2",), 30.0, 32.0, 40.0),
]


def samples(node: str, pid: int, start: float, stop: float, rate: float) -> list[SchedSample]:
    """One sample a second from ``start`` to ``stop``, the wait growing by ``rate`` per second."""
    out = []
    for step in range(round(stop - start) + 1):
        out.append(SchedSample(start + step, node, pid, rate * step))
    return out


def test_a_process_that_started_with_the_block_has_no_startup_in_it() -> None:
    # Born at 9.5 s, before the observation (10 s): its first seconds are the block's start.
    sched = samples("node3", 400, 9.5, 12.5, 0.1)
    totals = split(sched, WINDOWS, OBSERVED, startup=2.0)
    assert totals["startup"] == 0.0
    assert totals["elsewhere"] == pytest.approx(0.2)  # 10.5→11.5→12.5: only samples inside count


def test_the_split_sums_to_the_report_s_total_and_puts_each_wait_where_it_happened() -> None:
    sched = [
        *samples("node1", 100, 0.0, 20.0, 0.01),  # started with the block: never startup
        *samples("node1", 200, 21.0, 40.0, 0.05),  # the restart: 0.05 s of wait a second
        *samples("node2", 300, 0.0, 40.0, 0.02),
    ]
    totals = split(sched, WINDOWS, OBSERVED, startup=2.0)
    # Each increment goes to its later sample's time. pid 200's first two (to 22 and 23 s) are startup.
    assert totals["startup"] == pytest.approx(2 * 0.05)
    # node1 under its kill's window (20 s until the next fault at 30 s): pid 100's step to 20 s and
    # pid 200's six to 24-29 s; node2 under its cut (30 s until the end at 40 s): ten steps, 30-39 s.
    assert totals["own fault"] == pytest.approx(0.01 + 6 * 0.05 + 10 * 0.02)
    # node1 before its fault (11-19 s) and during node2's (30-40 s); node2 at 11-29 s and 40 s.
    assert totals["elsewhere"] == pytest.approx(9 * 0.01 + 11 * 0.05 + 20 * 0.02)
    reported = cpu_wait(sched, "node1", *OBSERVED) + cpu_wait(sched, "node2", *OBSERVED)
    assert sum(totals.values()) == pytest.approx(reported)
