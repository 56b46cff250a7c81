"""Where a chaos block's run-queue wait accrued: restarts, faults on the node itself, the rest.

The report's "VRRP processes' run-queue wait" is one total per block (chaos_invariants
``cpu_waits``: time each VRRP process was runnable and got no CPU). keepvip's is higher
than keepalived's, and the total does not say why: a restarted Python speaker spends
its first fraction of a second importing and starting (CPU that keepalived, a C program,
hardly needs), and after that every advertisement costs it more CPU than keepalived
(``bench/speaker_cpu.py --keepalived``). This tool splits the total of a block kept with
``chaos.py --keep`` by what was happening to the process:

* **startup**: the first ``--startup`` seconds of a process that the block started (a
  ``kill`` or ``term`` restart), counted from its first sample;
* **own fault**: the rest, while a fault was acting on the process's own node (from
  its start to the next fault's start);
* **elsewhere**: the rest, in a calm or while a fault was acting on another node.

The split sums to the report's total (the same samples, the same span).

    python bench/chaos_waits.py /work/runs/s7/100ms-s15-keepvip /work/runs/s7/100ms-s15-keepalived
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "netns")]

from chaos_invariants import FaultWindow, Observation, window_at  # noqa: E402
from chaos_observe import SchedSample  # noqa: E402

STARTUP_S = 2.0
PHASES = ("startup", "own fault", "elsewhere")


def split(
    sched: Sequence[SchedSample],
    windows: Sequence[FaultWindow],
    observed: tuple[float, float],
    startup: float = STARTUP_S,
) -> dict[str, float]:
    """Seconds of run-queue wait per phase (`PHASES`) within ``observed``.

    Each increment between two samples of one process is given to the phase of the later
    sample. A process whose first sample precedes the observation started with the block,
    not with a fault: its first seconds are not startup.
    """
    start, end = observed
    totals = dict.fromkeys(PHASES, 0.0)
    by_process: dict[int, list[SchedSample]] = {}
    for sample in sorted(sched, key=lambda s: s.at):
        by_process.setdefault(sample.pid, []).append(sample)
    for samples in by_process.values():
        born = samples[0].at
        restarted = born >= start
        inside = [s for s in samples if start <= s.at <= end]
        for before, after in pairwise(inside):
            if restarted and after.at - born <= startup:
                phase = "startup"
            elif (window := window_at(windows, after.at)) is not None and after.node in window.nodes:
                phase = "own fault"
            else:
                phase = "elsewhere"
            totals[phase] += after.waited - before.waited
    return totals


def load(kept: Path) -> Observation:
    """The observation a ``--keep`` directory holds (its one block's ``observation.pickle``)."""
    found = sorted(kept.glob("*/observation.pickle"))
    if len(found) != 1:
        raise SystemExit(f"{kept}: expected one */observation.pickle, found {len(found)}")
    _judge, observation = pickle.loads(found[0].read_bytes())  # noqa: S301 - our own files
    return observation  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kept", type=Path, nargs="+", help="directories written by chaos.py --keep")
    parser.add_argument("--startup", type=float, default=STARTUP_S, help="seconds counted as startup")
    args = parser.parse_args(argv)
    print("| block | total (s) | " + " | ".join(PHASES) + " |")
    print("|---|---|" + "---|" * len(PHASES))
    for kept in args.kept:
        obs = load(kept)
        totals = split(obs.sched, obs.windows, obs.observed, args.startup)
        cells = " | ".join(f"{totals[phase]:.1f}" for phase in PHASES)
        print(f"| {kept.name} | {sum(totals.values()):.1f} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
