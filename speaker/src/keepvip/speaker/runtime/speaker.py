"""The speaker: keeps one running virtual router per VirtualIP that selects this node.

`Speaker.apply` takes a whole configuration snapshot (from the file or the cluster),
derives the desired plans (pure, :func:`keepvip.speaker.desired.desired_routers`) and
converges: routers whose plan is unchanged are not touched (no flap), changed ones are
reconfigured in place when they stay the same virtual router (same interface, family,
destination and VRID), others are stopped gracefully (priority 0, VIPs released) and
started anew. At start it removes the VIPs a previous run left behind (a crash must not
leave a stale VIP); at stop every master hands over with priority 0.
The API server is never consulted here: VRRP alone decides who holds a VIP.

Isolation (issue 9): each VirtualIP is applied on its own. Whatever applying one raises
(no such interface, no source address, a socket or netlink error, a VRID another
VirtualIP on this node still holds, an address the node already has, a status that
was not believed) fails only that VirtualIP: it gets a named `Failure`, one log line
naming the field, and a FAULT entry in this node's ``status.nodes``; every other
VirtualIP keeps running, later snapshots are applied, and the failed one is retried
on the next snapshot and every few seconds. Routers that become a different virtual
router are stopped before any router starts, so a VRID may move between two
VirtualIPs inside one snapshot. Stopping is isolated per router too, and ends by
removing every address keepvip marked, so a shutdown never leaves a VIP behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from keepvip.speaker.checks.shared import SharedCheck, SharedChecks
from keepvip.speaker.checks.tracker import CheckState  # hook (track-sync)
from keepvip.speaker.desired import NodeIdentity, PlanProblem, RouterPlan, Skipped, desired_routers
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.addresses import PROTO_ONLY, remove_leftovers
from keepvip.speaker.net.interfaces import (
    interface_for,
    interface_index,
    is_link_up,
    link_local_ipv6,
    primary_ipv4,
)
from keepvip.speaker.net.ownership import Ownership
from keepvip.speaker.notify import Notifier
from keepvip.speaker.runtime import gc_policy
from keepvip.speaker.runtime.conflicts import NodeAddresses, conflicts_in, read_node_addresses
from keepvip.speaker.runtime.failures import ApplyError, Failure, FailureReport, classify
from keepvip.speaker.runtime.handover_table import HandoverTable
from keepvip.speaker.runtime.network import LinuxNetwork
from keepvip.speaker.runtime.router_runner import RouterReport, RouterRunner
from keepvip.speaker.runtime.sockets import SocketPool
from keepvip.speaker.runtime.sync_groups import SyncGroups  # hook (track-sync)
from keepvip.speaker.runtime.tracking import InterfaceTracking  # hook (track-sync)
from keepvip.speaker.sandbox import ScriptPolicy
from keepvip.speaker.sources.snapshot import ConfigSnapshot
from keepvip.speaker.vrrp.advertisement import IPAddress
from keepvip.speaker.vrrp.state import FaultReason

log = logging.getLogger("keepvip.speaker")

RETRY_UNRESOLVED_SECONDS = 5.0
_T = TypeVar("_T")

NodeReport = RouterReport | FailureReport
"""What goes into this node's ``status.nodes`` entry: a router's view, or why there is no router."""

# Planner refusals that are failures of this VirtualIP on this node (a FAULT entry), with
# the field they are about. MISSING_VRID and NOT_ALLOCATED are waits, not failures.
_SKIP_FAILURES: dict[PlanProblem, tuple[Failure, str]] = {
    PlanProblem.INVALID_STATUS: (Failure.INVALID_STATUS, ""),
    PlanProblem.MISSING_SECRET: (Failure.MISSING_SECRET, ""),
    PlanProblem.EMPTY_PASSWORD: (Failure.EMPTY_PASSWORD, ""),
    PlanProblem.DUPLICATE_ROUTER: (Failure.VRID_IN_USE, "spec.vrrp.vrid"),
    PlanProblem.PLAN_FAILED: (Failure.INTERNAL_ERROR, ""),
}


@dataclass
class _Running:
    """One VirtualIP on this node: its router and the checks that feed it."""

    runner: RouterRunner
    checks: list[SharedCheck] = field(default_factory=list)
    arbiter: SharedCheck | None = None


class Speaker:
    """Converges this node's virtual routers to configuration snapshots."""

    def __init__(
        self,
        node: NodeIdentity,
        ipr: Any,
        metrics: SpeakerMetrics,
        *,
        use_status_allocation: bool,
        notifier: Notifier | None = None,
        on_report: Callable[[NodeReport], None] | None = None,
        on_forget: Callable[[str], None] | None = None,
        garp_refresh: float = 0.0,
        scripts: ScriptPolicy | None = None,
        ownership: Ownership = PROTO_ONLY,
        handover: HandoverTable | None = None,
    ) -> None:
        self.node = node
        self._ipr = ipr
        self._metrics = metrics
        self._use_status = use_status_allocation
        self._notifier = notifier or Notifier(None)
        self._on_report = on_report
        self._on_forget = on_forget
        self._scripts = scripts or ScriptPolicy.refuse_all()  # exec checks: what may run, as whom
        self._shared_checks = SharedChecks()  # a check or arbiter asked by many VIPs runs once
        self._pool = SocketPool(metrics)
        self._ownership = ownership  # how this node's VIPs are marked as keepvip's (issue 10)
        self._handover = handover  # the masters' priority 0, for the parent if we are killed
        self._network = LinuxNetwork(ipr, metrics, garp_refresh, ownership)
        self._running: dict[str, _Running] = {}
        self._snapshot: ConfigSnapshot | None = None
        self._lock = asyncio.Lock()
        self._retry: asyncio.TimerHandle | None = None
        self._failures: dict[str, ApplyError] = {}
        self._waiting: dict[str, tuple[str, str]] = {}
        """VirtualIPs skipped for a reason that is no failure (e.g. not allocated yet), as
        logged: logged again only when the reason changes, not at every snapshot (500
        unallocated VirtualIPs logged 140,000 warnings in five minutes)."""
        self._stopping = False
        self._tracking = InterfaceTracking(ipr)  # hook (track-sync): spec.trackInterfaces
        self._sync = SyncGroups()  # hook (track-sync): spec.syncGroup
        self._node_view: NodeAddresses | None = None
        self._links_up: dict[str, bool] = {}
        """The node's addresses and link states, read at most once per applied snapshot
        (see `_node_addresses`); forgotten when the snapshot is applied."""
        self._node_view_read = False  # routers were started or reconfigured by this apply
        self._stopped = 0  # routers stopped so far (gc_policy)
        self._vrids: dict[tuple[tuple[str, int, IPAddress | None], int], str] = {}
        """(socket key, VRID) -> the running VirtualIP holding it: `_vrid_owner` in O(1)
        (a scan of every running router per start made a 1,000-VIP start quadratic)."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Remove the VIPs a previous run left behind, before joining any VRRP group."""
        for ifname, vip in await remove_leftovers(self._ipr, ownership=self._ownership):
            log.warning("removed %s from %s, left behind by a previous run", vip, ifname)

    async def stop(self) -> None:
        """Every router hands over (priority 0) and releases its VIPs; then close everything.

        Each step is isolated: a router whose stop fails does not keep the others from
        handing over, and every address keepvip marked is removed at the end whatever
        failed before (a SIGTERM never leaves a VIP on the node).
        """
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
        async with self._lock:
            await asyncio.gather(*(self._stop(name) for name in list(self._running)))
            leftovers = await _isolated(
                remove_leftovers(self._ipr, ownership=self._ownership), "removing keepvip's addresses"
            )
            for ifname, vip in leftovers or ():
                log.warning("removed %s from %s at stop (its router did not release it)", vip, ifname)
            await _isolated(self._network.close(), "closing the network")
            await _isolated(_as_coroutine(self._pool.close), "closing the sockets")
            await _isolated(self._notifier.close(), "closing the notifier")

    @property
    def routers(self) -> dict[str, RouterRunner]:
        """The running routers by VirtualIP name."""
        return {name: running.runner for name, running in self._running.items()}

    # ------------------------------------------------------------------ convergence

    @property
    def failures(self) -> dict[str, ApplyError]:
        """The VirtualIPs selecting this node that do not run here, and why."""
        return dict(self._failures)

    async def apply(self, snapshot: ConfigSnapshot) -> None:
        """Converge to ``snapshot``; unchanged routers are not touched, a failing one fails alone."""
        async with self._lock:
            if self._stopping:
                return
            self._snapshot = snapshot
            self._node_view, self._links_up = None, {}
            started = len(self._running)
            stopped = self._stopped
            try:
                await self._converge(snapshot)
            finally:
                self._node_view, self._links_up = None, {}
            if self._node_view_read or len(self._running) != started:
                release_free_memory()
                gc_policy.settle(stopped=self._stopped != stopped)
            self._node_view_read = False

    async def _converge(self, snapshot: ConfigSnapshot) -> None:
        """The body of `apply` (its lock held)."""
        if snapshot.node_labels is not None:
            self.node = NodeIdentity(self.node.name, dict(snapshot.node_labels))
        plans, skipped = desired_routers(
            snapshot.virtualips, self.node, snapshot.secrets, use_status_allocation=self._use_status,
            pending=snapshot.pending, invalid_status=snapshot.invalid_status,
        )  # fmt: skip
        failing = self._skip_failures(skipped)
        for name in [n for n in self._running if n not in plans]:
            await self._stop(name)
        # Routers that will be a different virtual router stop before any starts: a VRID
        # that moves from one VirtualIP to another in this snapshot is free when needed.
        for name, plan in plans.items():
            current = self._running.get(name)
            if current is not None and not _same_router(current.runner.plan, plan):
                await self._stop(name)
        for name, plan in plans.items():
            current = self._running.get(name)
            if current is not None and current.runner.plan == plan:
                continue
            try:
                await self._start_or_update(plan)
            except Exception as error:
                failing[name] = classify(error, during="applying")
                if name in self._running:
                    await self._stop(name, forget=False)
        self._settle(failing, plans)
        self._metrics.routers.set(len(self._running))
        if any(name in plans for name in failing):
            self._schedule_retry()

    def _skip_failures(self, skipped: list[Skipped]) -> dict[str, ApplyError]:
        failing: dict[str, ApplyError] = {}
        waiting: dict[str, tuple[str, str]] = {}
        for item in skipped:
            named = _SKIP_FAILURES.get(item.problem)
            if named is None:
                waiting[item.name] = (item.problem.value, item.detail)
                if self._waiting.get(item.name) != waiting[item.name]:
                    log.warning("not running %s: %s", item.name, item.detail,
                                extra={"virtualip": item.name, "reason": item.problem.value})  # fmt: skip
                continue
            failure, path = named
            failing[item.name] = ApplyError(failure, path, item.detail)
        self._waiting = waiting
        return failing

    def _settle(self, failing: dict[str, ApplyError], plans: dict[str, RouterPlan]) -> None:
        """Log, count and report each new failure once; withdraw the entries of recovered ones."""
        for name, error in failing.items():
            before = self._failures.get(name)
            self._failures[name] = error
            if before is not None and (before.failure, str(before)) == (error.failure, str(error)):
                continue
            fields = {"virtualip": name, "reason": error.failure.value, "field": error.field}
            log.error("VirtualIP %s does not run on this node: %s", name, error, extra=fields)
            self._metrics.virtualip_failures.labels(error.failure.value).inc()
            if error.failure is Failure.ADDRESS_CONFLICT:
                self._metrics.address_conflicts.labels(name).inc()
            plan = plans.get(name)
            report = FailureReport(
                virtualip=name,
                reason=error.failure.value,
                message=str(error),
                interface=plan.interface if plan is not None else None,
                priority=plan.priority if plan is not None else None,
                conflict=str(error) if error.failure is Failure.ADDRESS_CONFLICT else None,
            )
            if self._on_report is not None:
                self._on_report(report)
        for name in [n for n in self._failures if n not in failing]:
            del self._failures[name]
            if name in self._running:
                log.info("runs again", extra={"virtualip": name})  # its router reports its state
            elif self._on_forget is not None:
                self._on_forget(name)

    def _schedule_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        loop = asyncio.get_running_loop()
        self._retry = loop.call_later(RETRY_UNRESOLVED_SECONDS, self._retry_now)

    def _retry_now(self) -> None:
        if self._snapshot is not None and not self._stopping:
            asyncio.get_running_loop().create_task(self._retry_apply(self._snapshot))

    async def _retry_apply(self, snapshot: ConfigSnapshot) -> None:
        if snapshot is self._snapshot:  # a newer snapshot has been applied meanwhile: nothing to retry
            try:
                await self.apply(snapshot)
            except Exception as error:
                log.error("retrying the configuration failed: %s: %s", type(error).__name__, error)
                self._schedule_retry()

    async def _resolve(self, plan: RouterPlan) -> tuple[str, IPAddress]:
        """The interface and the VRRP source address for ``plan`` on this node; `ApplyError` if none."""
        if plan.interface is not None:
            try:
                await interface_index(self._ipr, plan.interface)
            except LookupError:
                raise ApplyError(Failure.INTERFACE_NOT_FOUND, "spec.interface",
                                 f"no interface named {plan.interface!r} on this node") from None  # fmt: skip
        ifname = plan.interface or await interface_for(self._ipr, plan.addresses[0].ip)
        if ifname is None:
            raise ApplyError(Failure.INTERFACE_NOT_FOUND, "spec.addresses[0]",
                             f"no interface of this node has a subnet holding {plan.addresses[0].ip}; "
                             "set spec.interface")  # fmt: skip
        source: IPAddress | None
        if plan.family == 4:
            source = await primary_ipv4(self._ipr, ifname)
        else:
            source = await link_local_ipv6(self._ipr, ifname)
        if source is None:
            kind = "IPv4" if plan.family == 4 else "usable IPv6 link-local"
            raise ApplyError(Failure.NO_SOURCE_ADDRESS, "spec.interface",
                             f"{ifname} has no {kind} address to send VRRP from")  # fmt: skip
        return ifname, source

    async def _node_addresses(self) -> NodeAddresses:
        """The node's own addresses and gateways, read once for the snapshot being applied."""
        if self._node_view is None:
            self._node_view = await read_node_addresses(self._ipr, self._ownership)
            self._node_view_read = True
        return self._node_view

    async def _link_up(self, ifname: str) -> bool:
        """Whether ``ifname`` is up, asked once per interface for the snapshot being applied.

        A change during the apply is not missed: the link monitor reports it to every
        router on the interface (`link_changed`), whatever this said.
        """
        up = self._links_up.get(ifname)
        if up is None:
            up = self._links_up[ifname] = await is_link_up(self._ipr, ifname)
        return up

    def _vrid_owner(self, plan: RouterPlan, ifname: str) -> str | None:
        """Another running VirtualIP that holds this plan's VRID on the same socket, if any."""
        owner = self._vrids.get(((ifname, plan.family, plan.group), plan.vrid))
        return owner if owner != plan.name and owner in self._running else None

    async def _start_or_update(self, plan: RouterPlan) -> None:
        """Start or reconfigure ``plan``'s router; raises (only for this VirtualIP) when it cannot run."""
        current = self._running.get(plan.name)
        try:
            ifname, source = await self._resolve(plan)
            conflicts = conflicts_in(await self._node_addresses(), plan.addresses)
            if conflicts:
                raise ApplyError(Failure.ADDRESS_CONFLICT, "", "; ".join(conflicts))
        except Exception:
            if current is not None:
                await self._stop(plan.name, forget=False)
            raise
        if current is not None:
            runner = current.runner
            before = (runner.ifname, runner.primary, runner.plan.router_key, runner.plan.version)
            if before == (ifname, source, plan.router_key, plan.version):
                old = runner.plan
                runner.update(plan)
                if (old.health_checks, old.arbiter) != (plan.health_checks, plan.arbiter):
                    await self._stop_checks(current)
                    self._start_checks(current, plan)
                await self._follow_plan(current, old, plan)  # hook (track-sync)
                log.info("reconfigured in place", extra={"virtualip": plan.name})
                return
            await self._stop(plan.name, forget=False)
        owner = self._vrid_owner(plan, ifname)
        if owner is not None:
            detail = f"VirtualIP {owner!r} runs VRID {plan.vrid} on {ifname} to the same destination"
            raise ApplyError(Failure.VRID_IN_USE, "spec.vrrp.vrid", detail)
        await self._start(plan, ifname, source)

    async def _start(self, plan: RouterPlan, ifname: str, source: IPAddress) -> None:
        """Start the router; if any step fails, undo the steps done and re-raise."""
        runner = RouterRunner(
            plan,
            ifname=ifname,
            primary=source,
            pool=self._pool,
            network=self._network,
            metrics=self._metrics,
            reporter=self._report,
            node=self.node.name,
            handover=self._handover,
        )
        running = _Running(runner)
        self._running[plan.name] = running
        self._vrids[(runner.socket_key, plan.vrid)] = plan.name
        try:
            link_down = not await self._link_up(ifname)
            self._start_checks(running, plan)
            await self._tracking.track(plan.name, plan.track_interfaces)  # hook (track-sync)
            self._sync.join(plan.name, plan.sync_group, runner)  # hook (track-sync)
            runner.on_faults = lambda: self._sync.reported(plan.name, "")  # hook (track-sync)
            await runner.start(self._health(running), link_down=link_down)  # hook (track-sync): _health
            self._tracking.apply_faults(plan.name, runner)  # hook (track-sync)
            self._replay_checks(running)
        except Exception:
            await self._stop(plan.name, forget=False)  # no other VirtualIP holds this VRID here: checked
            raise
        destination = plan.group if plan.group is not None else "unicast"
        log.info("running VRRP on %s from %s, VRID %d, %s", ifname, source, plan.vrid, destination,
                 extra={"virtualip": plan.name})  # fmt: skip

    def _start_checks(self, running: _Running, plan: RouterPlan) -> None:
        runner = running.runner

        def checks_changed(check: str, passing: bool, detail: str) -> None:
            self._metrics.check_status.labels(plan.name, check).set(1 if passing else 0)
            log.info("health check %s %s: %s", check, "passing" if passing else "failing", detail,
                     extra={"virtualip": plan.name, "check": check})  # fmt: skip
            runner.set_checks(self._health(running))  # hook (track-sync): checks + tracked interfaces

        def arbiter_changed(reachable: bool, detail: str) -> None:
            self._metrics.arbiter_reachable.labels(plan.name).set(1 if reachable else 0)
            log.warning("arbiter %s: %s", "reachable" if reachable else "lost", detail,
                        extra={"virtualip": plan.name})  # fmt: skip
            runner.set_fault(FaultReason.ARBITER_LOST, not reachable, "")

        shared = self._shared_checks
        running.checks = [shared.join_check(c, checks_changed, self._scripts) for c in plan.health_checks]
        if plan.arbiter is not None:
            running.arbiter = shared.join_arbiter(plan.arbiter, runner.ifname, plan.family, arbiter_changed)

    @staticmethod
    def _replay_checks(running: _Running) -> None:
        """Tell a started router what the runs it shares with other VIPs already know.

        After the start and the tracking: the router's first health input must carry its
        tracked interfaces' weights too (``_health``), and an arbiter known lost is a fault.
        """
        for joined in [*running.checks, *([running.arbiter] if running.arbiter else [])]:
            joined.replay()

    async def _stop_checks(self, running: _Running) -> None:
        for check in running.checks:
            await check.stop()
        if running.arbiter is not None:
            await running.arbiter.stop()
        running.checks = []
        running.arbiter = None

    async def _stop(self, name: str, *, forget: bool = True) -> None:
        """Stop one router (priority 0 if master, VIPs released); each step isolated.

        ``forget``: withdraw this node's status entry (False when a FAULT entry follows).
        """
        running = self._running.pop(name, None)
        if running is None:
            return
        self._stopped += 1  # gc_policy: its objects must not stay frozen
        vrid_key = (running.runner.socket_key, running.runner.plan.vrid)
        if self._vrids.get(vrid_key) == name:
            del self._vrids[vrid_key]
        await _isolated(self._stop_checks(running), f"stopping the checks of {name}")
        self._sync.leave(name)  # hook (track-sync)
        self._tracking.forget(name)  # hook (track-sync)
        await _isolated(running.runner.stop(), f"stopping the router of {name}")
        self._metrics.forget(name)
        if forget and self._on_forget is not None:
            self._on_forget(name)
        log.info("stopped", extra={"virtualip": name})

    # ------------------------------------------------------------------ events

    def link_changed(self, ifname: str, up: bool) -> None:
        """The VRRP interface went down (FAULT) or came back up."""
        for running in self._running.values():
            if running.runner.ifname == ifname:
                running.runner.set_fault(FaultReason.LINK_DOWN, not up, "")
        for name in self._tracking.link_changed(ifname, up):  # hook (track-sync): tracked interfaces
            if name in self._running:
                self._retrack(self._running[name])

    def _report(self, report: RouterReport) -> None:
        self._notifier.notify(report.virtualip, report.state.value, report.effective_priority)
        self._sync.reported(report.virtualip, report.reason)  # hook (track-sync)
        if self._on_report is not None:
            self._on_report(report)

    # ------------------------------------------------------------------ track-sync hooks
    # Tracked interfaces and sync groups (keepvip.speaker.runtime.tracking, .sync_groups);
    # the lines above marked "hook (track-sync)" call these.

    def _health(self, running: _Running) -> tuple[CheckState, ...]:
        """The health checks' states and the weighted tracked interfaces', summed together."""
        tracked = self._tracking.verdict(running.runner.plan.name).weighted
        return tuple(check.state for check in running.checks) + tracked

    def _retrack(self, running: _Running) -> None:
        """A tracked interface changed (or the list did): new weights, new weight-0 faults."""
        running.runner.set_checks(self._health(running))
        self._tracking.apply_faults(running.runner.plan.name, running.runner)

    async def _follow_plan(self, running: _Running, old: RouterPlan, plan: RouterPlan) -> None:
        """A plan changed in place (the runner adopts it later): follow its tracking and group."""
        if old.track_interfaces != plan.track_interfaces:
            await self._tracking.track(plan.name, plan.track_interfaces)
            self._retrack(running)
        if old.sync_group != plan.sync_group:
            self._sync.join(plan.name, plan.sync_group, running.runner)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another C library)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the kernel (glibc ``malloc_trim``), after an apply.

    Reading and applying a configuration of a thousand VirtualIPs (the YAML text, its
    documents, the models, the plans) leaves megabytes of freed memory that glibc keeps
    for later: the speaker's RSS stayed at its high-water mark for good (issue 15, RSS
    target). Only after an apply that started, stopped or changed routers; a no-op
    without glibc.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _same_router(old: RouterPlan, new: RouterPlan) -> bool:
    """Whether ``new`` can be applied to ``old``'s router in place (same virtual router)."""
    return (old.interface, old.router_key, old.version) == (new.interface, new.router_key, new.version)


async def _as_coroutine(call: Callable[[], None]) -> None:
    call()


async def _isolated(step: Awaitable[_T], what: str) -> _T | None:
    """Run ``step``; on failure log one line (no traceback) and carry on with the next step."""
    try:
        return await step
    except Exception as error:
        log.error("%s failed: %s: %s", what, type(error).__name__, error)
        return None
