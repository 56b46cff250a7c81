"""The arbiter: a split-brain guard that pings the gateway from the VRRP interface.

Two nodes that stop hearing each other's advertisements both become master; the one
that has also lost its gateway is the one cut off, and it must give up the VIP (DESIGN.md:
a lost arbiter puts the router in FAULT). The arbiter is therefore a check with weight
0: :class:`ArbiterRunner` is a :class:`~keepvip.speaker.checks.runner.CheckRunner`
named ``arbiter`` whose probe resolves the gateway ('auto': the default route's next hop
on the interface, looked up on every run) and sends it one ICMP echo bound to the
interface. A node without a default route on that interface cannot reach its gateway,
so that run fails too (with the reason in the detail).
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from keepvip.api.model import Arbiter
from keepvip.speaker.checks.gateway import NoDefaultGateway, default_gateway
from keepvip.speaker.checks.icmp_probe import IcmpProbe
from keepvip.speaker.checks.probe import ProbeResult, Stopwatch
from keepvip.speaker.checks.runner import CheckRunner
from keepvip.speaker.checks.tracker import CheckStatus, CheckTracker

ARBITER_CHECK_NAME = "arbiter"

OnArbiterChange = Callable[[bool, str], None]
"""``on_change(reachable, detail)``: the gateway became reachable or was lost."""


class GatewayProbe:
    """Ping the configured gateway, or the default gateway of ``interface`` for 'auto'."""

    def __init__(
        self, gateway: IPv4Address | IPv6Address | None, interface: str, family: int, timeout: float
    ) -> None:
        self.gateway = gateway
        self.interface = interface
        self.family = family
        self.timeout = timeout
        self.last_gateway: IPv4Address | IPv6Address | None = gateway
        self._icmp: IcmpProbe | None = None

    @property
    def target(self) -> str:
        gateway = self.gateway if self.gateway is not None else f"auto ({self.last_gateway or 'unresolved'})"
        return f"arbiter gateway {gateway} on {self.interface}"

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        gateway = self.gateway
        if gateway is None:
            try:
                gateway = await default_gateway(self.interface, self.family)
            except (NoDefaultGateway, OSError) as error:
                return watch.result(False, str(error))
        self.last_gateway = gateway
        if self._icmp is None or self._icmp.host != gateway:
            self._icmp = IcmpProbe(gateway, self.timeout, interface=self.interface)
        result = await self._icmp.run()
        return watch.result(result.ok, f"gateway {gateway}: {result.detail}")


class ArbiterRunner(CheckRunner):
    """Runs the arbiter; ``on_change(reachable, detail)`` reports reachable / lost."""

    def __init__(
        self,
        arbiter: Arbiter,
        interface: str,
        family: int,
        on_change: OnArbiterChange | None = None,
    ) -> None:
        self.on_reachability = on_change
        probe = GatewayProbe(arbiter.gateway_address(), interface, family, arbiter.timeout.total_seconds())
        super().__init__(
            ARBITER_CHECK_NAME,
            probe,
            CheckTracker(rise=arbiter.rise, fall=arbiter.fall, weight=0),
            arbiter.interval.total_seconds(),
            on_change=self._report,
        )
        self.gateway_probe = probe

    @property
    def reachable(self) -> bool | None:
        """True reachable, False lost, None before the first probe."""
        if self.status is CheckStatus.UNKNOWN:
            return None
        return self.status is CheckStatus.PASSING

    def _report(self, _name: str, passing: bool, detail: str) -> None:
        if self.on_reachability is not None:
            self.on_reachability(passing, detail)
