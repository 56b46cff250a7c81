"""Regression of a chaos-run finding (issue 14): the client gap of a ``gateway`` fault that
follows another fault is judged under the ``gateway`` fault's bound.

The seeded run at 100 ms adverts (seed 14) reported a 2.2 s client gap on VIPs node1 held
"during ``cut@node2``" (bound 0.4 s). It was the next fault's: ``gateway@node1`` isolated
node1 from the client (which is the gateway), and the client cannot reach node1 until the
arbiter gives node1 up (2 × 1 s + 0.9 s) — the bound of a gateway fault adds that detection
time. The client's last answer before the gap was sent 20 ms before the gateway fault
started, so it lay in the ``cut`` fault's span, and the judge took that span's bound.

This runs the two faults, in that order, through the chaos harness against real keepvip
speakers: the ``gateway`` gap must be counted as a ``gateway`` gap and stay within its bound.
"""

from __future__ import annotations

import sys
from pathlib import Path

from keepvip.localcluster.lan import Lan

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos_faults import Services
from chaos_report import details
from chaos_run import run_block
from chaos_schedule import FaultKind, FaultPlan, Plan, VipPlan

INTERVAL = 0.1
SLACK = 1.0  # seconds added to every bound: the CI machine is shared (as in test_chaos_slice.py)
VIPS = (
    VipPlan(1, 1, "198.18.0.101/24", {"node1": 240, "node2": 150, "node3": 100}, True, None),
    VipPlan(2, 2, "198.18.0.102/24", {"node1": 230, "node2": 100, "node3": 160}, False, None),
)
FAULTS = (
    FaultPlan(1, FaultKind.CUT, ("node2",), 0.0, 0.8, 2.0),
    FaultPlan(2, FaultKind.GATEWAY, ("node1",), 2.8, 3.0, 3.0),
)


def test_a_gateway_faults_gap_right_after_a_cut_is_the_gateway_faults(lan: Lan, tmp_path: Path) -> None:
    plan = Plan(14, INTERVAL, VIPS, FAULTS)
    services = Services(lan)
    try:
        services.start_all()
        block = run_block(lan, services, plan, "keepvip", tmp_path, slack=SLACK)
    finally:
        services.close()
    assert not block.verdict.violations, details([block])
    gateway = block.verdict.worst_gaps["gateway"]
    assert gateway.length > 1.0, gateway  # the client really lost node1 until the arbiter gave it up
    assert gateway.length <= gateway.bound + SLACK, gateway
