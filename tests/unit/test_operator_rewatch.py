"""keepvip.operator.rewatch: kopf's real watch stream against a real HTTP server that answers 404.

Why at this seam: the cluster tier cannot make a restarted kube-apiserver answer 404
on demand (on a quiet machine its CRDs are served before the first request gets
through), yet the chaos harness saw it do so and kopf stop the operator. Here a tiny
aiohttp server on 127.0.0.1 plays that API server byte for byte — ``404 page not found``
in plain text, as its catch-all handler answers while CRDs load — and kopf's own
``infinite_watch`` (its list, its watch request, its error classes; nothing of kopf or
of the wrapper is replaced) reads from it over a real socket. The first test pins kopf's
behaviour (the 404 escapes the watch stream), so a kopf upgrade that changes it is seen.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest
from aiohttp import web
from kopf._cogs.clients import auth, errors, watching
from kopf._cogs.structs import credentials, references

from keepvip.operator import rewatch

RESOURCE = references.Resource(group="keepvip.io", version="v1alpha1", plural="virtualips",
                               kind="VirtualIP", namespaced=False)  # fmt: skip
PATH = "/apis/keepvip.io/v1alpha1/virtualips"
NOT_FOUND = "404 page not found\n"
"""What kube-apiserver's catch-all handler answers for a path it does not serve (text/plain)."""


def virtualip(name: str, version: str) -> dict[str, Any]:
    return {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": version}}  # fmt: skip


@dataclass
class LoadingApiServer:
    """Answers ``not_served`` requests for the VirtualIPs with 404, then lists and watches them."""

    not_served: int
    requests: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") == "true"
        self.requests.append("watch" if watch else "list")
        if len(self.requests) <= self.not_served:
            return web.Response(status=404, text=NOT_FOUND, content_type="text/plain")
        if not watch:
            return web.json_response({"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIPList",
                                      "metadata": {"resourceVersion": "5"},
                                      "items": [virtualip("listed", "4")]})  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        event = {"type": "ADDED", "object": virtualip("watched", "6")}
        await response.write(json.dumps(event).encode() + b"\n")
        await asyncio.sleep(30)  # an open watch: the test closes it
        return response


@dataclass
class Served:
    server: LoadingApiServer
    url: str


async def serve(server: LoadingApiServer) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get(PATH, server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # an open watch is cut at once
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def watch(server: LoadingApiServer, want: int, timeout: float = 10.0) -> list[Any]:
    """Run kopf's infinite watch against ``server`` until ``want`` items arrived."""
    runner, url = await serve(server)
    vault = credentials.Vault({"test": credentials.ConnectionInfo(server=url)})
    auth.vault_var.set(vault)
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0.01
    seen: list[Any] = []
    stream: AsyncIterator[Any] = watching.infinite_watch(settings=settings, resource=RESOURCE, namespace=None)
    try:
        async with asyncio.timeout(timeout):
            async for item in stream:
                seen.append(item)
                if len(seen) == want:
                    break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await vault.close()
        await runner.cleanup()
    return seen


@pytest.fixture
def riding_out(monkeypatch: pytest.MonkeyPatch) -> rewatch.Backoff:
    """kopf's watching with the operator's wrapper installed (short pauses), removed afterwards."""
    backoff = rewatch.Backoff(first=0.05, limit=0.2)
    wrapped = rewatch.riding_out_404(watching.continuous_watch, backoff)
    monkeypatch.setattr(watching, "continuous_watch", wrapped)
    return backoff


def test_kopf_alone_lets_a_404_escape_its_watch_stream_and_the_watcher_would_fail() -> None:
    with pytest.raises(errors.APINotFoundError, match="404 page not found"):
        asyncio.run(watch(LoadingApiServer(not_served=1), want=3))


def test_a_404_while_crds_load_is_retried_with_a_warning_then_listing_and_watching_resume(
    riding_out: rewatch.Backoff, caplog: pytest.LogCaptureFixture
) -> None:
    server = LoadingApiServer(not_served=3)
    with caplog.at_level(logging.WARNING, logger=rewatch.__name__):
        seen = asyncio.run(watch(server, want=3))
    assert seen[0] == {"type": None, "object": virtualip("listed", "4")}
    assert seen[1] is watching.Bookmark.LISTED
    assert seen[2] == {"type": "ADDED", "object": virtualip("watched", "6")}
    assert server.requests == ["list", "list", "list", "list", "watch"]
    warnings = [r for r in caplog.records if r.name == rewatch.__name__]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 3
    assert all(r.exc_info is None for r in warnings), "one line each, no traceback"
    assert "404 page not found" in warnings[0].getMessage()
    assert "virtualips.v1alpha1.keepvip.io" in warnings[0].getMessage()
    assert [r.getMessage().rsplit(" in ", 1)[1] for r in warnings] == ["0.05 s", "0.1 s", "0.2 s"]


def test_a_404_on_the_watch_after_a_good_list_is_retried_too(riding_out: rewatch.Backoff) -> None:
    server = LoadingApiServer(not_served=0)
    original = server.handle
    refused: list[str] = []

    async def watch_refused_once(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true" and not refused:
            refused.append(request.path)
            return web.Response(status=404, text=NOT_FOUND, content_type="text/plain")
        return await original(request)

    server.handle = watch_refused_once  # type: ignore[method-assign]
    seen = asyncio.run(watch(server, want=5))
    assert refused == [PATH]
    assert [item if isinstance(item, watching.Bookmark) else item["type"] for item in seen] == [
        None, watching.Bookmark.LISTED, None, watching.Bookmark.LISTED, "ADDED",
    ]  # fmt: skip


def test_a_resource_that_stays_unserved_is_retried_at_the_longest_pause_never_raised() -> None:
    backoff = rewatch.Backoff(first=0.5, limit=10.0)
    delays = [backoff.failed(RESOURCE, None) for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    backoff.succeeded(RESOURCE, None)
    assert backoff.failed(RESOURCE, None) == 0.5
    other = references.NamespaceName("other")
    assert backoff.failed(RESOURCE, other) == 0.5, "each stream has its own backoff"


def test_install_wraps_kopfs_continuous_watch_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "continuous_watch", watching.continuous_watch)
    kopfs = watching.continuous_watch
    rewatch.install()
    installed = watching.continuous_watch
    rewatch.install()
    assert installed is not kopfs
    assert watching.continuous_watch is installed
