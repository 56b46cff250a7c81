"""The names of every LoadBalancer outcome: condition reasons, Event reasons, metric labels.

Condition reasons are ours (CamelCase, one per cause); Event reasons are MetalLB's, so
runbooks and alerts written for MetalLB carry over (``IPAllocated``, ``AllocationFailed``,
``ClearAssignment``, ``nodeAssigned``).
"""

from __future__ import annotations

import enum


class Allocation(enum.StrEnum):
    """Reason of the ``keepvip.io/Allocated`` condition."""

    ALLOCATED = "Allocated"
    NO_MATCHING_POOL = "NoMatchingPool"
    POOL_EXHAUSTED = "PoolExhausted"
    REQUESTED_IP_UNAVAILABLE = "RequestedIPUnavailable"
    SHARING_CONFLICT = "SharingConflict"
    INVALID_REQUEST = "InvalidRequest"
    RETRYING = "Retrying"  # the address was taken by someone else between list and create


class Announcement(enum.StrEnum):
    """Reason of the ``keepvip.io/Announced`` condition."""

    HELD = "Held"
    ELECTING = "Electing"
    NO_LOCAL_ENDPOINTS = "NoLocalEndpoints"
    NO_READY_ENDPOINTS = "NoReadyEndpoints"
    NOT_ALLOCATED = "NotAllocated"


class EventReason(enum.StrEnum):
    """Event reasons on the Service (MetalLB's names)."""

    IP_ALLOCATED = "IPAllocated"
    ALLOCATION_FAILED = "AllocationFailed"
    CLEAR_ASSIGNMENT = "ClearAssignment"
    NODE_ASSIGNED = "nodeAssigned"


ALLOCATED_CONDITION = "keepvip.io/Allocated"
ANNOUNCED_CONDITION = "keepvip.io/Announced"
