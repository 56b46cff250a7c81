"""The chaos report's "Across runs" section (bench/chaos_spread.py): blocks are paired by plan
(interval and seed, a repeated seed making a second pair), each figure is shown for every pair
and scored by how often keepvip's reading was lower, equal or higher; the report's own tables
keep the first pair of each interval only."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "netns")]

from chaos_invariants import Gap, Verdict, Window  # noqa: E402
from chaos_report import render, side_by_side  # noqa: E402
from chaos_run import BlockResult  # noqa: E402
from chaos_schedule import make_plan  # noqa: E402
from chaos_spread import across_runs, pairs, primary  # noqa: E402
from chaos_takeovers import Takeover  # noqa: E402


def block(
    implementation: str, seed: int, interval: float, windows: int = 0, kill_gap: float | None = None
) -> BlockResult:
    plan = make_plan(seed, interval, 0, 3)
    verdict = Verdict()
    verdict.windows = [
        Window("198.18.0.101", i, i + 0.01, frozenset({"node1", "node2"})) for i in range(windows)
    ]
    if kill_gap is not None:
        verdict.worst_gaps["kill"] = Gap("198.18.0.101", 0.0, kill_gap, "kill", "#1 kill@node1", 0.45)
    return BlockResult(implementation, plan, [], verdict, 1.0, 0.0)


def test_blocks_pair_by_interval_and_seed_and_a_repeated_seed_makes_a_second_pair() -> None:
    blocks = [
        block("keepvip", 14, 0.1), block("keepalived", 14, 0.1),
        block("keepvip", 14, 0.1), block("keepalived", 14, 0.1),
        block("keepvip", 15, 0.1), block("keepalived", 15, 1.0),  # no partner at either interval
    ]  # fmt: skip
    found = pairs(blocks)
    assert [(p.seed, p.run, p.interval) for p in found] == [(14, 1, 0.1), (14, 2, 0.1)]
    assert [(p.keepvip, p.keepalived) for p in found] == [(blocks[0], blocks[1]), (blocks[2], blocks[3])]


def test_each_figure_is_scored_over_the_pairs() -> None:
    blocks = [
        block("keepvip", 14, 0.1, windows=5, kill_gap=0.30),
        block("keepalived", 14, 0.1, windows=7, kill_gap=0.36),
        block("keepvip", 15, 0.1, windows=6, kill_gap=0.35),
        block("keepalived", 15, 0.1, windows=6, kill_gap=None),
        block("keepvip", 16, 0.1, windows=9, kill_gap=0.30002),  # 0.02 ms more: the cells cannot show it
        block("keepalived", 16, 0.1, windows=8, kill_gap=0.30),
    ]
    text = across_runs(blocks)
    assert "### Advertisement interval 100 ms: 3 pairs" in text
    assert "| figure | seed 14 | seed 15 | seed 16 | lower / equal / higher | median difference |" in text
    # Windows 5 < 7, 6 = 6, 9 > 8: one pair each way; median of (-2, 0, +1) is 0.
    assert "| split-brain windows | 5 / 7 | 6 / 6 | 9 / 8 | 1 / 1 / 1 | 0 |" in text
    # A worst gap reads as a share of its bound (450 ms here). A kind with no client gap reads
    # 0 (the best there is): keepalived's seed 15 beats 350 ms. Seed 16's 300.02 against 300 ms
    # shows as 66.7 / 66.7 %, so it counts as equal.
    row = "| worst gap: kill (% of its bound) | 66.7 / 80.0 | 77.8 / 0.0 | 66.7 / 66.7 | 1 / 1 / 1 | +0.0 |"
    assert row in text
    assert "worst gap: cut" not in text  # drawn by no plan here, seen in no block


def test_one_pair_per_interval_needs_no_section_and_the_tables_keep_the_first_pair() -> None:
    single = [block("keepvip", 14, 0.1), block("keepalived", 14, 0.1)]
    assert across_runs(single) == ""
    repeated = [*single, block("keepvip", 15, 0.1, windows=3), block("keepalived", 15, 0.1)]
    assert primary(repeated) == single
    report = render({"seed": "14, 15"}, repeated, "## Method")
    assert "## Across runs" in report
    results = report[report.index("## Results") : report.index("## Across runs")]
    assert "| split-brain windows (count, longest) | 0, 0 ms | 0, 0 ms |" in results
    assert report.index("## Across runs") < report.index("## Violations")


def test_a_figure_a_block_did_not_record_is_a_dash_and_scored_without_it() -> None:
    old = block("keepvip", 14, 0.1)
    del old.verdict.cpu_waits  # as a block saved before the run-queue figures existed
    newer = block("keepvip", 14, 0.1)
    newer.verdict.cpu_waits = (30.0, 0.2)
    keepalived = block("keepalived", 14, 0.1)
    keepalived.verdict.cpu_waits = (20.0, 0.1)
    text = across_runs([old, keepalived, newer, keepalived])
    assert "| VRRP processes' run-queue wait (s) | — / 20 | 30 / 20 | 0 / 0 / 1 | +10 |" in text
    assert "first advertisement" not in text  # no block saw a takeover: nothing to compare


def test_the_takeover_rows_read_what_the_tables_read() -> None:
    # A block's p50 / p99 / worst here and in the report's own table come from one function.
    kv, ka = block("keepvip", 14, 0.1), block("keepalived", 14, 0.1)
    kv.verdict.takeovers = [
        Takeover(1, 1.0 + late, "198.18.0.2", "198.18.0.1", 1.0, None) for late in (0.001, 0.002)
    ]
    ka.verdict.takeovers = [
        Takeover(1, 1.0 + late, "198.18.0.2", "198.18.0.1", 1.0, None) for late in (0.004, 0.006)
    ]
    text = across_runs([kv, ka, kv, ka])
    # Two delays: p50 is their mean (as the table's 1.5 ms), p99 and worst the later one.
    assert (
        "| first advertisement after the deadline, p50 (ms) | 1.5 / 5.0 | 1.5 / 5.0 | 2 / 0 / 0 | −3.5 |"
        in text
    )
    assert "| … worst (ms) | 2.0 / 6.0 | 2.0 / 6.0 | 2 / 0 / 0 | −4.0 |" in text
    assert "1.5 / 2.0 / 2.0" in side_by_side([kv, ka])
