"""``status.state``: the one-word summary of a VirtualIP that ``kubectl get vip`` shows.

In the API package because it is part of the resource's schema (the CRD enumerates
it), not an operator detail: the operator writes it, the metrics label by it, and
anything that reads a VirtualIP can rely on the same values.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """The summary state, most serious first."""

    PENDING = "Pending"  # no pair allocated yet, or no node is MASTER
    READY = "Ready"  # one master with at least one backup
    DEGRADED = "Degraded"  # one master, no backup (past the settling grace period)
    SPLIT_BRAIN = "SplitBrain"  # several nodes are MASTER
    CONFLICT = "Conflict"  # the address or the (group, VRID) pair is another VirtualIP's
    INVALID = "Invalid"  # the spec does not validate
