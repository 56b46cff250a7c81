"""An unexpected exception while applying one VirtualIP becomes one named failure (issue 9).

pyroute2's ``NetlinkError`` is not an ``OSError``: it must be named as a netlink failure,
not fall through to "internal error" (or, before, out of the apply altogether).
"""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest
from kubernetes import client
from pyroute2.netlink.exceptions import NetlinkError

from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.failures import ApplyError, Failure, FailureReport, classify
from keepvip.speaker.runtime.speaker import NodeReport, Speaker
from keepvip.speaker.sources.kubernetes import KubernetesSource
from keepvip.speaker.vrrp.state import State


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


def _body_with_status(vrid: object) -> dict[str, Any]:
    allocated = {"type": "Allocated", "status": "True", "reason": "Allocated", "observedGeneration": 1}
    return {
        "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": "web", "generation": 1},
        "spec": {"addresses": ["198.18.0.100/24"]},
        "status": {"vrid": vrid, "multicastGroup": "224.0.0.116", "conditions": [allocated]},
    }  # fmt: skip


def test_a_status_field_that_does_not_parse_is_a_fault_entry_of_that_virtualip() -> None:
    """The cluster source reads the body (no API server is contacted); the speaker reports."""

    async def scenario() -> tuple[list[NodeReport], dict[str, ApplyError]]:
        metrics = SpeakerMetrics()
        source = KubernetesSource("node-a", client.ApiClient(), metrics)
        source._node_listed([client.V1Node(metadata=client.V1ObjectMeta(name="node-a", labels={}))])
        source._vips_listed([_body_with_status("seven")])
        snapshot = await asyncio.wait_for(anext(source.snapshots()), 5)
        reports: list[NodeReport] = []
        speaker = Speaker(NodeIdentity("node-a"), None, metrics, use_status_allocation=True,
                          on_report=reports.append)  # fmt: skip
        await speaker.apply(snapshot)
        await speaker.apply(snapshot)  # the same again: reported once, not per snapshot
        return reports, speaker.failures

    reports, failures = asyncio.run(scenario())
    assert [(r.virtualip, r.state, r.reason) for r in reports] == [("web", State.FAULT, "invalid_status")]
    assert isinstance(reports[0], FailureReport)
    assert reports[0].message.startswith("status.vrid: ")
    assert "'seven'" in reports[0].message
    assert failures["web"].failure is Failure.INVALID_STATUS
