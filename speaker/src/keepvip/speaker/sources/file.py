"""Standalone configuration: a YAML stream of VirtualIP (and Secret) documents.

For plain Linux hosts (the keepalived use case) and for tests. The same schema as the
CRD; a ``v1`` ``Secret`` document in the stream provides what an
``authentication.secretRef`` names, so the API stays identical to the cluster's.
An invalid file is refused as a whole with the document and field named, and the
running configuration stays: a typo never takes a VIP down. Whatever the bytes, the
loader raises only :class:`InvalidConfigFile` (a binary file, UTF-16, deep nesting,
duplicate keys, a Secret of the wrong shape): :class:`FileSource` relies on that to keep
the running snapshot, and a property test mutates a valid file to hold it to it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from keepvip.api.constants import API_VERSION
from keepvip.api.model import VirtualIP
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.api.text import bare, kind_of, shown
from keepvip.speaker.desired import SecretKey
from keepvip.speaker.sources import yaml_stream
from keepvip.speaker.sources.snapshot import ConfigSnapshot

log = logging.getLogger("keepvip.speaker.file")

POLL_SECONDS = 1.0


class InvalidConfigFile(ValueError):
    """The file cannot be used; the message names the document and the field."""


# The apiVersion each kind of document must carry.
_API_VERSIONS = {"VirtualIP": API_VERSION, "Secret": "v1"}


def _refuse(index: int, subject: str, message: str) -> InvalidConfigFile:
    return InvalidConfigFile(f"document {index} ({subject}): {message}")


def _string_map(index: int, subject: str, document: dict[str, Any], field: str) -> dict[str, str]:
    """``stringData`` or ``data``: a mapping of string keys to string values, as Kubernetes has it."""
    value = document.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _refuse(index, subject, f"{field} must be a mapping of keys to strings, not {kind_of(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise _refuse(index, subject, f"{field}: the key {shown(key)} is not a non-empty string")
        if not isinstance(item, str):
            # A mapping here used to become its Python repr, and that the password.
            raise _refuse(index, subject, f"{field}.{bare(key)} must be a string, not {kind_of(item)}")
    return value


def _secret_entries(index: int, document: dict[str, Any]) -> tuple[tuple[str, str], dict[SecretKey, bytes]]:
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise _refuse(index, "Secret", f"metadata must be a mapping with a name, not {kind_of(metadata)}")
    name = metadata.get("name")
    namespace = metadata.get("namespace", "default")
    if not isinstance(name, str) or not name:
        raise _refuse(index, "Secret", "metadata.name is required")
    if not isinstance(namespace, str) or not namespace:
        raise _refuse(index, f"Secret {shown(name)}", "metadata.namespace must be a non-empty string")
    subject = f"Secret {bare(namespace)}/{bare(name)}"
    found: dict[SecretKey, bytes] = {}
    for key, value in _string_map(index, subject, document, "stringData").items():
        found[(namespace, name, key)] = value.encode()
    for key, value in _string_map(index, subject, document, "data").items():
        try:
            found[(namespace, name, key)] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _refuse(index, subject, f"data.{bare(key)} is not base64") from None
    return (namespace, name), found


def _kind(index: int, document: object) -> str:
    """The document's kind, after checking it is a mapping with the apiVersion that kind has."""
    if not isinstance(document, dict):
        raise InvalidConfigFile(f"document {index}: expected a mapping, got {kind_of(document)}")
    kind = document.get("kind")
    if not isinstance(kind, str) or kind not in _API_VERSIONS:
        raise InvalidConfigFile(f"document {index}: kind must be VirtualIP or Secret, not {shown(kind)}")
    expected = _API_VERSIONS[kind]
    api_version = document.get("apiVersion")
    if api_version is None:
        raise _refuse(index, kind, f"apiVersion is required ({expected} for a {kind})")
    if api_version != expected:
        raise _refuse(index, kind, f"apiVersion must be {expected} for a {kind}, not {shown(api_version)}")
    return kind


def _check_passwords(vips: list[tuple[int, VirtualIP]], secrets: dict[SecretKey, bytes]) -> None:
    """An empty PASS password would send no authentication at all: refuse it where it is known."""
    for index, vip in vips:
        auth = vip.spec.vrrp.authentication
        if auth is None:
            continue
        ref = auth.secret_ref
        password = secrets.get((ref.namespace, ref.name, ref.key))
        problem = None if password is None else auth.password_problem(password)
        if problem is not None:
            field = "spec.vrrp.authentication.secretRef"
            raise InvalidConfigFile(f"document {index}: VirtualIP {shown(vip.name)}: {field}: {problem}")


def parse_config_text(text: str) -> ConfigSnapshot:
    """Parse a YAML stream; raise `InvalidConfigFile` naming the first bad document and field."""
    try:
        stream = yaml_stream.documents(text)
    except yaml_stream.YamlRefused as error:
        raise InvalidConfigFile(str(error)) from None
    vips: list[tuple[int, VirtualIP]] = []
    secrets: dict[SecretKey, bytes] = {}
    secret_names: set[tuple[str, str]] = set()
    names: set[str] = set()
    for index, document in enumerate(stream):
        if document is None:
            continue
        if _kind(index, document) == "Secret":
            assert isinstance(document, dict)
            secret, entries = _secret_entries(index, document)
            if secret in secret_names:
                raise _refuse(index, "Secret", f"{bare(secret[0])}/{bare(secret[1])} is defined twice")
            secret_names.add(secret)
            secrets.update(entries)
            continue
        assert isinstance(document, dict)
        try:
            vip = parse_virtualip(document)
        except InvalidVirtualIP as error:
            raise InvalidConfigFile(f"document {index}: {error}") from None
        if vip.name in names:
            raise InvalidConfigFile(f"document {index}: metadata.name {shown(vip.name)} is used twice")
        names.add(vip.name)
        vips.append((index, vip))
    _check_passwords(vips, secrets)
    return ConfigSnapshot(virtualips=tuple(vip for _, vip in vips), secrets=secrets)


def parse_config_bytes(raw: bytes) -> ConfigSnapshot:
    """Parse the file's bytes (UTF-8 only); raise `InvalidConfigFile` for anything else."""
    try:
        text = yaml_stream.decode(raw)
    except yaml_stream.YamlRefused as error:
        raise InvalidConfigFile(str(error)) from None
    return parse_config_text(text)


def load_config_file(path: Path) -> ConfigSnapshot:
    """Read and parse the file; `InvalidConfigFile` also for a missing or unreadable file."""
    try:
        with path.open("rb") as file:
            raw = file.read(yaml_stream.MAX_FILE_BYTES + 1)
    except OSError as error:
        raise InvalidConfigFile(f"cannot read {path}: {error.strerror}") from error
    return parse_config_bytes(raw)


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


RACY_NS = 2_000_000_000
"""A file modified this recently is read at every poll even if its metadata did not
change (git's "racily clean" rule): a second write of the same size within one tick of
a coarse filesystem clock leaves the same metadata behind."""

Metadata = tuple[int, int, int, int, int]


def _metadata(path: Path) -> Metadata | None:
    """(device, inode, size, mtime, ctime): what any write or replacement of the file changes."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileSource:
    """Snapshots from a file: the first one at start, then one per valid change.

    The file is polled (editors replace files, so inotify on the inode misses edits)
    and re-read at once when :meth:`reload` is called (SIGHUP). A refused reload is
    logged and counted through ``on_result`` and yields nothing: the running
    configuration stays.
    """

    def __init__(self, path: Path, on_result: Callable[[bool], None] | None = None) -> None:
        self.path = path
        self._on_result = on_result
        self._reload = asyncio.Event()
        self._metadata = _metadata(path)
        self._digest = _digest(path)

    def reload(self) -> None:
        """Re-read the file now (SIGHUP)."""
        self._reload.set()

    async def _changed(self) -> None:
        while True:
            try:
                async with asyncio.timeout(POLL_SECONDS):  # no task per poll, as wait_for made
                    await self._reload.wait()
                self._reload.clear()
                self._metadata = _metadata(self.path)
                self._digest = _digest(self.path)
                return
            except TimeoutError:
                # Issue 15: the file (250 KiB at 1,000 VirtualIPs) was read and hashed every
                # second; now only when its metadata moved, or it is too fresh to trust them.
                metadata = _metadata(self.path)
                settled = metadata is not None and time.time_ns() - metadata[3] > RACY_NS
                if settled and metadata == self._metadata:
                    continue
                self._metadata = metadata
                current = _digest(self.path)
                if current != self._digest:
                    self._digest = current
                    return

    async def snapshots(self) -> AsyncIterator[ConfigSnapshot]:
        """Every valid version of the file after the first."""
        while True:
            await self._changed()
            try:
                snapshot = load_config_file(self.path)
            except InvalidConfigFile as error:
                log.error("configuration refused, keeping the running one: %s", error)
                if self._on_result is not None:
                    self._on_result(False)
                continue
            log.info("configuration reloaded from %s", self.path)
            if self._on_result is not None:
                self._on_result(True)
            yield snapshot
