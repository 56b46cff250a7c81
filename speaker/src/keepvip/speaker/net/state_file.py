"""The ownership state file: which addresses this node's speaker added, kept on disk.

On kernels older than 6.3 the kernel drops ``IFA_PROTO`` (:mod:`.marks`), so an address
carries no trace of who added it and a restarted speaker could not find the VIPs a
killed one left (issue 10, "Old kernels"). There the speaker writes down every VIP it
adds, in a small JSON file on the node (a hostPath in the DaemonSet), and at start
removes what the file names (:mod:`.ownership`).

The file is written atomically: a temporary file in the same directory, flushed and
``fsync``-ed, renamed over the old one, and the directory ``fsync``-ed. A speaker killed
at any point leaves either the old list or the new one, never half of one.

The file is also untrusted input: anyone with root on the node (or a disk error) may
have changed it. :func:`load` validates every entry, names each refusal
(:class:`StateProblem`), never raises on bad content, and moves an unreadable file
aside (``.rejected``) instead of losing it.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from pathlib import Path
from typing import Any, Final

from keepvip.speaker.net.marks import IFNAMSIZ

log = logging.getLogger("keepvip.speaker.ownership")

IPInterface = IPv4Interface | IPv6Interface

FILE_NAME: Final = "owned-addresses.json"
VERSION: Final = 1
MAX_BYTES: Final = 8 * 1024 * 1024  # ~100,000 entries; anything larger is not ours


class StateProblem(enum.Enum):
    """Why (part of) a state file was refused; the ``reason`` log field."""

    UNREADABLE = "unreadable"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_VERSION = "unknown_version"
    NOT_A_LIST = "not_a_list"
    BAD_ENTRY = "bad_entry"
    BAD_INTERFACE = "bad_interface"
    BAD_ADDRESS = "bad_address"


@dataclass(frozen=True, slots=True)
class OwnedAddress:
    """One address a speaker added: the interface's name and the address with its prefix."""

    ifname: str
    address: IPInterface

    def as_json(self) -> dict[str, str]:
        return {"interface": self.ifname, "address": str(self.address)}

    def sort_key(self) -> tuple[str, int, int, int]:
        """Interface, then IPv4 before IPv6, then address and prefix (the file's stable order)."""
        return (self.ifname, self.address.version, int(self.address.ip), self.address.network.prefixlen)


def valid_ifname(name: object) -> bool:
    """What the kernel accepts as an interface name (``dev_valid_name`` in net/core/dev.c)."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        return False
    encoded = name.encode("utf-8", "replace")
    return (
        len(encoded) < IFNAMSIZ and not any(c in name for c in "/:\0") and not any(c.isspace() for c in name)
    )


def _entry(raw: object, index: int, path: Path) -> OwnedAddress | None:
    """One validated entry, or ``None`` after a log line naming the field and the reason."""
    field = f"addresses[{index}]"
    if not isinstance(raw, dict) or set(raw) != {"interface", "address"}:
        _refuse(
            path, StateProblem.BAD_ENTRY, f"{field}: not an object with exactly 'interface' and 'address'"
        )
        return None
    if not valid_ifname(raw["interface"]):
        _refuse(path, StateProblem.BAD_INTERFACE, f"{field}.interface: not an interface name")
        return None
    try:
        if not isinstance(raw["address"], str) or "/" not in raw["address"]:
            raise ValueError("not ADDRESS/PREFIX")
        address = ip_interface(raw["address"])
    except ValueError as error:
        _refuse(path, StateProblem.BAD_ADDRESS, f"{field}.address: {error}")
        return None
    return OwnedAddress(raw["interface"], address)


def _refuse(path: Path, problem: StateProblem, detail: str) -> None:
    log.error("state file %s: %s", path, detail, extra={"reason": problem.value})


def _set_aside(path: Path, problem: StateProblem, detail: str) -> list[OwnedAddress]:
    """Refuse the whole file, keeping it as ``<name>.rejected`` for whoever looks into it."""
    _refuse(path, problem, f"{detail}; moved aside to {path.name}.rejected, its addresses are not removed")
    try:
        path.replace(path.with_name(path.name + ".rejected"))
    except OSError as error:
        log.error("state file %s: could not move it aside: %s", path, error)
    return []


def load(path: Path) -> list[OwnedAddress]:
    """The valid entries of the state file at ``path`` (none if it does not exist)."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as error:
        _refuse(path, StateProblem.UNREADABLE, str(error))
        return []
    try:
        entries = _entries(data)
    except _Refused as refused:
        return _set_aside(path, refused.problem, refused.detail)
    found = (_entry(raw, index, path) for index, raw in enumerate(entries))
    return sorted({entry for entry in found if entry is not None}, key=OwnedAddress.sort_key)


class _Refused(Exception):
    def __init__(self, problem: StateProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


def _entries(data: bytes) -> list[Any]:
    """The raw ``addresses`` list of a state file's content; :class:`_Refused` if there is none."""
    if len(data) > MAX_BYTES:
        raise _Refused(StateProblem.TOO_LARGE, f"larger than {MAX_BYTES} bytes")
    try:
        document: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise _Refused(StateProblem.NOT_JSON, f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise _Refused(StateProblem.NOT_AN_OBJECT, "not a JSON object")
    if document.get("version") != VERSION:
        raise _Refused(StateProblem.UNKNOWN_VERSION, f"version: not {VERSION}")
    entries = document.get("addresses")
    if not isinstance(entries, list):
        raise _Refused(StateProblem.NOT_A_LIST, "addresses: not a list")
    return entries


def save(path: Path, entries: set[OwnedAddress]) -> None:
    """Replace the state file with ``entries``, atomically and durably (see the module doc).

    Raises ``OSError`` if the file cannot be written; the old file is then untouched.
    """
    listed = [entry.as_json() for entry in sorted(entries, key=OwnedAddress.sort_key)]
    document = {"version": VERSION, "addresses": listed}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(document, stream, separators=(",", ":"))
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash of the node
    finally:
        os.close(directory)
