"""The one node web server and the one VIP prober of the development tools, on a LAN.

Every tier (netns, cluster, the demo, bench/) asks "who holds the VIP" with these two:
:mod:`keepvip.localcluster.webserver` on each node, :mod:`keepvip.localcluster.probe`
in the client namespace.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from keepvip.localcluster import probe, webserver
from keepvip.localcluster.lan import Lan

PORT = 8080

pytestmark = pytest.mark.timeout(60)


def serve(lan: Lan, node: str) -> subprocess.Popen[bytes]:
    process = lan.spawn(node, webserver.argv(node, PORT), stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == webserver.READY.encode()
    return process


def test_the_prober_names_the_node_that_answers_over_ipv4_and_ipv6(lan: Lan) -> None:
    serve(lan, "node1")
    node1 = lan.node("node1")
    with lan.inside("client"):
        assert probe.ask(str(node1.ipv4.ip), PORT) == "node1"
        assert probe.ask(str(node1.ipv6.ip), PORT) == "node1"
        assert probe.ask(str(lan.node("node2").ipv4.ip), PORT) is None  # nobody serves there


def test_the_answer_is_plain_http_that_curl_reads(lan: Lan) -> None:
    serve(lan, "node2")
    fetched = lan.run("client", "curl", "-sS", "-i", "--max-time", "2",
                      f"http://{lan.node('node2').ipv4.ip}:{PORT}/healthz")  # fmt: skip
    assert fetched.stdout.startswith("HTTP/1.0 200 OK")
    assert fetched.stdout.rstrip().endswith("node2")


def test_once_in_another_namespace_prints_the_name_or_a_dash(lan: Lan) -> None:
    server = serve(lan, "node3")
    address = str(lan.node("node3").ipv4.ip)
    assert lan.run("client", *probe.once_argv(address, PORT)).stdout.strip() == "node3"
    lan.stop(server)
    assert lan.run("client", *probe.once_argv(address, PORT)).stdout.strip() == probe.UNANSWERED


def test_stream_stamps_every_probe_and_sees_the_service_go(lan: Lan) -> None:
    server = serve(lan, "node1")
    address = str(lan.node("node1").ipv4.ip)
    options = ["--period", "0.02", "--timeout", "0.2", "--unanswered", "--stdin"]
    streaming = lan.spawn("client", probe.stream_argv(address, PORT, options),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert streaming.stdout is not None
    assert streaming.stdin is not None
    lines = [streaming.stdout.readline().split() for _ in range(5)]
    assert all(name == "node1" for _, name in lines)
    stamps = [float(sent) for sent, _ in lines]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.monotonic()) < 5  # the shared monotonic clock
    lan.stop(server)
    while streaming.stdout.readline().split()[1] != probe.UNANSWERED:
        pass
    streaming.stdin.close()  # --stdin: it ends when its input closes
    assert streaming.wait(timeout=5) == 0


def test_the_prober_refuses_an_address_outside_the_test_lans(lan: Lan) -> None:
    refused = lan.run("client", *probe.once_argv("203.0.113.7", PORT), check=False)
    assert refused.returncode == 2
    assert "not in the test LANs" in refused.stderr
