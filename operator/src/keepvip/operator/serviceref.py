"""Publishing a VirtualIP's addresses in a Service's ``status.loadBalancer.ingress`` (pure).

So that ingress controllers and external-dns, which read a LoadBalancer Service's
status, see the VIP. Entries written by others (another controller, another
VirtualIP) are kept; only this VirtualIP's addresses are added or removed.

Only a Service that opts in is written: it must carry the annotation
``keepvip.io/virtualip: <VirtualIP name>``. Without that, anyone allowed to create a
VirtualIP could make the operator (which may patch every Service's status) publish an
address in any Service — a confused deputy of the CVE-2020-8554 class, where
``status.loadBalancer.ingress`` steers other components' traffic. The Service's owner
consents by annotating it; the VirtualIP's author cannot.

What became of the reference is the VirtualIP's ``ServicePublished`` condition
(:class:`ServiceOutcome`): True once the addresses are in the Service's status, False
with a named :class:`ServiceRefReason` and a message naming the Service and the
annotation while nothing may be written. The spec stage retries every
``RETRY_SECONDS``, so the condition clears soon after the Service's owner opts in.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from keepvip.inet import IPAddress

OPT_IN_ANNOTATION: Final = "keepvip.io/virtualip"
RETRY_SECONDS: Final = 15.0


class ServiceRefReason(enum.StrEnum):
    """The ``ServicePublished`` condition's reason (and the Warning Event's, when False)."""

    PUBLISHED = "Published"  # the addresses are in status.loadBalancer.ingress
    NOT_OPTED_IN = "ServiceNotOptedIn"  # the Service lacks keepvip.io/virtualip: <name>: no write
    NOT_FOUND = "ServiceNotFound"  # no such Service (yet): no write


@dataclass(frozen=True)
class ServiceOutcome:
    """What the spec stage did with ``spec.serviceRef`` (None when there is none)."""

    reason: ServiceRefReason
    message: str

    @property
    def published(self) -> bool:
        """Whether the addresses were written to the Service."""
        return self.reason is ServiceRefReason.PUBLISHED


class NotOptedIn(Exception):
    """The Service does not name this VirtualIP in its opt-in annotation: nothing is written."""

    def __init__(self, namespace: str, name: str, virtualip: str, found: str | None) -> None:
        self.reason = ServiceRefReason.NOT_OPTED_IN
        has = f"it has {found!r}" if found is not None else "it has none"
        super().__init__(
            f"spec.serviceRef: Service {namespace}/{name} does not opt in: it needs the annotation "
            f"{OPT_IN_ANNOTATION}: {virtualip} ({has})"
        )


def check_opt_in(service: Mapping[str, Any], virtualip: str) -> None:
    """Raise :class:`NotOptedIn` unless ``service`` (a Service as a dict) names ``virtualip``."""
    metadata = service.get("metadata") or {}
    found = (metadata.get("annotations") or {}).get(OPT_IN_ANNOTATION)
    if found != virtualip:
        raise NotOptedIn(metadata.get("namespace", ""), metadata.get("name", ""), virtualip, found)


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
