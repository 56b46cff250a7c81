"""The VirtualIP admission webhook's own service time, measured at its door (issue 15).

The API server's histogram (``apiserver_admission_webhook_admission_duration_seconds``)
has no bound between 2.5 s and +Inf on v1.20, so it cannot tell how many answers passed
the 5 s timeout (where ``failurePolicy: Ignore`` admits unchecked), nor whether the time
went into the webhook or into the API server around it. This bench asks the webhook
directly, as the API server does: ``AdmissionReview`` (admission.k8s.io/v1) CREATE
requests for VirtualIPs, POSTed over the operator's TLS (verified against the
``caBundle`` the ValidatingWebhookConfiguration carries) to ``/validate-virtualip`` on
the operator pod, from inside its node namespace, ``--concurrency`` at a time on
keep-alive connections (the API server's webhook client keeps one connection per request
in flight; 16 creating threads put 16 in flight). Hold the cluster lock::

    flock /tmp/keepvip-cluster.lock .venv/bin/python bench/webhook.py --count 500

Two phases, each ``--count`` direct reviews of VirtualIPs that are never stored (their
own addresses, so every one must be admitted):

* **during creates**: at the same time ``--count`` VirtualIPs are created through the API
  (16 client threads), so the operator reconciles them while it answers; the API
  server's histogram over those creates is read too;
* **at rest**: once the stored VirtualIPs are allocated (or ``--timeout``), with all of
  them in the inventory the webhook checks against.

Each phase reports p50 / p99 / max of the answers' seconds and how many took longer
than 5 s (the chart's ``webhook.timeoutSeconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

import aiohttp  # noqa: E402 - kopf's own dependency
from cluster_scale import api_metrics, histogram, requests  # noqa: E402
from gaps import percentile  # noqa: E402

from keepvip.localcluster import ClusterConfig, LocalCluster, wait_until  # noqa: E402
from keepvip.localcluster.scenario import KeepvipOnCluster  # noqa: E402

API_VERSION = "keepvip.io/v1alpha1"
STORED = IPv4Network("198.18.200.0/23")
PROBED = IPv4Network("198.18.202.0/23")
TIMEOUT = 5.0  # the chart's webhook.timeoutSeconds
PATH = "/validate-virtualip"


def virtualip(name: str, address: str) -> dict[str, Any]:
    """A VirtualIP as ``kubectl apply`` would send it (one /32 on eth0, 1 s adverts)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": {
            "addresses": [f"{address}/32"],
            "interface": "eth0",
            "vrrp": {"advertisementInterval": "1s"},
        },
    }


def admission_review(body: Mapping[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    """The ``AdmissionReview`` the API server sends for a VirtualIP CREATE (admission.k8s.io/v1)."""
    group, version = API_VERSION.split("/")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": "VirtualIP"},
            "resource": {"group": group, "version": version, "resource": "virtualips"},
            "requestKind": {"group": group, "version": version, "kind": "VirtualIP"},
            "requestResource": {"group": group, "version": version, "resource": "virtualips"},
            "name": body["metadata"]["name"],
            "operation": operation,
            "userInfo": {"username": "bench-webhook", "groups": ["system:authenticated"]},
            "object": dict(body),
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def summary(seconds: Sequence[float], limit: float = TIMEOUT) -> dict[str, float]:
    """p50 / p99 / max and how many answers took longer than ``limit``."""
    if not seconds:
        return {"count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0, "over_limit": 0}
    values = list(seconds)
    return {
        "count": len(values),
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": max(values),
        "over_limit": sum(1 for v in values if v > limit),
    }


def histogram_delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """What the histogram counted between two readings."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def describe_histogram(seen: Mapping[str, float]) -> str:
    """``N answers, mean s; per bucket``: what the API server can tell."""
    count = seen.get("count", 0.0)
    mean = seen.get("sum", 0.0) / count if count else 0.0
    bounds = sorted((k for k in seen if k.startswith("le_") and k != "le_+Inf"), key=lambda k: float(k[3:]))
    within = ", ".join(f"≤ {k[3:]} s: {seen[k]:.0f}" for k in bounds)
    if not bounds:
        return f"{count:.0f} answers, mean {mean:.3f} s"
    slower = count - seen[bounds[-1]]
    return f"{count:.0f} answers, mean {mean:.3f} s ({within}; slower than {bounds[-1][3:]} s: {slower:.0f})"


# -- the client, run inside the operator's node namespace ---------------------------------


async def _ask_all(url: str, ca_file: str, server_name: str, reviews: list[dict[str, Any]],
                   concurrency: int) -> list[dict[str, Any]]:  # fmt: skip
    context = ssl.create_default_context(cafile=ca_file)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for review in reviews:
        queue.put_nowait(review)
    answers: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                review = queue.get_nowait()
                started = time.monotonic()
                try:
                    async with session.post(url, json=review, server_hostname=server_name) as answer:
                        body = await answer.json()
                        allowed = bool((body.get("response") or {}).get("allowed"))
                        status = answer.status
                except (aiohttp.ClientError, TimeoutError) as error:
                    allowed, status = False, f"{type(error).__name__}: {error}"
                answers.append({"seconds": time.monotonic() - started, "allowed": allowed, "status": status})

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


def client_main(argv: Sequence[str]) -> int:
    """``--client URL CA_FILE SERVER_NAME CONCURRENCY`` < reviews (JSON list) > answers (JSON list)."""
    url, ca_file, server_name, concurrency = argv[0], argv[1], argv[2], int(argv[3])
    reviews = json.load(sys.stdin)
    print(json.dumps(asyncio.run(_ask_all(url, ca_file, server_name, reviews, concurrency))))
    return 0


# -- the bench ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Door:
    """Where and how the API server reaches the webhook: from the operator's node namespace."""

    netns: str
    url: str
    server_name: str
    """The Service's DNS name, which the serving certificate names."""
    ca_file: Path


def webhook_door(cluster: LocalCluster, namespace: str, scratch: Path) -> Door:
    """The operator's webhook as the ValidatingWebhookConfiguration publishes it (its caBundle
    written to ``scratch``), reached at the operator pod's address."""
    pods = cluster.objects.list("v1", "Pod", namespace, label_selector="app.kubernetes.io/component=operator")
    pod = next(p for p in pods if p["status"].get("phase") == "Running")
    configs = cluster.objects.list("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")
    hook = next(
        h for c in configs for h in c.get("webhooks") or () if h["name"].startswith("validate-virtualip.")
    )
    service = hook["clientConfig"]["service"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "operator")
    port = next(p["containerPort"] for p in container.get("ports") or () if p.get("name") == "webhook")
    url = f"https://{pod['status']['podIP']}:{port}{PATH}"
    server_name = f"{service['name']}.{service['namespace']}.svc"
    ca_file = scratch / "ca.crt"
    ca_file.write_bytes(base64.b64decode(hook["clientConfig"]["caBundle"]))
    return Door(cluster.nodes[pod["spec"]["nodeName"]].netns, url, server_name, ca_file)


def start_client(door: Door, reviews: list[dict[str, Any]], concurrency: int) -> subprocess.Popen[str]:
    """The client in the operator's node namespace, fed ``reviews`` on stdin."""
    argv = ["ip", "netns", "exec", door.netns, sys.executable, str(Path(__file__).resolve()), "--client",
            door.url, str(door.ca_file), door.server_name, str(concurrency)]  # fmt: skip
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert client.stdin is not None
    client.stdin.write(json.dumps(reviews))
    client.stdin.close()
    return client


def finish_client(client: subprocess.Popen[str], timeout: float) -> list[dict[str, Any]]:
    assert client.stdout is not None
    out = client.stdout.read()
    client.wait(timeout=timeout)
    return list(json.loads(out or "[]"))


def listings(cluster: LocalCluster) -> int:
    """LIST requests for VirtualIPs the API server has served so far (each review's listing shows here)."""
    return sum(
        n for (_, resource), n in requests(api_metrics(cluster), {"LIST"}).items() if resource == "virtualips"
    )


def describe_phase(name: str, answers: Sequence[Mapping[str, Any]]) -> str:
    s = summary([a["seconds"] for a in answers])
    refused = sum(1 for a in answers if not a["allowed"])
    times = f"p50 {s['p50'] * 1000:.0f} ms, p99 {s['p99'] * 1000:.0f} ms, max {s['max'] * 1000:.0f} ms"
    return (
        f"  {name}: {s['count']} answers, {times}, {s['over_limit']} over {TIMEOUT:.0f} s, {refused} refused"
    )


def allocated(cluster: LocalCluster, names: set[str]) -> int:
    return sum(
        1
        for item in cluster.objects.list(API_VERSION, "VirtualIP")
        if item["metadata"]["name"] in names and (item.get("status") or {}).get("vrid")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="for every stored VirtualIP's allocation"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    count = args.count
    report: dict[str, Any] = {"count": count, "concurrency": args.concurrency}
    with LocalCluster(ClusterConfig(nodes=("node-a", "node-b", "node-c"))) as cluster, \
            tempfile.TemporaryDirectory() as scratch:  # fmt: skip
        deployment = KeepvipOnCluster(cluster, f"keepvip-hook-{secrets.token_hex(2)}")
        deployment.install(cluster.helm())
        door = webhook_door(cluster, deployment.namespace, Path(scratch))
        report["url"] = door.url

        def probes(phase: str) -> list[dict[str, Any]]:
            return [
                admission_review(virtualip(f"probe-{phase}-{i}", str(a))) for i, a in enumerate(addresses)
            ]

        addresses = [PROBED[i + 1] for i in range(count)]

        names = {f"stored-{i}" for i in range(count)}
        lists = [listings(cluster)]
        before = histogram(api_metrics(cluster))
        load_start = Path("/proc/loadavg").read_text().split()[:3]
        client = start_client(door, probes("busy"), args.concurrency)
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: cluster.objects.create(virtualip(f"stored-{i}", str(STORED[i + 1]))),
                          range(count)))  # fmt: skip
        created = time.monotonic() - started
        busy = finish_client(client, timeout=args.timeout)
        lists.append(listings(cluster))
        through_api = histogram_delta(histogram(api_metrics(cluster)), before)
        wait_until(lambda: allocated(cluster, names) == count, timeout=args.timeout, interval=5.0,
                   what="every stored VirtualIP allocated")  # fmt: skip
        time.sleep(10)
        load_rest = Path("/proc/loadavg").read_text().split()[:3]
        lists.append(listings(cluster))
        rest = finish_client(start_client(door, probes("rest"), args.concurrency), timeout=args.timeout)
        lists.append(listings(cluster))

        print(f"\n{count} VirtualIPs created through the API in {created:.1f} s (16 threads); "
              f"direct AdmissionReviews at concurrency {args.concurrency} to {door.url}")  # fmt: skip
        print(describe_phase(f"during the creates (load {' '.join(load_start)})", busy))
        print(describe_phase(f"at rest, {count} stored (load {' '.join(load_rest)})", rest))
        print(f"  API server's histogram over the creates: {describe_histogram(through_api)}")
        print(f"  LIST virtualips served by the API server (the webhook's, the bench's): "
              f"{lists[1] - lists[0]:.0f} during the creates, {lists[3] - lists[2]:.0f} at rest")  # fmt: skip
        report.update(
            create_seconds=created,
            during_creates=summary([a["seconds"] for a in busy]),
            at_rest=summary([a["seconds"] for a in rest]),
            not_admitted=[a for a in busy + rest if not a["allowed"]][:10],
            apiserver_histogram=through_api,
            lists_during_creates=lists[1] - lists[0],
            lists_at_rest=lists[3] - lists[2],
            load={"start": load_start, "rest": load_rest},
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        sys.exit(client_main(sys.argv[2:]))
    sys.exit(main())
