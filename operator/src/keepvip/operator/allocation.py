"""Which (multicastGroup, vrid) pair each VirtualIP gets: pure decisions over a ledger.

A VRRP virtual router is identified on a LAN by its destination and its VRID (RFC 9568
§5.2.3: one VRID per virtual router on a LAN; §5.1.1.2 / §5.1.2.2: the destination is
the group 224.0.0.18 / ff02::12). Giving each VirtualIP its own (group, vrid) pair lets
two VirtualIPs, two clusters or a keepalived pair on the same LAN reuse a VRID without
cross-talk, and takes keepvip past 255 virtual routers.

The ledger (uid -> name and pair) is the durable record; :mod:`keepvip.operator.kube`
keeps it in a ConfigMap written with compare-and-swap, and this module only decides:

* an existing ledger entry is kept while it still satisfies the spec's pins (stable
  across restarts, upgrades and pool changes);
* explicit pins (``spec.vrrp.vrid``, ``spec.vrrp.multicastGroup``) are honoured, and a
  pinned pair held by another VirtualIP is refused (:attr:`Problem.PAIR_IN_USE`);
* a pair the VirtualIP's status already records is re-adopted when free (a lost
  ledger is rebuilt from the statuses instead of reshuffling every VIP);
* otherwise the search starts at a point derived from the VirtualIP's first address, so
  two clusters that share a LAN and a pool rarely pick the same pairs, and it prefers
  VRIDs that no other VirtualIP of the family uses, so VRIDs stay unique while they
  last (easier to read in tcpdump, and safe with peers that look only at the VRID).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from keepvip.api.constants import STANDARD_MULTICAST_GROUP
from keepvip.api.model import VirtualIP
from keepvip.inet import IPAddress, vrrp_group
from keepvip.operator.problems import Problem
from keepvip.operator.settings import AllocationSettings


@dataclass(frozen=True, order=True)
class Pair:
    """What identifies one virtual router on a LAN: the multicast group and the VRID."""

    group: IPAddress
    vrid: int

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.group.version

    def __str__(self) -> str:
        return f"{self.group} vrid {self.vrid}"


@dataclass(frozen=True)
class LedgerEntry:
    """One allocation: which VirtualIP (by name, for humans) holds which pair."""

    name: str
    pair: Pair


Ledger = Mapping[str, LedgerEntry]
"""VirtualIP uid -> its allocation."""


def _expand(entry: str) -> list[IPAddress]:
    first_text, _, last_text = entry.partition("-")
    first = ipaddress.ip_address(first_text.strip())
    last = ipaddress.ip_address(last_text.strip()) if last_text else first
    return [ipaddress.ip_address(value) for value in range(int(first), int(last) + 1)]


@dataclass(frozen=True)
class Pool:
    """The groups and VRIDs the operator hands out when the spec pins nothing."""

    groups_v4: tuple[IPAddress, ...]
    groups_v6: tuple[IPAddress, ...]
    vrids: range

    @classmethod
    def from_settings(cls, settings: AllocationSettings) -> Pool:
        """Expand the settings' ranges (duplicates dropped, order kept)."""
        v4 = tuple(dict.fromkeys(g for entry in settings.ipv4_groups for g in _expand(entry)))
        v6 = tuple(dict.fromkeys(g for entry in settings.ipv6_groups for g in _expand(entry)))
        return cls(v4, v6, range(settings.vrid_first, settings.vrid_last + 1))

    def groups(self, family: int) -> tuple[IPAddress, ...]:
        """The groups of one address family."""
        return self.groups_v4 if family == 4 else self.groups_v6

    def size(self, family: int) -> int:
        """How many pairs the pool holds for a family."""
        return len(self.groups(family)) * len(self.vrids)

    def __contains__(self, pair: object) -> bool:
        return isinstance(pair, Pair) and pair.vrid in self.vrids and pair.group in self.groups(pair.family)


@dataclass(frozen=True)
class Request:
    """What one VirtualIP asks of the allocator."""

    uid: str
    name: str
    family: int
    vrid: int | None = None
    """Pinned by spec.vrrp.vrid."""
    group: IPAddress | None = None
    """Pinned by spec.vrrp.multicastGroup ('standard' resolved to the RFC group)."""
    recorded: Pair | None = None
    """The pair status already records (re-adopted if the ledger lost it)."""
    seed: str = ""
    """Where the search starts (the first address): spreads clusters over the pool."""

    @classmethod
    def from_virtualip(cls, vip: VirtualIP) -> Request:
        """The request a parsed VirtualIP makes."""
        spec = vip.spec
        family = spec.family
        text = spec.vrrp.multicast_group
        group: IPAddress | None
        if text is None:
            group = None
        elif text == STANDARD_MULTICAST_GROUP:
            group = vrrp_group(family)
        else:
            group = ipaddress.ip_address(text)
        recorded = None
        status = vip.status
        if status is not None and status.vrid is not None and status.multicast_group:
            try:
                recorded = Pair(ipaddress.ip_address(status.multicast_group), status.vrid)
            except ValueError:
                recorded = None
        return cls(
            uid=vip.metadata.uid or vip.name,
            name=vip.name,
            family=family,
            vrid=spec.vrrp.vrid,
            group=group,
            recorded=recorded,
            seed=str(spec.addresses[0].ip),
        )

    def accepts(self, pair: Pair) -> bool:
        """Whether the pair satisfies this request's family and pins."""
        return (
            pair.family == self.family
            and (self.vrid is None or pair.vrid == self.vrid)
            and (self.group is None or pair.group == self.group)
        )


@dataclass(frozen=True)
class Allocated:
    """The VirtualIP holds ``pair``; ``is_new`` means the ledger must record it."""

    pair: Pair
    is_new: bool


@dataclass(frozen=True)
class Refused:
    """No pair, and why (a message that names the field to change)."""

    problem: Problem  # POOL_EXHAUSTED or PAIR_IN_USE
    message: str


def _seed_index(seed: str, size: int) -> int:
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def _candidates(request: Request, pool: Pool) -> Iterator[Pair]:
    groups = (request.group,) if request.group is not None else pool.groups(request.family)
    vrids: tuple[int, ...] = (request.vrid,) if request.vrid is not None else tuple(pool.vrids)
    size = len(groups) * len(vrids)
    if size == 0:
        return
    start = _seed_index(request.seed or request.name, size)
    for offset in range(size):
        index = (start + offset) % size
        yield Pair(groups[index // len(vrids)], vrids[index % len(vrids)])


def allocate(
    request: Request,
    ledger: Ledger,
    pool: Pool,
    reserved: Mapping[Pair, str] | None = None,
) -> Allocated | Refused:
    """Decide the pair for ``request`` given the ledger (and other VirtualIPs' pins).

    ``reserved`` maps pairs that other VirtualIPs pin in their spec (but may not have
    been allocated yet) to their names: automatic choices avoid them.
    """
    existing = ledger.get(request.uid)
    if existing is not None and request.accepts(existing.pair):
        return Allocated(existing.pair, is_new=False)
    taken = {entry.pair: entry.name for uid, entry in ledger.items() if uid != request.uid}
    if request.vrid is not None and request.group is not None:
        pinned = Pair(request.group, request.vrid)
        holder = taken.get(pinned)
        if holder is not None:
            return Refused(
                Problem.PAIR_IN_USE,
                f"spec.vrrp.vrid: {pinned} is already used by VirtualIP {holder!r}",
            )
        return Allocated(pinned, is_new=True)
    if request.recorded is not None and request.accepts(request.recorded) and request.recorded not in taken:
        return Allocated(request.recorded, is_new=True)
    avoid = {pair for pair, name in (reserved or {}).items() if name != request.name}
    found = _search(request, pool, taken.keys() | avoid)
    if found is not None:
        return Allocated(found, is_new=True)
    return Refused(Problem.POOL_EXHAUSTED, _exhausted_message(request, pool))


def _search(request: Request, pool: Pool, unavailable: set[Pair]) -> Pair | None:
    """The first free candidate whose VRID no other pair of the family uses, else the first free."""
    used_vrids = {pair.vrid for pair in unavailable if pair.family == request.family}
    fallback: Pair | None = None
    for pair in _candidates(request, pool):
        if pair in unavailable:
            continue
        if pair.vrid not in used_vrids:
            return pair
        if fallback is None:
            fallback = pair
    return fallback


def _exhausted_message(request: Request, pool: Pool) -> str:
    if request.vrid is not None:
        return f"spec.vrrp.vrid: every IPv{request.family} group of the pool already uses VRID {request.vrid}"
    if request.group is not None:
        return f"spec.vrrp.multicastGroup: every VRID of group {request.group} is in use"
    return (
        f"the IPv{request.family} pool ({pool.size(request.family)} pairs) is exhausted: "
        "widen allocation.vridFirst/vridLast or the group ranges, or pin spec.vrrp.multicastGroup"
    )


def stale_uids(ledger: Ledger, live_uids: set[str]) -> set[str]:
    """Ledger entries whose VirtualIP no longer exists (removed without the finalizer)."""
    return {uid for uid in ledger if uid not in live_uids}


def pool_usage(ledger: Ledger, pool: Pool, family: int) -> tuple[int, int]:
    """(size, used) of the pool for a family; pinned pairs outside the pool are not counted."""
    used = sum(1 for entry in ledger.values() if entry.pair.family == family and entry.pair in pool)
    return pool.size(family), used


# The ConfigMap form: data[uid] = '{"name": ..., "group": ..., "vrid": ...}'.


def encode_entry(entry: LedgerEntry) -> str:
    """One ledger value as stored in the ConfigMap."""
    return json.dumps({"name": entry.name, "group": str(entry.pair.group), "vrid": entry.pair.vrid})


def decode_ledger(data: Mapping[str, str]) -> dict[str, LedgerEntry]:
    """The ledger held in a ConfigMap's data; values that do not parse are skipped."""
    ledger: dict[str, LedgerEntry] = {}
    for uid, text in data.items():
        try:
            raw = json.loads(text)
            pair = Pair(ipaddress.ip_address(raw["group"]), int(raw["vrid"]))
            ledger[uid] = LedgerEntry(str(raw["name"]), pair)
        except (ValueError, KeyError, TypeError):
            continue
    return ledger
