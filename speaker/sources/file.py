"""Standalone configuration: a YAML stream of VirtualIP (and Secret) documents.

For plain Linux hosts (the keepalived use case) and for tests. The same schema as the
CRD; a ``v1`` ``Secret`` document in the stream provides what an
``authentication.secretRef`` names, so the API stays identical to the cluster's.
An invalid file is refused as a whole with the document and field named, and the
running configuration stays: a typo never takes a VIP down.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import yaml

from keepvip.api.model import VirtualIP
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.speaker.desired import SecretKey
from keepvip.speaker.sources.snapshot import ConfigSnapshot


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
