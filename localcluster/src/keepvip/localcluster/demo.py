"""``keepvip demo``: watch a VIP fail over between three nodes, live, on this machine.

Two forms tell the same story with the same client and the same acts:

* the **cluster** demo (the default, what ``make demo`` runs): a real Kubernetes control
  plane whose three nodes are network namespaces (:mod:`keepvip.localcluster`), the chart
  installed with ``helm install``, ``examples/ingress-vip.yaml`` applied, a web server per
  node naming it; the acts stop the master's web server, delete its speaker pod, and cut
  it off the LAN, while the VirtualIP's status tells who is master;
* the **standalone** demo (``--standalone``): no Kubernetes, three ``keepvip speaker
  --config`` processes from one embedded VirtualIP (the keepalived use case).

In both, a client namespace asks the VIP every 20 ms who answers, and each act reports
the longest time the client got no answer. Everything the demo creates is removed on
exit, on error and on Ctrl-C; processes are stopped by their own pid.
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
from typing import Protocol

import yaml

from keepvip.localcluster import probe, webserver
from keepvip.localcluster.lan import Lan, LanError
from keepvip.localcluster.procs import ChildProcess, install_exit_safety, stop_process
from keepvip.localcluster.source import ENVIRONMENT, SourceTreeMissingError, example, source_tree
from keepvip.localcluster.waiting import WaitTimeout, wait_until

NODES = (("node-a", 150), ("node-b", 120), ("node-c", 100))
WEB_PORT = 80
PROBE_EVERY = 0.02
PROBE_TIMEOUT = 1.0
DEMO_SUBNET_INDEX = 100  # 198.19.100.0/24: the LAN examples/ingress-vip.yaml is written for
EXAMPLE = "ingress-vip.yaml"  # in examples/ of the source tree (keepvip.localcluster.source)



# -- the client --------------------------------------------------------------------------


@dataclass
class ProbeLog:
    """What the client saw: (send time, answering node or None), appended by a reader thread."""

    samples: list[tuple[float, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, line: str) -> None:
        """One answer, stamped with the time its request was *sent* (requests overlap)."""
        stamp, _, answer = line.strip().partition(" ")
        with self.lock:
            self.samples.append((float(stamp), None if answer in ("", "-") else answer))
            self.samples.sort(key=lambda sample: sample[0])

    def current(self) -> str | None:
        """Who answered the latest request that completed."""
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


class Client:
    """The prober in the client namespace (a process of its own, read by a thread)."""

    def __init__(self, netns: str, vip: str) -> None:
        options = ["--period", str(PROBE_EVERY), "--timeout", str(PROBE_TIMEOUT), "--clock", "wall",
                   "--unanswered", "--max-seconds", str(24 * 3600)]  # fmt: skip
        argv = ["ip", "netns", "exec", netns, *probe.stream_argv(vip, WEB_PORT, options)]
        self.log = ProbeLog()
        self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.log.add(line)

    def close(self) -> None:
        """Stop the prober (by its process group)."""
        stop_process(self._process, grace=0, sig=signal.SIGKILL)


# -- narration ---------------------------------------------------------------------------


class World(Protocol):
    """What a demo world offers: a LAN with a VIP, a client namespace, a status to show."""

    vip: str

    @property
    def client_netns(self) -> str: ...

    def build(self) -> None: ...

    def status_line(self) -> str: ...

    def close(self) -> None: ...


class Stage:
    """Runs acts against a world, narrates them and keeps the summary."""

    def __init__(self, world: World, client: Client, out: Callable[[str], None], interactive: bool) -> None:
        self.world = world
        self.client = client
        self.out = out
        self.interactive = interactive
        self.started = time.time()
        self.summary: list[tuple[str, float, str | None, str | None, bool]] = []

    def say(self, text: str) -> None:
        """One narrated line, stamped with the time since the demo began."""
        self.out(f"[{time.time() - self.started:6.1f}s] {text}")

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Poll ``predicate`` until true or ``timeout``."""
        try:
            wait_until(predicate, timeout, interval=0.05)
        except WaitTimeout:
            return False
        return True

    def act(self, title: str, action: Callable[[], object], expect: str, timeout: float = 15.0) -> None:
        """Do ``action``; wait until ``expect`` answers; report the longest silence."""
        if self.interactive:
            input("  (press Enter for the next act) ")
        before = self.client.log.current()
        self.out("")
        self.say(f"▶ {title}")
        start = time.time()
        action()
        ok = self.wait_for(lambda: self.client.log.current() == expect, timeout)
        time.sleep(0.5)  # the last requests of the transition complete
        gap_ms, after = self.client.log.outage_since(start)
        verdict = "" if ok else f"  (expected {expect}: NOT met)"
        self.say(f"  client saw {before} → {after}; longest silence {gap_ms:.0f} ms{verdict}")
        self.say(f"  {self.world.status_line()}")
        self.summary.append((title, gap_ms, before, after, ok))

    def finish(self) -> int:
        """Print the summary; 0 when every act went as expected."""
        self.out("")
        self.out("summary (longest time the client got no answer during each act):")
        for title, gap, before, after, ok in self.summary:
            self.out(f"  {gap:7.0f} ms  {before} → {after}  {title}{'' if ok else '  [NOT as expected]'}")
        return 0 if all(ok for *_, ok in self.summary) else 1


# -- the standalone world ----------------------------------------------------------------


def virtualip_yaml(vip: str, gateway: str) -> str:
    """The standalone VirtualIP: examples/ingress-vip.yaml with the address, VRID and gateway set."""
    document = yaml.safe_load(example(EXAMPLE).read_text())
    spec = document["spec"]
    spec["addresses"] = [f"{vip}/24"]
    spec["vrrp"]["vrid"] = 51  # nobody allocates without the operator
    spec["arbiter"]["gateway"] = gateway
    return yaml.safe_dump(document, sort_keys=False)


class StandaloneWorld:
    """Three node namespaces with web servers and ``keepvip speaker --config``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lan = Lan(f"kvd{secrets.token_hex(2)}")
        self.web: dict[str, ChildProcess] = {}
        self.speakers: dict[str, ChildProcess] = {}
        self.vip = ""

    def build(self) -> None:
        self.lan.create()
        for number, (name, _) in enumerate(NODES, start=1):
            self.lan.add_node(name, number)
        self.vip = str(self.lan.vip(0))
        self.config = self.workdir / "virtualip.yaml"
        self.config.write_text(virtualip_yaml(self.vip, str(self.lan.gateway_address)))
        for name, _ in NODES:
            self.start_web(name)
            self.start_speaker(name)

    @property
    def client_netns(self) -> str:
        return self.lan.netns("client")

    def _in(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.lan.node(name).netns]

    def start_web(self, name: str) -> None:
        argv = [*self._in(name), *webserver.argv(name, WEB_PORT)]
        self.web[name] = ChildProcess(f"web-{name}", argv, self.workdir / f"web-{name}.log")
        self.web[name].start()

    def start_speaker(self, name: str) -> None:
        keepvip = str(Path(sys.executable).parent / "keepvip")
        state = self.workdir / f"state-{name}"  # the nodes share this machine's disk: one record each
        argv = [*self._in(name), keepvip, "speaker", "--config", str(self.config), "--node", name,
                "--state-dir", str(state)]  # fmt: skip
        self.speakers[name] = ChildProcess(f"speaker-{name}", argv, self.workdir / f"speaker-{name}.log")
        self.speakers[name].start()

    def connect(self, names: tuple[str, ...], connected: bool) -> None:
        """Plug nodes into the switch or pull them out (their own link stays up)."""
        for name in names:
            (self.lan.reconnect if connected else self.lan.disconnect)(name)

    def holders(self) -> list[str]:
        """Nodes holding the VIP on their interface."""
        held = []
        for name in (host.name for host in self.lan.nodes):
            out = subprocess.run([*self._in(name), "ip", "-o", "-4", "addr", "show", "dev", "eth0"],
                                 capture_output=True, text=True, check=False).stdout  # fmt: skip
            if f" {self.vip}/" in out:
                held.append(name)
        return held

    def status_line(self) -> str:
        return f"VIP {self.vip} held by {', '.join(self.holders()) or 'none'}"

    def close(self) -> None:
        for process in [*self.speakers.values(), *self.web.values()]:
            process.stop(grace=2.0)
        self.lan.close()


def standalone_acts(stage: Stage, world: StandaloneWorld) -> None:
    """The standalone story."""
    stage.act("stop node-a's web server (its health check fails: priority 150-60=90)",
              lambda: world.web["node-a"].stop(grace=1.0), "node-b")  # fmt: skip
    stage.act("start node-a's web server again (node-a pre-empts back)",
              lambda: world.start_web("node-a"), "node-a")  # fmt: skip
    stage.act("stop node-a's speaker with SIGTERM (planned: priority-0 handover)",
              lambda: world.speakers["node-a"].stop(grace=2.0), "node-b")  # fmt: skip
    stage.act("start node-a's speaker again", lambda: world.start_speaker("node-a"), "node-a")
    stage.act("kill node-a's speaker with SIGKILL (the VIP stays on node-a until node-b announces)",
              lambda: world.speakers["node-a"].signal(signal.SIGKILL), "node-b")  # fmt: skip
    stage.act("restart node-a's speaker (it removes the VIP it left behind, then pre-empts)",
              lambda: world.start_speaker("node-a"), "node-a")  # fmt: skip
    stage.act("cut node-b and node-c off the LAN (they lose node-a's adverts and the gateway)",
              lambda: world.connect(("node-b", "node-c"), False), "node-a", timeout=5)  # fmt: skip
    time.sleep(2)
    isolated = [n for n in world.holders() if n != "node-a"] or "none"
    stage.say(f"  isolated nodes holding the VIP 2 s later: {isolated}")
    stage.say("  (they cannot reach the gateway: the arbiter put them in FAULT after 3 probes)")
    stage.act("reconnect them", lambda: world.connect(("node-b", "node-c"), True), "node-a", timeout=5)


# -- the cluster world -------------------------------------------------------------------


class ClusterWorld:
    """The local Kubernetes cluster with keepvip installed by helm and the example applied."""

    def __init__(self, workdir: Path, say: Callable[[str], None]) -> None:
        from keepvip.localcluster.cluster import ClusterConfig, LocalCluster  # noqa: PLC0415
        from keepvip.localcluster.scenario import KeepvipOnCluster  # noqa: PLC0415

        self.workdir = workdir
        self.say = say
        try:
            self.cluster = LocalCluster(ClusterConfig(workdir=workdir / "cluster",
                                                      subnet_index=DEMO_SUBNET_INDEX)).start()  # fmt: skip
        except LanError:
            say(f"198.19.{DEMO_SUBNET_INDEX}.0/24 is in use; taking another subnet for the demo")
            self.cluster = LocalCluster(ClusterConfig(workdir=workdir / "cluster")).start()
        self.keepvip = KeepvipOnCluster(self.cluster, "keepvip-system")
        self.vip = str(self.cluster.vip(0))
        self.name = "ingress"

    @property
    def client_netns(self) -> str:
        return self.cluster.client_netns

    def build(self) -> None:
        self.say(f"control plane up in {self.cluster.start_seconds:.1f} s at {self.cluster.server_url}")
        self.say("helm install keepvip charts/keepvip -n keepvip-system ...")
        # Kubernetes 1.20 has no spec.loadBalancerClass: act two's Service is class-less.
        helm = self.cluster.helm(self.workdir / "helm")
        self.keepvip.install(helm, ["--set", "loadBalancer.defaultClass=true"])
        self.say("operator running; a speaker ready on every node")
        for name, _ in NODES:
            self.keepvip.start_web(name)
        document = yaml.safe_load(example(EXAMPLE).read_text())
        document["spec"]["addresses"] = [f"{self.vip}/24"]  # same as the file on 198.19.100.0/24
        self.say(f"kubectl apply -f examples/ingress-vip.yaml  (address {self.vip})")
        self.keepvip.apply(document)

    def status_line(self) -> str:
        status = self.keepvip.status(self.name)
        states = self.keepvip.node_states(self.name)
        nodes = " ".join(f"{node}={states.get(node, '-')}" for node, _ in NODES)
        return (f"kubectl get vip: MASTER {status.get('master') or '-'}, STATE {status.get('state', '-')},"
                f" VRID {status.get('vrid', '-')}; nodes {nodes}")  # fmt: skip

    def story(self) -> list[str]:
        """The VirtualIP's events, as ``kubectl describe vip`` lists them."""
        events = self.cluster.objects.list("v1", "Event", field_selector=f"involvedObject.name={self.name}")
        events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return [f"{e.get('type', '')[:7]:<8}{e.get('reason', ''):<16}{e.get('message', '')}" for e in events]

    def reconnect(self, node: str) -> None:
        """Plug the node back into the LAN; it is Ready again."""
        self.cluster.reconnect_node(node)
        self.cluster.set_node_ready(node, True)

    def close(self) -> None:
        self.keepvip.stop_all_web()
        self.cluster.stop()


def cluster_acts(stage: Stage, world: ClusterWorld) -> None:
    """The cluster story."""
    keepvip = world.keepvip
    stage.act("stop node-a's web server (its health check fails: priority 150-60=90)",
              lambda: keepvip.stop_web("node-a"), "node-b")  # fmt: skip
    stage.act("start node-a's web server again (node-a pre-empts back)",
              lambda: keepvip.start_web("node-a"), "node-a")  # fmt: skip
    stage.act("kubectl delete pod <node-a's speaker>  (SIGTERM: priority-0 handover)",
              lambda: keepvip.delete_speaker_pod("node-a"), "node-b")  # fmt: skip
    stage.act("the DaemonSet starts a new speaker on node-a (it pre-empts back)",
              lambda: None, "node-a", timeout=90)  # fmt: skip
    stage.act("cut node-a off the LAN (its link stays up; it hears no one, reaches no gateway)",
              lambda: world.cluster.disconnect_node("node-a"), "node-b")  # fmt: skip
    holders = keepvip.holders(world.vip)
    stage.say(f"  nodes holding the VIP: {', '.join(holders) or 'none'}"
              " (node-a's arbiter lost the gateway: FAULT, no split brain)")  # fmt: skip
    stage.say("  node-a cannot reach the API server either, so its status entry still says MASTER;")
    stage.say("  a real cluster marks the node NotReady after ~40 s, the demo does it now:")
    world.cluster.set_node_ready("node-a", False)
    stage.wait_for(lambda: world.keepvip.status(world.name).get("master") == "node-b", 10)
    stage.say(f"  {world.status_line()}")
    stage.act("plug node-a back in", lambda: world.reconnect("node-a"), "node-a")
    stage.out("")
    stage.say("kubectl describe vip ingress  (events):")
    for line in world.story():
        stage.say(f"  {line}")


# -- act two: a LoadBalancer Service ----------------------------------------------------

LB_NAMESPACE, LB_TARGET = "shop", 18100


def lb_service() -> dict[str, object]:
    """Act two's Service: class-less ``type: LoadBalancer`` on port 80."""
    ports = [{"port": WEB_PORT, "targetPort": LB_TARGET, "protocol": "TCP"}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": LB_NAMESPACE},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": ports}}  # fmt: skip


@dataclass
class LoadBalancerView:
    """Act two's world for the stage: a Service's EXTERNAL-IP and who holds it."""

    world: ClusterWorld
    vip: str

    @property
    def client_netns(self) -> str:
        return self.world.client_netns

    def build(self) -> None:
        """Built by :func:`loadbalancer_acts`."""

    def status_line(self) -> str:
        held = ", ".join(self.world.keepvip.holders(self.vip)) or "none"
        return f"kubectl get svc -n {LB_NAMESPACE} web: EXTERNAL-IP {self.vip}, held by {held}"

    def close(self) -> None:
        """Removed with the cluster."""


def loadbalancer_acts(stage: Stage, world: ClusterWorld) -> None:
    """Act two: a pool and a ``type: LoadBalancer`` Service, reached through its VIP and kube-proxy."""
    from keepvip.localcluster.scenario import backend_pod  # noqa: PLC0415

    cluster, objects = world.cluster, world.cluster.objects
    stage.out("")
    stage.say("act two: a Service of type LoadBalancer gets its address from a VirtualIPPool")
    addresses = f"{cluster.vip(10)}-{cluster.vip(19)}"
    pool = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIPPool", "metadata": {"name": "demo"},
            "spec": {"addresses": [addresses],
                     "template": {"nodePriorities": [{"nodeName": n, "priority": p} for n, p in NODES[:2]],
                                  "vrrp": {"advertisementInterval": "100ms"}}}}  # fmt: skip
    stage.say(f"kubectl apply -f pool.yaml  (VirtualIPPool demo: {addresses})")
    objects.apply(pool, field_manager="kubectl")
    cluster.create_namespace(LB_NAMESPACE)
    # The pod answers "<pod> <node> <source>"; kube-proxy masquerades Cluster-policy traffic
    # at the VIP's holder, so the source, named here, tells who carries the VIP.
    nodes = {str(cluster.nodes[n].ipv4.ip): f"via-{n}" for n in cluster.nodes}
    objects.create(backend_pod("web", "node-c", LB_TARGET, {"app": "web"}, nodes), LB_NAMESPACE)
    objects.apply(lb_service(), field_manager="kubectl", namespace=LB_NAMESPACE)
    stage.say(f"kubectl -n {LB_NAMESPACE} run web (on node-c); expose it: type LoadBalancer, port 80")

    def external_ip() -> str | None:
        found = objects.get("v1", "Service", "web", LB_NAMESPACE) or {}
        ingress = ((found.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return str(ingress[0]["ip"]) if ingress else None

    if not stage.wait_for(lambda: external_ip() is not None, 60):
        stage.say("  the Service got no EXTERNAL-IP  [NOT as expected]")
        stage.summary.append(("LoadBalancer Service gets an EXTERNAL-IP", 0.0, None, None, False))
        return
    view = LoadBalancerView(world, str(external_ip()))
    client = Client(view.client_netns, view.vip)
    try:
        lb = Stage(view, client, stage.out, stage.interactive)
        lb.started, lb.summary = stage.started, stage.summary
        ok = lb.wait_for(lambda: client.log.current() == "web node-c via-node-a", 60)
        lb.say(f"the client asks {view.vip}:80 every 20 ms: {client.log.current()}"
               + ("" if ok else "  (not through node-a: NOT as expected)"))  # fmt: skip
        lb.say(f"  {view.status_line()}  (node-a's kube-proxy forwards to the pod on node-c)")
        lb.act("ip link set eth0 down on node-a (the VIP's holder fails)",
               lambda: cluster.set_node_link("node-a", False), "web node-c via-node-b")  # fmt: skip
        lb.act("ip link set eth0 up on node-a (it pre-empts back)",
               lambda: cluster.set_node_link("node-a", True), "web node-c via-node-a")  # fmt: skip
    finally:
        client.close()


# -- entry points ------------------------------------------------------------------------


def _require_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("keepvip demo builds network namespaces: run it as root (e.g. sudo make demo)")
    if shutil.which("ip") is None:
        raise SystemExit("keepvip demo needs 'ip' (Debian: apt-get install iproute2)")


def _play(world: World, acts: Callable[[Stage], None], out: Callable[[str], None],
          interactive: bool, workdir: Path) -> int:  # fmt: skip
    """Build the world, start the client, wait for node-a, run the acts; always clean up."""
    stage: Stage | None = None
    client: Client | None = None
    try:
        world.build()
        client = Client(world.client_netns, world.vip)
        stage = Stage(world, client, out, interactive)
        ok = stage.wait_for(lambda: client is not None and client.log.current() == "node-a", 60)
        stage.say(f"the client asks {world.vip} every 20 ms: answered by {client.log.current()}"
                  + ("" if ok else "  (node-a did NOT win the election)"))  # fmt: skip
        stage.say(f"  {world.status_line()}")
        acts(stage)
        return stage.finish() if ok else 1
    except KeyboardInterrupt:
        out("\ninterrupted: cleaning up")
        return 130
    finally:
        if client is not None:
            client.close()
        world.close()
        out(f"removed everything the demo created; logs kept in {workdir}")


def run_standalone(interactive: bool = False, out: Callable[[str], None] = print) -> int:
    """The standalone demo (no Kubernetes)."""
    _require_root()
    install_exit_safety()
    workdir = Path(tempfile.mkdtemp(prefix="keepvip-demo-"))
    out("keepvip demo (standalone): one virtual IP, three nodes, real VRRP on network namespaces")
    out("nodes: " + ", ".join(f"{name} (priority {prio})" for name, prio in NODES))
    out(f"logs: {workdir}")
    world = StandaloneWorld(workdir)
    return _play(world, lambda stage: standalone_acts(stage, world), out, interactive, workdir)


def run_cluster(interactive: bool = False, out: Callable[[str], None] = print) -> int:
    """The cluster demo: helm install, kubectl apply, failover."""
    from keepvip.localcluster.binaries import BinariesMissingError  # noqa: PLC0415

    _require_root()
    install_exit_safety()
    workdir = Path(tempfile.mkdtemp(prefix="keepvip-demo-"))
    out("keepvip demo: a local Kubernetes cluster (3 nodes as network namespaces), helm install, one VIP")
    out(f"logs: {workdir}")
    started = time.time()
    try:
        world = ClusterWorld(workdir, lambda text: out(f"[{time.time() - started:6.1f}s] {text}"))
    except BinariesMissingError as error:
        out(f"{error}\n(`make demo` builds them first: bash hack/build-k8s.sh && bash hack/get-helm.sh)")
        return 1

    def acts(stage: Stage) -> None:
        cluster_acts(stage, world)
        loadbalancer_acts(stage, world)

    return _play(world, acts, out, interactive, workdir)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``keepvip demo``."""
    try:  # the chart and examples/ come from the source tree: find it before anything starts
        os.environ[ENVIRONMENT] = str(source_tree(getattr(args, "source", None)))
    except SourceTreeMissingError as error:
        print(f"keepvip demo: {error}", file=sys.stderr)
        return 2
    if args.standalone:
        return run_standalone(interactive=args.interactive)
    return run_cluster(interactive=args.interactive)
