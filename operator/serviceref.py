"""Publishing a VirtualIP's addresses in a Service's ``status.loadBalancer.ingress`` (pure).

So that ingress controllers and external-dns, which read a LoadBalancer Service's
status, see the VIP. Entries written by others (another controller, another
VirtualIP) are kept; only this VirtualIP's addresses are added or removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from keepvip.inet import IPAddress


def desired_ingress(
    current: Sequence[Mapping[str, Any]],
    add: Iterable[IPAddress] = (),
    remove: Iterable[IPAddress] = (),
) -> list[dict[str, Any]]:
    """The ingress list with ``add`` present (once each) and ``remove`` gone."""
    dropping = {str(address) for address in remove}
    result = [dict(entry) for entry in current if entry.get("ip") not in dropping]
    present = {entry.get("ip") for entry in result}
    for address in add:
        text = str(address)
        if text not in present:
            result.append({"ip": text})
            present.add(text)
    return result
