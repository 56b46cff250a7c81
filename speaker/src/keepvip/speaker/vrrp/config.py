"""One virtual router's configuration, as the state machine needs it.

The speaker derives a `RouterConfig` from a VirtualIP (already validated by
``keepvip.api``) and the node's interface; this class re-checks only what would make
the state machine itself wrong, so it stays usable without the API model (tests,
benchmarks). Invalid local configuration raises `ValueError`; invalid *remote* input
never raises (see `VirtualRouter.receive`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from keepvip.inet import PREEMPT_DELAY_MAX_S as SHARED_PREEMPT_DELAY_MAX_S
from keepvip.inet import IPAddress
from keepvip.speaker.vrrp.constants import (
    PRIORITY_DEFAULT,
    PRIORITY_MIN_BACKUP,
    PRIORITY_OWNER,
    V2_AUTH_DATA_LEN,
    V2_INTERVAL_MAX_S,
    V2_INTERVAL_MIN_S,
    V3_INTERVAL_DEFAULT_CS,
    V3_INTERVAL_MAX_CS,
    V3_INTERVAL_MIN_CS,
    VERSION_2,
    VERSION_3,
    VRID_MAX,
    VRID_MIN,
    AuthType,
)

# keepalived's upper bound for preempt_delay (seconds); the VirtualIP model admits the
# same range, so one constant serves both (an admitted VirtualIP never fails here).
PREEMPT_DELAY_MAX_S = float(SHARED_PREEMPT_DELAY_MAX_S)


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Configuration of one VRRP virtual router on one node.

    * ``priority``: the *base* priority, 1..254, or 255 for the address owner
      (RFC 9568 §5.2.4). Health-check weights change the effective priority at run
      time through `VirtualRouter.set_effective_priority`, not this field.
    * ``interval_cs``: our Advertisement_Interval in centiseconds (v2: seconds × 100).
    * ``primary_address``: the source address of our advertisements (RFC 9568 §5.1.1.1:
      the interface's primary IPv4 address; §5.1.2.1: its IPv6 link-local address). It
      breaks priority ties (§6.4.3) and recognises our own looped-back packets.
    * ``preempt`` / ``preempt_delay``: RFC 9568 Preempt_Mode, and keepalived's
      ``preempt_delay`` in seconds (see `VirtualRouter` for the exact semantics).
    * ``auth_type`` / ``auth_data``: VRRPv2 only (RFC 3768 §5.3.6; PASS as keepalived
      does, for RFC 2338 compatibility); ``auth_data`` is the password, 1..8 bytes.
    * ``strict_address_check``: drop advertisements whose address list differs from
      ours (RFC 3768 §7.1 / keepalived ``vrrp_strict``). Off by default, like keepalived:
      a mismatch is reported as a `ConfigMismatch` and the advertisement still counts,
      so a VirtualIP whose address list is being edited does not split the group while
      the speakers pick up the change one by one.
    * ``peers``: unicast mode (keepalived ``unicast_peer``): the only sources whose
      advertisements count; empty in multicast mode, where any source on the group does.
    * ``name``: for logs only.
    """

    vrid: int
    addresses: tuple[IPAddress, ...]
    primary_address: IPAddress
    version: int = VERSION_3
    priority: int = PRIORITY_DEFAULT
    interval_cs: int = V3_INTERVAL_DEFAULT_CS
    preempt: bool = True
    preempt_delay: float = 0.0
    auth_type: AuthType = AuthType.NONE
    auth_data: bytes = b""
    strict_address_check: bool = False
    peers: tuple[IPAddress, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if self.version not in (VERSION_2, VERSION_3):
            raise ValueError(f"version must be 2 or 3, not {self.version}")
        if not VRID_MIN <= self.vrid <= VRID_MAX:
            raise ValueError(f"vrid must be {VRID_MIN}..{VRID_MAX}, not {self.vrid}")
        if not PRIORITY_MIN_BACKUP <= self.priority <= PRIORITY_OWNER:
            raise ValueError(
                f"priority must be {PRIORITY_MIN_BACKUP}..{PRIORITY_OWNER}, not {self.priority}"
            )
        self._check_interval()
        self._check_addresses()
        if not 0.0 <= self.preempt_delay <= PREEMPT_DELAY_MAX_S:
            raise ValueError(
                f"preempt_delay must be 0..{PREEMPT_DELAY_MAX_S:g} s, not {self.preempt_delay}"
            )
        self._check_auth()

    @property
    def padded_auth_data(self) -> bytes:
        """The 8-byte Authentication Data field as sent (RFC 3768 §5.3.10); v2 only."""
        return self.auth_data.ljust(V2_AUTH_DATA_LEN, b"\0")

    def _check_interval(self) -> None:
        if self.version == VERSION_2:
            seconds, rest = divmod(self.interval_cs, 100)
            if rest or not V2_INTERVAL_MIN_S <= seconds <= V2_INTERVAL_MAX_S:
                raise ValueError(
                    "a VRRPv2 interval is whole seconds "
                    f"{V2_INTERVAL_MIN_S}..{V2_INTERVAL_MAX_S} (RFC 3768 §5.3.7), "
                    f"not {self.interval_cs} cs"
                )
        elif not V3_INTERVAL_MIN_CS <= self.interval_cs <= V3_INTERVAL_MAX_CS:
            raise ValueError(
                f"a VRRPv3 interval is {V3_INTERVAL_MIN_CS}..{V3_INTERVAL_MAX_CS} cs "
                f"(RFC 9568 §5.2.7), not {self.interval_cs}"
            )

    def _check_addresses(self) -> None:
        if not isinstance(self.addresses, tuple) or not self.addresses:
            raise ValueError("addresses must be a non-empty tuple")
        family = self.primary_address.version
        if any(address.version != family for address in self.addresses):
            raise ValueError(
                "the addresses and the primary address must be one family (RFC 9568 §5.2.9)"
            )
        if not isinstance(self.peers, tuple) or any(peer.version != family for peer in self.peers):
            raise ValueError("peers must be a tuple of the primary address's family")
        if self.version == VERSION_2 and not isinstance(self.primary_address, IPv4Address):
            raise ValueError("VRRPv2 is IPv4 only (RFC 3768); use version 3 for IPv6")

    def _check_auth(self) -> None:
        if self.auth_type is AuthType.NONE:
            if self.auth_data:
                raise ValueError("auth_data needs auth_type PASS")
            return
        if self.version != VERSION_2:
            raise ValueError("VRRPv3 has no authentication field (RFC 9568 §5.1, §9)")
        if self.auth_type is not AuthType.PASS:
            raise ValueError("only PASS authentication is supported (AH is reserved)")
        if not 1 <= len(self.auth_data) <= V2_AUTH_DATA_LEN:
            raise ValueError(f"a PASS password is 1..{V2_AUTH_DATA_LEN} bytes")
