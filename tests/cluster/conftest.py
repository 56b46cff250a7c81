"""Fixtures of the cluster tier: one local Kubernetes cluster for the whole session.

The cluster (``keepvip.localcluster.LocalCluster``: a v1.20.2 control plane, three nodes
as network namespaces, a process kubelet) starts once, in about 9 s, and every test gets
a fresh namespace in it. The binaries come from ``hack/build-k8s.sh`` and
``hack/get-helm.sh``, which ``make test`` runs first; when they are missing the tier
fails with that instruction instead of skipping.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from keepvip.localcluster import BinariesMissingError, ClusterConfig, Helm, LocalCluster, Objects
from keepvip.localcluster.scenario import KeepvipOnCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The session's local cluster (nodes ``node-a``, ``node-b``, ``node-c``)."""
    if os.geteuid() != 0:
        pytest.fail("the cluster tier needs root (network namespaces); run it as root")
    workdir = tmp_path_factory.mktemp("localcluster")
    try:
        local = LocalCluster(ClusterConfig(workdir=workdir))
        local.start()
    except BinariesMissingError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def api_client(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    """An admin ApiClient shared by the session."""
    api = cluster.api_client()
    yield api
    api.close()


@pytest.fixture(scope="session")
def objects(cluster: LocalCluster) -> Objects:
    """Admin access to any kind as plain dictionaries (``keepvip.localcluster.Objects``)."""
    return cluster.objects


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    """Admin CoreV1Api."""
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    """Admin AppsV1Api."""
    return client.AppsV1Api(api_client)


@pytest.fixture
def namespace(cluster: LocalCluster, core: client.CoreV1Api,
              request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test (its default ServiceAccount token ready), deleted after."""
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{stem}-{secrets.token_hex(2)}"
    cluster.create_namespace(name)
    yield name
    core.delete_namespace(name)


@pytest.fixture
def helm(cluster: LocalCluster, tmp_path: Path) -> Helm:
    """helm with admin credentials and XDG directories in the test's temporary directory."""
    try:
        return cluster.helm(tmp_path / "helm-state")
    except BinariesMissingError as e:
        pytest.fail(str(e), pytrace=False)



@pytest.fixture(scope="module")
def keepvip(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeepvipOnCluster]:
    """The chart installed in its own namespace (one per test module), and a web server on every node."""
    deployment = KeepvipOnCluster(cluster, f"keepvip-e2e-{secrets.token_hex(2)}")
    helm = cluster.helm(tmp_path_factory.mktemp("helm"))
    deployment.install(helm)
    for node in cluster.nodes:
        deployment.start_web(node)
    try:
        yield deployment
    finally:
        deployment.stop_all_web()
        deployment.uninstall(helm)
        cluster.core.delete_namespace(deployment.namespace)
