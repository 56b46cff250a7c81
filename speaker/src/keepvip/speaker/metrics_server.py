"""The speaker's /metrics HTTP server, with a cap on concurrent connections.

prometheus_client's own server starts a thread per connection without limit: anyone
who can reach the port (it listens on the node's address, reachable from the LAN)
could hold thousands of idle connections, each a thread and its stack, in a process
that must keep sending VRRP. This server admits at most :data:`MAX_CONNECTIONS` at
once — one more is closed at once — and gives each connection :data:`TIMEOUT` seconds
of socket inactivity, so idle connections (slowloris) cannot hold their slot forever.

It renders the Prometheus text format (0.0.4) itself (:func:`render_text`, what
prometheus_client's ``generate_latest`` writes for counters, gauges and histograms):
``prometheus_client.exposition`` imports ``ssl``, ``urllib.request``, WSGI and ASGI
servers and a push gateway client — 8 MiB of RSS in a speaker that only answers GET
(issue 15).

``/readyz`` answers on the same port: 200 while the speaker's configuration loop runs,
503 once it has failed (the DaemonSet's readiness probe).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from keepvip.speaker.collector import go_float

MAX_CONNECTIONS = 8
"""Scrapers (one or two Prometheus replicas, a curl) need one or two at a time."""
TIMEOUT = 5.0
"""Seconds a connection may stay silent before it is closed."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format, as prometheus_client serves it."""


def _escape(text: str, *, quote: bool) -> str:
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if quote else text


def _sample_line(sample: Sample) -> str:
    labels = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in sorted(sample.labels.items()))
    return f"{sample.name}{{{labels}}} {go_float(sample.value)}\n" if labels else (
        f"{sample.name} {go_float(sample.value)}\n")  # fmt: skip


def render_text(registry: Collector) -> bytes:
    """Every family of ``registry`` in the text format, as ``generate_latest`` writes it: a
    counter's name gets ``_total``; ``_created`` samples (prometheus_client's own counters
    have them, the speaker's do not) form a gauge family of their own after it."""
    output: list[str] = []
    for metric in registry.collect():
        name = f"{metric.name}_total" if metric.type == "counter" else metric.name
        output.append(f"# HELP {name} {_escape(metric.documentation, quote=False)}\n")
        output.append(f"# TYPE {name} {metric.type}\n")
        created = [_sample_line(s) for s in metric.samples if s.name == f"{metric.name}_created"]
        output.extend(_sample_line(s) for s in metric.samples if s.name != f"{metric.name}_created")
        if created:
            output.append(f"# HELP {metric.name}_created {_escape(metric.documentation, quote=False)}\n")
            output.append(f"# TYPE {metric.name}_created gauge\n")
            output.extend(created)
    return "".join(output).encode()


class _MetricsAndReadiness(BaseHTTPRequestHandler):
    """``/readyz`` and, at any other path, the metrics; no access log (scrapes are not news)."""

    registry: ClassVar[Collector] = CollectorRegistry()
    is_ready: ClassVar[Callable[[], bool]] = staticmethod(lambda: True)

    def do_GET(self) -> None:
        """``/readyz`` from the speaker's readiness; everything else is the exposition."""
        if self.path.split("?", 1)[0] == "/readyz":
            ready = type(self).is_ready()
            body = b"ok\n" if ready else b"configuration loop failed\n"
            self._answer(200 if ready else 503, "text/plain", body)
        else:
            self._answer(200, CONTENT_TYPE, render_text(type(self).registry))

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: probes and scrapes every few seconds would flood stderr."""


class BoundedMetricsServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` that refuses a connection beyond ``max_connections``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry,
                 max_connections: int = MAX_CONNECTIONS, timeout: float = TIMEOUT,
                 is_ready: Callable[[], bool] | None = None) -> None:  # fmt: skip
        # A subclass per server: its registry and readiness are class attributes.
        handler: type[_MetricsAndReadiness] = type(
            "MetricsHandler", (_MetricsAndReadiness,), {"registry": registry}
        )
        if is_ready is not None:
            handler.is_ready = staticmethod(is_ready)
        handler.timeout = timeout  # StreamRequestHandler: socket timeout per connection
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread when a slot is free; otherwise close the connection at once."""
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def serve_metrics(
    host: str, port: int, registry: CollectorRegistry, is_ready: Callable[[], bool] | None = None
) -> BoundedMetricsServer:
    """Start the bounded server on host:port in a daemon thread; return it."""
    server = BoundedMetricsServer((host, port), registry, is_ready=is_ready)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
