"""Running real ``keepvip speaker`` processes on a namespace LAN, and looking at them as a client.

The speaker scenario tests (tests/netns/test_speaker_*.py) read as specifications
because the mechanics live here:

* :class:`SpeakerSet` writes the standalone configuration file (a YAML stream of
  VirtualIP documents, one copy per node so a node can be given a different file),
  starts one speaker per node namespace with JSON logs and a metrics endpoint, and
  stops, kills or restarts them by pid (through :meth:`keepvip.localcluster.lan.Lan.spawn` / ``stop``).
* Every node also runs the web server (:mod:`keepvip.localcluster.webserver`) that
  answers any request with its node name, so "who holds the VIP" is asked the way a
  user would: a TCP connection from the client namespace to the VIP (:func:`who_answers`,
  :mod:`keepvip.localcluster.probe`), and the client's ARP / neighbour
  table (:func:`client_sees`), which only gratuitous ARP / unsolicited NA can move.
* The speakers' own view comes from their logs (:meth:`SpeakerSet.transitions`) and
  their Prometheus metrics, scraped over HTTP from inside the node's namespace
  (:meth:`SpeakerSet.metrics`).

Timing rule: nothing here asserts tight wall-clock numbers; :func:`wait_until` polls
with generous timeouts, and takeover times are measured from the speakers' own log
timestamps so that the polling loop's latency does not count.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

# The one copy of the waiting helpers (keepvip.localcluster.waiting), re-exported for the tests.
from keepvip.localcluster import probe, webserver
from keepvip.localcluster.lan import Lan
from keepvip.localcluster.procs import children_of, crash_together
from keepvip.localcluster.waiting import holds_for, wait_until

KEEPVIP = Path(sys.executable).parent / "keepvip"
WEB_PORT = 8080
METRICS_PORT = 9470
VIP4 = IPv4Interface("198.18.0.100/24")
VIP6 = IPv6Interface("2001:db8::100/64")




# -- configuration ---------------------------------------------------------------------


def virtualip(
    name: str,
    *,
    vrid: int,
    addresses: Sequence[str] = (str(VIP4),),
    priority: int = 100,
    node_priorities: Mapping[str, int] | None = None,
    version: int = 3,
    interval: str = "100ms",
    group: str | None = None,
    preempt: bool = True,
    preempt_delay: str | None = None,
    health_checks: Sequence[Mapping[str, Any]] = (),
    arbiter: Mapping[str, Any] | None = None,
    password_secret: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One VirtualIP document as a user writes it (camelCase, the CRD's schema)."""
    vrrp: dict[str, Any] = {"version": version, "advertisementInterval": interval, "vrid": vrid}
    if group is not None:
        vrrp["multicastGroup"] = group
    if password_secret is not None:
        secret_name, key = password_secret
        vrrp["authentication"] = {
            "type": "PASS",
            "secretRef": {"namespace": "default", "name": secret_name, "key": key},
        }
    spec: dict[str, Any] = {
        "addresses": list(addresses),
        "priority": priority,
        "preempt": preempt,
        "vrrp": vrrp,
    }
    if node_priorities:
        spec["nodePriorities"] = [{"nodeName": n, "priority": p} for n, p in node_priorities.items()]
    if preempt_delay is not None:
        spec["preemptDelay"] = preempt_delay
    if health_checks:
        spec["healthChecks"] = [dict(check) for check in health_checks]
    if arbiter is not None:
        spec["arbiter"] = dict(arbiter)
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": spec,
    }


def secret(name: str, key: str, value: str) -> dict[str, Any]:
    """A v1 Secret document (standalone mode reads PASS passwords from the same file)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "stringData": {key: value},
    }


def web_check(*, weight: int, interval: str = "200ms", fall: int = 1, rise: int = 1) -> dict[str, Any]:
    """keepalived's nginx tutorial as a keepvip health check: TCP connect to the local web server."""
    return {
        "name": "web",
        "tcp": {"port": WEB_PORT},
        "interval": interval,
        "timeout": "100ms",
        "fall": fall,
        "rise": rise,
        "weight": weight,
    }


# -- the speakers' logs and metrics ------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """One ``<node> <STATE>: <why>`` log line of a speaker."""

    at: float  # wall-clock seconds (time.time() scale), from the log line's timestamp
    virtualip: str
    state: str
    previous: str
    reason: str
    priority: int


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def logged_at(record: Mapping[str, Any]) -> float:
    """A log record's wall-clock time (0 for lines that carry none, e.g. tracebacks)."""
    return _epoch(record["time"]) if "time" in record else 0.0


@dataclass
class Metrics:
    """One scrape of a speaker's /metrics: samples by name, each with its labels."""

    samples: list[tuple[str, dict[str, str], float]]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(self.values(name, **labels))

    def gauge(self, name: str, **labels: str) -> float | None:
        """The one sample called ``name`` with ``labels``; None when the speaker exports none."""
        found = self.values(name, **labels)
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return found[0] if found else None

    def values(self, name: str, **labels: str) -> list[float]:
        """The samples called ``name`` whose labels include ``labels``."""
        return [
            value
            for sample, sample_labels, value in self.samples
            if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())
        ]


@dataclass
class _ParsedLog:
    """A speaker's log file parsed so far: the records, and where reading stopped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)  # the records that log one
    offset: int = 0  # bytes of the file consumed (complete lines only)

    def read_new(self, path: Path) -> None:
        with path.open("rb") as file:
            file.seek(0, 2)
            if file.tell() < self.offset:  # the file was replaced: start again
                self.records.clear()
                self.transitions.clear()
                self.offset = 0
            file.seek(self.offset)
            data = file.read()
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += complete
        for raw in data[:complete].decode(errors="replace").splitlines():
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                record = {"message": raw, "level": "RAW"}
            if not isinstance(record, dict):
                record = {"message": raw, "level": "RAW"}
            self.records.append(record)
            if "state" in record and "previous" in record:
                self.transitions.append(
                    Transition(_epoch(record["time"]), record["virtualip"], record["state"],
                               record["previous"], record["reason"], int(record["priority"]))
                )  # fmt: skip


@dataclass
class SpeakerSet:
    """The speakers (and web servers) of one scenario on ``lan``; use as a context manager."""

    lan: Lan
    workdir: Path
    speakers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    web_servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)
    _log_files: list[Any] = field(default_factory=list)
    _parsed_logs: dict[str, _ParsedLog] = field(default_factory=dict)

    # -- configuration files ----------------------------------------------------------

    def config_path(self, node: str) -> Path:
        return self.workdir / f"{node}.yaml"

    def configure(self, *documents: Mapping[str, Any], nodes: Sequence[str] | None = None) -> None:
        """Write the YAML stream for ``nodes`` (default: every node), atomically."""
        text = yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False)
        self.write_raw(text, nodes=nodes)

    def write_raw(self, text: str, *, nodes: Sequence[str] | None = None) -> None:
        """Write ``text`` as the configuration file (rename over the old one, as editors do)."""
        for node in nodes if nodes is not None else self.node_names:
            path = self.config_path(node)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(text)
            temporary.replace(path)

    @property
    def node_names(self) -> list[str]:
        return [host.name for host in self.lan.nodes]

    # -- processes --------------------------------------------------------------------

    def log_path(self, node: str) -> Path:
        return self.workdir / f"{node}.log"

    def start(self, *nodes: str, extra: Sequence[str] = ()) -> None:
        """Start the speaker of each node (default: every node) on its configuration file,
        with ``extra`` command-line arguments."""
        for node in nodes or self.node_names:
            assert node not in self.speakers or self.speakers[node].poll() is not None, f"{node} runs"
            log = self.log_path(node).open("ab")
            self._log_files.append(log)
            argv = [
                str(KEEPVIP), "speaker", "--config", str(self.config_path(node)), "--node", node,
                "--metrics-address", f"127.0.0.1:{METRICS_PORT}", "--log-format", "json",
                "--log-level", "INFO", "--state-dir", str(self.workdir / f"{node}-state"), *extra,
            ]  # fmt: skip
            self.started_at[node] = time.time()
            self.speakers[node] = self.lan.spawn(node, argv, stdout=log, stderr=log)

    def wait_joined(self, *nodes: str, virtualip: str | None = None, timeout: float = 15) -> None:
        """Wait until each node's current speaker has logged its first state (it runs VRRP)."""
        for node in nodes or self.node_names:
            self._wait_for(node, None, virtualip, self.started_at[node], timeout)

    def wait_state(self, node: str, state: str, virtualip: str, *, timeout: float = 15) -> Transition:
        """Wait until the node's last logged state for ``virtualip`` is ``state``."""
        return self._wait_for(node, state, virtualip, 0.0, timeout, last=True)

    def _wait_for(
        self,
        node: str,
        state: str | None,
        virtualip: str | None,
        since: float,
        timeout: float,
        *,
        last: bool = False,
    ) -> Transition:
        def found() -> Transition | None:
            moves = self.transitions(node, virtualip, since=since)
            if last:
                moves = moves[-1:]
            return next((t for t in moves if state is None or t.state == state), None)

        return wait_until(
            found,
            timeout,
            what=f"{node} {state or 'joins'}",
            describe=lambda: "\n".join(str(r) for r in self.log_lines(node)[-10:]),
        )

    def signal_only(self, node: str, sig: int) -> None:
        """Send ``sig`` to the node's running speaker and leave it running (e.g. SIGHUP)."""
        os.kill(self.speakers[node].pid, sig)

    def vrrp_pid(self, node: str) -> int:
        """The pid of the process that runs VRRP: the child of the node's speaker (its supervisor)."""
        pid = self.speakers[node].pid
        children = wait_until(lambda: children_of(pid), 5, what=f"{node}'s speaker to fork")
        assert len(children) == 1, children
        return children[0]

    def signal(self, node: str, sig: int) -> int:
        """Send ``sig`` to the node's speaker and reap it; its exit code."""
        return self.lan.stop(self.speakers[node], sig)

    def kill(self, node: str) -> float:
        """SIGKILL the node's speaker, parent and VRRP process together (a crash: neither acts on
        the other's death, ``crash_together``); the wall-clock time of the kill."""
        at = time.time()
        parent = self.speakers[node].pid
        crash_together(parent, children_of(parent))
        self.signal(node, signal.SIGKILL)
        return at

    def terminate(self, node: str) -> tuple[float, int]:
        """SIGTERM the node's speaker (a planned stop); the time it was sent and the exit code."""
        at = time.time()
        return at, self.signal(node, signal.SIGTERM)

    def start_web(self, *nodes: str) -> None:
        """Start each node's web server (default: every node) and wait until it listens."""
        for node in nodes or self.node_names:
            process = self.lan.spawn(node, webserver.argv(node, WEB_PORT), stdout=subprocess.PIPE)
            assert process.stdout is not None
            started = process.stdout.readline().strip() == webserver.READY.encode()
            assert started, f"{node}'s web server did not start"
            self.web_servers[node] = process

    def stop_web(self, node: str) -> None:
        """Stop the node's web server (the health check's target)."""
        self.lan.stop(self.web_servers.pop(node), signal.SIGTERM)

    def close(self) -> None:
        """Stop every process this set started (by pid, all signalled at once), close the logs."""
        processes = [*self.speakers.values(), *self.web_servers.values()]
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            self.lan.stop(process, signal.SIGTERM, timeout=3)
        for log in self._log_files:
            log.close()
        print(self.report())  # pytest shows it for a failed test

    def __enter__(self) -> SpeakerSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what the speakers say ----------------------------------------------------------

    def log_lines(self, node: str) -> list[dict[str, Any]]:
        """The node's JSON log records (lines that are not JSON, e.g. tracebacks, as ``message``).

        Only what was appended since the last call is read and parsed, and only complete
        lines: a poll per VirtualIP used to parse every log again, and a line the speaker
        was still writing came back as a ``RAW`` record (what a traceback looks like).
        """
        return list(self._parsed_log(node).records)

    def _parsed_log(self, node: str) -> _ParsedLog:
        """The node's log, parsed up to its last complete line."""
        path = self.log_path(node)
        parsed = self._parsed_logs.setdefault(node, _ParsedLog())
        if path.exists():
            parsed.read_new(path)
        return parsed

    def messages(self, node: str, containing: str, *, since: float = 0.0) -> list[dict[str, Any]]:
        """The node's log records whose message contains ``containing``, at or after ``since``."""
        return [
            r
            for r in self.log_lines(node)
            if containing in str(r.get("message", "")) and logged_at(r) + 0.0005 >= since
        ]

    def records(self, node: str, *, virtualip: str, since: float = 0.0) -> list[dict[str, Any]]:
        """The node's log records about ``virtualip``, at or after ``since``."""
        return [
            r
            for r in self.log_lines(node)
            if r.get("virtualip") == virtualip and logged_at(r) + 0.0005 >= since
        ]

    def transitions(self, node: str, virtualip: str | None = None, *, since: float = 0.0) -> list[Transition]:
        """The node's logged state transitions (for one VirtualIP), at or after ``since``."""
        return [
            t
            for t in self._parsed_log(node).transitions
            if (virtualip is None or t.virtualip == virtualip) and t.at + 0.0005 >= since  # the log keeps ms
        ]

    def state(self, node: str, virtualip: str) -> str | None:
        """The node's last logged state for ``virtualip``."""
        moves = self.transitions(node, virtualip)
        return moves[-1].state if moves else None

    def became(
        self, node: str, state: str, virtualip: str | None = None, *, since: float = 0.0
    ) -> Transition | None:
        """The node's first transition into ``state`` at or after ``since``, if any."""
        return next((t for t in self.transitions(node, virtualip, since=since) if t.state == state), None)

    def report(self) -> str:
        """Every node's log without DEBUG lines: printed after each scenario (shown on failure)."""
        parts = []
        for node in self.node_names:
            lines = [
                " ".join(f"{k}={v}" for k, v in record.items() if k not in ("logger", "level"))
                for record in self.log_lines(node)
                if record.get("level") != "DEBUG"
            ]
            parts.append(f"--- {node} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def first_takeover(self, virtualip: str, *, since: float) -> tuple[str, Transition] | None:
        """The earliest transition into MASTER of ``virtualip`` on any node since ``since``.

        With three nodes, the backup that acts first after a master leaves is not always the
        next in priority (on a loaded machine a lower one's timer may fire first, and the
        higher one then pre-empts it): the reason a takeover happened is read here, the node
        that ends up master from the client's view.
        """
        found = [
            (t.at, node, t)
            for node in self.node_names
            for t in self.transitions(node, virtualip, since=since)
            if t.state == "MASTER"
        ]
        if not found:
            return None
        _, node, transition = min(found, key=lambda item: item[0])
        return node, transition

    def errors(self, node: str) -> list[dict[str, Any]]:
        """Log records at ERROR level or raw (non-JSON) lines such as tracebacks."""
        return [r for r in self.log_lines(node) if r.get("level") in ("ERROR", "CRITICAL", "RAW")]

    def metrics(self, node: str) -> Metrics:
        """Scrape the node's speaker at 127.0.0.1:METRICS_PORT inside its namespace."""
        with self.lan.inside(node):
            response = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5)
        with response:
            text = response.read().decode()
        samples = [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
        return Metrics(samples)

    def metrics_ready(self, node: str) -> bool:
        """Whether the node's metrics endpoint answers (the speaker has started)."""
        try:
            self.metrics(node)
        except OSError:
            return False
        return True


# -- what a client on the LAN sees -----------------------------------------------------


def who_answers(lan: Lan, vip: IPv4Interface | IPv6Interface, *, timeout: float = 0.5) -> str | None:
    """Connect from the client to the VIP's web port; the node name that answered, or None."""
    with lan.inside("client"):
        return probe.ask(str(vip.ip), WEB_PORT, timeout)


def client_sees(lan: Lan, vip: IPv4Interface | IPv6Interface) -> str | None:
    """The node whose MAC the client's ARP / neighbour table holds for the VIP, or None."""
    mac = lan.neighbours("client").get(vip.ip)
    return next((host.name for host in lan.nodes if host.mac == mac), None)


def holders(lan: Lan, vip: IPv4Interface | IPv6Interface) -> set[str]:
    """The nodes whose address list holds the VIP (what ``ip addr`` shows)."""
    return {host.name for host in lan.nodes if vip.ip in {a.ip for a in lan.addresses(host, host.ifname)}}


def master_of(lan: Lan, vip: IPv4Interface | IPv6Interface, *, timeout: float = 0.5) -> str | None:
    """The node a client reaches at the VIP, when everything agrees.

    The client's connection is answered by a node, the client's neighbour table maps the
    VIP to that node's MAC, and that node is the only one holding the VIP. None while any
    of these disagree (mid-failover, or nobody holds it).
    """
    answered = who_answers(lan, vip, timeout=timeout)
    if answered is None or client_sees(lan, vip) != answered:
        return None
    return answered if holders(lan, vip) == {answered} else None


def wait_for_master(lan: Lan, vip: IPv4Interface | IPv6Interface, node: str, timeout: float = 15) -> str:
    """Wait until :func:`master_of` says ``node``."""
    return wait_until(
        lambda: node if master_of(lan, vip) == node else None,
        timeout,
        what=f"{node} masters {vip}",
        describe=lambda: describe_vip(lan, vip),
    )


def describe_vip(lan: Lan, vip: IPv4Interface | IPv6Interface) -> str:
    """What the client and the nodes show for the VIP (for failure messages)."""
    return (
        f"client reaches {who_answers(lan, vip)!r}, its neighbour table says {client_sees(lan, vip)!r}, "
        f"holders {sorted(holders(lan, vip))}"
    )


def stays_master(lan: Lan, vip: IPv4Interface | IPv6Interface, node: str, duration: float) -> bool:
    """Whether ``node`` keeps answering for the VIP (and alone holds it) for ``duration``.

    On failure the situation is printed (pytest shows it with the failed test).
    """
    held = holds_for(lambda: master_of(lan, vip, timeout=2.0) == node, duration, interval=0.2)
    if not held:
        print(f"{node} stopped being master of {vip} at {time.time():.3f}: {describe_vip(lan, vip)}")
    return held


def as_interface(text: str) -> IPv4Interface | IPv6Interface:
    """``198.18.0.101/24`` -> an interface object (what the helpers take)."""
    value = ip_interface(text)
    assert isinstance(value, IPv4Interface | IPv6Interface)
    return value


@contextlib.contextmanager
def speaker_set(lan: Lan, workdir: Path) -> Iterator[SpeakerSet]:
    """A :class:`SpeakerSet` that is closed after the block whatever happens."""
    with SpeakerSet(lan, workdir) as speakers:
        yield speakers


__all__ = [
    "KEEPVIP", "METRICS_PORT", "VIP4", "VIP6", "WEB_PORT", "Metrics", "SpeakerSet", "Transition",
    "as_interface", "client_sees", "describe_vip", "holders", "holds_for", "master_of", "secret",
    "speaker_set", "stays_master", "virtualip", "wait_for_master", "wait_until", "web_check",
    "who_answers",
]  # fmt: skip
