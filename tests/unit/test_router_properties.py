"""Properties over random histories: whatever happened, a healthy wire settles on one master.

Hypothesis draws three routers (ties in priority likely, pre-emption and preempt_delay
mixed, v3 intervals different per router so backups adopt) and a sequence of events:
time passing, crashes, restarts, shutdowns, starts, priority changes, faults entered and
cleared. Then the wire is left alone long enough for any election to finish (every
chain of pre-emptions is bounded by preempt_delay + Master_Down_Interval per router) and
the outcome is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from keepvip.speaker.vrrp.config import RouterConfig
from keepvip.speaker.vrrp.state import TRANSITIONS, FaultReason, State
from tests.unit.wire import Wire, config

NODES = ("n1", "n2", "n3")
# Longest possible wait per hop: preempt_delay 2 s + Master_Down_Interval < 4 s at 1 s.
SETTLE_SECONDS = 3 * 7.0
QUIET_SECONDS = 10.0


@dataclass(frozen=True)
class Event:
    kind: str
    node: int = 0
    value: float = 0.0
    fault: FaultReason = FaultReason.CHECK_FAILED


events = st.one_of(
    st.builds(Event, st.just("advance"), value=st.floats(0.0, 8.0)),
    st.builds(
        Event,
        st.sampled_from(["crash", "restart", "shutdown", "start"]),
        st.integers(0, len(NODES) - 1),
    ),
    st.builds(
        Event,
        st.just("priority"),
        st.integers(0, len(NODES) - 1),
        st.sampled_from([1, 50, 100, 150, 200, 254]),
    ),
    st.builds(
        Event,
        st.sampled_from(["fault", "clear"]),
        st.integers(0, len(NODES) - 1),
        fault=st.sampled_from(list(FaultReason)),
    ),
)


@st.composite
def lans(draw: st.DrawFn) -> Wire:
    version = draw(st.sampled_from([2, 3]))
    wire = Wire(latency=draw(st.sampled_from([0.0, 0.001, 0.05])))
    for number, name in enumerate(NODES, start=1):
        cfg: RouterConfig = config(
            number,
            draw(st.sampled_from([50, 100, 100, 200, 254])),
            version=version,
            interval_cs=100 if version == 2 else draw(st.sampled_from([20, 50, 100])),
            preempt=draw(st.booleans()),
            preempt_delay=draw(st.sampled_from([0.0, 0.0, 2.0])),
        )
        wire.add(name, cfg)
    return wire


def play(wire: Wire, event: Event) -> None:
    name = NODES[event.node]
    node = wire.nodes[name]
    if event.kind == "advance":
        wire.run_for(event.value)
    elif event.kind == "restart":
        if not node.alive:
            wire.restart(name)
    elif not node.alive:
        return  # a crashed process takes no input
    elif event.kind == "crash":
        wire.crash(name)
    elif event.kind == "shutdown":
        wire.shutdown(name)
    elif event.kind == "start":
        wire.start(name)
    elif event.kind == "priority":
        wire.set_priority(name, int(event.value))
    elif event.kind == "fault":
        wire.enter_fault(name, event.fault)
    else:
        wire.leave_fault(name, event.fault)


def assert_no_deadline_in_the_past(wire: Wire) -> None:
    for node in wire.nodes.values():
        deadline = node.router.next_deadline
        if node.alive and deadline is not None:
            assert deadline >= wire.now, f"{node.name}: deadline {deadline} < now {wire.now}"


@settings(max_examples=150, deadline=None)
@given(wire=lans(), history=st.lists(events, max_size=15))
def test_a_healthy_wire_settles_on_exactly_one_master(wire: Wire, history: list[Event]) -> None:
    wire.start()
    for event in history:
        play(wire, event)
        assert_no_deadline_in_the_past(wire)

    wire.run_for(SETTLE_SECONDS)
    settled_at = wire.now
    for seen in wire.transitions:  # every move the router made is one the table allows
        assert TRANSITIONS[seen.old].get(seen.reason) is seen.new, seen
    wire.run_for(QUIET_SECONDS)

    running = [
        n for n in wire.nodes.values() if n.alive and n.state in (State.BACKUP, State.MASTER)
    ]
    masters = wire.masters()
    assert len(masters) == (1 if running else 0), wire.transitions[-6:]
    assert wire.holders() == masters  # the VIP is bound exactly where the master is
    assert [t for t in wire.transitions if t.time > settled_at] == []  # and it stays put
    if masters:
        master = wire.router(masters[0])
        for node in running:
            if node.state is State.BACKUP:
                assert node.router.master_address == master.config.primary_address
                if node.router.config.preempt:
                    # A pre-empting backup never sits below a lower-priority master.
                    assert node.router.priority <= master.priority
