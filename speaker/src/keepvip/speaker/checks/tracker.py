"""Rise/fall hysteresis of one health check, and the priority the checks add up to.

Both are pure: no clock, no I/O. A runner feeds a :class:`CheckTracker` one probe
result at a time; the router asks :func:`effective_priority` what the current check
statuses mean for its advertised priority. Keeping the arithmetic here, away from
sockets and tasks, is what lets the unit tests state keepalived's rules exactly.

Semantics are keepalived's ``vrrp_script`` / ``track_script`` (keepalived's
``vrrp_scheduler.c`` and ``vrrp_track.c``), because a keepvip node must behave like
the keepalived node it replaces:

* A check starts **unknown** (keepalived's ``SCRIPT_INIT_STATE_INIT``). Its first
  result decides at once, whatever ``rise`` and ``fall`` say: keepalived seeds the
  counter at ``rise - 1`` ("one success is enough") and reports the first failure
  immediately. After that, ``rise`` consecutive passes are needed to go from failing to
  passing and ``fall`` consecutive failures to go from passing to failing.
* While unknown a check adds **no weight** either way: keepalived adjusts the priority
  of a script in its init state only once the script has reported.
* A weight-0 check that is failing puts the router in FAULT. One that is still unknown
  also holds the router out of the election: keepalived keeps the instance in INIT
  until every weight-0 script has reported, so a node whose service is dead never
  grabs the VIP for the moment before its first check returns. (The runner probes
  right away, so this lasts at most one ``timeout``.)
* The effective priority is clamped to 1..254 (RFC 9568 §5.2.4: 255 is reserved for
  the address owner, 0 for a master that is leaving); keepalived clamps the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

# RFC 9568 §5.2.4: 255 = address owner, 0 = master resigning; a backup's priority
# computed from checks stays inside 1..254.
MIN_PRIORITY = 1
MAX_PRIORITY = 254


class CheckStatus(enum.StrEnum):
    """What a check currently says; the value is the metric label and log field."""

    UNKNOWN = "unknown"
    PASSING = "passing"
    FAILING = "failing"


@dataclass(frozen=True)
class CheckState:
    """A check's name, weight and current status: the input of :func:`effective_priority`."""

    name: str
    weight: int
    status: CheckStatus


class CheckTracker:
    """Turns a stream of pass/fail results into a status with rise/fall hysteresis.

    :meth:`record` returns True exactly when the status changed, so a caller can log and
    recompute the priority only on real transitions, never on every probe.
    """

    def __init__(self, rise: int, fall: int, weight: int) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be at least 1 (got rise={rise}, fall={fall})")
        self.rise = rise
        self.fall = fall
        self.weight = weight
        self._status = CheckStatus.UNKNOWN
        self._streak = 0  # consecutive results that disagree with the current status

    @property
    def status(self) -> CheckStatus:
        """The current status (UNKNOWN until the first result)."""
        return self._status

    def record(self, passed: bool) -> bool:
        """Feed one probe result; return whether the status changed."""
        wanted = CheckStatus.PASSING if passed else CheckStatus.FAILING
        if self._status is CheckStatus.UNKNOWN:
            # keepalived: "one success is enough", and the first failure reports at once.
            self._status = wanted
            self._streak = 0
            return True
        if wanted is self._status:
            self._streak = 0
            return False
        self._streak += 1
        needed = self.rise if passed else self.fall
        if self._streak < needed:
            return False
        self._status = wanted
        self._streak = 0
        return True

    def state(self, name: str) -> CheckState:
        """This tracker's status and weight, labelled ``name``."""
        return CheckState(name=name, weight=self.weight, status=self._status)


class Priority(NamedTuple):
    """The priority to advertise, and whether the checks put the router in FAULT."""

    priority: int
    fault: bool


def effective_priority(base: int, checks: Iterable[CheckState]) -> Priority:
    """Base priority adjusted by the checks (DESIGN.md "Effective priority").

    base + the weights of failing checks with negative weight + the weights of passing
    checks with positive weight, clamped to 1..254. ``fault`` is True when a weight-0
    check is failing or still unknown (see the module docstring).
    """
    total = base
    fault = False
    for check in checks:
        if check.weight == 0:
            fault = fault or check.status is not CheckStatus.PASSING
        elif check.status is (CheckStatus.FAILING if check.weight < 0 else CheckStatus.PASSING):
            total += check.weight
    return Priority(min(MAX_PRIORITY, max(MIN_PRIORITY, total)), fault)


def faulting_checks(checks: Iterable[CheckState]) -> list[str]:
    """Names of the weight-0 checks that hold the router in FAULT (for the log and status reason)."""
    return [c.name for c in checks if c.weight == 0 and c.status is not CheckStatus.PASSING]
