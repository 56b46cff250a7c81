"""``keepvip speaker``: run this node's VRRP routers from a file or from the cluster.

Standalone (``--config FILE``): the file is read at start (an invalid file stops the
start with the document and field named), then re-read when it changes and on SIGHUP;
an invalid reload is refused and the running configuration stays. SIGTERM and SIGINT
make every master hand over with priority 0 and release its VIPs before the process
exits (well within a second).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import signal
from contextlib import suppress
from pathlib import Path

from pyroute2 import AsyncIPRoute

from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.logs import configure_logging
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.links import LinkMonitor
from keepvip.speaker.notify import Notifier
from keepvip.speaker.runtime.speaker import Speaker
from keepvip.speaker.sources.file import InvalidConfigFile, load_config_file

log = logging.getLogger("keepvip.speaker")

FILE_POLL_SECONDS = 1.0
EXIT_BAD_CONFIG = 1
EXIT_NOT_AVAILABLE = 2


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` → a label mapping; raise ValueError naming the bad item."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--node-labels: {item!r} is not key=value")
        labels[key] = value
    return labels


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--metrics-address: {text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - metrics are meant to be scraped


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


async def _watch_file(path: Path, reload: asyncio.Event) -> None:
    """Ask for a reload when the file's content changes (editors replace files: poll)."""
    last = _digest(path)
    while True:
        await asyncio.sleep(FILE_POLL_SECONDS)
        current = _digest(path)
        if current != last:
            last = current
            reload.set()


async def _watch_links(speaker: Speaker) -> None:
    """Link down on a VRRP interface = FAULT for its routers; up again = rejoin."""
    with LinkMonitor() as monitor:
        async for event in monitor:
            speaker.link_changed(event.ifname, event.up)


async def run_standalone(args: argparse.Namespace) -> int:
    """The standalone speaker's main loop."""
    path = Path(args.config)
    try:
        labels = parse_labels(args.node_labels)
        metrics_address = parse_host_port(args.metrics_address) if args.metrics_address else None
        snapshot = load_config_file(path)
    except (InvalidConfigFile, ValueError) as error:
        log.error("refusing to start: %s", error)
        return EXIT_BAD_CONFIG
    metrics = SpeakerMetrics()
    metrics.config_reloads.labels("ok").inc()
    if metrics_address is not None:
        metrics.serve(*metrics_address)
    loop = asyncio.get_running_loop()
    stop, reload = asyncio.Event(), asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    async with AsyncIPRoute() as ipr:
        speaker = Speaker(
            NodeIdentity(args.node, labels),
            ipr,
            metrics,
            use_status_allocation=False,
            notifier=Notifier(args.notify),
        )
        await speaker.start()
        await speaker.apply(snapshot)
        background = [
            loop.create_task(_watch_file(path, reload)),
            loop.create_task(_watch_links(speaker)),
        ]
        try:
            while not stop.is_set():
                waiters = [loop.create_task(stop.wait()), loop.create_task(reload.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                if reload.is_set() and not stop.is_set():
                    reload.clear()
                    await _reload(speaker, path, metrics)
        finally:
            for task in background:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            log.info("stopping: handing over and releasing VIPs")
            await speaker.stop()
    return 0


async def _reload(speaker: Speaker, path: Path, metrics: SpeakerMetrics) -> None:
    try:
        snapshot = load_config_file(path)
    except InvalidConfigFile as error:
        metrics.config_reloads.labels("invalid").inc()
        log.error("configuration refused, keeping the running one: %s", error)
        return
    metrics.config_reloads.labels("ok").inc()
    log.info("configuration reloaded from %s", path)
    await speaker.apply(snapshot)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``keepvip speaker``."""
    configure_logging(args.log_format, args.log_level)
    if args.kubernetes:
        try:
            from keepvip.speaker.sources.kubernetes import run_kubernetes  # noqa: PLC0415
        except ModuleNotFoundError:
            log.error("keepvip speaker --kubernetes: not available yet in this version")
            return EXIT_NOT_AVAILABLE
        return asyncio.run(run_kubernetes(args))
    return asyncio.run(run_standalone(args))
