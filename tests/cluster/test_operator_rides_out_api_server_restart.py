"""The operator keeps running through a restart of the API server, a 404 window included.

Why: the chaos harness (bench/chaos_cluster.py) stopped and started kube-apiserver, the
restarted server answered the VirtualIP watch ``404 page not found`` for a moment (it
accepts connections before the apiextensions server serves the CRDs), kopf's watcher
failed with a traceback and the operator exited. A restart of the API server must cost
the operator nothing but a warning: same process, no traceback, and VirtualIPs created
afterwards are still reconciled.

How the 404 is made certain: on a quiet machine the real window is shorter than the
operator's reconnect backoff, so a plain restart rarely shows it. The operator therefore
dials the API server through :class:`LoadingWindow`, a small TLS reverse proxy (real
sockets, the API server's own serving certificate) that forwards everything and, while
its window is open, answers the VirtualIP collection's list and watch exactly as the
restarted server did: ``404 page not found`` in plain text. The test restarts the real
API server (``LocalCluster.stop_api_server``/``start_api_server``), keeps the window
open until the operator has been answered 404, then closes it, as the CRDs come up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from keepvip.localcluster import LocalCluster, Objects, wait_until
from tests.cluster.test_operator_cluster import Env, allocated, free_port, operator_env

pytestmark = pytest.mark.cluster

COLLECTION = "/apis/keepvip.io/v1alpha1/virtualips"
NOT_FOUND = "404 page not found\n"
"""kube-apiserver's catch-all answer for a path it does not serve (yet)."""
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
              "upgrade", "host"}  # fmt: skip


class LoadingWindow:
    """A TLS reverse proxy to the API server that can play "the CRDs are not served yet".

    Runs its own event loop in a thread; ``url`` is what the operator dials. While
    ``not_served`` is set, a GET of the VirtualIP collection (list or watch) is answered
    404; ``refused`` counts those answers. When the API server is down, the client's
    connection is dropped, as a stopped server's would be.
    """

    def __init__(self, cluster: LocalCluster) -> None:
        self.upstream = cluster.server_url
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.not_served = threading.Event()
        self.refused = 0
        self._serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._serving.load_cert_chain(cluster.pki.path("apiserver.crt"), cluster.pki.path("apiserver.key"))
        self._client = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="loading-window", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> LoadingWindow:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._client),
                                              timeout=aiohttp.ClientTimeout(total=None, sock_connect=2),
                                              auto_decompress=False)  # fmt: skip
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._serving).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.not_served.is_set() and request.method == "GET" and request.path == COLLECTION:
            self.refused += 1
            return web.Response(status=404, text=NOT_FOUND, content_type="text/plain")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        try:
            upstream = await self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body or None,
                # the kubernetes client sends JSON without a Content-Type: add none (not octet-stream)
                skip_auto_headers=() if "Content-Type" in request.headers else ("Content-Type",))
        except (aiohttp.ClientError, OSError):
            if request.transport is not None:
                request.transport.close()  # as a stopped API server: no answer at all
            return web.Response(status=502)
        async with upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP})  # fmt: skip
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):  # either side hung up
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            return response


@pytest.fixture
def proxied(cluster: LocalCluster, objects: Objects, tmp_path: Path) -> Iterator[tuple[Env, LoadingWindow]]:
    """The operator (the contract's roles, as in test_operator_cluster) dialling through the proxy."""
    with LoadingWindow(cluster) as window, operator_env(cluster, objects, tmp_path, server=window.url) as env:
        yield env, window


def test_a_404_from_a_restarted_api_server_is_ridden_out_and_new_virtualips_are_reconciled(
    cluster: LocalCluster, proxied: tuple[Env, LoadingWindow]
) -> None:
    env, window = proxied
    env.vip("before-restart", addresses=["198.18.0.110/24"])
    wait_until(lambda: allocated(env, "before-restart"), timeout=30, what="allocated before the restart")
    assert env.operator.process is not None
    pid = env.operator.process.pid
    log_before = env.operator.log_path.read_text(errors="replace")
    assert "Traceback" not in log_before, log_before

    cluster.stop_api_server()
    window.not_served.set()  # the restarted server accepts connections before it serves the CRDs
    cluster.start_api_server()
    wait_until(lambda: window.refused > 0, timeout=60, describe=env.operator.log_tail,
               what="the operator answered 404 by the restarted server")  # fmt: skip
    window.not_served.clear()  # the CRDs are served now

    env.vip("after-restart", addresses=["198.18.0.111/24"])
    wait_until(lambda: allocated(env, "after-restart"), timeout=45, describe=env.operator.log_tail,
               what="a VirtualIP created after the restart")  # fmt: skip
    assert env.operator.running, env.operator.log_tail()
    assert env.operator.process.pid == pid
    log = env.operator.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log
    assert "has failed" not in log, log
    assert "the API server answered 404 (404 page not found) for virtualips.v1alpha1.keepvip.io" in log, log
