"""Each way one VirtualIP can fail to apply costs only that VirtualIP (issue 9).

One snapshot holds a VirtualIP that runs and one for each failure the issue lists that a
standalone file can carry: an interface the node lacks, an interface with no IPv4
address to send from, a VRID another VirtualIP of the snapshot holds on the same link,
a PASS password whose Secret is not in the file, and the node's own address. The
speaker below is real (real netlink, raw sockets, in a node namespace, the snapshot read
by the standalone loader). Each failing VirtualIP must get exactly one FAULT report with
its named reason and a message naming the field, counted once; the good one must be
MASTER with its VIP bound; and the next snapshot (the mistakes fixed or removed) must
be applied: the fixed one runs, the removed ones' entries are withdrawn.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from keepalived_harness import virtualip_document
from pyroute2 import AsyncIPRoute

from keepvip.localcluster.lan import Lan
from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.failures import FailureReport
from keepvip.speaker.runtime.router_runner import RouterReport
from keepvip.speaker.runtime.speaker import NodeReport, Speaker
from keepvip.speaker.sources.file import parse_config_text
from keepvip.speaker.sources.snapshot import ConfigSnapshot
from keepvip.speaker.vrrp.state import State

pytestmark = pytest.mark.timeout(90)

BARE = "bare0"  # a link of the node with no address at all
ABSENT = ("default", "absent", "pw")  # a Secret key the file does not hold


def _vip(name: str, address: str, vrid: int, *, interface: str = "eth0", **vrrp: Any) -> dict[str, Any]:
    document = virtualip_document(name, address, vrid=vrid, priority=150, **vrrp)
    document["spec"]["interface"] = interface
    return document


def test_each_failure_fails_only_its_virtualip_and_the_next_snapshot_still_applies(lan: Lan) -> None:
    node = lan.nodes[0]
    lan.run(node, "ip", "link", "add", BARE, "type", "veth", "peer", "name", "bare1")
    lan.run(node, "ip", "link", "set", BARE, "up")
    good = _vip("good", f"{lan.vip(0)}/24", 41)
    failing = {
        "nointerface": (_vip("nointerface", f"{lan.vip(1)}/24", 42, interface="nope0"),
                        "interface_not_found", "spec.interface: no interface named 'nope0'"),
        "nosource": (_vip("nosource", f"{lan.vip(2)}/24", 43, interface=BARE),
                     "no_source_address", f"spec.interface: {BARE} has no IPv4 address"),
        "samevrid": (_vip("samevrid", f"{lan.vip(3)}/24", 41),
                     "vrid_in_use", "spec.vrrp.vrid"),
        "nosecret": (_vip("nosecret", f"{lan.vip(4)}/24", 44, version=2, password_secret=ABSENT),
                     "missing_secret", "secretRef: key 'pw' of secret default/absent not found"),
        "own": (_vip("own", f"{node.ipv4.ip}/32", 45),
                "address_conflict", f"spec.addresses[0]: {node.ipv4.ip} is already an address of this node"),
    }  # fmt: skip
    first = parse_config_text(yaml.safe_dump_all([good, *(document for document, _, _ in failing.values())]))
    fixed = _vip("nointerface", f"{lan.vip(1)}/24", 42)  # the interface corrected; the others removed
    second = parse_config_text(yaml.safe_dump_all([good, fixed]))

    reports: list[NodeReport] = []
    forgotten: list[str] = []
    metrics = SpeakerMetrics()

    def last(name: str) -> NodeReport | None:
        return next((r for r in reversed(reports) if r.virtualip == name), None)

    def is_master(name: str) -> bool:
        report = last(name)
        return isinstance(report, RouterReport) and report.state is State.MASTER

    async def converge(speaker: Speaker, snapshot: ConfigSnapshot, *masters: str) -> None:
        await speaker.apply(snapshot)
        async with asyncio.timeout(15):
            while not all(is_master(name) for name in masters):
                await asyncio.sleep(0.05)

    async def main() -> tuple[dict[str, str], list[NodeReport], set[str], dict[str, str]]:
        async with AsyncIPRoute() as ipr:
            speaker = Speaker(NodeIdentity(node.name), ipr, metrics, use_status_allocation=False,
                              on_report=reports.append, on_forget=forgotten.append)  # fmt: skip
            await speaker.start()
            try:
                await converge(speaker, first, "good")
                failures = {name: error.failure.value for name, error in speaker.failures.items()}
                after_first = list(reports)
                await converge(speaker, second, "good", "nointerface")
                return failures, after_first, set(speaker.routers), {n: e.failure.value for n, e in
                                                                     speaker.failures.items()}  # fmt: skip
            finally:
                await speaker.stop()

    with lan.inside(node):
        failures, after_first, running, failures_after = asyncio.run(main())

    assert failures == {name: reason for name, (_, reason, _) in failing.items()}
    for name, (_, reason, words) in failing.items():
        mine = [r for r in after_first if r.virtualip == name]
        assert len(mine) == 1, mine  # one report: no retry reported again
        report = mine[0]
        assert isinstance(report, FailureReport), report
        assert (report.state, report.reason) == (State.FAULT, reason)
        assert words in report.message, report.message
        assert "Traceback" not in report.message
        assert metrics.virtualip_failures.labels(reason).value == 1, reason
    assert [r.state for r in after_first if r.virtualip == "good"][-1] is State.MASTER

    # The next snapshot is applied: the fixed one runs, the removed ones are withdrawn.
    assert running == {"good", "nointerface"}
    assert failures_after == {}
    assert set(forgotten) >= {"nosource", "samevrid", "nosecret", "own"}
    assert not {a.ip for a in lan.addresses(node)} & {lan.vip(n) for n in range(5)}  # released at stop
