"""The scale benchmark's client: when does each of many VIPs answer from a given node?

Run in the client namespace. It asks, over ARP, who holds each VIP: every ``--period``
seconds an ARP request for every VIP that has not yet answered from the wanted MAC
address, and it records the first reply from that MAC. A node's kernel answers ARP
for an address only while the address is bound to its interface, so a reply from the
backup's MAC is the VIP reachable on the backup. ARP rather than TCP because a client
that connects to 1,000 addresses needs 1,000 neighbour entries, and the kernel's
neighbour table limit (``gc_thresh3``, 1,024 by default) is shared by every namespace
of the machine: the probe would measure the table, not the failover. The probe's own
resolution is ``--period``.

It prints ``ready`` once its socket is open and starts when a line arrives on standard
input (the moment of the injection, so nothing loads the LAN before), then
``<monotonic time> <vip>`` for each VIP's first reply from the wanted MAC, and
``done`` when all answered or time is up. The monotonic clock is shared by the
processes of the machine. Only addresses of the test LANs are accepted.

    echo | python bench/scale_probe.py eth0 198.18.0.250 aa:bb:cc:dd:ee:ff vips.txt
"""

from __future__ import annotations

import argparse
import select
import socket
import struct
import sys
import time
from ipaddress import IPv4Address, ip_network

TEST_NETWORK = ip_network("198.18.0.0/15")
_ETH_P_ARP = 0x0806
_BROADCAST = b"\xff" * 6


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _request(own_mac: bytes, own_ip: IPv4Address, target: IPv4Address) -> bytes:
    ethernet = _BROADCAST + own_mac + struct.pack("!H", _ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + own_mac + own_ip.packed + b"\0" * 6 + target.packed
    return ethernet + arp


def probe(  # noqa: PLR0917 - one caller, main()
    ifname: str,
    own_ip: IPv4Address,
    own_mac: bytes,
    wanted: bytes,
    targets: list[IPv4Address],
    period: float,
    limit: float,
) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ARP))
    sock.bind((ifname, _ETH_P_ARP))
    print("ready", flush=True)
    sys.stdin.readline()
    pending = {t.packed: t for t in targets}
    stop = time.monotonic() + limit
    next_round = time.monotonic()
    while pending and time.monotonic() < stop:
        now = time.monotonic()
        if now >= next_round:
            for target in list(pending.values()):
                sock.send(_request(own_mac, own_ip, target))
            next_round = now + period
        readable, _, _ = select.select([sock], [], [], max(0.0, next_round - time.monotonic()))
        while readable:
            try:
                frame = sock.recv(128, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            # Ethernet (14) + ARP: opcode at 20, sender MAC at 22, sender IP at 28.
            if len(frame) >= 42 and frame[20:22] == b"\0\2" and frame[22:28] == wanted:
                found = pending.pop(frame[28:32], None)
                if found is not None:
                    sys.stdout.write(f"{time.monotonic():.6f} {found}\n")
    sys.stdout.flush()
    sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ifname")
    parser.add_argument("own_ip", type=IPv4Address)
    parser.add_argument("own_mac")
    parser.add_argument("wanted_mac", help="the MAC address of the node that should answer")
    parser.add_argument("targets", help="file of VIPs, one a line")
    parser.add_argument("--period", type=float, default=0.05)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    with open(args.targets) as lines:
        targets = [IPv4Address(line.strip()) for line in lines if line.strip()]
    for target in targets:
        if target not in TEST_NETWORK:
            parser.error(f"{target} is not in the test LAN {TEST_NETWORK}")
    probe(args.ifname, args.own_ip, _mac(args.own_mac), _mac(args.wanted_mac), targets,
          args.period, args.max_seconds)  # fmt: skip
    print("done", flush=True)


if __name__ == "__main__":
    main()
