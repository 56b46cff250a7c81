"""The plain-host features: keepalived-style notify scripts and unicast peers."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest
from speaker_harness import VIP4, SpeakerSet, client_sees, virtualip, wait_for_master, wait_until

from keepvip.localcluster.lan import Lan

pytestmark = pytest.mark.timeout(60)


def test_notify_runs_with_keepalived_arguments_on_every_transition(
    lan: Lan, speakers: SpeakerSet, tmp_path: Path
) -> None:
    script = tmp_path / "notify.sh"
    script.write_text('echo "$@" >> "$(dirname "$0")/notified-$(hostname)-$$"\n')
    speakers.configure(virtualip("web", vrid=61, node_priorities={"node1": 150}))
    speakers.start(extra=["--notify", f"sh {shlex.quote(str(script))}", "--script-user", "root"])
    wait_for_master(lan, VIP4, "node1")

    def lines() -> list[str]:
        return sorted(line for path in tmp_path.glob("notified-*") for line in path.read_text().splitlines())

    wait_until(lambda: "INSTANCE web MASTER 150" in lines(), 10, what="node1's MASTER notification")
    wait_until(lambda: lines().count("INSTANCE web BACKUP 100") >= 2, 10, what="the backups' notifications")

    speakers.signal("node1", signal.SIGKILL)
    wait_until(lambda: "INSTANCE web MASTER 100" in lines(), 10, what="the new master's notification")


def unicast_virtualip(peers: list[str]) -> dict[str, object]:
    document = virtualip("web", vrid=62, node_priorities={"node1": 150, "node2": 120})
    document["spec"]["vrrp"]["unicastPeers"] = peers  # type: ignore[index]
    return document


def test_unicast_peers_elect_and_fail_over_and_a_sender_outside_the_peers_is_ignored(
    lan: Lan, speakers: SpeakerSet
) -> None:
    node1, node2 = (str(host.ipv4.ip) for host in lan.nodes[:2])
    speakers.configure(unicast_virtualip([node2]), nodes=["node1"])
    speakers.configure(unicast_virtualip([node1]), nodes=["node2"])
    # node3 thinks it belongs, but neither member lists it: its adverts are foreign.
    speakers.configure(unicast_virtualip([node1, node2]), nodes=["node3"])
    speakers.start("node1", "node2")
    wait_for_master(lan, VIP4, "node1")
    speakers.wait_state("node2", "BACKUP", "web")
    # node2 is BACKUP from its start, which can come after node1's first adverts (a loaded
    # host): it must hear the next ones, sent to it alone.
    wait_until(
        lambda: speakers.metrics("node2").value("keepvip_advert_rcvd_total", virtualip="web") > 0,
        5,
        what="node2 to receive node1's unicast adverts",
    )

    # node3 hears nobody (no member sends to it), so it elects itself: a misconfigured node
    # splits its own brain, but the members ignore it and count why.
    speakers.start("node3")
    wait_until(
        lambda: (
            speakers.metrics("node1").value(
                "keepvip_advert_dropped_total", virtualip="web", reason="foreign_sender"
            )
            > 0
        ),
        10,
        what="node1 to drop node3's adverts as foreign",
    )
    speakers.terminate("node3")
    speakers.signal("node1", signal.SIGKILL)
    speakers.wait_state("node2", "MASTER", "web", timeout=5)
    # The killed speaker left the VIP on node1; node2's announcements move the client.
    wait_until(lambda: client_sees(lan, VIP4) == "node2", 5, what="the client to follow node2")
