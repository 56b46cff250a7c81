"""The speaker's Prometheus metrics (prefix ``keepvip_``; documented in docs/metrics.md).

Names after the prefix follow keepalived-exporter where it has one (``vrrp_state``,
``advert_sent_total``, ``advert_rcvd_total``, ``become_master_total``,
``release_master_total``, ``pri_zero_sent_total``, ``pri_zero_rcvd_total``), so existing
dashboards and alerts carry over. Every counter's ``reason`` label is a value of a named
enum (DESIGN.md: one name for the log field, the metric label and the condition).
Each `SpeakerMetrics` owns its registry, so tests and several speakers in one process
never share counters. The values are plain numbers rendered only at scrape time
(:mod:`keepvip.speaker.collector`): prometheus_client's per-series children were 7 MiB
of a 1,000-VIP speaker (issue 15).
"""

from __future__ import annotations

from prometheus_client.registry import CollectorRegistry

from keepvip.speaker.collector import Family, Histogram, SpeakerCollector

_VIP = ("virtualip",)


class SpeakerMetrics:
    """All metrics of one speaker process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.vrrp_state = _gauge(
            "keepvip_vrrp_state",
            "VRRP state per VirtualIP: 0 INITIALIZE, 1 BACKUP, 2 MASTER, 3 FAULT (keepalived's codes)",
            ("virtualip", "interface", "vrid"),
        )
        self.priority = _gauge("keepvip_vrrp_priority", "Base priority of this node", _VIP)
        self.effective_priority = _gauge(
            "keepvip_vrrp_effective_priority", "Priority after health-check weights", _VIP
        )
        self.transitions = _counter(
            "keepvip_vrrp_transitions_total",
            "State transitions by new state and reason",
            ("virtualip", "state", "reason"),
        )
        self.become_master = _counter("keepvip_become_master_total", "Transitions into MASTER", _VIP)
        self.release_master = _counter("keepvip_release_master_total", "Transitions out of MASTER", _VIP)
        self.advert_sent = _counter("keepvip_advert_sent_total", "Advertisements sent", _VIP)
        self.advert_received = _counter("keepvip_advert_rcvd_total", "Valid advertisements received", _VIP)
        self.priority_zero_sent = _counter(
            "keepvip_pri_zero_sent_total", "Priority-0 (leaving) advertisements sent", _VIP
        )
        self.priority_zero_received = _counter(
            "keepvip_pri_zero_rcvd_total", "Priority-0 advertisements received", _VIP
        )
        self.advert_dropped = _counter(
            "keepvip_advert_dropped_total",
            "Received VRRP packets dropped, by reason (virtualip empty when no router matched)",
            ("virtualip", "interface", "reason"),
        )
        self.advert_checksum_form = _counter(
            "keepvip_advert_checksum_form_total",
            "Well-formed advertisements received, by the checksum form the sender used",
            ("interface", "form"),
        )
        self.advert_mismatch = _counter(
            "keepvip_advert_mismatch_total",
            "Advertisements processed that disagree with our configuration (VRID collision sign)",
            ("virtualip", "reason"),
        )
        self.check_status = _gauge(
            "keepvip_check_status",
            "Health check status: 1 passing, 0 failing",
            ("virtualip", "check"),
        )
        self.arbiter_reachable = _gauge(
            "keepvip_arbiter_reachable", "1 when the split-brain arbiter answers", _VIP
        )
        self.garp_sent = _counter("keepvip_gratuitous_arp_sent_total", "Gratuitous ARP frames sent", _VIP)
        self.na_sent = _counter(
            "keepvip_unsolicited_na_sent_total", "Unsolicited neighbour advertisements sent", _VIP
        )
        # One histogram for the node, not one per VirtualIP: lateness is the event loop's
        # (all routers share one timer heap), and a child per router cost 3.5 MiB of RSS
        # at 1,000 VIPs (issue 15).
        self.timer_lateness = Histogram(
            "keepvip_timer_lateness_seconds",
            "How late the VRRP timers fired compared with their deadlines",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
        )
        self.config_reloads = _counter(
            "keepvip_config_reloads_total", "Configuration loads by result", ("result",)
        )
        self.routers = _gauge("keepvip_routers", "Virtual routers running on this node")
        self.address_bind_failures = _counter(
            "keepvip_address_bind_failures_total",
            "Times the kernel refused or did not finish binding a router's VIPs (the router went FAULT)",
            _VIP,
        )
        self.router_failures = _counter(
            "keepvip_router_failures_total",
            "Router tasks that ended with an unexpected error (the router went FAULT)",
            _VIP,
        )
        self.virtualip_failures = _counter(
            "keepvip_virtualip_failures_total",
            "VirtualIPs that could not run on this node (each new failure once), by reason",
            ("reason",),
        )
        self.address_conflicts = _counter(
            "keepvip_address_conflicts_total",
            "VirtualIPs kept out of the election: an address is already the node's own or its gateway",
            _VIP,
        )
        self.events = _counter(
            "keepvip_speaker_events_total",
            "Kubernetes Events about this node's problems (Conflict, AddressBindFailed), by result",
            ("reason", "result"),
        )
        self.status_invalid = _counter(
            "keepvip_status_invalid_total",
            "Status fields not believed (they break the spec's rules), by reason",
            ("reason",),
        )
        self.config_errors = _counter(
            "keepvip_config_errors_total",
            "Failures of the configuration loop (it restarts; readiness is false meanwhile), by reason",
            ("reason",),
        )
        self.config_ready = _gauge(
            "keepvip_config_ready", "1 while the configuration loop runs, 0 after it failed"
        )
        self._families = [value for value in vars(self).values() if isinstance(value, Family | Histogram)]
        self.registry.register(SpeakerCollector(self._families))
        self.ready = True
        self.config_ready.set(1)

    def forget(self, virtualip: str) -> None:
        """Drop every series of a VirtualIP this node no longer runs (each family whose
        first label is ``virtualip``)."""
        for family in self._families:
            if isinstance(family, Family) and family.labelnames[:1] == _VIP:
                for labels in [s for s in family.label_sets() if s[0] == virtualip]:
                    family.remove(*labels)

    def set_ready(self, ready: bool) -> None:
        """The configuration loop runs (True) or has failed (False): ``/readyz`` and the gauge."""
        self.ready = ready
        self.config_ready.set(1 if ready else 0)

    def exported_series(self) -> dict[str, tuple[str, ...]]:
        """Series name → label names, for every series the speaker exposes (histograms:
        their ``_bucket``, ``_sum`` and ``_count``; ``le`` not listed)."""
        out: dict[str, tuple[str, ...]] = {}
        for family in self._families:
            if isinstance(family, Histogram):
                out.update({family.name + suffix: () for suffix in ("_bucket", "_sum", "_count")})
            else:
                out[family.sample_name] = family.labelnames
        return out

    def serve(self, host: str, port: int) -> None:
        """Expose /metrics and /readyz (200 while the configuration loop runs, else 503) on host:port.

        A daemon thread with bounded connections (:mod:`keepvip.speaker.metrics_server`).
        """
        from keepvip.speaker.metrics_server import serve_metrics  # noqa: PLC0415 - only when served

        serve_metrics(host, port, self.registry, is_ready=lambda: self.ready)


def _gauge(name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> Family:
    return Family(name, "gauge", documentation, labelnames)


def _counter(name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> Family:
    return Family(name, "counter", documentation, labelnames)
