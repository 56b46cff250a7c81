"""The settled view of a VirtualIP: what status and Events tell, once a takeover has landed.

Each speaker writes its own ``status.nodes`` entry, independently, so the API sees a
takeover half-way: the old master already BACKUP before the new one reports MASTER
(no master for a moment), or the new master MASTER before the old one reports BACKUP
(two masters for a moment). VRRP itself has brief legitimate double masters too: two
backups whose Master_Down timers fire within one Skew_Time (RFC 9568 §6.4.2) both
become master, and the next advertisement sends the lower one back to BACKUP
(RFC 9568 §6.4.3). None of that is news for ``kubectl describe vip``.

The rule: good news at once, bad news once it has lasted. A reading with one master and
a backup is adopted at once. Any other reading (no master, several masters, a master
without a backup) must persist for ``settleSeconds`` before status and Events show it;
until then the view keeps what it showed, except that a new single master is named at
once (who holds the addresses is the news ``kubectl get vip`` exists for), its missing
backup shown as pending (``Degraded=False``, reason ``BackupPending``), not Degraded. So A → B
through a short "(none)" or a short double master is one ``MasterChanged A → B``.
Events follow the view, with one more wait (:func:`master_to_tell`): the first master
after none is told once it has held a quarter of a second.

Everything here is pure: every call carries ``now`` (monotonic seconds). The caller
keeps a :class:`Settling` per VirtualIP in memory (:mod:`keepvip.operator.memory`) and
re-evaluates periodically, so a lasting transient is adopted without waiting for the
next change. Memory is lost on restart by design: :func:`first_sight` rebuilds the view
from the status the previous run wrote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from keepvip.api.model import VirtualIPStatus
from keepvip.operator.status import Observation, view_from_status


@dataclass(frozen=True)
class Settling:
    """One VirtualIP's settled view, its timing, and the master the Events last named."""

    view: Observation
    unsettled_since: float | None = None
    """Monotonic time of the first reading that was not :attr:`Observation.settled`
    after one that was; None while readings are settled."""
    master_since: float = -math.inf
    """Since when ``view.master`` has been what it is."""
    told_master: str | None = None
    """The master the last MasterChanged event named (or the recorded one)."""


def first_sight(recorded: VirtualIPStatus | None) -> Settling:
    """Start from what status already tells (a new VirtualIP: nothing)."""
    view = view_from_status(recorded)
    return Settling(view, told_master=view.master)


def settle(before: Settling, seen: Observation, now: float, grace: float) -> Settling:
    """The view after reading ``seen`` at ``now``, given the view ``before``."""
    view, unsettled_since = _settled_view(before, seen, now, grace)
    master_since = before.master_since if view.master == before.view.master else now
    return Settling(view, unsettled_since, master_since, before.told_master)


def _settled_view(
    before: Settling, seen: Observation, now: float, grace: float
) -> tuple[Observation, float | None]:
    if seen.settled:
        return seen, None
    since = before.unsettled_since if before.unsettled_since is not None else now
    if now - since >= grace:
        return _name_master(seen, before.view), since
    if len(seen.masters) == 1:
        # A master without a backup: name it now, let the lost redundancy wait.
        backups = tuple(b for b in before.view.backups if b not in seen.masters)
        return replace(seen, backups=backups, backups_pending=not backups), since
    # No master or several: keep telling what was told (nodes' readiness is current).
    return replace(before.view, unheard=seen.unheard), since


MasterChange = tuple[str | None, str | None]
"""(old, new) master; None is no master."""


def master_to_tell(settling: Settling, now: float, grace: float) -> tuple[Settling, MasterChange | None]:
    """The master change the Events should tell now (old, new), if any, and the settling that told it.

    A change between masters, or to no master (which the view shows only once it has
    lasted), is told at once. The first master after none is told once it has held
    :func:`first_master_hold`: an election from scratch can pass through a
    lower-priority node for a few milliseconds (the first backup whose Master_Down timer
    fires becomes master and advertises, RFC 9568 §6.4.2, and a higher-priority backup
    that hears it pre-empts at once, §6.4.3), which is not news. Call it with the
    settling *before* a new reading too, so a first master that held is told before the
    change that replaces it.
    """
    old, new = settling.told_master, settling.view.master
    if new == old:
        return settling, None
    if old is None and now - settling.master_since < first_master_hold(grace):
        return settling, None
    return replace(settling, told_master=new), (old, new)


def first_master_hold(grace: float) -> float:
    """How long the first master after none must hold before it is told: 0.25 s (at most
    the grace period). A pre-emption race lasts one advertisement on the LAN plus the
    API writes of two speakers, tens of milliseconds; a failover worth telling lasts longer."""
    return min(grace, FIRST_MASTER_HOLD_SECONDS)


FIRST_MASTER_HOLD_SECONDS = 0.25


def _name_master(seen: Observation, before: Observation) -> Observation:
    """With several masters, name the one that took over, and keep naming it.

    The newcomer is the node that stopped hearing the old master, usually because the
    old one is gone (cut off, its entry stale): naming it tells where the addresses
    went, and keeping the name while the split lasts keeps MasterChanged from
    flip-flopping.
    """
    if len(seen.masters) < 2:
        return seen
    if len(before.masters) > 1 and before.master in seen.masters:
        return replace(seen, preferred=before.master)
    newcomers = [m for m in seen.masters if m != before.master]
    return replace(seen, preferred=newcomers[0])
