"""LoadBalancer at scale: hundreds of ``type: LoadBalancer`` Services at once, then a mass failover.

Runs on ``keepvip.localcluster`` (a v1.20 control plane, three nodes as namespaces, the
process kubelet, kube-proxy in iptables mode in every node namespace) with the chart
installed by helm (``loadBalancer.defaultClass=true``), as the end-to-end tests do. Hold
the cluster lock while it runs (only one cluster fits on the machine)::

    flock /tmp/keepvip-cluster.lock .venv/bin/python bench/lb.py --services 500

The scene: one VirtualIPPool of exactly ``--services`` addresses in 198.18.204.0/22 (on
``eth0`` of the node namespaces, routed on-link in the client namespace only), node-c
preferred (priority 150) so that it holds every VIP; two backend pods on node-a and
node-b; ``--services`` Services selecting them, created at once (16 client threads).

Measured:

* **allocation**: seconds from the first create until each Service has
  ``status.loadBalancer.ingress`` (polled every second), p50 / p99 / max;
* **answering**: seconds until each VIP answers an HTTP GET from the LAN client, through
  the holder's kube-proxy to a backend pod (a prober in the client namespace dials every
  pool address in rounds, 1 s connect timeout), p50 / p99 / max;
* **API writes** from the first create until every VIP answers, in total and per Service
  (the API server's own ``apiserver_request_total``), by verb and resource;
* operator and speaker **RSS and CPU** over that same window;
* **mass failover**: node-c's link goes down (``ip link set eth0 down`` in its
  namespace) while it holds every VIP; seconds until each VIP answers again through the
  new holder, p50 / p99 / max. With ``advertisementInterval: 1s`` RFC 9568 §6.4.2 puts
  the backups' Master_Down_Interval at 3 × 1 s + Skew_Time (≈ 3.6 s at priority 100);
* **operator restart** (bench/lb_restart.py): once every VIP answers, every Service's
  addresses are read, the operator container is SIGKILLed (bench/chaos_cluster.py's
  ``Injector``: the kubelet restarts it) and, once it is Ready again and its
  ``/metrics`` show a finished LoadBalancer pass followed by a quiet period with no
  other, read again: Services whose addresses **changed** and addresses on two
  Services that do not share them (**duplicates**), both to be 0; and, since the kill
  comes only once the operator has written nothing for ``QUIET`` seconds (its status of
  every Service and VirtualIP is current), the restart must **write nothing**: no
  Service or VirtualIP status patch, no Event on them (issue 15); every status field
  that differs after the restart is named;
* **holders** (bench/lb_holders.py): every node namespace read at once, every 0.5 s,
  until each VIP has exactly one holder three rounds in a row — once every VIP answers
  (before the failure), from the failure on, and once every VIP answers again — with
  how long each address was seen on two nodes and, for those, the speakers' logged
  state transitions. A single look read one namespace after another cannot tell a VIP
  moving between nodes, or the equal-priority backups' brief race (§6.4.3), from a VIP
  left on two nodes.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from chaos_cluster import ClusterFault, ClusterFaultPlan, Injector  # noqa: E402
from cluster_scale import by_resource, delta, keepvip_processes, spread, usage_line, writes  # noqa: E402
from lb_holders import Convergence, transitions, watch  # noqa: E402
from lb_restart import (  # noqa: E402
    RestartVerdict,
    assigned,
    compare,
    new_events,
    operator_writes,
    passes,
    status_changes,
)
from procstat import CpuWindow  # noqa: E402

from keepvip.localcluster import ClusterConfig, LocalCluster, wait_until  # noqa: E402
from keepvip.localcluster.scenario import API_VERSION, KeepvipOnCluster, backend_pod  # noqa: E402

VIP_NETWORK = IPv4Network("198.18.204.0/22")
NODES = ("node-a", "node-b", "node-c")
HOLDER, BACKENDS = "node-c", ("node-a", "node-b")
PORT, TARGET = 80, 18100
NAMESPACE = "bench-lb"
OPERATOR_METRICS = "http://127.0.0.1:9473/metrics"  # the chart's operator.metricsPort, in its node
QUIET = 10.0  # seconds without another LoadBalancer pass once the restarted operator finished one

# Run in the client namespace: dial every address (argv: port, deadline in s, addresses...)
# in rounds until each has answered an HTTP GET; print {address: wall-clock time of its
# first answer} as JSON. A round dials every address not yet answered at once.
PROBER = """
import asyncio, json, sys, time
port, deadline, addresses = int(sys.argv[1]), time.time() + float(sys.argv[2]), sys.argv[3:]
answered = {}
async def ask(address):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 1.0)
        writer.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
        data = await asyncio.wait_for(reader.read(), 1.0)
        writer.close()
        if data.startswith(b"HTTP/1.0 200"):
            answered.setdefault(address, time.time())
    except (OSError, asyncio.TimeoutError):
        pass
async def main():
    while len(answered) < len(addresses) and time.time() < deadline:
        started = time.time()
        await asyncio.gather(*(ask(a) for a in addresses if a not in answered))
        await asyncio.sleep(max(0.0, 0.2 - (time.time() - started)))
asyncio.run(main())
print(json.dumps(answered))
"""


def pool_addresses(count: int) -> list[IPv4Address]:
    return [VIP_NETWORK[1 + n] for n in range(count)]


def pool_document(count: int) -> dict[str, Any]:
    addresses = pool_addresses(count)
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualIPPool",
        "metadata": {"name": "bench"},
        "spec": {
            "addresses": [f"{addresses[0]}-{addresses[-1]}"],
            "template": {
                "interface": "eth0",
                "nodePriorities": [{"nodeName": HOLDER, "priority": 150}],
                "vrrp": {"advertisementInterval": "1s"},
            },
        },
    }


def service_document(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"lb-{index:04d}", "namespace": NAMESPACE},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "bench"},
            "ports": [{"name": "http", "port": PORT, "targetPort": TARGET, "protocol": "TCP"}],
        },
    }


def start_prober(
    cluster: LocalCluster, addresses: list[IPv4Address], deadline: float
) -> subprocess.Popen[str]:
    argv = ["ip", "netns", "exec", cluster.client_netns, sys.executable, "-c", PROBER, str(PORT),
            str(deadline), *map(str, addresses)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def prober_result(prober: subprocess.Popen[str], started_wall: float, timeout: float) -> dict[str, float]:
    """address → seconds after ``started_wall`` until it first answered."""
    out, _ = prober.communicate(timeout=timeout)
    return {address: at - started_wall for address, at in json.loads(out or "{}").items()}


def ingress_times(cluster: LocalCluster, count: int, started: float, timeout: float) -> dict[str, float]:
    """Service name → seconds until it had an ingress address (polled every second)."""
    got: dict[str, float] = {}
    while len(got) < count and time.monotonic() - started < timeout:
        now = time.monotonic() - started
        for item in cluster.objects.list("v1", "Service", NAMESPACE):
            ingress = ((item.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if ingress and item["metadata"]["name"] not in got:
                got[item["metadata"]["name"]] = now
        print(f"  {now:5.0f} s: {len(got)} with an EXTERNAL-IP", file=sys.stderr, flush=True)
        time.sleep(1.0)
    return got


def record_names(cluster: LocalCluster, addresses: set[str]) -> dict[str, str]:
    """address → the VirtualIP record that carries it (the operator's LoadBalancer records)."""
    return {
        str(address).split("/")[0]: item["metadata"]["name"]  # records carry "address/32"
        for item in cluster.objects.list(API_VERSION, "VirtualIP")
        for address in item.get("spec", {}).get("addresses", ())
        if str(address).split("/")[0] in addresses
    }


def explain(deployment: KeepvipOnCluster, names: dict[str, str], seen: Convergence) -> dict[str, Any]:
    """The speakers' state transitions for the VirtualIPs of addresses seen doubly held."""
    doubled = {names[a] for a in seen.double_windows if a in names}
    moves = transitions({n: deployment.speaker_log(n) for n in NODES}, doubled)
    return {
        a: {
            "virtualip": names.get(a),
            "seen_double": seen.double_windows[a],
            "transitions": moves.get(names.get(a, ""), []),
        }
        for a in sorted(seen.double_windows)
    }


def operator_passes(cluster: LocalCluster, node: str) -> int:
    """The LoadBalancer passes the operator on ``node`` finished (its /metrics, read in its node)."""
    fetch = f"import urllib.request as u; print(u.urlopen({OPERATOR_METRICS!r}, timeout=5).read().decode())"
    done = cluster.exec_in_node(node, [sys.executable, "-c", fetch], timeout=15)
    return passes(done.stdout) if done.returncode == 0 else 0


def restart_operator(cluster: LocalCluster, deployment: KeepvipOnCluster, timeout: float) -> dict[str, Any]:
    """SIGKILL the operator, wait until it is back and has done a full pass, then a quiet period.

    The kill and the wait for the kubelet's restart are the chaos bench's (``Injector``:
    the container's pid by the process kubelet, SIGKILL, ready with a higher
    ``restartCount``). A finished pass is not enough alone: the watch events of every
    Service wake the controller again, so the restart is over once no further pass has
    finished for ``QUIET`` seconds (bounded by ``timeout``).
    """
    injector = Injector(cluster, deployment)
    fault = ClusterFaultPlan(0, ClusterFault.OPERATOR, None, 0.0, 0.0, None)
    waited = wait_for_quiet(cluster, timeout)
    services = cluster.objects.list("v1", "Service", NAMESPACE)
    records = cluster.objects.list(API_VERSION, "VirtualIP")
    events = cluster.objects.list("v1", "Event")
    before = writes(cluster)
    killed = time.monotonic()
    pod, restarts = injector.apply(fault)
    injector.heal(fault, (pod, restarts))
    ready = time.monotonic() - killed
    node = (cluster.objects.get("v1", "Pod", pod, deployment.namespace) or {})["spec"]["nodeName"]
    wait_until(lambda: operator_passes(cluster, node) > 0, timeout=timeout, interval=1.0,
               what="the restarted operator's pass")  # fmt: skip
    first_pass = time.monotonic() - killed
    count, since = operator_passes(cluster, node), time.monotonic()
    while time.monotonic() - since < QUIET and time.monotonic() - killed < timeout:
        time.sleep(1.0)
        if (now := operator_passes(cluster, node)) != count:
            count, since = now, time.monotonic()
    quiet = time.monotonic() - since >= QUIET
    written = delta(writes(cluster), before)
    return {"ready_s": ready, "first_pass_s": first_pass, "passes": count, "quiet": quiet,
            "settled_s": time.monotonic() - killed, "writes": written, "quiet_before_s": waited,
            "operator_writes": operator_writes(written),
            "events": new_events(events, cluster.objects.list("v1", "Event")),
            "services_changed": status_changes(services, cluster.objects.list("v1", "Service", NAMESPACE)),
            "records_changed": status_changes(records, cluster.objects.list(API_VERSION, "VirtualIP"),
                                              skip=("nodes",))}  # fmt: skip


def wait_for_quiet(cluster: LocalCluster, timeout: float) -> float:
    """Seconds until the operator wrote nothing (:func:`operator_writes`) for ``QUIET`` seconds.

    Before the kill: the Services' conditions follow the records' holders a pass later,
    so a kill right after the VIPs answer would leave the restarted operator a real
    change to write, and its writes would not be the restart's.
    """
    started = last = time.monotonic()
    seen = writes(cluster)
    while time.monotonic() - last < QUIET and time.monotonic() - started < timeout:
        time.sleep(2.0)
        now = writes(cluster)
        if operator_writes(delta(now, seen)):
            last = time.monotonic()
        seen = now
    return time.monotonic() - started


def describe_restart(restart: dict[str, Any], verdict: RestartVerdict, count: int) -> str:
    """The restart's lines: timings, passes, writes, then the verdict."""
    total = sum(restart["writes"].values())
    quiet = f"then {QUIET:.0f} s without another" if restart["quiet"] else f"no {QUIET:.0f} s quiet period"
    lines = [
        f"  Ready again {restart['ready_s']:.1f} s after the SIGKILL, first LoadBalancer pass by "
        f"{restart['first_pass_s']:.1f} s, {restart['passes']} passes, {quiet} "
        f"({restart['settled_s']:.1f} s)",
        f"  API writes from the kill until then: {total} ({total / count:.2f} per Service)",
        f"  addresses changed: {len(verdict.changed)}; duplicates: {len(verdict.duplicates)}",
        f"  operator quiet for {QUIET:.0f} s before the kill after {restart['quiet_before_s']:.1f} s; "
        f"the restart's operator writes: {restart['operator_writes'] or 'none'}; "
        f"Events on keepvip's objects: {len(restart['events'])}; status changed: "
        f"{len(restart['services_changed'])} Services, {len(restart['records_changed'])} VirtualIPs",
    ]
    lines += [f"    event {e}" for e in restart["events"][:5]]
    for kind in ("services_changed", "records_changed"):
        lines += [f"    {name}: {'; '.join(diff)}" for name, diff in list(restart[kind].items())[:5]]
    lines += [
        f"    changed {name}: {was} -> {now}" for name, (was, now) in list(verdict.changed.items())[:10]
    ]
    lines += [f"    duplicate {a}: {', '.join(names)}" for a, names in list(verdict.duplicates.items())[:10]]
    return "\n".join(lines)


def describe(seen: Convergence) -> str:
    """One line: the first look, the time to one holder per VIP, the double holdings seen."""
    s = seen.summary()
    first, last = s["first_round"], s["last_round"]
    single = "never" if seen.single_after is None else f"{seen.single_after:.1f} s"
    return (
        f"first look {first['counts']} ({first['doubles']} on two nodes, {first['missing']} on none); "
        f"one holder each from {single} ({s['rounds']} rounds); {s['addresses_ever_double']} addresses "
        f"seen on two nodes, longest {s['longest_double_window_s']:.1f} s, last at "
        f"{s['last_double_seen_s']}; slowest round {s['slowest_round_s']:.2f} s; last look {last['counts']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=600.0, help="for every VIP to answer (s)")
    parser.add_argument(
        "--watch", type=float, default=120.0, help="how long to watch the holders converge to one per VIP (s)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    count = args.services
    if not 1 <= count <= VIP_NETWORK.num_addresses - 2:
        parser.error(f"--services must be within 1..{VIP_NETWORK.num_addresses - 2}")
    addresses = pool_addresses(count)
    report: dict[str, Any] = {"services": count}
    with LocalCluster(ClusterConfig(nodes=NODES)) as cluster:
        deployment = KeepvipOnCluster(cluster, f"keepvip-lb-{secrets.token_hex(2)}")
        deployment.install(cluster.helm(), ["--set", "loadBalancer.defaultClass=true",
                                            "--set", "loadBalancer.reuseDelay=0s"])  # fmt: skip
        cluster.exec_in_client(["ip", "route", "add", str(VIP_NETWORK), "dev", "eth0"])
        cluster.create_namespace(NAMESPACE)
        for node in BACKENDS:
            cluster.objects.create(backend_pod(f"web-{node}", node, TARGET, {"app": "bench"}), NAMESPACE)
        wait_until(lambda: all(
            any(c["type"] == "Ready" and c["status"] == "True"
                for c in ((cluster.objects.get("v1", "Pod", f"web-{n}", NAMESPACE) or {}).get("status") or {})
                .get("conditions") or [])
            for n in BACKENDS), timeout=60, what="the backend pods ready")  # fmt: skip
        cluster.objects.apply(pool_document(count), field_manager="kubectl")

        pids = keepvip_processes()
        windows = {kind: [CpuWindow(pid, time.monotonic()) for pid in found] for kind, found in pids.items()}
        before = writes(cluster)
        started, started_wall = time.monotonic(), time.time()
        prober = start_prober(cluster, addresses, args.timeout)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: cluster.objects.create(service_document(i), NAMESPACE), range(count)))
        created = time.monotonic() - started
        allocated = ingress_times(cluster, count, started, args.timeout)
        answered = prober_result(prober, started_wall, args.timeout + 30)
        done = time.monotonic()
        create_writes = delta(writes(cluster), before)
        usage = {kind: [w.end(done) for w in found] for kind, found in windows.items()}
        minutes = (done - started) / 60

        wanted = {str(a) for a in addresses}
        names = record_names(cluster, wanted)
        steady = watch(cluster, NODES, wanted, origin=time.monotonic(), timeout=args.watch)
        held = steady.last.counts()
        steady_why = explain(deployment, names, steady)
        # The operator restart, with every VIP answering: the allocation lives in the API
        # (records, Service status), so a restarted operator must rebuild it unchanged.
        kept = assigned(cluster.objects.list("v1", "Service", NAMESPACE))
        restart = restart_operator(cluster, deployment, timeout=180.0)
        restarted = compare(kept, assigned(cluster.objects.list("v1", "Service", NAMESPACE)))
        time.sleep(5)  # settle: every backup has heard node-c once more
        backups = [n for n in NODES if n != HOLDER]
        with ThreadPoolExecutor(1) as watcher:
            cluster.set_node_link(HOLDER, False)
            failed, failed_wall = time.monotonic(), time.time()
            # Watched from the failure on, beside the prober: the backups of equal
            # priority may both take a VIP (their Master_Down_Timers run out together,
            # RFC 9568 §6.4.2) until the lower primary address hears the other (§6.4.3).
            during = watcher.submit(watch, cluster, backups, wanted, origin=failed, timeout=args.watch)
            prober = start_prober(cluster, addresses, args.timeout)
            recovered = prober_result(prober, failed_wall, args.timeout + 30)
            converged = during.result()
        # And once every VIP answered again: a double holding that VRRP resolves is gone
        # by now; one still seen here is not VRRP's timers.
        answered_again = time.monotonic()
        after = watch(cluster, backups, wanted, origin=answered_again, timeout=args.watch)
        failover_why = explain(deployment, names, converged)
        load = Path("/proc/loadavg").read_text().split()[:3]

        total_writes = sum(create_writes.values())
        print(f"\n{count} LoadBalancer Services created in {created:.1f} s (16 threads), one pool, "
              f"{count} addresses")  # fmt: skip
        print(f"  EXTERNAL-IP:   {spread(allocated, count)}")
        print(f"  VIP answering: {spread(answered, count)} (HTTP GET from the LAN client via kube-proxy)")
        print(f"  holders once every VIP answered: {describe(steady)}")
        print(f"\nAPI writes from the first create until every VIP answered: {total_writes} "
              f"({total_writes / count:.2f} per Service)")  # fmt: skip
        print(by_resource(create_writes, minutes))
        print("\nprocesses over that window:")
        print(usage_line("operator", usage["operator"]))
        print(usage_line("speakers", usage["speaker"]))
        print("\noperator SIGKILLed once every VIP answered (the kubelet restarts it):")
        print(describe_restart(restart, restarted, count))
        print(f"\n{HOLDER}'s link down while it held {held.get(HOLDER, 0)} VIPs:")
        print(f"  VIP answering again: {spread(recovered, count)}")
        print(f"  holders from the failure on (s after the link went down): {describe(converged)}")
        print(f"  holders once every VIP answered again: {describe(after)}")
        print(f"  load average at the end: {' '.join(load)}")
        restart_report = {
            **restart,
            "writes": {f"{v} {r}": n for (v, r), n in restart["writes"].items()},
            "changed": restarted.changed,
            "duplicates": restarted.duplicates,
        }
        report.update(
            create_seconds=created,
            external_ip=sorted(allocated.values()),
            answering=sorted(answered.values()),
            writes={f"{v} {r}": n for (v, r), n in create_writes.items()},
            usage={k: [u.__dict__ for u in v] for k, v in usage.items()},
            holders_before=steady.summary(),
            restart=restart_report,
            doubles_before=steady_why,
            failover=sorted(recovered.values()),
            holders_after_failover=converged.summary(),
            holders_once_answering=after.summary(),
            doubles_after_failover=failover_why,
            load_average=load,
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    settled = all(seen.single_after is not None for seen in (steady, converged, after))
    answering = len(answered) == count and len(recovered) == count
    silent = not restart["operator_writes"] and not restart["events"]
    return 0 if answering and settled and restarted.ok() and silent else 1


if __name__ == "__main__":
    sys.exit(main())
