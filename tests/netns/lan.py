"""A throw-away Ethernet LAN made of network namespaces, for tests, benchmarks and demos.

Topology (one per :class:`Lan`)::

        <prefix>-node1     <prefix>-node2    ...    <prefix>-client
          eth0               eth0                     eth0
           |                  |                        |
        [node1]            [node2]                 [client]   <- veth ends, in the switch
        `------------------ br0 (bridge) ----------------'       <prefix>-switch

The bridge is a dumb switch (no STP delay, no multicast snooping), so every frame a
node sends reaches every other namespace, as on the flat L2 segment VRRP is made for.
Addresses come only from the test ranges DESIGN.md allows: 198.18.0.0/24 and
2001:db8::/64; DAD is off in every namespace so addresses are usable at once.

Everything this module creates is named with a per-run prefix (``kvt-<pid>-<rand>``)
and torn down by :meth:`Lan.close` (also on interpreter exit); :func:`sweep_stale`
removes what a killed run left behind. Processes started with :meth:`Lan.spawn` are
ended by their pid only.

This module is deliberately free of pytest: bench/ and demos import it by path.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from keepvip.localcluster.procs import stop_process

NAME_PREFIX = "kvt-"
SUBNET4 = "198.18.0.0/24"
SUBNET6 = "2001:db8::/64"
CLIENT_HOST = 250  # the client's host number: 198.18.0.250, 2001:db8::fa
NODE_IFNAME = "eth0"
BRIDGE = "br0"

_NOT_READ_YET = IPv6Address("fe80::")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(host: int) -> tuple[IPv4Interface, IPv6Interface]:
    return IPv4Interface(f"198.18.0.{host}/24"), IPv6Interface(f"2001:db8::{host:x}/64")


@dataclass
class Host:
    """One namespace on the LAN: a node or the client."""

    name: str  # logical name: node1, node2, ..., client
    netns: str  # the namespace's real, run-unique name
    ipv4: IPv4Interface
    ipv6: IPv6Interface
    ifname: str = NODE_IFNAME
    port: str = ""  # the veth end in the switch namespace
    mac: str = ""
    link_local: IPv6Address = _NOT_READ_YET  # read from the kernel once eth0 is up


@dataclass
class Lan:
    """A bridge namespace, N node namespaces and optionally a client, all run-unique.

    Use as a context manager (or call :meth:`close`); :meth:`build` creates it.
    """

    prefix: str
    switch: str
    nodes: list[Host] = field(default_factory=list)
    client: Host | None = None
    _namespaces: list[str] = field(default_factory=list)
    _processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    _closed: bool = False

    # -- construction ---------------------------------------------------------------

    @classmethod
    def build(cls, nodes: int = 3, *, client: bool = True) -> Lan:
        """Create the switch, ``nodes`` node namespaces and (by default) a client."""
        prefix = f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(2)}"
        lan = cls(prefix=prefix, switch=f"{prefix}-switch")
        atexit.register(lan.close)
        try:
            lan._add_namespace(lan.switch)
            run(
                lan.switch,
                "ip",
                "link",
                "add",
                BRIDGE,
                "type",
                "bridge",
                "forward_delay",
                "0",
                "stp_state",
                "0",
                "mcast_snooping",
                "0",
            )
            run(lan.switch, "ip", "link", "set", BRIDGE, "up")
            for number in range(1, nodes + 1):
                lan.nodes.append(lan._add_host(f"node{number}", number))
            if client:
                lan.client = lan._add_host("client", CLIENT_HOST)
        except BaseException:
            lan.close()
            raise
        return lan

    def _add_namespace(self, name: str) -> None:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self._namespaces.append(name)
        run(name, "ip", "link", "set", "lo", "up")
        for key in ("all", "default"):
            run(name, "sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")

    def _add_host(self, name: str, host_number: int) -> Host:
        ipv4, ipv6 = _ip(host_number)
        host = Host(name=name, netns=f"{self.prefix}-{name}", ipv4=ipv4, ipv6=ipv6, port=name)
        self._add_namespace(host.netns)
        run(
            self.switch,
            "ip",
            "link",
            "add",
            host.port,
            "type",
            "veth",
            "peer",
            "name",
            host.ifname,
            "netns",
            host.netns,
        )
        run(self.switch, "ip", "link", "set", host.port, "master", BRIDGE, "up")
        run(host.netns, "ip", "addr", "add", str(ipv4), "dev", host.ifname)
        run(host.netns, "ip", "addr", "add", str(ipv6), "dev", host.ifname, "nodad")
        run(host.netns, "ip", "link", "set", host.ifname, "up")
        host.mac = link_info(host.netns, host.ifname)["address"]
        host.link_local = next(
            a.ip
            for a in self.addresses(host, host.ifname)
            if isinstance(a.ip, IPv6Address) and a.ip.is_link_local
        )
        return host

    # -- lookup ---------------------------------------------------------------------

    def node(self, name: str) -> Host:
        """The host called ``name`` (``node1``..., or ``client``)."""
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

    @property
    def hosts(self) -> list[Host]:
        return [*self.nodes, *([self.client] if self.client else [])]

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

    def set_link(self, host: Host | str, *, up: bool) -> None:
        """Set the host's own interface down or up (``ip link set eth0 down``)."""
        h = self.node(host) if isinstance(host, str) else host
        run(h.netns, "ip", "link", "set", h.ifname, "up" if up else "down")

    def set_port(self, host: Host | str, *, up: bool) -> None:
        """Unplug or replug the host's cable: its switch port goes down, its carrier drops."""
        h = self.node(host) if isinstance(host, str) else host
        run(self.switch, "ip", "link", "set", h.port, "up" if up else "down")

    def addresses(self, host: Host | str, ifname: str | None = None) -> list[IPv4Interface | IPv6Interface]:
        """The addresses ``ip addr`` shows in ``host`` (on ``ifname`` or every interface)."""
        argv = ["ip", "-j", "addr", "show"] + (["dev", ifname] if ifname else [])
        found: list[IPv4Interface | IPv6Interface] = []
        for link in json.loads(self.run(host, *argv).stdout):
            for info in link.get("addr_info", []):
                text = f"{info['local']}/{info['prefixlen']}"
                found.append(IPv4Interface(text) if info["family"] == "inet" else IPv6Interface(text))
        return found

    def neighbours(self, host: Host | str) -> dict[IPv4Address | IPv6Address, str]:
        """``host``'s ARP and neighbour table: address -> MAC, for entries that have one."""
        table: dict[IPv4Address | IPv6Address, str] = {}
        for entry in json.loads(self.run(host, "ip", "-j", "neigh", "show").stdout):
            if "lladdr" in entry:
                dst = entry["dst"]
                table[IPv6Address(dst) if ":" in dst else IPv4Address(dst)] = entry["lladdr"]
        return table

    @contextlib.contextmanager
    def capture(
        self, host: Host | str, pcap: Path, bpf: str = "", ifname: str = NODE_IFNAME
    ) -> Iterator[Path]:
        """Record ``host``'s traffic with tcpdump into ``pcap`` while the block runs."""
        argv = [
            "tcpdump",
            "-Z",
            "root",
            "--immediate-mode",
            "-i",
            ifname,
            "-U",
            "-n",
            "-w",
            str(pcap),
            *bpf.split(),
        ]
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

    # -- teardown -------------------------------------------------------------------

    def close(self) -> None:
        """End every spawned process by pid, then delete every namespace. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for process in reversed(self._processes):
            self.stop(process, signal.SIGTERM, timeout=2)
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        atexit.unregister(self.close)

    def __enter__(self) -> Lan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run(netns: str, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside namespace ``netns``; raise with its stderr if it fails."""
    result = subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {netns} failed: {result.stderr.strip()}")
    return result


def link_info(netns: str, ifname: str) -> dict[str, Any]:
    """``ip -j link show dev ifname`` in ``netns``."""
    info: list[dict[str, Any]] = json.loads(run(netns, "ip", "-j", "link", "show", "dev", ifname).stdout)
    return info[0]


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
    raise RuntimeError(f"{process.args!r} did not report {marker!r}")


def sweep_stale() -> list[str]:
    """Delete ``kvt-`` namespaces whose creating process is gone (a killed earlier run)."""
    removed = []
    names = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout.split()
    for name in names:
        parts = name.split("-")
        if len(parts) < 3 or not name.startswith(NAME_PREFIX) or not parts[1].isdigit():
            continue
        if not Path(f"/proc/{parts[1]}").exists():
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
            removed.append(name)
    return removed


__all__ = ["Host", "Lan", "enter_netns", "link_info", "run", "sweep_stale"]
