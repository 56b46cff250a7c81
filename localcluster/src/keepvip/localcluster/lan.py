"""The test LAN: network namespaces on one bridge, reachable from the root namespace.

Layout (``P`` is the run's unique prefix, ``k`` the run's subnet index)::

    root namespace ── P-h (198.19.k.1, the API server binds here) ──┐
                                                          P-sw: bridge br0
    P-gw      eth0 198.19.k.254  (the gateway nodes route to; answers pings) ─┤
    P-client  eth0 198.19.k.250  (a LAN client for tests) ────────────────────┤
    P-<node>  eth0 198.19.k.11, .12, ... (one namespace per Kubernetes node) ─┘

Every namespace also has an address in ``2001:db8:k::/64``. The bridge lives in its own
namespace so that the whole LAN is removed with a handful of ``ip netns del``; the root
namespace joins it through one veth so that the API server can bind an address that
every node reaches, exactly as a real cluster's nodes reach theirs. The gateway is a
namespace of its own with no uplink: whatever a node sends off-LAN dies there, so a test
can never leak traffic onto this machine's real uplink (192.0.2.0/24). Addresses
198.19.k.100-.199 are never assigned by the harness: tests use them for VIPs.

Cutting a node off detaches its port from the bridge: the node keeps its link and
carrier (what a broken switch looks like), it just reaches nobody.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

LAN_SUPERNET = ipaddress.IPv4Network("198.19.0.0/16")
"""Runs take a /24 out of this half of 198.18.0.0/15 (RFC 2544 benchmarking space)."""

NODE_INTERFACE = "eth0"
_LOCK_PATH = Path("/run/keepvip-localcluster.lock")


class LanError(RuntimeError):
    """The LAN could not be built or changed."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` with ``args``; raise :class:`LanError` with its stderr on failure."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LanError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def run_in_netns(netns: str, argv: Sequence[str], timeout: float = 30.0,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command inside a network namespace and capture its output."""
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True,
                          text=True, timeout=timeout, check=check)


def netns_addresses(netns: str, device: str = NODE_INTERFACE) -> list[IPInterface]:
    """Global addresses on ``device`` inside ``netns`` (link-local ones left out)."""
    out = ip("-j", "-n", netns, "addr", "show", "dev", device).stdout
    result: list[IPInterface] = []
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                result.append(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
    return result


@contextmanager
def _allocation_lock() -> Iterator[None]:
    with _LOCK_PATH.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _root_networks_in_use() -> list[ipaddress.IPv4Network]:
    used: list[ipaddress.IPv4Network] = []
    for entry in json.loads(ip("-j", "-4", "addr", "show").stdout or "[]"):
        for a in entry.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for route in json.loads(ip("-j", "-4", "route", "show").stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            used.append(ipaddress.IPv4Network(dst, strict=False))
    return used


@dataclass(frozen=True)
class NodePort:
    """One node's attachment to the LAN."""

    name: str
    netns: str
    switch_port: str
    ipv4: ipaddress.IPv4Interface
    ipv6: ipaddress.IPv6Interface


class Lan:
    """Creates, changes and removes one run's LAN (see the module docstring)."""

    def __init__(self, prefix: str, index: int | None = None) -> None:
        self.prefix = prefix
        self._requested_index = index
        self.index = -1
        self.switch_ns = f"{prefix}-sw"
        self.gateway_ns = f"{prefix}-gw"
        self.client_ns = f"{prefix}-client"
        self.host_device = f"{prefix}h"
        self.ports: dict[str, NodePort] = {}
        self._namespaces: list[str] = []
        self._created = False

    # -- addresses -----------------------------------------------------------------
    @property
    def subnet(self) -> ipaddress.IPv4Network:
        """This run's IPv4 /24."""
        return ipaddress.IPv4Network(f"198.19.{self.index}.0/24")

    @property
    def subnet6(self) -> ipaddress.IPv6Network:
        """This run's IPv6 /64."""
        return ipaddress.IPv6Network(f"2001:db8:{self.index:x}::/64")

    def _v4(self, host: int) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.subnet.network_address + host}/24")

    def _v6(self, host: int) -> ipaddress.IPv6Interface:
        return ipaddress.IPv6Interface(f"{self.subnet6.network_address + host}/64")

    @property
    def host_address(self) -> ipaddress.IPv4Address:
        """The root namespace's address on the LAN (where the API server listens)."""
        return self._v4(1).ip

    @property
    def gateway_address(self) -> ipaddress.IPv4Address:
        """The gateway's address: every namespace's default route, answers pings."""
        return self._v4(254).ip

    @property
    def gateway_address6(self) -> ipaddress.IPv6Address:
        """The gateway's IPv6 address."""
        return self._v6(0xFE).ip

    @property
    def client_address(self) -> ipaddress.IPv4Address:
        """The client namespace's address."""
        return self._v4(250).ip

    def vip(self, n: int = 0) -> ipaddress.IPv4Address:
        """The n-th address tests may use for VIPs (198.19.k.100 + n, n < 100)."""
        if not 0 <= n < 100:
            raise ValueError("VIP index must be within 0..99")
        return self._v4(100 + n).ip

    def vip6(self, n: int = 0) -> ipaddress.IPv6Address:
        """The n-th IPv6 address tests may use for VIPs (2001:db8:k::100 + n)."""
        if not 0 <= n < 100:
            raise ValueError("VIP index must be within 0..99")
        return self._v6(0x100 + n).ip

    # -- life cycle ----------------------------------------------------------------
    def create(self) -> None:
        """Pick a free /24, build the switch, the root attachment, gateway and client."""
        with _allocation_lock():
            self.index = self._pick_index()
            self._created = True
            self._add_netns(self.switch_ns)
            ip("-n", self.switch_ns, "link", "add", "br0", "type", "bridge",
               "mcast_snooping", "0", "stp_state", "0")
            ip("-n", self.switch_ns, "link", "set", "br0", "up")
            # Root attachment; its address marks the /24 as taken for concurrent runs.
            ip("link", "add", self.host_device, "type", "veth", "peer", "name", "host",
               "netns", self.switch_ns)
            ip("-n", self.switch_ns, "link", "set", "host", "master", "br0", "up")
            ip("addr", "add", str(self._v4(1)), "dev", self.host_device)
            ip("addr", "add", str(self._v6(1)), "dev", self.host_device, "nodad")
            ip("link", "set", self.host_device, "up")
        self._attach(self.gateway_ns, "gw", self._v4(254), self._v6(0xFE), default_route=False)
        self._attach(self.client_ns, "client", self._v4(250), self._v6(0xFA))

    def _pick_index(self) -> int:
        used = _root_networks_in_use()
        candidates = ([self._requested_index] if self._requested_index is not None
                      else range(1, 255))
        for k in candidates:
            net = ipaddress.IPv4Network(f"198.19.{k}.0/24")
            if not any(net.overlaps(u) for u in used):
                return k
        raise LanError("no free /24 left in 198.19.0.0/16 for the test LAN")

    def _add_netns(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _attach(self, netns: str, port: str, v4: ipaddress.IPv4Interface,
                v6: ipaddress.IPv6Interface, default_route: bool = True) -> None:
        self._add_netns(netns)
        ip("-n", self.switch_ns, "link", "add", port, "type", "veth", "peer", "name",
           NODE_INTERFACE, "netns", netns)
        ip("-n", self.switch_ns, "link", "set", port, "master", "br0", "up")
        ip("-n", netns, "addr", "add", str(v4), "dev", NODE_INTERFACE)
        ip("-n", netns, "addr", "add", str(v6), "dev", NODE_INTERFACE, "nodad")
        ip("-n", netns, "link", "set", NODE_INTERFACE, "up")
        if default_route:
            self._ensure_default_route(netns)

    def _ensure_default_route(self, netns: str) -> None:
        ip("-n", netns, "route", "replace", "default", "via", str(self.gateway_address))
        ip("-n", netns, "-6", "route", "replace", "default", "via", str(self.gateway_address6))

    def add_node(self, name: str, number: int) -> NodePort:
        """Create node ``name``'s namespace at host number 10 + ``number`` (1..89)."""
        if not 1 <= number <= 89:
            raise ValueError("node number must be within 1..89")
        port = NodePort(name=name, netns=f"{self.prefix}-{name}", switch_port=f"n{number}",
                        ipv4=self._v4(10 + number), ipv6=self._v6(0x10 + number))
        self._attach(port.netns, port.switch_port, port.ipv4, port.ipv6)
        self.ports[name] = port
        return port

    def remove_node(self, name: str) -> None:
        """Delete node ``name``'s namespace (its veth goes with it)."""
        port = self.ports.pop(name)
        ip("netns", "del", port.netns, check=False)
        if port.netns in self._namespaces:
            self._namespaces.remove(port.netns)

    def namespaces(self) -> list[str]:
        """Every namespace this LAN created and has not removed yet."""
        return list(self._namespaces)

    def destroy(self) -> None:
        """Remove every namespace and the root veth. Safe to call twice or half-built."""
        for netns in reversed(self._namespaces):
            ip("netns", "del", netns, check=False)
        self._namespaces.clear()
        self.ports.clear()
        if self._created:
            ip("link", "del", self.host_device, check=False)
            self._created = False

    # -- faults --------------------------------------------------------------------
    def disconnect(self, name: str) -> None:
        """Cut node ``name`` off the LAN: its switch port leaves the bridge, its link stays up."""
        ip("-n", self.switch_ns, "link", "set", self.ports[name].switch_port, "nomaster")

    def reconnect(self, name: str) -> None:
        """Undo :meth:`disconnect`."""
        ip("-n", self.switch_ns, "link", "set", self.ports[name].switch_port, "master", "br0")

    def set_link(self, name: str, up: bool) -> None:
        """Set the node's own ``eth0`` down or up (a link failure the node itself sees).

        Bringing it up restores the default routes the kernel dropped with the link.
        """
        port = self.ports[name]
        ip("-n", port.netns, "link", "set", NODE_INTERFACE, "up" if up else "down")
        if up:
            # Linux drops a link's IPv6 addresses when it goes down (keep_addr_on_down=0):
            # put the node's back, or its IPv6 default route has no way to the gateway.
            ip("-n", port.netns, "addr", "replace", str(port.ipv6), "dev", NODE_INTERFACE, "nodad")
            self._ensure_default_route(port.netns)

    def set_gateway(self, up: bool) -> None:
        """Take the gateway off the LAN (or bring it back): arbiter pings go unanswered."""
        ip("-n", self.gateway_ns, "link", "set", NODE_INTERFACE, "up" if up else "down")

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for logs, the demo and the stale-run janitor)."""
        return {
            "subnet": str(self.subnet), "subnet6": str(self.subnet6),
            "host": str(self.host_address), "gateway": str(self.gateway_address),
            "client": str(self.client_address), "host_device": self.host_device,
            "namespaces": self.namespaces(),
            "nodes": {n: {"netns": p.netns, "ipv4": str(p.ipv4), "ipv6": str(p.ipv6)}
                      for n, p in self.ports.items()},
        }
