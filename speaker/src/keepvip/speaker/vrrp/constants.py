"""VRRP protocol constants, each next to the RFC section that fixes it.

Like keepalived's ``vrrp.h``: one place for the numbers, so the codec, the state
machine and the adapters never spell a protocol value twice.
"""

from __future__ import annotations

import enum
from typing import Final

# RFC 9568 §5.1.1.4 / RFC 3768 §5.2.4: VRRP is IP protocol 112.
IPPROTO_VRRP: Final = 112

# RFC 9568 §5.1.1.3 / §5.1.2.2 (IPv4: TTL), §5.1.2.3 (IPv6: Hop Limit): MUST be 255 on
# send; §7.1 receivers MUST discard a packet whose TTL/Hop Limit is not 255 (GTSM).
VRRP_TTL: Final = 255

# RFC 9568 §5.1.1.2 / §5.1.2.2: the IANA-assigned multicast destinations are
# keepvip.inet.VRRP_GROUP_V4 / VRRP_GROUP_V6 (the operator allocates them too).

# RFC 9568 §5.2.1 / RFC 3768 §5.3.1: the version nibble.
VERSION_2: Final = 2
VERSION_3: Final = 3

# RFC 9568 §5.2.2: the only defined type; others MUST be discarded.
TYPE_ADVERTISEMENT: Final = 1

# RFC 9568 §5.2.3: VRID 1..255.
VRID_MIN: Final = 1
VRID_MAX: Final = 255

# RFC 9568 §5.2.4: 255 = address owner, 1..254 = backups (default 100), 0 = the
# current master is leaving (§6.4.3 shutdown).
PRIORITY_OWNER: Final = 255
PRIORITY_DEFAULT: Final = 100
PRIORITY_MIN_BACKUP: Final = 1
PRIORITY_LEAVING: Final = 0

# RFC 9568 §5.2.7: Max Adver Int is 12 bits of centiseconds; erratum: MUST be non-zero.
V3_INTERVAL_MIN_CS: Final = 1
V3_INTERVAL_MAX_CS: Final = 4095
V3_INTERVAL_DEFAULT_CS: Final = 100
# RFC 3768 §5.3.7: Adver Int is 8 bits of whole seconds (default 1).
V2_INTERVAL_MIN_S: Final = 1
V2_INTERVAL_MAX_S: Final = 255

# RFC 3768 §5.3.6 / §5.3.8: authentication (v2 only). 1 (simple text password) and
# 2 (IP AH) are reserved for RFC 2338 compatibility; keepalived keeps PASS.
V2_AUTH_DATA_LEN: Final = 8


class AuthType(enum.IntEnum):
    """RFC 3768 §5.3.6 Auth Type values."""

    NONE = 0
    PASS = 1  # RFC 2338 "Simple Text Password"; kept for keepalived interop
    AH = 2  # reserved; never sent by keepvip, dropped on receive


class ChecksumMode(enum.Enum):
    """How a VRRPv3-over-IPv4 checksum is *sent* (RFC 9568 §5.2.8 vs keepalived).

    Receive accepts both forms, as keepalived does.
    """

    PSEUDO_HEADER = "pseudoHeader"  # keepalived default, tcpdump/Wireshark/scapy: IPv4 pseudo-header
    RFC9568 = "rfc9568"  # RFC 9568 §5.2.8: the VRRP message alone (keepalived v3_checksum_as_v2)
