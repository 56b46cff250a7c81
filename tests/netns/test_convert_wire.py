"""The conversion proven on the wire: keepalived with the original file, keepvip with the converted one.

For every keepalived fixture that describes a runnable pair (tests/data/keepalived/*/wire.yaml),
one node runs keepalived 2.2.7 with that node's own configuration file, unchanged except that
``/etc/keepalived/`` points at the test's folder (where the scripts it names are written), and
the other node runs ``keepvip speaker --config`` with the documents ``keepvip convert`` made
from *both* files. Together they must be one virtual router, as the two keepalived nodes were:

1. the master is the node the priorities elect (and only it holds the VIPs);
2. when the master stops, the other node takes every VIP; when it returns it pre-empts (or,
   with ``nopreempt``, does not); then the same the other way round;
3. the converted check is honoured: the checked service stops on the master (or the host it
   pings becomes unreachable, or the interface it tracks goes down) and the VIPs go where
   the original configuration sends them; in a sync group every member's VIP goes.

Who holds a VIP is read from the kernel (``ip addr`` in each node), the ground truth both
implementations act on. One LAN serves every fixture; each scenario stops what it started.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from keepalived_harness import KeepalivedDaemon, KeepvipDaemon, VrrpDaemon, remove_address, vip_holders
from speaker_harness import wait_until

from keepvip.convert.command import convert_keepalived
from keepvip.localcluster import webserver
from keepvip.localcluster.lan import Host, Lan

pytestmark = pytest.mark.timeout(180)

FIXTURES = Path(__file__).parents[1] / "data" / "keepalived"
CHECK_PORT = (
    '#!/bin/sh\n# the tutorial\'s check: is anything listening on TCP port $1?\nss -lnt | grep -q ":$1 "\n'
)
NOTIFY = "#!/bin/sh\nexit 0\n"
ELECTION = 15.0  # seconds: start-up plus Master_Down_Interval (3 × 1 s + skew) with room for a loaded CPU


@dataclass(frozen=True)
class Scenario:
    """One fixture with keepalived on one node."""

    case: str
    keepalived: str  # node running keepalived; the other runs keepvip
    vips: dict[str, str]  # VIP -> expected master
    preempt: bool
    port: int | None
    unreachable: str | None
    after_failure: str | None
    uplink: str | None = None  # a tracked interface every node gets; set down on the master

    @property
    def id(self) -> str:
        return f"{self.case}-keepalived-on-{self.keepalived}"


def _scenarios() -> list[Scenario]:
    found = []
    for wire in sorted(FIXTURES.glob("*/wire.yaml")):
        spec: dict[str, Any] = yaml.safe_load(wire.read_text())
        for node in spec["keepalived"]:
            service = spec.get("service") or {}
            found.append(
                Scenario(
                    case=wire.parent.name,
                    keepalived=node,
                    vips={str(k): v for k, v in spec["vips"].items()},
                    preempt=spec["preempt"],
                    port=service.get("port"),
                    unreachable=spec.get("unreachable"),
                    after_failure=spec.get("after_failure"),
                    uplink=spec.get("uplink"),
                )
            )
    return found


SCENARIOS = _scenarios()

# Fixtures with no wire.yaml, and why the pair cannot run here (their golden tests still run).
NOT_ON_THE_WIRE = {
    "addresses-and-timers": "an address on eth1 (absent here) and an excluded IPv6 address: the parts the "
    "report marks unsupported would differ on purpose",
    "lvs": "keepalived's virtual_server needs the ip_vs kernel module, absent on this machine "
    "(keepalived logs 'IPVS: Can't initialize ipvs'); the converted VirtualIP itself is plain",
    "malformed": "the files are broken on purpose",
    "reverse-and-user": "its checks need nc (not installed), the user nobody and an app-health program",
}


def test_every_fixture_is_proven_on_the_wire_or_says_why_not() -> None:
    fixtures = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    on_the_wire = {s.case for s in SCENARIOS}
    assert fixtures - on_the_wire == set(NOT_ON_THE_WIRE)
    assert len(on_the_wire) >= 10


class FileKeepalived(KeepalivedDaemon):
    """keepalived running a configuration file as written (not one the harness renders)."""

    def __init__(self, lan: Lan, host: Host, workdir: Path, conf: Path) -> None:
        super().__init__(lan, host, workdir, config=None)  # type: ignore[arg-type]
        self.conf = conf

    def start(self) -> None:
        argv = ["keepalived", "-n", "-l", "-D", "-f", str(self.conf)]
        for flag, path in self.pid_files.items():
            argv += [flag, str(path)]
        self._proc.spawn(argv)


@pytest.fixture(scope="module")
def shared_lan(_root: None) -> Iterator[Lan]:
    """Two nodes and a client, shared by every scenario of this module."""
    with Lan.build(nodes=2, client=True) as built:
        yield built


@dataclass
class Pair:
    """The two daemons and the services of one scenario."""

    lan: Lan
    scenario: Scenario
    daemons: dict[str, VrrpDaemon]
    services: dict[str, subprocess.Popen[bytes]]

    def holders(self) -> dict[str, list[str]]:
        return {vip: vip_holders(self.lan, vip, self.lan.nodes) for vip in self.scenario.vips}

    def wait_holders(self, expected: dict[str, str], what: str, timeout: float = ELECTION) -> None:
        wanted = {vip: [node] for vip, node in expected.items()}
        wait_until(lambda: self.holders() == wanted, timeout, interval=0.1, what=what,
                   describe=lambda: f"holders {self.holders()}\n{self.logs()}")  # fmt: skip

    def stays(self, expected: dict[str, str], seconds: float) -> None:
        wanted = {vip: [node] for vip, node in expected.items()}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.holders() == wanted, f"moved: {self.holders()}\n{self.logs()}"
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(
            f"--- {n} ({d.implementation}) ---\n{d.log_text()[-2500:]}" for n, d in self.daemons.items()
        )


def _web(lan: Lan, host: Host, port: int) -> subprocess.Popen[bytes]:
    process = lan.spawn(host, webserver.argv(host.name, port), stdout=subprocess.PIPE)
    assert process.stdout is not None
    started = process.stdout.readline().strip() == webserver.READY.encode()
    assert started, f"{host.name}: service on {port} did not start"
    return process


@contextlib.contextmanager
def pair(lan: Lan, workdir: Path, scenario: Scenario) -> Iterator[Pair]:
    folder = FIXTURES / scenario.case
    nodes = [(path.stem, path) for path in sorted(folder.glob("*.conf"))]
    conversion = convert_keepalived(nodes)
    assert not conversion.report.failed, conversion.report.render()
    scripts = workdir / "etc-keepalived"
    scripts.mkdir()
    for name, text in (("check_port.sh", CHECK_PORT), ("notify.sh", NOTIFY)):
        (scripts / name).write_text(text)
        (scripts / name).chmod(0o755)
    hosts = {host.name: host for host in lan.nodes}
    daemons: dict[str, VrrpDaemon] = {}
    services: dict[str, subprocess.Popen[bytes]] = {}
    built = Pair(lan, scenario, daemons, services)
    try:
        for name, host in hosts.items():
            if scenario.uplink is not None:  # both ends in the node: the link is up, with carrier
                lan.run(host, "ip", "link", "add", scenario.uplink, "type", "veth", "peer", "name",
                        f"{scenario.uplink}p")  # fmt: skip
                lan.run(host, "ip", "link", "set", f"{scenario.uplink}p", "up")
                lan.run(host, "ip", "link", "set", scenario.uplink, "up")
            if scenario.port is not None:
                services[name] = _web(lan, host, scenario.port)
            if name == scenario.keepalived:
                # includes are relative to the file: keepalived reads a copy of the whole fixture
                copy = workdir / "keepalived-files"
                shutil.copytree(folder, copy)
                for path in copy.rglob("*.conf"):
                    path.write_text(path.read_text().replace("/etc/keepalived/", f"{scripts}/"))
                daemon: VrrpDaemon = FileKeepalived(lan, host, workdir, copy / f"{name}.conf")
            else:
                documents = list(yaml.safe_load_all(conversion.documents_text()))
                daemon = KeepvipDaemon(lan, host, workdir, documents)
            daemons[name] = daemon
        yield built
    finally:
        _clean_up(lan, scenario, built)


def _clean_up(lan: Lan, scenario: Scenario, built: Pair) -> None:
    """Stop what the scenario started (by pid) and remove what a crash could leave."""
    for daemon in built.daemons.values():
        if daemon.running:
            daemon.stop()
    for process in built.services.values():
        lan.stop(process, signal.SIGTERM)
    for host in lan.nodes:
        for vip in scenario.vips:
            remove_address(lan, host, vip)
        if scenario.unreachable is not None:
            lan.run(host, "ip", "route", "del", "blackhole", scenario.unreachable, check=False)
        if scenario.uplink is not None:
            lan.run(host, "ip", "link", "del", scenario.uplink, check=False)  # its peer goes with it


def _everything_on(scenario: Scenario, node: str) -> dict[str, str]:
    return dict.fromkeys(scenario.vips, node)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_keepalived_and_keepvip_with_the_converted_file_are_one_router(
    shared_lan: Lan, tmp_path: Path, scenario: Scenario
) -> None:
    lan = shared_lan
    first = next(iter(scenario.vips.values()))  # the master of the first VIP
    other = next(h.name for h in lan.nodes if h.name != first)
    with pair(lan, tmp_path, scenario) as running:
        # 1. the priorities elect the expected master(s), whoever runs keepalived
        running.daemons[first].start()
        running.wait_holders(_everything_on(scenario, first), f"{first} alone takes every VIP")
        running.daemons[other].start()
        running.wait_holders(scenario.vips, f"the expected masters {scenario.vips}")
        if not scenario.preempt or len(set(scenario.vips.values())) == 1:
            running.stays(scenario.vips, 3.0)

        # 2. fail over both ways
        for leaving, staying in ((first, other), (other, first)):
            running.daemons[leaving].stop()
            running.wait_holders(_everything_on(scenario, staying), f"{staying} takes over from {leaving}")
            running.daemons[leaving].start()
            if scenario.preempt:
                running.wait_holders(scenario.vips, f"{leaving} comes back and pre-empts where it should")
            else:
                running.stays(_everything_on(scenario, staying), 4.0)  # nopreempt: it stays
        if not scenario.preempt:
            # the master is `first` again after the second round (the VIPs stayed with it)
            running.wait_holders(_everything_on(scenario, first), "first holds every VIP")

        # 3. the converted check is honoured
        if scenario.after_failure is None:
            return
        master = first
        host = next(h for h in lan.nodes if h.name == master)
        if scenario.port is not None:
            lan.stop(running.services.pop(master), signal.SIGTERM)
        elif scenario.uplink is not None:
            lan.run(host, "ip", "link", "set", scenario.uplink, "down")
        else:
            assert scenario.unreachable is not None
            lan.run(host, "ip", "route", "add", "blackhole", scenario.unreachable)
        expected = _everything_on(scenario, scenario.after_failure)
        if scenario.after_failure == master:
            running.stays(expected, 8.0)  # e.g. nopreempt: a lower master keeps the VIP
        else:
            running.wait_holders(
                expected, f"the check fails on {master}: the VIPs go to {scenario.after_failure}"
            )
