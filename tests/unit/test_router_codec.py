"""The router's advertisements survive the codec, so routers can talk through real bytes.

The in-memory wire hands `Advertisement` values across; the speaker encodes and
decodes them. This checks that what the router sends is what a peer's router receives
after a round trip through `keepvip.speaker.vrrp.codec`, for every form keepvip sends.
"""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from keepvip.inet import VRRP_GROUP_V4, VRRP_GROUP_V6
from keepvip.speaker.vrrp.actions import SendAdvertisement
from keepvip.speaker.vrrp.advertisement import Advertisement, IPAddress
from keepvip.speaker.vrrp.codec import decode, encode
from keepvip.speaker.vrrp.config import RouterConfig
from keepvip.speaker.vrrp.constants import AuthType
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import State
from tests.unit.wire import config

V6_VIPS = (IPv6Address("fe80::100"), IPv6Address("2001:db8::100"))


def v6_config(number: int, priority: int) -> RouterConfig:
    return RouterConfig(
        vrid=51,
        addresses=V6_VIPS,
        primary_address=IPv6Address(f"fe80::{number}"),
        priority=priority,
        interval_cs=10,
    )


CASES = {
    "v2-none": (config(1, 255, version=2), config(2, 100, version=2)),
    "v2-pass": (
        config(1, 255, version=2, auth_type=AuthType.PASS, auth_data=b"secret"),
        config(2, 100, version=2, auth_type=AuthType.PASS, auth_data=b"secret"),
    ),
    "v3-ipv4": (config(1, 255, interval_cs=25), config(2, 100, interval_cs=25)),
    "v3-ipv6": (v6_config(1, 255), v6_config(2, 100)),
}


def through_the_codec(advert: Advertisement, source: IPAddress) -> Advertisement:
    group = VRRP_GROUP_V6 if isinstance(source, IPv6Address) else VRRP_GROUP_V4
    decoded = decode(
        encode(advert, source=source, destination=group), source=source, destination=group, ttl=255
    )
    assert isinstance(decoded, Advertisement), decoded
    return decoded


@pytest.mark.parametrize("case", CASES)
def test_a_backup_follows_a_master_heard_through_the_codec(case: str) -> None:
    master_config, backup_config = CASES[case]
    master, backup = VirtualRouter(master_config), VirtualRouter(backup_config)
    backup.start(0.0)
    (advert,) = [a.advertisement for a in master.start(0.0) if isinstance(a, SendAdvertisement)]

    received = through_the_codec(advert, master_config.primary_address)

    assert received == advert
    assert backup.receive(received, master_config.primary_address, 0.0) == []
    assert backup.master_address == master_config.primary_address
    assert backup.state is State.BACKUP


@pytest.mark.parametrize("case", CASES)
def test_a_priority_zero_advert_survives_the_codec(case: str) -> None:
    master_config, _ = CASES[case]
    master = VirtualRouter(master_config)
    master.start(0.0)
    (advert,) = [a.advertisement for a in master.shutdown(1.0) if isinstance(a, SendAdvertisement)]
    assert through_the_codec(advert, master_config.primary_address) == advert
