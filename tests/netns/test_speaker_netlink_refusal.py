"""A bind the kernel refuses is a FAULT of that VirtualIP alone, never a silent MASTER (issue 9).

pyroute2's ``NetlinkError`` is not an ``OSError``. Before the fix (a7d70e9) the network
adapter let it escape a router's task: the router had logged MASTER, its task ended,
and it neither held the VIP nor advertised again. Here the kernel really refuses: an
IPv6 VirtualIP's node has IPv6 switched off on its interface (``disable_ipv6=1``, the
kernel answers ``RTM_NEWADDR`` with ``EACCES``) after the router started and before it
becomes master. The speaker below is real (real netlink, raw sockets, in a node
namespace): the router must go to FAULT ``AddressBindFailed`` with the kernel's error
and never report MASTER while the VIP is unbound; the IPv4 VirtualIP beside it keeps
running; once IPv6 is back the retry binds and the router is MASTER; and the stop
leaves no VIP behind.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from ipaddress import ip_interface
from pathlib import Path

import pytest
import yaml
from keepalived_harness import virtualip_document
from pyroute2 import AsyncIPRoute

from keepvip.api.model import IPInterface
from keepvip.localcluster.lan import Lan
from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.router_runner import RouterReport
from keepvip.speaker.runtime.speaker import NodeReport, Speaker
from keepvip.speaker.sources.file import parse_config_text
from keepvip.speaker.vrrp.state import State

pytestmark = pytest.mark.timeout(90)

BOUND = 20.0  # seconds; the bind retry backs off 1 s, 2 s, 4 s ...


async def _until(condition: Callable[[], bool], what: str, timeout: float = BOUND) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


class _Scenario:
    """Two VirtualIPs on node1's eth0: web4 (IPv4) and web6 (IPv6), both priority 150."""

    def __init__(self, lan: Lan) -> None:
        self.lan = lan
        self.node = lan.nodes[0]
        self.web4 = ip_interface(f"{lan.vip(0)}/24")
        self.web6 = ip_interface(f"{lan.vip6(0)}/64")
        documents = [
            virtualip_document("web4", str(self.web4), vrid=21, priority=150),
            virtualip_document("web6", str(self.web6), vrid=22, priority=150),
        ]
        for document in documents:
            document["spec"]["interface"] = "eth0"
        self.snapshot = parse_config_text(yaml.safe_dump_all(documents))
        self.metrics = SpeakerMetrics()
        self.reports: list[NodeReport] = []
        self.bound_when_master: list[tuple[str, bool]] = []

    def on_report(self, report: NodeReport) -> None:
        self.reports.append(report)
        if report.state is State.MASTER:  # MASTER is published only with the VIPs bound
            vip = self.web4 if report.virtualip == "web4" else self.web6
            self.bound_when_master.append((report.virtualip, self.holds(vip)))

    def last(self, name: str) -> RouterReport | None:
        mine = [r for r in self.reports if r.virtualip == name and isinstance(r, RouterReport)]
        return mine[-1] if mine else None

    def in_state(self, name: str, state: State) -> bool:
        report = self.last(name)
        return report is not None and report.state is state

    def holds(self, vip: IPInterface) -> bool:
        return vip.ip in {a.ip for a in self.lan.addresses(self.node)}

    def ipv6(self, enabled: bool) -> None:
        self.lan.run(self.node, "sysctl", "-qw", f"net.ipv6.conf.eth0.disable_ipv6={0 if enabled else 1}")

    async def fault_web6(self, speaker: Speaker) -> RouterReport:
        """Apply; switch IPv6 off while the routers are still BACKUP; web6 FAULT, web4 MASTER."""
        await speaker.start()
        await speaker.apply(self.snapshot)
        self.ipv6(False)  # master_down is 3 intervals (3 s) away: web6's bind will be refused
        await _until(lambda: self.in_state("web6", State.FAULT), "web6 in FAULT")
        await _until(lambda: self.in_state("web4", State.MASTER) and self.holds(self.web4),
                     "web4 MASTER with its VIP")  # fmt: skip
        fault = self.last("web6")
        assert fault is not None
        assert not self.holds(self.web6)
        assert self.metrics.address_bind_failures.labels("web6").value >= 1
        return fault


def _leaving_senders(pcap: Path, vrid: int) -> list[str]:
    """Source addresses of the priority-0 advertisements of ``vrid`` in ``pcap`` (tshark decodes)."""
    argv = ["tshark", "-r", str(pcap), "-Y", f"vrrp.virt_rtr_id == {vrid} && vrrp.prio == 0", "-T", "fields",
            "-e", "ip.src"]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.split()


def _assert_the_kernels_refusal(scenario: _Scenario, fault: RouterReport) -> None:
    assert fault.reason == "fault_address_bind", fault
    assert fault.message is not None
    assert "Permission denied" in fault.message or "EACCES" in fault.message, fault.message
    assert str(scenario.web6.ip) in fault.message, fault.message


def test_a_bind_the_kernel_refuses_is_a_fault_of_that_virtualip_never_a_silent_master(lan: Lan) -> None:
    scenario = _Scenario(lan)

    async def main() -> tuple[RouterReport, list[NodeReport]]:
        async with AsyncIPRoute() as ipr:
            speaker = Speaker(NodeIdentity(scenario.node.name), ipr, scenario.metrics,
                              use_status_allocation=False, on_report=scenario.on_report)  # fmt: skip
            try:
                fault = await scenario.fault_web6(speaker)
                before = list(scenario.reports)
                scenario.ipv6(True)  # the next retry binds
                await _until(lambda: scenario.in_state("web6", State.MASTER), "web6 MASTER")
                assert scenario.holds(scenario.web6)
                assert set(speaker.routers) == {"web4", "web6"}
                assert speaker.failures == {}
                return fault, before
            finally:
                scenario.ipv6(True)
                await speaker.stop()

    with lan.inside(scenario.node):
        fault, before_recovery = asyncio.run(main())

    _assert_the_kernels_refusal(scenario, fault)
    assert not any(r.virtualip == "web6" and r.state is State.MASTER for r in before_recovery)
    assert scenario.bound_when_master, "nothing became MASTER"
    assert all(bound for _, bound in scenario.bound_when_master), scenario.bound_when_master
    assert not scenario.holds(scenario.web4)  # both released at stop
    assert not scenario.holds(scenario.web6)


def test_a_stop_while_a_bind_is_refused_still_hands_over_with_priority_zero_and_leaves_no_vip(
    lan: Lan, tmp_path: Path
) -> None:
    scenario = _Scenario(lan)
    pcap = tmp_path / "node2.pcap"

    async def main() -> RouterReport:
        async with AsyncIPRoute() as ipr:
            speaker = Speaker(NodeIdentity(scenario.node.name), ipr, scenario.metrics,
                              use_status_allocation=False, on_report=scenario.on_report)  # fmt: skip
            try:
                return await scenario.fault_web6(speaker)
            finally:
                await speaker.stop()  # what SIGTERM runs; web6 still refused

    try:
        with lan.capture(lan.nodes[1], pcap, "ip proto 112"), lan.inside(scenario.node):
            fault = asyncio.run(main())
    finally:
        scenario.ipv6(True)

    _assert_the_kernels_refusal(scenario, fault)
    assert not scenario.holds(scenario.web4)
    assert not scenario.holds(scenario.web6)
    assert str(scenario.node.ipv4.ip) in _leaving_senders(pcap, 21)  # web4's master said it leaves
