"""Run VRRP daemons (keepalived, keepvip) in node namespaces of a :class:`~keepvip.localcluster.lan.Lan`.

The interoperability tests and the failover benchmark need the same things from both
implementations: write a configuration, start the daemon in a node, learn its VRRP state,
stop it gracefully (SIGTERM: priority 0, VIP released) or crash it (SIGKILL, nothing
cleaned up). :class:`KeepalivedDaemon` and :class:`KeepvipDaemon` offer that one
interface (:class:`VrrpDaemon`), so a scenario is written once and run against either.

keepalived facts this module encodes (see ``shared/reference/local-control-plane.md`` §6
and ``keepalived.conf(5)`` of 2.2.7):

* one instance per node, run as ``keepalived -n -l -D -f CONF -p PID -r VRRP_PID -c
  CHECK_PID`` with pid files of its own (another instance's pid file makes it refuse to
  start with "daemon is already running"); ``-l -D`` logs every state change to the
  console, which is where the state is read from ("(VI_1) Entering MASTER STATE");
* ``-n`` keeps the parent in the foreground, but VRRP is spoken by a child process
  whose pid is in the ``-r`` file: a crash must kill both, or the parent respawns the
  child;
* a stopped keepalived needs about a second to exit; :meth:`KeepalivedDaemon.stop` waits
  for the parent to be reaped before the same node can start another one;
* ``vrrp_strict`` stays off (it would forbid PASS authentication and unicast), both
  sides start as ``state BACKUP`` so the election alone decides the master;
* 2.2.7 has no ``v3_checksum_as_v2`` (added in later releases): it always *sends* the
  VRRPv3/IPv4 checksum with the IPv4 pseudo-header;
* ``vrrp_script`` intervals are whole seconds.

This module is plain Python with no pytest in it: bench/ imports it by path.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from pathlib import Path
from typing import IO, Any, Protocol

import yaml

from keepvip.localcluster.lan import Host, Lan
from keepvip.localcluster.procs import children_of, crash_together

KEEPVIP = Path(sys.executable).parent / "keepvip"
KEEPALIVED = "keepalived"
INSTANCE = "VI_1"

MASTER, BACKUP, FAULT = "MASTER", "BACKUP", "FAULT"


class DaemonError(RuntimeError):
    """A daemon did not start, did not reach a state, or left its log with an error."""


@dataclass(frozen=True)
class Transition:
    """One state change a daemon logged, with the monotonic time it was read at."""

    state: str
    seen_at: float


class VrrpDaemon(Protocol):
    """What a scenario needs from a VRRP implementation running in one node."""

    implementation: str
    host: Host

    def start(self) -> None: ...

    def stop(self) -> int: ...

    def crash(self) -> None: ...

    def transitions(self) -> list[Transition]: ...

    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    def log_text(self) -> str: ...


# -- shared: a process in a namespace with its console in a file ---------------------------------


@dataclass
class _LoggedProcess:
    """A spawned daemon whose stdout and stderr go to one log file that is parsed later."""

    lan: Lan
    host: Host
    log_path: Path
    process: subprocess.Popen[Any] | None = None
    _log: IO[bytes] | None = None
    _offset: int = 0
    seen: list[Transition] = field(default_factory=list)  # transitions parsed from the log so far

    def spawn(self, argv: Sequence[str]) -> None:
        if self.running:
            raise DaemonError(f"{argv[0]} already runs in {self.host.name}")
        self._log = self.log_path.open("ab")
        self.process = self.lan.spawn(self.host, argv, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def reap(self, sig: int, timeout: float) -> int:
        assert self.process is not None
        code = self.lan.stop(self.process, sig, timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def new_lines(self) -> list[str]:
        """Complete log lines written since the last call."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self._offset += end
        return data[:end].decode(errors="replace").splitlines()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# -- keepalived -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VrrpScript:
    """A keepalived ``vrrp_script`` (and the command keepvip's equivalent check runs)."""

    name: str
    script: str  # a path (keepalived runs it without a shell)
    interval_s: int = 1
    timeout_s: int = 1
    rise: int = 1
    fall: int = 1
    weight: int = 0

    def render(self) -> list[str]:
        """The ``vrrp_script`` block's lines."""
        return [
            f"vrrp_script {self.name} {{",
            f'    script "{self.script}"',
            f"    interval {self.interval_s}",
            f"    timeout {self.timeout_s}",
            f"    rise {self.rise}",
            f"    fall {self.fall}",
            f"    weight {self.weight}",
            "}",
            "",
        ]


@dataclass(frozen=True)
class KeepalivedConfig:
    """One ``vrrp_instance`` and its globals, as keepalived.conf(5) of 2.2.7 spells them."""

    router_id: str
    interface: str
    vrid: int
    priority: int
    addresses: tuple[IPv4Interface | IPv6Interface, ...]
    version: int = 2
    advert_int: float = 1.0  # sub-second only with version 3 (centisecond steps)
    auth_pass: str | None = None  # VRRPv2 PASS
    preempt: bool = True
    unicast_source: str | None = None
    unicast_peers: tuple[str, ...] = ()
    scripts: tuple[VrrpScript, ...] = ()
    notify: str | None = None

    def render(self) -> str:
        """The keepalived.conf text."""
        lines = ["global_defs {", f"    router_id {self.router_id}", f"    vrrp_version {self.version}"]
        if self.scripts or self.notify:
            # Scripts run as root; without script security keepalived only warns.
            lines += ["    script_user root"]
        lines += ["}", ""]
        for script in self.scripts:
            lines += script.render()
        lines += [
            f"vrrp_instance {INSTANCE} {{",
            "    state BACKUP",
            f"    interface {self.interface}",
            f"    virtual_router_id {self.vrid}",
            f"    priority {self.priority}",
            f"    advert_int {self.advert_int:g}",
            f"    version {self.version}",
        ]
        if not self.preempt:
            lines.append("    nopreempt")
        if self.auth_pass is not None:
            lines += [
                "    authentication {",
                "        auth_type PASS",
                f"        auth_pass {self.auth_pass}",
                "    }",
            ]
        if self.unicast_source is not None:
            lines.append(f"    unicast_src_ip {self.unicast_source}")
        if self.unicast_peers:
            lines += ["    unicast_peer {", *(f"        {peer}" for peer in self.unicast_peers), "    }"]
        lines += ["    virtual_ipaddress {"]
        lines += [f"        {address.with_prefixlen} dev {self.interface}" for address in self.addresses]
        lines += ["    }"]
        if self.scripts:
            lines += ["    track_script {", *(f"        {s.name}" for s in self.scripts), "    }"]
        if self.notify is not None:
            lines.append(f'    notify "{self.notify}"')
        lines += ["}", ""]
        return "\n".join(lines)


_KEEPALIVED_STATES = {f"({INSTANCE}) Entering {state} STATE": state for state in (MASTER, BACKUP, FAULT)}


class KeepalivedDaemon:
    """keepalived 2.2.x running one instance in one node namespace."""

    implementation = "keepalived"

    def __init__(self, lan: Lan, host: Host, workdir: Path, config: KeepalivedConfig) -> None:
        self.lan = lan
        self.host = host
        self.config = config
        self.workdir = workdir / f"keepalived-{host.name}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = self.workdir / "keepalived.conf"
        self.pid_files = {
            flag: self.workdir / f"{name}.pid"
            for flag, name in (("-p", "main"), ("-r", "vrrp"), ("-c", "check"))
        }
        self._proc = _LoggedProcess(lan, host, self.workdir / "keepalived.log")

    def reconfigure(self, config: KeepalivedConfig) -> None:
        """Use ``config`` from the next :meth:`start` on."""
        self.config = config

    def start(self) -> None:
        self.conf.write_text(self.config.render())
        argv = [KEEPALIVED, "-n", "-l", "-D", "-f", str(self.conf)]
        for flag, path in self.pid_files.items():
            argv += [flag, str(path)]
        self._proc.spawn(argv)

    def stop(self) -> int:
        """SIGTERM: the master sends priority 0 and removes its VIPs; wait for the exit."""
        return self._proc.reap(signal.SIGTERM, timeout=5)

    def crash(self) -> None:
        """SIGKILL the VRRP child and the parent, so nothing is sent and nothing cleaned up
        (:func:`crash_together`: the parent's death would otherwise SIGTERM a live child)."""
        assert self._proc.process is not None
        children = [
            pid for pid in (_read_pid(self.pid_files[flag]) for flag in ("-r", "-c")) if pid is not None
        ]
        crash_together(self._proc.process.pid, children)
        self._proc.reap(signal.SIGKILL, timeout=5)
        for path in self.pid_files.values():
            path.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self._proc.running

    @property
    def pid(self) -> int | None:
        """The pid of the process this daemon started (None before the first start)."""
        return self._proc.process.pid if self._proc.process is not None else None

    def transitions(self) -> list[Transition]:
        now = time.monotonic()
        for line in self._proc.new_lines():
            for marker, state in _KEEPALIVED_STATES.items():
                if marker in line:
                    self._proc.seen.append(Transition(state, now))
        return list(self._proc.seen)

    def log_text(self) -> str:
        return self._proc.log_text()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


# -- keepvip --------------------------------------------------------------------------------------


class KeepvipDaemon:
    """``keepvip speaker --config FILE`` in one node namespace, JSON logs parsed for transitions."""

    implementation = "keepvip"

    def __init__(
        self,
        lan: Lan,
        host: Host,
        workdir: Path,
        documents: Sequence[Mapping[str, Any]],
        *,
        metrics_port: int | None = None,
    ) -> None:
        self.lan = lan
        self.host = host
        self.workdir = workdir / f"keepvip-{host.name}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "virtualips.yaml"
        self.metrics_port = metrics_port
        self.write_config(documents)
        self._proc = _LoggedProcess(lan, host, self.workdir / "keepvip.log")

    def write_config(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """Write the YAML stream; a running speaker picks it up within its poll interval."""
        text = yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False)
        temporary = self.config_path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(self.config_path)

    def start(self) -> None:
        argv = [
            str(KEEPVIP),
            "speaker",
            "--config",
            str(self.config_path),
            "--node",
            self.host.name,
            "--log-format",
            "json",
            "--state-dir",
            str(self.workdir / "state"),
        ]
        if self.metrics_port is not None:
            argv += ["--metrics-address", f"{self.host.ipv4.ip}:{self.metrics_port}"]
        self._proc.spawn(argv)

    def stop(self) -> int:
        """SIGTERM: the master sends priority 0 and removes its VIPs before exiting."""
        return self._proc.reap(signal.SIGTERM, timeout=5)

    def crash(self) -> None:
        """SIGKILL the supervisor and its VRRP child: no priority 0, and the VIP stays on the
        interface until the next start (as :class:`KeepalivedDaemon`'s parent and child).

        Both at once (:func:`crash_together`): a parent that outlived its child would remove
        the VIPs and send its priority 0, and a child that outlived its parent would hand
        over as after SIGTERM; either is what the process is for, not the crash of the whole
        daemon this stands for.
        """
        assert self._proc.process is not None
        crash_together(self._proc.process.pid, self.vrrp_children)
        self._proc.reap(signal.SIGKILL, timeout=5)

    @property
    def vrrp_children(self) -> list[int]:
        """The speaker's VRRP process: the child of the pid this daemon started (its supervisor)."""
        return children_of(self.pid) if self.pid is not None else []

    def reload(self) -> None:
        """SIGHUP: re-read the configuration file now."""
        assert self._proc.process is not None
        os.kill(self._proc.process.pid, signal.SIGHUP)

    @property
    def running(self) -> bool:
        return self._proc.running

    @property
    def pid(self) -> int | None:
        """The pid of the process this daemon started (None before the first start)."""
        return self._proc.process.pid if self._proc.process is not None else None

    def transitions(self) -> list[Transition]:
        now = time.monotonic()
        for line in self._proc.new_lines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and "state" in entry and "previous" in entry:
                    self._proc.seen.append(Transition(str(entry["state"]), now))
        return list(self._proc.seen)

    def log_text(self) -> str:
        return self._proc.log_text()

    def metrics(self) -> str:
        """The Prometheus text exposition, fetched from inside the node's namespace."""
        if self.metrics_port is None:
            raise DaemonError("started without --metrics-address")
        url = f"http://{self.host.ipv4.ip}:{self.metrics_port}/metrics"
        return self.lan.run(self.host, "curl", "-sf", "--max-time", "2", url).stdout


def virtualip_document(
    name: str,
    address: str,
    *,
    vrid: int,
    priority: int,
    version: int = 3,
    interval: str = "1s",
    checksum: str | None = None,
    password_secret: tuple[str, str, str] | None = None,
    preempt: bool = True,
    health_checks: Sequence[Mapping[str, Any]] = (),
    unicast_peers: Sequence[str] = (),
) -> dict[str, Any]:
    """A standalone VirtualIP document in the standard group (keepalived's 224.0.0.18 / ff02::12).

    ``password_secret`` is (namespace, name, key) of a Secret document in the same file.
    """
    vrrp: dict[str, Any] = {"version": version, "advertisementInterval": interval, "vrid": vrid}
    vrrp["multicastGroup"] = "standard"
    if checksum is not None:
        vrrp["checksum"] = checksum
    if password_secret is not None:
        namespace, secret, key = password_secret
        vrrp["authentication"] = {
            "type": "PASS",
            "secretRef": {"namespace": namespace, "name": secret, "key": key},
        }
    if unicast_peers:
        vrrp["unicastPeers"] = list(unicast_peers)
    spec: dict[str, Any] = {"addresses": [address], "priority": priority, "preempt": preempt, "vrrp": vrrp}
    if health_checks:
        spec["healthChecks"] = [dict(check) for check in health_checks]
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": spec,
    }


def secret_document(namespace: str, name: str, key: str, value: str) -> dict[str, Any]:
    """A v1 Secret document (``stringData``) for a standalone config file."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": namespace, "name": name},
        "stringData": {key: value},
    }


# -- waiting ----------------------------------------------------------------------------------------


def current_state(daemon: VrrpDaemon) -> str | None:
    """The last state the daemon logged (None before its first transition)."""
    seen = daemon.transitions()
    return seen[-1].state if seen else None


def wait_for_state(daemon: VrrpDaemon, state: str, timeout: float, *, poll: float = 0.02) -> float:
    """Wait until ``daemon``'s last logged state is ``state``; return the monotonic time seen."""
    deadline = time.monotonic() + timeout
    while True:
        seen = daemon.transitions()
        if seen and seen[-1].state == state:
            return seen[-1].seen_at
        if not daemon.running:
            raise DaemonError(
                f"{daemon.implementation} in {daemon.host.name} exited:\n{daemon.log_text()[-3000:]}"
            )
        if time.monotonic() >= deadline:
            last = seen[-1].state if seen else None
            raise DaemonError(
                f"{daemon.implementation} in {daemon.host.name} is {last}, not {state}, after {timeout}s:\n"
                f"{daemon.log_text()[-3000:]}"
            )
        time.sleep(poll)


def vip_holders(lan: Lan, address: str, hosts: Sequence[Host]) -> list[str]:
    """Names of the hosts whose interface carries ``address`` right now."""
    wanted = ip_interface(address).ip
    return [host.name for host in hosts if any(a.ip == wanted for a in lan.addresses(host, host.ifname))]


def remove_address(lan: Lan, host: Host, address: str) -> None:
    """Delete ``address`` from the host's interface if it is there (what a reboot does)."""
    interface = ip_interface(address)
    for present in lan.addresses(host, host.ifname):
        if present.ip == interface.ip:
            lan.run(host, "ip", "addr", "del", present.with_prefixlen, "dev", host.ifname, check=False)


__all__ = [
    "BACKUP",
    "FAULT",
    "MASTER",
    "DaemonError",
    "KeepalivedConfig",
    "KeepalivedDaemon",
    "KeepvipDaemon",
    "Transition",
    "VrrpDaemon",
    "VrrpScript",
    "current_state",
    "remove_address",
    "secret_document",
    "vip_holders",
    "virtualip_document",
    "wait_for_state",
]
