"""Many VIPs on one node: keepvip against keepalived 2.2.7, same LAN, same job, one run.

Topology (keepvip.localcluster.lan, flat): two nodes and a client on one bridge. Node 1 ("node-a")
has priority 150, node 2 ("node-b") 100. N virtual routers with one address each, VRRPv3,
address i in 198.18.4.0/22 (``/32`` on ``eth0``), VRID ``i % 255 + 1`` in group
``224.0.0.18 + i // 255`` (the standard group up to 255 routers; more need more
groups, for keepalived ``mcast_dst_ip``). For every cell of the matrix, keepvip runs
first, then keepalived, on the same LAN. Per run:

* **startup**: both daemons start together; seconds until all N VIPs are bound on
  node-a (``ip addr`` polled every 100 ms);
* **steady window** (``--window``, default 60 s), after a settle time: CPU of the
  master's and the backup's daemon (process tree, % of one core), RSS at the end,
  advertisement lateness p50/p99/max and gaps > 1.5 × interval on the wire (tcpdump on
  the bridge, ``wire.py``), and **spurious transitions** (any state change logged in
  the window, plus any router of node-b that became MASTER while node-a was up);
* **MASTER without VIP**: routers whose last logged state is MASTER while their VIP is
  not on their node's interface, after startup (both nodes) and after the crash (node-b);
* **crash**: node-a's switch port goes down and its daemon is SIGKILLed; seconds until
  every VIP answers ARP from node-b (``scale_probe.py`` in the client, 50 ms rounds).

The **fast** mode (``--fast``) is "the fastest VRRP allows": 10 ms adverts with 1 and
10 VIPs, idle and with a busy-loop process pinned to CPU 0, for ``--duration``
seconds (spurious transitions) followed by ``--trials`` crashes (failover p50/p99,
5 ms probe rounds); the restored node-a pre-empts back before the next trial.
``--rt PRIORITY`` runs both daemons under ``SCHED_FIFO`` at that priority (every thread
of every process of the daemon, set once it has bound its VIPs and again after each
restart), as keepalived's ``vrrp_rt_priority`` or a systemd unit's
``CPUSchedulingPolicy=fifo`` would; the busy loop stays ``SCHED_OTHER``.

Usage (root; ``make bench-scale`` runs the default matrix)::

    python bench/scale.py                         # full matrix, 60 s windows (~25 min)
    python bench/scale.py --window 15 --cells 100@1,100@0.1
    python bench/scale.py --implementations keepvip --cells 1000@1
    python bench/scale.py --fast --duration 60 --trials 10
    python bench/scale.py --fast --rt 10          # both daemons SCHED_FIFO 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "netns")]

from gaps import master_down_interval, percentile  # noqa: E402
from keepalived_harness import (  # noqa: E402
    KeepalivedDaemon,
    KeepvipDaemon,
    VrrpDaemon,
    virtualip_document,
)
from procstat import CpuWindow, Usage  # noqa: E402
from wire import lateness, read_adverts, senders  # noqa: E402

import keepvip  # noqa: E402
from keepvip.localcluster.lan import Host, Lan  # noqa: E402

VIP_NETWORK = IPv4Network("198.18.4.0/22")
FIRST_GROUP = IPv4Address("224.0.0.18")
VRIDS_PER_GROUP = 255
PRIORITIES = {"node1": 150, "node2": 100}
BACKUP_PRIORITY = 100
IMPLEMENTATIONS = ("keepvip", "keepalived")
DEFAULT_CELLS = "1@1,32@1,100@1,300@1,1000@1,32@0.1,100@0.1,300@0.1"
MASTER = "MASTER"
STARTUP_GRACE_S = 15.0  # after Master_Down_Interval: the target is 1 s, this is a wide margin


# -- the job: N routers, both tools -------------------------------------------------------------


def vip(index: int) -> IPv4Address:
    return VIP_NETWORK[index + 1]


def slot(index: int) -> tuple[IPv4Address, int]:
    """(multicast group, VRID) of router ``index``."""
    return FIRST_GROUP + index // VRIDS_PER_GROUP, index % VRIDS_PER_GROUP + 1


def keepvip_documents(count: int, priority: int, interval: float) -> list[dict[str, Any]]:
    documents = []
    for index in range(count):
        group, vrid = slot(index)
        document = virtualip_document(
            f"vip-{index}",
            f"{vip(index)}/32",
            vrid=vrid,
            priority=priority,
            version=3,
            interval=f"{round(interval * 1000)}ms",
        )
        document["spec"]["interface"] = "eth0"
        if group != FIRST_GROUP:
            document["spec"]["vrrp"]["multicastGroup"] = str(group)
        documents.append(document)
    return documents


@dataclass(frozen=True)
class ManyInstances:
    """A keepalived.conf with one ``vrrp_instance VI_<i>`` per router (``render`` as KeepalivedConfig)."""

    router_id: str
    interface: str
    priority: int
    count: int
    interval: float

    def render(self) -> str:
        lines = ["global_defs {", f"    router_id {self.router_id}", "    vrrp_version 3", "}", ""]
        for index in range(self.count):
            group, vrid = slot(index)
            lines += [
                f"vrrp_instance VI_{index} {{",
                "    state BACKUP",
                f"    interface {self.interface}",
                f"    virtual_router_id {vrid}",
                f"    priority {self.priority}",
                f"    advert_int {self.interval:g}",
                "    version 3",
            ]
            if group != FIRST_GROUP:
                lines.append(f"    mcast_dst_ip {group}")
            lines += [
                "    virtual_ipaddress {",
                f"        {vip(index)}/32 dev {self.interface}",
                "    }",
                "}",
                "",
            ]
        return "\n".join(lines)


_KEEPALIVED_LINE = re.compile(r"\(VI_(\d+)\) Entering (MASTER|BACKUP|FAULT) STATE")


def router_states(daemon: VrrpDaemon) -> tuple[dict[int, str], int]:
    """(last logged state per router index, number of transitions logged so far)."""
    states: dict[int, str] = {}
    count = 0
    if daemon.implementation == "keepalived":
        for match in _KEEPALIVED_LINE.finditer(daemon.log_text()):
            states[int(match.group(1))] = match.group(2)
            count += 1
        return states, count
    for line in daemon.log_text().splitlines():
        if '"previous"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError):
            entry = json.loads(line)
            states[int(str(entry["virtualip"]).removeprefix("vip-"))] = str(entry["state"])
            count += 1
    return states, count


def masters_without_vip(lan: Lan, host: Host, daemon: VrrpDaemon) -> int:
    """Routers of ``daemon`` whose last state is MASTER while their VIP is not on ``host``."""
    states, _ = router_states(daemon)
    bound = bound_vips(lan, host)
    return sum(state == MASTER and vip(index) not in bound for index, state in states.items())


def bound_vips(lan: Lan, host: Host) -> set[IPv4Address]:
    return {
        a.ip for a in lan.addresses(host, host.ifname) if isinstance(a, IPv4Interface) and a.ip in VIP_NETWORK
    }


def daemon_pid(daemon: VrrpDaemon) -> int:
    """The pid of the daemon's main process (the harness keeps it private)."""
    process = daemon._proc.process  # type: ignore[attr-defined]
    assert process is not None
    return int(process.pid)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant, read from /proc (a daemon may fork helpers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def set_realtime(daemon: VrrpDaemon, priority: int | None) -> None:
    """Put every thread of the daemon's process tree under SCHED_FIFO ``priority`` (None: leave it)."""
    if priority is None:
        return
    for pid in process_tree(daemon_pid(daemon)):
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setscheduler(int(task.name), os.SCHED_FIFO, os.sched_param(priority))


def remove_vips(lan: Lan, host: Host, count: int, workdir: Path) -> None:
    """Delete every benchmark VIP from ``host`` (what a reboot does), in one ``ip -batch``."""
    batch = workdir / f"del-{host.name}.batch"
    batch.write_text("".join(f"addr del {vip(i)}/32 dev {host.ifname}\n" for i in range(count)))
    lan.run(host, "ip", "-force", "-batch", str(batch), check=False, timeout=120)


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one implementation did in one cell."""

    implementation: str
    count: int
    interval: float
    startup: float | None = None
    master: Usage | None = None
    backup: Usage | None = None
    late_p50: float | None = None
    late_p99: float | None = None
    late_max: float | None = None
    gaps: int | None = None
    spurious: int = 0
    masterless_start: int = 0
    masterless_crash: int | None = None
    failover: float | None = None
    answered: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Bed:
    lan: Lan
    workdir: Path

    @property
    def a(self) -> Host:
        return self.lan.nodes[0]

    @property
    def b(self) -> Host:
        return self.lan.nodes[1]

    def daemon(self, implementation: str, host: Host, count: int, interval: float) -> VrrpDaemon:
        workdir = self.workdir / f"{implementation}-{count}-{interval:g}"
        priority = PRIORITIES[host.name]
        if implementation == "keepvip":
            return KeepvipDaemon(self.lan, host, workdir, keepvip_documents(count, priority, interval))
        config = ManyInstances(host.name, host.ifname, priority, count, interval)
        return KeepalivedDaemon(self.lan, host, workdir, config)  # type: ignore[arg-type]

    def reset(self, count: int, *daemons: VrrpDaemon) -> None:
        """Stop the daemons, remove every VIP from both nodes, plug node-a back in."""
        for daemon in reversed(daemons):
            if daemon.running:
                daemon.stop()
        for host in (self.a, self.b):
            remove_vips(self.lan, host, count, self.workdir)
        self.lan.set_port(self.a, up=True)

    def wait_bound(self, host: Host, count: int, timeout: float, daemon: VrrpDaemon) -> float | None:
        """Seconds until all ``count`` VIPs are on ``host`` (None after ``timeout``)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if len(bound_vips(self.lan, host)) >= count:
                return time.monotonic() - started
            if not daemon.running:
                return None
            time.sleep(0.1)
        return None

    def crash_failover(
        self, daemon: VrrpDaemon, count: int, period: float, limit: float
    ) -> tuple[float | None, int]:
        """Unplug node-a and SIGKILL its daemon; (seconds until all VIPs answer from node-b, how many did)."""
        client = self.lan.client
        assert client is not None
        targets = self.workdir / "targets.txt"
        targets.write_text("".join(f"{vip(i)}\n" for i in range(count)))
        argv = [sys.executable, str(HERE / "scale_probe.py"), client.ifname, str(client.ipv4.ip), client.mac,
                self.b.mac, str(targets), "--period", str(period), "--max-seconds", str(limit)]  # fmt: skip
        probe = self.lan.spawn(client, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert probe.stdin is not None
        assert probe.stdout is not None
        if probe.stdout.readline().strip() != "ready":
            raise RuntimeError("the ARP probe did not start")
        probe.stdin.write("\n")  # it starts asking; node-a's answers do not count
        probe.stdin.flush()
        self.lan.set_port(self.a, up=False)
        # From here node-a sends nothing (the `ip` command has returned): the clock starts.
        injected = time.monotonic()
        daemon.crash()
        answers = []
        for line in probe.stdout:
            if line.strip() == "done":
                break
            answers.append(float(line.split()[0]))
        self.lan.stop(probe)
        if len(answers) < count:
            return None, len(answers)
        return max(answers) - injected, len(answers)


def run_one(bed: Bed, implementation: str, count: int, interval: float, window: float) -> Run:
    run = Run(implementation, count, interval)
    master_down = master_down_interval(interval, BACKUP_PRIORITY)
    a = bed.daemon(implementation, bed.a, count, interval)
    b = bed.daemon(implementation, bed.b, count, interval)
    try:
        a.start()
        b.start()
        run.startup = bed.wait_bound(bed.a, count, timeout=master_down + STARTUP_GRACE_S, daemon=a)
        if run.startup is None:
            bound = len(bound_vips(bed.lan, bed.a))
            run.notes.append(
                f"{bound}/{count} VIPs bound on node-a {master_down + STARTUP_GRACE_S:.0f} s after start"
            )
            if not a.running or not b.running:
                run.notes.append(
                    "a daemon exited: " + (a.log_text() if not a.running else b.log_text())[-300:]
                )
                return run
        time.sleep(max(1.0, 3 * interval))  # the last takeovers' announcements and the backups settle
        run.masterless_start = masters_without_vip(bed.lan, bed.a, a) + masters_without_vip(bed.lan, bed.b, b)
        b_states, _ = router_states(b)
        early_b_masters = sum(1 for s in b_states.values() if s == MASTER)
        _, before_a = router_states(a)
        _, before_b = router_states(b)
        pcap = bed.workdir / f"{implementation}-{count}-{interval:g}.pcap"
        with wire_capture(bed.lan, pcap) as dropped:
            cpu_a = CpuWindow(daemon_pid(a), time.monotonic())
            cpu_b = CpuWindow(daemon_pid(b), time.monotonic())
            time.sleep(window)
            run.master, run.backup = cpu_a.end(time.monotonic()), cpu_b.end(time.monotonic())
        _, after_a = router_states(a)
        _, after_b = router_states(b)
        b_masters = sum(1 for s in router_states(b)[0].values() if s == MASTER)
        run.spurious = (after_a - before_a) + (after_b - before_b) + max(early_b_masters, b_masters)
        if dropped:
            run.notes.append(f"the capture lost {dropped[0]} frames (tcpdump: dropped by kernel)")
        adverts = list(read_adverts(pcap))
        pcap.unlink()
        late = lateness(adverts, bed.a.ipv4.ip, interval)
        if late is not None:
            run.late_p50, run.late_p99, run.late_max, run.gaps = late.p50, late.p99, late.worst, late.gaps
            if late.routers != count:
                run.notes.append(f"{late.routers} of {count} routers advertised in the window")
        if bed.b.ipv4.ip in senders(adverts):
            run.notes.append("node-b advertised in the steady window")
        run.failover, run.answered = bed.crash_failover(a, count, 0.05, limit=master_down + 30)
        time.sleep(1.0)
        run.masterless_crash = masters_without_vip(bed.lan, bed.b, b)
        return run
    finally:
        bed.reset(count, a, b)


CAPTURE_BUFFER_KIB = 16384
"""tcpdump's kernel buffer (``-B``). With the default (2 MiB) and immediate mode, a
capture of 1,000 adverts a second on a loaded machine lost ~2 % of the frames in bursts
(tcpdump's "dropped by kernel"): every lost frame showed as a whole-interval "gap"
(620 of them in a 10 s window), while a second capture with this buffer on the same
bridge at the same time saw all 1,000 routers every second and a worst lateness of 8 ms."""


@contextlib.contextmanager
def wire_capture(lan: Lan, pcap: Path) -> Iterator[list[int]]:
    """Capture VRRP on the bridge into ``pcap``; the list yielded gets tcpdump's drop count.

    Lan.capture without immediate mode and with a large buffer: the figures come from
    the file after the window, so nothing needs the frames early, and a capture that
    loses frames would invent gaps (see CAPTURE_BUFFER_KIB).
    """
    argv = ["tcpdump", "-Z", "root", "-B", str(CAPTURE_BUFFER_KIB), "-i", "br0", "-n", "-w", str(pcap),
            "ip", "proto", "112"]  # fmt: skip
    process = lan.spawn(lan.switch, argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    dropped: list[int] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 5
        while b"listening on" not in process.stderr.readline():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("tcpdump did not start")
        yield dropped
    finally:
        time.sleep(0.1)  # the last frames of the window reach the capture
        lan.stop(process, signal.SIGINT)
        tail = process.stderr.read().decode(errors="replace") if process.stderr else ""
        match = re.search(r"(\d+) packets? dropped by kernel", tail)
        if match and int(match[1]):
            dropped.append(int(match[1]))


# -- fast mode ------------------------------------------------------------------------------------


@dataclass
class FastRun:
    implementation: str
    count: int
    load: str
    duration: float
    spurious: int = 0
    failovers: list[float] = field(default_factory=list)
    failed: int = 0
    notes: list[str] = field(default_factory=list)


def run_fast(
    bed: Bed,
    implementation: str,
    count: int,
    load: str,
    *,
    duration: float,
    trials: int,
    rt: int | None = None,
) -> FastRun:
    interval = 0.01
    result = FastRun(implementation, count, load, duration)
    if rt is not None:
        result.notes.append(f"SCHED_FIFO {rt}")
    busy = None
    if load == "busy":
        busy = bed.lan.spawn(bed.lan.switch, ["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
    a = bed.daemon(implementation, bed.a, count, interval)
    b = bed.daemon(implementation, bed.b, count, interval)
    try:
        a.start()
        b.start()
        if bed.wait_bound(bed.a, count, timeout=30, daemon=a) is None:
            result.notes.append("not all VIPs bound at start")
            return result
        set_realtime(a, rt)
        set_realtime(b, rt)
        time.sleep(1.0)
        _, before_a = router_states(a)
        _, before_b = router_states(b)
        early_b = sum(1 for s in router_states(b)[0].values() if s == MASTER)
        time.sleep(duration)
        _, after_a = router_states(a)
        _, after_b = router_states(b)
        result.spurious = (after_a - before_a) + (after_b - before_b) + early_b
        for _ in range(trials):
            took, _answered = bed.crash_failover(a, count, 0.005, limit=5)
            if took is None:
                result.failed += 1
            else:
                result.failovers.append(took)
            remove_vips(bed.lan, bed.a, count, bed.workdir)
            bed.lan.set_port(bed.a, up=True)
            a.start()
            time.sleep(0.5)
            if bed.wait_bound(bed.a, count, timeout=10, daemon=a) is None:
                result.notes.append("node-a did not take the VIPs back")
                break
            set_realtime(a, rt)
            time.sleep(0.5)
        return result
    finally:
        bed.reset(count, a, b)
        if busy is not None:
            bed.lan.stop(busy)


# -- report -------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.1f}"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def table(runs: list[Run]) -> str:
    rows = [
        "| N @ interval | tool | RSS MiB (a / b) | CPU % master / backup | lateness p50 / p99 / max (ms) "
        "| gaps | startup s | crash failover s | spurious | MASTER w/o VIP start / crash | target s "
        "| notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        rss = (
            "—"
            if run.master is None or run.backup is None
            else f"{run.master.rss_mib:.0f} / {run.backup.rss_mib:.0f}"
        )
        cpu = (
            "—"
            if run.master is None or run.backup is None
            else (f"{run.master.cpu_percent:.2f} / {run.backup.cpu_percent:.2f}")
        )
        failover = (
            _s(run.failover)
            if run.failover is not None
            else ("—" if run.masterless_crash is None else f"{run.answered}/{run.count} answered")
        )
        target = master_down_interval(run.interval, BACKUP_PRIORITY) + 1
        row = [
            f"{run.count} @ {run.interval * 1000:.0f} ms",
            run.implementation,
            rss,
            cpu,
            f"{_ms(run.late_p50)} / {_ms(run.late_p99)} / {_ms(run.late_max)}",
            "—" if run.gaps is None else str(run.gaps),
            _s(run.startup),
            failover,
            str(run.spurious),
            f"{run.masterless_start} / {'—' if run.masterless_crash is None else run.masterless_crash}",
            f"{target:.2f}",
            "; ".join(run.notes),
        ]
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


def fast_table(runs: list[FastRun]) -> str:
    rows = [
        "| VIPs | load | tool | duration s | spurious | crash failover p50 / p99 / max (ms) "
        "| trials | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        got = run.failovers
        stats = (
            "—"
            if not got
            else (
                " / ".join(f"{v * 1000:.0f}" for v in (percentile(got, 0.5), percentile(got, 0.99), max(got)))
            )
        )
        trials = f"{len(got)}" + (f" (+{run.failed} failed)" if run.failed else "")
        rows.append(f"| {run.count} | {run.load} | {run.implementation} | {run.duration:g} | {run.spurious} "
                    f"| {stats} | {trials} | {'; '.join(run.notes)} |")  # fmt: skip
    return "\n".join(rows)


@contextlib.contextmanager
def testbed(workdir: Path) -> Iterator[Bed]:
    with Lan.build(nodes=2, client=True) as lan:
        assert lan.client is not None
        lan.run(lan.client, "ip", "route", "add", str(VIP_NETWORK), "dev", lan.client.ifname)
        yield Bed(lan, workdir)


def parse_cells(text: str) -> list[tuple[int, float]]:
    cells = []
    for item in filter(None, text.split(",")):
        count, _, interval = item.partition("@")
        cells.append((int(count), float(interval or 1)))
    return cells


def compile_bytecode() -> None:
    """Compile keepvip's modules once, as installing its wheel (the image) does.

    This tree is an editable install, and with ``PYTHONDONTWRITEBYTECODE`` set (as in CI
    and on this machine) every speaker start compiled every module from source: ~14 % of
    a 1,000-VIP speaker's CPU until its routers ran (py-spy, ``source_to_code``), time
    that counts in "startup" and that no installed speaker spends.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", *keepvip.__path__], check=False)


def main() -> int:
    compile_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=DEFAULT_CELLS, help=f"N@interval_s,... (default {DEFAULT_CELLS})")
    parser.add_argument(
        "--window", type=float, default=60.0, help="steady-state window in seconds (default 60)"
    )
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--fast", action="store_true", help="the 10 ms mode instead of the matrix")
    parser.add_argument(
        "--duration", type=float, default=600.0, help="fast mode: seconds per case (default 600)"
    )
    parser.add_argument("--trials", type=int, default=20, help="fast mode: crashes per case (default 20)")
    parser.add_argument("--loads", default="idle,busy", help="fast mode: idle,busy")
    parser.add_argument("--fast-counts", default="1,10", help="fast mode: VIP counts (default 1,10)")
    parser.add_argument(
        "--rt", type=int, metavar="PRIORITY", help="fast mode: run both daemons under SCHED_FIFO PRIORITY"
    )
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()
    implementations = [name for name in args.implementations.split(",") if name]
    if set(implementations) - set(IMPLEMENTATIONS):
        parser.error(f"implementations are {', '.join(IMPLEMENTATIONS)}")
    started = time.monotonic()
    results: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="keepvip-scale-") as tmp, testbed(Path(tmp)) as bed:
        if args.fast:
            for count in (int(c) for c in args.fast_counts.split(",")):
                for load in args.loads.split(","):
                    for implementation in implementations:
                        fast = run_fast(
                            bed,
                            implementation,
                            count,
                            load,
                            duration=args.duration,
                            trials=args.trials,
                            rt=args.rt,
                        )
                        print(fast_table([fast]).splitlines()[-1], file=sys.stderr, flush=True)
                        results.append(fast)
        else:
            for count, interval in parse_cells(args.cells):
                for implementation in implementations:
                    run = run_one(bed, implementation, count, interval, args.window)
                    print(table([run]).splitlines()[-1], file=sys.stderr, flush=True)
                    results.append(run)
    print(fast_table(results) if args.fast else table(results))
    print(f"\n{len(results)} runs in {time.monotonic() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
