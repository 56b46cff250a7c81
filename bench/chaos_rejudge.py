"""Judge saved chaos blocks again from their kept observations, with the current judge.

``chaos.py --save`` stores each block's verdict as judged then; ``--keep`` stores what the
observer recorded (``observation.pickle``). When the judge learns something (issue 14,
seventh pass: a VIP gap across a handover in which both holders' own addresses went
unanswered), the blocks already run are judged again rather than run again, so a report can
hold runs from before and after the change on one judge.

    python bench/chaos_rejudge.py /work/runs/s7/100ms-s15-keepvip.pickle /work/runs/s7/100ms-s15-keepvip

The saved file is rewritten in place; each block is matched to the kept observation of its
implementation and interval (``<implementation>-<interval>/observation.pickle``).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "netns")]

from chaos_invariants import judge  # noqa: E402
from chaos_run import BlockResult  # noqa: E402


def rejudged(block: BlockResult, kept: Path) -> BlockResult:
    """``block`` with the verdict the current judge gives its kept observation."""
    found = kept / f"{block.implementation}-{block.plan.interval:g}" / "observation.pickle"
    judge_, observation = pickle.loads(found.read_bytes())  # noqa: S301 - our own files
    return replace(block, verdict=judge(judge_, observation))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved", type=Path, help="a file written by chaos.py --save (rewritten)")
    parser.add_argument("kept", type=Path, help="that run's chaos.py --keep directory")
    args = parser.parse_args(argv)
    blocks: list[BlockResult] = pickle.loads(args.saved.read_bytes())  # noqa: S301 - our own files
    again = [rejudged(block, args.kept) for block in blocks]
    for old, new in zip(blocks, again, strict=True):
        print(f"{old.implementation} {old.plan.interval:g} s: {len(old.verdict.violations)} -> "
              f"{len(new.verdict.violations)} violations, {len(old.verdict.host_stalls)} -> "
              f"{len(new.verdict.host_stalls)} gaps not counted")  # fmt: skip
    args.saved.write_bytes(pickle.dumps(again))
    return 0


if __name__ == "__main__":
    sys.exit(main())
