"""The cluster chaos run's pure parts (bench/chaos_cluster.py): its seeded plan and its report section."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "netns")]

from chaos_cluster import SECTION, ClusterFault, make_plan, write_section  # noqa: E402

NODES = ["node-a", "node-b", "node-c"]


def test_the_plan_is_a_function_of_the_seed_and_edits_need_the_api_server() -> None:
    assert make_plan(14, 40, 3, NODES, 0.1) == make_plan(14, 40, 3, NODES, 0.1)
    assert make_plan(14, 40, 3, NODES, 0.1) != make_plan(15, 40, 3, NODES, 0.1)
    priorities, _, faults = make_plan(14, 40, 3, NODES, 0.1)
    assert all(len(set(p.values())) == len(NODES) for p in priorities)  # the rightful master is never a tie
    assert {f.kind for f in faults} == set(ClusterFault)
    assert any(f.edit is not None for f in faults)
    assert all(f.edit is None for f in faults if f.kind is ClusterFault.APISERVER)  # nothing to edit through
    assert all(f.node in NODES for f in faults if f.kind in (ClusterFault.POD, ClusterFault.NOTREADY))


def test_the_cluster_section_replaces_its_old_self_and_keeps_the_standalone_report(tmp_path: Path) -> None:
    report = tmp_path / "reliability.md"
    report.write_text("# Reliability\n\nstandalone figures\n")
    write_section(f"{SECTION}\n\nfirst\n", report)
    write_section(f"{SECTION}\n\nsecond\n", report)
    text = report.read_text()
    assert text.startswith("# Reliability\n\nstandalone figures\n")
    assert "second" in text
    assert "first" not in text
    assert text.count(SECTION) == 1
