"""bench/lb_holders.py's pure parts: how rounds of holders become "time to one holder each"
and double-holding windows, and how the speakers' transition lines are read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench")]

from lb_holders import Snapshot, Watch, transitions  # noqa: E402

A, B = "198.18.204.1", "198.18.204.2"


def look(at: float, **holders: str) -> Snapshot:
    """A round at ``at`` s: address (as a1/a2 keyword) → comma-separated nodes."""
    named = {"a1": A, "a2": B}
    return Snapshot(at=at, span=0.01, holders={
        named[k]: frozenset(filter(None, v.split(","))) for k, v in holders.items()})  # fmt: skip


def test_a_race_that_resolves_is_a_window_and_one_holder_each_starts_after_it() -> None:
    seen = Watch(look(0.0, a1="", a2=""), stable=3)  # the failure: nobody holds yet
    assert not seen.observe(look(0.5, a1="node-a,node-b", a2="node-b"))
    assert not seen.observe(look(1.0, a1="node-a,node-b", a2="node-b"))
    assert not seen.observe(look(1.5, a1="node-b", a2="node-b"))
    assert not seen.observe(look(2.0, a1="node-b", a2="node-b"))
    assert seen.observe(look(2.5, a1="node-b", a2="node-b"))
    result = seen.result()
    assert result.single_after == 1.5
    assert result.double_windows == {A: (0.5, 1.0)}
    assert result.longest_double() == 0.5
    assert result.summary()["last_round"] == {"counts": {"node-b": 2}, "doubles": [], "missing": []}


def test_a_double_holding_that_stays_never_reaches_one_holder_each() -> None:
    seen = Watch(look(0.0, a1="node-a,node-c", a2="node-c"), stable=2)
    for at in (0.5, 1.0, 1.5):
        assert not seen.observe(look(at, a1="node-a,node-c", a2="node-c"))
    result = seen.result()
    assert result.single_after is None
    assert result.double_windows == {A: (0.0, 1.5)}
    assert result.summary()["last_round"]["doubles"] == [A]


def test_a_single_round_between_doubles_does_not_count_as_settled() -> None:
    seen = Watch(look(0.0, a1="node-b"), stable=2)
    assert not seen.observe(look(0.5, a1="node-a,node-b"))
    assert not seen.observe(look(1.0, a1="node-b"))
    assert seen.observe(look(1.5, a1="node-b"))
    assert seen.result().single_after == 1.0


def test_transitions_are_read_from_json_lines_per_virtualip_in_time_order() -> None:
    def line(time: str, name: str, state: str, reason: str) -> str:
        entry = {"time": time, "level": "INFO", "message": "x", "virtualip": name, "node": "n",
                 "state": state, "previous": "BACKUP", "reason": reason}  # fmt: skip
        return json.dumps(entry)

    logs = {
        "node-a": "\n".join([
            "not json at all",
            line("2026-11-30T01:07:04.217+00:00", "lb-1", "BACKUP", "equal_priority_higher_address"),
            line("2026-11-30T01:07:04.211+00:00", "lb-1", "MASTER", "master_down_timer"),
            line("2026-11-30T01:07:04.300+00:00", "lb-other", "MASTER", "master_down_timer"),
            '{"time": "t", "message": "ready: 3 routers"}',
        ]),
        "node-b": line("2026-11-30T01:07:03.955+00:00", "lb-1", "MASTER", "master_down_timer"),
    }  # fmt: skip
    moves = transitions(logs, {"lb-1"})
    assert [(m["node"], m["state"], m["reason"]) for m in moves["lb-1"]] == [
        ("node-b", "MASTER", "master_down_timer"),
        ("node-a", "MASTER", "master_down_timer"),
        ("node-a", "BACKUP", "equal_priority_higher_address"),
    ]
    assert set(moves) == {"lb-1"}
