"""Why one VirtualIP cannot run on this node, named, and how that is reported.

Issue 9: applying one VirtualIP (planning, interface lookup, socket, netlink, a VRID
another VirtualIP still holds, a status field that does not parse) may fail only that
VirtualIP on this node. The failure gets a name (a `Failure`, used as the log field,
the metric label and the ``status.nodes[].reason`` of the node's FAULT entry), the
field of the VirtualIP it is about, and a one-line message; never a traceback.
pyroute2's ``NetlinkError`` is not an ``OSError``, so it is classified by type here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyroute2.netlink.exceptions import NetlinkError

from keepvip.speaker.vrrp.state import State


class Failure(enum.Enum):
    """Why a VirtualIP selecting this node does not run here (snake_case like other node reasons)."""

    INTERFACE_NOT_FOUND = "interface_not_found"  # spec.interface absent, or no subnet holds the VIP
    NO_SOURCE_ADDRESS = "no_source_address"  # no primary IPv4 / usable IPv6 link-local to send from
    SOCKET_ERROR = "socket_error"  # the raw VRRP socket could not be opened or joined
    NETLINK_ERROR = "netlink_error"  # the kernel refused a netlink request
    VRID_IN_USE = "vrid_in_use"  # another VirtualIP on this node holds the (destination, VRID)
    ADDRESS_CONFLICT = "address_conflict"  # the VIP is already a local address or the gateway
    INVALID_STATUS = "invalid_status"  # status.vrid / status.multicastGroup do not satisfy the spec's rules
    MISSING_SECRET = "missing_secret"  # noqa: S105 - a reason name: the PASS password is unreadable
    EMPTY_PASSWORD = "empty_password"  # noqa: S105 - a reason name: the PASS password is empty
    INTERNAL_ERROR = "internal_error"  # anything else: still only this VirtualIP fails


class ApplyError(Exception):
    """One VirtualIP failed on this node: the named reason, the field it is about, what happened."""

    def __init__(self, failure: Failure, field: str, detail: str) -> None:
        self.failure = failure
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}" if field else detail)


def classify(error: BaseException, *, during: str) -> ApplyError:
    """An unexpected exception raised while applying one VirtualIP, as a named failure.

    ``during`` says what was being done ("joining the VRRP group", "starting the router").
    """
    if isinstance(error, ApplyError):
        return error
    if isinstance(error, NetlinkError):  # not an OSError: pyroute2's own class
        return ApplyError(Failure.NETLINK_ERROR, "spec.addresses", f"{during}: netlink: {error}")
    if isinstance(error, LookupError):  # interfaces.interface_index: the interface vanished
        return ApplyError(Failure.INTERFACE_NOT_FOUND, "spec.interface", f"{during}: {error}")
    if isinstance(error, OSError):
        return ApplyError(Failure.SOCKET_ERROR, "spec.interface", f"{during}: {error}")
    return ApplyError(Failure.INTERNAL_ERROR, "", f"{during}: {type(error).__name__}: {error}")


@dataclass(frozen=True)
class FailureReport:
    """This node's FAULT entry for a VirtualIP that has no running router.

    The same attributes the status writer reads from a router's report, plus ``message``.
    """

    virtualip: str
    reason: str
    message: str
    interface: str | None = None
    priority: int | None = None
    effective_priority: int = 0
    conflict: str | None = None
    state: State = State.FAULT
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
