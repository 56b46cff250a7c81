"""Who holds each VIP, measured so that convergence is not mistaken for a double holding.

One ``ip -j addr`` per node namespace, read one after the other, is not a snapshot: under
load the reads of three namespaces can be seconds apart, and a VIP that moves between
them is seen on both nodes (or on none). And right after a mass takeover two backups of
equal priority both become master by design (RFC 9568 §6.4.2: their Master_Down_Timers
run out together), until each hears the other's first advertisement and the lower
primary address yields (§6.4.3). A single look at that moment counts VIPs "on two nodes"
that VRRP's own timers resolve within an Advertisement_Interval.

So the bench watches instead: it reads every namespace at once (one thread each), again
and again, and reports per address how long it was seen on two nodes, and the time until
every address had exactly one holder in several consecutive rounds. An address still
doubly held when the watch gives up is the bug the single look could not tell apart.
The speakers' own logs (one JSON line per state transition, field ``virtualip``) give
the transitions of the doubly held addresses' VirtualIPs, so a report can show why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from keepvip.localcluster import LocalCluster


@dataclass(frozen=True)
class Snapshot:
    """Holders per wanted address, from reads of every namespace started together."""

    at: float  # seconds after the watch's origin, when the reads started
    span: float  # seconds from the first read's start to the last read's end
    holders: dict[str, frozenset[str]]

    def doubles(self) -> dict[str, frozenset[str]]:
        return {a: nodes for a, nodes in self.holders.items() if len(nodes) > 1}

    def missing(self) -> list[str]:
        return [a for a, nodes in self.holders.items() if not nodes]

    def single(self) -> bool:
        return all(len(nodes) == 1 for nodes in self.holders.values())

    def counts(self) -> dict[str, int]:
        per: dict[str, int] = {}
        for nodes in self.holders.values():
            for node in nodes:
                per[node] = per.get(node, 0) + 1
        return per


@dataclass
class Convergence:
    """The watch's result; times in seconds after its origin (a failure, or a settle)."""

    single_after: float | None  # first of ``stable`` consecutive rounds with one holder each
    rounds: int
    max_span: float  # the slowest round: how far from atomic a snapshot was
    first: Snapshot
    last: Snapshot
    double_windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    """address → (first, last) round that saw it on two or more nodes."""

    def longest_double(self) -> float:
        return max((last - first for first, last in self.double_windows.values()), default=0.0)

    def last_double_seen(self) -> float | None:
        return max((last for _, last in self.double_windows.values()), default=None)

    def summary(self) -> dict[str, Any]:
        return {
            "single_holder_after_s": self.single_after,
            "rounds": self.rounds,
            "slowest_round_s": round(self.max_span, 3),
            "first_round": {
                "counts": self.first.counts(),
                "doubles": len(self.first.doubles()),
                "missing": len(self.first.missing()),
            },
            "last_round": {
                "counts": self.last.counts(),
                "doubles": sorted(self.last.doubles()),
                "missing": self.last.missing(),
            },
            "addresses_ever_double": len(self.double_windows),
            "longest_double_window_s": round(self.longest_double(), 3),
            "last_double_seen_s": self.last_double_seen(),
        }


def snapshot(cluster: LocalCluster, nodes: Sequence[str], wanted: Iterable[str], origin: float) -> Snapshot:
    """Read ``eth0``'s addresses in every node namespace at once (one thread each)."""
    wanted = list(wanted)
    started = time.monotonic()
    with ThreadPoolExecutor(len(nodes)) as pool:
        bound = dict(zip(nodes, pool.map(lambda n: {str(a.ip) for a in cluster.node_addresses(n)}, nodes),
                         strict=True))  # fmt: skip
    span = time.monotonic() - started
    holders = {a: frozenset(n for n in nodes if a in bound[n]) for a in wanted}
    return Snapshot(at=started - origin, span=span, holders=holders)


class Watch:
    """The pure part of `watch`: fed one `Snapshot` after another, it keeps the windows in
    which each address was seen on two nodes and the start of the current run of rounds
    with one holder per address."""

    def __init__(self, first: Snapshot, stable: int) -> None:
        self.first = self.last = first
        self.stable = stable
        self.rounds, self.max_span = 0, 0.0
        self.windows: dict[str, tuple[float, float]] = {}
        self._streak, self._streak_start = 0, 0.0
        self.observe(first)

    def observe(self, seen: Snapshot) -> bool:
        """Take one round; ``True`` once ``stable`` rounds in a row had one holder each."""
        self.last, self.rounds, self.max_span = seen, self.rounds + 1, max(self.max_span, seen.span)
        for address in seen.doubles():
            self.windows[address] = (self.windows.get(address, (seen.at, seen.at))[0], seen.at)
        if seen.single():
            self._streak_start = seen.at if self._streak == 0 else self._streak_start
            self._streak += 1
        else:
            self._streak = 0
        return self.done()

    def done(self) -> bool:
        return self._streak >= self.stable

    def result(self) -> Convergence:
        single_after = self._streak_start if self.done() else None
        return Convergence(single_after, self.rounds, self.max_span, self.first, self.last, self.windows)


def watch(cluster: LocalCluster, nodes: Sequence[str], wanted: Iterable[str], *, origin: float,
          timeout: float, stable: int = 3, period: float = 0.5) -> Convergence:  # fmt: skip
    """Snapshot every ``period`` until ``stable`` rounds in a row show one holder per
    address, or ``timeout`` seconds after ``origin`` (``time.monotonic()``)."""
    wanted = list(wanted)
    seen = Watch(snapshot(cluster, nodes, wanted, origin), stable)
    while not seen.done() and time.monotonic() - origin <= timeout:
        time.sleep(max(0.0, period - seen.last.span))
        seen.observe(snapshot(cluster, nodes, wanted, origin))
    return seen.result()


def transitions(logs: dict[str, str], names: set[str]) -> dict[str, list[dict[str, str]]]:
    """VirtualIP name → its state transitions in the speakers' logs (``node → log text``),
    in time order: time, node, previous, state, reason."""
    found: dict[str, list[dict[str, str]]] = {name: [] for name in names}
    for node, text in logs.items():
        for line in text.splitlines():
            start = line.find("{")
            if start < 0 or '"previous"' not in line:
                continue
            try:
                entry = json.loads(line[start:])
            except ValueError:
                continue
            if entry.get("virtualip") in found and "state" in entry:
                move = {k: str(entry.get(k)) for k in ("time", "previous", "state", "reason")}
                found[entry["virtualip"]].append(move | {"node": node})
    return {name: sorted(moves, key=lambda m: m["time"]) for name, moves in found.items()}
