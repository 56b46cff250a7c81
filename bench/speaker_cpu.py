"""CPU per advertisement of keepvip's master and backup, measured precisely (issue 15).

``bench/scale.py`` reports CPU as a share of a core from ``/proc/<pid>/stat``, whose
ticks are 10 ms: a backup using 0.1 % of a core for 30 s is 3 ticks, and on a shared
machine the share moves with the load. This tool starts the same job (two standalone
speakers on a namespace LAN, N VirtualIPs @ an interval; ``bench/scale.py``'s testbed
and documents) and reads ``/proc/<pid>/schedstat`` (time on a CPU, in nanoseconds)
of both speakers over a window, then divides by the adverts the master sent in it
(N / interval × window): **CPU µs per advert**.

On a shared machine that figure still moves with the load (cache misses, wake-up
costs), by ±30 % from one run to the next. ``--against KEEPVIP`` runs a second pair of
speakers from another build (e.g. a ``main`` worktree's ``.venv/bin/keepvip``) on a
second LAN *at the same time*, measured over the same window: the two rows of a cell
share the machine's load, so their ratio is the comparison to trust — once the places are
swapped too (``--swap``): whichever build starts first, on the first LAN, measured 20-40 %
more per advert than the other in four windows of 30 s at 10 VIPs @ 100 ms (load 3-6,
2026-11-30: this build 72 / 88 µs master / backup against 57 / 61, and with the two
builds' places exchanged the other way round, 86 / 109 against 75 / 85). Averaged over both
places the two builds were within 3-6 %, where one place alone showed 50 %.

Also, for the backup: ``--strace`` counts its system calls by kind over the window
(what wakes an idle process), ``--py-spy BINARY`` records it (raw format).

``--keepalived`` adds keepalived 2.2.7 (the same job, ``bench/scale.py``'s configuration) on a
third LAN in the same window, its figure summed over its process tree (parent, VRRP child):
the reference the issue 14 run-queue figure is compared with.

    nice -n 19 .venv/bin/python bench/speaker_cpu.py --cells 32@1,100@1 --window 30
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "netns")]

import keepalived_harness  # noqa: E402
from scale import (  # noqa: E402
    STARTUP_GRACE_S,
    Bed,
    compile_bytecode,
    daemon_pid,
    master_down_interval,
    parse_cells,
    process_tree,
    testbed,
)


def on_cpu_seconds(pid: int) -> float:
    """Seconds ``pid`` (all its threads) spent on a CPU so far (``schedstat``: nanoseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def tree_cpu_seconds(pid: int) -> float:
    """``on_cpu_seconds`` summed over ``pid`` and its descendants (keepalived forks its VRRP child)."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            total += on_cpu_seconds(member)
    return total


def start_pair(
    bed: Bed, implementation: str, executable: Path, count: int, interval: float
) -> tuple[Any, Any]:
    """Master and backup daemons on ``bed``, all VIPs bound on the master."""
    keepalived_harness.KEEPVIP = executable  # read when a keepvip daemon starts
    a = bed.daemon(implementation, bed.a, count, interval)
    b = bed.daemon(implementation, bed.b, count, interval)
    a.start()
    b.start()
    limit = master_down_interval(interval, 100) + STARTUP_GRACE_S
    if bed.wait_bound(bed.a, count, timeout=limit, daemon=a) is None:
        # keepalived's pair carries keepvip's path too (unused): name the implementation then
        who = executable if implementation == "keepvip" else implementation
        raise RuntimeError(f"{who}: not all {count} VIPs bound")
    return a, b


def start_tracer(
    args: argparse.Namespace, tmp: Path, backup: int, count: int, interval: float
) -> subprocess.Popen[bytes] | None:
    """The tracer ``args`` asks for (strace, py-spy or perf), attached to ``backup``; or None."""
    if args.strace:
        out = tmp / "strace.txt"
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(backup)])
        time.sleep(0.5)
        return tracer
    if args.py_spy is not None:
        profile = tmp.parent / f"keepvip-backup-{count}-{interval:g}.txt"
        argv = [str(args.py_spy), "record", "--gil", "--format", "raw", "-r", "1000", "-o", str(profile)]
        return subprocess.Popen([*argv, "-d", str(int(args.window)), "-p", str(backup)])
    if args.perf is not None:
        argv = ["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", str(args.perf)]
        return subprocess.Popen([*argv, "-p", str(backup)])
    return None


def measure_cell(
    placed: list[tuple[Bed, tuple[str, str, Path]]],
    count: int,
    interval: float,
    args: argparse.Namespace,
    tmp: Path,
    *,
    swapped: bool,
) -> None:
    """Start every build's pair on its LAN (in ``placed``'s order), measure one window, print a row each."""
    pairs: list[tuple[Any, Any]] = []
    try:
        for bed, (_, implementation, executable) in placed:
            pairs.append(start_pair(bed, implementation, executable, count, interval))
        time.sleep(max(2.0, 3 * interval))
        pids = [(daemon_pid(a), daemon_pid(b)) for a, b in pairs]
        # The tracer follows this build's backup: in a swapped round the first place is another's.
        tracer = None if swapped else start_tracer(args, tmp, pids[0][1], count, interval)
        started = time.monotonic()
        before = [(tree_cpu_seconds(a), tree_cpu_seconds(b)) for a, b in pids]
        time.sleep(args.window)
        after = [(tree_cpu_seconds(a), tree_cpu_seconds(b)) for a, b in pids]
        elapsed = time.monotonic() - started
        if tracer is not None:
            tracer.send_signal(2)  # SIGINT: perf and strace write what they have
            tracer.wait()
        adverts = count / interval * elapsed
        for (_, (name, _, _)), (a0, b0), (a1, b1) in zip(placed, before, after, strict=True):
            master, backup_cpu = a1 - a0, b1 - b0
            label = f"{name} (swapped)" if swapped else name
            print(f"| {count} @ {interval * 1000:g} ms | {label} | {master / adverts * 1e6:.1f} "
                  f"| {backup_cpu / adverts * 1e6:.1f} | {100 * master / elapsed:.3f} "
                  f"| {100 * backup_cpu / elapsed:.3f} | {load_average()} |", flush=True)  # fmt: skip
        if args.strace:
            print((tmp / "strace.txt").read_text())
    finally:
        for (bed, _), pair in zip(placed, pairs, strict=False):
            bed.reset(count, *pair)


def main() -> int:
    compile_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="32@1,100@1", help="N@interval_s,...")
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--against", type=Path, help="another build's keepvip executable, measured alongside")
    parser.add_argument("--keepalived", action="store_true", help="measure keepalived alongside")
    parser.add_argument(
        "--swap",
        action="store_true",
        help="measure each cell twice, the second time with the builds' places reversed",
    )
    parser.add_argument("--strace", action="store_true", help="count the backup's system calls")
    parser.add_argument("--py-spy", type=Path, help="py-spy binary: record the backup (raw format)")
    parser.add_argument("--perf", type=Path, help="perf record -e cpu-clock of the backup into this file")
    args = parser.parse_args()
    builds = [("this", "keepvip", keepalived_harness.KEEPVIP)]
    if args.against is not None:
        builds.append(("against", "keepvip", args.against))
    if args.keepalived:
        builds.append(("keepalived", "keepalived", keepalived_harness.KEEPVIP))
    print("| N @ interval | build | master µs/advert | backup µs/advert | master % | backup % | load |")
    print("|---|---|---|---|---|---|---|")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keepvip-cpu-")))
        for name, _, _ in builds:
            (tmp / name).mkdir()
        beds = [stack.enter_context(testbed(tmp / name)) for name, _, _ in builds]
        for count, interval in parse_cells(args.cells):
            rounds = [list(zip(beds, builds, strict=True))]
            if args.swap:  # the same cell again, each build on another LAN and started in reverse order
                rounds.append(list(zip(beds, reversed(builds), strict=True)))
            for position, placed in enumerate(rounds):
                measure_cell(placed, count, interval, args, tmp, swapped=position > 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
