"""The admission webhook's inventory: a fresh list of VirtualIPs, each parsed once per version.

The webhook checks a new VirtualIP against every other one (addresses, pinned pairs),
and it must do so from a fresh list, not kopf's index: a replica paused by peering
serves the webhook too but does not watch, so its index is empty and would admit
conflicts. The list stays; what made 500 creates O(N²) was parsing every listed
VirtualIP through the model for every create. An object's spec and status do not change
without its ``resourceVersion`` changing, so its :class:`InventoryEntry` is kept per
(uid, resourceVersion) and only new versions are parsed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from keepvip.operator.admission import InventoryEntry

Summarise = Callable[[Mapping[str, Any]], InventoryEntry | None]


class InventoryCache:
    """Inventory entries of the last listing, by uid, with the version they were parsed from."""

    def __init__(self, summarise: Summarise) -> None:
        self._summarise = summarise
        self._entries: dict[str, tuple[str, InventoryEntry | None]] = {}
        self._lock = threading.Lock()
        self.parsed = 0
        """How many objects were parsed so far (the rest came from the cache)."""

    def inventory(self, items: Iterable[Mapping[str, Any]]) -> dict[str, InventoryEntry]:
        """Name -> entry for a fresh listing; entries of objects no longer listed are dropped."""
        with self._lock:
            known = self._entries
        fresh: dict[str, tuple[str, InventoryEntry | None]] = {}
        result: dict[str, InventoryEntry] = {}
        parsed = 0
        for item in items:
            metadata = item.get("metadata", {})
            uid, version = metadata.get("uid"), metadata.get("resourceVersion")
            cached = known.get(uid) if uid else None
            if cached is not None and version and cached[0] == version:
                entry = cached[1]
            else:
                entry = self._summarise(item)
                parsed += 1
            if uid and version:
                fresh[uid] = (version, entry)
            if entry is not None:
                result[entry.name] = entry
        with self._lock:
            self._entries = fresh
            self.parsed += parsed
        return result
