"""The one node web server: every connection is answered with the node's name.

It stands for the service a VIP fronts (the page an nginx behind keepalived would
serve), so "who holds the VIP" is asked the way a user would, by connecting to it. The
netns tests, the cluster tests, the demo and bench/ all run this one. Run inside a node's
network namespace::

    python -m keepvip.localcluster.webserver NAME PORT

It listens on every address of the node (IPv4 and IPv6, the VIP included whenever it is
there), prints ``ready`` once it listens, and runs until it is signalled. Each
connection gets a complete HTTP/1.0 ``200`` response whose body is ``NAME`` at once,
before the request is read, so a prober that measures failover sees the answer as soon
as the connection is accepted; the request is then read (briefly) before closing, so an
HTTP client's request never meets a reset. HTTP health checks of the speaker and of
keepalived accept it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

READY = "ready"
_DRAIN_SECONDS = 1.0


def argv(name: str, port: int) -> list[str]:
    """The command line that serves ``name`` on ``port`` (to run in a node namespace)."""
    return [sys.executable, "-m", "keepvip.localcluster.webserver", name, str(port)]


def response(name: str) -> bytes:
    """The one response, for any request."""
    body = f"{name}\n".encode()
    head = f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def serve(name: str, port: int) -> None:
    """Answer every connection on ``port`` with ``name`` until cancelled."""
    answer = response(name)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(answer)
            await writer.drain()
            await asyncio.wait_for(reader.read(1024), _DRAIN_SECONDS)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host=None, port=port, reuse_address=True, backlog=512)
    print(READY, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    asyncio.run(serve(args.name, args.port))


if __name__ == "__main__":
    main()
