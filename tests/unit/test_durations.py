"""Kubernetes duration strings parse exactly and print in their shortest form."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keepvip.api.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("100ms", timedelta(milliseconds=100)),
        ("2s", timedelta(seconds=2)),
        ("1.5s", timedelta(milliseconds=1500)),
        ("1m30s", timedelta(seconds=90)),
        ("1h", timedelta(hours=1)),
        ("250us", timedelta(microseconds=250)),
        ("250µs", timedelta(microseconds=250)),
        ("1000ns", timedelta(microseconds=1)),
    ],
)
def test_parses_go_style_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1 s", "-1s", "1sec", "s", "1.s", "1ns"])
def test_refuses_what_kubernetes_refuses_or_we_cannot_represent(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|microsecond"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_is_exact(micros: int) -> None:
    value = timedelta(microseconds=micros)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("text", ["100000000000h", "99999999999999999999s", "1" * 60 + "h"])
def test_a_duration_too_large_for_the_platform_is_a_value_error_not_an_overflow(text: str) -> None:
    with pytest.raises(ValueError, match="longer than any duration"):
        parse_duration(text)


def test_a_huge_duration_text_is_refused_and_quoted_short() -> None:
    with pytest.raises(ValueError, match="not a duration") as refused:
        parse_duration("1" * 1_000_000 + "s")
    assert len(str(refused.value)) < 200


@given(st.text(alphabet="0123456789.µnumsh", max_size=80))
def test_any_text_parses_or_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_duration(text)
