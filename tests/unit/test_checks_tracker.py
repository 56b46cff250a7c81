"""Rise/fall tracking and the effective priority: keepalived vrrp_script semantics."""

from __future__ import annotations

import pytest

from keepvip.speaker.checks.tracker import (
    CheckState,
    CheckStatus,
    CheckTracker,
    effective_priority,
    faulting_checks,
)

PASS, FAIL = True, False


def feed(tracker: CheckTracker, results: list[bool]) -> list[CheckStatus | None]:
    """The status after each result when it changed, None when it did not."""
    return [tracker.status if tracker.record(r) else None for r in results]


def test_a_new_check_is_unknown() -> None:
    assert CheckTracker(rise=2, fall=3, weight=-20).status is CheckStatus.UNKNOWN


def test_the_first_pass_decides_at_once_whatever_rise_says() -> None:
    tracker = CheckTracker(rise=5, fall=5, weight=-20)
    assert tracker.record(PASS) is True
    assert tracker.status is CheckStatus.PASSING


def test_the_first_failure_decides_at_once_whatever_fall_says() -> None:
    tracker = CheckTracker(rise=5, fall=5, weight=-20)
    assert tracker.record(FAIL) is True
    assert tracker.status is CheckStatus.FAILING


def test_passing_turns_failing_after_exactly_fall_consecutive_failures() -> None:
    tracker = CheckTracker(rise=2, fall=3, weight=-20)
    tracker.record(PASS)
    assert feed(tracker, [FAIL, FAIL, FAIL]) == [None, None, CheckStatus.FAILING]


def test_failing_turns_passing_after_exactly_rise_consecutive_passes() -> None:
    tracker = CheckTracker(rise=2, fall=3, weight=-20)
    tracker.record(FAIL)
    assert feed(tracker, [PASS, PASS]) == [None, CheckStatus.PASSING]


def test_an_interrupted_streak_starts_over() -> None:
    tracker = CheckTracker(rise=2, fall=3, weight=-20)
    tracker.record(PASS)
    assert feed(tracker, [FAIL, FAIL, PASS, FAIL, FAIL]) == [None] * 5
    assert tracker.status is CheckStatus.PASSING
    assert feed(tracker, [FAIL]) == [CheckStatus.FAILING]


def test_results_that_agree_with_the_status_never_report_a_change() -> None:
    tracker = CheckTracker(rise=1, fall=1, weight=0)
    tracker.record(PASS)
    assert feed(tracker, [PASS] * 5) == [None] * 5


def test_rise_and_fall_of_one_follow_every_result() -> None:
    tracker = CheckTracker(rise=1, fall=1, weight=0)
    assert feed(tracker, [PASS, FAIL, PASS, PASS, FAIL]) == [
        CheckStatus.PASSING,
        CheckStatus.FAILING,
        CheckStatus.PASSING,
        None,
        CheckStatus.FAILING,
    ]


@pytest.mark.parametrize(("rise", "fall"), [(0, 1), (1, 0), (-1, 3)])
def test_rise_and_fall_below_one_are_refused(rise: int, fall: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CheckTracker(rise=rise, fall=fall, weight=0)


def test_state_carries_name_weight_and_status() -> None:
    tracker = CheckTracker(rise=1, fall=1, weight=-7)
    tracker.record(FAIL)
    assert tracker.state("web") == CheckState("web", -7, CheckStatus.FAILING)


def state(weight: int, status: CheckStatus, name: str = "c") -> CheckState:
    return CheckState(name=name, weight=weight, status=status)


def test_no_checks_leave_the_base_priority() -> None:
    assert effective_priority(100, []) == (100, False)


def test_a_failing_negative_weight_lowers_the_priority() -> None:
    assert effective_priority(100, [state(-20, CheckStatus.FAILING)]) == (80, False)


def test_a_passing_negative_weight_changes_nothing() -> None:
    assert effective_priority(100, [state(-20, CheckStatus.PASSING)]) == (100, False)


def test_a_passing_positive_weight_raises_the_priority() -> None:
    assert effective_priority(100, [state(15, CheckStatus.PASSING)]) == (115, False)


def test_a_failing_positive_weight_changes_nothing() -> None:
    assert effective_priority(100, [state(15, CheckStatus.FAILING)]) == (100, False)


@pytest.mark.parametrize("weight", [-20, 15])
def test_an_unknown_check_adds_no_weight_either_way(weight: int) -> None:
    assert effective_priority(100, [state(weight, CheckStatus.UNKNOWN)]) == (100, False)


def test_weights_of_several_checks_add_up() -> None:
    checks = [
        state(-20, CheckStatus.FAILING, "web"),
        state(-10, CheckStatus.FAILING, "db"),
        state(-5, CheckStatus.PASSING, "cache"),
        state(8, CheckStatus.PASSING, "bonus"),
        state(3, CheckStatus.FAILING, "other-bonus"),
    ]
    assert effective_priority(100, checks) == (100 - 20 - 10 + 8, False)


def test_the_priority_never_drops_below_one() -> None:
    assert effective_priority(50, [state(-253, CheckStatus.FAILING)]).priority == 1


def test_the_priority_never_rises_above_254() -> None:
    assert effective_priority(250, [state(100, CheckStatus.PASSING)]).priority == 254


def test_a_failing_zero_weight_check_means_fault() -> None:
    result = effective_priority(100, [state(0, CheckStatus.FAILING)])
    assert result.fault is True
    assert result.priority == 100


def test_a_passing_zero_weight_check_is_no_fault() -> None:
    assert effective_priority(100, [state(0, CheckStatus.PASSING)]) == (100, False)


def test_an_unknown_zero_weight_check_holds_the_router_out_like_keepalived_init() -> None:
    assert effective_priority(100, [state(0, CheckStatus.UNKNOWN)]).fault is True


def test_one_failing_zero_weight_check_among_healthy_ones_is_fault() -> None:
    checks = [
        state(0, CheckStatus.PASSING, "a"),
        state(0, CheckStatus.FAILING, "b"),
        state(-20, CheckStatus.PASSING, "c"),
    ]
    assert effective_priority(100, checks).fault is True
    assert faulting_checks(checks) == ["b"]


def test_tracked_checks_drive_the_priority_end_to_end() -> None:
    web = CheckTracker(rise=2, fall=2, weight=-30)
    web.record(PASS)
    assert effective_priority(120, [web.state("web")]) == (120, False)
    web.record(FAIL)
    assert effective_priority(120, [web.state("web")]) == (120, False)  # fall=2 not reached
    web.record(FAIL)
    assert effective_priority(120, [web.state("web")]) == (90, False)
