"""What this node should run: VirtualIPs in, one `RouterPlan` per selected VirtualIP out.

Pure (no I/O): the same function serves the standalone file source and the Kubernetes
source, and it is what makes reloads flap-free — the runtime compares old and new plans
and touches only the routers whose plan changed.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address

from keepvip.api.model import Arbiter, HealthCheck, IPInterface, TrackedInterface, VirtualIP
from keepvip.api.text import bare, shown
from keepvip.inet import IPAddress, vrrp_group
from keepvip.speaker.vrrp.constants import ChecksumMode

SecretKey = tuple[str, str, str]  # (namespace, name, key)


class PlanProblem(enum.Enum):
    """Why a VirtualIP that selects this node is not run (a named, logged reason)."""

    MISSING_VRID = "missing_vrid"  # standalone: nobody allocates, spec.vrrp.vrid is required
    NOT_ALLOCATED = "not_allocated"  # kubernetes: the operator has not written status.vrid yet
    MISSING_SECRET = "missing_secret"  # noqa: S105 - a reason name: authentication.secretRef unreadable
    EMPTY_PASSWORD = "empty_password"  # noqa: S105 - a reason name: the Secret's PASS value is empty
    DUPLICATE_ROUTER = "duplicate_router"  # another VirtualIP already uses this (group, vrid)
    INVALID_STATUS = "invalid_status"  # kubernetes: status.vrid / multicastGroup break the spec's rules
    PLAN_FAILED = "plan_failed"  # planning this one VirtualIP raised: only it is affected


@dataclass(frozen=True)
class NodeIdentity:
    """This node as VirtualIPs see it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RouterPlan:
    """Everything one node needs to run one VirtualIP's virtual router."""

    name: str
    addresses: tuple[IPInterface, ...]
    interface: str | None  # None: the interface whose subnet holds the first address
    version: int
    vrid: int
    group: IPAddress | None  # multicast destination; None with unicast peers
    unicast_peers: tuple[IPAddress, ...]
    interval_cs: int
    checksum: ChecksumMode
    priority: int
    preempt: bool
    preempt_delay: float
    password: bytes | None  # VRRPv2 PASS
    health_checks: tuple[HealthCheck, ...]
    arbiter: Arbiter | None
    track_interfaces: tuple[TrackedInterface, ...] = ()  # hook (track-sync)
    sync_group: str | None = None  # hook (track-sync)

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.addresses[0].version

    @property
    def router_key(self) -> tuple[int, str, int]:
        """What identifies a virtual router on a LAN: family, destination, VRID."""
        destination = str(self.group) if self.group is not None else "unicast"
        return (self.family, destination, self.vrid)


@dataclass(frozen=True)
class Skipped:
    """A VirtualIP that selects this node but cannot run, and why."""

    name: str
    problem: PlanProblem
    detail: str


def _vrid_and_group(vip: VirtualIP, use_status: bool) -> tuple[int | None, IPAddress | None]:
    """The (vrid, group) pair: from spec when pinned, else the operator's status."""
    vrrp = vip.spec.vrrp
    status = vip.status
    vrid = vrrp.vrid
    group_text = vrrp.multicast_group
    if use_status and status is not None:
        vrid = vrid if vrid is not None else status.vrid
        group_text = group_text if group_text is not None else status.multicast_group
    if vrid is None:
        return None, None
    if vrrp.unicast_peers:
        return vrid, None
    standard = vrrp_group(vip.spec.family)
    if group_text in (None, "standard"):
        return vrid, standard
    return vrid, ip_address(group_text)


def desired_router(
    vip: VirtualIP,
    node: NodeIdentity,
    secrets: Mapping[SecretKey, bytes],
    *,
    use_status_allocation: bool,
) -> RouterPlan | Skipped | None:
    """The plan for one VirtualIP on this node; None when it does not select the node."""
    spec = vip.spec
    if not spec.selects(node.labels):
        return None
    vrid, group = _vrid_and_group(vip, use_status_allocation)
    if vrid is None:
        if use_status_allocation:
            return Skipped(vip.name, PlanProblem.NOT_ALLOCATED, "waiting for the operator to allocate a VRID")
        return Skipped(vip.name, PlanProblem.MISSING_VRID, "spec.vrrp.vrid is required in standalone mode")
    password: bytes | None = None
    auth = spec.vrrp.authentication
    if auth is not None:
        ref = auth.secret_ref
        found = secrets.get((ref.namespace, ref.name, ref.key))
        if found is None:
            return Skipped(
                vip.name,
                PlanProblem.MISSING_SECRET,
                f"spec.vrrp.authentication.secretRef: key {shown(ref.key)} of secret "
                f"{bare(ref.namespace)}/{bare(ref.name)} not found",
            )
        problem = auth.password_problem(found)
        if problem is not None:  # empty: PASS with eight NUL bytes would mean no authentication
            detail = f"spec.vrrp.authentication.secretRef: {problem}"
            return Skipped(vip.name, PlanProblem.EMPTY_PASSWORD, detail)
        password = found[:8]
    return RouterPlan(
        name=vip.name,
        addresses=spec.addresses,
        interface=spec.interface,
        version=spec.vrrp.version,
        vrid=vrid,
        group=group,
        unicast_peers=spec.vrrp.unicast_peers,
        interval_cs=spec.vrrp.interval_centiseconds,
        checksum=ChecksumMode(spec.vrrp.checksum.value),
        priority=spec.priority_for(node.name, node.labels),
        preempt=spec.preempt,
        preempt_delay=spec.preempt_delay.total_seconds(),
        password=password,
        health_checks=spec.health_checks,
        arbiter=spec.arbiter,
        track_interfaces=spec.track_interfaces,  # hook (track-sync)
        sync_group=spec.sync_group,  # hook (track-sync)
    )


def _unaccepted(
    vip: VirtualIP, node: NodeIdentity, pending: Collection[str], invalid_status: Mapping[str, str]
) -> Skipped | None:
    """Kubernetes: a selecting VirtualIP the operator has not accepted, or whose status was refused.

    Not even a pinned VRID runs before the operator accepted the generation (issue 10);
    a refused status counts as not allocated, but the node reports why.
    """
    if not vip.spec.selects(node.labels):
        return None
    refusal = invalid_status.get(vip.name)
    if refusal is not None:
        return Skipped(vip.name, PlanProblem.INVALID_STATUS, refusal)
    if vip.name in pending:
        return Skipped(vip.name, PlanProblem.NOT_ALLOCATED, "waiting for the operator to accept it")
    return None


def desired_routers(
    vips: Sequence[VirtualIP],
    node: NodeIdentity,
    secrets: Mapping[SecretKey, bytes],
    *,
    use_status_allocation: bool,
    pending: Collection[str] = (),
    invalid_status: Mapping[str, str] | None = None,
) -> tuple[dict[str, RouterPlan], list[Skipped]]:
    """Plans for every VirtualIP selecting this node, and the ones that cannot run.

    ``pending`` and ``invalid_status`` (kubernetes): VirtualIPs not accepted by the
    operator, and refused statuses (see :mod:`keepvip.speaker.sources.status_gate`).
    One VirtualIP that cannot be planned (whatever it raises) is skipped with a reason;
    the others are planned as usual (issue 9: one bad object never costs the others).
    """
    plans: dict[str, RouterPlan] = {}
    skipped: list[Skipped] = []
    owners: dict[tuple[int, str, int], str] = {}
    refused = invalid_status or {}
    for vip in sorted(vips, key=lambda v: v.name):
        try:
            outcome: RouterPlan | Skipped | None = None
            if use_status_allocation:
                outcome = _unaccepted(vip, node, pending, refused)
            if outcome is None:
                outcome = desired_router(vip, node, secrets, use_status_allocation=use_status_allocation)
        except Exception as error:
            skipped.append(Skipped(vip.name, PlanProblem.PLAN_FAILED, f"{type(error).__name__}: {error}"))
            continue
        if outcome is None:
            continue
        if isinstance(outcome, Skipped):
            skipped.append(outcome)
            continue
        other = owners.get(outcome.router_key)
        if other is not None:
            skipped.append(
                Skipped(
                    vip.name,
                    PlanProblem.DUPLICATE_ROUTER,
                    f"VirtualIP {other!r} already uses VRID {outcome.vrid} on this destination",
                )
            )
            continue
        owners[outcome.router_key] = vip.name
        plans[vip.name] = outcome
    return plans, skipped
