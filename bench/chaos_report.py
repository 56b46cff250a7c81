"""docs/reliability.md from chaos blocks: keepvip and keepalived side by side, per interval.

The figures come first (faults per kind, violations per invariant, split-brain windows,
worst client gap per fault kind against its bound), then every violation with its time
(seconds after the block's first fault), the fault it falls under and the capture
excerpt around it (at most ``DETAILS`` per invariant and block, the count is complete).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from chaos_run import BlockResult
from chaos_schedule import FaultKind
from chaos_spread import across_runs, primary
from chaos_takeovers import summary

DETAILS = 8
INVARIANTS = {
    1: "single holder once healed",
    2: "client gap within bound",
    3: "no stale VIP",
    4: "rightful holder at the end",
    5: "no crash, no traceback",
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def side_by_side(blocks: Sequence[BlockResult]) -> str:
    """One table per interval: a row per figure, a column per implementation."""
    out: list[str] = []
    for interval in sorted({b.plan.interval for b in blocks}, reverse=True):
        row_blocks = [b for b in blocks if b.plan.interval == interval]
        names = [b.implementation for b in row_blocks]
        out += [
            f"### Advertisement interval {_ms(interval)} ms",
            "",
            "| figure | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]

        def row(label: str, cells: Sequence[str], out: list[str] = out) -> None:
            out.append(f"| {label} | " + " | ".join(cells) + " |")

        row("VIPs / faults", [f"{len(b.plan.vips)} / {len(b.records)}" for b in row_blocks])
        row("chaos duration", [f"{b.duration:.0f} s" for b in row_blocks])
        row(
            "host load average (1 min), start → end",
            [f"{b.load[0]:.1f} → {b.load[1]:.1f}" for b in row_blocks],
        )
        for kind in FaultKind:
            counts = [Counter(r.plan.kind for r in b.records)[kind] for b in row_blocks]
            if any(counts):
                row(f"faults: {kind}", [str(c) for c in counts])
        for number, name in INVARIANTS.items():
            counts = [len(b.verdict.by_invariant(number)) for b in row_blocks]
            row(f"violations of {number} ({name})", [str(c) for c in counts])
        row(
            "gaps the observer missed (the control probes shared them, or no probe was sent; not in 2)",
            [
                f"{len(b.verdict.host_stalls)}, longest "
                f"{_ms(max((g.length for g, _ in b.verdict.host_stalls), default=0.0))} ms"
                for b in row_blocks
            ],
        )
        row(
            "double holdings the daemons' CPU wait covers (runnable, no CPU; not counted in 1)",
            [str(len(b.verdict.cpu_starved)) if _recorded(b) else "not recorded" for b in row_blocks],
        )
        row(
            "VRRP processes' run-queue wait: total, worst 1 s of one process (ms)",
            [
                f"{_ms(b.verdict.cpu_waits[0])}, {_ms(b.verdict.cpu_waits[1])}"
                if _recorded(b)
                else "not recorded"
                for b in row_blocks
            ],
        )
        row("takeovers after the master fell silent", [_takeover_cell(b, "count") for b in row_blocks])
        row(
            "… first advertisement after the Master_Down deadline: p50 / p99 / worst (ms)",
            [_takeover_cell(b, "advertised") for b in row_blocks],
        )
        row(
            "… first gratuitous ARP after the Master_Down deadline: p50 / p99 / worst (ms)",
            [_takeover_cell(b, "announced") for b in row_blocks],
        )
        row(
            "split-brain windows (count, longest)",
            [
                f"{len(b.verdict.windows)}, {_ms(max((w.length for w in b.verdict.windows), default=0.0))} ms"
                for b in row_blocks
            ],
        )
        kinds = ["calm", *(str(k) for k in FaultKind)]
        for kind in kinds:
            cells = []
            for b in row_blocks:
                gap = b.verdict.worst_gaps.get(kind)
                cells.append("—" if gap is None else f"{_ms(gap.length)} / {_ms(gap.bound)}")
            if any(c != "—" for c in cells):
                row(f"worst gap / bound (ms): {kind}", cells)
        out.append("")
    return "\n".join(out)


def _takeover_cell(block: BlockResult, figure: str) -> str:
    """The takeover figures (chaos_takeovers). Blocks judged before the fifth pass of issue 14
    have none; they get them from their kept capture with ``python bench/chaos_takeovers.py``."""
    if "takeovers" not in vars(block.verdict):
        return "not recorded"
    found = block.verdict.takeovers
    if figure == "count":
        return str(len(found))
    if figure == "advertised":
        return summary([t.advertised for t in found])
    return summary([t.announced for t in found if t.announced is not None])


def _recorded(block: BlockResult) -> bool:
    """Whether the block was judged with the daemons' run-queue figures (blocks saved before
    the fourth pass of issue 14 have none; --merge still reports them)."""
    return "cpu_waits" in vars(block.verdict)


def details(blocks: Sequence[BlockResult]) -> str:
    out: list[str] = []
    for block in blocks:
        violations = block.verdict.violations
        out.append(f"### {block.implementation}, {_ms(block.plan.interval)} ms: {len(violations)} violations")
        out.append("")
        if not violations:
            out += ["None.", ""]
        for number in INVARIANTS:
            found = block.verdict.by_invariant(number)
            for violation in found[:DETAILS]:
                at = "—" if violation.at != violation.at else f"{violation.at:.3f} s"
                out.append(
                    f"* invariant {number}, at {at}, {violation.vip or '-'}, fault {violation.fault}: "
                    f"{violation.detail}"
                )
                if violation.excerpt:
                    out += ["", "  ```", *(f"  {line}" for line in violation.excerpt), "  ```", ""]
            if len(found) > DETAILS:
                out.append(f"* … and {len(found) - DETAILS} more violations of invariant {number}")
        for gap, why in block.verdict.host_stalls[:DETAILS]:
            out.append(
                f"* not counted: {gap.vip} silent for {_ms(gap.length)} ms at "
                f"{gap.start - block.origin:.3f} s, fault {gap.fault}: {why}"
            )
        for violation, why in block.verdict.cpu_starved[:DETAILS] if _recorded(block) else ():
            out.append(f"* not counted (invariant 1): at {violation.at:.3f} s, {violation.vip}, fault "
                       f"{violation.fault}: {violation.detail}; {why}")  # fmt: skip
        out.append("")
    return "\n".join(out)


def render(meta: Mapping[str, str], blocks: Sequence[BlockResult], method: str) -> str:
    """The whole report: the tables and violations of each interval's first pair, then every
    pair's figures side by side when there is more than one (chaos_spread)."""
    header = ["# Reliability: the chaos run", ""]
    header += [f"* {key}: {value}" for key, value in meta.items()]
    first = primary(blocks)
    spread = across_runs(blocks)
    return "\n".join(
        [*header, "", method.strip(), "", "## Results", "", side_by_side(first),
         *([spread] if spread else []), "## Violations", "", details(first)]
    )  # fmt: skip
