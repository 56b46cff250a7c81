"""The cluster at scale: 500 VirtualIPs on the local cluster, what it costs the API server.

Runs on ``keepvip.localcluster`` (a v1.20 control plane, three nodes as namespaces, the
process kubelet) with the chart installed by helm, as the end-to-end tests do. Hold the
cluster lock while it runs (only one cluster fits on the machine)::

    flock /tmp/keepvip-cluster.lock .venv/bin/python bench/cluster_scale.py --count 500

Measured:

* **create**: ``--count`` VirtualIPs created at once (16 client threads), one ``/32``
  address each in 198.18.200.0/23 on ``eth0`` (inside the node namespaces only), node
  ``i % 3`` preferred; seconds from the first create until each is allocated
  (``status.vrid``) and Ready (``status.state``), p50 / p99 / max, polled every second;
* **steady writes**: API writes per minute over ``--window`` seconds with nothing
  changing, from the API server's own ``apiserver_request_total`` (``/metrics``), by
  verb and resource, so what keepvip writes stands apart from the control plane's own
  heartbeats (leases, node status, events);
* **one node failing**: a node is cut off the LAN (``disconnect_node``); the writes of
  the ``--window`` after it, by resource, against the VIPs that node held. Which node
  matters: the operator runs in one of the node namespaces and reaches the API server
  over the LAN too, so cutting *its* node cuts the operator off and the API server sees
  only the other speakers' entries. ``--cut other`` (default) cuts a node that does not
  run the operator, ``--cut operator`` the operator's own, ``--cut both`` one after the
  other (30 s apart); the report names the cut node and the operator's. (Run of
  2026-11-30 03:00, 90 VirtualIPs, ``--cut both``: node-b, master of 30, cut with the
  operator on node-a: 30 operator status patches, 60 Events, 52 speaker applies; then
  node-a, the operator's own, master of 29: 61 speaker applies and nothing else — the
  pattern of the earlier run with "no operator writes after a node cut".)
* operator and speaker **RSS and CPU** over the steady window (process trees found by
  their command lines: ``keepvip operator``, ``keepvip speaker --kubernetes``).
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from gaps import percentile  # noqa: E402
from procstat import CpuWindow, Usage  # noqa: E402

from keepvip.localcluster import ClusterConfig, LocalCluster  # noqa: E402
from keepvip.localcluster.scenario import API_VERSION, KeepvipOnCluster  # noqa: E402

VIP_NETWORK = IPv4Network("198.18.200.0/23")
NODES = ("node-a", "node-b", "node-c")
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION", "CREATE", "UPDATE"}
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def document(index: int) -> dict[str, Any]:
    preferred = NODES[index % len(NODES)]
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualIP",
        "metadata": {"name": f"scale-{index}"},
        "spec": {
            "addresses": [f"{VIP_NETWORK[index + 1]}/32"],
            "interface": "eth0",
            "nodePriorities": [{"nodeName": preferred, "priority": 150}],
            "vrrp": {"advertisementInterval": "1s"},
        },
    }


def api_metrics(cluster: LocalCluster) -> str:
    """The API server's own ``/metrics`` text."""
    return subprocess.run(["kubectl", "get", "--raw", "/metrics"], env=cluster.kubectl_env(),
                          capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip


def writes(cluster: LocalCluster) -> Counter[tuple[str, str]]:
    """(verb, resource[/subresource]) → writes so far, from the API server's metrics."""
    return requests(api_metrics(cluster), WRITE_VERBS)


def requests(metrics_text: str, verbs: set[str]) -> Counter[tuple[str, str]]:
    """(verb, resource[/subresource]) → requests with one of ``verbs`` so far (apiserver_request_total)."""
    found: Counter[tuple[str, str]] = Counter()
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        if labels.get("verb") not in verbs:
            continue
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        found[(labels["verb"], resource)] += int(float(match.group("value")))
    return found


_WEBHOOK_SAMPLE = re.compile(
    r"^apiserver_admission_webhook_admission_duration_seconds_(?P<kind>bucket|count|sum)"
    r"\{(?P<labels>[^}]*)\} (?P<value>\S+)$"
)


def histogram(metrics_text: str) -> dict[str, float]:
    """The API server's validating-webhook histogram for keepvip's webhooks: count, sum and
    the cumulative bucket counts (``le_<bound>``), summed over operations and names."""
    found: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = _WEBHOOK_SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        if labels.get("type") != "validating" or "keepvip" not in labels.get("name", ""):
            continue
        key = f"le_{labels['le']}" if match.group("kind") == "bucket" else match.group("kind")
        found[key] = found.get(key, 0.0) + float(match.group("value"))
    return found


def webhook_latency(cluster: LocalCluster) -> dict[str, float]:
    """The API server's view of the validating webhook's answers so far (all keepvip webhooks).

    ``count``, ``sum`` (s), ``over_2_5s`` (answers slower than 2.5 s, the histogram's last
    bound below +Inf: at 5 s the API server gives up and, with failurePolicy Ignore,
    admits the object unchecked).
    """
    seen = histogram(api_metrics(cluster))
    count = seen.get("count", 0.0)
    return {"count": count, "sum": seen.get("sum", 0.0), "over_2_5s": count - seen.get("le_2.5", 0.0)}


def delta(after: Counter[tuple[str, str]], before: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return Counter({k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0})


def keepvip_processes() -> dict[str, list[int]]:
    """'operator' and 'speaker' → pids of the cluster's keepvip processes (by command line)."""
    found: dict[str, list[int]] = {"operator": [], "speaker": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if not any(w.endswith("keepvip") for w in words[:2]):
            continue
        if "operator" in words:
            found["operator"].append(int(entry.name))
        elif "speaker" in words and "--kubernetes" in words:
            found["speaker"].append(int(entry.name))
    return found


def status_times(deployment: KeepvipOnCluster, names: set[str], started: float,
                 timeout: float) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """name → seconds until allocated, name → seconds until Ready (polled every second)."""
    allocated: dict[str, float] = {}
    ready: dict[str, float] = {}
    while len(ready) < len(names) and time.monotonic() - started < timeout:
        now = time.monotonic() - started
        for item in deployment.objects.list(API_VERSION, "VirtualIP"):
            name = item["metadata"]["name"]
            status = item.get("status") or {}
            if name not in names:
                continue
            if status.get("vrid") and name not in allocated:
                allocated[name] = now
            if status.get("state") == "Ready" and name not in ready:
                ready[name] = now
        print(f"  {now:5.0f} s: {len(allocated)} allocated, {len(ready)} Ready", file=sys.stderr, flush=True)
        time.sleep(1.0)
    return allocated, ready


def spread(times: dict[str, float], count: int) -> str:
    if not times:
        return f"0/{count}"
    values = list(times.values())
    return (f"p50 {percentile(values, 0.5):.1f} s, p99 {percentile(values, 0.99):.1f} s, "
            f"max {max(values):.1f} s ({len(values)}/{count})")  # fmt: skip


def by_resource(counts: Counter[tuple[str, str]], minutes: float) -> str:
    total = sum(counts.values())
    rows = [f"    total {total} ({total / minutes:.1f}/min)"]
    for (verb, resource), value in counts.most_common():
        rows.append(f"    {verb:7} {resource:32} {value:6} ({value / minutes:.1f}/min)")
    return "\n".join(rows)


def usage_line(name: str, usages: list[Usage]) -> str:
    return f"  {name}: " + ", ".join(f"{u.rss_mib:.0f} MiB, {u.cpu_percent:.2f} % CPU" for u in usages)


def operator_node(deployment: KeepvipOnCluster) -> str:
    """The node whose namespace the running operator pod is in."""
    pods = deployment.objects.list("v1", "Pod", deployment.namespace,
                                   label_selector="app.kubernetes.io/component=operator")  # fmt: skip
    return next(p["spec"]["nodeName"] for p in pods if p["status"].get("phase") == "Running")


def victim(operator_on: str, cut: str) -> str:
    """The node to cut off: the operator's own (``cut == "operator"``) or the first other one."""
    return operator_on if cut == "operator" else next(n for n in NODES if n != operator_on)


def cut_off(cluster: LocalCluster, deployment: KeepvipOnCluster, node: str, window: float) -> dict[str, Any]:
    """Cut ``node`` off the LAN for ``window`` seconds: the API writes meanwhile, and the VIPs it held."""
    held = [
        item["metadata"]["name"]
        for item in deployment.objects.list(API_VERSION, "VirtualIP")
        if (item.get("status") or {}).get("master") == node
    ]
    before = writes(cluster)
    cluster.disconnect_node(node)
    try:
        time.sleep(window)
        return {"node": node, "masters": len(held), "writes": delta(writes(cluster), before)}
    finally:
        cluster.reconnect_node(node)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--window", type=float, default=60.0, help="steady and after-failure windows (s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="for all to become Ready (s)")
    parser.add_argument("--cut", choices=("other", "operator", "both"), default="other",
                        help="a node without the operator, the operator's own, or both in turn")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"count": args.count}
    with LocalCluster(ClusterConfig(nodes=NODES)) as cluster:
        deployment = KeepvipOnCluster(cluster, f"keepvip-scale-{secrets.token_hex(2)}")
        deployment.install(cluster.helm())
        names = {f"scale-{i}" for i in range(args.count)}

        before = writes(cluster)
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: deployment.objects.create(document(i)), range(args.count)))
        created = time.monotonic() - started
        report["webhook"] = webhook_latency(cluster)
        allocated, ready = status_times(deployment, names, started, args.timeout)
        report["create_seconds"] = created
        report["allocated"] = spread(allocated, args.count)
        report["ready"] = spread(ready, args.count)
        report["writes_during_create"] = sum(delta(writes(cluster), before).values())

        time.sleep(30)  # announcements, status settle
        pids = keepvip_processes()
        windows = {kind: [CpuWindow(pid, time.monotonic()) for pid in found] for kind, found in pids.items()}
        before = writes(cluster)
        time.sleep(args.window)
        steady = delta(writes(cluster), before)
        now = time.monotonic()
        usage = {kind: [w.end(now) for w in found] for kind, found in windows.items()}
        minutes = args.window / 60

        operator_on = operator_node(deployment)
        cuts: list[dict[str, Any]] = []
        for which in ("other", "operator") if args.cut == "both" else (args.cut,):
            if cuts:
                time.sleep(30)  # the node is back on the LAN: elections and status settle
            cuts.append(cut_off(cluster, deployment, victim(operator_on, which), args.window))

        print(f"\n{args.count} VirtualIPs created in {created:.1f} s (16 threads)")
        hook = report["webhook"]
        mean = hook["sum"] / hook["count"] if hook["count"] else 0.0
        print(
            f"  webhook: {hook['count']:.0f} answers, mean {mean:.2f} s, "
            f"{hook['over_2_5s']:.0f} slower than 2.5 s"
        )
        print(f"  allocated: {report['allocated']}")
        print(f"  Ready:     {report['ready']}")
        print(f"  API writes from the first create until all Ready: {report['writes_during_create']}")
        print(f"\nsteady state, {args.window:.0f} s, API writes by verb and resource:")
        print(by_resource(steady, minutes))
        for cut in cuts:
            print(f"\n{cut['node']} cut off the LAN (it was master of {cut['masters']} VirtualIPs; "
                  f"the operator runs on {operator_on}), {args.window:.0f} s:")  # fmt: skip
            print(by_resource(cut["writes"], minutes))
        print("\nprocesses over the steady window:")
        print(usage_line("operator", usage["operator"]))
        print(usage_line("speakers", usage["speaker"]))
        report.update(
            steady={f"{v} {r}": n for (v, r), n in steady.items()},
            cuts=[{**c, "writes": {f"{v} {r}": n for (v, r), n in c["writes"].items()}} for c in cuts],
            operator_node=operator_on,
            usage={k: [u.__dict__ for u in v] for k, v in usage.items()},
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
