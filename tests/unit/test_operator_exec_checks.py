"""Exec checks in a cluster: off unless the chart turns them on, at admission and in the reconcile.

The speaker applies the same rules itself (tests/unit/test_speaker_sandbox.py and
tests/netns/test_exec_check_sandbox.py); these prove that the author hears about it at
``kubectl apply`` time, and that a VirtualIP stored before the webhook (or past a
fail-open one) is marked InvalidSpec and gets no allocation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest

from keepvip.api.model import VirtualIPStatus
from keepvip.operator.admission import KnownReferences, review
from keepvip.operator.kube import Kube, LedgerChanges, ObjectRef
from keepvip.operator.reconcile import Context, reconcile_spec
from keepvip.operator.settings import ExecChecksSettings, OperatorSettings
from keepvip.operator.status import EventSpec

T = TypeVar("T")
TCP = {"name": "port", "tcp": {"port": 80}}


def body(*checks: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": "ingress", "uid": "u-1", "generation": 1},
        "spec": {"addresses": ["198.18.0.100/24"], "healthChecks": list(checks)},
    }  # fmt: skip


def exec_check(name: str, *command: str) -> dict[str, Any]:
    return {"name": name, "exec": {"command": list(command)}}


def refusals(document: dict[str, Any], allowed: ExecChecksSettings | None = None) -> dict[str, str]:
    return {e.path: e.message for e in review(document, None, {}, KnownReferences(), allowed)}


def test_while_off_every_exec_check_is_refused_naming_its_field_and_the_chart_value() -> None:
    errors = refusals(body(TCP, exec_check("script", "/usr/local/bin/check"), exec_check("x", "/bin/true")))
    expected = "exec checks are disabled in this cluster (chart value speaker.execChecks.enabled=false)"
    assert errors == {"spec.healthChecks[1].exec": expected, "spec.healthChecks[2].exec": expected}
    assert refusals(body(TCP)) == {}


def test_when_on_only_absolute_paths_in_the_allowlist_are_admitted() -> None:
    allowed = ExecChecksSettings(enabled=True, allowed_commands=("/usr/local/bin/check-*",))
    document = body(
        exec_check("ok", "/usr/local/bin/check-nginx", "--fast"),
        exec_check("other", "/bin/sh", "-c", "id"),
        exec_check("relative", "check-nginx"),
    )
    assert refusals(document, allowed) == {
        "spec.healthChecks[1].exec.command[0]":
            "'/bin/sh' is not in the chart value speaker.execChecks.allowedCommands",
        "spec.healthChecks[2].exec.command[0]": "'check-nginx' must be an absolute path",
    }  # fmt: skip


def test_an_update_that_leaves_the_spec_alone_is_still_admitted_so_the_object_can_be_deleted() -> None:
    stored = body(exec_check("script", "/usr/local/bin/check"))
    assert review(stored, stored, {}, KnownReferences()) == []


class Allocating(Exception):
    """The spec stage went on to allocate: the VirtualIP was admitted."""


class Recorder(Kube):
    """The spec stage's API calls, recorded; allocation stops the stage with :class:`Allocating`."""

    def __init__(self, settings: OperatorSettings) -> None:
        super().__init__(settings)
        self.patches: list[dict[str, Any]] = []
        self.events: list[EventSpec] = []

    def patch_virtualip_status(self, name: str, fields: Mapping[str, Any]) -> None:  # noqa: ARG002
        self.patches.append(dict(fields))

    def post_event(self, ref: ObjectRef, event: EventSpec) -> None:  # noqa: ARG002
        self.events.append(event)

    def update_ledger(self, decide: Callable[[dict[str, Any]], tuple[LedgerChanges, T]]) -> T:  # noqa: ARG002
        raise Allocating


def test_the_reconcile_marks_a_stored_exec_check_invalid_spec_without_allocating() -> None:
    settings = OperatorSettings()
    kube = Recorder(settings)
    ctx = Context(settings, kube, clock=lambda: "2026-01-01T00:00:00Z", monotonic=lambda: 0.0)
    reconcile_spec(ctx, body(exec_check("script", "/usr/local/bin/check")), None, {})
    status = VirtualIPStatus.model_validate(kube.patches[-1])
    assert status.state == "Invalid"
    condition = next(c for c in status.conditions if c.type == "InvalidSpec")
    assert (condition.status, condition.reason) == ("True", "ValidationFailed")
    assert condition.message == (
        "spec.healthChecks[0].exec: exec checks are disabled in this cluster "
        "(chart value speaker.execChecks.enabled=false)"
    )
    assert status.vrid is None


def test_the_reconcile_lets_an_allowed_exec_check_through_to_allocation() -> None:
    settings = OperatorSettings.model_validate(
        {"speaker": {"execChecks": {"enabled": True, "allowedCommands": ["/usr/local/bin/*"]}}}
    )
    ctx = Context(settings, Recorder(settings), clock=lambda: "T", monotonic=lambda: 0.0)
    with pytest.raises(Allocating):
        reconcile_spec(ctx, body(exec_check("script", "/usr/local/bin/check")), None, {})
