"""TCP connect check: passes when host:port accepts a connection within the timeout.

The same test as keepalived's ``TCP_CHECK`` and Kubernetes' ``tcpSocket`` probe. The
connection is closed as soon as it is established; nothing is sent.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv6Address

from keepvip.speaker.checks.probe import ProbeResult, Stopwatch, describe_error, format_seconds


def host_port(host: IPv4Address | IPv6Address, port: int) -> str:
    """``198.18.0.1:80`` or ``[2001:db8::1]:80``."""
    return f"[{host}]:{port}" if host.version == 6 else f"{host}:{port}"


class TcpProbe:
    """Connect to host:port; close at once."""

    def __init__(self, host: IPv4Address | IPv6Address, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    @property
    def target(self) -> str:
        return f"tcp {host_port(self.host, self.port)}"

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(str(self.host), self.port)
        except TimeoutError:
            return watch.result(False, f"no connection within {format_seconds(self.timeout)}")
        except OSError as error:
            return watch.result(False, describe_error(error))
        writer.transport.abort()  # nothing to say; do not wait for a FIN exchange
        return watch.result(True, "connected")
