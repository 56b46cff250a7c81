"""The speaker's Events: which reports call for one, how they are bounded, what is written.

Pure parts only (no API server): :mod:`keepvip.speaker.sources.event_limits` decides,
:func:`event_body` / :func:`series_patch` build what the API receives. The cluster
tier (tests/cluster/test_e2e_isolation.py) has a real API server accept them under the
chart's RBAC.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from kubernetes import client

from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.failures import Failure, FailureReport
from keepvip.speaker.runtime.router_runner import RouterReport
from keepvip.speaker.sources.event_limits import (
    MAX_KEYS,
    Create,
    EventLimiter,
    EventReason,
    Occurrence,
    Patch,
    Suppressed,
    event_name,
    occurrence_of,
)
from keepvip.speaker.sources.events import CONTROLLER, QUEUE_LIMIT, EventRecorder, event_body, series_patch
from keepvip.speaker.vrrp.state import State, TransitionReason

NOW = datetime(2026, 11, 29, 23, 50, 1, 123456, tzinfo=UTC)
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def conflict(
    name: str = "web", detail: str = "198.18.0.1 is already an address of this node (eth0)"
) -> FailureReport:
    return FailureReport(
        virtualip=name, reason=Failure.ADDRESS_CONFLICT.value, message=f"spec.addresses[0]: {detail}"
    )


def router(state: State, reason: TransitionReason, message: str | None = None) -> RouterReport:
    return RouterReport("web", state, 100, 100, "eth0", NOW, reason.value, message=message)


def test_a_conflict_and_a_failed_bind_call_for_events_other_reports_do_not() -> None:
    told = occurrence_of(conflict(), "node-a")
    assert told is not None
    assert told.reason is EventReason.CONFLICT
    assert "node node-a: spec.addresses[0]: 198.18.0.1 is already an address" in told.note
    bind = occurrence_of(
        router(State.FAULT, TransitionReason.FAULT_ADDRESS_BIND, "binding x failed: EPERM"), "n"
    )
    assert bind is not None
    assert bind.reason is EventReason.ADDRESS_BIND_FAILED
    assert "binding x failed: EPERM" in bind.note
    assert occurrence_of(router(State.MASTER, TransitionReason.MASTER_DOWN_TIMER), "n") is None
    assert occurrence_of(router(State.FAULT, TransitionReason.FAULT_CHECK), "n") is None
    other = FailureReport(virtualip="web", reason=Failure.VRID_IN_USE.value, message="x")
    assert occurrence_of(other, "n") is None


def test_a_story_is_told_once_while_it_lasts_and_again_when_it_comes_back() -> None:
    limiter = EventLimiter("node-a")
    told = occurrence_of(conflict(), "node-a")
    first = limiter.observe("web", told, 0.0)
    assert isinstance(first, Create)
    assert limiter.observe("web", told, 1.0) is None  # the same report again: no edge
    assert limiter.observe("web", None, 2.0) is None  # resolved
    assert limiter.observe("web", told, 3.0) == Suppressed()  # back within the series interval
    assert limiter.observe("web", None, 4.0) is None
    assert limiter.observe("web", told, 70.0) == Patch(first.name, 3)  # one Event, three occurrences


def test_a_different_story_is_a_new_event() -> None:
    limiter = EventLimiter("node-a")
    first = limiter.observe("web", occurrence_of(conflict(), "node-a"), 0.0)
    other = limiter.observe(
        "web", occurrence_of(conflict(detail="198.18.0.254 is the gateway"), "node-a"), 1.0
    )
    assert isinstance(first, Create)
    assert isinstance(other, Create)
    assert first.name != other.name


def test_the_node_budget_caps_writes_whatever_the_number_of_virtualips() -> None:
    limiter = EventLimiter("node-a", burst=3, refill=10.0)
    decisions = [
        limiter.observe(f"vip-{i}", occurrence_of(conflict(f"vip-{i}"), "node-a"), 0.0) for i in range(20)
    ]
    assert sum(isinstance(d, Create) for d in decisions) == 3
    assert all(d == Suppressed() for d in decisions[3:])
    later = limiter.observe("late", occurrence_of(conflict("late"), "node-a"), 10.0)
    assert isinstance(later, Create)  # one token back after ``refill`` seconds


def test_memory_is_bounded_under_any_number_of_virtualips() -> None:
    limiter = EventLimiter("node-a", burst=10**9)
    for i in range(5 * MAX_KEYS):
        limiter.observe(f"vip-{i}", occurrence_of(conflict(f"vip-{i}"), "node-a"), float(i))
    assert len(limiter) <= 2 * MAX_KEYS


def test_an_expired_event_is_recreated_under_a_new_name() -> None:
    limiter = EventLimiter("node-a")
    told = occurrence_of(conflict(), "node-a")
    assert told is not None
    first = limiter.observe("web", told, 0.0)
    again = limiter.recreate(told, 100.0)
    assert isinstance(first, Create)
    assert again.name != first.name


def test_event_names_are_dns_subdomains_even_for_the_longest_virtualip_names() -> None:
    for vip in ("web", "a" * 253, "a." * 120 + "b", "x-" * 126 + "y"):
        name = event_name(vip, "node-a", EventReason.CONFLICT, 7)
        assert len(name) <= 253, name
        assert DNS_SUBDOMAIN.fullmatch(name), name
    assert event_name("web", "node-a", EventReason.CONFLICT, 1) != event_name(
        "web", "node-b", EventReason.CONFLICT, 1
    )


def test_the_event_body_is_a_core_v1_warning_about_the_virtualip_as_client_go_writes_it() -> None:
    told = Occurrence("web", EventReason.CONFLICT, "node node-a: spec.addresses[0]: ...")
    body = event_body(told, "web.0123", "node-a", "uid-1", NOW)
    assert (body["apiVersion"], body["kind"]) == ("v1", "Event")
    assert body["metadata"] == {"name": "web.0123", "namespace": "default"}
    assert body["involvedObject"] == {
        "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP", "name": "web", "uid": "uid-1",
    }  # fmt: skip
    assert body["related"] == {"apiVersion": "v1", "kind": "Node", "name": "node-a"}
    assert (body["type"], body["reason"], body["message"]) == ("Warning", "Conflict", told.note)
    assert body["source"] == {"component": CONTROLLER, "host": "node-a"}
    assert (body["reportingComponent"], body["reportingInstance"]) == (CONTROLLER, "node-a")
    assert (body["firstTimestamp"], body["lastTimestamp"], body["count"]) == (
        "2026-11-29T23:50:01Z", "2026-11-29T23:50:01Z", 1,
    )  # fmt: skip
    assert (
        "eventTime" not in body
    )  # v1.20 refuses eventTime-style Events on cluster-scoped objects in default
    assert "uid" not in event_body(told, "web.0123", "node-a", None, NOW)["involvedObject"]
    assert series_patch(3, NOW) == {"count": 3, "lastTimestamp": "2026-11-29T23:50:01Z"}


def test_a_note_never_exceeds_what_the_api_server_accepts() -> None:
    told = occurrence_of(conflict(detail="x" * 5000), "node-a")
    assert told is not None
    assert len(told.note) <= 1024


def test_the_recorder_queues_at_most_its_limit_and_counts_the_rest() -> None:
    """No API call is made here: ``observe`` only queues; the writer task is not started."""

    async def scenario() -> SpeakerMetrics:
        metrics = SpeakerMetrics()
        recorder = EventRecorder("node-a", client.ApiClient(), metrics, lambda _: None,
                                 EventLimiter("node-a", burst=10**6))  # fmt: skip
        for i in range(QUEUE_LIMIT + 8):
            recorder.observe(conflict(f"vip-{i}"))
        recorder.observe(conflict("vip-0"))  # the same story again: not an edge, nothing counted
        assert len(recorder._queue) == QUEUE_LIMIT
        return metrics

    metrics = asyncio.run(scenario())
    sample = metrics.registry.get_sample_value
    assert sample("keepvip_speaker_events_total", {"reason": "Conflict", "result": "queue_full"}) == 8
    assert sample("keepvip_speaker_events_total", {"reason": "Conflict", "result": "rate_limited"}) is None


def test_the_recorder_counts_what_the_node_budget_refuses() -> None:
    async def scenario() -> SpeakerMetrics:
        metrics = SpeakerMetrics()
        recorder = EventRecorder("node-a", client.ApiClient(), metrics, lambda _: None,
                                 EventLimiter("node-a", burst=2))  # fmt: skip
        for i in range(5):
            recorder.observe(conflict(f"vip-{i}"))
        return metrics

    metrics = asyncio.run(scenario())
    sample = metrics.registry.get_sample_value
    assert sample("keepvip_speaker_events_total", {"reason": "Conflict", "result": "rate_limited"}) == 3
