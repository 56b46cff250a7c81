"""A joined virtual router → a VirtualIP document (and a Secret for its PASS password).

Every document is parsed through :func:`keepvip.api.parse.parse_virtualip` before it is
emitted, so the converter can never hand out something ``kubectl apply`` or
``keepvip speaker --config`` would refuse; a router the model refuses is reported with
the model's own field message and not emitted.

Where keepalived lets each node say something keepvip says once per VirtualIP
(interval, version, checks, pre-emption), the first node's value is used and the
difference is reported. The multicast group is always written out (``standard`` for
keepalived's default 224.0.0.18 / ff02::12): an omitted group would be allocated by the
operator and the converted node would not hear the keepalived nodes during a migration.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from keepvip.api.durations import format_duration
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.convert.join import Member, Router
from keepvip.convert.keepalived import PASS_LENGTH, Instance, Script, Track, VipAddress
from keepvip.convert.names import dns_label
from keepvip.convert.report import Outcome, Report
from keepvip.convert.scripts import inverted, recognise

SECRET_NAMESPACE = "keepvip-system"  # noqa: S105 - a namespace, not a password
SECRET_KEY = "password"  # noqa: S105 - the key name inside the Secret
_STANDARD_GROUPS = (IPv4Address("224.0.0.18"), IPv6Address("ff02::12"))
MAX_PRIORITY = 254  # RFC 9568 §5.2.4: 255 is the address owner's, keepvip never claims it


def _duration(seconds: float) -> str:
    return format_duration(timedelta(milliseconds=round(seconds * 1000)))


class _Mapper:
    """Builds one router's documents, reporting differences between its members."""

    def __init__(self, router: Router, name: str, report: Report) -> None:
        self.router = router
        self.name = name
        self.report = report
        self.first = router.members[0]
        self.documents: list[dict[str, Any]] = []

    def note(self, member: Member, keyword: str, outcome: Outcome, detail: str, *, at: Any = None) -> None:
        self.report.add(
            member.node.node, at if at is not None else member.instance.location, keyword, outcome, detail
        )

    def agreed(self, keyword: str, value: Callable[[Member], Hashable], show: Callable[[Any], str]) -> Any:
        """The first member's value; a member that differs is reported."""
        chosen = value(self.first)
        for member in self.router.members[1:]:
            if value(member) != chosen:
                self.note(
                    member,
                    keyword,
                    Outcome.NOTE,
                    f"{show(value(member))} here but "
                    f"{show(chosen)} on {self.first.node.node}: the VirtualIP uses {show(chosen)}",
                )
        return chosen

    # -- the spec ----------------------------------------------------------------------

    def build(self) -> list[dict[str, Any]]:
        first = self.first.instance
        spec: dict[str, Any] = {"addresses": self.addresses()}
        interface = self.agreed("interface", lambda m: m.instance.interface, str)
        if interface is not None and all(m.instance.interface == interface for m in self.router.members):
            spec["interface"] = interface
        self.priorities(spec)
        preempt, delay = self.preemption()
        spec["preempt"] = preempt
        if delay:
            spec["preemptDelay"] = _duration(delay)
        vrrp = self.vrrp()
        spec["vrrp"] = vrrp
        checks = self.checks()
        if checks:
            spec["healthChecks"] = checks
        per_node = {m.node.node: self.tracked_interfaces(m) for m in self.router.members}
        tracked = self.agreed("track_interface", lambda m: per_node[m.node.node], self.show_tracked)
        if tracked:
            spec["trackInterfaces"] = [{"name": name, "weight": weight} for name, weight in tracked]
        group = self.agreed("vrrp_sync_group", self.sync_group, lambda g: g or "no sync group")
        if group is not None:
            spec["syncGroup"] = group
        body = {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": self.name},
            "spec": spec,
        }
        try:
            parse_virtualip(body)
        except InvalidVirtualIP as error:
            for field_error in error.errors:
                self.note(
                    self.first,
                    "vrrp_instance",
                    Outcome.ERROR,
                    f"{first.name} cannot become a VirtualIP: spec.{field_error}",
                )
            return []
        self.announce(spec)
        return [*self.documents, body]

    def announce(self, spec: dict[str, Any]) -> None:
        """Say, on each member's instance, which VirtualIP it became and who should be master."""
        ranked = spec.get("nodePriorities") or []
        nodes = ", ".join(m.node.node for m in self.router.members)
        if len(ranked) > 1 and ranked[0]["priority"] > ranked[1]["priority"]:
            master = f"{ranked[0]['nodeName']} is master by priority ({ranked[0]['priority']})"
        elif len(self.router.members) > 1:
            master = "equal priorities: the higher primary address wins (RFC 9568 §6.4.3)"
        else:
            master = "a single node"
        for member in self.router.members:
            self.note(
                member,
                "vrrp_instance",
                Outcome.CONVERTED,
                f"{member.instance.name} → VirtualIP {self.name} (nodes {nodes}; {master})",
            )

    def addresses(self) -> list[str]:
        family = self.router.addresses[0].version
        result = [a.with_prefixlen for a in self.router.addresses]
        for member in self.router.members:
            instance = member.instance
            for vip in instance.addresses:
                if vip.device is not None and vip.device != instance.interface:
                    self.note(
                        member,
                        "virtual_ipaddress",
                        Outcome.UNSUPPORTED,
                        f"dev {vip.device}: not yet "
                        f"supported by keepvip, every address of a VirtualIP is held on its interface "
                        f"({instance.interface}); make a VirtualIP per interface",
                        at=vip.location,
                    )
                if vip.excluded:
                    self.excluded(member, vip, family, result)
        return result

    def excluded(self, member: Member, vip: VipAddress, family: int, result: list[str]) -> None:
        """A ``virtual_ipaddress_excluded`` line: another address of the VirtualIP, if it can be."""
        if vip.address.version != family:
            self.note(
                member,
                "virtual_ipaddress_excluded",
                Outcome.UNSUPPORTED,
                f"{vip.address}: not yet supported by keepvip, a VirtualIP has one address "
                "family; make a second VirtualIP for it",
                at=vip.location,
            )
            return
        self.note(
            member,
            "virtual_ipaddress_excluded",
            Outcome.NOTE,
            "spec.addresses: keepvip has no excluded addresses, so this one is also listed in the "
            "advertisement (keepalived accepts that)",
            at=vip.location,
        )
        if vip.address.with_prefixlen not in result:
            result.append(vip.address.with_prefixlen)

    def priorities(self, spec: dict[str, Any]) -> None:
        values: list[tuple[str, int]] = []
        for member in self.router.members:
            priority = member.instance.priority
            if priority > MAX_PRIORITY:
                self.note(
                    member,
                    "priority",
                    Outcome.NOTE,
                    f"{priority} (address owner) becomes "
                    f"{MAX_PRIORITY}: keepvip never claims to own the address (RFC 9568 §5.2.4)",
                )
                priority = MAX_PRIORITY
            values.append((member.node.node, priority))
        distinct = {p for _, p in values}
        spec["priority"] = min(distinct)
        if len(distinct) > 1:
            ordered = sorted(values, key=lambda item: -item[1])
            spec["nodePriorities"] = [{"nodeName": node, "priority": p} for node, p in ordered]

    def preemption(self) -> tuple[bool, float]:
        nopreempt: dict[str, bool] = {}
        for member in self.router.members:
            instance = member.instance
            cleared = instance.nopreempt and instance.state == "MASTER"
            if cleared:
                self.note(
                    member,
                    "nopreempt",
                    Outcome.NOTE,
                    "keepalived ignores nopreempt with "
                    "`state MASTER` (it logs 'nopreempt will not work with initial state MASTER')",
                )
            nopreempt[member.node.node] = instance.nopreempt and not cleared
        preempt = not any(nopreempt.values())
        if len(set(nopreempt.values())) > 1:
            self.note(
                self.first,
                "nopreempt",
                Outcome.NOTE,
                "only "
                f"{', '.join(n for n, v in nopreempt.items() if v)} set nopreempt; keepvip's preempt "
                "is one setting for every node: the VirtualIP says preempt: false",
            )
        delay = max(m.instance.preempt_delay for m in self.router.members)
        if not preempt and delay:
            self.note(
                self.first, "preempt_delay", Outcome.NOTE, "without pre-emption the delay never applies"
            )
        return preempt, delay

    def vrrp(self) -> dict[str, Any]:
        def version(member: Member) -> int:
            instance = member.instance
            if instance.family == 6:
                return 3  # keepalived.conf(5): IPv6 instances always use version 3
            return instance.version if instance.version is not None else member.node.vrrp_version

        vrrp: dict[str, Any] = {"version": self.agreed("version", version, str)}
        vrrp["advertisementInterval"] = _duration(
            self.agreed("advert_int", lambda m: m.instance.advert_int, lambda v: f"{v:g}s")
        )
        vrrp["vrid"] = self.router.vrid
        peers = sorted({p for m in self.router.members for p in self.unicast(m.instance)}, key=str)
        if peers:
            vrrp["unicastPeers"] = [str(p) for p in peers]
            for member in self.router.members:
                if not member.instance.unicast_peers:
                    self.note(
                        member,
                        "unicast_peer",
                        Outcome.NOTE,
                        "this node uses multicast while another "
                        "uses unicast; the VirtualIP uses unicast for every node",
                    )
                elif member.instance.unicast_src_ip is not None:
                    self.note(
                        member,
                        "unicast_src_ip",
                        Outcome.NOTE,
                        f"keepvip sends from the interface's "
                        f"primary address: {member.instance.unicast_src_ip} must be it on "
                        f"{member.node.node}; the other nodes' peers include it",
                    )
        else:
            group = self.agreed("mcast_dst_ip", self.group, str)
            vrrp["multicastGroup"] = "standard" if group in _STANDARD_GROUPS else str(group)
        authentication = self.authentication(vrrp["version"])
        if authentication is not None:
            vrrp["authentication"] = authentication
        return vrrp

    @staticmethod
    def unicast(instance: Instance) -> list[Any]:
        if not instance.unicast_peers:
            return []
        source = [instance.unicast_src_ip] if instance.unicast_src_ip is not None else []
        return [*instance.unicast_peers, *source]

    @staticmethod
    def group(member: Member) -> IPv4Address | IPv6Address:
        instance, node = member.instance, member.node
        if instance.mcast_dst_ip is not None:
            return instance.mcast_dst_ip
        if instance.family == 6:
            return node.mcast_group6 or _STANDARD_GROUPS[1]
        return node.mcast_group4 or _STANDARD_GROUPS[0]

    def authentication(self, version: int) -> dict[str, Any] | None:
        passwords = {
            m.node.node: m.instance.auth_pass
            for m in self.router.members
            if m.instance.auth_type == "PASS" and m.instance.auth_pass
        }
        if not passwords:
            return None
        owner = next(m for m in self.router.members if m.node.node in passwords)
        if version != 2:
            self.note(
                owner,
                "authentication",
                Outcome.DROPPED,
                "keepalived ignores authentication with VRRPv3 (RFC 9568 removed it), so does the VirtualIP",
                at=owner.instance.auth_location,
            )
            return None
        truncated = {node: text[:PASS_LENGTH] for node, text in passwords.items()}
        if len(set(truncated.values())) > 1 or len(truncated) != len(self.router.members):
            self.note(
                owner,
                "auth_pass",
                Outcome.NOTE,
                "the nodes' passwords differ (or some have none): "
                f"they never formed one router in keepalived; the Secret holds {owner.node.node}'s",
                at=owner.instance.auth_location,
            )
        secret = f"{self.name}-vrrp-auth"
        self.documents.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"namespace": SECRET_NAMESPACE, "name": secret},
                "type": "Opaque",
                "stringData": {SECRET_KEY: truncated[owner.node.node]},
            }
        )
        return {
            "type": "PASS",
            "secretRef": {"namespace": SECRET_NAMESPACE, "name": secret, "key": SECRET_KEY},
        }

    # -- tracked interfaces and sync groups ---------------------------------------------------

    @staticmethod
    def sync_group(member: Member) -> str | None:
        group = member.instance.sync_group
        return None if group is None else dns_label(group.name, "sync-group")

    @staticmethod
    def show_tracked(entries: tuple[tuple[str, int], ...]) -> str:
        return ", ".join(f"{name} weight {weight}" for name, weight in entries) or "no interface"

    def tracked_interfaces(self, member: Member) -> tuple[tuple[str, int], ...]:
        """This member's ``track_interface`` entries as keepalived applies them, each reported."""
        instance = member.instance
        entries: list[tuple[str, int]] = []
        for tracked in instance.track_interfaces:
            at = tracked.location
            if tracked.name == instance.interface:
                self.note(member, "track_interface", Outcome.DROPPED,
                          f"{tracked.name} is the instance's own interface: keepalived ignores it ('Ignoring "
                          "track_interface ... since own interface'); keepvip's VRRP interface down is a "
                          "FAULT anyway", at=at)  # fmt: skip
                continue
            if tracked.reverse:
                self.note(member, "track_interface", Outcome.UNSUPPORTED,
                          f"{tracked.name} reverse: not yet supported by keepvip (a tracked interface counts "
                          "as failing when down, never when up); not converted", at=at)  # fmt: skip
                continue
            weight = tracked.weight or 0
            if weight and instance.weights_ignored:
                self.note(member, "track_interface", Outcome.NOTE,
                          f"{tracked.name} weight {weight} → spec.trackInterfaces weight 0: keepalived "
                          "ignores tracking weights in a sync group ('ignoring ... tracked interface weight "
                          "due to SYNC group'), so the link down is a FAULT", at=at)  # fmt: skip
                weight = 0
            else:
                effect = "the link down is a FAULT" if weight == 0 else (
                    f"{weight} while the link is down" if weight < 0 else f"+{weight} while the link is up"
                )
                detail = f"spec.trackInterfaces {tracked.name} weight {weight} ({effect})"
                self.note(member, "track_interface", Outcome.CONVERTED, detail, at=at)
            entries.append((tracked.name, weight))
        return tuple(entries)

    # -- checks ----------------------------------------------------------------------------

    def checks(self) -> list[dict[str, Any]]:
        chosen: dict[str, tuple[Member, dict[str, Any]]] = {}
        for member in self.router.members:
            for track in member.instance.tracks:
                script = member.node.scripts.get(track.script)
                if script is not None and member.instance.weights_ignored and self.weight(script, track):
                    self.note(member, "track_script", Outcome.DROPPED,
                              f"{track.script}: keepalived ignores a weighted track_script in a sync group "
                              "('ignoring tracked script ... with weights due to SYNC group'), so does the "
                              "VirtualIP; give it weight 0 to move the whole group when it fails",
                              at=track.location)  # fmt: skip
                    continue
                if script is None or script.command is None:
                    self.note(
                        member,
                        "track_script",
                        Outcome.ERROR,
                        f"no usable vrrp_script {track.script} on this node: not converted",
                        at=track.location,
                    )
                    continue
                check = self.check(member, script, track)
                name = check["name"]
                if name not in chosen:
                    chosen[name] = (member, check)
                elif chosen[name][1] != check:
                    self.note(
                        member,
                        "track_script",
                        Outcome.NOTE,
                        f"{track.script} differs from "
                        f"{chosen[name][0].node.node}'s: the VirtualIP uses {chosen[name][0].node.node}'s",
                        at=track.location,
                    )
        for name, (member, _) in chosen.items():
            missing = [
                m.node.node
                for m in self.router.members
                if all(self.check_name(t.script) != name for t in m.instance.tracks)
            ]
            if missing:
                self.note(
                    member,
                    "track_script",
                    Outcome.NOTE,
                    f"{name} is tracked here but not on "
                    f"{', '.join(missing)}: keepvip runs a VirtualIP's checks on every node",
                )
        return [check for _, check in chosen.values()]

    @staticmethod
    def check_name(script: str) -> str:
        return dns_label(script, "check")

    @staticmethod
    def weight(script: Script, track: Track) -> int:
        """The weight keepalived applies: the track_script line's, else the vrrp_script's."""
        return track.weight if track.weight is not None else script.weight

    def check(self, member: Member, script: Script, track: Track) -> dict[str, Any]:
        assert script.command is not None
        weight = self.weight(script, track)
        reverse = track.reverse if track.reverse is not None else script.reverse
        found = recognise(script.command)
        check: dict[str, Any] = {"name": self.check_name(script.name)}
        if reverse:
            check["exec"] = {"command": inverted(script.command)}
            detail = (
                f"reverse: keepvip checks cannot invert a result, so the check runs "
                f"{check['exec']['command']!r}, which passes when the script fails"
            )
            if weight:
                detail += (
                    f"; keepalived counts a reversed weight from the other end (the priority moves by "
                    f"{abs(weight)} in the same direction, but from a level {abs(weight)} apart): compare "
                    "the nodes' priorities"
                )
            outcome = Outcome.NOTE
        else:
            check[found.kind] = found.settings
            detail = found.note
            outcome = Outcome.CONVERTED if found.exact else Outcome.NOTE
        interval = script.interval
        timeout = script.timeout if script.timeout is not None else interval
        if timeout > interval:
            detail += (
                f"; timeout {timeout:g}s exceeds the interval {interval:g}s: keepvip needs "
                "timeout ≤ interval, the timeout becomes the interval"
            )
            timeout = interval
            outcome = Outcome.NOTE
        check.update(
            interval=_duration(interval),
            timeout=_duration(timeout),
            rise=script.rise,
            fall=script.fall,
            weight=weight,
        )
        if weight == 0:
            detail += "; weight 0: failing puts the node in FAULT (gives up the VIP), as in keepalived"
        if member is self.first or all(t.script != track.script for t in self.first.instance.tracks):
            self.note(
                member,
                "vrrp_script",
                outcome,
                f"{script.name} → spec.healthChecks {check['name']}: {detail}",
                at=script.location,
            )
        return check


def map_routers(routers: list[Router], report: Report) -> list[dict[str, Any]]:
    """Documents for every router (Secrets before the VirtualIP that names them)."""
    documents: list[dict[str, Any]] = []
    used: set[str] = set()
    for router in routers:
        base = dns_label(router.members[0].instance.name, f"vrid-{router.vrid}")
        name, suffix = base, 2
        while name in used:
            name, suffix = f"{base}-{suffix}", suffix + 1
        used.add(name)
        documents.extend(_Mapper(router, name, report).build())
    return documents
