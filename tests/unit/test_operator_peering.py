"""Operator replicas under kopf peering: ranks, identities and kopf.run's arguments."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keepvip.operator.main import peering_options
from keepvip.operator.peering import LIFETIME_SECONDS, own_identity, own_priority, priority_for

NOW = 1_760_000_000.0  # a Unix time in 2025
starts = st.floats(min_value=0, max_value=8_000_000_000, allow_nan=False)
ties = st.integers(min_value=0, max_value=1023)


@given(first=starts, gap_ms=st.integers(min_value=1, max_value=10**9), a=ties, b=ties)
def test_a_replica_started_earlier_outranks_every_later_one(
    first: float, gap_ms: int, a: int, b: int
) -> None:
    assert priority_for(first, a) > priority_for(first + gap_ms / 1000 + 0.001, b)


def test_replicas_started_in_the_same_millisecond_are_told_apart_by_the_tie_breaker() -> None:
    assert priority_for(NOW, 1) != priority_for(NOW, 2)
    assert priority_for(NOW, 2) > priority_for(NOW, 1)


@given(started=starts, tie=ties)
def test_priority_is_positive_and_exact_as_a_json_double(started: float, tie: int) -> None:
    priority = priority_for(started, tie)
    assert 0 <= priority < 2**53
    assert int(float(priority)) == priority


@pytest.mark.parametrize("tie", [-1, 1024])
def test_a_tie_breaker_outside_ten_bits_is_refused(tie: int) -> None:
    with pytest.raises(ValueError, match="tie_breaker"):
        priority_for(NOW, tie)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible tie-breakers, not secrets


def test_own_priority_ranks_by_the_clock_then_by_chance() -> None:
    earlier = own_priority(clock=lambda: NOW, rng=seeded(1))
    later = own_priority(clock=lambda: NOW + 1, rng=seeded(1))
    assert earlier > later
    same_ms = {own_priority(clock=lambda: NOW, rng=seeded(seed)) for seed in range(20)}
    assert len(same_ms) > 1


def test_identity_is_the_pod_name_when_the_chart_sets_it() -> None:
    assert own_identity({"POD_NAME": "keepvip-operator-7d9f-abcde"}) == "keepvip-operator-7d9f-abcde"
    assert own_identity({"POD_NAME": ""}) is None
    assert own_identity({}) is None


def test_without_a_peering_name_the_operator_runs_standalone() -> None:
    assert peering_options(None) == {"standalone": True}


def test_with_a_peering_name_kopf_peers_with_a_short_lifetime_and_this_pods_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "keepvip-operator-abc")
    options = peering_options("keepvip")
    assert options["standalone"] is False
    assert options["peering_name"] == "keepvip"
    assert options["identity"] == "keepvip-operator-abc"
    assert options["settings"].peering.lifetime == LIFETIME_SECONDS < 60
    assert 0 < options["priority"] < 2**53
