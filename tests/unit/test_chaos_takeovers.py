"""The chaos report's takeover figures (bench/chaos_takeovers.py) on hand-made captures: a backup
that waited out its Master_Down timer is measured against that timer's deadline, and nothing
else (a priority-0 handover, a master coming back, a node that was away itself, two masters
talking at once) passes for a takeover."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "netns")]

from chaos_invariants import Verdict  # noqa: E402
from chaos_observe import WireFrame  # noqa: E402
from chaos_report import side_by_side  # noqa: E402
from chaos_run import BlockResult  # noqa: E402
from chaos_schedule import make_plan  # noqa: E402
from chaos_takeovers import summary, takeovers  # noqa: E402
from gaps import master_down_interval  # noqa: E402

INTERVAL = 0.1
VIPS = {1: "198.18.0.101"}
IPS = {"node1": "198.18.0.1", "node2": "198.18.0.2"}
MACS = {"node1": "02:00:00:00:00:01", "node2": "02:00:00:00:00:02"}


def advert(node: str, at: float, priority: int) -> WireFrame:
    return WireFrame(at, MACS[node], IPS[node], 1, priority, None)


def garp(node: str, at: float, vip: str = "198.18.0.101") -> WireFrame:
    return WireFrame(at, MACS[node], vip, None, None, vip)


def master_until(node: str, stop: float, priority: int = 200) -> list[WireFrame]:
    return [advert(node, i * INTERVAL, priority) for i in range(round(stop / INTERVAL) + 1)]


def test_a_backup_that_waited_out_its_timer_is_measured_against_its_deadline() -> None:
    down = master_down_interval(INTERVAL, 150)
    frames = [*master_until("node1", 1.0), advert("node2", 1.0 + down + 0.002, 150),
              garp("node2", 1.0 + down + 0.0025)]  # fmt: skip
    [found] = takeovers(frames, INTERVAL, VIPS)
    assert (found.node, found.previous) == ("198.18.0.2", "198.18.0.1")
    assert found.advertised == pytest.approx(0.002)
    assert found.announced == pytest.approx(0.0025)


def test_an_announcement_before_the_advertisement_counts_too_keepalived_binds_after() -> None:
    down = master_down_interval(INTERVAL, 150)
    frames = [*master_until("node1", 1.0), garp("node2", 1.0 + down + 0.001),
              advert("node2", 1.0 + down, 150)]  # fmt: skip
    [found] = takeovers(frames, INTERVAL, VIPS)
    assert found.announced == pytest.approx(0.001)
    assert found.advertised == pytest.approx(0.0)


def test_another_vips_or_another_nodes_announcement_is_not_this_takeovers() -> None:
    down = master_down_interval(INTERVAL, 150)
    frames = [*master_until("node1", 1.0), advert("node2", 1.0 + down, 150),
              garp("node1", 1.0 + down), garp("node2", 1.0 + down, "198.18.0.102")]  # fmt: skip
    [found] = takeovers(frames, INTERVAL, VIPS)
    assert found.announced is None


def test_a_priority_zero_handover_is_not_a_master_down_takeover() -> None:
    frames = [*master_until("node1", 1.0), advert("node1", 1.05, 0), advert("node2", 1.06, 150)]
    assert takeovers(frames, INTERVAL, VIPS) == []


def test_a_master_resuming_or_a_node_that_was_away_itself_is_not_a_takeover() -> None:
    resumed = [*master_until("node1", 1.0), advert("node1", 1.35, 200)]
    came_back = [*master_until("node1", 1.0), advert("node2", 3.0, 150)]  # 2 s of silence: not a timer's
    assert takeovers(resumed, INTERVAL, VIPS) == []
    assert takeovers(came_back, INTERVAL, VIPS) == []


def test_two_masters_talking_at_once_are_not_takeovers() -> None:
    frames = [advert("node1", i * INTERVAL, 200) for i in range(20)]
    frames += [advert("node2", i * INTERVAL + 0.03, 150) for i in range(20)]
    assert takeovers(frames, INTERVAL, VIPS) == []


def test_the_summary_is_median_p99_and_worst_in_milliseconds() -> None:
    assert summary([0.001, 0.002, 0.003, 0.004, 0.030]) == "3.0 / 30.0 / 30.0"
    assert summary([]) == "—"


def test_a_block_saved_before_the_figures_existed_says_so_in_the_report() -> None:
    plan = make_plan(14, INTERVAL, 2, 3)
    old = Verdict()
    del old.takeovers  # as a block saved by the fourth pass unpickles
    new = Verdict()
    new.takeovers = takeovers([*master_until("node1", 1.0), advert("node2", 1.35, 150)], INTERVAL, VIPS)
    blocks = [BlockResult(n, plan, [], verdict, 1.0, 0.0) for n, verdict in [("old", old), ("new", new)]]
    table = side_by_side(blocks)
    assert "| takeovers after the master fell silent | not recorded | 1 |" in table
