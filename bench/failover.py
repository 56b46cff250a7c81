"""Failover benchmark: the outage a client sees, keepvip against keepalived, same LAN, same timers.

Topology (keepvip.localcluster.lan, flat): two nodes and a client on one bridge, all in namespaces
this run creates and removes. Each node runs the web server of the development tools
(``keepvip.localcluster.webserver``: answers a TCP connection with its name) and one VRRP
daemon — keepvip or keepalived 2.2.x — holding the VIP 198.18.0.100 with VRRPv3 in the
standard group, both nodes at priority 100 with pre-emption on. Equal priorities let the
roles alternate: after a failover the restored node comes back as a backup (an
equal-priority backup never pre-empts), so a trial never waits for a pre-emption. The
client (``keepvip.localcluster.probe stream``) opens a TCP connection to the VIP every 5
ms.

Cases, injected on whichever node is master:

* ``crash``: the master's port on the switch goes down and its daemon is SIGKILLed (a
  node that dies with its network; a SIGKILLed daemon alone would leave the VIP — and
  the service — reachable on the old node, and the client would see no outage at all).
  Restored as a reboot would: VIP removed, port up, daemon started.
* ``planned``: SIGTERM to the master's daemon (priority 0 handover, VIP released).
* ``oom``: SIGKILL to the master's VRRP process alone, as the OOM killer picks the big one:
  keepalived's VRRP child (its parent starts a new one), keepvip's speaker process (its
  parent removes the VIP, sends the priority 0 the speaker kept ready and exits; the bench
  starts the daemon again, as a process manager would).
* ``health``: the master's web server stops; a TCP check (keepvip ``tcp`` check, keepalived
  ``vrrp_script`` doing the same connect from bash), interval 1 s, timeout 1 s, rise 1,
  fall 1, weight -20, takes the master's priority to 80, below the backup's 100.

A trial's gap is the time from the old master's last answer to the first answer of the
other node (``gaps.failover_gap``). Usage (root; ``make bench`` runs the full set)::

    python bench/failover.py                 # 20 trials per case, ~15 min
    python bench/failover.py --quick         # 3 trials per case
    python bench/failover.py --intervals 0.1 --implementations keepvip --cases planned

Results are printed as a table and written as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_interface
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "netns")]

from chaos_clock import ClockWatch  # noqa: E402
from chaos_daemons import vrrp_pids  # noqa: E402
from gaps import Answer, failover_window, master_down_interval, percentile, skew_time  # noqa: E402
from keepalived_harness import (  # noqa: E402
    BACKUP,
    DaemonError,
    KeepalivedConfig,
    KeepalivedDaemon,
    KeepvipDaemon,
    VrrpDaemon,
    VrrpScript,
    remove_address,
    virtualip_document,
    wait_for_state,
)
from timeline import Frame, TrialTimes, phases, read_frames  # noqa: E402

from keepvip.localcluster import probe, webserver  # noqa: E402
from keepvip.localcluster.lan import Host, Lan  # noqa: E402
from keepvip.localcluster.procs import kill_pid  # noqa: E402

VIP = "198.18.0.100/24"
VRID = 51
PRIORITY = 100
PORT = 8080
CHECK_INTERVAL_S = 1
CHECK_WEIGHT = -20
CASES = ("crash", "planned", "health", "oom")
IMPLEMENTATIONS = ("keepvip", "keepalived")
PHASE_SPREAD_S = 1.0  # a multiple of every advertisement interval and of the check interval
STABLE_PROBES = 20  # the last 100 ms of answers all from one node: steady state


# -- the client ---------------------------------------------------------------------------------


class Prober:
    """The prober (``keepvip.localcluster.probe stream``) in the client namespace; its answers
    collected by a reader thread."""

    def __init__(
        self, lan: Lan, client: Host, target: str | None = None, options: Sequence[str] = ()
    ) -> None:
        address = target or str(ip_interface(VIP).ip)
        argv = probe.stream_argv(address, PORT, ["--stdin", *options])
        self._lan = lan
        self._process = lan.spawn(client, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.answers: list[Answer] = []
        self.unanswered: list[float] = []  # send times, when started with --unanswered
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            sent, _, node = line.strip().partition(" ")
            if node == probe.UNANSWERED:
                self.unanswered.append(float(sent))
            else:
                self.answers.append(Answer(float(sent), node))

    def since(self, moment: float) -> list[Answer]:
        """Answers to probes sent after ``moment`` (and a little before, for the old master's last)."""
        return [a for a in self.answers[-4000:] if a.sent >= moment]

    def steady_node(self, timeout: float) -> str:
        """Wait until the last answers all come from one node, recently; return that node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recent = self.answers[-STABLE_PROBES:]
            if (
                len(recent) == STABLE_PROBES
                and len({a.node for a in recent}) == 1
                and time.monotonic() - recent[-1].sent < 0.05
            ):
                return recent[-1].node
            time.sleep(0.02)
        raise DaemonError(f"no node answered the VIP steadily for {timeout}s")

    def wait_for_answer(self, node: str, after: float, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(a.node == node and a.sent > after for a in self.answers[-400:]):
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        assert self._process.stdin is not None
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._lan.stop(self._process)


# -- the nodes ----------------------------------------------------------------------------------


@dataclass
class Testbed:
    """The LAN, the client, a web server per node, and the daemons of the block being run."""

    lan: Lan
    workdir: Path
    prober: Prober
    servers: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)
    daemons: dict[str, VrrpDaemon] = field(default_factory=dict)

    @property
    def nodes(self) -> list[Host]:
        return self.lan.nodes

    def start_server(self, host: Host) -> None:
        process = self.lan.spawn(host, webserver.argv(host.name, PORT), stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        if process.stdout.readline().strip() != webserver.READY:
            raise DaemonError(f"the web server of {host.name} did not start")
        self.servers[host.name] = process

    def stop_server(self, host: Host) -> None:
        self.lan.stop(self.servers.pop(host.name))

    def start_daemons(self, implementation: str, interval: float) -> None:
        check_script = self.workdir / "check_web.sh"
        check_script.write_text(f"#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/{PORT}\n")
        check_script.chmod(0o755)
        for host in self.nodes:
            workdir = self.workdir / f"{implementation}-{interval:g}"
            daemon: VrrpDaemon
            if implementation == "keepvip":
                daemon = KeepvipDaemon(self.lan, host, workdir, [keepvip_document(interval)])
            else:
                daemon = KeepalivedDaemon(
                    self.lan, host, workdir, keepalived_config(host, interval, check_script)
                )
            self.daemons[host.name] = daemon
            daemon.start()

    def stop_daemons(self) -> None:
        for host in self.nodes:
            daemon = self.daemons.pop(host.name, None)
            if daemon is not None and daemon.running:
                daemon.stop()
            remove_address(self.lan, host, VIP)


def keepvip_document(interval: float) -> dict[str, Any]:
    check = {
        "name": "web",
        "tcp": {"port": PORT},
        "interval": f"{CHECK_INTERVAL_S}s",
        "timeout": f"{CHECK_INTERVAL_S}s",
        "rise": 1,
        "fall": 1,
        "weight": CHECK_WEIGHT,
    }
    return virtualip_document(
        "bench",
        VIP,
        vrid=VRID,
        priority=PRIORITY,
        version=3,
        interval=f"{round(interval * 1000)}ms",
        health_checks=[check],
    )


def keepalived_config(host: Host, interval: float, check_script: Path) -> KeepalivedConfig:
    script = VrrpScript(
        "web", str(check_script), interval_s=CHECK_INTERVAL_S, timeout_s=CHECK_INTERVAL_S, weight=CHECK_WEIGHT
    )
    return KeepalivedConfig(
        router_id=host.name,
        interface=host.ifname,
        vrid=VRID,
        priority=PRIORITY,
        addresses=(ip_interface(VIP),),
        version=3,
        advert_int=interval,
        scripts=(script,),
    )


# -- one trial ----------------------------------------------------------------------------------


def rfc_bound(case: str, interval: float) -> float:
    """What RFC 9568 allows a priority-100 backup, in seconds."""
    if case == "planned":
        return skew_time(interval, PRIORITY)
    if case in ("crash", "oom"):  # oom: RFC 9568 knows no priority 0 from a killed process
        return master_down_interval(interval, PRIORITY)
    return CHECK_INTERVAL_S + master_down_interval(interval, PRIORITY)


@dataclass(frozen=True)
class Trial:
    """One injection and what the client saw (monotonic seconds)."""

    case: str
    old: str
    new: str
    injected_at: float
    last_old_answer: float | None
    first_new_answer: float | None

    @property
    def gap(self) -> float | None:
        if self.last_old_answer is None or self.first_new_answer is None:
            return None
        return self.first_new_answer - self.last_old_answer


def run_trial(bed: Testbed, case: str, interval: float) -> Trial:
    """Inject ``case`` on the master, measure the client's gap, restore the node as a backup."""
    old = bed.prober.steady_node(timeout=20)
    (new,) = (host.name for host in bed.nodes if host.name != old)
    host = bed.lan.node(old)
    daemon = bed.daemons[old]
    wait_for_state(bed.daemons[new], BACKUP, timeout=10)

    # A random phase against the master's advertisement timer and the health check's
    # schedule: without it the restart-to-injection time, nearly constant, locks the phase
    # and the percentiles describe one phase instead of the distribution.
    time.sleep(random.uniform(0, PHASE_SPREAD_S))  # noqa: S311 - not cryptography
    injected_at = time.monotonic()
    if case == "crash":
        bed.lan.set_port(host, up=False)
        daemon.crash()
    elif case == "planned":
        daemon.stop()
    elif case == "oom":
        kill_vrrp_process(daemon)
    else:
        bed.stop_server(host)
    took_over = bed.prober.wait_for_answer(new, injected_at, timeout=3 * rfc_bound(case, interval) + 5)
    window = failover_window(bed.prober.since(injected_at - 5), injected_at, old) if took_over else None
    trial = Trial(case, old, new, injected_at, *(window or (None, None)))

    if case == "crash":
        remove_address(bed.lan, host, VIP)
        bed.lan.set_port(host, up=True)
    if case in ("crash", "planned", "oom"):
        if not daemon.running:  # keepalived's parent has started a new VRRP child itself
            daemon.start()
        wait_for_state(daemon, BACKUP, timeout=10)
        time.sleep(interval + 0.3)  # it has heard the new master: a steady backup
    else:
        bed.start_server(host)
        time.sleep(CHECK_INTERVAL_S + 0.5)  # its check passed again: priority back to 100
    return trial


def kill_vrrp_process(daemon: VrrpDaemon) -> None:
    """SIGKILL the process that speaks VRRP and not its parent, as the OOM killer would."""
    for pid in vrrp_pids(daemon):
        if pid != daemon.pid:
            kill_pid(pid, signal.SIGKILL)


@dataclass
class Block:
    """The gaps of one (implementation, interval, case)."""

    implementation: str
    interval: float
    case: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def gaps(self) -> list[float]:
        return [t.gap for t in self.trials if t.gap is not None]

    @property
    def failures(self) -> int:
        return sum(t.gap is None for t in self.trials)


def run_block(bed: Testbed, implementation: str, interval: float, case: str, trials: int) -> Block:
    block = Block(implementation, interval, case)
    for number in range(1, trials + 1):
        trial = run_trial(bed, case, interval)
        block.trials.append(trial)
        gap = trial.gap
        shown = "no failover" if gap is None else f"{gap * 1000:7.1f} ms"
        print(
            f"  {implementation:10} {interval:4g}s {case:8} trial {number:2}/{trials}: {shown}",
            file=sys.stderr,
        )
    return block


# -- report -------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value * 1000:.0f}"


def table(blocks: list[Block]) -> str:
    found = {(b.implementation, b.interval, b.case): b for b in blocks}
    rows = [
        "| case | advert interval | keepvip p50 / p99 (ms) | keepalived p50 / p99 (ms) | ratio p50 / p99 "
        "| RFC bound (ms) | trials |",
        "|---|---|---|---|---|---|---|",
    ]
    for interval in sorted({b.interval for b in blocks}, reverse=True):
        for case in CASES:
            cells: list[str] = []
            stats: list[tuple[float, float] | None] = []
            counts: list[str] = []
            for implementation in IMPLEMENTATIONS:
                block = found.get((implementation, interval, case))
                if block is None or not block.gaps:
                    stats.append(None)
                    cells.append("—" if block is None else f"failed ×{block.failures}")
                else:
                    p50, p99 = percentile(block.gaps, 0.5), percentile(block.gaps, 0.99)
                    stats.append((p50, p99))
                    failed = f" ({block.failures} failed)" if block.failures else ""
                    cells.append(f"{_ms(p50)} / {_ms(p99)}{failed}")
                if block is not None:
                    counts.append(str(len(block.gaps) + block.failures))
            if all(s is None for s in stats):
                continue
            mine, theirs = stats
            ratio = (
                "—"
                if mine is None or theirs is None
                else f"{mine[0] / theirs[0]:.2f} / {mine[1] / theirs[1]:.2f}"
            )
            bound = _ms(rfc_bound(case, interval))
            named = {"crash": "Master_Down", "oom": "Master_Down", "planned": "Skew"}
            bound_text = f"{bound} ({named.get(case, 'check + Master_Down')})"
            row = [case, f"{interval * 1000:.0f} ms", *cells, ratio, bound_text, "+".join(counts)]
            rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


PHASES = ("detect", "announce", "client", "old_last")


def phase_table(blocks: list[Block], frames: list[Frame], nodes: dict[str, tuple[str, str]]) -> str:
    """Median of each phase per block (see timeline.py), in ms; ``nodes``: name -> (IPv4, MAC)."""
    rows = [
        "| implementation | interval | case | "
        + " | ".join(f"{name} p50" for name in PHASES)
        + " | traced |",
        "|---|---|---|" + "---|" * (len(PHASES) + 1),
    ]
    for block in blocks:
        found: list[dict[str, float]] = []
        for trial in block.trials:
            if trial.last_old_answer is None or trial.first_new_answer is None:
                continue
            (old_ip, _), (new_ip, new_mac) = nodes[trial.old], nodes[trial.new]
            times = TrialTimes(
                case=trial.case,
                injected_at=trial.injected_at,
                old_ip=old_ip,
                new_ip=new_ip,
                new_mac=new_mac,
                last_old_answer=trial.last_old_answer,
                first_new_answer=trial.first_new_answer,
                normal_priority=PRIORITY,
            )
            split = phases(times, frames)
            if split is not None:
                found.append(split)
        if not found:
            continue
        medians = [_ms(percentile([f[name] for f in found], 0.5)) for name in PHASES]
        head = [block.implementation, f"{block.interval * 1000:.0f} ms", block.case]
        rows.append("| " + " | ".join([*head, *medians, str(len(found))]) + " |")
    return "\n".join(rows)


@contextlib.contextmanager
def testbed(workdir: Path, trace: Path | None) -> Iterator[Testbed]:
    with Lan.build(nodes=2, client=True) as lan:
        assert lan.client is not None
        with contextlib.ExitStack() as stack:
            if trace is not None:
                stack.enter_context(lan.capture(lan.switch, trace, "ip proto 112 or arp", ifname="br0"))
            prober = Prober(lan, lan.client)
            bed = Testbed(lan, workdir, prober)
            try:
                for host in lan.nodes:
                    bed.start_server(host)
                yield bed
            finally:
                bed.stop_daemons()
                prober.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=20, help="trials per case and implementation (default 20)"
    )
    parser.add_argument("--quick", action="store_true", help="3 trials per case, for development")
    parser.add_argument(
        "--intervals", default="1,0.1", help="advertisement intervals in seconds (default 1,0.1)"
    )
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--json", type=Path, help="write every trial here")
    parser.add_argument(
        "--trace", type=Path, help="capture VRRP and ARP on the bridge here; print the phases"
    )
    args = parser.parse_args()
    trials = 3 if args.quick else args.trials
    intervals = [float(text) for text in args.intervals.split(",")]
    implementations = [name for name in args.implementations.split(",") if name]
    cases = [name for name in args.cases.split(",") if name]
    unknown = set(implementations) - set(IMPLEMENTATIONS) | set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown implementation or case: {', '.join(sorted(unknown))}")

    blocks: list[Block] = []
    started = time.monotonic()
    watch = ClockWatch()  # pcap times are wall-clock, and that clock may step (timeline.py)
    with tempfile.TemporaryDirectory(prefix="keepvip-bench-") as tmp, testbed(Path(tmp), args.trace) as bed:
        # Read now: the LAN is gone when the phases are worked out.
        nodes = {host.name: (str(host.ipv4.ip), host.mac) for host in bed.lan.nodes}
        for interval in intervals:
            for implementation in implementations:
                bed.start_daemons(implementation, interval)
                try:
                    for case in cases:
                        blocks.append(run_block(bed, implementation, interval, case, trials))
                finally:
                    bed.stop_daemons()
    clock = watch.close()
    print(table(blocks))
    print(f"\n{sum(len(b.trials) for b in blocks)} trials in {time.monotonic() - started:.0f} s")
    if args.trace is not None:
        print("\nWhere the time goes (timeline.py), medians in ms:\n")
        print(phase_table(blocks, read_frames(args.trace, clock), nodes))
    if args.json is not None:
        dump = [{**b.__dict__, "trials": [t.__dict__ | {"gap": t.gap} for t in b.trials]} for b in blocks]
        args.json.write_text(json.dumps(dump, indent=2))
    return 1 if any(b.failures for b in blocks) else 0


if __name__ == "__main__":
    sys.exit(main())
