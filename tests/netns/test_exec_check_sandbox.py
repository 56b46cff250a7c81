"""An exec check runs with nobody's rights, not the speaker's: proven on a namespace LAN.

A real standalone speaker (root, in its node's network namespace) runs exec checks that
try what a hostile VirtualIP author would: add an address to the node's interface, open
a raw VRRP socket, read a root-only file. Under the default script user every attempt
fails and the check reports failure; the control run with ``--script-user root`` (what
every exec check was before) shows the same programs succeed, so the test would fail on
the old code. A hung check is killed on its timeout together with the children it
started.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from speaker_harness import SpeakerSet, virtualip, wait_until

from keepvip.localcluster.lan import Lan
from tests.sandbox_helpers import gone, secure_directory

pytestmark = pytest.mark.timeout(90)

STOLEN = "198.18.0.222/32"
PROBES = {
    "address": f"ip addr add {STOLEN} dev eth0",
    "raw": "exec /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)'",
    "secret": "exec cat {secret}",
}


@pytest.fixture
def scripts() -> Iterator[Path]:
    """A root-owned 0755 directory (script security accepts it) with a root-only secret."""
    with secure_directory("keepvip-exec-") as path:
        secret = path / "root-only"
        secret.write_text("root only\n")
        secret.chmod(0o600)
        out = path / "out"
        out.mkdir()
        os.chown(out, 65534, 65534)  # where the hung check (running as nobody) records its pids
        yield path


def write_script(directory: Path, name: str, body: str) -> str:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def hostile_virtualip(directory: Path) -> dict[str, object]:
    secret = directory / "root-only"
    checks = [
        {"name": name, "exec": {"command": [write_script(directory, name, body.format(secret=secret))]},
         "interval": "1s", "timeout": "900ms", "weight": -1}
        for name, body in PROBES.items()
    ]  # fmt: skip
    return virtualip("web", vrid=71, health_checks=checks)


def check_statuses(speakers: SpeakerSet) -> dict[str, float | None]:
    metrics = speakers.metrics("node1")
    return {name: metrics.gauge("keepvip_check_status", virtualip="web", check=name) for name in PROBES}


def stolen(lan: Lan) -> bool:
    return any(str(a) == STOLEN for a in lan.addresses("node1", "eth0"))


@pytest.mark.parametrize("script_user", [None, "root"], ids=["default-script-user", "control-root"])
def test_an_exec_check_cannot_add_an_address_open_a_raw_socket_or_read_a_root_only_file(
    lan: Lan, speakers: SpeakerSet, scripts: Path, script_user: str | None
) -> None:
    speakers.configure(hostile_virtualip(scripts), nodes=["node1"])
    speakers.start("node1", extra=["--script-user", script_user] if script_user else [])
    wait_until(lambda: speakers.metrics_ready("node1"), 15, what="node1's metrics")
    wait_until(lambda: None not in check_statuses(speakers).values(), 15, what="every check has run")
    statuses = check_statuses(speakers)
    if script_user is None:
        assert statuses == dict.fromkeys(PROBES, 0.0)
        assert not stolen(lan)
        details = " ".join(str(r.get("message")) for r in speakers.log_lines("node1"))
        assert "root only" not in details
    else:  # the same programs as root: each one succeeds
        assert statuses == dict.fromkeys(PROBES, 1.0)
        assert stolen(lan)


def test_a_hung_check_dies_with_its_children_on_timeout(speakers: SpeakerSet, scripts: Path) -> None:
    out = scripts / "out"
    hang = write_script(scripts, "hang", f'sleep 300 & echo $! > {out}/child-$$; exec sleep 300')
    check = {"name": "hang", "exec": {"command": [hang]}, "interval": "1s", "timeout": "500ms", "weight": -1}
    speakers.configure(virtualip("web", vrid=72, health_checks=[check]), nodes=["node1"])
    speakers.start("node1")
    wait_until(lambda: speakers.metrics_ready("node1"), 15, what="node1's metrics")
    wait_until(lambda: len(list(out.glob("child-*"))) >= 2, 15, what="two runs of the hung check")
    first = min(out.glob("child-*"), key=lambda p: p.stat().st_mtime)  # a later run started: this one ended
    shell, child = int(first.name.removeprefix("child-")), int(first.read_text())
    deadline = time.monotonic() + 5
    while not (gone(shell) and gone(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(shell), "the check's own process survived its timeout"
    assert gone(child), "a child of the check survived the check's timeout"
    assert speakers.metrics("node1").gauge("keepvip_check_status", virtualip="web", check="hang") == 0
