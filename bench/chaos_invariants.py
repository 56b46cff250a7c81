"""The five invariants of a chaos run, judged from the observer's records only.

Pure functions over what :mod:`chaos_observe` recorded (monotonic seconds): the ``ip
addr`` samples, the client's answers, the decoded capture, the daemons' exits and logs,
and the fault timeline. Nothing a speaker says about itself is used, except the moment
a restarted daemon first logs a state, which marks the end of a restart fault's heal.

1. **single holder after heal** — between a heal and the next fault, a double holding
   (one that lasted through the heal, or a new one such as a pre-emption's handover) is
   *proven* (both holders read holding the VIP) no later than ``interval +
   RELEASE_MARGIN + slack`` after the heal (or after it began, in a calm). RFC 9568
   §6.4.3: a master releases only on receiving a higher-priority advertisement, and the
   winner sends its next one at most one interval after the heal; the margin is the
   loser's receipt, state change and netlink delete. The reading that first shows a
   single holder comes up to one polling period later than the release itself, so the
   end of a double holding is taken from the last reading that still shows it, never
   from the poll's resolution;
2. **bounded client gap** — no gap between two answered probes longer than
   Master_Down_Interval(highest priority among the nodes the fault spares) + 100 ms,
   plus the arbiter's detection time for a ``gateway`` fault (the client *is* the
   gateway there, so it cannot reach the master until the arbiter gives up), plus
   ``slack``. With one fault at a time, at least one eligible node always exists;
3. **no stale VIP** — a node not under a fault (nor within ``interval + poll + 0.25 s +
   slack`` of its heal) that holds a VIP sends advertisements for its VRID with a
   non-zero priority: the capture shows one within two intervals before or one interval
   after the reading (plus the same tolerance);
4. **rightful holder at the end** — after the last heal and a settle time: a pre-empting
   VIP is held by its highest-priority node alone, a non-pre-empting one by exactly one
   node, and the client's last answers come from that node;
5. **no crash** — no daemon exits unless a fault stopped it, and no log holds a traceback.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos_daemons import arbiter_detection
from chaos_observe import PROBE_PERIOD, Exit, HoldSample, NeighbourEvent, SchedSample, WireFrame
from chaos_schedule import FaultKind, VipPlan
from chaos_takeovers import Takeover, takeovers
from gaps import Answer, master_down_interval

CLIENT_MARGIN = 0.1  # the "+ 100 ms" of invariant 2
# Invariant 1: from the winner's advertisement reaching the loser to the loser's address gone
# (socket wake-up, the state machine, one RTM_DELADDR) on a loaded 2-core host, plus the
# skew of the ``ip addr`` reading (its instant is the middle of a ~10-30 ms listing).
RELEASE_MARGIN = 0.05
# A fault that starts this soon after a VIP's last answer caused the gap that follows: the
# client probes every PROBE_PERIOD, so at most one probe more went out before it struck.
CAUSE_LAG = 2 * PROBE_PERIOD
CRASH_PATTERNS = re.compile(r"Traceback|Segmentation fault|exited due to signal (6|11)\b")


@dataclass(frozen=True)
class FaultWindow:
    """A fault as the judge needs it: what, where, and when it started and finished healing."""

    label: str
    kind: FaultKind
    nodes: tuple[str, ...]
    started: float
    healed: float
    next_started: float  # the next fault's start, or the end of the observation


@dataclass(frozen=True)
class Violation:
    invariant: int
    at: float
    vip: str | None
    fault: str
    detail: str
    excerpt: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gap:
    vip: str
    start: float
    length: float
    kind: str  # the fault kind it falls under, or "calm"
    fault: str
    bound: float

    @property
    def share(self) -> float:
        """The gap as a share of its bound: how near it came to breaking invariant 2.

        The worst gap of a fault kind is the one with the largest share, and it is compared
        as that share (issue 14: "worst gap per fault kind against its bound"). Lengths alone
        compare gaps under different bounds: the bound holds the VIP's Skew_Time, so a lower
        priority's Master_Down is longer (thirteenth pass, 1 s: keepvip's worst ``link`` gap,
        3,360 ms of a 3,436 ms bound, read as 216 ms worse than keepalived's 3,144 ms of
        3,202 ms, which came nearer its bound).
        """
        return self.length / self.bound


@dataclass(frozen=True)
class Window:
    """A time when two or more nodes held one VIP (a split-brain window, as ``ip addr`` saw it).

    ``end`` is the first reading that no longer shows two holders; ``proven_end`` the last
    instant at which readings of two nodes both showed it (each holder's latest reading
    that showed the VIP; the older of the two), which is what invariant 1 judges: the
    release happened somewhere between the two, and only the earlier one is a fact.
    """

    vip: str
    start: float
    end: float
    nodes: frozenset[str]
    proven_end: float = 0.0

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass
class Verdict:
    violations: list[Violation] = field(default_factory=list)
    worst_gaps: dict[str, Gap] = field(default_factory=dict)  # per fault kind (and "calm")
    windows: list[Window] = field(default_factory=list)
    host_stalls: list[tuple[Gap, str]] = field(default_factory=list)  # gaps the observer could not blame
    # Double holdings (invariant 1) that the holders' run-queue wait covers: the daemon was
    # runnable and the host gave it no CPU, which no VRRP implementation can cure.
    cpu_starved: list[tuple[Violation, str]] = field(default_factory=list)
    # The VRRP processes' run-queue wait over the observation: (total, worst within one second).
    cpu_waits: tuple[float, float] = (0.0, 0.0)
    # Every Master_Down takeover on the wire, against its deadline (chaos_takeovers).
    takeovers: list[Takeover] = field(default_factory=list)

    def by_invariant(self, number: int) -> list[Violation]:
        return [v for v in self.violations if v.invariant == number]


@dataclass(frozen=True)
class Judge:
    """Everything fixed about a run that the checks need."""

    vips: tuple[VipPlan, ...]
    interval: float
    poll: float
    slack: float
    node_ips: Mapping[str, str]
    node_macs: Mapping[str, str]

    # -- helpers ----------------------------------------------------------------------------------

    def node_of(self, mac: str, ip: str) -> str:
        for node, value in self.node_macs.items():
            if value == mac:
                return node
        return next((node for node, value in self.node_ips.items() if value == ip), mac or ip)

    def excerpt(
        self,
        frames: Sequence[WireFrame],
        vip: VipPlan,
        at: float,
        origin: float,
        *,
        until: float | None = None,
        neighbours: Sequence[NeighbourEvent] = (),
    ) -> tuple[str, ...]:
        """The capture from two intervals before ``at`` to one after ``until`` (default ``at``):
        adverts of the VIP's VRID and ARPs for its address, runs of identical frames folded,
        and the client's neighbour entry for the VIP changing (to which node it sent)."""
        begin = at - 2 * self.interval - 0.3
        end = (at if until is None else until) + self.interval + 0.3
        lines_at: list[tuple[float, str]] = []
        for f in frames:
            if begin <= f.at <= end and (f.vrid == vip.vrid or f.arp_ip == vip.ip):
                who = self.node_of(f.mac, f.source)
                what = f"ARP {f.arp_ip} is-at" if f.vrid is None else f"VRRP vrid {f.vrid} prio {f.priority}"
                lines_at.append((f.at, f"{who:6} {what}"))
        standing = [n for n in neighbours if n.ip == vip.ip and n.at < begin]
        if standing:  # the client's entry as the excerpt opens (the last change before it)
            n = standing[-1]
            to = self.node_of(n.mac, "") if n.mac else "no MAC"
            lines_at.append(
                (begin, f"client neighbour {n.ip} -> {to} {n.state} (since {n.at - origin:.3f}s)")
            )
        for n in neighbours:
            if begin <= n.at <= end and n.ip == vip.ip:
                to = self.node_of(n.mac, "") if n.mac else "no MAC"
                lines_at.append((n.at, f"client neighbour {n.ip} -> {to} {n.state}"))
        lines_at.sort(key=lambda item: item[0])
        runs: list[list[Any]] = []  # [first time, last time, count, text]
        for when, text in lines_at:
            same = runs[-1] if runs and runs[-1][3] == text else None
            if same is not None:
                same[1], same[2] = when, same[2] + 1
            else:
                runs.append([when, when, 1, text])
        lines = [
            f"{first - origin:9.3f}s {text}" + (f" ×{count} until {last - origin:.3f}s" if count > 1 else "")
            for first, last, count, text in runs[:24]
        ]
        return tuple(lines) or ("(no VRRP or ARP frame for this VIP on the bridge around that time)",)

    def gap_bound(self, vip: VipPlan, window: FaultWindow | None) -> float:
        spared = [p for n, p in vip.priorities.items() if window is None or window.kind is FaultKind.PARTITION
                  or n not in window.nodes]  # fmt: skip
        bound = master_down_interval(self.interval, max(spared)) + CLIENT_MARGIN
        if window is not None and window.kind is FaultKind.GATEWAY:
            bound += arbiter_detection()
        return bound


def window_at(windows: Sequence[FaultWindow], at: float) -> FaultWindow | None:
    """The fault whose span (start → next fault's start) holds ``at``."""
    return next((w for w in windows if w.started <= at < w.next_started), None)


def _gap_window(
    j: Judge, vip: VipPlan, windows: Sequence[FaultWindow], before: float, after: float
) -> tuple[FaultWindow | None, float]:
    """The fault a client gap (last answer sent at ``before``, next at ``after``) is filed
    under, and the bound it is judged by.

    Usually the one whose span holds the last answer. But the last answer before a fault
    is sent a probe period or less before the fault starts, so a gap the fault itself
    causes begins in the span of the fault *before* it (issue 14: a 2.2 s gap of a
    ``gateway`` fault, bound 3.4 s, was judged as the previous ``cut``'s, bound 0.4 s).
    A gap that a later fault's start cuts into may be that fault's, as long as the silence
    before that start fits the bound of the span it began in (else the gap had already
    broken it there); of the two faults' bounds the larger is taken, since either may have
    caused the gap and the judge must not blame the daemon for the other. The gap is filed
    under the later fault when its bound is at least as large, or when it began within
    `CAUSE_LAG` of the last answer: then the VIP was answering until the fault struck, so
    that fault is the cause (the fifth pass, 1 s: a ``cut``'s gap 2 ms after the last
    answer was filed under the ``starve`` healed 5 s before it; the seventh, 1 s: a
    ``cut``'s 3.1 s gap, 14 ms after the last answer, under the ``check`` healed 5.4 s
    before — keepvip's "worst ``check`` gap", against keepalived's 260 ms).
    """
    window = window_at(windows, before)
    later = [w for w in windows if before < w.started < after]
    bound = j.gap_bound(vip, window)
    if later and later[-1].started - before <= bound + j.slack:
        cause = later[-1]
        cause_bound = j.gap_bound(vip, cause)
        if cause_bound >= bound:
            return cause, cause_bound
        if cause.started - before <= CAUSE_LAG:
            return cause, bound
    return window, bound


def split_windows(vip: VipPlan, samples: Sequence[HoldSample]) -> list[Window]:
    """Sweep the ``ip addr`` samples: when did two or more nodes hold ``vip`` at once."""
    holding: set[str] = set()
    seen: dict[str, float] = {}  # node -> its latest reading that showed the VIP
    found: list[Window] = []
    opened: tuple[float, set[str]] | None = None
    proven = 0.0
    for sample in samples:
        if vip.ip in sample.held:
            holding.add(sample.node)
            seen[sample.node] = sample.at
        else:
            holding.discard(sample.node)
        if len(holding) >= 2:
            if opened is None:
                opened = (sample.at, set(holding))
            opened[1].update(holding)
            # Two holders are a fact up to the older of the two latest readings that showed them.
            proven = max(proven, opened[0], sorted(seen[node] for node in holding)[-2])
        elif opened is not None:
            found.append(Window(vip.ip, opened[0], sample.at, frozenset(opened[1]), proven))
            opened, proven = None, 0.0
    if opened is not None and samples:
        found.append(Window(vip.ip, opened[0], samples[-1].at, frozenset(opened[1]), proven))
    return found


@dataclass(frozen=True)
class Observation:
    """What the observer recorded during one block (monotonic seconds)."""

    windows: Sequence[FaultWindow]
    samples: Sequence[HoldSample]  # sorted by time
    answers: Mapping[str, Sequence[Answer]]  # per VIP address
    frames: Sequence[WireFrame]
    exits: Sequence[Exit]
    logs: Mapping[str, str]  # per node
    observed: tuple[float, float]  # the first fault's start, the final reading
    final: Mapping[str, HoldSample]  # per node, the last reading
    controls: Mapping[str, Sequence[Answer]] = field(default_factory=dict)  # per node, its own address
    neighbours: Sequence[NeighbourEvent] = ()  # the client's neighbour table, every change
    sched: Sequence[SchedSample] = ()  # the VRRP processes' run-queue wait, sampled
    # Per VIP address, the send times of the probes nobody answered (absent: not recorded).
    unanswered: Mapping[str, Sequence[float]] = field(default_factory=dict)


def cpu_wait(sched: Sequence[SchedSample], node: str, start: float, end: float) -> float:
    """Seconds ``node``'s VRRP process spent runnable without a CPU between ``start`` and ``end``.

    Only what the samples inside the span prove (from the first to the last sample in it,
    per process: a restart changes the pid), so the figure errs low, against the daemon.
    """
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for sample in sched:
        if sample.node == node and start <= sample.at <= end:
            first.setdefault(sample.pid, sample.waited)
            last[sample.pid] = sample.waited
    return sum(last[pid] - first[pid] for pid in first)


def judge(j: Judge, obs: Observation) -> Verdict:
    """Check invariants 1-5 and gather the gap and split-brain figures."""
    verdict = Verdict()
    _single_holder(j, obs, verdict)
    _gaps(j, obs, verdict)
    _stale(j, obs, verdict)
    _rightful(j, obs, verdict)
    _crashes(obs, verdict)
    verdict.cpu_waits = _cpu_waits(obs)
    verdict.takeovers = takeovers(obs.frames, j.interval, {vip.vrid: vip.ip for vip in j.vips})
    verdict.violations.sort(key=lambda v: (v.invariant, v.at))
    return verdict


def _cpu_waits(obs: Observation) -> tuple[float, float]:
    """All VRRP processes' run-queue wait over the observation, and the most any one of them
    waited within one second (how starved the daemons were, whatever the invariants say)."""
    start, end = obs.observed
    nodes = sorted({s.node for s in obs.sched})
    total = sum(cpu_wait(obs.sched, node, start, end) for node in nodes)
    worst = 0.0
    for node in nodes:
        mine = [s for s in obs.sched if s.node == node and start <= s.at <= end]
        j = 0
        for i, sample in enumerate(mine):
            j = max(j, i)
            while j + 1 < len(mine) and mine[j + 1].at - sample.at <= 1.0:
                j += 1
            if mine[j].pid == sample.pid:
                worst = max(worst, mine[j].waited - sample.waited)
    return total, worst


def _single_holder(j: Judge, obs: Observation, verdict: Verdict) -> None:
    """A double holding proven past ``allow`` after the last heal (or after it began, in a calm)."""
    windows, frames, observed = obs.windows, obs.frames, obs.observed
    allow = j.interval + RELEASE_MARGIN + j.slack
    calm = [("before the first fault", observed[0], windows[0].started if windows else observed[1])]
    calm += [(w.label, w.healed, w.next_started) for w in windows]
    for vip in j.vips:
        found = split_windows(vip, obs.samples)
        verdict.windows.extend(found)
        for window in found:
            for label, start, end in calm:
                if not (window.start < end and window.end > start):
                    continue
                since = max(window.start, start)
                lasted = window.proven_end - since
                if lasted <= allow:
                    continue
                waits = {node: cpu_wait(obs.sched, node, since, window.proven_end) for node in window.nodes}
                waited = ", ".join(f"{node} {w * 1000:.0f} ms" for node, w in sorted(waits.items()))
                violation = Violation(
                    1,
                    since - observed[0],
                    vip.ip,
                    label,
                    f"{', '.join(sorted(window.nodes))} held {vip.ip} at once for "
                    f"{lasted * 1000:.0f} ms after the heal, as the last double reading "
                    f"proves (allowed: {allow * 1000:.0f} ms; first single reading after "
                    f"{(window.end - since) * 1000:.0f} ms)"
                    + (f"; run-queue wait: {waited}" if obs.sched else ""),
                    j.excerpt(frames, vip, since + allow, observed[0], neighbours=obs.neighbours),
                )
                starved = max(waits.values(), default=0.0)
                if starved >= lasted - allow:
                    why = (
                        f"a holder's daemon waited {starved * 1000:.0f} ms for a CPU (runnable, not running)"
                    )
                    verdict.cpu_starved.append((violation, why))
                else:
                    verdict.violations.append(violation)


def _gaps(j: Judge, obs: Observation, verdict: Verdict) -> None:
    windows, frames, observed = obs.windows, obs.frames, obs.observed
    for vip in j.vips:
        seen = [a for a in obs.answers.get(vip.ip, ()) if observed[0] <= a.sent <= observed[1]]
        edges = [observed[0], *(a.sent for a in seen), observed[1]]
        for before, after in itertools.pairwise(edges):
            length = after - before
            if length <= 0.1 or _all_answered(obs, vip.ip, before, after):
                continue
            window, bound = _gap_window(j, vip, windows, before, after)
            kind = str(window.kind) if window is not None else "calm"
            label = window.label if window is not None else "no fault"
            gap = Gap(vip.ip, before, length, kind, label, bound)
            worst = verdict.worst_gaps.get(kind)
            if worst is None or gap.share > worst.share:
                verdict.worst_gaps[kind] = gap
            if length > bound + j.slack:
                allowed = bound + j.slack
                why = (
                    _stalled_holder(obs, seen, before, after, window, allowed=allowed)
                    or _shaped_master(j, obs, vip, seen, (before, after), window=window)
                    or _blind(obs, before, after, allowed)
                    or _unprobed(obs, vip.ip, before, after, allowed)
                )
                if why is not None:
                    verdict.host_stalls.append((gap, why))
                    continue
                verdict.violations.append(
                    Violation(
                        2,
                        before - observed[0],
                        vip.ip,
                        label,
                        f"the client got no answer from {vip.ip} for {length * 1000:.0f} ms "
                        f"(bound {bound * 1000:.0f} ms)",
                        j.excerpt(frames, vip, before, observed[0], until=after, neighbours=obs.neighbours),
                    )
                )


def _stalled_holder(
    obs: Observation,
    seen: Sequence[Answer],
    before: float,
    after: float,
    window: FaultWindow | None,
    *,
    allowed: float = 0.0,
) -> str | None:
    """The node that answered before a gap and the one that answered after it (often the same),
    if their *own* addresses (the control probes) went unanswered through the gap too while no
    fault touched them: the host or its services stalled (or the client did), which no VRRP
    implementation can see or cure.

    "Through the gap" is: each node's longest control silence inside the gap, taken together,
    leaves no more of the gap than ``allowed`` (the bound) — as :func:`_blind` judges all
    nodes at once. One answer the loaded service squeezed out in the middle of a 3 s stall
    does not make the rest of the stall VRRP's (issue 14: gaps of 2.5 s on VIPs whose holder
    advertised throughout); a node that answered every half second was there, though.

    Two nodes count when the VIP moved during the gap (issue 14, seventh pass: node2's
    services stalled for 15.9 s while it held the VIP; the VIP moved to node3, whose own
    services stalled from 5.5 s into that until 0.2 s after node2's came back: each node
    alone left part of the gap unexplained, together they covered all of it). The time VRRP
    answers for is then the time both nodes answered on their own addresses. A node the
    gap's fault acts on is silent by design: its silence explains nothing (the other
    holder's still may: a master whose services stalled until the restarted node took over).
    """
    last, first = _answerers(seen, before, after)
    if last is None or first is None:
        return None
    holders = [last] if last == first else [last, first]
    silences: dict[str, tuple[float, float]] = {}  # per holder whose silence counts: its longest
    for node in holders:
        control = obs.controls.get(node)
        if control is None or (window is not None and node in window.nodes):
            continue  # a fault on the node silences it by design: that is the fault's, not a stall
        inside = [a.sent for a in control if before + 0.1 < a.sent < after - 0.1]
        silences[node] = max(itertools.pairwise([before, *inside, after]), key=lambda pair: pair[1] - pair[0])
    covered = _covered(list(silences.values()))
    if covered <= 0.2 or (after - before) - covered > allowed:
        return None
    if len(silences) == 2:
        return (
            f"{last}'s and {first}'s own addresses (the VIP moved between them) went unanswered "
            f"for {covered * 1000:.0f} ms of it between them"
        )
    [stalled] = silences
    if covered >= after - before:
        return f"{stalled}'s own address went unanswered too"
    return f"{stalled}'s own address went unanswered for {covered * 1000:.0f} ms of it"


def _shaped_master(
    j: Judge,
    obs: Observation,
    vip: VipPlan,
    seen: Sequence[Answer],
    gap: tuple[float, float],
    *,
    window: FaultWindow | None,
) -> str | None:
    """The link's, not VRRP's: a gap on a master whose link a ``shape`` fault throttled, while
    it held the VIP (every ``ip addr`` reading of it) and advertised it (never silent for
    three intervals, less than any Master_Down_Interval), answering before and after.

    Its backups heard it and rightly kept it master; the token bucket dropped the client's
    traffic to it (issue 14, seventh pass, seed 16 at 100 ms: 7 VIPs on the shaped node drew
    ~350 probe connections a second through a 1 Mbit/s bucket; 460-500 ms gaps against bounds
    of 410-450 ms, keepvip's and keepalived's alike, while the node's own address answered
    some probes and not others). No VRRP implementation moves a VIP off a master whose
    advertisements arrive. A master that advertised without holding the VIP stays a violation.
    """
    before, after = gap
    if window is None or window.kind is not FaultKind.SHAPE:
        return None
    last, first = _answerers(seen, before, after)
    if last is None or last != first or last not in window.nodes:
        return None
    readings = [s for s in obs.samples if s.node == last and before <= s.at <= after]
    if not readings or any(vip.ip not in s.held for s in readings):
        return None
    ip = j.node_ips.get(last)
    sent = [
        f.at
        for f in obs.frames
        if f.source == ip and f.vrid == vip.vrid and f.priority and before <= f.at <= after
    ]
    if max(b - a for a, b in itertools.pairwise([before, *sent, after])) >= 3 * j.interval:
        return None
    return f"{last}'s link was shaped; it held {vip.ip} and advertised it throughout"


def _answerers(seen: Sequence[Answer], before: float, after: float) -> tuple[str | None, str | None]:
    """The nodes whose answers for the VIP bracket a gap: the last before it, the first after."""
    last = next((a.node for a in reversed(seen) if a.sent <= before), None)
    first = next((a.node for a in seen if a.sent >= after), None)
    return last, first


def _covered(spans: Sequence[tuple[float, float]]) -> float:
    """Seconds the union of ``spans`` (start, end) covers."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _blind(obs: Observation, before: float, after: float, allowed: float) -> str | None:
    """Whether the client was blind for most of a gap: no node answered on its own address
    (all control probes silent at once — the client or the whole machine stalled) for so long
    that the rest of the gap fits in the bound."""
    merged = sorted(a.sent for answers in obs.controls.values() for a in answers if before < a.sent < after)
    if not obs.controls:
        return None
    edges = [before, *merged, after]
    blind = max(b - a for a, b in itertools.pairwise(edges))
    if blind > 0.2 and (after - before) - blind <= allowed:
        return f"no node answered on its own address for {blind * 1000:.0f} ms of it"
    return None


def _all_answered(obs: Observation, address: str, before: float, after: float) -> bool:
    """Whether the client sent ``address`` no probe that went unanswered between two answers:
    then no request failed, and the stretch is the prober's own pause, not a gap.

    The prober stamps each probe when it creates it; a prober that got no CPU for a while
    creates the missed probes in a burst when it runs again, all stamped with that moment and
    all answered (issue 14, twelfth pass: keepvip's "worst ``shape`` gap", 132 and 112 ms on
    a VIP its holder kept answering throughout, each ended by five probes sent within 1 ms).
    Not decidable for runs recorded before the prober reported its unanswered probes.
    """
    if address not in obs.unanswered:
        return False
    return not any(before < sent < after for sent in obs.unanswered[address])


def _unprobed(obs: Observation, address: str, before: float, after: float, allowed: float) -> str | None:
    """Whether the VIP's own prober sent nothing for most of a gap: a gap in which the client
    did not ask cannot be blamed on the VIP (issue 14, fifth pass: a 420 ms gap, bound 402 ms,
    while the node the client was sent to held the VIP, could not be told apart from a stalled
    prober). The prober prints its unanswered probes too, so a stretch without a single send
    time is its own stall (the process got no CPU), not silence from the VIP.
    """
    if address not in obs.unanswered:
        return None  # recorded before the prober reported its unanswered probes
    sends = sorted(
        [a.sent for a in obs.answers.get(address, ()) if before < a.sent < after]
        + [sent for sent in obs.unanswered[address] if before < sent < after]
    )
    quiet = max(b - a for a, b in itertools.pairwise([before, *sends, after]))
    if quiet > 0.1 and (after - before) - quiet <= allowed:
        return f"the client sent {address} no probe for {quiet * 1000:.0f} ms of it"
    return None


def _stale(j: Judge, obs: Observation, verdict: Verdict) -> None:
    windows, samples = obs.windows, obs.samples
    tolerance = 0.25 + j.poll + j.slack
    grace = j.interval + tolerance
    adverts: dict[tuple[str, int], list[float]] = defaultdict(list)
    for f in obs.frames:
        if f.vrid is not None and f.priority:
            adverts[(f.source, f.vrid)].append(f.at)
    by_ip = {vip.ip: vip for vip in j.vips}
    open_: dict[tuple[str, str], float] = {}  # (node, vip) -> first stale reading

    def exempt(node: str, at: float) -> bool:
        return any(node in w.nodes and w.started <= at <= w.healed + grace for w in windows)

    def advertised(node: str, vip: VipPlan, at: float) -> bool:
        times = adverts.get((j.node_ips[node], vip.vrid), [])
        i = bisect.bisect_left(times, at - 2 * j.interval - tolerance)
        return i < len(times) and times[i] <= at + j.interval + tolerance

    for sample in samples:
        for ip, vip in by_ip.items():
            key = (sample.node, ip)
            stale = (
                ip in sample.held
                and not exempt(sample.node, sample.at)
                and not advertised(sample.node, vip, sample.at)
            )
            if stale and key not in open_:
                open_[key] = sample.at
            elif not stale and key in open_:
                _report_stale(j, obs, verdict, vip=vip, node=sample.node, start=open_.pop(key), end=sample.at)
    for (node, ip), start in open_.items():
        _report_stale(j, obs, verdict, vip=by_ip[ip], node=node, start=start, end=samples[-1].at)


def _report_stale(
    j: Judge, obs: Observation, verdict: Verdict, *, vip: VipPlan, node: str, start: float, end: float
) -> None:
    origin = obs.observed[0]
    window = window_at(obs.windows, start)
    verdict.violations.append(
        Violation(
            3,
            start - origin,
            vip.ip,
            window.label if window is not None else "no fault",
            f"{node} held {vip.ip} for {max(end - start, 0) * 1000:.0f} ms without advertising VRID "
            f"{vip.vrid}",
            j.excerpt(obs.frames, vip, start, origin, neighbours=obs.neighbours),
        )
    )


def _rightful(j: Judge, obs: Observation, verdict: Verdict) -> None:
    answers, final, frames, observed = obs.answers, obs.final, obs.frames, obs.observed
    for vip in j.vips:
        holders = sorted(node for node, sample in final.items() if vip.ip in sample.held)
        last = {a.node for a in answers.get(vip.ip, ())[-10:]}
        if vip.preempt:
            ok = holders == [vip.rightful()]
            wanted = f"{vip.rightful()} alone (pre-empting, priorities {vip.priorities})"
        else:
            ok = len(holders) == 1
            wanted = "exactly one node (non-pre-empting)"
        if ok and last != set(holders):
            ok = False
        if not ok:
            verdict.violations.append(
                Violation(
                    4,
                    observed[1] - observed[0],
                    vip.ip,
                    "after the last heal",
                    f"{vip.ip} held by {holders or 'nobody'}, the client's last answers from "
                    f"{sorted(last) or 'nobody'}; wanted {wanted}",
                    j.excerpt(frames, vip, observed[1], observed[0], neighbours=obs.neighbours),
                )
            )


def _crashes(obs: Observation, verdict: Verdict) -> None:
    origin = obs.observed[0]
    for ended in obs.exits:
        window = window_at(obs.windows, ended.at)
        verdict.violations.append(
            Violation(
                5,
                ended.at - origin,
                None,
                window.label if window is not None else "no fault",
                f"the daemon on {ended.node} exited (code {ended.code}) without a fault stopping it",
            )
        )
    for node, text in obs.logs.items():
        lines = text.splitlines()
        for number, line in enumerate(lines):
            if CRASH_PATTERNS.search(line):
                verdict.violations.append(
                    Violation(
                        5, float("nan"), None, f"{node} log line {number + 1}",
                        f"crash trace in {node}'s log", tuple(x[:300] for x in lines[number: number + 8]),
                    )
                )  # fmt: skip
