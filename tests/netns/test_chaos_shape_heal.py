"""Regression of a chaos-run finding (issue 14, eleventh pass): healing ``shape`` loses nothing.

Every worst ``shape`` gap of the eleventh pass's pairs, keepvip's and keepalived's alike,
began at the heal: the harness removed the node's token buckets with ``tc qdisc del``,
which discards the packets a ``tbf`` still queues (up to 80 ms of the probed service's
answers), and the client waited for its retry. Whether an answer sat in the queue at that
instant was chance, so one daemon's block had such a gap and the other's not. The heal now
raises the buckets to 1 Gbit/s and leaves them (``chaos_faults.UNSHAPED``); the node's next
``shape`` changes the same buckets back.

This shapes a node's link through the chaos harness twice, each time sending a burst that
fits in the bucket but takes it ~80 ms to let out and healing at once: every packet reaches
the client, and between the faults the link runs at 1 Gbit/s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from keepvip.localcluster.lan import Lan

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos_faults import Injector, Services
from chaos_schedule import FaultKind, FaultPlan

PORT = 9999
BURST = 20  # datagrams of 500 bytes: ~10.6 kB on the wire, inside the bucket's 13 kB
RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
s.settimeout(5.0)
count = 0
try:
    while True:
        s.recv(2048)
        count += 1
        s.settimeout(1.0)
except TimeoutError:
    pass
print(count, flush=True)
"""
SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(b"x" * 500, (sys.argv[1], int(sys.argv[2])))
"""


def test_healing_a_shaped_link_delivers_what_its_buckets_still_queued(lan: Lan) -> None:
    node, client = lan.node("node1"), lan.node("client")
    target = str(client.ipv4.ip)
    lan.run(node, "ping", "-c", "1", "-W", "2", target)  # the client's MAC is known before the burst
    injector = Injector(lan, {}, Services(lan))
    for number in (1, 2):  # the first shape adds the buckets, the second changes them back
        receiver = lan.spawn(client, [sys.executable, "-c", RECEIVER, target, str(PORT + number)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        record = injector.apply(FaultPlan(number, FaultKind.SHAPE, ("node1",), 0.0, 0.5, 1.0))
        assert "rate 1Mbit" in lan.run(node, "tc", "qdisc", "show", "dev", node.ifname).stdout
        lan.run(node, sys.executable, "-c", SENDER, target, str(PORT + number), str(BURST))
        injector.heal(record)
        assert int(receiver.stdout.readline()) == BURST, f"shape #{number}"
        receiver.wait(timeout=10)
        assert "rate 1Gbit" in lan.run(node, "tc", "qdisc", "show", "dev", node.ifname).stdout
