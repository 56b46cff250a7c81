"""VirtualIPs asking the same question share one probe run; each keeps its own name and weight.

The runs use the virtual clock and a scripted probe (``test_checks_probes``), so "once
per interval" is an exact count of probe starts. The netns tier checks the same on the
wire (``tests/netns/test_speaker_checks.py``: one echo request per interval for many
VIPs with one arbiter).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from keepvip.api.model import Arbiter, HealthCheck
from keepvip.speaker.checks.runner import CheckRunner, OnChange
from keepvip.speaker.checks.shared import BuildRunner, SharedChecks, arbiter_question, check_question
from keepvip.speaker.checks.tracker import CheckState, CheckStatus, CheckTracker
from tests.unit.scripted_probe import ScriptedProbe
from tests.unit.virtual_clock import VirtualClock

Told = list[tuple[str, str, bool, float]]


def scripted(clock: VirtualClock, probe: ScriptedProbe, built: list[ScriptedProbe]) -> BuildRunner:
    """The runner of a question, probing with ``probe`` once a second; ``built`` records each one made."""

    def build(tell: OnChange) -> CheckRunner:
        built.append(probe)
        return CheckRunner("web", probe, CheckTracker(rise=1, fall=2, weight=0), 1.0, tell, clock=clock)

    return build


def telling(told: Told, vip: str, clock: VirtualClock) -> OnChange:
    def on_change(name: str, passing: bool, _detail: str) -> None:
        told.append((vip, name, passing, clock.now()))

    return on_change


def test_three_virtualips_with_one_question_start_one_probe_per_interval() -> None:
    clock = VirtualClock()
    probe, built, told = ScriptedProbe(clock), [], []

    async def scenario() -> None:
        shared = SharedChecks()
        joined = [shared.join("same", scripted(clock, probe, built), "web", -10, telling(told, vip, clock))
                  for vip in ("a", "b", "c")]  # fmt: skip
        await clock.advance(4.5)
        assert len(shared) == 1
        for subscriber in joined:
            await subscriber.stop()
        assert len(shared) == 0

    asyncio.run(scenario())
    assert len(built) == 1
    assert probe.starts == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])  # not three per interval
    assert sorted(told) == [("a", "web", True, 0.0), ("b", "web", True, 0.0), ("c", "web", True, 0.0)]


def test_each_virtualip_keeps_its_own_name_and_weight() -> None:
    clock = VirtualClock()
    probe = ScriptedProbe(clock)

    async def scenario() -> list[CheckState]:
        shared = SharedChecks()
        ingress = shared.join("q", scripted(clock, probe, []), "ingress", -30, None)
        guard = shared.join("q", scripted(clock, probe, []), "guard", 0, None)
        await clock.advance(0.5)
        states = [ingress.state, guard.state]
        await ingress.stop()
        await guard.stop()
        return states

    assert asyncio.run(scenario()) == [
        CheckState(name="ingress", weight=-30, status=CheckStatus.PASSING),
        CheckState(name="guard", weight=0, status=CheckStatus.PASSING),
    ]


def test_a_virtualip_joining_an_answered_question_is_told_the_answer_at_once() -> None:
    clock = VirtualClock()
    probe, told = ScriptedProbe(clock, up=False), []

    async def scenario() -> None:
        shared = SharedChecks()
        first = shared.join("q", scripted(clock, probe, []), "web", 0, telling(told, "a", clock))
        await clock.advance(1.5)  # failing from the first run (an unknown check takes its first answer)
        late = shared.join("q", scripted(clock, probe, []), "web", 0, telling(told, "b", clock))
        assert late.status is CheckStatus.FAILING  # before any callback: start() reads the state
        late.replay()
        await first.stop()
        await late.stop()

    asyncio.run(scenario())
    assert told == [("a", "web", False, 0.0), ("b", "web", False, 1.5)]


def test_a_question_not_answered_yet_is_not_replayed() -> None:
    clock = VirtualClock()
    told: Told = []

    async def scenario() -> None:
        shared = SharedChecks()
        joined = shared.join("q", scripted(clock, ScriptedProbe(clock, duration=0.5), []), "web", 0,
                             telling(told, "a", clock))  # fmt: skip
        joined.replay()  # the first probe is still running
        assert told == []
        await clock.advance(0.6)
        await joined.stop()

    asyncio.run(scenario())
    assert told == [("a", "web", True, 0.5)]


def test_the_run_goes_on_until_its_last_virtualip_leaves_and_a_new_one_starts_afresh() -> None:
    clock = VirtualClock()
    first_probe, second_probe = ScriptedProbe(clock), ScriptedProbe(clock)
    built: list[ScriptedProbe] = []

    async def scenario() -> None:
        shared = SharedChecks()
        a = shared.join("q", scripted(clock, first_probe, built), "web", 0, None)
        b = shared.join("q", scripted(clock, first_probe, built), "web", 0, None)
        await clock.advance(1.5)
        await a.stop()
        await clock.advance(1.0)  # b still asks: the run goes on
        await a.stop()  # leaving twice changes nothing
        assert a.runner.running
        await b.stop()
        assert not b.runner.running
        await clock.advance(2.0)  # nobody asks: nothing runs
        c = shared.join("q", scripted(clock, second_probe, built), "web", 0, None)
        await clock.advance(0.5)
        await c.stop()

    asyncio.run(scenario())
    assert built == [first_probe, second_probe]
    assert first_probe.starts == pytest.approx([0.0, 1.0, 2.0])
    assert second_probe.starts == pytest.approx([4.5])


def test_one_virtualips_failing_callback_does_not_keep_the_answer_from_the_others() -> None:
    clock = VirtualClock()
    told: Told = []

    def broken(_name: str, _passing: bool, _detail: str) -> None:
        raise RuntimeError("a bug in one VirtualIP's handler")

    async def scenario() -> None:
        shared = SharedChecks()
        probe = ScriptedProbe(clock)
        build = scripted(clock, probe, [])
        callbacks = (broken, telling(told, "b", clock))
        joined = [shared.join("q", build, "web", 0, on_change) for on_change in callbacks]
        await clock.advance(0.5)
        for subscriber in joined:
            await subscriber.stop()

    asyncio.run(scenario())
    assert told == [("b", "web", True, 0.0)]


def check(**fields: object) -> HealthCheck:
    return HealthCheck.model_validate({"name": "web", "tcp": {"port": 8081}, **fields})


def test_checks_differing_only_in_name_and_weight_are_one_question() -> None:
    assert check_question(check(name="a", weight=-20)) == check_question(check(name="b", weight=0))


@pytest.mark.parametrize("other", [
    {"tcp": {"port": 8082}},
    {"tcp": {"port": 8081, "host": "198.18.0.9"}},
    {"interval": "2s"},
    {"timeout": "500ms"},
    {"rise": 2},
    {"fall": 3},
    {"tcp": None, "http": {"port": 8081}},
])  # fmt: skip
def test_checks_differing_in_probe_or_tracking_are_different_questions(other: dict[str, object]) -> None:
    assert check_question(check()) != check_question(check(**other))


def test_arbiters_are_one_question_only_on_the_same_interface_family_and_settings() -> None:
    arbiter = Arbiter.model_validate({"gateway": "198.18.0.250"})
    same = arbiter_question(arbiter, "eth0", 2)
    assert same == arbiter_question(Arbiter.model_validate({"gateway": "198.18.0.250"}), "eth0", 2)
    assert same != arbiter_question(arbiter, "eth1", 2)
    assert same != arbiter_question(arbiter, "eth0", 10)
    assert same != arbiter_question(arbiter.model_copy(update={"fall": 5}), "eth0", 2)
    assert same != arbiter_question(arbiter.model_copy(update={"interval": timedelta(seconds=2)}), "eth0", 2)
    assert same != arbiter_question(Arbiter.model_validate({"gateway": "auto"}), "eth0", 2)
