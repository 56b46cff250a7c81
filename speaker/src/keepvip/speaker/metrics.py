"""The speaker's Prometheus metrics (prefix ``keepvip_``; documented in docs/metrics.md).

Names after the prefix follow keepalived-exporter where it has one (``vrrp_state``,
``advert_sent_total``, ``advert_rcvd_total``, ``become_master_total``,
``release_master_total``, ``pri_zero_sent_total``, ``pri_zero_rcvd_total``), so existing
dashboards and alerts carry over. Every counter's ``reason`` label is a value of a named
enum (DESIGN.md: one name for the log field, the metric label and the condition).
Each `SpeakerMetrics` owns its registry, so tests and several speakers in one process
never share counters.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from keepvip.speaker.metrics_server import serve_metrics

_VIP = ("virtualip",)


class SpeakerMetrics:
    """All metrics of one speaker process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.vrrp_state = Gauge(
            "keepvip_vrrp_state",
            "VRRP state per VirtualIP: 0 INITIALIZE, 1 BACKUP, 2 MASTER, 3 FAULT (keepalived's codes)",
            ("virtualip", "interface", "vrid"),
            registry=r,
        )
        self.priority = Gauge("keepvip_vrrp_priority", "Base priority of this node", _VIP, registry=r)
        self.effective_priority = Gauge(
            "keepvip_vrrp_effective_priority", "Priority after health-check weights", _VIP, registry=r
        )
        self.transitions = Counter(
            "keepvip_vrrp_transitions_total",
            "State transitions by new state and reason",
            ("virtualip", "state", "reason"),
            registry=r,
        )
        self.become_master = Counter(
            "keepvip_become_master_total", "Transitions into MASTER", _VIP, registry=r
        )
        self.release_master = Counter(
            "keepvip_release_master_total", "Transitions out of MASTER", _VIP, registry=r
        )
        self.advert_sent = Counter("keepvip_advert_sent_total", "Advertisements sent", _VIP, registry=r)
        self.advert_received = Counter(
            "keepvip_advert_rcvd_total", "Valid advertisements received", _VIP, registry=r
        )
        self.priority_zero_sent = Counter(
            "keepvip_pri_zero_sent_total", "Priority-0 (leaving) advertisements sent", _VIP, registry=r
        )
        self.priority_zero_received = Counter(
            "keepvip_pri_zero_rcvd_total", "Priority-0 advertisements received", _VIP, registry=r
        )
        self.advert_dropped = Counter(
            "keepvip_advert_dropped_total",
            "Received VRRP packets dropped, by reason (virtualip empty when no router matched)",
            ("virtualip", "interface", "reason"),
            registry=r,
        )
        self.advert_checksum_form = Counter(
            "keepvip_advert_checksum_form_total",
            "Well-formed advertisements received, by the checksum form the sender used",
            ("interface", "form"),
            registry=r,
        )
        self.advert_mismatch = Counter(
            "keepvip_advert_mismatch_total",
            "Advertisements processed that disagree with our configuration (VRID collision sign)",
            ("virtualip", "reason"),
            registry=r,
        )
        self.check_status = Gauge(
            "keepvip_check_status",
            "Health check status: 1 passing, 0 failing",
            ("virtualip", "check"),
            registry=r,
        )
        self.arbiter_reachable = Gauge(
            "keepvip_arbiter_reachable", "1 when the split-brain arbiter answers", _VIP, registry=r
        )
        self.garp_sent = Counter(
            "keepvip_gratuitous_arp_sent_total", "Gratuitous ARP frames sent", _VIP, registry=r
        )
        self.na_sent = Counter(
            "keepvip_unsolicited_na_sent_total", "Unsolicited neighbour advertisements sent", _VIP, registry=r
        )
        # One histogram for the node, not one per VirtualIP: lateness is the event loop's
        # (all routers share one timer heap), and a child per router cost 3.5 MiB of RSS
        # at 1,000 VIPs (issue 15).
        self.timer_lateness = Histogram(
            "keepvip_timer_lateness_seconds",
            "How late the VRRP timers fired compared with their deadlines",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.config_reloads = Counter(
            "keepvip_config_reloads_total", "Configuration loads by result", ("result",), registry=r
        )
        self.routers = Gauge("keepvip_routers", "Virtual routers running on this node", registry=r)
        self.address_bind_failures = Counter(
            "keepvip_address_bind_failures_total",
            "Times the kernel refused or did not finish binding a router's VIPs (the router went FAULT)",
            _VIP,
            registry=r,
        )
        self.router_failures = Counter(
            "keepvip_router_failures_total",
            "Router tasks that ended with an unexpected error (the router went FAULT)",
            _VIP,
            registry=r,
        )
        self.virtualip_failures = Counter(
            "keepvip_virtualip_failures_total",
            "VirtualIPs that could not run on this node (each new failure once), by reason",
            ("reason",),
            registry=r,
        )
        self.address_conflicts = Counter(
            "keepvip_address_conflicts_total",
            "VirtualIPs kept out of the election: an address is already the node's own or its gateway",
            _VIP,
            registry=r,
        )
        self.events = Counter(
            "keepvip_speaker_events_total",
            "Kubernetes Events about this node's problems (Conflict, AddressBindFailed), by result",
            ("reason", "result"),
            registry=r,
        )
        self.status_invalid = Counter(
            "keepvip_status_invalid_total",
            "Status fields not believed (they break the spec's rules), by reason",
            ("reason",),
            registry=r,
        )
        self.config_errors = Counter(
            "keepvip_config_errors_total",
            "Failures of the configuration loop (it restarts; readiness is false meanwhile), by reason",
            ("reason",),
            registry=r,
        )
        self.config_ready = Gauge(
            "keepvip_config_ready", "1 while the configuration loop runs, 0 after it failed", registry=r
        )
        self.ready = True
        self.config_ready.set(1)

    def forget(self, virtualip: str) -> None:
        """Drop the per-VirtualIP series of a VirtualIP this node no longer runs."""
        for metric in (
            self.priority, self.effective_priority, self.become_master, self.release_master,
            self.advert_sent, self.advert_received, self.priority_zero_sent,
            self.priority_zero_received, self.arbiter_reachable, self.garp_sent, self.na_sent,
            self.address_conflicts,
        ):  # fmt: skip
            with contextlib.suppress(KeyError):
                metric.remove(virtualip)
        for counter in (self.address_bind_failures, self.router_failures):
            with contextlib.suppress(KeyError):
                counter.remove(virtualip)
        for labelled in (self.vrrp_state, self.transitions, self.check_status,
                         self.advert_mismatch):  # fmt: skip
            for labels in [s for s in _label_sets(labelled) if s and s[0] == virtualip]:
                labelled.remove(*labels)

    def set_ready(self, ready: bool) -> None:
        """The configuration loop runs (True) or has failed (False): ``/readyz`` and the gauge."""
        self.ready = ready
        self.config_ready.set(1 if ready else 0)

    def serve(self, host: str, port: int) -> None:
        """Expose /metrics and /readyz (200 while the configuration loop runs, else 503) on host:port.

        A daemon thread with bounded connections (:mod:`keepvip.speaker.metrics_server`).
        """
        serve_metrics(host, port, self.registry, is_ready=lambda: self.ready)


def _label_sets(metric: Gauge | Counter) -> list[tuple[str, ...]]:
    """The label tuples a labelled metric currently has."""
    return [tuple(labels) for labels in metric._metrics]  # no public listing in prometheus_client
