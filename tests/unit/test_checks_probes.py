"""Probes and the check runner against real local servers and processes (loopback, no root)."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import TypeVar

import pytest

from keepvip.api.model import HealthCheck
from keepvip.speaker.checks import (
    CheckRunner,
    CheckStatus,
    CheckTracker,
    ExecProbe,
    HttpProbe,
    ProbeResult,
    TcpProbe,
    build_probe,
    build_runner,
    effective_priority,
)
from keepvip.speaker.checks.http_probe import BadResponse, parse_status_line
from keepvip.speaker.sandbox import ScriptPolicy, resolve_script_user
from tests.sandbox_helpers import gone
from tests.unit.scripted_probe import ScriptedProbe
from tests.unit.virtual_clock import VirtualClock

LOOPBACK = IPv4Address("127.0.0.1")
AS_ROOT = ScriptPolicy(resolve_script_user("root"))
"""Root named explicitly (the test writes into its root-only tmp_path); tests/unit/test_speaker_sandbox.py
covers the unprivileged runs."""
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def free_port() -> int:
    """A loopback port nobody listens on (bound, read, closed)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def close_at_once(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def exits_within(pid: int, seconds: float) -> bool:
    """Wait (on a pidfd, no polling) until the process has exited; False if it still runs."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # exited and reaped already
    try:
        readable, _, _ = select.select([pidfd], [], [], seconds)
        return bool(readable)
    finally:
        os.close(pidfd)



# -- tcp ----------------------------------------------------------------------------


def test_tcp_passes_when_the_port_accepts() -> None:
    async def scenario() -> ProbeResult:
        server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            return await TcpProbe(LOOPBACK, port, timeout=1).run()

    result = run(scenario())
    assert result.ok
    assert result.detail == "connected"


def test_tcp_fails_fast_on_a_closed_port() -> None:
    result = run(TcpProbe(LOOPBACK, free_port(), timeout=1).run())
    assert not result.ok
    assert result.detail == "connection refused"
    assert result.duration < 1  # refused at once, not timed out


def test_tcp_times_out_when_the_listener_never_accepts() -> None:
    # A listen backlog of 0 whose accept queue is already full: the kernel drops
    # further SYNs, so a connect neither succeeds nor is refused.
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            # The first filler's handshake completes into the accept queue, filling it.
            _, writable, _ = select.select([], fillers[:1], [], 1.0)
            assert writable, "the first filler never connected"
            result = run(TcpProbe(LOOPBACK, port, timeout=0.2).run())
        finally:
            for filler in fillers:
                filler.close()
    assert not result.ok
    assert result.detail == "no connection within 200ms"
    assert result.duration >= 0.19  # it waited its timeout out (how much longer is the machine's load)


# -- http / https -------------------------------------------------------------------


@dataclass
class FakeWeb:
    """A real HTTP/1.1 server on loopback whose answer the test chooses."""

    status: int = 200
    delay: float = 0.0
    paths: list[str] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            self.paths.append(request.split(b" ")[1].decode())
            await asyncio.sleep(self.delay)
            writer.write(f"HTTP/1.1 {self.status} Whatever\r\nContent-Length: 2\r\n\r\nhi".encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def web(fake: FakeWeb, tls: ssl.SSLContext | None = None) -> AsyncIterator[FakeWeb]:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0, ssl=tls)
    fake.port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake


def http_result(fake: FakeWeb, **probe: object) -> tuple[ProbeResult, list[str]]:
    async def scenario() -> ProbeResult:
        async with web(fake):
            return await HttpProbe(LOOPBACK, fake.port, **probe).run()  # type: ignore[arg-type]

    return run(scenario()), fake.paths


def test_http_200_passes() -> None:
    result, _ = http_result(FakeWeb(status=200), timeout=1)
    assert result.ok
    assert result.detail == "status 200"


def test_http_500_fails() -> None:
    result, _ = http_result(FakeWeb(status=500), timeout=1)
    assert not result.ok
    assert result.detail == "status 500 (not expected)"


def test_http_500_passes_when_it_is_expected() -> None:
    result, _ = http_result(FakeWeb(status=500), timeout=1, expected_statuses=(200, 500))
    assert result.ok


def test_http_requests_the_configured_path() -> None:
    result, paths = http_result(FakeWeb(), timeout=1, path="/healthz?full=1")
    assert result.ok
    assert paths == ["/healthz?full=1"]


def test_http_times_out_on_a_slow_server() -> None:
    result, _ = http_result(FakeWeb(delay=2), timeout=0.2)
    assert not result.ok
    assert result.detail == "no answer within 200ms"
    assert result.duration < 2  # gave up at its timeout, before the server's 2 s answer


def test_http_fails_on_a_closed_port() -> None:
    result = run(HttpProbe(LOOPBACK, free_port(), timeout=1).run())
    assert not result.ok
    assert result.detail == "connection refused"


def test_http_fails_on_a_server_that_does_not_speak_http() -> None:
    async def scenario() -> ProbeResult:
        async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(babble, "127.0.0.1", 0)
        async with server:
            return await HttpProbe(LOOPBACK, server.sockets[0].getsockname()[1], timeout=1).run()

    result = run(scenario())
    assert not result.ok
    assert result.detail.startswith("not an HTTP status line")


@pytest.mark.parametrize(
    ("line", "status"), [(b"HTTP/1.1 200 OK\r\n", 200), (b"HTTP/1.0 404\r\n", 404), (b"HTTP/2 503 x\n", 503)]
)
def test_status_lines_are_parsed(line: bytes, status: int) -> None:
    assert parse_status_line(line) == status


@pytest.mark.parametrize("line", [b"\r\n", b"200 OK\r\n", b"HTTP/1.1 OK\r\n", b"HTTP/1.1 2000 x\r\n"])
def test_garbage_status_lines_are_refused(line: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_status_line(line)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a certificate made now by openssl (never trusted by anyone)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=keepvip-test"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_https_passes_against_a_self_signed_certificate(self_signed: ssl.SSLContext) -> None:
    fake = FakeWeb(status=204)

    async def scenario() -> ProbeResult:
        async with web(fake, tls=self_signed):
            probe = HttpProbe(
                LOOPBACK, fake.port, timeout=1, tls=True, path="/ready", expected_statuses=(204,)
            )
            return await probe.run()

    result = run(scenario())
    assert result.ok, result.detail
    assert fake.paths == ["/ready"]


def test_https_fails_against_a_plain_http_server() -> None:
    async def scenario() -> ProbeResult:
        async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(plain, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            return await HttpProbe(LOOPBACK, port, timeout=1, tls=True).run()

    result = run(scenario())
    assert not result.ok
    assert "WRONG_VERSION_NUMBER" in result.detail or "record layer" in result.detail, result.detail


# -- exec ---------------------------------------------------------------------------


def test_exec_true_passes() -> None:
    result = run(ExecProbe(["true"], timeout=1, policy=AS_ROOT).run())
    assert result.ok
    assert result.detail == "exit status 0"


def test_exec_false_fails_with_its_status() -> None:
    result = run(ExecProbe(["sh", "-c", "exit 3"], timeout=1, policy=AS_ROOT).run())
    assert not result.ok
    assert result.detail == "exit status 3"


def test_exec_of_a_missing_program_fails() -> None:
    result = run(ExecProbe(["/nonexistent/keepvip-check"], timeout=1, policy=AS_ROOT).run())
    assert not result.ok
    assert result.detail == "refused (not_found): /nonexistent/keepvip-check: no such program"


def test_exec_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    probe = ExecProbe(["sh", "-c", f"sleep 30 & echo $! > {pids}; wait"], timeout=0.3, policy=AS_ROOT)
    result = run(probe.run())
    assert not result.ok
    assert result.detail.startswith("killed after 300ms")
    assert result.duration >= 0.29
    assert probe.last_pid is not None
    grandchild = int(pids.read_text())
    assert gone(probe.last_pid)  # the child we started: killed and reaped
    assert exits_within(grandchild, 1.5)  # its own child died with the process group


# -- the model's checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "target"),
    [
        ({"tcp": {"port": 80}}, TcpProbe, "tcp 127.0.0.1:80"),
        ({"http": {"port": 8443, "scheme": "HTTPS", "path": "/z"}}, HttpProbe, "https://127.0.0.1:8443/z"),
        ({"http": {"port": 80, "host": "2001:db8::1"}}, HttpProbe, "http://[2001:db8::1]:80/"),
        ({"exec": {"command": ["true", "x"]}}, ExecProbe, "exec true x"),
    ],
)
def test_build_probe_maps_each_kind(spec: dict[str, object], kind: type, target: str) -> None:
    probe = build_probe(HealthCheck.model_validate({"name": "c", "timeout": "250ms", **spec}))
    assert isinstance(probe, kind)
    assert probe.target == target
    assert probe.timeout == 0.25  # type: ignore[attr-defined]


def test_build_probe_maps_icmp() -> None:
    probe = build_probe(HealthCheck.model_validate({"name": "c", "icmp": {"host": "198.18.0.1"}}))
    assert probe.target == "icmp 198.18.0.1"


def test_build_runner_carries_rise_fall_weight_and_interval() -> None:
    check = HealthCheck.model_validate(
        {"name": "web", "tcp": {"port": 80}, "interval": "2s", "rise": 2, "fall": 3, "weight": -20}
    )
    runner = build_runner(check)
    assert (runner.name, runner.interval) == ("web", 2.0)
    assert (runner.tracker.rise, runner.tracker.fall, runner.tracker.weight) == (2, 3, -20)
    assert check.interval == timedelta(seconds=2)


# -- the runner ---------------------------------------------------------------------


Changes = list[tuple[str, bool, str, float]]


def recorder(changes: Changes, clock: VirtualClock) -> Callable[[str, bool, str], None]:
    def on_change(name: str, passing: bool, detail: str) -> None:
        changes.append((name, passing, detail, clock.now()))

    return on_change


def test_runner_reports_failing_after_fall_failures_and_passing_after_rise() -> None:
    clock = VirtualClock()
    probe = ScriptedProbe(clock)
    changes: Changes = []

    async def scenario() -> CheckRunner:
        runner = CheckRunner("web", probe, CheckTracker(rise=2, fall=3, weight=-20), 0.05,
                             on_change=recorder(changes, clock), clock=clock)  # fmt: skip
        runner.start()
        await clock.advance(0.12)  # runs at 0, 0.05, 0.10: passing from the first
        probe.up = False
        await clock.advance(0.2)  # failures at 0.15, 0.20, 0.25 (failing: fall=3), 0.30
        probe.up = True
        await clock.advance(0.1)  # passes at 0.35, 0.40: passing at the second
        await runner.stop()
        return runner

    runner = asyncio.run(scenario())
    assert [(name, passing, at) for name, passing, _, at in changes] == [
        ("web", True, 0.0),
        ("web", False, pytest.approx(0.25)),
        ("web", True, pytest.approx(0.40)),
    ]
    assert changes[1][2] == "connection refused"
    assert runner.counters.failures == 4
    assert runner.counters.runs == 9
    assert runner.status is CheckStatus.PASSING
    assert not runner.running


def test_runner_spaces_runs_start_to_start_and_runs_first_at_once() -> None:
    clock = VirtualClock(start=10.0)
    probe = ScriptedProbe(clock, duration=0.03)

    async def scenario() -> None:
        runner = CheckRunner("c", probe, CheckTracker(1, 1, 0), 0.1, clock=clock)
        runner.start()
        await clock.advance(0.45)
        await runner.stop()

    asyncio.run(scenario())
    # Start-to-start: 5 starts in 0.45 s (end-to-start spacing, 0.13 s, would fit only 4).
    assert probe.starts == pytest.approx([10.0, 10.1, 10.2, 10.3, 10.4])


def test_runner_never_overlaps_a_run_that_outlasts_the_interval() -> None:
    clock = VirtualClock()
    probe = ScriptedProbe(clock, duration=0.08)

    async def scenario() -> None:
        runner = CheckRunner("c", probe, CheckTracker(1, 1, 0), 0.02, clock=clock)
        runner.start()
        await clock.advance(0.3)
        await runner.stop()

    asyncio.run(scenario())
    assert probe.most_active == 1
    # An overrun delays the next start to the end of the run: back to back, 80 ms apart.
    assert probe.starts == pytest.approx([0.0, 0.08, 0.16, 0.24])


def test_stopping_a_runner_kills_the_running_command() -> None:
    probe = ExecProbe(["sleep", "30"], timeout=20, policy=AS_ROOT)

    async def scenario() -> CheckRunner:
        runner = CheckRunner("slow", probe, CheckTracker(1, 1, 0), 30)
        runner.start()
        while probe.last_pid is None:
            await asyncio.sleep(0.01)
        await runner.stop()
        return runner

    runner = asyncio.run(asyncio.wait_for(scenario(), 1.5))
    assert probe.last_pid is not None
    assert gone(probe.last_pid)
    assert runner.status is CheckStatus.UNKNOWN
    assert runner.counters.runs == 0


def test_a_failing_callback_does_not_stop_the_check() -> None:
    def explode(name: str, passing: bool, detail: str) -> None:
        raise RuntimeError("callback bug")

    clock = VirtualClock()
    probe = ScriptedProbe(clock, up=False)

    async def scenario() -> CheckRunner:
        runner = CheckRunner("c", probe, CheckTracker(1, 1, 0), 0.02, on_change=explode, clock=clock)
        runner.start()
        await clock.advance(0.1)
        alive = runner.running
        await runner.stop()
        assert alive
        return runner

    runner = asyncio.run(scenario())
    assert runner.counters.runs == 6  # at 0, 0.02, ... 0.10: the callback's error stopped nothing
    assert runner.status is CheckStatus.FAILING


def test_the_runner_state_feeds_the_effective_priority() -> None:
    async def scenario() -> CheckRunner:
        runner = CheckRunner("db", ExecProbe(["false"], 1, AS_ROOT), CheckTracker(1, 1, -30), 10)
        await runner.run_once()
        return runner

    runner = asyncio.run(scenario())
    assert effective_priority(100, [runner.state]) == (70, False)
    assert runner.last_result is not None
    assert runner.last_result.detail == "exit status 1"
