"""Speakers on a namespace LAN ignore forged and broken advertisements, and count them.

The client namespace plays an attacker (or a broken router) and writes VRRP frames built
with scapy straight onto the LAN through an AF_PACKET socket: each would take the VIP
away from the master if it were accepted (priority 254), but each breaks one receive
rule of RFC 9568 §7.1 / RFC 3768 §7.1. They must change nothing — same master, the
client still reaches it — and every node counts each of them exactly once in
``keepvip_advert_dropped_total{reason=...}``, except the two kinds the sockets' kernel
filter drops before Python reads them (TTL ≠ 255 and a VRID no router runs, issue 10):
those are counted nowhere, and must not be counted. A final control sends the same
advertisement without a defect and watches the master step down, so the forgeries are
known to have been good enough to matter.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from speaker_harness import (
    VIP4,
    SpeakerSet,
    as_interface,
    secret,
    speaker_set,
    stays_master,
    virtualip,
    wait_for_master,
    wait_until,
    who_answers,
)

from keepvip.localcluster.lan import Lan

pytestmark = pytest.mark.timeout(60)

V3_GROUP = IPv4Address("224.0.0.118")
V2_GROUP = IPv4Address("224.0.0.18")
LEGACY_VIP = as_interface("198.18.0.101/24")
PASSWORD = "s3cret"  # noqa: S105 - a test password
REPEAT = 3  # each forgery is sent this many times
KERNEL_FILTERED = {"bad_ttl", "wrong_vrid"}  # dropped by the socket filter, never seen in Python


@pytest.fixture
def speakers(lan: Lan, tmp_path: Path) -> Iterator[SpeakerSet]:
    with speaker_set(lan, tmp_path) as running:
        running.start_web()
        running.configure(
            virtualip("web", vrid=71, group=str(V3_GROUP), node_priorities={"node1": 150, "node2": 120}),
            virtualip("legacy", vrid=72, version=2, interval="1s", addresses=[str(LEGACY_VIP)],
                      node_priorities={"node1": 150, "node2": 120}, password_secret=("vrrp", "password")),
            secret("vrrp", "password", PASSWORD),
        )  # fmt: skip
        running.start()
        yield running


def frame(lan: Lan, packet: IP) -> bytes:
    """``packet`` in an Ethernet frame from the client to its multicast group's MAC."""
    group = IPv4Address(packet.dst)
    low = group.packed[1:]
    mac = "01:00:5e:" + ":".join(f"{b:02x}" for b in (low[0] & 0x7F, low[1], low[2]))
    return bytes(Ether(src=lan.node("client").mac, dst=mac) / packet)


def v3_advert(
    lan: Lan, *, vrid: int = 71, priority: int = 254, ttl: int = 255, checksum: int | None = None
) -> IP:
    """A VRRPv3 advertisement for the VIP, from the client's address to the v3 group."""
    vrrp = VRRPv3(vrid=vrid, priority=priority, adv=10, ipcount=1, addrlist=[str(VIP4.ip)])
    if checksum is not None:
        vrrp.chksum = checksum
    return IP(src=str(lan.node("client").ipv4.ip), dst=str(V3_GROUP), ttl=ttl, proto=112) / vrrp


def v3_checksum(lan: Lan) -> int:
    """The checksum scapy computes for the default forged advertisement."""
    built = IP(bytes(v3_advert(lan)))
    return int(built[VRRPv3].chksum)


def send_frames(lan: Lan, frames: list[bytes]) -> None:
    """Write the frames onto the LAN from the client's eth0."""
    with lan.inside("client"):
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    with raw:
        raw.bind((lan.node("client").ifname, 0))
        for data in frames:
            for _ in range(REPEAT):
                raw.send(data)
                time.sleep(0.01)


def test_forged_and_malformed_advertisements_change_nothing_and_are_counted(
    lan: Lan, speakers: SpeakerSet
) -> None:
    wait_for_master(lan, VIP4, "node1")
    wait_for_master(lan, LEGACY_VIP, "node1", timeout=15)  # VRRPv2 at 1 s: about 3.4 s
    good = v3_checksum(lan)
    client = str(lan.node("client").ipv4.ip)
    first_six_bytes = bytes(v3_advert(lan)[VRRPv3])[:6]
    forgeries = {
        "bad_ttl": v3_advert(lan, ttl=254),  # a higher priority, but from beyond the LAN
        "bad_checksum": v3_advert(lan, checksum=good ^ 0x00FF),
        "wrong_vrid": v3_advert(lan, vrid=99),
        "truncated": IP(src=client, dst=str(V3_GROUP), ttl=255, proto=112) / first_six_bytes,
        "auth_mismatch": IP(src=client, dst=str(V2_GROUP), ttl=255, proto=112)
        / VRRP(vrid=72, priority=254, ipcount=1, authtype=1, adv=1, addrlist=[str(LEGACY_VIP.ip)],
               auth1=int.from_bytes(b"wrongpas"[:4]), auth2=int.from_bytes(b"wrongpas"[4:])),
    }  # fmt: skip
    before = {node: speakers.metrics(node) for node in speakers.node_names}
    sent_at = time.time()

    send_frames(lan, [frame(lan, packet) for packet in forgeries.values()])

    assert stays_master(lan, VIP4, "node1", 1.0)
    assert who_answers(lan, LEGACY_VIP) == "node1"
    for node in speakers.node_names:
        assert speakers.transitions(node, since=sent_at) == [], f"{node} changed state"
        after = speakers.metrics(node)
        for reason in forgeries:
            counted = after.value("keepvip_advert_dropped_total", reason=reason) - before[node].value(
                "keepvip_advert_dropped_total", reason=reason
            )
            expected = 0 if reason in KERNEL_FILTERED else REPEAT
            assert counted == expected, f"{node} counted {counted} {reason} drops, {expected} expected"
        auth = after.value("keepvip_advert_dropped_total", virtualip="legacy", reason="auth_mismatch")
        assert auth >= REPEAT  # attributed to the VirtualIP whose password it failed

    # Control: the same advertisement without a defect does take the master down.
    control_at = time.time()
    send_frames(lan, [frame(lan, v3_advert(lan))])

    stepped_down = wait_until(
        lambda: speakers.became("node1", "BACKUP", "web", since=control_at), 5, what="node1 steps down"
    )
    assert stepped_down.reason == "higher_priority_seen"
    wait_for_master(lan, VIP4, "node1", timeout=10)  # the phantom master never advertises again
