"""HTTP(S) GET check: passes when the status code is one of the expected ones.

A minimal HTTP/1.1 client on asyncio streams (the standard library's clients block, and
the speaker needs no HTTP dependency for one request line and one status line). Only
the status line is read: like Kubernetes' ``httpGet`` probe, the body does not matter.
HTTPS certificates are not verified (the target is normally the node's own ingress
controller on loopback, with a certificate for the public name), as in Kubernetes. TLS
runs on memory buffers (:mod:`keepvip.speaker.checks.tls`), not asyncio's TLS, which a
standalone speaker does not load; ``ssl`` is read only by an HTTPS check.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Collection
from ipaddress import IPv4Address, IPv6Address

from keepvip.speaker.checks.probe import ProbeResult, Stopwatch, describe_error, format_seconds
from keepvip.speaker.checks.tcp_probe import host_port
from keepvip.speaker.checks.tls import TlsSession, unverified_tls_context

USER_AGENT = "keepvip-check/1"
_MAX_STATUS_LINE = 8192
_READ_LIMIT = 65536  # asyncio.StreamReader's default limit, for HTTP and HTTPS alike


class BadResponse(Exception):
    """The server answered something that is not an HTTP status line."""


def parse_status_line(line: bytes) -> int:
    """``HTTP/1.1 200 OK`` → 200; raise :class:`BadResponse` for anything else."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise BadResponse(f"not an HTTP status line: {line[:60]!r}")
    return int(parts[1])


class HttpProbe:
    """``GET path`` on host:port over HTTP or HTTPS; pass on an expected status."""

    def __init__(
        self,
        host: IPv4Address | IPv6Address,
        port: int,
        timeout: float,
        *,
        path: str = "/",
        tls: bool = False,
        expected_statuses: Collection[int] = (200,),
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.path = path
        self.tls = tls
        self.expected_statuses = frozenset(expected_statuses)
        self._tls_context = unverified_tls_context() if tls else None

    @property
    def target(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host_port(self.host, self.port)}{self.path}"

    def request(self) -> bytes:
        """The request bytes: one GET, no body, connection closed after the answer."""
        return (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: {host_port(self.host, self.port)}\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii")

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        try:
            async with asyncio.timeout(self.timeout):
                status = await self._exchange()
        except TimeoutError:
            return watch.result(False, f"no answer within {format_seconds(self.timeout)}")
        except BadResponse as error:
            return watch.result(False, str(error))
        except OSError as error:  # ssl is read only when this is an HTTPS check
            tls_error = self.tls and isinstance(error, ssl.SSLError)
            return watch.result(False, str(error) if tls_error else describe_error(error))
        except asyncio.IncompleteReadError:
            return watch.result(False, "connection closed before a status line")
        ok = status in self.expected_statuses
        return watch.result(ok, f"status {status}" + ("" if ok else " (not expected)"))

    async def _exchange(self) -> int:
        reader, writer = await asyncio.open_connection(str(self.host), self.port, limit=_READ_LIMIT)
        try:
            if self._tls_context is None:
                writer.write(self.request())
                await writer.drain()
                line = await reader.readuntil(b"\n")
            else:
                session = TlsSession(reader, writer, self._tls_context)
                await session.handshake()
                await session.write(self.request())
                line = await session.readuntil(b"\n", _READ_LIMIT)
            return parse_status_line(line[:_MAX_STATUS_LINE])
        except asyncio.LimitOverrunError as error:
            raise BadResponse("status line too long") from error
        finally:
            writer.transport.abort()  # we have what we came for; never wait on a peer's close
