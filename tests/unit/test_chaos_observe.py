"""The chaos observer's record of the client's neighbour table (bench/chaos_observe.py):
``ip -ts monitor neigh`` lines become timed events, and a violation's excerpt shows to which
node the client sent a VIP's packets, so a client gap is explained by the wire *and* by the
client's own ARP cache (issue 14: 3-4 s gaps after a short ``link`` fault)."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "netns")]

from chaos_clock import WallClock  # noqa: E402
from chaos_invariants import Judge  # noqa: E402
from chaos_observe import OBSERVER_NICE, NeighbourEvent, WireFrame, favour_session, parse_neighbour_line  # noqa: E402
from chaos_schedule import VipPlan  # noqa: E402

STAMP = "2026-11-30T02:42:05.313207"
WALL = datetime.datetime.fromisoformat(STAMP).timestamp()
UNIX = WallClock.fixed(0.0)


def test_a_changed_entry_is_an_event_on_the_monotonic_clock() -> None:
    line = f"[{STAMP}] 198.18.0.101 dev eth0 lladdr 02:00:00:00:00:02 STALE"
    assert parse_neighbour_line(line, WallClock.fixed(WALL - 100.0)) == NeighbourEvent(
        100.0, "198.18.0.101", "02:00:00:00:00:02", "STALE"
    )


def test_entries_without_an_address_and_deleted_entries_are_kept() -> None:
    failed = parse_neighbour_line(f"[{STAMP}] 198.18.0.101 dev eth0  FAILED", UNIX)
    gone = f"[{STAMP}] Deleted 198.18.0.102 dev eth0 lladdr 02:00:00:00:00:03 STALE"
    deleted = parse_neighbour_line(gone, UNIX)
    assert failed is not None
    assert (failed.mac, failed.state) == (None, "FAILED")
    assert deleted is not None
    assert (deleted.ip, deleted.state) == ("198.18.0.102", "deleted")


def test_ipv6_and_unstamped_lines_are_skipped() -> None:
    ipv6 = f"[{STAMP}] 2001:db8::1 dev eth0 lladdr 02:00:00:00:00:02 REACHABLE"
    assert parse_neighbour_line(ipv6, UNIX) is None
    assert parse_neighbour_line("198.18.0.101 dev eth0 lladdr 02:00:00:00:00:02 REACHABLE", UNIX) is None


def test_the_excerpt_interleaves_the_client_entry_with_the_wire() -> None:
    vip = VipPlan(1, 1, "198.18.0.101/24", {"node1": 200, "node2": 150, "node3": 100}, True, None)
    macs = {"node1": "02:00:00:00:00:01", "node2": "02:00:00:00:00:02", "node3": "02:00:00:00:00:03"}
    ips = {"node1": "198.18.0.1", "node2": "198.18.0.2", "node3": "198.18.0.3"}
    judge = Judge((vip,), 0.1, 0.1, 0.0, ips, macs)
    frames = [WireFrame(10.0, macs["node2"], "198.18.0.101", None, None, "198.18.0.101")]
    neighbours = [
        NeighbourEvent(2.0, "198.18.0.101", macs["node1"], "REACHABLE"),  # before the excerpt: as it stood
        NeighbourEvent(10.05, "198.18.0.101", macs["node2"], "STALE"),
        NeighbourEvent(10.06, "198.18.0.102", macs["node3"], "STALE"),  # another VIP: not shown
    ]
    lines = judge.excerpt(frames, vip, 10.0, 0.0, neighbours=neighbours)
    assert lines == (
        "    9.500s client neighbour 198.18.0.101 -> node1 REACHABLE (since 2.000s)",
        "   10.000s node2  ARP 198.18.0.101 is-at",
        "   10.050s client neighbour 198.18.0.101 -> node2 STALE",
    )


def test_the_run_raises_its_own_session_s_autogroup_and_does_without_one(tmp_path: Path) -> None:
    # With autogroup scheduling, nice values hold only within a session: the run raises its
    # whole session's weight so that another shell's job cannot take half the host from it.
    autogroup = tmp_path / "autogroup"
    assert favour_session(autogroup)
    assert autogroup.read_text() == f"{OBSERVER_NICE}\n"
    assert not favour_session(tmp_path / "no-such-dir" / "autogroup")  # no autogroups here: a no-op
