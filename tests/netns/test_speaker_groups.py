"""Speakers on a namespace LAN: several virtual routers side by side, and IPv6.

Two VirtualIPs may share a VRID when they advertise to different multicast groups
(DESIGN.md: the operator allocates (group, VRID) pairs; ``IP_MULTICAST_ALL`` is off so
a group's adverts never reach another group's socket). An IPv6 VirtualIP runs VRRPv3
from link-local sources to its group, and moves the client's neighbour entry with
unsolicited neighbour advertisements (override flag).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lan import Lan
from speaker_harness import (
    VIP4,
    VIP6,
    SpeakerSet,
    as_interface,
    client_sees,
    holders,
    speaker_set,
    stays_master,
    virtualip,
    wait_for_master,
    wait_until,
    who_answers,
)

pytestmark = pytest.mark.timeout(60)

OTHER_VIP4 = as_interface("198.18.0.101/24")
TAKEOVER_BOUND = 3 * 0.1 + 0.1 + 2.0  # Master_Down_Interval at 100 ms, plus a generous margin


@pytest.fixture
def speakers(lan: Lan, tmp_path: Path) -> Iterator[SpeakerSet]:
    with speaker_set(lan, tmp_path) as running:
        running.start_web()
        yield running


def test_two_virtualips_with_one_vrid_in_different_groups_do_not_interfere(
    lan: Lan, speakers: SpeakerSet
) -> None:
    speakers.configure(
        virtualip("web", vrid=7, group="224.0.0.116", node_priorities={"node1": 150, "node2": 120}),
        virtualip("api", vrid=7, group="224.0.0.117", addresses=[str(OTHER_VIP4)],
                  node_priorities={"node3": 150, "node2": 120}),
    )  # fmt: skip
    speakers.start()

    wait_for_master(lan, VIP4, "node1")
    wait_for_master(lan, OTHER_VIP4, "node3")
    assert stays_master(lan, VIP4, "node1", 1.0)
    assert master_of_api_is(lan, "node3")

    # Each router hears only its own group: no address-list conflicts, no foreign VRID.
    for node in speakers.node_names:
        assert not speakers.messages(node, "disagrees with our configuration")
        metrics = speakers.metrics(node)
        assert metrics.value("keepvip_advert_mismatch_total") == 0
        assert metrics.value("keepvip_advert_dropped_total") == 0

    # A failover of one leaves the other alone.
    stopped_at, _ = speakers.terminate("node1")
    wait_for_master(lan, VIP4, "node2", timeout=5)
    assert master_of_api_is(lan, "node3")
    for node in ("node2", "node3"):
        assert speakers.transitions(node, "api", since=stopped_at) == []


def master_of_api_is(lan: Lan, node: str) -> bool:
    return who_answers(lan, OTHER_VIP4) == node and holders(lan, OTHER_VIP4) == {node}


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
