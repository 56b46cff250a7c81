"""Issue 14, third pass: were the 3-4 s client gaps after a short ``link`` fault the client's
ARP ``locktime``? Linux ignores an ARP that would change a neighbour entry updated less than
``locktime`` (1 s) before — a VIP that moves twice within a second could leave clients on
the old MAC. This proves on the real kernel that it does not apply to keepvip's
announcements, and why.

The kernel (net/ipv4/arp.c, ``arp_process``) overrides the lock for a *gratuitous* ARP
(``arp_is_garp``: sender IP = target IP; for a reply also target MAC = sender MAC).
keepvip announces with a gratuitous ARP **request** (and a reply, for old stacks): the
request form moves the client's entry at once however recently it changed. A reply alone,
with the broadcast target MAC keepalived and MetalLB also send, is *not* gratuitous to
Linux and is ignored inside the lock: that is the control, showing the lock is real here.

So a client that keeps a stale MAC after two moves within a second is not explained by
locktime for keepvip; the chaos observer now records the client's neighbour table
(``ip -ts monitor neigh``) in every violation's excerpt instead of guessing.
"""

from __future__ import annotations

import time
from ipaddress import IPv4Address

from keepvip.localcluster.lan import Host, Lan
from keepvip.speaker.net.announce import Announcer, build_garp_reply

VIP = IPv4Address("198.18.0.120")


def client_mac(lan: Lan) -> str | None:
    assert lan.client is not None
    return lan.neighbours(lan.client).get(VIP)


def move(lan: Lan, old: Host, new: Host) -> None:
    lan.run(old, "ip", "addr", "del", f"{VIP}/32", "dev", "eth0", check=False)
    lan.run(new, "ip", "addr", "add", f"{VIP}/32", "dev", "eth0")


def followed(lan: Lan, mac: str, timeout: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client_mac(lan) == mac:
            return True
        time.sleep(0.01)
    return False


def test_keepvips_announcement_moves_the_clients_entry_within_the_arp_locktime(lan: Lan) -> None:
    assert lan.client is not None
    node1, node2 = lan.nodes[0], lan.nodes[1]
    locktime = int(lan.run(lan.client, "cat", "/proc/sys/net/ipv4/neigh/eth0/locktime").stdout) / 100
    assert locktime >= 0.5  # jiffies of USER_HZ: 100 = 1 s, the default
    lan.run(node1, "ip", "addr", "add", f"{VIP}/32", "dev", "eth0")
    lan.run(lan.client, "ping", "-c", "1", "-W", "1", str(VIP))  # the client learns node1's MAC
    assert client_mac(lan) == node1.mac

    started = time.monotonic()
    move(lan, node1, node2)
    with lan.inside(node2):
        announcer = Announcer("eth0")
    with announcer:
        announcer.announce(VIP)
    assert followed(lan, node2.mac)  # the entry changed: its lock starts now

    move(lan, node2, node1)
    with lan.inside(node1):
        announcer = Announcer("eth0")
    with announcer:
        # The control: a gratuitous ARP reply alone (target MAC broadcast) inside the lock is
        # ignored by Linux — the lock is real on this kernel.
        announcer.send(build_garp_reply(node1.mac, VIP))
        assert not followed(lan, node1.mac, timeout=0.1)
        # keepvip's announcement (request + reply) inside the lock: followed at once.
        announcer.announce(VIP)
        assert followed(lan, node1.mac)
    assert time.monotonic() - started < locktime  # both moves happened within one locktime

    # And the same lone reply once the lock has run out is followed: it was the lock.
    time.sleep(locktime + 0.2)
    move(lan, node1, node2)
    with lan.inside(node2):
        announcer = Announcer("eth0")
    with announcer:
        announcer.send(build_garp_reply(node2.mac, VIP))
        assert followed(lan, node2.mac)
