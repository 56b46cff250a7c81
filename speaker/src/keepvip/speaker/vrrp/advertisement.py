"""The decoded VRRP ADVERTISEMENT, shared by the codec and the state machine.

One immutable value type for both versions (RFC 3768 §5.1 and RFC 9568 §5.1): the
codec turns bytes into it and back, the router reads and writes it, and nothing else
ever looks at raw VRRP bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from keepvip.inet import IPAddress as IPAddress  # noqa: PLC0414 - re-exported for existing importers
from keepvip.speaker.vrrp.constants import AuthType


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRP ADVERTISEMENT (type 1), either version.

    ``interval_cs`` is always in centiseconds: VRRPv3's Max Adver Int as sent, and for
    VRRPv2 the whole-second Adver Int times 100 (RFC 3768 §5.3.7), so the router does
    all its timer arithmetic in one unit.
    """

    version: int  # 2 or 3
    vrid: int  # 1..255
    priority: int  # 0..255
    interval_cs: int  # centiseconds
    addresses: tuple[IPAddress, ...]
    auth_type: AuthType = AuthType.NONE  # VRRPv2 only
    auth_data: bytes = b""  # VRRPv2 PASS: the 8-byte password field (NUL padded)
