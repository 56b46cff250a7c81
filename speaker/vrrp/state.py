"""The names of a virtual router's states and of the reasons it moves between them.

DESIGN.md: every decision has a name. A `TransitionReason` is what the speaker logs,
what labels the ``keepvip_become_master_total``-style metrics and what the status
shows, so the values are short, stable, snake_case strings.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    """RFC 9568 §6.4 states plus keepalived's FAULT.

    RFC 9568 renames Master to Active; keepvip keeps the RFC 3768 / keepalived word
    MASTER because that is what operators grep for and what ``status.nodes`` shows.
    """

    INITIALIZE = "INITIALIZE"  # RFC 9568 §6.4.1: not started, or shut down
    BACKUP = "BACKUP"  # RFC 9568 §6.4.2
    MASTER = "MASTER"  # RFC 9568 §6.4.3 ("Active")
    FAULT = "FAULT"  # keepalived: VIPs released, not advertising, not electing

    @property
    def keepalived_code(self) -> int:
        """The number keepalived (and keepalived-exporter's ``vrrp_state``) uses."""
        return _KEEPALIVED_CODES[self]


_KEEPALIVED_CODES = {State.INITIALIZE: 0, State.BACKUP: 1, State.MASTER: 2, State.FAULT: 3}


class FaultReason(enum.Enum):
    """Why a router is in FAULT. Several can hold at once; FAULT lasts until all clear."""

    CHECK_FAILED = "check_failed"  # a health check with weight 0 is failing
    LINK_DOWN = "link_down"  # the VRRP interface is down
    ARBITER_LOST = "arbiter_lost"  # the split-brain arbiter is unreachable
    # The kernel refused (or did not finish) binding the VIPs on becoming master: a
    # master without its addresses would be a silent outage, so it lets the backups
    # take over (priority 0) and retries later (issue 15).
    ADDRESS_BIND_FAILED = "address_bind_failed"
    ROUTER_FAILED = "router_failed"  # the router's task ended with an unexpected error


class TransitionReason(enum.Enum):
    """Why a `StateChanged` happened."""

    STARTUP = "startup"  # §6.4.1 Initialize → Backup on Startup
    ADDRESS_OWNER = "address_owner"  # §6.4.1 priority 255 → Master at once
    MASTER_DOWN_TIMER = "master_down_timer"  # §6.4.2 the master went silent
    PRIORITY_ZERO_RECEIVED = "priority_zero_received"  # §6.4.2 the master left (Skew_Time)
    PREEMPT = "preempt"  # §6.4.2 a lower-priority master was pre-empted
    HIGHER_PRIORITY_SEEN = "higher_priority_seen"  # §6.4.3 a higher priority advertised
    EQUAL_PRIORITY_HIGHER_ADDRESS = "equal_priority_higher_address"  # §6.4.3 tie-break lost
    FAULT_CHECK = "fault_check"  # FaultReason.CHECK_FAILED
    FAULT_LINK = "fault_link"  # FaultReason.LINK_DOWN
    FAULT_ARBITER = "fault_arbiter"  # FaultReason.ARBITER_LOST
    FAULT_ADDRESS_BIND = "fault_address_bind"  # FaultReason.ADDRESS_BIND_FAILED
    FAULT_ROUTER = "fault_router"  # FaultReason.ROUTER_FAILED
    FAULT_CLEARED = "fault_cleared"  # the last fault reason cleared → Initialize rules
    SHUTDOWN = "shutdown"  # §6.4.2 / §6.4.3 Shutdown event


FAULT_TRANSITIONS: dict[FaultReason, TransitionReason] = {
    FaultReason.CHECK_FAILED: TransitionReason.FAULT_CHECK,
    FaultReason.LINK_DOWN: TransitionReason.FAULT_LINK,
    FaultReason.ARBITER_LOST: TransitionReason.FAULT_ARBITER,
    FaultReason.ADDRESS_BIND_FAILED: TransitionReason.FAULT_ADDRESS_BIND,
    FaultReason.ROUTER_FAILED: TransitionReason.FAULT_ROUTER,
}
