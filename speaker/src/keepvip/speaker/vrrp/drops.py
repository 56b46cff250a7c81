"""Named reasons for dropping a received advertisement.

DESIGN.md: every rejection has a name; the same value is the log field, the metric
label (``keepvip_advert_dropped_total{reason=...}``) and, where it surfaces, the status
condition reason. Decoding and receive validation return one of these, never raise.
"""

from __future__ import annotations

import enum


class DropReason(enum.Enum):
    """Why a received VRRP packet was discarded (RFC 9568 §7.1, RFC 3768 §7.1)."""

    BAD_TTL = "bad_ttl"  # TTL / Hop Limit not 255 (RFC 9568 §7.1, GTSM)
    BAD_VERSION = "bad_version"  # version nibble not the configured 2/3
    BAD_TYPE = "bad_type"  # not ADVERTISEMENT (RFC 9568 §5.2.2)
    TRUNCATED = "truncated"  # shorter than its header + count says
    BAD_CHECKSUM = "bad_checksum"  # neither accepted checksum form verifies (§5.2.8)
    BAD_ADDRESS_COUNT = "bad_address_count"  # count 0, or length does not match count
    BAD_INTERVAL = "bad_interval"  # v3 Max Adver Int 0 (RFC 9568 erratum)
    BAD_ADDRESS_FAMILY = "bad_address_family"  # addresses not of the IP header's family
    WRONG_VRID = "wrong_vrid"  # VRID not configured here (§7.1, erratum 8298)
    AUTH_MISMATCH = "auth_mismatch"  # v2 auth type or password differs (RFC 3768 §7.1)
    INTERVAL_MISMATCH = "interval_mismatch"  # v2 Adver Int differs from ours (RFC 3768 §7.1)
    ADDRESS_MISMATCH = "address_mismatch"  # address list differs, sender not owner (§7.1 MAY)
    OWNER = "owner"  # we are the address owner (priority 255) (§7.1)
    FOREIGN_SENDER = "foreign_sender"  # unicast mode: source is not a configured peer
    OWN_PACKET = "own_packet"  # our own advertisement looped back
    INBOX_FULL = "inbox_full"  # the router's queue of unprocessed packets is full (a flood)
