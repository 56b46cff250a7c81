"""The chaos run's plan: which VIPs exist and which faults strike when, from one seed.

Everything random in a chaos run is drawn here, from one ``random.Random(seed)``, so a
run is replayed exactly by giving the same seed, and keepvip and keepalived face the
*same* schedule (same VIPs, same priorities, same fault on the same node at the same
offset for the same time). Nothing here touches the network: :mod:`chaos_faults` acts
the plan out, :mod:`chaos_invariants` judges what the observers saw.

Faults are sequential: each one is healed, then the LAN is left quiet for a while before
the next. One fault at a time means at least two of the three nodes stay eligible
throughout, which is what invariant 2's "while at least one eligible node exists" needs
to be checkable without guessing; overlapping faults are a later extension.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from gaps import master_down_interval

NODES = ("node1", "node2", "node3")
FIRST_VIP_HOST = 101  # 198.18.0.101 ... (DESIGN.md test range)
PRIORITIES = tuple(range(50, 251, 10))  # distinct per VIP and node: the rightful master is never a tie


class FaultKind(enum.StrEnum):
    """The kinds of fault (the names appear in logs and in docs/reliability.md)."""

    KILL = "kill"  # SIGKILL the daemon; heal: start it again
    TERM = "term"  # SIGTERM the daemon (graceful stop); heal: start it again
    FREEZE = "freeze"  # SIGSTOP for longer than Master_Down; heal: SIGCONT
    LINK = "link"  # the node's eth0 down; heal: up
    CUT = "cut"  # the node's switch port leaves the bridge (its link stays up); heal: rejoins
    PARTITION = "partition"  # two nodes cannot reach each other, both reach the gateway
    GATEWAY = "gateway"  # the node cannot reach the gateway (the client), the nodes still meet
    CHECK = "check"  # the checked service stops on the node; heal: it starts again
    SHAPE = "shape"  # loss and delay on the node's link (a tight token bucket both ways)
    STARVE = "starve"  # the daemon's CPU capped at 2 % of one core (cgroup cpu quota)


RESTART_KINDS = frozenset({FaultKind.KILL, FaultKind.TERM})


@dataclass(frozen=True)
class VipPlan:
    """One VirtualIP / vrrp_instance: identical for both implementations."""

    index: int
    vrid: int
    address: str  # "198.18.0.101/24"
    priorities: dict[str, int]  # node -> base priority
    preempt: bool
    check_weight: int | None  # None: no health check; 0: failing = FAULT; <0: priority drop

    @property
    def name(self) -> str:
        return f"chaos-{self.index}"

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]

    def rightful(self) -> str:
        """The node with the highest priority (where a pre-empting VIP must end up)."""
        return max(self.priorities, key=lambda node: self.priorities[node])


@dataclass(frozen=True)
class FaultPlan:
    """One fault: what, on which node(s), when (seconds after the chaos starts), how long."""

    number: int
    kind: FaultKind
    nodes: tuple[str, ...]  # the node it strikes (two for a partition)
    at: float
    duration: float
    quiet: float  # the calm after the heal, before the next fault

    def label(self) -> str:
        return f"#{self.number} {self.kind}@{'+'.join(self.nodes)}"


@dataclass(frozen=True)
class Plan:
    seed: int
    interval: float
    vips: tuple[VipPlan, ...]
    faults: tuple[FaultPlan, ...]


def make_vips(rng: random.Random, count: int) -> tuple[VipPlan, ...]:
    """``count`` VIPs with mixed priorities, pre-emption on and off, and mixed health checks."""
    vips = []
    for index in range(1, count + 1):
        priorities = dict(zip(NODES, rng.sample(PRIORITIES, len(NODES)), strict=True))
        vips.append(
            VipPlan(
                index=index,
                vrid=index,
                address=f"198.18.0.{FIRST_VIP_HOST + index - 1}/24",
                priorities=priorities,
                preempt=rng.random() < 0.5,
                check_weight=rng.choice((None, 0, -100)),
            )
        )
    return tuple(vips)


def fault_duration(rng: random.Random, kind: FaultKind, interval: float, *, short: bool = False) -> float:
    """How long a fault lasts: a few Master_Down intervals; a freeze always outlives Master_Down.

    ``short`` (``--short-heals``, for 200 faults at 1 s on a 2-core machine): one to one and
    a half Master_Down intervals (at least 0.5 s), a freeze still past Master_Down. The
    random draws are the same, so the kinds and nodes of a seed's plan do not change.
    """
    down = master_down_interval(interval, 1)
    if kind is FaultKind.FREEZE:
        return down + rng.uniform(0.3, (0.5 if short else 2) * down)
    if short:
        return rng.uniform(max(0.5, down), max(0.6, 1.5 * down))
    return rng.uniform(max(0.5, down), max(3.0, 3 * down))


def make_plan(
    seed: int,
    interval: float,
    faults: int,
    vips: int,
    kinds: tuple[FaultKind, ...] = tuple(FaultKind),
    *,
    short: bool = False,
) -> Plan:
    """The seeded plan: VIPs, then ``faults`` faults drawn evenly from ``kinds``.

    ``short``: shorter faults (`fault_duration`) and a calm of Master_Down + 1 to 1.5 s
    instead of + 1 to 2.5 s (still past the checks' and the arbiter's rise of 2 × 1 s
    counted from the heal's first pass).
    """
    rng = random.Random(seed)  # noqa: S311 - reproducibility, not secrecy
    vip_plans = make_vips(rng, vips)
    down = master_down_interval(interval, 1)
    schedule = []
    at = 0.0
    for number in range(1, faults + 1):
        kind = rng.choice(kinds)
        nodes = tuple(sorted(rng.sample(NODES, 2))) if kind is FaultKind.PARTITION else (rng.choice(NODES),)
        duration = fault_duration(rng, kind, interval, short=short)
        # After a heal: one Master_Down to settle plus time for rise-2 checks (1 s interval).
        quiet = down + rng.uniform(1.0, 1.5 if short else 2.5)
        schedule.append(FaultPlan(number, kind, nodes, round(at, 3), round(duration, 3), round(quiet, 3)))
        at += duration + quiet
    return Plan(seed, interval, vip_plans, tuple(schedule))
