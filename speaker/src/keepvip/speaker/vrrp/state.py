"""A virtual router's states, the reasons it moves between them, and the moves allowed.

DESIGN.md: every decision has a name. A `TransitionReason` is what the speaker logs,
what labels the ``keepvip_become_master_total``-style metrics and what the status
shows, so the values are short, stable, snake_case strings.

The state machine is data, as in h11's ``_state.py``: `TRANSITIONS` says, for every
state, which reasons may move it and where to. `VirtualRouter` never assigns a state
itself; it names the reason and `transition` looks the target up, so a move the table
does not list is a bug that raises instead of a silent wrong state. The property tests
check every transition they see against the table, and docs/vrrp-states.md draws the
diagram from it (`mermaid_diagram`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final


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
    ADDRESS_BIND_FAILED = "AddressBindFailed"
    ROUTER_FAILED = "router_failed"  # the router's task ended with an unexpected error
    INTERFACE_DOWN = "tracked_interface_down"  # a tracked interface with weight 0 is down
    SYNC_GROUP = "sync_group"  # another member of the VirtualIP's sync group holds it


class TransitionReason(enum.Enum):
    """Why a `StateChanged` happened."""

    STARTUP = "startup"  # §6.4.1 Initialize → Backup on Startup
    ADDRESS_OWNER = "address_owner"  # §6.4.1 priority 255 → Master at once
    MASTER_DOWN_TIMER = "master_down_timer"  # §6.4.2 the master went silent
    PRIORITY_ZERO_RECEIVED = "priority_zero_received"  # §6.4.2 the master left (Skew_Time)
    PREEMPT = "preempt"  # §6.4.2 a lower-priority master was pre-empted
    HIGHER_PRIORITY_SEEN = "higher_priority_seen"  # §6.4.3 a higher priority advertised
    EQUAL_PRIORITY_HIGHER_ADDRESS = "equal_priority_higher_address"  # §6.4.3 tie-break lost
    SYNC_GROUP_BACKUP = "sync_group_backup"  # another sync group member lost MASTER (keepalived)
    FAULT_CHECK = "fault_check"  # FaultReason.CHECK_FAILED
    FAULT_LINK = "fault_link"  # FaultReason.LINK_DOWN
    FAULT_ARBITER = "fault_arbiter"  # FaultReason.ARBITER_LOST
    FAULT_ADDRESS_BIND = "fault_address_bind"  # FaultReason.ADDRESS_BIND_FAILED
    FAULT_ROUTER = "fault_router"  # FaultReason.ROUTER_FAILED
    FAULT_TRACKED_INTERFACE = "fault_tracked_interface"  # FaultReason.INTERFACE_DOWN
    FAULT_SYNC_GROUP = "fault_sync_group"  # FaultReason.SYNC_GROUP (keepalived vrrp_sync_group)
    FAULT_CLEARED = "fault_cleared"  # the last fault reason cleared → Initialize rules
    SHUTDOWN = "shutdown"  # §6.4.2 / §6.4.3 Shutdown event


FAULT_TRANSITIONS: dict[FaultReason, TransitionReason] = {
    FaultReason.CHECK_FAILED: TransitionReason.FAULT_CHECK,
    FaultReason.LINK_DOWN: TransitionReason.FAULT_LINK,
    FaultReason.ARBITER_LOST: TransitionReason.FAULT_ARBITER,
    FaultReason.ADDRESS_BIND_FAILED: TransitionReason.FAULT_ADDRESS_BIND,
    FaultReason.ROUTER_FAILED: TransitionReason.FAULT_ROUTER,
    FaultReason.INTERFACE_DOWN: TransitionReason.FAULT_TRACKED_INTERFACE,
    FaultReason.SYNC_GROUP: TransitionReason.FAULT_SYNC_GROUP,
}

_INTO_FAULT: Final = dict.fromkeys(FAULT_TRANSITIONS.values(), State.FAULT)

TRANSITIONS: Final[Mapping[State, Mapping[TransitionReason, State]]] = {
    State.INITIALIZE: {
        TransitionReason.STARTUP: State.BACKUP,  # RFC 9568 §6.4.1
        TransitionReason.ADDRESS_OWNER: State.MASTER,  # §6.4.1, priority 255
        **_INTO_FAULT,  # started while a fault holds (keepalived)
    },
    State.BACKUP: {
        TransitionReason.MASTER_DOWN_TIMER: State.MASTER,  # §6.4.2
        TransitionReason.PRIORITY_ZERO_RECEIVED: State.MASTER,  # §6.4.2, after Skew_Time
        TransitionReason.PREEMPT: State.MASTER,  # §6.4.2, Preempt_Mode
        TransitionReason.ADDRESS_OWNER: State.MASTER,  # our priority rose to 255 (§6.4.1)
        TransitionReason.SHUTDOWN: State.INITIALIZE,  # §6.4.2
        **_INTO_FAULT,
    },
    State.MASTER: {
        TransitionReason.HIGHER_PRIORITY_SEEN: State.BACKUP,  # §6.4.3
        TransitionReason.EQUAL_PRIORITY_HIGHER_ADDRESS: State.BACKUP,  # §6.4.3
        TransitionReason.SYNC_GROUP_BACKUP: State.BACKUP,  # keepalived vrrp_sync_backup
        TransitionReason.SHUTDOWN: State.INITIALIZE,  # §6.4.3
        **_INTO_FAULT,
    },
    State.FAULT: {
        TransitionReason.FAULT_CLEARED: State.BACKUP,  # the Initialize rules (§6.4.1)
        TransitionReason.ADDRESS_OWNER: State.MASTER,  # cleared, and we own the addresses
        TransitionReason.SHUTDOWN: State.INITIALIZE,
    },
}
"""For each state, the reasons that may move it and the state each leads to."""


class InvalidTransition(RuntimeError):
    """The router tried a move `TRANSITIONS` does not allow: a bug in the router."""


def transition(old: State, reason: TransitionReason) -> State:
    """The state ``reason`` moves ``old`` to; raises `InvalidTransition` if it may not."""
    try:
        return TRANSITIONS[old][reason]
    except KeyError:
        raise InvalidTransition(f"{old.value} has no transition for {reason.value}") from None


def mermaid_diagram() -> str:
    """The state diagram of `TRANSITIONS` as a Mermaid ``stateDiagram-v2`` block.

    docs/vrrp-states.md embeds this text; a unit test keeps the two equal, so the
    picture cannot drift from the code.
    """
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> INITIALIZE"]
    for old, moves in TRANSITIONS.items():
        targets: dict[State, list[str]] = {}
        for reason, new in moves.items():
            targets.setdefault(new, []).append(reason.value)
        for new, reasons in targets.items():
            lines.append(f"    {old.value} --> {new.value}: {', '.join(reasons)}")
    lines.append("```")
    return "\n".join(lines) + "\n"
