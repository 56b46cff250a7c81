"""Speakers on a namespace LAN: health checks, pre-emption and the arbiter move the VIP.

As in keepalived's nginx tutorial, each node's VirtualIP has a ``tcp`` check on its
local web server; stopping the master's web server lowers its priority (weight -20) or
puts it in FAULT (weight 0), and the client's connections to the VIP are then answered
by another node. The arbiter scenario gives the LAN a gateway (the client namespace)
and cuts the master off from it.
"""

from __future__ import annotations

import time
from functools import partial

import pytest
from speaker_harness import (
    VIP4,
    SpeakerSet,
    holders,
    stays_master,
    virtualip,
    wait_for_master,
    wait_until,
    web_check,
)

from keepvip.localcluster.lan import Lan

pytestmark = pytest.mark.timeout(60)

PRIORITIES = {"node1": 150, "node2": 140, "node3": 100}


def test_a_failing_web_check_moves_the_vip_and_preemption_brings_it_back(
    lan: Lan, speakers: SpeakerSet
) -> None:
    speakers.configure(
        virtualip("web", vrid=61, node_priorities=PRIORITIES, health_checks=[web_check(weight=-20)])
    )
    speakers.start()
    wait_for_master(lan, VIP4, "node1")

    stopped_at = time.time()
    speakers.stop_web("node1")  # 150 - 20 = 130 < node2's 140

    wait_for_master(lan, VIP4, "node2", timeout=10)
    takeover = speakers.became("node2", "MASTER", "web", since=stopped_at)
    assert takeover is not None
    assert takeover.reason == "preempt"
    assert speakers.state("node1", "web") == "BACKUP"
    node1 = speakers.metrics("node1")
    assert node1.gauge("keepvip_vrrp_effective_priority", virtualip="web") == 130
    assert node1.gauge("keepvip_check_status", virtualip="web", check="web") == 0

    speakers.start_web("node1")  # healthy again: 150 > 140, pre-empts (preempt: true)

    wait_for_master(lan, VIP4, "node1", timeout=10)
    assert speakers.metrics("node1").gauge("keepvip_check_status", virtualip="web", check="web") == 1


def test_without_preemption_a_recovered_node_leaves_the_vip_where_it_is(
    lan: Lan, speakers: SpeakerSet
) -> None:
    # With preempt: false no backup ever takes over from a live master (RFC 9568 §6.4.2),
    # so the check gives up the VIP with weight 0 (FAULT) rather than by lowering priority.
    speakers.configure(
        virtualip(
            "web",
            vrid=62,
            node_priorities=PRIORITIES,
            preempt=False,
            health_checks=[web_check(weight=0)],
        )
    )
    speakers.start("node1")
    wait_for_master(lan, VIP4, "node1")
    speakers.start("node2", "node3")
    for node in ("node2", "node3"):  # a weight-0 check holds a router in FAULT until it passes
        speakers.wait_state(node, "BACKUP", "web")

    stopped_at = time.time()
    speakers.stop_web("node1")

    fault = speakers.wait_state("node1", "FAULT", "web", timeout=10)
    assert fault.reason == "fault_check"
    # The first backup to act keeps the VIP (node2 normally; node3 if its timer fires first
    # on a loaded machine: without pre-emption node2 then follows it).
    successor, _ = wait_until(lambda: speakers.first_takeover("web", since=stopped_at), 10, what="a takeover")
    wait_for_master(lan, VIP4, successor, timeout=10)

    recovered_at = time.time()
    speakers.start_web("node1")

    speakers.wait_state("node1", "BACKUP", "web", timeout=10)
    assert stays_master(lan, VIP4, successor, 1.5)
    assert speakers.became("node1", "MASTER", "web", since=recovered_at) is None


def test_a_returning_higher_priority_node_waits_for_the_preempt_delay(lan: Lan, speakers: SpeakerSet) -> None:
    delay = 1.5
    speakers.configure(
        virtualip("web", vrid=63, node_priorities=PRIORITIES, preempt_delay=f"{int(delay * 1000)}ms")
    )
    speakers.start("node2", "node3")
    wait_for_master(lan, VIP4, "node2")

    speakers.start("node1")  # the higher-priority node returns

    joined = speakers.became("node1", "BACKUP", "web") or speakers.wait_state("node1", "BACKUP", "web")
    assert stays_master(lan, VIP4, "node2", delay * 0.6)  # still holding off
    took_over = speakers.wait_state("node1", "MASTER", "web", timeout=10)
    assert took_over.reason == "preempt"
    print(f"pre-empted {1000 * (took_over.at - joined.at):.0f} ms after joining (delay {delay} s)")
    assert took_over.at - joined.at >= delay
    wait_for_master(lan, VIP4, "node1", timeout=5)


def test_a_master_cut_off_from_the_arbiter_gateway_gives_up_the_vip(lan: Lan, speakers: SpeakerSet) -> None:
    # The LAN has no router: the client namespace plays the gateway (198.18.0.250).
    arbiter = {"gateway": str(lan.node("client").ipv4.ip), "interval": "200ms", "timeout": "150ms",
               "fall": 2, "rise": 2}  # fmt: skip
    speakers.configure(virtualip("web", vrid=64, node_priorities=PRIORITIES, arbiter=arbiter))
    speakers.start()
    wait_for_master(lan, VIP4, "node1")
    wait_for_arbiter(speakers, reachable=True)

    # Cut node1 off from the gateway: the gateway drops everything it would send to
    # node1's address (a blackhole route), so node1's pings go unanswered while node1
    # still hears VRRP and the client still reaches the VIP through whoever holds it.
    cut_at = time.time()
    lan.run("client", "ip", "route", "add", "blackhole", f"{lan.node('node1').ipv4.ip}/32")

    fault = speakers.wait_state("node1", "FAULT", "web", timeout=10)
    assert fault.reason == "fault_arbiter"
    wait_for_master(lan, VIP4, "node2", timeout=10)
    assert arbiter_is(speakers, "node1", 0)
    assert arbiter_is(speakers, "node2", 1)
    assert "MASTER" not in [t.state for t in speakers.transitions("node1", "web", since=cut_at)]
    assert holders(lan, VIP4) == {"node2"}

    lan.run("client", "ip", "route", "del", "blackhole", f"{lan.node('node1').ipv4.ip}/32")

    wait_for_master(lan, VIP4, "node1", timeout=10)  # reachable again, and it pre-empts


def test_twenty_virtualips_with_one_arbiter_and_one_check_ping_and_connect_once_per_interval(
    lan: Lan, speakers: SpeakerSet
) -> None:
    # keepalived runs a vrrp_script once for every instance that tracks it; so does keepvip
    # with a check (or arbiter) that VirtualIPs share: 20 VIPs must not mean 20 pings a
    # second to the gateway and 20 connections a second to the service, per node.
    gateway = str(lan.node("client").ipv4.ip)
    arbiter = {"gateway": gateway, "interval": "200ms", "timeout": "150ms", "fall": 2, "rise": 2}
    documents = [
        virtualip(f"web{n}", vrid=100 + n, addresses=[f"198.18.0.{150 + n}/24"], node_priorities=PRIORITIES,
                  arbiter=arbiter, health_checks=[web_check(weight=-n)])
        for n in range(20)
    ]  # fmt: skip
    speakers.configure(*documents)
    speakers.start()
    for n in range(20):  # every VIP was told both answers (its own gauges), whoever asked first
        for node in speakers.node_names:
            wait_until(lambda n=n, node=node: told(speakers, node, f"web{n}"), 10, what=f"web{n} on {node}")

    window = 3.0
    echoes, connects = echo_requests(lan), {node: tcp_active_opens(lan, node) for node in speakers.node_names}
    time.sleep(window)
    per_interval = window / 0.2 + 2  # one run per 200 ms, and a run at each edge of the window
    assert echo_requests(lan) - echoes <= len(speakers.node_names) * per_interval  # 20 each: 15 times that
    for node, before in connects.items():
        assert tcp_active_opens(lan, node) - before <= per_interval, node


def told(speakers: SpeakerSet, node: str, virtualip: str) -> bool:
    metrics = speakers.metrics(node)
    return (metrics.gauge("keepvip_arbiter_reachable", virtualip=virtualip) == 1
            and metrics.gauge("keepvip_check_status", virtualip=virtualip, check="web") == 1)  # fmt: skip


def snmp_counter(lan: Lan, namespace: str, protocol: str, field: str) -> int:
    """One counter of the namespace's ``/proc/net/snmp`` (its own network stack's)."""
    lines = [line.split() for line in lan.run(namespace, "cat", "/proc/net/snmp").stdout.splitlines()]
    names, values = [line for line in lines if line[0] == f"{protocol}:"][:2]
    return int(values[names.index(field)])


def echo_requests(lan: Lan) -> int:
    """Echo requests the gateway (the client namespace) received, from every node."""
    return snmp_counter(lan, "client", "IcmpMsg", "InType8")


def tcp_active_opens(lan: Lan, node: str) -> int:
    """Connections opened from the node's namespace: its speaker's tcp checks."""
    return snmp_counter(lan, node, "Tcp", "ActiveOpens")


def wait_for_arbiter(speakers: SpeakerSet, *, reachable: bool) -> None:
    """Wait until every node's arbiter gauge says ``reachable``."""
    expected = 1 if reachable else 0
    for node in speakers.node_names:
        wait_until(
            partial(arbiter_is, speakers, node, expected),
            10,
            what=f"{node}'s arbiter reachable={reachable}",
        )


def arbiter_is(speakers: SpeakerSet, node: str, expected: int) -> bool:
    return speakers.metrics(node).gauge("keepvip_arbiter_reachable", virtualip="web") == expected
