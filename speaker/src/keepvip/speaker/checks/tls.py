"""TLS for the HTTPS check, on the ssl module's memory buffers over a plain asyncio stream.

Why not asyncio's own TLS (``open_connection(ssl=...)``): a standalone speaker imports
asyncio without ``ssl`` (:func:`keepvip.speaker.lean_imports.openssl_when_used`, 4 MiB
of RSS, issue 15), so asyncio has no TLS in that process. ``ssl.SSLObject`` does the
same handshake and records on bytes that we carry between it and the socket ourselves
— the "memory BIO" way the ssl documentation describes, and what asyncio does inside.
It works the same whether or not asyncio has TLS, so the check has one code path.

``ssl`` is read only when a session is made: a speaker without an HTTPS check never
loads OpenSSL.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")
_CHUNK = 65536


def unverified_tls_context() -> ssl.SSLContext:
    """TLS client context that accepts any certificate (Kubernetes probe semantics)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class TlsSession:
    """A TLS client session over a connected stream pair (no SNI, like the check before)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=False)
        self._plain = b""

    async def handshake(self) -> None:
        """Complete the TLS handshake; raise ``ssl.SSLError`` if the peer does not speak TLS."""
        await self._until_done(self._tls.do_handshake)

    async def write(self, data: bytes) -> None:
        """Encrypt and send ``data``."""
        await self._until_done(self._tls.write, data)

    async def readuntil(self, separator: bytes, limit: int) -> bytes:
        """Plaintext up to and including ``separator``, like ``StreamReader.readuntil``:
        ``IncompleteReadError`` at the end of the stream, ``LimitOverrunError`` past
        ``limit`` bytes without the separator."""
        while (end := self._plain.find(separator)) < 0:
            if len(self._plain) > limit:
                raise asyncio.LimitOverrunError("separator not found within the limit", len(self._plain))
            chunk = await self._read()
            if not chunk:
                raise asyncio.IncompleteReadError(self._plain, None)
            self._plain += chunk
        end += len(separator)
        line, self._plain = self._plain[:end], self._plain[end:]
        return line

    async def _read(self) -> bytes:
        """The next plaintext bytes; ``b""`` once the peer has closed."""
        try:
            return await self._until_done(self._tls.read, _CHUNK)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # closed, with or without close_notify
            return b""

    async def _until_done(self, operation: Callable[..., _T], *args: object) -> _T:
        """Run an SSLObject operation, moving records to and from the socket until it completes."""
        while True:
            try:
                result = operation(*args)
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self._reader.read(_CHUNK)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            await self._flush()
            return result

    async def _flush(self) -> None:
        """Send the records the TLS state machine has produced."""
        pending = self._outgoing.read()
        if pending:
            self._writer.write(pending)
            await self._writer.drain()
