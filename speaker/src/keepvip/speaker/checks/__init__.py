"""Health checks and the arbiter: probes, rise/fall tracking, the effective priority.

Layers, each in its own module:

* :mod:`.tracker` — pure: rise/fall status of one check, and :func:`effective_priority`.
* :mod:`.probe` and the probes (:mod:`.tcp_probe`, :mod:`.http_probe`,
  :mod:`.icmp_probe`, :mod:`.exec_probe`) — one bounded asynchronous attempt each.
* :mod:`.runner` — a task per check: probe every interval, feed the tracker, report
  status changes.
* :mod:`.gateway` and :mod:`.arbiter` — the split-brain guard (ping the gateway).
* :mod:`.build` — from the API model (``HealthCheck``) to probes and runners.

Checks run on the speaker's event loop next to the VRRP routers and never block it.
"""

from keepvip.speaker.checks.arbiter import ARBITER_CHECK_NAME, ArbiterRunner, GatewayProbe, OnArbiterChange
from keepvip.speaker.checks.build import build_probe, build_runner
from keepvip.speaker.checks.exec_probe import ExecProbe
from keepvip.speaker.checks.gateway import NoDefaultGateway, default_gateway
from keepvip.speaker.checks.http_probe import HttpProbe
from keepvip.speaker.checks.icmp_probe import IcmpProbe
from keepvip.speaker.checks.probe import Probe, ProbeResult
from keepvip.speaker.checks.runner import CheckRunner, OnChange, RunCounters
from keepvip.speaker.checks.tcp_probe import TcpProbe
from keepvip.speaker.checks.tracker import (
    CheckState,
    CheckStatus,
    CheckTracker,
    Priority,
    effective_priority,
    faulting_checks,
)

__all__ = [
    "ARBITER_CHECK_NAME",
    "ArbiterRunner",
    "CheckRunner",
    "CheckState",
    "CheckStatus",
    "CheckTracker",
    "ExecProbe",
    "GatewayProbe",
    "HttpProbe",
    "IcmpProbe",
    "NoDefaultGateway",
    "OnArbiterChange",
    "OnChange",
    "Priority",
    "Probe",
    "ProbeResult",
    "RunCounters",
    "TcpProbe",
    "build_probe",
    "build_runner",
    "default_gateway",
    "effective_priority",
    "faulting_checks",
]
