"""The one VIP prober: who answers a VIP, asked the way a user would (a TCP connection).

Every node runs :mod:`keepvip.localcluster.webserver`, which answers with its name; a
prober in the client namespace connects to the VIP, sends ``GET /`` and reads the name.
The netns tests and the cluster tests ask once (:func:`ask`, or ``once`` as a command in
another namespace); the demo and bench/ ask continuously (``stream``): a new connection
every ``--period`` seconds on a fixed cadence, each with its own timeout, so a connection
that hangs (a SYN sent to a node that no longer holds the VIP) never delays the next.

    python -m keepvip.localcluster.probe once 198.18.0.100 8080
    python -m keepvip.localcluster.probe stream 198.18.0.100 8080 --period 0.005 --stdin

``once`` prints the name or ``-``. ``stream`` prints ``<send time> <name>`` per answered
probe (``<send time> -`` for unanswered ones too with ``--unanswered``); the send time is
the monotonic clock, shared by every process on the machine, or with ``--clock wall``
the time of day. It stops after ``--max-seconds``, or when its standard input closes
with ``--stdin`` (a bounded loop even if its parent dies). Only addresses of the test
LANs (198.18.0.0/15, 2001:db8::/32) are accepted: anything else would leave the
machine through its uplink.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Callable, Sequence
from ipaddress import ip_address, ip_network

TEST_NETWORKS = (ip_network("198.18.0.0/15"), ip_network("2001:db8::/32"))
REQUEST = b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n"
UNANSWERED = "-"


def answer_of(data: bytes) -> str | None:
    """The node name in a web server's response, or None if it is not one."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator or not head.startswith(b"HTTP/"):
        return None
    name = body.decode(errors="replace").strip()
    return name or None


def ask(address: str, port: int, timeout: float = 0.5) -> str | None:
    """One request to ``address``: the name of the node that answered, or None.

    Called in the client's namespace (``Lan.inside``), or there as ``once``.
    """
    try:
        with socket.create_connection((address, port), timeout=timeout) as connection:
            connection.sendall(REQUEST)
            data = b""
            while chunk := connection.recv(4096):
                data += chunk
    except OSError:
        return None
    return answer_of(data)


async def ask_async(address: str, port: int, timeout: float) -> str | None:
    """:func:`ask` for an event loop: many requests in flight at once."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
            try:
                writer.write(REQUEST)
                data = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    return answer_of(data)


async def _stdin_closed() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)


async def stream(address: str, port: int, *, period: float, timeout: float, max_seconds: float,
                 clock: Callable[[], float] = time.monotonic, until_stdin_closes: bool = False,
                 unanswered: bool = False) -> None:  # fmt: skip
    """Probe every ``period`` seconds, printing one line per answer (see the module doc)."""
    loop = asyncio.get_running_loop()
    watcher = loop.create_task(_stdin_closed()) if until_stdin_closes else None
    pending: set[asyncio.Task[None]] = set()

    async def one(sent: float) -> None:
        name = await ask_async(address, port, timeout)
        if name is not None or unanswered:
            sys.stdout.write(f"{sent:.6f} {name or UNANSWERED}\n")
            sys.stdout.flush()

    start = tick = time.monotonic()
    while (watcher is None or not watcher.done()) and tick - start < max_seconds:
        task = loop.create_task(one(clock()))
        pending.add(task)
        task.add_done_callback(pending.discard)
        tick += period
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    for task in list(pending):
        task.cancel()


def once_argv(address: str, port: int, timeout: float = 0.5) -> list[str]:
    """The command line of one request (to run in the client's namespace)."""
    return [sys.executable, "-m", "keepvip.localcluster.probe", "once", address, str(port),
            "--timeout", str(timeout)]  # fmt: skip


def stream_argv(address: str, port: int, options: Sequence[str] = ()) -> list[str]:
    """The command line of a continuous prober (to run in the client's namespace)."""
    return [sys.executable, "-m", "keepvip.localcluster.probe", "stream", address, str(port), *options]


def _test_address(text: str) -> str:
    if not any(ip_address(text) in network for network in TEST_NETWORKS):
        networks = ", ".join(map(str, TEST_NETWORKS))
        raise argparse.ArgumentTypeError(f"{text} is not in the test LANs {networks}")
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    for mode in ("once", "stream"):
        sub = modes.add_parser(mode)
        sub.add_argument("target", type=_test_address)
        sub.add_argument("port", type=int)
        sub.add_argument("--timeout", type=float, default=0.5 if mode == "once" else 0.2)
    streaming = modes.choices["stream"]
    streaming.add_argument("--period", type=float, default=0.005)
    streaming.add_argument("--max-seconds", type=float, default=3600.0)
    streaming.add_argument("--clock", choices=("monotonic", "wall"), default="monotonic")
    streaming.add_argument("--stdin", action="store_true", help="stop when standard input closes")
    streaming.add_argument("--unanswered", action="store_true", help="print unanswered probes too")
    args = parser.parse_args(argv)
    if args.mode == "once":
        print(ask(args.target, args.port, args.timeout) or UNANSWERED)
        return
    clock = time.monotonic if args.clock == "monotonic" else time.time
    asyncio.run(stream(args.target, args.port, period=args.period, timeout=args.timeout,
                       max_seconds=args.max_seconds, clock=clock, until_stdin_closes=args.stdin,
                       unanswered=args.unanswered))  # fmt: skip


if __name__ == "__main__":
    main()
