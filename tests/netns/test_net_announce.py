"""Gratuitous ARP and unsolicited NA: the frames as built, on the wire, and their effect.

The builders are checked against scapy's and tshark's dissectors (independent
decoders); the wire tests check that a client's ARP / neighbour table follows a VIP
from one node's MAC to another's because of the announcement alone.
"""

from __future__ import annotations

import asyncio
import errno
import subprocess
import time
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path

import pytest
from pyroute2 import AsyncIPRoute
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from keepvip.localcluster.lan import Host, Lan
from keepvip.speaker.net import addresses
from keepvip.speaker.net.announce import (
    Announcer,
    build_garp_reply,
    build_garp_request,
    build_unsolicited_na,
)

pytestmark = pytest.mark.timeout(30)

MAC = "02:00:5e:10:00:01"
VIP4 = IPv4Interface("198.18.0.100/24")
VIP6 = IPv6Interface("2001:db8::100/64")

# -- the frames as built -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "opcode"), [(build_garp_request, 1), (build_garp_reply, 2)], ids=["request", "reply"]
)
def test_gratuitous_arp_announces_the_vip_as_its_own_sender_and_target(build: object, opcode: int) -> None:
    assert callable(build)
    frame = Ether(build(MAC, VIP4.ip))

    assert (frame.dst, frame.src, frame.type) == ("ff:ff:ff:ff:ff:ff", MAC, 0x0806)
    arp = frame[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, opcode)
    assert (arp.hwsrc, arp.psrc, arp.pdst) == (MAC, str(VIP4.ip), str(VIP4.ip))
    assert len(bytes(frame)) == 42


def test_unsolicited_na_overrides_is_not_solicited_and_carries_the_mac() -> None:
    frame = Ether(build_unsolicited_na(MAC, VIP6.ip))

    assert (frame.dst, frame.src) == ("33:33:00:00:00:01", MAC)
    ip = frame[IPv6]
    assert (ip.src, ip.dst, ip.hlim, ip.nh, ip.plen) == (str(VIP6.ip), "ff02::1", 255, 58, 32)
    na = frame[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (0, 0, 1, str(VIP6.ip))
    assert frame[ICMPv6NDOptDstLLAddr].lladdr == MAC


def test_unsolicited_na_checksum_matches_scapys_over_the_pseudo_header() -> None:
    built = build_unsolicited_na(MAC, VIP6.ip, source=IPv6Address("fe80::1"), router=True)
    frame = Ether(built)
    del frame[ICMPv6ND_NA].cksum  # let scapy compute it afresh

    assert bytes(frame) == built
    assert frame[ICMPv6ND_NA].R == 1


def test_tshark_decodes_the_frames_as_gratuitous_and_with_a_good_checksum(tmp_path: Path) -> None:
    from scapy.utils import wrpcap

    pcap = tmp_path / "frames.pcap"
    frames = [
        build_garp_request(MAC, VIP4.ip),
        build_garp_reply(MAC, VIP4.ip),
        build_unsolicited_na(MAC, VIP6.ip),
    ]
    wrpcap(str(pcap), [Ether(frame) for frame in frames])

    rows = tshark_fields(
        pcap,
        "arp.opcode",
        "arp.isgratuitous",
        "icmpv6.type",
        "icmpv6.checksum.status",
        "icmpv6.nd.na.flag.o",
        "_ws.expert.message",
    )

    assert rows == [
        ["1", "1", "", "", "", ""],
        ["2", "1", "", "", "", ""],
        ["", "", "136", "1", "1", ""],  # checksum status 1 = good; no expert warnings
    ]


def tshark_fields(pcap: Path, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(pcap), "-T", "fields", "-E", "separator=|"]
    for name in fields:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


# -- on the wire -------------------------------------------------------------------------


def test_announcements_reach_the_lan_with_the_nodes_mac(lan: Lan, tmp_path: Path) -> None:
    node, client = lan.nodes[0], lan.client
    assert client is not None
    with lan.inside(node):
        announcer = Announcer("eth0")

    with announcer, lan.capture(client, tmp_path / "client.pcap", "arp or icmp6") as pcap:
        sent = announcer.announce(VIP4.ip) + announcer.announce(VIP6.ip)
        mac = announcer.mac

    assert sent == 3
    assert mac == bytes.fromhex(node.mac.replace(":", ""))
    rows = tshark_fields(
        pcap,
        "arp.opcode",
        "arp.src.hw_mac",
        "arp.src.proto_ipv4",
        "arp.dst.proto_ipv4",
        "icmpv6.nd.na.flag.o",
        "icmpv6.nd.na.flag.s",
        "icmpv6.nd.na.target_address",
        "icmpv6.opt.linkaddr",
        "ipv6.hlim",
        "icmpv6.checksum.status",
    )
    vip4, vip6 = str(VIP4.ip), str(VIP6.ip)
    assert ["1", node.mac, vip4, vip4, "", "", "", "", "", ""] in rows
    assert ["2", node.mac, vip4, vip4, "", "", "", "", "", ""] in rows
    assert ["", "", "", "", "1", "0", vip6, node.mac, "255", "1"] in rows


def move_vip(lan: Lan, vip: IPv4Interface | IPv6Interface, old: Host, new: Host) -> None:
    """Take ``vip`` off ``old`` and put it on ``new``, as a failover does, announcing nothing."""

    async def change(add: bool) -> None:
        async with AsyncIPRoute() as ipr:
            if add:
                await addresses.ensure_present(ipr, "eth0", vip)
            else:
                await addresses.ensure_absent(ipr, "eth0", vip)

    with lan.inside(old):
        asyncio.run(change(add=False))
    with lan.inside(new):
        asyncio.run(change(add=True))


def wait_for_neighbour(
    lan: Lan, host: Host, address: IPv4Address | IPv6Address, mac: str, timeout: float = 2
) -> str:
    """The MAC ``host`` has for ``address`` once it is ``mac`` (or whatever it is at timeout)."""
    deadline = time.monotonic() + timeout
    seen = lan.neighbours(host).get(address, "")
    while seen != mac and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = lan.neighbours(host).get(address, "")
    return seen


@pytest.mark.parametrize("vip", [VIP4, VIP6], ids=["garp", "unsolicited-na"])
def test_client_follows_the_vip_to_the_new_holder_after_its_announcement(
    lan: Lan, vip: IPv4Interface | IPv6Interface
) -> None:
    node1, node2, client = lan.nodes[0], lan.nodes[1], lan.client
    assert client is not None
    move_vip(lan, vip, old=node2, new=node1)
    lan.run(client, "ping", "-c1", "-W1", str(vip.ip))  # client resolves the VIP to node1
    assert lan.neighbours(client)[vip.ip] == node1.mac

    move_vip(lan, vip, old=node1, new=node2)
    stale = lan.neighbours(client)[vip.ip]
    with lan.inside(node2), Announcer("eth0") as announcer:
        announcer.announce(vip.ip)
    learned = wait_for_neighbour(lan, client, vip.ip, node2.mac)

    assert stale == node1.mac  # without the announcement the client still points at node1
    assert learned == node2.mac
    lan.run(client, "ping", "-c1", "-W1", str(vip.ip))  # and node2 now answers


def test_announcing_on_a_link_that_is_down_raises_enetdown(lan: Lan) -> None:
    node = lan.nodes[0]
    with lan.inside(node):
        announcer = Announcer("eth0")
    lan.set_link(node, up=False)

    with announcer, pytest.raises(OSError, match="Network is down") as raised:
        announcer.announce(IPv4Address("198.18.0.100"))
    assert raised.value.errno == errno.ENETDOWN
