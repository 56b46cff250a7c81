"""Raw VRRP sockets between real namespaces: TTL 255, sources, groups, isolation.

Payloads are VRRPv3 advertisements built by scapy (an independent encoder), so the
bytes on the wire are advertisement-shaped without depending on keepvip's codec.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import time
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from scapy.compat import raw
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRPv3

from keepvip.inet import VRRP_GROUP_V4 as GROUP4
from keepvip.inet import VRRP_GROUP_V6 as GROUP6
from keepvip.inet import IPAddress
from keepvip.localcluster.lan import Host, Lan
from keepvip.speaker.net.vrrp_socket import RECEIVE_BUFFER_BYTES, Received, VrrpSocket

pytestmark = pytest.mark.timeout(30)

OTHER_GROUP4 = IPv4Address("224.0.0.19")
OTHER_GROUP6 = IPv6Address("ff02::1:12")


def advertisement(source: IPAddress, destination: IPAddress, vrid: int = 51) -> bytes:
    """A VRRPv3 ADVERTISEMENT as scapy encodes it, checksum over the real pseudo-header."""
    if isinstance(source, IPv4Address):
        ip = IP(src=str(source), dst=str(destination), ttl=255)
        vip = "198.18.0.100"
        header = 20
    else:
        ip = IPv6(src=str(source), dst=str(destination), hlim=255)
        vip = "2001:db8::100"
        header = 40
    packet: bytes = raw(ip / VRRPv3(vrid=vrid, priority=100, ipcount=1, addrlist=[vip]))
    return packet[header:]


def receive_within(sock: VrrpSocket, timeout: float = 2.0) -> Received | None:
    """The next packet on ``sock``, or ``None`` if nothing arrives within ``timeout``."""
    readable, _, _ = select.select([sock.fileno()], [], [], timeout)
    return sock.receive() if readable else None


def group_sockets(
    lan: Lan, group_a: IPAddress, group_b: IPAddress
) -> tuple[VrrpSocket, VrrpSocket, VrrpSocket, VrrpSocket]:
    """A sender to ``group_a`` on node1; on node2 a socket per group and a unicast one.

    The unicast socket is unbound and joined to nothing: with IP_MULTICAST_ALL on it
    would see both groups that its siblings joined; off, it must see neither.
    """
    with lan.inside(lan.nodes[0]):
        sender = VrrpSocket.multicast("eth0", group_a)
    with lan.inside(lan.nodes[1]):
        in_a = VrrpSocket.multicast("eth0", group_a)
        in_b = VrrpSocket.multicast("eth0", group_b)
        unicast_only = VrrpSocket.unicast("eth0", group_a.version)
    return sender, in_a, in_b, unicast_only


def source_of(node: Host, version: int) -> IPAddress:
    """RFC 9568 §5.1.1.1 / §5.1.2.1: primary IPv4 address, or the IPv6 link-local."""
    return node.ipv4.ip if version == 4 else node.link_local


@pytest.mark.parametrize("group", [GROUP4, OTHER_GROUP4, GROUP6, OTHER_GROUP6], ids=str)
def test_multicast_advertisement_arrives_with_ttl_255_from_the_senders_source(
    lan: Lan, group: IPAddress
) -> None:
    node1, node2 = lan.nodes[:2]
    with lan.inside(node1):
        sender = VrrpSocket.multicast("eth0", group)
    with lan.inside(node2):
        receiver = VrrpSocket.multicast("eth0", group)
        ifindex = socket.if_nametoindex("eth0")
    source = source_of(node1, group.version)
    payload = advertisement(source, group)

    with sender, receiver:
        sender.send(payload, source=source, destination=group)
        received = receive_within(receiver)

    assert received == Received(payload=payload, source=source, destination=group, ttl=255, ifindex=ifindex)


@pytest.mark.parametrize("group", [GROUP4, GROUP6], ids=["ipv4", "ipv6"])
def test_each_packet_carries_the_time_the_kernel_received_it_not_the_time_it_was_read(
    lan: Lan, group: IPAddress
) -> None:
    """RFC 9568 §6.4.2 counts Master_Down_Interval from an advertisement's arrival: the
    kernel's stamp, also for the second of two identical packets (served from the cache)."""
    node1, node2 = lan.nodes[:2]
    with lan.inside(node1):
        sender = VrrpSocket.multicast("eth0", group)
    with lan.inside(node2):
        receiver = VrrpSocket.multicast("eth0", group)
    source = source_of(node1, group.version)
    payload = advertisement(source, group)

    with sender, receiver:
        # The kernel turns receive stamping on in a deferred work item when the first socket
        # asks for it; until then it stamps a packet when it is read. A speaker's socket
        # lives for hours; this one was just opened, so let the switch happen first.
        sender.send(payload, source=source, destination=group)
        time.sleep(0.2)
        assert receive_within(receiver) is not None
        arrivals = []
        for _ in range(2):
            sent = time.time()
            sender.send(payload, source=source, destination=group)
            time.sleep(0.3)  # read well after the arrival
            read = time.time()
            assert receive_within(receiver) is not None
            assert receiver.arrived is not None
            arrivals.append((sent, receiver.arrived, read))

    for sent, arrived, read in arrivals:
        assert sent - 0.05 <= arrived <= read - 0.25, (sent, arrived, read)


@pytest.mark.parametrize("version", [4, 6])
def test_unicast_advertisement_reaches_the_peer_with_ttl_255(lan: Lan, version: int) -> None:
    node1, node2 = lan.nodes[:2]
    with lan.inside(node1):
        sender = VrrpSocket.unicast("eth0", version)
    with lan.inside(node2):
        receiver = VrrpSocket.unicast("eth0", version)
    source = source_of(node1, version)
    peer = node2.ipv4.ip if version == 4 else node2.ipv6.ip
    payload = advertisement(source, peer)

    with sender, receiver:
        sender.send(payload, source=source, destination=peer)
        received = receive_within(receiver)

    assert received is not None
    assert (received.payload, received.source, received.destination, received.ttl) == (
        payload,
        source,
        peer,
        255,
    )


@pytest.mark.parametrize(
    ("group_a", "group_b"), [(GROUP4, OTHER_GROUP4), (GROUP6, OTHER_GROUP6)], ids=["ipv4", "ipv6"]
)
def test_a_socket_joined_to_one_group_never_sees_another_groups_packets(
    lan: Lan, group_a: IPAddress, group_b: IPAddress
) -> None:
    sender, in_a, in_b, unicast_only = group_sockets(lan, group_a, group_b)
    source = source_of(lan.nodes[0], group_a.version)

    with sender, in_a, in_b, unicast_only:
        sender.send(advertisement(source, group_b, vrid=2), source=source, destination=group_b)
        sender.send(advertisement(source, group_a, vrid=1), source=source, destination=group_a)
        first_in_a = receive_within(in_a)
        first_in_b = receive_within(in_b)
        leaked = receive_within(unicast_only, timeout=0.3)
        second_in_b = receive_within(in_b, timeout=0)

    assert first_in_a is not None
    assert first_in_a.destination == group_a
    assert first_in_b is not None
    assert first_in_b.destination == group_b
    assert second_in_b is None  # nothing from group A followed
    assert leaked is None


@pytest.mark.parametrize(
    ("group_a", "group_b"), [(GROUP4, OTHER_GROUP4), (GROUP6, OTHER_GROUP6)], ids=["ipv4", "ipv6"]
)
def test_the_kernel_filter_keeps_unwanted_packets_out_of_python(
    lan: Lan, group_a: IPAddress, group_b: IPAddress
) -> None:
    """Packets a socket does not want never wake it: nothing read, nothing skipped in userspace.

    Without the socket filter an unbound IPv6 raw socket reads every VRRP multicast the
    host accepts and skips it in Python (``filtered`` counts those).
    """
    sender, in_a, in_b, unicast_only = group_sockets(lan, group_a, group_b)
    source = source_of(lan.nodes[0], group_a.version)

    with sender, in_a, in_b, unicast_only:
        for vrid in (1, 2, 3):
            sender.send(advertisement(source, group_a, vrid=vrid), source=source, destination=group_a)
        got = [receive_within(in_a) for _ in range(3)]
        woke_b = select.select([in_b.fileno()], [], [], 0.3)[0]
        woke_unicast = select.select([unicast_only.fileno()], [], [], 0)[0]

    assert [packet.payload[1] if packet else None for packet in got] == [1, 2, 3]
    assert woke_b == []
    assert woke_unicast == []
    assert in_a.filtered == in_b.filtered == unicast_only.filtered == 0


def spoofer(version: int, hop_limit: int) -> socket.socket:
    """A plain raw protocol-112 socket that sends with ``hop_limit`` (multicast and unicast)."""
    if version == 4:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, hop_limit)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hop_limit)
    else:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hop_limit)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hop_limit)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    return sock


@pytest.mark.parametrize("group", [GROUP4, GROUP6], ids=str)
def test_ttl_254_and_unknown_vrids_never_reach_python_once_the_vrids_are_set(
    lan: Lan, group: IPAddress
) -> None:
    """Issue 10: the kernel filter drops RFC 9568 §7.1 rejects and other VRIDs before queueing.

    Each unwanted packet is sent before the wanted one: if any got through, the socket
    would read it first (``filtered`` counts only what Python skips, and it stays 0).
    """
    node1, node2 = lan.nodes[:2]
    source = source_of(node1, group.version)
    with lan.inside(node1):
        sender = VrrpSocket.multicast("eth0", group)
        off_link = spoofer(group.version, 254)
        address = (str(group), 0) if group.version == 4 else (str(group), 0, 0, socket.if_nametoindex("eth0"))
    with lan.inside(node2):
        receiver = VrrpSocket.multicast("eth0", group)
    receiver.set_vrids(frozenset({51, 52}))

    with sender, off_link, receiver:
        off_link.sendto(advertisement(source, group, vrid=51), address)  # TTL 254, our VRID
        sender.send(advertisement(source, group, vrid=99), source=source, destination=group)  # TTL 255
        sender.send(advertisement(source, group, vrid=52), source=source, destination=group)
        first = receive_within(receiver)
        woke_again = select.select([receiver.fileno()], [], [], 0.3)[0]
        receiver.set_vrids(frozenset({51, 52, 99}))  # re-attached: 99 is wanted now
        sender.send(advertisement(source, group, vrid=99), source=source, destination=group)
        second = receive_within(receiver)

    assert first is not None
    assert (first.payload[1], first.ttl) == (52, 255)
    assert woke_again == []  # neither the TTL-254 packet nor VRID 99 was queued
    assert second is not None
    assert second.payload[1] == 99
    assert receiver.filtered == 0


def test_without_vrids_the_socket_still_sees_every_vrid_and_ttl(lan: Lan) -> None:
    """The unfiltered path: a socket never told its VRIDs leaves the §7.1 checks to userspace."""
    node1, node2 = lan.nodes[:2]
    with lan.inside(node1):
        off_link = spoofer(4, 254)
    with lan.inside(node2):
        receiver = VrrpSocket.multicast("eth0", GROUP4)

    with off_link, receiver:
        off_link.sendto(advertisement(node1.ipv4.ip, GROUP4, vrid=99), (str(GROUP4), 0))
        received = receive_within(receiver)

    assert received is not None
    assert (received.payload[1], received.ttl) == (99, 254)


def test_the_receive_buffer_is_raised_past_the_default(lan: Lan) -> None:
    """1 MiB asked; the kernel doubles SO_RCVBUF for its bookkeeping, so it reports 2 MiB."""
    with lan.inside(lan.nodes[0]):
        receiver = VrrpSocket.multicast("eth0", GROUP4)
    with receiver, socket.fromfd(receiver.fileno(), socket.AF_INET, socket.SOCK_RAW) as same:
        size = same.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert size == 2 * RECEIVE_BUFFER_BYTES


@pytest.mark.parametrize("group", [GROUP4, GROUP6], ids=["ipv4", "ipv6"])
def test_a_speaker_never_hears_its_own_advertisements(lan: Lan, group: IPAddress) -> None:
    node1 = lan.nodes[0]
    with lan.inside(node1):
        sender = VrrpSocket.multicast("eth0", group)
        sibling = VrrpSocket.multicast("eth0", group)
    source = source_of(node1, group.version)

    with sender, sibling:
        sender.send(advertisement(source, group), source=source, destination=group)
        assert receive_within(sender, timeout=0.3) is None
        assert receive_within(sibling, timeout=0) is None


def test_received_ttl_is_the_one_on_the_wire_not_an_assumed_255(lan: Lan) -> None:
    """RFC 9568 §7.1 drops TTL ≠ 255, which needs the real TTL: an off-link spoof has 254."""
    node1, node2 = lan.nodes[:2]
    with lan.inside(node1):
        spoofer = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
        spoofer.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 254)
        spoofer.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    with lan.inside(node2):
        receiver = VrrpSocket.multicast("eth0", GROUP4)

    with spoofer, receiver:
        spoofer.sendto(advertisement(node1.ipv4.ip, GROUP4), (str(GROUP4), 0))
        received = receive_within(receiver)

    assert received is not None
    assert received.ttl == 254


def test_receive_async_wakes_when_a_packet_arrives(lan: Lan) -> None:
    node1, node2 = lan.nodes[:2]
    with lan.inside(node1):
        sender = VrrpSocket.multicast("eth0", GROUP4)
    with lan.inside(node2):
        receiver = VrrpSocket.multicast("eth0", GROUP4)
    payload = advertisement(node1.ipv4.ip, GROUP4)

    async def exchange() -> Received:
        waiting = asyncio.ensure_future(receiver.receive_async())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing sent yet: it is really waiting
        sender.send(payload, source=node1.ipv4.ip, destination=GROUP4)
        return await asyncio.wait_for(waiting, 2)

    with sender, receiver:
        received = asyncio.run(exchange())
        assert receiver.receive() is None  # drained, and non-blocking when empty

    assert received.payload == payload


def test_sending_on_a_link_that_is_down_raises_oserror(lan: Lan) -> None:
    node1 = lan.nodes[0]
    with lan.inside(node1):
        sender = VrrpSocket.multicast("eth0", GROUP4)
    lan.set_link(node1, up=False)

    with sender, pytest.raises(OSError, match="Network is unreachable") as raised:
        sender.send(advertisement(node1.ipv4.ip, GROUP4), source=node1.ipv4.ip, destination=GROUP4)
    assert raised.value.errno == errno.ENETUNREACH


def test_addresses_of_the_wrong_family_are_refused(lan: Lan) -> None:
    with lan.inside(lan.nodes[0]):
        sender = VrrpSocket.unicast("eth0", 4)
    with sender, pytest.raises(ValueError, match="IPv4"):
        sender.send(b"x", source=ip_address("fe80::1"), destination=GROUP6)
