"""The one LAN builder: network namespaces on one bridge, for tests, benchmarks, the cluster and demos.

One :class:`Lan` class builds both shapes keepvip needs; they differ only in addressing
and in whether the LAN reaches out of its namespaces:

*flat* (:meth:`Lan.build`, the netns tier and bench/): node namespaces ``node1..nodeN``
and a client on a dumb switch, nothing else; 198.18.0.0/24 and 2001:db8::/64, node ``n``
at ``.n``, the client at ``.250``. Every namespace is the test's own, so every run can use
the same addresses; names carry the run's pid (``kvt-<pid>-<rand>``) so parallel runs
never collide and :func:`sweep_stale` can tell a dead run's leftovers from a live one's::

    P-node1   P-node2   ...   P-client          eth0 in each
       |         |               |
      [n1]      [n2]          [client]          <- veth ends, in the switch
       `--------- br0 (bridge) ---'              P-sw

*routed* (``Lan(prefix).create()``, the local cluster and the demo): a free
198.19.k.0/24 and 2001:db8:k::/64 picked under a machine-wide lock, plus a root
attachment and a gateway::

    root namespace ── P-h (198.19.k.1, the API server binds here) ──┐
                                                          P-sw: bridge br0
    P-gw      eth0 198.19.k.254  (the gateway nodes route to; answers pings) ─┤
    P-client  eth0 198.19.k.250  (a LAN client for tests) ────────────────────┤
    P-<node>  eth0 198.19.k.11, .12, ... (one namespace per Kubernetes node) ─┘

The root attachment lets the API server bind an address every node reaches, exactly as
a real cluster's nodes reach theirs; its address marks the /24 as taken for concurrent
runs. The gateway is a namespace with no uplink: whatever a node sends off-LAN dies
there, so nothing can leak onto this machine's real uplink (192.0.2.0/24). Addresses
198.19.k.100-.199 are never assigned: tests use them for VIPs.

Both shapes use only RFC 2544 benchmarking space (198.18.0.0/15) and RFC 3849
documentation space (2001:db8::/32). The bridge is a dumb switch (no STP delay, no
multicast snooping), so every frame reaches every namespace, as on the flat L2 segment
VRRP is made for; DAD is off everywhere so addresses are usable at once. The bridge
lives in its own namespace so the whole LAN goes with a handful of ``ip netns del``.

Faults: :meth:`Lan.set_link` (the host's own eth0: it sees the link drop),
:meth:`Lan.set_port` (its switch port: its carrier drops), :meth:`Lan.disconnect`
(its port leaves the bridge: link and carrier stay up, it reaches nobody, a broken
switch) and :meth:`Lan.set_gateway`. Processes started with :meth:`Lan.spawn` are
ended by pid only, by :meth:`Lan.close` (also on interpreter exit).

This module is deliberately free of pytest: bench/ and demos import it too.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from keepvip.localcluster.procs import stop_process

IPInterface = IPv4Interface | IPv6Interface

LAN_SUPERNET = ipaddress.IPv4Network("198.19.0.0/16")
"""Routed runs take a /24 out of this half of 198.18.0.0/15 (RFC 2544 benchmarking space)."""

FLAT_SUBNET4 = ipaddress.IPv4Network("198.18.0.0/24")
"""Every flat LAN's IPv4 subnet: the other half of 198.18.0.0/15, private to the test's namespaces."""

FLAT_SUBNET6 = ipaddress.IPv6Network("2001:db8::/64")
"""Every flat LAN's IPv6 subnet (RFC 3849 documentation space)."""

NAME_PREFIX = "kvt-"
"""Flat LANs' namespace names start with this, then the creating pid (see :func:`sweep_stale`)."""

NODE_INTERFACE = "eth0"
BRIDGE = "br0"
CLIENT_HOST = 250  # the client's host number: .250, ::fa
GATEWAY_HOST = 254  # routed only: .254, ::fe
ROOT_HOST = 1  # routed only: the root namespace's address

_LOCK_PATH = Path("/run/keepvip-localcluster.lock")
_NOT_READ_YET = IPv6Address("fe80::")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class LanError(RuntimeError):
    """The LAN could not be built or changed, or a command in it failed."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` with ``args``; raise :class:`LanError` with its stderr on failure."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LanError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def run(netns: str, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside namespace ``netns``; with ``check``, raise with its stderr if it fails."""
    result = subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise LanError(f"{' '.join(argv)} in {netns} failed: {result.stderr.strip()}")
    return result


def link_info(netns: str, ifname: str) -> dict[str, Any]:
    """``ip -j link show dev ifname`` in ``netns``."""
    info: list[dict[str, Any]] = json.loads(ip("-j", "-n", netns, "link", "show", "dev", ifname).stdout)
    return info[0]


def _parse_addresses(ip_json: str, scope: str | None = None) -> list[IPInterface]:
    found: list[IPInterface] = []
    for link in json.loads(ip_json or "[]"):
        for info in link.get("addr_info", []):
            if scope is None or info.get("scope") == scope:
                found.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"))
    return found


def netns_addresses(netns: str, device: str = NODE_INTERFACE) -> list[IPInterface]:
    """Global addresses on ``device`` inside ``netns`` (link-local ones left out)."""
    return _parse_addresses(ip("-j", "-n", netns, "addr", "show", "dev", device).stdout, "global")


@contextlib.contextmanager
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


@dataclass
class Host:
    """One namespace on the LAN: a node, the client or (routed) the gateway."""

    name: str  # logical name: node1, node-a, ..., client, gw
    netns: str  # the namespace's real, run-unique name
    ipv4: IPv4Interface
    ipv6: IPv6Interface
    ifname: str = NODE_INTERFACE
    port: str = ""  # the veth end in the switch namespace
    number: int = 0  # a node's number (its port is n<number>); 0 for client and gateway
    mac: str = ""
    link_local: IPv6Address = _NOT_READ_YET  # read from the kernel once eth0 is up


class Lan:
    """A switch namespace with node namespaces, a client and, when routed, a way out.

    Flat: :meth:`build` (a context manager). Routed: ``Lan(prefix, index)`` then
    :meth:`create` and :meth:`add_node`. Either way :meth:`close` removes everything.
    """

    def __init__(self, prefix: str, index: int | None = None, *, routed: bool = True) -> None:
        self.prefix = prefix
        self.routed = routed
        self._requested_index = index
        self.index = -1 if routed else 0
        self.switch = f"{prefix}-sw"
        self.host_device = f"{prefix}h"  # routed only: the root namespace's end
        self.nodes: list[Host] = []
        self.client: Host | None = None
        self.gateway: Host | None = None
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._root_attached = False
        self._closed = False

    # -- addresses -----------------------------------------------------------------
    @property
    def subnet(self) -> ipaddress.IPv4Network:
        """This LAN's IPv4 /24."""
        return ipaddress.IPv4Network(f"198.19.{self.index}.0/24") if self.routed else FLAT_SUBNET4

    @property
    def subnet6(self) -> ipaddress.IPv6Network:
        """This LAN's IPv6 /64."""
        return ipaddress.IPv6Network(f"2001:db8:{self.index:x}::/64") if self.routed else FLAT_SUBNET6

    def _v4(self, host: int) -> IPv4Interface:
        return IPv4Interface(f"{self.subnet.network_address + host}/24")

    def _v6(self, host: int) -> IPv6Interface:
        return IPv6Interface(f"{self.subnet6.network_address + host}/64")

    def _node_host(self, number: int) -> int:
        """Routed nodes sit at .11.., clear of the root's .1; flat node n sits at .n."""
        return 10 + number if self.routed else number

    @property
    def host_address(self) -> IPv4Address:
        """The root namespace's address on a routed LAN (where the API server listens)."""
        self._require_routed("a root attachment")
        return self._v4(ROOT_HOST).ip

    @property
    def gateway_address(self) -> IPv4Address:
        """The gateway's address: every namespace's default route, answers pings."""
        self._require_routed("a gateway")
        return self._v4(GATEWAY_HOST).ip

    @property
    def gateway_address6(self) -> IPv6Address:
        """The gateway's IPv6 address."""
        self._require_routed("a gateway")
        return self._v6(GATEWAY_HOST).ip

    @property
    def client_address(self) -> IPv4Address:
        """The client namespace's address."""
        return self._v4(CLIENT_HOST).ip

    def vip(self, n: int = 0) -> IPv4Address:
        """The n-th address tests may use for VIPs (.100 + n, n < 100)."""
        if not 0 <= n < 100:
            raise ValueError("VIP index must be within 0..99")
        return self._v4(100 + n).ip

    def vip6(self, n: int = 0) -> IPv6Address:
        """The n-th IPv6 address tests may use for VIPs (::100 + n)."""
        if not 0 <= n < 100:
            raise ValueError("VIP index must be within 0..99")
        return self._v6(0x100 + n).ip

    def _require_routed(self, what: str) -> None:
        if not self.routed:
            raise LanError(f"a flat LAN has no {what}: build it with Lan(prefix).create()")

    # -- life cycle ----------------------------------------------------------------
    @classmethod
    def build(cls, nodes: int = 3, *, client: bool = True) -> Lan:
        """A flat LAN: the switch, ``nodes`` namespaces node1..nodeN and (by default) a client."""
        lan = cls(f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(2)}", routed=False)
        try:
            lan.create(client=client)
            for number in range(1, nodes + 1):
                lan.add_node(f"node{number}", number)
        except BaseException:
            lan.close()
            raise
        return lan

    def create(self, *, client: bool = True) -> None:
        """Build the switch and the client; routed, first a free /24, the root attachment and gateway."""
        atexit.register(self.close)
        if self.routed:
            with _allocation_lock():
                self.index = self._pick_index()
                self._add_switch()
                self._attach_root()
            self.gateway = self._attach("gw", "gw", GATEWAY_HOST, default_route=False)
        else:
            self._add_switch()
        if client:
            self.client = self._attach("client", "client", CLIENT_HOST)

    def _pick_index(self) -> int:
        used = _root_networks_in_use()
        candidates = [self._requested_index] if self._requested_index is not None else range(1, 255)
        for k in candidates:
            net = ipaddress.IPv4Network(f"198.19.{k}.0/24")
            if not any(net.overlaps(u) for u in used):
                return k
        raise LanError("no free /24 left in 198.19.0.0/16 for the test LAN")

    def _add_netns(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        for key in ("all", "default"):
            run(name, "sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")

    def _add_switch(self) -> None:
        self._add_netns(self.switch)
        ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge",
           "forward_delay", "0", "stp_state", "0", "mcast_snooping", "0")  # fmt: skip
        ip("-n", self.switch, "link", "set", BRIDGE, "up")

    def _attach_root(self) -> None:
        self._root_attached = True
        ip("link", "add", self.host_device, "type", "veth", "peer", "name", "host", "netns", self.switch)
        ip("-n", self.switch, "link", "set", "host", "master", BRIDGE, "up")
        ip("addr", "add", str(self._v4(ROOT_HOST)), "dev", self.host_device)
        ip("addr", "add", str(self._v6(ROOT_HOST)), "dev", self.host_device, "nodad")
        ip("link", "set", self.host_device, "up")

    def _attach(self, name: str, port: str, host_number: int, number: int = 0,
                default_route: bool = True) -> Host:
        host = Host(name=name, netns=f"{self.prefix}-{name}", ipv4=self._v4(host_number),
                    ipv6=self._v6(host_number), port=port, number=number)  # fmt: skip
        self._add_netns(host.netns)
        ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", host.ifname,
           "netns", host.netns)  # fmt: skip
        ip("-n", self.switch, "link", "set", port, "master", BRIDGE, "up")
        ip("-n", host.netns, "addr", "add", str(host.ipv4), "dev", host.ifname)
        ip("-n", host.netns, "addr", "add", str(host.ipv6), "dev", host.ifname, "nodad")
        ip("-n", host.netns, "link", "set", host.ifname, "up")
        if default_route and self.routed:
            self._ensure_default_route(host.netns)
        host.mac = link_info(host.netns, host.ifname)["address"]
        host.link_local = next(
            a.ip for a in self.addresses(host, host.ifname)
            if isinstance(a.ip, IPv6Address) and a.ip.is_link_local
        )  # fmt: skip
        return host

    def _ensure_default_route(self, netns: str) -> None:
        ip("-n", netns, "route", "replace", "default", "via", str(self.gateway_address))
        ip("-n", netns, "-6", "route", "replace", "default", "via", str(self.gateway_address6))

    def add_node(self, name: str, number: int) -> Host:
        """Create node ``name``'s namespace, plugged into switch port ``n<number>`` (1..89)."""
        if not 1 <= number <= 89:
            raise ValueError("node number must be within 1..89")
        host = self._attach(name, f"n{number}", self._node_host(number), number)
        self.nodes.append(host)
        return host

    def remove_node(self, name: str) -> None:
        """Delete node ``name``'s namespace (its veth goes with it)."""
        host = self.node(name)
        self.nodes.remove(host)
        ip("netns", "del", host.netns, check=False)
        if host.netns in self._namespaces:
            self._namespaces.remove(host.netns)

    def namespaces(self) -> list[str]:
        """Every namespace this LAN created and has not removed yet."""
        return list(self._namespaces)

    def close(self) -> None:
        """End every spawned process by pid, then delete every namespace and the root veth. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for process in reversed(self._processes):
            self.stop(process, signal.SIGTERM, timeout=2)
        for name in reversed(self._namespaces):
            ip("netns", "del", name, check=False)
        self._namespaces.clear()
        self.nodes.clear()
        self.client = self.gateway = None
        if self._root_attached:
            ip("link", "del", self.host_device, check=False)
            self._root_attached = False
        atexit.unregister(self.close)

    def __enter__(self) -> Lan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- lookup ---------------------------------------------------------------------
    @property
    def hosts(self) -> list[Host]:
        """The nodes and the client (not the gateway: it is the LAN's, not a test's)."""
        return [*self.nodes, *([self.client] if self.client else [])]

    def node(self, name: str) -> Host:
        """The host called ``name`` (a node, or ``client``)."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def netns(self, host: Host | str) -> str:
        """The namespace of a :class:`Host`, a host's logical name, or a namespace name."""
        if isinstance(host, Host):
            return host.netns
        for candidate in self.hosts:
            if candidate.name == host:
                return candidate.netns
        return host

    def _host(self, host: Host | str) -> Host:
        return self.node(host) if isinstance(host, str) else host

    # -- acting on hosts ------------------------------------------------------------
    def run(
        self, host: Host | str, *argv: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host``'s namespace and wait for it."""
        return run(self.netns(host), *argv, check=check, timeout=timeout)

    def spawn(self, host: Host | str, argv: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in the background inside ``host``; :meth:`close` ends it by pid."""
        process: subprocess.Popen[Any] = subprocess.Popen(
            ["ip", "netns", "exec", self.netns(host), *argv], **popen
        )
        self._processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 5) -> int:
        """Signal one process started by :meth:`spawn` and reap it (SIGKILL if it lingers).

        By its pid only (the process manager's :func:`~keepvip.localcluster.procs.stop_process`):
        a test that SIGKILLs a keepalived parent means to leave its children behind.
        """
        code = stop_process(process, timeout, sig, group=False)
        assert code is not None, f"{process.args!r} survived SIGKILL"
        return code

    def addresses(self, host: Host | str, ifname: str | None = None) -> list[IPInterface]:
        """The addresses ``ip addr`` shows in ``host`` (on ``ifname`` or every interface)."""
        argv = ["-j", "-n", self.netns(host), "addr", "show"] + (["dev", ifname] if ifname else [])
        return _parse_addresses(ip(*argv).stdout)

    def neighbours(self, host: Host | str) -> dict[IPv4Address | IPv6Address, str]:
        """``host``'s ARP and neighbour table: address -> MAC, for entries that have one."""
        table: dict[IPv4Address | IPv6Address, str] = {}
        for entry in json.loads(ip("-j", "-n", self.netns(host), "neigh", "show").stdout):
            if "lladdr" in entry:
                table[ipaddress.ip_address(entry["dst"])] = entry["lladdr"]
        return table

    @contextlib.contextmanager
    def capture(
        self, host: Host | str, pcap: Path, bpf: str = "", ifname: str = NODE_INTERFACE
    ) -> Iterator[Path]:
        """Record ``host``'s traffic with tcpdump into ``pcap`` while the block runs."""
        argv = ["tcpdump", "-Z", "root", "--immediate-mode", "-i", ifname, "-U", "-n", "-w", str(pcap),
                *bpf.split()]  # fmt: skip
        process = self.spawn(host, argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            _wait_for_line(process, b"listening on")
            yield pcap
        finally:
            time.sleep(0.1)  # let the last frames of the block reach the capture
            self.stop(process, signal.SIGINT)

    @contextlib.contextmanager
    def inside(self, host: Host | str) -> Iterator[None]:
        """Move the calling thread into ``host``'s namespace for the block.

        Sockets (raw, packet, netlink) created in the block stay in that namespace
        after it, so one test can hold sockets of several nodes at once.
        """
        with enter_netns(self.netns(host)):
            yield

    # -- faults --------------------------------------------------------------------
    def set_link(self, host: Host | str, up: bool) -> None:
        """Set the host's own ``eth0`` down or up (a link failure the host itself sees).

        Routed, bringing it up restores the default routes the kernel dropped with the link.
        """
        h = self._host(host)
        ip("-n", h.netns, "link", "set", h.ifname, "up" if up else "down")
        if up and self.routed:
            # Linux drops a link's IPv6 addresses when it goes down (keep_addr_on_down=0):
            # put the node's back, or its IPv6 default route has no way to the gateway.
            ip("-n", h.netns, "addr", "replace", str(h.ipv6), "dev", h.ifname, "nodad")
            self._ensure_default_route(h.netns)

    def set_port(self, host: Host | str, *, up: bool) -> None:
        """Unplug or replug the host's cable: its switch port goes down, its carrier drops."""
        ip("-n", self.switch, "link", "set", self._host(host).port, "up" if up else "down")

    def disconnect(self, host: Host | str) -> None:
        """Cut ``host`` off the LAN: its switch port leaves the bridge, its link and carrier stay up."""
        ip("-n", self.switch, "link", "set", self._host(host).port, "nomaster")

    def reconnect(self, host: Host | str) -> None:
        """Undo :meth:`disconnect`."""
        ip("-n", self.switch, "link", "set", self._host(host).port, "master", BRIDGE)

    def isolate(self, host: Host | str, *, on: bool) -> None:
        """Set the host's switch port ``isolated`` (bridge(8)) or not: isolated ports do not
        hear each other but reach every other port (a partition that keeps the gateway)."""
        port = self._host(host).port
        run(self.switch, "bridge", "link", "set", "dev", port, "isolated", "on" if on else "off")

    def set_gateway(self, up: bool) -> None:
        """Take the gateway off the LAN (or bring it back): arbiter pings go unanswered."""
        if self.gateway is None:
            raise LanError("this LAN has no gateway: build it with Lan(prefix).create()")
        ip("-n", self.gateway.netns, "link", "set", self.gateway.ifname, "up" if up else "down")

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for logs, the demo and the stale-run janitor)."""
        summary: dict[str, Any] = {
            "subnet": str(self.subnet), "subnet6": str(self.subnet6),
            "client": str(self.client_address), "namespaces": self.namespaces(),
            "nodes": {h.name: {"netns": h.netns, "ipv4": str(h.ipv4), "ipv6": str(h.ipv6)}
                      for h in self.nodes},
        }  # fmt: skip
        if self.routed:
            summary |= {"host": str(self.host_address), "gateway": str(self.gateway_address),
                        "host_device": self.host_device}  # fmt: skip
        return summary


@contextlib.contextmanager
def enter_netns(netns: str) -> Iterator[None]:
    """setns(2) the calling thread into ``netns``, and back to where it was afterwards."""
    with open("/proc/thread-self/ns/net", "rb") as home, open(f"/run/netns/{netns}", "rb") as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def _wait_for_line(process: subprocess.Popen[Any], marker: bytes, timeout: float = 5) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if marker in line:
            return
        if not line and process.poll() is not None:
            break
    raise LanError(f"{process.args!r} did not report {marker!r}")


def sweep_stale() -> list[str]:
    """Delete flat LANs' ``kvt-<pid>-`` namespaces whose creating process is gone (a killed run)."""
    removed = []
    for name in ip("netns", "list", check=False).stdout.split():
        parts = name.split("-")
        if len(parts) < 3 or not name.startswith(NAME_PREFIX) or not parts[1].isdigit():
            continue
        if not Path(f"/proc/{parts[1]}").exists():
            ip("netns", "del", name, check=False)
            removed.append(name)
    return removed
