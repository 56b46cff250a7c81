"""The speaker's /metrics HTTP server, with a cap on concurrent connections.

prometheus_client's own server starts a thread per connection without limit: anyone
who can reach the port (it listens on the node's address, reachable from the LAN)
could hold thousands of idle connections, each a thread and its stack, in a process
that must keep sending VRRP. This server serves the same exposition
(``MetricsHandler``) but admits at most :data:`MAX_CONNECTIONS` at once — one more is
closed at once — and gives each connection :data:`TIMEOUT` seconds of socket
inactivity, so idle connections (slowloris) cannot hold their slot forever.

``/readyz`` answers on the same port: 200 while the speaker's configuration loop runs,
503 once it has failed (the DaemonSet's readiness probe).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

MAX_CONNECTIONS = 8
"""Scrapers (one or two Prometheus replicas, a curl) need one or two at a time."""
TIMEOUT = 5.0
"""Seconds a connection may stay silent before it is closed."""


class _MetricsAndReadiness(MetricsHandler):
    """prometheus_client's exposition plus ``/readyz``; no access log (scrapes are not news)."""

    is_ready: ClassVar[Callable[[], bool]] = staticmethod(lambda: True)

    def do_GET(self) -> None:  # noqa: N802 - http.server dispatches on this name
        """``/readyz`` from the speaker's readiness; everything else is the exposition."""
        if self.path.split("?", 1)[0] != "/readyz":
            super().do_GET()
            return
        ready = type(self).is_ready()
        body = b"ok\n" if ready else b"configuration loop failed\n"
        self.send_response(200 if ready else 503)
        self.send_header("Content-Type", "text/plain")
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
        handler: type[_MetricsAndReadiness] = _MetricsAndReadiness.factory(registry)
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
