"""The early sweep's bytes (keepvip.speaker.net.early_sweep): it recognises exactly the addresses
keepvip marked, and deletes them with the very request the speaker itself sends."""

from __future__ import annotations

import socket
from ipaddress import ip_address

import pytest

from keepvip.speaker.net.address_messages import RTM_DELADDR, RTM_NEWADDR, address_message
from keepvip.speaker.net.early_sweep import Leftover, delete_request, leftover_of
from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO

HEADER = 16  # struct nlmsghdr


def payload(address: str, prefixlen: int, proto: int | None) -> bytes:
    """An RTM_NEWADDR's payload as the kernel's dump carries it (ifaddrmsg and attributes)."""
    message = address_message(RTM_NEWADDR, 1, index=3, address=address, prefixlen=prefixlen, proto=proto)
    return message[HEADER:]


@pytest.mark.parametrize(
    ("address", "family"), [("198.18.0.100", socket.AF_INET), ("2001:db8::100", socket.AF_INET6)]
)
def test_an_address_with_keepvips_mark_is_a_leftover(address: str, family: int) -> None:
    found = leftover_of(payload(address, 24, KEEPVIP_ADDRESS_PROTO))
    assert found == Leftover(family, 3, 24, ip_address(address).packed)
    assert str(found) == f"{address}/24"


@pytest.mark.parametrize(
    "proto", [None, 0, 2, KEEPVIP_ADDRESS_PROTO + 1], ids=["unmarked", "unspec", "kernel-ra", "another-tool"]
)
def test_an_address_without_keepvips_mark_is_left_alone(proto: int | None) -> None:
    assert leftover_of(payload("198.18.0.100", 24, proto)) is None


def test_a_truncated_payload_is_no_leftover() -> None:
    whole = payload("198.18.0.100", 24, KEEPVIP_ADDRESS_PROTO)
    assert [leftover_of(whole[:cut]) for cut in (0, 7, 8, 12)] == [None] * 4


@pytest.mark.parametrize("address", ["198.18.0.100", "2001:db8::100"])
def test_the_delete_request_is_the_one_the_speaker_sends(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    leftover = Leftover(family, 3, 24, ip_address(address).packed)
    expected = address_message(RTM_DELADDR, 7, index=3, address=address, prefixlen=24)
    assert delete_request(7, leftover) == expected
