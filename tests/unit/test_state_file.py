"""The ownership state file (issue 10, "Old kernels"): atomic, durable, and untrusted on read."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from ipaddress import ip_interface
from pathlib import Path

import pytest

from keepvip.speaker.net import state_file
from keepvip.speaker.net.interfaces import InterfaceAddress
from keepvip.speaker.net.ownership import Marker, Ownership, address_label, keeps_proto
from keepvip.speaker.net.state_file import FILE_NAME, MAX_BYTES, OwnedAddress, StateProblem, load, save

V4 = OwnedAddress("eth0", ip_interface("198.18.0.10/24"))
V6 = OwnedAddress("eth0", ip_interface("2001:db8::10/64"))
SIDE = OwnedAddress("bond0.100", ip_interface("198.19.0.7/32"))


def test_what_is_saved_is_loaded_back_in_a_stable_order(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    save(path, {V6, SIDE, V4})

    assert load(path) == [SIDE, V4, V6]
    assert json.loads(path.read_text()) == {
        "version": 1,
        "addresses": [
            {"interface": "bond0.100", "address": "198.19.0.7/32"},
            {"interface": "eth0", "address": "198.18.0.10/24"},
            {"interface": "eth0", "address": "2001:db8::10/64"},
        ],
    }
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]  # no temporary file left


def test_a_save_that_fails_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    save(path, {V4})
    # The temporary file cannot be created (a directory holds its name): the rename never happens.
    (tmp_path / f".{FILE_NAME}.{os.getpid()}.tmp").mkdir()

    with pytest.raises(IsADirectoryError):
        save(path, {V4, V6})

    assert load(path) == [V4]


def test_a_missing_file_is_an_empty_record(tmp_path: Path) -> None:
    assert load(tmp_path / FILE_NAME) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x00\xff{", StateProblem.NOT_JSON),
        (b"{truncated", StateProblem.NOT_JSON),
        (b"[]", StateProblem.NOT_AN_OBJECT),
        (b'{"version": 2, "addresses": []}', StateProblem.UNKNOWN_VERSION),
        (b'{"addresses": []}', StateProblem.UNKNOWN_VERSION),
        (b'{"version": 1, "addresses": {"eth0": "198.18.0.10/24"}}', StateProblem.NOT_A_LIST),
        (b" " * (MAX_BYTES + 1), StateProblem.TOO_LARGE),
    ],
    ids=["binary", "truncated", "list", "version-2", "no-version", "dict", "too-large"],
)
def test_a_garbage_file_names_nothing_and_is_kept_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, problem: StateProblem
) -> None:
    path = tmp_path / FILE_NAME
    path.write_bytes(content)

    with caplog.at_level(logging.ERROR):
        assert load(path) == []

    assert [record.reason for record in caplog.records] == [problem.value]  # type: ignore[attr-defined]
    assert not path.exists()
    assert (tmp_path / f"{FILE_NAME}.rejected").read_bytes() == content  # nothing lost


def test_bad_entries_are_refused_one_by_one_and_the_good_ones_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / FILE_NAME
    entries = [
        {"interface": "eth0", "address": "198.18.0.10/24"},
        {"interface": "eth0", "address": "198.18.0.10"},  # no prefix
        {"interface": "eth0", "address": "198.18.0.300/24"},
        {"interface": "eth0", "address": 3325165578},
        {"interface": "../../etc", "address": "198.18.0.11/24"},
        {"interface": "a-very-long-ifname", "address": "198.18.0.12/24"},
        {"interface": "eth0:kv", "address": "198.18.0.13/24"},
        {"interface": "", "address": "198.18.0.14/24"},
        {"interface": "eth0", "address": "198.18.0.15/24", "extra": True},
        "eth0 198.18.0.16/24",
        {"interface": "eth0", "address": "2001:db8::10/64"},
        {"interface": "eth0", "address": "198.18.0.10/24"},  # a duplicate counts once
    ]
    path.write_text(json.dumps({"version": 1, "addresses": entries}))

    with caplog.at_level(logging.ERROR):
        assert load(path) == [V4, V6]

    reasons = [record.reason for record in caplog.records]  # type: ignore[attr-defined]
    assert reasons == ["bad_address"] * 3 + ["bad_interface"] * 4 + ["bad_entry"] * 2
    assert "addresses[1].address" in caplog.text
    assert "addresses[4].interface" in caplog.text
    assert path.exists()  # readable as a whole: not moved aside


@pytest.mark.parametrize(
    ("release", "keeps"),
    [
        ("6.1.0-18-amd64", False),  # Debian 12
        ("5.15.0-91-generic", False),  # Ubuntu 22.04
        ("5.14.0-362.8.1.el9_3.x86_64", False),  # RHEL 9
        ("6.2.16", False),
        ("6.3.0", True),
        ("6.18.44-fc-v669", True),
        ("10.0.1", True),
        ("not a release", None),
    ],
)
def test_the_kernel_release_decides_the_first_guess(release: str, keeps: bool | None) -> None:
    assert keeps_proto(release) is keeps


@pytest.mark.parametrize(
    ("release", "marker", "unverified"),
    [
        ("6.1.0-18-amd64", Marker.STATE_FILE, False),
        ("6.8.0", Marker.PROTO, True),
        ("?", Marker.STATE_FILE, False),
    ],
)
def test_auto_picks_by_release_and_logs_which(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, release: str, marker: Marker, unverified: bool
) -> None:
    with caplog.at_level(logging.INFO):
        ownership = Ownership.choose("auto", tmp_path, release)

    assert ownership.marker is marker
    assert ownership.unverified is unverified
    assert ownership.recording  # until the kernel has shown it keeps the mark, a list is kept too ...
    assert ownership.needs_state_dir is (marker is Marker.STATE_FILE)  # ... on disk only for the fallback
    assert f"ownership marker: {marker.value}" in caplog.text
    assert release in caplog.text


def test_a_forced_marker_is_used_whatever_the_kernel(tmp_path: Path) -> None:
    assert Ownership.choose("state-file", tmp_path, "6.18.0").marker is Marker.STATE_FILE
    forced = Ownership.choose("proto", tmp_path, "5.15.0")
    assert forced.marker is Marker.PROTO
    assert not forced.recording


def test_a_negative_read_back_switches_to_the_state_file_keeping_what_was_recorded(tmp_path: Path) -> None:
    ownership = Ownership.choose("auto", tmp_path, "6.3.0")

    async def first_add_then_read_back() -> None:
        await ownership.will_add("eth0", V4.address)
        await ownership.checked(False, "eth0", V4.address)

    asyncio.run(first_add_then_read_back())

    assert ownership.marker is Marker.STATE_FILE
    assert ownership.recording
    assert load(tmp_path / FILE_NAME) == [V4]
    assert "label" in ownership.attributes(V4.address, "eth0")
    assert "proto" not in ownership.attributes(V4.address, "eth0")


def test_the_label_fits_ifnamsiz_whatever_the_interface_name() -> None:
    assert address_label("eth0") == "eth0:kv"
    assert address_label("enp0s31f6") == "enp0s31f6:kv"
    assert len(address_label("a-15-byte-name!").encode()) == state_file.IFNAMSIZ - 1


def test_concurrent_changes_share_writes_and_a_failed_write_undoes_its_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ownership = Ownership(Marker.STATE_FILE, tmp_path)
    many = [OwnedAddress("eth0", ip_interface(f"198.18.1.{i}/32")) for i in range(1, 101)]
    saves: list[int] = []
    real_save = state_file.save

    def counting_save(path: Path, entries: set[OwnedAddress]) -> None:
        saves.append(len(entries))
        real_save(path, entries)

    async def add_all() -> None:
        await asyncio.gather(*(ownership.will_add(entry.ifname, entry.address) for entry in many))

    monkeypatch.setattr(state_file, "save", counting_save)
    asyncio.run(add_all())

    assert load(tmp_path / FILE_NAME) == sorted(many, key=OwnedAddress.sort_key)
    assert 1 <= len(saves) < 10  # one write for the first, one for everything that queued meanwhile
    assert saves[-1] == 100

    (tmp_path / f".{FILE_NAME}.{os.getpid()}.tmp").mkdir()  # the next write fails
    with pytest.raises(IsADirectoryError):
        asyncio.run(ownership.will_add("eth0", V4.address))
    assert load(tmp_path / FILE_NAME) == sorted(many, key=OwnedAddress.sort_key)
    labelled = InterfaceAddress(2, V4.address.ip, 24, 0, 0, "eth0:kv")
    assert not ownership.owns(labelled, "eth0")  # undone in memory too
