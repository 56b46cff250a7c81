"""Names of the VirtualIP API: group, version, kind, and the printer columns' sources."""

from __future__ import annotations

from typing import Final

GROUP: Final = "keepvip.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "VirtualIP"
PLURAL: Final = "virtualips"
SINGULAR: Final = "virtualip"
SHORT_NAMES: Final = ("vip",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# `multicastGroup: standard` selects the IANA groups of RFC 9568 §5.1.1.2 / §5.1.2.2.
STANDARD_MULTICAST_GROUP: Final = "standard"
