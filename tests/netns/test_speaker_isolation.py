"""One VirtualIP that cannot run on a node costs only that VirtualIP (issue 9).

The scenario a new user tried: a standalone speaker runs one VIP; its file then gains a
VirtualIP naming an interface the node lacks (``nope0``) and a second, valid one. The
bad one must be refused in one log line that names it and the field, without a
traceback; the valid one must come up; later edits must still be applied (a VIP removed
from the file is released); and SIGTERM must still hand over with priority 0 and leave
no VIP on the node. Reloads are driven both ways the speaker offers: a file change
(polled) and SIGHUP. And every file of the issue's loader list (binary, UTF-16, deep
nesting, malformed Secrets, a duration too large, duplicate keys, no apiVersion), saved
over a running speaker's file, is refused in one line while the VIP stays where it is.
"""

from __future__ import annotations

import signal
import time
from functools import partial
from typing import Any

import pytest
import yaml
from speaker_harness import (
    VIP4,
    SpeakerSet,
    as_interface,
    holders,
    secret,
    stays_master,
    virtualip,
    wait_for_master,
    wait_until,
    who_answers,
)

from keepvip.localcluster.lan import Lan

pytestmark = pytest.mark.timeout(120)

RELOAD_BOUND = 10.0  # the file is polled every second; generous for loaded machines
API_VIP4 = as_interface("198.18.0.101/24")
BAD_VIP4 = as_interface("198.18.0.102/24")
NODES = ("node1", "node2")


def _web() -> dict[str, Any]:
    return virtualip("web", vrid=91, node_priorities={"node1": 150, "node2": 120})


def _api() -> dict[str, Any]:
    return virtualip("api", vrid=93, addresses=[str(API_VIP4)], node_priorities={"node1": 150, "node2": 120})


def _bad() -> dict[str, Any]:
    document = virtualip("bad", vrid=92, addresses=[str(BAD_VIP4)])
    document["spec"]["interface"] = "nope0"
    return document


def _reload(speakers: SpeakerSet, how: str, *documents: dict[str, Any]) -> float:
    """Write the new file; with ``sighup`` also signal every speaker. The time of the edit."""
    edited_at = time.time()
    speakers.configure(*documents, nodes=list(NODES))
    if how == "sighup":
        for node in NODES:
            speakers.signal_only(node, signal.SIGHUP)
    return edited_at


@pytest.mark.parametrize("how", ["file", "sighup"])
def test_a_virtualip_naming_a_missing_interface_fails_alone_and_later_edits_still_apply(
    lan: Lan, speakers: SpeakerSet, how: str
) -> None:
    speakers.configure(_web(), nodes=list(NODES))
    speakers.start(*NODES)
    wait_for_master(lan, VIP4, "node1")

    # The file gains a VirtualIP on an interface no node has, and a valid one.
    edited_at = _reload(speakers, how, _web(), _bad(), _api())

    wait_until(lambda: who_answers(lan, API_VIP4) == "node1", RELOAD_BOUND, what="the new valid VIP answers")
    for node in NODES:
        refusals = wait_until(
            partial(speakers.records, node, virtualip="bad", since=edited_at), RELOAD_BOUND,
            what=f"{node} refuses bad",
        )  # fmt: skip
        assert len(refusals) == 1, refusals  # one line, not one per retry
        line = refusals[0]
        assert line["reason"] == "interface_not_found", line
        assert "spec.interface: no interface named 'nope0'" in line["message"], line
        assert speakers.errors(node) == [line], "a traceback or another error was logged"
        metrics = speakers.metrics(node)
        assert metrics.value("keepvip_virtualip_failures_total", reason="interface_not_found") == 1
    assert BAD_VIP4.ip not in {a.ip for node in NODES for a in lan.addresses(node)}
    assert who_answers(lan, VIP4) == "node1"  # the VIP that ran before is untouched

    # A later edit is still applied: web leaves the file, so its VIP is released everywhere.
    _reload(speakers, how, _bad(), _api())
    wait_until(lambda: not holders(lan, VIP4), RELOAD_BOUND, what="web's VIP released",
               describe=lambda: f"holders {sorted(holders(lan, VIP4))}")  # fmt: skip
    assert who_answers(lan, API_VIP4) == "node1"

    # SIGTERM: the master hands over with priority 0 and leaves no VIP behind.
    stopped_at, code = speakers.terminate("node1")
    assert code == 0
    handover = wait_until(lambda: speakers.became("node2", "MASTER", "api", since=stopped_at), RELOAD_BOUND,
                          what="node2 takes api over")  # fmt: skip
    assert handover.reason == "priority_zero_received"
    assert not [a for a in lan.addresses("node1") if a.ip in (VIP4.ip, API_VIP4.ip, BAD_VIP4.ip)]
    assert [r for r in speakers.log_lines("node1") if r.get("level") == "RAW"] == []  # no traceback


def test_two_virtualips_swapping_their_vrids_in_one_edit_both_keep_running(
    lan: Lan, speakers: SpeakerSet
) -> None:
    def documents(web_vrid: int, api_vrid: int) -> list[dict[str, Any]]:
        web = virtualip("web", vrid=web_vrid, node_priorities={"node1": 150, "node2": 120})
        api = virtualip("api", vrid=api_vrid, addresses=[str(API_VIP4)],
                        node_priorities={"node1": 150, "node2": 120})  # fmt: skip
        return [web, api]

    speakers.configure(*documents(94, 95), nodes=list(NODES))
    speakers.start(*NODES)
    wait_for_master(lan, VIP4, "node1")
    wait_until(lambda: who_answers(lan, API_VIP4) == "node1", RELOAD_BOUND, what="api answers")

    edited_at = time.time()
    speakers.configure(*documents(95, 94), nodes=list(NODES))  # each takes the other's VRID

    for node in NODES:
        wait_until(partial(speakers.messages, node, "running VRRP", since=edited_at), RELOAD_BOUND,
                   what=f"{node} restarts its routers")  # fmt: skip
    wait_until(lambda: speakers.became("node1", "MASTER", "api", since=edited_at), RELOAD_BOUND,
               what="node1 masters api again")  # fmt: skip
    wait_until(lambda: speakers.became("node1", "MASTER", "web", since=edited_at), RELOAD_BOUND,
               what="node1 masters web again")  # fmt: skip
    wait_for_master(lan, VIP4, "node1")
    wait_until(lambda: who_answers(lan, API_VIP4) == "node1", RELOAD_BOUND, what="api answers again")
    for node in NODES:
        assert speakers.errors(node) == [], speakers.errors(node)
        assert speakers.metrics(node).value("keepvip_virtualip_failures_total") == 0


def test_an_address_the_node_already_has_is_never_bound_and_the_node_stays_out_of_the_election(
    lan: Lan, speakers: SpeakerSet
) -> None:
    own = lan.node("node1").ipv4  # node1's own address, as a VIP in node1's file only
    clash = virtualip("clash", vrid=96, addresses=[str(own)])
    speakers.configure(_web(), clash, nodes=["node1"])
    speakers.configure(_web(), nodes=["node2"])
    speakers.start(*NODES)
    wait_for_master(lan, VIP4, "node1")  # the other VirtualIP is not affected

    refusal = wait_until(partial(speakers.records, "node1", virtualip="clash"), RELOAD_BOUND,
                         what="node1 refuses clash")  # fmt: skip
    assert [r["reason"] for r in refusal] == ["address_conflict"]
    assert f"spec.addresses[0]: {own.ip} is already an address of this node (eth0)" in refusal[0]["message"]
    assert speakers.transitions("node1", "clash") == []  # never joined the election
    assert speakers.metrics("node1").value("keepvip_address_conflicts_total", virtualip="clash") == 1
    speakers.terminate("node1")
    assert own.ip in {a.ip for a in lan.addresses("node1")}  # its own address, untouched at stop


# -- the standalone loader: files that used to crash a live reload (issue 9) ---------------


def _files_the_loader_refuses() -> dict[str, tuple[bytes, str]]:
    """Issue 9's loader list: each file (web, as running, plus one mistake) and what its refusal says."""
    web = yaml.safe_dump(_web(), sort_keys=False)
    good = web + "---\n" + yaml.safe_dump(secret("vrrp", "pw", "s3cret"), sort_keys=False)
    head = "apiVersion: v1\nkind: Secret\nmetadata: {name: vrrp}\n"
    delay = good.replace("spec:\n", "spec:\n  preemptDelay: 100000000000h\n", 1)
    return {
        "a binary file": (bytes(range(256)) * 4, "not UTF-8 text (byte 128 is 0x80)"),
        "UTF-16": (good.encode("utf-16"), "UTF-16 or UTF-32 text: save it as UTF-8"),
        "nesting 1000 deep": ((good + "---\na: " + "[" * 1000 + "]" * 1000 + "\n").encode(), "nested deeper"),
        "Secret metadata a list": ((web + "---\n" + head.replace("{name: vrrp}", "[vrrp]")).encode(),
                                   "document 1 (Secret): metadata must be a mapping"),
        "Secret stringData a list": ((web + "---\n" + head + "stringData: [pw, s3cret]\n").encode(),
                                     "document 1 (Secret default/vrrp): stringData must be a mapping"),
        "Secret data a string": ((web + "---\n" + head + "data: czNjcmV0\n").encode(),
                                 "document 1 (Secret default/vrrp): data must be a mapping"),
        "a duration too large": (delay.encode(), "document 0: VirtualIP 'web' is invalid: spec.preemptDelay"),
        "duplicate keys": (("kind: VirtualIP\n" + good).encode(), "found the key 'kind' twice"),
        "no apiVersion": ((good + "---\n" + head.removeprefix("apiVersion: v1\n") + "data: {}\n").encode(),
                          "document 2 (Secret): apiVersion is required"),
        "a Secret value a mapping": ((web + "---\n" + head + "stringData: {pw: {a: b}}\n").encode(),
                                     "stringData.pw must be a string, not a mapping"),
    }  # fmt: skip


def test_every_file_the_loader_refuses_keeps_the_running_configuration(
    lan: Lan, speakers: SpeakerSet
) -> None:
    speakers.configure(_web(), nodes=["node1"])
    speakers.start("node1")
    wait_for_master(lan, VIP4, "node1")
    started_at = time.time()
    path = speakers.config_path("node1")

    files = _files_the_loader_refuses()
    for index, (mistake, (raw, says)) in enumerate(files.items(), start=1):
        path.with_suffix(".tmp").write_bytes(raw)
        path.with_suffix(".tmp").replace(path)  # as an editor saves it
        refused = wait_until(
            lambda n=index: speakers.messages("node1", "configuration refused", since=started_at)[n - 1 :],
            RELOAD_BOUND, what=f"node1 refuses {mistake}",
        )  # fmt: skip
        assert says in refused[0]["message"], (mistake, refused[0]["message"])
        assert len(refused[0]["message"]) < 1000, mistake
        assert speakers.speakers["node1"].poll() is None, f"the speaker exited on {mistake}"
    refusals = speakers.messages("node1", "configuration refused", since=started_at)
    assert len(refusals) == len(files), refusals  # one line per file, no retries

    assert stays_master(lan, VIP4, "node1", 1.0)  # the running configuration is untouched
    assert speakers.transitions("node1", since=started_at) == []
    metrics = speakers.metrics("node1")
    assert metrics.value("keepvip_config_reloads_total", result="invalid") == len(refusals)
    assert metrics.value("keepvip_config_errors_total") == 0  # the configuration loop never died
    assert [r for r in speakers.log_lines("node1") if r.get("level") == "RAW"] == []  # no traceback

    # The loop still follows the file: a valid edit applies.
    speakers.configure(_web(), _api(), nodes=["node1"])
    wait_until(lambda: who_answers(lan, API_VIP4) == "node1", RELOAD_BOUND, what="a valid file applies")
