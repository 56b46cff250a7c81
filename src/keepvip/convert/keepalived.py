"""What one node's keepalived.conf declares: its VRRP instances, scripts and globals.

:func:`read_node` walks the statements :mod:`keepvip.convert.syntax` produced and fills
plain dataclasses with keepalived's defaults (keepalived.conf(5) of 2.2.x): priority 100,
``advert_int`` 1 s, VRRP version 2 unless an instance holds IPv6 addresses, a
``vrrp_script`` interval of 1 s and weight 0 (a failing script puts the instance in
FAULT). Every keyword it meets is recorded in the :class:`~keepvip.convert.report.Report`:
converted (and into which field), or dropped, unsupported or refused with the reason.
A keyword the converter does not know is reported as dropped, never ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import TypeVar

from keepvip.convert.names import dns_label
from keepvip.convert.report import Outcome, Report
from keepvip.convert.syntax import Location, ParsedFile, Statement

IPInterface = IPv4Interface | IPv6Interface
IPAddress = IPv4Address | IPv6Address

DEFAULT_PRIORITY = 100
DEFAULT_ADVERT_INT = 1.0
PASS_LENGTH = 8  # keepalived.conf(5): "Only the first eight (8) characters are used" (RFC 2338 §5.3.10)

NOTIFY_KEYWORDS = ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify")
GARP_KEYWORDS = frozenset(
    {
        "garp_master_delay",
        "garp_master_repeat",
        "garp_lower_prio_delay",
        "garp_lower_prio_repeat",
        "garp_master_refresh",
        "garp_master_refresh_repeat",
        "garp_interval",
        "gna_interval",
        "garp_extra_if",
        "garp_extra_if_vmac",
    }
)
MAIL_KEYWORDS = frozenset(
    {
        "notification_email",
        "notification_email_from",
        "smtp_server",
        "smtp_connect_timeout",
        "smtp_helo_name",
        "smtp_alert",
        "smtp_alert_vrrp",
        "smtp_alert_checker",
        "email_faults",
    }
)
_ALERTS = (
    "the chart's alerts (monitoring.prometheusRule: KeepvipNoMaster, KeepvipSplitBrain, "
    "KeepvipFlapping), sent by mail through Alertmanager"
)
_GARP = (
    "keepvip announces a new master with 5 gratuitous ARPs / unsolicited NAs at once and 5 more after "
    "5 s (keepalived's defaults); only the periodic refresh is configurable"
)
_REFUSED_LVS = (
    "LVS load balancing has no meaning for keepvip: keepvip moves addresses, a Kubernetes Service "
    "(kube-proxy) balances the traffic behind them; make a Service for these real servers"
)


@dataclass(frozen=True)
class VipAddress:
    """One ``virtual_ipaddress`` (or ``_excluded``) line."""

    address: IPInterface
    device: str | None
    excluded: bool
    location: Location


@dataclass
class Script:
    """A ``vrrp_script`` block."""

    name: str
    location: Location
    command: str | None = None
    interval: float = 1.0
    timeout: float | None = None  # keepalived: the interval when absent
    weight: int = 0
    reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None


@dataclass(frozen=True)
class Track:
    """One ``track_script`` line: the script and an optional weight override."""

    script: str
    location: Location
    weight: int | None = None
    reverse: bool | None = None


@dataclass(frozen=True)
class TrackedInterface:
    """One ``track_interface`` line (the mapper makes it a ``spec.trackInterfaces`` entry)."""

    name: str
    location: Location
    weight: int | None = None
    reverse: bool = False


@dataclass
class SyncGroup:
    """A ``vrrp_sync_group``: instances that keepalived moves together (``spec.syncGroup``)."""

    name: str
    location: Location
    instances: list[str] = field(default_factory=list)
    tracking_weight: bool = False  # sync_group_tracking_weight: members keep their weights
    track_interfaces: list[TrackedInterface] = field(default_factory=list)  # for every member


@dataclass
class Instance:
    """A ``vrrp_instance`` block, with keepalived's defaults."""

    name: str
    location: Location
    interface: str | None = None
    vrid: int | None = None
    priority: int = DEFAULT_PRIORITY
    state: str | None = None
    advert_int: float = DEFAULT_ADVERT_INT
    version: int | None = None
    addresses: list[VipAddress] = field(default_factory=list)
    nopreempt: bool = False
    preempt_delay: float = 0.0
    mcast_dst_ip: IPAddress | None = None
    unicast_src_ip: IPAddress | None = None
    unicast_peers: list[IPAddress] = field(default_factory=list)
    auth_type: str | None = None
    auth_pass: str | None = None
    auth_location: Location | None = None
    tracks: list[Track] = field(default_factory=list)
    notify: dict[str, str] = field(default_factory=dict)
    garp_refresh: float | None = None
    track_interfaces: list[TrackedInterface] = field(default_factory=list)
    sync_group: SyncGroup | None = None

    @property
    def weights_ignored(self) -> bool:
        """keepalived drops tracking weights of a sync group's members (keepalived.conf(5);
        2.2.7 logs "ignoring ... weight due to SYNC group") unless the group allows them."""
        return self.sync_group is not None and not self.sync_group.tracking_weight

    @property
    def advertised(self) -> list[VipAddress]:
        """The addresses keepalived puts in its advertisements (not the excluded ones)."""
        return [a for a in self.addresses if not a.excluded]

    @property
    def family(self) -> int:
        """4 or 6: the family of the advertised addresses (keepalived: of the first one)."""
        advertised = self.advertised
        return advertised[0].address.version if advertised else 4


@dataclass
class NodeConfig:
    """Everything the converter needs from one node's configuration."""

    node: str
    instances: list[Instance] = field(default_factory=list)
    scripts: dict[str, Script] = field(default_factory=dict)
    vrrp_version: int = 2
    mcast_group4: IPv4Address | None = None
    mcast_group6: IPv6Address | None = None
    mail: bool = False
    sync_groups: list[SyncGroup] = field(default_factory=list)


_N = TypeVar("_N", int, float)


class _Invalid(ValueError):
    """A value keepalived would reject; the message says what is allowed."""


def _one(statement: Statement) -> str:
    if len(statement.values) != 1:
        raise _Invalid(f"takes one value (got {len(statement.values)})")
    return statement.values[0].text


def _number(statement: Statement, kind: Callable[[str], _N], what: str, low: _N, high: _N) -> _N:
    text = _one(statement)
    try:
        value = kind(text)
    except ValueError as error:
        raise _Invalid(f"{text!r} is not {what}") from error
    if not low <= value <= high:
        raise _Invalid(f"{text} is outside {low:g}..{high:g}")
    return value


def _int(statement: Statement, low: int, high: int) -> int:
    return _number(statement, int, "a whole number", low, high)


def _seconds(statement: Statement, low: float = 0.0, high: float = 1e6) -> float:
    return _number(statement, float, "a number of seconds", low, high)


def _address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError as error:
        raise _Invalid(f"{text!r} is not an IP address") from error


@dataclass
class _Walker:
    """Reads one node's statements into a :class:`NodeConfig`, reporting every keyword."""

    node: str
    report: Report
    config: NodeConfig = field(init=False)

    def __post_init__(self) -> None:
        self.config = NodeConfig(self.node)

    def add(self, statement: Statement, outcome: Outcome, detail: str, keyword: str | None = None) -> None:
        self.report.add(self.node, statement.location, keyword or statement.name, outcome, detail)

    def guarded(self, statement: Statement, action: Callable[[], str | None]) -> None:
        """Run ``action``; its text is the 'converted' detail, an _Invalid becomes an error."""
        try:
            detail = action()
        except _Invalid as error:
            self.add(statement, Outcome.ERROR, str(error))
            return
        if detail is not None:
            self.add(statement, Outcome.CONVERTED, detail)

    # -- top level ------------------------------------------------------------------

    def top(self, statement: Statement) -> None:
        name = statement.name
        if name == "global_defs":
            self.block(statement, self.global_keyword)
        elif name == "vrrp_script":
            self.vrrp_script(statement)
        elif name == "vrrp_instance":
            self.vrrp_instance(statement)
        elif name == "vrrp_sync_group":
            self.sync_group(statement)
        elif name in ("virtual_server", "virtual_server_group", "real_server"):
            self.add(statement, Outcome.REFUSED, _REFUSED_LVS)
        elif name in ("vrrp_track_process", "vrrp_track_file", "track_file", "bfd_instance"):
            self.add(
                statement,
                Outcome.UNSUPPORTED,
                "not yet supported by keepvip: only checks "
                "(tcp, http, icmp, exec) change a priority; make this an exec check",
            )
        elif name in ("static_ipaddress", "static_routes", "static_rules", "garp_group"):
            self.add(
                statement,
                Outcome.DROPPED,
                "keepvip manages only virtual addresses; configure "
                "static addresses and routes with the host's network configuration",
            )
        else:
            self.unknown(statement)

    def unknown(self, statement: Statement) -> None:
        self.add(
            statement, Outcome.DROPPED, f"unknown to the converter: {statement.text()!r} is not converted"
        )

    def block(self, statement: Statement, handler: Callable[[Statement], None]) -> None:
        if statement.block is None:
            self.add(statement, Outcome.ERROR, "needs a { } block")
            return
        for child in statement.block:
            handler(child)

    # -- global_defs ------------------------------------------------------------------

    def global_keyword(self, statement: Statement) -> None:
        name, config = statement.name, self.config

        def version() -> str:
            config.vrrp_version = _int(statement, 2, 3)
            return "default for spec.vrrp.version of this node's instances"

        def group4() -> str:
            group = _address(_one(statement))
            if not isinstance(group, IPv4Address) or not group.is_multicast:
                raise _Invalid(f"{group} is not an IPv4 multicast address")
            config.mcast_group4 = group
            return "spec.vrrp.multicastGroup of IPv4 instances"

        def group6() -> str:
            group = _address(_one(statement))
            if not isinstance(group, IPv6Address) or not group.is_multicast:
                raise _Invalid(f"{group} is not an IPv6 multicast address")
            config.mcast_group6 = group
            return "spec.vrrp.multicastGroup of IPv6 instances"

        if name == "vrrp_version":
            self.guarded(statement, version)
        elif name == "vrrp_mcast_group4":
            self.guarded(statement, group4)
        elif name == "vrrp_mcast_group6":
            self.guarded(statement, group6)
        elif name in MAIL_KEYWORDS:
            config.mail = True
            self.add(statement, Outcome.NOTE, f"keepvip sends no e-mail: {_ALERTS}")
        elif name == "router_id":
            self.add(
                statement,
                Outcome.DROPPED,
                "keepvip names a node by `--node NAME` (standalone) or its Kubernetes node name",
            )
        elif name.startswith("vrrp_garp_") or name.startswith("vrrp_gna_"):
            self.add(statement, Outcome.DROPPED, _GARP)
        elif name in ("enable_script_security", "script_user"):
            self.add(
                statement,
                Outcome.NOTE,
                "keepvip runs exec checks as the speaker's user, without a "
                "shell; in a cluster the chart decides whether exec checks are allowed",
            )
        elif name == "vrrp_strict":
            self.add(
                statement,
                Outcome.NOTE,
                "keepvip always checks what RFC 9568 requires of received "
                "advertisements (TTL 255, version, checksum); vrrp_strict's other effects "
                "(no PASS, no unicast) are not applied",
            )
        elif name in ("vrrp_skip_check_adv_addr", "vrrp_check_unicast_src"):
            self.add(
                statement,
                Outcome.DROPPED,
                "keepvip always accepts an advertisement whose address "
                "list differs and counts it as a mismatch (metric keepvip_advert_mismatch_total)",
            )
        elif name.startswith("lvs_") or name in ("checker_process_name", "vrrp_no_swap", "checker_no_swap"):
            self.add(statement, Outcome.DROPPED, "concerns keepalived's own processes or LVS")
        else:
            self.unknown(statement)

    # -- vrrp_sync_group -----------------------------------------------------------------

    def sync_group(self, statement: Statement) -> None:
        name = self.named(statement)
        if name is None or statement.block is None:
            if name is not None:
                self.add(statement, Outcome.ERROR, "needs a { } block")
            return
        group = SyncGroup(name, statement.location)
        for child in statement.block:
            self.sync_group_keyword(group, child)
        self.config.sync_groups.append(group)
        self.add(
            statement,
            Outcome.CONVERTED,
            f"{name} ({', '.join(group.instances) or 'no instances'}): spec.syncGroup "
            f"{dns_label(name, 'sync-group')} on their VirtualIPs (a member in FAULT holds the others in "
            "FAULT; a member losing MASTER makes the others give it up)",
        )

    def sync_group_keyword(self, group: SyncGroup, statement: Statement) -> None:
        name = statement.name
        if name == "group":
            if statement.block is None:
                self.add(statement, Outcome.ERROR, "needs a { } block")
                return
            # keepalived reads every word of the block as a member, one per line or not
            for line in statement.block:
                words = line.text().split()
                group.instances += words
                self.add(line, Outcome.CONVERTED, f"{', '.join(words)}: a member, spec.syncGroup "
                         f"{dns_label(group.name, 'sync-group')} on its VirtualIP", "group")  # fmt: skip
        elif name in ("sync_group_tracking_weight", "global_tracking"):
            group.tracking_weight = True
            self.add(
                statement,
                Outcome.NOTE,
                "the members keep their tracking weights (spec.healthChecks, spec.trackInterfaces "
                "weights); keepalived.conf(5) warns this 'probably WON'T WORK': a weight moves one member",
            )
        elif name == "track_interface":
            self.block(statement, lambda child: self.interface_line(group.track_interfaces, child))
        elif name in NOTIFY_KEYWORDS or name in ("track_script", "track_file", "track_process", "track_bfd"):
            self.add(
                statement,
                Outcome.UNSUPPORTED,
                f"not yet supported by keepvip on a sync group: write {name} in each member vrrp_instance "
                "(each VirtualIP has its own)",
            )
        elif name == "smtp_alert":
            self.config.mail = True
            self.add(statement, Outcome.NOTE, f"keepvip sends no e-mail: {_ALERTS}")
        else:
            self.unknown(statement)

    def check_sync_groups(self) -> None:
        """A sync group that names an instance the file does not declare is an error, as in keepalived."""
        declared = {instance.name: instance for instance in self.config.instances}
        for group in self.config.sync_groups:
            for missing in (name for name in group.instances if name not in declared):
                self.report.add(
                    self.node,
                    group.location,
                    "vrrp_sync_group",
                    Outcome.ERROR,
                    f"{group.name} names {missing}, which is no vrrp_instance of this node",
                )
            for instance in (declared[name] for name in group.instances if name in declared):
                if instance.sync_group is not None:
                    self.report.add(
                        self.node,
                        group.location,
                        "vrrp_sync_group",
                        Outcome.ERROR,
                        f"{group.name} names {instance.name}, already in {instance.sync_group.name}",
                    )
                    continue
                instance.sync_group = group
                tracked = {t.name for t in instance.track_interfaces}
                instance.track_interfaces += [t for t in group.track_interfaces if t.name not in tracked]

    # -- vrrp_script -----------------------------------------------------------------------

    def named(self, statement: Statement) -> str | None:
        """The block's name (``vrrp_script NAME {``), or None after reporting its absence."""
        if len(statement.values) != 1:
            self.add(statement, Outcome.ERROR, f"{statement.name} needs exactly one name")
            return None
        return statement.values[0].text

    def vrrp_script(self, statement: Statement) -> None:
        name = self.named(statement)
        if name is None:
            return
        script = Script(name, statement.location)
        if script.name in self.config.scripts:
            self.add(
                statement, Outcome.ERROR, f"vrrp_script {script.name} is declared twice; the first is used"
            )
            return
        self.config.scripts[script.name] = script
        self.add(statement, Outcome.CONVERTED, "a spec.healthChecks entry of each instance that tracks it")
        self.block(statement, lambda child: self.script_keyword(script, child))
        if script.command is None:
            self.add(statement, Outcome.ERROR, f"vrrp_script {script.name} has no `script` line")

    def script_keyword(self, script: Script, statement: Statement) -> None:
        name = statement.name

        def command() -> str:
            if not statement.values:
                raise _Invalid("needs the command to run")
            script.command = " ".join(v.text for v in statement.values)
            return "the check (its kind is on the vrrp_script line)"

        def weight() -> str:
            values = [v.text for v in statement.values]
            if len(values) == 2 and values[1] in ("reverse", "noreverse"):
                script.reverse = values[1] == "reverse"
                values = values[:1]
            if len(values) != 1:
                raise _Invalid("is `weight N [reverse]`")
            try:
                script.weight = int(values[0])
            except ValueError as error:
                raise _Invalid(f"{values[0]!r} is not a whole number") from error
            if not -253 <= script.weight <= 253:
                raise _Invalid(f"{script.weight} is outside -253..253")
            return "spec.healthChecks[].weight" + (
                " (reverse: see the vrrp_script line)" if script.reverse else ""
            )

        def interval() -> str:
            script.interval = _seconds(statement, 0.001, 86400)
            return "spec.healthChecks[].interval"

        def timeout() -> str:
            script.timeout = _seconds(statement, 0.001, 86400)
            return "spec.healthChecks[].timeout"

        def rise() -> str:
            script.rise = _int(statement, 1, 1_000_000)
            return "spec.healthChecks[].rise"

        def fall() -> str:
            script.fall = _int(statement, 1, 1_000_000)
            return "spec.healthChecks[].fall"

        handlers = {
            "script": command,
            "weight": weight,
            "interval": interval,
            "timeout": timeout,
            "rise": rise,
            "fall": fall,
        }
        if name in handlers:
            self.guarded(statement, handlers[name])
        elif name == "user":
            script.user = " ".join(v.text for v in statement.values)
            self.add(
                statement,
                Outcome.UNSUPPORTED,
                "not yet supported by keepvip: exec checks run as the "
                "speaker's user; check with the command what it needs to run as that user",
            )
        elif name == "init_fail":
            self.add(
                statement,
                Outcome.NOTE,
                "keepvip starts every check unknown: a weight-0 check holds the node out of the "
                "election until it has reported (as init_fail does); a weighted check adds nothing "
                "until its first result",
            )
        else:
            self.unknown(statement)

    # -- vrrp_instance ------------------------------------------------------------------

    def vrrp_instance(self, statement: Statement) -> None:
        name = self.named(statement)
        if name is None:
            return
        instance = Instance(name, statement.location)
        self.add(statement, Outcome.CONVERTED, "a VirtualIP (joined with the other nodes' instance)")
        self.block(statement, lambda child: self.instance_keyword(instance, child))
        if instance.vrid is None:
            self.add(statement, Outcome.ERROR, f"vrrp_instance {instance.name} has no virtual_router_id")
        elif not instance.advertised:
            self.add(statement, Outcome.ERROR, f"vrrp_instance {instance.name} has no virtual_ipaddress")
        else:
            self.config.instances.append(instance)

    def instance_keyword(self, instance: Instance, statement: Statement) -> None:  # noqa: PLR0912
        name = statement.name
        simple: dict[str, Callable[[], str]] = {
            "interface": lambda: self._set_interface(instance, statement),
            "virtual_router_id": lambda: self._set_vrid(instance, statement),
            "priority": lambda: self._set_priority(instance, statement),
            "advert_int": lambda: self._set_advert(instance, statement),
            "version": lambda: self._set_version(instance, statement),
            "preempt_delay": lambda: self._set_preempt_delay(instance, statement),
            "mcast_dst_ip": lambda: self._set_group(instance, statement),
            "unicast_src_ip": lambda: self._set_unicast_src(instance, statement),
        }
        if name in simple:
            self.guarded(statement, simple[name])
        elif name == "state":
            self.state(instance, statement)
        elif name == "nopreempt":
            instance.nopreempt = True
            self.add(statement, Outcome.CONVERTED, "spec.preempt: false")
        elif name == "preempt":
            self.add(statement, Outcome.CONVERTED, "spec.preempt: true (the default)")
        elif name in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
            self.block(statement, lambda child: self.vip_line(instance, child, name.endswith("_excluded")))
        elif name == "unicast_peer":
            self.block(statement, lambda child: self.peer_line(instance, child))
        elif name == "authentication":
            self.block(statement, lambda child: self.auth_line(instance, child))
        elif name == "track_script":
            self.block(statement, lambda child: self.track_line(instance, child))
        elif name in NOTIFY_KEYWORDS:
            self.notify(instance, statement)
        elif name == "smtp_alert":
            self.config.mail = True
            self.add(statement, Outcome.NOTE, f"keepvip sends no e-mail: {_ALERTS}")
        elif name in GARP_KEYWORDS:
            self.garp(instance, statement)
        elif name == "track_interface":
            self.block(statement, lambda child: self.interface_line(instance.track_interfaces, child))
        elif name in ("track_process", "track_file", "track_bfd"):
            self.add(
                statement,
                Outcome.UNSUPPORTED,
                "not yet supported by keepvip: only checks (tcp, http, "
                "icmp, exec) change a priority; make this an exec check",
            )
        elif name in ("use_vmac", "vmac_xmit_base"):
            self.add(
                statement,
                Outcome.UNSUPPORTED,
                "not yet supported by keepvip: the VIP is held on the "
                "interface with its own MAC; gratuitous ARP moves clients",
            )
        elif name in ("virtual_routes", "virtual_rules"):
            self.add(
                statement,
                Outcome.UNSUPPORTED,
                "not yet supported by keepvip: only addresses follow the master",
            )
        elif name in (
            "dont_track_primary",
            "skip_check_adv_addr",
            "check_unicast_src",
            "track_src_ip",
            "unicast_fault_no_peer",
            "unicast_ttl",
            "native_ipv6",
            "debug",
            "accept",
            "no_accept",
            "strict_mode",
            "promote_secondaries",
            "lvs_sync_daemon_interface",
            "kernel_rx_buf_size",
            "mcast_src_ip",
            "old_unicast_checksum",
            "down_timer_adverts",
        ):
            self.add(
                statement,
                Outcome.DROPPED,
                "no keepvip equivalent; keepvip follows RFC 9568 "
                "(its defaults match keepalived's for a plain pair)",
            )
        else:
            self.unknown(statement)

    def _set_interface(self, instance: Instance, statement: Statement) -> str:
        instance.interface = _one(statement)
        return "spec.interface"

    def _set_vrid(self, instance: Instance, statement: Statement) -> str:
        instance.vrid = _int(statement, 1, 255)
        return "spec.vrrp.vrid"

    def _set_priority(self, instance: Instance, statement: Statement) -> str:
        instance.priority = _int(statement, 1, 255)
        return f"spec.nodePriorities (nodeName {self.node}), or spec.priority when every node agrees"

    def _set_advert(self, instance: Instance, statement: Statement) -> str:
        instance.advert_int = _seconds(statement, 0.01, 255)
        return "spec.vrrp.advertisementInterval"

    def _set_version(self, instance: Instance, statement: Statement) -> str:
        instance.version = _int(statement, 2, 3)
        return "spec.vrrp.version"

    def _set_preempt_delay(self, instance: Instance, statement: Statement) -> str:
        instance.preempt_delay = _seconds(statement, 0, 1000)
        return "spec.preemptDelay"

    def _set_group(self, instance: Instance, statement: Statement) -> str:
        group = _address(_one(statement))
        if not group.is_multicast:
            raise _Invalid(f"{group} is not a multicast address")
        instance.mcast_dst_ip = group
        return "spec.vrrp.multicastGroup"

    def _set_unicast_src(self, instance: Instance, statement: Statement) -> str:
        instance.unicast_src_ip = _address(_one(statement))
        return "spec.vrrp.unicastPeers (with the other nodes' peers)"

    def state(self, instance: Instance, statement: Statement) -> None:
        try:
            state = _one(statement).upper()
        except _Invalid as error:
            self.add(statement, Outcome.ERROR, str(error))
            return
        if state not in ("MASTER", "BACKUP"):
            self.add(statement, Outcome.ERROR, f"{state!r} is neither MASTER nor BACKUP")
            return
        instance.state = state
        self.add(
            statement,
            Outcome.NOTE,
            "keepalived's state is only the initial state; keepvip starts "
            "every node as BACKUP and the election (priority) decides the master within "
            "3 advertisement intervals",
        )

    def vip_line(self, instance: Instance, statement: Statement, excluded: bool) -> None:
        keyword = "virtual_ipaddress_excluded" if excluded else "virtual_ipaddress"
        try:
            address = ipaddress.ip_interface(statement.name)
        except ValueError:
            self.add(statement, Outcome.ERROR, f"{statement.name!r} is not an address", keyword)
            return
        options = [v.text for v in statement.values]
        device: str | None = None
        index = 0
        while index < len(options):
            option = options[index]
            argument = options[index + 1] if index + 1 < len(options) else None
            takes_argument = option in ("dev", "label", "brd", "scope", "peer", "preferred_lft")
            if takes_argument and argument is None:
                self.add(statement, Outcome.ERROR, f"{option} needs a value", keyword)
                return
            if option == "dev":
                device = argument
            elif option in ("label", "brd", "scope"):
                self.add(
                    statement,
                    Outcome.DROPPED,
                    f"{option} {argument}: "
                    + {
                        "label": "keepvip adds addresses without an alias label (ifconfig-era names)",
                        "brd": "keepvip lets the kernel derive the broadcast address from the prefix",
                        "scope": "keepvip adds virtual addresses with scope global",
                    }[option],
                    keyword,
                )
            elif option == "no_track":
                self.add(
                    statement,
                    Outcome.DROPPED,
                    "no_track: keepvip re-adds a removed VIP while master, it never leaves MASTER for it",
                    keyword,
                )
            else:
                self.add(statement, Outcome.DROPPED, f"option {option}: no keepvip equivalent", keyword)
            index += 2 if takes_argument else 1
        instance.addresses.append(VipAddress(address, device, excluded, statement.location))
        target = "spec.addresses"
        if "/" not in statement.name:
            target += f" ({address.with_prefixlen}: keepalived's default prefix)"
        if not excluded:  # an excluded one is reported by the mapper: it depends on the family
            self.add(statement, Outcome.CONVERTED, target, keyword)

    def interface_line(self, tracked: list[TrackedInterface], statement: Statement) -> None:
        """A ``track_interface`` entry; the mapper reports what it became (it knows the group)."""
        values = [v.text for v in statement.values]
        reverse = bool(values) and values[-1] == "reverse"
        if values and values[-1] in ("reverse", "noreverse"):
            values.pop()
        weight: int | None = None
        if values:
            if len(values) != 2 or values[0] != "weight" or not values[1].lstrip("-").isdigit():
                self.add(statement, Outcome.ERROR, "is `IFNAME [weight N [reverse]]`", "track_interface")
                return
            weight = int(values[1])
        if any(t.name == statement.name for t in tracked):
            self.add(statement, Outcome.DROPPED, "listed twice: keepalived ignores the repetition",
                     "track_interface")  # fmt: skip
            return
        tracked.append(TrackedInterface(statement.name, statement.location, weight, reverse))

    def peer_line(self, instance: Instance, statement: Statement) -> None:
        try:
            instance.unicast_peers.append(_address(statement.name))
        except _Invalid as error:
            self.add(statement, Outcome.ERROR, str(error), "unicast_peer")
            return
        if statement.values:
            self.add(
                statement,
                Outcome.DROPPED,
                f"options {statement.text()!r}: keepvip checks every "
                "received advertisement's TTL is 255 (RFC 9568 §6.4.2)",
                "unicast_peer",
            )
        self.add(statement, Outcome.CONVERTED, "spec.vrrp.unicastPeers", "unicast_peer")

    def auth_line(self, instance: Instance, statement: Statement) -> None:
        name = statement.name
        if name == "auth_type":
            try:
                instance.auth_type = _one(statement).upper()
            except _Invalid as error:
                self.add(statement, Outcome.ERROR, str(error))
                return
            if instance.auth_type == "PASS":
                self.add(statement, Outcome.CONVERTED, "spec.vrrp.authentication.type: PASS")
            else:
                self.add(
                    statement,
                    Outcome.UNSUPPORTED,
                    f"not yet supported by keepvip: {instance.auth_type} "
                    "(only PASS, RFC 2338's simple password; AH was removed from VRRP by RFC 3768)",
                )
        elif name == "auth_pass":
            text = " ".join(v.text for v in statement.values)
            if not text:
                self.add(statement, Outcome.ERROR, "needs a password")
                return
            instance.auth_pass, instance.auth_location = text, statement.location
            if len(text) > PASS_LENGTH:
                self.add(
                    statement,
                    Outcome.NOTE,
                    f"a Secret; only the first {PASS_LENGTH} characters "
                    f"count (keepalived sends the same 8), the Secret holds those {PASS_LENGTH}",
                )
            else:
                self.add(statement, Outcome.CONVERTED, "a Secret named by spec.vrrp.authentication.secretRef")
        else:
            self.unknown(statement)

    def track_line(self, instance: Instance, statement: Statement) -> None:
        values = [v.text for v in statement.values]
        weight: int | None = None
        reverse: bool | None = None
        if values and values[-1] in ("reverse", "noreverse"):
            reverse = values.pop() == "reverse"
        if values:
            if len(values) != 2 or values[0] != "weight":
                self.add(statement, Outcome.ERROR, "is `NAME [weight N [reverse|noreverse]]`", "track_script")
                return
            try:
                weight = int(values[1])
            except ValueError:
                self.add(statement, Outcome.ERROR, f"{values[1]!r} is not a whole number", "track_script")
                return
        instance.tracks.append(Track(statement.name, statement.location, weight, reverse))
        detail = "spec.healthChecks" + (" (weight overrides the script's)" if weight is not None else "")
        self.add(statement, Outcome.CONVERTED, detail, "track_script")

    def notify(self, instance: Instance, statement: Statement) -> None:
        command = " ".join(v.text for v in statement.values)
        instance.notify[statement.name] = command
        if statement.name == "notify":
            how = f"`keepvip speaker --notify {command}` (same arguments: INSTANCE NAME STATE PRIORITY)"
        else:
            state = statement.name.removeprefix("notify_").upper()
            how = f"`keepvip speaker --notify CMD`, CMD called with {state} as its third argument"
        self.add(
            statement,
            Outcome.NOTE,
            f"standalone: {how}; in a cluster: the VirtualIP's events and status, and {_ALERTS}",
        )

    def garp(self, instance: Instance, statement: Statement) -> None:
        if statement.name == "garp_master_refresh":
            try:
                instance.garp_refresh = _seconds(statement, 0, 1e6)
            except _Invalid as error:
                self.add(statement, Outcome.ERROR, str(error))
                return
            self.add(
                statement,
                Outcome.NOTE,
                f"standalone: `keepvip speaker --garp-refresh "
                f"{instance.garp_refresh:g}`; the chart has no such value yet, a cluster repeats "
                "announcements only after a takeover",
            )
        else:
            self.add(statement, Outcome.DROPPED, _GARP)


def read_node(node: str, parsed: ParsedFile, report: Report) -> NodeConfig:
    """One node's configuration; syntax problems and every keyword go to ``report``."""
    for problem in parsed.problems:
        report.add(node, problem.location, "syntax", Outcome.ERROR, problem.message)
    walker = _Walker(node, report)
    for statement in parsed.statements:
        walker.top(statement)
    walker.check_sync_groups()
    return walker.config
