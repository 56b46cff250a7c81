"""An in-memory LAN for `VirtualRouter`s, driven by a virtual clock.

The unit tier's stand-in for a network segment: every `SendAdvertisement` a router
returns is delivered to every other router on the wire (after ``latency`` seconds),
and the clock jumps straight to the next event, whether a delivery or the earliest
`VirtualRouter.next_deadline`. The wire also plays the speaker's part for the other
actions, so a test can ask who holds the VIPs and when each transition happened.

Faults a test can inject: `Wire.crash` (the node goes silent: it neither sends,
receives nor runs timers, like a powered-off machine), `Wire.isolate` (the node keeps
running but its link is cut both ways, i.e. a split brain), `Wire.shutdown`, priority
changes and fault reasons.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from keepvip.speaker.vrrp.actions import (
    Action,
    AddAddresses,
    Announce,
    ConfigMismatch,
    Dropped,
    RemoveAddresses,
    SendAdvertisement,
    StateChanged,
)
from keepvip.speaker.vrrp.advertisement import Advertisement, IPAddress
from keepvip.speaker.vrrp.config import RouterConfig
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import FaultReason, State, TransitionReason

VRID = 51
VIP = IPv4Address("198.18.0.100")


def host(number: int) -> IPv4Address:
    """A node's primary address on the test LAN (198.18.0.0/15, never routed)."""
    return IPv4Address(f"198.18.0.{number}")


def config(number: int, priority: int = 100, **overrides: Any) -> RouterConfig:
    """VRRPv3, VRID 51, 1 s interval, one VIP; node ``number`` is 198.18.0.<number>."""
    fields: dict[str, Any] = {
        "vrid": VRID,
        "addresses": (VIP,),
        "primary_address": host(number),
        "priority": priority,
        "name": f"node{number}",
    }
    fields.update(overrides)
    return RouterConfig(**fields)


# A generous bound on events per run: a livelock (two routers answering each other
# forever at one instant) fails the test instead of hanging it.
MAX_EVENTS_PER_RUN = 100_000


@dataclass(frozen=True)
class Transition:
    """One `StateChanged`, stamped with the virtual time and the node."""

    time: float
    node: str
    old: State
    new: State
    reason: TransitionReason


@dataclass
class Node:
    """A router on the wire, and what the speaker would have done for it so far."""

    name: str
    router: VirtualRouter
    alive: bool = True
    connected: bool = True
    addresses: set[IPAddress] = field(default_factory=set)
    sent: list[tuple[float, Advertisement]] = field(default_factory=list)
    announced: list[tuple[float, tuple[IPAddress, ...]]] = field(default_factory=list)
    dropped: list[tuple[float, Dropped]] = field(default_factory=list)
    mismatches: list[tuple[float, ConfigMismatch]] = field(default_factory=list)
    actions: list[tuple[float, Action]] = field(default_factory=list)

    @property
    def state(self) -> State:
        return self.router.state


@dataclass(order=True)
class _Delivery:
    time: float
    seq: int
    sender: str = field(compare=False)
    source: IPAddress = field(compare=False)
    advertisement: Advertisement = field(compare=False)


class Wire:
    """N routers on one segment, a virtual clock, and the speaker's bookkeeping."""

    def __init__(self, latency: float = 0.0, start_time: float = 0.0) -> None:
        self.latency = latency
        self.now = start_time
        self.nodes: dict[str, Node] = {}
        self.transitions: list[Transition] = []
        self._in_flight: list[_Delivery] = []
        self._seq = itertools.count()

    # ----------------------------------------------------------------- building it

    def add(self, name: str, config: RouterConfig) -> Node:
        node = Node(name, VirtualRouter(config))
        self.nodes[name] = node
        return node

    def router(self, name: str) -> VirtualRouter:
        return self.nodes[name].router

    # ------------------------------------------------------------------ test inputs

    def start(self, *names: str) -> None:
        """Start the named routers (all when none is named) at the current time."""
        for name in names or tuple(self.nodes):
            self._apply(name, self.nodes[name].router.start(self.now))

    def shutdown(self, name: str) -> None:
        self._apply(name, self.nodes[name].router.shutdown(self.now))

    def crash(self, name: str) -> None:
        """Silence the node: no more sending, receiving or timers (it keeps its VIPs)."""
        self.nodes[name].alive = False

    def restart(self, name: str, config: RouterConfig | None = None) -> None:
        """Bring a crashed node back as a fresh process (a new router) and start it."""
        node = self.nodes[name]
        node.router = VirtualRouter(config or node.router.config)
        node.alive = True
        self._apply(name, node.router.start(self.now))

    def isolate(self, name: str) -> None:
        """Cut the node's link both ways; it keeps running (split brain)."""
        self.nodes[name].connected = False

    def heal(self, name: str) -> None:
        self.nodes[name].connected = True

    def set_priority(self, name: str, priority: int) -> None:
        self._apply(name, self.nodes[name].router.set_effective_priority(priority, self.now))

    def enter_fault(self, name: str, reason: FaultReason, detail: str = "") -> None:
        self._apply(name, self.nodes[name].router.enter_fault(reason, self.now, detail))

    def leave_fault(self, name: str, reason: FaultReason, detail: str = "") -> None:
        self._apply(name, self.nodes[name].router.leave_fault(reason, self.now, detail))

    def reconfigure(self, name: str, config: RouterConfig) -> None:
        self._apply(name, self.nodes[name].router.reconfigure(config, self.now))

    def inject(self, name: str, advertisement: Advertisement, source: IPAddress) -> list[Action]:
        """Deliver a crafted advertisement to one node now; return its actions."""
        actions = self.nodes[name].router.receive(advertisement, source, self.now)
        self._apply(name, actions)
        return actions

    # ---------------------------------------------------------------- running time

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, until: float) -> None:
        """Process every delivery and timer due up to ``until``, in time order.

        At equal times, deliveries go first (they were sent earlier), then timers in
        the order the nodes were added.
        """
        for _ in range(MAX_EVENTS_PER_RUN):
            delivery_time = self._in_flight[0].time if self._in_flight else float("inf")
            timer_time, timer_node = self._earliest_timer()
            if min(delivery_time, timer_time) > until:
                self.now = until
                return
            if delivery_time <= timer_time:
                self.now = delivery_time
                self._deliver(heapq.heappop(self._in_flight))
            else:
                self.now = timer_time
                assert timer_node is not None
                actions = self.nodes[timer_node].router.handle_timer(self.now)
                # next_deadline promised something due now: an idle firing means it lied.
                assert actions, f"{timer_node}: next_deadline {timer_time} fired nothing"
                self._apply(timer_node, actions)
        raise AssertionError(f"more than {MAX_EVENTS_PER_RUN} events before t={until}: livelock?")

    def run_until_state(self, name: str, state: State, limit: float) -> float:
        """Run until ``name`` enters ``state``; return that time (fail after ``limit`` s)."""
        deadline = self.now + limit
        while self.nodes[name].state is not state:
            timer_time, _ = self._earliest_timer()
            delivery_time = self._in_flight[0].time if self._in_flight else float("inf")
            step = min(timer_time, delivery_time)
            if step > deadline:
                raise AssertionError(f"{name} not {state.value} by t={deadline}")
            self.run_until(step)
        return self.last_transition(name).time

    # ------------------------------------------------------------------- questions

    def masters(self) -> list[str]:
        """Running (alive) nodes in MASTER."""
        return [n.name for n in self.nodes.values() if n.alive and n.state is State.MASTER]

    def holders(self) -> list[str]:
        """Alive nodes with any VIP bound."""
        return [n.name for n in self.nodes.values() if n.alive and n.addresses]

    def last_transition(self, name: str) -> Transition:
        return [t for t in self.transitions if t.node == name][-1]

    def transitions_of(self, name: str) -> list[Transition]:
        return [t for t in self.transitions if t.node == name]

    # ----------------------------------------------------------------- the speaker

    def _earliest_timer(self) -> tuple[float, str | None]:
        best: tuple[float, str | None] = (float("inf"), None)
        for node in self.nodes.values():
            deadline = node.router.next_deadline
            if node.alive and deadline is not None and deadline < best[0]:
                best = (deadline, node.name)
        return best

    def _deliver(self, delivery: _Delivery) -> None:
        for node in self.nodes.values():
            if node.name != delivery.sender and node.alive and node.connected:
                actions = node.router.receive(delivery.advertisement, delivery.source, self.now)
                self._apply(node.name, actions)

    def _apply(self, name: str, actions: list[Action]) -> None:
        node = self.nodes[name]
        for action in actions:
            node.actions.append((self.now, action))
            match action:
                case SendAdvertisement(advertisement):
                    node.sent.append((self.now, advertisement))
                    if node.connected:
                        heapq.heappush(
                            self._in_flight,
                            _Delivery(
                                self.now + self.latency,
                                next(self._seq),
                                name,
                                node.router.config.primary_address,
                                advertisement,
                            ),
                        )
                case AddAddresses(addresses):
                    node.addresses.update(addresses)
                case RemoveAddresses(addresses):
                    node.addresses.difference_update(addresses)
                case Announce(addresses):
                    node.announced.append((self.now, addresses))
                case StateChanged(old, new, reason):
                    self.transitions.append(Transition(self.now, name, old, new, reason))
                case Dropped():
                    node.dropped.append((self.now, action))
                case ConfigMismatch():
                    node.mismatches.append((self.now, action))
