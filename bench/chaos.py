"""Chaos run: a seeded random schedule of faults against keepvip and keepalived, judged by an observer.

Three nodes and a client (the gateway) on one namespace bridge (keepvip.localcluster.lan, flat),
standalone daemons serving 3 to 30 VIPs with mixed priorities, pre-emption on and off,
health checks and the gateway arbiter, at 1 s and 100 ms advertisement intervals. The
seeded schedule (chaos_schedule.py) is acted out (chaos_faults.py) identically against
each implementation; an observer that trusts no speaker (chaos_observe.py: client
probes, ``ip addr`` polling, a bridge capture) records the run and chaos_invariants.py
judges the five invariants. The report goes to docs/reliability.md (``make chaos``).

    python bench/chaos.py                               # 200 faults per interval, both daemons
    python bench/chaos.py --faults 5 --vips 3 --intervals 0.1 --implementations keepvip --no-report

Each implementation on its own LAN at the same time (same host load for both), then one report:

    python bench/chaos.py --implementations keepvip --save /tmp/kv.pickle --no-report &
    python bench/chaos.py --implementations keepalived --save /tmp/ka.pickle --no-report
    python bench/chaos.py --merge /tmp/kv.pickle /tmp/ka.pickle

Exit status 1 when any invariant was violated.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests" / "netns")]

from chaos_faults import Services  # noqa: E402
from chaos_observe import DAEMON_NICE, favour_session  # noqa: E402
from chaos_report import render  # noqa: E402
from chaos_run import BlockResult, run_block  # noqa: E402
from chaos_schedule import FaultKind, make_plan  # noqa: E402
from scale import compile_bytecode  # noqa: E402

from keepvip.localcluster.lan import Lan, sweep_stale  # noqa: E402

IMPLEMENTATIONS = ("keepvip", "keepalived")
METHOD = Path(HERE / "chaos_method.md")
CLUSTER_SECTION = "## In the cluster"  # written by bench/chaos_cluster.py


def run(
    seed: int,
    *,
    faults: int,
    vips: int,
    intervals: list[float],
    implementations: list[str],
    workdir: Path,
    kinds: tuple[FaultKind, ...] = tuple(FaultKind),
    poll: float = 0.1,
    slack: float = 0.0,
    short: bool = False,
    save: Path | None = None,
    daemon_nice: int | None = DAEMON_NICE,
) -> list[BlockResult]:
    """Every (interval, implementation) block on one LAN; the same plan per interval."""
    blocks = []
    with Lan.build(nodes=3, client=True) as lan:
        services = Services(lan)
        try:
            services.start_all()
            for interval in intervals:
                plan = make_plan(seed, interval, faults, vips, kinds, short=short)
                for implementation in implementations:
                    block = run_block(
                        lan, services, plan, implementation, workdir, poll=poll, slack=slack,
                        daemon_nice=daemon_nice,
                    )  # fmt: skip
                    blocks.append(block)
                    if save is not None:  # after every block: a long run cut short keeps what it judged
                        save.write_bytes(pickle.dumps(blocks))
        finally:
            services.close()
    return blocks


def meta(seed: str, faults: int, argv: list[str]) -> dict[str, str]:
    def out(*command: str) -> str:
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
        lines = (result.stdout or result.stderr).strip().splitlines()
        return lines[0] if lines else ""

    dirty = (
        " (with uncommitted changes)" if out("git", "status", "--porcelain", "--untracked-files=no") else ""
    )
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {
        "seed": seed,
        "faults per interval and implementation": f"{faults}"
        + ("" if faults >= 200 else " (short run: issue 14's target is 200, `make chaos`)"),
        "commit": out("git", "rev-parse", "--short", "HEAD") + dirty,
        "machine": f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        "keepalived": out("keepalived", "--version"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/chaos.py " + " ".join(argv),
    }


def stop_cleanly_on_signals() -> None:
    """SIGTERM and SIGINT end the run through its ``finally`` blocks, which stop the daemons and
    remove the namespaces. By default SIGTERM ends Python at once, leaving both behind, and a
    run started in the background of a non-interactive shell ignores SIGINT."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--faults", type=int, default=200, help="faults per interval (default 200)")
    parser.add_argument("--vips", type=int, default=10, help="VIPs, 3 to 30 (default 10)")
    parser.add_argument("--intervals", default="1,0.1", help="advertisement intervals, s (default 1,0.1)")
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--kinds", default=",".join(FaultKind), help="fault kinds to draw from")
    parser.add_argument("--poll", type=float, default=0.1, help="ip addr polling period, s")
    parser.add_argument("--slack", type=float, default=0.0, help="extra tolerance on every bound, s")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("--no-report", action="store_true", help="print the report, write nothing")
    parser.add_argument("--keep", type=Path, help="keep logs and captures in this directory")
    parser.add_argument(
        "--short-heals",
        action="store_true",
        help="faults of 1-1.5 Master_Down and a shorter calm (200 faults at 1 s on 2 cores)",
    )
    parser.add_argument(
        "--daemon-nice",
        type=int,
        default=DAEMON_NICE,
        help=f"nice value of the daemons under test (default {DAEMON_NICE}, the observer's; "
        "0 reproduces the third pass, where they queued behind the observer)",
    )
    parser.add_argument("--save", type=Path, help="also save the judged blocks here (for --merge)")
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="write one report from blocks saved by earlier runs, run nothing")  # fmt: skip
    args = parser.parse_args()
    stop_cleanly_on_signals()
    if not 3 <= args.vips <= 30:
        parser.error("--vips must be 3 to 30")
    implementations = [name for name in args.implementations.split(",") if name]
    if set(implementations) - set(IMPLEMENTATIONS):
        parser.error(f"implementations: {', '.join(IMPLEMENTATIONS)}")
    kinds = tuple(FaultKind(name) for name in args.kinds.split(",") if name)
    intervals = [float(text) for text in args.intervals.split(",")]
    if args.merge:
        blocks = [block for path in args.merge for block in pickle.loads(path.read_bytes())]  # noqa: S301 - our own files
    else:
        sweep_stale()
        # Every fault of kind kill or term starts a speaker: with PYTHONDONTWRITEBYTECODE set (CI,
        # this machine), modules changed since their .pyc was written were compiled from source at
        # every start, before even the early sweep (issue 14, seventh pass): startup CPU that no
        # installed speaker spends, counted in the run-queue wait and in how long a killed node
        # kept its VIPs.
        compile_bytecode()
        favour_session()
        with tempfile.TemporaryDirectory(prefix="keepvip-chaos-") as tmp:
            workdir = args.keep or Path(tmp)
            blocks = run(
                args.seed, faults=args.faults, vips=args.vips, intervals=intervals,
                implementations=implementations, workdir=workdir, kinds=kinds, poll=args.poll,
                slack=args.slack, short=args.short_heals, save=args.save,
                daemon_nice=args.daemon_nice,
            )  # fmt: skip
    order = {name: index for index, name in enumerate(IMPLEMENTATIONS)}
    blocks.sort(key=lambda block: (-block.plan.interval, order.get(block.implementation, len(order))))
    seeds = ", ".join(str(seed) for seed in sorted({block.plan.seed for block in blocks})) or str(args.seed)
    text = render(meta(seeds, args.faults, sys.argv[1:]), blocks, METHOD.read_text())
    if args.no_report:
        print(text)
    else:
        # bench/chaos_cluster.py's section ("## In the cluster") is that run's: kept as it is.
        old = args.report.read_text() if args.report.exists() else ""
        cluster = old[old.find(CLUSTER_SECTION) :] if CLUSTER_SECTION in old else ""
        args.report.write_text(text.rstrip("\n") + "\n" + ("\n" + cluster if cluster else ""))
        print(f"report written to {args.report}", file=sys.stderr)
    return 1 if any(b.verdict.violations for b in blocks) else 0


if __name__ == "__main__":
    sys.exit(main())
