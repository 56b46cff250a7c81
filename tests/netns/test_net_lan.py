"""The namespace LAN builder itself: what later scenario tests, bench/ and demos rely on."""

from __future__ import annotations

import socket
import subprocess
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface

import pytest
from speaker_harness import holds_for

from keepvip.localcluster.lan import Lan, LanError, link_info

pytestmark = pytest.mark.timeout(30)


def namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}


def test_every_host_reaches_every_other_over_ipv4_and_ipv6(lan: Lan) -> None:
    assert lan.client is not None
    for host in lan.nodes:
        lan.run(lan.client, "ping", "-c1", "-W1", str(host.ipv4.ip))
        lan.run(lan.client, "ping", "-c1", "-W1", str(host.ipv6.ip))
    lan.run(lan.nodes[0], "ping", "-c1", "-W1", f"{lan.nodes[2].link_local}%eth0")


def test_hosts_use_only_the_documentation_test_ranges(lan: Lan) -> None:
    for host in lan.hosts:
        assert host.ipv4 in (IPv4Interface(f"198.18.0.{n}/24") for n in (1, 2, 3, 250))
        assert host.ipv6.network == IPv6Interface("2001:db8::/64").network
        assert host.netns.startswith(lan.prefix)
        assert lan.prefix.startswith("kvt-")
        assert lan.addresses(host, "eth0")[0] == host.ipv4
    assert len({host.mac for host in lan.hosts}) == len(lan.hosts) == 4


def test_close_kills_spawned_processes_and_deletes_every_namespace() -> None:
    with Lan.build(nodes=2, client=False) as lan:
        names = {lan.switch, *(host.netns for host in lan.hosts)}
        assert names <= namespaces()
        sleeper = lan.spawn("node1", ["sleep", "60"])
        assert holds_for(lambda: sleeper.poll() is None, 0.1)

    assert sleeper.poll() is not None
    assert not names & namespaces()


def test_close_runs_even_when_the_block_fails() -> None:
    names: set[str] = set()

    def fail_inside_a_lan() -> None:
        with Lan.build(nodes=1, client=False) as lan:
            names.update({lan.switch, lan.nodes[0].netns})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside_a_lan()
    assert names
    assert not names & namespaces()


def test_inside_moves_only_the_block_into_the_namespace(lan: Lan) -> None:
    host_interfaces = {name for _, name in socket.if_nameindex()}
    with lan.inside("node2"):
        inside = {name for _, name in socket.if_nameindex()}
    after = {name for _, name in socket.if_nameindex()}

    assert inside == {"lo", "eth0"}
    assert after == host_interfaces


def test_disconnect_cuts_a_node_off_while_its_link_stays_up(lan: Lan) -> None:
    node1, node2 = lan.nodes[0], lan.nodes[1]
    lan.disconnect(node2)
    assert lan.run(node1, "ping", "-c1", "-W1", str(node2.ipv4.ip), check=False).returncode != 0
    assert link_info(node2.netns, "eth0")["operstate"] == "UP"  # a broken switch, not a pulled cable
    lan.reconnect("node2")
    lan.run(node1, "ping", "-c1", "-W2", str(node2.ipv4.ip))


def test_a_flat_lan_has_no_way_out(lan: Lan) -> None:
    assert lan.routed is False
    assert lan.subnet == IPv4Network("198.18.0.0/24")
    for routed_only in ("host_address", "gateway_address", "gateway_address6"):
        with pytest.raises(LanError, match="flat LAN"):
            getattr(lan, routed_only)
    with pytest.raises(LanError, match="no gateway"):
        lan.set_gateway(False)
    assert "default" not in lan.run("node1", "ip", "route", "show").stdout
