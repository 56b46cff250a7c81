"""The one typed model of the VirtualIP resource (spec and status).

Raw dictionaries (from the API server, from a standalone YAML file, from an admission
review) are parsed into these classes exactly once, at the edge, by
:func:`keepvip.api.parse.parse_virtualip`; nothing downstream reads ``body["spec"]``.
Field names are snake_case in Python and camelCase on the wire (``alias_generator``).
Every rule that needs more than one field lives in a ``model_validator`` and names the
field it rejects, so ``kubectl apply`` and the standalone speaker say the same thing.
The CRD's OpenAPI schema is generated from these classes (:mod:`keepvip.api.crd`).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from datetime import timedelta
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from keepvip.api.addresses import address_problem, broadcast_domains, destination_problem
from keepvip.api.constants import STANDARD_MULTICAST_GROUP
from keepvip.api.durations import DURATION_PATTERN, format_duration, parse_duration
from keepvip.api.limits import PREEMPT_DELAY_MAX, PROBE_DURATION_MAX
from keepvip.api.names import HTTP_PATH_SCHEMA, IFNAME_SCHEMA, check_dns_label, check_http_path, check_ifname
from keepvip.api.phase import Phase
from keepvip.api.text import bare, kind_of, not_a_whole_number, shown
from keepvip.inet import IPAddress as IPAddress  # noqa: PLC0414 - re-exported for existing importers

IPInterface = IPv4Interface | IPv6Interface

# RFC 9568 §5.2.6 Count IPvX Addr is 8 bits; an IPv6 advertisement must also fit a
# 1500-byte link: 40 (IPv6 header) + 8 + 16·N ≤ 1500 → N ≤ 90 (vrrp-facts.md §3.2).
MAX_ADDRESSES_V4 = 255
MAX_ADDRESSES_V6 = 90

# RFC 9568 §5.2.7: 12-bit centiseconds (10 ms .. 40.95 s); RFC 3768 §5.3.7: 8-bit seconds.
V3_INTERVAL_MIN = timedelta(milliseconds=10)
V3_INTERVAL_MAX = timedelta(milliseconds=40_950)
V2_INTERVAL_MAX = timedelta(seconds=255)
CENTISECOND = timedelta(milliseconds=10)

_LINK_LOCAL_V4_MULTICAST = ipaddress.ip_network("224.0.0.0/24")
_LINK_LOCAL_V6_MULTICAST = ipaddress.ip_network("ff02::/16")


def _to_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"must be a duration string such as '100ms' or '2s', not {kind_of(value)}")


def _to_interface(value: object) -> IPInterface:
    if isinstance(value, IPv4Interface | IPv6Interface):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an address string such as '198.18.0.100/24'")
    if "%" in value:
        # "2001:db8::100%eth0/64" parses, but the kernel refuses to bind it (inet_pton).
        raise ValueError(f"{shown(value)}: write the address without a zone index (%...)")
    try:
        return ipaddress.ip_interface(value)
    except ValueError as error:
        raise ValueError(f"{shown(value)} is not an IPv4 or IPv6 address (with optional /prefix)") from error


def _to_address(value: object) -> IPAddress:
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an address string")
    try:
        return ipaddress.ip_address(value)
    except ValueError as error:
        raise ValueError(f"{shown(value)} is not an IPv4 or IPv6 address") from error


def _whole_number(value: object) -> object:
    """Refuse ``true`` and ``"3"`` before a Literal of numbers coerces them."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(not_a_whole_number(value))
    return value


def _claimable(value: IPInterface) -> IPInterface:
    problem = address_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _at_most(maximum: timedelta) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if value > maximum:
            raise ValueError(f"at most {format_duration(maximum)} (got {format_duration(value)})")
        return value

    return AfterValidator(check)


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
Address = Annotated[
    IPInterface,
    AfterValidator(_claimable),
    BeforeValidator(_to_interface),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "minLength": 2}),
]
HostAddress = Annotated[
    IPAddress,
    BeforeValidator(_to_address),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "minLength": 2}),
]
PreemptDelay = Annotated[Duration, _at_most(PREEMPT_DELAY_MAX)]
ProbeDuration = Annotated[Duration, _at_most(PROBE_DURATION_MAX)]
# Numbers are strict everywhere: YAML's `true` is not 1 and "100" is not 100.
Integer = Annotated[int, Strict()]
Priority = Annotated[int, Strict(), Field(ge=1, le=254)]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Count = Annotated[int, Strict(), Field(ge=1)]
Flag = Annotated[bool, Strict()]
DnsLabel = Annotated[
    str,
    AfterValidator(check_dns_label),
    WithJsonSchema({"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}),
]
InterfaceName = Annotated[str, AfterValidator(check_ifname), WithJsonSchema(IFNAME_SCHEMA)]
HttpPath = Annotated[str, AfterValidator(check_http_path), WithJsonSchema(HTTP_PATH_SCHEMA)]


def invalid(path: str, message: str) -> ValueError:
    """A cross-field error that names its field: rendered as ``<loc>.<path>: <message>``."""
    return ValueError(f"@{path}@ {message}")


class ApiModel(BaseModel):
    """Base of every API class: camelCase on the wire, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )  # the fields' docstrings are read when the CRD is generated (keepvip.api.field_docs)


class SelectorOperator(enum.StrEnum):
    """Kubernetes LabelSelectorRequirement operators."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(ApiModel):
    """One label requirement, as in Kubernetes' LabelSelector."""

    key: Annotated[str, Field(min_length=1)]
    """The label key the requirement applies to."""
    operator: SelectorOperator
    """In, NotIn, Exists or DoesNotExist."""
    values: tuple[str, ...] = ()
    """For In and NotIn: the values (at least one); empty for Exists and DoesNotExist."""

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        wants_values = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if wants_values and not self.values:
            raise invalid("values", f"operator {self.operator.value} needs at least one value")
        if not wants_values and self.values:
            raise invalid("values", f"operator {self.operator.value} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        present = self.key in labels
        if self.operator is SelectorOperator.EXISTS:
            return present
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return not present
        inside = present and labels[self.key] in self.values
        return inside if self.operator is SelectorOperator.IN else not inside


class LabelSelector(ApiModel):
    """A Kubernetes LabelSelector; empty selects everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Labels that must all be present with these values."""
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()
    """Requirements that must all hold."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with ``labels`` is selected (an empty selector selects all)."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )


class NodePriority(ApiModel):
    """A priority for the nodes named or selected here; the first matching entry wins."""

    node_name: str | None = None
    """The node this entry applies to (exactly one of nodeName and nodeSelector)."""
    node_selector: LabelSelector | None = None
    """The nodes this entry applies to (exactly one of nodeName and nodeSelector)."""
    priority: Priority
    """The VRRP priority of these nodes, 1..254 (higher wins the election)."""

    @model_validator(mode="after")
    def _exactly_one_target(self) -> NodePriority:
        if (self.node_name is None) == (self.node_selector is None):
            raise invalid("nodeName", "set exactly one of nodeName and nodeSelector")
        return self

    def applies_to(self, node_name: str, labels: Mapping[str, str]) -> bool:
        """Whether this entry names or selects the node."""
        if self.node_name is not None:
            return self.node_name == node_name
        assert self.node_selector is not None
        return self.node_selector.matches(labels)


# Kubernetes' own bounds (a namespace is a DNS label, a Secret name a DNS subdomain, a
# Service name a DNS-1035 label): a longer name can exist nowhere, and a 1 MB one was
# echoed whole by every refusal and status message that named the object.
NAMESPACE_MAX = 63
OBJECT_NAME_MAX = 253
SERVICE_NAME_MAX = 63


class SecretKeyRef(ApiModel):
    """A key of a Secret."""

    namespace: Annotated[str, Field(min_length=1, max_length=NAMESPACE_MAX)]
    """The Secret's namespace."""
    name: Annotated[str, Field(min_length=1, max_length=OBJECT_NAME_MAX)]
    """The Secret's name."""
    key: Annotated[str, Field(min_length=1, max_length=OBJECT_NAME_MAX)]
    """The key inside the Secret's data."""


class Authentication(ApiModel):
    """VRRPv2 authentication (RFC 2338 simple password, kept by keepalived); v2 only."""

    type: Literal["PASS"]
    """PASS: keepalived's simple text password (at most 8 bytes are sent)."""
    secret_ref: SecretKeyRef
    """The Secret key holding the password. In standalone mode a Secret document in the same file."""

    def password_problem(self, password: bytes) -> str | None:
        """Why the Secret's value cannot be this PASS password, or None.

        The model never sees the Secret; whoever resolves it (the standalone loader, the
        speaker's desired state) asks here, so the rule is written once. An empty value
        would send authentication type PASS with eight NUL bytes, which the speaker turns
        into *no* authentication: a silent downgrade, refused instead.
        """
        if not password:
            ref = self.secret_ref
            return (
                f"key {shown(ref.key)} of Secret {bare(ref.namespace)}/{bare(ref.name)} is empty, "
                "and an empty PASS password means no authentication"
            )
        return None


class ChecksumForm(enum.StrEnum):
    """How a VRRPv3-over-IPv4 checksum is sent; receive accepts both (RFC 9568 §5.2.8)."""

    PSEUDO_HEADER = "pseudoHeader"
    RFC9568 = "rfc9568"


class Vrrp(ApiModel):
    """VRRP protocol settings."""

    version: Annotated[Literal[2, 3], BeforeValidator(_whole_number)] = 3
    """VRRP version: 2 (RFC 3768, keepalived's default, allows PASS auth) or 3 (RFC 9568, needed for IPv6)."""
    advertisement_interval: Duration = timedelta(seconds=1)
    """How often the master advertises. v3: 10ms..40.95s in 10 ms steps; v2: whole seconds 1s..255s."""
    vrid: Annotated[int, Strict(), Field(ge=1, le=255)] | None = None
    """Virtual router ID 1..255; allocated by the operator when absent."""
    multicast_group: str | None = None
    """Multicast destination in 224.0.0.0/24 or ff02::/16, or 'standard' (224.0.0.18 / ff02::12).

    Allocated by the operator when absent."""
    unicast_peers: tuple[HostAddress, ...] = ()
    """Send advertisements to these addresses instead of a multicast group (each once; not a VIP)."""
    checksum: ChecksumForm = ChecksumForm.PSEUDO_HEADER
    """VRRPv3 over IPv4 checksum form sent: pseudoHeader (keepalived) or rfc9568; receive accepts both."""
    authentication: Authentication | None = None
    """VRRPv2 only: PASS authentication."""

    @property
    def interval_centiseconds(self) -> int:
        """The advertisement interval in the protocol's unit (centiseconds)."""
        return self.advertisement_interval // CENTISECOND

    def multicast_address(self) -> IPAddress | None:
        """The explicit group address, None when absent or 'standard'."""
        if self.multicast_group in (None, STANDARD_MULTICAST_GROUP):
            return None
        return ipaddress.ip_address(self.multicast_group)

    @model_validator(mode="after")
    def _protocol_rules(self) -> Vrrp:
        interval = self.advertisement_interval
        if self.version == 2:
            # RFC 3768 §5.3.7: Adver Int is an 8-bit count of whole seconds.
            if interval % timedelta(seconds=1) or not timedelta(seconds=1) <= interval <= V2_INTERVAL_MAX:
                raise invalid(
                    "advertisementInterval",
                    f"VRRPv2 needs whole seconds from 1s to 255s (got {format_duration(interval)})",
                )
        # RFC 9568 §5.2.7: 12-bit Max Adver Int in centiseconds, non-zero.
        elif interval % CENTISECOND or not V3_INTERVAL_MIN <= interval <= V3_INTERVAL_MAX:
            raise invalid(
                "advertisementInterval",
                f"VRRPv3 needs 10ms..40.95s in 10 ms steps (got {format_duration(interval)})",
            )
        if self.authentication is not None and self.version != 2:
            raise invalid("authentication", "PASS authentication exists only in VRRPv2 (set version: 2)")
        if self.multicast_group not in (None, STANDARD_MULTICAST_GROUP):
            self._check_group(str(self.multicast_group))
        for index, peer in enumerate(self.unicast_peers):
            if isinstance(peer, IPv6Address) and peer.scope_id is not None:
                # "fe80::1%eth0" is sent to, but a received advertisement's source has no
                # zone, so it never equals the peer and is dropped as a foreign sender.
                raise invalid(f"unicastPeers[{index}]", f"{shown(str(peer))}: write the peer without a zone "
                              "index (%...); spec.interface names the link")  # fmt: skip
            problem = destination_problem(peer, "peer")
            if problem is not None:
                raise invalid(f"unicastPeers[{index}]", problem)
            if peer in self.unicast_peers[:index]:
                raise invalid(f"unicastPeers[{index}]", f"{peer} is listed twice")
        return self

    @staticmethod
    def _check_group(text: str) -> None:
        if "%" in text:
            # A zone index ("ff02::12%eth0") parses, but no received packet's destination
            # carries one, so the group would match nothing; the interface names the link.
            raise invalid("multicastGroup", f"{shown(text)}: write the group without a zone index (%...)")
        try:
            group = ipaddress.ip_address(text)
        except ValueError as error:
            raise invalid(
                "multicastGroup", f"{shown(text)} is neither 'standard' nor a multicast address"
            ) from error
        if isinstance(group, IPv4Address) and group not in _LINK_LOCAL_V4_MULTICAST:
            # Groups outside 224.0.0.0/24 are pruned by IGMP snooping without a querier
            # (keepalived PR#1663: both nodes held the VIP with 224.0.10.18).
            raise invalid("multicastGroup", f"{text} must lie in 224.0.0.0/24 (link-local, always flooded)")
        if isinstance(group, IPv6Address) and group not in _LINK_LOCAL_V6_MULTICAST:
            raise invalid("multicastGroup", f"{text} must be a link-local multicast address in ff02::/16")


class TcpCheck(ApiModel):
    """Passes when a TCP connection to host:port is accepted."""

    port: Port
    """TCP port."""
    host: HostAddress = IPv4Address("127.0.0.1")
    """Address to connect to; default the node's loopback."""


class HttpScheme(enum.StrEnum):
    """HTTP check scheme."""

    HTTP = "HTTP"
    HTTPS = "HTTPS"


class HttpCheck(ApiModel):
    """Passes when an HTTP(S) GET answers with an expected status.

    HTTPS certificates are not verified, as in Kubernetes probes."""

    port: Port
    """TCP port."""
    path: HttpPath = "/"
    """Request path: starts with '/', then visible ASCII (percent-encode spaces and the rest)."""
    scheme: HttpScheme = HttpScheme.HTTP
    """HTTP or HTTPS."""
    host: HostAddress = IPv4Address("127.0.0.1")
    """Address to connect to; default the node's loopback."""
    expected_statuses: Annotated[
        tuple[Annotated[int, Strict(), Field(ge=100, le=599)], ...], Field(min_length=1)
    ] = (200,)
    """Status codes (100..599) that count as passing; at least one."""


class IcmpCheck(ApiModel):
    """Passes when host answers an ICMP echo."""

    host: HostAddress
    """Address to ping."""


class ExecCheck(ApiModel):
    """Passes when the command exits 0 within the timeout (keepalived vrrp_script)."""

    command: Annotated[tuple[str, ...], Field(min_length=1)]
    """Program and arguments, run without a shell; the program is not empty."""

    @model_validator(mode="after")
    def _program_named(self) -> ExecCheck:
        if not self.command[0].strip():
            raise invalid("command[0]", "the program is empty")
        for index, argument in enumerate(self.command):
            if "\0" in argument:  # no program can receive it: execve() takes NUL-terminated strings
                raise invalid(f"command[{index}]", f"{shown(argument)}: an argument has no NUL character")
        return self


class HealthCheck(ApiModel):
    """A health check with keepalived vrrp_script semantics (rise, fall, weight)."""

    name: DnsLabel
    """Unique name of the check (a DNS label); used in metrics and status."""
    tcp: TcpCheck | None = None
    """TCP connect check."""
    http: HttpCheck | None = None
    """HTTP(S) GET check."""
    icmp: IcmpCheck | None = None
    """ICMP echo check."""
    exec: ExecCheck | None = None
    """Command check."""
    interval: ProbeDuration = timedelta(seconds=1)
    """Time between two runs, more than 0 and at most 1h."""
    timeout: ProbeDuration = timedelta(seconds=1)
    """A run that takes longer fails; more than 0 and at most the interval."""
    rise: Count = 1
    """Consecutive passes needed to count as passing."""
    fall: Count = 1
    """Consecutive failures needed to count as failing."""
    weight: Annotated[int, Strict(), Field(ge=-253, le=253)] = 0
    """-253..253. Failing adds a negative weight to the priority, passing a positive one.

    0: failing puts the node in FAULT (it gives up the VIP)."""

    @property
    def kind(self) -> str:
        """Which of tcp, http, icmp, exec this check is."""
        return next(k for k in ("tcp", "http", "icmp", "exec") if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _one_kind(self) -> HealthCheck:
        kinds = [k for k in ("tcp", "http", "icmp", "exec") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise invalid("tcp", f"set exactly one of tcp, http, icmp, exec (got {len(kinds)})")
        if self.interval <= timedelta(0):
            raise invalid("interval", "must be more than 0")
        if self.timeout <= timedelta(0):
            raise invalid("timeout", "must be more than 0")
        if self.timeout > self.interval:
            raise invalid("timeout", "must not exceed the interval")
        return self


class Arbiter(ApiModel):
    """Split-brain guard: a node that cannot reach the gateway gives up the VIP (FAULT)."""

    gateway: str = "auto"
    """'auto' (the default route's gateway of the VRRP interface) or an address to ping."""
    interval: ProbeDuration = timedelta(seconds=1)
    """Time between two probes, more than 0 and at most 1h."""
    timeout: ProbeDuration = timedelta(milliseconds=500)
    """A probe without an answer by then fails; more than 0 and less than the interval."""
    fall: Count = 3
    """Consecutive failed probes that count as lost."""
    rise: Count = 2
    """Consecutive answered probes that count as reachable again."""

    def gateway_address(self) -> IPAddress | None:
        """The explicit gateway, or None for 'auto'."""
        return None if self.gateway == "auto" else ipaddress.ip_address(self.gateway)

    @model_validator(mode="after")
    def _gateway_is_auto_or_address(self) -> Arbiter:
        if self.gateway != "auto":
            try:
                gateway = ipaddress.ip_address(self.gateway)
            except ValueError as error:
                raise invalid("gateway", f"{shown(self.gateway)} is neither 'auto' nor an address") from error
            problem = destination_problem(gateway, "gateway")
            if problem is not None:
                raise invalid("gateway", problem)
        if self.interval <= timedelta(0):
            raise invalid("interval", "must be more than 0")
        if self.timeout <= timedelta(0):
            raise invalid("timeout", "must be more than 0")
        if self.timeout >= self.interval:
            # The next probe leaves before the previous one's answer is given up on.
            raise invalid("timeout", "must be less than the interval")
        return self


# A node rarely has more than a handful of uplinks; more entries are a generated typo,
# and each one is a netlink lookup at every start.
MAX_TRACKED_INTERFACES = 32


class TrackedInterface(ApiModel):
    """An interface whose link state moves this VirtualIP (keepalived ``track_interface``).

    "Up" is administratively up with carrier, as for the VRRP interface itself; an
    interface the node does not have counts as down (so a node missing an uplink does not
    take the VIP)."""

    name: InterfaceName
    """The interface's name on the node (1..15 bytes, no '/', ':', whitespace)."""
    weight: Annotated[int, Strict(), Field(ge=-253, le=253)] = 0
    """-253..253. 0: the interface down puts the node in FAULT (it gives up the VIP).

    Negative: added to the priority while the interface is down; positive: added while it
    is up (keepalived's semantics). The result is clamped to 1..254 together with the
    health checks' weights."""


class ServiceRef(ApiModel):
    """A Service whose status.loadBalancer.ingress receives the VIP."""

    namespace: Annotated[str, Field(min_length=1, max_length=NAMESPACE_MAX)]
    """The Service's namespace."""
    name: Annotated[str, Field(min_length=1, max_length=SERVICE_NAME_MAX)]
    """The Service's name."""


class VirtualIPSettings(ApiModel):
    """Who may hold a virtual IP and how it fails over: every VirtualIP field but its addresses.

    One model for the per-VIP settings, shared by VirtualIP's spec and by a
    VirtualIPPool's ``template`` (each address a pool hands out becomes a VirtualIP with
    these settings), so a new setting reaches pools without being written twice.
    """

    interface: InterfaceName | None = None
    """Interface to hold the VIP; default per node: the interface whose subnet holds the address."""
    node_selector: LabelSelector = Field(default_factory=LabelSelector)
    """Nodes that take part; default every node that runs a speaker."""
    priority: Priority = 100
    """Base VRRP priority 1..254 (higher wins)."""
    node_priorities: tuple[NodePriority, ...] = ()
    """Per-node priorities; the first matching entry wins, else priority."""
    preempt: Flag = True
    """A higher-priority node takes the VIP back; false = keepalived nopreempt."""
    preempt_delay: PreemptDelay = timedelta(0)
    """How long a higher-priority node waits before it pre-empts; at most 1000s (keepalived's bound)."""
    vrrp: Vrrp = Field(default_factory=Vrrp)
    """VRRP protocol settings."""
    health_checks: tuple[HealthCheck, ...] = ()
    """Checks whose results change the priority or put the node in FAULT."""
    arbiter: Arbiter | None = None
    """Split-brain guard."""
    track_interfaces: Annotated[
        tuple[TrackedInterface, ...], Field(max_length=MAX_TRACKED_INTERFACES)
    ] = ()
    """Other interfaces whose link state changes the priority (weight) or puts the node in FAULT (0)."""
    sync_group: DnsLabel | None = None
    """A name shared by VirtualIPs that must change state together on a node (keepalived vrrp_sync_group).

    On a node, while any member is in FAULT the others are held in FAULT too, and when a
    member loses MASTER to another node the members still MASTER give it up, so a group's
    addresses are held by one node. Give the members the same priorities on every node."""

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [check.name for check in self.health_checks]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise invalid(f"healthChecks[{index}].name", f"{name!r} is used twice")
        tracked = [entry.name for entry in self.track_interfaces]
        for index, name in enumerate(tracked):
            if name in tracked[:index]:
                raise invalid(f"trackInterfaces[{index}].name", f"{name!r} is listed twice")
        return self


class VirtualIPSpec(VirtualIPSettings):
    """The desired virtual IP: its addresses, who may hold them, and how they fail over."""

    addresses: Annotated[tuple[Address, ...], Field(min_length=1)]
    """Virtual addresses with optional prefix (default /32 or /128); one address family."""
    service_ref: ServiceRef | None = None
    """Service whose status receives the VIP."""

    @property
    def family(self) -> int:
        """4 or 6: the address family of every address."""
        return self.addresses[0].version

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with these labels takes part."""
        return self.node_selector.matches(labels)

    def priority_for(self, node_name: str, labels: Mapping[str, str]) -> int:
        """This node's base priority: the first matching nodePriorities entry, else priority."""
        for entry in self.node_priorities:
            if entry.applies_to(node_name, labels):
                return entry.priority
        return self.priority

    def _check_peers(self) -> None:
        """Peers of the VIP's family, none of them the VIP itself or its subnet's broadcast."""
        own = {a.ip for a in self.addresses}
        for index, peer in enumerate(self.vrrp.unicast_peers):
            field = f"vrrp.unicastPeers[{index}]"
            if peer.version != self.family:
                raise invalid(field, f"must be IPv{self.family} like the addresses")
            if peer in own:
                raise invalid(field, f"{peer} is one of this VirtualIP's addresses")
            for network in broadcast_domains(self.addresses):
                if peer == network.broadcast_address:
                    raise invalid(field, f"{peer} is the broadcast address of {network}")

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VirtualIPSpec:
        families = {a.version for a in self.addresses}
        if len(families) > 1:
            raise invalid("addresses", "all addresses must be of one family (make one VirtualIP per family)")
        if len({a.ip for a in self.addresses}) != len(self.addresses):
            raise invalid("addresses", "an address is listed twice")
        family = self.family
        limit = MAX_ADDRESSES_V4 if family == 4 else MAX_ADDRESSES_V6
        if len(self.addresses) > limit:
            raise invalid("addresses", f"at most {limit} IPv{family} addresses fit one advertisement")
        if family == 6 and self.vrrp.version != 3:
            raise invalid("vrrp.version", "IPv6 addresses need VRRPv3 (RFC 3768 is IPv4 only)")
        group = self.vrrp.multicast_address()
        if group is not None and group.version != family:
            raise invalid("vrrp.multicastGroup", f"must be an IPv{family} group like the addresses")
        self._check_peers()
        if self.arbiter is not None:
            gateway = self.arbiter.gateway_address()
            if gateway is not None and gateway.version != family:
                raise invalid("arbiter.gateway", f"must be IPv{family} like the addresses")
        return self


class VrrpState(enum.StrEnum):
    """A node's VRRP state as reported in status.nodes."""

    INITIALIZE = "INITIALIZE"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"


class NodeStatus(ApiModel):
    """One node's view, written by that node's speaker (its own server-side-apply field manager)."""

    node: str
    """The node name (the list's key)."""
    state: VrrpState
    """INITIALIZE, BACKUP, MASTER or FAULT."""
    priority: Annotated[int, Strict(), Field(ge=0, le=255)] | None = None
    """The node's base priority."""
    effective_priority: Annotated[int, Strict(), Field(ge=0, le=255)] | None = None
    """The priority after health-check weights."""
    interface: str | None = None
    """The interface running VRRP on the node."""
    since: str | None = None
    """When the node entered this state (RFC 3339)."""
    reason: str | None = None
    """Why it entered this state."""
    message: str | None = None
    """In FAULT because the VirtualIP cannot run on this node: the field and what is wrong."""
    conflict: str | None = None
    """An advertisement for this VRID that disagrees with this VirtualIP (a VRID collision sign)."""


class Condition(ApiModel):
    """A Kubernetes-style condition (Ready, Allocated, Degraded, SplitBrain, Conflict, InvalidSpec)."""

    type: str
    """The condition type."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str | None = None
    """A CamelCase reason from a fixed set."""
    message: str | None = None
    """A human-readable explanation."""
    last_transition_time: str | None = None
    """When the status last changed (RFC 3339)."""
    observed_generation: Integer | None = None
    """The generation this condition was computed from."""


def _none_is_empty(value: object) -> object:
    """A list the API server stored as null (every owner withdrew) is an empty list."""
    return () if value is None else value


class SettledView(ApiModel):
    """Which nodes the operator counts as MASTER and BACKUP once a takeover has landed.

    ``nodes`` is what each speaker reports right now, half-way through a takeover too;
    this is the operator's settled reading of it, which status and Events tell. Kept in
    status so a restarted operator goes on from the same reading.
    """

    masters: tuple[str, ...] = ()
    """The nodes counted as MASTER (more than one: a split brain)."""
    backups: tuple[str, ...] = ()
    """The nodes counted as BACKUP."""
    backup_pending: bool = False
    """A new master has no backup yet, for less than the settling grace period."""


class VirtualIPStatus(ApiModel):
    """What the operator and the speakers observed."""

    vrid: Annotated[int, Strict(), Field(ge=1, le=255)] | None = None
    """The VRID in use."""
    multicast_group: str | None = None
    """The multicast group in use."""
    master: str | None = None
    """The node holding the VIP."""
    state: Phase | None = None
    """Summary: Pending, Ready, Degraded, SplitBrain, Conflict or Invalid."""
    settled: SettledView | None = None
    """The operator's settled reading of the nodes (what it rebuilds its view from after a restart)."""
    nodes: Annotated[tuple[NodeStatus, ...], BeforeValidator(_none_is_empty)] = Field(
        default=(),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["node"],
            "nullable": True,  # server-side apply leaves null when the last owner withdraws
        },
    )
    """One entry per participating node, written by that node's speaker."""
    conditions: Annotated[tuple[Condition, ...], BeforeValidator(_none_is_empty)] = Field(
        default=(),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "nullable": True,
        },
    )
    """Ready, Allocated, Degraded, SplitBrain, Conflict, InvalidSpec."""
    observed_generation: Integer | None = None
    """The generation the operator last reconciled."""


class ObjectMeta(BaseModel):
    """The part of Kubernetes ObjectMeta keepvip reads; other fields are kept as they are."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: Integer | None = None
    uid: str | None = None
    resource_version: str | None = None


class VirtualIP(ApiModel):
    """A VirtualIP resource (cluster-scoped)."""

    api_version: Literal["keepvip.io/v1alpha1"] = "keepvip.io/v1alpha1"
    kind: Literal["VirtualIP"] = "VirtualIP"
    metadata: ObjectMeta
    spec: VirtualIPSpec
    status: VirtualIPStatus | None = None

    @property
    def name(self) -> str:
        """metadata.name."""
        return self.metadata.name

    def to_body(self) -> dict[str, Any]:
        """The resource as the API server would hold it (camelCase, durations as strings)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
