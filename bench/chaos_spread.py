"""The report's "Across runs" section: every block pair's figures, side by side (issue 14).

One pair of blocks (keepvip and keepalived, the same seeded plan, run at the same time on
two LANs) gives one reading of each figure, and several figures change places from one
pair to the next: the sixth pass's repeat of its 100 ms pair moved the longest
split-brain window and the worst takeover delay from one daemon to the other. A claim
"keepvip is no worse than keepalived on this figure" needs more than one pair. This
section puts every pair's reading of every figure in one row, and counts in how many
pairs keepvip's reading was lower, equal or higher. Lower is better for every figure
here.

Pairs are matched by interval and seed, in the order the blocks were given (a seed run
twice makes two pairs). A block without its partner is left out.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chaos_run import BlockResult
from chaos_schedule import FaultKind
from chaos_takeovers import Takeover, lateness

KEEPVIP, KEEPALIVED = "keepvip", "keepalived"


@dataclass(frozen=True)
class Pair:
    """keepvip's and keepalived's blocks of one plan (one seed at one interval)."""

    seed: int
    run: int  # 1 for the seed's first pair at this interval, 2 for its repeat, ...
    interval: float
    keepvip: BlockResult
    keepalived: BlockResult


def pairs(blocks: Sequence[BlockResult]) -> list[Pair]:
    """keepvip and keepalived blocks matched by (interval, seed, how many of that seed came before)."""
    seen: dict[tuple[str, float, int], int] = {}
    keyed: dict[tuple[float, int, int], dict[str, BlockResult]] = {}
    for block in blocks:
        plan = block.plan
        occurrence = seen.get((block.implementation, plan.interval, plan.seed), 0)
        seen[(block.implementation, plan.interval, plan.seed)] = occurrence + 1
        keyed.setdefault((plan.interval, plan.seed, occurrence), {})[block.implementation] = block
    found = []
    for (interval, seed, occurrence), both in keyed.items():
        if KEEPVIP in both and KEEPALIVED in both:
            found.append(Pair(seed, occurrence + 1, interval, both[KEEPVIP], both[KEEPALIVED]))
    return found


Figure = Callable[[BlockResult], float | None]  # seconds or a count; None: not recorded


def _takeover(which: Callable[[Takeover], float | None], rank: int) -> Figure:
    """One of `chaos_takeovers.lateness`'s figures (0: p50, 1: p99, 2: worst) of the block's
    takeovers, ``which`` picking the delay (None: that takeover has none)."""

    def figure(block: BlockResult) -> float | None:
        if "takeovers" not in vars(block.verdict):
            return None
        figures = lateness([v for t in block.verdict.takeovers if (v := which(t)) is not None])
        return None if figures is None else figures[rank]

    return figure


def _advertised(takeover: Takeover) -> float | None:
    return takeover.advertised


def _announced(takeover: Takeover) -> float | None:
    return takeover.announced


def _worst_gap(kind: str) -> Figure:
    """The kind's worst gap as a share of its bound (`chaos_invariants.Gap.share`)."""

    def figure(block: BlockResult) -> float | None:
        gap = block.verdict.worst_gaps.get(kind)
        return 0.0 if gap is None else gap.share  # no gap at all: the best reading there is

    return figure


def _run_queue(block: BlockResult) -> float | None:
    return block.verdict.cpu_waits[0] if "cpu_waits" in vars(block.verdict) else None


SHARE = "% of its bound"

# (label, figure, unit): "ms" figures are seconds shown in ms, "s" in seconds, SHARE a fraction
# shown in percent, "" counts.
FIGURES: list[tuple[str, Figure, str]] = [
    ("violations, all invariants", lambda b: float(len(b.verdict.violations)), ""),
    ("… of 2 (a client gap past its bound)", lambda b: float(len(b.verdict.by_invariant(2))), ""),
    ("split-brain windows", lambda b: float(len(b.verdict.windows)), ""),
    ("longest split-brain window", lambda b: max((w.length for w in b.verdict.windows), default=0.0), "ms"),
    ("first advertisement after the deadline, p50", _takeover(_advertised, 0), "ms"),
    ("… p99", _takeover(_advertised, 1), "ms"),
    ("… worst", _takeover(_advertised, 2), "ms"),
    ("first gratuitous ARP after the deadline, p50", _takeover(_announced, 0), "ms"),
    ("… p99", _takeover(_announced, 1), "ms"),
    ("… worst", _takeover(_announced, 2), "ms"),
    ("VRRP processes' run-queue wait", _run_queue, "s"),
    *((f"worst gap: {kind}", _worst_gap(kind), SHARE) for kind in ["calm", *(str(k) for k in FaultKind)]),
]


def _show(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == SHARE:
        return f"{value * 100:.1f}"
    if unit == "ms":
        return f"{value * 1000:.0f}" if value >= 0.1 else f"{value * 1000:.1f}"
    return f"{value:.0f}"  # seconds or a count


def _score(readings: Sequence[tuple[float | None, float | None]], unit: str) -> tuple[str, str]:
    """(lower / equal / higher for keepvip, the median of keepvip − keepalived) over the pairs."""
    both = [(a, b) for a, b in readings if a is not None and b is not None]
    if not both:
        return "—", "—"
    # Equal: the cells show the same reading (what the table cannot tell apart is not a difference).
    lower = sum(a < b and _show(a, unit) != _show(b, unit) for a, b in both)
    higher = sum(a > b and _show(a, unit) != _show(b, unit) for a, b in both)
    median = statistics.median(a - b for a, b in both)
    sign = "+" if median > 0 else ""
    shown = f"{sign}{_show(median, unit)}" if median >= 0 else "−" + _show(-median, unit)
    return f"{lower} / {len(both) - lower - higher} / {higher}", shown


def _column(pair: Pair) -> str:
    return f"seed {pair.seed}" + (f", run {pair.run}" if pair.run > 1 else "")


def primary(blocks: Sequence[BlockResult]) -> list[BlockResult]:
    """The first block of each (interval, implementation), in the order given: the report's tables."""
    chosen: dict[tuple[float, str], BlockResult] = {}
    for block in blocks:
        chosen.setdefault((block.plan.interval, block.implementation), block)
    return [block for block in blocks if chosen[(block.plan.interval, block.implementation)] is block]


def across_runs(blocks: Sequence[BlockResult]) -> str:
    """The section's text; empty when no interval has more than one pair."""
    found = pairs(blocks)
    intervals = sorted({p.interval for p in found}, reverse=True)
    if not any(sum(p.interval == interval for p in found) > 1 for interval in intervals):
        return ""
    out = [
        "## Across runs",
        "",
        "Every block pair run for this report, keepvip's reading first, then keepalived's (the "
        "tables above are the first pair of each interval). Lower is better for every figure. "
        "*lower / equal / higher* counts the pairs in which keepvip's reading was lower than, "
        "equal to (within the cell's rounding) or higher than keepalived's; *median difference* "
        "is the median over the pairs of keepvip's reading minus keepalived's. A worst gap is "
        "the gap of that fault kind that came nearest its bound, as a share of that bound "
        "(bounds differ with the VIP's priority and checks); 0 means that fault kind left no "
        "client gap at all.",
        "",
    ]
    for interval in intervals:
        mine = [p for p in found if p.interval == interval]
        out += [
            f"### Advertisement interval {interval * 1000:.0f} ms: {len(mine)} pair{'s' * (len(mine) > 1)}",
            "",
            "| figure | " + " | ".join(_column(p) for p in mine) + " | lower / equal / higher | "
            "median difference |",
            "|---|" + "---|" * (len(mine) + 2),
        ]
        for label, figure, unit in FIGURES:
            readings = [(figure(p.keepvip), figure(p.keepalived)) for p in mine]
            if all(a in (None, 0.0) and b in (None, 0.0) for a, b in readings):
                continue  # a fault kind no plan drew, or a figure no block recorded
            cells = [f"{_show(a, unit)} / {_show(b, unit)}" for a, b in readings]
            score, median = _score(readings, unit)
            suffix = f" ({unit})" if unit else ""
            out.append(f"| {label}{suffix} | " + " | ".join(cells) + f" | {score} | {median} |")
        out.append("")
    return "\n".join(out)
