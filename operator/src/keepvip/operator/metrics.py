"""The operator's Prometheus metrics (prefix ``keepvip_operator_``).

Handlers count their runs by outcome; the maintenance loop publishes the pool usage;
the status stage publishes each VirtualIP's state, which is what the chart's alerts
(no master, split brain, pool nearly exhausted) are written against.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

from keepvip.api.phase import Phase

RECONCILES = Counter(
    "keepvip_operator_reconcile_total",
    "Handler runs, by handler (spec, status, delete, daemonset) and result (ok, retry, error).",
    ["handler", "result"],
)
RECONCILE_ERRORS = Counter(
    "keepvip_operator_reconcile_errors_total",
    "Handler runs that failed or must retry, by handler and reason (a condition reason or an exception).",
    ["handler", "reason"],
)
POOL_SIZE = Gauge(
    "keepvip_operator_allocation_pool_size",
    "(multicastGroup, vrid) pairs in the allocation pool, by address family.",
    ["family"],
)
POOL_USED = Gauge(
    "keepvip_operator_allocation_pool_used",
    "Pairs of the pool held by VirtualIPs, by address family.",
    ["family"],
)
VIRTUALIP_STATE = Gauge(
    "keepvip_operator_virtualip_state",
    "1 for the state each VirtualIP is in (Pending, Ready, Degraded, SplitBrain, Conflict, Invalid), else 0.",
    ["virtualip", "state"],
)


POOL_ADDRESSES_TOTAL = Gauge(
    "keepvip_pool_addresses_total",
    "Usable addresses of a VirtualIPPool, by pool and family (capped at 2^63-1).",
    ["pool", "family"],
)
POOL_ADDRESSES_ASSIGNED = Gauge(
    "keepvip_pool_addresses_assigned",
    "Addresses of a VirtualIPPool held by LoadBalancer Services, by pool and family.",
    ["pool", "family"],
)
POOL_ADDRESSES_AVAILABLE = Gauge(
    "keepvip_pool_addresses_available",
    "Addresses of a VirtualIPPool still free, by pool and family.",
    ["pool", "family"],
)


def record_pool(pool: str, family: int, total: int, assigned: int, available: int) -> None:
    """Set a pool's gauges for one family."""
    labels = {"pool": pool, "family": f"ipv{family}"}
    POOL_ADDRESSES_TOTAL.labels(**labels).set(total)
    POOL_ADDRESSES_ASSIGNED.labels(**labels).set(assigned)
    POOL_ADDRESSES_AVAILABLE.labels(**labels).set(available)


def record_state(name: str, state: Phase | None) -> None:
    """Set a VirtualIP's state gauges (one series per state, exactly one at 1)."""
    for phase in Phase:
        VIRTUALIP_STATE.labels(virtualip=name, state=phase.value).set(1 if phase is state else 0)


def remove_series(name: str) -> None:
    """Drop a deleted VirtualIP's series."""
    for phase in Phase:
        try:
            VIRTUALIP_STATE.remove(name, phase.value)
        except KeyError:
            continue


def serve(address: str, port: int) -> None:
    """Serve /metrics in a background thread."""
    start_http_server(port, addr=address)
