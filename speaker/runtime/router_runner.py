"""One VirtualIP's virtual router on this node: the adapter around `VirtualRouter`.

The sans-IO core decides; this class feeds it inputs stamped with the loop's monotonic
clock (received advertisements, its one timer, health-check, link and arbiter changes,
reconfiguration, shutdown) and executes the actions it returns, in order: bytes out of
the shared raw socket, VIPs in and out of the kernel with netlink, announcements,
metrics, logs, the notify script and the status report. All inputs go through one
queue and one task, so the router never sees two inputs at once and an action list is
always executed to its end before the next input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_interface
from typing import Protocol

from keepvip.api.model import IPInterface
from keepvip.speaker.checks.tracker import CheckState, effective_priority, faulting_checks
from keepvip.speaker.desired import RouterPlan
from keepvip.speaker.logs import RateLimiter
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import Received, VrrpSocket
from keepvip.speaker.runtime.sockets import SocketKey, SocketPool
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
from keepvip.speaker.vrrp.codec import encode
from keepvip.speaker.vrrp.config import RouterConfig
from keepvip.speaker.vrrp.constants import PRIORITY_LEAVING, AuthType
from keepvip.speaker.vrrp.drops import DropReason
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import FaultReason, State, TransitionReason

log = logging.getLogger("keepvip.speaker.router")

INBOX_PACKET_LIMIT = 1024
"""Received advertisements a router may have waiting; more are dropped as ``inbox_full``.
A legitimate segment sends a few per second per VRID; only a flood fills this."""


class NodeNetwork(Protocol):
    """What a router needs from the node's network (implemented with netlink)."""

    async def add_address(self, ifname: str, vip: IPInterface) -> None: ...
    async def remove_address(self, ifname: str, vip: IPInterface) -> None: ...
    def announce(self, name: str, ifname: str, addresses: tuple[IPAddress, ...]) -> None: ...
    def cancel_announcements(self, name: str) -> None: ...


@dataclass(frozen=True)
class RouterReport:
    """This node's view of one VirtualIP: what ``status.nodes`` and the logs show."""

    virtualip: str
    state: State
    priority: int
    effective_priority: int
    interface: str
    since: datetime
    reason: str
    conflict: str | None = None  # an address-list mismatch seen (VRID collision sign)


Reporter = Callable[[RouterReport], None]


@dataclass(frozen=True)
class _Packet:
    advertisement: Advertisement
    source: IPAddress


@dataclass(frozen=True)
class _Checks:
    states: tuple[CheckState, ...]


@dataclass(frozen=True)
class _Fault:
    reason: FaultReason
    active: bool
    detail: str


@dataclass(frozen=True)
class _HoldMaster:  # hook (track-sync): a sync group's hold out of MASTER
    held: bool


@dataclass(frozen=True)
class _Reconfigure:
    plan: RouterPlan


@dataclass(frozen=True)
class _Stop:
    done: asyncio.Future[None]


_Input = _Packet | _Checks | _Fault | _HoldMaster | _Reconfigure | _Stop  # _HoldMaster: track-sync


def build_router_config(plan: RouterPlan, primary: IPAddress, priority: int | None = None) -> RouterConfig:
    """The sans-IO core's configuration for a plan on this node."""
    return RouterConfig(
        vrid=plan.vrid,
        addresses=tuple(a.ip for a in plan.addresses),
        primary_address=primary,
        version=plan.version,
        priority=plan.priority if priority is None else priority,
        interval_cs=plan.interval_cs,
        preempt=plan.preempt,
        preempt_delay=plan.preempt_delay,
        auth_type=AuthType.PASS if plan.password else AuthType.NONE,
        auth_data=plan.password or b"",
        peers=plan.unicast_peers if plan.group is None else (),
        name=plan.name,
    )


class RouterRunner:
    """Runs one virtual router; create with `start`, change with `update`, end with `stop`."""

    def __init__(
        self,
        plan: RouterPlan,
        *,
        ifname: str,
        primary: IPAddress,
        pool: SocketPool,
        network: NodeNetwork,
        metrics: SpeakerMetrics,
        reporter: Reporter,
        node: str,
    ) -> None:
        self.plan = plan
        self.ifname = ifname
        self.primary = primary
        self._pool = pool
        self._network = network
        self._metrics = metrics
        self._reporter = reporter
        self._node = node
        self._router = VirtualRouter(build_router_config(plan, primary))
        self._inbox: asyncio.Queue[_Input] = asyncio.Queue()
        self._queued_packets = 0  # packets in the inbox: bounded, control items never are
        self._task: asyncio.Task[None] | None = None
        self._socket: VrrpSocket | None = None
        self._checks: tuple[CheckState, ...] = ()
        self._since = datetime.now(UTC)
        self._reason = "configured"
        self._conflict: str | None = None
        self._forms: dict[IPAddress, IPInterface] = {vip.ip: vip for vip in plan.addresses}
        self._drop_log = RateLimiter()
        self._loop = asyncio.get_running_loop()
        # Hook (track-sync): told when an input changed the router's fault set,
        # so a sync group (keepvip.speaker.runtime.sync_groups) can decide again.
        self.on_faults: Callable[[], None] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def socket_key(self) -> SocketKey:
        """The shared socket this router listens on."""
        return (self.ifname, self.plan.family, self.plan.group)

    @property
    def state(self) -> State:
        """The router's current state."""
        return self._router.state

    @property
    def faults(self) -> frozenset[FaultReason]:
        """The kinds of fault holding the router now (hook, track-sync: read by sync groups)."""
        return frozenset(reason for reason, _ in self._router.faults)

    async def start(self, initial_checks: tuple[CheckState, ...] = (), *, link_down: bool = False) -> None:
        """Join the VRRP group, start the router and its timer task.

        Faults known before the start (link down, weight-0 checks not passing yet) make
        the router start in FAULT instead of joining the election.
        """
        self._socket = self._pool.subscribe(
            self.socket_key,
            name=self.plan.name,
            vrid=self.plan.vrid,
            deliver=self._deliver,
        )
        self._metrics.priority.labels(self.plan.name).set(self.plan.priority)
        self._metrics.effective_priority.labels(self.plan.name).set(self.plan.priority)
        self._publish_state()
        self._checks = initial_checks
        actions = self._apply_checks(self._now()) if initial_checks else []
        if link_down:
            actions += self._router.enter_fault(FaultReason.LINK_DOWN, self._now(), "")
        actions += self._router.start(self._now())
        await self._execute(actions)
        self._task = self._loop.create_task(self._run(), name=f"vrrp-{self.plan.name}")

    def update(self, plan: RouterPlan) -> None:
        """Apply a changed plan in place (same interface and socket), without a flap."""
        self._inbox.put_nowait(_Reconfigure(plan))

    def set_checks(self, states: tuple[CheckState, ...]) -> None:
        """New health-check statuses (all of this router's checks)."""
        self._inbox.put_nowait(_Checks(states))

    def set_fault(self, reason: FaultReason, active: bool, detail: str = "") -> None:
        """A link or arbiter fault appeared (active) or cleared."""
        self._inbox.put_nowait(_Fault(reason, active, detail))

    def hold_master(self, held: bool) -> None:
        """A sync group holds this router out of MASTER, or lets it go (hook, track-sync)."""
        self._inbox.put_nowait(_HoldMaster(held))

    async def stop(self) -> None:
        """Shutdown event: a master sends priority 0 and releases its VIPs (RFC 9568 §6.4.3)."""
        if self._task is None or self._task.done():
            await self._execute(self._router.shutdown(self._now()))
        else:
            done: asyncio.Future[None] = self._loop.create_future()
            self._inbox.put_nowait(_Stop(done))
            await done
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.unsubscribe(self.socket_key, self.plan.vrid)
        self._network.cancel_announcements(self.plan.name)

    # ------------------------------------------------------------------ the loop

    def _now(self) -> float:
        return self._loop.time()

    def _deliver(self, advertisement: Advertisement, packet: Received) -> None:
        if self._queued_packets >= INBOX_PACKET_LIMIT:  # a flood: memory stays bounded, counted
            reason = DropReason.INBOX_FULL.value
            self._metrics.advert_dropped.labels(self.plan.name, self.ifname, reason).inc()
            if self._drop_log.allow((reason,), self._now()):
                log.warning("advertisements dropped: the router's inbox is full",
                            extra={"virtualip": self.plan.name, "reason": reason})  # fmt: skip
            return
        self._queued_packets += 1
        self._inbox.put_nowait(_Packet(advertisement, packet.source))

    async def _run(self) -> None:
        while True:
            deadline = self._router.next_deadline
            timeout = None if deadline is None else max(0.0, deadline - self._now())
            try:
                item: _Input | None = await asyncio.wait_for(self._inbox.get(), timeout)
            except TimeoutError:
                item = None
            now = self._now()
            if item is None:
                if deadline is not None:
                    self._metrics.timer_lateness.labels(self.plan.name).observe(max(0.0, now - deadline))
                await self._execute(self._router.handle_timer(now))
                continue
            if isinstance(item, _Stop):
                await self._execute(self._router.shutdown(now))
                item.done.set_result(None)
                return
            faults = self._router.faults
            actions = self._handle(item, now)
            await self._execute(actions)
            if self.on_faults is not None and self._router.faults != faults:  # hook (track-sync)
                self.on_faults()

    def _handle(self, item: _Input, now: float) -> list[Action]:
        if isinstance(item, _Packet):
            self._queued_packets -= 1
            self._metrics.advert_received.labels(self.plan.name).inc()
            if item.advertisement.priority == PRIORITY_LEAVING:
                self._metrics.priority_zero_received.labels(self.plan.name).inc()
            return self._router.receive(item.advertisement, item.source, now)
        if isinstance(item, _Checks):
            self._checks = item.states
            return self._apply_checks(now)
        if isinstance(item, _Fault):
            if item.active:
                return self._router.enter_fault(item.reason, now, item.detail)
            return self._router.leave_fault(item.reason, now, item.detail)
        if isinstance(item, _Reconfigure):
            return self._reconfigure(item.plan, now)
        # hook (track-sync): a sync group's hold out of MASTER
        return self._router.hold_master(item.held, now) if isinstance(item, _HoldMaster) else []

    def _apply_checks(self, now: float) -> list[Action]:
        """The checks' verdict (priority from the weights, failing weight-0 checks) into the core."""
        priority, _ = effective_priority(self.plan.priority, self._checks)
        self._metrics.effective_priority.labels(self.plan.name).set(priority)
        return self._router.update_health(priority, frozenset(faulting_checks(self._checks)), now)

    def _reconfigure(self, plan: RouterPlan, now: float) -> list[Action]:
        self.plan = plan
        self._forms.update({vip.ip: vip for vip in plan.addresses})
        priority, _ = effective_priority(plan.priority, self._checks)
        self._metrics.priority.labels(plan.name).set(plan.priority)
        return self._router.reconfigure(build_router_config(plan, self.primary), now, priority)

    # ------------------------------------------------------------------ actions

    def _interface_form(self, address: IPAddress) -> IPInterface:
        """The address with the prefix the plan gave it (also for addresses since removed)."""
        return self._forms.get(address) or ip_interface(f"{address}/{address.max_prefixlen}")

    async def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                await self._execute_one(action)
            except OSError as error:
                # The kernel refused (link gone, buffer full): log, keep the router running;
                # VRRP's own timers recover (the next advertisement, the next transition).
                log.warning(
                    "%s failed: %s",
                    type(action).__name__,
                    error,
                    extra={"virtualip": self.plan.name, "node": self._node},
                )

    async def _execute_one(self, action: Action) -> None:
        name = self.plan.name
        if isinstance(action, SendAdvertisement):
            self._send(action.advertisement)
        elif isinstance(action, AddAddresses):
            for address in action.addresses:
                await self._network.add_address(self.ifname, self._interface_form(address))
        elif isinstance(action, RemoveAddresses):
            for address in action.addresses:
                await self._network.remove_address(self.ifname, self._interface_form(address))
        elif isinstance(action, Announce):
            self._network.announce(name, self.ifname, action.addresses)
        elif isinstance(action, StateChanged):
            self._state_changed(action)
        elif isinstance(action, Dropped):
            self._metrics.advert_dropped.labels(name, self.ifname, action.reason.value).inc()
            if self._drop_log.allow((action.reason.value, str(action.source)), self._now()):
                log.warning("advertisement from %s dropped: %s", action.source, action.reason.value,
                            extra={"virtualip": name, "reason": action.reason.value})  # fmt: skip
        elif isinstance(action, ConfigMismatch):
            self._metrics.advert_mismatch.labels(name, action.reason.value).inc()
            detail = f"{action.reason.value} from {action.source}"
            if detail != self._conflict:
                self._conflict = detail
                log.warning("advertisement disagrees with our configuration: %s", detail,
                            extra={"virtualip": name, "node": self._node})  # fmt: skip
                self._report()

    def _send(self, advertisement: Advertisement) -> None:
        assert self._socket is not None
        destinations: tuple[IPAddress, ...] = (
            (self.plan.group,) if self.plan.group is not None else self.plan.unicast_peers
        )
        for destination in destinations:
            payload = encode(advertisement, source=self.primary, destination=destination,
                             checksum=self.plan.checksum)  # fmt: skip
            self._socket.send(payload, source=self.primary, destination=destination)
        self._metrics.advert_sent.labels(self.plan.name).inc()
        if advertisement.priority == PRIORITY_LEAVING:
            self._metrics.priority_zero_sent.labels(self.plan.name).inc()

    def _state_changed(self, change: StateChanged) -> None:
        name = self.plan.name
        self._since = datetime.now(UTC)
        self._reason = change.reason.value
        if change.new is State.MASTER:
            self._metrics.become_master.labels(name).inc()
        if change.old is State.MASTER:
            self._metrics.release_master.labels(name).inc()
            self._network.cancel_announcements(name)
        self._metrics.transitions.labels(name, change.new.value, change.reason.value).inc()
        self._publish_state()
        log.info(
            "%s %s: %s, priority %d",
            self._node,
            change.new.value,
            _REASON_TEXT.get(change.reason, change.reason.value),
            self._router.priority,
            extra={
                "virtualip": name,
                "node": self._node,
                "state": change.new.value,
                "previous": change.old.value,
                "reason": change.reason.value,
                "priority": self._router.priority,
            },
        )
        self._report()

    def _publish_state(self) -> None:
        self._metrics.vrrp_state.labels(self.plan.name, self.ifname, str(self.plan.vrid)).set(
            self._router.state.keepalived_code
        )

    def _report(self) -> None:
        self._reporter(
            RouterReport(
                virtualip=self.plan.name,
                state=self._router.state,
                priority=self.plan.priority,
                effective_priority=self._router.priority,
                interface=self.ifname,
                since=self._since,
                reason=self._reason,
                conflict=self._conflict,
            )
        )


_REASON_TEXT = {
    TransitionReason.STARTUP: "started",
    TransitionReason.ADDRESS_OWNER: "address owner",
    TransitionReason.MASTER_DOWN_TIMER: "master down timer expired",
    TransitionReason.PRIORITY_ZERO_RECEIVED: "master left (priority 0 received)",
    TransitionReason.PREEMPT: "pre-empted a lower-priority master",
    TransitionReason.HIGHER_PRIORITY_SEEN: "higher priority advertised",
    TransitionReason.EQUAL_PRIORITY_HIGHER_ADDRESS: "equal priority, higher address advertised",
    TransitionReason.FAULT_CHECK: "health check failed",
    TransitionReason.FAULT_LINK: "link down",
    TransitionReason.FAULT_ARBITER: "arbiter unreachable",
    TransitionReason.FAULT_CLEARED: "fault cleared",
    TransitionReason.SHUTDOWN: "shutting down",
}
