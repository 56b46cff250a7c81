"""Pool arithmetic (pure): which pools a Service may draw from, and the hashed sticky choice.

The choice starts at ``sha256(namespace/name) mod size`` in the pool's usable addresses
and walks forward to the first free one. A Service that is deleted and re-created
therefore lands on its old address again when that is still free, and Services created
in a different order still get the same addresses (MetalLB and Cilium take the first
free address, so a restart that replays creations in another order renumbers them).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from keepvip.api.pool import INT64_MAX, Block, VirtualIPPool, parse_block
from keepvip.inet import IPAddress
from keepvip.operator.lb.service import LbService


@dataclass(frozen=True)
class PoolView:
    """A parsed pool with its usable blocks computed once."""

    pool: VirtualIPPool
    blocks: tuple[Block, ...]

    @classmethod
    def of(cls, pool: VirtualIPPool) -> PoolView:
        """The view of a parsed pool."""
        return cls(pool, tuple(pool.spec.blocks()))

    @property
    def name(self) -> str:
        """The pool's name."""
        return self.pool.name

    def family_blocks(self, family: int) -> tuple[Block, ...]:
        """The usable blocks of one family."""
        return tuple(b for b in self.blocks if b.family == family)

    def size(self, family: int) -> int:
        """Usable addresses of a family, capped at int64."""
        return min(INT64_MAX, sum(b.size for b in self.family_blocks(family)))

    def __contains__(self, address: object) -> bool:
        return any(address in block for block in self.blocks)

    def declared(self, address: IPAddress) -> bool:
        """Whether ``address`` lies in the pool's ranges (reserved ends and excludes included)."""
        return any(address in parse_block(text) for text in self.pool.spec.addresses)

    def serves(self, service: LbService, namespace_labels: Mapping[str, str], family: int) -> bool:
        """Whether the pool hands ``service`` an address of ``family`` without being named."""
        spec = self.pool.spec
        if spec.disabled or not spec.auto_assign or not self.family_blocks(family):
            return False
        if spec.service_selector is not None and not spec.service_selector.matches(service.labels or {}):
            return False
        return spec.namespace_selector is None or spec.namespace_selector.matches(namespace_labels)

    def reuse_delay(self, default: timedelta) -> timedelta:
        """How long a released address rests."""
        return self.pool.spec.reuse_delay if self.pool.spec.reuse_delay is not None else default


def ordered(pools: Iterable[PoolView]) -> list[PoolView]:
    """Lower priority first, then by name (deterministic)."""
    return sorted(pools, key=lambda view: (view.pool.spec.priority, view.name))


def _start(key: str, size: int) -> int:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:16], "big") % size


def pick(key: str, blocks: tuple[Block, ...], unavailable: set[IPAddress]) -> IPAddress | None:
    """The first free address at or after ``key``'s hash point, wrapping; None when full.

    Each step either finds a free address or passes an unavailable one, so the walk is
    at most ``len(unavailable) + 1`` steps even in an IPv6 /64.
    """
    size = sum(b.size for b in blocks)
    if size == 0:
        return None
    index = _start(key, size)
    for _ in range(min(size, len(unavailable) + 1)):
        address = _at(blocks, index)
        if address not in unavailable:
            return address
        index = (index + 1) % size
    return None


def _at(blocks: tuple[Block, ...], index: int) -> IPAddress:
    for block in blocks:
        if index < block.size:
            return block.address(index)
        index -= block.size
    raise IndexError(index)


def resting(view: PoolView, now: datetime, default_delay: timedelta) -> dict[IPAddress, str]:
    """Addresses released less than reuseDelay ago → the Service that gave each back."""
    delay = view.reuse_delay(default_delay)
    result: dict[IPAddress, str] = {}
    for entry in view.pool.status.released if view.pool.status else ():
        try:
            at = datetime.fromisoformat(entry.released_at.replace("Z", "+00:00"))
            address = ipaddress.ip_address(entry.address)
        except ValueError:
            continue
        if now - at < delay:
            result[address] = entry.service
    return result
