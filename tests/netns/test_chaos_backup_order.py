"""Regression of the chaos run's finding (issue 14, bench/chaos.py, fourth pass): two backups
must not take over together.

In the quiet 200-fault run at 100 ms adverts (seed 14, faults #132 ``link@node3`` and #154
``cut@node3``) the master of VRID 4 (priority 150) vanished and both backups, priorities 130
and 120, became MASTER in the same millisecond. The lower one yielded 2 ms later, but the
client's ARP entry had followed its announcement and pointed at a node without the VIP until
the winner's next gratuitous ARP: a 520 ms gap against the 449 ms bound. RFC 9568 §6.1 orders
backups by Skew_Time, ``(256 - priority) / 256`` of the interval: 130 and 120 expire 3.9 ms
apart, ample time for the higher one's advertisement to reach the other. The speaker rounded
every deadline up to a 5 ms grid (interval / 20, for shared wake-ups), which put both expiries
on one grid point about one time in five. A Master_Down deadline is now armed exactly within
its last grid step.

The test: three speakers, 40 VirtualIPs at 100 ms, priorities 150 / 130 / 120; node1 is
SIGKILLed (no priority 0: both backups wait out their own Master_Down_Interval), node2 takes
every VIP, node1 comes back and pre-empts, ``CYCLES`` times. Whether the two expiries share a
grid point depends on how late after node1's grid point the backups read its last advert, the
same for all 40 routers of one kill: on the old code one kill in three made node3 MASTER of
20–40 of them at once (two of two runs of this test failed, with 20+ each). With the deadline
armed exactly, 7 runs of 240 takeovers each saw 0, 0, 0, 0, 0, 0 and 3 lower backups become
MASTER as well, and one CI run saw 6 in one kill (VIPs whose deadlines fell within a few
milliseconds of each other).

That residue was the winner's binds (sixth pass): each router bound its VIP before its first
advertisement, so when many deadlines fell together the last advertisements waited for the
kernel's answers to the earlier binds. A capture on the LAN (quiet machine, 6 runs × 6 kills
× 40 takeovers) timed node2's first advertisement after its Master_Down deadline: 2.4 ms
median and up to 7.4 ms with binding first — past the 3.9 ms — and one run in four failed;
advertising first, as RFC 9568 §6.4.2 and keepalived order it, 1.9 ms median, at most 3.9 ms,
and 0 lower backups in 1,440 takeovers; counting each advertisement from its arrival as the
kernel stamped it (not from its read, a millisecond later), 0.6 ms median, at most 2.6 ms,
and again 0 in 1,440. What is left is a whole speaker off the CPU across
both deadlines: with a process spinning beside the speakers on this two-CPU machine, 2 of 10
runs of the new code had 9 in one kill, and 1 of 4 of the old code 12. ``SCHEDULER_NOISE``
tolerates that and still fails on the grid's 20–40 in every third kill.

Beside the cluster tier on ``make test``'s other worker, one CI run saw 10–16 in three of
six kills: a CPU that busy decides the race instead of the deadlines, as the old grid did.
The test is therefore ``quiet``: ``make test`` runs it alone, after the parallel run.
"""

from __future__ import annotations

import time
from functools import partial

import pytest
from speaker_harness import SpeakerSet, virtualip, wait_until

from keepvip.localcluster.lan import Lan

COUNT = 40
PRIORITIES = {"node1": 150, "node2": 130, "node3": 120}
SCHEDULER_NOISE = 10  # lower backups that may still lose the 3.9 ms race to a stalled speaker (see above)
CYCLES = 6

pytestmark = pytest.mark.quiet


def _documents() -> list[dict[str, object]]:
    return [
        virtualip(f"vip{i}", vrid=i + 1, addresses=[f"198.18.0.{200 + i}/24"], interval="100ms",
                  node_priorities=PRIORITIES)
        for i in range(COUNT)
    ]  # fmt: skip


def test_the_lower_backup_stays_backup_when_the_master_dies(lan: Lan, speakers: SpeakerSet) -> None:
    speakers.configure(*_documents())
    started = time.time()
    speakers.start("node1", "node2", "node3")
    also_master: list[str] = []
    for cycle in range(CYCLES):
        assert wait_until(partial(_all_became_master, speakers, "node1", started), 30), speakers.report()
        killed = speakers.kill("node1")
        assert wait_until(partial(_all_became_master, speakers, "node2", killed), 15), speakers.report()
        also_master += [
            f"kill {cycle}: vip{i}"
            for i in range(COUNT)
            if speakers.became("node3", "MASTER", f"vip{i}", since=killed)
        ]
        started = time.time()
        speakers.start("node1")
    assert len(also_master) <= SCHEDULER_NOISE, f"node3 took over beside node2: {also_master}"


def _all_became_master(speakers: SpeakerSet, node: str, since: float) -> bool | None:
    """Every VirtualIP's router on ``node`` became MASTER at or after ``since``."""
    return all(speakers.became(node, "MASTER", f"vip{i}", since=since) for i in range(COUNT)) or None
