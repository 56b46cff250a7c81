"""kopf peering for several operator replicas: who this replica is, and how it ranks.

With ``peeringName`` set, every replica runs kopf and keeps an entry (identity,
priority, lifetime) in the status of the ClusterKopfPeering object of that name. kopf
lets only the replica with the highest priority watch and handle; the others keep
serving the admission webhook and liveness endpoint, and pause their watches until the
higher one leaves (a clean stop deletes its entry at once) or its entry expires
(``LIFETIME_SECONDS`` after its last keep-alive, for a replica that died or hangs).

Two rules follow from kopf's algorithm (kopf/_core/engines/peering.py):

* Priorities must differ. Equal priorities make every replica pause ("possibly
  conflicting operators"), and stay paused until one of them leaves.
* The first replica to start should stay in charge. A newcomer with a higher priority
  would take over from a working replica, and a handover is the one moment two replicas
  may both be handling (kopf has no per-object lock): each stops or starts on its own
  next look at the peering object.

So the priority is derived from the start time, older ranking higher, with random low
bits against two replicas starting in the same millisecond. Only the death of the
active replica causes a handover; scaling up, a rolling update's new pods and a
restarted standby line up behind it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Final

LIFETIME_SECONDS: Final = 15
"""How long a replica's entry counts without a keep-alive; kopf touches it every 5..10 s
(``lifetime - randint(5, 10)``). A replica that stops cleanly removes its entry, so this
bounds only the takeover after a crash or a hang. kopf's own default is 60 s."""

_TIE_BITS: Final = 10
_HORIZON_MS: Final = 1 << 43
"""Milliseconds since the Unix epoch the ranking covers (until the year 2248); the
priority stays below 2**53, exact even for clients that read JSON numbers as doubles."""

IDENTITY_ENV: Final = "POD_NAME"
"""The environment variable the chart sets from the pod's name (Downward API)."""


def priority_for(started: float, tie_breaker: int) -> int:
    """The peering priority of a replica started at ``started`` (Unix seconds).

    Earlier starts rank higher; ``tie_breaker`` (0..1023) orders replicas started in the
    same millisecond.
    """
    if not 0 <= tie_breaker < 1 << _TIE_BITS:
        raise ValueError(f"tie_breaker must be in 0..{(1 << _TIE_BITS) - 1}")
    remaining_ms = min(max(_HORIZON_MS - 1 - int(started * 1000), 0), _HORIZON_MS - 1)
    return (remaining_ms << _TIE_BITS) | tie_breaker


def own_priority(clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> int:
    """This replica's priority, from now and a random tie-breaker."""
    return priority_for(clock(), (rng or random.SystemRandom()).randrange(1 << _TIE_BITS))


def own_identity(environ: dict[str, str] | None = None) -> str | None:
    """The pod's name, so the peering object names the pods; None lets kopf pick one."""
    name = (os.environ if environ is None else environ).get(IDENTITY_ENV, "")
    return name or None
