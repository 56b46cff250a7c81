"""Internet primitives every part of keepvip shares: the address type, VRRP's groups and ranges.

Defined once, here, below all the parts: the API model, the operator, the speaker
and its sans-IO VRRP core (which may import neither ``keepvip.api`` nor the rest of
the speaker, see .importlinter) all take them from this module, which imports nothing
of keepvip.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Final, TypeAlias

IPAddress: TypeAlias = IPv4Address | IPv6Address
"""An IPv4 or IPv6 address (``ipaddress`` has no common base class that says so)."""

# RFC 9568 §5.1.1.2 / §5.1.2.2 (RFC 3768 §5.2.2): the IANA-assigned VRRP multicast
# destinations, what ``multicastGroup: standard`` selects.
VRRP_GROUP_V4: Final = IPv4Address("224.0.0.18")
VRRP_GROUP_V6: Final = IPv6Address("ff02::12")


def vrrp_group(family: int) -> IPAddress:
    """The standard VRRP group of an address family (4 or 6)."""
    return VRRP_GROUP_V4 if family == 4 else VRRP_GROUP_V6


# keepalived's upper bound for preempt_delay (vrrp_parser.c: "preempt_delay ... 0..1000").
# The API model (keepvip.api.limits) and the VRRP core (keepvip.speaker.vrrp.config) both
# read it here, so admission never accepts a delay the core then refuses.
PREEMPT_DELAY_MAX_S: Final = 1000
