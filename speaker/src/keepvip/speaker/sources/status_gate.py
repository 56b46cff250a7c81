"""Status is not a control channel: what a speaker may take from a VirtualIP's status.

Every speaker shares one ServiceAccount that may patch the status of every VirtualIP,
so status is only as trustworthy as the least trustworthy node (issue 10). Two rules
keep a forged or broken status from configuring anything:

* Every field read from status passes the spec's own rules: ``status.vrid`` is an
  integer (not a boolean, not a string) in 1..255, ``status.multicastGroup`` is a group
  the spec would accept for the VirtualIP's family. The VirtualIP is re-validated with
  the status values in place of ``spec.vrrp.vrid`` / ``spec.vrrp.multicastGroup``, so
  the two can never disagree. An invalid field means "not allocated": it is logged and
  counted (``keepvip_status_invalid_total{reason}``), never raised.
* A speaker acts only on a generation the operator has accepted: the ``Allocated``
  condition is True *for that generation* (its ``observedGeneration`` equals
  ``metadata.generation``). A spec that slipped past a fail-open webhook and pins
  another VirtualIP's (group, VRID) is refused by the operator and so never runs.
  Fail static: until the operator accepts a new generation (or while status is
  broken), the last accepted one keeps running.
"""

from __future__ import annotations

import copy
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from keepvip.api.model import VirtualIP, VirtualIPStatus
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip

log = logging.getLogger("keepvip.speaker.kubernetes")

ALLOCATED = "Allocated"
"""The condition type the operator sets when it accepted a generation (operator.status.ConditionType)."""


class StatusProblem(enum.Enum):
    """Why a status field was not believed (log field and metric label)."""

    INVALID_VRID = "invalid_vrid"
    INVALID_MULTICAST_GROUP = "invalid_multicast_group"
    INVALID_STATUS = "invalid_status"  # status (or its conditions) is not an object of the API's shape


@dataclass(frozen=True)
class Refusal:
    """A status field that does not satisfy the spec's rules."""

    problem: StatusProblem
    message: str


@dataclass(frozen=True)
class Reading:
    """What one VirtualIP body's status says, once checked."""

    vip: VirtualIP  # spec and metadata; status reduced to the checked vrid and group
    accepted: bool  # the operator's Allocated condition is True for this generation
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class Selection:
    """What a speaker may act on, from one list of VirtualIPs."""

    virtualips: tuple[VirtualIP, ...]
    pending: frozenset[str]  # not accepted, never accepted before: the planner must wait
    invalid_status: dict[str, str]  # name -> why its status was not believed


def _quoted(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _check_vrid(raw: object, body: Mapping[str, Any]) -> Refusal | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        return Refusal(StatusProblem.INVALID_VRID, f"status.vrid: {_quoted(raw)} is not an integer")
    if _with_vrrp(body, vrid=raw) is None:
        return Refusal(StatusProblem.INVALID_VRID, f"status.vrid: {raw} is outside 1..255")
    return None


def _group_shape(raw: object) -> str | None:
    """What is wrong with ``raw`` as a group, before the spec's rules are asked; None: nothing."""
    if not isinstance(raw, str):
        return f"{_quoted(raw)} is not text"
    if "%" in raw:
        return f"{_quoted(raw)} has a zone index (it matches no packet)"
    if raw == "standard":
        return None
    try:
        group = ip_address(raw)
    except ValueError:
        return f"{_quoted(raw)} is not an IP address"
    return None if group.is_multicast else f"{_quoted(raw)} is not a multicast group"


def _check_group(raw: object, body: Mapping[str, Any]) -> Refusal | None:
    if raw is None:
        return None
    problem = StatusProblem.INVALID_MULTICAST_GROUP
    shape = _group_shape(raw)
    if shape is not None:
        return Refusal(problem, f"status.multicastGroup: {shape}")
    try:
        _with_vrrp(body, multicastGroup=raw, strict=True)
    except InvalidVirtualIP as error:
        detail = "; ".join(e.message for e in error.errors)
        return Refusal(problem, f"status.multicastGroup: {detail[:200]}")
    return None


def _with_vrrp(body: Mapping[str, Any], *, strict: bool = False, **vrrp: object) -> VirtualIP | None:
    """The VirtualIP with ``vrrp`` fields put into its spec; None (or raise, ``strict``) if invalid."""
    changed = copy.deepcopy(dict(body))
    changed.pop("status", None)
    spec = changed.setdefault("spec", {})
    spec["vrrp"] = {**(spec.get("vrrp") or {}), **vrrp}
    try:
        return parse_virtualip(changed)
    except InvalidVirtualIP:
        if strict:
            raise
        return None


def _accepted(status: Mapping[str, Any], generation: int | None) -> bool:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return False
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == ALLOCATED:
            observed = condition.get("observedGeneration")
            return condition.get("status") == "True" and observed == generation
    return False


def read(body: Mapping[str, Any]) -> Reading:
    """Check ``body``'s status against its spec; raises only ``InvalidVirtualIP`` for the spec itself."""
    without_status = {key: value for key, value in body.items() if key != "status"}
    vip = parse_virtualip(without_status)
    status = body.get("status")
    if status is None:
        return Reading(vip, accepted=False)
    if not isinstance(status, Mapping):
        return Reading(vip, False, (Refusal(StatusProblem.INVALID_STATUS, "status: not an object"),))
    checked_fields = (_check_vrid(status.get("vrid"), body), _check_group(status.get("multicastGroup"), body))
    refusals = [refusal for refusal in checked_fields if refusal is not None]
    if refusals:
        return Reading(vip, accepted=False, refusals=tuple(refusals))
    vrid, group = status.get("vrid"), status.get("multicastGroup")
    checked = VirtualIPStatus(vrid=vrid, multicast_group=group) if vrid is not None else None
    accepted = _accepted(status, vip.metadata.generation)
    return Reading(vip.model_copy(update={"status": checked}), accepted=accepted)


class AcceptedGenerations:
    """The VirtualIPs a speaker may act on: accepted generations, and the last one while none is.

    ``on_refused(refusal)`` is called once per new refusal (log and count there).
    """

    def __init__(self, on_refused: Callable[[Refusal], None] | None = None) -> None:
        self._last: dict[str, VirtualIP] = {}
        self._on_refused = on_refused
        self._reported: dict[str, tuple[Refusal, ...]] = {}

    def select(self, bodies: Mapping[str, Mapping[str, Any]]) -> Selection:
        """The VirtualIPs to run, those to wait for, and why some statuses were refused.

        A VirtualIP whose generation is not accepted (yet) and that was never accepted is
        passed on as pending, without allocation (the planner waits for the operator, even
        for a pinned VRID); one that was accepted before keeps its last accepted version.
        """
        chosen: list[VirtualIP] = []
        pending: set[str] = set()
        invalid: dict[str, str] = {}
        for name in [n for n in self._last if n not in bodies]:
            del self._last[name]
        for name in [n for n in self._reported if n not in bodies]:
            del self._reported[name]
        for name, body in sorted(bodies.items()):
            try:
                reading = read(body)
            except InvalidVirtualIP:
                # The spec itself is invalid (the caller logs that): keep the last accepted one.
                if name in self._last:
                    chosen.append(self._last[name])
                continue
            self._report(name, reading.refusals)
            if reading.accepted:
                self._last[name] = reading.vip
                chosen.append(reading.vip)
            elif name in self._last:
                chosen.append(self._last[name])  # fail static: the last accepted generation
            else:
                chosen.append(reading.vip.model_copy(update={"status": None}))
                pending.add(name)
                if reading.refusals:
                    invalid[name] = "; ".join(r.message for r in reading.refusals)
        return Selection(tuple(chosen), frozenset(pending), invalid)

    def _report(self, name: str, refusals: tuple[Refusal, ...]) -> None:
        if self._reported.get(name, ()) == refusals:
            return
        self._reported[name] = refusals
        for refusal in refusals:
            log.warning("not believing the status of %s: %s", name, refusal.message,
                        extra={"virtualip": name, "reason": refusal.problem.value})  # fmt: skip
            if self._on_refused is not None:
                self._on_refused(refusal)
