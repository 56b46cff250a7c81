"""The VRRP state machine of one virtual router, as a pure function of its inputs.

In the style of h11 and aioquic's ``QuicConnection``: `VirtualRouter` holds protocol
state only. Every input (start, a received advertisement, a timer, the health checks'
verdict, a priority change, a fault, shutdown) carries ``now`` (monotonic seconds) and
returns the `Action` values the adapter must execute; between inputs the adapter arms a
single timer for `VirtualRouter.next_deadline` and calls `VirtualRouter.handle_timer`
when it expires.
Nothing here reads a clock, a socket or an interface, so the whole protocol is tested
on an in-memory wire with a virtual clock (tests/unit/wire.py).

The rules are RFC 9568 §6 (VRRPv3) and RFC 3768 §6 (VRRPv2), cited next to each.
Where the RFCs are silent keepvip follows keepalived, so both can share a group:

* **FAULT** (keepalived): while any `FaultReason` holds, the router releases its VIPs,
  stops advertising and ignores advertisements. A master entering FAULT first sends
  priority 0 so the backups take over after Skew_Time instead of Master_Down_Interval.
  When the last reason clears, the router follows the Initialize rules (§6.4.1):
  the owner becomes master, anyone else backup.
* **preempt_delay** (keepalived: "seconds after startup or seeing a lower priority
  master until preemption"): a backup that would pre-empt a lower-priority master keeps
  treating that master's advertisements as valid (it resets its Master_Down_Timer, as if
  pre-emption were off) until the delay has passed, then discards them (§6.4.2) and
  takes over when its Master_Down_Timer expires. The delay counts from startup (or from
  leaving FAULT) until the router has followed a master with a priority at least its
  own; after that it counts from the first advertisement of a lower-priority master
  (e.g. once our priority rises, or a lower router took over). With a delay of 0 this
  is exactly RFC 9568 §6.4.2.
* **nopreempt** (``preempt=False``): a backup never takes over from a live master, even
  when the master's effective priority falls below its own.
* **Effective priority**: health-check weights change it at run time. A master keeps
  advertising its new priority (it sends one advertisement at once, so backups learn it
  without waiting an interval); a backup with a higher priority and pre-emption on then
  discards those advertisements and takes over at Master_Down_Interval (§6.4.2).
* **Address owner** (priority 255): takes over at once (§6.4.1) and drops every received
  advertisement, as RFC 3768, 5798 and 9568 §7.1 say (keepalived processes them by
  default; keepvip follows the RFC).
* **Unicast peers** (keepalived ``unicast_peer``): with peers configured, an
  advertisement from any other source is dropped (``foreign_sender``).
* **Sync groups** (keepalived ``vrrp_sync_group``): `hold_master` keeps the router out
  of MASTER while another member of its group on this node has lost MASTER: a master
  steps down to BACKUP (priority 0 first, as on Shutdown, so the other node's member
  takes over after Skew_Time), and a backup whose Master_Down_Timer fires re-arms it
  instead of taking over (keepalived's ``vrrp_sync_can_goto_master``). It still follows
  the master's advertisements, so it is a backup in every other respect.
* **Address list**: checked on receive; a mismatch is reported (`ConfigMismatch`) and
  only dropped with ``strict_address_check`` (keepalived ``vrrp_strict``).
"""

from __future__ import annotations

from keepvip.inet import IPAddress
from keepvip.speaker.vrrp.actions import (
    Action,
    AddAddresses,
    Announce,
    ConfigMismatch,
    Dropped,
    RemoveAddresses,
    SendAdvertisement,
    StateChanged,
)
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.config import RouterConfig
from keepvip.speaker.vrrp.constants import (
    PRIORITY_LEAVING,
    PRIORITY_MIN_BACKUP,
    PRIORITY_OWNER,
    V2_AUTH_DATA_LEN,
    VERSION_2,
    AuthType,
)
from keepvip.speaker.vrrp.drops import DropReason
from keepvip.speaker.vrrp.state import (
    FAULT_TRANSITIONS,
    FaultReason,
    State,
    TransitionReason,
    transition,
)
from keepvip.speaker.vrrp.timers import interval_seconds, master_down_interval, skew_time

FaultKey = tuple[FaultReason, str]
# (advertisement, source, configuration, priority, Master_Down_Interval) of the last
# advertisement a backup followed from its master: `VirtualRouter.receive`'s shortcut.
_Repeat = tuple[Advertisement, IPAddress, RouterConfig, int, float]


class VirtualRouter:
    """One VRRP virtual router (one VRID on one interface) on this node.

    All methods take ``now`` (monotonic seconds, never decreasing) and return the
    actions to execute, in order. None of them raises on remote input; the methods fed
    by local decisions raise `ValueError` only for impossible values (a priority out of
    1..255).
    """

    def __init__(self, config: RouterConfig) -> None:
        self._faults: set[FaultKey] = set()
        self._master_held = False  # a sync group holds us out of MASTER (an input: kept)
        self._reset(config, config.priority)

    def _reset(self, config: RouterConfig, priority: int) -> None:
        """Protocol state as after construction (the fault reasons are inputs: kept)."""
        self._config = config
        self._state = State.INITIALIZE
        self._priority = priority
        # RFC 9568 §6.1 Master_Adver_Interval ("Active_Adver_Interval"): the interval
        # of the master we follow; v3 backups adopt it from the master's adverts.
        self._master_adver_interval_cs = config.interval_cs
        self._adver_deadline: float | None = None  # §6.2 Adver_Timer (master)
        self._master_down_deadline: float | None = None  # §6.2 Master_Down_Timer (backup)
        self._down_reason = TransitionReason.MASTER_DOWN_TIMER  # what firing it would mean
        self._preempt_hold_until: float | None = None
        self._master_address: IPAddress | None = None
        self._master_priority: int | None = None
        self._reannounced_at: float | None = None  # last re-announcement as master
        self._advertised_at: float | None = None  # last ADVERTISEMENT sent at our priority
        self._repeat: _Repeat | None = None  # see `receive`: the master's advert, as last followed

    # ------------------------------------------------------------------ read-only view

    @property
    def config(self) -> RouterConfig:
        return self._config

    @property
    def state(self) -> State:
        return self._state

    @property
    def priority(self) -> int:
        """The effective priority: the base priority adjusted by health-check weights."""
        return self._priority

    @property
    def is_owner(self) -> bool:
        """Priority 255: this router owns the addresses (RFC 9568 §5.2.4)."""
        return self._priority == PRIORITY_OWNER

    @property
    def master_adver_interval_cs(self) -> int:
        """The master's advertisement interval as this router knows it (RFC 9568 §6.1)."""
        return self._master_adver_interval_cs

    @property
    def skew_time(self) -> float:
        """Skew_Time in seconds for our priority and the known master interval (§6.1)."""
        return skew_time(self._config.version, self._priority, self._master_adver_interval_cs)

    @property
    def master_down_interval(self) -> float:
        """Master_Down_Interval in seconds (RFC 9568 §6.1 Active_Down_Interval)."""
        return master_down_interval(
            self._config.version, self._priority, self._master_adver_interval_cs
        )

    @property
    def next_deadline(self) -> float | None:
        """When `handle_timer` must next be called; ``None`` when no timer is armed."""
        adver, down = self._adver_deadline, self._master_down_deadline  # asked after every input
        if adver is None:
            return down
        return adver if down is None or adver < down else down

    @property
    def master_down_deadline(self) -> float | None:
        """When the Master_Down_Timer (RFC 9568 §6.2) expires; ``None`` unless a backup's is armed."""
        return self._master_down_deadline

    @property
    def master_address(self) -> IPAddress | None:
        """The current master's primary address: ours when master, the last valid
        advertiser's when backup, ``None`` when unknown (or not running)."""
        if self._state is State.MASTER:
            return self._config.primary_address
        if self._state is State.BACKUP:
            return self._master_address
        return None

    @property
    def master_priority(self) -> int | None:
        """The current master's advertised priority, when known."""
        if self._state is State.MASTER:
            return self._priority
        if self._state is State.BACKUP:
            return self._master_priority
        return None

    @property
    def faults(self) -> frozenset[FaultKey]:
        """The fault reasons (and their details) currently holding."""
        return frozenset(self._faults)

    # ------------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[Action]:
        """RFC 9568 §6.4.1: the Startup event. A no-op unless in INITIALIZE.

        Any stale VIP (a previous run's) is removed first unless the router becomes
        master. A router with a pending fault starts in FAULT.
        """
        if self._state is not State.INITIALIZE:
            return []
        if self._faults:
            return [self._move(self._fault_transition()), RemoveAddresses(self._config.addresses)]
        actions = self._initialize(now, TransitionReason.STARTUP)
        if not self.is_owner:  # now a backup
            actions.append(RemoveAddresses(self._config.addresses))
        return actions

    def heard_again(self, advertisement: Advertisement, source: IPAddress, now: float) -> bool:
        """The advertisement this backup last followed, heard again: reset its Master_Down_Timer.

        ``True`` when ``advertisement`` is the very object (the socket pool hands out one
        per distinct bytes) that this backup last followed, from the same source, with
        nothing changed since (configuration, priority, state): every check and branch of
        `receive` would decide as then (they depend on these only), and their one effect
        now is RFC 9568 §6.4.2's reset of the Master_Down_Timer, done here; no actions
        follow. Otherwise ``False``, the router untouched: the caller hands the
        advertisement to `receive`. Issues 15 and 14 (a backup's CPU): a backup does this
        once per advertisement heard, so a runner with nothing queued asks it first and
        skips its inbox.
        """
        repeat = self._repeat
        if (
            repeat is not None
            and repeat[0] is advertisement
            and repeat[1] is source
            and repeat[2] is self._config
            and repeat[3] == self._priority
            and self._state is State.BACKUP
        ):
            self._master_down_deadline = now + repeat[4]
            return True
        return False

    def receive(self, advertisement: Advertisement, source: IPAddress, now: float) -> list[Action]:
        """An ADVERTISEMENT the codec accepted, from IP source ``source``.

        The codec has already checked TTL, version, type, length, checksum, count and a
        non-zero interval (RFC 9568 §7.1); this method checks what needs the router's
        configuration and state, then applies §6.4.2 (backup) or §6.4.3 (master).
        `ConfigMismatch` reports come last. Ignored in INITIALIZE and FAULT.
        """
        if self.heard_again(advertisement, source, now):
            return []
        self._repeat = None
        if self._state not in (State.BACKUP, State.MASTER):
            return []
        reason = self._receive_check(advertisement, source)
        if reason is not None:
            return [Dropped(reason, source)]
        mismatches: list[Action] = []
        if not self._same_addresses(advertisement):
            # RFC 9568 §7.1: MAY verify the address list; SHOULD log a mismatch.
            # RFC 3768 §7.1: drop unless the sender is the owner (strict mode only).
            if self._config.strict_address_check and advertisement.priority != PRIORITY_OWNER:
                return [Dropped(DropReason.ADDRESS_MISMATCH, source)]
            mismatches.append(ConfigMismatch(DropReason.ADDRESS_MISMATCH, source, advertisement))
        if advertisement.interval_cs != self._config.interval_cs:
            # RFC 9568 §7.1: SHOULD verify Max Adver Int matches Advertisement_Interval
            # and log a mismatch, but still process it (v2 mismatches were dropped above).
            mismatches.append(
                ConfigMismatch(DropReason.INTERVAL_MISMATCH, source, advertisement)
            )
        if self._state is State.BACKUP:
            actions = self._backup_receive(advertisement, source, now)
            if (
                not actions
                and not mismatches
                and self._state is State.BACKUP
                and self._master_address is source
                and advertisement.priority != PRIORITY_LEAVING
                and advertisement.priority >= self._priority
            ):
                # Followed a master at least our priority: a branch that does not depend on ``now``.
                down = self.master_down_interval
                self._repeat = (advertisement, source, self._config, self._priority, down)
            return actions + mismatches
        return self._master_receive(advertisement, source, now) + mismatches

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every deadline that is due at ``now`` (early calls are harmless)."""
        actions: list[Action] = []
        if (
            self._state is State.BACKUP
            and self._master_down_deadline is not None
            and self._master_down_deadline <= now
        ):
            if self._master_held:
                # keepalived vrrp_sync_can_goto_master: the group is not ready; wait
                # another Master_Down_Interval (the reason it would take over is kept).
                self._master_down_deadline = now + self.master_down_interval
            else:
                # RFC 9568 §6.4.2: Master_Down_Timer fires → send an ADVERTISEMENT,
                # announce the addresses, set the Adver_Timer, become master.
                actions += self._become_master(now, self._down_reason)
        if (
            self._state is State.MASTER
            and self._adver_deadline is not None
            and self._adver_deadline <= now
        ):
            # RFC 9568 §6.4.3: Adver_Timer fires → send an ADVERTISEMENT, reset the timer.
            actions.append(self._send_advertisement(now))
        return actions

    def set_effective_priority(self, priority: int, now: float) -> list[Action]:
        """Health-check weights moved our priority (1..255; 255 makes us the owner).

        Master: advertise the new priority at once; a backup with a higher priority
        and pre-emption on then takes over (§6.4.2). Backup: the new priority decides
        the next advertisement (§6.4.2 compares the advertised priority with ours) and
        the next Skew_Time; becoming the owner makes us master at once (§6.4.1).
        """
        _check_priority(priority)
        if priority == self._priority:
            return []
        self._priority = priority
        if self._state is State.MASTER:
            return [self._send_advertisement(now)]
        if self._state is State.BACKUP and self.is_owner:
            return self._become_master(now, TransitionReason.ADDRESS_OWNER)
        return []

    def update_health(self, priority: int, failing_checks: frozenset[str], now: float) -> list[Action]:
        """The health checks' verdict, whole: the effective priority their weights give,
        and the names of the weight-0 checks that are failing (each a fault of its own).

        The router compares with the check faults it holds, so the adapter passes the
        current verdict and never diffs: newly failing checks enter FAULT, the priority
        is applied, then the checks that pass again (or are gone) clear.
        """
        _check_priority(priority)
        held = {name for reason, name in self._faults if reason is FaultReason.CHECK_FAILED}
        actions: list[Action] = []
        for name in sorted(failing_checks - held):
            actions += self.enter_fault(FaultReason.CHECK_FAILED, now, name)
        actions += self.set_effective_priority(priority, now)
        for name in sorted(held - failing_checks):
            actions += self.leave_fault(FaultReason.CHECK_FAILED, now, name)
        return actions

    def enter_fault(
        self,
        reason: FaultReason,
        now: float,  # noqa: ARG002 - every input carries now; FAULT arms no timer
        detail: str = "",
    ) -> list[Action]:
        """A fault began (``detail`` tells apart several of one kind, e.g. check names).

        A master sends priority 0 (as on shutdown, §6.4.3, so backups take over after
        Skew_Time) and releases its VIPs; any running router stops its timers.
        """
        self._faults.add((reason, detail))
        if self._state in (State.FAULT, State.INITIALIZE):
            return []
        return self._stop(FAULT_TRANSITIONS[reason])

    def leave_fault(self, reason: FaultReason, now: float, detail: str = "") -> list[Action]:
        """A fault ended; when none remains, apply the Initialize rules (§6.4.1)."""
        self._faults.discard((reason, detail))
        if self._faults or self._state is not State.FAULT:
            return []
        return self._initialize(now, TransitionReason.FAULT_CLEARED)

    def hold_master(self, held: bool, now: float) -> list[Action]:
        """A sync group holds this router out of MASTER (``held``) or lets it go again.

        Held, a master steps down: priority 0 (as on Shutdown, RFC 9568 §6.4.3, so a
        backup takes over after Skew_Time), VIPs released, then the backup rules (§6.4.2)
        with the Master_Down_Timer armed. Released, nothing happens at once: the next
        Master_Down_Timer expiry decides, as for any backup.
        """
        self._master_held = held
        if not held or self._state is not State.MASTER:
            return []
        actions: list[Action] = [
            self._move(TransitionReason.SYNC_GROUP_BACKUP),
            self._leaving_advertisement(),
            RemoveAddresses(self._config.addresses),
        ]
        self._adver_deadline = None
        self._master_address = None
        self._master_priority = None
        self._arm_master_down(now, TransitionReason.MASTER_DOWN_TIMER)
        return actions

    def shutdown(self, now: float) -> list[Action]:  # noqa: ARG002 - every input carries now
        """The Shutdown event: back to INITIALIZE (RFC 9568 §6.4.2, §6.4.3).

        A master cancels its Adver_Timer, sends an ADVERTISEMENT with priority 0 so a
        backup takes over after Skew_Time, and releases its VIPs.
        """
        if self._state is State.INITIALIZE:
            return []
        return self._stop(TransitionReason.SHUTDOWN)

    def reconfigure(
        self, config: RouterConfig, now: float, effective_priority: int | None = None
    ) -> list[Action]:
        """Apply a new configuration in place, without a flap where possible.

        A new VRID or version is a different virtual router: shut down and start again
        (a router not started yet stays in INITIALIZE).
        Otherwise the state is kept; a master moves its VIPs to the new list, announces
        the new ones and advertises at once if anything it advertises changed. The
        effective priority becomes ``effective_priority`` (default: the new base).
        """
        old = self._config
        priority = config.priority if effective_priority is None else effective_priority
        _check_priority(priority)
        if (config.vrid, config.version) != (old.vrid, old.version):
            running = self._state is not State.INITIALIZE
            restart = self.shutdown(now)
            self._reset(config, priority)
            return restart + self.start(now) if running else restart
        before = self._advertisement()
        self._config = config
        if self._state is not State.BACKUP or config.version == VERSION_2:
            self._master_adver_interval_cs = config.interval_cs
        if self._state is not State.MASTER:
            return self.set_effective_priority(priority, now)
        self._priority = priority
        actions: list[Action] = []
        removed = tuple(a for a in old.addresses if a not in config.addresses)
        added = tuple(a for a in config.addresses if a not in old.addresses)
        if removed:
            actions.append(RemoveAddresses(removed))
        if added:
            actions += [AddAddresses(added), Announce(added)]
        if self._advertisement() != before:
            actions.append(self._send_advertisement(now))
        return actions

    # ------------------------------------------------------------------ the protocol

    def _initialize(self, now: float, reason: TransitionReason) -> list[Action]:
        """RFC 9568 §6.4.1, on Startup or when the last fault clears."""
        if self.is_owner:
            # §6.4.1: the owner sends an ADVERTISEMENT, announces and becomes master.
            return self._become_master(now, TransitionReason.ADDRESS_OWNER)
        # §6.4.1: Master_Adver_Interval = Advertisement_Interval, arm the
        # Master_Down_Timer for Master_Down_Interval, become backup.
        changed = self._move(reason)
        self._master_adver_interval_cs = self._config.interval_cs
        self._arm_master_down(now, TransitionReason.MASTER_DOWN_TIMER)
        self._master_address = None
        self._master_priority = None
        # keepalived preempt_delay counts from startup.
        self._preempt_hold_until = now + self._config.preempt_delay
        return [changed]

    def _backup_receive(
        self, advertisement: Advertisement, source: IPAddress, now: float
    ) -> list[Action]:
        """RFC 9568 §6.4.2 / RFC 3768 §6.4.2: an ADVERTISEMENT received as backup."""
        if advertisement.priority == PRIORITY_LEAVING:
            # §6.4.2: the master is leaving; Master_Down_Timer = Skew_Time.
            self._master_down_deadline = now + self.skew_time
            self._down_reason = TransitionReason.PRIORITY_ZERO_RECEIVED
            self._master_address = None
            self._master_priority = None
            return []
        if self._hastens_a_live_masters_timeout(advertisement, source, now):
            return []
        if advertisement.priority >= self._priority:
            # A legitimate master: any later lower-priority master starts a new delay.
            self._preempt_hold_until = None
        elif self._config.preempt and not self._preempt_held(now):
            # §6.4.2: Preempt_Mode and a lower priority → discard; the Master_Down_Timer
            # runs out and we take over. That pre-empts the sender only if it is the
            # master we follow (or we follow none): a lower router's advertisement while a
            # higher master lives — a yielding master's last one, keepalived's
            # ``higher_prio_send_advert`` — leaves the timer the higher master's, and its
            # running out means that master went silent.
            if self._master_address is None or source == self._master_address:
                self._down_reason = TransitionReason.PREEMPT
            return []
        # §6.4.2: Preempt_Mode False, or priority >= ours (or keepalived's preempt_delay
        # still holding): adopt the interval (v3; v2 intervals must match, RFC 3768 §7.1),
        # recompute Skew_Time and Master_Down_Interval, reset the Master_Down_Timer.
        if self._config.version != VERSION_2:
            self._master_adver_interval_cs = advertisement.interval_cs
        self._arm_master_down(now, TransitionReason.MASTER_DOWN_TIMER)
        self._master_address = source
        self._master_priority = advertisement.priority
        return []

    def _hastens_a_live_masters_timeout(
        self, advertisement: Advertisement, source: IPAddress, now: float
    ) -> bool:
        """Whether this advertisement, from a router below the master we follow, would bring the
        Master_Down deadline for that live master *earlier*: then it is ignored.

        §6.4.2 has a backup adopt the interval of whatever advertisement it hears. When a
        second router speaks while the master is alive — a lower master yielding to it
        (keepalived's ``higher_prio_send_advert``, which keepvip sends too) or the other side
        of a healing split brain — and its interval is shorter than the master's, adopting
        it made the Master_Down_Timer expire between two of the master's advertisements;
        with two such backups they took MASTER in turn forever, each one's yielding advert
        shortening the other's timer again (tests/unit/test_router_properties.py: priorities
        50 / 50 at 0.2 s and a pre-empting 100 at 1 s). The deadline a live, higher master
        set stands; an advertisement that would leave it or push it later is followed as the
        RFC says, so with one interval for all routers (a VirtualIP's case) nothing changes,
        and when the master does fall silent, the timer runs out as if it had never spoken.
        """
        deadline = self._master_down_deadline
        master, master_priority = self._master_address, self._master_priority
        if deadline is None or now >= deadline or master is None or master_priority is None:
            return False
        if source == master or advertisement.priority >= master_priority:
            return False
        version = self._config.version
        interval_cs = self._master_adver_interval_cs if version == VERSION_2 else advertisement.interval_cs
        return now + master_down_interval(version, self._priority, interval_cs) < deadline

    def _master_receive(
        self, advertisement: Advertisement, source: IPAddress, now: float
    ) -> list[Action]:
        """RFC 9568 §6.4.3 / RFC 3768 §6.4.3: an ADVERTISEMENT received as master."""
        if advertisement.priority == PRIORITY_LEAVING:
            # §6.4.3: another master is leaving: advertise at once, reset the Adver_Timer.
            # Only a master sends priority 0, so there were two (a healed split brain whose
            # loser left instead of yielding: its arbiter or check failed, it shut down).
            # While it held the VIPs it announced them, and clients may still send to it:
            # announce them again, as after a losing advertisement (issue 14, the chaos
            # slice: the loser's last announcement reached the client as the cut healed,
            # it left 30 ms later, and the client sent to its MAC for 8 s).
            # Every one is answered, unlike losing adverts (`_answered_recently`): each sets
            # every backup's Master_Down_Timer to Skew_Time (§6.4.2, 8 ms for priority 254
            # at 1 s), which only our answer puts back; a flood of them costs one advert
            # each, and the announcements stay bounded by `_reannounce`.
            return [self._send_advertisement(now), *self._reannounce(now)]
        if advertisement.priority > self._priority:
            reason = TransitionReason.HIGHER_PRIORITY_SEEN
        elif advertisement.priority == self._priority and _address_greater(
            source, self._config.primary_address
        ):
            # §6.4.3: equal priority, the sender's primary address is greater (unsigned
            # integers in network byte order).
            reason = TransitionReason.EQUAL_PRIORITY_HIGHER_ADDRESS
        else:
            # RFC 9568 §6.4.3: discard a losing ADVERTISEMENT and send one immediately,
            # to assert our state to the sender and refresh learning bridges — unless we
            # advertised within the last quarter interval: that advert already asserts us,
            # and a flood of spoofed losing adverts must not make us echo every one of them
            # onto the LAN (bench/flood.py: 14,000 answers/s before this bound).
            if self._answered_recently(now):
                return self._reannounce(now)
            return [self._send_advertisement(now), *self._reannounce(now)]
        # §6.4.3: cancel the Adver_Timer, adopt the sender's interval (v3), recompute
        # Skew_Time and Master_Down_Interval, arm the Master_Down_Timer, become backup.
        changed = self._move(reason)
        self._adver_deadline = None
        if self._config.version != VERSION_2:
            self._master_adver_interval_cs = advertisement.interval_cs
        self._arm_master_down(now, TransitionReason.MASTER_DOWN_TIMER)
        self._master_address = source
        self._master_priority = advertisement.priority
        self._preempt_hold_until = None
        # keepalived's higher_prio_send_advert (a deviation from §6.4.3, which only
        # yields): one last ADVERTISEMENT at our priority tells the winner that another
        # master existed (a healed split brain), so it re-announces the VIPs (see
        # `_reannounce`) and clients drop our MAC.
        return [
            changed,
            RemoveAddresses(self._config.addresses),
            SendAdvertisement(self._advertisement()),
        ]

    def _reannounce(self, now: float) -> list[Action]:
        """Announce the VIPs again after another master showed up (a healed split brain).

        While the split lasted, clients may have learnt the loser's MAC, and our own
        announcements are long over: keepalived's ``garp_lower_prio_repeat`` re-sends
        them for this case. At most once per Master_Down_Interval, so a peer that keeps
        advertising a lower priority cannot restart the announcements at every packet.
        """
        if self._reannounced_at is not None and now - self._reannounced_at < self.master_down_interval:
            return []
        self._reannounced_at = now
        return [Announce(self._config.addresses)]

    def _become_master(self, now: float, reason: TransitionReason) -> list[Action]:
        """RFC 9568 §6.4.1 / §6.4.2: advertise, bind the VIPs, announce them, arm Adver_Timer.

        The order is the RFC's ("Send an ADVERTISEMENT", then the gratuitous ARP or
        Neighbor Advertisement) and keepalived's (``vrrp_state_goto_master`` sends before
        ``vrrp_state_become_master`` adds the addresses): the advertisement settles the
        election on the wire, the announcement moves the clients. The VIPs are bound in
        between, so nothing tells a client to come before the node can answer it. The
        adapter publishes MASTER only once the bind is done (issue 15); if it fails, the
        router sends priority 0 and the backups take over after Skew_Time (§6.4.3).
        """
        changed = self._move(reason)
        self._master_down_deadline = None
        self._reannounced_at = now  # the Announce below is the first one
        self._master_address = None
        self._master_priority = None
        self._preempt_hold_until = None
        return [
            changed,
            self._send_advertisement(now),
            AddAddresses(self._config.addresses),
            Announce(self._config.addresses),
        ]

    def _receive_check(self, advertisement: Advertisement, source: IPAddress) -> DropReason | None:
        """RFC 9568 §7.1 / RFC 3768 §7.1 checks that need the router's configuration."""
        config = self._config
        reason = self._ours_check(advertisement, source)
        if reason is not None:
            return reason
        if advertisement.version != config.version:
            return DropReason.BAD_VERSION  # §7.1: the version this virtual router speaks
        family = config.primary_address.version
        if source.version != family or any(a.version != family for a in advertisement.addresses):
            return DropReason.BAD_ADDRESS_FAMILY  # §5.2.9: one family, the IP header's
        if source == config.primary_address:
            return DropReason.OWN_PACKET  # our own advertisement, looped back
        if self.is_owner:
            return DropReason.OWNER  # §7.1: MUST verify the local router is not the owner
        return self._v2_receive_check(advertisement) if config.version == VERSION_2 else None

    def _ours_check(self, advertisement: Advertisement, source: IPAddress) -> DropReason | None:
        """Is this advertisement for this router at all (its VRID, from one of its peers)?"""
        if advertisement.vrid != self._config.vrid:
            return DropReason.WRONG_VRID  # §7.1: VRID configured on the receiving interface
        if self._config.peers and source not in self._config.peers:
            return DropReason.FOREIGN_SENDER  # unicast: only the peers take part (keepalived)
        return None

    def _v2_receive_check(self, advertisement: Advertisement) -> DropReason | None:
        """RFC 3768 §7.1 checks that VRRPv3 dropped."""
        config = self._config
        # RFC 3768 §7.1: the Auth Type matches and its method passes.
        if advertisement.auth_type is not config.auth_type or (
            config.auth_type is AuthType.PASS
            and advertisement.auth_data.ljust(V2_AUTH_DATA_LEN, b"\0") != config.padded_auth_data
        ):
            return DropReason.AUTH_MISMATCH
        # RFC 3768 §7.1: the Adver Interval equals the locally configured one.
        if advertisement.interval_cs != config.interval_cs:
            return DropReason.INTERVAL_MISMATCH
        return None

    def _same_addresses(self, advertisement: Advertisement) -> bool:
        addresses, ours = advertisement.addresses, self._config.addresses
        # The common case, the same list in the same order, needs no sets (checked per advert).
        return addresses == ours or set(addresses) == set(ours)

    def _preempt_held(self, now: float) -> bool:
        """keepalived preempt_delay: is pre-emption still on hold at ``now``?"""
        if self._config.preempt_delay <= 0:
            return False
        if self._preempt_hold_until is None:
            self._preempt_hold_until = now + self._config.preempt_delay
        return now < self._preempt_hold_until

    def _arm_master_down(self, now: float, reason: TransitionReason) -> None:
        self._master_down_deadline = now + self.master_down_interval
        self._down_reason = reason

    def _answered_recently(self, now: float) -> bool:
        """Whether an ADVERTISEMENT left less than a quarter Advertisement_Interval ago."""
        spacing = interval_seconds(self._config.interval_cs) / 4
        return self._advertised_at is not None and 0 <= now - self._advertised_at < spacing

    def _send_advertisement(self, now: float) -> SendAdvertisement:
        """Advertise now and reset the Adver_Timer to Advertisement_Interval (§6.4.3)."""
        self._adver_deadline = now + interval_seconds(self._config.interval_cs)
        self._advertised_at = now
        return SendAdvertisement(self._advertisement())

    def leaving_advertisement(self) -> Advertisement:
        """The priority-0 ADVERTISEMENT this router sends when it stops as master (§6.4.3),
        for a process that must send it in the router's place: the speaker's parent, once
        the VRRP process was killed (keepvip.speaker.net.handover)."""
        return self._advertisement(priority=PRIORITY_LEAVING)

    def _leaving_advertisement(self) -> SendAdvertisement:
        """§6.4.3 Shutdown: an ADVERTISEMENT with Priority = 0."""
        return SendAdvertisement(self._advertisement(priority=PRIORITY_LEAVING))

    def _advertisement(self, priority: int | None = None) -> Advertisement:
        """RFC 9568 §7.2 / RFC 3768 §7.2: the fields from our configuration and state."""
        config = self._config
        password = config.auth_type is AuthType.PASS  # v2 only (RouterConfig checks)
        return Advertisement(
            version=config.version,
            vrid=config.vrid,
            priority=self._priority if priority is None else priority,
            interval_cs=config.interval_cs,
            addresses=config.addresses,
            auth_type=config.auth_type,
            # As the codec decodes it: the NUL-padded password field, or nothing.
            auth_data=config.padded_auth_data if password else b"",
        )

    def _move(self, reason: TransitionReason) -> StateChanged:
        """The one place the state changes: the table decides where ``reason`` leads."""
        old, self._state = self._state, transition(self._state, reason)
        self._repeat = None
        return StateChanged(old, self._state, reason)

    def _stop(self, reason: TransitionReason) -> list[Action]:
        """Leave a running state for FAULT or INITIALIZE: stop every timer.

        A master first sends priority 0 (RFC 9568 §6.4.3 Shutdown; keepalived does the
        same entering FAULT) so a backup takes over after Skew_Time, and releases its VIPs.
        """
        was_master = self._state is State.MASTER
        actions: list[Action] = [self._move(reason)]
        if was_master:
            actions += [self._leaving_advertisement(), RemoveAddresses(self._config.addresses)]
        self._adver_deadline = None
        self._master_down_deadline = None
        self._master_address = None
        self._master_priority = None
        self._preempt_hold_until = None
        return actions

    def _fault_transition(self) -> TransitionReason:
        reason, _ = min(self._faults, key=lambda key: (key[0].value, key[1]))
        return FAULT_TRANSITIONS[reason]


def _address_greater(left: IPAddress, right: IPAddress) -> bool:
    """RFC 9568 §6.4.3: compare primary addresses as unsigned network-order integers."""
    return left.packed > right.packed


def _check_priority(priority: int) -> None:
    if not PRIORITY_MIN_BACKUP <= priority <= PRIORITY_OWNER:
        raise ValueError(f"priority must be {PRIORITY_MIN_BACKUP}..{PRIORITY_OWNER}, not {priority}")
