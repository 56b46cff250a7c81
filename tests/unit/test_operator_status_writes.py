"""The status stage writes only news: an unchanged status, or one already answered, is not patched.

At 500 VirtualIPs the watch (and each daemon's live body) lags the operator's own
patches by seconds; every re-check that re-derived from a body predating the patch
patched the same status again, and every re-check re-parsed every VirtualIP. These tests
play the status stage against ``Recorder`` (the API calls recorded, as in
test_operator_settle.py) with bodies that carry a ``resourceVersion`` as the API's do.
"""

from __future__ import annotations

from typing import Any

from keepvip.operator.reconcile import Context, aggregate_status, reconcile_spec, status_is_quiet
from keepvip.operator.settings import OperatorSettings
from keepvip.operator.status import Observation, build_status, operator_fields
from tests.unit.test_operator_settle import OK, T0, Recorder


class Watched:
    """One VirtualIP whose body versions the test hands to the status stage."""

    def __init__(self) -> None:
        self.now = 0.0
        self.kube = Recorder()
        settings = OperatorSettings.model_validate({"status": {"settleSeconds": 2.0}})
        self.ctx = Context(settings, self.kube, clock=lambda: T0, monotonic=lambda: self.now)
        self.stored: dict[str, Any] = operator_fields(build_status(OK, Observation.of([]), None, T0))
        self.version = 1
        self.entries: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        nodes = [{"node": node, "state": state} for node, state in self.entries.items()]
        return {"metadata": {"name": "ingress", "uid": "u-1", "generation": 1,
                             "resourceVersion": str(self.version)},
                "spec": {"addresses": ["198.18.0.100/24"]},
                "status": {**self.stored, "nodes": nodes}}

    def report(self, **states: str) -> None:
        """A speaker writes its entry: a new version of the object."""
        self.entries.update({n.replace("_", "-"): s for n, s in states.items()})
        self.version += 1

    def catch_up(self) -> None:
        """The watch delivers the operator's own patch."""
        if self.kube.patches:
            self.stored = self.kube.patches[-1]
            self.version += 1


def test_a_body_already_answered_is_not_patched_again_while_the_watch_lags() -> None:
    vip = Watched()
    vip.report(node_a="MASTER", node_b="BACKUP")
    body = vip.body()
    aggregate_status(vip.ctx, body, None)
    assert len(vip.kube.patches) == 1
    for t in (1.0, 2.0, 3.0, 10.0):  # re-checks and a repeated event, the body still predates the patch
        vip.now = t
        aggregate_status(vip.ctx, body, None)
    assert len(vip.kube.patches) == 1


def test_a_status_that_does_not_change_is_never_patched() -> None:
    vip = Watched()
    vip.report(node_a="MASTER", node_b="BACKUP")
    aggregate_status(vip.ctx, vip.body(), None)
    vip.catch_up()
    for t in (1.0, 2.0, 5.0):
        vip.now = t
        aggregate_status(vip.ctx, vip.body(), None)
    assert len(vip.kube.patches) == 1


def test_a_new_version_that_changes_the_status_is_patched_even_when_the_last_patch_said_the_same() -> None:
    # Someone else rewrote our fields after our patch: the newer version is answered.
    vip = Watched()
    vip.report(node_a="MASTER", node_b="BACKUP")
    aggregate_status(vip.ctx, vip.body(), None)
    vip.catch_up()
    vip.stored = {**vip.stored, "master": None}
    vip.version += 1
    aggregate_status(vip.ctx, vip.body(), None)
    assert len(vip.kube.patches) == 2
    assert vip.kube.patches[-1]["master"] == "node-a"


def test_the_recheck_is_quiet_only_while_version_and_readiness_stand_and_nothing_waits() -> None:
    vip = Watched()
    vip.report(node_a="MASTER", node_b="BACKUP")
    version = str(vip.version)
    assert not status_is_quiet(vip.ctx, "u-1", version, None)  # never derived
    aggregate_status(vip.ctx, vip.body(), None)
    vip.now = 0.1
    assert not status_is_quiet(vip.ctx, "u-1", version, None)  # the first master waits to be told
    vip.now = 0.5
    aggregate_status(vip.ctx, vip.body(), None)
    assert [e.reason for e in vip.kube.events] == ["MasterChanged"]
    assert status_is_quiet(vip.ctx, "u-1", version, None)
    assert not status_is_quiet(vip.ctx, "u-1", str(vip.version + 1), None)  # a new version
    assert not status_is_quiet(vip.ctx, "u-1", version, {"node-a": False, "node-b": True})  # readiness
    assert not status_is_quiet(vip.ctx, "u-1", None, None)  # no version known: always re-derive


def test_a_transient_waiting_out_its_grace_is_rechecked_until_it_is_adopted() -> None:
    vip = Watched()
    vip.report(node_a="MASTER", node_b="BACKUP")
    vip.now = 1.0
    aggregate_status(vip.ctx, vip.body(), None)
    vip.report(node_a="BACKUP")  # no master: news only once it lasts 2 s
    vip.now = 2.0
    aggregate_status(vip.ctx, vip.body(), None)
    assert not status_is_quiet(vip.ctx, "u-1", str(vip.version), None)
    vip.now = 4.5
    aggregate_status(vip.ctx, vip.body(), None)  # the re-check adopts it
    assert vip.kube.patches[-1]["master"] is None
    assert status_is_quiet(vip.ctx, "u-1", str(vip.version), None)


def restarted(vip: Watched) -> Context:
    """A new operator process: same API, nothing in memory (the status it wrote is where it starts)."""
    vip.kube.patches.clear()
    vip.kube.events.clear()
    settings = OperatorSettings.model_validate({"status": {"settleSeconds": 2.0}})
    return Context(settings, vip.kube, clock=lambda: "2026-01-01T01:00:00Z", monotonic=lambda: vip.now)


def converged() -> Watched:
    """node-a MASTER, node-b BACKUP, status written, the first master told, the watch caught up."""
    vip = Watched()
    vip.report(node_a="MASTER", node_b="BACKUP")
    for t in (0.0, 0.5, 1.0):
        vip.now = t
        aggregate_status(vip.ctx, vip.body(), None)
        vip.catch_up()
    assert [e.reason for e in vip.kube.events] == ["MasterChanged"]
    return vip


def test_a_restarted_operator_writes_nothing_when_nothing_changed() -> None:
    """issue 15: a restart with nothing changed costs the API no status patch and no Event."""
    vip = converged()
    ctx = restarted(vip)
    body = vip.body()
    reconcile_spec(ctx, body, None, {}, {"node-a": True, "node-b": True})  # kopf's resume handler
    for t in (2.0, 3.0, 10.0):  # the watch's first event, then the daemon's re-checks
        vip.now = t
        aggregate_status(ctx, body, {"node-a": True, "node-b": True})
    assert (vip.kube.patches, vip.kube.events) == ([], [])


def test_a_restarted_operator_still_repairs_a_status_that_is_wrong() -> None:
    """The master moved while no operator ran: one patch and one MasterChanged, once."""
    vip = converged()
    ctx = restarted(vip)
    vip.report(node_a="BACKUP", node_b="MASTER")
    for t in (2.0, 3.0, 10.0):
        vip.now = t
        aggregate_status(ctx, vip.body(), None)
        vip.catch_up()
    assert len(vip.kube.patches) == 1
    assert vip.kube.patches[0]["master"] == "node-b"
    assert [(e.reason, e.message) for e in vip.kube.events] == [("MasterChanged", "node-a → node-b")]
