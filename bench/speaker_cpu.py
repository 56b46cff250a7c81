"""CPU per advertisement of keepvip's master and backup, measured precisely (issue 15).

``bench/scale.py`` reports CPU as a share of a core from ``/proc/<pid>/stat``, whose
ticks are 10 ms: a backup using 0.1 % of a core for 30 s is 3 ticks, and on a shared
machine the share moves with the load. This tool starts the same job (two standalone
speakers on a namespace LAN, N VirtualIPs @ an interval; ``bench/scale.py``'s testbed
and documents) and reads ``/proc/<pid>/schedstat`` (time on a CPU, in nanoseconds)
of both speakers over a window, then divides by the adverts the master sent in it
(N / interval × window): **CPU µs per advert**, which does not depend on the window
and little on the load. It also counts the backup's system calls by kind over the
window (``strace -c -f``, optional) to show what wakes an idle process.

    nice -n 19 .venv/bin/python bench/speaker_cpu.py --cells 32@1,100@1 --window 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from scale import (  # noqa: E402
    STARTUP_GRACE_S,
    compile_bytecode,
    daemon_pid,
    master_down_interval,
    parse_cells,
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


def main() -> int:
    compile_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="32@1,100@1", help="N@interval_s,...")
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--strace", action="store_true", help="count the backup's system calls")
    parser.add_argument("--py-spy", type=Path, help="py-spy binary: record the backup (raw format)")
    parser.add_argument("--trace", type=Path, help="write the backup's system calls (strace -tt) here")
    args = parser.parse_args()
    print("| N @ interval | master µs/advert | backup µs/advert | master % | backup % | load |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="keepvip-cpu-") as tmp, testbed(Path(tmp)) as bed:
        for count, interval in parse_cells(args.cells):
            a = bed.daemon("keepvip", bed.a, count, interval)
            b = bed.daemon("keepvip", bed.b, count, interval)
            try:
                a.start()
                b.start()
                limit = master_down_interval(interval, 100) + STARTUP_GRACE_S
                if bed.wait_bound(bed.a, count, timeout=limit, daemon=a) is None:
                    print(f"{count} @ {interval}: not all VIPs bound", file=sys.stderr)
                    continue
                time.sleep(max(2.0, 3 * interval))
                pa, pb = daemon_pid(a), daemon_pid(b)
                tracer = None
                if args.strace:
                    out = Path(tmp) / "strace.txt"
                    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(pb)])
                elif args.py_spy is not None:
                    profile = Path(tmp).parent / f"keepvip-backup-{count}-{interval:g}.txt"
                    argv = [str(args.py_spy), "record", "--format", "raw", "-r", "250", "-o", str(profile)]
                    tracer = subprocess.Popen([*argv, "-d", str(int(args.window)), "-p", str(pb)])
                elif args.trace is not None:
                    tracer = subprocess.Popen(["strace", "-tt", "-f", "-o", str(args.trace), "-p", str(pb)])
                    time.sleep(0.5)
                before = time.monotonic(), on_cpu_seconds(pa), on_cpu_seconds(pb)
                time.sleep(args.window)
                after = time.monotonic(), on_cpu_seconds(pa), on_cpu_seconds(pb)
                if tracer is not None:
                    tracer.terminate()
                    tracer.wait()
                elapsed = after[0] - before[0]
                adverts = count / interval * elapsed
                master, backup = after[1] - before[1], after[2] - before[2]
                print(f"| {count} @ {interval * 1000:g} ms | {master / adverts * 1e6:.1f} "
                      f"| {backup / adverts * 1e6:.1f} | {100 * master / elapsed:.3f} "
                      f"| {100 * backup / elapsed:.3f} | {load_average()} |", flush=True)  # fmt: skip
                if args.strace:
                    print((Path(tmp) / "strace.txt").read_text())
            finally:
                bed.reset(count, a, b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
