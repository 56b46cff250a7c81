"""A seeded 20-fault slice of the chaos run (bench/chaos.py) against keepvip, as a behaviour test.

The full run (``make chaos``: 200 faults per interval, keepvip beside keepalived) is a
benchmark; this slice keeps the same harness, the same fault kinds and the same five
invariants in ``make test`` at the 100 ms interval with three VIPs, so a regression that
makes a fault end in split brain, a stale VIP, an unbounded client gap, a wrong final
master or a crash fails the suite. Bounds are generous (``SLACK`` added to every bound,
for a loaded CI machine); the invariants themselves are not relaxed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from keepvip.localcluster.lan import Lan

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos_faults import Services
from chaos_report import details
from chaos_run import run_block
from chaos_schedule import make_plan

SEED = 14
FAULTS = 20
VIPS = 3
INTERVAL = 0.1
SLACK = 1.0  # seconds added to every bound: the CI machine is shared


def test_twenty_seeded_faults_leave_no_invariant_violated(lan: Lan, tmp_path: Path) -> None:
    plan = make_plan(SEED, INTERVAL, FAULTS, VIPS)
    services = Services(lan)
    try:
        services.start_all()
        block = run_block(lan, services, plan, "keepvip", tmp_path, slack=SLACK)
    finally:
        services.close()
    assert len(block.records) == FAULTS
    assert not block.verdict.violations, details([block])
