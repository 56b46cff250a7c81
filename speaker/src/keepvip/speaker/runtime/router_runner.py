"""One VirtualIP's virtual router on this node: the adapter around `VirtualRouter`.

The sans-IO core decides; this class feeds it inputs stamped with the loop's monotonic
clock (received advertisements, its one timer, health-check, link and arbiter changes,
reconfiguration, shutdown) and executes the actions it returns, in order: bytes out of
the shared raw socket, VIPs in and out of the kernel with netlink, announcements,
metrics, logs, the notify script and the status report. All inputs go through one
inbox, served one at a time, so the router never sees two inputs at once and an action
list is always executed to its end before the next input.

**No task per router** (issue 15, cost). The timer is an entry in the speaker's one
`Timers` heap, and inputs are served by a callback scheduled on the event loop when
the inbox gets its first item; the core is synchronous, and so are most actions
(sending, metrics, logs, the report). Only binding and unbinding VIPs await the
kernel: an action list that reaches one continues in a task of its own, and the
router's inbox and timer wait until that list has ended, while every other router
goes on advertising on time.

Two promises hold whatever the kernel or a bug does (issue 15):

* **MASTER only with its VIPs bound.** On becoming master the VIPs are bound *before*
  the MASTER state is published or announced to the clients (gratuitous ARP,
  unsolicited NA). The first advertisement goes out before the bind, as RFC 9568
  §6.4.2 and keepalived order it: it settles the election on the wire, and binding
  first delayed it by the kernel's round trip for every router taking over at once
  (issue 14: with 40 VIPs the last advertisements of a node missed the 3.9 ms between
  two backups' Skew_Times, and the lower backup took over too). If the kernel refuses
  or does not finish the bind, the rest of that transition is dropped and the router
  enters FAULT (`FaultReason.ADDRESS_BIND_FAILED`): the core sends priority 0 so a
  backup takes over after Skew_Time (RFC 9568 §6.4.3) and releases whatever was bound.
  The failure is logged and counted (``keepvip_address_bind_failures_total``); after a
  backoff (1 s, doubling to 30 s, back to 1 s after a bind succeeds) the fault clears,
  the router rejoins as BACKUP and binds again when it next wins the election.
* **A failed router never stays a silent MASTER.** If serving the router meets an
  unexpected exception, it logs it, counts it (``keepvip_router_failures_total``),
  enters FAULT (`FaultReason.ROUTER_FAILED`: priority 0, VIPs released, best effort)
  and goes on serving its inbox; the fault clears after the same kind of backoff. The other
  routers and the speaker are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_interface
from typing import Any, Final, NamedTuple, Protocol

from keepvip.api.model import IPInterface
from keepvip.speaker.checks.tracker import CheckState, effective_priority, faulting_checks
from keepvip.speaker.desired import RouterPlan
from keepvip.speaker.logs import RateLimiter
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.handover import Record
from keepvip.speaker.net.vrrp_socket import Received, VrrpSocket
from keepvip.speaker.runtime.handover_table import HandoverTable
from keepvip.speaker.runtime.sockets import SocketKey, SocketPool
from keepvip.speaker.runtime.timers import timers_for
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

RETRY_FIRST: Final = 1.0  # seconds in FAULT after the first bind (or router) failure
RETRY_MAX: Final = 30.0  # the backoff doubles up to this
INBOX_PACKET_LIMIT = 1024
"""Received advertisements a router may have waiting; more are dropped as ``inbox_full``.
A legitimate segment sends a few per second per VRID; only a flood fills this. When it
is full, an advertisement that matters (see `RouterRunner._deliver`) evicts the oldest
lower one instead of being dropped."""


class NodeNetwork(Protocol):
    """What a router needs from the node's network (implemented with netlink).

    ``add_address`` and ``remove_address`` report every failure as an ``OSError``.
    """

    async def add_address(self, ifname: str, vip: IPInterface) -> None: ...
    async def remove_address(self, ifname: str, vip: IPInterface) -> None: ...
    def announce(
        self, name: str, ifname: str, addresses: tuple[IPAddress, ...], still_master: Callable[[], bool]
    ) -> None: ...
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
    message: str | None = None  # what failed, while FAULT for a failed bind (issue 10: the Event's note)


Reporter = Callable[[RouterReport], None]


class _Packet(NamedTuple):  # a tuple: one is made per received advertisement
    advertisement: Advertisement
    source: IPAddress
    arrived: float  # loop time, as the kernel stamped it (`sockets.arrival_time`)
    lower: bool = False  # evictable: below our priority and not from the master, when queued


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


@dataclass(frozen=True)
class _Release:
    """Retry unbinding VIPs whose removal the kernel refused (unless master again by then)."""

    addresses: tuple[IPAddress, ...]


_Input = _Packet | _Checks | _Fault | _HoldMaster | _Reconfigure | _Release | _Stop  # _HoldMaster: track-sync


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
        handover: HandoverTable | None = None,
    ) -> None:
        self.plan = plan
        self.ifname = ifname
        self.primary = primary
        self._pool = pool
        self._network = network
        self._metrics = metrics
        self._reporter = reporter
        self._node = node
        self._handover = handover or HandoverTable(None)  # what the parent sends if we are killed
        self._router = VirtualRouter(build_router_config(plan, primary))
        self._published = self._router.state
        self._inbox: deque[_Input] = deque()
        self._queued_packets = 0  # packets in the inbox: bounded, control items never are
        self._queued_lower = 0  # of which `_Packet.lower`: an eviction looks only when some are
        self._running = False  # started and not stopped: inputs are served
        self._serve_scheduled = False  # a `_serve` callback is on the loop
        self._serving = False  # `_serve` is on the stack
        self._busy: asyncio.Task[None] | None = None  # an action list awaiting the kernel
        self._socket: VrrpSocket | None = None
        self._checks: tuple[CheckState, ...] = ()
        self._since = datetime.now(UTC)
        self._reason = "configured"
        self._conflict: str | None = None
        self._bind_error: str | None = None  # the kernel's refusal, told while FAULT for it
        self._forms: dict[IPAddress, IPInterface] = {vip.ip: vip for vip in plan.addresses}
        self._drop_log = RateLimiter()
        self._backoff: dict[FaultReason, float] = {}
        self._release_backoff = RETRY_FIRST
        self._retries: list[asyncio.TimerHandle] = []
        self._loop = asyncio.get_running_loop()
        # Hook (track-sync): told when an input changed the router's fault set,
        # so a sync group (keepvip.speaker.runtime.sync_groups) can decide again.
        self.on_faults: Callable[[], None] | None = None
        self._timers = timers_for(self._loop)
        self._grid = timer_grid(plan.interval_cs)
        self._tick: float | None = None  # the grid point the timer fired for, while served
        self._core_time = -math.inf  # the latest time the core was told (`_input_time`)
        self._lazy_told: float | None = None  # the interval told to `SocketPool.set_lazy`
        # Labelled metric children resolved once: a `.labels()` lookup per advert was 3-6 %.
        name = plan.name
        self._sent = metrics.advert_sent.labels(name)
        self._received = metrics.advert_received.labels(name)
        self._lateness = metrics.timer_lateness

    # ------------------------------------------------------------------ lifecycle

    @property
    def socket_key(self) -> SocketKey:
        """The shared socket this router listens on."""
        return (self.ifname, self.plan.family, self.plan.group)

    @property
    def state(self) -> State:
        """The state last published: MASTER only once the VIPs are bound.

        The core is MASTER already while the bind is in flight (the rest of its
        action list waits for the kernel); that is not the router's state yet.
        """
        return self._published

    @property
    def alive(self) -> bool:
        """Started, not stopped: inputs and the timer are served (also after a failure)."""
        return self._running

    @property
    def faults(self) -> frozenset[FaultReason]:
        """The kinds of fault holding the router now (hook, track-sync: read by sync groups)."""
        return frozenset(reason for reason, _ in self._router.faults)

    async def start(self, initial_checks: tuple[CheckState, ...] = (), *, link_down: bool = False) -> None:
        """Join the VRRP group and start the router (its kernel actions go on in the background).

        Faults known before the start (link down, weight-0 checks not passing yet) make
        the router start in FAULT instead of joining the election.
        """
        self._socket = self._pool.subscribe(
            self.socket_key,
            name=self.plan.name,
            vrid=self.plan.vrid,
            deliver=self._deliver,
            flush=self._flush,
        )
        self._metrics.priority.labels(self.plan.name).set(self.plan.priority)
        self._metrics.effective_priority.labels(self.plan.name).set(self.plan.priority)
        self._publish_state()
        self._checks = initial_checks
        actions = self._apply_checks(self._now()) if initial_checks else []
        if link_down:
            actions += self._router.enter_fault(FaultReason.LINK_DOWN, self._now(), "")
        self._core_time = self._now()
        actions += self._router.start(self._core_time)
        self._running = True
        # The start's actions run like any input's: what awaits the kernel (a backup
        # making sure its VIPs are not bound) goes on in the background. Awaited here,
        # a speaker starting 1,000 routers one after the other made 1,000 such requests
        # one after the other, each listing the interface's addresses; queued together
        # they share listings (`speaker/net/addresses.py`).
        self._run_start(actions)

    def _run_start(self, actions: list[Action]) -> None:
        try:
            pending = deque(_bind_before_master(actions))
            self._execute_sync(pending)
            if pending:
                self._continue(self._drain(pending))
                return
        except Exception as error:
            self._continue(self._recover(error))
            return
        self._arm()
        if self._inbox:  # inputs that came during the start
            self._schedule_serve()

    def update(self, plan: RouterPlan) -> None:
        """Apply a changed plan in place (same interface and socket), without a flap."""
        self._enqueue(_Reconfigure(plan))

    def set_checks(self, states: tuple[CheckState, ...]) -> None:
        """New health-check statuses (all of this router's checks)."""
        self._enqueue(_Checks(states))

    def set_fault(self, reason: FaultReason, active: bool, detail: str = "") -> None:
        """A link or arbiter fault appeared (active) or cleared."""
        self._enqueue(_Fault(reason, active, detail))

    def hold_master(self, held: bool) -> None:
        """A sync group holds this router out of MASTER, or lets it go (hook, track-sync)."""
        self._enqueue(_HoldMaster(held))

    async def stop(self) -> None:
        """Shutdown event: a master sends priority 0 and releases its VIPs (RFC 9568 §6.4.3)."""
        for retry in self._retries:
            retry.cancel()
        if not self._running:
            await self._execute(self._router.shutdown(self._now()))
        else:
            done: asyncio.Future[None] = self._loop.create_future()
            self._enqueue(_Stop(done))
            await done
        busy = self._busy
        if busy is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await busy
        self._timers.disarm(self)
        self._handover.left(self.plan.name)
        self._pool.unsubscribe(self.socket_key, self.plan.vrid)
        self._network.cancel_announcements(self.plan.name)

    # ------------------------------------------------------------------ serving inputs

    def _now(self) -> float:
        return self._loop.time()

    def _deliver(self, advertisement: Advertisement, packet: Received, arrived: float) -> None:
        """Queue a received advertisement; when the inbox is full, keep the ones that matter.

        Issue 10: under a flood of valid-looking lower-priority adverts the bounded inbox
        was full when the master's advertisement came, so it was dropped with the flood and
        the backup took over after Master_Down_Interval. Now, when full, an advert from the
        current master, or with a priority at least ours (one that could preempt us, RFC
        9568 §6.4.2 / §6.4.3), evicts the oldest queued lower-priority packet — which the
        router would have ignored anyway — instead of being dropped. Either way exactly one
        packet is lost and counted as ``inbox_full``: the bound holds.

        Issues 15 and 14 (a backup's CPU): with nothing queued and nothing running, the
        advertisement of the master this backup follows, heard again unchanged
        (`VirtualRouter.heard_again`), is served here at once: its one effect is the
        Master_Down_Timer's reset, so it skips the inbox and the serve loop. Nothing is
        reordered: this router has no earlier input waiting.
        """
        router = self._router
        source = packet.source
        if not self._inbox and self._busy is None and self._running and not self._serving:
            at = arrived if arrived > self._core_time else self._core_time  # `_input_time`
            if router.heard_again(advertisement, source, at):  # the backup's own master, again
                self._core_time = at
                self._received.inc()
                self._arm()
                return
        matters = advertisement.priority >= router.priority or source == router.master_address
        if self._queued_packets >= INBOX_PACKET_LIMIT:  # a flood: memory stays bounded, counted
            self._count_inbox_full()
            if not (matters and self._evict_oldest_lower()):
                return
        self._queued_packets += 1
        if not matters:
            self._queued_lower += 1
        # Served by `_flush`, which the pool calls once after the batch of reads.
        self._inbox.append(_Packet(advertisement, source, arrived, not matters))

    def _flush(self) -> None:
        """The pool's batch of reads delivered to us: serve it now, in the reader's callback.

        Issue 15 (a backup's CPU): one loop callback per received advertisement was a
        handle, a ready-queue turn and an epoll round per packet; served here, a batch
        costs nothing beyond the inputs themselves. Never re-entrant: while this router
        is being served (its own `_read_pending`), the serve loop picks the packets up.
        With nothing queued (every advertisement was served in `_deliver`) there is
        nothing to do: the timer was armed there.
        """
        if self._inbox:
            self._serve()

    def _count_inbox_full(self) -> None:
        reason = DropReason.INBOX_FULL.value
        self._metrics.advert_dropped.labels(self.plan.name, self.ifname, reason).inc()
        if self._drop_log.allow((reason,), self._now()):
            log.warning("advertisements dropped: the router's inbox is full",
                        extra={"virtualip": self.plan.name, "reason": reason})  # fmt: skip

    def _evict_oldest_lower(self) -> bool:
        """Remove the oldest queued `_Packet.lower`; ``False`` when none is queued.

        The count makes a flood of adverts that all matter cost nothing here: no scan of
        the inbox runs while it holds no lower packet.
        """
        if self._queued_lower == 0:
            return False
        for index, item in enumerate(self._inbox):
            if isinstance(item, _Packet) and item.lower:
                del self._inbox[index]
                self._queued_lower -= 1
                self._queued_packets -= 1
                return True
        self._queued_lower = 0  # unreachable while the count is kept right; never scan again for nothing
        return False

    def _enqueue(self, item: _Input) -> None:
        self._inbox.append(item)
        if self._running and self._busy is None:
            self._schedule_serve()

    def _schedule_serve(self) -> None:
        """One callback serves everything queued by then (never re-entrant: not run inline)."""
        if not self._serve_scheduled:
            self._serve_scheduled = True
            self._loop.call_soon(self._serve_soon)

    def _serve_soon(self) -> None:
        self._serve_scheduled = False
        self._serve()

    def on_timer(self, when: float) -> None:
        """`Timers`: the grid point this router's deadline was rounded up to has come."""
        self._tick = when
        try:
            self._serve()
        finally:
            self._tick = None

    def _tell_lazy(self) -> None:
        """Tell the pool how promptly this router's advertisements must be read (issue 14).

        In BACKUP their one effect is the reset of a Master_Down timer three intervals
        away, counted from the kernel's arrival stamp: the pool may read them on a
        schedule (`sockets.LAZY_INTERVALS`). In any other state at once: a master yields
        to a higher priority the moment it is heard.
        """
        router = self._router
        backup = router.state is State.BACKUP and self._running
        interval = router.master_adver_interval_cs / 100 if backup else None
        if interval != self._lazy_told:
            self._lazy_told = interval
            self._pool.set_lazy(self.socket_key, self.plan.vrid, interval)

    def _arm(self) -> None:
        self._tell_lazy()
        deadline = self._router.next_deadline
        if deadline is None:
            self._timers.disarm(self)
            return
        when = on_grid(deadline, self._grid)
        if when > deadline and deadline == self._router.master_down_deadline:
            when = self._master_down_wake(deadline, when)
        self._timers.arm(self, when)

    def _master_down_wake(self, deadline: float, on_grid_point: float) -> float:
        """When to wake for a Master_Down deadline: the grid point before it, then the deadline.

        RFC 9568 §6.1 orders the backups by Skew_Time: (256 - priority) / 256 of the
        interval, so priorities 130 and 120 expire 3.9 ms apart at 100 ms adverts and the
        higher one's advertisement reaches the other before its timer does. Rounded up to a
        5 ms grid, both deadlines can fall on one grid point: both backups took over in the
        same millisecond and the client's ARP entry followed the loser (issue 14, chaos run
        at 100 ms, fault ``link``: a 520 ms gap against a 449 ms bound). The grid still
        serves the wake-ups of backups whose master is alive (their deadline moves on with
        every advertisement); only within the last grid step is the deadline itself armed.
        """
        before = on_grid_point - self._grid
        return before if before > self._now() else deadline

    def _timer_now(self, now: float) -> float:
        """The time the core's timer is told: the grid point, unless the loop is far behind it.

        Told the grid point (not the later moment the loop got to it), a master's next
        deadline is the next grid point again: its adverts stay on the grid, exactly one
        interval apart on the wire, and the routers of one grid point share a wake-up.
        Over a grid step behind (a stalled loop), the real time is told instead, so a
        late advert is followed by a full interval, not by a catch-up burst.
        """
        tick = self._tick
        if tick is not None and tick <= now < tick + self._grid:
            return tick
        return now

    def _serve(self) -> None:
        """Serve the inbox, then the timer if due, until an action awaits the kernel.

        Inputs go first: they arrived before now, and a backup's advertisement that came
        just before its Master_Down deadline must count. Nothing is delivered while this
        runs (it never yields), so a flood cannot starve the timer.
        """
        if self._busy is not None or not self._running or self._serving:
            return
        self._serving = True
        try:
            self._serve_inputs()
        finally:
            self._serving = False

    def _serve_inputs(self) -> None:
        try:
            while True:
                now = self._now()
                if self._inbox:
                    item = self._inbox.popleft()
                    if isinstance(item, _Stop):
                        self._running = False
                        self._timers.disarm(self)
                        self._continue(self._shutdown(item, now))
                        return
                    at = self._input_time(item, now)
                    if self.on_faults is None:
                        actions = self._handle(item, at)
                    else:  # hook (track-sync)
                        faults = self._router.faults
                        actions = self._handle(item, at)
                        if self._router.faults != faults:
                            self._loop.call_soon(self.on_faults)  # never re-entrant: it may enqueue here
                else:
                    deadline = self._router.next_deadline
                    timer_now = self._timer_now(now)
                    if deadline is None or deadline > timer_now:
                        break
                    if self._router.state is State.BACKUP and self._read_pending():
                        continue  # advertisements that came before the deadline go first
                    self._tick = None  # one timer event per wake-up
                    self._lateness.observe(max(0.0, now - deadline))
                    self._core_time = max(self._core_time, timer_now)
                    actions = self._router.handle_timer(timer_now)
                if not actions:  # a backup's advertisement: nothing to execute
                    continue
                pending = deque(_bind_before_master(actions))
                self._execute_sync(pending)
                if pending:  # it awaits the kernel: the rest runs on its own, the others go on
                    self._tell_lazy()  # a new master hears a higher priority at once, bound or not
                    self._continue(self._drain(pending))
                    return
        except Exception as error:
            self._continue(self._recover(error))
            return
        self._arm()

    def _input_time(self, item: _Input, now: float) -> float:
        """The time the core is told for ``item``: an advertisement's arrival, anything else now.

        RFC 9568 §6.4.2 resets Master_Down_Timer when an advertisement *arrives*; read a
        millisecond or more later (`sockets.GATHER_SECONDS`, the loop's own delay), the
        deadline counted from the read came that much late. The core's clock still never
        runs backwards: an advertisement that arrived before the last input the core was
        told of is told that input's time.
        """
        at = max(item.arrived, self._core_time) if isinstance(item, _Packet) else now
        self._core_time = at
        return at

    def still_master(self) -> bool:
        """Before a later round of announcements: still master, counting what has arrived?

        A round can fall due just after a higher priority's advertisement arrived but
        before the router has seen it: the socket's reader gathers a burst for a
        millisecond (`sockets.GATHER_SECONDS`) and serves the routers in a later
        callback. The round then pointed the clients at a node about to release the VIP,
        and the winner's own announcement had gone out a millisecond before (issue 14,
        fifth pass, 100 ms adverts: after a ``partition`` healed the client followed the
        loser and got no answer for 200 ms, until the winner's next round). Reading what
        waits on the socket and serving it first settles it, as `_read_pending` does for
        the Master_Down timer; a router that is busy with the kernel decides after that.
        """
        if self._running and self._busy is None and not self._serving:
            self._pool.read_pending(self.socket_key)
            self._serve()
        return self._router.state is State.MASTER

    def _read_pending(self) -> bool:
        """Before a backup's Master_Down timer decides: did an advertisement wait on the socket?

        RFC 9568 §6.4.2 takes over when no advertisement *arrived* for Master_Down_Interval.
        After the process was off the CPU (a loaded host; the chaos run, issue 14, fault
        ``partition``), this router can be served — its kernel work just done, or its
        timer due — before the loop's reader has delivered what came meanwhile: the loser
        of a healed split brain then became master again, bound and announced the VIP and
        yielded in the same millisecond. One non-blocking read, only when a backup's timer
        is due (rare), settles it.
        """
        self._pool.read_pending(self.socket_key)
        return bool(self._inbox)

    def _continue(self, work: Coroutine[Any, Any, None]) -> None:
        """Finish an action list (or a recovery) in a task; the inbox waits for it."""
        self._busy = self._loop.create_task(self._finish(work), name=f"vrrp-{self.plan.name}")

    async def _finish(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as error:
            await self._recover(error)
        finally:
            self._busy = None
            if self._running:
                self._schedule_serve()  # the inbox and the timer (armed again there)

    async def _shutdown(self, item: _Stop, now: float) -> None:
        try:
            await self._execute(self._router.shutdown(now))
        except Exception:
            log.exception("shutting down failed", extra={"virtualip": self.plan.name})
        finally:
            item.done.set_result(None)

    async def _recover(self, error: Exception) -> None:
        """FAULT after an unexpected error: priority 0 and VIPs released (best effort), then retry."""
        name = self.plan.name
        delay = self._next_backoff(FaultReason.ROUTER_FAILED)
        self._metrics.router_failures.labels(name).inc()
        log.error("router failed (%s: %s); FAULT, VIPs released, rejoining in %.0f s",
                  type(error).__name__, error, delay, exc_info=error,
                  extra={"virtualip": name, "node": self._node,
                         "reason": FaultReason.ROUTER_FAILED.value})  # fmt: skip
        try:
            await self._execute(self._router.enter_fault(FaultReason.ROUTER_FAILED, self._now()))
        except Exception:
            log.exception("releasing after the failure failed too", extra={"virtualip": name})
            for vip in self.plan.addresses:
                with contextlib.suppress(Exception):
                    await self._network.remove_address(self.ifname, vip)
        self._retry_later(FaultReason.ROUTER_FAILED, delay)

    def _next_backoff(self, reason: FaultReason) -> float:
        delay = self._backoff.get(reason, RETRY_FIRST)
        self._backoff[reason] = min(delay * 2, RETRY_MAX)
        return delay

    def _retry_later(self, reason: FaultReason, delay: float) -> None:
        """Clear ``reason`` after ``delay``: the router rejoins (and may bind again)."""
        self._retries = [handle for handle in self._retries if not handle.cancelled()]
        self._retries.append(self._loop.call_later(delay, self.set_fault, reason, False))

    def _handle(self, item: _Input, now: float) -> list[Action]:
        if isinstance(item, _Packet):
            self._queued_packets -= 1
            if item.lower:
                self._queued_lower -= 1
            self._received.inc()
            if item.advertisement.priority == PRIORITY_LEAVING:  # rare: no child kept
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
        return self._handle_hold_or_release(item, now)

    def _handle_hold_or_release(self, item: _Input, now: float) -> list[Action]:
        """A sync group's hold out of MASTER (track-sync), or a release retry.

        A release retry is moot once the router is master again (the VIPs belong here).
        """
        if isinstance(item, _HoldMaster):
            return self._router.hold_master(item.held, now)
        if isinstance(item, _Release) and self._router.state is not State.MASTER:
            return [RemoveAddresses(item.addresses)]
        return []

    def _apply_checks(self, now: float) -> list[Action]:
        """The checks' verdict (priority from the weights, failing weight-0 checks) into the core."""
        priority, _ = effective_priority(self.plan.priority, self._checks)
        self._metrics.effective_priority.labels(self.plan.name).set(priority)
        return self._router.update_health(priority, frozenset(faulting_checks(self._checks)), now)

    def _reconfigure(self, plan: RouterPlan, now: float) -> list[Action]:
        self.plan = plan
        self._grid = timer_grid(plan.interval_cs)
        self._forms.update({vip.ip: vip for vip in plan.addresses})
        priority, _ = effective_priority(plan.priority, self._checks)
        self._metrics.priority.labels(plan.name).set(plan.priority)
        actions = self._router.reconfigure(build_router_config(plan, self.primary), now, priority)
        if self._handover.enabled and self._published is State.MASTER and self._router.state is State.MASTER:
            self._handover.master(plan.name, self._handover_records())  # new addresses, group or peers
        return actions

    # ------------------------------------------------------------------ actions

    def _interface_form(self, address: IPAddress) -> IPInterface:
        """The address with the prefix the plan gave it (also for addresses since removed)."""
        return self._forms.get(address) or ip_interface(f"{address}/{address.max_prefixlen}")

    async def _execute(self, actions: list[Action]) -> None:
        await self._drain(deque(_bind_before_master(actions)))

    async def _drain(self, pending: deque[Action]) -> None:
        """Execute ``pending`` to its end, awaiting the kernel for VIPs in and out."""
        while pending:
            self._execute_sync(pending)
            if not pending:
                return
            action = pending.popleft()
            try:
                await self._execute_kernel(action)
            except OSError as error:
                if isinstance(action, AddAddresses):
                    # Not bound: what is left of this list (MASTER, advertise, announce) is false.
                    remaining = self._bind_failed(action, error, list(pending))
                    pending.clear()
                    pending.extend(remaining)
                    continue
                self._action_failed(action, error)
            else:
                if isinstance(action, AddAddresses):
                    self._backoff.pop(FaultReason.ADDRESS_BIND_FAILED, None)

    def _execute_sync(self, pending: deque[Action]) -> None:
        """Execute from the front of ``pending`` up to the first action that awaits the kernel."""
        while pending and not isinstance(pending[0], _KERNEL_ACTIONS):
            action = pending.popleft()
            try:
                self._execute_one(action)
            except OSError as error:
                self._action_failed(action, error)

    def _action_failed(self, action: Action, error: OSError) -> None:
        # The kernel refused (link gone, buffer full): log, keep the router running;
        # VRRP's own timers recover (the next advertisement, the next transition).
        log.warning(
            "%s failed: %s",
            type(action).__name__,
            error,
            extra={"virtualip": self.plan.name, "node": self._node},
        )

    def _bind_failed(self, action: AddAddresses, error: OSError, skipped: list[Action]) -> list[Action]:
        """FAULT instead of a MASTER without its VIPs; the core sends priority 0 and unbinds."""
        name = self.plan.name
        delay = self._next_backoff(FaultReason.ADDRESS_BIND_FAILED)
        self._metrics.address_bind_failures.labels(name).inc()
        vips = ", ".join(str(a) for a in action.addresses)
        self._bind_error = f"binding {vips} on {self.ifname} failed: {error}"
        log.error("binding %s on %s failed: %s; FAULT (priority 0), retrying in %.0f s",
                  ", ".join(str(a) for a in action.addresses), self.ifname, error, delay,
                  extra={"virtualip": name, "node": self._node,
                         "reason": FaultReason.ADDRESS_BIND_FAILED.value})  # fmt: skip
        actions = self._router.enter_fault(FaultReason.ADDRESS_BIND_FAILED, self._now())
        self._retry_later(FaultReason.ADDRESS_BIND_FAILED, delay)
        # The MASTER of this transition was never published: report the move from before it.
        before = next((a.old for a in skipped if isinstance(a, StateChanged) and a.new is State.MASTER), None)
        if before is None:
            return actions
        return [
            StateChanged(before, a.new, a.reason)
            if isinstance(a, StateChanged) and a.old is State.MASTER
            else a
            for a in actions
        ]

    async def _execute_kernel(self, action: Action) -> None:
        if isinstance(action, AddAddresses):
            for address in action.addresses:
                await self._network.add_address(self.ifname, self._interface_form(address))
        elif isinstance(action, RemoveAddresses):
            await self._release(action.addresses)

    def _execute_one(self, action: Action) -> None:
        name = self.plan.name
        if isinstance(action, SendAdvertisement):
            self._send(action.advertisement)
        elif isinstance(action, Announce):
            self._network.announce(name, self.ifname, action.addresses, self.still_master)
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

    async def _release(self, addresses: tuple[IPAddress, ...]) -> None:
        """Unbind every address; those the kernel refused are retried with a backoff.

        A VIP left bound on a node that is no longer master answers for an address that
        another node now holds, so a failed release is not left to chance.
        """
        failed: list[IPAddress] = []
        errors: list[OSError] = []
        for address in addresses:
            try:
                await self._network.remove_address(self.ifname, self._interface_form(address))
            except OSError as error:
                failed.append(address)
                errors.append(error)
        if not failed:
            self._release_backoff = RETRY_FIRST
            return
        delay, self._release_backoff = self._release_backoff, min(self._release_backoff * 2, RETRY_MAX)
        self._retries.append(self._loop.call_later(delay, self._enqueue, _Release(tuple(failed))))
        raise OSError(errors[0].errno, f"{errors[0]}; retrying in {delay:.0f} s")

    def _destinations(self) -> tuple[IPAddress, ...]:
        """The multicast group, or the unicast peers."""
        return (self.plan.group,) if self.plan.group is not None else self.plan.unicast_peers

    def _send(self, advertisement: Advertisement) -> None:
        assert self._socket is not None
        for destination in self._destinations():
            payload = encode(advertisement, source=self.primary, destination=destination,
                             checksum=self.plan.checksum)  # fmt: skip
            self._socket.send(payload, source=self.primary, destination=destination)
        self._sent.inc()
        if advertisement.priority == PRIORITY_LEAVING:  # rare: no child kept
            self._metrics.priority_zero_sent.labels(self.plan.name).inc()

    def _state_changed(self, change: StateChanged) -> None:
        name = self.plan.name
        self._published = change.new
        self._since = datetime.now(UTC)
        self._reason = change.reason.value
        if change.new is State.MASTER:
            self._metrics.become_master.labels(name).inc()
            if self._handover.enabled:
                self._handover.master(name, self._handover_records())
        if change.old is State.MASTER:
            self._metrics.release_master.labels(name).inc()
            self._network.cancel_announcements(name)
            self._handover.left(name)
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

    def _handover_records(self) -> list[Record]:
        """The priority-0 advertisements the parent sends in our place if this process is killed
        while master (keepvip.speaker.net.handover), one per destination."""
        assert self._socket is not None
        leaving = self._router.leaving_advertisement()
        return [
            Record(self._socket.ifindex, self.primary.packed, destination.packed,
                   encode(leaving, source=self.primary, destination=destination, checksum=self.plan.checksum))
            for destination in self._destinations()
        ]  # fmt: skip

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
                message=self._bind_error if self._reason == _BIND_FAULT else None,
            )
        )


_BIND_FAULT: Final = TransitionReason.FAULT_ADDRESS_BIND.value

GRID_FRACTION: Final = 20  # timer grid step = the advert interval / this ...
GRID_MAX: Final = 0.02  # ... and at most this many seconds


def timer_grid(interval_cs: int) -> float:
    """The step that a router's deadlines are rounded up to (seconds).

    Deadlines on a shared grid let one wake-up of the event loop serve every router due
    at that grid point, instead of one wake-up per router (35-53 % of a speaker's CPU
    at 100 VIPs @ 100 ms). A deadline is served at most one step late: 5 % of the
    interval and never more than 20 ms, well inside Skew_Time, so a Master_Down timer
    fires that much later at worst and an advert never goes out early.
    """
    return min(interval_cs / 100 / GRID_FRACTION, GRID_MAX)


def on_grid(deadline: float, grid: float) -> float:
    """``deadline`` rounded up to a multiple of ``grid``; never before ``deadline``.

    A deadline a hair of float error past a grid point belongs to that point (the
    next grid point would make it a whole step late); it is then served at the
    deadline itself, which is as good as on the grid.
    """
    return max(deadline, math.ceil(deadline / grid - 1e-6) * grid)


_KERNEL_ACTIONS: Final = (AddAddresses, RemoveAddresses)
"""Actions that await netlink; everything else an action list holds runs without yielding."""


def _bind_before_master(actions: list[Action]) -> list[Action]:
    """The actions with each MASTER ``StateChanged`` moved after the ``AddAddresses`` of its transition.

    The core lists the state change first, then the advertisement and the bind
    (`VirtualRouter._become_master`); executing the state change after the bind means
    that MASTER is published (log, metric, status, notify) only once the VIPs are bound,
    while the advertisement still goes out at once, before the kernel is asked.
    """
    ordered = list(actions)
    index = 0
    while index < len(ordered):
        current = ordered[index]
        if isinstance(current, StateChanged) and current.new is State.MASTER:
            bind = _transition_bind(ordered, index)
            if bind is not None:
                ordered.insert(bind, ordered.pop(index))
                index = bind
        index += 1
    return ordered


def _transition_bind(actions: list[Action], change: int) -> int | None:
    """Where the bind of the transition at ``change`` is: its ``AddAddresses``, if the
    only actions between are advertisements (a later state change is another transition)."""
    for index in range(change + 1, len(actions)):
        action = actions[index]
        if isinstance(action, AddAddresses):
            return index
        if not isinstance(action, SendAdvertisement):
            return None
    return None


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
    TransitionReason.FAULT_ADDRESS_BIND: "could not bind the VIPs",
    TransitionReason.FAULT_ROUTER: "router failed",
    TransitionReason.FAULT_CLEARED: "fault cleared",
    TransitionReason.SHUTDOWN: "shutting down",
}
