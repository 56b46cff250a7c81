"""The speaker: keeps one running virtual router per VirtualIP that selects this node.

`Speaker.apply` takes a whole configuration snapshot (from the file or the cluster),
derives the desired plans (pure, :func:`keepvip.speaker.desired.desired_routers`) and
converges: routers whose plan is unchanged are not touched (no flap), changed ones are
reconfigured in place when they stay the same virtual router (same interface, family,
destination and VRID), others are stopped gracefully (priority 0, VIPs released) and
started anew. At start it removes the VIPs a previous run left behind (a crash must not
leave a stale VIP); at stop every master hands over with priority 0.
The API server is never consulted here: VRRP alone decides who holds a VIP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keepvip.speaker.checks.arbiter import ArbiterRunner
from keepvip.speaker.checks.build import build_runner
from keepvip.speaker.checks.runner import CheckRunner
from keepvip.speaker.checks.tracker import CheckState  # hook (track-sync)
from keepvip.speaker.desired import NodeIdentity, RouterPlan, desired_routers
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.addresses import remove_leftovers
from keepvip.speaker.net.interfaces import interface_for, is_link_up, link_local_ipv6, primary_ipv4
from keepvip.speaker.notify import Notifier
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


@dataclass
class _Running:
    """One VirtualIP on this node: its router and the checks that feed it."""

    runner: RouterRunner
    checks: list[CheckRunner] = field(default_factory=list)
    arbiter: ArbiterRunner | None = None


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
        on_report: Callable[[RouterReport], None] | None = None,
        on_forget: Callable[[str], None] | None = None,
        garp_refresh: float = 0.0,
        scripts: ScriptPolicy | None = None,
    ) -> None:
        self.node = node
        self._ipr = ipr
        self._metrics = metrics
        self._use_status = use_status_allocation
        self._notifier = notifier or Notifier(None)
        self._on_report = on_report
        self._on_forget = on_forget
        self._scripts = scripts or ScriptPolicy.refuse_all()  # exec checks: what may run, as whom
        self._pool = SocketPool(metrics)
        self._network = LinuxNetwork(ipr, metrics, garp_refresh)
        self._running: dict[str, _Running] = {}
        self._snapshot: ConfigSnapshot | None = None
        self._lock = asyncio.Lock()
        self._retry: asyncio.TimerHandle | None = None
        self._tracking = InterfaceTracking(ipr)  # hook (track-sync): spec.trackInterfaces
        self._sync = SyncGroups()  # hook (track-sync): spec.syncGroup

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Remove the VIPs a previous run left behind, before joining any VRRP group."""
        for ifname, vip in await remove_leftovers(self._ipr):
            log.warning("removed %s from %s, left behind by a previous run", vip, ifname)

    async def stop(self) -> None:
        """Every router hands over (priority 0) and releases its VIPs; then close everything."""
        async with self._lock:
            if self._retry is not None:
                self._retry.cancel()
            await asyncio.gather(*(self._stop(name) for name in list(self._running)))
            await self._network.close()
            self._pool.close()
            await self._notifier.close()

    @property
    def routers(self) -> dict[str, RouterRunner]:
        """The running routers by VirtualIP name."""
        return {name: running.runner for name, running in self._running.items()}

    # ------------------------------------------------------------------ convergence

    async def apply(self, snapshot: ConfigSnapshot) -> None:
        """Converge to ``snapshot``; unchanged routers are not touched."""
        async with self._lock:
            self._snapshot = snapshot
            if snapshot.node_labels is not None:
                self.node = NodeIdentity(self.node.name, dict(snapshot.node_labels))
            plans, skipped = desired_routers(
                snapshot.virtualips, self.node, snapshot.secrets, use_status_allocation=self._use_status
            )
            for item in skipped:
                log.warning("not running %s: %s", item.name, item.detail,
                            extra={"virtualip": item.name, "reason": item.problem.value})  # fmt: skip
            for name in [n for n in self._running if n not in plans]:
                await self._stop(name)
            unresolved = False
            for name, plan in plans.items():
                current = self._running.get(name)
                if current is not None and current.runner.plan == plan:
                    continue
                if not await self._start_or_update(plan):
                    unresolved = True
            self._metrics.routers.set(len(self._running))
            if unresolved:
                self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        loop = asyncio.get_running_loop()
        self._retry = loop.call_later(RETRY_UNRESOLVED_SECONDS, self._retry_now)

    def _retry_now(self) -> None:
        if self._snapshot is not None:
            asyncio.get_running_loop().create_task(self.apply(self._snapshot))

    async def _resolve(self, plan: RouterPlan) -> tuple[str, IPAddress] | None:
        """The interface and the VRRP source address for ``plan`` on this node."""
        ifname = plan.interface or await interface_for(self._ipr, plan.addresses[0].ip)
        if ifname is None:
            log.warning("no interface holds a subnet of %s; set spec.interface", plan.addresses[0],
                        extra={"virtualip": plan.name})  # fmt: skip
            return None
        source: IPAddress | None
        if plan.family == 4:
            source = await primary_ipv4(self._ipr, ifname)
        else:
            source = await link_local_ipv6(self._ipr, ifname)
        if source is None:
            kind = "IPv4" if plan.family == 4 else "IPv6 link-local"
            log.warning("%s has no %s address for VRRP", ifname, kind, extra={"virtualip": plan.name})
            return None
        return ifname, source

    async def _start_or_update(self, plan: RouterPlan) -> bool:
        resolved = await self._resolve(plan)
        current = self._running.get(plan.name)
        if resolved is None:
            if current is not None:
                await self._stop(plan.name)
            return False
        ifname, source = resolved
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
                return True
            await self._stop(plan.name)
        await self._start(plan, ifname, source)
        return True

    async def _start(self, plan: RouterPlan, ifname: str, source: IPAddress) -> None:
        runner = RouterRunner(
            plan,
            ifname=ifname,
            primary=source,
            pool=self._pool,
            network=self._network,
            metrics=self._metrics,
            reporter=self._report,
            node=self.node.name,
        )
        running = _Running(runner)
        self._running[plan.name] = running
        link_down = not await is_link_up(self._ipr, ifname)
        self._start_checks(running, plan)
        await self._tracking.track(plan.name, plan.track_interfaces)  # hook (track-sync)
        self._sync.join(plan.name, plan.sync_group, runner)  # hook (track-sync)
        runner.on_faults = lambda: self._sync.reported(plan.name, "")  # hook (track-sync)
        await runner.start(self._health(running), link_down=link_down)  # hook (track-sync): _health
        self._tracking.apply_faults(plan.name, runner)  # hook (track-sync)
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

        running.checks = [build_runner(check, checks_changed, self._scripts) for check in plan.health_checks]
        for check in running.checks:
            check.start()
        if plan.arbiter is not None:
            running.arbiter = ArbiterRunner(plan.arbiter, runner.ifname, plan.family, arbiter_changed)
            running.arbiter.start()

    async def _stop_checks(self, running: _Running) -> None:
        for check in running.checks:
            await check.stop()
        if running.arbiter is not None:
            await running.arbiter.stop()
        running.checks = []
        running.arbiter = None

    async def _stop(self, name: str) -> None:
        running = self._running.pop(name, None)
        if running is None:
            return
        await self._stop_checks(running)
        self._sync.leave(name)  # hook (track-sync)
        self._tracking.forget(name)  # hook (track-sync)
        await running.runner.stop()
        self._metrics.forget(name)
        if self._on_forget is not None:
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
