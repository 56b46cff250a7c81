"""The chart as the LoadBalancer cluster tests install it (shared by tests/cluster/test_lb*.py
and test_loadbalancer.py).

``loadBalancer.defaultClass=true`` because v1.20 has no ``spec.loadBalancerClass``, so the
class-less Services are the ones served; ``reuseDelay=0s`` so that a test need not wait
for a released address. On the way out every pool is deleted, and with them (they own
them) every record, before the release is uninstalled.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from keepvip.localcluster import LocalCluster, wait_until
from keepvip.localcluster.scenario import API_VERSION, KeepvipOnCluster


def records(cluster: LocalCluster) -> list[dict[str, Any]]:
    """Every allocation record (a VirtualIP labelled with its pool)."""
    return cluster.objects.list(API_VERSION, "VirtualIP", label_selector="keepvip.io/pool")


def chart_for_loadbalancers(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory, stem: str
) -> Iterator[KeepvipOnCluster]:
    """Install the chart in a fresh namespace named after ``stem``; yield it; clean up."""
    deployment = KeepvipOnCluster(cluster, f"{stem}-{secrets.token_hex(2)}")
    helm = cluster.helm(tmp_path_factory.mktemp("helm"))
    deployment.install(
        helm, ["--set", "loadBalancer.defaultClass=true", "--set", "loadBalancer.reuseDelay=0s"]
    )
    try:
        yield deployment
    finally:
        for pool in cluster.objects.list(API_VERSION, "VirtualIPPool"):
            cluster.objects.delete(API_VERSION, "VirtualIPPool", pool["metadata"]["name"])
        wait_until(lambda: not records(cluster), timeout=90, what="every record gone")
        deployment.uninstall(helm)
        cluster.core.delete_namespace(deployment.namespace)
