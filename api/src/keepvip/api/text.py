"""How a refused value is quoted in an error message: short, whatever its size.

An error message is logged, sent back by the admission webhook and written into a
condition; echoing a 1 MB value there costs every one of them. Each refusal quotes the
value through :func:`shown`, which keeps the start and says how long the rest was.
"""

from __future__ import annotations

from keepvip.api.limits import SHOWN_VALUE_MAX


def shown(value: object) -> str:
    """``repr(value)`` cut to about :data:`SHOWN_VALUE_MAX` characters."""
    text = repr(value)
    if len(text) <= SHOWN_VALUE_MAX:
        return text
    return f"{text[: SHOWN_VALUE_MAX - 4]}… ({len(text)} characters in all)"


def bare(text: str) -> str:
    """``text`` unquoted (a name inside a path, ``Secret ns/name``), cut like :func:`shown`."""
    if len(text) <= SHOWN_VALUE_MAX:
        return text
    return f"{text[: SHOWN_VALUE_MAX - 2]}… ({len(text)} characters in all)"


# YAML/JSON kinds in the words of the file a user wrote; bool before int (True is an int).
_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "true/false"),
    (str, "a string"),
    (int, "a number"),
    (float, "a fraction"),
    (type(None), "null"),
    ((list, tuple), "a list"),
    (dict, "a mapping"),
)


def kind_of(value: object) -> str:
    """What a YAML/JSON user wrote, in their words (a bool is ``true/false``, not "an int")."""
    return next((words for kind, words in _KINDS if isinstance(value, kind)), type(value).__name__)


def not_a_whole_number(value: object) -> str:
    """The refusal of ``true``, ``"100"`` or ``1.5`` where a number is expected."""
    hint = " (write numbers without quotes)" if isinstance(value, str) else ""
    return f"must be a whole number, not {kind_of(value)}{hint}"
