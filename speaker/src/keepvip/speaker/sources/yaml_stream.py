"""Read a standalone configuration file's bytes into YAML documents, or refuse them.

PyYAML's ``safe_load_all`` is safe against code execution, not against input that
crashes or silently changes meaning: it recurses once per nesting level (a few hundred
levels of ``[[[...`` raise ``RecursionError``), raises ``ValueError`` for a date such as
``2024-13-45``, expands aliases without bound, and lets the last of two equal mapping keys
win. A configuration reload must survive any file, so this reader bounds the nesting
before composing, rejects duplicate keys, bounds the expanded size, and turns every
failure into :class:`YamlRefused` with a position a user can find.
"""

from __future__ import annotations

import codecs
from collections.abc import Hashable
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from keepvip.api.text import shown

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
"""A configuration of 1,000 VirtualIPs is well under 1 MiB."""
MAX_DEPTH: Final = 64
"""Nesting levels of mappings and lists; a VirtualIP needs about 8."""
MAX_VALUES: Final = 200_000
"""Values after alias expansion (an alias bomb of 9 levels of 9 holds 387 million)."""

_MESSAGE_MAX: Final = 600
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_UTF16_32_BOMS: Final = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class YamlRefused(ValueError):
    """The bytes are not a YAML stream this speaker reads; the message says where and why."""


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (Debian's and the wheels are): a
1,000-VirtualIP file took 0.8 s of CPU to read with the pure-Python parser, twice (the
depth check's events, then the documents), 0.06 s with libyaml -- at a speaker's start
that was a third of its CPU before the first router ran (issue 15). Same safe
constructor either way; the C parser is iterative too."""


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses a mapping with the same key twice (YAML 1.2 §3.2.1.1)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # '<<' merges may override, as YAML intends
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found the key {shown(key)} twice", key_node.start_mark,
                )  # fmt: skip
            if isinstance(key, Hashable):
                seen.add(key)
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def decode(raw: bytes) -> str:
    """The file's text: UTF-8 only, as Kubernetes manifests are."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlRefused(f"the file has {len(raw)} bytes, more than the {MAX_FILE_BYTES} read")
    if raw.startswith(_UTF16_32_BOMS):
        raise YamlRefused("the file is UTF-16 or UTF-32 text: save it as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        raise YamlRefused(f"not UTF-8 text (byte {error.start} is {byte:#04x}): a binary file?") from None


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream: PyYAML's parser is iterative, its composer is not."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    _too_deep(event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as error:
        # libyaml scans ahead and refuses past its own bound (1,000 levels) before the
        # events above reach ours: the same refusal, where the nesting started.
        if "maximum nesting depth" not in (error.problem or ""):
            raise
        _too_deep(error.context_mark or error.problem_mark, start_of_line=True)


def _too_deep(mark: Any, *, start_of_line: bool = False) -> None:
    where = ""
    if mark is not None:
        where = f" at line {mark.line + 1}" + ("" if start_of_line else f", column {mark.column + 1}")
    raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels{where}")


def _check_size(index: int, document: object) -> None:
    """Count values as the consumers will see them (aliases expanded), without recursion."""
    pending: list[object] = [document]
    count = 0
    while pending:
        value = pending.pop()
        count += 1
        if count > MAX_VALUES:
            raise YamlRefused(f"document {index}: more than {MAX_VALUES} values once aliases are expanded")
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def documents(text: str) -> list[object]:
    """Every document of the stream (``None`` for an empty one), or :class:`YamlRefused`."""
    try:
        _check_depth(text)
        loaded = list(yaml.load_all(text, Loader=_UniqueKeyLoader))  # a SafeLoader
    except (yaml.YAMLError, ValueError) as error:  # ValueError: a date like 2024-13-45, a 5000-digit int
        message = str(error)
        if len(message) > _MESSAGE_MAX:  # an unknown tag of 1 MB is quoted whole by PyYAML
            message = message[:_MESSAGE_MAX] + "…"
        raise YamlRefused(f"not valid YAML: {message}") from None
    for index, document in enumerate(loaded):
        _check_size(index, document)
    return loaded
