"""One probe run for every VirtualIP that asks the same question (issue 14).

Users give many VirtualIPs the same arbiter (every VIP of a LAN guards against the same
split brain, through the same gateway) and the same health check (the ingress
controller's port). Run once per VirtualIP, 100 VIPs made the speaker ping the gateway
100 times a second and connect to the service 100 times a second: load on the gateway
and the service, and wake-ups of the speaker (the chaos run at 1 s, 10 VIPs: 53
wake-ups a second, where a backup with neither needs under 3). keepalived shares a
``vrrp_script`` among every instance that tracks it.

So a check is run once per distinct *question*: the probe and its tracking (kind,
target, interval, timeout, rise, fall; for the arbiter also the interface and family).
What each VirtualIP makes of the answer stays its own: the check's name and weight, and
the callback that tells its router. A VirtualIP joining a question already answered
gets the answer at once (:meth:`SharedCheck.replay`); the run stops when its last
VirtualIP leaves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from keepvip.api.model import Arbiter, HealthCheck
from keepvip.speaker.checks.arbiter import ArbiterRunner
from keepvip.speaker.checks.build import build_runner
from keepvip.speaker.checks.runner import CheckRunner, OnChange
from keepvip.speaker.checks.tracker import CheckState, CheckStatus
from keepvip.speaker.sandbox import ScriptPolicy

log = logging.getLogger(__name__)

BuildRunner = Callable[[OnChange], CheckRunner]
"""Makes the (not started) runner of a question, given the callback that fans out."""


def check_question(check: HealthCheck) -> Hashable:
    """What makes two health checks the same run: everything but their name and weight."""
    return ("check", check.model_dump_json(exclude={"name", "weight"}))


def arbiter_question(arbiter: Arbiter, interface: str, family: int) -> Hashable:
    """What makes two arbiters the same run: the settings, the interface and the family."""
    return ("arbiter", interface, family, arbiter.model_dump_json())


@dataclass
class _Question:
    runner: CheckRunner
    subscribers: list[SharedCheck]


class SharedCheck:
    """One VirtualIP's view of a shared run: its own name, weight and callback."""

    def __init__(
        self, question: _Question, leave: Callable[[SharedCheck], Awaitable[None]], *, name: str, weight: int,
        on_change: OnChange | None,
    ) -> None:  # fmt: skip
        self._question, self._leave = question, leave
        self.name, self.weight, self.on_change = name, weight, on_change

    @property
    def runner(self) -> CheckRunner:
        """The shared run (its probe, status and counters)."""
        return self._question.runner

    @property
    def status(self) -> CheckStatus:
        return self.runner.status

    @property
    def state(self) -> CheckState:
        """Name, weight and the shared status: what :func:`effective_priority` takes."""
        return CheckState(name=self.name, weight=self.weight, status=self.runner.status)

    def replay(self) -> None:
        """Tell the callback the status the run already has (nothing while it is unknown)."""
        if self.runner.status is not CheckStatus.UNKNOWN:
            last = self.runner.last_result
            self.tell(self.runner.status is CheckStatus.PASSING, last.detail if last is not None else "")

    def tell(self, passing: bool, detail: str) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self.name, passing, detail)
        except Exception:  # one VirtualIP's callback must not keep the answer from the others
            log.exception("check %s: on_change callback failed", self.name)

    async def stop(self) -> None:
        """Leave the run; the last VirtualIP to leave stops it."""
        await self._leave(self)


class SharedChecks:
    """The speaker's shared runs, by question."""

    def __init__(self) -> None:
        self._questions: dict[Hashable, _Question] = {}

    def __len__(self) -> int:
        """Runs going on."""
        return len(self._questions)

    def join(
        self, key: Hashable, build: BuildRunner, name: str, weight: int, on_change: OnChange | None
    ) -> SharedCheck:
        """Subscribe to the run of ``key``, started with ``build`` if none is going on."""
        question = self._questions.get(key)
        if question is None:
            subscribers: list[SharedCheck] = []

            def tell(_name: str, passing: bool, detail: str) -> None:
                for subscriber in list(subscribers):
                    subscriber.tell(passing, detail)

            question = self._questions[key] = _Question(build(tell), subscribers)
            question.runner.start()
        subscriber = SharedCheck(question, functools.partial(self._leave, key), name=name, weight=weight,
                                 on_change=on_change)  # fmt: skip
        question.subscribers.append(subscriber)
        return subscriber

    def join_check(
        self, check: HealthCheck, on_change: OnChange | None, scripts: ScriptPolicy | None
    ) -> SharedCheck:
        """A VirtualIP's health check, run once for every VirtualIP with the same one."""
        return self.join(
            check_question(check), lambda tell: build_runner(check, tell, scripts), check.name, check.weight,
            on_change,
        )  # fmt: skip

    def join_arbiter(
        self, arbiter: Arbiter, interface: str, family: int, on_change: Callable[[bool, str], None]
    ) -> SharedCheck:
        """A VirtualIP's arbiter, run once for every VirtualIP with the same one."""

        def build(tell: OnChange) -> CheckRunner:
            return ArbiterRunner(arbiter, interface, family, lambda ok, detail: tell("", ok, detail))

        return self.join(
            arbiter_question(arbiter, interface, family), build, "arbiter", 0,
            lambda _name, reachable, detail: on_change(reachable, detail),
        )  # fmt: skip

    async def _leave(self, key: Hashable, subscriber: SharedCheck) -> None:
        question = self._questions.get(key)
        if question is None or subscriber not in question.subscribers:
            return
        question.subscribers.remove(subscriber)
        if not question.subscribers:
            del self._questions[key]  # before the await: a VirtualIP joining now starts a new run
            await question.runner.stop()
