"""The lean address requests decode, with pyroute2's own parser as the oracle, to what was asked.

``speaker/net/address_messages.py`` builds ``RTM_NEWADDR`` / ``RTM_DELADDR`` with ``struct``
instead of pyroute2 (issue 15: ~0.5 ms of CPU per add at a 1,000-VIP takeover). The netns
tier checks the kernel's answer (tests/netns/test_net_addresses*.py); here every field is
checked against pyroute2's decoder, and the answer parser against hand-built acks.
"""

from __future__ import annotations

import socket
import struct

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from keepvip.speaker.net import address_messages as am


def decoded(data: bytes) -> ifaddrmsg:
    message = ifaddrmsg(data)
    message.decode()
    return message


def test_an_ipv4_add_carries_every_field_pyroute2_would() -> None:
    data = am.address_message(am.RTM_NEWADDR, 7, index=3, address="198.18.4.9", prefixlen=32,
                              proto=0x6B, label="eth0:kv")  # fmt: skip
    message = decoded(data)
    assert message["header"]["type"] == am.RTM_NEWADDR
    assert message["header"]["sequence_number"] == 7
    flags = message["header"]["flags"]
    wanted = am.NLM_F_REQUEST | am.NLM_F_ACK | am.NLM_F_CREATE | am.NLM_F_EXCL
    assert flags & wanted == wanted
    assert (message["family"], message["prefixlen"], message["index"]) == (socket.AF_INET, 32, 3)
    assert message.get("IFA_LOCAL") == message.get("IFA_ADDRESS") == "198.18.4.9"
    assert message.get("IFA_LABEL") == "eth0:kv"
    assert message.get("IFA_PROTO") == 0x6B
    assert message["header"]["length"] == len(data)


def test_an_ipv6_add_without_dad_and_a_delete() -> None:
    add = decoded(
        am.address_message(am.RTM_NEWADDR, 1, index=2, address="2001:db8::5", prefixlen=64, flags=0x02)
    )
    assert (add["family"], add["flags"], add.get("IFA_FLAGS")) == (socket.AF_INET6, 0x02, 0x02)
    assert add.get("IFA_ADDRESS") == "2001:db8::5"
    delete = decoded(am.address_message(am.RTM_DELADDR, 2, index=2, address="2001:db8::5", prefixlen=64))
    assert delete["header"]["type"] == am.RTM_DELADDR
    assert not delete["header"]["flags"] & (am.NLM_F_CREATE | am.NLM_F_EXCL)
    assert delete.get("IFA_LABEL") is None


def test_answers_are_matched_by_sequence_number_with_the_kernels_errno() -> None:
    def ack(seq: int, code: int) -> bytes:
        return struct.pack("=IHHII", 36, am.NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", code) + bytes(16)

    assert am.answers(ack(5, 0) + ack(6, -17) + ack(7, -99)) == [(5, 0), (6, 17), (7, 99)]
    assert am.answers(b"") == []
    assert am.answers(b"\x01\x00\x00\x00" + bytes(12)) == []  # a length shorter than its header
