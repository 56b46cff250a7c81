"""``keepvip speaker``: run this node's VRRP routers from a file or from the cluster.

Both modes share one loop: a source yields configuration snapshots, the `Speaker`
converges to each. Standalone (``--config FILE``): an invalid file stops the start with
the document and field named; later, the file is re-read when it changes and on SIGHUP,
and an invalid version is refused while the running configuration stays. In a cluster
(``--kubernetes``): VirtualIPs and the Node's labels come from the API server, and this
node's ``status.nodes`` entries go back to it; the API server is never needed to keep
or move a VIP. SIGTERM and SIGINT make every master hand over with priority 0 and
release its VIPs before the process exits.

The configuration loop is supervised (issue 9): if applying a snapshot or the source
itself raises, the failure is logged in one line, counted in
``keepvip_config_errors_total{reason}``, readiness (``/readyz``) turns false, and the
loop starts again after a pause (re-applying the last snapshot); the routers keep
running meanwhile. SIGTERM stops the speaker whatever failed before.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path

from pyroute2.iproute.linux import AsyncIPRoute

from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.logs import configure_logging
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.links import LinkMonitor
from keepvip.speaker.net.ownership import Ownership
from keepvip.speaker.notify import Notifier
from keepvip.speaker.runtime.handover_table import HandoverTable
from keepvip.speaker.runtime.speaker import NodeReport, Speaker
from keepvip.speaker.sandbox import ScriptPolicy, insecure_reason
from keepvip.speaker.script_options import script_policy
from keepvip.speaker.sources.file import FileSource, InvalidConfigFile, load_config_file
from keepvip.speaker.sources.snapshot import ConfigSnapshot

log = logging.getLogger("keepvip.speaker")

EXIT_BAD_CONFIG = 1
STATUS_FLUSH_SECONDS = 1.0
CONFIG_RESTART_SECONDS = 2.0


class ConfigError(enum.Enum):
    """Why the configuration loop failed (``keepvip_config_errors_total{reason}``)."""

    APPLY_FAILED = "apply_failed"  # Speaker.apply raised for a whole snapshot
    SOURCE_FAILED = "source_failed"  # the snapshot source (file or cluster watch) raised
    SOURCE_ENDED = "source_ended"  # the snapshot source stopped yielding


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


class _ApplyFailed(Exception):
    """Speaker.apply raised (as opposed to the source)."""


async def supervise_config(
    speaker: Speaker,
    metrics: SpeakerMetrics,
    snapshots: Callable[[], AsyncIterator[ConfigSnapshot]],
    *,
    initial: ConfigSnapshot | None = None,
    restart_after: float = CONFIG_RESTART_SECONDS,
) -> None:
    """Run the configuration loop forever; each failure is counted, unreadies and restarts it.

    ``initial`` (standalone: the file read at start) is applied first, then every
    snapshot of ``snapshots``, which makes a fresh iterator for each (re)start. After a
    failure the last snapshot seen is applied again at the restart, so nothing is lost;
    a successful apply makes the speaker ready again. The first applied snapshot logs
    "ready".
    """
    last = initial
    first = True
    failed = False

    async def applied() -> AsyncIterator[tuple[ConfigSnapshot, bool]]:
        """(snapshot, from the source): the last one again first, then the source's."""
        nonlocal last
        if last is not None:
            yield last, not failed  # at a restart, only the source's next snapshot proves it works
        async for snapshot in snapshots():
            last = snapshot
            yield snapshot, True

    while True:
        reason: ConfigError
        try:
            async for snapshot, fresh in applied():
                try:
                    await speaker.apply(snapshot)
                except Exception as error:
                    raise _ApplyFailed(f"{type(error).__name__}: {error}") from error
                if fresh and not metrics.ready:
                    metrics.set_ready(True)
                    log.info("configuration loop running again")
                if first:
                    first = False
                    _log_ready(speaker, snapshot)
            reason, detail = ConfigError.SOURCE_ENDED, "the configuration source ended"
        except _ApplyFailed as error:
            reason, detail = ConfigError.APPLY_FAILED, str(error)
        except Exception as error:
            reason, detail = ConfigError.SOURCE_FAILED, f"{type(error).__name__}: {error}"
        failed = reason is not ConfigError.APPLY_FAILED  # re-applying then proves the loop works again
        metrics.config_errors.labels(reason.value).inc()
        metrics.set_ready(False)
        log.error("configuration loop failed (%s): %s; restarting in %.0f s", reason.value, detail,
                  restart_after, extra={"reason": reason.value})  # fmt: skip
        await asyncio.sleep(restart_after)


async def _serve(
    args: argparse.Namespace,
    node: NodeIdentity,
    metrics: SpeakerMetrics,
    *,
    first: ConfigSnapshot | None,
    snapshots: Callable[[], AsyncIterator[ConfigSnapshot]],
    use_status_allocation: bool,
    on_report: Callable[[NodeReport], None] | None = None,
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
            ownership=args.ownership,
            handover=HandoverTable(getattr(args, "handover", None)),  # by keepvip.speaker.entry
        )
        await speaker.start()
        background = [
            loop.create_task(supervise_config(speaker, metrics, snapshots, initial=first), name="config"),
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
        snapshots=source.snapshots,
        use_status_allocation=False,
        on_signal_hup=source.reload,
    )


async def run_kubernetes(args: argparse.Namespace) -> int:
    """In a cluster: VirtualIPs and Node labels watched, status written back."""
    from keepvip.speaker.sources.events import EventRecorder  # noqa: PLC0415 - only this mode writes Events
    from keepvip.speaker.sources.kubernetes import (  # noqa: PLC0415 - only this mode needs the client
        KubernetesSource,
        StatusWriter,
        api_client,
    )

    api = api_client()
    metrics = _metrics(args)
    source = KubernetesSource(args.node, api, metrics)
    writer = StatusWriter(args.node, api)
    recorder = EventRecorder(args.node, api, metrics, source.uid_of)  # issue 10: Conflict, AddressBindFailed
    source.start()
    tasks = [asyncio.get_running_loop().create_task(writer.run(), name="status"),
             asyncio.get_running_loop().create_task(recorder.run(), name="events")]  # fmt: skip

    def report(node_report: NodeReport) -> None:
        writer.report(node_report)
        recorder.observe(node_report)

    def forget(virtualip: str) -> None:
        writer.forget(virtualip)
        recorder.forget(virtualip)

    async def finish() -> None:
        source.stop()
        for task in tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await writer.flush(STATUS_FLUSH_SECONDS)
        await recorder.flush(STATUS_FLUSH_SECONDS)

    return await _serve(
        args,
        NodeIdentity(args.node, {}),
        metrics,
        first=None,
        snapshots=source.snapshots,
        use_status_allocation=True,
        on_report=report,
        on_forget=forget,
        before_exit=finish,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``keepvip speaker``."""
    configure_logging(args.log_format, args.log_level)
    for ifname, leftover in getattr(args, "swept", ()):  # by keepvip.speaker.entry, before the imports
        log.warning("removed %s from %s, left behind by a previous run", leftover, ifname)
    try:
        args.scripts = script_policy(args)
    except ValueError as error:
        log.error("refusing to start: %s", error)
        return EXIT_BAD_CONFIG
    refusal = Notifier(args.notify, args.scripts).refusal()
    if refusal is not None:
        log.error("refusing to start: --notify: %s", refusal, extra={"reason": refusal.reason.value})
        return EXIT_BAD_CONFIG
    args.ownership = Ownership.choose(args.ownership_marker, Path(args.state_dir))
    refused = _state_dir_refusal(args.ownership)
    if refused is not None:
        log.error("refusing to start: --state-dir: %s", refused, extra={"reason": "state_dir_unusable"})
        return EXIT_BAD_CONFIG
    main = run_kubernetes if args.kubernetes else run_standalone
    return asyncio.run(main(args))


def _state_dir_refusal(ownership: Ownership) -> str | None:
    """Why the state file cannot be written where it must be (``None``: it can, or need not)."""
    if not ownership.needs_state_dir:
        return None
    directory = ownership.path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"{directory}: {error.strerror or error}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory}: not writable"
    return None
