"""One chaos block: one implementation, one advertisement interval, the whole fault schedule.

:func:`run_block` starts the daemons on an existing LAN (three nodes and a client, each
node running the web server on the probed port and the checked port), waits until
every VIP has exactly one holder, starts the observers, acts the schedule out fault by
fault, lets the LAN settle, reads the final state, stops everything it started and
hands the records to :func:`chaos_invariants.judge`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chaos_clock import ClockWatch
from chaos_daemons import ARBITER_INTERVAL_S, ARBITER_RISE, CHECKED_PORT, make_daemon
from chaos_faults import FaultRecord, Injector, Services
from chaos_invariants import FaultWindow, Judge, Observation, Verdict, judge
from chaos_observe import (
    DAEMON_NICE,
    AddressPoller,
    NeighbourEvent,
    NeighbourWatch,
    ProcessWatch,
    SchedSample,
    SchedWatch,
    VipProber,
    read_wire,
)
from chaos_schedule import Plan
from gaps import master_down_interval
from keepalived_harness import VrrpDaemon, remove_address

from keepvip.localcluster.lan import Lan

CONVERGE_TIMEOUT = 90.0


@dataclass
class BlockResult:
    implementation: str
    plan: Plan
    records: list[FaultRecord]
    verdict: Verdict
    duration: float  # seconds of chaos (first fault to the final reading)
    origin: float  # monotonic time of the first fault (report times are relative to it)
    # The host's 1-minute load average at the block's start and end: on a shared machine a
    # block run at load 50 measures the host, not VRRP, and the report must say so.
    load: tuple[float, float] = (0.0, 0.0)


def _log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_converged(poller: AddressPoller, plan: Plan, lan: Lan, timeout: float) -> None:
    """Until every VIP is held by exactly one node (the daemons have elected masters)."""
    deadline = time.monotonic() + timeout
    while True:
        readings = [poller.read(host.name) for host in lan.nodes]
        counts = {vip.ip: sum(1 for r in readings if r is not None and vip.ip in r.held) for vip in plan.vips}
        if all(count == 1 for count in counts.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no single holder per VIP after {timeout:.0f} s: {counts}")
        time.sleep(0.2)


def wait_answered(probers: list[VipProber], poller: AddressPoller, lan: Lan, timeout: float) -> None:
    """Until the client reaches every VIP at its holder (its ARP cache may still name a node of
    the previous block); after ``timeout`` the chaos starts anyway and the gap is on the record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readings = [poller.read(host.name) for host in lan.nodes]
        now = time.monotonic()
        if all(
            prober.answers
            and now - prober.answers[-1].sent < 0.3
            and any(r is not None and r.node == prober.answers[-1].node and prober.address in r.held
                    for r in readings)
            for prober in probers
        ):  # fmt: skip
            return
        time.sleep(0.1)
    _log("the client does not reach every VIP at its holder; starting anyway")


def settle_time(interval: float) -> float:
    """After the last heal: two Master_Down intervals, the arbiter's and the check's rise, a margin."""
    return 2 * master_down_interval(interval, 1) + ARBITER_RISE * ARBITER_INTERVAL_S + 1.5


def run_block(
    lan: Lan,
    services: Services,
    plan: Plan,
    implementation: str,
    workdir: Path,
    *,
    poll: float = 0.1,
    slack: float = 0.0,
    daemon_nice: int | None = DAEMON_NICE,
) -> BlockResult:
    """Run ``plan`` against ``implementation``; everything started here is stopped here."""
    load_start = os.getloadavg()[0]
    block_dir = workdir / f"{implementation}-{plan.interval:g}"
    block_dir.mkdir(parents=True, exist_ok=True)
    vip_ips = [vip.ip for vip in plan.vips]
    daemons: dict[str, VrrpDaemon] = {
        host.name: make_daemon(implementation, lan, host, block_dir, vips=plan.vips, interval=plan.interval)
        for host in lan.nodes
    }
    injector = Injector(lan, daemons, services)
    poller = AddressPoller(lan, vip_ips, poll)
    watch = ProcessWatch(daemons, injector.expected_down)
    sched_watch = SchedWatch(daemons, nice=daemon_nice)
    sched: list[SchedSample] = []
    probers: list[VipProber] = []
    controls: dict[str, VipProber] = {}
    records: list[FaultRecord] = []
    neighbour_watch: NeighbourWatch | None = None
    neighbours: list[NeighbourEvent] = []
    pcap = block_dir / "bridge.pcap"
    clock_watch = ClockWatch()  # the capture and the neighbour table are stamped with the wall clock
    _log(f"{implementation} at {plan.interval:g} s: {len(plan.vips)} VIPs, {len(plan.faults)} faults")
    try:
        for daemon in daemons.values():
            daemon.start()
        sched_watch.start()  # from the start: it also gives the daemons their priority
        wait_converged(poller, plan, lan, CONVERGE_TIMEOUT)
        with lan.capture(lan.switch, pcap, "ip proto 112 or arp", ifname="br0"):
            neighbour_watch = NeighbourWatch(lan, clock_watch)
            probers = [VipProber(lan, ip) for ip in vip_ips]
            poller.start()
            watch.start()
            wait_answered(probers, poller, lan, CONVERGE_TIMEOUT / 3)
            # Control probes of each node's own address: a gap they share was the host's, not VRRP's.
            controls = {host.name: VipProber(lan, str(host.ipv4.ip)) for host in lan.nodes}
            probers += controls.values()
            time.sleep(0.5)
            observed_start = time.monotonic()
            for fault in plan.faults:
                record = injector.apply(fault)
                records.append(record)
                time.sleep(max(0.0, fault.duration - (time.monotonic() - record.started)))
                injector.heal(record)
                _log(f"{fault.label()} healed after {record.healed - record.started:.2f} s")
                time.sleep(fault.quiet)
            time.sleep(settle_time(plan.interval))
            final = poller.latest()
            observed_end = time.monotonic()
            watch.close()
            sched = sched_watch.close()
            for prober in probers:
                prober.close()
            samples = poller.close()
            neighbours = neighbour_watch.close()
    finally:
        if neighbour_watch is not None:
            neighbour_watch.close()
        wall_clock = clock_watch.close()
        watch.close()
        injector.close()
        for prober in probers:
            with contextlib.suppress(Exception):
                prober.close()
        poller.close()
        for node, daemon in daemons.items():
            injector.expected_down.add(node)
            if daemon.running:
                daemon.stop()
        for host in lan.nodes:
            for ip in plan.vips:
                remove_address(lan, host, ip.address)
        for host in lan.nodes:  # a fault interrupted by an exception left its service stopped
            with contextlib.suppress(Exception):
                if (host.name, CHECKED_PORT) not in services.processes:
                    services.start(host.name, CHECKED_PORT)
    frames = read_wire(pcap, wall_clock)
    windows = [
        FaultWindow(
            r.plan.label(),
            r.plan.kind,
            r.plan.nodes,
            r.started,
            r.healed,
            records[i + 1].started if i + 1 < len(records) else observed_end,
        )
        for i, r in enumerate(records)
    ]
    judge_ = Judge(
        plan.vips,
        plan.interval,
        poll,
        slack,
        {h.name: str(h.ipv4.ip) for h in lan.nodes},
        {h.name: h.mac for h in lan.nodes},
    )
    logs = {name: daemon.log_text() for name, daemon in daemons.items()}
    answers = {prober.address: prober.answers for prober in probers}
    observation = Observation(
        windows, samples, answers, frames, watch.exits, logs, (observed_start, observed_end), final,
        controls={node: prober.answers for node, prober in controls.items()}, neighbours=neighbours,
        sched=sched, unanswered={prober.address: prober.unanswered for prober in probers},
    )  # fmt: skip
    # Everything the judge saw, beside the capture and the logs: a verdict can be questioned (or
    # a new figure computed) later from what the run recorded, not from what it concluded.
    (block_dir / "observation.pickle").write_bytes(pickle.dumps((judge_, observation)))
    verdict = judge(judge_, observation)
    return BlockResult(
        implementation, plan, records, verdict, observed_end - observed_start, observed_start,
        (load_start, os.getloadavg()[0]),
    )  # fmt: skip
