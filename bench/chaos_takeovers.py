"""Takeovers read off the wire: how long after its own Master_Down deadline each new master spoke.

Why this figure exists (issue 14, fifth pass). The chaos report's "worst gap / bound" per
fault kind is the longest client silence, and most of such a silence is the fault's phase,
not the daemon: a master that vanishes just after an advertisement leaves its backup a full
Master_Down_Interval to wait, one that vanishes just before the next leaves it one interval
less. Two implementations run on the same schedule therefore differ by up to one interval
in their worst gaps by chance alone (the fifth pass's 1 s run: keepvip's worst gap under a
``cut`` 3,440 ms, keepalived's 3,201 ms, both within the bound; keepvip's backup spoke 2 ms
after its deadline). What the daemon decides is how soon it acts once its timer is due, and
the capture shows that for every takeover exactly (RFC 9568 §6.1):

    deadline  = old master's last advertisement + Master_Down_Interval(new master's priority)
    advertised = new master's first advertisement - deadline
    announced  = its first gratuitous ARP for the VIP - deadline

``announced`` is when clients can move (the VIP is bound and said to be at the new MAC);
``advertised`` is when the other routers learn of it. The two differ by design: keepalived
advertises first and adds the addresses after (its gratuitous ARP follows its advertisement
by 1.7 ms, median of the fifth pass); keepvip binds first (issue 15: MASTER only with the
VIPs bound) and then advertises and announces together.

A *takeover* is an advertisement for a VRID from a node other than the one that spoke last,
where that one's last advertisement had a priority above 0 (a priority-0 handover is
Skew_Time's business, not Master_Down's) and the silence between them is within one
advertisement interval of the new master's Master_Down_Interval either way. Outside that
window the new master did not wait out a timer armed by the old master's last advertisement
(it was restarted, cut off or frozen itself), and the figure would not be the daemon's. A
negative figure is a backup that missed the old master's last advertisements (a shaped link).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # as a script: the harness's modules by bare name, as chaos.py has them
    HERE = Path(__file__).resolve().parent
    sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "netns")]

from chaos_clock import WallClock
from chaos_observe import WireFrame, read_wire
from gaps import master_down_interval


@dataclass(frozen=True)
class Takeover:
    """One new master on the wire, seen against the advertisement it waited out."""

    vrid: int
    at: float  # the new master's first advertisement
    node: str  # its source address
    previous: str  # the source of the last advertisement before it
    deadline: float  # when its Master_Down timer was due
    announced_at: float | None  # its first gratuitous ARP for the VIP (None: none seen)

    @property
    def advertised(self) -> float:
        return self.at - self.deadline

    @property
    def announced(self) -> float | None:
        return None if self.announced_at is None else self.announced_at - self.deadline


def takeovers(frames: Sequence[WireFrame], interval: float, vips: Mapping[int, str]) -> list[Takeover]:
    """Every Master_Down takeover in ``frames`` (any order), in time order; ``vips``: VRID -> VIP."""
    ordered = sorted(frames, key=lambda f: f.at)
    announcements: dict[tuple[str, str], list[float]] = {}  # (VIP, MAC) -> times
    for frame in ordered:
        if frame.arp_ip is not None:
            announcements.setdefault((frame.arp_ip, frame.mac), []).append(frame.at)
    last: dict[int, WireFrame] = {}
    found: list[Takeover] = []
    for frame in ordered:
        if frame.vrid is None or frame.priority is None:
            continue
        before = last.get(frame.vrid)
        last[frame.vrid] = frame
        if before is None or before.source == frame.source or not before.priority or not frame.priority:
            continue
        deadline = before.at + master_down_interval(interval, frame.priority)
        if abs(frame.at - deadline) > interval:
            continue
        said = announcements.get((vips.get(frame.vrid, ""), frame.mac), [])
        announced = next((at for at in said if frame.at - interval <= at <= frame.at + interval), None)
        found.append(Takeover(frame.vrid, frame.at, frame.source, before.source, deadline, announced))
    return found


def lateness(values_s: Sequence[float]) -> tuple[float, float, float] | None:
    """(p50, p99, worst) of ``values_s`` in seconds; None for no values."""
    if not values_s:
        return None
    late = sorted(values_s)
    return statistics.median(late), late[round(0.99 * (len(late) - 1))], late[-1]


def summary(values_s: Sequence[float]) -> str:
    """``p50 / p99 / worst`` in ms, as the report's cell shows it."""
    figures = lateness(values_s)
    if figures is None:
        return "—"
    return " / ".join(f"{value * 1000:.1f}" for value in figures)


def main(argv: Sequence[str] | None = None) -> int:
    """Add the takeover figures to a block saved before they existed, from its kept capture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved", type=Path, help="a file written by chaos.py --save")
    parser.add_argument("capture", type=Path, help="that run's bridge.pcap (chaos.py --keep)")
    args = parser.parse_args(argv)
    blocks = pickle.loads(args.saved.read_bytes())  # noqa: S301 - our own files
    if len(blocks) != 1:
        parser.error("the file holds more than one block: one capture cannot serve them all")
    block = blocks[0]
    vips = {vip.vrid: vip.ip for vip in block.plan.vips}
    frames = read_wire(args.capture, WallClock.fixed(0.0))  # times as tshark prints them
    block.verdict.takeovers = takeovers(frames, block.plan.interval, vips)
    args.saved.write_bytes(pickle.dumps(blocks))
    found = block.verdict.takeovers
    print(f"{len(found)} takeovers; advertised {summary([t.advertised for t in found])} ms, announced "
          f"{summary([t.announced for t in found if t.announced is not None])} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
