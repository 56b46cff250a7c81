"""The service a benchmark node offers: every TCP connection is answered with the node's name.

The failover benchmark's client connects to the VIP and reads who answered, so the
moment the VIP moves is visible from the client's side, as a user would see it. The
health-check case stops this server on the master (connections are then refused, so
both the client and the master's TCP check fail at once). Run inside a node namespace:

    python bench/node_server.py NAME PORT

It prints ``ready`` once it listens and runs until it is signalled.
"""

from __future__ import annotations

import argparse
import asyncio


async def serve(name: str, port: int) -> None:
    """Listen on every IPv4 address of the node (the VIP included, whenever it is here)."""
    answer = name.encode() + b"\n"

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        try:
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host="0.0.0.0", port=port, reuse_address=True, backlog=512)
    print("ready", flush=True)
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
