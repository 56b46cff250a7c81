"""``keepvip speaker``: run this node's VRRP routers from a file or from the cluster.

Both modes share one loop: a source yields configuration snapshots, the `Speaker`
converges to each. Standalone (``--config FILE``): an invalid file stops the start with
the document and field named; later, the file is re-read when it changes and on SIGHUP,
and an invalid version is refused while the running configuration stays. In a cluster
(``--kubernetes``): VirtualIPs and the Node's labels come from the API server, and this
node's ``status.nodes`` entries go back to it; the API server is never needed to keep
or move a VIP. SIGTERM and SIGINT make every master hand over with priority 0 and
release its VIPs before the process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path

from pyroute2 import AsyncIPRoute

from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.logs import configure_logging
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.links import LinkMonitor
from keepvip.speaker.notify import Notifier
from keepvip.speaker.runtime.router_runner import RouterReport
from keepvip.speaker.runtime.speaker import Speaker
from keepvip.speaker.sandbox import ScriptPolicy, insecure_reason
from keepvip.speaker.script_options import script_policy
from keepvip.speaker.sources.file import FileSource, InvalidConfigFile, load_config_file
from keepvip.speaker.sources.snapshot import ConfigSnapshot

log = logging.getLogger("keepvip.speaker")

EXIT_BAD_CONFIG = 1
STATUS_FLUSH_SECONDS = 1.0


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


async def _watch_links(speaker: Speaker) -> None:
    """Link down on a VRRP interface = FAULT for its routers; up again = rejoin."""
    with LinkMonitor() as monitor:
        async for event in monitor:
            speaker.link_changed(event.ifname, event.up)


def _log_ready(speaker: Speaker, snapshot: ConfigSnapshot) -> None:
    log.info("ready: %d VirtualIPs known, %d selecting %s", len(snapshot.virtualips),
             len(speaker.routers), speaker.node.name)  # fmt: skip


async def _follow(speaker: Speaker, snapshots: AsyncIterator[ConfigSnapshot], *, first: bool) -> None:
    """Apply every snapshot; ``first``: the first one makes the speaker ready."""
    async for snapshot in snapshots:
        await speaker.apply(snapshot)
        if first:
            first = False
            _log_ready(speaker, snapshot)


async def _serve(
    args: argparse.Namespace,
    node: NodeIdentity,
    metrics: SpeakerMetrics,
    *,
    first: ConfigSnapshot | None,
    snapshots: AsyncIterator[ConfigSnapshot],
    use_status_allocation: bool,
    on_report: Callable[[RouterReport], None] | None = None,
    on_forget: Callable[[str], None] | None = None,
    on_signal_hup: Callable[[], None] | None = None,
    before_exit: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Run the speaker until SIGTERM/SIGINT, then hand over and release every VIP."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if on_signal_hup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_signal_hup)
    async with AsyncIPRoute() as ipr:
        speaker = Speaker(
            node,
            ipr,
            metrics,
            use_status_allocation=use_status_allocation,
            notifier=Notifier(args.notify, args.scripts),
            scripts=args.scripts,
            on_report=on_report,
            on_forget=on_forget,
            garp_refresh=args.garp_refresh,
        )
        await speaker.start()
        if first is not None:
            await speaker.apply(first)
            _log_ready(speaker, first)
        background = [
            loop.create_task(_follow(speaker, snapshots, first=first is None), name="config"),
            loop.create_task(_watch_links(speaker), name="links"),
        ]
        try:
            await stop.wait()
        finally:
            for task in background:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            log.info("stopping: handing over and releasing VIPs")
            await speaker.stop()
            if before_exit is not None:
                await before_exit()
    return 0


def _metrics(args: argparse.Namespace) -> SpeakerMetrics:
    metrics = SpeakerMetrics()
    if args.metrics_address:
        metrics.serve(*parse_host_port(args.metrics_address))
    return metrics


async def run_standalone(args: argparse.Namespace) -> int:
    """Standalone: VirtualIPs from a file."""
    path = Path(args.config)
    try:
        node = NodeIdentity(args.node, parse_labels(args.node_labels))
        if args.metrics_address:
            parse_host_port(args.metrics_address)
        scripts: ScriptPolicy = args.scripts
        insecure = insecure_reason(path) if scripts.script_security else None
        if insecure is not None:
            raise ValueError(f"SECURITY VIOLATION: --config {path} refused: {insecure}")
        first = load_config_file(path)
    except (InvalidConfigFile, ValueError) as error:
        log.error("refusing to start: %s", error)
        return EXIT_BAD_CONFIG
    metrics = _metrics(args)
    metrics.config_reloads.labels("ok").inc()
    source = FileSource(path, lambda ok: metrics.config_reloads.labels("ok" if ok else "invalid").inc())
    return await _serve(
        args,
        node,
        metrics,
        first=first,
        snapshots=source.snapshots(),
        use_status_allocation=False,
        on_signal_hup=source.reload,
    )


async def run_kubernetes(args: argparse.Namespace) -> int:
    """In a cluster: VirtualIPs and Node labels watched, status written back."""
    from keepvip.speaker.sources.kubernetes import (  # noqa: PLC0415 - only this mode needs the client
        KubernetesSource,
        StatusWriter,
        api_client,
    )

    api = api_client()
    metrics = _metrics(args)
    source = KubernetesSource(args.node, api)
    writer = StatusWriter(args.node, api)
    source.start()
    writer_task = asyncio.get_running_loop().create_task(writer.run(), name="status")

    async def finish() -> None:
        source.stop()
        writer_task.cancel()
        with suppress(asyncio.CancelledError):
            await writer_task
        await writer.flush(STATUS_FLUSH_SECONDS)

    return await _serve(
        args,
        NodeIdentity(args.node, {}),
        metrics,
        first=None,
        snapshots=source.snapshots(),
        use_status_allocation=True,
        on_report=writer.report,
        on_forget=writer.forget,
        before_exit=finish,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``keepvip speaker``."""
    configure_logging(args.log_format, args.log_level)
    try:
        args.scripts = script_policy(args)
    except ValueError as error:
        log.error("refusing to start: %s", error)
        return EXIT_BAD_CONFIG
    refusal = Notifier(args.notify, args.scripts).refusal()
    if refusal is not None:
        log.error("refusing to start: --notify: %s", refusal, extra={"reason": refusal.reason.value})
        return EXIT_BAD_CONFIG
    main = run_kubernetes if args.kubernetes else run_standalone
    return asyncio.run(main(args))
