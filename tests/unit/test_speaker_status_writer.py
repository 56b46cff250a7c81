"""The speaker's status writer applies this node's entry only when it changed.

A failure is reported again at every retry, and a report may repeat what was written;
at 500 VirtualIPs × 3 nodes each repeat was an API write. The writer is driven through
its own queue (``report`` / ``forget`` / ``run``) against a recorder of the calls the
kubernetes client would make (the cluster tier runs it against a real API server).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from keepvip.speaker.runtime.failures import FailureReport
from keepvip.speaker.runtime.router_runner import RouterReport
from keepvip.speaker.sources.kubernetes import StatusWriter
from keepvip.speaker.vrrp.state import State


class Applies:
    """Records the server-side applies; answers 404 for VirtualIPs in ``gone``."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, list[dict[str, Any]]]] = []
        self.gone: set[str] = set()

    def patch_cluster_custom_object_status(self, *where: str, **options: Any) -> None:
        name, body = where[3], options.get("body") or where[4]
        if name in self.gone:
            raise client.ApiException(status=404)
        self.bodies.append((name, body["status"]["nodes"]))  # type: ignore[index]


def failure(message: str, second: int = 5) -> FailureReport:
    return FailureReport(virtualip="web", reason="interface_not_found", message=message,
                         interface="lan1", priority=120,
                         since=datetime(2026, 1, 2, 3, 4, second, tzinfo=UTC))  # fmt: skip


async def drained(writer: StatusWriter, *steps: Any) -> None:
    task = asyncio.create_task(writer.run())
    for step in steps:
        step()
        for _ in range(20):
            await asyncio.sleep(0)
            await asyncio.sleep(0.001)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def writer_with(applies: Applies) -> StatusWriter:
    writer = StatusWriter("node-c", client.ApiClient())
    writer._custom = applies
    return writer


def test_the_same_entry_reported_again_is_written_once_and_a_change_is_written() -> None:
    applies = Applies()
    writer = writer_with(applies)
    same = failure("spec.interface: no interface named 'lan1'")
    asyncio.run(drained(writer, lambda: writer.report(same), lambda: writer.report(same),
                        lambda: writer.report(failure("spec.interface: no interface named 'lan1'")),
                        lambda: writer.report(failure("other", second=9))))  # fmt: skip
    assert [nodes[0]["message"] for _, nodes in applies.bodies] == [
        "spec.interface: no interface named 'lan1'", "other"]  # fmt: skip


def test_after_a_forget_the_same_entry_is_written_again() -> None:
    applies = Applies()
    writer = writer_with(applies)
    report = failure("x")
    asyncio.run(drained(writer, lambda: writer.report(report), lambda: writer.forget("web"),
                        lambda: writer.report(report)))  # fmt: skip
    assert [len(nodes) for _, nodes in applies.bodies] == [1, 0, 1]


def test_an_entry_for_a_virtualip_that_is_gone_is_not_remembered_as_written() -> None:
    applies = Applies()
    writer = writer_with(applies)
    applies.gone.add("web")
    asyncio.run(drained(writer, lambda: writer.report(failure("x")),
                        applies.gone.clear,  # created again with the same name
                        lambda: writer.report(failure("x"))))  # fmt: skip
    assert len(applies.bodies) == 1


def test_a_router_in_fault_for_a_refused_bind_shows_the_kernels_error_and_others_no_message() -> None:
    writer = StatusWriter("node-c", client.ApiClient())
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    refused = "binding 198.18.0.100 on eth0 failed: [Errno 16] Device or resource busy"
    fault = RouterReport("web", State.FAULT, 120, 120, "eth0", since, "fault_address_bind", message=refused)
    assert writer.entry(fault)["message"] == fault.message
    master = RouterReport("web", State.MASTER, 120, 120, "eth0", since, "master_down_timer")
    assert "message" not in writer.entry(master)
