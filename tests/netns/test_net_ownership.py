"""The state-file ownership marker (kernels < 6.3) on a real interface, forced on this kernel.

This machine's kernel keeps ``IFA_PROTO``, so each test forces the fallback and checks
that it does not lean on the kernel's mark: the VIPs are added *without* ``IFA_PROTO``
(the kernel reports proto 0, as an old kernel would), and only the state file and the
IPv4 label let a later process find them again.
"""

from __future__ import annotations

import json
import logging
import sys
from ipaddress import ip_interface
from pathlib import Path

import pytest
from test_net_addresses import VIP4, VIP6, on

from keepvip.localcluster.lan import Host, Lan
from keepvip.speaker.net import addresses
from keepvip.speaker.net.addresses import AddResult, RemoveResult
from keepvip.speaker.net.interfaces import InterfaceAddress, list_addresses
from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO
from keepvip.speaker.net.ownership import Marker, Ownership
from keepvip.speaker.net.state_file import FILE_NAME, IPInterface
from keepvip.speaker.runtime.conflicts import address_conflicts

pytestmark = pytest.mark.timeout(30)

LEAVE_VIPS_AND_DIE = """
import asyncio, os, signal, sys
from ipaddress import ip_interface
from pathlib import Path
from pyroute2 import AsyncIPRoute
from keepvip.speaker.net.addresses import ensure_present
from keepvip.speaker.net.ownership import Ownership

async def main():
    ownership = Ownership.choose("state-file", Path(sys.argv[1]))
    async with AsyncIPRoute() as ipr:
        for vip in sys.argv[2:]:
            await ensure_present(ipr, "eth0", ip_interface(vip), ownership)
    os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup runs

asyncio.run(main())
"""


def kernel_view(lan: Lan, node: Host) -> dict[str, InterfaceAddress]:
    """eth0's addresses as the kernel reports them over rtnetlink, ``IFA_PROTO`` and label included.

    (This machine's ``ip`` does not print an address's protocol.)
    """
    index = int(lan.run(node, "cat", "/sys/class/net/eth0/ifindex").stdout)
    return {str(entry.address): entry for entry in on(lan, node, lambda ipr: list_addresses(ipr, index))}


def add_as_fallback(lan: Lan, node: Host, state_dir: Path, vip: IPInterface) -> AddResult:
    """``ensure_present`` by a speaker forced to the state-file marker."""
    ownership = Ownership(Marker.STATE_FILE, state_dir)
    return on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", vip, ownership))


def fresh_start(lan: Lan, node: Host, state_dir: Path) -> list[tuple[str, IPInterface]]:
    """What a new speaker forced to the state-file marker removes at start."""
    ownership = Ownership(Marker.STATE_FILE, state_dir)
    return on(lan, node, lambda ipr: addresses.remove_leftovers(ipr, ownership=ownership))


def state_file(tmp_path: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads((tmp_path / FILE_NAME).read_text())
    return document


def test_the_fallback_adds_without_ifa_proto_and_with_the_label(lan: Lan, tmp_path: Path) -> None:
    node = lan.nodes[0]
    ownership = Ownership(Marker.STATE_FILE, tmp_path)

    added = [
        on(lan, node, lambda ipr, v=vip: addresses.ensure_present(ipr, "eth0", v, ownership))
        for vip in (VIP4, VIP6)
    ]

    assert added == [AddResult.ADDED, AddResult.ADDED]
    listed = kernel_view(lan, node)
    for vip in (VIP4, VIP6):
        assert listed[str(vip.ip)].proto == 0  # no kernel mark to rely on, as on a kernel < 6.3
    assert listed[str(VIP4.ip)].label == "eth0:kv"
    assert state_file(tmp_path)["addresses"] == [
        {"interface": "eth0", "address": str(VIP4)},
        {"interface": "eth0", "address": str(VIP6)},
    ]
    # Without the kernel's mark a proto-only speaker would not even see them as keepvip's ...
    assert on(lan, node, addresses.marked_addresses) == []
    # ... the state-file marker does, and releases them (and its record of them).
    assert (
        on(lan, node, lambda ipr: addresses.ensure_absent(ipr, "eth0", VIP4, ownership))
        == RemoveResult.REMOVED
    )
    assert (
        on(lan, node, lambda ipr: addresses.ensure_absent(ipr, "eth0", VIP6, ownership))
        == RemoveResult.REMOVED
    )
    assert state_file(tmp_path)["addresses"] == []
    assert VIP4 not in lan.addresses(node, "eth0")


def test_a_fresh_speaker_removes_what_a_killed_one_recorded(lan: Lan, tmp_path: Path) -> None:
    node = lan.nodes[0]
    crashed = lan.run(
        node, sys.executable, "-c", LEAVE_VIPS_AND_DIE, str(tmp_path), str(VIP4), str(VIP6), check=False
    )
    assert crashed.returncode in (-9, 137), crashed.stderr
    assert {VIP4, VIP6} <= set(lan.addresses(node, "eth0"))

    removed = fresh_start(lan, node, tmp_path)

    assert set(removed) == {("eth0", VIP4), ("eth0", VIP6)}
    remaining = lan.addresses(node, "eth0")
    assert VIP4 not in remaining
    assert VIP6 not in remaining
    assert node.ipv4 in remaining
    assert state_file(tmp_path)["addresses"] == []


def test_an_address_the_file_names_but_that_is_not_ours_is_left_alone(
    lan: Lan, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = lan.nodes[0]
    lan.run(node, "ip", "addr", "add", str(VIP4), "dev", "eth0")  # someone's own, unlabelled
    (tmp_path / FILE_NAME).write_text(
        json.dumps({"version": 1, "addresses": [{"interface": "eth0", "address": str(VIP4)}]})
    )

    with caplog.at_level(logging.WARNING):
        removed = fresh_start(lan, node, tmp_path)

    assert removed == []
    assert VIP4 in lan.addresses(node, "eth0")
    assert "does not carry keepvip's label" in caplog.text
    assert state_file(tmp_path)["addresses"] == []  # refused once, not again at every start
    # and the running speaker does not take it for its own either
    assert add_as_fallback(lan, node, tmp_path, VIP4) == AddResult.FOREIGN
    assert state_file(tmp_path)["addresses"] == []


def test_a_garbage_state_file_removes_nothing_and_is_kept_aside(
    lan: Lan, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = lan.nodes[0]
    add_as_fallback(lan, node, tmp_path, VIP4)
    (tmp_path / FILE_NAME).write_bytes(b"\x00{not json")

    with caplog.at_level(logging.ERROR):
        removed = fresh_start(lan, node, tmp_path)

    assert removed == []
    assert VIP4 in lan.addresses(node, "eth0")
    assert (tmp_path / f"{FILE_NAME}.rejected").read_bytes() == b"\x00{not json"
    assert "not JSON" in caplog.text


def test_auto_remembers_the_first_vip_until_the_read_back_shows_the_kernel_keeps_the_mark(
    lan: Lan, tmp_path: Path
) -> None:
    node = lan.nodes[0]
    ownership = Ownership.choose("auto", tmp_path)  # this kernel (>= 6.3)
    assert ownership.marker is Marker.PROTO
    assert ownership.unverified

    on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", VIP4, ownership))

    assert not ownership.unverified
    assert not ownership.recording
    assert not (tmp_path / FILE_NAME).exists()  # the kernel's mark is enough: nothing on disk
    assert kernel_view(lan, node)[str(VIP4.ip)].proto == KEEPVIP_ADDRESS_PROTO
    assert on(lan, node, addresses.marked_addresses) == [("eth0", VIP4)]


def test_a_vip_the_fallback_holds_is_not_a_conflict_but_someone_elses_address_is(
    lan: Lan, tmp_path: Path
) -> None:
    node = lan.nodes[0]
    ownership = Ownership(Marker.STATE_FILE, tmp_path)
    on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", VIP4, ownership))
    theirs = ip_interface("198.18.0.150/24")
    lan.run(node, "ip", "addr", "add", str(theirs), "dev", "eth0")

    problems = on(lan, node, lambda ipr: address_conflicts(ipr, (VIP4, theirs), ownership))

    assert problems == ["spec.addresses[1]: 198.18.0.150 is already an address of this node (eth0)"]
