"""Which nodes' ``vrrp_instance``s are one virtual router.

keepalived has no notion of a cluster: each node declares its own instance, and the
instances that share an interface, a VRID and the virtual addresses form one router on
the wire. A VirtualIP describes that router once, so the converter must find them: two
instances join when their VRID and advertised address set are equal and their
interfaces agree (interfaces may be named differently per node; that is reported).
An instance nobody else declares becomes a VirtualIP of its own, with a warning that it
has no backup. Two routers that reuse one VRID on one interface with different addresses
are what keepalived logs as a configuration mismatch: the report names both.
"""

from __future__ import annotations

from dataclasses import dataclass

from keepvip.convert.keepalived import Instance, IPInterface, NodeConfig
from keepvip.convert.report import Outcome, Report


@dataclass(frozen=True)
class Member:
    """One node's instance of a virtual router."""

    node: NodeConfig
    instance: Instance


@dataclass(frozen=True)
class Router:
    """One virtual router: the instances of every node that takes part, in node order."""

    vrid: int
    addresses: tuple[IPInterface, ...]
    members: tuple[Member, ...]


def _key(instance: Instance) -> tuple[int, frozenset[IPInterface]]:
    assert instance.vrid is not None
    return instance.vrid, frozenset(a.address for a in instance.advertised)


def join(nodes: list[NodeConfig], report: Report) -> list[Router]:
    """Group the nodes' instances into routers, in the order they first appear."""
    groups: dict[tuple[int, frozenset[IPInterface]], list[Member]] = {}
    for node in nodes:
        for instance in node.instances:
            members = groups.setdefault(_key(instance), [])
            if any(m.node.node == node.node for m in members):
                report.add(
                    node.node,
                    instance.location,
                    "vrrp_instance",
                    Outcome.ERROR,
                    f"{instance.name} repeats VRID {instance.vrid} with the same addresses as "
                    "another instance of this node; it is not converted",
                )
                continue
            members.append(Member(node, instance))
    routers = []
    for (vrid, _), members in groups.items():
        first = members[0].instance
        addresses = tuple(a.address for a in first.advertised)
        routers.append(Router(vrid, addresses, tuple(members)))
        if len(members) == 1 and len(nodes) > 1:
            report.add(
                members[0].node.node,
                first.location,
                "vrrp_instance",
                Outcome.NOTE,
                f"{first.name} (VRID {vrid}) has no matching instance on another node: "
                "its VirtualIP has no backup",
            )
    _clashes(routers, report)
    return routers


def _clashes(routers: list[Router], report: Report) -> None:
    """Two routers with one VRID on one interface (and one multicast group) disagree on the wire."""
    for index, router in enumerate(routers):
        for other in routers[:index]:
            if other.vrid != router.vrid:
                continue
            mine = {(m.node.node, m.instance.interface) for m in router.members}
            theirs = {(m.node.node, m.instance.interface) for m in other.members}
            interfaces = {i for _, i in mine} & {i for _, i in theirs}
            if interfaces:
                member = router.members[0]
                report.add(
                    member.node.node,
                    member.instance.location,
                    "vrrp_instance",
                    Outcome.ERROR,
                    f"{member.instance.name} uses VRID {router.vrid} on {sorted(map(str, interfaces))} "
                    f"like {other.members[0].instance.name} of {other.members[0].node.node}, with "
                    "other addresses: the nodes disagree about this router (converted as two "
                    "VirtualIPs that would collide; fix the addresses)",
                )
