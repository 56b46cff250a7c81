"""What the VRRP state machine asks its adapter to do.

The router never touches a socket, an interface or a clock (DESIGN.md: the core is
sans-IO). Every input returns a list of these values; the speaker executes them **in
list order**. Whenever the state changes, the `StateChanged` comes first and the side
effects of the change follow in the order they must happen (e.g. add the VIPs, send the
advertisement, then announce them, as RFC 9568 §6.4.2 orders it).
"""

from __future__ import annotations

from dataclasses import dataclass

from keepvip.inet import IPAddress
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.drops import DropReason
from keepvip.speaker.vrrp.state import State, TransitionReason


@dataclass(frozen=True, slots=True)
class SendAdvertisement:
    """Encode and multicast (or unicast to the peers) this ADVERTISEMENT now."""

    advertisement: Advertisement


@dataclass(frozen=True, slots=True)
class AddAddresses:
    """Bind these VIPs to the VRRP interface (idempotent: an existing address is fine)."""

    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    """Unbind these VIPs from the VRRP interface (idempotent: a missing address is fine)."""

    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell the LAN where these VIPs now live (RFC 9568 §6.4.2, §8.1.2, §8.2.2).

    Gratuitous ARP for IPv4, unsolicited Neighbor Advertisement with the Override flag
    for IPv6. The adapter sends keepalived's burst: 5 now, 5 more after 5 s
    (and an optional periodic refresh while still master).
    """

    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The router moved from ``old`` to ``new`` because of ``reason``."""

    old: State
    new: State
    reason: TransitionReason


@dataclass(frozen=True, slots=True)
class Dropped:
    """A received advertisement was discarded by a receive check (RFC 9568 §7.1).

    The RFC says the event SHOULD be logged: the adapter logs it rate-limited and counts
    it as ``keepvip_advert_dropped_total{reason=...}``.
    """

    reason: DropReason
    source: IPAddress


@dataclass(frozen=True, slots=True)
class ConfigMismatch:
    """A received advertisement was *processed*, but disagrees with our configuration.

    RFC 9568 §7.1: the receiver SHOULD verify the Max Adver Int and MAY verify the
    address list against its own, and SHOULD log a mismatch without dropping (VRRPv3);
    ``reason`` is `DropReason.INTERVAL_MISMATCH` or `DropReason.ADDRESS_MISMATCH`. An
    address-list mismatch is the classic sign of a VRID collision (keepalived: "ip
    address associated with VRID not present in MASTER advert"); the speaker surfaces
    it as the VirtualIP's ``Conflict`` condition. Emitted for every such advertisement:
    the adapter rate-limits its logs.
    """

    reason: DropReason
    source: IPAddress
    advertisement: Advertisement


Action = (
    SendAdvertisement
    | AddAddresses
    | RemoveAddresses
    | Announce
    | StateChanged
    | Dropped
    | ConfigMismatch
)
