"""An unexpected exception while applying one VirtualIP becomes one named failure (issue 9).

pyroute2's ``NetlinkError`` is not an ``OSError``: it must be named as a netlink failure,
not fall through to "internal error" (or, before, out of the apply altogether).
"""

from __future__ import annotations

import errno

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from keepvip.speaker.runtime.failures import ApplyError, Failure, classify


@pytest.mark.parametrize(
    ("error", "failure", "field"),
    [
        (NetlinkError(errno.EBUSY, "Device or resource busy"), Failure.NETLINK_ERROR, "spec.addresses"),
        (LookupError("no interface named 'eth1'"), Failure.INTERFACE_NOT_FOUND, "spec.interface"),
        (PermissionError(errno.EPERM, "Operation not permitted"), Failure.SOCKET_ERROR, "spec.interface"),
        (RuntimeError("a bug"), Failure.INTERNAL_ERROR, ""),
    ],
)
def test_each_exception_is_named_with_its_field_and_what_was_being_done(
    error: Exception, failure: Failure, field: str
) -> None:
    assert not isinstance(NetlinkError(1), OSError)  # why NetlinkError needs its own branch
    named = classify(error, during="joining the VRRP group")
    assert (named.failure, named.field) == (failure, field)
    prefix = f"{field}: " if field else ""
    assert str(named).startswith(prefix + "joining the VRRP group: ")
    assert "\n" not in str(named)


def test_an_apply_error_is_kept_as_it_is() -> None:
    error = ApplyError(Failure.VRID_IN_USE, "spec.vrrp.vrid", "VirtualIP 'web' runs VRID 7 on eth0")
    assert classify(error, during="starting") is error
