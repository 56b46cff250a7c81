"""``keepvip demo``: watch a VIP fail over between three nodes, live, on this machine.

Standalone form (``--standalone``; the default until the cluster demo lands): three
network namespaces on a bridge play three nodes, each serving a web page that names
it and running ``keepvip speaker`` from one embedded VirtualIP; a client namespace asks
the VIP every 20 ms who answers. The demo then breaks things the way production does
(a web server dies, a node is drained, a node is cut off the LAN) and shows, per act,
who held the VIP and how long the client saw no answer. Everything it creates is
removed on exit, on error and on Ctrl-C; processes are stopped by their own pid.
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from keepvip.localcluster.lan import Lan
from keepvip.localcluster.procs import ChildProcess, install_exit_safety

NODES = (("node-a", 150), ("node-b", 120), ("node-c", 100))
WEB_PORT = 80
PROBE_EVERY = 0.02
PROBE_TIMEOUT = 1.0

PROBE_SCRIPT = """
import asyncio, sys, time
vip, port, every, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])

async def ask(sent):
    answer = "-"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(vip, port)
            writer.write(b"GET / HTTP/1.0\\r\\nHost: vip\\r\\n\\r\\n")
            data = await reader.read()
            writer.close()
            answer = data.split(b"\\r\\n\\r\\n", 1)[1].decode().strip() or "-"
    except (OSError, IndexError, UnicodeDecodeError, TimeoutError):
        pass
    print(f"{sent:.3f} {answer}", flush=True)

async def main():
    tasks = set()
    while True:
        task = asyncio.create_task(ask(time.time()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(every)

asyncio.run(main())
"""


def virtualip_yaml(vip: str, gateway: str) -> str:
    """The embedded VirtualIP: priorities per node, a web health check, a gateway arbiter."""
    priorities = "\n".join(f"    - {{nodeName: {name}, priority: {prio}}}" for name, prio in NODES)
    return f"""apiVersion: keepvip.io/v1alpha1
kind: VirtualIP
metadata:
  name: ingress
spec:
  addresses: [{vip}/24]
  priority: 100
  nodePriorities:
{priorities}
  vrrp:
    version: 3
    vrid: 51
    advertisementInterval: 100ms
  healthChecks:
    - name: web
      tcp: {{port: {WEB_PORT}}}
      interval: 200ms
      timeout: 200ms
      rise: 2
      fall: 2
      weight: -60
  arbiter:
    gateway: {gateway}
    interval: 200ms
    timeout: 200ms
    fall: 3
    rise: 3
"""


@dataclass
class ProbeLog:
    """What the client saw: (wall time, answering node or None), appended by a reader thread."""

    samples: list[tuple[float, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, line: str) -> None:
        """One answer, stamped with the time its request was *sent* (requests overlap)."""
        stamp, _, answer = line.strip().partition(" ")
        with self.lock:
            self.samples.append((float(stamp), None if answer in ("", "-") else answer))
            self.samples.sort(key=lambda sample: sample[0])

    def current(self) -> str | None:
        with self.lock:
            return self.samples[-1][1] if self.samples else None

    def outage_since(self, start: float) -> tuple[float, str | None]:
        """Longest time without an answer since ``start`` (ms), and who answers now.

        Measured between the send times of consecutive answered requests, from the last
        one answered before ``start``.
        """
        with self.lock:
            before = [t for t, a in self.samples if t < start and a is not None][-1:]
            after = [(t, a) for t, a in self.samples if t >= start]
        answered = before + [t for t, a in after if a is not None]
        gaps = [b - a for a, b in itertools.pairwise(answered)]
        return (max(gaps, default=0.0) * 1000.0, after[-1][1] if after else None)


class Demo:
    """The three-node namespace LAN with web servers, speakers and a probing client."""

    def __init__(self, workdir: Path, out: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.out = out
        self.lan = Lan(f"kvd{secrets.token_hex(2)}")
        self.web: dict[str, ChildProcess] = {}
        self.speakers: dict[str, ChildProcess] = {}
        self.probe: subprocess.Popen[str] | None = None
        self.log = ProbeLog()
        self.started = time.time()
        self.summary: list[tuple[str, float, str | None, str | None]] = []

    # -- building ----------------------------------------------------------------------
    def build(self) -> None:
        self.lan.create()
        for number, (name, _) in enumerate(NODES, start=1):
            self.lan.add_node(name, number)
            site = self.workdir / name
            site.mkdir()
            (site / "index.html").write_text(f"{name}\n")
        self.vip = str(self.lan.vip(0))
        self.config = self.workdir / "virtualip.yaml"
        self.config.write_text(virtualip_yaml(self.vip, str(self.lan.gateway_address)))
        for name, _ in NODES:
            self.start_web(name)
            self.start_speaker(name)
        self.start_probe()

    def _in(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.lan.ports[name].netns]

    def start_web(self, name: str) -> None:
        argv = [*self._in(name), sys.executable, "-m", "http.server", str(WEB_PORT),
                "--directory", str(self.workdir / name)]  # fmt: skip
        self.web[name] = ChildProcess(f"web-{name}", argv, self.workdir / f"web-{name}.log")
        self.web[name].start()

    def start_speaker(self, name: str) -> None:
        argv = [*self._in(name), sys.executable, "-m", "keepvip", "speaker",
                "--config", str(self.config), "--node", name]  # fmt: skip
        self.speakers[name] = ChildProcess(f"speaker-{name}", argv, self.workdir / f"speaker-{name}.log")
        self.speakers[name].start()

    def start_probe(self) -> None:
        script = self.workdir / "probe.py"
        script.write_text(PROBE_SCRIPT)
        argv = ["ip", "netns", "exec", self.lan.client_ns, sys.executable, str(script), self.vip,
                str(WEB_PORT), str(PROBE_EVERY), str(PROBE_TIMEOUT)]  # fmt: skip
        self.probe = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
        threading.Thread(target=self._read_probe, daemon=True).start()

    def _read_probe(self) -> None:
        assert self.probe is not None
        assert self.probe.stdout is not None
        for line in self.probe.stdout:
            self.log.add(line)

    def close(self) -> None:
        if self.probe is not None and self.probe.poll() is None:
            os.killpg(self.probe.pid, signal.SIGKILL)
            self.probe.wait()
        for process in [*self.speakers.values(), *self.web.values()]:
            process.stop(grace=2.0)
        self.lan.destroy()

    def connect(self, names: tuple[str, ...], connected: bool) -> None:
        """Plug nodes into the switch or pull them out (their own link stays up)."""
        for name in names:
            (self.lan.reconnect if connected else self.lan.disconnect)(name)

    # -- watching ----------------------------------------------------------------------
    def holders(self) -> dict[str, bool]:
        """Which nodes hold the VIP on their interface right now."""
        held = {}
        for name in self.lan.ports:
            out = subprocess.run([*self._in(name), "ip", "-o", "-4", "addr", "show", "dev", "eth0"],
                                 capture_output=True, text=True, check=False).stdout  # fmt: skip
            held[name] = f" {self.vip}/" in out
        return held

    def status_line(self) -> str:
        held = [name for name, yes in self.holders().items() if yes]
        answer = self.log.current() or "nobody"
        return f"VIP {self.vip} answered by {answer:<7} held by {', '.join(held) or 'none'}"

    def say(self, text: str) -> None:
        self.out(f"[{time.time() - self.started:6.1f}s] {text}")

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def act(self, title: str, action: Callable[[], object], expect: Callable[[str | None], bool],
            timeout: float = 15.0) -> None:  # fmt: skip
        """Do ``action``, wait until the client's answers satisfy ``expect``, report the gap."""
        before = self.log.current()
        self.out("")
        self.say(f"▶ {title}")
        start = time.time()
        action()
        ok = self.wait_for(lambda: expect(self.log.current()), timeout)
        time.sleep(0.5)  # let the last samples of the transition arrive
        gap_ms, after = self.log.outage_since(start)
        verdict = "" if ok else "  (expectation NOT met)"
        self.say(f"  client saw {before} → {after}; longest silence {gap_ms:.0f} ms{verdict}")
        self.say(f"  {self.status_line()}")
        self.summary.append((title, gap_ms, before, after))


def _require_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("keepvip demo builds network namespaces: run it as root (e.g. sudo make demo)")
    for tool in ("ip",):
        if shutil.which(tool) is None:
            raise SystemExit(f"keepvip demo needs {tool!r} (Debian: apt-get install iproute2)")


def run_standalone(interactive: bool = False, out: Callable[[str], None] = print) -> int:
    """The standalone demo; returns 0 when every act went as expected."""
    _require_root()
    install_exit_safety()
    workdir = Path(tempfile.mkdtemp(prefix="keepvip-demo-"))
    demo = Demo(workdir, out)

    def pause() -> None:
        if interactive:
            input("  (press Enter for the next act) ")

    try:
        out("keepvip demo: one virtual IP, three nodes, real VRRP on network namespaces")
        demo.build()
        out(f"LAN {demo.lan.subnet}, VIP {demo.vip}, gateway {demo.lan.gateway_address}")
        out("nodes: " + ", ".join(f"{name} (priority {prio})" for name, prio in NODES))
        out(f"logs: {workdir}")
        demo.say("starting three web servers and three speakers...")
        ok = demo.wait_for(lambda: demo.log.current() == "node-a", 20)
        demo.say(f"{demo.status_line()}" + ("" if ok else "  (node-a did NOT win the election)"))
        pause()
        demo.act("stop node-a's web server (health check fails, priority 150-60=90)",
                 lambda: demo.web["node-a"].stop(grace=1.0), lambda a: a == "node-b")  # fmt: skip
        pause()
        demo.act("start node-a's web server again (node-a pre-empts back)",
                 lambda: demo.start_web("node-a"), lambda a: a == "node-a")  # fmt: skip
        pause()
        demo.act("stop node-a's speaker with SIGTERM (planned: priority-0 handover)",
                 lambda: demo.speakers["node-a"].stop(grace=2.0), lambda a: a == "node-b")  # fmt: skip
        pause()
        demo.act("start node-a's speaker again",
                 lambda: demo.start_speaker("node-a"), lambda a: a == "node-a")  # fmt: skip
        pause()
        demo.act("kill node-a's speaker with SIGKILL (the VIP stays on node-a until node-b announces)",
                 lambda: demo.speakers["node-a"].signal(signal.SIGKILL), lambda a: a == "node-b")  # fmt: skip
        # The crashed speaker left the VIP on node-a; its restart removes it first.
        pause()
        demo.act("restart node-a's speaker (it removes the VIP it left behind, then pre-empts)",
                 lambda: demo.start_speaker("node-a"), lambda a: a == "node-a")  # fmt: skip
        pause()
        demo.act("cut node-b and node-c off the LAN (node-a alone; the arbiter keeps them out)",
                 lambda: demo.connect(("node-b", "node-c"), False), lambda a: a == "node-a",
                 timeout=5)  # fmt: skip
        time.sleep(2)
        held = demo.holders()
        isolated = [n for n in ("node-b", "node-c") if held[n]] or "none"
        demo.say(f"  isolated nodes holding the VIP 2 s later: {isolated}")
        demo.say("  (they cannot reach the gateway: the arbiter put them in FAULT within 3 probes)")
        demo.act("reconnect them", lambda: demo.connect(("node-b", "node-c"), True),
                 lambda a: a == "node-a", timeout=5)  # fmt: skip
        out("")
        out("summary (longest time the client got no answer during each act):")
        for title, gap, before, after in demo.summary:
            out(f"  {gap:7.0f} ms  {before} → {after}  {title}")
        return 0
    except KeyboardInterrupt:
        out("\ninterrupted: cleaning up")
        return 130
    finally:
        demo.close()
        out(f"removed the demo's namespaces; logs kept in {workdir}")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``keepvip demo``."""
    return run_standalone(interactive=args.interactive)
