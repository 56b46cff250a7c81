"""Which vrrp_script commands become native checks, and which stay exec checks."""

from __future__ import annotations

import pytest

from keepvip.convert.scripts import inverted, recognise


@pytest.mark.parametrize(
    ("command", "kind", "settings"),
    [
        ("/etc/keepalived/check_port.sh 80", "tcp", {"port": 80}),
        ("/usr/bin/nc -z -w 1 127.0.0.1 8443", "tcp", {"port": 8443}),
        ("nc -zv 198.18.0.7 5432", "tcp", {"port": 5432, "host": "198.18.0.7"}),
        ("/bin/sh -c 'ss -lnt | grep -q :8080'", "tcp", {"port": 8080}),
        ("bash -c 'netstat -ltn | grep :443'", "tcp", {"port": 443}),
        ("/bin/bash -c '</dev/tcp/127.0.0.1/6443'", "tcp", {"port": 6443}),
        ("curl -sf http://localhost:8080/healthz", "http", {"port": 8080, "path": "/healthz"}),
        (
            "curl -kfs https://127.0.0.1:6443/readyz",
            "http",
            {"port": 6443, "path": "/readyz", "scheme": "HTTPS"},
        ),
        ("wget -q -O /dev/null http://[::1]/", "http", {"port": 80, "host": "::1"}),
        ("/bin/ping -c 1 -W 1 198.18.0.250", "icmp", {"host": "198.18.0.250"}),
        ("killall -0 haproxy", "exec", {"command": ["killall", "-0", "haproxy"]}),
        ("pidof nginx", "exec", {"command": ["pidof", "nginx"]}),
        ("curl -sf http://api.example.org/", "exec", {"command": ["curl", "-sf", "http://api.example.org/"]}),
        ("/usr/local/bin/check --deep", "exec", {"command": ["/usr/local/bin/check", "--deep"]}),
        ("nc 127.0.0.1 80", "exec", {"command": ["nc", "127.0.0.1", "80"]}),
    ],
)
def test_recognise(command: str, kind: str, settings: dict[str, object]) -> None:
    found = recognise(command)
    assert (found.kind, found.settings) == (kind, settings)


def test_curl_without_fail_is_converted_with_a_warning() -> None:
    found = recognise("curl http://127.0.0.1/")
    assert found.kind == "http"
    assert not found.exact
    assert "--fail" in found.note


def test_inverted_passes_when_the_command_fails() -> None:
    assert inverted("test -e '/a b'") == ["/bin/sh", "-c", "! test -e '/a b'"]
