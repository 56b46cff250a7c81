"""Kubernetes duration strings (``100ms``, ``2s``, ``1m30s``) as ``timedelta``.

The VirtualIP API writes every time span the way Kubernetes and Go's
``time.ParseDuration`` do, so a user never guesses the unit. Parsing is exact (integer
microseconds), which the VRRPv3 rule "10 ms steps" needs. Whatever the text, parsing
raises only ``ValueError``: a value too large for ``timedelta`` (``100000000000h``) is a
refusal that names the field, never an ``OverflowError`` escaping the webhook.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Final

from keepvip.api.limits import DURATION_TEXT_MAX
from keepvip.api.text import shown

# Go's units; "us" and "µs" are both accepted like time.ParseDuration does.
_UNIT_MICROSECONDS: Final[dict[str, int]] = {
    "ns": 0,  # below our resolution: only whole-microsecond multiples are representable
    "us": 1,
    "µs": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
DURATION_PATTERN: Final = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"
_LARGEST: Final = timedelta.max // timedelta(microseconds=1)


def parse_duration(text: str) -> timedelta:
    """Parse a Kubernetes duration string; raise ``ValueError`` naming what is allowed."""
    if not isinstance(text, str):  # pragma: no cover - pydantic hands us strings
        raise TypeError("a duration is a string such as '100ms' or '2s'")
    if text == "0":
        return timedelta(0)
    if len(text) > DURATION_TEXT_MAX or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{shown(text)} is not a duration: write a number and a unit (ms, s, m, h), e.g. '100ms', '2s'"
        )
    micros = Decimal(0)
    for number, unit in _PART.findall(text):
        value = Decimal(number)  # the pattern admits only plain decimals
        micros += value / 1000 if unit == "ns" else value * _UNIT_MICROSECONDS[unit]
    if micros != micros.to_integral_value():
        raise ValueError(f"{shown(text)} is finer than one microsecond")
    if micros > _LARGEST:
        raise ValueError(f"{shown(text)} is longer than any duration this platform can represent")
    return timedelta(microseconds=int(micros))


def format_duration(value: timedelta) -> str:
    """Render a ``timedelta`` as the shortest exact Kubernetes duration string."""
    micros = value // timedelta(microseconds=1)
    if micros == 0:
        return "0s"
    for unit, size in (("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1_000)):
        if micros % size == 0:
            return f"{micros // size}{unit}"
    return f"{micros}us"
