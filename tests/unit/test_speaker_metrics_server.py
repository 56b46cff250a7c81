"""The speaker's metrics server caps concurrent connections and times idle ones out (loopback)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from keepvip.speaker.metrics_server import BoundedMetricsServer, serve_metrics


@pytest.fixture
def server() -> Iterator[BoundedMetricsServer]:
    registry = CollectorRegistry()
    Counter("keepvip_test_total", "a test counter", registry=registry).inc()
    running = serve_metrics("127.0.0.1", 0, registry)
    yield running
    running.shutdown()
    running.server_close()


def scrape(server: BoundedMetricsServer) -> str:
    host, port = server.server_address[:2]
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def scrape_when_free(server: BoundedMetricsServer, within: float) -> str:
    """Scrape, retrying while the server still turns connections away (slots all taken)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return scrape(server)
        except (ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def idle(server: BoundedMetricsServer) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=5)


def closed_by_server(connection: socket.socket, within: float) -> bool:
    connection.settimeout(within)
    try:
        return connection.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_metrics_are_served(server: BoundedMetricsServer) -> None:
    assert "keepvip_test_total 1.0" in scrape(server)


def test_a_connection_beyond_the_cap_is_closed_at_once_and_scrapes_resume_when_slots_free(
    server: BoundedMetricsServer,
) -> None:
    holders = [idle(server) for _ in range(8)]
    time.sleep(0.2)  # let the server accept them all
    extra = idle(server)
    assert closed_by_server(extra, 2.0)
    assert server.refused >= 1
    for connection in holders:
        connection.close()
    assert "keepvip_test_total" in scrape_when_free(server, within=5.0)


def test_an_idle_connection_is_closed_after_the_timeout() -> None:
    registry = CollectorRegistry()
    running = BoundedMetricsServer(("127.0.0.1", 0), registry, max_connections=1, timeout=0.3)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    try:
        connection = idle(running)
        assert closed_by_server(connection, 3.0)  # silent for 0.3 s: the slot is given back
        # The handler thread frees the slot just after it closes the socket: a scrape that
        # races it is turned away, so the free slot is shown by a scrape within a second.
        assert "python_info" not in scrape_when_free(running, within=1.0)  # an empty registry, served
    finally:
        running.shutdown()
        running.server_close()


def test_readyz_follows_the_configuration_loop_on_the_same_bounded_port() -> None:
    ready = [True]
    running = serve_metrics("127.0.0.1", 0, CollectorRegistry(), is_ready=lambda: ready[0])
    host, port = running.server_address[:2]
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=5) as reply:
            assert (reply.status, reply.read()) == (200, b"ok\n")
        ready[0] = False  # the configuration loop failed: the DaemonSet's readiness probe fails
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=5)
        assert refused.value.code == 503
        assert refused.value.read() == b"configuration loop failed\n"
    finally:
        running.shutdown()
        running.server_close()
