"""Acting out one fault on the namespace LAN, and healing it.

How each :class:`~chaos_schedule.FaultKind` is made real (this kernel has no ``sch_netem``
and no tc actions or nftables, so the switch-level faults use the bridge itself):

* ``kill`` / ``term``: SIGKILL (parent and VRRP child together, ``crash_together``) /
  SIGTERM through the daemon harness; healed by starting the daemon again. A killed daemon
  leaves its VIPs on the interface, as a crashed process does; a reboot is not simulated.
* ``freeze``: SIGSTOP to every VRRP process for longer than Master_Down, then SIGCONT.
* ``link``: ``ip link set eth0 down`` inside the node; healed by ``up``.
* ``cut``: the node's veth end in the switch leaves the bridge (``nomaster``): the node's
  link and carrier stay up, it simply reaches nobody; healed by re-enslaving the port.
* ``partition``: both nodes' switch ports are set ``isolated`` (bridge(8)): isolated ports
  cannot exchange frames with each other but still reach every other port, so the two
  nodes lose each other and both keep the gateway and the third node.
* ``gateway``: the node's port and the client's port are set ``isolated``: the node loses
  the gateway (and the client loses the node), the nodes still hear each other.
* ``check``: the node's checked service (port 8081) stops; healed by starting it again.
* ``shape``: a token bucket (``tc qdisc ... tbf rate 1mbit burst 3000 latency 80ms``) on
  both ends of the node's link: up to 80 ms of queueing delay and tail drops once the
  client's probes and the adverts exceed 1 Mbit/s (netem is not built into this kernel).
  Healed by raising both buckets to 1 Gbit/s, where they stay (:data:`UNSHAPED`): removing
  a ``tbf`` discards what it still queues.
* ``starve``: the daemon's processes move into a cgroup (v1 ``cpu``) with
  ``cpu.cfs_quota_us`` 2000 per 100000 µs — 2 % of one core — and back out on heal.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_daemons import CHECKED_PORT, WEB_PORT, signal_all, thaw, vrrp_pids
from chaos_observe import favour
from chaos_schedule import FaultKind, FaultPlan
from keepalived_harness import VrrpDaemon

from keepvip.localcluster import webserver
from keepvip.localcluster.lan import BRIDGE, Lan

HERE = Path(__file__).resolve().parent
CPU_CGROUP = Path("/sys/fs/cgroup/cpu")
STARVED_QUOTA_US = 2000  # of a 100000 µs period
SHAPE = ("tbf", "rate", "1mbit", "burst", "3000", "latency", "80ms")
UNSHAPED = ("tbf", "rate", "1gbit", "burst", "256kb", "latency", "80ms")
"""What a healed link's buckets become, and stay: never removed during a run. Removing them
(``tc qdisc del``) discarded the packets a ``tbf`` still queued (up to 80 ms of the probed
service's answers), a loss the fault did not ask for, which showed as a client gap starting
at the heal in either daemon's block at random (issue 14, eleventh pass); removing them once
drained still left gaps that began at the removal. ``tc qdisc change`` keeps the queue, at
1 Gbit/s it leaves at once, and the node's next ``shape`` changes the same buckets back."""
RESTART_READY_TIMEOUT = 30.0


@dataclass
class FaultRecord:
    """One fault as it happened (monotonic seconds)."""

    plan: FaultPlan
    started: float
    applied: float = 0.0
    heal_started: float = 0.0
    healed: float = 0.0  # restart kinds: the restarted daemon logged its first state
    notes: list[str] = field(default_factory=list)


@dataclass
class Services:
    """Each node's two web servers (``keepvip.localcluster.webserver``): the probed one, the checked one."""

    lan: Lan
    processes: dict[tuple[str, int], subprocess.Popen[Any]] = field(default_factory=dict)

    def start(self, node: str, port: int) -> None:
        process = self.lan.spawn(node, webserver.argv(node, port), stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        if process.stdout.readline().strip() != webserver.READY:
            raise RuntimeError(f"web server {node}:{port} did not start")
        favour(process.pid)  # the observer's instrument must not starve (chaos_observe.OBSERVER_NICE)
        self.processes[(node, port)] = process

    def start_all(self) -> None:
        for host in self.lan.nodes:
            for port in (WEB_PORT, CHECKED_PORT):
                self.start(host.name, port)

    def stop(self, node: str, port: int) -> None:
        process = self.processes.pop((node, port), None)
        if process is not None:
            self.lan.stop(process)

    def close(self) -> None:
        for node, port in list(self.processes):
            self.stop(node, port)


@dataclass
class Injector:
    """Applies and heals faults on one LAN for one implementation's daemons."""

    lan: Lan
    daemons: dict[str, VrrpDaemon]
    services: Services
    expected_down: set[str] = field(default_factory=set)  # nodes whose daemon the fault stopped
    _buckets: set[str] = field(default_factory=set)  # nodes whose link ends carry our tbf (see UNSHAPED)
    _cgroups: dict[str, Path] = field(default_factory=dict)

    # -- applying ---------------------------------------------------------------------------------

    def apply(self, fault: FaultPlan) -> FaultRecord:
        record = FaultRecord(fault, started=time.monotonic())
        node = fault.nodes[0]
        kind = fault.kind
        if kind is FaultKind.KILL:
            self.expected_down.add(node)
            self.daemons[node].crash()
        elif kind is FaultKind.TERM:
            self.expected_down.add(node)
            code = self.daemons[node].stop()
            if code != 0:
                record.notes.append(f"exit code {code} after SIGTERM")
        elif kind is FaultKind.FREEZE:
            signal_all(vrrp_pids(self.daemons[node]), signal.SIGSTOP)
        elif kind is FaultKind.LINK:
            self.lan.set_link(node, up=False)
        elif kind is FaultKind.CUT:
            self.lan.run(self.lan.switch, "ip", "link", "set", self.lan.node(node).port, "nomaster")
        elif kind is FaultKind.PARTITION:
            for name in fault.nodes:
                self._isolate(name, on=True)
        elif kind is FaultKind.GATEWAY:
            self._isolate(node, on=True)
            self._isolate("client", on=True)
        elif kind is FaultKind.CHECK:
            self.services.stop(node, CHECKED_PORT)
        elif kind is FaultKind.SHAPE:
            self._shape(node)
        elif kind is FaultKind.STARVE:
            self._starve(node)
        record.applied = time.monotonic()
        return record

    # -- healing ----------------------------------------------------------------------------------

    def heal(self, record: FaultRecord) -> None:
        fault = record.plan
        node = fault.nodes[0]
        kind = fault.kind
        record.heal_started = time.monotonic()
        if kind in (FaultKind.KILL, FaultKind.TERM):
            daemon = self.daemons[node]
            before = len(daemon.transitions())
            daemon.start()
            deadline = time.monotonic() + RESTART_READY_TIMEOUT
            while len(daemon.transitions()) == before and time.monotonic() < deadline and daemon.running:
                time.sleep(0.02)
            if len(daemon.transitions()) == before:
                record.notes.append("the restarted daemon logged no state")
            self.expected_down.discard(node)
        elif kind is FaultKind.FREEZE:
            thaw(self.daemons[node])
        elif kind is FaultKind.LINK:
            self.lan.set_link(node, up=True)
        elif kind is FaultKind.CUT:
            port = self.lan.node(node).port
            self.lan.run(self.lan.switch, "ip", "link", "set", port, "master", BRIDGE)
        elif kind is FaultKind.PARTITION:
            for name in fault.nodes:
                self._isolate(name, on=False)
        elif kind is FaultKind.GATEWAY:
            self._isolate(node, on=False)
            self._isolate("client", on=False)
        elif kind is FaultKind.CHECK:
            self.services.start(node, CHECKED_PORT)
        elif kind is FaultKind.SHAPE:
            self._unshape(node)
        elif kind is FaultKind.STARVE:
            self._unstarve(node)
        record.healed = time.monotonic()

    # -- mechanics --------------------------------------------------------------------------------

    def _isolate(self, name: str, *, on: bool) -> None:
        self.lan.isolate(name, on=on)

    def _link_ends(self, name: str) -> tuple[tuple[str, str], ...]:
        host = self.lan.node(name)
        return ((self.lan.switch, host.port), (host.netns, host.ifname))

    def _shape(self, name: str) -> None:
        verb = "change" if name in self._buckets else "add"
        for netns, ifname in self._link_ends(name):
            self.lan.run(netns, "tc", "qdisc", verb, "dev", ifname, "root", *SHAPE)
        self._buckets.add(name)

    def _unshape(self, name: str) -> None:
        """Raise both buckets to :data:`UNSHAPED` and leave them; a failure raises (else still shaped)."""
        for netns, ifname in self._link_ends(name):
            self.lan.run(netns, "tc", "qdisc", "change", "dev", ifname, "root", *UNSHAPED)

    def _starve(self, node: str) -> None:
        group = CPU_CGROUP / f"{self.lan.prefix}-{node}"
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(STARVED_QUOTA_US))
        for pid in vrrp_pids(self.daemons[node]):
            with contextlib.suppress(OSError):
                (group / "cgroup.procs").write_text(str(pid))
        self._cgroups[node] = group

    def _unstarve(self, node: str) -> None:
        group = self._cgroups.pop(node, None)
        if group is None:
            return
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (CPU_CGROUP / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            group.rmdir()

    def close(self) -> None:
        """Undo whatever a fault interrupted by an exception left behind."""
        for node in list(self._cgroups):
            self._unstarve(node)
        for daemon in self.daemons.values():
            thaw(daemon)
