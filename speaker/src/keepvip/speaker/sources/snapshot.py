"""One consistent view of the configuration, as every source delivers it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from keepvip.api.model import VirtualIP
from keepvip.speaker.desired import SecretKey


@dataclass(frozen=True)
class ConfigSnapshot:
    """The VirtualIPs, the Secrets they reference and this node's labels, at one moment."""

    virtualips: tuple[VirtualIP, ...]
    secrets: Mapping[SecretKey, bytes] = field(default_factory=dict)
    node_labels: Mapping[str, str] | None = None  # None: keep the labels given on the command line
    pending: frozenset[str] = frozenset()
    """VirtualIPs whose generation the operator has not accepted (kubernetes): not run yet."""
    invalid_status: Mapping[str, str] = field(default_factory=dict)
    """VirtualIP name -> why its status was not believed (kubernetes: it counts as not allocated)."""
