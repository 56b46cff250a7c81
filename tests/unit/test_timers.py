"""RFC timer arithmetic against the worked values in vrrp-facts.md §3.4."""

from __future__ import annotations

import pytest

from keepvip.speaker.vrrp.timers import interval_seconds, master_down_interval, skew_time

# (priority, Skew at 1 s, Master_Down at 1 s, v3 Master_Down at 250 ms, at 100 ms),
# rounded to the millisecond as the table prints them.
WORKED_VALUES = [
    (254, 0.008, 3.008, 0.752, 0.301),
    (200, 0.219, 3.219, 0.805, 0.322),
    (150, 0.414, 3.414, 0.854, 0.341),
    (100, 0.609, 3.609, 0.902, 0.361),
    (50, 0.805, 3.805, 0.951, 0.380),
    (1, 0.996, 3.996, 0.999, 0.400),
]


@pytest.mark.parametrize(("priority", "skew_1s", "down_1s", "down_250ms", "down_100ms"), WORKED_VALUES)
def test_worked_values_table(
    priority: int, skew_1s: float, down_1s: float, down_250ms: float, down_100ms: float
) -> None:
    for version, interval_cs in ((2, 100), (3, 100)):
        assert round(skew_time(version, priority, interval_cs), 3) == skew_1s
        assert round(master_down_interval(version, priority, interval_cs), 3) == down_1s
    assert round(master_down_interval(3, priority, 25), 3) == down_250ms
    assert round(master_down_interval(3, priority, 10), 3) == down_100ms


def test_priority_100_at_one_second_is_exactly_3_609375() -> None:
    assert master_down_interval(2, 100, 100) == 3.609375
    assert master_down_interval(3, 100, 100) == 3.609375


def test_v2_skew_time_does_not_depend_on_the_interval() -> None:
    # RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds.
    assert skew_time(2, 100, 300) == skew_time(2, 100, 100) == 156 / 256
    assert master_down_interval(2, 100, 300) == 9 + 156 / 256


def test_v3_skew_time_scales_with_the_master_interval() -> None:
    # RFC 9568 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 cs.
    assert skew_time(3, 100, 400) == pytest.approx(4 * skew_time(3, 100, 100))
    assert skew_time(3, 100, 20) == pytest.approx(156 * 0.2 / 256)


def test_higher_priority_always_has_the_shorter_master_down_interval() -> None:
    for version, interval_cs in ((2, 100), (3, 100), (3, 7), (3, 4095)):
        downs = [master_down_interval(version, p, interval_cs) for p in range(1, 256)]
        assert downs == sorted(downs, reverse=True)
        assert len(set(downs)) == len(downs)


def test_interval_seconds_converts_centiseconds() -> None:
    assert interval_seconds(100) == 1.0
    assert interval_seconds(25) == 0.25
    assert interval_seconds(4095) == 40.95
