"""Speakers on a namespace LAN: several virtual routers side by side, and IPv6.

Two VirtualIPs may share a VRID when they advertise to different multicast groups
(DESIGN.md: the operator allocates (group, VRID) pairs; ``IP_MULTICAST_ALL`` is off so
a group's adverts never reach another group's socket). An IPv6 VirtualIP runs VRRPv3
from link-local sources to its group, and moves the client's neighbour entry with
unsolicited neighbour advertisements (override flag).
"""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface

import pytest
from speaker_harness import (
    VIP4,
    VIP6,
    SpeakerSet,
    as_interface,
    client_sees,
    stays_master,
    virtualip,
    wait_for_master,
    wait_until,
    who_answers,
)

from keepvip.localcluster.lan import Lan

pytestmark = pytest.mark.timeout(60)

TAKEOVER_BOUND = 3 * 0.1 + 0.1 + 2.0  # Master_Down_Interval at 100 ms, plus a generous margin


# (web VIP, api VIP, web group, api group) per address family.
VipPair = tuple[IPv4Interface | IPv6Interface, IPv4Interface | IPv6Interface, str, str]
SIDE_BY_SIDE: dict[int, VipPair] = {
    4: (VIP4, as_interface("198.18.0.101/24"), "224.0.0.116", "224.0.0.117"),
    6: (VIP6, as_interface("2001:db8::101/64"), "ff02::116", "ff02::117"),
}


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_two_virtualips_with_one_vrid_in_different_groups_do_not_interfere(
    lan: Lan, speakers: SpeakerSet, family: int
) -> None:
    web_vip, api_vip, web_group, api_group = SIDE_BY_SIDE[family]
    speakers.configure(
        virtualip("web", vrid=7, group=web_group, addresses=[str(web_vip)],
                  node_priorities={"node1": 150, "node2": 120}),
        virtualip("api", vrid=7, group=api_group, addresses=[str(api_vip)],
                  node_priorities={"node3": 150, "node2": 120}),
    )  # fmt: skip
    speakers.start()

    wait_for_master(lan, web_vip, "node1")
    wait_for_master(lan, api_vip, "node3")
    assert stays_master(lan, web_vip, "node1", 1.0)
    assert stays_master(lan, api_vip, "node3", 0.2)

    # Each router hears only its own group: no address-list conflicts, no foreign VRID.
    for node in speakers.node_names:
        assert not speakers.messages(node, "disagrees with our configuration")
        metrics = speakers.metrics(node)
        assert metrics.value("keepvip_advert_mismatch_total") == 0
        assert metrics.value("keepvip_advert_dropped_total") == 0

    # A failover of one leaves the other alone.
    stopped_at, _ = speakers.terminate("node1")
    wait_for_master(lan, web_vip, "node2", timeout=5)
    assert stays_master(lan, api_vip, "node3", 0.2)
    for node in ("node2", "node3"):
        assert speakers.transitions(node, "api", since=stopped_at) == []


def test_an_ipv6_vip_is_elected_and_fails_over_with_unsolicited_neighbour_advertisements(
    lan: Lan, speakers: SpeakerSet
) -> None:
    speakers.configure(
        virtualip("web6", vrid=66, addresses=[str(VIP6)], node_priorities={"node1": 150, "node2": 120})
    )
    speakers.start()

    wait_for_master(lan, VIP6, "node1")
    assert client_sees(lan, VIP6) == "node1"
    assert speakers.metrics("node1").value("keepvip_unsolicited_na_sent_total", virtualip="web6") >= 1

    killed_at = speakers.kill("node1")

    _, takeover = wait_until(lambda: speakers.first_takeover("web6", since=killed_at), 10, what="a takeover")
    assert takeover.reason == "master_down_timer"
    assert takeover.at - killed_at < TAKEOVER_BOUND
    print(f"IPv6 crash takeover after {1000 * (takeover.at - killed_at):.0f} ms")
    # node1's kernel still holds the address (SIGKILL): only the override NA moves the client.
    wait_until(lambda: client_sees(lan, VIP6) == "node2", 5, what="the client's neighbour entry moves")
    wait_until(lambda: who_answers(lan, VIP6) == "node2", 5, what="node2 answers")
