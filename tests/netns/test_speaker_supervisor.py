"""The speaker's parent process (keepvip.speaker.supervisor): a killed speaker's VIPs go at once.

A VRRP process killed by a signal (the OOM killer, a segfault) used to leave its VIPs on
the node until the next speaker started: beside the backup that took over, a split brain
as long as the process manager's restart (seconds under a kubelet, minutes in
CrashLoopBackOff). ``keepvip speaker`` now forks before its imports; the parent removes
the VIPs the moment the child dies by a signal and exits 128 + the signal's number.
Each scenario kills only the VRRP child, as the OOM killer does, and watches ``ip addr``
and the speakers' logs.

At 1 s adverts Master_Down_Interval is about 3.6 s: the parent's sweep (a netlink dump and
a delete per VIP) must be done long before the backup takes over, so that the VIP is on
node1 or on node2 but never on both.

Then the parent sends the priority-0 advertisements the child kept ready in memory they
share (keepvip.speaker.net.handover), so the backup takes over after Skew_Time, as after a
SIGTERM, and not after Master_Down_Interval: checked on the wire with tshark and in the
backup's own reason for becoming master.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from ipaddress import IPv4Interface, IPv6Address, IPv6Interface, ip_interface
from pathlib import Path

import pytest
from speaker_harness import SpeakerSet, holders, virtualip, wait_for_master, wait_until
from test_net_announce import tshark_fields

from keepvip.localcluster.lan import Lan
from keepvip.localcluster.procs import children_of

pytestmark = pytest.mark.timeout(90)

IPInterface = IPv4Interface | IPv6Interface

VIPS = [ip_interface(f"198.18.0.{210 + i}/24") for i in range(3)]
VIPS6 = [ip_interface(f"2001:db8::{0x210 + i:x}/64") for i in range(3)]  # sent from node1's link-local


def _documents(interval: str = "1s", vips: Sequence[IPInterface] = VIPS) -> list[dict[str, object]]:
    return [
        virtualip(f"vip{i}", vrid=70 + i, addresses=[str(vip)], interval=interval,
                  node_priorities={"node1": 150, "node2": 120})
        for i, vip in enumerate(vips)
    ]  # fmt: skip


def _node1_master_of_all(
    lan: Lan, speakers: SpeakerSet, *extra: str, interval: str = "1s", vips: Sequence[IPInterface] = VIPS
) -> None:
    speakers.configure(*_documents(interval, vips))
    speakers.start("node1", extra=extra)
    for vip in vips:
        wait_for_master(lan, vip, "node1")
    speakers.start("node2")
    speakers.wait_joined("node2")


def _wait_until_node2_alone_holds(lan: Lan, vips: Sequence[IPInterface], *, timeout: float) -> list[str]:
    """Poll ``ip addr`` until node2 alone holds every VIP; the VIPs seen on two nodes meanwhile."""
    both: list[str] = []

    def node2_holds_all() -> bool | None:
        held = [holders(lan, vip) for vip in vips]
        both.extend(str(vip) for vip, nodes in zip(vips, held, strict=True) if len(nodes) > 1)
        return all(nodes == {"node2"} for nodes in held) or None

    wait_until(node2_holds_all, timeout, interval=0.05, what="node2 holds every VIP, node1 none")
    return both


@pytest.mark.parametrize("marker", ["proto", "state-file"])
def test_a_killed_vrrp_process_leaves_no_vip_behind_and_the_backup_takes_over_alone(
    lan: Lan, speakers: SpeakerSet, marker: str
) -> None:
    # state-file: what kernels < 6.3 get; the VIPs carry no IFA_PROTO, the file names them.
    _node1_master_of_all(lan, speakers, "--ownership-marker", marker)
    parent = speakers.speakers["node1"]
    killed_at = time.time()
    os.kill(speakers.vrrp_pid("node1"), signal.SIGKILL)  # as the OOM killer does: the child only

    both = _wait_until_node2_alone_holds(lan, VIPS, timeout=20)
    assert both == [], f"node1 and node2 held these together: {both}"
    assert parent.wait(5) == 128 + signal.SIGKILL
    (told,) = speakers.messages("node1", "killed by SIGKILL", since=killed_at)
    assert told["level"] == "ERROR"
    assert told["reason"] == "speaker_killed"
    assert sorted(told["removed"]) == sorted(f"{vip} from {lan.node('node1').ifname}" for vip in VIPS)


def test_the_parent_removes_them_before_the_backups_timers_expire(lan: Lan, speakers: SpeakerSet) -> None:
    _node1_master_of_all(lan, speakers)
    killed_at = time.monotonic()
    os.kill(speakers.vrrp_pid("node1"), signal.SIGKILL)
    wait_until(lambda: all("node1" not in holders(lan, vip) for vip in VIPS) or None, 5, interval=0.02)
    removed_after = time.monotonic() - killed_at
    print(f"node1's VIPs gone {1000 * removed_after:.0f} ms after the kill")
    assert not any("node2" in holders(lan, vip) for vip in VIPS)  # Master_Down (~3.6 s) not yet over
    for vip in VIPS:
        wait_for_master(lan, vip, "node2")


@pytest.mark.parametrize("vips", [VIPS, VIPS6], ids=["ipv4", "ipv6"])
def test_the_parent_sends_the_killed_masters_priority_zero_so_the_backup_takes_over_after_skew_time(
    lan: Lan, speakers: SpeakerSet, tmp_path: Path, vips: list[IPInterface]
) -> None:
    # At 2 s adverts node2 (priority 120) waits Master_Down_Interval = 3 x 2 + Skew_Time = 7.06 s
    # after node1's last advertisement; told priority 0, Skew_Time = (256 - 120) / 256 x 2 = 1.06 s.
    _node1_master_of_all(lan, speakers, interval="2s", vips=vips)
    node1 = lan.node("node1")
    source = str(node1.ipv4.ip) if vips is VIPS else str(link_local(lan, "node1"))
    with lan.capture("node2", tmp_path / "vrrp.pcap", "ip proto 112 or ip6 proto 112") as pcap:
        killed_at, killed_wall = time.monotonic(), time.time()
        os.kill(speakers.vrrp_pid("node1"), signal.SIGKILL)  # the child only, as the OOM killer does
        both = _wait_until_node2_alone_holds(lan, vips, timeout=15)
        took = time.monotonic() - killed_at
    print(f"node2 held every VIP {1000 * took:.0f} ms after the kill")

    assert both == []
    assert took < 4.0  # Skew_Time (1.06 s) and a loaded machine; Master_Down_Interval would be 7.06 s
    frames = tshark_fields(pcap, "frame.time_epoch", "ip.src", "ipv6.src", "vrrp.virt_rtr_id", "vrrp.prio")
    leaving = {
        int(vrid)
        for at, source4, source6, vrid, priority in frames
        if source in (source4, source6) and priority == "0" and float(at) > killed_wall
    }
    assert leaving == {70, 71, 72}
    (told,) = speakers.messages("node1", "killed by SIGKILL", since=killed_wall)
    assert told["handed_over"] == len(vips)
    for i in range(len(vips)):
        became = [
            t.reason
            for t in speakers.transitions("node2", f"vip{i}", since=killed_wall)
            if t.state == "MASTER"
        ]
        assert became == ["priority_zero_received"]


def link_local(lan: Lan, node: str) -> IPv6Address:
    """The node's IPv6 link-local address: the source of its VRRPv3 advertisements (RFC 9568 §5.1.2.1)."""
    host = lan.node(node)
    found = [a.ip for a in lan.addresses(host, host.ifname) if isinstance(a.ip, IPv6Address)]
    return next(address for address in found if address.is_link_local)


def test_killing_the_speakers_pid_makes_its_vrrp_process_hand_over_and_exit(
    lan: Lan, speakers: SpeakerSet
) -> None:
    # Process managers and users signal the pid they started: the child must not outlive it
    # and keep advertising with nobody to stop it. Told SIGTERM by the kernel (PR_SET_PDEATHSIG,
    # as keepalived's VRRP child asks), it stops as after any SIGTERM: priority 0, VIPs released.
    _node1_master_of_all(lan, speakers)
    child = speakers.vrrp_pid("node1")
    killed_at = time.time()
    assert speakers.signal("node1", signal.SIGKILL) == -signal.SIGKILL  # the parent alone
    wait_until(lambda: not Path(f"/proc/{child}").exists() or None, 10, what="the VRRP child to exit")
    assert speakers.messages("node1", "handing over", since=killed_at)
    both = _wait_until_node2_alone_holds(lan, VIPS, timeout=15)
    assert both == []
    for i in range(len(VIPS)):
        # (its BACKUP start may still be logged after the kill: wait_joined saw its first VIP)
        became = [
            t.reason for t in speakers.transitions("node2", f"vip{i}", since=killed_at) if t.state == "MASTER"
        ]
        assert became == ["priority_zero_received"]


def test_sigterm_to_the_parent_reaches_the_speaker_which_hands_over_and_exits_zero(
    lan: Lan, speakers: SpeakerSet
) -> None:
    _node1_master_of_all(lan, speakers)
    at, code = speakers.terminate("node1")
    assert code == 0
    assert speakers.messages("node1", "handing over", since=at)
    assert speakers.messages("node1", "killed by", since=at) == []
    for vip in VIPS:
        assert "node1" not in holders(lan, vip)
        wait_for_master(lan, vip, "node2")


def test_without_the_supervisor_the_speaker_is_one_process(lan: Lan, speakers: SpeakerSet) -> None:
    speakers.configure(*_documents())
    speakers.start("node1", extra=["--no-supervisor"])
    wait_for_master(lan, VIPS[0], "node1")
    pid = speakers.speakers["node1"].pid
    assert children_of(pid) == []
