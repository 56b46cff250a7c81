"""The chaos observer's wall clock (bench/chaos_clock.py): capture and neighbour-table stamps
land on the monotonic clock even when the wall clock steps during a block (issue 14,
fourteenth pass: a 9 s step 981 s into a block placed every later frame 9 s late, and the
judge saw every VIP held without advertisements)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "netns")]

from chaos_clock import ClockWatch, WallClock  # noqa: E402

EPOCH = 1_796_166_062.0  # wall - monotonic before the step
STEP = 9.0
# Samples every 0.1 s of monotonic time 975.0-990.0; the wall clock steps 9 s ahead at 981.05.
SAMPLES = tuple((975.0 + i / 10, EPOCH + (STEP if 975.0 + i / 10 > 981.05 else 0.0)) for i in range(151))
CLOCK = WallClock(SAMPLES)


def test_a_stamp_before_the_step_takes_the_offset_before_it() -> None:
    assert CLOCK.to_monotonic(EPOCH + 980.5) == pytest.approx(980.5)


def test_a_stamp_after_the_step_takes_the_offset_after_it() -> None:
    assert CLOCK.to_monotonic(EPOCH + STEP + 985.0) == pytest.approx(985.0)


def test_a_stamp_between_the_step_and_the_next_sample_is_not_placed_past_that_sample() -> None:
    # Monotonic 981.07: after the step (wall = EPOCH + 9 + 981.07), before the sample at 981.1.
    assert CLOCK.to_monotonic(EPOCH + STEP + 981.07) == pytest.approx(981.07)


def test_a_fixed_offset_is_one_subtraction() -> None:
    assert WallClock.fixed(1000.0).to_monotonic(1234.5) == pytest.approx(234.5)


def test_the_watch_samples_this_machines_clock_until_closed() -> None:
    watch = ClockWatch(period=0.01)
    time.sleep(0.1)
    clock = watch.close()
    assert len(clock.samples) >= 3
    assert [at for at, _ in clock.samples] == sorted(at for at, _ in clock.samples)
    now = time.time()
    assert clock.to_monotonic(now) == pytest.approx(time.monotonic(), abs=0.05)
