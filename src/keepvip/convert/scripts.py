"""What a ``vrrp_script`` checks, when its command says so plainly.

keepalived runs a script's command without a shell (it splits the words itself), so a
check written as ``curl -sf http://127.0.0.1/healthz`` is a statement about an HTTP
endpoint, not about a program. Turning such commands into keepvip's native checks
(http, tcp, icmp) removes a fork per interval and works in a speaker image that has no
curl. Only commands whose meaning is unambiguous are recognised; anything else stays an
exec check running the same command, and the report says so.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

_LOCAL_NAMES = {"localhost": "127.0.0.1", "ip6-localhost": "::1"}
_PORT_GREP = re.compile(
    r"^(?:ss|netstat)\s+-[a-z]*l[a-z]*\s*\|\s*grep\s+(?:-\w+\s+)*['\"]?:(\d+)\b['\"]?\s*$"
)
_DEV_TCP = re.compile(r"^\s*(?:cat\s+)?<\s*/dev/tcp/([^/\s]+)/(\d+)\s*$")


@dataclass(frozen=True)
class Recognised:
    """The check's kind and settings (camelCase, as in the VirtualIP), and what to tell the user."""

    kind: str  # tcp | http | icmp | exec
    settings: dict[str, Any]
    note: str
    exact: bool  # True: same meaning as the script; False: the user should look


def _host(text: str) -> str | None:
    text = _LOCAL_NAMES.get(text, text).strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _tcp(host: str | None, port: str, why: str) -> Recognised | None:
    if host is None or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    settings: dict[str, Any] = {"port": int(port)}
    if host != "127.0.0.1":
        settings["host"] = host
    return Recognised("tcp", settings, f"{why} → a tcp check", True)


def _http(words: list[str]) -> Recognised | None:
    tool = PurePosixPath(words[0]).name
    urls = [w for w in words[1:] if w.startswith(("http://", "https://"))]
    if len(urls) != 1:
        return None
    url = urlsplit(urls[0])
    host = _host(url.hostname or "")
    if host is None:
        return None
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return None
    settings: dict[str, Any] = {"port": port}
    if url.path not in ("", "/"):
        settings["path"] = url.path + (f"?{url.query}" if url.query else "")
    if url.scheme == "https":
        settings["scheme"] = "HTTPS"
    if host != "127.0.0.1":
        settings["host"] = host
    flags = {w for w in words[1:] if w.startswith("-")}
    fails_on_error = tool == "wget" or bool(flags & {"-f", "--fail", "-sf", "-fs", "-fsS", "-sSf", "-Sf"})
    if tool == "curl" and not fails_on_error:
        note = (
            "curl without --fail passed on any HTTP answer; the http check passes on status 200 "
            "only (add statuses to expectedStatuses)"
        )
    else:
        note = (
            f"{tool} {urls[0]} → an http check; it passes on status 200 only ({tool} passed on "
            "any status below 400: add others to expectedStatuses)"
        )
    if url.scheme == "https":
        note += "; certificates are not verified, as in Kubernetes probes"
    return Recognised("http", settings, note, False)


def _netcat(words: list[str]) -> Recognised | None:
    flags = [w for w in words[1:] if w.startswith("-")]
    if not any("z" in f for f in flags):
        return None
    rest: list[str] = []
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
        elif word in ("-w", "-W", "-i", "-s", "-p"):
            skip = True
        elif not word.startswith("-"):
            rest.append(word)
    if len(rest) != 2:
        return None
    return _tcp(_host(rest[0]), rest[1], " ".join(words))


def _ping(words: list[str]) -> Recognised | None:
    targets = []
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
        elif word in ("-c", "-W", "-w", "-i", "-s", "-t", "-I"):
            skip = True
        elif not word.startswith("-"):
            targets.append(word)
    if len(targets) != 1 or _host(targets[0]) is None:
        return None
    return Recognised("icmp", {"host": _host(targets[0])}, f"{' '.join(words)} → an icmp check", True)


def _shell(words: list[str]) -> Recognised | None:
    """``sh -c '...'`` whose text is a port test: ``ss -lnt | grep :80`` or ``</dev/tcp/H/P``."""
    if len(words) != 3 or PurePosixPath(words[0]).name not in ("sh", "bash", "dash") or words[1] != "-c":
        return None
    return _shell_text(words[2])


def _shell_text(text: str) -> Recognised | None:
    listening = _PORT_GREP.match(text.strip())
    if listening:
        return _tcp("127.0.0.1", listening[1], f"{text!r} (a listening port)")
    connect = _DEV_TCP.match(text)
    if connect:
        return _tcp(_host(connect[1]), connect[2], f"{text!r} (bash connects to the port)")
    return None


def recognise(command: str) -> Recognised:
    """The native check a script's command amounts to, or an exec check running it."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if not words:
        return Recognised("exec", {"command": [command]}, "an empty command", False)
    tool = PurePosixPath(words[0]).name
    found: Recognised | None = None
    if tool in ("curl", "wget"):
        found = _http(words)
    elif tool in ("nc", "ncat", "netcat"):
        found = _netcat(words)
    elif tool in ("ping", "ping6"):
        found = _ping(words)
    elif tool in ("check_port.sh", "check_port") and len(words) == 2:
        found = _tcp(
            "127.0.0.1", words[1], f"{tool} {words[1]} (the tutorial's script: is port {words[1]} listening?)"
        )
    elif tool in ("sh", "bash", "dash"):
        found = _shell(words)
    elif command.lstrip().startswith("<"):
        found = _shell_text(command)
    if found is not None:
        return found
    if tool in ("pidof", "killall", "pgrep"):
        return Recognised(
            "exec",
            {"command": words},
            f"{command!r} checks that a process runs: kept as an "
            "exec check (the speaker must see the host's processes: hostPID in a cluster)",
            False,
        )
    return Recognised(
        "exec",
        {"command": words},
        f"{command!r} kept as an exec check: the command must "
        "exist on every node (in a cluster: in the speaker's image or a mounted path)",
        False,
    )


def inverted(command: str) -> list[str]:
    """An exec command that passes when ``command`` fails (keepalived's ``reverse``)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return ["/bin/sh", "-c", "! " + shlex.join(words)]
