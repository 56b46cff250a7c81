"""From the API model to runnable checks: the one place that reads ``HealthCheck``."""

from __future__ import annotations

from keepvip.api.model import HealthCheck, HttpScheme
from keepvip.speaker.checks.exec_probe import ExecProbe
from keepvip.speaker.checks.http_probe import HttpProbe
from keepvip.speaker.checks.icmp_probe import IcmpProbe
from keepvip.speaker.checks.probe import Probe
from keepvip.speaker.checks.runner import CheckRunner, OnChange
from keepvip.speaker.checks.tcp_probe import TcpProbe
from keepvip.speaker.checks.tracker import CheckTracker
from keepvip.speaker.sandbox import ScriptPolicy


def build_probe(check: HealthCheck, scripts: ScriptPolicy | None = None) -> Probe:
    """The probe for ``check``'s kind (tcp, http, icmp or exec), bounded by its timeout.

    ``scripts`` decides what an exec check may run; None refuses every exec check (a
    caller that forgot the policy must not run programs as root).
    """
    timeout = check.timeout.total_seconds()
    if check.tcp is not None:
        return TcpProbe(check.tcp.host, check.tcp.port, timeout)
    if check.http is not None:
        http = check.http
        return HttpProbe(
            http.host,
            http.port,
            timeout,
            path=http.path,
            tls=http.scheme is HttpScheme.HTTPS,
            expected_statuses=http.expected_statuses,
        )
    if check.icmp is not None:
        return IcmpProbe(check.icmp.host, timeout)
    if check.exec is not None:
        return ExecProbe(check.exec.command, timeout, scripts or ScriptPolicy.refuse_all())
    raise ValueError(f"health check {check.name} has no kind")  # the model forbids this


def build_runner(
    check: HealthCheck, on_change: OnChange | None = None, scripts: ScriptPolicy | None = None
) -> CheckRunner:
    """A (not yet started) :class:`CheckRunner` for ``check`` with its rise, fall and weight."""
    return CheckRunner(
        check.name,
        build_probe(check, scripts),
        CheckTracker(rise=check.rise, fall=check.fall, weight=check.weight),
        check.interval.total_seconds(),
        on_change=on_change,
    )
