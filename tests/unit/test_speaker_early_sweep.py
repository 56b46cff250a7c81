"""The early sweep's bytes (keepvip.speaker.net.early_sweep): it recognises exactly the addresses
keepvip marked, and deletes them with the very request the speaker itself sends."""

from __future__ import annotations

import socket
from ipaddress import ip_address, ip_interface

import pytest

from keepvip.speaker.net.address_messages import RTM_DELADDR, RTM_NEWADDR, address_message
from keepvip.speaker.net.early_sweep import Leftover, Recorded, delete_request, leftover_of, recorded
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


# -- what a state file names (kernels without IFA_PROTO; the speaker's parent passes them) ----------


def labelled(address: str, prefixlen: int, label: str | None) -> bytes:
    """An unmarked RTM_NEWADDR payload on interface 3, with ``label`` (IPv4 only)."""
    message = address_message(RTM_NEWADDR, 1, index=3, address=address, prefixlen=prefixlen, label=label)
    return message[HEADER:]


def entry(address: str, prefixlen: int, label: str | None) -> Recorded:
    as_sent = None if label is None else label.encode() + b"\0"
    return Recorded(3, prefixlen, ip_address(address).packed, as_sent)


def test_an_address_the_state_file_names_is_a_leftover_with_its_prefix_and_label() -> None:
    recorded = frozenset({entry("198.18.0.100", 24, "eth0:kv"), entry("2001:db8::100", 64, None)})
    assert leftover_of(labelled("198.18.0.100", 24, "eth0:kv"), recorded) is not None
    assert leftover_of(labelled("2001:db8::100", 64, None), recorded) is not None


@pytest.mark.parametrize(
    ("address", "prefixlen", "label"),
    [("198.18.0.100", 24, "eth0"), ("198.18.0.100", 25, "eth0:kv"), ("198.18.0.101", 24, "eth0:kv"),
     ("2001:db8::100", 48, None)],
    ids=["not-our-label", "other-prefix", "other-address", "ipv6-other-prefix"],
)  # fmt: skip
def test_an_address_that_no_longer_looks_like_the_recorded_one_is_left_alone(
    address: str, prefixlen: int, label: str | None
) -> None:
    recorded = frozenset({entry("198.18.0.100", 24, "eth0:kv"), entry("2001:db8::100", 64, None)})
    assert leftover_of(labelled(address, prefixlen, label), recorded) is None


def test_state_file_entries_become_recorded_addresses_of_the_interfaces_that_exist() -> None:
    entries = [("lo", ip_interface("198.18.0.5/24")), ("lo", ip_interface("2001:db8::5/64")),
               ("gone-if0", ip_interface("198.18.0.6/24"))]  # fmt: skip
    lo = socket.if_nametoindex("lo")
    assert recorded(entries) == {
        Recorded(lo, 24, ip_address("198.18.0.5").packed, b"lo:kv\0"),
        Recorded(lo, 64, ip_address("2001:db8::5").packed, None),
    }
