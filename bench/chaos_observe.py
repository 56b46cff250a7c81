"""The observer of a chaos run: it trusts no speaker.

Three independent views, all timestamped on the machine's monotonic clock:

* the **client**: one ``keepvip.localcluster.probe`` per VIP in the client namespace opens a
  TCP connection to the VIP every 20 ms and records which node answered;
* the **kernel**: ``ip -j addr show dev eth0`` run in every node namespace every
  ``poll`` seconds (who holds which VIP);
* the **wire**: tcpdump on the switch's bridge (VRRP and ARP), decoded with tshark after
  the run (who advertised which VRID with which priority, who announced which address);
* the **client's neighbour table**: ``ip -ts monitor neigh`` in the client, every change
  of every entry with the kernel's timestamp (to which MAC the client sent a VIP's
  probes, and when that changed: a gap while the VIP's holder advertises normally is
  usually the client still sending to the node that let the VIP go).

Plus a watch on the daemons' processes (an exit nobody caused is invariant 5) and on their
scheduling (:class:`SchedWatch`: how long each VRRP process waited on a run queue, from the
kernel's ``/proc/<pid>/schedstat``), which tells a daemon that decided late from one that
was runnable and got no CPU.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_clock import ClockWatch, WallClock
from chaos_daemons import vrrp_pids
from failover import Prober
from keepalived_harness import VrrpDaemon

from keepvip.localcluster.lan import Lan

HERE = Path(__file__).resolve().parent
PROBE_PERIOD = 0.02
PROBE_TIMEOUT = 0.5
CAPTURE_FILTER = "ip proto 112 or arp"
# The observer's own processes (the probed service, the client's probes) run at this nice
# value. On a shared 2-core host at load 20, a single-threaded service answering ~500
# connections a second fell behind the client's 0.5 s timeout for seconds at a time (its
# kernel still completed every handshake; it answered sockets the client had given up on),
# and the gap was charged to VRRP. The daemons under test keep the default priority.
OBSERVER_NICE = -10


# The daemons under test run at the observer's priority (``--daemon-nice``). At 0 beside ~30
# observer processes at -10 on a 2-core host shared with other work, a daemon that was
# runnable waited hundreds of ms for a CPU: the third pass's 300-550 ms of silence from a
# node whose ``cut`` had just healed (SchedWatch's run-queue figures). keepalived's own
# advice for a VRRP daemon is the same (``vrrp_priority`` / ``vrrp_rt_priority``): it must not
# queue behind ordinary work. Both implementations get it, so the comparison stays fair.
DAEMON_NICE = OBSERVER_NICE


def favour(pid: int) -> None:
    """Give one observer process :data:`OBSERVER_NICE` (root only; a no-op otherwise)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, OBSERVER_NICE)


def favour_session(autogroup: Path = Path("/proc/self/autogroup")) -> bool:
    """Give this session's scheduling autogroup :data:`OBSERVER_NICE`; whether it was set.

    With ``kernel.sched_autogroup_enabled`` (this machine, most desktop and many server
    kernels), CFS shares the CPUs between *sessions* first and applies a process's nice
    value only within its own session. A single-threaded job in another shell, even at
    nice 19, took half of this 2-core host from the whole block, observer and daemons
    alike (issue 14, seventh pass: run-queue waits of 96-158 s against 26-58 s, and the
    probed services of two nodes silent for 10-16 s). Raising the run's own autogroup
    makes the nice values above hold against the rest of the machine. Every process of
    the run (both implementations' blocks when started from one shell) shares it.
    """
    try:
        autogroup.write_text(f"{OBSERVER_NICE}\n")
    except OSError:  # no autogroup scheduling, or not root
        return False
    return True


class VipProber(Prober):
    """failover.py's client prober aimed at one VIP (or a node's own address), 20 ms apart.

    It reports its unanswered probes too (``unanswered``: their send times), so the judge
    can tell a VIP that did not answer from a prober that did not ask (its own stall).
    """

    def __init__(self, lan: Lan, address: str) -> None:
        assert lan.client is not None
        options = ["--period", str(PROBE_PERIOD), "--timeout", str(PROBE_TIMEOUT), "--unanswered"]
        super().__init__(lan, lan.client, address, options)
        self.address = address
        favour(self._process.pid)


@dataclass(frozen=True)
class HoldSample:
    """One ``ip addr`` reading: which VIP addresses ``node`` held, read between two instants."""

    at: float  # the middle of the reading
    node: str
    held: frozenset[str]


RTM_GETADDR = 22
NLM_F_REQUEST_DUMP = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
NLMSG_DONE = 3
NLMSG_ERROR = 2
IFA_LOCAL = 2


def dump_ipv4(sock: socket.socket, ifindex: int) -> set[str]:
    """The IPv4 addresses on ``ifindex``: one RTM_GETADDR dump on a NETLINK_ROUTE socket.

    What ``ip -4 addr show`` asks the kernel, without a process per reading: the poller
    used to run ``ip netns exec ... ip -j addr`` three times per 100 ms per LAN (30 process
    starts a second, each a mount namespace and a sysfs mount), which on a 2-core host was
    the observer's largest cost after the probes and took the CPU the daemons needed.
    """
    request = struct.pack("=IHHII", 16 + 8, RTM_GETADDR, NLM_F_REQUEST_DUMP, 1, 0)
    request += struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0)
    sock.send(request)
    found: set[str] = set()
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind == NLMSG_DONE:
                return found
            if kind == NLMSG_ERROR:
                raise OSError("RTM_GETADDR dump failed")
            index = struct.unpack_from("=I", data, offset + 16 + 4)[0]
            at = offset + 16 + 8
            while index == ifindex and at + 4 <= offset + length:
                size, attr = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attr == IFA_LOCAL and size == 8:
                    found.add(socket.inet_ntoa(data[at + 4 : at + 8]))
                at += (size + 3) & ~3
            offset += (length + 3) & ~3
        if not data:
            return found


class AddressPoller:
    """Which VIPs every node's eth0 holds: a netlink dump per node per ``period``, one thread each.

    Each thread's socket is opened inside its node's namespace (it stays bound to it).
    """

    def __init__(self, lan: Lan, vip_ips: Sequence[str], period: float) -> None:
        self._lan = lan
        self._vips = frozenset(vip_ips)
        self._period = period
        self._stop = threading.Event()
        self.samples: list[HoldSample] = []
        self._lock = threading.Lock()
        self._sockets: dict[str, tuple[socket.socket, int]] = {}
        self._busy = {host.name: threading.Lock() for host in lan.nodes}  # one dump at a time per socket
        for host in lan.nodes:
            with lan.inside(host):
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                ifindex = socket.if_nametoindex("eth0")
            sock.settimeout(10)
            self._sockets[host.name] = (sock, ifindex)
        self._threads = [
            threading.Thread(target=self._loop, args=(host.name,), daemon=True) for host in lan.nodes
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def read(self, node: str) -> HoldSample | None:
        sock, ifindex = self._sockets[node]
        with self._busy[node]:
            before = time.monotonic()
            try:
                local = dump_ipv4(sock, ifindex)
            except OSError:
                return None
            after = time.monotonic()
        return HoldSample((before + after) / 2, node, frozenset(local & self._vips))

    def _loop(self, node: str) -> None:
        while not self._stop.is_set():
            sample = self.read(node)
            if sample is not None:
                with self._lock:
                    self.samples.append(sample)
            self._stop.wait(self._period)

    def latest(self) -> dict[str, HoldSample]:
        with self._lock:
            found: dict[str, HoldSample] = {}
            for sample in self.samples:
                found[sample.node] = sample
            return found

    def close(self) -> list[HoldSample]:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=15)
        for sock, _ in self._sockets.values():
            sock.close()
        with self._lock:
            return sorted(self.samples, key=lambda s: s.at)


@dataclass(frozen=True)
class SchedSample:
    """A VRRP process's cumulative run-queue wait (``schedstat`` field 2), in seconds."""

    at: float
    node: str
    pid: int
    waited: float


def read_waited(pid: int) -> float | None:
    """Seconds ``pid``'s main thread has spent runnable but not running, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/schedstat").read_text().split()
    except OSError:
        return None
    return int(fields[1]) / 1e9


@dataclass
class SchedWatch:
    """Every ``period``: each node's VRRP process's run-queue wait (the speaker; keepalived's VRRP
    child), so the judge can tell a late decision from a daemon that was runnable and got no CPU
    (issue 14: after a ``cut`` heals at 100 ms, the rejoining node sent nothing for 300-550 ms)."""

    daemons: dict[str, VrrpDaemon]
    period: float = 0.05
    # The nice value every VRRP process gets when first seen (restarts included), or None to
    # leave it. See :data:`DAEMON_NICE`.
    nice: int | None = None
    samples: list[SchedSample] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            for node, daemon in self.daemons.items():
                pids = vrrp_pids(daemon)
                for pid in set(pids) - self._seen:
                    self._seen.add(pid)
                    if self.nice is not None:
                        with contextlib.suppress(OSError):
                            os.setpriority(os.PRIO_PROCESS, pid, self.nice)
                waited = read_waited(pids[-1]) if pids else None
                if waited is not None:
                    self.samples.append(SchedSample(time.monotonic(), node, pids[-1], waited))

    def close(self) -> list[SchedSample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return list(self.samples)


@dataclass(frozen=True)
class Exit:
    """A daemon process that ended while no fault had stopped it."""

    at: float
    node: str
    code: int | None


@dataclass
class ProcessWatch:
    """Polls the daemons; an exit while the node is not in ``expected_down`` is recorded."""

    daemons: dict[str, VrrpDaemon]
    expected_down: set[str]
    exits: list[Exit] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _reported: set[int] = field(default_factory=set)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for node, daemon in self.daemons.items():
                pid = daemon.pid
                if node in self.expected_down or pid is None or pid in self._reported:
                    continue
                if not daemon.running and node not in self.expected_down:
                    self._reported.add(pid)
                    self.exits.append(Exit(time.monotonic(), node, _returncode(daemon)))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _returncode(daemon: Any) -> int | None:
    process = getattr(getattr(daemon, "_proc", None), "process", None)
    return None if process is None else process.returncode


# -- the client's neighbour table --------------------------------------------------------------


@dataclass(frozen=True)
class NeighbourEvent:
    """One change of the client's neighbour entry for ``ip`` (monotonic time).

    ``mac`` is None when the kernel reported the entry without a link-layer address
    (INCOMPLETE, FAILED) and ``state`` is ``"deleted"`` for a removed entry.
    """

    at: float
    ip: str
    mac: str | None
    state: str


def parse_neighbour_line(line: str, clock: WallClock) -> NeighbourEvent | None:
    """One line of ``ip -ts monitor neigh`` (``[2026-11-30T02:42:05.313207] [Deleted] 198.18.0.101
    dev eth0 lladdr 02:.. REACHABLE``), or None for anything else (IPv6, probes' lines).

    ``ip`` prints local wall-clock time; ``clock`` puts it on the monotonic clock.
    """
    if not line.startswith("["):
        return None
    stamp, _, rest = line[1:].partition("] ")
    try:
        wall = datetime.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None
    words = rest.split()
    deleted = bool(words) and words[0] == "Deleted"
    if deleted:
        words = words[1:]
    if not words or ":" in words[0] or "." not in words[0]:
        return None
    mac = words[words.index("lladdr") + 1] if "lladdr" in words else None
    state = "deleted" if deleted else (words[-1] if words[-1].isupper() else "")
    return NeighbourEvent(clock.to_monotonic(wall), words[0], mac, state)


class NeighbourWatch:
    """``ip -ts monitor neigh dev eth0`` in the client: every change of its neighbour table."""

    def __init__(self, lan: Lan, clock: ClockWatch) -> None:
        assert lan.client is not None
        self._lan = lan
        self._clock = clock
        self._lines: list[str] = []
        argv = ["ip", "-ts", "monitor", "neigh", "dev", "eth0"]
        self._process = lan.spawn(lan.client, argv, stdout=subprocess.PIPE, text=True)
        favour(self._process.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.append(line.strip())

    def close(self) -> list[NeighbourEvent]:
        """The events so far, placed with the clock samples taken until now."""
        if self._process.poll() is None:
            self._lan.stop(self._process)
        self._reader.join(timeout=5)
        clock = self._clock.clock()
        events = (parse_neighbour_line(line, clock) for line in list(self._lines))
        return [event for event in events if event is not None]


# -- the wire ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WireFrame:
    """A VRRP advertisement (``vrid`` set) or an ARP frame (``arp_ip`` set); monotonic time."""

    at: float
    mac: str
    source: str  # ip.src of an advert, the sender protocol address of an ARP
    vrid: int | None
    priority: int | None
    arp_ip: str | None


def read_wire(pcap: Path, clock: WallClock) -> list[WireFrame]:
    """Decode the bridge capture with tshark; ``clock`` puts its wall-clock stamps on the
    monotonic clock."""
    fields = ("frame.time_epoch", "eth.src", "ip.src", "vrrp.virt_rtr_id", "vrrp.prio", "arp.src.proto_ipv4")
    argv = ["tshark", "-r", str(pcap), "-Y", "vrrp or arp", "-T", "fields", "-E", "separator=|"]
    for name in fields:
        argv += ["-e", name]
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=900).stdout
    frames = []
    for line in output.splitlines():
        at, mac, source, vrid, priority, arp_ip = (line.split("|") + [""] * 6)[:6]
        frames.append(
            WireFrame(
                clock.to_monotonic(float(at)),
                mac,
                source or arp_ip,
                int(vrid) if vrid else None,
                int(priority) if priority else None,
                arp_ip or None,
            )
        )
    return frames
