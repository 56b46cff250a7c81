"""The VirtualIPPool resource: address ranges that Services of ``type: LoadBalancer`` draw from.

A pool is cluster-scoped (addresses are a network resource, like Nodes). Its
``template`` carries the VirtualIP fields every address handed out gets, reusing the
VirtualIP spec's own sub-models, so a pool can give its Services health checks, an
arbiter or VRRP authentication and the rules that check them are written once.

Addresses are written as CIDRs (``198.18.0.96/28``) or ``first-last`` ranges
(``198.18.0.100-198.18.0.120``), IPv4 and IPv6 in one pool. They are kept as integer
blocks (:class:`Block`) and never expanded: an IPv6 /64 is a valid pool.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, WithJsonSchema, model_validator

from keepvip.api.addresses import address_problem
from keepvip.api.model import (
    ApiModel,
    Condition,
    Duration,
    Flag,
    Integer,
    LabelSelector,
    ObjectMeta,
    VirtualIPSettings,
    invalid,
)
from keepvip.api.parse import FieldError, field_errors
from keepvip.api.text import shown
from keepvip.inet import IPAddress

POOL_KIND = "VirtualIPPool"
POOL_PLURAL = "virtualippools"
POOL_SINGULAR = "virtualippool"
POOL_SHORT_NAMES = ("vippool",)
POOL_CRD_NAME = f"{POOL_PLURAL}.keepvip.io"

REUSE_DELAY_MAX = timedelta(hours=24)
INT64_MAX = 2**63 - 1
"""Kubernetes integers are int64; an IPv6 /64 holds 2^64 addresses, so counts are capped."""


@dataclass(frozen=True, order=True)
class Block:
    """A contiguous run of addresses of one family, as integers (first <= last)."""

    family: int
    first: int
    last: int

    @property
    def size(self) -> int:
        """How many addresses the block holds."""
        return self.last - self.first + 1

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return address.version == self.family and self.first <= int(address) <= self.last

    def overlaps(self, other: Block) -> bool:
        """Whether the two blocks share an address."""
        return self.family == other.family and self.first <= other.last and other.first <= self.last

    def address(self, offset: int) -> IPAddress:
        """The address ``offset`` places after ``first``."""
        return ipaddress.ip_address(self.first + offset)

    def __str__(self) -> str:
        first, last = ipaddress.ip_address(self.first), ipaddress.ip_address(self.last)
        return str(first) if first == last else f"{first}-{last}"


def parse_block(text: str, reserve_ends: bool = False) -> Block:
    """One ``addresses``/``exclude`` entry; ``reserve_ends`` drops a CIDR's unusable ends.

    A CIDR's network address and (IPv4) broadcast address are not host addresses
    (RFC 919 §7, RFC 1122 §3.2.1.3); in IPv6 the first address of a subnet is the
    Subnet-Router anycast address (RFC 4291 §2.6.1) and there is no broadcast.
    Point-to-point prefixes (/31, /32, /127, /128, RFC 3021) keep every address.
    """
    text = text.strip()
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{shown(text)} is not a CIDR such as 198.18.0.96/28") from None
        if str(network) != text and network.with_prefixlen != text:
            raise ValueError(f"{shown(text)} has host bits set: write {network}")
        first, last = int(network.network_address), int(network.broadcast_address)
        if reserve_ends and network.num_addresses > 2:
            first += 1
            if network.version == 4:
                last -= 1
        return Block(network.version, first, last)
    first_text, dash, last_text = text.partition("-")
    try:
        first_ip = ipaddress.ip_address(first_text.strip())
        last_ip = ipaddress.ip_address(last_text.strip()) if dash else first_ip
    except ValueError:
        raise ValueError(f"{shown(text)} is neither a CIDR nor an address nor a first-last range") from None
    if first_ip.version != last_ip.version:
        raise ValueError(f"{shown(text)} mixes IPv4 and IPv6")
    if int(first_ip) > int(last_ip):
        raise ValueError(f"{shown(text)}: the first address is after the last")
    return Block(first_ip.version, int(first_ip), int(last_ip))


def _check_entry(text: str) -> str:
    block = parse_block(text)
    for end in (block.address(0), block.address(block.size - 1)):
        # A range whose ends are claimable may still span a special block (e.g. 127/8 inside
        # 0.0.0.0/0); the ends and the whole-network test below catch what users write.
        problem = address_problem(ipaddress.ip_interface(str(end)))
        if problem is not None:
            raise ValueError(problem)
    return text


BlockText = Annotated[
    str,
    AfterValidator(_check_entry),
    WithJsonSchema({"type": "string", "minLength": 2, "maxLength": 100}),
]


def _none_is_empty(value: object) -> object:
    """A list the API server stored as null is an empty list."""
    return () if value is None else value


PoolPriority = Annotated[int, Field(ge=0, le=1000, strict=True)]


class PoolTemplate(VirtualIPSettings):
    """The VirtualIP fields every address of the pool gets: VirtualIP's own settings model.

    Everything but ``addresses`` (the pool hands those out) and ``serviceRef`` (the
    Services are the record's owners); health checks here are added to a Service's
    built-in ones, and ``vrrp.vrid`` must stay unset.
    """

    @model_validator(mode="after")
    def _one_router_per_address(self) -> PoolTemplate:
        if self.vrrp.vrid is not None:
            raise invalid("vrrp.vrid", "leave unset: every address of a pool is its own virtual router")
        return self


class VirtualIPPoolSpec(ApiModel):
    """Addresses that LoadBalancer Services draw from, and the VirtualIP fields they get."""

    addresses: Annotated[tuple[BlockText, ...], Field(min_length=1)]
    """CIDRs (198.18.0.96/28, 2001:db8:1::/120) or first-last ranges (198.18.0.100-198.18.0.120)."""
    exclude: tuple[BlockText, ...] = ()
    """Addresses (same forms) never handed out."""
    reserve_network_and_broadcast: Flag = True
    """For CIDR entries: skip the network address and the IPv4 broadcast address."""
    auto_assign: Flag = True
    """false: addresses are given only to Services that ask for one (annotation or pool name)."""
    disabled: Flag = False
    """true: no new allocations; addresses in use stay."""
    priority: PoolPriority = 100
    """When several pools match a Service the lowest priority wins (then the name)."""
    service_selector: LabelSelector | None = None
    """Only Services with these labels draw from this pool automatically (absent: all)."""
    namespace_selector: LabelSelector | None = None
    """Only Services in namespaces with these labels (absent: all namespaces)."""
    reuse_delay: Duration | None = None
    """How long a released address rests before another Service may take it (absent: the chart's value)."""
    template: PoolTemplate = Field(default_factory=PoolTemplate)
    """The VirtualIP fields every address gets."""

    def blocks(self) -> list[Block]:
        """The usable addresses: ``addresses`` (ends reserved as asked) minus ``exclude``."""
        wanted = [parse_block(t, self.reserve_network_and_broadcast) for t in self.addresses]
        return subtract(wanted, [parse_block(t) for t in self.exclude])

    def families(self) -> set[int]:
        """The address families the pool offers."""
        return {block.family for block in self.blocks()}

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VirtualIPPoolSpec:
        declared = [parse_block(t) for t in self.addresses]
        for index, block in enumerate(declared):
            for earlier in declared[:index]:
                if block.overlaps(earlier):
                    raise invalid(f"addresses[{index}]", f"{block} overlaps {earlier}")
        if self.reuse_delay is not None and not timedelta(0) <= self.reuse_delay <= REUSE_DELAY_MAX:
            raise invalid("reuseDelay", "must be between 0s and 24h")
        if 6 in {b.family for b in declared} and self.template.vrrp.version != 3:
            raise invalid("template.vrrp.version", "IPv6 addresses need VRRPv3 (RFC 3768 is IPv4 only)")
        if not self.blocks():
            raise invalid("exclude", "excludes every address of the pool")
        return self


def subtract(blocks: list[Block], remove: list[Block]) -> list[Block]:
    """``blocks`` without the addresses of ``remove``, sorted, each family apart."""
    result: list[Block] = []
    for block in sorted(blocks):
        pieces = [block]
        for hole in remove:
            next_pieces: list[Block] = []
            for piece in pieces:
                if not piece.overlaps(hole):
                    next_pieces.append(piece)
                    continue
                if piece.first < hole.first:
                    next_pieces.append(Block(piece.family, piece.first, hole.first - 1))
                if hole.last < piece.last:
                    next_pieces.append(Block(piece.family, hole.last + 1, piece.last))
            pieces = next_pieces
        result.extend(pieces)
    return result


class FamilyUsage(ApiModel):
    """How many addresses of one family the pool has, gives out and has left."""

    total: Integer = 0
    """Usable addresses (capped at 2^63-1)."""
    assigned: Integer = 0
    """Addresses held by Services (inside the pool's current ranges)."""
    available: Integer = 0
    """total - assigned."""


class ReleasedAddress(ApiModel):
    """An address a Service gave back: it rests ``reuseDelay`` before another Service may take it."""

    address: str
    """The address."""
    service: str
    """namespace/name of the Service that held it (it may take it back at once)."""
    released_at: str
    """When it was released (RFC 3339)."""


class VirtualIPPoolStatus(ApiModel):
    """What the operator observed of the pool."""

    ipv4: FamilyUsage | None = None
    """IPv4 usage."""
    ipv6: FamilyUsage | None = None
    """IPv6 usage."""
    orphaned: Integer = 0
    """Addresses still held by Services although a pool edit moved them out of range (never moved)."""
    released: Annotated[tuple[ReleasedAddress, ...], BeforeValidator(_none_is_empty)] = ()
    """Recently released addresses, resting for reuseDelay."""
    conditions: Annotated[tuple[Condition, ...], BeforeValidator(_none_is_empty)] = Field(
        default=(),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "nullable": True,
        },
    )
    """Ready (the spec is usable), Conflict (reason Overlap: addresses shared with another pool)."""
    observed_generation: Integer | None = None
    """The generation the operator last read."""


class VirtualIPPool(ApiModel):
    """A VirtualIPPool resource (cluster-scoped)."""

    api_version: Literal["keepvip.io/v1alpha1"] = "keepvip.io/v1alpha1"
    kind: Literal["VirtualIPPool"] = "VirtualIPPool"
    metadata: ObjectMeta
    spec: VirtualIPPoolSpec
    status: VirtualIPPoolStatus | None = None

    @property
    def name(self) -> str:
        """metadata.name."""
        return self.metadata.name


class InvalidPool(ValueError):
    """A VirtualIPPool document that does not satisfy the API; ``errors`` names every field."""

    def __init__(self, name: str | None, errors: list[FieldError]) -> None:
        self.name = name
        self.errors = errors
        subject = f"VirtualIPPool {shown(name)}" if name else "VirtualIPPool"
        super().__init__(f"{subject} is invalid: " + "; ".join(str(e) for e in errors))


def parse_pool(body: dict[str, Any]) -> VirtualIPPool:
    """Parse one VirtualIPPool (status read leniently: a bad status is dropped, not fatal)."""
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    document = {k: v for k, v in body.items() if k != "status"}
    try:
        pool = VirtualIPPool.model_validate(document)
    except ValidationError as error:
        raise InvalidPool(name if isinstance(name, str) else None, field_errors(error)) from None
    raw_status = body.get("status")
    if isinstance(raw_status, dict):
        try:
            status = VirtualIPPoolStatus.model_validate(raw_status)
        except ValidationError:
            return pool
        return pool.model_copy(update={"status": status})
    return pool
