"""The benchmark's client: a TCP connect to the VIP every few milliseconds, one line per answer.

A new connection is opened every ``--period`` seconds on a fixed cadence, each with its
own timeout, so a connection that hangs (a SYN sent to a node that no longer holds the
VIP) never delays the next probe. Every answered probe prints
``<monotonic send time> <node name>``; the monotonic clock is shared by all processes
on the machine, so the benchmark compares these times with its own. It stops when its
standard input closes or after ``--max-seconds`` (a bounded loop even if its parent
dies). Only addresses of the test LANs are accepted as targets.

    python bench/probe_client.py 198.18.0.100 8080
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from ipaddress import ip_address, ip_network

TEST_NETWORKS = (ip_network("198.18.0.0/15"), ip_network("2001:db8::/32"))


async def _one(target: str, port: int, sent: float, timeout: float) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(target, port), timeout)
    except (OSError, TimeoutError):
        return
    try:
        data = await asyncio.wait_for(reader.read(64), timeout)
    except (OSError, TimeoutError):
        return
    finally:
        writer.close()
    name = data.decode(errors="replace").strip()
    if name:
        sys.stdout.write(f"{sent:.6f} {name}\n")
        sys.stdout.flush()


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


async def probe(target: str, port: int, period: float, timeout: float, max_seconds: float) -> None:
    """Open a connection every ``period`` seconds until stdin closes or time is up."""
    loop = asyncio.get_running_loop()
    watcher = loop.create_task(_stdin_closed())
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    tick = start
    while not watcher.done() and tick - start < max_seconds:
        task = loop.create_task(_one(target, port, time.monotonic(), timeout))
        pending.add(task)
        task.add_done_callback(pending.discard)
        tick += period
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    for task in list(pending):
        task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("port", type=int)
    parser.add_argument("--period", type=float, default=0.005)
    parser.add_argument("--timeout", type=float, default=0.2)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args()
    if not any(ip_address(args.target) in network for network in TEST_NETWORKS):
        parser.error(f"{args.target} is not in the test LANs {', '.join(map(str, TEST_NETWORKS))}")
    asyncio.run(probe(args.target, args.port, args.period, args.timeout, args.max_seconds))


if __name__ == "__main__":
    main()
