"""Standalone configuration: a YAML stream of VirtualIP (and Secret) documents.

For plain Linux hosts (the keepalived use case) and for tests. The same schema as the
CRD; a ``v1`` ``Secret`` document in the stream provides what an
``authentication.secretRef`` names, so the API stays identical to the cluster's.
An invalid file is refused as a whole with the document and field named, and the
running configuration stays: a typo never takes a VIP down.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml

from keepvip.api.model import VirtualIP
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.speaker.desired import SecretKey
from keepvip.speaker.sources.snapshot import ConfigSnapshot

log = logging.getLogger("keepvip.speaker.file")

POLL_SECONDS = 1.0


class InvalidConfigFile(ValueError):
    """The file cannot be used; the message names the document and the field."""


def _secret_entries(index: int, document: dict[str, Any]) -> dict[SecretKey, bytes]:
    metadata = document.get("metadata") or {}
    name = metadata.get("name")
    namespace = metadata.get("namespace", "default")
    if not isinstance(name, str):
        raise InvalidConfigFile(f"document {index} (Secret): metadata.name is required")
    found: dict[SecretKey, bytes] = {}
    for key, value in (document.get("stringData") or {}).items():
        found[(namespace, name, key)] = str(value).encode()
    for key, value in (document.get("data") or {}).items():
        try:
            found[(namespace, name, key)] = base64.b64decode(str(value), validate=True)
        except binascii.Error as error:
            raise InvalidConfigFile(f"document {index} (Secret {name}): data.{key} is not base64") from error
    return found


def parse_config_text(text: str) -> ConfigSnapshot:
    """Parse a YAML stream; raise `InvalidConfigFile` naming the first bad document and field."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise InvalidConfigFile(f"not valid YAML: {error}") from error
    vips: list[VirtualIP] = []
    secrets: dict[SecretKey, bytes] = {}
    names: set[str] = set()
    for index, document in enumerate(documents):
        if not isinstance(document, dict):
            raise InvalidConfigFile(f"document {index}: expected a mapping, got {type(document).__name__}")
        kind = document.get("kind")
        if kind == "Secret":
            secrets.update(_secret_entries(index, document))
            continue
        if kind != "VirtualIP":
            raise InvalidConfigFile(f"document {index}: kind must be VirtualIP or Secret, not {kind!r}")
        try:
            vip = parse_virtualip(document)
        except InvalidVirtualIP as error:
            raise InvalidConfigFile(f"document {index}: {error}") from error
        if vip.name in names:
            raise InvalidConfigFile(f"document {index}: metadata.name {vip.name!r} is used twice")
        names.add(vip.name)
        vips.append(vip)
    return ConfigSnapshot(virtualips=tuple(vips), secrets=secrets)


def load_config_file(path: Path) -> ConfigSnapshot:
    """Read and parse the file; `InvalidConfigFile` also for a missing or unreadable file."""
    try:
        text = path.read_text()
    except OSError as error:
        raise InvalidConfigFile(f"cannot read {path}: {error.strerror}") from error
    return parse_config_text(text)


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


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
        self._digest = _digest(path)

    def reload(self) -> None:
        """Re-read the file now (SIGHUP)."""
        self._reload.set()

    async def _changed(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._reload.wait(), POLL_SECONDS)
                self._reload.clear()
                self._digest = _digest(self.path)
                return
            except TimeoutError:
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
