"""The edge: raw dictionaries in, typed VirtualIPs out, or errors that name the field.

Every consumer (admission webhook, operator, Kubernetes-watching speaker, standalone
speaker, ``kubectl``-style tooling) goes through :func:`parse_virtualip`, so a user sees
the same message for the same mistake wherever it is caught.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from keepvip.api.model import VirtualIP
from keepvip.api.text import bare, kind_of, not_a_whole_number, shown

_FIELD_IN_MESSAGE = re.compile(r"^(?:Value error, )?@(?P<path>[^@]+)@ (?P<message>.*)$", re.DOTALL)


@dataclass(frozen=True)
class FieldError:
    """One rejected field: its dotted path (camelCase, with [index]) and what is allowed."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidVirtualIP(ValueError):
    """A VirtualIP document that does not satisfy the API; ``errors`` names every field."""

    def __init__(self, name: str | None, errors: list[FieldError]) -> None:
        self.name = name
        self.errors = errors
        subject = f"VirtualIP {shown(name)}" if name else "VirtualIP"
        super().__init__(f"{subject} is invalid: " + "; ".join(str(e) for e in errors))


def _render_location(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:  # an unknown field's name is the user's text: cut like a value
            path += f".{bare(part)}" if path else bare(part)
    return path


def _join(base: str, relative: str) -> str:
    if not base:
        return relative
    return f"{base}{relative}" if relative.startswith("[") else f"{base}.{relative}"


def _plain(item: Any) -> str:
    """pydantic's message for a wrong type or size, said as the rule that was broken."""
    kind, value = item["type"], item.get("input")
    plain = {
        "int_type": not_a_whole_number(value),
        "int_parsing": not_a_whole_number(value),
        "int_from_float": "must be a whole number, not a fraction",
        "bool_type": f"must be true or false, not {kind_of(value)}",
        "bool_parsing": f"must be true or false, not {kind_of(value)}",
        "string_type": f"must be a string, not {kind_of(value)}",
        "tuple_type": f"must be a list, not {kind_of(value)}",
        "list_type": f"must be a list, not {kind_of(value)}",
        "dict_type": f"must be a mapping, not {kind_of(value)}",
        "model_type": f"must be a mapping, not {kind_of(value)}",
        "model_attributes_type": f"must be a mapping, not {kind_of(value)}",
        "too_short": f"needs at least {item.get('ctx', {}).get('min_length')} item(s)",
    }
    return plain.get(kind, str(item["msg"]))


def field_errors(error: ValidationError) -> list[FieldError]:
    """Translate pydantic's errors into field paths a Kubernetes user recognises."""
    result: list[FieldError] = []
    for item in error.errors(include_url=False):
        # Drop pydantic's union/branch tags (e.g. 'function-after[...]'), keep real fields.
        location = tuple(
            part for part in item["loc"] if isinstance(part, int) or not str(part).startswith("function-")
        )
        path = _render_location(location)
        message = _plain(item)
        matched = _FIELD_IN_MESSAGE.match(message)
        if matched:
            path = _join(path, matched["path"])
            message = matched["message"]
        elif item["type"] == "extra_forbidden":
            message = "unknown field"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        result.append(FieldError(path or "(document)", message))
    # A list whose only item was refused is also "too short"; the item's error says why.
    return [
        e
        for e in result
        if not (
            e.message.startswith("needs at least") and any(o.path.startswith(e.path + "[") for o in result)
        )
    ]


def parse_virtualip(body: Mapping[str, Any]) -> VirtualIP:
    """Parse one VirtualIP document; raise :class:`InvalidVirtualIP` naming each bad field."""
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    try:
        return VirtualIP.model_validate(dict(body))
    except ValidationError as error:
        raise InvalidVirtualIP(name if isinstance(name, str) else None, field_errors(error)) from None
