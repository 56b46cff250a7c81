"""The chaos observer's address poller reads the kernel itself, without a process per reading.

It used to run ``ip netns exec <node> ip -j addr show dev eth0`` three times per 100 ms per
LAN: 30 process starts a second per LAN (each a mount namespace and a sysfs mount), which
on the shared 2-core host took the CPU the daemons under test needed (issue 14, fourth
pass). Now one netlink socket per node, opened in the node's namespace, dumps the
addresses; this checks it sees what ``ip addr`` sees, on the right node and interface.
"""

from __future__ import annotations

import sys
from pathlib import Path

from keepvip.localcluster.lan import Lan

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos_observe import AddressPoller

VIPS = ("198.18.0.101", "198.18.0.102", "198.18.0.103")


def test_the_poller_reads_each_nodes_eth0_vips_from_netlink(lan: Lan) -> None:
    node1, node2 = lan.nodes[0], lan.nodes[1]
    lan.run(node2, "ip", "addr", "add", "198.18.0.101/24", "dev", "eth0")
    lan.run(node2, "ip", "addr", "add", "198.18.0.102/32", "dev", "eth0")
    lan.run(node1, "ip", "addr", "add", "198.18.0.103/32", "dev", "lo")  # not on eth0: not held
    lan.run(node1, "ip", "addr", "add", "198.18.0.150/32", "dev", "eth0")  # not a VIP of the run
    poller = AddressPoller(lan, VIPS, 0.05)
    try:
        first = {host.name: poller.read(host.name) for host in lan.nodes}
        assert {name: sample.held for name, sample in first.items() if sample is not None} == {
            node1.name: frozenset(),
            node2.name: frozenset({"198.18.0.101", "198.18.0.102"}),
            lan.nodes[2].name: frozenset(),
        }
        lan.run(node2, "ip", "addr", "del", "198.18.0.101/24", "dev", "eth0")
        second = poller.read(node2.name)
        assert second is not None
        assert second.held == {"198.18.0.102"}
        assert second.at > first[node2.name].at  # type: ignore[union-attr]
    finally:
        poller.close()
