"""A VirtualIP waiting for its allocation is logged once, not at every snapshot.

500 unallocated VirtualIPs on the local cluster logged 140,000 "not running …: waiting
for the operator" warnings per speaker in five minutes (one per VirtualIP per watch
event). The speaker below is real; the skipped VirtualIPs never reach netlink.
"""

from __future__ import annotations

import logging

import pytest

from keepvip.speaker.desired import NodeIdentity, PlanProblem, Skipped
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.speaker import Speaker


def test_a_waiting_virtualip_is_logged_once_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    speaker = Speaker(NodeIdentity("node-a"), None, SpeakerMetrics(), use_status_allocation=True)
    waiting = [Skipped(f"v{i}", PlanProblem.NOT_ALLOCATED, "waiting for the operator to accept it")
               for i in range(3)]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="keepvip.speaker"):
        for _ in range(5):  # five snapshots, nothing changed
            speaker._skip_failures(waiting)
        assert len([r for r in caplog.records if "not running" in r.getMessage()]) == 3
        speaker._skip_failures(waiting[1:])  # v0 allocated meanwhile
        speaker._skip_failures(waiting)  # and waiting again: news again
        assert len([r for r in caplog.records if "not running" in r.getMessage()]) == 4
