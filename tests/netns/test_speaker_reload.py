"""Speakers on a namespace LAN follow edits of their configuration file without restarting.

The standalone speaker polls its file (and re-reads it on SIGHUP): a change to a
VirtualIP reconfigures that router in place, a change elsewhere leaves it untouched (no
transition, no flap), and an invalid file is refused with the running configuration
kept — a typo never takes a VIP down.
"""

from __future__ import annotations

import signal
import time
from functools import partial

import pytest
from speaker_harness import (
    VIP4,
    SpeakerSet,
    as_interface,
    stays_master,
    virtualip,
    wait_for_master,
    wait_until,
    who_answers,
)

from keepvip.localcluster.lan import Lan

pytestmark = pytest.mark.timeout(60)

RELOAD_BOUND = 10.0  # the file is polled every second; generous for loaded machines
OTHER_VIP4 = as_interface("198.18.0.101/24")


def test_raising_a_backups_priority_in_the_file_makes_it_take_over_without_a_restart(
    lan: Lan, speakers: SpeakerSet
) -> None:
    speakers.configure(virtualip("web", vrid=81, node_priorities={"node1": 150, "node3": 120}))
    speakers.start()
    wait_for_master(lan, VIP4, "node1")
    pids = {node: process.pid for node, process in speakers.speakers.items()}

    edited_at = time.time()
    speakers.configure(virtualip("web", vrid=81, node_priorities={"node1": 150, "node3": 200}))

    took_over = wait_until(
        lambda: speakers.became("node3", "MASTER", "web", since=edited_at), RELOAD_BOUND, what="node3 MASTER"
    )
    assert took_over.reason == "preempt"
    assert took_over.priority == 200
    wait_for_master(lan, VIP4, "node3", timeout=5)
    assert {node: p.pid for node, p in speakers.speakers.items() if p.poll() is None} == pids
    # Only node3's plan changed (its priority); the other nodes reloaded and kept theirs.
    assert speakers.messages("node3", "reconfigured in place", since=edited_at)
    for node in ("node1", "node2"):
        wait_until(
            partial(speakers.messages, node, "configuration reloaded", since=edited_at),
            RELOAD_BOUND,
            what=f"{node} reloads",
        )
        assert not speakers.messages(node, "reconfigured in place"), node


def test_an_invalid_edit_is_refused_and_the_vip_stays_where_it_is(lan: Lan, speakers: SpeakerSet) -> None:
    speakers.configure(virtualip("web", vrid=82, node_priorities={"node1": 150, "node3": 120}))
    speakers.start()
    wait_for_master(lan, VIP4, "node1")

    edited_at = time.time()
    broken = virtualip("web", vrid=82, node_priorities={"node1": 150, "node3": 300})  # 1..254
    speakers.configure(broken)

    for node in speakers.node_names:
        wait_until(
            partial(speakers.messages, node, "configuration refused", since=edited_at),
            RELOAD_BOUND,
            what=f"{node} refuses the file",
        )
        refusal = speakers.messages(node, "configuration refused")[-1]["message"]
        assert "priority" in refusal, refusal  # names the field
        assert speakers.metrics(node).value("keepvip_config_reloads_total", result="invalid") == 1
    assert stays_master(lan, VIP4, "node1", 1.0)
    for node in speakers.node_names:
        assert speakers.transitions(node, since=edited_at) == [], node


def test_an_edit_that_does_not_touch_a_virtualip_leaves_its_router_alone(
    lan: Lan, speakers: SpeakerSet
) -> None:
    web = virtualip("web", vrid=83, node_priorities={"node1": 150})
    speakers.configure(
        web, virtualip("api", vrid=84, addresses=[str(OTHER_VIP4)], node_priorities={"node2": 150})
    )
    speakers.start()
    wait_for_master(lan, VIP4, "node1")
    wait_until(lambda: who_answers(lan, OTHER_VIP4) == "node2", 10, what="node2 answers for api")

    edited_at = time.time()
    speakers.configure(
        web, virtualip("api", vrid=84, addresses=[str(OTHER_VIP4)], node_priorities={"node3": 150})
    )

    wait_until(lambda: who_answers(lan, OTHER_VIP4) == "node3", RELOAD_BOUND, what="api moves to node3")
    assert stays_master(lan, VIP4, "node1", 1.0)
    for node in speakers.node_names:
        wait_until(
            partial(speakers.messages, node, "configuration reloaded", since=edited_at),
            RELOAD_BOUND,
            what=f"{node} reloads",
        )
        assert speakers.records(node, virtualip="web", since=edited_at) == [], f"{node} touched web"


def test_sighup_rereads_the_file_and_an_unchanged_file_touches_nothing(
    lan: Lan, speakers: SpeakerSet
) -> None:
    speakers.configure(virtualip("web", vrid=85, node_priorities={"node1": 150}))
    speakers.start()
    wait_for_master(lan, VIP4, "node1")

    hup_at = time.time()
    for node in speakers.node_names:
        speakers.signal_only(node, signal.SIGHUP)

    # The content did not change, so only the signal can have caused these reloads.
    for node in speakers.node_names:
        wait_until(
            partial(speakers.messages, node, "configuration reloaded", since=hup_at),
            5,
            what=f"{node} reloads",
        )
    assert stays_master(lan, VIP4, "node1", 0.5)
    for node in speakers.node_names:
        assert speakers.records(node, virtualip="web", since=hup_at) == [], f"{node} touched web"
        assert speakers.speakers[node].poll() is None
